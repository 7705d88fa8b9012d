//! Inner handlers: a MakeWriter, a panicking handler, and the layer under other filters.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::Dispatch;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;
use watchbell_core::format::Template;
use watchbell_core::{Batch, Handler, LayerFilter, Level, Record};
use watchbell_fingers_crossed::{FingersCrossedLayer, Inner, Scope};
use watchbell_test::TestLayer;

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

struct W(Shared);

impl Write for W {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (self.0).0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
    fn writer(&self) -> impl Fn() -> W + Send + Sync + 'static {
        let s = self.clone();
        move || W(s.clone())
    }
}

#[test]
fn make_writer_inner_gets_formatted_lines() {
    let out = Shared::default();
    let (layer, guard) =
        FingersCrossedLayer::with_writer(out.writer()).app("billing").scope(Scope::span("request")).build().unwrap();
    let d = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&d, || {
        let _quiet = tracing::info_span!("request", id = 1u64).entered();
        tracing::debug!("not written");
    });
    tracing::dispatcher::with_default(&d, || {
        let _r = tracing::info_span!("request", id = 2u64).entered();
        tracing::debug!(user = "bob", "loading cart");
        tracing::error!("payment failed");
    });
    assert!(guard.flush(Duration::from_secs(5)).is_complete());
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("[billing] "), "{}", lines[0]);
    assert!(lines[0].contains(" DEBUG inner: loading cart user=bob [request{id=2}]"), "{}", lines[0]);
    assert!(lines[1].contains(" ERROR inner: payment failed [request{id=2}]"), "{}", lines[1]);
    assert!(!text.contains("not written"));
    let stats = guard.stats();
    assert_eq!(stats[0].name, "fingers-crossed");
    assert_eq!(stats[1].name, "fingers-crossed-writer");
    assert_eq!(stats[1].delivered, 2, "the writer's delivery is owned by this guard: {stats:?}");
    assert!(guard.shutdown(Duration::from_secs(5)).is_complete());
}

#[test]
fn make_writer_inner_takes_a_user_format() {
    let out = Shared::default();
    let template: Template = "{level}|{message}|{field.id}".parse().unwrap();
    let (layer, guard) = FingersCrossedLayer::builder(Inner::writer(out.writer())).format(template).build().unwrap();
    let d = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&d, || {
        let _r = tracing::info_span!("request", id = 7u64).entered();
        tracing::info!("a");
        tracing::error!("b");
    });
    assert!(guard.flush(Duration::from_secs(5)).is_complete());
    assert_eq!(out.text(), "INFO|a|7\nERROR|b|7\n");
}

struct Panics;

impl Handler for Panics {
    fn handle(&self, _: Record) {
        panic!("inner handler bug");
    }
    fn handle_batch(&self, _: Batch) {
        panic!("inner handler bug");
    }
}

#[test]
fn a_panicking_inner_handler_is_caught_and_counted() {
    let (layer, guard) = FingersCrossedLayer::builder(Arc::new(Panics) as Arc<dyn Handler>).build().unwrap();
    let monitor = layer.inner().monitor();
    let ok = TestLayer::new();
    let d = Dispatch::new(tracing_subscriber::registry().with(layer).with(ok.clone()));
    tracing::dispatcher::with_default(&d, || {
        let _r = tracing::info_span!("request").entered();
        tracing::debug!("context");
        tracing::error!("boom"); // escalation: panics inside, caught
        tracing::info!("after"); // pass-through: panics inside, caught
    });
    assert_eq!(monitor.stats().panicked, 2);
    assert_eq!(guard.stats()[0].panicked, 2);
    assert_eq!(ok.len(), 3, "the application and its other layers went on");
}

#[test]
fn a_panicking_factory_is_caught_and_counted() {
    let (layer, _guard) =
        FingersCrossedLayer::with_factory(|_: &Record, _: &[Record]| -> Arc<dyn Handler> { panic!("factory bug") })
            .scope(Scope::Global)
            .build()
            .unwrap();
    let monitor = layer.inner().monitor();
    let d = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&d, || {
        tracing::error!("boom");
        tracing::error!("boom again");
    });
    let s = monitor.stats();
    assert_eq!(s.factory_calls, 1);
    assert_eq!(s.panicked, 1);
}

#[test]
fn level_is_a_per_layer_filter() {
    let inner = TestLayer::new();
    let everything = TestLayer::new();
    let (layer, _guard) =
        FingersCrossedLayer::builder(inner.handler()).level(Level::INFO).scope(Scope::Global).build().unwrap();
    let monitor = layer.inner().monitor();
    let d = Dispatch::new(tracing_subscriber::registry().with(layer).with(everything.clone()));
    tracing::dispatcher::with_default(&d, || {
        tracing::debug!("below the buffer level");
        tracing::info!("kept");
        tracing::error!("boom");
    });
    assert_eq!(inner.lines(), ["[INFO] inner: kept", "[ERROR] inner: boom"]);
    assert_eq!(monitor.stats().captured, 2);
    assert_eq!(everything.len(), 3, "the other layer still sees the DEBUG record");
}

#[test]
fn the_layer_behaves_under_with_filter() {
    // The unfiltered layer behind the user's own filter.
    let inner = TestLayer::new();
    let (layer, _guard) = FingersCrossedLayer::builder(inner.handler()).scope(Scope::Global).build_layer().unwrap();
    let d = Dispatch::new(tracing_subscriber::registry().with(layer.with_filter(LevelFilter::WARN)));
    tracing::dispatcher::with_default(&d, || {
        tracing::info!("filtered out");
        tracing::warn!("kept");
        tracing::error!("boom");
    });
    assert_eq!(inner.lines(), ["[WARN] inner: kept", "[ERROR] inner: boom"]);

    // The filtered layer behind one more filter (a target filter here).
    let inner = TestLayer::new();
    let (layer, _guard) = FingersCrossedLayer::builder(inner.handler())
        .filter(LayerFilter::new(Level::DEBUG).deny_target("noisy"))
        .scope(Scope::Global)
        .build()
        .unwrap();
    let d = Dispatch::new(
        tracing_subscriber::registry()
            .with(layer.with_filter(tracing_subscriber::filter::filter_fn(|m| m.target() != "other"))),
    );
    tracing::dispatcher::with_default(&d, || {
        tracing::debug!(target: "noisy", "denied by the layer filter");
        tracing::debug!(target: "other", "denied by the outer filter");
        tracing::debug!("kept");
        tracing::error!("boom");
    });
    assert_eq!(inner.lines(), ["[DEBUG] inner: kept", "[ERROR] inner: boom"]);
}

#[test]
fn events_logged_by_the_inner_handler_are_not_captured_again() {
    struct Logs(TestLayer);
    impl Handler for Logs {
        fn handle(&self, r: Record) {
            tracing::error!("inner handler logs while handling");
            self.0.handler().handle(r);
        }
        fn handle_batch(&self, b: Batch) {
            tracing::error!("inner handler logs while handling");
            self.0.handler().handle_batch(b);
        }
    }
    let inner = TestLayer::new();
    let (layer, _guard) = FingersCrossedLayer::builder(Arc::new(Logs(inner.clone())) as Arc<dyn Handler>)
        .scope(Scope::Global)
        .build()
        .unwrap();
    let d = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&d, || {
        tracing::error!("boom");
        tracing::info!("after");
    });
    assert_eq!(inner.lines(), ["[ERROR] inner: boom", "[INFO] inner: after"]);
}
