//! The ticketing layer on SQLite.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use watchbell_core::{Level, Record, SinkOptions, Value};
use watchbell_ticketing::{TicketQuery, TicketingLayer};

#[test]
fn logbook_ticketing_test_translated() {
    logbook_scenario(&sqlite_url("logbook"), "watchbell_");
}

#[test]
fn query_api() {
    query_api_scenario(&sqlite_url("query"), "watchbell_");
}

fn same_site(user: &str) {
    tracing::error!(user, "login failed for {user}");
}

#[test]
fn same_text_with_other_arguments_is_one_ticket_and_two_sites_are_two() {
    let url = sqlite_url("grouping");
    with_layer(builder(&url, "watchbell_"), || {
        same_site("alice");
        same_site("bob");
        same_site("carol");
        tracing::error!("login failed for alice");
        tracing::error!("login failed for alice");
    });
    let mut s = open(&url, "watchbell_");
    let mut counts: Vec<u64> =
        s.list_tickets(&TicketQuery::default()).unwrap().iter().map(|t| t.occurrence_count).collect();
    counts.sort();
    assert_eq!(counts, vec![1, 1, 3], "one callsite with three arguments; the same text at two more sites");
    let sample = s.list_tickets(&TicketQuery::default().order(watchbell_ticketing::Order::Count)).unwrap();
    assert_eq!(sample[0].message, "login failed for carol", "the sample message is the newest");
}

#[test]
fn user_fingerprint_field_overrides_the_callsite() {
    let url = sqlite_url("userfp");
    with_layer(builder(&url, "watchbell_"), || {
        tracing::error!(fingerprint = "gateway-down", "timeout talking to the gateway");
        tracing::warn!(fingerprint = "gateway-down", code = 502, "bad gateway");
        tracing::error!(fingerprint = "db-down", "no database");
        tracing::error!("timeout talking to the gateway");
    });
    let mut s = open(&url, "watchbell_");
    let tickets = s.list_tickets(&TicketQuery::default().order(watchbell_ticketing::Order::Count)).unwrap();
    let counts: Vec<u64> = tickets.iter().map(|t| t.occurrence_count).collect();
    assert_eq!(counts, vec![2, 1, 1]);
    assert_eq!(tickets[0].message, "bad gateway");

    // Turned off, the field is just a field.
    let url = sqlite_url("userfp-off");
    with_layer(builder(&url, "watchbell_").fingerprint_field(None), || {
        tracing::error!(fingerprint = "gateway-down", "a");
        tracing::error!(fingerprint = "gateway-down", "b");
    });
    assert_eq!(open(&url, "watchbell_").count_tickets(&TicketQuery::default()).unwrap(), 2);
}

fn retained(i: u64) {
    tracing::error!(i, "retained");
}

#[test]
fn retention_is_bounded_while_counts_stay_exact() {
    let url = sqlite_url("retention");
    with_layer(builder(&url, "watchbell_").retention(5).batch_records(64), || {
        for i in 0..1000 {
            retained(i);
        }
    });
    let mut s = open(&url, "watchbell_");
    let t = &s.list_tickets(&TicketQuery::default()).unwrap()[0];
    assert_eq!(t.occurrence_count, 1000);
    let occ = s.occurrences(t.id, 100, 0).unwrap();
    let is: Vec<u64> = occ.iter().map(|o| o.record().unwrap().fields.get("i").unwrap().as_u64().unwrap()).collect();
    assert_eq!(is, vec![999, 998, 997, 996, 995], "the newest five");
    assert_eq!(s.stats(None).unwrap().stored_occurrences, 5);
}

#[test]
fn suppressed_counts_from_a_rate_limit_are_counted() {
    let url = sqlite_url("ratelimit");
    with_layer(builder(&url, "watchbell_").rate_limit(2, Duration::from_secs(3600)), || {
        for i in 0..10 {
            retained(i);
        }
    });
    let mut s = open(&url, "watchbell_");
    let t = &s.list_tickets(&TicketQuery::default()).unwrap()[0];
    assert_eq!(t.occurrence_count, 10, "2 passed, 8 suppressed and reported at shutdown");
}

#[test]
fn build_handler_takes_records_from_other_handlers() {
    let url = sqlite_url("handler");
    let (handler, guard) = TicketingLayer::builder(&url).app_id("h").build_handler().unwrap();
    for i in 0..3 {
        let mut r = Record::new(Level::ERROR, "app::db", format!("query {i} failed"));
        r.file = Some("src/db.rs".into());
        r.line = Some(7);
        r.fields.set("i", Value::U64(i));
        handler.handle(r);
    }
    assert!(guard.shutdown(Duration::from_secs(30)).is_complete());
    let mut s = open(&url, "watchbell_");
    let t = s.list_tickets(&TicketQuery::default()).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].occurrence_count, 3);
    assert_eq!(t[0].location.as_deref(), Some("src/db.rs:7"));
    assert_eq!(t[0].app_id, "h");
}

#[test]
fn levels_below_the_layer_level_are_not_tickets() {
    let url = sqlite_url("levels");
    with_layer(builder(&url, "watchbell_"), || {
        tracing::info!("not a ticket");
        tracing::debug!("not a ticket");
        tracing::warn!("a ticket");
    });
    let mut s = open(&url, "watchbell_");
    assert_eq!(s.count_tickets(&TicketQuery::default()).unwrap(), 1);
}

#[test]
fn schema_is_versioned_and_reopening_keeps_data() {
    let url = sqlite_url("schema");
    with_layer(builder(&url, "wb_"), || tracing::error!("x"));
    let mut s = open(&url, "wb_");
    assert_eq!(s.schema_version().unwrap(), 2);
    drop(s);
    with_layer(builder(&url, "wb_"), || tracing::error!("x"));
    let mut s = open(&url, "wb_");
    assert_eq!(s.schema_version().unwrap(), 2);
    assert_eq!(s.count_tickets(&TicketQuery::default()).unwrap(), 2);
    // Another prefix in the same file is another set of tables.
    assert_eq!(open(&url, "other_").count_tickets(&TicketQuery::default()).unwrap(), 0);
}

#[test]
fn a_locked_database_is_retried_without_losing_occurrences() {
    let url = sqlite_url("locked");
    let path = url.strip_prefix("sqlite://").unwrap().to_owned();
    drop(open(&url, "watchbell_")); // create the schema
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (layer, guard) = builder(&url, "watchbell_").timeout(Duration::from_millis(100)).build().unwrap();
    let start = Instant::now();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..20 {
            retained(i);
        }
    });
    // The writer fails (busy beyond its 100 ms timeout) and retries while the lock is held.
    let deadline = Instant::now() + Duration::from_secs(20);
    while guard.stats().iter().map(|s| s.retried).sum::<u64>() < 2 {
        assert!(Instant::now() < deadline, "the writer should have retried: {:?}", guard.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert_eq!(guard.stats()[0].delivered, 0);
    locker.execute_batch("COMMIT").unwrap();
    drop(locker);
    assert!(guard.shutdown(Duration::from_secs(30)).is_complete());
    let stats = guard.stats();
    assert_eq!((stats[0].delivered, stats[0].failed, stats[0].dropped), (20, 0, 0), "{stats:?}");
    let mut s = open(&url, "watchbell_");
    assert_eq!(s.list_tickets(&TicketQuery::default()).unwrap()[0].occurrence_count, 20);
}

use tracing_subscriber::prelude::*;

const CHILD_DB: &str = "WATCHBELL_TICKETS_TEST_CHILD_DB";
const PER_PROCESS: u64 = 5_000;

/// Not a test on its own: the body of each child process of
/// `several_processes_write_one_file_with_exact_counts` (it does nothing without its variable).
#[test]
fn child_process_writer() {
    let Ok(url) = std::env::var(CHILD_DB) else { return };
    let guard = with_layer_guard(builder(&url, "watchbell_").retention(20), || {
        for i in 0..PER_PROCESS {
            ten_callsites(i);
        }
    });
    let st = &guard.stats()[0];
    assert_eq!((st.delivered, st.dropped, st.failed), (PER_PROCESS, 0, 0), "{st:?}");
}

#[test]
fn several_processes_write_one_file_with_exact_counts() {
    let url = sqlite_url("multiprocess");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&exe)
                .args(["child_process_writer", "--exact", "--test-threads=1", "--quiet"])
                .env(CHILD_DB, &url)
                .spawn()
                .expect("a child process")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a child writer failed");
    }
    assert_ten_exact(&url, "watchbell_", 4 * PER_PROCESS, 20);
}

fn build_err(b: watchbell_ticketing::TicketingBuilder) -> Result<(), watchbell_core::BuildError> {
    b.build_handler().map(|_| ())
}

#[test]
fn configuration_errors_are_clear_and_keep_secrets() {
    let e = build_err(TicketingLayer::builder("mysql://root:hunter2@db/x")).unwrap_err();
    assert_eq!(e.key, "url");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let e = build_err(TicketingLayer::builder("sqlite://")).unwrap_err();
    assert_eq!(e.key, "url");
    let e = build_err(TicketingLayer::builder("sqlite://x.db").table_prefix("x; DROP TABLE y")).unwrap_err();
    assert_eq!(e.key, "table_prefix");
    let e = build_err(TicketingLayer::builder("sqlite://x.db").app_id("")).unwrap_err();
    assert_eq!(e.key, "app_id");
    let e = build_err(TicketingLayer::builder("postgres://u:hunter2@db.example.com/x")).unwrap_err();
    assert_eq!(e.key, "url");
    assert!(e.message.contains("allow_plaintext_postgres"), "{e}");
    assert!(!e.to_string().contains("hunter2"));
    let b = TicketingLayer::builder("postgres://u:hunter2@db.example.com/x").allow_plaintext_postgres(true);
    assert!(!format!("{b:?}").contains("hunter2"), "{b:?}");
}
