//! The real peers the workspace's `.ci/` scripts provide (PostgreSQL, moto, the Logbook venv,
//! Chromium): each script installs what is absent, starts it if it is a server, and prints one
//! line — a URL or a path. A test uses the variable CI exports, or runs the script itself.
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The script `.ci/<name>` of this workspace.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.ci").join(name)
}

/// `var` when it is set and not empty, otherwise the line `.ci/<name>` prints (its stderr goes
/// to the test's). The error names the script and the variable to set instead.
pub fn from_env_or_script(var: &str, name: &str) -> Result<String, String> {
    if let Ok(v) = std::env::var(var) {
        if !v.trim().is_empty() {
            return Ok(v.trim().to_owned());
        }
    }
    let script = script(name);
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || line.is_empty() {
        return Err(format!("{} failed ({}); set {var} instead", script.display(), out.status));
    }
    Ok(line)
}
