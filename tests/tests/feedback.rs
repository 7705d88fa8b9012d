//! Feedback-proof: with a global TRACE subscriber, the events emitted by watchbell's own HTTP
//! client on its worker and runtime threads are never captured by a watchbell layer.

use std::sync::Arc;
use std::time::Duration;

use tracing::Level;
use tracing_subscriber::prelude::*;
use watchbell_core::{CaptureLayer, Delivery, Guard};
use watchbell_test::collector::{received_records, NdjsonSink};
use watchbell_test::feedback::OwnThreadEvents;
use watchbell_test::http::FakeHttp;
use watchbell_test::TestLayer;

#[test]
fn no_self_captured_records_at_trace() {
    watchbell_log::LogBridge::new().init().unwrap();
    let fake = FakeHttp::start();
    // "localhost" makes the client resolve the name on the runtime's blocking pool too.
    let url = format!("http://localhost:{}/ingest", fake.addr().port());
    let delivery = Delivery::builder("collector", NdjsonSink::new(url)).spawn().unwrap();
    let handler = Arc::new(delivery);
    let guard = Guard::new(handler.clone());
    let everything = TestLayer::new();
    let own = OwnThreadEvents::new();
    // set_global_default, not `.init()`: with tracing-subscriber's `tracing-log` feature,
    // `.init()` would try to install LogTracer next to watchbell's bridge.
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(CaptureLayer::new(handler).with_level(Level::TRACE))
            .with(everything.clone())
            .with(own.clone()),
    )
    .unwrap();

    tracing::error!("the one application record");
    assert!(guard.flush(Duration::from_secs(10)).is_complete());
    // Give a feedback loop, if there were one, time to show.
    std::thread::sleep(Duration::from_millis(300));
    assert!(guard.flush(Duration::from_secs(10)).is_complete());

    assert!(own.count() > 0, "the HTTP client logged on watchbell's threads");
    let shipped = received_records(&fake.requests());
    assert_eq!(shipped.len(), 1, "{shipped:?}");
    assert_eq!(shipped[0]["message"], "the one application record");
    let captured = everything.records();
    let own_captured: Vec<_> =
        captured.iter().filter(|r| r.thread_name.as_deref().is_some_and(|n| n.starts_with("watchbell"))).collect();
    assert!(own_captured.is_empty(), "{own_captured:?}");
    assert_eq!(everything.lines(), ["[ERROR] feedback: the one application record"]);
    let _ = guard.shutdown(Duration::from_secs(5));
}
