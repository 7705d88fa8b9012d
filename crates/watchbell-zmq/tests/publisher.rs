//! The publisher when nobody listens, when its peer is down and comes back, and when a hostile
//! peer connects to it.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{free_port, wait_until, Keep};
use tracing_subscriber::prelude::*;
use watchbell_core::{Level, Retry, SinkOptions};
use watchbell_zmq::{ZmqLayer, ZmqSubscriber};

const EVENTS: u64 = 5_000;

fn emit(layer: impl tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync, n: u64) -> Duration {
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let start = Instant::now();
        for i in 0..n {
            tracing::error!(target: "app", i, "payment failed");
        }
        start.elapsed()
    })
}

#[test]
fn push_with_its_peer_down_is_bounded_counted_and_delivers_once_the_peer_is_up() {
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let (layer, guard) = ZmqLayer::builder(&endpoint)
        .push()
        .queue_records(100)
        .timeout(Duration::from_millis(500))
        .retry(Retry { initial: Duration::from_millis(50), max: Duration::from_millis(200), ..Retry::default() })
        .build()
        .unwrap();
    let took = emit(layer, EVENTS);
    // The caller never waits for the absent peer (a bounded-wait check, not a benchmark).
    assert!(took < Duration::from_secs(2), "{EVENTS} events took {took:?} with the peer down");
    let s = &guard.stats()[0];
    assert_eq!(s.accepted + s.dropped, EVENTS, "{s}");
    // The queue (100) and the batch in flight (taken from it) hold at most 200.
    assert!(s.accepted <= 200 && s.dropped >= EVENTS - 200, "bounded by the queue: {s}");
    assert_eq!(s.delivered, 0, "{s}");

    // The peer comes up: what the queue held is delivered.
    let keep = Keep::default();
    let sub = ZmqSubscriber::builder().bind(&endpoint).pull().spawn(std::sync::Arc::new(keep.clone())).unwrap();
    assert!(guard.flush(Duration::from_secs(20)).is_complete(), "{}", guard.stats()[0]);
    let s = &guard.stats()[0];
    let app = || keep.records().into_iter().filter(|r| r.target == "app").collect::<Vec<_>>();
    assert!(wait_until(Duration::from_secs(10), || app().len() as u64 == s.accepted), "{} of {s}", keep.len());
    // And the "records dropped" notice of the delivery.
    assert!(wait_until(Duration::from_secs(10), || keep.records().iter().any(|r| r.message.contains("dropped"))));
    assert_eq!(s.delivered, s.accepted, "{s}");
    assert_eq!(app()[0].fields.get("i").and_then(|v| v.as_u64()), Some(0), "oldest first");
    assert!(sub.stop(Duration::from_secs(5)));
}

#[test]
fn pub_without_subscribers_does_not_stall_the_caller() {
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let (layer, guard) = ZmqLayer::builder(&endpoint).queue_records(100).build().unwrap();
    let took = emit(layer, EVENTS);
    assert!(took < Duration::from_secs(2), "{EVENTS} events took {took:?} with no subscriber");
    assert!(guard.flush(Duration::from_secs(10)).is_complete());
    let s = &guard.stats()[0];
    assert_eq!(s.accepted + s.dropped, EVENTS, "{s}");
    assert_eq!(s.failed, 0, "{s}");
}

#[test]
fn a_pub_nobody_listens_to_is_done_with_each_record_on_the_callers_thread() {
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let (layer, guard) = ZmqLayer::builder(&endpoint).queue_records(100).build().unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let publish = |n: u64| {
        tracing::dispatcher::with_default(&dispatch, || {
            for i in 0..n {
                tracing::error!(target: "app", i, "payment failed");
            }
        })
    };
    // Nobody subscribed: each record is published to nobody (as ZeroMQ drops it) before the
    // event returns. Nothing waits in the queue for the background thread, and a queue of 100
    // drops nothing.
    publish(EVENTS);
    let s = &guard.stats()[0];
    assert_eq!((s.accepted, s.delivered, s.dropped, s.queued), (EVENTS, EVENTS, 0, 0), "{s}");

    // A subscriber connects: from then on the records are queued, encoded and published to it.
    let keep = Keep::default();
    let sub = ZmqSubscriber::builder().connect(&endpoint).spawn(std::sync::Arc::new(keep.clone())).unwrap();
    let heard = wait_until(Duration::from_secs(10), || {
        publish(1);
        std::thread::sleep(Duration::from_millis(20));
        keep.records().iter().any(|r| r.target == "app")
    });
    assert!(heard, "the subscriber heard nothing: {}", guard.stats()[0]);
    assert!(guard.flush(Duration::from_secs(10)).is_complete());
    let s = &guard.stats()[0];
    assert_eq!((s.accepted, s.dropped, s.failed), (s.delivered, 0, 0), "{s}");
    assert!(sub.stop(Duration::from_secs(5)));
}

#[test]
fn a_hostile_peer_of_the_publisher_does_not_abort_the_process() {
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let (layer, guard) = ZmqLayer::builder(&endpoint).level(Level::INFO).build().unwrap();
    // A greeting, then a command frame announcing 1 TiB.
    let mut s = TcpStream::connect(endpoint.trim_start_matches("tcp://")).unwrap();
    let mut bytes = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0];
    bytes.extend(b"NULL");
    bytes.resize(64, 0);
    bytes.push(0x06);
    bytes.extend((1u64 << 40).to_be_bytes());
    bytes.extend([0u8; 512]);
    let _ = s.write_all(&bytes);
    std::thread::sleep(Duration::from_millis(300));

    // A real subscriber still gets the records.
    let keep = Keep::default();
    let sub = ZmqSubscriber::builder()
        .connect(&endpoint)
        .reconnect_interval(Duration::from_millis(20))
        .spawn(std::sync::Arc::new(keep.clone()))
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        assert!(
            wait_until(Duration::from_secs(20), || {
                tracing::warn!(target: "probe", "are you there");
                std::thread::sleep(Duration::from_millis(20));
                keep.len() > 0
            }),
            "{:?}",
            sub.stats()
        );
    });
    assert!(guard.flush(Duration::from_secs(5)).is_complete());
    assert_eq!(keep.records()[0].message, "are you there");
    drop(s);
}

/// Built, used and dropped inside an application's tokio runtime (`#[tokio::main]`): the
/// layer binds on its own runtime without blocking on the application's.
#[test]
fn built_and_dropped_inside_an_application_runtime() {
    let app = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let stats = app.block_on(async {
        let (layer, guard) = ZmqLayer::builder(&endpoint).build().unwrap();
        emit(layer, 10);
        assert!(guard.flush(Duration::from_secs(5)).is_complete());
        let stats = guard.stats();
        drop(guard);
        stats
    });
    assert_eq!(stats[0].accepted, 10, "{}", stats[0]);
}
