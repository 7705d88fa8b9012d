//! Capture: fields, span fields, fingerprints, per-layer filtering under with_filter, EnvFilter
//! and reload.

use std::sync::Arc;

use tracing::{debug, error, info, info_span, warn, Level};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;
use watchbell_core::{CaptureLayer, Handler, LayerFilter, Origin, Value};
use watchbell_test::TestLayer;

fn layer_at<S>(sink: &TestLayer, level: Level) -> tracing_subscriber::filter::Filtered<CaptureLayer, LayerFilter, S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    CaptureLayer::new(sink.handler()).with_level(level)
}

#[derive(Debug)]
struct Wrapped(#[allow(dead_code)] u32);

#[test]
fn typed_fields_and_span_stack() {
    let got = TestLayer::new();
    let filter = LayerFilter::new(Level::INFO).span_level(LevelFilter::TRACE);
    let sub = tracing_subscriber::registry().with(CaptureLayer::new(got.handler()).filtered(filter));
    tracing::subscriber::with_default(sub, || {
        let outer = info_span!("request", id = 7u64, path = "/pay", user = tracing::field::Empty);
        let _o = outer.enter();
        outer.record("user", "bob");
        let inner = tracing::debug_span!("db", table = "orders");
        let _i = inner.enter();
        let err = std::io::Error::other("disk gone");
        error!(
            count = -3i64,
            big = 180_000_000_000_000_000_000u128,
            ratio = 0.5,
            ok = false,
            name = "x y",
            dbg = ?Wrapped(4),
            shown = %"display me",
            error = &err as &(dyn std::error::Error + 'static),
            "payment {} failed",
            42
        );
    });
    let recs = got.records();
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.message, "payment 42 failed");
    assert_eq!(r.level, Level::ERROR);
    assert_eq!(r.target, "capture");
    assert_eq!(r.file.as_deref(), Some(file!()));
    assert!(r.line.is_some());
    assert_eq!(r.module.as_deref(), Some(module_path!()));
    assert_eq!(r.fields.get("count"), Some(&Value::I64(-3)));
    assert_eq!(r.fields.get("big"), Some(&Value::U128(Box::new(180_000_000_000_000_000_000))));
    assert_eq!(r.fields.get("ratio"), Some(&Value::F64(0.5)));
    assert_eq!(r.fields.get("ok"), Some(&Value::Bool(false)));
    assert_eq!(r.fields.get("name"), Some(&Value::Str("x y".into())));
    assert_eq!(r.fields.get("dbg"), Some(&Value::Debug("Wrapped(4)".into())));
    assert_eq!(r.fields.get("shown"), Some(&Value::Debug("display me".into())));
    assert_eq!(r.fields.get("error"), Some(&Value::Display("disk gone".into())));
    assert_eq!(r.spans.len(), 2);
    assert_eq!(r.spans[0].name, "request");
    assert_eq!(r.spans[0].fields.get("id"), Some(&Value::U64(7)));
    assert_eq!(r.spans[0].fields.get("user"), Some(&Value::Str("bob".into())), "Span::record is applied");
    assert_eq!(r.spans[1].name, "db");
    assert_eq!(r.field("table").and_then(Value::as_str), Some("orders"));
    assert_eq!(r.thread_name.as_deref(), std::thread::current().name());
    assert_eq!(r.origin, Origin::Tracing);

    // The record is serde serializable and comes back equal (modulo Debug/Display text → Str).
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["level"], "ERROR");
    assert_eq!(json["fields"]["count"], -3);
    assert_eq!(json["fields"]["big"], "180000000000000000000");
    assert_eq!(json["spans"][0]["fields"]["user"], "bob");
    assert_eq!(json["fingerprint"].as_str().unwrap().len(), 16);
    let back: watchbell_core::Record = serde_json::from_value(json).unwrap();
    assert_eq!(back.message, r.message);
    assert_eq!(
        back.time,
        std::time::UNIX_EPOCH
            + std::time::Duration::from_micros(r.time.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64)
    );
    assert_eq!(back.fingerprint, r.fingerprint);
}

#[test]
fn debug_spans_are_recorded_only_when_asked() {
    let got = TestLayer::new();
    let sub = tracing_subscriber::registry().with(layer_at(&got, Level::WARN));
    tracing::subscriber::with_default(sub, || {
        let _r = info_span!("request", id = 1).entered();
        let _d = tracing::debug_span!("detail", step = 2).entered();
        warn!("inside both");
    });
    let spans: Vec<_> = got.records()[0].spans.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(spans, ["request"], "INFO spans by default, not DEBUG ones");
    // The default keeps tracing's global maximum level where the WARN layer and INFO spans put it.
    let hint = <LayerFilter as tracing_subscriber::layer::Filter<tracing_subscriber::Registry>>::max_level_hint(
        &LayerFilter::new(Level::WARN),
    );
    assert_eq!(hint, Some(LevelFilter::INFO));
}

#[test]
fn error_sources_are_chained() {
    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("could not save order")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let got = TestLayer::new();
    got.in_scope(|| {
        let e = Outer(std::io::Error::other("connection reset"));
        error!(error = &e as &(dyn std::error::Error + 'static), "save failed");
    });
    assert_eq!(
        got.records()[0].fields.get("error"),
        Some(&Value::Display("could not save order: connection reset".into()))
    );
}

#[test]
fn fingerprint_is_stable_across_messages_and_differs_across_callsites() {
    let got = TestLayer::new();
    got.in_scope(|| {
        for i in 0..3 {
            error!(attempt = i, "failed to reach host-{i}");
        }
        error!("another place");
    });
    let recs = got.records();
    assert_eq!(recs.len(), 4);
    assert_eq!(recs[0].fingerprint, recs[1].fingerprint);
    assert_eq!(recs[1].fingerprint, recs[2].fingerprint);
    assert_ne!(recs[0].fingerprint, recs[3].fingerprint);
    // Recomputable from the record's own parts: stable across runs.
    let r = &recs[0];
    assert_eq!(r.fingerprint, watchbell_core::Fingerprint::compute(r.level, &r.target, r.file.as_deref(), r.line, b""));
    // A salt changes it.
    assert_ne!(
        r.fingerprint,
        watchbell_core::Fingerprint::compute(r.level, &r.target, r.file.as_deref(), r.line, b"app-1")
    );
}

#[test]
fn layer_level_does_not_hide_events_from_other_layers() {
    let alerts = TestLayer::new();
    let everything = TestLayer::new();
    let sub = tracing_subscriber::registry()
        .with(layer_at(&alerts, Level::ERROR))
        .with(everything.clone().with_filter(LevelFilter::DEBUG));
    tracing::subscriber::with_default(sub, || {
        let span = info_span!("job", n = 1);
        let _e = span.enter();
        debug!("d");
        info!("i");
        warn!("w");
        error!("e");
    });
    assert_eq!(alerts.lines(), ["[ERROR] capture: e"]);
    assert_eq!(alerts.records()[0].spans[0].name, "job", "span fields known although the span is INFO");
    assert_eq!(everything.len(), 4);
}

#[test]
fn target_rules() {
    let got = TestLayer::new();
    let filter = LayerFilter::new(Level::INFO).allow_target("app").deny_target("app::noisy");
    let sub = tracing_subscriber::registry().with(CaptureLayer::new(got.handler()).filtered(filter));
    tracing::subscriber::with_default(sub, || {
        info!(target: "app", "kept");
        info!(target: "app::db", "kept too");
        info!(target: "app::noisy", "denied");
        info!(target: "application", "not below app");
        info!(target: "other", "not allowed");
    });
    assert_eq!(got.lines(), ["[INFO] app: kept", "[INFO] app::db: kept too"]);
}

#[test]
fn behaves_under_an_outer_with_filter_and_env_filter() {
    let got = TestLayer::new();
    let everything = TestLayer::new();
    let env = EnvFilter::new("warn,capture::inner=debug");
    let sub =
        tracing_subscriber::registry().with(layer_at(&got, Level::DEBUG).with_filter(env)).with(everything.clone());
    tracing::subscriber::with_default(sub, || {
        info!("outer info: dropped by the EnvFilter");
        warn!("outer warn: kept");
        debug!(target: "capture::inner", "inner debug: kept");
        tracing::trace!(target: "capture::inner", "inner trace: below our own level");
    });
    assert_eq!(got.lines(), ["[WARN] capture: outer warn: kept", "[DEBUG] capture::inner: inner debug: kept"]);
    assert_eq!(everything.len(), 4, "the other layer saw everything");
}

#[test]
fn reloadable_level_and_reloaded_filtered_layer() {
    // The level of a watchbell layer changed at run time through a reloadable filter.
    let got = TestLayer::new();
    let (filter, handle) = reload::Layer::new(LayerFilter::new(Level::ERROR));
    let sub = tracing_subscriber::registry().with(CaptureLayer::new(got.handler()).with_filter(filter));
    tracing::subscriber::with_default(sub, || {
        warn!("before: filtered");
        handle.reload(LayerFilter::new(Level::WARN)).unwrap();
        warn!("after: kept");
        info!("after: still filtered");
    });
    assert_eq!(got.lines(), ["[WARN] capture: after: kept"]);

    // tracing #1629: a Filtered watchbell layer inside reload::Layer, its filter modified.
    let got = TestLayer::new();
    let (layer, handle) = reload::Layer::new(layer_at(&got, Level::ERROR));
    let other = TestLayer::new();
    let sub = tracing_subscriber::registry().with(layer).with(other.clone());
    tracing::subscriber::with_default(sub, || {
        info!("one");
        handle.modify(|l| *l.filter_mut() = LayerFilter::new(Level::INFO)).unwrap();
        info!("two");
        error!("three");
    });
    assert_eq!(got.lines(), ["[INFO] capture: two", "[ERROR] capture: three"]);
    assert_eq!(other.len(), 3);
}

#[test]
fn log_enabled_check_does_not_lose_spans() {
    // tracing #2519: an `enabled` query with no event after it (as LogTracer does for
    // `log_enabled!`) must not make the next span vanish for a per-layer-filtered layer.
    let got = TestLayer::new();
    let sub = tracing_subscriber::registry().with(layer_at(&got, Level::INFO)).with(TestLayer::new());
    tracing::subscriber::with_default(sub, || {
        let meta_enabled = tracing::enabled!(Level::DEBUG);
        assert!(meta_enabled, "the unfiltered layer wants DEBUG");
        info!("right after the query");
        assert!(tracing::enabled!(Level::DEBUG));
        let span = info_span!("after_query", k = 1);
        let _e = span.enter();
        info!("inside");
    });
    assert_eq!(got.lines(), ["[INFO] capture: right after the query", "[INFO] capture: inside"]);
    let recs = &got.records()[1..];
    assert_eq!(recs[0].spans.len(), 1, "the span survived the enabled() query");
    assert_eq!(recs[0].spans[0].name, "after_query");
}

#[test]
fn suppressed_threads_are_never_captured() {
    let got = TestLayer::new();
    got.in_scope(|| {
        watchbell_core::capture::suppressed(|| error!("on behalf of watchbell"));
        error!("application");
        got.spawn(|| {
            watchbell_core::capture::mark_current_thread();
            error!("from a watchbell thread");
        })
        .join()
        .unwrap();
    });
    assert_eq!(got.lines(), ["[ERROR] capture: application"]);
}

#[test]
fn a_panicking_debug_impl_is_caught() {
    struct Bomb;
    impl std::fmt::Debug for Bomb {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("Debug exploded")
        }
    }
    let got = TestLayer::new();
    let before = watchbell_core::capture::capture_panics();
    got.in_scope(|| {
        error!(bomb = ?Bomb, "never captured");
        error!("the app goes on");
    });
    assert_eq!(got.lines(), ["[ERROR] capture: the app goes on"]);
    assert!(watchbell_core::capture::capture_panics() > before);
}

#[test]
fn handler_arc_is_a_handler() {
    fn takes(_: Arc<dyn Handler>) {}
    takes(TestLayer::new().handler());
}
