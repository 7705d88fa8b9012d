//! What records share instead of copying: a callsite's constant message, and the span stack of
//! the events in one span. Each test checks that what is shared is still exactly what was
//! logged.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;
use watchbell_core::record::Value;
use watchbell_core::{CaptureLayer, Handler, Record};

/// Keeps every record it is handed, on the caller's thread.
#[derive(Default)]
struct Keep(Mutex<Vec<Record>>);

impl Handler for Keep {
    fn handle(&self, record: Record) {
        self.0.lock().unwrap().push(record);
    }
}

impl Keep {
    fn take(&self) -> Vec<Record> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn keeping() -> (Arc<Keep>, impl tracing::Subscriber + Send + Sync) {
    let keep = Arc::new(Keep::default());
    let subscriber =
        tracing_subscriber::registry().with(CaptureLayer::new(keep.clone()).with_level(tracing::Level::TRACE));
    (keep, subscriber)
}

fn span_names(r: &Record) -> Vec<String> {
    r.spans.iter().map(|s| s.name.to_string()).collect()
}

#[test]
fn a_literal_message_is_borrowed_and_a_formatted_one_is_never_mistaken_for_it() {
    let (keep, subscriber) = keeping();
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..3 {
            tracing::info!(attempt = i, "payment accepted");
        }
        // The first message of this callsite is "n=0": later ones must not come back as it.
        for i in 0..3 {
            tracing::info!("n={i}");
        }
        // Longer than what is built on the stack, and a message that outgrows it midway.
        let long = "x".repeat(300);
        for _ in 0..2 {
            tracing::info!("{long}");
        }
        tracing::info!("{} {}", "y".repeat(100), "z".repeat(100));
        // Multibyte text and a message recorded as a plain string field.
        for _ in 0..2 {
            tracing::info!("日本語のメッセージ ✓");
            tracing::info!(message = "as a field");
        }
    });
    let got = keep.take();
    let messages: Vec<&str> = got.iter().map(|r| &*r.message).collect();
    let long = "x".repeat(300);
    let mixed = format!("{} {}", "y".repeat(100), "z".repeat(100));
    assert_eq!(
        messages,
        [
            "payment accepted",
            "payment accepted",
            "payment accepted",
            "n=0",
            "n=1",
            "n=2",
            long.as_str(),
            long.as_str(),
            mixed.as_str(),
            "日本語のメッセージ ✓",
            "as a field",
            "日本語のメッセージ ✓",
            "as a field",
        ]
    );
    // The literal is shared (kept at its callsite's first event); the varying ones, the long
    // ones and the one given as a string field are each their own.
    for i in [0, 1, 2, 9, 11] {
        assert!(matches!(got[i].message, Cow::Borrowed(_)), "message {i} was copied");
    }
    for i in [4, 5, 6, 7, 8, 10, 12] {
        assert!(matches!(got[i].message, Cow::Owned(_)), "message {i} was borrowed");
    }
    // A borrowed message is not counted as memory the record holds.
    assert_eq!(got[1].size_hint() + "payment accepted".len(), {
        let mut owned = got[1].clone();
        owned.message = Cow::Owned(owned.message.to_string());
        owned.size_hint()
    });
}

#[test]
fn events_in_one_span_share_its_stack_and_see_fields_recorded_later() {
    let (keep, subscriber) = keeping();
    tracing::subscriber::with_default(subscriber, || {
        let outer = tracing::info_span!("request", id = 7, status = tracing::field::Empty);
        let _o = outer.enter();
        let inner = tracing::info_span!("db", table = "users");
        let _i = inner.enter();
        tracing::info!("one");
        // A field recorded on a span outside this stack: the kept stack is checked, and kept.
        let elsewhere = tracing::info_span!(parent: None, "elsewhere", n = tracing::field::Empty);
        elsewhere.record("n", 1);
        tracing::info!("two");
        // A field recorded on the outer span after the stack was kept.
        outer.record("status", 503);
        tracing::info!("three");
        tracing::info!("four");
    });
    let got = keep.take();
    assert_eq!(got.len(), 4);
    for r in &got {
        assert_eq!(span_names(r), ["request", "db"]);
        assert_eq!(r.field("table"), Some(&Value::Str("users".into())));
    }
    assert!(got[0].spans.ptr_eq(&got[1].spans), "the second event reuses the first one's stack");
    assert_eq!(got[1].field("status"), None);
    assert_eq!(got[2].field("status"), Some(&Value::I64(503)), "a stale stack was used after Span::record");
    assert!(got[2].spans.ptr_eq(&got[3].spans));
    assert!(!got[1].spans.ptr_eq(&got[2].spans));
}

#[test]
fn a_closed_span_s_kept_stack_never_reaches_the_span_that_takes_its_place() {
    let (keep, subscriber) = keeping();
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..50u64 {
            // Each span is closed before the next is opened: the registry reuses its slot.
            let span = if i % 2 == 0 { tracing::info_span!("even", i = i) } else { tracing::info_span!("odd", i = i) };
            let _e = span.enter();
            tracing::info!("in the span");
            tracing::info!("again");
        }
        tracing::info!("outside");
    });
    let got = keep.take();
    assert_eq!(got.len(), 101);
    for (k, pair) in got[..100].chunks(2).enumerate() {
        let name = if k % 2 == 0 { "even" } else { "odd" };
        for r in pair {
            assert_eq!(span_names(r), [name]);
            assert_eq!(r.field("i"), Some(&Value::U64(k as u64)));
        }
    }
    assert!(got[100].spans.is_empty());
}

#[test]
fn two_layers_keep_their_own_stacks_as_their_filters_see_them() {
    let all = Arc::new(Keep::default());
    let no_db = Arc::new(Keep::default());
    let subscriber = tracing_subscriber::registry()
        .with(CaptureLayer::new(all.clone()).with_level(tracing::Level::INFO))
        .with(CaptureLayer::new(no_db.clone()).with_filter(filter_fn(|m| !(m.is_span() && m.name() == "db"))));
    tracing::subscriber::with_default(subscriber, || {
        let outer = tracing::info_span!("request", id = 7);
        let _o = outer.enter();
        let inner = tracing::info_span!("db", table = "users");
        let _i = inner.enter();
        for _ in 0..3 {
            tracing::info!("query");
        }
    });
    let all = all.take();
    let no_db = no_db.take();
    assert_eq!(all.len(), 3);
    assert_eq!(no_db.len(), 3);
    for r in &all {
        assert_eq!(span_names(r), ["request", "db"]);
    }
    for r in &no_db {
        assert_eq!(span_names(r), ["request"]);
    }
    assert!(all[0].spans.ptr_eq(&all[2].spans) && no_db[0].spans.ptr_eq(&no_db[2].spans));
}

#[test]
fn events_on_many_threads_in_their_own_spans_get_their_own_stacks() {
    let (keep, subscriber) = keeping();
    let dispatch = tracing::Dispatch::new(subscriber);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let dispatch = dispatch.clone();
            s.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for round in 0..200u64 {
                        let span = tracing::info_span!("job", t = t, round = round);
                        let _e = span.enter();
                        tracing::info!(t, round, "step");
                        if round % 3 == 0 {
                            span.record("round", round + 1_000);
                            tracing::info!(t, round, "after record");
                        }
                    }
                });
            });
        }
    });
    let got = keep.take();
    assert_eq!(got.len(), 4 * (200 + 67));
    for r in &got {
        let (Some(Value::U64(t)), Some(Value::U64(round))) = (r.fields.get("t"), r.fields.get("round")) else {
            panic!("fields missing: {r:?}")
        };
        assert_eq!(r.spans.len(), 1);
        let span = &r.spans[0];
        assert_eq!(span.fields.get("t"), Some(&Value::U64(*t)));
        let want = if &*r.message == "after record" { round + 1_000 } else { *round };
        assert_eq!(span.fields.get("round"), Some(&Value::U64(want)), "{r:?}");
    }
}
