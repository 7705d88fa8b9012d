//! The settings every sink builder shares, written once.
//!
//! A sink crate's builder holds an [`Options`] and implements [`SinkOptions`] (one method,
//! [`SinkOptions::options_mut`]); the trait then gives it the common setters — `rate_limit`,
//! `no_rate_limit`, `cap`, `hourly_cap`, `no_cap`, `pace`, `timeout`, `retry`, `queue_records`,
//! `queue_bytes`, `overflow`, `allow_plain_http`, and for the sinks that speak HTTP the TLS and
//! proxy settings `root_certificate`, `ca_file`, `tls_built_in_roots`, `client_identity`,
//! `client_identity_files`, `proxy`, `no_proxy`, `proxy_from_env` ([`HttpSettings`]) — with the
//! same names, meanings and docs in every crate. Bring the trait into scope with
//! `use watchbell_core::SinkOptions;` (or the umbrella crate's prelude).
//!
//! At build time the crate turns the options into parts with [`Options::delivery`] (a
//! [`DeliveryBuilder`] with pace, retry, queue and overflow applied), `Options::http_client` (feature `http`),
//! [`Options::limited`] and [`layer`], and reports configuration problems as a
//! [`BuildError`] naming the setting.
//!
//! ```
//! use std::time::Duration;
//! use watchbell_core::options::{Options, SinkOptions};
//!
//! /// A sink crate's builder.
//! struct MyBuilder {
//!     options: Options,
//! }
//!
//! impl SinkOptions for MyBuilder {
//!     fn options_mut(&mut self) -> &mut Options {
//!         &mut self.options
//!     }
//! }
//!
//! let builder = MyBuilder { options: Options::new().pace(Duration::from_secs(1)) }
//!     .rate_limit(1, Duration::from_secs(300))
//!     .queue_records(500);
//! assert_eq!(builder.options.rate_limit, Some((1, Duration::from_secs(300))));
//! assert_eq!(builder.options.pace, Duration::from_secs(1));
//! ```
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing_core::Level;
use tracing_subscriber::filter::Filtered;

use crate::cap::Cap;
use crate::delivery::{Delivery, DeliveryBuilder, Overflow, Retry, Sink};
use crate::{CaptureLayer, Guard, Handler, LayerFilter, RateLimit};

/// The delivery settings shared by every sink builder. Crates start from [`Options::new`] and
/// set their own defaults with the chaining setters here (which mirror [`SinkOptions`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// At most `.0` records per `.1` per callsite fingerprint; `None` = no rate limit.
    pub rate_limit: Option<(u32, Duration)>,
    /// How long a record the rate limit passes is held to gather the count of its similar
    /// records ([`RateLimit::gather`]); zero = sent at once.
    pub gather: Duration,
    /// At most `.0` alerts per `.1` to the destination in all ([`Cap`]); `None` = no cap.
    pub cap: Option<(u32, Duration)>,
    /// The least time between two deliveries to one destination (records coalesce meanwhile).
    pub pace: Duration,
    /// The timeout of one request to the destination.
    pub timeout: Duration,
    /// The retry policy for retryable failures.
    pub retry: Retry,
    /// The most records queued per destination.
    pub queue_records: usize,
    /// The most (estimated) bytes queued per destination; `None` = the [`Delivery`] default.
    pub queue_bytes: Option<usize>,
    /// What happens to a record when the queue is full.
    pub overflow: Overflow,
    /// Whether `http://` URLs to hosts other than loopback are accepted.
    pub allow_plain_http: bool,
    /// The TLS trust, client certificate and proxy of the HTTP client (HTTP sinks only).
    pub http: HttpSettings,
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

impl Options {
    /// No rate limit, no cap, no pace, a 10 s timeout, [`Retry::default`], 10,000 queued records,
    /// [`Overflow::DropNewest`], plain HTTP refused except to loopback.
    pub fn new() -> Self {
        Options {
            rate_limit: None,
            gather: Duration::ZERO,
            cap: None,
            pace: Duration::ZERO,
            timeout: Duration::from_secs(10),
            retry: Retry::default(),
            queue_records: 10_000,
            queue_bytes: None,
            overflow: Overflow::DropNewest,
            allow_plain_http: false,
            http: HttpSettings::default(),
        }
    }

    /// Sets the default rate limit (`record_limit` is at least 1).
    pub fn rate_limit(mut self, record_limit: u32, record_delta: Duration) -> Self {
        self.rate_limit = Some((record_limit.max(1), record_delta));
        self
    }

    /// Sets the default cap (`alerts` is at least 1).
    pub fn cap(mut self, alerts: u32, window: Duration) -> Self {
        self.cap = Some((alerts.max(1), window));
        self
    }

    /// Sets the default pace.
    pub fn pace(mut self, d: Duration) -> Self {
        self.pace = d;
        self
    }

    /// Sets the default timeout.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Sets the default retry policy.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the default queue capacity.
    pub fn queue_records(mut self, n: usize) -> Self {
        self.queue_records = n;
        self
    }

    /// Sets the default queue byte bound.
    pub fn queue_bytes(mut self, n: usize) -> Self {
        self.queue_bytes = Some(n);
        self
    }

    /// A [`Delivery`] builder for `sink` with these options' pace, retry, queue capacity and
    /// overflow policy applied. The crate adds its own batching before `spawn()`.
    pub fn delivery<K: Sink>(&self, name: impl Into<String>, sink: K) -> DeliveryBuilder<K> {
        let builder = Delivery::builder(name, sink)
            .pace(self.pace)
            .retry(self.retry.clone())
            .queue_records(self.queue_records)
            .overflow(self.overflow);
        match self.queue_bytes {
            Some(n) => builder.queue_bytes(n),
            None => builder,
        }
    }

    /// `inner` behind the configured [`Cap`] (labelled `label`: the notice says
    /// "`<label>` cap reached", the stats entry is `<label>-cap`) and in front of that the
    /// configured [`RateLimit`]: repeats of a callsite are counted by the rate limit and never
    /// use up the cap. Either is left out when not configured.
    pub fn limited<H: Handler>(&self, label: &str, inner: H) -> Arc<dyn Handler> {
        let capped: Arc<dyn Handler> = match self.cap {
            Some((n, window)) => Arc::new(Cap::new(inner, n, window).label(label)),
            None => Arc::new(inner),
        };
        match self.rate_limit {
            Some((n, d)) if self.gather.is_zero() => Arc::new(RateLimit::new(capped, n, d)),
            Some((n, d)) => Arc::new(RateLimit::new(capped, n, d).gather(self.gather)),
            None => capped,
        }
    }

    /// An HTTP client with this timeout (connect timeout: the smaller of it and 5 s), the
    /// plain-HTTP policy and the [`HttpSettings`] (roots, client certificate, proxy). Build one
    /// per destination: each delivery worker has its own runtime.
    ///
    /// # Errors
    /// A setting that cannot be used — a file that cannot be read, PEM without a certificate, a
    /// key that does not parse, a proxy URL that is not `http://` or `https://` — is an error
    /// whose text starts with the setting's name (`ca_file: …`, `client_identity: …`,
    /// `proxy: …`) and never contains key material or proxy credentials.
    #[cfg(feature = "http")]
    pub fn http_client(&self) -> Result<crate::http::HttpClient, String> {
        crate::http::HttpClient::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(5)))
            .allow_plain_http(self.allow_plain_http)
            .settings(self.http.clone())
            .build()
    }
}

/// The common setters of every sink builder. Implement [`options_mut`](Self::options_mut);
/// the rest come with the trait.
pub trait SinkOptions: Sized {
    /// The builder's shared options.
    fn options_mut(&mut self) -> &mut Options;

    /// At most `record_limit` records per `record_delta` per callsite fingerprint (level,
    /// target, file, line — never the message). The others are counted, and the count is
    /// delivered with the next record of that callsite ("N similar suppressed") or at flush.
    fn rate_limit(mut self, record_limit: u32, record_delta: Duration) -> Self {
        self.options_mut().rate_limit = Some((record_limit.max(1), record_delta));
        self
    }

    /// Holds each record the rate limit passes for `gather`, so that it goes out with the
    /// count of the similar records suppressed meanwhile ("N similar suppressed from M
    /// instances", the fleet's with shared windows) instead of the count coming with a later
    /// record. Every alert that passes is delayed by `gather`; a flush or shutdown releases
    /// held records early. No effect without a rate limit. See [`RateLimit::gather`].
    fn gather(mut self, gather: Duration) -> Self {
        self.options_mut().gather = gather;
        self
    }

    /// No rate limit: every record that passes the level is delivered (still paced and
    /// coalesced).
    fn no_rate_limit(mut self) -> Self {
        self.options_mut().rate_limit = None;
        self
    }

    /// At most `alerts` alerts per `window` to this destination, across every callsite: the
    /// first alert over gets one "cap reached" notice sent instead, the rest of the window's
    /// alerts are withheld and counted (stats entry `<sink>-cap`), and the first alert after
    /// the window says how many were withheld (field `alerts_withheld`). An escalation or group
    /// batch counts as one alert. See [`Cap`].
    fn cap(mut self, alerts: u32, window: Duration) -> Self {
        self.options_mut().cap = Some((alerts.max(1), window));
        self
    }

    /// [`cap`](Self::cap) with a window of one hour.
    fn hourly_cap(self, alerts: u32) -> Self {
        self.cap(alerts, Duration::from_secs(3600))
    }

    /// No cap (the level and the rate limit still apply).
    fn no_cap(mut self) -> Self {
        self.options_mut().cap = None;
        self
    }

    /// The least time between two deliveries to one destination; records that arrive
    /// meanwhile are coalesced into the next delivery where the destination allows it.
    fn pace(mut self, d: Duration) -> Self {
        self.options_mut().pace = d;
        self
    }

    /// The timeout of one request or connection to the destination.
    fn timeout(mut self, d: Duration) -> Self {
        self.options_mut().timeout = d;
        self
    }

    /// The retry policy for retryable failures (rate limits, server errors, connection
    /// errors). A delay the destination asks for (`Retry-After`) is honoured.
    fn retry(mut self, retry: Retry) -> Self {
        self.options_mut().retry = retry;
        self
    }

    /// The most records queued per destination; what does not fit follows the
    /// [`overflow`](Self::overflow) policy and is counted.
    fn queue_records(mut self, n: usize) -> Self {
        self.options_mut().queue_records = n;
        self
    }

    /// The most (estimated, in memory) bytes queued per destination; what does not fit follows
    /// the [`overflow`](Self::overflow) policy and is counted.
    fn queue_bytes(mut self, n: usize) -> Self {
        self.options_mut().queue_bytes = Some(n.max(1));
        self
    }

    /// What happens to a record when the queue is full (default: the new record is dropped
    /// and counted; the caller never waits).
    fn overflow(mut self, overflow: Overflow) -> Self {
        self.options_mut().overflow = overflow;
        self
    }

    /// Accepts `http://` URLs to hosts that are not loopback (default: refused, so a token
    /// never crosses a network in clear text by mistake).
    fn allow_plain_http(mut self, allow: bool) -> Self {
        self.options_mut().allow_plain_http = allow;
        self
    }

    /// Trusts the CA certificate(s) in `pem` (one or more `-----BEGIN CERTIFICATE-----` blocks)
    /// for HTTPS, **in addition to** the system's trust store — or instead of it with
    /// [`tls_built_in_roots(false)`](Self::tls_built_in_roots). For a collector on a private
    /// CA, or a proxy that re-signs traffic. Checked when the sink is built (PEM without a
    /// certificate is a build error). May be called more than once.
    fn root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.options_mut().http.roots.push(PemSource::Pem(pem.into()));
        self
    }

    /// [`root_certificate`](Self::root_certificate) read from a PEM file when the sink is built
    /// (a missing or unreadable file is a build error naming it).
    fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.options_mut().http.roots.push(PemSource::File(path.into()));
        self
    }

    /// Whether the system's trust store is used next to the added root certificates (default
    /// `true`). `false` trusts only [`root_certificate`](Self::root_certificate) /
    /// [`ca_file`](Self::ca_file) (pinning a private CA); with none given, the build fails.
    fn tls_built_in_roots(mut self, enabled: bool) -> Self {
        self.options_mut().http.built_in_roots = enabled;
        self
    }

    /// The client certificate (mTLS) presented to servers that ask for one: `cert_pem` is the
    /// certificate chain (leaf first), `key_pem` its private key (PKCS#8, PKCS#1 RSA or SEC1
    /// EC, unencrypted). The key is kept out of `Debug` and every error message.
    fn client_identity(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        self.options_mut().http.identity =
            Some(ClientIdentity { cert: PemSource::Pem(cert_pem.into()), key: PemSource::Pem(key_pem.into()) });
        self
    }

    /// [`client_identity`](Self::client_identity) read from two PEM files when the sink is built.
    fn client_identity_files(mut self, cert_path: impl Into<PathBuf>, key_path: impl Into<PathBuf>) -> Self {
        self.options_mut().http.identity =
            Some(ClientIdentity { cert: PemSource::File(cert_path.into()), key: PemSource::File(key_path.into()) });
        self
    }

    /// Sends every request through this proxy: `http://host:port` (HTTPS destinations are
    /// reached through a `CONNECT` tunnel, so the proxy never sees their content) or
    /// `https://host:port` (TLS to the proxy too, verified with the same roots). Credentials
    /// go in the URL (`http://user:password@proxy:3128`, percent-encoded) and are sent as
    /// `Proxy-Authorization: Basic`; they are redacted in `Debug` and in every error.
    ///
    /// Hosts listed in [`no_proxy`](Self::no_proxy) (or, without it, in the `NO_PROXY`
    /// environment variable) are reached directly. Setting a proxy replaces the
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` environment variables.
    fn proxy(mut self, url: impl Into<String>) -> Self {
        self.options_mut().http.proxy = Some(crate::secret::Secret::new(url.into()));
        self
    }

    /// The hosts reached without the proxy, `NO_PROXY` style: comma-separated domains (each
    /// matching its subdomains too), IP addresses or CIDR ranges, `*` for all. Given, it
    /// replaces the `NO_PROXY` environment variable for this sink.
    fn no_proxy(mut self, hosts: impl Into<String>) -> Self {
        self.options_mut().http.no_proxy = Some(hosts.into());
        self
    }

    /// Whether the proxy environment variables are honoured when no [`proxy`](Self::proxy) is
    /// set (default `true`, as curl does): `HTTPS_PROXY`/`https_proxy` for `https://`
    /// destinations, `HTTP_PROXY`/`http_proxy` for `http://` ones, `ALL_PROXY`/`all_proxy` for
    /// both, and `NO_PROXY`/`no_proxy` for the exceptions. (`HTTP_PROXY` is ignored when
    /// `REQUEST_METHOD` is set, as in a CGI program.) The operating system's own proxy settings
    /// (macOS, Windows) are not read. `false`: direct connections unless `proxy` is set.
    fn proxy_from_env(mut self, enabled: bool) -> Self {
        self.options_mut().http.proxy_from_env = enabled;
        self
    }
}

/// Where a PEM document comes from: given in memory, or a file read when the sink is built.
#[derive(Clone, PartialEq, Eq)]
pub enum PemSource {
    /// The PEM text itself.
    Pem(Vec<u8>),
    /// A PEM file, read at build time.
    File(PathBuf),
}

impl fmt::Debug for PemSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Never the content: it may be a private key.
            PemSource::Pem(bytes) => write!(f, "Pem({} bytes)", bytes.len()),
            PemSource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl PemSource {
    /// The PEM bytes (reading the file); the error names the file, never its content.
    pub fn load(&self) -> Result<Vec<u8>, String> {
        match self {
            PemSource::Pem(bytes) => Ok(bytes.clone()),
            PemSource::File(path) => std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display())),
        }
    }
}

/// A client certificate chain and its private key (mTLS).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ClientIdentity {
    /// The certificate chain, leaf first.
    pub cert: PemSource,
    /// The private key (its content never shows in `Debug`).
    pub key: PemSource,
}

/// The TLS trust, client certificate and proxy of a sink's HTTP client; set through the
/// [`SinkOptions`] setters of the same names.
///
/// The defaults: certificates verified against the system's trust store (through
/// rustls-platform-verifier: the operating system's roots; no OpenSSL, no native-tls), no
/// client certificate, and the proxy environment variables honoured (see
/// [`SinkOptions::proxy_from_env`]).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Extra trusted CA certificates.
    pub roots: Vec<PemSource>,
    /// Whether the system's trust store is used too (default `true`).
    pub built_in_roots: bool,
    /// The client certificate, if any.
    pub identity: Option<ClientIdentity>,
    /// The proxy URL (it may hold credentials).
    pub proxy: Option<crate::secret::Secret<String>>,
    /// The hosts reached without the proxy (replaces `NO_PROXY`).
    pub no_proxy: Option<String>,
    /// Whether `HTTPS_PROXY` and the like are honoured when `proxy` is not set (default `true`).
    pub proxy_from_env: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            roots: Vec::new(),
            built_in_roots: true,
            identity: None,
            proxy: None,
            no_proxy: None,
            proxy_from_env: true,
        }
    }
}

impl fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proxy = self.proxy.as_ref().map(|p| crate::secret::redact_url(p.expose()));
        f.debug_struct("HttpSettings")
            .field("roots", &self.roots)
            .field("built_in_roots", &self.built_in_roots)
            .field("identity", &self.identity)
            .field("proxy", &proxy)
            .field("no_proxy", &self.no_proxy)
            .field("proxy_from_env", &self.proxy_from_env)
            .finish()
    }
}

/// A configuration error found at build time: the crate, the setting at fault and what is
/// wrong. It never contains a secret (tokens, passwords, the secret part of a URL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError {
    /// The crate that refused the configuration (`watchbell-slack`).
    pub source: &'static str,
    /// The setting at fault (`webhooks[1].url`, `recipients[0]`, ...).
    pub key: String,
    /// What is wrong with it, and what was expected.
    pub message: String,
}

impl BuildError {
    /// A build error of crate `source` about setting `key`.
    pub fn new(source: &'static str, key: impl Into<String>, message: impl fmt::Display) -> Self {
        BuildError { source, key: key.into(), message: message.to_string() }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.source, self.key, self.message)
    }
}

impl std::error::Error for BuildError {}

/// The layer type every sink crate returns: watchbell's capture layer behind its per-layer
/// filter. Add it to a registry with `.with(layer)`; compose further with `.with_filter(..)`.
pub type SinkLayer<S> = Filtered<CaptureLayer, LayerFilter, S>;

/// The layer over `root` that captures events at `level` and above, and the [`Guard`] of
/// `root`. Keep the guard until the end of `main`: dropping it delivers what is queued.
pub fn layer<S>(root: Arc<dyn Handler>, level: Level) -> (SinkLayer<S>, Guard)
where
    S: tracing_core::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let guard = Guard::new(Arc::clone(&root));
    (CaptureLayer::new(root).filtered(LayerFilter::new(level)), guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct B {
        options: Options,
    }

    impl SinkOptions for B {
        fn options_mut(&mut self) -> &mut Options {
            &mut self.options
        }
    }

    #[test]
    fn setters_change_the_options() {
        let b = B { options: Options::new().rate_limit(0, Duration::from_secs(1)) }
            .no_rate_limit()
            .pace(Duration::from_millis(5))
            .timeout(Duration::from_secs(2))
            .retry(Retry::none())
            .queue_records(7)
            .queue_bytes(1024)
            .overflow(Overflow::DropOldest)
            .allow_plain_http(true);
        assert_eq!(b.options.rate_limit, None);
        assert_eq!(b.options.pace, Duration::from_millis(5));
        assert_eq!(b.options.timeout, Duration::from_secs(2));
        assert_eq!(b.options.retry, Retry::none());
        assert_eq!(b.options.queue_records, 7);
        assert_eq!(b.options.queue_bytes, Some(1024));
        assert_eq!(b.options.overflow, Overflow::DropOldest);
        assert!(b.options.allow_plain_http);
        let b = b.rate_limit(0, Duration::from_secs(3));
        assert_eq!(b.options.rate_limit, Some((1, Duration::from_secs(3))), "a limit of 0 becomes 1");
    }

    #[test]
    fn tls_and_proxy_setters_and_a_debug_without_keys_or_credentials() {
        let b = B { options: Options::new() }
            .root_certificate("-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n")
            .ca_file("/etc/ssl/private-ca.pem")
            .tls_built_in_roots(false)
            .client_identity("cert", "-----BEGIN PRIVATE KEY-----\nS3CR3TK3Y\n-----END PRIVATE KEY-----\n")
            .proxy("http://ops:Pr0xyPw@proxy.example:3128/")
            .no_proxy("localhost,.internal")
            .proxy_from_env(false);
        let h = &b.options.http;
        assert_eq!(h.roots.len(), 2);
        assert_eq!(h.roots[1], PemSource::File("/etc/ssl/private-ca.pem".into()));
        assert!(!h.built_in_roots && !h.proxy_from_env);
        assert_eq!(h.no_proxy.as_deref(), Some("localhost,.internal"));
        assert_eq!(h.proxy.as_ref().map(|p| p.expose().as_str()), Some("http://ops:Pr0xyPw@proxy.example:3128/"));
        let shown = format!("{:?}", b.options);
        for secret in ["S3CR3TK3Y", "Q0VSVA", "Pr0xyPw", "ops:"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("proxy.example:3128") && shown.contains("private-ca.pem"), "{shown}");
        let defaults = HttpSettings::default();
        assert!(defaults.built_in_roots && defaults.proxy_from_env && defaults.proxy.is_none());
    }

    #[test]
    fn build_error_names_crate_and_key() {
        let e = BuildError::new("watchbell-x", "recipients[0]", "not E.164");
        assert_eq!(e.to_string(), "watchbell-x: recipients[0]: not E.164");
    }
}
