//! [`ZmqSubscriber`]: receives Logbook JSON records on SUB or PULL sockets and dispatches them
//! into a local [`Handler`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use watchbell_core::{BuildError, Handler};
use zeromq::{PullSocket, Socket, SocketOptions, SocketRecv, SubSocket, ZmqMessage};

use crate::guard;
use crate::layer::{check_endpoint, runtime};
use crate::logbook::{record_from_logbook_json, MAX_MESSAGE_BYTES};

const CRATE: &str = "watchbell-zmq";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Sub(Vec<String>),
    Pull,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct EndpointSpec {
    endpoint: String,
    bind: bool,
    kind: Kind,
}

/// Where [`ZmqSubscriber::builder`] starts.
#[derive(Debug)]
pub struct ZmqSubscriber(());

impl ZmqSubscriber {
    /// A builder without endpoints: add them with [`connect`](SubscriberBuilder::connect) and
    /// [`bind`](SubscriberBuilder::bind).
    pub fn builder() -> SubscriberBuilder {
        SubscriberBuilder {
            endpoints: Vec::new(),
            max_message_bytes: MAX_MESSAGE_BYTES,
            reconnect: Duration::from_millis(200),
        }
    }
}

/// Builds a subscriber over one or more endpoints (merged, as Logbook's `SubscriberGroup`).
///
/// Each [`connect`](Self::connect) or [`bind`](Self::bind) adds an endpoint with a SUB socket
/// subscribed to everything; [`pull`](Self::pull) and [`sub`](Self::sub) change the endpoint
/// added last.
#[derive(Clone, Debug)]
pub struct SubscriberBuilder {
    endpoints: Vec<EndpointSpec>,
    max_message_bytes: usize,
    reconnect: Duration,
}

impl SubscriberBuilder {
    /// Adds an endpoint to connect to (Logbook's `ZeroMQSubscriber(uri)`: SUB connects to the
    /// publisher's bound PUB). Connecting retries until the peer is there.
    pub fn connect(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoints.push(EndpointSpec { endpoint: endpoint.into(), bind: false, kind: Kind::Sub(Vec::new()) });
        self
    }

    /// Adds an endpoint to bind (`tcp://127.0.0.1:0` picks a free port; see
    /// [`SubscriberHandle::endpoints`]). Binding happens in [`spawn`](Self::spawn).
    pub fn bind(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoints.push(EndpointSpec { endpoint: endpoint.into(), bind: true, kind: Kind::Sub(Vec::new()) });
        self
    }

    /// Makes the endpoint added last a PULL socket (Logbook's `multi=True`: many PUSH
    /// publishers connect to one bound PULL).
    pub fn pull(mut self) -> Self {
        if let Some(e) = self.endpoints.last_mut() {
            e.kind = Kind::Pull;
        }
        self
    }

    /// Subscribes the endpoint added last (a SUB socket) to messages starting with `topic`
    /// instead of everything. Call it again for more topics.
    // Named after the socket type, as `pull`; not an arithmetic operator.
    #[allow(clippy::should_implement_trait)]
    pub fn sub(mut self, topic: impl Into<String>) -> Self {
        if let Some(e) = self.endpoints.last_mut() {
            match &mut e.kind {
                Kind::Sub(topics) => topics.push(topic.into()),
                Kind::Pull => e.kind = Kind::Sub(vec![topic.into()]),
            }
        }
        self
    }

    /// The largest message accepted (default 16 MiB); larger ones are counted as malformed.
    pub fn max_message_bytes(mut self, n: usize) -> Self {
        self.max_message_bytes = n.max(1024);
        self
    }

    /// The pause between two connection attempts to an absent peer (default 200 ms).
    pub fn reconnect_interval(mut self, d: Duration) -> Self {
        self.reconnect = d.max(Duration::from_millis(10));
        self
    }

    /// Starts the subscriber on its own thread (with its own runtime) and dispatches every
    /// record it receives to `handler`. Bound endpoints are bound before this returns.
    ///
    /// # Errors
    /// No endpoint, an endpoint that is not `tcp://host:port` or `ipc://path`, or one that
    /// cannot be bound.
    pub fn spawn(self, handler: Arc<dyn Handler>) -> Result<SubscriberHandle, BuildError> {
        if self.endpoints.is_empty() {
            return Err(BuildError::new(CRATE, "endpoint", "no endpoint to connect to or bind"));
        }
        for e in &self.endpoints {
            check_endpoint("endpoint", &e.endpoint)?;
        }
        let counters = Arc::new(Counters::default());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Vec<String>, BuildError>>();
        let c = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("watchbell-zmq-sub".into())
            .spawn(move || {
                watchbell_core::capture::mark_current_thread();
                let rt = match runtime("watchbell-zmq-sub") {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(BuildError::new(CRATE, "runtime", e)));
                        return;
                    }
                };
                rt.block_on(run(self, handler, c, stop_rx, ready_tx));
                rt.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(|e| BuildError::new(CRATE, "thread", e))?;
        let endpoints = match ready_rx.recv() {
            Ok(Ok(endpoints)) => endpoints,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(BuildError::new(CRATE, "thread", "the subscriber thread ended at start"));
            }
        };
        Ok(SubscriberHandle { endpoints, counters, stop: stop_tx, thread: Mutex::new(Some(thread)) })
    }
}

#[derive(Default, Debug)]
struct Counters {
    received: AtomicU64,
    malformed: AtomicU64,
    dispatched: AtomicU64,
    connected: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Counters {
    fn error(&self, e: String) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(e);
        }
    }
}

/// The counters of a running subscriber.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscriberStats {
    /// Messages received on any endpoint.
    pub received: u64,
    /// Messages that were not a Logbook record (not JSON, not an object, no level, too large).
    pub malformed: u64,
    /// Records handed to the handler.
    pub dispatched: u64,
    /// Connections made by connecting endpoints (reconnects made by ZeroMQ not included).
    pub connected: u64,
    /// Why the last malformed message was refused.
    pub last_error: Option<String>,
}

/// A running subscriber: its bound endpoints, its counters, and `stop`. Dropping it stops it
/// (waiting at most 2 s).
pub struct SubscriberHandle {
    endpoints: Vec<String>,
    counters: Arc<Counters>,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for SubscriberHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriberHandle").field("endpoints", &self.endpoints).field("stats", &self.stats()).finish()
    }
}

impl SubscriberHandle {
    /// The endpoints in the order they were added; a bound one as bound (with the port a
    /// `:0` endpoint got).
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The counters now.
    pub fn stats(&self) -> SubscriberStats {
        let c = &self.counters;
        SubscriberStats {
            received: c.received.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            dispatched: c.dispatched.load(Ordering::Relaxed),
            connected: c.connected.load(Ordering::Relaxed),
            last_error: c.last_error.lock().ok().and_then(|g| g.clone()),
        }
    }

    /// Whether the subscriber's thread is still running.
    pub fn is_running(&self) -> bool {
        self.thread.lock().ok().and_then(|g| g.as_ref().map(|t| !t.is_finished())).unwrap_or(false)
    }

    /// Stops receiving, closes the sockets and waits for the thread until `timeout` has passed.
    /// Returns whether the thread ended in time. Records already dispatched stay with the
    /// handler (flush it yourself).
    pub fn stop(&self, timeout: Duration) -> bool {
        let _ = self.stop.send(true);
        let Some(thread) = self.thread.lock().ok().and_then(|mut g| g.take()) else { return true };
        let deadline = watchbell_core::time::deadline(timeout);
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        thread.join().is_ok()
    }
}

impl Drop for SubscriberHandle {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

async fn run(
    builder: SubscriberBuilder,
    handler: Arc<dyn Handler>,
    counters: Arc<Counters>,
    stop: tokio::sync::watch::Receiver<bool>,
    ready: std::sync::mpsc::Sender<Result<Vec<String>, BuildError>>,
) {
    let mut names = Vec::new();
    let mut tasks = Vec::new();
    for spec in builder.endpoints {
        let mut sock = match &spec.kind {
            Kind::Pull => RecvSock::Pull(PullSocket::with_options(SocketOptions::default())),
            Kind::Sub(_) => RecvSock::Sub(SubSocket::with_options(SocketOptions::default())),
        };
        if let (RecvSock::Sub(s), Kind::Sub(topics)) = (&mut sock, &spec.kind) {
            let topics = if topics.is_empty() { vec![String::new()] } else { topics.clone() };
            for t in topics {
                if let Err(e) = s.subscribe(&t).await {
                    let _ = ready.send(Err(BuildError::new(CRATE, "sub", e)));
                    return;
                }
            }
        }
        // The ZeroMQ socket only ever talks to the frame guard (see `guard`).
        let frame_limit = builder.max_message_bytes.max(64 * 1024);
        let connect_to = if spec.bind {
            let inner = match &mut sock {
                RecvSock::Pull(s) => s.bind("tcp://127.0.0.1:0").await,
                RecvSock::Sub(s) => s.bind("tcp://127.0.0.1:0").await,
            };
            let inner = match inner {
                Ok(ep) => ep.to_string().trim_start_matches("tcp://").to_owned(),
                Err(e) => {
                    let _ = ready.send(Err(BuildError::new(CRATE, "endpoint", format!("bind {}: {e}", spec.endpoint))));
                    return;
                }
            };
            match guard::front_bind(&spec.endpoint, inner, frame_limit, stop.clone(), guard::Peers::default()).await {
                Ok(bound) => names.push(bound),
                Err(e) => {
                    let _ = ready.send(Err(BuildError::new(CRATE, "endpoint", format!("bind {}: {e}", spec.endpoint))));
                    return;
                }
            }
            None
        } else {
            names.push(spec.endpoint.clone());
            match guard::front_connect(&spec.endpoint, frame_limit, stop.clone()).await {
                Ok(local) => Some(local),
                Err(e) => {
                    let _ = ready.send(Err(BuildError::new(CRATE, "endpoint", format!("{}: {e}", spec.endpoint))));
                    return;
                }
            }
        };
        let job = Endpoint {
            sock,
            connect_to,
            handler: Arc::clone(&handler),
            counters: Arc::clone(&counters),
            max: builder.max_message_bytes,
            reconnect: builder.reconnect,
        };
        let stop = stop.clone();
        tasks.push(tokio::spawn(job.run(stop)));
    }
    let _ = ready.send(Ok(names));
    for t in tasks {
        let _ = t.await;
    }
}

enum RecvSock {
    Sub(SubSocket),
    Pull(PullSocket),
}

impl RecvSock {
    async fn recv(&mut self) -> zeromq::ZmqResult<ZmqMessage> {
        match self {
            RecvSock::Sub(s) => s.recv().await,
            RecvSock::Pull(s) => s.recv().await,
        }
    }

    async fn close(self) {
        match self {
            RecvSock::Sub(s) => drop(s.close().await),
            RecvSock::Pull(s) => drop(s.close().await),
        }
    }
}

struct Endpoint {
    sock: RecvSock,
    /// The guard's loopback address to connect to (connecting endpoints).
    connect_to: Option<String>,
    handler: Arc<dyn Handler>,
    counters: Arc<Counters>,
    max: usize,
    reconnect: Duration,
}

impl Endpoint {
    async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        if let Some(to) = self.connect_to.clone() {
            // Connect until the peer is there (ZeroMQ reconnects by itself after that).
            loop {
                if *stop.borrow() {
                    self.sock.close().await;
                    return;
                }
                let connect = async {
                    match &mut self.sock {
                        RecvSock::Sub(s) => s.connect(&to).await,
                        RecvSock::Pull(s) => s.connect(&to).await,
                    }
                };
                let attempt = tokio::select! {
                    r = tokio::time::timeout(Duration::from_secs(2), connect) => r,
                    _ = stop.changed() => continue,
                };
                match attempt {
                    Ok(Ok(())) => {
                        self.counters.connected.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Ok(Err(_)) | Err(_) => {
                        tokio::select! {
                            _ = tokio::time::sleep(self.reconnect) => {}
                            _ = stop.changed() => {}
                        }
                    }
                }
            }
        }
        loop {
            let msg = tokio::select! {
                m = self.sock.recv() => m,
                _ = stop.changed() => break,
            };
            match msg {
                Ok(msg) => self.dispatch(msg),
                Err(_) => {
                    // The socket has no peer right now or was closed under us: wait a little.
                    tokio::select! {
                        _ = tokio::time::sleep(self.reconnect) => {}
                        _ = stop.changed() => break,
                    }
                }
            }
            if *stop.borrow() {
                break;
            }
        }
        self.sock.close().await;
    }

    fn dispatch(&self, msg: ZmqMessage) {
        let c = &self.counters;
        c.received.fetch_add(1, Ordering::Relaxed);
        // A topic frame may come first: the record is the last frame.
        let frames = msg.into_vec();
        let Some(body) = frames.last() else {
            c.malformed.fetch_add(1, Ordering::Relaxed);
            c.error("an empty message".into());
            return;
        };
        if body.len() > self.max {
            c.malformed.fetch_add(1, Ordering::Relaxed);
            c.error(format!("{} bytes, more than {}", body.len(), self.max));
            return;
        }
        match record_from_logbook_json(body) {
            Ok(record) => {
                let handler = &self.handler;
                // A panicking handler must not end the subscriber.
                let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.handle(record))).is_ok();
                if ok {
                    c.dispatched.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.error("the handler panicked".into());
                }
            }
            Err(e) => {
                c.malformed.fetch_add(1, Ordering::Relaxed);
                c.error(e.to_string());
            }
        }
    }
}
