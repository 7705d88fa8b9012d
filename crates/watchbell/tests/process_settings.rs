//! The top-level keys that set process-wide behaviour: `panics` and `errors`.
#![cfg(feature = "config")]

use watchbell::core::report::{error_reporter, ErrorReporter};
use watchbell::Config;

#[test]
fn errors_and_panics_keys_are_read_checked_and_applied() {
    let bad = Config::from_toml_str("errors = \"loud\"").expect("parses").apply_process_settings().unwrap_err();
    assert_eq!(bad.problems().len(), 1);
    assert_eq!(bad.problems()[0].key, "errors");
    assert!(matches!(error_reporter(), ErrorReporter::Stderr), "nothing applied on a problem");

    let config = Config::from_toml_str("app = \"billing\"\npanics = true\nerrors = \"silent\"\n").expect("parses");
    assert!(config.panics);
    assert!(format!("{config:?}").contains("panics: true"));
    config.apply_process_settings().unwrap();
    assert!(matches!(error_reporter(), ErrorReporter::Silent));
    assert!(!watchbell::capture_panics(), "`panics = true` installed the hook already");

    Config::from_toml_str("errors = \"stderr\"").unwrap().apply_process_settings().unwrap();
    assert!(matches!(error_reporter(), ErrorReporter::Stderr));

    // The same keys from WATCHBELL_PANICS and WATCHBELL_ERRORS.
    let vars =
        vec![("WATCHBELL_PANICS".to_owned(), "true".to_owned()), ("WATCHBELL_ERRORS".to_owned(), "silent".to_owned())];
    let config = Config::default().with_vars(vars).unwrap();
    assert!(config.panics);
    config.apply_process_settings().unwrap();
    assert!(matches!(error_reporter(), ErrorReporter::Silent));
    Config::from_toml_str("errors = \"stderr\"").unwrap().apply_process_settings().unwrap();
}
