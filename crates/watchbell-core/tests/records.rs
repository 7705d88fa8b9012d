//! Process id on records, processors, and how watchbell reports its own failures.

use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::prelude::*;
use watchbell_core::record::Value;
use watchbell_core::report::{reporter_panics, set_error_reporter, ErrorReporter};
use watchbell_core::{Batch, CaptureLayer, Delivery, Guard, Outcome, Record};

const WAIT: Duration = Duration::from_secs(5);

thread_local! {
    static REQUEST_ID: Cell<u64> = const { Cell::new(0) };
    static PROCESSOR_PANICS_HERE: Cell<bool> = const { Cell::new(false) };
}

/// A delivery that keeps what it gets, behind a capture layer at INFO.
fn collecting() -> (Arc<Mutex<Vec<Record>>>, Guard, impl tracing::Subscriber + Send + Sync) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink_got = Arc::clone(&got);
    let delivery = Delivery::builder("collect", move |b: &Batch| {
        sink_got.lock().unwrap().extend(b.records.iter().cloned());
        Outcome::Delivered
    })
    .spawn()
    .unwrap();
    let handler = Arc::new(delivery);
    let guard = Guard::new(handler.clone());
    let subscriber = tracing_subscriber::registry().with(CaptureLayer::new(handler).with_level(tracing::Level::INFO));
    (got, guard, subscriber)
}

#[test]
fn every_record_carries_the_process_id_and_serializes_it() {
    let (got, guard, subscriber) = collecting();
    tracing::subscriber::with_default(subscriber, || tracing::error!("with a pid"));
    assert!(guard.flush(WAIT).is_complete());
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].pid, std::process::id());
    let json = serde_json::to_value(&got[0]).unwrap();
    assert_eq!(json["pid"], std::process::id());
    // A record written before records had a pid still reads.
    let mut old = json.clone();
    old.as_object_mut().unwrap().remove("pid");
    let back: Record = serde_json::from_value(old).unwrap();
    assert_eq!(back.pid, 0);
    assert_eq!(Record::new(tracing::Level::WARN, "t", "m").pid, std::process::id());
}

#[test]
fn a_processor_adds_what_only_the_callers_thread_knows() {
    watchbell_core::processor(|r: &mut Record| {
        let id = REQUEST_ID.with(Cell::get);
        if id != 0 {
            r.fields.set("request_id", Value::U64(id));
            r.fields.set("deploy", Value::Str("d-42".into()));
        }
    });
    let (got, guard, subscriber) = collecting();
    tracing::subscriber::with_default(subscriber, || {
        REQUEST_ID.with(|c| c.set(7));
        tracing::warn!(user = "bob", "inside a request");
        REQUEST_ID.with(|c| c.set(0));
        tracing::warn!("outside");
    });
    assert!(guard.flush(WAIT).is_complete());
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].field("request_id"), Some(&Value::U64(7)));
    assert_eq!(got[0].field("deploy"), Some(&Value::Str("d-42".into())));
    assert_eq!(got[0].field("user"), Some(&Value::Str("bob".into())));
    assert_eq!(got[1].field("request_id"), None, "the thread local was read on the caller's thread, per event");
}

#[test]
fn a_panicking_processor_is_caught_counted_and_the_record_goes_on() {
    watchbell_core::processor(|r: &mut Record| {
        if PROCESSOR_PANICS_HERE.with(Cell::get) {
            r.fields.set("before_panic", Value::Bool(true));
            panic!("a processor's bug");
        }
    });
    let (got, guard, subscriber) = collecting();
    let before = watchbell_core::processor::panics();
    tracing::subscriber::with_default(subscriber, || {
        PROCESSOR_PANICS_HERE.with(|c| c.set(true));
        tracing::error!("still delivered");
        PROCESSOR_PANICS_HERE.with(|c| c.set(false));
    });
    assert!(guard.flush(WAIT).is_complete());
    assert!(watchbell_core::processor::panics() > before);
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message, "still delivered");
    assert_eq!(got[0].field("before_panic"), Some(&Value::Bool(true)));
}

#[test]
fn own_failures_go_to_the_reporter_and_a_panicking_reporter_is_caught() {
    let seen = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let sink_seen = Arc::clone(&seen);
    set_error_reporter(ErrorReporter::callback(move |f| {
        sink_seen.lock().unwrap().push((f.source.to_owned(), f.message.to_owned()));
    }));
    let fail = |name: &'static str, reason: &'static str| {
        let delivery =
            Delivery::builder(name, move |_: &Batch| Outcome::Permanent { reason: reason.to_owned() }).spawn().unwrap();
        let handler = Arc::new(delivery);
        let guard = Guard::new(handler.clone());
        watchbell_core::Handler::handle(&*handler, Record::new(tracing::Level::ERROR, "app", "x"));
        let _ = guard.flush(WAIT);
        guard
    };
    let _g1 = fail("refusing", "401 token=abc123secretvalue rejected");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].0, "refusing");
        assert!(seen[0].1.contains("permanent delivery failure"), "{seen:?}");
        assert!(!seen[0].1.contains("abc123secretvalue"), "secrets are redacted before the reporter: {seen:?}");
    }
    set_error_reporter(ErrorReporter::callback(|_| panic!("a reporter's bug")));
    let before = reporter_panics();
    let _g2 = fail("refusing-too", "500 server error");
    assert!(reporter_panics() > before, "the reporter's panic was caught and counted");
    set_error_reporter(ErrorReporter::Silent);
    let _g3 = fail("quiet", "503");
    assert_eq!(seen.lock().unwrap().len(), 1, "silent reports nothing");
    set_error_reporter(ErrorReporter::Stderr);
}
