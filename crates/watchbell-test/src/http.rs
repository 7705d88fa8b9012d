//! A loopback HTTP/1.1 server that plays a real HTTP peer in tests.
//!
//! [`FakeHttp::start`] binds `127.0.0.1` on a free port and serves each TCP connection on its own
//! thread. Every request is recorded as a [`Request`] and answered with a [`Reply`], chosen in
//! this order:
//!
//! 1. the replies queued with [`push`](FakeHttp::push) / [`push_n`](FakeHttp::push_n), first in
//!    first out, one per request;
//! 2. when the queue is empty, the responder set with [`respond_with`](FakeHttp::respond_with);
//! 3. otherwise the default reply ([`set_default`](FakeHttp::set_default), initially
//!    [`Reply::ok`]).
//!
//! A reply can be an ordinary response (status, headers, body), or misbehave on purpose: answer
//! late ([`Reply::delay`]), never answer ([`Reply::stall`]), hang up without a byte
//! ([`Reply::close`]), or trickle its body ([`Reply::slow_body`]). A request is recorded as soon
//! as it is read, before its reply is applied, so a test sees an attempt even when the fake
//! stalls it.
//!
//! The protocol side is what HTTP clients need: persistent connections (a connection serves
//! requests until the client closes it or sends `Connection: close`; HTTP/1.0 connections close
//! after one response), pipelined requests, `Content-Length` and `Transfer-Encoding: chunked`
//! request bodies, `Expect: 100-continue`, and responses framed with `Content-Length`. Request
//! heads over 64 KiB are refused with `431` and bodies over 64 MiB with `413`; malformed requests
//! get `400`. These refused requests are not recorded and consume no reply.
//!
//! Dropping the [`FakeHttp`] stops it: the listener is closed, and open connections (idle,
//! stalled or delayed ones included) are shut down, without waiting on the clients.
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//! use watchbell_test::http::{FakeHttp, Reply};
//!
//! let fake = FakeHttp::start();
//! fake.push(Reply::status(429).retry_after(2));
//!
//! let mut stream = TcpStream::connect(fake.addr()).unwrap();
//! stream.write_all(b"POST /hook?x=1 HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello").unwrap();
//! let mut status_line = String::new();
//! BufReader::new(&stream).read_line(&mut status_line).unwrap();
//! assert_eq!(status_line, "HTTP/1.1 429 Too Many Requests\r\n");
//!
//! let request = &fake.requests()[0];
//! assert_eq!((request.method.as_str(), request.path.as_str(), request.query.as_str()), ("POST", "/hook", "x=1"));
//! assert_eq!(request.body_text(), "hello");
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::store::Recorded;

/// The largest request head (request line and headers) read; larger ones get `431`.
const MAX_HEAD: usize = 64 * 1024;
/// The largest request body read; larger ones get `413`.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// How often a connection blocked on a read checks whether the server stopped (a fallback: the
/// stop also shuts the sockets down, which wakes the reads at once).
const POLL: Duration = Duration::from_millis(200);
/// How long `Drop` waits for the server threads before leaving them detached.
const JOIN_WAIT: Duration = Duration::from_secs(2);
/// How long a refused connection is drained before it is closed, so that the client reads the
/// error response instead of a reset.
const LINGER: Duration = Duration::from_millis(500);
/// The size of one socket read.
const READ_CHUNK: usize = 64 * 1024;
/// How much of a body `Debug` shows.
const DEBUG_BODY: usize = 1024;

type Responder = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// A loopback HTTP/1.1 server that records requests and answers as programmed.
///
/// See the [module documentation](self) for the protocol support and an example. All methods
/// take `&self`, so a test can program the fake while a client under test talks to it.
/// Dropping it stops the server promptly, even with stalled or idle connections open.
pub struct FakeHttp {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl fmt::Debug for FakeHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("FakeHttp")
            .field("addr", &self.addr)
            .field("requests", &state.requests.len())
            .field("queued_replies", &state.queue.len())
            .field("connections", &state.connections)
            .finish_non_exhaustive()
    }
}

impl FakeHttp {
    /// Starts a server on `127.0.0.1` with a port picked by the system.
    ///
    /// # Panics
    /// If the port cannot be bound or the accept thread cannot be spawned (the test cannot run).
    pub fn start() -> FakeHttp {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .unwrap_or_else(|e| panic!("FakeHttp: cannot bind a port on 127.0.0.1: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("FakeHttp: cannot read the bound address: {e}"));
        let shared = Arc::new(Recorded::new(State {
            queue: VecDeque::new(),
            default: Reply::ok(),
            responder: None,
            requests: Vec::new(),
            connections: 0,
            open: HashMap::new(),
            workers: Vec::new(),
            stopped: false,
        }));
        let for_acceptor = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("fakehttp-accept".into())
            .spawn(move || accept_loop(&listener, &for_acceptor))
            .unwrap_or_else(|e| panic!("FakeHttp: cannot spawn the accept thread: {e}"));
        FakeHttp { addr, shared, acceptor: Some(acceptor) }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// [`url`](FakeHttp::url) followed by `path`, which should start with `/`
    /// (`fake.url_for("/services/T/B/X")`).
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }

    /// Queues a reply. Queued replies answer the next requests in the order they were queued,
    /// one each, before the responder or the default is used.
    pub fn push(&self, reply: Reply) {
        self.shared.lock().queue.push_back(reply);
    }

    /// Queues `n` copies of a reply (`fake.push_n(3, Reply::status(503))`).
    pub fn push_n(&self, n: usize, reply: Reply) {
        let mut state = self.shared.lock();
        state.queue.extend(std::iter::repeat_n(reply, n));
    }

    /// Sets the reply used when the queue is empty, initially [`Reply::ok`]. It replaces a
    /// responder set with [`respond_with`](FakeHttp::respond_with): the last call wins.
    pub fn set_default(&self, reply: Reply) {
        let mut state = self.shared.lock();
        state.default = reply;
        state.responder = None;
    }

    /// Answers with `f(&request)` when the queue is empty, instead of the default reply (until
    /// [`set_default`](FakeHttp::set_default) is called again: the last call wins).
    ///
    /// `f` runs on the connection's thread, without any lock of the fake held. If it panics, the
    /// request is answered with `500` and the panic message.
    pub fn respond_with<F>(&self, f: F)
    where
        F: Fn(&Request) -> Reply + Send + Sync + 'static,
    {
        self.shared.lock().responder = Some(Arc::new(f));
    }

    /// Every request received so far (since the last [`clear`](FakeHttp::clear)), in arrival
    /// order, including those answered with [`Reply::stall`] or [`Reply::close`].
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// The number of requests received so far (since the last [`clear`](FakeHttp::clear)).
    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// Waits until at least `n` requests were received or `timeout` passed, then returns
    /// [`requests`](FakeHttp::requests) either way. It wakes as soon as a request arrives.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<Request> {
        self.shared.wait_until(timeout, |state| state.requests.len() >= n).requests.clone()
    }

    /// Forgets the requests recorded so far (queued replies and the connection count are kept).
    pub fn clear(&self) {
        self.shared.lock().requests.clear();
    }

    /// The number of TCP connections accepted so far, to check that a client reuses its
    /// connections ([`Request::connection`] tells which one each request came on).
    pub fn connection_count(&self) -> usize {
        self.shared.lock().connections
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        let (open, workers) = self.shared.update(|state| {
            state.stopped = true;
            (std::mem::take(&mut state.open), std::mem::take(&mut state.workers))
        });
        // Wakes the connection threads blocked on a read or a write.
        for stream in open.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // Wakes the accept thread, which sees the stop and closes the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let deadline = Instant::now() + JOIN_WAIT;
        if let Some(acceptor) = self.acceptor.take() {
            join_until(acceptor, deadline);
        }
        // No worker is added once `stopped` is set, so this is all of them.
        for worker in workers {
            join_until(worker, deadline);
        }
    }
}

/// Joins a thread if it finishes before `deadline`, else leaves it detached.
fn join_until(handle: JoinHandle<()>, deadline: Instant) {
    while !handle.is_finished() {
        if Instant::now() >= deadline {
            return;
        }
        thread::sleep(Duration::from_millis(2));
    }
    let _ = handle.join();
}

/// A request received by a [`FakeHttp`].
#[derive(Clone)]
pub struct Request {
    /// The method, as sent (`"POST"`).
    pub method: String,
    /// The path, without the query (`"/services/T/B/X"`). For a request target in absolute form
    /// (`http://host/path`), the path part of it.
    pub path: String,
    /// The raw query string, without the `?`; empty if there is none.
    pub query: String,
    /// The headers in the order received, names spelled as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body, with the chunked transfer coding removed.
    pub body: Vec<u8>,
    /// When the whole request had been read.
    pub received_at: Instant,
    /// The index of the TCP connection the request came on, counting from 0 in accept order.
    pub connection: usize,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("headers", &self.headers)
            .field("body", &BodyPreview(&self.body))
            .field("received_at", &self.received_at)
            .field("connection", &self.connection)
            .finish()
    }
}

impl Request {
    /// The value of the first header named `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text, invalid UTF-8 replaced with `U+FFFD`.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded as `application/x-www-form-urlencoded` (`+` is a space, `%XX` a byte, the
    /// bytes are read as UTF-8), in order. A pair without `=` has an empty value.
    pub fn form(&self) -> Vec<(String, String)> {
        decode_pairs(&String::from_utf8_lossy(&self.body))
    }

    /// The query string decoded like [`form`](Request::form).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        decode_pairs(&self.query)
    }
}

/// Decodes `a=1&b=x+y` pairs.
fn decode_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

/// Decodes `+` and `%XX`; a `%` not followed by two hex digits is kept as is.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&b| hex_digit(b));
                let lo = bytes.get(i + 2).and_then(|&b| hex_digit(b));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push((hi << 4) | lo);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// What a connection does with a request once it is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Respond,
    Stall,
    Close,
    /// The bytes of `raw`, then the connection held open until the server stops.
    RawThenHold,
    /// The bytes of `raw`, then a TCP reset (`SO_LINGER` 0).
    RawThenReset,
    /// The bytes of `raw` one at a time, `trickle` apart (headers included).
    Trickle,
    /// A `200` chunked body that never ends (bounded by [`ENDLESS_MAX`]).
    Endless,
    /// The request itself (line, headers, body) as the body, with `status`.
    Echo,
}

/// The most bytes an [`endless`](Reply::endless) body sends before the fake gives up (so a test
/// cannot run away when the client keeps reading).
pub const ENDLESS_MAX: usize = 64 << 20;

/// How a [`FakeHttp`] answers one request, built in builder style:
/// `Reply::json(404, r#"{"ok":false}"#).header("X-Trace", "1")`.
///
/// Responses are framed with `Content-Length` (computed from the body, unless the reply sets
/// `Content-Length` or `Transfer-Encoding` itself) and carry `Connection: keep-alive` or
/// `Connection: close` (unless the reply sets `Connection`; one containing `close` makes the
/// server close after the response). As HTTP requires, the body is not sent to a `HEAD` request,
/// nor for a `1xx`, `204` or `304` status, which also get no `Content-Length`.
#[derive(Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Duration,
    action: Action,
    slow: Option<(usize, Duration)>,
    raw: Vec<u8>,
    trickle: Duration,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Reply");
        match self.action {
            Action::Stall => d.field("action", &"stall"),
            Action::Close => d.field("action", &"close"),
            Action::RawThenHold => d.field("action", &"raw, then hold").field("raw", &BodyPreview(&self.raw)),
            Action::RawThenReset => d.field("action", &"raw, then reset").field("raw", &BodyPreview(&self.raw)),
            Action::Trickle => d.field("action", &"trickle").field("raw", &BodyPreview(&self.raw)),
            Action::Endless => d.field("action", &"endless body"),
            Action::Echo => d.field("action", &"echo").field("status", &self.status),
            Action::Respond => {
                d.field("status", &self.status).field("headers", &self.headers).field("body", &BodyPreview(&self.body))
            }
        };
        if !self.delay.is_zero() {
            d.field("delay", &self.delay);
        }
        if let Some((chunk, pause)) = self.slow {
            d.field("slow_body", &(chunk, pause));
        }
        d.finish()
    }
}

impl Reply {
    /// A response with this status code and an empty body.
    pub fn status(code: u16) -> Reply {
        Reply {
            status: code,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
            action: Action::Respond,
            slow: None,
            raw: Vec::new(),
            trickle: Duration::ZERO,
        }
    }

    /// Sends exactly `bytes` (whatever they are: a head that lies, half a body), then holds
    /// the connection open until the [`FakeHttp`] is dropped.
    pub fn raw_then_hold(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply { action: Action::RawThenHold, raw: bytes.into(), ..Reply::status(200) }
    }

    /// Sends exactly `bytes`, then resets the connection (a TCP RST, not a clean end).
    pub fn raw_then_reset(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply { action: Action::RawThenReset, raw: bytes.into(), ..Reply::status(200) }
    }

    /// Sends `bytes` one byte every `every`, headers included (a slowloris answer), then
    /// closes.
    pub fn trickle(bytes: impl Into<Vec<u8>>, every: Duration) -> Reply {
        Reply { action: Action::Trickle, raw: bytes.into(), trickle: every, ..Reply::status(200) }
    }

    /// `200` with a chunked body that never ends: chunks of 64 KiB as fast as the client
    /// takes them, until it hangs up, the fake stops, or [`ENDLESS_MAX`] bytes went.
    pub fn endless() -> Reply {
        Reply { action: Action::Endless, ..Reply::status(200) }
    }

    /// `status` with the request itself as the body: its request line, every header
    /// (`Authorization` included) and its body, as an error page of a careless server or proxy
    /// shows them.
    pub fn echo(status: u16) -> Reply {
        Reply { action: Action::Echo, ..Reply::status(status) }
    }

    /// `200` with the body `ok` (as `text/plain`): the initial default reply.
    pub fn ok() -> Reply {
        Reply::text(200, "ok")
    }

    /// A response with a JSON body and `Content-Type: application/json`.
    pub fn json(code: u16, body: &str) -> Reply {
        Reply::status(code).header("Content-Type", "application/json").body(body)
    }

    /// A response with a text body and `Content-Type: text/plain; charset=utf-8`.
    pub fn text(code: u16, body: &str) -> Reply {
        Reply::status(code).header("Content-Type", "text/plain; charset=utf-8").body(body)
    }

    /// Replaces the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }

    /// Adds a header after those already set, even if one of the same name is there (so that a
    /// header can be repeated). [`json`](Reply::json) and [`text`](Reply::text) set
    /// `Content-Type`: for another type, start from [`status`](Reply::status).
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds `Retry-After: secs`.
    #[must_use]
    pub fn retry_after(self, secs: u64) -> Reply {
        self.header("Retry-After", &secs.to_string())
    }

    /// Waits `d` after reading the request before answering (or, for [`stall`](Reply::stall)
    /// and [`close`](Reply::close), before misbehaving). Dropping the server cuts the wait short
    /// and closes the connection.
    #[must_use]
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }

    /// Reads the request and never answers: the connection is held open until the
    /// [`FakeHttp`] is dropped, so the client's own timeout has to fire.
    pub fn stall() -> Reply {
        Reply { action: Action::Stall, ..Reply::status(200) }
    }

    /// Reads the request, then closes the connection without sending a byte.
    pub fn close() -> Reply {
        Reply { action: Action::Close, ..Reply::status(200) }
    }

    /// Writes the body in pieces of `chunk` bytes (at least 1) with a `pause` between them,
    /// like a slow server; the status line and headers are sent at once, with the first piece.
    #[must_use]
    pub fn slow_body(mut self, chunk: usize, pause: Duration) -> Reply {
        self.slow = Some((chunk.max(1), pause));
        self
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Whether the reply sets a `Connection` header that asks to close.
    fn closes(&self) -> bool {
        self.headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("connection") && has_token(v, "close"))
    }
}

/// Shows a body as text, cut after [`DEBUG_BODY`] bytes.
struct BodyPreview<'a>(&'a [u8]);

impl fmt::Debug for BodyPreview<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() <= DEBUG_BODY {
            fmt::Debug::fmt(&String::from_utf8_lossy(self.0), f)
        } else {
            fmt::Debug::fmt(&String::from_utf8_lossy(&self.0[..DEBUG_BODY]), f)?;
            write!(f, "... ({} bytes)", self.0.len())
        }
    }
}

/// The reason phrase sent for a status code.
fn reason(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Whether a comma-separated header value contains `token` (case-insensitively).
fn has_token(value: &str, token: &str) -> bool {
    value.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))
}

struct State {
    queue: VecDeque<Reply>,
    default: Reply,
    responder: Option<Responder>,
    requests: Vec<Request>,
    connections: usize,
    /// Clones of the open connections' sockets, to shut them down on stop.
    open: HashMap<usize, TcpStream>,
    workers: Vec<JoinHandle<()>>,
    stopped: bool,
}

/// Its waiters are woken when a request is recorded and when the server stops.
type Shared = Recorded<State>;

impl Shared {
    fn is_stopped(&self) -> bool {
        self.lock().stopped
    }

    /// Sleeps `d`, or less if the server stops; returns whether it is still running.
    fn sleep(&self, d: Duration) -> bool {
        !self.wait_until(d, |state| state.stopped).stopped
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(_) if shared.is_stopped() => return,
            Err(_) => {
                // Out of descriptors or an aborted handshake: retry without spinning.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let Ok(tracked) = stream.try_clone() else { continue };
        let mut state = shared.lock();
        if state.stopped {
            return;
        }
        let id = state.connections;
        state.connections += 1;
        state.open.insert(id, tracked);
        state.workers.retain(|worker| !worker.is_finished());
        let for_worker = Arc::clone(shared);
        let spawned = thread::Builder::new().name("fakehttp-conn".into()).spawn(move || serve(stream, id, &for_worker));
        match spawned {
            Ok(worker) => state.workers.push(worker),
            Err(_) => {
                state.open.remove(&id);
            }
        }
    }
}

fn serve(stream: TcpStream, id: usize, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(POLL));
    let mut conn = Conn { stream, buf: Vec::new(), id, shared };
    conn.run();
    shared.lock().open.remove(&id);
}

/// Why a connection stops reading requests.
enum Fail {
    /// The client went away, a socket operation failed, or the server stopped.
    Gone,
    /// The request is refused with this status and message, then the connection is closed.
    Refuse(u16, &'static str),
}

/// The parsed request head.
struct Head {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    http10: bool,
}

impl Head {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// How the request body is framed.
enum Framing {
    Length(usize),
    Chunked,
}

struct Conn<'a> {
    stream: TcpStream,
    /// Bytes read and not consumed yet.
    buf: Vec<u8>,
    id: usize,
    shared: &'a Shared,
}

impl Conn<'_> {
    fn run(&mut self) {
        loop {
            match self.exchange() {
                Ok(true) => {}
                Ok(false) | Err(Fail::Gone) => return,
                Err(Fail::Refuse(status, message)) => {
                    self.refuse(status, message);
                    return;
                }
            }
        }
    }

    /// Reads one request and answers it; returns whether the connection stays open.
    fn exchange(&mut self) -> Result<bool, Fail> {
        let head = self.read_head()?;
        let framing = framing(&head)?;
        let mut keep_alive = !head.http10 && !head.values("connection").any(|v| has_token(v, "close"));
        if matches!(framing, Framing::Chunked) && head.values("content-length").next().is_some() {
            // Both framings: the message may be a smuggling attempt; never reuse the connection.
            keep_alive = false;
        }
        if let Framing::Length(n) = framing {
            if n > MAX_BODY {
                return Err(Fail::Refuse(413, "request body over 64 MiB"));
            }
        }
        let has_body = !matches!(framing, Framing::Length(0));
        if has_body && !head.http10 && head.values("expect").any(|v| v.eq_ignore_ascii_case("100-continue")) {
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").map_err(|_| Fail::Gone)?;
        }
        let body = match framing {
            Framing::Length(n) => self.take(n)?,
            Framing::Chunked => self.read_chunked()?,
        };
        let head_only = head.method.eq_ignore_ascii_case("HEAD");
        let echoed = {
            let mut t = format!(
                "{} {}{}{} HTTP/1.1\r\n",
                head.method,
                head.path,
                if head.query.is_empty() { "" } else { "?" },
                head.query
            )
            .into_bytes();
            for (n, v) in &head.headers {
                t.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
            }
            t.extend_from_slice(b"\r\n");
            t.extend_from_slice(&body);
            t
        };
        let request = Request {
            method: head.method,
            path: head.path,
            query: head.query,
            headers: head.headers,
            body,
            received_at: Instant::now(),
            connection: self.id,
        };
        let reply = self.record(request);

        if !reply.delay.is_zero() && !self.shared.sleep(reply.delay) {
            return Err(Fail::Gone);
        }
        let mut reply = reply;
        match reply.action {
            Action::Respond => {}
            Action::Stall => {
                self.shared.sleep(Duration::MAX);
                return Err(Fail::Gone);
            }
            Action::Close => {
                let _ = self.stream.shutdown(Shutdown::Both);
                return Err(Fail::Gone);
            }
            Action::RawThenHold => {
                let _ = self.stream.write_all(&reply.raw).and_then(|()| self.stream.flush());
                self.shared.sleep(Duration::MAX);
                return Err(Fail::Gone);
            }
            Action::RawThenReset => {
                let _ = self.stream.write_all(&reply.raw).and_then(|()| self.stream.flush());
                // SO_LINGER 0: closing sends RST instead of FIN.
                let _ = rustix::net::sockopt::set_socket_linger(&self.stream, Some(Duration::ZERO));
                let _ = self.stream.shutdown(Shutdown::Read);
                return Err(Fail::Gone);
            }
            Action::Trickle => {
                for b in &reply.raw {
                    if self.stream.write_all(std::slice::from_ref(b)).and_then(|()| self.stream.flush()).is_err()
                        || !self.shared.sleep(reply.trickle)
                    {
                        return Err(Fail::Gone);
                    }
                }
                let _ = self.stream.shutdown(Shutdown::Both);
                return Err(Fail::Gone);
            }
            Action::Endless => {
                let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                let chunk = vec![b' '; 64 * 1024];
                let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                framed.extend_from_slice(&chunk);
                framed.extend_from_slice(b"\r\n");
                let mut sent = 0;
                let mut w = self.stream.write_all(head);
                while w.is_ok() && sent < ENDLESS_MAX && !self.shared.is_stopped() {
                    w = self.stream.write_all(&framed);
                    sent += chunk.len();
                }
                let _ = self.stream.shutdown(Shutdown::Both);
                return Err(Fail::Gone);
            }
            Action::Echo => {
                reply.body = echoed;
                reply.headers.push(("Content-Type".into(), "text/plain".into()));
            }
        }
        let keep_alive = keep_alive && !reply.closes();
        self.write_reply(&reply, head_only, keep_alive).map_err(|_| Fail::Gone)?;
        if !keep_alive {
            // The request was read whole, so closing sends a clean end of stream.
            let _ = self.stream.shutdown(Shutdown::Write);
        }
        Ok(keep_alive)
    }

    /// Records the request and picks its reply.
    fn record(&self, request: Request) -> Reply {
        let mut state = self.shared.lock();
        let call = match state.queue.pop_front() {
            Some(reply) => Err(reply),
            None => match &state.responder {
                Some(responder) => Ok((Arc::clone(responder), request.clone())),
                None => Err(state.default.clone()),
            },
        };
        state.requests.push(request);
        drop(state);
        self.shared.notify();
        match call {
            Err(reply) => reply,
            Ok((responder, request)) => match panic::catch_unwind(AssertUnwindSafe(|| responder(&request))) {
                Ok(reply) => reply,
                Err(payload) => {
                    let message = payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Reply::text(500, &format!("FakeHttp responder panicked: {message}"))
                }
            },
        }
    }

    /// Reads more bytes into the buffer.
    fn fill(&mut self) -> Result<(), Fail> {
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK, 0);
        let result = loop {
            match self.stream.read(&mut self.buf[start..]) {
                Ok(0) => break Err(Fail::Gone),
                Ok(n) => break Ok(start + n),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                    if self.shared.is_stopped() {
                        break Err(Fail::Gone);
                    }
                }
                Err(_) => break Err(Fail::Gone),
            }
        };
        match result {
            Ok(end) => {
                self.buf.truncate(end);
                Ok(())
            }
            Err(fail) => {
                self.buf.truncate(start);
                Err(fail)
            }
        }
    }

    /// Takes the next `n` bytes.
    fn take(&mut self, n: usize) -> Result<Vec<u8>, Fail> {
        if self.buf.len() < n {
            // Room for the rest and one more read, so that a large body is not copied again.
            self.buf.reserve(n - self.buf.len() + READ_CHUNK);
        }
        while self.buf.len() < n {
            self.fill()?;
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// Takes the next line, without its line end; a line longer than `max` is refused.
    fn take_line(&mut self, max: usize) -> Result<Vec<u8>, Fail> {
        let mut scanned = 0;
        loop {
            if let Some(pos) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let mut line = self.take(scanned + pos + 1)?;
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            scanned = self.buf.len();
            if scanned > max {
                return Err(Fail::Refuse(400, "line too long in chunked body"));
            }
            self.fill()?;
        }
    }

    /// Reads and parses a request head. A clean end of stream before it is [`Fail::Gone`].
    fn read_head(&mut self) -> Result<Head, Fail> {
        let mut scanned = 0;
        let (head_len, consumed) = loop {
            // Empty lines before a request are ignored (RFC 9112, 2.2).
            let blank = self.buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
            if blank > 0 {
                let _ = self.take(blank)?;
                scanned = 0;
            }
            if let Some(end) = find_head_end(&self.buf, scanned) {
                break end;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(Fail::Refuse(431, "request head over 64 KiB"));
            }
            scanned = self.buf.len().saturating_sub(3);
            self.fill()?;
        };
        if head_len > MAX_HEAD {
            return Err(Fail::Refuse(431, "request head over 64 KiB"));
        }
        let raw = self.take(consumed)?;
        parse_head(&String::from_utf8_lossy(&raw[..head_len]))
    }

    /// Reads a chunked body and its trailer section (which is dropped).
    fn read_chunked(&mut self) -> Result<Vec<u8>, Fail> {
        let mut body = Vec::new();
        loop {
            let line = self.take_line(MAX_HEAD)?;
            let line = String::from_utf8_lossy(&line);
            let size = line.split(';').next().unwrap_or("").trim();
            let size = (!size.is_empty() && size.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| usize::from_str_radix(size, 16).ok())
                .flatten()
                .ok_or(Fail::Refuse(400, "invalid chunk size"))?;
            if size == 0 {
                break;
            }
            if size > MAX_BODY - body.len() {
                return Err(Fail::Refuse(413, "request body over 64 MiB"));
            }
            body.extend_from_slice(&self.take(size)?);
            if !self.take_line(2)?.is_empty() {
                return Err(Fail::Refuse(400, "missing line end after chunk data"));
            }
        }
        let mut trailers = 0;
        loop {
            let line = self.take_line(MAX_HEAD)?;
            if line.is_empty() {
                return Ok(body);
            }
            trailers += line.len();
            if trailers > MAX_HEAD {
                return Err(Fail::Refuse(431, "trailer section over 64 KiB"));
            }
        }
    }

    fn write_reply(&mut self, reply: &Reply, head_only: bool, keep_alive: bool) -> io::Result<()> {
        let no_body = matches!(reply.status, 100..=199 | 204 | 304);
        let send_body = !no_body && !head_only;
        let mut out = Vec::with_capacity(256 + if send_body { reply.body.len() } else { 0 });
        write!(out, "HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status))?;
        for (name, value) in &reply.headers {
            write!(out, "{name}: {value}\r\n")?;
        }
        if !no_body && !reply.has_header("content-length") && !reply.has_header("transfer-encoding") {
            write!(out, "Content-Length: {}\r\n", reply.body.len())?;
        }
        if !reply.has_header("connection") {
            out.extend_from_slice(if keep_alive { b"Connection: keep-alive\r\n" } else { b"Connection: close\r\n" });
        }
        out.extend_from_slice(b"\r\n");
        match reply.slow {
            Some((chunk, pause)) if send_body => {
                for (i, piece) in reply.body.chunks(chunk).enumerate() {
                    if i > 0 && !self.shared.sleep(pause) {
                        return Err(ErrorKind::Interrupted.into());
                    }
                    out.extend_from_slice(piece);
                    self.stream.write_all(&out)?;
                    self.stream.flush()?;
                    out.clear();
                }
                if !out.is_empty() {
                    // An empty body: only the head is left.
                    self.stream.write_all(&out)?;
                }
            }
            _ => {
                if send_body {
                    out.extend_from_slice(&reply.body);
                }
                self.stream.write_all(&out)?;
            }
        }
        self.stream.flush()
    }

    /// Answers a refused request with `status` and closes the connection, first draining what
    /// the client still sends for a moment, so that it reads the answer rather than a reset.
    fn refuse(&mut self, status: u16, message: &str) {
        let reply = Reply::text(status, message);
        if self.write_reply(&reply, false, false).is_err() {
            return;
        }
        let _ = self.stream.shutdown(Shutdown::Write);
        let deadline = Instant::now() + LINGER;
        let _ = self.stream.set_read_timeout(Some(Duration::from_millis(50)));
        let mut sink = [0u8; 8192];
        while Instant::now() < deadline && !self.shared.is_stopped() {
            match self.stream.read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(_) => return,
            }
        }
    }
}

/// Finds the blank line ending a head, searching from `from`; returns the length of the head
/// before it and the length including it. Lines may end with CRLF or a bare LF.
fn find_head_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(pos) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + pos;
        let rest = &buf[nl + 1..];
        if rest.starts_with(b"\n") {
            return Some((nl, nl + 2));
        }
        if rest.starts_with(b"\r\n") {
            return Some((nl, nl + 3));
        }
        i = nl + 1;
    }
    None
}

fn parse_head(text: &str) -> Result<Head, Fail> {
    let mut lines = text.split('\n').map(|line| line.strip_suffix('\r').unwrap_or(line));
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split_ascii_whitespace();
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Fail::Refuse(400, "malformed request line"));
    };
    let http10 = match version {
        "HTTP/1.0" => true,
        v if v.starts_with("HTTP/1.") => false,
        v if v.starts_with("HTTP/") => return Err(Fail::Refuse(505, "only HTTP/1.x is served")),
        _ => return Err(Fail::Refuse(400, "malformed request line")),
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // Obsolete line folding: the line continues the previous value.
            let Some((_, value)) = headers.last_mut() else {
                return Err(Fail::Refuse(400, "malformed header line"));
            };
            if !value.is_empty() {
                value.push(' ');
            }
            value.push_str(line.trim_matches([' ', '\t']));
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) if !name.is_empty() && !name.contains(|c: char| c.is_ascii_whitespace()) => {
                headers.push((name.to_owned(), value.trim_matches([' ', '\t']).to_owned()));
            }
            _ => return Err(Fail::Refuse(400, "malformed header line")),
        }
    }
    let (path, query) = split_target(target);
    Ok(Head { method: method.to_owned(), path, query, headers, http10 })
}

/// Splits a request target into path and query; an absolute-form target keeps its path only.
fn split_target(target: &str) -> (String, String) {
    let mut rest = target;
    for scheme in ["http://", "https://"] {
        if rest.get(..scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme)) {
            let after = &rest[scheme.len()..];
            rest = after.find(['/', '?']).map_or("/", |i| &after[i..]);
            break;
        }
    }
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = if path.is_empty() { "/" } else { path };
    (path.to_owned(), query.to_owned())
}

/// Works out how the body is framed (RFC 9112, 6.3).
fn framing(head: &Head) -> Result<Framing, Fail> {
    let codings: Vec<&str> = head.values("transfer-encoding").flat_map(|v| v.split(',')).map(str::trim).collect();
    if let Some(last) = codings.iter().rev().find(|c| !c.is_empty()) {
        return if last.eq_ignore_ascii_case("chunked") {
            Ok(Framing::Chunked)
        } else {
            Err(Fail::Refuse(400, "request transfer coding is not chunked"))
        };
    }
    let mut length = None;
    for token in head.values("content-length").flat_map(|v| v.split(',')).map(str::trim) {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Fail::Refuse(400, "invalid Content-Length"));
        }
        // Too many digits for usize is certainly too large.
        let n = token.parse::<usize>().unwrap_or(usize::MAX);
        if length.is_some_and(|l| l != n) {
            return Err(Fail::Refuse(400, "conflicting Content-Length values"));
        }
        length = Some(n);
    }
    Ok(Framing::Length(length.unwrap_or(0)))
}
