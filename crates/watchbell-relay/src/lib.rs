//! # watchbell-relay
//!
//! One process that receives records from many services and runs the sinks of a
//! `watchbell.toml` for all of them — so a fleet of N replicas hitting the same broken
//! dependency alerts **once** per fingerprint per window: the relay's rate limiter sees the
//! whole fleet, and its summary says "7999 similar suppressed from 8 instances" (see
//! [`watchbell_core::ratelimit`]). With `[rate_limit] gather = "10s"` that count is already in
//! the one alert: it is held for the gather and sent with what the fleet logged meanwhile.
//!
//! ```text
//! service A (watchbell-http, NDJSON) ─┐
//! service B (any OpenTelemetry SDK) ──┼─▶ inputs ─▶ bounded queue ─▶ dispatcher ─▶ sinks (Slack, mail, tickets…)
//! pre-fork workers (unix socket) ─────┘      │ full: 429 + Retry-After
//! ```
//!
//! ## Inputs
//!
//! - **HTTP** ([`RelayBuilder::http`]):
//!   - `POST /v1/records`: the JSON record shape of watchbell-http, as NDJSON (its default
//!     encoding) or a JSON array; `Content-Encoding: gzip` accepted.
//!   - `POST /v1/logs`: OTLP/HTTP JSON logs (watchbell-http's OTLP encoding, or any
//!     OpenTelemetry SDK's OTLP/HTTP JSON exporter); answered with `{}`.
//!   - `GET /health`: `{"status":"ok"|"draining","queued":…,"capacity":…,"inputs":{…}}` with
//!     the per-input counters. Open without the token (it shows counts only).
//!   - A bearer token ([`RelayBuilder::token`]) is required on the `POST` routes when set,
//!     compared in constant time; a missing or wrong one is a `401`. The token is redacted in
//!     `Debug`.
//!   - Answers: `200` accepted (every record of the body, or none: a body is never taken in
//!     part), `400` a body that does not parse (nothing taken), `413` a body above
//!     [`max_body`](RelayBuilder::max_body), `429` with `Retry-After` when the queue has no
//!     room for the body, `503` with `Retry-After` while draining at shutdown.
//! - **Unix socket** ([`RelayBuilder::unix`]): a stream socket taking NDJSON lines, for the
//!   processes of one machine (pre-fork servers). No reply; when the queue is full the relay
//!   stops reading, and the writers' socket buffers fill: backpressure without loss. A line
//!   that does not parse is counted as invalid and skipped.
//! - **ZeroMQ** ([`RelayBuilder::zmq`], [`RelayBuilder::zmq_subscriber`]): Logbook's record
//!   dict over SUB (or PULL) sockets, through watchbell-zmq's subscriber: Python services on
//!   Logbook's `ZeroMQHandler` and Rust services on watchbell-zmq's `ZmqLayer` feed the same
//!   relay. ZeroMQ has no backpressure answer: when the queue is full a record from it is
//!   dropped and counted (`rejected_full` of input `zmq`).
//! - **Any handler** ([`RelayHandle::input`]): a [`Handler`] that feeds the queue, counted
//!   under its own name — for the ZeroMQ subscriber, or records made in-process.
//!
//! ## Origin
//!
//! Records keep where they came from: their `pid`, and their `app`/`host` (NDJSON) or
//! `service`/`host`/`app` (OTLP resource) as fields of those names, which every alert shows
//! with the other fields, and which the rate limit uses to count instances.
//!
//! ## Queue and shutdown
//!
//! The queue holds at most [`queue`](RelayBuilder::queue) records (a body larger than the
//! whole queue is taken only when the queue is empty). One dispatcher thread hands the records
//! to the sinks' handler in arrival order. [`RelayHandle::shutdown`] stops taking records
//! (`503`), delivers what is queued to the sinks, then shuts the sinks down, all within its
//! deadline. The binary does that on SIGTERM or Ctrl-C.
//!
//! ## Levels
//!
//! Each sink keeps its level and target filter: a record handed over meets the same filter as
//! an event its layer would capture (the table's `level` key, or the sink's default: mail and SMS
//! take only errors), so a relay of INFO records mails none of them
//! (`each_sink_keeps_its_level_for_relayed_records`). Levels chosen where the records are made
//! (the publishers' own filters) still save the traffic.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use watchbell_relay::Relay;
//!
//! let config = watchbell::Config::from_file("relay.toml")?;
//! let (handler, guard) = watchbell_relay::handlers(&config)?;
//! let relay = Relay::builder().http("127.0.0.1:9400".parse()?).queue(100_000).spawn(handler)?;
//! println!("listening on {:?}", relay.http_addr());
//! // ... until SIGTERM:
//! let _ = relay.shutdown(Duration::from_secs(10));
//! drop(guard);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use watchbell_core::secret::Secret;
use watchbell_core::{Flushed, Handler, Record, Stats};

pub mod ingest;

pub use ingest::{parse_line, parse_ndjson, parse_otlp, ParseError};

/// The sinks of a [`watchbell::Config`] as one handler and their guard (see
/// [`watchbell::Config::handlers`]).
pub fn handlers(
    config: &watchbell::Config,
) -> Result<(Arc<dyn Handler>, watchbell_core::Guard), watchbell::ConfigError> {
    config.handlers()
}

/// A relay from a config's `[relay]` table: its inputs, token, queue and `Retry-After`.
///
/// # Errors
/// No `[relay]` table, or a problem in it (every problem, one per line).
pub fn builder_from(config: &watchbell::Config) -> Result<RelayBuilder, Box<dyn std::error::Error + Send + Sync>> {
    let settings = config.relay_settings()?.ok_or("relay: missing; expected a [relay] table with its inputs")?;
    let mut b = Relay::builder().queue(settings.queue).retry_after(settings.retry_after);
    if let Some(a) = settings.http {
        b = b.http(a);
    }
    if let Some(p) = settings.unix {
        b = b.unix(p);
    }
    if let Some(t) = settings.token {
        b = b.token(t.expose().clone());
    }
    for e in settings.zmq {
        b = b.zmq(e);
    }
    Ok(b)
}

/// What the binary does: builds the sinks and the relay from `config`, prints the listening
/// addresses on stdout, waits for SIGTERM or Ctrl-C, then drains within `drain`.
///
/// # Errors
/// A configuration problem, or an input that cannot listen.
pub fn run(config: &watchbell::Config, drain: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let builder = builder_from(config).map_err(|e| e.to_string())?;
    let (handler, guard) = config.handlers()?;
    let relay = builder.spawn(handler)?;
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if let Some(a) = relay.http_addr() {
            writeln!(out, "listening http {a}")?;
        }
        if let Some(p) = &relay.unix {
            writeln!(out, "listening unix {}", p.display())?;
        }
        out.flush()?;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
    });
    let flushed = relay.shutdown(drain);
    let _ = guard.shutdown(Duration::from_secs(1));
    if !flushed.is_complete() {
        eprintln!("watchbell-relay: {} records not delivered before the drain deadline", flushed.pending);
    }
    Ok(())
}

/// Counters of one input.
#[derive(Debug, Default)]
struct InputCounters {
    requests: AtomicU64,
    accepted: AtomicU64,
    rejected_full: AtomicU64,
    invalid: AtomicU64,
    unauthorized: AtomicU64,
}

/// A snapshot of one input's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct InputStats {
    /// Requests (HTTP), connections (unix socket) or records (handler inputs) received.
    pub requests: u64,
    /// Records taken into the queue.
    pub accepted: u64,
    /// Requests refused with 429 because the queue was full (or, for a handler input,
    /// records dropped because it was).
    pub rejected_full: u64,
    /// Bodies or lines that did not parse (and `413`s).
    pub invalid: u64,
    /// Requests without the right token.
    pub unauthorized: u64,
}

impl InputCounters {
    fn snapshot(&self) -> InputStats {
        InputStats {
            requests: self.requests.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected_full: self.rejected_full.load(Ordering::Relaxed),
            invalid: self.invalid.load(Ordering::Relaxed),
            unauthorized: self.unauthorized.load(Ordering::Relaxed),
        }
    }
}

enum Msg {
    Records(Vec<Record>),
    Stop,
}

struct Shared {
    tx: Mutex<mpsc::Sender<Msg>>,
    queued: AtomicUsize,
    capacity: usize,
    delivered: AtomicU64,
    draining: AtomicBool,
    inputs: Mutex<BTreeMap<String, Arc<InputCounters>>>,
    token: Option<Secret<String>>,
    retry_after: Duration,
    max_body: usize,
}

impl Shared {
    fn input(&self, name: &str) -> Arc<InputCounters> {
        let mut m = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(m.entry(name.to_owned()).or_default())
    }

    /// Takes all of `records` or none: `Err` gives them back when there is no room.
    fn try_enqueue(&self, records: Vec<Record>) -> Result<(), Vec<Record>> {
        if self.draining.load(Ordering::Acquire) {
            return Err(records);
        }
        let n = records.len();
        if n == 0 {
            return Ok(());
        }
        let cap = self.capacity;
        let reserved = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| (q == 0 || q + n <= cap).then_some(q + n));
        if reserved.is_err() {
            return Err(records);
        }
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        match tx.send(Msg::Records(records)) {
            Ok(()) => Ok(()),
            Err(mpsc::SendError(Msg::Records(r))) => {
                self.queued.fetch_sub(n, Ordering::AcqRel);
                Err(r)
            }
            Err(_) => Ok(()),
        }
    }

    fn health(&self) -> serde_json::Value {
        let inputs: BTreeMap<String, InputStats> = self
            .inputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.snapshot()))
            .collect();
        serde_json::json!({
            "status": if self.draining.load(Ordering::Relaxed) { "draining" } else { "ok" },
            "queued": self.queued.load(Ordering::Relaxed),
            "capacity": self.capacity,
            "delivered": self.delivered.load(Ordering::Relaxed),
            "inputs": inputs,
        })
    }
}

/// The namespace of [`Relay::builder`].
#[derive(Debug)]
pub struct Relay(());

impl Relay {
    /// A relay with no input yet, a queue of 100,000 records and `Retry-After: 1`.
    pub fn builder() -> RelayBuilder {
        RelayBuilder {
            http: None,
            unix: None,
            token: None,
            queue: 100_000,
            retry_after: Duration::from_secs(1),
            max_body: 64 << 20,
            workers: 2,
            zmq: None,
        }
    }
}

/// Settings of a relay; [`spawn`](RelayBuilder::spawn) starts it.
#[derive(Clone)]
pub struct RelayBuilder {
    http: Option<SocketAddr>,
    unix: Option<PathBuf>,
    token: Option<Secret<String>>,
    queue: usize,
    retry_after: Duration,
    max_body: usize,
    workers: usize,
    zmq: Option<watchbell_zmq::SubscriberBuilder>,
}

impl fmt::Debug for RelayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayBuilder")
            .field("http", &self.http)
            .field("unix", &self.unix)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("queue", &self.queue)
            .field("retry_after", &self.retry_after)
            .field("max_body", &self.max_body)
            .field("zmq", &self.zmq)
            .finish()
    }
}

impl RelayBuilder {
    /// Listens for HTTP on `addr` (port 0: any free port, see [`RelayHandle::http_addr`]).
    pub fn http(mut self, addr: SocketAddr) -> Self {
        self.http = Some(addr);
        self
    }

    /// Listens on a unix stream socket at `path` for NDJSON lines (a stale socket file there
    /// is replaced).
    pub fn unix(mut self, path: impl Into<PathBuf>) -> Self {
        self.unix = Some(path.into());
        self
    }

    /// Requires `Authorization: Bearer <token>` on the HTTP `POST` routes.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Secret::new(token.into()));
        self
    }

    /// The most records queued (at least 1).
    pub fn queue(mut self, records: usize) -> Self {
        self.queue = records.max(1);
        self
    }

    /// The `Retry-After` of a `429` or `503` (whole seconds, at least 1).
    pub fn retry_after(mut self, d: Duration) -> Self {
        self.retry_after = d.max(Duration::from_secs(1));
        self
    }

    /// The largest HTTP body, after gzip decoding (default 64 MiB).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes.max(1024);
        self
    }

    /// Subscribes (SUB, connecting) to a ZeroMQ publisher at `endpoint` (`tcp://host:port` or
    /// `ipc://path`): Logbook's `ZeroMQHandler` and watchbell-zmq's `ZmqLayer` publish there.
    /// Several calls merge several publishers (Logbook's `SubscriberGroup`).
    pub fn zmq(mut self, endpoint: impl Into<String>) -> Self {
        let b = self.zmq.take().unwrap_or_else(watchbell_zmq::ZmqSubscriber::builder);
        self.zmq = Some(b.connect(endpoint));
        self
    }

    /// A ZeroMQ input set up in full (PULL, bound endpoints, topics): see
    /// [`watchbell_zmq::SubscriberBuilder`]. Replaces the endpoints of [`zmq`](Self::zmq).
    pub fn zmq_subscriber(mut self, subscriber: watchbell_zmq::SubscriberBuilder) -> Self {
        self.zmq = Some(subscriber);
        self
    }

    /// Threads of the relay's runtime (default 2).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Starts the inputs and the dispatcher, which hands every record to `handler`.
    pub fn spawn(self, handler: Arc<dyn Handler>) -> std::io::Result<RelayHandle> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let shared = Arc::new(Shared {
            tx: Mutex::new(tx),
            queued: AtomicUsize::new(0),
            capacity: self.queue,
            delivered: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            inputs: Mutex::default(),
            token: self.token.clone(),
            retry_after: self.retry_after,
            max_body: self.max_body,
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.workers)
            .thread_name("watchbell-relay")
            .on_thread_start(watchbell_core::capture::mark_current_thread)
            .enable_io()
            .enable_time()
            .build()?;
        let dispatcher = {
            let shared = Arc::clone(&shared);
            let handler = Arc::clone(&handler);
            std::thread::Builder::new().name("watchbell-relay-dispatch".into()).spawn(move || {
                watchbell_core::capture::mark_current_thread();
                while let Ok(msg) = rx.recv() {
                    match msg {
                        Msg::Records(records) => {
                            let n = records.len();
                            for r in records {
                                handler.handle(r);
                            }
                            shared.delivered.fetch_add(n as u64, Ordering::Relaxed);
                            shared.queued.fetch_sub(n, Ordering::AcqRel);
                        }
                        Msg::Stop => break,
                    }
                }
            })?
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut http_addr = None;
        if let Some(addr) = self.http {
            let listener = runtime.block_on(tokio::net::TcpListener::bind(addr))?;
            http_addr = Some(listener.local_addr()?);
            let app = router(Arc::clone(&shared));
            let mut stop = stop_rx.clone();
            runtime.spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
            });
        }
        if let Some(path) = &self.unix {
            if std::fs::symlink_metadata(path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            }) {
                let _ = std::fs::remove_file(path);
            }
            let listener = {
                let _enter = runtime.enter();
                tokio::net::UnixListener::bind(path)?
            };
            runtime.spawn(unix_input(listener, Arc::clone(&shared), stop_rx.clone()));
        }
        let zmq = match self.zmq {
            Some(b) => {
                let input: Arc<dyn Handler> =
                    Arc::new(Input { counters: shared.input("zmq"), shared: Arc::clone(&shared), name: "zmq".into() });
                Some(b.spawn(input).map_err(|e| std::io::Error::other(e.to_string()))?)
            }
            None => None,
        };
        Ok(RelayHandle {
            shared,
            handler,
            zmq,
            runtime: Mutex::new(Some(runtime)),
            stop: stop_tx,
            dispatcher: Mutex::new(Some(dispatcher)),
            http_addr,
            unix: self.unix,
        })
    }
}

/// A running relay. [`shutdown`](RelayHandle::shutdown) drains it; dropping it shuts down
/// with a 5 s deadline.
pub struct RelayHandle {
    shared: Arc<Shared>,
    handler: Arc<dyn Handler>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    stop: tokio::sync::watch::Sender<bool>,
    dispatcher: Mutex<Option<std::thread::JoinHandle<()>>>,
    http_addr: Option<SocketAddr>,
    unix: Option<PathBuf>,
    zmq: Option<watchbell_zmq::SubscriberHandle>,
}

impl fmt::Debug for RelayHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayHandle")
            .field("http_addr", &self.http_addr)
            .field("unix", &self.unix)
            .field("queued", &self.shared.queued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RelayHandle {
    /// The address the HTTP input listens on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The `/health` document.
    pub fn health(&self) -> serde_json::Value {
        self.shared.health()
    }

    /// The counters of the input `name` (`http-ndjson`, `http-otlp`, `unix`, or a handler
    /// input's name).
    pub fn input_stats(&self, name: &str) -> InputStats {
        self.shared.input(name).snapshot()
    }

    /// Records waiting in the queue now.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// A handler feeding the relay's queue, counted as input `name` (for the ZeroMQ
    /// subscriber, or records made in this process). It never blocks: when the queue is full
    /// a record is dropped and counted under `rejected_full`.
    pub fn input(&self, name: &str) -> Arc<dyn Handler> {
        Arc::new(Input { shared: Arc::clone(&self.shared), counters: self.shared.input(name), name: name.to_owned() })
    }

    /// Stops taking records, delivers the queued ones to the sinks and shuts the sinks down,
    /// waiting at most `timeout` in all.
    pub fn shutdown(&self, timeout: Duration) -> Flushed {
        let deadline = watchbell_core::time::deadline(timeout);
        if let Some(z) = &self.zmq {
            // Stop receiving first: what it dispatched is in the queue, drained below.
            let _ = z.stop(deadline.saturating_duration_since(Instant::now()).min(Duration::from_secs(2)));
        }
        self.shared.draining.store(true, Ordering::Release);
        let _ = self.stop.send(true);
        if let Some(rt) = self.runtime.lock().unwrap_or_else(|e| e.into_inner()).take() {
            rt.shutdown_timeout(deadline.saturating_duration_since(Instant::now()).min(Duration::from_secs(2)));
        }
        let _ = self.shared.tx.lock().unwrap_or_else(|e| e.into_inner()).send(Msg::Stop);
        let mut result = Flushed::COMPLETE;
        if let Some(d) = self.dispatcher.lock().unwrap_or_else(|e| e.into_inner()).take() {
            while !d.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if d.is_finished() {
                let _ = d.join();
            } else {
                result = Flushed { pending: self.queued() as u64, timed_out: true };
            }
        }
        if let Some(p) = &self.unix {
            let _ = std::fs::remove_file(p);
        }
        result.and(self.handler.shutdown(deadline))
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        let _ = self.shutdown(Duration::from_secs(5));
    }
}

/// The relay as a handler: records handed to it go through the queue (input `handler`);
/// flush waits for the queue to empty and flushes the sinks; stats give every input's
/// counters (as `relay-<input>`: `accepted`, `dropped` for refusals, `failed` for invalid
/// bodies) and the sinks' stats.
impl Handler for RelayHandle {
    fn handle(&self, record: Record) {
        let counters = self.shared.input("handler");
        counters.requests.fetch_add(1, Ordering::Relaxed);
        match self.shared.try_enqueue(vec![record]) {
            Ok(()) => counters.accepted.fetch_add(1, Ordering::Relaxed),
            Err(_) => counters.rejected_full.fetch_add(1, Ordering::Relaxed),
        };
    }

    fn flush(&self, deadline: Instant) -> Flushed {
        while self.queued() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let left = self.queued() as u64;
        Flushed { pending: left, timed_out: left > 0 }.and(self.handler.flush(deadline))
    }

    fn shutdown(&self, deadline: Instant) -> Flushed {
        RelayHandle::shutdown(self, deadline.saturating_duration_since(Instant::now()))
    }

    fn stats(&self, out: &mut Vec<Stats>) {
        let inputs = self.shared.inputs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (name, c) in inputs {
            let s = c.snapshot();
            out.push(Stats {
                name: format!("relay-{name}"),
                accepted: s.accepted,
                dropped: s.rejected_full,
                failed: s.invalid + s.unauthorized,
                queued: self.queued() as u64,
                ..Stats::default()
            });
        }
        self.handler.stats(out);
    }
}

struct Input {
    shared: Arc<Shared>,
    counters: Arc<InputCounters>,
    name: String,
}

impl Handler for Input {
    fn handle(&self, record: Record) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        match self.shared.try_enqueue(vec![record]) {
            Ok(()) => self.counters.accepted.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.counters.rejected_full.fetch_add(1, Ordering::Relaxed),
        };
    }

    fn stats(&self, out: &mut Vec<Stats>) {
        let s = self.counters.snapshot();
        out.push(Stats {
            name: format!("relay-{}", self.name),
            accepted: s.accepted,
            dropped: s.rejected_full,
            ..Stats::default()
        });
    }
}

// ---- HTTP ----

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

fn router(shared: Arc<Shared>) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/v1/records", post(post_records))
        .route("/v1/logs", post(post_logs))
        .route("/health", get(health))
        .layer(axum::extract::DefaultBodyLimit::max(shared.max_body))
        .with_state(shared)
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let status = if shared.draining.load(Ordering::Relaxed) { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, [(header::CONTENT_TYPE, "application/json")], shared.health().to_string()).into_response()
}

async fn post_records(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    ingest_http(&shared, "http-ndjson", &headers, body, parse_ndjson, "{\"accepted\":")
}

async fn post_logs(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    ingest_http(&shared, "http-otlp", &headers, body, parse_otlp, "")
}

/// Constant-time comparison of the `Authorization` header with `Bearer <token>`.
fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(token) = &shared.token else { return true };
    let Some(got) = headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes) else { return false };
    let Some(got) = got.strip_prefix(b"Bearer ") else { return false };
    use subtle::ConstantTimeEq;
    got.ct_eq(token.expose().as_bytes()).into()
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], msg.into()).into_response()
}

fn retry_later(shared: &Shared, status: StatusCode, msg: &str) -> Response {
    let secs = shared.retry_after.as_secs().max(1).to_string();
    (status, [(header::RETRY_AFTER, secs)], msg.to_owned()).into_response()
}

fn ingest_http(
    shared: &Shared,
    input: &str,
    headers: &HeaderMap,
    body: Bytes,
    parse: fn(&[u8]) -> Result<Vec<Record>, ParseError>,
    ok_prefix: &str,
) -> Response {
    let counters = shared.input(input);
    counters.requests.fetch_add(1, Ordering::Relaxed);
    if !authorized(shared, headers) {
        counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "a bearer token is required")
            .into_response();
    }
    if shared.draining.load(Ordering::Acquire) {
        return retry_later(shared, StatusCode::SERVICE_UNAVAILABLE, "the relay is shutting down");
    }
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    let decoded;
    let raw: &[u8] = if gzip {
        let mut out = Vec::with_capacity(body.len() * 4);
        let limit = shared.max_body as u64 + 1;
        match flate2::read::GzDecoder::new(&body[..]).take(limit).read_to_end(&mut out) {
            Ok(_) if out.len() > shared.max_body => {
                counters.invalid.fetch_add(1, Ordering::Relaxed);
                return text(StatusCode::PAYLOAD_TOO_LARGE, "the body is larger than the relay takes");
            }
            Ok(_) => {}
            Err(e) => {
                counters.invalid.fetch_add(1, Ordering::Relaxed);
                return text(StatusCode::BAD_REQUEST, format!("gzip: {e}"));
            }
        }
        decoded = out;
        &decoded
    } else {
        &body
    };
    let records = match parse(raw) {
        Ok(r) => r,
        Err(e) => {
            counters.invalid.fetch_add(1, Ordering::Relaxed);
            return text(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let n = records.len();
    match shared.try_enqueue(records) {
        Ok(()) => {
            counters.accepted.fetch_add(n as u64, Ordering::Relaxed);
            let body = if ok_prefix.is_empty() { "{}".to_owned() } else { format!("{ok_prefix}{n}}}") };
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(_) => {
            if shared.draining.load(Ordering::Acquire) {
                return retry_later(shared, StatusCode::SERVICE_UNAVAILABLE, "the relay is shutting down");
            }
            counters.rejected_full.fetch_add(1, Ordering::Relaxed);
            retry_later(shared, StatusCode::TOO_MANY_REQUESTS, "the relay's queue is full")
        }
    }
}

// ---- unix socket ----

/// The most lines taken into the queue at once from one connection.
const UNIX_BATCH: usize = 1000;
/// The longest line (a longer one is counted invalid and skipped).
const UNIX_MAX_LINE: usize = 16 << 20;

async fn unix_input(
    listener: tokio::net::UnixListener,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                tokio::spawn(unix_connection(stream, Arc::clone(&shared)));
            }
        }
    }
}

async fn unix_connection(stream: tokio::net::UnixStream, shared: Arc<Shared>) {
    use tokio::io::AsyncReadExt;
    let counters = shared.input("unix");
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let mut stream = stream;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut line_no = 0usize;
    let mut skipping = false;
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        let eof = n == 0;
        buf.extend_from_slice(&chunk[..n]);
        let mut batch = Vec::new();
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + pos];
            start += pos + 1;
            line_no += 1;
            if std::mem::take(&mut skipping) || line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match parse_line(line, line_no) {
                Ok(r) => batch.push(r),
                Err(_) => {
                    counters.invalid.fetch_add(1, Ordering::Relaxed);
                }
            }
            if batch.len() >= UNIX_BATCH {
                enqueue_waiting(&shared, &counters, std::mem::take(&mut batch)).await;
            }
        }
        buf.drain(..start);
        if eof && !buf.is_empty() && !skipping {
            match parse_line(&buf, line_no + 1) {
                Ok(r) => batch.push(r),
                Err(_) => {
                    counters.invalid.fetch_add(1, Ordering::Relaxed);
                }
            }
            buf.clear();
        }
        if buf.len() > UNIX_MAX_LINE {
            counters.invalid.fetch_add(1, Ordering::Relaxed);
            buf.clear();
            skipping = true;
        }
        if !batch.is_empty() {
            enqueue_waiting(&shared, &counters, batch).await;
        }
        if eof {
            return;
        }
    }
}

/// Waits for room (the socket is not read meanwhile: backpressure on the writers).
async fn enqueue_waiting(shared: &Shared, counters: &InputCounters, mut batch: Vec<Record>) {
    let n = batch.len() as u64;
    loop {
        match shared.try_enqueue(batch) {
            Ok(()) => {
                counters.accepted.fetch_add(n, Ordering::Relaxed);
                return;
            }
            Err(back) => {
                if shared.draining.load(Ordering::Acquire) {
                    counters.rejected_full.fetch_add(n, Ordering::Relaxed);
                    return;
                }
                batch = back;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}
