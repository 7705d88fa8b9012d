//! The whole stack built from a TOML file and from `WATCHBELL_*` variables: every sink delivers
//! an `error!` to its loopback fake.
mod common;

use std::process::Command;

use common::{Fakes, FakesExt, WAIT};
use tracing_subscriber::prelude::*;
use watchbell::Config;

#[test]
fn every_sink_delivers_from_a_toml_file() {
    let fakes = Fakes::start("toml");
    let path = fakes.dir.join("watchbell.toml");
    std::fs::write(&path, fakes.toml()).unwrap();
    let config = Config::from_file(&path).expect("the config is valid");
    assert_eq!(config.app.as_deref(), Some("billing"));
    let (layers, guard) = config.layers::<tracing_subscriber::Registry>().expect("every sink builds");
    assert!(layers.len() >= 8, "one layer per sink: {}", layers.len());
    let subscriber = tracing_subscriber::registry().with(layers);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("an info line no alerting sink wants");
        tracing::error!(order = 42, "payment failed from toml");
    });
    assert!(guard.flush(WAIT).is_complete(), "every sink delivered within {WAIT:?}");
    fakes.assert_each_delivered("payment failed from toml");
    // Levels from the config: the info line reached none of the alerting sinks.
    assert!(fakes.slack.messages().iter().all(|m| !m.to_string().contains("info line")));
    assert!(fakes.telegram.messages().iter().all(|m| !m.text.contains("info line")));
    let log = std::fs::read_to_string(fakes.log_path()).unwrap();
    assert!(!log.contains("info line"), "file level is warn: {log}");
}

#[test]
fn every_sink_delivers_from_environment_variables() {
    let fakes = Fakes::start("vars");
    // The same mapping as the process environment (`with_env`), without touching it.
    let config = Config::default().with_vars(fakes.vars()).expect("the variables are valid");
    assert_eq!(config.sms.as_ref().unwrap().recipients, [common::US, common::INDIA]);
    let (layers, guard) = config.layers::<tracing_subscriber::Registry>().expect("every sink builds");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
        tracing::error!("payment failed from vars");
    });
    assert!(guard.flush(WAIT).is_complete());
    fakes.assert_each_delivered("payment failed from vars");
}

/// The child half of [`init_from_the_process_environment_in_a_child_process`].
fn child() {
    let guard = watchbell::init().expect("init reads WATCHBELL_* and installs everything");
    // A second init fails cleanly (the global subscriber is taken), it does not panic.
    let again = watchbell::init_with(Config::default()).unwrap_err();
    assert!(again.to_string().contains("already"), "{again}");
    tracing::error!("payment failed from env");
    // The log bridge is installed: `log` records reach the same sinks.
    log::error!(target: "legacy", "legacy failure through log");
    assert!(guard.flush(WAIT).is_complete());
}

#[test]
fn init_from_the_process_environment_in_a_child_process() {
    if std::env::var_os("WATCHBELL_TEST_CHILD").is_some() {
        return child();
    }
    let fakes = Fakes::start("env");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "init_from_the_process_environment_in_a_child_process", "--test-threads=1", "--nocapture"]);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WATCHBELL_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(fakes.vars()).env("WATCHBELL_TEST_CHILD", "1");
    let out = cmd.output().expect("the test binary runs");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the child failed:\n{text}");
    assert!(text.contains("1 passed"), "the child ran the test:\n{text}");
    fakes.assert_each_delivered("payment failed from env");
    let slack = fakes.slack.wait_for_messages(2, WAIT);
    assert!(slack.iter().any(|m| m.to_string().contains("legacy failure through log")), "{slack:?}");
    // The fmt layer printed the error on stderr (level warn from WATCHBELL_LEVEL).
    assert!(String::from_utf8_lossy(&out.stderr).contains("payment failed from env"), "{text}");
}
