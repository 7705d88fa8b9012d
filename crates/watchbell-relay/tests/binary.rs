//! The `watchbell-relay` binary: reads a relay.toml (sinks + `[relay]`), prints where it
//! listens, and on SIGTERM drains what it took into the sinks before it exits.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn sigterm_drains_the_queue_into_the_sinks_before_exit() {
    let dir = std::env::temp_dir().join(format!("watchbell-relay-bin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("fleet.log");
    let toml = format!(
        "[file]\npath = \"{}\"\n\n[relay]\nhttp = \"127.0.0.1:0\"\ntoken = {{ env = \"RELAY_TEST_TOKEN\" }}\n",
        log.display()
    );
    std::fs::write(dir.join("relay.toml"), toml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchbell-relay"))
        .arg("--config")
        .arg(dir.join("relay.toml"))
        .env("RELAY_TEST_TOKEN", "t0ken")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening http ").unwrap_or_else(|| panic!("{line:?}")).to_owned();
    let body: String = (0..500)
        .map(|i| {
            format!(
                "{{\"level\":\"ERROR\",\"target\":\"svc\",\"message\":\"record {i}\",\"pid\":77,\"app\":\"shop\"}}\n"
            )
        })
        .collect();
    let client = reqwest::blocking::Client::new();
    let status =
        client.post(format!("http://{addr}/v1/records")).bearer_auth("t0ken").body(body).send().unwrap().status();
    assert_eq!(status.as_u16(), 200);
    let term = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(term.success());
    let end = watchbell_core::time::deadline(Duration::from_secs(20));
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < end, "the relay did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    for i in [0, 250, 499] {
        assert!(text.contains(&format!("record {i}")), "record {i} is in the file");
    }
    assert_eq!(text.lines().filter(|l| l.contains("record ")).count(), 500);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each sink of the relay keeps its own level: records handed over from other services meet the
/// same filter as the events a layer captures (a `[file]` at `warn` takes no INFO record, mail
/// and SMS would take only errors).
#[test]
fn each_sink_keeps_its_level_for_relayed_records() {
    let dir = std::env::temp_dir().join(format!("watchbell-relay-levels-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (warn_log, all_log) = (dir.join("warn.log"), dir.join("all.log"));
    let config = watchbell::Config::from_toml_str(&format!(
        "[file]\npath = \"{}\"\nlevel = \"warn\"\n\n[relay]\nhttp = \"127.0.0.1:0\"\n",
        warn_log.display()
    ))
    .unwrap();
    let (handler, guard) = config.handlers().unwrap();
    // A second file sink, built by hand at TRACE, sees everything: the records did arrive.
    let (all, all_guard) = watchbell_file::FileLayer::builder(&all_log).build_handler().unwrap();
    let fan: std::sync::Arc<dyn watchbell_core::Handler> =
        std::sync::Arc::new(watchbell_core::FanOut::new().with(handler).with(all));
    let relay = watchbell_relay::builder_from(&config).unwrap().spawn(fan).unwrap();
    let addr = relay.http_addr().unwrap();
    let body: String = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
        .iter()
        .map(|l| {
            format!("{{\"level\":\"{l}\",\"target\":\"svc\",\"message\":\"at {l}\",\"pid\":7,\"app\":\"shop\"}}\n")
        })
        .collect();
    let status =
        reqwest::blocking::Client::new().post(format!("http://{addr}/v1/records")).body(body).send().unwrap().status();
    assert_eq!(status.as_u16(), 200);
    assert!(relay.shutdown(Duration::from_secs(10)).is_complete());
    assert!(guard.shutdown(Duration::from_secs(10)).is_complete());
    assert!(all_guard.shutdown(Duration::from_secs(10)).is_complete());
    let warn_text = std::fs::read_to_string(&warn_log).unwrap();
    let all_text = std::fs::read_to_string(&all_log).unwrap();
    for l in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] {
        assert!(all_text.contains(&format!("at {l}")), "{l} reached the relay: {all_text}");
    }
    assert!(warn_text.contains("at WARN") && warn_text.contains("at ERROR"), "{warn_text}");
    for l in ["TRACE", "DEBUG", "INFO"] {
        assert!(!warn_text.contains(&format!("at {l}")), "{l} passed a warn-level sink: {warn_text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
