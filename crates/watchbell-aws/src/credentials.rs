//! Credentials and region, found the way the AWS tools find them.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use watchbell_core::secret::Secret;

/// How long credentials without an expiry (environment, shared files) are used before the
/// chain is read again: a rotated key in `~/.aws/credentials` is picked up within this time.
pub const REREAD_AFTER: Duration = Duration::from_secs(300);
/// Credentials that expire are refreshed this long before they do.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// An access key: its id, its secret, and for temporary credentials a session token and an
/// expiry. `Debug` shows the key id only.
///
/// ```
/// let c = watchbell_aws::Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
/// let shown = format!("{c:?}");
/// assert!(shown.contains("AKIDEXAMPLE") && !shown.contains("wJalr"));
/// ```
#[derive(Clone)]
pub struct Credentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: Secret<String>,
    pub(crate) session_token: Option<Secret<String>>,
    pub(crate) expires: Option<SystemTime>,
}

impl Credentials {
    /// Long-term credentials: an access key id and its secret access key.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: Secret::new(secret_access_key.into()),
            session_token: None,
            expires: None,
        }
    }

    /// The session token of temporary credentials (`x-amz-security-token`).
    pub fn session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(Secret::new(token.into()));
        self
    }

    /// When temporary credentials expire: they are read again from their source before then.
    pub fn expires(mut self, at: SystemTime) -> Self {
        self.expires = Some(at);
        self
    }

    /// The access key id (not a secret: it names the key).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret parts, to scrub from whatever a peer answers.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let mut v = vec![self.secret_access_key.expose().clone()];
        if let Some(t) = &self.session_token {
            v.push(t.expose().clone());
        }
        v.retain(|s| !s.is_empty());
        v
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field("session_token", &self.session_token.as_ref().map(|_| "[redacted]"))
            .field("expires", &self.expires.map(watchbell_core::time::rfc3339))
            .finish()
    }
}

/// Where credentials come from.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    /// Given to the builder: used as they are.
    Static(Credentials),
    /// The chain: environment, then the shared files' profile.
    Chain { profile: Option<String> },
}

/// The environment variable, if set and not empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The profile name: the builder's, `AWS_PROFILE`, else `default`.
pub(crate) fn profile_name(profile: Option<&str>) -> String {
    profile.map(str::to_owned).or_else(|| env("AWS_PROFILE")).unwrap_or_else(|| "default".to_owned())
}

fn home() -> Option<PathBuf> {
    env("HOME").map(PathBuf::from)
}

/// `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.
pub(crate) fn credentials_file() -> Option<PathBuf> {
    env("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from).or_else(|| home().map(|h| h.join(".aws/credentials")))
}

/// `AWS_CONFIG_FILE`, else `~/.aws/config`.
pub(crate) fn config_file() -> Option<PathBuf> {
    env("AWS_CONFIG_FILE").map(PathBuf::from).or_else(|| home().map(|h| h.join(".aws/config")))
}

/// The sections of an INI file: `[name]` → keys (lower-cased) → values. Comments (`#`, `;`)
/// and indented sub-keys (`s3 =` blocks) are skipped.
pub(crate) fn parse_ini(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some(name) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            let name = name.trim().to_owned();
            out.entry(name.clone()).or_default();
            current = Some(name);
        } else if let (Some(section), Some((k, v))) = (&current, l.split_once('=')) {
            out.entry(section.clone()).or_default().insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    out
}

/// The keys of `profile`: the credentials file's `[profile]` over the config file's
/// `[profile profile]` (`[default]` in both).
fn profile_keys(profile: &str) -> HashMap<String, String> {
    let mut keys = HashMap::new();
    if let Some(text) = config_file().and_then(|p| std::fs::read_to_string(p).ok()) {
        let ini = parse_ini(&text);
        let name = if profile == "default" { "default".to_owned() } else { format!("profile {profile}") };
        if let Some(s) = ini.get(&name).or_else(|| if profile == "default" { ini.get("profile default") } else { None })
        {
            keys.extend(s.clone());
        }
    }
    if let Some(text) = credentials_file().and_then(|p| std::fs::read_to_string(p).ok()) {
        if let Some(s) = parse_ini(&text).get(profile) {
            keys.extend(s.clone());
        }
    }
    keys
}

/// The region of the chain: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`.
pub(crate) fn chain_region(profile: Option<&str>) -> Option<String> {
    env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| profile_keys(&profile_name(profile)).get("region").cloned().filter(|r| !r.is_empty()))
}

/// Reads the chain once: the environment's key, else the profile's key or its
/// `credential_process`. Errors name where was looked, never a secret.
pub(crate) fn read_chain(profile: Option<&str>) -> Result<Credentials, String> {
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        let mut c = Credentials::new(id, secret);
        if let Some(t) = env("AWS_SESSION_TOKEN") {
            c = c.session_token(t);
        }
        if let Some(at) = env("AWS_CREDENTIAL_EXPIRATION").and_then(|s| watchbell_core::time::parse_rfc3339(&s)) {
            c = c.expires(at);
        }
        return Ok(c);
    }
    let name = profile_name(profile);
    let keys = profile_keys(&name);
    if let (Some(id), Some(secret)) = (keys.get("aws_access_key_id"), keys.get("aws_secret_access_key")) {
        if !id.is_empty() && !secret.is_empty() {
            let mut c = Credentials::new(id.clone(), secret.clone());
            if let Some(t) = keys.get("aws_session_token").filter(|t| !t.is_empty()) {
                c = c.session_token(t.clone());
            }
            return Ok(c);
        }
    }
    if let Some(cmd) = keys.get("credential_process").filter(|c| !c.is_empty()) {
        return credential_process(cmd, &name);
    }
    Err(format!(
        "no AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, and profile `{name}` has no \
         aws_access_key_id/aws_secret_access_key or credential_process in {} or {}",
        credentials_file().map_or("~/.aws/credentials".into(), |p| p.display().to_string()),
        config_file().map_or("~/.aws/config".into(), |p| p.display().to_string()),
    ))
}

/// Runs a profile's `credential_process` (through `sh -c`) and reads its JSON (`Version` 1,
/// `AccessKeyId`, `SecretAccessKey`, optional `SessionToken` and `Expiration`).
fn credential_process(cmd: &str, profile: &str) -> Result<Credentials, String> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("profile `{profile}`: credential_process could not run: {e}"))?;
    if !out.status.success() {
        return Err(format!("profile `{profile}`: credential_process exited with {}", out.status));
    }
    let j: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|_| format!("profile `{profile}`: credential_process did not print JSON"))?;
    let text = |k: &str| j.get(k).and_then(serde_json::Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let (Some(id), Some(secret)) = (text("AccessKeyId"), text("SecretAccessKey")) else {
        return Err(format!("profile `{profile}`: credential_process printed no AccessKeyId/SecretAccessKey"));
    };
    let mut c = Credentials::new(id, secret);
    if let Some(t) = text("SessionToken") {
        c = c.session_token(t);
    }
    if let Some(at) = text("Expiration").and_then(|s| watchbell_core::time::parse_rfc3339(&s)) {
        c = c.expires(at);
    }
    Ok(c)
}

/// The credentials a sink signs with, read again when they are about to expire (or, without
/// an expiry, every [`REREAD_AFTER`]), and after the service said they were refused.
#[derive(Debug)]
pub(crate) struct Provider {
    source: Source,
    cached: Option<(Credentials, Instant)>,
}

impl Provider {
    pub(crate) fn new(source: Source) -> Self {
        Provider { source, cached: None }
    }

    /// The credentials to sign with now.
    pub(crate) fn get(&mut self) -> Result<Credentials, String> {
        if let Some((c, at)) = &self.cached {
            let fresh = match (c.expires, &self.source) {
                (Some(e), _) => SystemTime::now().checked_add(REFRESH_BEFORE).is_some_and(|soon| soon < e),
                (None, Source::Static(_)) => true,
                (None, Source::Chain { .. }) => at.elapsed() < REREAD_AFTER,
            };
            if fresh {
                return Ok(c.clone());
            }
        }
        let c = match &self.source {
            Source::Static(c) => c.clone(),
            Source::Chain { profile } => match read_chain(profile.as_deref()) {
                Ok(c) => c,
                // The old ones until they expire, rather than nothing.
                Err(e) => match &self.cached {
                    Some((old, _)) if old.expires.is_none_or(|x| SystemTime::now() < x) => return Ok(old.clone()),
                    _ => return Err(e),
                },
            },
        };
        self.cached = Some((c.clone(), Instant::now()));
        Ok(c)
    }

    /// The service refused the credentials (expired or unknown): read the source again
    /// before the next request.
    pub(crate) fn invalidate(&mut self) {
        if matches!(self.source, Source::Chain { .. }) {
            self.cached = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections_keys_comments_and_sub_blocks() {
        let ini = parse_ini(
            "# c\n[default]\naws_access_key_id = A\nAWS_Secret_Access_Key=B\n; x\n[profile ci]\nregion = eu-west-1\ns3 =\n  max_concurrent_requests = 3\n",
        );
        assert_eq!(ini["default"]["aws_access_key_id"], "A");
        assert_eq!(ini["default"]["aws_secret_access_key"], "B");
        assert_eq!(ini["profile ci"]["region"], "eu-west-1");
        assert!(!ini["profile ci"].contains_key("max_concurrent_requests"));
    }
}
