//! The HTTP transport every HTTP sink shares: a reqwest client on watchbell's own runtime
//! (rustls, certificates verified), bounded response reading, and the mapping of responses
//! and errors to [`Outcome`]s.
//!
//! - 2xx → delivered.
//! - 429 → retry after `Retry-After` (seconds or an HTTP date), or backoff without it.
//! - 408, 425, 500, 502, 503, 504 and other 5xx → retry (with `Retry-After` when given).
//! - Other 4xx → permanent: retrying an invalid payload or a revoked token cannot help.
//! - Timeouts and connection errors → retry.
//!
//! Plain `http://` is refused unless the host is loopback or the sink's user opted in: a
//! webhook token must not cross a network in clear text by accident. Error messages never
//! contain the URL (where tokens live), only [`redact_url`]'s form of it.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, SystemTime};

use crate::delivery::Outcome;
use crate::secret::redact_url;

pub use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
pub use reqwest::{Method, RequestBuilder};

/// The most response body bytes read (error descriptions are short; the rest is discarded).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A received response: status, headers and the (bounded) body.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, at most [`MAX_RESPONSE_BYTES`].
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The delay asked for by `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        parse_retry_after(self.header("retry-after")?, SystemTime::now())
    }

    /// The default classification (see the [module docs](self)); `what` names the
    /// destination in the reason.
    pub fn outcome(&self, what: &str) -> Outcome {
        classify(self.status, self.retry_after(), what, &self.text())
    }
}

/// Maps a status (and the server's requested delay) to an [`Outcome`]. `body` is quoted,
/// shortened, in the reason.
pub fn classify(status: u16, retry_after: Option<Duration>, what: &str, body: &str) -> Outcome {
    // A peer may echo the request (its URL, its Authorization header) in its error body:
    // redacted by shape before it is cut, so a cut cannot split a secret out of its shape.
    let body = crate::secret::redact_text(body.trim());
    // Control characters escaped: a body cannot forge stderr lines or send terminal escapes.
    let snippet: String = body.chars().take(200).collect();
    let snippet = crate::text::escape_controls(&snippet);
    let reason = if snippet.is_empty() {
        format!("{what} answered {status}")
    } else {
        format!("{what} answered {status}: {snippet}")
    };
    match status {
        200..=299 => Outcome::Delivered,
        429 | 408 | 425 | 500..=599 => Outcome::retry_after(retry_after, reason),
        _ => Outcome::permanent(reason),
    }
}

/// Parses a `Retry-After` value: delay-seconds, or an HTTP date (relative to `now`; a date in
/// the past means no delay). Total: it never panics, whatever the peer sent.
///
/// - Seconds of any size: beyond what a `Duration` holds (`18446744073709551615` and longer
///   digit strings) the result is `Duration::MAX`. The delivery caps every server-requested
///   delay at [`Retry::max_server_delay`](crate::delivery::Retry::max_server_delay) (one hour by
///   default) and counts the capped ones in `Stats::delays_capped`.
/// - Fractional seconds (`1.5`, which some proxies send) are accepted, saturating like
///   [`secs_f64`](crate::time::secs_f64).
/// - Negative, non-numeric, NaN/infinite and malformed dates are `None`: the request is
///   retried on the ordinary backoff, as if no delay had been asked for.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use watchbell_core::http::parse_retry_after;
/// let now = SystemTime::now();
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// assert_eq!(parse_retry_after("18446744073709551615", now), Some(Duration::from_secs(u64::MAX)));
/// assert_eq!(parse_retry_after("99999999999999999999999", now), Some(Duration::MAX));
/// assert_eq!(parse_retry_after("-5", now), None);
/// assert_eq!(parse_retry_after("soon", now), None);
/// assert_eq!(parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now), Some(Duration::ZERO));
/// assert!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now).unwrap() > Duration::from_secs(1 << 35));
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only: seconds, saturating (u64 parsing fails only by overflow here).
        return Some(v.parse::<u64>().map_or(Duration::MAX, Duration::from_secs));
    }
    if v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return v.parse::<f64>().ok().filter(|s| s.is_finite()).map(crate::time::secs_f64);
    }
    if v.starts_with(['-', '+']) || v.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
        return None;
    }
    let at = crate::time::parse_http_date(v)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A failed exchange: no response was received.
#[derive(Debug)]
pub struct HttpError {
    /// What failed, without the URL.
    pub reason: String,
    /// Whether it was a timeout.
    pub timeout: bool,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for HttpError {}

impl HttpError {
    fn from_reqwest(e: reqwest::Error, url: &str) -> Self {
        let timeout = e.is_timeout();
        let e = e.without_url();
        let mut reason = format!("request to {} failed: {e}", redact_url(url));
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            source = s.source();
        }
        // A source may print the URL again; never let it out.
        if let Some(i) = url.find("://") {
            let tail = &url[i + 3..];
            if !tail.is_empty() {
                reason = reason.replace(tail, "…");
            }
        }
        let reason = crate::secret::redact_text(&reason).into_owned();
        HttpError { reason, timeout }
    }

    /// A connection error or timeout is always worth retrying.
    pub fn outcome(&self) -> Outcome {
        Outcome::retry(self.reason.clone())
    }
}

/// Builds an [`HttpClient`].
#[derive(Clone, Debug)]
pub struct HttpClientBuilder {
    timeout: Duration,
    connect_timeout: Duration,
    allow_plain_http: bool,
    user_agent: String,
}

impl HttpClientBuilder {
    /// The whole-request timeout (default 10 s): a stalled server costs at most this.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// The connect timeout (default 5 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Allows `http://` to hosts that are not loopback (default: refused).
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// The `User-Agent` (default `watchbell/VERSION`).
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    fn client(&self) -> Result<reqwest::Client, String> {
        reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent.clone())
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", e.without_url()))
    }

    /// Builds the client (it connects lazily, on watchbell's runtime).
    pub fn build(self) -> Result<HttpClient, String> {
        // Fail at build time if the client cannot be made at all (a TLS set-up problem).
        let first = self.client()?;
        Ok(HttpClient { clients: Arc::new(Mutex::new(vec![(None, first)])), config: self })
    }
}

/// A reqwest client and the thread it belongs to (`None`: not yet claimed).
type ThreadClient = (Option<ThreadId>, reqwest::Client);

/// An HTTP client for sinks. Call [`send`](HttpClient::send) only on a delivery worker (it
/// runs the request on that thread's watchbell runtime).
///
/// Clones share configuration, and each thread that sends gets a connection pool of its own:
/// a pooled connection belongs to the runtime that opened it, and every delivery worker has its
/// own runtime, so one worker must never pick up a connection another worker's (possibly
/// finished) runtime drives.
#[derive(Clone, Debug)]
pub struct HttpClient {
    /// One reqwest client per sending thread; the first is made at build time and given to the
    /// first thread that sends.
    clients: Arc<Mutex<Vec<ThreadClient>>>,
    config: HttpClientBuilder,
}

impl HttpClient {
    /// A builder with the defaults.
    pub fn builder() -> HttpClientBuilder {
        HttpClientBuilder {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            allow_plain_http: false,
            user_agent: concat!("watchbell/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// Checks that `url` is absolute http(s) and allowed by the plain-HTTP policy. Sink
    /// builders call it so that a bad URL is a build-time error.
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        check_url(url, self.config.allow_plain_http)
    }

    /// The current thread's reqwest client.
    fn thread_client(&self) -> reqwest::Client {
        let me = std::thread::current().id();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = clients.iter().find(|(t, _)| *t == Some(me)) {
            return c.clone();
        }
        if let Some(slot) = clients.iter_mut().find(|(t, _)| t.is_none()) {
            slot.0 = Some(me);
            return slot.1.clone();
        }
        // The configuration built once already; building again the same way does not fail in
        // practice, and if it did, the first client is still a working (shared) fallback.
        let c = self.config.client().unwrap_or_else(|_| clients[0].1.clone());
        clients.push((Some(me), c.clone()));
        c
    }

    /// A request builder for `method` and `url`, on the current thread's client.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.thread_client().request(method, url)
    }

    /// Sends a request built with [`request`](HttpClient::request) and reads the response
    /// (its body up to [`MAX_RESPONSE_BYTES`]). `url` is only used for error messages, redacted.
    pub fn send(&self, request: RequestBuilder, url: &str) -> Result<HttpResponse, HttpError> {
        if let Err(reason) = self.check_url(url) {
            return Err(HttpError { reason, timeout: false });
        }
        crate::runtime::block_on(async {
            let mut resp = request.send().await.map_err(|e| HttpError::from_reqwest(e, url))?;
            let status = resp.status().as_u16();
            let headers = std::mem::take(resp.headers_mut());
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| HttpError::from_reqwest(e, url))? {
                let room = MAX_RESPONSE_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= MAX_RESPONSE_BYTES {
                    break;
                }
            }
            Ok(HttpResponse { status, headers, body })
        })
    }
}

/// Whether `url` is an absolute http(s) URL allowed by the plain-HTTP policy.
pub fn check_url(url: &str, allow_plain_http: bool) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL {}: {e}", redact_url(url)))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback || allow_plain_http {
                Ok(())
            } else {
                Err(format!(
                    "refusing plain http:// to {} (tokens would travel unencrypted); use https:// or opt in to plain HTTP",
                    redact_url(url)
                ))
            }
        }
        // Without `://` what parses as a scheme may be the user of `user:password@host`.
        _ if !url.contains("://") => Err("not an absolute URL (no scheme://): expected https://…".to_owned()),
        other => Err(format!("unsupported URL scheme {other:?} in {}: expected https", redact_url(url))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_echoing_the_request_gets_its_secrets_redacted_in_the_reason() {
        let pad = "x".repeat(150);
        let body = format!(
            "unauthorized: POST /services/T0A/B0B/hookS3cret?api_key=K3y {pad} Authorization: Basic dXNlcjpwYXNz\n\
             POST https://user:pa/ss@h.example/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw4/sendMessage"
        );
        for status in [401, 503] {
            let reason = match classify(status, None, "collector", &body) {
                Outcome::Permanent { reason } | Outcome::Retry { reason, .. } => reason,
                other => panic!("{other:?}"),
            };
            assert!(
                reason.starts_with(&format!("collector answered {status}: unauthorized: POST /services/[redacted]"))
            );
            for secret in ["hookS3cret", "K3y", "dXNlcjpwYXNz", "pa/ss", "AAHdq", "123456789"] {
                assert!(!reason.contains(secret), "{secret} in {reason}");
            }
        }
    }

    #[test]
    fn a_url_error_never_shows_credentials() {
        for url in ["https://user:pa/ss@[::1/x", "user:Pa55word@logs.example/push", "ftp://user:Pa55word@h/x?token=T0k"]
        {
            let err = check_url(url, false).unwrap_err();
            for secret in ["user", "pa/ss", "Pa55", "T0k"] {
                assert!(!err.contains(secret), "{secret} in {err}");
            }
        }
        assert!(check_url("ftp://h.example/x", false).unwrap_err().contains("\"ftp\""));
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("1.5", now), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:27 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("later", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn statuses() {
        assert_eq!(classify(200, None, "x", ""), Outcome::Delivered);
        assert_eq!(classify(204, None, "x", ""), Outcome::Delivered);
        assert!(
            matches!(classify(429, Some(Duration::from_secs(2)), "x", ""), Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(2))
        );
        assert!(matches!(classify(503, None, "x", ""), Outcome::Retry { after: None, .. }));
        assert!(
            matches!(classify(404, None, "x", "channel_not_found"), Outcome::Permanent { reason } if reason.contains("channel_not_found"))
        );
        assert!(matches!(classify(400, None, "x", ""), Outcome::Permanent { .. }));
    }

    #[test]
    fn url_policy() {
        assert!(check_url("https://hooks.slack.com/services/a/b/c", false).is_ok());
        assert!(check_url("http://127.0.0.1:8080/x", false).is_ok());
        assert!(check_url("http://[::1]:8080/x", false).is_ok());
        assert!(check_url("http://localhost/x", false).is_ok());
        let e = check_url("http://logs.example.com/secret-token", false).unwrap_err();
        assert!(e.contains("refusing") && !e.contains("secret-token"), "{e}");
        assert!(check_url("http://logs.example.com/x", true).is_ok());
        let e = check_url("ftp://example.com/token123", false).unwrap_err();
        assert!(!e.contains("token123"), "{e}");
        let e = check_url("not a url with token123", false).unwrap_err();
        assert!(!e.contains("token123"), "{e}");
    }
}
