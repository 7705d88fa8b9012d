//! The journald layer against a native-protocol receiver (`FakeJournald`): the entry's fields,
//! binary-safe values, the sealed memfd for large entries, a journal that is missing, restarts
//! or stops reading.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use tracing_subscriber::prelude::*;
use watchbell_core::{Guard, Level, Record, Retry, SinkOptions};
use watchbell_journald::JournaldLayer;
use watchbell_test::journald::FakeJournald;

const WAIT: Duration = Duration::from_secs(20);

fn fast_retry() -> Retry {
    Retry { initial: Duration::from_millis(20), max: Duration::from_millis(200), ..Retry::default() }
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("watchbell-journald-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn an_event_becomes_an_entry_with_its_fields_and_spans() {
    let journal = FakeJournald::start();
    let (layer, guard) = JournaldLayer::builder()
        .socket(journal.path())
        .syslog_identifier("billing")
        .extra_field("deployment", "blue")
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let span = tracing::info_span!("request", id = 7);
        let _e = span.enter();
        tracing::error!(invoice = 42, user.id = "u-1", message_id = "m1", priority = 0, _pid = 1, "payment failed");
    });
    assert!(guard.flush(WAIT).is_complete());
    let entries = journal.wait_for_entries(1, WAIT);
    assert_eq!(journal.errors(), Vec::<String>::new());
    let e = &entries[0];
    for (name, want) in [
        ("MESSAGE", "payment failed"),
        ("PRIORITY", "3"),
        ("SYSLOG_IDENTIFIER", "billing"),
        ("TARGET", "journald"),
        ("INVOICE", "42"),
        ("USER_ID", "u-1"),
        ("MESSAGE_ID", "m1"),
        ("F_PRIORITY", "0"),
        ("F__PID", "1"),
        ("S0_NAME", "request"),
        ("S0_ID", "7"),
        ("DEPLOYMENT", "blue"),
    ] {
        assert_eq!(e.get(name), Some(want), "{name} in {e:?}");
    }
    assert_eq!(e.all("PRIORITY"), ["3"], "an event field cannot forge the priority");
    assert!(e.get("CODE_FILE").unwrap().ends_with("journald.rs"));
    assert!(e.get("CODE_LINE").unwrap().parse::<u32>().unwrap() > 0);
    assert!(!e.via_memfd);
}

#[test]
fn multiline_values_use_the_length_prefixed_form() {
    let journal = FakeJournald::start();
    let (handler, guard) = JournaldLayer::builder().socket(journal.path()).build_handler().unwrap();
    let mut r = Record::new(Level::WARN, "app", "first line\nsecond line\n\0binary tail");
    r.fields.set("sql", watchbell_core::Value::Str("SELECT 1\nFROM t".into()));
    handler.handle(r);
    assert!(guard.flush(WAIT).is_complete());
    let e = &journal.wait_for_entries(1, WAIT)[0];
    assert_eq!(journal.errors(), Vec::<String>::new());
    assert_eq!(e.fields[0], ("MESSAGE".to_owned(), b"first line\nsecond line\n\0binary tail".to_vec()));
    assert_eq!(e.get("SQL"), Some("SELECT 1\nFROM t"));
    assert_eq!(e.get("PRIORITY"), Some("4"));
}

#[test]
fn a_one_megabyte_entry_goes_through_a_sealed_memfd() {
    let journal = FakeJournald::start();
    let (handler, guard) = JournaldLayer::builder().socket(journal.path()).build_handler().unwrap();
    let big = "€".repeat(350_000); // 1.05 MB, more than a datagram takes
    handler.handle(Record::new(Level::ERROR, "app", big.clone()));
    handler.handle(Record::new(Level::ERROR, "app", "small after"));
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    let entries = journal.wait_for_entries(2, WAIT);
    assert_eq!(journal.errors(), Vec::<String>::new());
    assert!(entries[0].via_memfd && !entries[1].via_memfd);
    assert_eq!(entries[0].get("MESSAGE"), Some(big.as_str()));
    assert_eq!(entries[1].get("MESSAGE"), Some("small after"));
}

#[test]
fn a_missing_journal_is_retried_until_it_appears_then_restarts_are_survived() {
    let dir = temp_dir("restart");
    let path = dir.join("socket");
    let (handler, guard) = JournaldLayer::builder().socket(&path).retry(fast_retry()).build_handler().unwrap();
    handler.handle(Record::new(Level::ERROR, "app", "before journald started"));
    let retried = |g: &Guard| g.stats()[0].retried;
    let deadline = Instant::now() + WAIT;
    while retried(&guard) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(retried(&guard) >= 2, "{:?}", guard.stats());
    let journal = FakeJournald::start_at(&path);
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(journal.wait_for_entries(1, WAIT)[0].get("MESSAGE"), Some("before journald started"));

    // journald restarts: the connected socket is gone; the layer reconnects and loses nothing.
    drop(journal);
    for i in 0..5 {
        handler.handle(Record::new(Level::ERROR, "app", format!("during restart {i}")));
    }
    std::thread::sleep(Duration::from_millis(100));
    let journal = FakeJournald::start_at(&path);
    assert!(guard.flush(WAIT).is_complete());
    let got: Vec<String> =
        journal.wait_for_entries(5, WAIT).iter().map(|e| e.get("MESSAGE").unwrap().to_owned()).collect();
    assert_eq!(got, (0..5).map(|i| format!("during restart {i}")).collect::<Vec<_>>());
    let s = &guard.stats()[0];
    assert_eq!((s.delivered, s.dropped, s.failed), (6, 0, 0), "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_journal_that_stops_reading_never_blocks_the_caller_and_loses_nothing_it_did_not_take() {
    let dir = temp_dir("stall");
    let path = dir.join("socket");
    // Bound, never read: the socket's queue fills and sends block (up to the timeout).
    let stalled = UnixDatagram::bind(&path).unwrap();
    let (layer, guard) = JournaldLayer::builder()
        .socket(&path)
        .timeout(Duration::from_millis(100))
        .retry(fast_retry())
        .queue_records(5_000)
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let mut slowest = Duration::ZERO;
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..2_000 {
            let t = Instant::now();
            tracing::info!(seq = i, "record {i}");
            slowest = slowest.max(t.elapsed());
        }
    });
    assert!(slowest < Duration::from_millis(500), "a caller waited {slowest:?}");
    let deadline = Instant::now() + WAIT;
    while guard.stats()[0].retried == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(guard.stats()[0].retried > 0, "the full socket made the sink retry: {:?}", guard.stats());
    // The journal reads again: everything arrives, in order, once.
    drop(stalled);
    let journal = FakeJournald::start_at(&path);
    assert!(guard.flush(Duration::from_secs(60)).is_complete(), "{:?}", guard.stats());
    // (flush returns once the last datagram was sent; the fake may still be reading it)
    let deadline = Instant::now() + WAIT;
    let seq_of = |e: &watchbell_test::journald::Entry| e.get("SEQ").unwrap().parse::<u32>().unwrap();
    while journal.entries().last().map(seq_of) != Some(1_999) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let seqs: Vec<u32> = journal.entries().iter().map(seq_of).collect();
    let first_new = seqs[0];
    assert!(first_new > 0, "the stalled socket took some before it filled");
    // What the stalled socket had accepted before it filled was read by nobody: those went to
    // the old socket's queue and are gone with it; everything after arrives in order.
    assert_eq!(seqs, (first_new..2_000).collect::<Vec<_>>());
    let s = &guard.stats()[0];
    assert_eq!((s.dropped, s.failed), (0, 0), "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_configurations_are_build_errors() {
    let e = JournaldLayer::builder().socket("").build_handler().err().expect("an error");
    assert_eq!(e.key, "socket");
    let e = JournaldLayer::builder().syslog_identifier("a\nb").build_handler().err().expect("an error");
    assert_eq!(e.key, "syslog_identifier");
    let e = JournaldLayer::builder().extra_field("", "x").build_handler().err().expect("an error");
    assert_eq!(e.key, "extra_field[0]");
    // A second value of a field watchbell sets would make the entry ambiguous.
    for own in ["MESSAGE", "thread_id", "Priority"] {
        let e = JournaldLayer::builder().extra_field("DEPLOY", "blue").extra_field(own, "x").build_handler();
        let e = e.err().expect("an error");
        assert_eq!(e.key, "extra_field[1]", "{own}");
    }
}
