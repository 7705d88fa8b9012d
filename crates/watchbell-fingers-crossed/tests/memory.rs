//! Memory: 10,000 open request spans each buffering 100 records stay under the global byte
//! cap. Alone in its test binary so that the RSS it measures is its own.

use tracing::Dispatch;
use tracing_subscriber::prelude::*;
use watchbell_fingers_crossed::{FingersCrossedLayer, Scope};
use watchbell_test::TestLayer;

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The figure: 10,000 open request spans × 100 records under a 16 MiB global cap.
#[test]
fn ten_thousand_open_spans_of_a_hundred_records_stay_under_the_global_cap() {
    run(100, 16 << 20);
}

fn run(records_per_span: u64, cap: usize) {
    let total = 10_000 * records_per_span;
    let inner = TestLayer::new();
    let (layer, _guard) = FingersCrossedLayer::builder(inner.handler())
        .scope(Scope::span("request"))
        .max_total_bytes(cap)
        .build()
        .unwrap();
    let monitor = layer.inner().monitor();
    let d = Dispatch::new(tracing_subscriber::registry().with(layer));
    let before = rss_kib();
    let mut peak = 0;
    tracing::dispatcher::with_default(&d, || {
        let spans: Vec<_> = (0..10_000u64).map(|id| tracing::info_span!("request", id)).collect();
        for round in 0..records_per_span {
            for span in &spans {
                span.in_scope(|| tracing::debug!(round, user = "bob", path = "/api/v1/orders", "handling"));
            }
            peak = peak.max(monitor.stats().buffered_bytes);
        }
        let s = monitor.stats();
        assert_eq!(s.open_scopes, 10_000);
        assert!(s.buffered_bytes <= cap as u64, "{} > cap {cap}", s.buffered_bytes);
        assert!(s.shed > 0, "{total} records do not fit in {cap} bytes: some were shed");
        assert_eq!(s.captured, total);
        assert_eq!(s.buffered_records + s.shed, total);
        let after = rss_kib();
        if let (Some(b), Some(a)) = (before, after) {
            let growth_mib = a.saturating_sub(b) as f64 / 1024.0;
            eprintln!(
                "10,000 spans x {records_per_span} records, cap {} MiB: buffered {:.1} MiB (peak {:.1} MiB), {} records shed, RSS growth {growth_mib:.1} MiB",
                cap >> 20,
                s.buffered_bytes as f64 / 1048576.0,
                peak as f64 / 1048576.0,
                s.shed
            );
            // Generous: the cap, the registry's 10,000 spans, and allocator slack.
            assert!(growth_mib < 128.0, "RSS grew by {growth_mib:.1} MiB");
        }
        drop(spans);
        let s = monitor.stats();
        assert_eq!((s.open_scopes, s.buffered_records, s.buffered_bytes), (0, 0, 0));
    });
    assert!(peak <= cap as u64);
    assert!(inner.is_empty());
}
