//! # watchbell-test
//!
//! Testing what an application logs and alerts, without a global subscriber:
//!
//! - [`TestLayer`]: a layer that captures every event as a watchbell [`Record`], from every
//!   thread that uses its subscriber, with assertions in the spirit of Logbook's TestHandler
//!   (`has_error("msg")`, regex matches, counts by level, formatted lines). It is also a
//!   [`Handler`], so it can stand at the end of any watchbell handler chain.
//! - [`http::FakeHttp`]: a loopback HTTP/1.1 server that records every request and answers as
//!   programmed (status, body, `Retry-After`, delay, stall, close). Provider fakes (Slack,
//!   Telegram, Twilio, Loki, ...) are built on it.
//! - [`collector::NdjsonSink`]: a minimal NDJSON sink to run pipelines against the fake.
//! - [`issues::FakeIssues`]: a small issue tracker in the shape of GitHub's issues API, for the
//!   ticketing layer's outside ticket systems.
//! - [`tls::TlsFront`]: any of those fakes behind HTTPS, on a certificate of a generated
//!   [`tls::TestCa`], optionally requiring a client certificate (mTLS); and
//!   [`tls::FakeProxy`], a forward proxy (`CONNECT` tunnels, optional credentials) that records
//!   what went through it.
//!
//! ```
//! use watchbell_test::TestLayer;
//!
//! let logs = TestLayer::new();
//! logs.in_scope(|| {
//!     tracing::warn!(user = "bob", "quota almost used");
//!     // Threads spawned through the layer log into the same capture.
//!     logs.spawn(|| tracing::error!("disk full")).join().unwrap();
//! });
//! assert!(logs.has_warning("quota almost used"));
//! assert!(logs.has_error("disk full"));
//! assert_eq!(logs.records()[0].fields.get("user").and_then(|v| v.as_str()), Some("bob"));
//! assert_eq!(logs.lines(), ["[WARN] rust_out: quota almost used", "[ERROR] rust_out: disk full"]);
//! ```
#![deny(missing_docs)]

pub mod aws;
mod base64;
pub mod ci;
pub mod collector;
pub mod collectors;
pub mod desktop;
pub mod feedback;
pub mod hostile;
pub mod http;
pub mod issues;
pub mod journald;
pub mod notify;
pub mod postgres;
pub mod slack;
pub mod sms;
pub mod smtp;
pub mod stack;
mod store;
pub mod syslog;
pub mod telegram;
pub mod tls;
pub mod tmpfs;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use tracing_core::{Dispatch, Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use watchbell_core::capture::CaptureLayer;
use watchbell_core::{Batch, Handler, Record};

use crate::store::Recorded;

/// What a [`TestLayer`] captured.
#[derive(Default)]
struct Captured {
    records: Vec<Record>,
    batches: Vec<Batch>,
}

type Store = Recorded<Captured>;

struct StoreHandler(Arc<Store>);

impl Handler for StoreHandler {
    fn handle(&self, record: Record) {
        self.0.update(|c| c.records.push(record));
    }

    fn handle_batch(&self, batch: Batch) {
        let records = batch.records.clone();
        self.0.update(|c| {
            c.records.extend(records);
            c.batches.push(batch);
        });
    }
}

/// A layer that captures records for assertions. Clones share one capture.
///
/// It captures every level; put it behind `.with_filter(...)` to capture less. Records made on
/// watchbell's own threads are not captured, as with every watchbell layer.
///
/// # Filtering by target
///
/// Logbook's TestHandler takes `channel=` in `has_warning(…)`; here each assertion has an
/// `_in` variant that takes the target first: [`has_warning_in`](TestLayer::has_warning_in),
/// [`has_error_in`](TestLayer::has_error_in), … [`has_in`](TestLayer::has_in),
/// [`has_match_in`](TestLayer::has_match_in), [`has_level_in`](TestLayer::has_level_in),
/// [`count_in`](TestLayer::count_in), [`records_in`](TestLayer::records_in). A target matches
/// itself and the modules under it, at `::` boundaries (`app::db` takes `app::db::pool`, not
/// `app::dbx`), as an `EnvFilter` directive does.
///
/// ```
/// use watchbell_test::TestLayer;
///
/// let logs = TestLayer::new();
/// logs.in_scope(|| {
///     tracing::warn!(target: "app::db::pool", "slow query");
///     tracing::warn!(target: "app::http", "slow request");
/// });
/// assert!(logs.has_warning_in("app::db", "slow query"));
/// assert!(!logs.has_warning_in("app::db", "slow request"));
/// assert!(!logs.has_warning_in("app::d", "slow query")); // not a module boundary
/// assert_eq!(logs.formatted_records(), ["[WARN] app::db::pool: slow query", "[WARN] app::http: slow request"]);
/// ```
#[derive(Clone)]
pub struct TestLayer {
    store: Arc<Store>,
    capture: CaptureLayer,
}

impl fmt::Debug for TestLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestLayer").field("records", &self.store.lock().records.len()).finish()
    }
}

impl Default for TestLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl TestLayer {
    /// An empty capture.
    pub fn new() -> Self {
        let store = Arc::new(Store::default());
        let capture = CaptureLayer::new(Arc::new(StoreHandler(Arc::clone(&store))));
        TestLayer { store, capture }
    }

    /// This capture as a [`Handler`], to stand at the end of a handler chain (a rate limit, a
    /// fan-out, a fingers-crossed buffer): records and whole batches are kept.
    pub fn handler(&self) -> Arc<dyn Handler> {
        Arc::clone(self.capture.handler())
    }

    /// A registry with this layer alone.
    pub fn subscriber(&self) -> impl Subscriber + Send + Sync + for<'a> LookupSpan<'a> {
        tracing_subscriber::registry().with(self.clone())
    }

    /// A [`Dispatch`] of [`subscriber`](TestLayer::subscriber), to install in other threads.
    pub fn dispatch(&self) -> Dispatch {
        Dispatch::new(self.subscriber())
    }

    /// Runs `f` with this layer's subscriber as the thread's default.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        tracing::dispatcher::with_default(&self.dispatch(), f)
    }

    /// Spawns a thread whose default subscriber is the current thread's (so what it logs is
    /// captured too, inside [`in_scope`](TestLayer::in_scope) or under any subscriber that
    /// includes this layer).
    pub fn spawn<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> std::thread::JoinHandle<R> {
        let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
        std::thread::spawn(move || tracing::dispatcher::with_default(&dispatch, f))
    }

    /// Every record captured so far, in order.
    pub fn records(&self) -> Vec<Record> {
        self.store.lock().records.clone()
    }

    /// The batches handed to [`handler`](TestLayer::handler) whole, in order.
    pub fn batches(&self) -> Vec<Batch> {
        self.store.lock().batches.clone()
    }

    /// The number of records captured.
    pub fn len(&self) -> usize {
        self.store.lock().records.len()
    }

    /// Whether nothing was captured.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets what was captured.
    pub fn clear(&self) {
        let mut c = self.store.lock();
        c.records.clear();
        c.batches.clear();
    }

    /// Waits until at least `n` records were captured or `timeout` passed; returns the records.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Record> {
        self.store.wait_until(timeout, |c| c.records.len() >= n).records.clone()
    }

    /// Whether a record of exactly `level` has exactly `message`.
    pub fn has(&self, level: Level, message: &str) -> bool {
        self.store.lock().records.iter().any(|r| r.level == level && r.message == message)
    }

    /// Whether a record of exactly `level` has a message matching the regular expression.
    ///
    /// # Panics
    /// If `pattern` is not a valid regular expression (a mistake in the test).
    pub fn has_match(&self, level: Level, pattern: &str) -> bool {
        let re = Regex::new(pattern).unwrap_or_else(|e| panic!("invalid regex {pattern:?}: {e}"));
        self.store.lock().records.iter().any(|r| r.level == level && re.is_match(&r.message))
    }

    /// `has(ERROR, message)`.
    pub fn has_error(&self, message: &str) -> bool {
        self.has(Level::ERROR, message)
    }

    /// `has(WARN, message)`.
    pub fn has_warning(&self, message: &str) -> bool {
        self.has(Level::WARN, message)
    }

    /// `has(INFO, message)`.
    pub fn has_info(&self, message: &str) -> bool {
        self.has(Level::INFO, message)
    }

    /// `has(DEBUG, message)`.
    pub fn has_debug(&self, message: &str) -> bool {
        self.has(Level::DEBUG, message)
    }

    /// `has(TRACE, message)`.
    pub fn has_trace(&self, message: &str) -> bool {
        self.has(Level::TRACE, message)
    }

    /// Whether any record of exactly `level` was captured.
    pub fn has_level(&self, level: Level) -> bool {
        self.count(level) > 0
    }

    /// The number of records of exactly `level`.
    pub fn count(&self, level: Level) -> usize {
        self.store.lock().records.iter().filter(|r| r.level == level).count()
    }

    /// The records as `[LEVEL] target: message` lines (Logbook's test format).
    pub fn lines(&self) -> Vec<String> {
        self.store.lock().records.iter().map(|r| format!("[{}] {}: {}", r.level, r.target, r.message)).collect()
    }

    /// The records as `[LEVEL] target: message` lines, Logbook's `formatted_records` with its
    /// default test format (the same lines as [`lines`](TestLayer::lines)).
    pub fn formatted_records(&self) -> Vec<String> {
        self.lines()
    }

    /// The records of `target` (see [target matching](TestLayer#filtering-by-target)).
    pub fn records_in(&self, target: &str) -> Vec<Record> {
        self.store.lock().records.iter().filter(|r| in_target(&r.target, target)).cloned().collect()
    }

    /// Whether a record of exactly `level` from `target` (or a module under it) has exactly
    /// `message`: Logbook's `has_warning(message, channel=…)`.
    pub fn has_in(&self, level: Level, target: &str, message: &str) -> bool {
        self.store
            .lock()
            .records
            .iter()
            .any(|r| r.level == level && in_target(&r.target, target) && r.message == message)
    }

    /// Whether a record of exactly `level` from `target` has a message matching the regular
    /// expression.
    ///
    /// # Panics
    /// If `pattern` is not a valid regular expression (a mistake in the test).
    pub fn has_match_in(&self, level: Level, target: &str, pattern: &str) -> bool {
        let re = Regex::new(pattern).unwrap_or_else(|e| panic!("invalid regex {pattern:?}: {e}"));
        self.store
            .lock()
            .records
            .iter()
            .any(|r| r.level == level && in_target(&r.target, target) && re.is_match(&r.message))
    }

    /// `has_in(ERROR, target, message)`.
    pub fn has_error_in(&self, target: &str, message: &str) -> bool {
        self.has_in(Level::ERROR, target, message)
    }

    /// `has_in(WARN, target, message)`.
    pub fn has_warning_in(&self, target: &str, message: &str) -> bool {
        self.has_in(Level::WARN, target, message)
    }

    /// `has_in(INFO, target, message)`.
    pub fn has_info_in(&self, target: &str, message: &str) -> bool {
        self.has_in(Level::INFO, target, message)
    }

    /// `has_in(DEBUG, target, message)`.
    pub fn has_debug_in(&self, target: &str, message: &str) -> bool {
        self.has_in(Level::DEBUG, target, message)
    }

    /// `has_in(TRACE, target, message)`.
    pub fn has_trace_in(&self, target: &str, message: &str) -> bool {
        self.has_in(Level::TRACE, target, message)
    }

    /// Whether any record of exactly `level` came from `target`: Logbook's
    /// `has_warning(channel=…)` without a message.
    pub fn has_level_in(&self, level: Level, target: &str) -> bool {
        self.count_in(level, target) > 0
    }

    /// The number of records of exactly `level` from `target`.
    pub fn count_in(&self, level: Level, target: &str) -> usize {
        self.store.lock().records.iter().filter(|r| r.level == level && in_target(&r.target, target)).count()
    }

    /// The records formatted by `f`.
    pub fn formatted(&self, f: impl Fn(&Record) -> String) -> Vec<String> {
        self.store.lock().records.iter().map(f).collect()
    }
}

/// Whether a record's `target` is `wanted` or a module under it (`app::db` takes `app::db` and
/// `app::db::pool`, not `app::dbx`), as an `EnvFilter` directive does.
fn in_target(target: &str, wanted: &str) -> bool {
    match target.strip_prefix(wanted) {
        Some(rest) => rest.is_empty() || rest.starts_with("::"),
        None => false,
    }
}

impl<S> Layer<S> for TestLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing_core::span::Attributes<'_>,
        id: &tracing_core::span::Id,
        ctx: Context<'_, S>,
    ) {
        Layer::<S>::on_new_span(&self.capture, attrs, id, ctx)
    }

    fn on_record(&self, id: &tracing_core::span::Id, values: &tracing_core::span::Record<'_>, ctx: Context<'_, S>) {
        Layer::<S>::on_record(&self.capture, id, values, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        Layer::<S>::on_event(&self.capture, event, ctx)
    }
}
