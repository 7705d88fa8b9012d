//! [`ZmqLayer`]: publishes each record as one Logbook JSON message on a PUB or PUSH socket.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing_core::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use watchbell_core::options::{Options, SinkOptions};
use watchbell_core::{
    Batch, BuildError, DeliveryHandle, Flushed, Guard, Handler, Level, Outcome, Record, Sink, SinkLayer, Stats,
};
use zeromq::{PubSocket, PushSocket, Socket, SocketOptions, SocketSend, ZmqMessage};

use crate::logbook::logbook_json;

const CRATE: &str = "watchbell-zmq";

/// The largest frame a peer of the publisher may send (subscriptions and handshake commands).
const PEER_FRAME_LIMIT: usize = 1 << 20;

/// The default largest message the publisher sends (4 MiB): a larger record is cut (message
/// and text fields, with the truncation marker) until its JSON fits.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 << 20;

/// The socket type of a [`ZmqLayer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketKind {
    /// PUB (Logbook's `ZeroMQHandler` default): binds by default; every connected subscriber
    /// gets every record; records published while no subscriber is connected are gone, as
    /// in ZeroMQ.
    Pub,
    /// PUSH (Logbook's `multi=True`): connects by default, for many publishers feeding one
    /// PULL subscriber; while no peer is connected the records wait in the bounded queue and
    /// are retried.
    Push,
}

impl std::str::FromStr for SocketKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "pub" => Ok(SocketKind::Pub),
            "push" => Ok(SocketKind::Push),
            other => Err(format!("{other:?} is not a socket type (\"pub\" or \"push\")")),
        }
    }
}

/// Where [`ZmqLayer::builder`] starts.
#[derive(Debug)]
pub struct ZmqLayer(());

impl ZmqLayer {
    /// A builder publishing to `endpoint` (`tcp://host:port` or `ipc:///path`) with the
    /// defaults of the [crate docs](crate): PUB, bound, level `INFO`, no rate limit.
    pub fn builder(endpoint: impl Into<String>) -> ZmqBuilder {
        ZmqBuilder {
            options: Options::new().timeout(Duration::from_secs(5)),
            endpoint: endpoint.into(),
            kind: SocketKind::Pub,
            bind: None,
            level: Level::INFO,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// Builds a [`ZmqLayer`]; see the [crate docs](crate) for every default.
pub struct ZmqBuilder {
    options: Options,
    endpoint: String,
    kind: SocketKind,
    bind: Option<bool>,
    level: Level,
    max_message_bytes: usize,
}

impl fmt::Debug for ZmqBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZmqBuilder")
            .field("endpoint", &self.endpoint)
            .field("kind", &self.kind)
            .field("bind", &self.bind)
            .field("level", &self.level)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("options", &self.options)
            .finish()
    }
}

impl SinkOptions for ZmqBuilder {
    fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }
}

impl ZmqBuilder {
    /// A PUB socket (the default).
    pub fn pub_(mut self) -> Self {
        self.kind = SocketKind::Pub;
        self
    }

    /// A PUSH socket.
    pub fn push(mut self) -> Self {
        self.kind = SocketKind::Push;
        self
    }

    /// The socket type.
    pub fn socket(mut self, kind: SocketKind) -> Self {
        self.kind = kind;
        self
    }

    /// Binds the endpoint (the default for PUB). Binding happens in `build`, so an address in
    /// use is a build error.
    pub fn bind(mut self) -> Self {
        self.bind = Some(true);
        self
    }

    /// Connects to the endpoint (the default for PUSH), from the background thread, again
    /// after every failure; ZeroMQ reconnects a lost connection by itself.
    pub fn connect(mut self) -> Self {
        self.bind = Some(false);
        self
    }

    /// The least level published (default `INFO`).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// The largest message sent (default [`DEFAULT_MAX_MESSAGE_BYTES`], at least 4 KiB).
    pub fn max_message_bytes(mut self, n: usize) -> Self {
        self.max_message_bytes = n.max(4096);
        self
    }

    fn err(key: &str, msg: impl fmt::Display) -> BuildError {
        BuildError::new(CRATE, key, msg)
    }

    fn sink(&self) -> Result<ZmqSink, BuildError> {
        check_endpoint("endpoint", &self.endpoint)?;
        let bind = self.bind.unwrap_or(self.kind == SocketKind::Pub);
        let rt = runtime("watchbell-zmq-pub").map_err(|e| Self::err("runtime", e))?;
        let mut sink = ZmqSink {
            rt: Some(rt),
            endpoint: self.endpoint.clone(),
            kind: self.kind,
            bind,
            timeout: self.options.timeout,
            max_message_bytes: self.max_message_bytes,
            socket: None,
            stop: tokio::sync::watch::channel(false).0,
            peers: crate::guard::Peers::default(),
        };
        if bind {
            off_runtime(|| sink.open()).map_err(|e| Self::err("endpoint", e))?;
        }
        Ok(sink)
    }

    /// Starts the delivery and returns the root handler (behind the rate limit, if any) and
    /// its guard: for feeding records from other handlers.
    pub fn build_handler(self) -> Result<(Arc<dyn Handler>, Guard), BuildError> {
        let root = self.root()?;
        let guard = Guard::new(Arc::clone(&root));
        Ok((root, guard))
    }

    fn root(&self) -> Result<Arc<dyn Handler>, BuildError> {
        let sink = self.sink()?;
        // A bound PUB knows whether anyone listens (its frame guard counts the peers).
        let listeners = (sink.kind == SocketKind::Pub && sink.bind).then(|| sink.peers.clone());
        let name = format!("zmq:{}", self.endpoint);
        let delivery = self
            .options
            .delivery(name, sink)
            .batch_records(256)
            .spawn()
            .map_err(|e| Self::err("delivery", format!("cannot start the delivery thread: {e}")))?;
        Ok(match listeners {
            Some(peers) => self.options.limited("zmq", Unheard::new(delivery, peers)),
            None => self.options.limited("zmq", delivery),
        })
    }

    /// Builds the layer (capturing at [`level`](Self::level) and above) and its guard. Keep the
    /// guard until the end of `main`: dropping it delivers what is queued.
    pub fn build<S>(self) -> Result<(SinkLayer<S>, Guard), BuildError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        Ok(watchbell_core::options::layer(self.root()?, self.level))
    }
}

/// The handler in front of a bound PUB's delivery. While no subscriber is connected, a record
/// is dropped here, on the caller's thread, right after capture: ZeroMQ's PUB would drop it
/// anyway, and this way it never takes the queue's lock, never wakes the background thread
/// and is not freed on another thread (whose allocator and cache traffic the caller would pay
/// for). Such records count as accepted and delivered (published), as ZeroMQ sees it. After
/// `shutdown`, records go to the delivery, which counts them as dropped.
struct Unheard {
    delivery: DeliveryHandle,
    peers: crate::guard::Peers,
    unheard: AtomicU64,
    closed: AtomicBool,
}

impl Unheard {
    fn new(delivery: DeliveryHandle, peers: crate::guard::Peers) -> Self {
        Unheard { delivery, peers, unheard: AtomicU64::new(0), closed: AtomicBool::new(false) }
    }

    /// Whether a record published now is heard by nobody (and is dropped here).
    #[inline]
    fn nobody_listens(&self) -> bool {
        !self.peers.any() && !self.closed.load(Relaxed)
    }
}

impl Handler for Unheard {
    fn handle(&self, record: Record) {
        if self.nobody_listens() {
            self.unheard.fetch_add(1, Relaxed);
            drop(record);
        } else {
            self.delivery.handle(record);
        }
    }

    fn handle_batch(&self, batch: Batch) {
        if self.nobody_listens() {
            self.unheard.fetch_add(batch.len() as u64, Relaxed);
            drop(batch);
        } else {
            self.delivery.handle_batch(batch);
        }
    }

    fn flush(&self, deadline: Instant) -> Flushed {
        self.delivery.flush(deadline)
    }

    fn shutdown(&self, deadline: Instant) -> Flushed {
        self.closed.store(true, Relaxed);
        self.delivery.shutdown(deadline)
    }

    fn stats(&self, out: &mut Vec<Stats>) {
        let first = out.len();
        self.delivery.stats(out);
        if let Some(s) = out.get_mut(first) {
            let n = self.unheard.load(Relaxed);
            s.accepted += n;
            s.delivered += n;
        }
    }
}

/// Checks that `endpoint` is `tcp://host:port` or `ipc://path`.
pub(crate) fn check_endpoint(key: &str, endpoint: &str) -> Result<(), BuildError> {
    let ok = if let Some(rest) = endpoint.strip_prefix("tcp://") {
        rest.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
    } else if let Some(rest) = endpoint.strip_prefix("ipc://") {
        !rest.is_empty() && !rest.contains('\0')
    } else {
        false
    };
    if ok {
        Ok(())
    } else {
        Err(BuildError::new(CRATE, key, format!("{endpoint:?} is not tcp://host:port or ipc://path")))
    }
}

/// watchbell's own runtime for the ZeroMQ sockets: one worker thread, marked so that events
/// of the ZeroMQ implementation (its `log` records) are never captured again.
pub(crate) fn runtime(name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .thread_name(name)
        .on_thread_start(watchbell_core::capture::mark_current_thread)
        .build()
}

enum Sock {
    Pub(PubSocket),
    Push(PushSocket),
}

struct ZmqSink {
    rt: Option<tokio::runtime::Runtime>,
    endpoint: String,
    kind: SocketKind,
    bind: bool,
    timeout: Duration,
    max_message_bytes: usize,
    socket: Option<Sock>,
    /// Stops the frame guards.
    stop: tokio::sync::watch::Sender<bool>,
    /// The peers of a bound endpoint.
    peers: crate::guard::Peers,
}

/// Runs `f` here, or on a helper thread when this thread is inside a tokio runtime (where
/// blocking on or dropping another runtime would panic): building a layer inside
/// `#[tokio::main]` works.
fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| s.spawn(f).join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
}

impl Drop for ZmqSink {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        let (rt, socket) = (self.rt.take(), self.socket.take());
        off_runtime(move || close(rt, socket));
    }
}

/// Closes the socket (waiting at most 500 ms) and ends the runtime.
fn close(rt: Option<tokio::runtime::Runtime>, socket: Option<Sock>) {
    let Some(rt) = rt else { return };
    rt.block_on(async move {
        let close = async move {
            match socket {
                Some(Sock::Pub(s)) => drop(s.close().await),
                Some(Sock::Push(s)) => drop(s.close().await),
                None => {}
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(500), close).await;
    });
    rt.shutdown_timeout(Duration::from_millis(200));
}

impl ZmqSink {
    fn open(&mut self) -> Result<(), String> {
        let Some(rt) = &self.rt else { return Err("shut down".into()) };
        let mut opts = SocketOptions::default();
        opts.connect_timeout(self.timeout);
        let (endpoint, bind, timeout, kind) = (self.endpoint.clone(), self.bind, self.timeout, self.kind);
        let stop = self.stop.subscribe();
        let peers = self.peers.clone();
        let sock = rt.block_on(async move {
            // The ZeroMQ socket only ever talks to the frame guard (see `guard`).
            let attach = async {
                let mut s = match kind {
                    SocketKind::Pub => Sock::Pub(PubSocket::with_options(opts)),
                    SocketKind::Push => Sock::Push(PushSocket::with_options(opts)),
                };
                if bind {
                    let inner = match &mut s {
                        Sock::Pub(s) => s.bind("tcp://127.0.0.1:0").await,
                        Sock::Push(s) => s.bind("tcp://127.0.0.1:0").await,
                    }
                    .map_err(|e| e.to_string())?;
                    let inner = inner.to_string().trim_start_matches("tcp://").to_owned();
                    crate::guard::front_bind(&endpoint, inner, PEER_FRAME_LIMIT, stop, peers)
                        .await
                        .map_err(|e| e.to_string())?;
                } else {
                    let local = crate::guard::front_connect(&endpoint, PEER_FRAME_LIMIT, stop)
                        .await
                        .map_err(|e| e.to_string())?;
                    match &mut s {
                        Sock::Pub(s) => s.connect(&local).await,
                        Sock::Push(s) => s.connect(&local).await,
                    }
                    .map_err(|e| e.to_string())?;
                }
                Ok::<_, String>(s)
            };
            match tokio::time::timeout(timeout, attach).await {
                Ok(Ok(s)) => Ok(s),
                Ok(Err(e)) => Err(format!("{} {endpoint}: {e}", if bind { "bind" } else { "connect" })),
                Err(_) => Err(format!("connect {endpoint}: no peer within {timeout:?}")),
            }
        })?;
        self.socket = Some(sock);
        Ok(())
    }

    fn encode(&self, record: &Record) -> Vec<u8> {
        let bytes = logbook_json(record);
        if bytes.len() <= self.max_message_bytes {
            return bytes;
        }
        let mut r = record.clone();
        let mut target = self.max_message_bytes / 2;
        loop {
            r.shrink_to(target);
            let bytes = logbook_json(&r);
            if bytes.len() <= self.max_message_bytes || target < 1024 {
                return bytes;
            }
            target /= 2;
        }
    }
}

impl Sink for ZmqSink {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        if self.socket.is_none() {
            if let Err(e) = self.open() {
                return Outcome::retry(e);
            }
        }
        if self.kind == SocketKind::Pub && self.bind && !self.peers.any() {
            // A PUB drops what no subscriber hears: do not even encode it.
            return Outcome::Delivered;
        }
        let messages: Vec<Vec<u8>> = batch.records.iter().map(|r| self.encode(r)).collect();
        let (Some(rt), Some(socket)) = (&self.rt, &mut self.socket) else {
            return Outcome::retry("shut down");
        };
        let timeout = self.timeout;
        let sent = rt.block_on(async {
            let mut sent = 0usize;
            for m in messages {
                let msg = ZmqMessage::from(m);
                let send = async {
                    match socket {
                        Sock::Pub(s) => s.send(msg).await,
                        Sock::Push(s) => s.send(msg).await,
                    }
                };
                match tokio::time::timeout(timeout, send).await {
                    Ok(Ok(())) => sent += 1,
                    Ok(Err(e)) => return (sent, Some(e.to_string())),
                    Err(_) => return (sent, Some(format!("send blocked longer than {timeout:?}"))),
                }
            }
            (sent, None)
        });
        match sent {
            (n, None) if n == batch.records.len() => Outcome::Delivered,
            (0, e) => Outcome::retry(format!("{}: {}", self.endpoint, e.unwrap_or_default())),
            (n, _) => Outcome::More { delivered: n },
        }
    }
}
