//! What users of tracing-layer-slack and tracing-loki report, each against the watchbell layer
//! that replaces that crate (SlackLayer, HttpLayer with the Loki encoding) and that layer's
//! loopback fake: a tokio runtime required, 429s counted as success, unbounded or silently
//! dropping queues, logs missed at exit, `Retry-After` ignored.

use std::time::Duration;

use tracing_subscriber::prelude::*;
use watchbell_core::{Guard, Level, Retry, SinkOptions, Stats};
use watchbell_http::{Encoding, HttpLayer, LokiLabel};
use watchbell_slack::{SlackLayer, Webhook};
use watchbell_test::collectors::FakeLoki;
use watchbell_test::http::Reply;
use watchbell_test::slack::FakeSlack;

const WAIT: Duration = Duration::from_secs(20);

fn stats(g: &Guard, name: &str) -> Stats {
    g.stats().into_iter().find(|s| s.name.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {:?}", g.stats()))
}

fn loki(fake: &FakeLoki) -> watchbell_http::HttpBuilder {
    HttpLayer::builder(fake.url())
        .encoding(Encoding::Loki { labels: vec![LokiLabel::App, LokiLabel::Level] })
        .app("shop")
        .level(Level::INFO)
}

#[test]
fn the_slack_layer_works_inside_a_current_thread_tokio_runtime() {
    let slack = FakeSlack::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let url = slack.webhook_url("ops");
    let guard = rt.block_on(async move {
        let (layer, guard) = SlackLayer::builder().webhook(Webhook::new(url)).build().unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::error!("from the only runtime thread");
        });
        // A flush from the runtime's only thread completes: the work runs on watchbell's threads.
        assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
        guard
    });
    assert_eq!(slack.messages_for("ops").len(), 1);
    assert_eq!(stats(&guard, "slack").delivered, 1);
}

#[test]
fn the_slack_queue_is_bounded_and_what_it_sheds_is_counted_and_announced() {
    let slack = FakeSlack::start();
    slack.outage(Duration::from_millis(1500));
    let (layer, guard) = SlackLayer::builder()
        .webhook(Webhook::new(slack.webhook_url("ops")))
        .queue_records(10)
        .no_rate_limit()
        .pace(Duration::ZERO)
        .retry(Retry { initial: Duration::from_millis(50), max: Duration::from_millis(200), ..Retry::default() })
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..200 {
            tracing::error!(i, "alert {i}");
        }
    });
    let s = stats(&guard, "slack");
    assert!(s.dropped >= 150 && s.queued <= 10, "a 10-record queue: {s}");
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    let text = format!("{:?}", slack.wait_for_messages(2, WAIT));
    let s = stats(&guard, "slack");
    assert!(text.contains(&format!("{} records dropped", s.dropped)), "the drop is announced in Slack: {text:.2000}");
    assert_eq!(s.failed, 0, "{s}");
}

#[test]
fn a_slack_429_is_not_success_it_waits_for_retry_after() {
    let slack = FakeSlack::start();
    slack.push_rate_limit(1);
    let (layer, guard) = SlackLayer::builder().webhook(Webhook::new(slack.webhook_url("ops"))).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || tracing::error!("limited"));
    assert!(guard.flush(WAIT).is_complete());
    let reqs = slack.http().requests();
    assert_eq!(reqs.len(), 2, "the 429 was retried, not taken as delivered");
    assert!(reqs[1].received_at.duration_since(reqs[0].received_at) >= Duration::from_secs(1));
    let s = stats(&guard, "slack");
    assert_eq!((s.delivered, s.retried), (1, 1), "{s}");
}

#[test]
fn loki_honours_retry_after() {
    let fake = FakeLoki::start();
    fake.http().push(Reply::status(429).retry_after(1));
    let (layer, guard) = loki(&fake).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || tracing::info!("limited"));
    assert!(guard.flush(WAIT).is_complete());
    let reqs = fake.http().requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].received_at.duration_since(reqs[0].received_at) >= Duration::from_secs(1));
    assert_eq!(fake.records().len(), 1);
    assert_eq!(stats(&guard, "http").retried, 1);
}

#[test]
fn loki_records_still_queued_at_exit_are_pushed_by_the_guard() {
    let fake = FakeLoki::start();
    let (layer, guard) = loki(&fake).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..2_000 {
            tracing::info!(i, "record {i}");
        }
    });
    // The end of main: no sleep, no explicit flush — the guard's shutdown delivers the rest.
    assert!(guard.shutdown(WAIT).is_complete(), "{:?}", guard.stats());
    let got = fake.records();
    assert_eq!(got.len(), 2_000);
    assert_eq!(fake.errors(), Vec::<String>::new());
}

#[test]
fn loki_drops_are_counted_never_silent() {
    let fake = FakeLoki::start();
    fake.set_stalled(true);
    let (layer, guard) = loki(&fake).queue_records(100).timeout(Duration::from_millis(300)).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..1_000 {
            tracing::info!(i, "record {i}");
        }
    });
    let s = stats(&guard, "http");
    assert!(s.dropped >= 800, "{s}");
    assert_eq!(s.accepted + s.dropped, 1_000, "every record is accepted or counted as dropped: {s}");
    fake.set_stalled(false);
    let _ = guard.shutdown(Duration::from_secs(5));
}
