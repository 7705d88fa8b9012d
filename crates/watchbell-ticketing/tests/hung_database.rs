//! A PostgreSQL that accepts connections and never answers (a hung server, a proxy in front of
//! a dead one): the delivery's worker is not held — each write is given up after its wait,
//! retried on a fresh connection and counted — and the thread that logs never waits.

use std::time::{Duration, Instant};

use watchbell_core::{Level, Record, Retry, SinkOptions};
use watchbell_test::hostile::StalledTls;
use watchbell_ticketing::TicketingLayer;

#[test]
fn a_database_that_never_answers_is_given_up_and_counted_not_waited_for_ever() {
    let silent = StalledTls::start();
    let url = format!("postgres://tickets:pw@{}/tickets", silent.addr());
    let (h, guard) = TicketingLayer::builder(url)
        .timeout(Duration::from_millis(300))
        .retry(Retry { initial: Duration::from_millis(20), max_attempts: 2, ..Retry::default() })
        .build_handler()
        .unwrap();
    let started = Instant::now();
    h.handle(Record::new(Level::ERROR, "app", "while the database hangs"));
    assert!(started.elapsed() < Duration::from_millis(100), "the caller waited");
    // Two attempts of at most 3 s each (the write wait: six times the timeout, at least 3 s).
    assert!(guard.flush(Duration::from_secs(20)).is_complete(), "{:?}", guard.stats());
    assert!(started.elapsed() < Duration::from_secs(12), "{:?}", started.elapsed());
    let s = guard.stats().into_iter().find(|s| s.name == "ticketing").unwrap();
    assert_eq!((s.failed, s.retried, s.delivered, s.panicked), (1, 1, 0, 0), "{s}");
    assert!(s.last_error.as_deref().unwrap().contains("did not answer"), "{s}");
    // The worker is free: shutdown keeps its deadline.
    let t = Instant::now();
    let _ = guard.shutdown(Duration::from_millis(500));
    assert!(t.elapsed() < Duration::from_secs(2), "shutdown took {:?}", t.elapsed());
}
