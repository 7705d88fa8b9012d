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
//!   - `GET /health`: `{"status":"ok"|"draining","queued":…,"capacity":…,"connections":{…},
//!     "inputs":{…}}` with the HTTP connection counts and the per-input counters. Open without
//!     the token (it shows counts only).
//!   - A bearer token ([`RelayBuilder::token`]) is required on the `POST` routes when set,
//!     compared in constant time; a missing or wrong one is a `401`, answered before a byte
//!     of the body is read. The token is redacted in `Debug` and never written anywhere.
//!   - Answers: `200` with `{"accepted":N}` — or `{"accepted":N,"invalid":M,"errors":[…]}`
//!     when some lines of an NDJSON body did not parse or had fields of the wrong type: the
//!     good lines are taken, the bad ones counted (`invalid`) and named (the first ten, by
//!     line number, never quoting the body), since sending them again cannot help; `400` a
//!     body of which nothing could be read (same JSON); `408` a body not complete within
//!     [`read_timeout`](RelayBuilder::read_timeout) (nothing of it taken, the connection
//!     closed); `413` a body above [`max_body`](RelayBuilder::max_body), before or after gzip
//!     decoding (counted as `too_large`; the relay stops reading it at the limit and closes
//!     the connection); `429` with `Retry-After` when the queue has no room for the body,
//!     `503` with `Retry-After` while draining at shutdown. A body is taken whole or not at
//!     all: never a part of a body cut short.
//!   - Hostile clients: at most [`max_connections`](RelayBuilder::max_connections)
//!     connections at once; at the cap the oldest connection that is not handling a request
//!     (idle, or still sending its head) is closed for the newcomer (`connections.evicted` in
//!     `/health`), so a flood of idle connections never keeps `/health` or a publisher out;
//!     when every connection is handling a request the newcomer is closed
//!     (`connections.refused`). A connection that does not send a whole request head within
//!     [`header_timeout`](RelayBuilder::header_timeout) — a slowloris, or a keep-alive
//!     connection left idle — is closed and counted (`connections.cut`). Gzip is
//!     decoded at most to `max_body` bytes (a gzip bomb costs `max_body`, then `413`). Large
//!     bodies are decoded and parsed in `block_in_place`, so `/health` keeps answering.
//! - **Unix socket** ([`RelayBuilder::unix`]): a stream socket taking NDJSON lines, for the
//!   processes of one machine (pre-fork servers). No reply; when the queue is full the relay
//!   stops reading, and the writers' socket buffers fill: backpressure without loss. A line
//!   that does not parse is counted as invalid and skipped. A line longer than `max_body`
//!   (at most 16 MiB) is counted once (`too_large`) and skipped without being held: the relay
//!   keeps at most that much per connection. A peer that connects and stalls holds only its
//!   connection slot (no timeout: pre-fork workers keep idle connections for long); its
//!   unfinished line is never delivered. At most `max_connections` connections at once.
//! - **ZeroMQ** ([`RelayBuilder::zmq`], [`RelayBuilder::zmq_subscriber`]): Logbook's record
//!   dict over SUB (or PULL) sockets, through watchbell-zmq's subscriber: Python services on
//!   Logbook's `ZeroMQHandler` and Rust services on watchbell-zmq's `ZmqLayer` feed the same
//!   relay. ZeroMQ has no backpressure answer: when the queue is full a record from it is
//!   dropped and counted (`rejected_full` of input `zmq`).
//! - **Any handler** ([`RelayHandle::input`]): a [`Handler`] that feeds the queue, counted
//!   under its own name — for the ZeroMQ subscriber, or records made in-process.
//!
//! ## Cost per record
//!
//! See [`ingest`]: strings are borrowed from the body while a line is read, names
//! (targets, files, field names…) are kept once per process within a 1 MiB budget, and the
//! record is built once.
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

pub use ingest::{parse_line, parse_ndjson, parse_otlp, read_ndjson, ParseError, Parsed};

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
    too_large: AtomicU64,
    timed_out: AtomicU64,
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
    /// Records (NDJSON lines, unix socket lines) or whole bodies that could not be read.
    pub invalid: u64,
    /// Requests without the right token.
    pub unauthorized: u64,
    /// Bodies (or unix socket lines) above the size limit (`413`).
    pub too_large: u64,
    /// Bodies not complete within the read timeout (`408`).
    pub timed_out: u64,
}

impl InputCounters {
    fn snapshot(&self) -> InputStats {
        InputStats {
            requests: self.requests.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected_full: self.rejected_full.load(Ordering::Relaxed),
            invalid: self.invalid.load(Ordering::Relaxed),
            unauthorized: self.unauthorized.load(Ordering::Relaxed),
            too_large: self.too_large.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
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
    read_timeout: Duration,
    max_connections: usize,
    /// HTTP connections open now.
    open: AtomicUsize,
    /// HTTP connections closed for not sending a request head in time.
    cut: AtomicU64,
    /// Idle HTTP connections closed to make room for a newcomer at the cap.
    evicted: AtomicU64,
    /// HTTP connections closed on arrival: at the cap, every connection was busy.
    refused: AtomicU64,
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
            "connections": {
                "open": self.open.load(Ordering::Relaxed),
                "max": self.max_connections,
                "cut": self.cut.load(Ordering::Relaxed),
                "evicted": self.evicted.load(Ordering::Relaxed),
                "refused": self.refused.load(Ordering::Relaxed),
            },
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
            header_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_connections: 1024,
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
    header_timeout: Duration,
    read_timeout: Duration,
    max_connections: usize,
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
            .field("header_timeout", &self.header_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("max_connections", &self.max_connections)
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

    /// The largest HTTP body, before and after gzip decoding (default 64 MiB, at least
    /// 1 KiB); also the longest unix socket line (at most 16 MiB).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes.max(1024);
        self
    }

    /// The longest an HTTP connection may take to send a whole request head, counted from
    /// the connection or from the end of its previous request (so it is also how long a
    /// keep-alive connection may stay idle). Default 10 s, at least 10 ms.
    pub fn header_timeout(mut self, d: Duration) -> Self {
        self.header_timeout = d.max(Duration::from_millis(10));
        self
    }

    /// The longest an HTTP body may take to arrive, from its request head to its last byte
    /// (default 30 s, at least 10 ms); past it the answer is `408` and the connection is
    /// closed.
    pub fn read_timeout(mut self, d: Duration) -> Self {
        self.read_timeout = d.max(Duration::from_millis(10));
        self
    }

    /// The most connections open at once, for the HTTP input and for the unix socket input
    /// each (default 1024, at least 1).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
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
            read_timeout: self.read_timeout,
            max_connections: self.max_connections,
            open: AtomicUsize::new(0),
            cut: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
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
            runtime.spawn(http_input(listener, app, Arc::clone(&shared), self.header_timeout, stop_rx.clone()));
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
                failed: s.invalid + s.unauthorized + s.too_large + s.timed_out,
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

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

fn router(shared: Arc<Shared>) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/v1/records", post(post_records))
        .route("/v1/logs", post(post_logs))
        .route("/health", get(health))
        .with_state(shared)
}

/// One HTTP connection, as the accept loop sees it.
struct Conn {
    /// Requests being handled on it now.
    busy: AtomicUsize,
    /// Told to close (it is the oldest idle connection and a newcomer needs its slot).
    evict: tokio::sync::Notify,
}

/// Accepts HTTP connections, at most `max_connections` at once, each served with a header
/// timeout. At the cap, the oldest connection that is not handling a request (idle, or still
/// sending its request head) is closed to make room for the newcomer; when every connection
/// is handling a request, the newcomer is closed.
async fn http_input(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shared: Arc<Shared>,
    header_timeout: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(shared.max_connections));
    // Open connections, oldest first.
    let conns: Arc<Mutex<Vec<Arc<Conn>>>> = Arc::default();
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors and the like: wait, then try again.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let oldest_idle = {
                    let list = conns.lock().unwrap_or_else(|e| e.into_inner());
                    list.iter().find(|c| c.busy.load(Ordering::Acquire) == 0).cloned()
                };
                let Some(victim) = oldest_idle else {
                    shared.refused.fetch_add(1, Ordering::Relaxed);
                    drop(stream);
                    continue;
                };
                victim.evict.notify_one();
                shared.evicted.fetch_add(1, Ordering::Relaxed);
                match tokio::time::timeout(Duration::from_secs(1), Arc::clone(&slots).acquire_owned()).await {
                    Ok(Ok(slot)) => slot,
                    _ => {
                        shared.refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(Conn { busy: AtomicUsize::new(0), evict: tokio::sync::Notify::new() });
        conns.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::clone(&conn));
        shared.open.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(&shared);
        let conns = Arc::clone(&conns);
        let app = app.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let service = {
                let conn = Arc::clone(&conn);
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    use tower::ServiceExt as _;
                    let conn = Arc::clone(&conn);
                    conn.busy.fetch_add(1, Ordering::AcqRel);
                    let call = app.clone().oneshot(req.map(Body::new));
                    async move {
                        let answer = call.await;
                        conn.busy.fetch_sub(1, Ordering::AcqRel);
                        answer
                    }
                })
            };
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout);
            let served = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut served = std::pin::pin!(served);
            let stopping = tokio::select! {
                r = served.as_mut() => {
                    if r.is_err_and(|e| e.is_timeout()) {
                        shared.cut.fetch_add(1, Ordering::Relaxed);
                    }
                    false
                }
                _ = conn.evict.notified() => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if stopping {
                served.as_mut().graceful_shutdown();
                let _ = served.await;
            }
            conns.lock().unwrap_or_else(|e| e.into_inner()).retain(|c| !Arc::ptr_eq(c, &conn));
            shared.open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let status = if shared.draining.load(Ordering::Relaxed) { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, [(header::CONTENT_TYPE, "application/json")], shared.health().to_string()).into_response()
}

#[derive(Clone, Copy)]
enum Format {
    Ndjson,
    Otlp,
}

async fn post_records(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    ingest_http(&shared, "http-ndjson", req, Format::Ndjson).await
}

async fn post_logs(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    ingest_http(&shared, "http-otlp", req, Format::Otlp).await
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

/// An answer after which the connection is closed (the rest of the body is not read).
fn closing(status: StatusCode, msg: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CONNECTION, "close")], msg.to_owned())
        .into_response()
}

fn retry_later(shared: &Shared, status: StatusCode, msg: &str) -> Response {
    let secs = shared.retry_after.as_secs().max(1).to_string();
    (status, [(header::RETRY_AFTER, secs)], msg.to_owned()).into_response()
}

const TOO_LARGE: &str = "the body is larger than the relay takes";

/// Reads a whole body: at most `max_body` bytes, complete within `read_timeout`.
async fn read_body(
    shared: &Shared,
    counters: &InputCounters,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, Response> {
    use http_body_util::BodyExt as _;
    let limit = shared.max_body;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        counters.too_large.fetch_add(1, Ordering::Relaxed);
        return Err(closing(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE));
    }
    let deadline = tokio::time::Instant::from_std(watchbell_core::time::deadline(shared.read_timeout));
    let mut body = body;
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    let mut total = 0usize;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                counters.timed_out.fetch_add(1, Ordering::Relaxed);
                return Err(closing(StatusCode::REQUEST_TIMEOUT, "the body did not arrive in time"));
            }
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                counters.invalid.fetch_add(1, Ordering::Relaxed);
                return Err(closing(StatusCode::BAD_REQUEST, "the body was cut short"));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        total += data.len();
        if total > limit {
            counters.too_large.fetch_add(1, Ordering::Relaxed);
            return Err(closing(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE));
        }
        match first.take() {
            None if rest.is_empty() => first = Some(data),
            None => rest.extend_from_slice(&data),
            Some(f) => {
                rest.reserve(declared.map_or(f.len() + data.len(), |n| n as usize));
                rest.extend_from_slice(&f);
                rest.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(rest)))
}

/// Bodies above this size (or gzip bodies above a quarter of it) are decoded and parsed off
/// the runtime's threads ([`tokio::task::block_in_place`]), so `/health` and the other
/// connections keep being served meanwhile.
const LARGE_BODY: usize = 1 << 20;

/// Decodes and parses a body: `Err` is the answer when nothing could be read.
fn decode_and_parse(
    shared: &Shared,
    counters: &InputCounters,
    gzip: bool,
    body: &[u8],
    format: Format,
) -> Result<Parsed, Box<Response>> {
    let decoded;
    let raw: &[u8] = if gzip {
        let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(shared.max_body.saturating_add(1)));
        let limit = (shared.max_body as u64).saturating_add(1);
        match flate2::read::GzDecoder::new(body).take(limit).read_to_end(&mut out) {
            Ok(_) if out.len() > shared.max_body => {
                counters.too_large.fetch_add(1, Ordering::Relaxed);
                return Err(Box::new(text(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE)));
            }
            Ok(_) => {}
            Err(e) => {
                counters.invalid.fetch_add(1, Ordering::Relaxed);
                return Err(Box::new(text(StatusCode::BAD_REQUEST, format!("gzip: {e}"))));
            }
        }
        decoded = out;
        &decoded
    } else {
        body
    };
    Ok(match format {
        Format::Ndjson => read_ndjson(raw),
        Format::Otlp => match parse_otlp(raw) {
            Ok(records) => Parsed { records, ..Parsed::default() },
            Err(e) => Parsed { records: Vec::new(), invalid: 1, errors: vec![e] },
        },
    })
}

/// The answer to an NDJSON body: `{"accepted":N}`, with the invalid lines when there were.
fn ndjson_answer(accepted: usize, parsed_invalid: usize, errors: &[ParseError]) -> String {
    if parsed_invalid == 0 {
        return format!("{{\"accepted\":{accepted}}}");
    }
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    serde_json::json!({ "accepted": accepted, "invalid": parsed_invalid, "errors": errors }).to_string()
}

async fn ingest_http(shared: &Shared, input: &str, req: Request, format: Format) -> Response {
    let counters = shared.input(input);
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    // Before a byte of the body is read: a client without the token costs no more.
    if !authorized(shared, headers) {
        counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "a bearer token is required")
            .into_response();
    }
    if shared.draining.load(Ordering::Acquire) {
        return retry_later(shared, StatusCode::SERVICE_UNAVAILABLE, "the relay is shutting down");
    }
    let body = match read_body(shared, &counters, headers, body).await {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    let large = body.len() > if gzip { LARGE_BODY / 4 } else { LARGE_BODY };
    let work = || decode_and_parse(shared, &counters, gzip, &body, format);
    let parsed = match if large { tokio::task::block_in_place(work) } else { work() } {
        Ok(p) => p,
        Err(answer) => return *answer,
    };
    let Parsed { records, invalid, errors } = parsed;
    if records.is_empty() && invalid > 0 {
        counters.invalid.fetch_add(invalid as u64, Ordering::Relaxed);
        return match format {
            Format::Ndjson => (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "application/json")],
                ndjson_answer(0, invalid, &errors),
            )
                .into_response(),
            Format::Otlp => text(StatusCode::BAD_REQUEST, errors.first().map(ToString::to_string).unwrap_or_default()),
        };
    }
    let n = records.len();
    match shared.try_enqueue(records) {
        Ok(()) => {
            counters.accepted.fetch_add(n as u64, Ordering::Relaxed);
            counters.invalid.fetch_add(invalid as u64, Ordering::Relaxed);
            let body = match format {
                Format::Ndjson => ndjson_answer(n, invalid, &errors),
                Format::Otlp => "{}".to_owned(),
            };
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
/// The longest line whatever `max_body` says (a longer one is counted and skipped).
const UNIX_MAX_LINE: usize = 16 << 20;
/// What a connection reads at once, and the buffer it keeps between lines.
const UNIX_CHUNK: usize = 64 * 1024;

async fn unix_input(
    listener: tokio::net::UnixListener,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(shared.max_connections));
    loop {
        let slot = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    unix_connection(stream, shared).await;
                    drop(slot);
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn unix_connection(stream: tokio::net::UnixStream, shared: Arc<Shared>) {
    use tokio::io::AsyncReadExt;
    let counters = shared.input("unix");
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let max_line = shared.max_body.min(UNIX_MAX_LINE);
    let mut stream = stream;
    let mut buf: Vec<u8> = Vec::with_capacity(UNIX_CHUNK);
    // `buf[..scanned]` holds no newline: each byte is looked at once.
    let mut scanned = 0usize;
    let mut line_no = 0usize;
    // Inside a line longer than `max_line`: its bytes are dropped until its end.
    let mut skipping = false;
    loop {
        buf.reserve(UNIX_CHUNK);
        let eof = !matches!(stream.read_buf(&mut buf).await, Ok(n) if n > 0);
        let mut batch = Vec::new();
        let mut start = 0;
        while let Some(pos) = memchr::memchr(b'\n', &buf[scanned..]) {
            let end = scanned + pos;
            line_no += 1;
            let line = &buf[start..end];
            if !std::mem::take(&mut skipping) && !line.iter().all(u8::is_ascii_whitespace) {
                match parse_line(line, line_no) {
                    Ok(r) => batch.push(r),
                    Err(_) => {
                        counters.invalid.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            start = end + 1;
            scanned = start;
            if batch.len() >= UNIX_BATCH {
                enqueue_waiting(&shared, &counters, std::mem::take(&mut batch)).await;
            }
        }
        buf.drain(..start);
        scanned = buf.len();
        if skipping {
            buf.clear();
            scanned = 0;
        } else if buf.len() > max_line {
            counters.too_large.fetch_add(1, Ordering::Relaxed);
            buf.clear();
            scanned = 0;
            skipping = true;
        }
        if buf.capacity() > 4 * UNIX_CHUNK && buf.len() < UNIX_CHUNK {
            // A long line passed: give its room back.
            buf.shrink_to(UNIX_CHUNK);
        }
        if eof && !buf.is_empty() && !skipping {
            match parse_line(&buf, line_no + 1) {
                Ok(r) => batch.push(r),
                Err(_) => {
                    counters.invalid.fetch_add(1, Ordering::Relaxed);
                }
            }
            buf.clear();
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
