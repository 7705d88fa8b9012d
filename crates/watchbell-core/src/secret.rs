//! Keeping secrets out of `Debug`, `Display` and error messages.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use crate::redact::{Redactor, REDACTED};

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
/// assert_eq!(redact_url("https://ingest:Se/C@logs.example/push"), "https://logs.example/…");
/// assert_eq!(redact_url("https://logs.example/a@b"), "https://logs.example/…");
/// ```
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => return "[redacted url]".to_owned(),
    };
    // Userinfo ends at the last `@` before the query; a `/` may stand in a password
    // (`user:pa/ss@host`), so an `@` counts when what precedes it has a `:` or no `/`.
    let query = rest.find(['?', '#']).unwrap_or(rest.len());
    let after = match rest[..query].rfind('@') {
        Some(at) if rest[..at].contains(':') || !rest[..at].contains('/') => at + 1,
        _ => 0,
    };
    let hostpart = &rest[after..];
    let end = hostpart.find(['/', '?', '#']).unwrap_or(hostpart.len());
    let host = &hostpart[..end];
    let tail = if hostpart[end..].trim_start_matches('/').is_empty() { "" } else { "/…" };
    format!("{scheme}://{host}{tail}")
}

/// `text` with secrets redacted **by their shape**, for anything watchbell prints, counts or
/// returns about a failure: a peer's error body, an HTTP client's error chain, a config
/// problem, a stats line, a stderr line. What is replaced by `[redacted]`:
///
/// - the userinfo of a URL (`https://user:pass@host` → `https://[redacted]@host`; a `/`, `:` or
///   `@` inside the password included);
/// - the value of every `name=value`, `name: value` and `"name": value` pair whose name is a
///   secret's ([`Redactor`]'s default names: `token`, `api_key`, `password`, `secret`, `auth`,
///   `authorization`, `cookie`, …, and here also `key`, `sig` and `signature`), so URL query
///   parameters, form bodies, JSON and headers such as `Authorization: Bearer …`,
///   `Proxy-Authorization: Basic …` or `X-Api-Key: …`;
/// - Telegram bot tokens (`123456789:AA…`, anywhere, in a path or not);
/// - the secret path of Slack (`/services/T…/B…/…`) and Discord (`/api/webhooks/…`) webhooks.
///
/// Text without any of these shapes is returned as it is, without allocating. It never panics
/// (any input, any size); it errs on the side of hiding.
///
/// ```
/// use watchbell_core::secret::redact_text;
/// assert_eq!(redact_text("POST https://ingest:s3/cr@t@logs.example/x failed"), "POST https://[redacted]@logs.example/x failed");
/// assert_eq!(redact_text("GET /push?api_key=abc&page=2"), "GET /push?api_key=[redacted]&page=2");
/// assert_eq!(redact_text("GET /map?key=abc&sig=def"), "GET /map?key=[redacted]&sig=[redacted]");
/// assert_eq!(redact_text("Authorization: Basic dXNlcjpwYXNz"), "Authorization: [redacted]");
/// assert_eq!(redact_text("POST /bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw4/sendMessage"), "POST /bot[redacted]/sendMessage");
/// assert_eq!(redact_text("https://hooks.slack.com/services/T000/B000/XXXX 404"), "https://hooks.slack.com/services/[redacted] 404");
/// assert_eq!(redact_text("connection refused"), "connection refused");
/// ```
pub fn redact_text(text: &str) -> Cow<'_, str> {
    let shaped = redact_shapes(text);
    match names().redact_text(&shaped) {
        Cow::Borrowed(_) => shaped,
        Cow::Owned(o) => Cow::Owned(o),
    }
}

/// Like [`redact_text`], but secret-named `name=value` pairs are redacted only inside URLs
/// (`scheme://…` up to whitespace or a quote): for the `Debug` of a structure whose own field
/// names are secret names (`token: Some("***")`) and must stay readable, while a URL in one of
/// its values may still carry userinfo or a `?token=`.
///
/// ```
/// use watchbell_core::secret::redact_urls;
/// let debug = r#"Cfg { token: Some("***"), api_base: Some("https://u:pw@proxy.example/?token=t0k&x=1") }"#;
/// assert_eq!(redact_urls(debug), r#"Cfg { token: Some("***"), api_base: Some("https://[redacted]@proxy.example/?token=[redacted]&x=1") }"#);
/// ```
pub fn redact_urls(text: &str) -> Cow<'_, str> {
    let shaped = redact_shapes(text);
    let b = shaped.as_bytes();
    let mut out: Option<String> = None;
    let (mut last, mut i) = (0, 0);
    while let Some(p) = find(b, i, b"://") {
        let start = p + 3;
        let end = token_end(b, start);
        // Both ends are next to ASCII bytes (or the end): char boundaries.
        if let Cow::Owned(redacted) = names().redact_text(&shaped[start..end]) {
            let o = out.get_or_insert_with(|| String::with_capacity(shaped.len()));
            o.push_str(&shaped[last..start]);
            o.push_str(&redacted);
            last = end;
        }
        i = end.max(start);
    }
    match out {
        Some(mut o) => {
            o.push_str(&shaped[last..]);
            Cow::Owned(o)
        }
        None => shaped,
    }
}

fn names() -> &'static Redactor {
    static NAMES: OnceLock<Redactor> = OnceLock::new();
    NAMES.get_or_init(text_redactor)
}

/// The names whose values [`redact_text`] hides: the redaction rule's ([`Redactor::default`]),
/// and the names credentials take in URLs and headers (`key`, `sig`, `signature`: a signed URL,
/// `?key=` of a Google API).
fn text_redactor() -> Redactor {
    Redactor::default().with_pattern("key").with_pattern("sig").with_pattern("signature")
}

/// Where a URL-ish token ends: whitespace, quotes, angle brackets, or the end.
fn token_end(b: &[u8], from: usize) -> usize {
    b[from..]
        .iter()
        .position(|&c| c.is_ascii_whitespace() || matches!(c, b'"' | b'\'' | b'<' | b'>' | b'`'))
        .map_or(b.len(), |p| from + p)
}

/// The byte ranges of userinfo, bot tokens and webhook paths in `text`.
fn shape_ranges(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    // URL userinfo: after `://`, up to the last `@` of the token.
    let mut i = 0;
    while let Some(p) = find(b, i, b"://") {
        let start = p + 3;
        let end = token_end(b, start);
        if let Some(at) = b[start..end].iter().rposition(|&c| c == b'@') {
            if at > 0 {
                ranges.push((start, start + at));
            }
        }
        i = end.max(start);
    }
    // Webhook paths.
    for marker in [&b"/services/"[..], b"/api/webhooks/"] {
        let mut i = 0;
        while let Some(p) = find(b, i, marker) {
            let start = p + marker.len();
            let end = b[start..]
                .iter()
                .position(|&c| c.is_ascii_whitespace() || matches!(c, b'"' | b'\'' | b'<' | b'>' | b'?' | b'#' | b'`'))
                .map_or(b.len(), |q| start + q);
            if end > start {
                ranges.push((start, end));
            }
            i = end.max(start);
        }
    }
    // Telegram bot tokens: 5+ digits, `:`, 30+ of [A-Za-z0-9_-].
    let mut i = 0;
    while i < b.len() {
        if b[i] == b':' {
            let mut d = i;
            while d > 0 && b[d - 1].is_ascii_digit() {
                d -= 1;
            }
            let mut e = i + 1;
            while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_' || b[e] == b'-') {
                e += 1;
            }
            let word_start = d == 0 || !b[d - 1].is_ascii_alphanumeric() || b[..d].ends_with(b"bot");
            if i - d >= 5 && e - i > 30 && word_start {
                ranges.push((d, e));
                i = e;
                continue;
            }
        }
        i += 1;
    }
    ranges.sort_unstable();
    // Merge overlaps.
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from >= hay.len() {
        return None;
    }
    hay[from..].windows(needle.len()).position(|w| w == needle).map(|p| from + p)
}

fn redact_shapes(text: &str) -> Cow<'_, str> {
    let ranges = shape_ranges(text);
    if ranges.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (s, e) in ranges {
        // Every boundary is next to an ASCII byte we matched, so a char boundary.
        out.push_str(&text[last..s]);
        out.push_str(REDACTED);
        last = e;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> String {
        redact_text(text).into_owned()
    }

    #[test]
    fn userinfo_is_hidden_whatever_the_password_holds() {
        for (url, host) in [
            ("https://user:pass@logs.example/push", "logs.example/push"),
            ("https://user:pa/ss@logs.example/push", "logs.example/push"),
            ("https://user:p@ss:w/rd@logs.example:8443/push?x=1", "logs.example:8443/push?x=1"),
            ("https://ACc0ffee:twilioTok3n@api.twilio.com/2010-04-01", "api.twilio.com/2010-04-01"),
            ("postgres://tickets:pgPa55@db.example:5432/t", "db.example:5432/t"),
        ] {
            let out = r(&format!("POST {url} failed: refused"));
            assert_eq!(out, format!("POST {}://[redacted]@{host} failed: refused", url.split("://").next().unwrap()));
        }
    }

    #[test]
    fn secret_named_query_parameters_are_hidden() {
        assert_eq!(r("GET /push?api_key=abc123&page=2"), "GET /push?api_key=[redacted]&page=2");
        assert_eq!(
            r("/x?token=t0k&sig=s1g&signature=s2g&password=pw"),
            "/x?token=[redacted]&sig=[redacted]&signature=[redacted]&password=[redacted]"
        );
        assert_eq!(r("https://h.example/p?page=2&secret=s3"), "https://h.example/p?page=2&secret=[redacted]");
        assert!(!r("https://h.example/p?key=K3yValue").contains("K3yValue"));
    }

    #[test]
    fn authorization_like_headers_are_hidden_with_their_scheme() {
        for header in [
            "Authorization: Basic dXNlcjpwYXNz",
            "authorization: Bearer eyJhbGciOi.payload.sig",
            "Proxy-Authorization: Basic dXNlcjpwYXNz",
            "X-Api-Key: k3y-Value",
        ] {
            let out = r(&format!("401 echo:\n{header}\ncontent-type: text/plain"));
            let name = header.split(':').next().unwrap();
            assert_eq!(out, format!("401 echo:\n{name}: [redacted]\ncontent-type: text/plain"), "{header}");
        }
    }

    #[test]
    fn telegram_bot_tokens_are_hidden_in_a_path_or_alone() {
        let token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw4";
        assert_eq!(r(&format!("/bot{token}/sendMessage")), "/bot[redacted]/sendMessage");
        assert_eq!(r(&format!("the token {token} was revoked")), "the token [redacted] was revoked");
        // A time or a ratio is not a token.
        assert_eq!(r("at 12:30:45, 3:2 and 2026-11-29T01:30:00Z"), "at 12:30:45, 3:2 and 2026-11-29T01:30:00Z");
    }

    #[test]
    fn slack_and_discord_webhook_paths_are_hidden() {
        assert_eq!(
            r("POST https://hooks.slack.com/services/T0A1/B0B2/xYz123secret: 404"),
            "POST https://hooks.slack.com/services/[redacted] 404"
        );
        assert_eq!(
            r("https://discord.com/api/webhooks/1234/abcDEF?wait=true"),
            "https://discord.com/api/webhooks/[redacted]?wait=true"
        );
    }

    #[test]
    fn text_without_a_secret_shape_is_borrowed_and_unchanged() {
        for text in [
            "",
            "connection refused (os error 111)",
            "collector answered 503: try again later",
            "http://127.0.0.1:3100/loki/api/v1/push",
            "caf\u{e9} \u{1f600} \u{65e5}\u{672c}: 42",
        ] {
            assert!(matches!(redact_text(text), Cow::Borrowed(t) if t == text), "{text}");
        }
    }

    #[test]
    fn never_panics_on_odd_or_huge_input() {
        let pieces = [
            "://",
            "@",
            ":",
            "?",
            "=",
            "&",
            "token",
            "/services/",
            "bot",
            "12345",
            "\u{1f600}",
            "é",
            "\"",
            " ",
            "\n",
            "Authorization",
            "a",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..(seed % 24) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            let out = redact_text(&text);
            assert!(out.len() <= text.len() + 64 * (text.len() + 1), "{text:?}");
        }
        let huge = "https://u:p@h/?token=".repeat(20_000) + &"\u{1f600}".repeat(100_000);
        let out = redact_text(&huge);
        assert!(!out.contains("u:p@"));
        let huge_plain = "x".repeat(4 << 20);
        assert!(matches!(redact_text(&huge_plain), Cow::Borrowed(_)));
    }

    #[test]
    fn redact_urls_keeps_field_names_readable_and_hides_url_secrets() {
        let debug =
            r#"X { password: Some("***"), url: "https://a:b@h.example/p?sig=S1g&page=2", token: { env = "T" } }"#;
        assert_eq!(
            redact_urls(debug),
            r#"X { password: Some("***"), url: "https://[redacted]@h.example/p?sig=[redacted]&page=2", token: { env = "T" } }"#
        );
        assert!(matches!(redact_urls("token: abc, no url here"), Cow::Borrowed(_)));
        let odd = "\u{1f600}://?token=\u{e9}://@".repeat(1000);
        let _ = redact_urls(&odd);
    }

    #[test]
    fn redact_url_keeps_scheme_host_and_port_only() {
        assert_eq!(redact_url("https://user:pa/ss@logs.example/push?api_key=k"), "https://logs.example/…");
        assert_eq!(redact_url("https://user:p@ss@logs.example:8443"), "https://logs.example:8443");
        assert_eq!(redact_url("https://logs.example/x?token=t0k"), "https://logs.example/…");
        assert_eq!(redact_url("not a url with token=t0k"), "[redacted url]");
    }
}
