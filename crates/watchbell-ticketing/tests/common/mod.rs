//! Helpers shared by the ticketing tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use watchbell_core::Retry;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "wb-tickets-{name}-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh SQLite URL for one test.
pub fn sqlite_url(name: &str) -> String {
    format!("sqlite://{}/tickets.db", temp_dir(name).display())
}

/// Quick retries for tests.
pub fn fast_retry() -> Retry {
    Retry {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        multiplier: 2.0,
        budget: Duration::from_secs(60),
        max_attempts: 0,
        ..Retry::default()
    }
}

/// A table prefix no other test (nor an earlier run) uses.
pub fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("t_{name}_{}_{}_{}_", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), nanos % 1_000_000_000)
}

/// The PostgreSQL URL for tests (see [`watchbell_test::postgres::url`]).
pub fn postgres_url() -> String {
    watchbell_test::postgres::url()
}

use tracing_subscriber::prelude::*;
use watchbell_core::{Guard, Level, SinkOptions};
use watchbell_ticketing::{Order, TicketQuery, TicketStore, TicketingBuilder, TicketingLayer};

/// A builder with quick retries and the given prefix.
pub fn builder(url: &str, prefix: &str) -> TicketingBuilder {
    TicketingLayer::builder(url).table_prefix(prefix).retry(fast_retry())
}

/// Runs `f` with a subscriber made of the layer built from `b`; shuts the writer down after.
pub fn with_layer(b: TicketingBuilder, f: impl FnOnce()) {
    let _guard = with_layer_guard(b, f);
}

/// [`with_layer`], returning the (shut down) guard for its stats.
pub fn with_layer_guard(b: TicketingBuilder, f: impl FnOnce()) -> Guard {
    let (layer, guard) = b.build().expect("a valid configuration");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    let flushed = guard.shutdown(Duration::from_secs(60));
    assert!(flushed.is_complete(), "every occurrence written: {flushed:?} {:?}", guard.stats());
    guard
}

pub fn open(url: &str, prefix: &str) -> TicketStore {
    TicketStore::open_with(url, prefix, Duration::from_secs(5)).expect("the store opens")
}

fn logbook_warning() {
    tracing::warn!("A warning");
}
fn logbook_info() {
    tracing::info!("An error");
}
fn logbook_error() {
    tracing::error!(error = "division by zero", "this is a ticket");
}

/// Logbook's ticketing test, translated: 5 × (warning, info) + 2 errors from one place each
/// → 3 tickets, ordered by last occurrence INFO (5), WARNING (5), ERROR (2); solve sets
/// solved; a later occurrence reopens it.
pub fn logbook_scenario(url: &str, prefix: &str) {
    with_layer(builder(url, prefix).app_id("logbook").level(Level::INFO), || {
        for x in 0..5 {
            logbook_warning();
            std::thread::sleep(Duration::from_millis(3));
            logbook_info();
            std::thread::sleep(Duration::from_millis(3));
            if x < 2 {
                logbook_error();
                std::thread::sleep(Duration::from_millis(3));
            }
        }
    });
    let mut store = open(url, prefix);
    assert_eq!(store.count_tickets(&TicketQuery::default()).unwrap(), 3);
    let tickets = store.list_tickets(&TicketQuery::default()).unwrap();
    let got: Vec<(Level, u64, &str)> =
        tickets.iter().map(|t| (t.level, t.occurrence_count, t.message.as_str())).collect();
    assert_eq!(
        got,
        vec![(Level::INFO, 5, "An error"), (Level::WARN, 5, "A warning"), (Level::ERROR, 2, "this is a ticket")]
    );
    let error = tickets[2].clone();
    assert!(error.location.as_deref().unwrap().contains("common/mod.rs:"), "{:?}", error.location);
    assert!(error.first_occurrence_time < error.last_occurrence_time);
    assert!(!error.solved);
    assert!(store.solve(error.id).unwrap());
    assert!(store.get_ticket(error.id).unwrap().unwrap().solved);
    assert_eq!(store.count_tickets(&TicketQuery::default().solved(true)).unwrap(), 1);

    // A later occurrence reopens it.
    with_layer(builder(url, prefix).app_id("logbook").level(Level::INFO), logbook_error);
    let reopened = store.get_ticket(error.id).unwrap().unwrap();
    assert!(!reopened.solved, "a new occurrence reopens a solved ticket");
    assert_eq!(reopened.occurrence_count, 3);
    assert!(reopened.last_occurrence_time > error.last_occurrence_time);
    assert_eq!(reopened.first_occurrence_time, error.first_occurrence_time);
    let first = store.list_tickets(&TicketQuery::default()).unwrap();
    assert_eq!(first[0].id, error.id, "now the most recently seen");
    // The stored occurrence is the whole record.
    let occ = store.occurrences(error.id, 10, 0).unwrap();
    assert_eq!(occ.len(), 3);
    let record = occ[0].record().unwrap();
    assert_eq!(record.message, "this is a ticket");
    assert_eq!(record.fields.get("error").and_then(|v| v.as_str()), Some("division by zero"));
}

fn query_warn(n: u32) {
    tracing::warn!(n, "disk almost full");
}
fn query_error(n: u32) {
    tracing::error!(n, "payment failed");
}
fn query_other_error(n: u32) {
    tracing::error!(n, "payment failed");
}

/// The query API: ordering, filters, paging, occurrences, solve/reopen/delete.
pub fn query_api_scenario(url: &str, prefix: &str) {
    // app "a": warn ×3 (first), error ×5, other error ×1 (last); app "b": error ×2.
    with_layer(builder(url, prefix).app_id("a"), || {
        for n in 0..3 {
            query_warn(n);
        }
        std::thread::sleep(Duration::from_millis(3));
        for n in 0..5 {
            query_error(n);
        }
        std::thread::sleep(Duration::from_millis(3));
        query_other_error(0);
    });
    with_layer(builder(url, prefix).app_id("b"), || {
        query_error(100);
        query_error(101);
    });
    let mut s = open(url, prefix);
    let all = TicketQuery::default();
    assert_eq!(s.count_tickets(&all).unwrap(), 4);
    assert_eq!(s.count_tickets(&all.clone().app("a")).unwrap(), 3);
    assert_eq!(s.count_tickets(&all.clone().app("a").level(Level::ERROR)).unwrap(), 2);
    assert_eq!(s.count_tickets(&all.clone().level(Level::WARN)).unwrap(), 1);

    let by_last = s.list_tickets(&all.clone().app("a")).unwrap();
    let counts: Vec<u64> = by_last.iter().map(|t| t.occurrence_count).collect();
    assert_eq!(counts, vec![1, 5, 3], "most recently seen first");
    let by_count = s.list_tickets(&all.clone().order(Order::Count)).unwrap();
    let counts: Vec<u64> = by_count.iter().map(|t| t.occurrence_count).collect();
    assert_eq!(counts, vec![5, 3, 2, 1]);
    let by_first = s.list_tickets(&all.clone().app("a").order(Order::FirstOccurrence)).unwrap();
    let counts: Vec<u64> = by_first.iter().map(|t| t.occurrence_count).collect();
    assert_eq!(counts, vec![1, 5, 3], "most recently opened first");
    // Same callsite in two apps: two tickets with the same fingerprint.
    let b = s.list_tickets(&all.clone().app("b")).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].fingerprint, by_last[1].fingerprint);
    assert_ne!(b[0].id, by_last[1].id);

    // Paging.
    let page1 = s.list_tickets(&all.clone().order(Order::Count).page(2, 0)).unwrap();
    let page2 = s.list_tickets(&all.clone().order(Order::Count).page(2, 2)).unwrap();
    let page3 = s.list_tickets(&all.clone().order(Order::Count).page(2, 4)).unwrap();
    let ids: Vec<i64> = page1.iter().chain(&page2).map(|t| t.id).collect();
    assert_eq!(ids, by_count.iter().map(|t| t.id).collect::<Vec<_>>());
    assert!(page3.is_empty());

    // Occurrences, newest first, paged.
    let five = by_last[1].id;
    let occ = s.occurrences(five, 2, 0).unwrap();
    let ns: Vec<u64> = occ.iter().map(|o| o.record().unwrap().fields.get("n").unwrap().as_u64().unwrap()).collect();
    assert_eq!(ns, vec![4, 3]);
    let occ = s.occurrences(five, 10, 3).unwrap();
    let ns: Vec<u64> = occ.iter().map(|o| o.record().unwrap().fields.get("n").unwrap().as_u64().unwrap()).collect();
    assert_eq!(ns, vec![1, 0]);
    assert!(occ.iter().all(|o| o.ticket_id == five && o.app_id == "a"));

    // Solve, filter, reopen.
    assert!(s.solve(five).unwrap());
    assert_eq!(s.count_tickets(&all.clone().solved(true)).unwrap(), 1);
    assert_eq!(s.list_tickets(&all.clone().solved(false)).unwrap().len(), 3);
    assert!(s.reopen(five).unwrap());
    assert_eq!(s.count_tickets(&all.clone().solved(true)).unwrap(), 0);
    assert!(!s.solve(999_999_999).unwrap(), "no such ticket");

    // Stats.
    let st = s.stats(None).unwrap();
    assert_eq!((st.tickets, st.open, st.solved, st.occurrences, st.stored_occurrences), (4, 4, 0, 11, 11));
    assert_eq!(st.by_level, vec![("ERROR".to_owned(), 3, 8), ("WARN".to_owned(), 1, 3)]);
    assert_eq!(st.by_app, vec![("a".to_owned(), 3, 9), ("b".to_owned(), 1, 2)]);

    // Delete, with its occurrences.
    assert!(s.delete(five).unwrap());
    assert!(s.get_ticket(five).unwrap().is_none());
    assert!(s.occurrences(five, 10, 0).unwrap().is_empty());
    assert_eq!(s.stats(None).unwrap().stored_occurrences, 6);
    assert!(!s.delete(five).unwrap());
    assert_eq!(s.count_tickets(&all).unwrap(), 3);
}

/// Feeds `n` records of 10 callsites through `handler` (several "instances" use this).
pub fn ten_callsites(i: u64) {
    match i % 10 {
        0 => tracing::error!(i, "site 0"),
        1 => tracing::error!(i, "site 1"),
        2 => tracing::error!(i, "site 2"),
        3 => tracing::error!(i, "site 3"),
        4 => tracing::error!(i, "site 4"),
        5 => tracing::error!(i, "site 5"),
        6 => tracing::error!(i, "site 6"),
        7 => tracing::error!(i, "site 7"),
        8 => tracing::error!(i, "site 8"),
        _ => tracing::error!(i, "site 9"),
    }
}

/// Asserts 10 tickets whose counts sum to `total`, each `total / 10`.
pub fn assert_ten_exact(url: &str, prefix: &str, total: u64, keep: u64) {
    let mut s = open(url, prefix);
    let tickets = s.list_tickets(&TicketQuery::default()).unwrap();
    assert_eq!(tickets.len(), 10, "{tickets:?}");
    let sum: u64 = tickets.iter().map(|t| t.occurrence_count).sum();
    assert_eq!(sum, total, "counts are exact");
    for t in &tickets {
        assert_eq!(t.occurrence_count, total / 10, "{t:?}");
        assert_eq!(s.occurrences(t.id, 1_000_000, 0).unwrap().len() as u64, keep.min(total / 10), "retention");
    }
}
