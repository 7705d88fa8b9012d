//! Keeping secrets out of `Debug`, `Display` and error messages.

use std::fmt;

/// A value that never shows itself in `Debug` or `Display` (webhook URLs, tokens, passwords).
/// Use [`expose`](Secret::expose) where the value is really needed.
///
/// ```
/// use watchbell_core::secret::Secret;
/// let token = Secret::new("123456:ABC-DEF".to_string());
/// assert_eq!(format!("{token:?}"), "Secret([redacted])");
/// assert_eq!(token.expose(), "123456:ABC-DEF");
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The secret itself.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(v: T) -> Self {
        Secret(v)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `text` with every occurrence of each of `secrets` replaced by `[redacted]`: for error texts
/// that may quote a token back (a provider echoing the request URL, a client error naming it)
/// before they are printed or counted. Empty secrets are ignored.
///
/// ```
/// use watchbell_core::secret::scrub;
/// let err = "POST https://api.example/bot123:ABC/sendMessage failed".to_string();
/// assert_eq!(scrub(err, &["123:ABC"]), "POST https://api.example/bot[redacted]/sendMessage failed");
/// ```
pub fn scrub(mut text: String, secrets: &[&str]) -> String {
    for secret in secrets {
        if !secret.is_empty() && text.contains(secret) {
            text = text.replace(secret, "[redacted]");
        }
    }
    text
}

/// Whether a host name (as written in a URL or a server setting; IPv6 with or without brackets)
/// names this machine: `localhost` or a loopback address. Where watchbell allows plain-text
/// transports (http://, SMTP without TLS, PostgreSQL without TLS) without an explicit opt-in.
///
/// ```
/// use watchbell_core::secret::is_loopback_host;
/// assert!(is_loopback_host("localhost") && is_loopback_host("127.0.0.1") && is_loopback_host("[::1]"));
/// assert!(!is_loopback_host("smtp.example.com") && !is_loopback_host("10.0.0.1"));
/// ```
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A URL safe to print: scheme, host and port, with the path, query and credentials (where
/// webhook tokens live) replaced by `…`.
///
/// ```
/// use watchbell_core::secret::redact_url;
/// assert_eq!(redact_url("https://hooks.slack.com/services/T0/B0/XYZ"), "https://hooks.slack.com/…");
/// assert_eq!(redact_url("https://user:pw@example.com:8443/x?token=1"), "https://example.com:8443/…");
/// assert_eq!(redact_url("http://127.0.0.1:3100"), "http://127.0.0.1:3100");
/// ```
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => return "[redacted url]".to_owned(),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let tail = if rest[end..].trim_start_matches('/').is_empty() { "" } else { "/…" };
    format!("{scheme}://{host}{tail}")
}
