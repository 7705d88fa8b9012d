//! `log` records through the tracing bridge: original location, level, key-values, spans.
//! (One test: the `log` logger is process-global.)

use std::sync::{Arc, Mutex};

use tracing::Level;
use tracing_subscriber::prelude::*;
use watchbell_core::{CaptureLayer, Origin, Value};
use watchbell_test::TestLayer;

#[test]
fn log_records_keep_their_location_and_key_values() {
    watchbell_log::LogBridge::new().ignore_crates(&["ignored_crate"]).init().unwrap();
    let got = TestLayer::new();
    let text = Text::default();
    let sub = tracing_subscriber::registry()
        .with(CaptureLayer::new(got.handler()).with_level(Level::INFO))
        .with(tracing_subscriber::fmt::layer().with_writer(text.clone()).with_ansi(false));
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

    // The application's fmt layer saw them too, with the original target and the key-values
    // in the message; records from watchbell's own threads are passed on to it.
    let out = String::from_utf8(text.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("billing: card visa declined order=42 paid=false who=bob"), "{out}");
    assert!(out.contains("from watchbell's own client"), "{out}");
    assert!(!out.contains("ignored"), "{out}");
}

#[derive(Clone, Default)]
struct Text(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Text {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Text {
    type Writer = Text;
    fn make_writer(&'a self) -> Text {
        self.clone()
    }
}
