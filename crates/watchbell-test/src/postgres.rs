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
    crate::ci::script("postgres.sh")
}

/// The PostgreSQL URL for tests. Panics (the test fails) when no database is available.
pub fn url() -> String {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    URL.get_or_init(|| {
        let url = crate::ci::from_env_or_script("WATCHBELL_TEST_POSTGRES_URL", "postgres.sh")?;
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            // The URL may hold a password: only its scheme and host are shown.
            return Err(format!("not a postgres:// URL: {}", watchbell_core::secret::redact_url(&url)));
        }
        Ok(url)
    })
    .clone()
    .unwrap_or_else(|e| panic!("PostgreSQL is required for this test and is not available: {e}"))
}
