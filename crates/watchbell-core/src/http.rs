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
//! - TLS failures (a certificate the client does not trust, a server refusing the client's
//!   certificate or the lack of one, no common protocol) → permanent: the reason starts with
//!   `TLS:`. Retrying cannot fix a trust problem, and the records are not held for hours
//!   against a peer that will never be accepted.
//!
//! Plain `http://` is refused unless the host is loopback or the sink's user opted in: a
//! webhook token must not cross a network in clear text by accident. Error messages never
//! contain the URL (where tokens live), only [`redact_url`]'s form of it.
//!
//! # TLS and proxies
//!
//! The transport is reqwest on rustls (aws-lc-rs); no OpenSSL, no native-tls (client
//! certificates go through reqwest's `Identity::from_pem`, which its `rustls` feature provides:
//! PKCS#8, PKCS#1 RSA and SEC1 EC keys, unencrypted). What every HTTP
//! sink accepts through its builder ([`SinkOptions`](crate::SinkOptions)) and the umbrella's
//! `[http_client]` table, gathered in [`HttpSettings`]:
//!
//! | setter | default | meaning |
//! |---|---|---|
//! | `root_certificate(pem)` / `ca_file(path)` | none | extra trusted CAs, **added** to the system's trust store |
//! | `tls_built_in_roots(false)` | `true` | trust **only** the added CAs (a build error if none) |
//! | `client_identity(cert_pem, key_pem)` / `client_identity_files(cert, key)` | none | the client certificate for mTLS |
//! | `proxy(url)` | none | `http://` or `https://` proxy, credentials in the URL (redacted everywhere) |
//! | `no_proxy(list)` | `NO_PROXY` | hosts reached directly |
//! | `proxy_from_env(false)` | `true` | ignore `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY` |
//!
//! Trust by default: the operating system's roots, through rustls-platform-verifier (on Linux
//! the distribution's CA bundle). **Proxies by default:** like curl, the environment variables
//! `HTTPS_PROXY`/`https_proxy` (for `https://` destinations), `HTTP_PROXY`/`http_proxy` (for
//! `http://`; ignored in CGI programs, where `REQUEST_METHOD` is set), `ALL_PROXY`/`all_proxy`
//! and `NO_PROXY`/`no_proxy` are honoured; the macOS and Windows system proxy settings are not
//! read. An explicit `proxy` replaces the variables (but `NO_PROXY` still applies unless
//! `no_proxy` is given); `proxy_from_env(false)` turns them off. Through an `http://` proxy,
//! HTTPS destinations are tunnelled with `CONNECT`: the proxy sees the host name, never the
//! request. Files, PEM and the proxy URL are checked when the sink is built: a problem is a
//! build error naming the setting, never a panic, and never shows key material or credentials.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, SystemTime};

use crate::delivery::Outcome;
pub use crate::options::{ClientIdentity, HttpSettings, PemSource};
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
    /// Whether the TLS handshake failed (the certificate is not trusted, the peer refused ours
    /// or the lack of one, no common protocol): retrying cannot help.
    pub tls: bool,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for HttpError {}

/// What rustls says (in an error chain) when a handshake fails for a reason a retry cannot fix.
const TLS_FAILURES: [&str; 4] =
    ["invalid peer certificate", "received fatal alert", "peer sent no certificates", "peer is incompatible"];

impl HttpError {
    fn from_reqwest(e: reqwest::Error, url: &str, secrets: &[&str]) -> Self {
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
        let reason = crate::secret::scrub(reason, secrets);
        let reason = crate::secret::redact_text(&reason).into_owned();
        let lower = reason.to_ascii_lowercase();
        let tls = !timeout && TLS_FAILURES.iter().any(|t| lower.contains(t));
        let hint = if lower.contains("unknownissuer") {
            " (the server's certificate is not issued by a trusted CA: add its CA with root_certificate or ca_file)"
        } else if lower.contains("certificaterequired") {
            " (the server requires a client certificate: set client_identity)"
        } else {
            ""
        };
        let reason = if tls { format!("TLS: {reason}{hint}") } else { reason };
        HttpError { reason, timeout, tls }
    }

    /// A TLS failure is permanent; a connection error or timeout is worth retrying.
    pub fn outcome(&self) -> Outcome {
        if self.tls {
            Outcome::permanent(self.reason.clone())
        } else {
            Outcome::retry(self.reason.clone())
        }
    }
}

/// Builds an [`HttpClient`].
#[derive(Clone, Debug)]
pub struct HttpClientBuilder {
    timeout: Duration,
    connect_timeout: Duration,
    allow_plain_http: bool,
    user_agent: String,
    settings: HttpSettings,
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

    /// The trusted roots, client certificate and proxy (see the [module docs](self)).
    pub fn settings(mut self, settings: HttpSettings) -> Self {
        self.settings = settings;
        self
    }

    fn client(&self, tls: &Prepared) -> Result<reqwest::Client, String> {
        let mut b = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent.clone())
            .pool_idle_timeout(Duration::from_secs(60));
        if !tls.roots.is_empty() || !self.settings.built_in_roots {
            b = if self.settings.built_in_roots {
                b.tls_certs_merge(tls.roots.iter().cloned())
            } else {
                b.tls_certs_only(tls.roots.iter().cloned())
            };
        }
        if let Some(identity) = &tls.identity {
            b = b.identity(identity.clone());
        }
        b = match &tls.proxy {
            Some(proxy) => b.proxy(proxy.clone()),
            None if !self.settings.proxy_from_env => b.no_proxy(),
            None => b,
        };
        b.build().map_err(|e| {
            let text = crate::secret::scrub(e.without_url().to_string(), &tls.secrets());
            format!("cannot build the HTTP client: {}", crate::secret::redact_text(&text))
        })
    }

    /// Reads and checks the settings' files, PEM and proxy URL.
    fn prepare(&self) -> Result<Prepared, String> {
        let s = &self.settings;
        let mut roots = Vec::new();
        for (i, source) in s.roots.iter().enumerate() {
            let name = match source {
                PemSource::File(_) => "ca_file",
                PemSource::Pem(_) => "root_certificate",
            };
            let at = if s.roots.len() > 1 { format!("{name} (root {})", i + 1) } else { name.to_owned() };
            let pem = source.load().map_err(|e| format!("{at}: {e}"))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|_| format!("{at}: not a PEM certificate bundle"))?;
            if certs.is_empty() || !contains(&pem, b"-----BEGIN CERTIFICATE-----") {
                return Err(format!("{at}: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)"));
            }
            roots.extend(certs);
        }
        if roots.is_empty() && !s.built_in_roots {
            return Err(
                "tls_built_in_roots: false without a root_certificate or ca_file would trust no server".to_owned()
            );
        }
        let identity = match &s.identity {
            None => None,
            Some(id) => Some(identity(id)?),
        };
        let (proxy, proxy_secrets) = match &s.proxy {
            None => (None, Vec::new()),
            Some(url) => {
                let (proxy, secrets) = proxy(url.expose(), s.no_proxy.as_deref())?;
                (Some(proxy), secrets)
            }
        };
        Ok(Prepared { roots, identity, proxy, proxy_secrets })
    }

    /// Builds the client (it connects lazily, on watchbell's runtime).
    ///
    /// # Errors
    /// A setting that cannot be used (see [`Options::http_client`](crate::Options::http_client)).
    pub fn build(self) -> Result<HttpClient, String> {
        let tls = Arc::new(self.prepare()?);
        // Fail at build time if the client cannot be made at all (a TLS set-up problem).
        let first = match self.client(&tls) {
            Ok(c) => c,
            Err(e) => {
                // rustls checks the key against the certificate only here: name the setting.
                let mut without = Prepared::clone(&tls);
                if without.identity.take().is_some() && self.client(&without).is_ok() {
                    let which = match self.settings.identity.as_ref().map(|i| &i.cert) {
                        Some(PemSource::File(_)) => "client_identity_files",
                        _ => "client_identity",
                    };
                    return Err(format!(
                        "{which}: the private key does not parse or does not belong to the certificate"
                    ));
                }
                return Err(e);
            }
        };
        Ok(HttpClient { clients: Arc::new(Mutex::new(vec![(None, first)])), config: self, tls })
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The client identity from its PEM parts; errors never quote the key.
fn identity(id: &ClientIdentity) -> Result<reqwest::Identity, String> {
    let which = match id.cert {
        PemSource::File(_) => "client_identity_files",
        PemSource::Pem(_) => "client_identity",
    };
    let cert = id.cert.load().map_err(|e| format!("{which}: certificate: {e}"))?;
    let key = id.key.load().map_err(|e| format!("{which}: key: {e}"))?;
    if !contains(&cert, b"-----BEGIN CERTIFICATE-----") {
        return Err(format!("{which}: certificate: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)"));
    }
    if contains(&key, b"ENCRYPTED PRIVATE KEY") {
        return Err(format!(
            "{which}: key: an encrypted private key; give it unencrypted (PKCS#8, PKCS#1 or SEC1 PEM)"
        ));
    }
    if !contains(&key, b"PRIVATE KEY-----") {
        return Err(format!("{which}: key: no PEM private key found (expected -----BEGIN PRIVATE KEY-----)"));
    }
    let mut both = cert;
    both.push(b'\n');
    both.extend_from_slice(&key);
    reqwest::Identity::from_pem(&both).map_err(|_| {
        format!("{which}: the certificate or the key does not parse (PKCS#8, PKCS#1 or SEC1 PEM expected)")
    })
}

/// The proxy from its URL, and the credentials in it (to scrub from errors).
fn proxy(url: &str, no_proxy: Option<&str>) -> Result<(reqwest::Proxy, Vec<String>), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("proxy: invalid URL {}: {e}", redact_url(url)))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("proxy: {}: expected http://host:port or https://host:port", redact_url(url)));
    }
    let mut secrets = Vec::new();
    if let Some(p) = parsed.password() {
        secrets.push(p.to_owned());
        if let Ok(decoded) = std::str::from_utf8(&percent_decode(p)) {
            secrets.push(decoded.to_owned());
        }
    }
    let proxy = reqwest::Proxy::all(parsed.as_str())
        .map_err(|_| format!("proxy: {}: not a usable proxy URL", redact_url(url)))?;
    let exceptions = match no_proxy {
        Some(list) => reqwest::NoProxy::from_string(list),
        None => reqwest::NoProxy::from_env(),
    };
    Ok((proxy.no_proxy(exceptions), secrets))
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The settings parsed once, at build time: every sending thread's client uses them.
#[derive(Clone)]
struct Prepared {
    roots: Vec<reqwest::Certificate>,
    identity: Option<reqwest::Identity>,
    proxy: Option<reqwest::Proxy>,
    /// The proxy password, as written and decoded.
    proxy_secrets: Vec<String>,
}

impl Prepared {
    fn secrets(&self) -> Vec<&str> {
        self.proxy_secrets.iter().map(String::as_str).collect()
    }
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("roots", &self.roots.len())
            .field("identity", &self.identity.is_some())
            .field("proxy", &self.proxy.is_some())
            .finish_non_exhaustive()
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
    tls: Arc<Prepared>,
}

impl HttpClient {
    /// A builder with the defaults.
    pub fn builder() -> HttpClientBuilder {
        HttpClientBuilder {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            allow_plain_http: false,
            user_agent: concat!("watchbell/", env!("CARGO_PKG_VERSION")).to_owned(),
            settings: HttpSettings::default(),
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
        let c = self.config.client(&self.tls).unwrap_or_else(|_| clients[0].1.clone());
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
            return Err(HttpError { reason, timeout: false, tls: false });
        }
        let secrets = self.tls.secrets();
        crate::runtime::block_on(async {
            let mut resp = request.send().await.map_err(|e| HttpError::from_reqwest(e, url, &secrets))?;
            let status = resp.status().as_u16();
            let headers = std::mem::take(resp.headers_mut());
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| HttpError::from_reqwest(e, url, &secrets))? {
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
