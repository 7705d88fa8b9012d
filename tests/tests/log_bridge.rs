//! `log` records through the tracing bridge: original location, level, key-values, spans.
//! (One test: the `log` logger is process-global.)

use tracing::Level;
use tracing_subscriber::prelude::*;
use watchbell_core::{CaptureLayer, Origin, Value};
use watchbell_test::TestLayer;

#[test]
fn log_records_keep_their_location_and_key_values() {
    watchbell_log::LogBridge::new().ignore_crates(&["ignored_crate"]).init().unwrap();
    let got = TestLayer::new();
    let text = TestLayer::new();
    let sub = tracing_subscriber::registry()
        .with(CaptureLayer::new(got.handler()).with_level(Level::INFO))
        .with(text.clone());
    let line = line!() + 5;
    tracing::subscriber::with_default(sub, || {
        let span = tracing::info_span!("request", id = 9);
        let _e = span.enter();
        log::debug!("below the layer level");
        log::warn!(target: "billing", order = 42, paid = false, who = "bob"; "card {} declined", "visa");
        log::error!(target: "ignored_crate::x", "ignored");
        // A log record emitted on a watchbell thread is passed on but never captured.
        watchbell_core::capture::suppressed(|| log::error!("from watchbell's own client"));
    });
    let recs = got.records();
    assert_eq!(recs.len(), 1, "{:?}", got.lines());
    let r = &recs[0];
    assert_eq!(r.level, Level::WARN);
    assert_eq!(r.target, "billing");
    assert_eq!(r.file.as_deref(), Some(file!()));
    assert_eq!(r.line, Some(line));
    assert_eq!(r.module.as_deref(), Some(module_path!()));
    assert_eq!(r.message, "card visa declined");
    assert_eq!(r.fields.get("order"), Some(&Value::I64(42)));
    assert_eq!(r.fields.get("paid"), Some(&Value::Bool(false)));
    assert_eq!(r.fields.get("who"), Some(&Value::Str("bob".into())));
    assert!(r.fields.get("log.target").is_none());
    assert_eq!(r.spans.len(), 1);
    assert_eq!(r.origin, Origin::Log);

    // The other (text) layer also saw them, with the key-values in the message.
    let lines = text.records();
    assert!(lines.iter().any(|r| r.message == "card visa declined order=42 paid=false who=bob"), "{:?}", text.lines());
    assert!(!text.lines().iter().any(|l| l.contains("ignored")));
}
