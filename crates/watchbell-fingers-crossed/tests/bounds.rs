//! Bounds: the ring, the per-scope byte cap, the global byte cap with shedding of the largest
//! scopes' oldest records, and build-time validation.

use tracing::Dispatch;
use tracing_subscriber::prelude::*;
use watchbell_fingers_crossed::{FingersCrossedBuilder, FingersCrossedLayer, Monitor, Scope};
use watchbell_test::TestLayer;

fn dispatch(builder: FingersCrossedBuilder) -> (Dispatch, Monitor, watchbell_core::Guard) {
    let (layer, guard) = builder.build().expect("valid configuration");
    let monitor = layer.inner().monitor();
    (Dispatch::new(tracing_subscriber::registry().with(layer)), monitor, guard)
}

/// The buffered size of one `debug!(i, "record")` in a `request` span, measured.
fn record_size() -> u64 {
    let (d, monitor, _guard) = dispatch(FingersCrossedLayer::builder(TestLayer::new().handler()));
    tracing::dispatcher::with_default(&d, || {
        let _s = tracing::info_span!("request", id = 0u64).entered();
        tracing::debug!(i = 0u64, "record");
        monitor.stats().buffered_bytes
    })
}

#[test]
fn per_scope_byte_cap_keeps_the_newest_records() {
    let size = record_size();
    assert!(size > 0);
    let inner = TestLayer::new();
    let (d, monitor, _guard) =
        dispatch(FingersCrossedLayer::builder(inner.handler()).buffer_size(0).max_scope_bytes((size * 4) as usize));
    tracing::dispatcher::with_default(&d, || {
        let _s = tracing::info_span!("request", id = 1u64).entered();
        for i in 0..20u64 {
            tracing::debug!(i, "record");
            assert!(monitor.stats().buffered_bytes <= size * 4, "the cap holds after every record");
        }
        tracing::error!("boom");
    });
    let batch = &inner.batches()[0];
    let kept: Vec<u64> = batch.records[..batch.records.len() - 1]
        .iter()
        .map(|r| r.fields.get("i").and_then(|v| v.as_u64()).unwrap())
        .collect();
    assert_eq!(kept, [16, 17, 18, 19], "the newest four survive");
    assert_eq!(monitor.stats().rotated, 16);
}

#[test]
fn global_byte_cap_sheds_the_oldest_records_of_the_largest_scopes() {
    let size = record_size();
    let cap = size * 100;
    let inner = TestLayer::new();
    let (d, monitor, guard) = dispatch(
        FingersCrossedLayer::builder(inner.handler()).scope(Scope::span("request")).max_total_bytes(cap as usize),
    );
    tracing::dispatcher::with_default(&d, || {
        let big = tracing::info_span!("request", id = 0u64);
        let small: Vec<_> = (1..=5u64).map(|id| tracing::info_span!("request", id)).collect();
        for span in &small {
            span.in_scope(|| (0..5u64).for_each(|i| tracing::debug!(i, "record")));
        }
        big.in_scope(|| {
            for i in 0..200u64 {
                tracing::debug!(i, "record");
                assert!(monitor.stats().buffered_bytes <= cap, "the global cap holds after every record");
            }
        });
        let s = monitor.stats();
        assert!(s.shed >= 100, "shed {} records", s.shed);
        // The small scopes were not touched: their whole story is delivered.
        small[2].in_scope(|| tracing::error!("small failed"));
        big.in_scope(|| tracing::error!("big failed"));
    });
    let batches = inner.batches();
    assert_eq!(batches.len(), 2);
    let ids = |b: &watchbell_core::Batch| -> Vec<u64> {
        b.records.iter().filter_map(|r| r.fields.get("i").and_then(|v| v.as_u64())).collect()
    };
    assert_eq!(ids(&batches[0]), [0, 1, 2, 3, 4], "the small request kept everything");
    let big = ids(&batches[1]);
    assert_eq!(*big.last().unwrap(), 199, "the newest survive");
    assert!(big[0] > 0, "the oldest of the largest scope were shed");
    assert_eq!(big.windows(2).filter(|w| w[1] != w[0] + 1).count(), 0, "a contiguous tail");
    let s = monitor.stats();
    assert_eq!(s.shed + big.len() as u64, 200, "every record of the big scope is delivered or counted as shed");
    assert_eq!(guard.stats()[0].dropped, s.shed + s.discarded + s.rotated);
}

#[test]
fn invalid_configurations_are_refused_with_the_setting_named() {
    let h = TestLayer::new().handler();
    let e = FingersCrossedLayer::builder(h.clone()).buffer_size(0).max_scope_bytes(0).build_layer().unwrap_err();
    assert_eq!((e.source, e.key.as_str()), ("watchbell-fingers-crossed", "buffer_size"));
    assert!(e.message.contains("max_scope_bytes"), "{e}");
    // 0 is fine with a byte cap.
    assert!(FingersCrossedLayer::builder(h.clone()).buffer_size(0).build_layer().is_ok());
    let e = FingersCrossedLayer::builder(h.clone()).max_total_bytes(0).build_layer().unwrap_err();
    assert_eq!(e.key, "max_total_bytes");
    let e = FingersCrossedLayer::builder(h.clone()).scope(Scope::span("")).build_layer().unwrap_err();
    assert_eq!(e.key, "scope");
    let e = FingersCrossedLayer::builder(h.clone())
        .format(|r: &watchbell_core::Record, _: &watchbell_core::format::FormatContext| r.message.to_string())
        .build_layer()
        .unwrap_err();
    assert_eq!(e.key, "format");
    let e = FingersCrossedLayer::builder(h).action_level("").build_layer().unwrap_err();
    assert_eq!(e.key, "action_level");
}
