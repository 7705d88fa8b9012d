//! Delivery behaviour against misbehaving collectors: outages, stalls, 413, `_bulk` item failures.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fast_retry, rec, seqs};
use serde_json::Value as J;
use tracing_subscriber::prelude::*;
use watchbell_core::{Batch, BatchReason, Handler, Record, SinkOptions};
use watchbell_http::{Encoding, HttpLayer};
use watchbell_test::collectors::{FakeElasticsearch, FakeNdjson};

fn send(h: &Arc<dyn Handler>, range: std::ops::Range<u64>) {
    h.handle_batch(Batch::new(BatchReason::Single, range.map(rec).collect()));
}

#[test]
fn ten_second_outage_then_recovery_delivers_everything_in_order() {
    let fake = FakeNdjson::start();
    let (h, guard) = HttpLayer::builder(fake.url())
        .retry(fast_retry(Duration::from_millis(500)))
        .batch_wait(Duration::from_millis(50))
        .batch_records(50)
        .queue_records(100_000)
        .build_handler()
        .unwrap();
    for i in 0..100 {
        h.handle(rec(i));
    }
    assert!(guard.flush(Duration::from_secs(10)).is_complete());
    assert_eq!(fake.records().len(), 100);

    // 5 s of refused connections, then 5 s of 503.
    fake.set_refusing(true);
    let start = Instant::now();
    let before = fake.http().request_count();
    let mut i = 100;
    while start.elapsed() < Duration::from_secs(10) {
        if start.elapsed() >= Duration::from_secs(5) {
            fake.set_refusing(false);
            fake.set_down(true);
        }
        for _ in 0..20 {
            h.handle(rec(i));
            i += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(fake.http().request_count() > before + 3, "the sink kept trying during the outage");
    assert_eq!(fake.records().len(), 100, "nothing accepted during the outage");
    fake.set_down(false);
    assert!(guard.flush(Duration::from_secs(20)).is_complete());
    let got = seqs(&fake.records());
    assert_eq!(got, (0..i).collect::<Vec<_>>(), "every record, once, in order");
    let s = &guard.stats()[0];
    assert_eq!((s.dropped, s.failed), (0, 0), "{s}");
    assert!(s.retried > 0, "{s}");
}

#[test]
fn a_stalled_collector_never_blocks_the_caller() {
    let fake = FakeNdjson::start();
    fake.set_stalled(true);
    let (layer, guard) = HttpLayer::builder(fake.url())
        .timeout(Duration::from_secs(1))
        .retry(fast_retry(Duration::from_millis(500)))
        .batch_wait(Duration::ZERO)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let n = 5_000u64;
    let start = Instant::now();
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..n {
            tracing::info!(seq = i, "event");
        }
    });
    let took = start.elapsed();
    // A generous bound that only catches a caller waiting on the network (each request stalls
    // for the 1 s timeout).
    assert!(took < Duration::from_secs(5), "the caller's loop took {took:?}");
    assert!(!fake.http().wait_for_requests(1, Duration::from_secs(5)).is_empty(), "a request was stalled");
    assert!(fake.records().is_empty());
    fake.set_stalled(false);
    assert!(guard.flush(Duration::from_secs(20)).is_complete());
    let got = seqs(&fake.records());
    assert_eq!(got, (0..n).collect::<Vec<_>>());
}

#[test]
fn too_large_splits_the_batch_in_halves() {
    let fake = FakeNdjson::start();
    let (h, guard) = HttpLayer::builder(fake.url())
        .no_gzip()
        .retry(fast_retry(Duration::from_millis(500)))
        .batch_records(1000)
        .build_handler()
        .unwrap();
    // One record is ~300 bytes: 100 records do not fit in 8 KiB, 25 do.
    fake.set_max_body(Some(8 * 1024));
    let mut records: Vec<Record> = (0..100).map(rec).collect();
    // Record 60 alone is over the limit: given up on and counted, the others delivered.
    records[60].message = ("x".repeat(10_000)).into();
    h.handle_batch(Batch::new(BatchReason::Single, records));
    assert!(guard.flush(Duration::from_secs(10)).is_complete());
    let got = seqs(&fake.records());
    let expected: Vec<u64> = (0..100).filter(|&i| i != 60).collect();
    assert_eq!(got, expected);
    let reqs = fake.http().requests();
    let big = reqs.iter().filter(|r| r.body.len() > 8 * 1024).count();
    assert!(big >= 2, "the whole batch and the single record were refused");
    assert_eq!(reqs[0].body_text().lines().count(), 100);
    assert_eq!(reqs[1].body_text().lines().count(), 50, "then the first half");
    let stats = guard.stats();
    let items = stats.iter().find(|s| s.name.ends_with("/items")).expect("item counters");
    assert_eq!(items.failed, 1);
    assert!(items.last_error.as_deref().unwrap_or("").contains("413"), "{items}");
}

#[test]
fn bulk_partial_failure_retries_only_the_failed_items() {
    let fake = FakeElasticsearch::start();
    let (h, guard) = HttpLayer::builder(fake.url())
        .encoding(Encoding::elastic_bulk("logs"))
        .no_gzip()
        .retry(fast_retry(Duration::from_millis(500)))
        .build_handler()
        .unwrap();
    // Items 1 (429) and 4 (503) are retryable, item 3 (400) is refused for good.
    fake.push_item_statuses(&[201, 429, 201, 400, 503, 201, 201, 201, 201, 201]);
    send(&h, 0..10);
    assert!(guard.flush(Duration::from_secs(10)).is_complete());
    let reqs = fake.http().requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let retried: Vec<u64> = reqs[1]
        .body_text()
        .lines()
        .skip(1)
        .step_by(2)
        .map(|l| serde_json::from_str::<J>(l).unwrap()["fields"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(retried, [1, 4], "only the retryable items are sent again");
    let mut got = seqs(&fake.records());
    assert_eq!(got.len(), 9, "each accepted item once: {got:?}");
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2, 4, 5, 6, 7, 8, 9]);
    let stats = guard.stats();
    let items = stats.iter().find(|s| s.name.ends_with("/items")).expect("item counters");
    assert_eq!(items.failed, 1, "the 400 item is counted");
    assert!(stats[0].retried >= 1);
    // Later batches go through normally.
    send(&h, 10..12);
    assert!(guard.flush(Duration::from_secs(10)).is_complete());
    assert_eq!(fake.records().len(), 11);
}

#[test]
fn a_permanent_refusal_is_not_retried() {
    let fake = FakeNdjson::start();
    let (h, guard) =
        HttpLayer::builder(fake.url()).retry(fast_retry(Duration::from_millis(500))).build_handler().unwrap();
    fake.http().push(watchbell_test::http::Reply::text(401, "bad credentials"));
    send(&h, 0..3);
    assert!(guard.flush(Duration::from_secs(10)).is_complete());
    assert_eq!(fake.http().request_count(), 1);
    let s = &guard.stats()[0];
    assert_eq!(s.failed, 3);
    assert!(s.last_error.as_deref().unwrap_or("").contains("401"), "{s}");
}

#[test]
fn batches_by_count_and_interval() {
    let fake = FakeNdjson::start();
    let (h, guard) = HttpLayer::builder(fake.url())
        .no_gzip()
        .batch_records(10)
        .batch_wait(Duration::from_millis(300))
        .build_handler()
        .unwrap();
    let start = Instant::now();
    h.handle(rec(0));
    let reqs = fake.http().wait_for_requests(1, Duration::from_secs(10));
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].received_at - start >= Duration::from_millis(300), "the first record waited for others");
    for i in 1..36 {
        h.handle(rec(i));
    }
    assert!(guard.flush(Duration::from_secs(10)).is_complete());
    let reqs = fake.http().requests();
    let sizes: Vec<usize> = reqs.iter().map(|r| r.body_text().lines().count()).collect();
    assert!(sizes.iter().all(|&n| n <= 10), "{sizes:?}");
    assert!(sizes[1..].iter().filter(|&&n| n == 10).count() >= 3, "full batches of 10: {sizes:?}");
    assert_eq!(seqs(&fake.records()), (0..36).collect::<Vec<_>>());
}
