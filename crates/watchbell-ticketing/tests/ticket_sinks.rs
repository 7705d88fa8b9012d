//! Outside ticket systems, the store hook and a schema managed elsewhere, on SQLite and on
//! PostgreSQL (`WATCHBELL_TEST_POSTGRES_URL`, or `.ci/postgres.sh`).
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tracing_subscriber::prelude::*;
use watchbell_test::issues::FakeIssues;
use watchbell_ticketing::github::GitHubIssues;
use watchbell_ticketing::{Target, TicketChange, TicketEvent, TicketQuery, TicketSink, TicketStore};

const WAIT: Duration = Duration::from_secs(20);

fn payment_failed(order: u64) {
    tracing::error!(order, card_number = "4111 1111 1111 1111", "payment failed for card 4111 1111 1111 1111");
}

/// Records every event with the name of the thread it ran on.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(TicketChange, u64, String)>>>);

impl TicketSink for Recorder {
    fn ticket(&mut self, event: &TicketEvent) -> Result<(), String> {
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        self.0.lock().unwrap().push((event.change, event.occurrence_count, thread));
        Ok(())
    }
}

/// New ticket → one issue; more occurrences → nothing more; solved then seen again → the
/// issue (closed by a person meanwhile) is reopened with a comment.
fn issue_lifecycle(url: &str, prefix: &str) {
    let tracker = FakeIssues::start("acme/billing");
    let issues = || {
        GitHubIssues::new(&tracker.api_base(), "acme/billing", tracker.token()).unwrap().labels(["bug", "watchbell"])
    };
    let recorder = Recorder::default();
    let (layer, guard) =
        builder(url, prefix).app_id("billing").ticket_sink(issues()).ticket_sink(recorder.clone()).build().unwrap();
    let caller = std::thread::current().name().unwrap_or("").to_owned();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for order in 0..3 {
            payment_failed(order);
        }
        assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
        let opened = tracker.issues();
        assert_eq!(opened.len(), 1, "one issue for one new ticket: {opened:?}");
        assert!(opened[0].title.starts_with("[billing] ERROR: payment failed"), "{opened:?}");
        assert_eq!(opened[0].labels, ["bug", "watchbell"]);
        let mut store = TicketStore::open_with(url, prefix, Duration::from_secs(5)).unwrap();
        let ticket = &store.list_tickets(&TicketQuery::default().app("billing")).unwrap()[0];
        assert!(opened[0].body.contains(&ticket.fingerprint), "{}", opened[0].body);

        // Solved here, closed there; a new occurrence reopens both.
        assert!(store.solve(ticket.id).unwrap());
        tracker.close(1);
        payment_failed(3);
        payment_failed(4);
        assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    });
    let after = tracker.issues();
    assert_eq!(after.len(), 1, "the same issue, reopened: {after:?}");
    assert_eq!(after[0].state, "open");
    assert_eq!(after[0].comments.len(), 1, "{after:?}");
    assert!(after[0].comments[0].contains("Reopened"), "{after:?}");
    let seen = recorder.0.lock().unwrap().clone();
    // One event each: the creation (with as many occurrences as its batch held) and the
    // reopening (the first write after the solve, its batch's count).
    let changes: Vec<_> = seen.iter().map(|(c, n, _)| (*c, *n)).collect();
    assert_eq!(changes.len(), 2, "{seen:?}");
    assert!(changes[0].0 == TicketChange::New && (1..=3).contains(&changes[0].1), "{seen:?}");
    assert!(changes[1].0 == TicketChange::Reopened && (4..=5).contains(&changes[1].1), "{seen:?}");
    for (_, _, thread) in &seen {
        assert_eq!(thread, "watchbell-ticketing-sink", "never the caller's thread ({caller:?})");
    }
    let stats = guard.stats();
    let sinks = stats.iter().find(|s| s.name.starts_with("ticketing-sink:")).expect("the sinks' stats");
    assert_eq!((sinks.delivered, sinks.failed, sinks.dropped), (4, 0, 0), "{sinks:?}");
    assert!(guard.shutdown(WAIT).is_complete());
}

#[test]
fn a_new_ticket_opens_an_issue_and_a_reopened_one_reopens_it_on_sqlite() {
    issue_lifecycle(&sqlite_url("issues"), "watchbell_");
}

#[test]
fn a_new_ticket_opens_an_issue_and_a_reopened_one_reopens_it_on_postgres() {
    issue_lifecycle(&postgres_url(), &unique_prefix("issues"));
}

#[test]
fn a_failing_tracker_is_retried_then_counted_and_never_stops_the_writes() {
    let url = sqlite_url("issues-fail");
    let tracker = FakeIssues::start("acme/billing");
    tracker.fail_next(1, 502, "Server Error");
    let (layer, guard) = builder(&url, "watchbell_")
        .ticket_sink(GitHubIssues::new(&tracker.api_base(), "acme/billing", tracker.token()).unwrap())
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || payment_failed(1));
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    assert_eq!(tracker.issues().len(), 1, "opened on the second attempt");
    let stats = guard.stats();
    let sinks = stats.iter().find(|s| s.name.starts_with("ticketing-sink:")).unwrap();
    assert_eq!((sinks.delivered, sinks.retried, sinks.failed), (1, 1, 0), "{sinks:?}");

    drop(guard);
}

#[test]
fn a_tracker_that_refuses_for_good_is_counted_as_failed_without_the_token() {
    let url = sqlite_url("issues-refused");
    let tracker = FakeIssues::start("acme/billing");
    tracker.fail_next(3, 401, "Bad credentials");
    let (layer, guard) = builder(&url, "watchbell_")
        .ticket_sink(GitHubIssues::new(&tracker.api_base(), "acme/billing", tracker.token()).unwrap())
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || payment_failed(1));
    assert!(guard.shutdown(WAIT).is_complete(), "{:?}", guard.stats());
    let stats = guard.stats();
    let sinks = stats.iter().find(|s| s.name.starts_with("ticketing-sink:")).unwrap();
    assert_eq!((sinks.delivered, sinks.retried, sinks.failed), (0, 2, 1), "{sinks:?}");
    let error = sinks.last_error.clone().unwrap_or_default();
    assert!(error.contains("401") && error.contains("Bad credentials"), "{error}");
    assert!(!error.contains(tracker.token()), "{error}");
    // The ticket itself was written: the outside system does not hold the database back.
    let mut store = TicketStore::open(&url).unwrap();
    assert_eq!(store.count_tickets(&TicketQuery::default()).unwrap(), 1);
    assert!(tracker.issues().is_empty());
}

/// The hook removes the card number from what is stored: the occurrence's data, the ticket's
/// sample message and what the ticket sinks get; tickets still group by callsite.
fn redaction(url: &str, prefix: &str) {
    let tracker = FakeIssues::start("acme/billing");
    let (layer, guard) = builder(url, prefix)
        .store_record(|r| {
            r.fields.remove("card_number");
            r.message = (r.message.replace("4111 1111 1111 1111", "[card]")).into();
        })
        .ticket_sink(GitHubIssues::new(&tracker.api_base(), "acme/billing", tracker.token()).unwrap())
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        payment_failed(1);
        payment_failed(2);
    });
    assert!(guard.shutdown(WAIT).is_complete(), "{:?}", guard.stats());
    let mut store = TicketStore::open_with(url, prefix, Duration::from_secs(5)).unwrap();
    let tickets = store.list_tickets(&TicketQuery::default()).unwrap();
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    assert_eq!(tickets[0].occurrence_count, 2);
    assert_eq!(tickets[0].message, "payment failed for card [card]");
    for o in store.occurrences(tickets[0].id, 10, 0).unwrap() {
        assert!(!o.data.contains("4111"), "stored: {}", o.data);
        let r = o.record().unwrap();
        assert!(r.fields.get("card_number").is_none() && r.fields.get("order").is_some(), "{r:?}");
    }
    let issues = tracker.issues();
    assert_eq!(issues.len(), 1);
    assert!(!issues[0].title.contains("4111") && !issues[0].body.contains("4111"), "{issues:?}");
}

#[test]
fn the_store_hook_chooses_what_is_stored_on_sqlite() {
    redaction(&sqlite_url("redact"), "watchbell_");
}

#[test]
fn the_store_hook_chooses_what_is_stored_on_postgres() {
    redaction(&postgres_url(), &unique_prefix("redact"));
}

#[test]
fn a_panicking_store_hook_stores_no_record_data() {
    let url = sqlite_url("redact-panic");
    let (layer, guard) = builder(&url, "watchbell_").store_record(|_| panic!("bad hook")).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || payment_failed(1));
    assert!(guard.shutdown(WAIT).is_complete(), "{:?}", guard.stats());
    let mut store = TicketStore::open(&url).unwrap();
    let t = &store.list_tickets(&TicketQuery::default()).unwrap()[0];
    assert!(!t.message.contains("4111"), "{t:?}");
    let o = &store.occurrences(t.id, 1, 0).unwrap()[0];
    assert!(!o.data.contains("4111"), "{}", o.data);
}

/// With `auto_create_tables(false)` nothing is created; the error names the missing table and
/// is counted; once the schema exists (made elsewhere), the same settings write.
fn managed_schema(url: &str, prefix: &str, sqlite_file: Option<&std::path::Path>) {
    let target = Target::parse(url).unwrap();
    let e = TicketStore::connect_with(&target, prefix, Duration::from_secs(5), false).unwrap_err();
    assert!(e.message().contains("auto_create_tables is off"), "{e}");
    if let Some(file) = sqlite_file {
        assert!(!file.exists(), "no SQLite file created");
        // A file whose schema lacks these tables: the error names the table.
        drop(TicketStore::open_with(url, "other_", Duration::from_secs(5)).unwrap());
        let e = TicketStore::connect_with(&target, prefix, Duration::from_secs(5), false).unwrap_err();
        assert!(e.message().contains(&format!("{prefix}tickets")), "names the table: {e}");
        std::fs::remove_file(file).unwrap();
        let _ = std::fs::remove_file(file.with_extension("db-wal"));
        let _ = std::fs::remove_file(file.with_extension("db-shm"));
    } else {
        assert!(e.message().contains(&format!("{prefix}tickets")), "names the table: {e}");
    }

    let (layer, guard) = builder(url, prefix).auto_create_tables(false).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || payment_failed(1));
    let flushed = guard.flush(Duration::from_secs(2));
    assert!(!flushed.is_complete(), "nothing can be written: {flushed:?}");
    let st = &guard.stats()[0];
    assert!(st.retried >= 1, "counted: {st:?}");
    assert!(st.last_error.as_deref().unwrap_or("").contains("auto_create_tables is off"), "{st:?}");
    if let Some(file) = sqlite_file {
        assert!(!file.exists(), "no SQLite file created");
    }
    let _ = guard.shutdown(Duration::from_millis(200));

    // The schema manager creates the tables; the writer then writes without creating anything.
    let mut store = TicketStore::open_with(url, prefix, Duration::from_secs(5)).unwrap();
    let (layer, guard) = builder(url, prefix).auto_create_tables(false).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || payment_failed(2));
    assert!(guard.shutdown(WAIT).is_complete(), "{:?}", guard.stats());
    let tickets = store.list_tickets(&TicketQuery::default()).unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].occurrence_count, 1);
}

#[test]
fn auto_create_tables_off_creates_nothing_on_sqlite() {
    let dir = temp_dir("managed");
    let file = dir.join("tickets.db");
    managed_schema(&format!("sqlite://{}", file.display()), "watchbell_", Some(&file));
}

#[test]
fn auto_create_tables_off_creates_nothing_on_postgres() {
    managed_schema(&postgres_url(), &unique_prefix("managed"), None);
}
