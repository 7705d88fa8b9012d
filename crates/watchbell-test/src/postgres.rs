//! A PostgreSQL database for tests: `WATCHBELL_TEST_POSTGRES_URL`, or the URL printed by the
//! workspace's `.ci/postgres.sh` (which installs PostgreSQL from Debian's packages if needed and
//! starts a throwaway cluster on 127.0.0.1:54329), run once per test process.
//!
//! Tests that need PostgreSQL call [`url`]; when neither source works, the test fails with a
//! message saying what to do. It is never skipped.
use std::path::PathBuf;
use std::sync::OnceLock;

/// The script that starts the test cluster, in this workspace.
pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.ci/postgres.sh")
}

/// The PostgreSQL URL for tests. Panics (the test fails) when no database is available.
pub fn url() -> String {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("WATCHBELL_TEST_POSTGRES_URL") {
            if !url.trim().is_empty() {
                return Ok(url.trim().to_owned());
            }
        }
        let script = script();
        let out = std::process::Command::new("bash")
            .arg(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() || !url.starts_with("postgres://") {
            return Err(format!(
                "{} failed ({}); set WATCHBELL_TEST_POSTGRES_URL to a PostgreSQL database for the tests",
                script.display(),
                out.status
            ));
        }
        Ok(url)
    })
    .clone()
    .unwrap_or_else(|e| panic!("PostgreSQL is required for this test and is not available: {e}"))
}
