//! A loopback SMTP server that records every mail.
//!
//! [`FakeSmtp::start`] binds `127.0.0.1` on a free port and serves each connection on its own
//! thread with real SMTP (RFC 5321): `EHLO`/`HELO`, `AUTH PLAIN` and `AUTH LOGIN` (checked
//! against the credentials it was given), `MAIL FROM`, `RCPT TO`, `DATA` with dot-unstuffing,
//! `RSET`, `NOOP`, `QUIT`, and `STARTTLS` or implicit TLS with a self-signed certificate for
//! `localhost` / `127.0.0.1` generated for each fake at its start
//! ([`certificate_pem`](FakeSmtp::certificate_pem)), which tests make their client trust.
//!
//! Every accepted mail is recorded as a [`Mail`]: the envelope, the raw message, its (unfolded)
//! headers with an RFC 2047 decoder ([`Mail::decoded_header`]), and its body decoded from its
//! transfer encoding ([`Mail::body_text`]).
//!
//! Misbehaviour is programmed per step of the protocol ([`Step`]): an [`Answer`] queued with
//! [`push`](FakeSmtp::push) replaces the normal answer the next time that step is reached (each
//! queued answer is used once, first in first out per step); [`set_always`](FakeSmtp::set_always)
//! replaces it every time. An answer is a reply code and text (`421` also closes the
//! connection, as a server that is shutting down does), a stall (no answer at all), a hang-up,
//! or a delay before the normal answer.
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//! use watchbell_test::smtp::{Answer, FakeSmtp, Step};
//!
//! let smtp = FakeSmtp::start();
//! smtp.push(Step::MailFrom, Answer::reply(451, "4.3.0 try again later"));
//!
//! let stream = TcpStream::connect(smtp.addr()).unwrap();
//! let mut reader = BufReader::new(stream.try_clone().unwrap());
//! let mut w = stream;
//! let mut line = String::new();
//! let mut expect = |reader: &mut BufReader<TcpStream>, code: &str| {
//!     loop {
//!         line.clear();
//!         reader.read_line(&mut line).unwrap();
//!         assert!(line.starts_with(code), "{line}");
//!         if line.as_bytes().get(3) == Some(&b' ') {
//!             break;
//!         }
//!     }
//! };
//! expect(&mut reader, "220");
//! w.write_all(b"EHLO client\r\n").unwrap();
//! expect(&mut reader, "250");
//! w.write_all(b"MAIL FROM:<a@example.com>\r\n").unwrap();
//! expect(&mut reader, "451");
//! w.write_all(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n").unwrap();
//! expect(&mut reader, "250");
//! expect(&mut reader, "250");
//! expect(&mut reader, "354");
//! w.write_all(b"Subject: hi\r\n\r\n..dotted\r\n.\r\n").unwrap();
//! expect(&mut reader, "250");
//!
//! let mail = &smtp.wait_for_mails(1, std::time::Duration::from_secs(5))[0];
//! assert_eq!(mail.from, "a@example.com");
//! assert_eq!(mail.to, ["b@example.com"]);
//! assert_eq!(mail.header("subject"), Some("hi"));
//! assert_eq!(mail.body_text(), ".dotted\n");
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::base64;
use crate::store::Recorded;

/// The largest message accepted in `DATA` (larger ones get `552`).
const MAX_DATA: usize = 64 * 1024 * 1024;
/// How long a connection may stay silent before the fake hangs up.
const IDLE: Duration = Duration::from_secs(120);

/// A step of the SMTP conversation, where an [`Answer`] can replace the normal one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// The greeting after the connection is accepted (normally `220`).
    Connect,
    /// `EHLO` or `HELO` (normally `250`).
    Ehlo,
    /// `STARTTLS` (normally `220`, then the TLS handshake).
    StartTls,
    /// `AUTH` (normally `235` with the right credentials, `535` otherwise).
    Auth,
    /// `MAIL FROM` (normally `250`).
    MailFrom,
    /// `RCPT TO` (normally `250`).
    RcptTo,
    /// `DATA` (normally `354`).
    Data,
    /// The end of the message, `.` (normally `250`, and the mail is recorded).
    DataEnd,
    /// `RSET` (normally `250`).
    Rset,
    /// `NOOP` (normally `250`).
    Noop,
}

/// What the fake does instead of its normal answer at a [`Step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Replies with this code and text. A `421` also closes the connection. At
    /// [`Step::DataEnd`] the mail is not recorded unless the code is `2xx`.
    Reply(u16, String),
    /// Never answers: reads and ignores whatever comes until the client hangs up (or the fake
    /// is dropped, or 120 s passed).
    Stall,
    /// Hangs up without answering.
    Close,
    /// Waits, then answers normally.
    Delay(Duration),
    /// Sends exactly these bytes (no CRLF added: garbage, a reply that lies, half a line), then
    /// goes on reading commands as if it had answered.
    Raw(Vec<u8>),
    /// Sends `250-` continuation lines for ever (at most 16 MiB), never the final line, then
    /// hangs up.
    EndlessContinuation,
}

impl Answer {
    /// [`Answer::Reply`].
    pub fn reply(code: u16, text: impl Into<String>) -> Self {
        Answer::Reply(code, text.into())
    }
}

/// One mail the fake accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    /// The envelope sender (`MAIL FROM`), without the angle brackets.
    pub from: String,
    /// The envelope recipients (`RCPT TO`), in order, without the angle brackets.
    pub to: Vec<String>,
    /// The message as received, dot-unstuffed, lines ending in CRLF, without the final `.`.
    pub data: String,
    /// The header fields in order, names as sent, values unfolded and trimmed (still encoded).
    pub headers: Vec<(String, String)>,
    /// The body as received (after the blank line), still in its transfer encoding.
    pub body: String,
    /// Whether the mail came over TLS (STARTTLS or implicit).
    pub tls: bool,
    /// The user name that authenticated on the connection, if any.
    pub auth_user: Option<String>,
    /// The number of the connection it came on (0 for the first the fake accepted).
    pub connection: usize,
    /// When the final `.` arrived.
    pub received_at: Instant,
}

impl Mail {
    /// The first header of this name (case-insensitive), unfolded, still encoded.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every header of this name (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The first header of this name with its RFC 2047 encoded words decoded.
    pub fn decoded_header(&self, name: &str) -> Option<String> {
        self.header(name).map(decode_rfc2047)
    }

    /// The body decoded from its `Content-Transfer-Encoding` (base64, quoted-printable, 7bit,
    /// 8bit), as UTF-8 (invalid bytes replaced), with line ends turned into `\n`.
    pub fn body_text(&self) -> String {
        let cte = self.header("content-transfer-encoding").unwrap_or("7bit").trim().to_ascii_lowercase();
        let bytes = match cte.as_str() {
            "base64" => base64::decode_lenient(&self.body),
            "quoted-printable" => decode_quoted_printable(&self.body),
            _ => self.body.as_bytes().to_vec(),
        };
        String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
    }
}

/// Decodes the RFC 2047 encoded words (`=?UTF-8?B?...?=`, `=?utf-8?Q?...?=`) of a header
/// value; whitespace between two encoded words is dropped, as the RFC says. Charsets other than
/// UTF-8 and US-ASCII are decoded as UTF-8 too (invalid bytes replaced).
///
/// ```
/// use watchbell_test::smtp::decode_rfc2047;
/// assert_eq!(decode_rfc2047("=?utf-8?b?w6ljaGVj?= =?utf-8?q?_total?= !"), "échec total !");
/// assert_eq!(decode_rfc2047("plain text"), "plain text");
/// ```
pub fn decode_rfc2047(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut pending_ws = String::new();
    let mut last_was_word = false;
    while !rest.is_empty() {
        if let Some((decoded, used)) = encoded_word(rest) {
            if !last_was_word {
                out.push_str(&pending_ws);
            }
            pending_ws.clear();
            out.push_str(&decoded);
            rest = &rest[used..];
            last_was_word = true;
            continue;
        }
        let c = rest.chars().next().expect("not empty");
        if c == ' ' || c == '\t' {
            pending_ws.push(c);
        } else {
            out.push_str(&pending_ws);
            pending_ws.clear();
            out.push(c);
            last_was_word = false;
        }
        rest = &rest[c.len_utf8()..];
    }
    out.push_str(&pending_ws);
    out
}

/// One encoded word at the start of `s`: its text and its length.
fn encoded_word(s: &str) -> Option<(String, usize)> {
    let body = s.strip_prefix("=?")?;
    let (_charset, body) = body.split_once('?')?;
    let (enc, body) = body.split_once('?')?;
    let end = body.find("?=")?;
    let text = &body[..end];
    if text.contains(' ') {
        return None;
    }
    let bytes = match enc {
        "B" | "b" => base64::decode_lenient(text),
        "Q" | "q" => decode_quoted_printable(&text.replace('_', " ")),
        _ => return None,
    };
    let used = s.len() - body.len() + end + 2;
    Some((String::from_utf8_lossy(&bytes).into_owned(), used))
}

/// Decodes quoted-printable: `=XX` escapes and `=` soft line breaks.
fn decode_quoted_printable(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if b[i + 1..].starts_with(b"\n") {
                i += 2;
                continue;
            }
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Configures a [`FakeSmtp`] before it starts.
#[derive(Debug, Default)]
pub struct FakeSmtpBuilder {
    credentials: Option<(String, String)>,
    mechanisms: Option<String>,
    starttls: bool,
    require_tls: bool,
    implicit_tls: bool,
}

impl FakeSmtpBuilder {
    /// Advertises `AUTH PLAIN LOGIN` and requires this user and password before `MAIL FROM`
    /// (`530` otherwise; wrong credentials get `535`).
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// The AUTH mechanisms advertised (default `PLAIN LOGIN`); only these are accepted.
    pub fn auth_mechanisms(mut self, mechanisms: &[&str]) -> Self {
        self.mechanisms = Some(mechanisms.join(" ").to_ascii_uppercase());
        self
    }

    /// Advertises `STARTTLS` and upgrades the connection with the certificate it makes at its
    /// start ([`FakeSmtp::certificate_pem`]).
    pub fn starttls(mut self) -> Self {
        self.starttls = true;
        self
    }

    /// With [`starttls`](Self::starttls): refuses `AUTH` and `MAIL FROM` before TLS (`530`).
    pub fn require_tls(mut self) -> Self {
        self.require_tls = true;
        self
    }

    /// Speaks TLS from the first byte (SMTPS, as on port 465).
    pub fn implicit_tls(mut self) -> Self {
        self.implicit_tls = true;
        self
    }

    /// Binds `127.0.0.1` on a free port and starts serving.
    ///
    /// # Panics
    /// If the port cannot be bound or the TLS configuration cannot be built.
    pub fn start(self) -> FakeSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let tls = (self.starttls || self.implicit_tls).then(identity);
        let shared = Arc::new(Shared {
            state: Recorded::default(),
            credentials: self.credentials,
            mechanisms: self.mechanisms.unwrap_or_else(|| "PLAIN LOGIN".to_owned()),
            starttls: self.starttls,
            require_tls: self.require_tls,
            implicit_tls: self.implicit_tls,
            tls,
        });
        let s = Arc::clone(&shared);
        thread::Builder::new()
            .name("fake-smtp-accept".into())
            .spawn(move || accept_loop(listener, s))
            .expect("spawn the accept thread");
        FakeSmtp { shared, addr }
    }
}

/// A TLS identity made for one fake: a new key and a self-signed certificate for `localhost`
/// and `127.0.0.1`, and the server configuration that presents it.
struct Identity {
    certificate_pem: String,
    config: Arc<rustls::ServerConfig>,
}

fn identity() -> Identity {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("a self-signed certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    Identity { certificate_pem: made.cert.pem(), config: server_config(made.cert.der().clone(), key) }
}

fn server_config(
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("a valid certificate and key");
    Arc::new(config)
}

#[derive(Default)]
struct State {
    mails: Vec<Mail>,
    queued: HashMap<Step, VecDeque<Answer>>,
    always: HashMap<Step, Answer>,
    commands: Vec<String>,
    connections: usize,
    tls_handshakes: usize,
    open: HashMap<usize, TcpStream>,
    stopped: bool,
}

struct Shared {
    state: Recorded<State>,
    credentials: Option<(String, String)>,
    mechanisms: String,
    starttls: bool,
    require_tls: bool,
    implicit_tls: bool,
    tls: Option<Identity>,
}

impl Shared {
    fn answer(&self, step: Step) -> Option<Answer> {
        let mut st = self.state.lock();
        if let Some(a) = st.queued.get_mut(&step).and_then(VecDeque::pop_front) {
            return Some(a);
        }
        st.always.get(&step).cloned()
    }
}

/// A loopback SMTP server; see the [module docs](self). Dropping it stops it.
pub struct FakeSmtp {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl fmt::Debug for FakeSmtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeSmtp").field("addr", &self.addr).field("mails", &self.mail_count()).finish()
    }
}

impl FakeSmtp {
    /// A plain server without authentication or TLS.
    pub fn start() -> FakeSmtp {
        FakeSmtp::builder().start()
    }

    /// A builder for a server with credentials or TLS.
    pub fn builder() -> FakeSmtpBuilder {
        FakeSmtpBuilder::default()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The host name its certificate is valid for: `localhost` (it listens on `127.0.0.1`).
    pub fn host(&self) -> &'static str {
        "localhost"
    }

    /// The certificate (PEM) this fake made for itself at its start, self-signed for
    /// `localhost` and `127.0.0.1`: give it to the client as a trusted root (for watchbell-mail:
    /// `add_root_certificate`). Every fake has its own. Empty without TLS.
    pub fn certificate_pem(&self) -> &str {
        self.shared.tls.as_ref().map_or("", |t| t.certificate_pem.as_str())
    }

    /// Replaces the normal answer the next time `step` is reached (once; answers queued for one
    /// step are used first in first out).
    pub fn push(&self, step: Step, answer: Answer) {
        self.shared.state.lock().queued.entry(step).or_default().push_back(answer);
    }

    /// [`push`](Self::push) `n` times.
    pub fn push_n(&self, step: Step, answer: Answer, n: usize) {
        let mut st = self.shared.state.lock();
        let q = st.queued.entry(step).or_default();
        for _ in 0..n {
            q.push_back(answer.clone());
        }
    }

    /// Replaces the normal answer at `step` every time (after the queued ones), or restores it
    /// with `None`.
    pub fn set_always(&self, step: Step, answer: Option<Answer>) {
        let mut st = self.shared.state.lock();
        match answer {
            Some(a) => st.always.insert(step, a),
            None => st.always.remove(&step),
        };
    }

    /// The mails accepted so far, in order.
    pub fn mails(&self) -> Vec<Mail> {
        self.shared.state.lock().mails.clone()
    }

    /// How many mails were accepted.
    pub fn mail_count(&self) -> usize {
        self.shared.state.lock().mails.len()
    }

    /// Waits until at least `n` mails were accepted or `timeout` passed; returns the mails.
    pub fn wait_for_mails(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        self.shared.state.wait_until(timeout, |st| st.mails.len() >= n).mails.clone()
    }

    /// Every command line received, in order, as sent (AUTH payloads included; message text
    /// excluded).
    pub fn commands(&self) -> Vec<String> {
        self.shared.state.lock().commands.clone()
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.shared.state.lock().connections
    }

    /// How many TLS sessions were started (STARTTLS or implicit), counted when the handshake
    /// completes.
    pub fn tls_sessions(&self) -> usize {
        self.shared.state.lock().tls_handshakes
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        let open = self.shared.state.update(|st| {
            st.stopped = true;
            std::mem::take(&mut st.open)
        });
        for s in open.values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.state.lock().stopped {
            break;
        }
        let Ok(stream) = stream else { continue };
        let id = {
            let mut st = shared.state.lock();
            let id = st.connections;
            st.connections += 1;
            if let Ok(c) = stream.try_clone() {
                st.open.insert(id, c);
            }
            id
        };
        let s = Arc::clone(&shared);
        let _ = thread::Builder::new().name(format!("fake-smtp-{id}")).spawn(move || {
            let _ = serve(stream, id, &s);
            s.state.lock().open.remove(&id);
        });
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// The state of one connection.
struct Session<'a> {
    shared: &'a Shared,
    io: BufReader<Stream>,
    id: usize,
    tls: bool,
    greeted: bool,
    user: Option<String>,
    from: Option<String>,
    to: Vec<String>,
}

/// What to do after an answer was applied.
enum Flow {
    /// The answer was given instead of the normal one: go on with the next command.
    Answered,
    /// Go on with the normal answer.
    Normal,
    /// Hang up.
    Close,
}

impl Session<'_> {
    fn send(&mut self, line: &str) -> io::Result<()> {
        let w = self.io.get_mut();
        w.write_all(line.as_bytes())?;
        w.write_all(b"\r\n")?;
        w.flush()
    }

    fn read_line(&mut self) -> io::Result<Option<String>> {
        let mut buf = Vec::new();
        let n = self.io.by_ref().take(1 << 20).read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }

    fn apply(&mut self, step: Step) -> io::Result<Flow> {
        match self.shared.answer(step) {
            None => Ok(Flow::Normal),
            Some(Answer::Delay(d)) => {
                thread::sleep(d);
                Ok(Flow::Normal)
            }
            Some(Answer::Close) => Ok(Flow::Close),
            Some(Answer::Stall) => {
                self.stall();
                Ok(Flow::Close)
            }
            Some(Answer::Reply(code, text)) => {
                self.send(&format!("{code} {text}"))?;
                Ok(if code == 421 { Flow::Close } else { Flow::Answered })
            }
            Some(Answer::Raw(bytes)) => {
                let w = self.io.get_mut();
                w.write_all(&bytes)?;
                w.flush()?;
                Ok(Flow::Answered)
            }
            Some(Answer::EndlessContinuation) => {
                let line = b"250-this line is followed by another one, and another\r\n";
                let mut sent = 0;
                while sent < 16 << 20 && !self.shared.state.lock().stopped {
                    if self.io.get_mut().write_all(line).is_err() {
                        break;
                    }
                    sent += line.len();
                }
                Ok(Flow::Close)
            }
        }
    }

    fn stall(&mut self) {
        let mut tcp = self.io.get_ref().tcp();
        let _ = tcp.set_read_timeout(Some(Duration::from_millis(100)));
        let until = Instant::now() + IDLE;
        let mut buf = [0u8; 4096];
        while Instant::now() < until && !self.shared.state.lock().stopped {
            match tcp.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
    }

    fn reset(&mut self) {
        self.from = None;
        self.to.clear();
    }

    fn auth_allowed(&self) -> bool {
        !(self.require_tls_now())
    }

    fn require_tls_now(&self) -> bool {
        self.shared.require_tls && !self.tls
    }

    fn decode_line(line: &str) -> String {
        String::from_utf8_lossy(&base64::decode_lenient(line.trim())).into_owned()
    }

    fn check_auth(&mut self, user: &str, pass: &str) -> io::Result<()> {
        match &self.shared.credentials {
            Some((u, p)) if u == user && p == pass => {
                self.user = Some(user.to_owned());
                self.send("235 2.7.0 Authentication successful")
            }
            _ => self.send("535 5.7.8 Authentication credentials invalid"),
        }
    }

    fn auth(&mut self, args: &str) -> io::Result<()> {
        if self.shared.credentials.is_none() {
            return self.send("503 5.5.1 AUTH not advertised");
        }
        if !self.auth_allowed() {
            return self.send("530 5.7.0 Must issue a STARTTLS command first");
        }
        let mut parts = args.split_whitespace();
        let mech = parts.next().unwrap_or("").to_ascii_uppercase();
        let initial = parts.next().map(str::to_owned);
        if !self.shared.mechanisms.split(' ').any(|m| m == mech) {
            return self.send("504 5.5.4 Unrecognized authentication type");
        }
        match mech.as_str() {
            "PLAIN" => {
                let payload = match initial {
                    Some(p) => p,
                    None => {
                        self.send("334 ")?;
                        let Some(l) = self.read_line()? else { return Ok(()) };
                        l
                    }
                };
                let decoded = Self::decode_line(&payload);
                let mut fields = decoded.split('\0');
                let _authzid = fields.next();
                let user = fields.next().unwrap_or("").to_owned();
                let pass = fields.next().unwrap_or("").to_owned();
                self.check_auth(&user, &pass)
            }
            "LOGIN" => {
                let user = match initial {
                    Some(u) => Self::decode_line(&u),
                    None => {
                        self.send(&format!("334 {}", base64::encode(b"Username:")))?;
                        let Some(l) = self.read_line()? else { return Ok(()) };
                        Self::decode_line(&l)
                    }
                };
                self.send(&format!("334 {}", base64::encode(b"Password:")))?;
                let Some(l) = self.read_line()? else { return Ok(()) };
                let pass = Self::decode_line(&l);
                self.check_auth(&user, &pass)
            }
            _ => self.send("504 5.5.4 Unrecognized authentication type"),
        }
    }

    fn ehlo(&mut self, extended: bool) -> io::Result<()> {
        self.greeted = true;
        self.reset();
        if !extended {
            return self.send("250 fake-smtp");
        }
        let mut lines = vec!["fake-smtp greets you".to_owned(), "8BITMIME".to_owned(), format!("SIZE {MAX_DATA}")];
        if self.shared.starttls && !self.tls {
            lines.push("STARTTLS".to_owned());
        }
        if self.shared.credentials.is_some() && self.auth_allowed() {
            lines.push(format!("AUTH {}", self.shared.mechanisms));
        }
        lines.push("HELP".to_owned());
        let n = lines.len();
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 == n { ' ' } else { '-' };
            self.send(&format!("250{sep}{l}"))?;
        }
        Ok(())
    }

    fn data(&mut self) -> io::Result<bool> {
        self.send("354 End data with <CR><LF>.<CR><LF>")?;
        let mut data = String::new();
        let mut too_big = false;
        loop {
            let mut buf = Vec::new();
            let n = self.io.by_ref().take(1 << 20).read_until(b'\n', &mut buf)?;
            if n == 0 {
                return Ok(false);
            }
            let line = String::from_utf8_lossy(&buf);
            let trimmed = line.trim_end_matches(['\r', '\n']);
            if trimmed == "." {
                break;
            }
            let unstuffed = trimmed.strip_prefix('.').unwrap_or(trimmed);
            if data.len() + unstuffed.len() > MAX_DATA {
                too_big = true;
                continue;
            }
            data.push_str(unstuffed);
            data.push_str("\r\n");
        }
        if too_big {
            self.send("552 5.3.4 Message too big")?;
            self.reset();
            return Ok(true);
        }
        match self.apply(Step::DataEnd)? {
            Flow::Close => return Ok(false),
            Flow::Answered => {
                self.reset();
                return Ok(true);
            }
            Flow::Normal => {}
        }
        let (head, body) = match data.find("\r\n\r\n") {
            Some(i) => (&data[..i], &data[i + 4..]),
            None => (data.as_str(), ""),
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push_str(line);
                }
            } else if let Some((n, v)) = line.split_once(':') {
                headers.push((n.to_owned(), v.to_owned()));
            }
        }
        for h in &mut headers {
            h.1 = h.1.trim().to_owned();
        }
        let mail = Mail {
            from: self.from.take().unwrap_or_default(),
            to: std::mem::take(&mut self.to),
            body: body.to_owned(),
            data,
            headers,
            tls: self.tls,
            auth_user: self.user.clone(),
            connection: self.id,
            received_at: Instant::now(),
        };
        let queue_id = self.shared.state.update(|st| {
            st.mails.push(mail);
            st.mails.len()
        });
        self.send(&format!("250 2.0.0 OK queued as {queue_id}"))?;
        Ok(true)
    }
}

/// Strips `<...>` and any parameters from a `MAIL FROM:` / `RCPT TO:` argument.
fn path_arg(arg: &str) -> String {
    let arg = arg.trim();
    if let Some(start) = arg.find('<') {
        if let Some(end) = arg[start..].find('>') {
            return arg[start + 1..start + end].to_owned();
        }
    }
    arg.split_whitespace().next().unwrap_or("").to_owned()
}

fn upgrade(shared: &Shared, stream: Stream) -> io::Result<Stream> {
    let Stream::Plain(tcp) = stream else { return Err(io::Error::other("already TLS")) };
    let config =
        shared.tls.as_ref().map(|t| Arc::clone(&t.config)).ok_or_else(|| io::Error::other("no TLS configured"))?;
    let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    shared.state.lock().tls_handshakes += 1;
    Ok(Stream::Tls(Box::new(tls)))
}

fn serve(tcp: TcpStream, id: usize, shared: &Shared) -> io::Result<()> {
    tcp.set_read_timeout(Some(IDLE))?;
    let _ = tcp.set_nodelay(true);
    let mut stream = Stream::Plain(tcp);
    let mut tls = false;
    if shared.implicit_tls {
        stream = upgrade(shared, stream)?;
        tls = true;
    }
    let mut s =
        Session { shared, io: BufReader::new(stream), id, tls, greeted: false, user: None, from: None, to: Vec::new() };
    match s.apply(Step::Connect)? {
        Flow::Close => return Ok(()),
        Flow::Answered => {}
        Flow::Normal => s.send("220 fake-smtp ESMTP ready")?,
    }
    while let Some(line) = s.read_line()? {
        shared.state.lock().commands.push(line.clone());
        let (verb, args) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.to_owned()),
            None => (line.to_ascii_uppercase(), String::new()),
        };
        let step = match verb.as_str() {
            "EHLO" | "HELO" => Some(Step::Ehlo),
            "STARTTLS" => Some(Step::StartTls),
            "AUTH" => Some(Step::Auth),
            "MAIL" => Some(Step::MailFrom),
            "RCPT" => Some(Step::RcptTo),
            "DATA" => Some(Step::Data),
            "RSET" => Some(Step::Rset),
            "NOOP" => Some(Step::Noop),
            _ => None,
        };
        if let Some(step) = step {
            match s.apply(step)? {
                Flow::Close => return Ok(()),
                Flow::Answered => continue,
                Flow::Normal => {}
            }
        }
        match verb.as_str() {
            "EHLO" => s.ehlo(true)?,
            "HELO" => s.ehlo(false)?,
            "STARTTLS" => {
                if !shared.starttls || s.tls {
                    s.send("502 5.5.1 STARTTLS not available")?;
                    continue;
                }
                s.send("220 2.0.0 Ready to start TLS")?;
                if !s.io.buffer().is_empty() {
                    // Bytes sent before the handshake: a STARTTLS injection attempt.
                    return Ok(());
                }
                let Session { io, id, .. } = s;
                let upgraded = upgrade(shared, io.into_inner())?;
                s = Session {
                    shared,
                    io: BufReader::new(upgraded),
                    id,
                    tls: true,
                    greeted: false,
                    user: None,
                    from: None,
                    to: Vec::new(),
                };
            }
            "AUTH" => s.auth(&args)?,
            "MAIL" => {
                if !s.greeted {
                    s.send("503 5.5.1 EHLO first")?;
                } else if s.require_tls_now() {
                    s.send("530 5.7.0 Must issue a STARTTLS command first")?;
                } else if shared.credentials.is_some() && s.user.is_none() {
                    s.send("530 5.7.0 Authentication required")?;
                } else {
                    s.reset();
                    s.from = Some(path_arg(args.split_once(':').map_or("", |(_, a)| a)));
                    s.send("250 2.1.0 OK")?;
                }
            }
            "RCPT" => {
                if s.from.is_none() {
                    s.send("503 5.5.1 MAIL first")?;
                } else {
                    s.to.push(path_arg(args.split_once(':').map_or("", |(_, a)| a)));
                    s.send("250 2.1.5 OK")?;
                }
            }
            "DATA" => {
                if s.to.is_empty() {
                    s.send("503 5.5.1 RCPT first")?;
                } else if !s.data()? {
                    return Ok(());
                }
            }
            "RSET" => {
                s.reset();
                s.send("250 2.0.0 OK")?;
            }
            "NOOP" => s.send("250 2.0.0 OK")?,
            "QUIT" => {
                s.send("221 2.0.0 Bye")?;
                return Ok(());
            }
            _ => s.send("500 5.5.2 Command not recognized")?,
        }
    }
    Ok(())
}
