//! The settings every sink builder shares, written once.
//!
//! A sink crate's builder holds an [`Options`] and implements [`SinkOptions`] (one method,
//! [`SinkOptions::options_mut`]); the trait then gives it the common setters — `rate_limit`,
//! `no_rate_limit`, `cap`, `hourly_cap`, `no_cap`, `pace`, `timeout`, `retry`, `queue_records`,
//! `queue_bytes`, `overflow`, `allow_plain_http` — with the same names, meanings and docs in
//! every crate. Bring the trait into scope with
//! `use watchbell_core::SinkOptions;` (or the umbrella crate's prelude).
//!
//! At build time the crate turns the options into parts with [`Options::delivery`] (a
//! [`DeliveryBuilder`] with pace, retry, queue and overflow applied), [`Options::http_client`],
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
            cap: None,
            pace: Duration::ZERO,
            timeout: Duration::from_secs(10),
            retry: Retry::default(),
            queue_records: 10_000,
            queue_bytes: None,
            overflow: Overflow::DropNewest,
            allow_plain_http: false,
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
            Some((n, d)) => Arc::new(RateLimit::new(capped, n, d)),
            None => capped,
        }
    }

    /// An HTTP client with this timeout (connect timeout: the smaller of it and 5 s) and the
    /// plain-HTTP policy. Build one per destination: each delivery worker has its own runtime.
    #[cfg(feature = "http")]
    pub fn http_client(&self) -> Result<crate::http::HttpClient, String> {
        crate::http::HttpClient::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(5)))
            .allow_plain_http(self.allow_plain_http)
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
    fn build_error_names_crate_and_key() {
        let e = BuildError::new("watchbell-x", "recipients[0]", "not E.164");
        assert_eq!(e.to_string(), "watchbell-x: recipients[0]: not E.164");
    }
}
