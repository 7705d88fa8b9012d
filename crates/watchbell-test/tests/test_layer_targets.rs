//! TestLayer's target-filtered assertions (Logbook's `channel=`) and `formatted_records`.
use tracing_core::Level;
use watchbell_test::TestLayer;

fn captured() -> TestLayer {
    let logs = TestLayer::new();
    logs.in_scope(|| {
        tracing::warn!(target: "app::db", "slow query");
        tracing::warn!(target: "app::db::pool", "pool exhausted");
        tracing::warn!(target: "app::dbx", "other crate");
        tracing::error!(target: "app::http", "bad gateway");
        tracing::info!(target: "app::http", "request served");
    });
    logs
}

#[test]
fn a_target_takes_itself_and_its_modules_only() {
    let logs = captured();
    assert!(logs.has_warning_in("app::db", "slow query"));
    assert!(logs.has_warning_in("app::db", "pool exhausted"), "a module under the target");
    assert!(logs.has_warning_in("app::db::pool", "pool exhausted"));
    assert!(!logs.has_warning_in("app::db::pool", "slow query"), "the parent is not under the child");
    assert!(!logs.has_warning_in("app::db", "other crate"), "app::dbx is not under app::db");
    assert!(!logs.has_warning_in("app::d", "slow query"), "not a module boundary");
    assert!(!logs.has_warning_in("app::http", "slow query"), "the message is there, the target is not");
    // The unfiltered assertion sees it: the filter is what excludes it.
    assert!(logs.has_warning("other crate"));
}

#[test]
fn the_level_is_checked_with_the_target() {
    let logs = captured();
    assert!(logs.has_error_in("app::http", "bad gateway"));
    assert!(!logs.has_warning_in("app::http", "bad gateway"));
    assert!(logs.has_info_in("app::http", "request served"));
    assert!(!logs.has_debug_in("app::http", "request served"));
    assert!(!logs.has_trace_in("app", "request served"));
    assert!(logs.has_in(Level::INFO, "app", "request served"));
    assert!(logs.has_level_in(Level::ERROR, "app::http"));
    assert!(!logs.has_level_in(Level::ERROR, "app::db"));
    assert_eq!(logs.count_in(Level::WARN, "app::db"), 2);
    assert_eq!(logs.count_in(Level::WARN, "app"), 3);
    assert!(logs.has_match_in(Level::WARN, "app::db", "^pool"));
    assert!(!logs.has_match_in(Level::WARN, "app::http", "^pool"));
    let db: Vec<_> = logs.records_in("app::db").into_iter().map(|r| r.message).collect();
    assert_eq!(db, ["slow query", "pool exhausted"]);
}

#[test]
fn formatted_records_use_the_default_test_format() {
    let logs = captured();
    assert_eq!(
        logs.formatted_records(),
        [
            "[WARN] app::db: slow query",
            "[WARN] app::db::pool: pool exhausted",
            "[WARN] app::dbx: other crate",
            "[ERROR] app::http: bad gateway",
            "[INFO] app::http: request served",
        ]
    );
}
