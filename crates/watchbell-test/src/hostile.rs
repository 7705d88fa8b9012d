//! Hostile peers: the ways a broken proxy, an overloaded provider or a malicious endpoint
//! answers, ready to push onto any HTTP fake (every fake of this crate exposes its
//! [`FakeHttp`](crate::http::FakeHttp), and queued replies come before the fake's own
//! answers), plus a TLS endpoint whose handshake never completes.
//!
//! A sink under test should, for every mode: never block the thread that logs, keep its
//! worker alive, keep its memory bounded, count the outcome (retried or failed), and deliver at
//! the next good answer.
//!
//! ```
//! use watchbell_test::hostile::Hostile;
//! use watchbell_test::http::FakeHttp;
//!
//! let fake = FakeHttp::start();
//! for mode in Hostile::ALL {
//!     fake.push(mode.reply()); // answered once each, in order, then the fake's default
//! }
//! assert!(Hostile::ALL.len() >= 14);
//! ```
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::http::Reply;
use crate::smtp::{Answer, Step};

/// One way of answering badly. See [`Hostile::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// `429` with `Retry-After: 18446744073709551615` (u64::MAX seconds).
    RetryAfterHuge429,
    /// `503` with `Retry-After: 18446744073709551615`.
    RetryAfterHuge503,
    /// `429` with `Retry-After: -5`.
    RetryAfterNegative,
    /// `503` with `Retry-After: soon`.
    RetryAfterGarbage,
    /// `429` with `Retry-After: 1e308`.
    RetryAfterFloatHuge,
    /// `503` with `Retry-After` an HTTP date in 1970.
    RetryAfterPastDate,
    /// `429` with `Retry-After` an HTTP date in the year 9999.
    RetryAfterFarFuture,
    /// `200` with a chunked body that never ends.
    EndlessBody,
    /// `200` claiming `Content-Length: 1073741824`, a short body, then silence.
    HugeContentLength,
    /// `500` with `Content-Encoding: gzip` and a body that inflates to 1 GiB.
    GzipBomb,
    /// `200` with a JSON content type and a body that is not JSON.
    InvalidJson200,
    /// `400` with a JSON content type and a body that is not JSON.
    InvalidJson400,
    /// `500` with a body that is not UTF-8.
    InvalidUtf8,
    /// A whole `503` answer, one byte per second, headers included.
    Slowloris,
    /// The head of a `200` and half its body, then a TCP reset.
    ResetMidBody,
    /// `401` echoing the request (its URL, `Authorization` header and body), as careless
    /// servers and proxies do.
    EchoRequest401,
}

impl Hostile {
    /// Every mode.
    pub const ALL: &'static [Hostile] = &[
        Hostile::RetryAfterHuge429,
        Hostile::RetryAfterHuge503,
        Hostile::RetryAfterNegative,
        Hostile::RetryAfterGarbage,
        Hostile::RetryAfterFloatHuge,
        Hostile::RetryAfterPastDate,
        Hostile::RetryAfterFarFuture,
        Hostile::EndlessBody,
        Hostile::HugeContentLength,
        Hostile::GzipBomb,
        Hostile::InvalidJson200,
        Hostile::InvalidJson400,
        Hostile::InvalidUtf8,
        Hostile::Slowloris,
        Hostile::ResetMidBody,
        Hostile::EchoRequest401,
    ];

    /// A short name (for tables and failure messages).
    pub fn name(self) -> &'static str {
        match self {
            Hostile::RetryAfterHuge429 => "429 Retry-After u64::MAX",
            Hostile::RetryAfterHuge503 => "503 Retry-After u64::MAX",
            Hostile::RetryAfterNegative => "429 Retry-After -5",
            Hostile::RetryAfterGarbage => "503 Retry-After garbage",
            Hostile::RetryAfterFloatHuge => "429 Retry-After 1e308",
            Hostile::RetryAfterPastDate => "503 Retry-After 1970",
            Hostile::RetryAfterFarFuture => "429 Retry-After year 9999",
            Hostile::EndlessBody => "endless body",
            Hostile::HugeContentLength => "1 GiB Content-Length, short body",
            Hostile::GzipBomb => "gzip bomb",
            Hostile::InvalidJson200 => "200 invalid JSON",
            Hostile::InvalidJson400 => "400 invalid JSON",
            Hostile::InvalidUtf8 => "500 invalid UTF-8",
            Hostile::Slowloris => "slowloris (1 B/s)",
            Hostile::ResetMidBody => "reset mid-body",
            Hostile::EchoRequest401 => "401 echoing the request",
        }
    }

    /// Whether a sink may take this answer as a success (a `200` whose body it does not need
    /// to read), rather than a failure. Either way it must survive it.
    pub fn may_succeed(self) -> bool {
        matches!(
            self,
            Hostile::EndlessBody | Hostile::HugeContentLength | Hostile::InvalidJson200 | Hostile::ResetMidBody
        )
    }

    /// The reply that misbehaves this way.
    pub fn reply(self) -> Reply {
        const HUGE: &str = "18446744073709551615";
        match self {
            Hostile::RetryAfterHuge429 => Reply::status(429).header("Retry-After", HUGE),
            Hostile::RetryAfterHuge503 => Reply::status(503).header("Retry-After", HUGE),
            Hostile::RetryAfterNegative => Reply::status(429).header("Retry-After", "-5"),
            Hostile::RetryAfterGarbage => Reply::status(503).header("Retry-After", "soon"),
            Hostile::RetryAfterFloatHuge => Reply::status(429).header("Retry-After", "1e308"),
            Hostile::RetryAfterPastDate => Reply::status(503).header("Retry-After", "Thu, 01 Jan 1970 00:00:00 GMT"),
            Hostile::RetryAfterFarFuture => Reply::status(429).header("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT"),
            Hostile::EndlessBody => Reply::endless(),
            Hostile::HugeContentLength => Reply::raw_then_hold(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{\"ok\":tr",
            ),
            Hostile::GzipBomb => Reply::status(500)
                .header("Content-Encoding", "gzip")
                .header("Content-Type", "text/plain")
                .body(gzip_bomb()),
            Hostile::InvalidJson200 => Reply::json(200, "{\"ok\": tru"),
            Hostile::InvalidJson400 => Reply::json(400, "<html><body>Bad Request</body></html>"),
            Hostile::InvalidUtf8 => {
                Reply::status(500).header("Content-Type", "text/plain").body(vec![0xff, 0xfe, b'x', 0xc3, 0x28])
            }
            Hostile::Slowloris => Reply::trickle(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
                Duration::from_secs(1),
            ),
            Hostile::ResetMidBody => Reply::raw_then_reset(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ok\":true,\"resu",
            ),
            Hostile::EchoRequest401 => Reply::echo(401),
        }
    }
}

/// One way an SMTP server answers badly: the step it misbehaves at, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostileSmtp {
    /// A greeting of multi-line garbage: continuation lines, then a line without a code.
    GarbageGreeting,
    /// A reply to `EHLO` whose code is not a number.
    NonNumericCode,
    /// 8-bit garbage (invalid UTF-8) instead of the reply to `MAIL FROM`.
    EightBitGarbage,
    /// A reply to `RCPT TO` on one 1 MiB line.
    HugeLine,
    /// `250-` continuation lines for ever after `EHLO`.
    EndlessContinuation,
    /// A greeting that never comes.
    SilentGreeting,
    /// The connection dropped after the message's data was sent, before the reply.
    ResetMidData,
}

impl HostileSmtp {
    /// Every mode.
    pub const ALL: &'static [HostileSmtp] = &[
        HostileSmtp::GarbageGreeting,
        HostileSmtp::NonNumericCode,
        HostileSmtp::EightBitGarbage,
        HostileSmtp::HugeLine,
        HostileSmtp::EndlessContinuation,
        HostileSmtp::SilentGreeting,
        HostileSmtp::ResetMidData,
    ];

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            HostileSmtp::GarbageGreeting => "multi-line garbage greeting",
            HostileSmtp::NonNumericCode => "non-numeric reply code",
            HostileSmtp::EightBitGarbage => "8-bit garbage reply",
            HostileSmtp::HugeLine => "1 MiB reply line",
            HostileSmtp::EndlessContinuation => "endless 250- lines",
            HostileSmtp::SilentGreeting => "greeting never comes",
            HostileSmtp::ResetMidData => "hang-up after DATA",
        }
    }

    /// The step and the answer (push it with [`FakeSmtp::push`](crate::smtp::FakeSmtp::push)).
    pub fn answer(self) -> (Step, Answer) {
        match self {
            HostileSmtp::GarbageGreeting => {
                (Step::Connect, Answer::Raw(b"220-hello\r\n220-\x01\x02 garbage\r\nwhat is this\r\n".to_vec()))
            }
            HostileSmtp::NonNumericCode => (Step::Ehlo, Answer::Raw(b"2x0 fine, thanks\r\n".to_vec())),
            HostileSmtp::EightBitGarbage => (Step::MailFrom, Answer::Raw(vec![0xff, 0xfe, 0x80, b'\r', b'\n'])),
            HostileSmtp::HugeLine => {
                let mut line = b"250 ".to_vec();
                line.extend(std::iter::repeat_n(b'x', 1 << 20));
                line.extend_from_slice(b"\r\n");
                (Step::RcptTo, Answer::Raw(line))
            }
            HostileSmtp::EndlessContinuation => (Step::Ehlo, Answer::EndlessContinuation),
            HostileSmtp::SilentGreeting => (Step::Connect, Answer::Stall),
            HostileSmtp::ResetMidData => (Step::DataEnd, Answer::Close),
        }
    }
}

/// A gzip stream of 1 GiB of zeros (about 1 MiB compressed), made once per process.
pub fn gzip_bomb() -> Vec<u8> {
    static BOMB: Mutex<Option<Vec<u8>>> = Mutex::new(None);
    let mut slot = BOMB.lock().unwrap_or_else(|e| e.into_inner());
    slot.get_or_insert_with(|| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            enc.write_all(&zeros).expect("in memory");
        }
        enc.finish().expect("in memory")
    })
    .clone()
}

/// A TCP listener that accepts connections and never says a word: a TLS client's handshake
/// (or any client's request) waits until its own timeout. Point an `https://127.0.0.1:PORT`
/// URL at it. Connections are held until the listener is dropped.
pub struct StalledTls {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for StalledTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StalledTls").field("addr", &self.addr).finish()
    }
}

impl StalledTls {
    /// Listens on a free loopback port.
    pub fn start() -> StalledTls {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let addr = listener.local_addr().expect("an address");
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("stalled-tls".into())
            .spawn(move || {
                let mut held: Vec<TcpStream> = Vec::new();
                while !s.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((c, _)) if held.len() < 1024 => held.push(c),
                        Ok(_) => {}
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
            .expect("a thread");
        StalledTls { addr, stop, thread: Some(thread) }
    }

    /// `https://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// The listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for StalledTls {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
