//! A collector (or a proxy in front of it) that asks for absurd delays: `Retry-After` of
//! u64::MAX seconds, a date in the year 9999, negative and non-numeric values. The delivery and
//! the spool's replay survive each one, cap or ignore the delay, and deliver at the next good
//! answer.

mod common;

use std::time::{Duration, Instant};

use common::{fast_retry, rec, seqs};
use watchbell_core::{Retry, SinkOptions};
use watchbell_http::HttpLayer;
use watchbell_test::collectors::FakeNdjson;
use watchbell_test::http::Reply;

const HUGE: &str = "18446744073709551615";

fn capped_retry() -> Retry {
    Retry { max_server_delay: Duration::from_millis(100), ..fast_retry(Duration::from_millis(300)) }
}

#[test]
fn absurd_retry_after_values_are_capped_counted_and_survived() {
    let fake = FakeNdjson::start();
    fake.http().push(Reply::status(429).header("Retry-After", HUGE));
    fake.http().push(Reply::status(503).header("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT"));
    fake.http().push(Reply::status(503).header("Retry-After", "-1"));
    fake.http().push(Reply::status(429).header("Retry-After", "in a while"));
    let (h, guard) =
        HttpLayer::builder(fake.url()).retry(capped_retry()).batch_wait(Duration::ZERO).build_handler().unwrap();
    h.handle(rec(1));
    assert!(guard.flush(Duration::from_secs(20)).is_complete());
    assert_eq!(seqs(&fake.records()), [1]);
    let s = &guard.stats()[0];
    assert_eq!((s.delivered, s.retried, s.delays_capped, s.panicked), (1, 4, 2, 0), "{s}");
    // The worker is alive: the next record goes at once.
    h.handle(rec(2));
    assert!(guard.flush(Duration::from_secs(5)).is_complete());
    assert_eq!(seqs(&fake.records()), [1, 2]);
}

#[test]
fn the_spool_replay_survives_an_absurd_retry_after() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("watchbell-http-retry-after-{}-{nanos}", std::process::id()));
    let fake = FakeNdjson::start();
    fake.set_refusing(true);
    let (h, guard) = HttpLayer::builder(fake.url())
        .retry(capped_retry())
        .spool(&dir, 64 << 20)
        .spool_after(Duration::ZERO)
        .batch_wait(Duration::ZERO)
        .build_handler()
        .unwrap();
    for i in 0..50 {
        h.handle(rec(i));
    }
    let spooled =
        |g: &watchbell_core::Guard| g.stats().into_iter().find(|s| s.name.ends_with("/spool")).map_or(0, |s| s.queued);
    let deadline = Instant::now() + Duration::from_secs(10);
    while spooled(&guard) < 50 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(spooled(&guard), 50, "{:?}", guard.stats());
    // The replay meets the absurd answers first, then a working collector.
    fake.http().push(Reply::status(503).header("Retry-After", HUGE));
    fake.http().push(Reply::status(429).header("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT"));
    fake.set_refusing(false);
    assert!(guard.flush(Duration::from_secs(20)).is_complete(), "{:?}", guard.stats());
    assert_eq!(seqs(&fake.records()), (0..50).collect::<Vec<_>>());
    drop(guard);
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}
