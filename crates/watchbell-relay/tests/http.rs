//! The relay's HTTP input against a real publisher (watchbell-http's `HttpLayer`): backpressure
//! with 429 + `Retry-After` loses nothing, a restarted relay loses nothing for a publisher with
//! a spool, the token is enforced, `/health` counts per input.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing_subscriber::prelude::*;
use watchbell_core::{Handler, Record, SinkOptions as _};
use watchbell_http::HttpLayer;
use watchbell_relay::Relay;

/// A destination that takes `delay` per record (a slow sink on the relay's side).
#[derive(Default)]
struct Slow {
    delay: Duration,
    got: Mutex<Vec<Record>>,
}

impl Handler for Slow {
    fn handle(&self, r: Record) {
        std::thread::sleep(self.delay);
        self.got.lock().unwrap().push(r);
    }
}

impl Slow {
    fn seqs(&self) -> BTreeMap<u64, usize> {
        let mut m = BTreeMap::new();
        for r in self.got.lock().unwrap().iter() {
            if let Some(s) = r.fields.get("seq").and_then(|v| v.as_u64()) {
                *m.entry(s).or_insert(0) += 1;
            }
        }
        m
    }

    fn wait_for(&self, n: usize, timeout: Duration) -> BTreeMap<u64, usize> {
        let end = watchbell_core::time::deadline(timeout);
        loop {
            let m = self.seqs();
            if m.len() >= n || Instant::now() >= end {
                return m;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn publisher(
    url: String,
    spool: Option<&std::path::Path>,
) -> (impl tracing::Subscriber + Send + Sync, watchbell_core::Guard) {
    let mut b =
        HttpLayer::builder(url).batch_records(50).batch_wait(Duration::from_millis(20)).app("shop").host("web-1");
    b = b.retry(watchbell_core::Retry {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(500),
        ..watchbell_core::Retry::default()
    });
    if let Some(dir) = spool {
        b = b.spool(dir, 10 << 20).spool_after(Duration::from_millis(300));
    }
    let (layer, guard) = b.build().expect("the http layer builds");
    (tracing_subscriber::registry().with(layer), guard)
}

#[test]
fn a_full_queue_answers_429_with_retry_after_and_the_sender_delivers_later() {
    let slow = Arc::new(Slow { delay: Duration::from_millis(2), ..Slow::default() });
    let relay = Relay::builder()
        .http("127.0.0.1:0".parse().unwrap())
        .queue(20)
        .retry_after(Duration::from_secs(1))
        .spawn(slow.clone())
        .unwrap();
    let url = format!("http://{}/v1/records", relay.http_addr().unwrap());
    let (subscriber, guard) = publisher(url, None);
    tracing::subscriber::with_default(subscriber, || {
        for seq in 0..200u64 {
            tracing::error!(seq, "payment failed");
        }
    });
    assert!(guard.flush(Duration::from_secs(60)).is_complete(), "{:?}", guard.stats());
    let got = slow.wait_for(200, Duration::from_secs(10));
    assert_eq!(got.len(), 200, "every record arrives");
    assert!(got.values().all(|&n| n == 1), "each once");
    let h = relay.input_stats("http-ndjson");
    assert!(h.rejected_full > 0, "the tiny queue refused bodies with 429: {h:?}");
    assert_eq!(h.accepted, 200);
    let stats = guard.stats();
    assert!(stats.iter().any(|s| s.retried > 0), "the publisher retried after the 429s: {stats:?}");
    // The records keep their origin.
    let first = slow.got.lock().unwrap()[0].clone();
    assert_eq!(first.field("app").and_then(|v| v.as_str()), Some("shop"));
    assert_eq!(first.field("host").and_then(|v| v.as_str()), Some("web-1"));
    assert_eq!(first.pid, std::process::id());
}

#[test]
fn a_relay_restarted_mid_stream_loses_nothing_for_a_publisher_with_a_spool() {
    let first = Arc::new(Slow::default());
    let relay = Relay::builder().http("127.0.0.1:0".parse().unwrap()).spawn(first.clone()).unwrap();
    let addr = relay.http_addr().unwrap();
    let spool = tempdir("restart");
    let (subscriber, guard) = publisher(format!("http://{addr}/v1/records"), Some(&spool));
    let mut second = None;
    let second_sink = Arc::new(Slow::default());
    let mut relay = Some(relay);
    tracing::subscriber::with_default(subscriber, || {
        for seq in 0..600u64 {
            tracing::error!(seq, "payment failed");
            std::thread::sleep(Duration::from_millis(2));
            if seq == 200 {
                // Stopped mid-stream (drains what it took), down for a while, then back.
                assert!(relay.take().unwrap().shutdown(Duration::from_secs(5)).is_complete());
            }
            if seq == 450 {
                second = Some(Relay::builder().http(addr).spawn(second_sink.clone()).expect("the port again"));
            }
        }
    });
    assert!(guard.flush(Duration::from_secs(60)).is_complete(), "{:?}", guard.stats());
    let got_second = second_sink.wait_for(600 - first.seqs().len(), Duration::from_secs(30));
    let mut all = first.seqs();
    for (k, v) in got_second {
        *all.entry(k).or_insert(0) += v;
    }
    let missing: Vec<u64> = (0..600).filter(|s| !all.contains_key(s)).collect();
    assert!(missing.is_empty(), "lost across the restart: {missing:?}");
    assert!(first.seqs().len() >= 150 && second_sink.seqs().len() >= 100, "both relays took part");
    drop(second);
    let _ = std::fs::remove_dir_all(&spool);
}

#[test]
fn the_token_is_required_and_health_counts_per_input() {
    let sink = Arc::new(Slow::default());
    let relay =
        Relay::builder().http("127.0.0.1:0".parse().unwrap()).token("s3cret-token").spawn(sink.clone()).unwrap();
    let base = format!("http://{}", relay.http_addr().unwrap());
    let client = reqwest::blocking::Client::new();
    let line = "{\"level\":\"ERROR\",\"target\":\"a\",\"message\":\"m\",\"pid\":7}\n";
    let post = |token: Option<&str>| {
        let mut rq = client.post(format!("{base}/v1/records")).body(line);
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        rq.send().unwrap().status().as_u16()
    };
    assert_eq!(post(None), 401);
    assert_eq!(post(Some("s3cret-tokeN")), 401);
    assert_eq!(post(Some("s3cret-token")), 200);
    let bad = client.post(format!("{base}/v1/records")).bearer_auth("s3cret-token").body("nope").send().unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let otlp = client
        .post(format!("{base}/v1/logs"))
        .bearer_auth("s3cret-token")
        .body(r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"py"}}]},"scopeLogs":[{"logRecords":[{"severityNumber":17,"body":{"stringValue":"from otel"}}]}]}]}"#)
        .send()
        .unwrap();
    assert_eq!(otlp.status().as_u16(), 200);
    let health: serde_json::Value = client.get(format!("{base}/health")).send().unwrap().json().unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["inputs"]["http-ndjson"]["unauthorized"], 2);
    assert_eq!(health["inputs"]["http-ndjson"]["accepted"], 1);
    assert_eq!(health["inputs"]["http-ndjson"]["invalid"], 1);
    assert_eq!(health["inputs"]["http-otlp"]["accepted"], 1);
    // The same counters in the handler stats a Guard over the relay reports.
    let mut stats = Vec::new();
    watchbell_core::Handler::stats(&relay, &mut stats);
    let ndjson = stats.iter().find(|s| s.name == "relay-http-ndjson").expect("per-input stats");
    assert_eq!((ndjson.accepted, ndjson.failed), (1, 3));
    let builder_debug = format!("{:?}", Relay::builder().token("s3cret-token"));
    assert!(!builder_debug.contains("s3cret"), "{builder_debug}");
    assert!(relay.shutdown(Duration::from_secs(5)).is_complete());
    let got = sink.got.lock().unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].field("service").and_then(|v| v.as_str()), Some("py"));
}

#[test]
fn the_unix_socket_takes_ndjson_lines_and_shutdown_drains_them() {
    use std::io::Write;
    let sink = Arc::new(Slow { delay: Duration::from_micros(200), ..Slow::default() });
    let dir = tempdir("unix");
    let path = dir.join("relay.sock");
    let relay = Relay::builder().unix(&path).queue(100).spawn(sink.clone()).unwrap();
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    for seq in 0..2000 {
        writeln!(s, "{{\"level\":\"WARN\",\"target\":\"w\",\"message\":\"m\",\"pid\":9,\"fields\":{{\"seq\":{seq}}}}}")
            .unwrap();
    }
    writeln!(s, "garbage").unwrap();
    drop(s);
    // Backpressure: 2000 lines through a queue of 100, none dropped.
    let got = sink.wait_for(2000, Duration::from_secs(20));
    assert_eq!(got.len(), 2000);
    let u = relay.input_stats("unix");
    assert_eq!((u.accepted, u.invalid, u.rejected_full), (2000, 1, 0));
    assert!(relay.shutdown(Duration::from_secs(5)).is_complete());
    assert!(!path.exists(), "the socket file is removed at shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("watchbell-relay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn records_published_over_zeromq_reach_the_sinks_with_their_origin() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let (layer, pub_guard) = watchbell_zmq::ZmqLayer::builder(endpoint.clone()).bind().build().unwrap();
    let sink = Arc::new(Slow::default());
    let relay = Relay::builder().zmq(endpoint).spawn(sink.clone()).unwrap();
    // PUB/SUB drops what is published before the subscription is in place: publish until
    // records arrive, then a numbered run.
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let end = watchbell_core::time::deadline(Duration::from_secs(10));
        while sink.got.lock().unwrap().is_empty() && Instant::now() < end {
            tracing::warn!("warming up");
            let _ = pub_guard.flush(Duration::from_secs(1));
            std::thread::sleep(Duration::from_millis(50));
        }
        for seq in 0..100u64 {
            tracing::error!(seq, "from zeromq");
        }
    });
    assert!(pub_guard.flush(Duration::from_secs(10)).is_complete());
    let got = sink.wait_for(100, Duration::from_secs(10));
    assert_eq!(got.len(), 100, "every record after the subscription");
    assert!(relay.input_stats("zmq").accepted >= 100);
    let r = sink.got.lock().unwrap().iter().find(|r| r.message == "from zeromq").cloned().unwrap();
    assert_eq!(r.pid, std::process::id(), "the publisher's process travels");
}
