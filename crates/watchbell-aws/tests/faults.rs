//! The three layers against an AWS-shaped loopback fake that answers what moto does not give on
//! demand: partial batch failures, throttling, 5xx, stalls, and every hostile-peer mode. Nothing
//! within capacity is lost, and only what failed is sent again.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{quick, rec, stats, WAIT};
use watchbell_aws::{AwsBuilder, CloudWatchLogsLayer, Credentials, SnsLayer, SqsLayer};
use watchbell_core::{Level, Retry, SinkOptions, Value};
use watchbell_test::aws::FakeAws;
use watchbell_test::hostile::Hostile;
use watchbell_test::http::Reply;

fn at(b: AwsBuilder, fake: &FakeAws) -> AwsBuilder {
    quick(b.endpoint_url(fake.url()).region("eu-west-1").credentials(Credentials::new("AKIDFAKE", "fake-secret")))
}

fn numbered(n: u64) -> Vec<watchbell_core::Record> {
    (0..n)
        .map(|i| {
            let mut r = rec(Level::ERROR, &format!("record {i}"));
            r.fields.set("i", Value::U64(i));
            r
        })
        .collect()
}

#[test]
fn sqs_partial_batch_failure_resends_only_the_failed_entries() {
    let fake = FakeAws::start();
    // The first request: entries 2 and 5 fail for a reason worth retrying, entry 7 for good.
    fake.fail_entries_next(&["2", "5"], "InternalError", false);
    let (h, guard) = at(SqsLayer::builder(fake.queue_url("q")), &fake).build_handler().unwrap();
    h.handle_batch(watchbell_core::Batch::new(watchbell_core::BatchReason::Flush, numbered(10)));
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    let requests = fake.sqs_requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].len(), 10);
    assert_eq!(requests[1].len(), 2, "only the failed entries are sent again: {requests:?}");
    let body_i = |e: &serde_json::Value| {
        serde_json::from_str::<serde_json::Value>(e["MessageBody"].as_str().unwrap()).unwrap()["fields"]["i"]
            .as_u64()
            .unwrap()
    };
    let accepted = fake.sqs_accepted();
    assert_eq!(accepted[8..].iter().map(body_i).collect::<Vec<_>>(), [2, 5], "the resent entries are records 2 and 5");
    let mut got: Vec<u64> = fake
        .sqs_accepted()
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(e["MessageBody"].as_str().unwrap()).unwrap()["fields"]["i"]
                .as_u64()
                .unwrap()
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..10).collect::<Vec<_>>(), "each record exactly once");
    assert_eq!(stats(&guard).delivered, 10);

    // An entry refused for good (the sender's fault) is counted and never sent again.
    fake.fail_entries_next(&["1"], "InvalidMessageContents", true);
    h.handle_batch(watchbell_core::Batch::new(watchbell_core::BatchReason::Flush, numbered(3)));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(fake.sqs_requests().len(), 3, "{:?}", fake.sqs_requests());
    let items = common::items(&guard).expect("the refused entry is counted");
    assert_eq!(items.failed, 1);
    assert!(items.last_error.unwrap().contains("InvalidMessageContents"));
    assert!(fake.errors().is_empty(), "{:?}", fake.errors());
}

#[test]
fn sqs_requests_stay_within_ten_entries_and_256_kib() {
    let fake = FakeAws::start();
    let (h, guard) = at(SqsLayer::builder(fake.queue_url("q")), &fake).build_handler().unwrap();
    let mut batch = numbered(25);
    for r in batch.iter_mut().step_by(4) {
        r.message = ("x".repeat(100_000)).into();
    }
    h.handle_batch(watchbell_core::Batch::new(watchbell_core::BatchReason::Flush, batch));
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    assert!(fake.errors().is_empty(), "{:?}", fake.errors());
    assert_eq!(fake.sqs_accepted().len(), 25);
    assert!(fake.sqs_requests().iter().all(|r| r.len() <= 10), "{:?}", fake.sqs_requests());
}

/// Throttling (400 `ThrottlingException`), `ServiceUnavailable` and plain 5xx answers are
/// retried with backoff; every record arrives exactly once, for each layer.
#[test]
fn throttling_and_5xx_are_retried_and_nothing_is_lost() {
    let throttled = || {
        Reply::json(
            400,
            r#"{"__type":"com.amazonaws.coral.availability#ThrottlingException","message":"Rate exceeded"}"#,
        )
    };
    let unavailable = || Reply::json(503, r#"{"__type":"ServiceUnavailableException","message":"try later"}"#);
    let sns_throttled = || {
        Reply::status(400).header("Content-Type", "text/xml").body(
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
        )
    };

    let fake = FakeAws::start();
    fake.http().push(throttled());
    fake.http().push(unavailable());
    fake.http().push(Reply::status(500));
    let (h, guard) = at(SqsLayer::builder(fake.queue_url("q")), &fake).build_handler().unwrap();
    h.handle_batch(watchbell_core::Batch::new(watchbell_core::BatchReason::Flush, numbered(7)));
    assert!(guard.flush(WAIT).is_complete());
    let s = stats(&guard);
    assert_eq!((s.delivered, s.failed, s.retried), (7, 0, 3), "{s}");
    assert_eq!(fake.sqs_accepted().len(), 7);

    let fake = FakeAws::start();
    fake.create_log_stream("g", "s");
    fake.http().push(throttled());
    fake.http().push(unavailable());
    let (h, guard) = at(CloudWatchLogsLayer::builder("g", "s"), &fake).build_handler().unwrap();
    h.handle_batch(watchbell_core::Batch::new(watchbell_core::BatchReason::Flush, numbered(7)));
    assert!(guard.flush(WAIT).is_complete());
    let s = stats(&guard);
    assert_eq!((s.delivered, s.failed, s.retried), (7, 0, 2), "{s}");
    assert_eq!(fake.log_events().len(), 7);

    let fake = FakeAws::start();
    fake.http().push(sns_throttled());
    fake.http().push(Reply::status(502));
    let (h, guard) = at(SnsLayer::builder("arn:aws:sns:eu-west-1:123456789012:alerts"), &fake).build_handler().unwrap();
    h.handle(rec(Level::ERROR, "one alert"));
    assert!(guard.flush(WAIT).is_complete());
    let s = stats(&guard);
    assert_eq!((s.delivered, s.failed, s.retried), (1, 0, 2), "{s}");
    assert_eq!(fake.sns_published().len(), 1);
    assert!(fake.errors().is_empty(), "{:?}", fake.errors());
}

#[test]
fn cloudwatch_calls_follow_the_service_rules_and_create_the_stream_once() {
    let fake = FakeAws::start();
    let (h, guard) = at(CloudWatchLogsLayer::builder("/app/web", "i-1"), &fake).build_handler().unwrap();
    let now = SystemTime::now();
    // 12,000 events over 30 hours, shuffled, some large: more than one call by count, bytes and span.
    let mut batch = Vec::new();
    for i in 0..12_000u64 {
        let mut r = rec(Level::INFO, &format!("event {i}"));
        r.time = now - Duration::from_secs((i * 7_919) % (30 * 3600));
        if i % 1_000 == 0 {
            r.message = ("y".repeat(200_000)).into();
        }
        batch.push(r);
    }
    // One too far in the future: counted, not sent.
    let mut ahead = rec(Level::INFO, "from the future");
    ahead.time = now + Duration::from_secs(3 * 3600);
    batch.push(ahead);
    h.handle_batch(watchbell_core::Batch::new(watchbell_core::BatchReason::Flush, batch));
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    assert!(fake.errors().is_empty(), "{:?}", fake.errors());
    assert_eq!(fake.log_events().len(), 12_000);
    assert_eq!(fake.creates(), 2, "CreateLogGroup and CreateLogStream once each");
    assert_eq!(common::items(&guard).map(|s| s.failed), Some(1));
}

#[test]
fn a_stalled_peer_costs_a_flush_no_more_than_its_deadline() {
    let fake = FakeAws::start();
    fake.http().set_default(Reply::stall());
    let (h, guard) =
        at(SqsLayer::builder(fake.queue_url("q")), &fake).timeout(Duration::from_millis(300)).build_handler().unwrap();
    let start = Instant::now();
    h.handle(rec(Level::ERROR, "into a stalled peer"));
    let flushed = guard.flush(Duration::from_secs(2));
    assert!(!flushed.is_complete());
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
}

/// Every layer against every hostile-peer mode: the worker survives, the outcome is counted,
/// and the next record is delivered.
#[test]
fn every_layer_survives_every_hostile_peer_mode() {
    fn run(name: &str, b: AwsBuilder, fake: &FakeAws, accepted: &dyn Fn() -> usize) {
        let fast = Retry {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(100),
            max_server_delay: Duration::from_millis(100),
            ..Retry::default()
        };
        let (h, guard) = at(b, fake).retry(fast).timeout(Duration::from_millis(500)).build_handler().unwrap();
        for &mode in Hostile::ALL {
            let before = (accepted(), stats(&guard));
            fake.http().push(mode.reply());
            h.handle(rec(Level::ERROR, &format!("first {}", mode.name())));
            assert!(guard.flush(WAIT).is_complete(), "{name} / {}", mode.name());
            h.handle(rec(Level::ERROR, &format!("next {}", mode.name())));
            assert!(guard.flush(WAIT).is_complete(), "{name} / {}", mode.name());
            let s = stats(&guard);
            assert!(accepted() > before.0, "{name} / {}: the next record was not delivered: {s}", mode.name());
            assert_eq!(s.panicked, 0);
            let counted = (s.delivered + s.failed) - (before.1.delivered + before.1.failed);
            assert_eq!(counted, 2, "{name} / {}: {s}", mode.name());
            let shown = format!("{s} {:?}", guard.stats());
            assert!(!shown.contains("fake-secret"), "{shown}");
        }
    }
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let f = FakeAws::start();
            run("sqs", SqsLayer::builder(f.queue_url("q")), &f, &|| f.sqs_accepted().len());
        });
        scope.spawn(|| {
            let f = FakeAws::start();
            f.create_log_stream("g", "s");
            run("cloudwatch-logs", CloudWatchLogsLayer::builder("g", "s"), &f, &|| f.log_events().len());
        });
        scope.spawn(|| {
            let f = FakeAws::start();
            run("sns", SnsLayer::builder("arn:aws:sns:eu-west-1:123456789012:t"), &f, &|| f.sns_published().len());
        });
    });
}
