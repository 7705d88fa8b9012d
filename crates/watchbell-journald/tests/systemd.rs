//! Against systemd-journald itself: a journald of a private journal namespace is started for
//! the test (`systemd-journald NAMESPACE`, Debian's `systemd` package; `.ci/run` installs it when
//! absent), the layer writes to its socket, and `journalctl --namespace` reads the entries back.
//! The test fails, never skips, when journald cannot be started.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracing_subscriber::prelude::*;
use watchbell_journald::JournaldLayer;

const JOURNALD: &str = "/lib/systemd/systemd-journald";

/// A journald of its own namespace, stopped (and its journal removed) when dropped.
struct Journald {
    child: Child,
    namespace: String,
}

impl Journald {
    fn start() -> Journald {
        assert!(
            std::path::Path::new(JOURNALD).exists(),
            "{JOURNALD} is missing: install Debian's systemd package (apt-get install systemd), as .ci/run does"
        );
        let namespace = format!("watchbell{}", std::process::id());
        let child = Command::new(JOURNALD)
            .arg(&namespace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {JOURNALD}: {e}"));
        let j = Journald { child, namespace };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !j.socket().exists() {
            assert!(Instant::now() < deadline, "journald did not open {} (is this root?)", j.socket().display());
            std::thread::sleep(Duration::from_millis(20));
        }
        j
    }

    fn socket(&self) -> PathBuf {
        PathBuf::from(format!("/run/systemd/journal.{}/socket", self.namespace))
    }

    /// The entries of `identifier`, as JSON objects (every field, however long).
    fn read(&self, identifier: &str, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = Command::new("journalctl")
                .args(["--namespace", &self.namespace, "--all", "-o", "json", "--no-pager"])
                .arg(format!("SYSLOG_IDENTIFIER={identifier}"))
                .output()
                .expect("journalctl runs");
            let entries: Vec<serde_json::Value> =
                String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
            if entries.len() >= n || Instant::now() > deadline {
                return entries;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(format!("/run/systemd/journal.{}", self.namespace));
        for root in ["/var/log/journal", "/run/log/journal"] {
            if let Ok(dirs) = std::fs::read_dir(root) {
                for d in dirs.flatten() {
                    if d.file_name().to_string_lossy().ends_with(&format!(".{}", self.namespace)) {
                        let _ = std::fs::remove_dir_all(d.path());
                    }
                }
            }
        }
    }
}

#[test]
fn systemd_journald_stores_the_entries_fields_and_a_one_megabyte_message() {
    let journald = Journald::start();
    let identifier = format!("watchbell-test-{}", std::process::id());
    let (layer, guard) =
        JournaldLayer::builder().socket(journald.socket()).syslog_identifier(&identifier).build().unwrap();
    let big = "€".repeat(350_000);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let span = tracing::info_span!("request", id = 7);
        let _e = span.enter();
        tracing::error!(invoice = 42, user.id = "u-1", "payment failed\nwith details");
        tracing::warn!("{big}");
    });
    assert!(guard.flush(Duration::from_secs(20)).is_complete(), "{:?}", guard.stats());
    let entries = journald.read(&identifier, 2);
    assert_eq!(entries.len(), 2, "{entries:?}");
    let e = &entries[0];
    assert_eq!(e["MESSAGE"], "payment failed\nwith details");
    assert_eq!(e["PRIORITY"], "3");
    assert_eq!(e["INVOICE"], "42");
    assert_eq!(e["USER_ID"], "u-1");
    assert_eq!(e["S0_NAME"], "request");
    assert_eq!(e["S0_ID"], "7");
    assert_eq!(e["TARGET"], "systemd");
    assert_eq!(e["_TRANSPORT"], "journal");
    assert_eq!(e["_PID"], std::process::id().to_string());
    assert_eq!(entries[1]["MESSAGE"], big.as_str(), "the 1 MB entry arrived whole (through a memfd)");
    assert_eq!(entries[1]["PRIORITY"], "4");
}
