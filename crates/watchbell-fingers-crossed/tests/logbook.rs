//! Logbook's own FingersCrossedHandler tests, translated, and its reset defect fixed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tracing::Dispatch;
use tracing_subscriber::prelude::*;
use watchbell_core::{Batch, BatchReason, Handler, Level, Record};
use watchbell_fingers_crossed::{FingersCrossedBuilder, FingersCrossedLayer, Scope};
use watchbell_test::TestLayer;

fn dispatch(builder: FingersCrossedBuilder) -> (Dispatch, watchbell_core::Guard) {
    let (layer, guard) = builder.build().expect("valid configuration");
    (Dispatch::new(tracing_subscriber::registry().with(layer)), guard)
}

fn lines(batch: &Batch) -> Vec<String> {
    batch.records.iter().map(|r| format!("{} {}", r.level, r.message)).collect()
}

#[test]
fn one_info_alone_delivers_nothing() {
    let inner = TestLayer::new();
    let (d, guard) = dispatch(FingersCrossedLayer::builder(inner.handler()).scope(Scope::Global));
    tracing::dispatcher::with_default(&d, || tracing::info!("Never gonna give you up"));
    assert!(inner.is_empty(), "{:?}", inner.records());
    assert!(inner.batches().is_empty());
    let stats = guard.stats();
    assert_eq!(stats[0].accepted, 1);
    assert_eq!(stats[0].queued, 1, "the info record is withheld, not lost yet");
    assert!(guard.shutdown(std::time::Duration::from_secs(5)).is_complete());
    assert!(inner.is_empty(), "shutdown discards a buffer that never triggered");
    assert_eq!(guard.stats()[0].dropped, 1, "and counts it");
}

#[test]
fn buffer_size_three_keeps_the_last_three_with_the_trigger() {
    let inner = TestLayer::new();
    let (d, _guard) = dispatch(FingersCrossedLayer::builder(inner.handler()).scope(Scope::Global).buffer_size(3));
    tracing::dispatcher::with_default(&d, || {
        tracing::info!("Never gonna give you up");
        tracing::warn!("Aha!");
        tracing::warn!("Moar!");
        tracing::error!("Pure hate!");
    });
    let batches = inner.batches();
    assert_eq!(batches.len(), 1, "one batch");
    assert_eq!(batches[0].reason, BatchReason::Escalation);
    assert_eq!(lines(&batches[0]), ["WARN Aha!", "WARN Moar!", "ERROR Pure hate!"]);
    assert_eq!(batches[0].significant().map(|r| &*r.message), Some("Pure hate!"));
}

struct Counting(AtomicUsize);

impl Handler for Counting {
    fn handle(&self, _: Record) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn factory_is_called_once_and_only_after_the_trigger() {
    let inner = TestLayer::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (handler, c, s) = (inner.handler(), Arc::clone(&calls), Arc::clone(&seen));
    let (d, _guard) = dispatch(
        FingersCrossedLayer::with_factory(move |trigger: &Record, buffered: &[Record]| {
            c.fetch_add(1, Ordering::SeqCst);
            let mut s = s.lock().unwrap();
            s.push(trigger.message.clone());
            s.extend(buffered.iter().map(|r| r.message.clone()));
            Arc::clone(&handler)
        })
        .scope(Scope::Global),
    );
    tracing::dispatcher::with_default(&d, || {
        tracing::debug!("one");
        tracing::warn!("two");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "not called before the trigger");
        tracing::error!("boom");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "called at the trigger");
        tracing::info!("after");
        tracing::error!("again");
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1, "called once");
    assert_eq!(*seen.lock().unwrap(), ["boom", "one", "two"], "with the trigger and the buffered records");
    assert_eq!(lines(&inner.batches()[0]), ["DEBUG one", "WARN two", "ERROR boom"]);
    // After the trigger, the rest passes through to the same handler.
    assert_eq!(inner.lines().len(), 5);
    assert!(inner.has_info("after") && inner.has_error("again"));
}

#[test]
fn factory_is_called_once_per_scope_with_reset() {
    let made = Arc::new(AtomicUsize::new(0));
    let m = Arc::clone(&made);
    let counter = Arc::new(Counting(AtomicUsize::new(0)));
    let c2 = Arc::clone(&counter);
    let (d, _guard) = dispatch(
        FingersCrossedLayer::with_factory(move |_: &Record, _: &[Record]| {
            m.fetch_add(1, Ordering::SeqCst);
            Arc::clone(&c2) as Arc<dyn Handler>
        })
        .reset(true),
    );
    tracing::dispatcher::with_default(&d, || {
        for id in 0..2 {
            let _s = tracing::info_span!("request", id).entered();
            tracing::error!("first");
            tracing::error!("second");
        }
        let _s = tracing::info_span!("request", id = 3).entered();
        tracing::debug!("no trigger in this one");
    });
    assert_eq!(made.load(Ordering::SeqCst), 2, "one handler per triggered scope");
    assert_eq!(counter.0.load(Ordering::SeqCst), 4, "four incidents, one record each");
}

#[test]
fn reset_with_a_full_ring_delivers_every_incident() {
    // Logbook: size 2, reset, a b c E1 d E2 -> only [c, E1]. watchbell: [c, E1] and [d, E2].
    let inner = TestLayer::new();
    let (d, guard) =
        dispatch(FingersCrossedLayer::builder(inner.handler()).scope(Scope::Global).buffer_size(2).reset(true));
    tracing::dispatcher::with_default(&d, || {
        tracing::info!("a");
        tracing::info!("b");
        tracing::info!("c");
        tracing::error!("E1");
        tracing::info!("d");
        tracing::error!("E2");
    });
    let batches = inner.batches();
    let got: Vec<Vec<String>> = batches.iter().map(lines).collect();
    assert_eq!(got, [vec!["INFO c", "ERROR E1"], vec!["INFO d", "ERROR E2"]]);
    assert!(batches.iter().all(|b| b.reason == BatchReason::Escalation));
    let fc = &guard.stats()[0];
    assert_eq!(fc.delivered, 4);
    assert_eq!(fc.dropped, 2, "a and b rotated out of the ring");
}

#[test]
fn without_reset_later_records_pass_through_one_by_one() {
    let inner = TestLayer::new();
    let (layer, _guard) = FingersCrossedLayer::builder(inner.handler()).scope(Scope::Global).build().unwrap();
    let monitor = layer.inner().monitor();
    let d = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&d, || {
        tracing::debug!("before");
        tracing::error!("boom");
        tracing::debug!("after 1");
        tracing::info!("after 2");
    });
    assert_eq!(inner.batches().len(), 1, "one escalation batch; the rest came as single records");
    assert_eq!(inner.lines().len(), 4);
    assert!(inner.has_debug("after 1") && inner.has_info("after 2"));
    let s = monitor.stats();
    assert_eq!((s.triggers, s.escalated, s.passed_through, s.buffered_records), (1, 2, 2, 0));
}

#[test]
fn action_level_is_configurable_and_parsed() {
    let inner = TestLayer::new();
    let (d, _guard) =
        dispatch(FingersCrossedLayer::builder(inner.handler()).scope(Scope::Global).action_level("warn").reset(true));
    tracing::dispatcher::with_default(&d, || {
        tracing::info!("i");
        tracing::warn!("w");
        tracing::info!("j");
        tracing::error!("e");
    });
    let got: Vec<Vec<String>> = inner.batches().iter().map(lines).collect();
    assert_eq!(got, [vec!["INFO i", "WARN w"], vec!["INFO j", "ERROR e"]]);

    let (_, _g) = dispatch(FingersCrossedLayer::builder(inner.handler()).action_level(Level::WARN));
    let err = FingersCrossedLayer::builder(inner.handler()).action_level("loud").build_layer().unwrap_err();
    assert_eq!(err.key, "action_level");
    assert!(err.message.contains("\"loud\"") && err.message.contains("expected one of"), "{err}");
}
