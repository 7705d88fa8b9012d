//! `log` records straight to a watchbell handler, for apps without tracing.

use tracing::Level;
use watchbell_core::{Origin, Value};
use watchbell_test::TestLayer;

#[test]
fn direct_logger_builds_records_with_location_and_fields() {
    let got = TestLayer::new();
    watchbell_log::DirectLogger::new(got.handler(), Level::WARN).init().unwrap();
    let line = line!() + 2;
    log::info!("below the level");
    log::error!(target: "jobs", job = "nightly", tries = 3u64; "job {} failed", "nightly");
    watchbell_core::capture::suppressed(|| log::error!("from watchbell's own thread"));
    let recs = got.records();
    assert_eq!(recs.len(), 1, "{:?}", got.lines());
    let r = &recs[0];
    assert_eq!(r.level, Level::ERROR);
    assert_eq!(r.target, "jobs");
    assert_eq!(r.message, "job nightly failed");
    assert_eq!(r.file.as_deref(), Some(file!()));
    assert_eq!(r.line, Some(line));
    assert_eq!(r.fields.get("job"), Some(&Value::Str("nightly".into())));
    // Integers that fit are recorded as i64 whatever their Rust type.
    assert_eq!(r.fields.get("tries"), Some(&Value::I64(3)));
    assert_eq!(r.origin, Origin::Log);
}
