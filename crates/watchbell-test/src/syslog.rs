//! Loopback syslog receivers: UDP, TCP and unix sockets.
//!
//! A [`FakeSyslog`] listens like a syslog daemon and records every frame it receives as a
//! [`Frame`] (the raw bytes and how they were delimited). [`parse`] (or [`Frame::parse`]) reads a
//! frame as an RFC 5424 or RFC 3164 message into a [`SyslogMessage`], strictly: a header field
//! with a space or a control char, an SD-NAME longer than 32 chars, an unescaped `]` in an SD
//! value, a zero-padded day in an RFC 3164 timestamp or a PRI above 191 is an error, so a test
//! that parses what a sink sent also checks that it is well formed.
//!
//! Stream transports (TCP, unix stream) detect the framing of RFC 6587 per frame: a frame that
//! starts with a digit is octet-counted (`LEN SP MSG`); any other is non-transparent and ends at
//! LF (or NUL, as some clients send). Datagram transports (UDP, unix datagram) take one datagram
//! as one frame.
//!
//! A receiver can be [`stop`](FakeSyslog::stop)ped (its listener and every open connection are
//! closed; a unix socket file is removed) and [`restart`](FakeSyslog::restart)ed on the same port
//! or path, to test reconnection. A TCP receiver can also [`reset_next`](FakeSyslog::reset_next)
//! connections (a TCP RST as soon as each is accepted, nothing read), as a receiver that restarts
//! or refuses its peer does.
//!
//! ```
//! use std::io::Write;
//! use std::net::TcpStream;
//! use std::time::Duration;
//! use watchbell_test::syslog::{FakeSyslog, FrameKind};
//!
//! let fake = FakeSyslog::tcp();
//! let mut stream = TcpStream::connect(fake.addr().unwrap()).unwrap();
//! let msg = "<165>1 2003-10-11T22:14:15.003Z host app 42 ID47 [ex@32473 k=\"a\\]b\"] \u{feff}hello";
//! write!(stream, "{} {}", msg.len(), msg).unwrap();
//! let frames = fake.wait_for_frames(1, Duration::from_secs(5));
//! assert_eq!(frames[0].kind, FrameKind::OctetCounted);
//! let m = frames[0].parse().unwrap();
//! assert_eq!((m.facility, m.severity), (20, 5));
//! assert_eq!(m.structured_data[0].param("k"), Some("a]b"));
//! assert!(m.bom);
//! assert_eq!(m.message, "hello");
//! ```

use std::fmt;
use std::io::{self, ErrorKind, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::store::Recorded;

/// The transport a [`FakeSyslog`] listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP on `127.0.0.1`.
    Udp,
    /// TCP on `127.0.0.1`.
    Tcp,
    /// A unix datagram socket (like `/dev/log`).
    UnixDatagram,
    /// A unix stream socket.
    UnixStream,
}

/// How a frame was delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// One datagram (UDP, unix datagram).
    Datagram,
    /// RFC 6587 octet counting: `LEN SP MSG`.
    OctetCounted,
    /// RFC 6587 non-transparent framing: the frame ended at LF (a CR before it is removed).
    LineFeed,
    /// Non-transparent framing ended by a NUL byte.
    Nul,
    /// Bytes left when the connection closed without a trailer (an incomplete frame).
    Unterminated,
}

/// One frame as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The frame's bytes, without the framing (no length prefix, no trailer).
    pub raw: Vec<u8>,
    /// How it was delimited.
    pub kind: FrameKind,
    /// The connection it came on (stream transports; counted from 1 over the receiver's life),
    /// 0 for datagrams.
    pub connection: usize,
    /// When it was received.
    pub received_at: Instant,
}

impl Frame {
    /// The bytes as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// Parses the frame as RFC 5424 or RFC 3164 (see [`parse`]).
    pub fn parse(&self) -> Result<SyslogMessage, String> {
        parse(&self.raw)
    }
}

/// Which syslog protocol a message follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// RFC 5424 (`<PRI>1 ...`).
    Rfc5424,
    /// RFC 3164, the BSD format (`<PRI>Mmm dd hh:mm:ss HOST TAG[pid]: ...`).
    Rfc3164,
}

/// One SD-ELEMENT of RFC 5424: `[id name="value" ...]`, with the values unescaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdElement {
    /// The SD-ID (`fields@32473`).
    pub id: String,
    /// The parameters in order (a name may repeat), values unescaped.
    pub params: Vec<(String, String)>,
}

impl SdElement {
    /// The first value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A parsed syslog message. Fields that were the NILVALUE `-` (5424) or absent are `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogMessage {
    /// RFC 5424 or RFC 3164.
    pub protocol: Protocol,
    /// The PRI value (facility × 8 + severity).
    pub pri: u8,
    /// The facility code, 0 to 23.
    pub facility: u8,
    /// The severity, 0 (emerg) to 7 (debug).
    pub severity: u8,
    /// The version (1) for RFC 5424.
    pub version: Option<u32>,
    /// The timestamp as written (`2003-10-11T22:14:15.003Z`, or `Oct  5 22:14:15` in 3164).
    pub timestamp: Option<String>,
    /// The HOSTNAME.
    pub hostname: Option<String>,
    /// The APP-NAME (the TAG in 3164).
    pub app_name: Option<String>,
    /// The PROCID (the `[pid]` of the TAG in 3164).
    pub procid: Option<String>,
    /// The MSGID (5424 only).
    pub msgid: Option<String>,
    /// The structured data (5424 only), in order.
    pub structured_data: Vec<SdElement>,
    /// Whether the MSG began with the UTF-8 BOM (which is removed from `message`).
    pub bom: bool,
    /// The MSG (after the BOM) as text; invalid UTF-8 is an error after a BOM, replaced otherwise.
    pub message: String,
}

impl SyslogMessage {
    /// The SD-ELEMENT with this SD-ID.
    pub fn sd(&self, id: &str) -> Option<&SdElement> {
        self.structured_data.iter().find(|e| e.id == id)
    }
}

/// Parses one syslog message: RFC 5424 when the PRI is followed by the version `1 `, RFC 3164
/// otherwise. Strict about what the RFCs require of a sender (see the [module docs](self)).
pub fn parse(raw: &[u8]) -> Result<SyslogMessage, String> {
    let rest = raw.strip_prefix(b"<").ok_or("no `<` at the start of PRI")?;
    let close = rest.iter().position(|&b| b == b'>').ok_or("no `>` after PRI")?;
    let pri_text = std::str::from_utf8(&rest[..close]).map_err(|_| "PRI is not ASCII")?;
    if pri_text.is_empty() || pri_text.len() > 3 || !pri_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid PRI {pri_text:?}"));
    }
    if pri_text.len() > 1 && pri_text.starts_with('0') {
        return Err(format!("PRI {pri_text:?} has a leading zero"));
    }
    let pri: u32 = pri_text.parse().map_err(|_| "invalid PRI")?;
    if pri > 191 {
        return Err(format!("PRI {pri} is above 191"));
    }
    let pri = pri as u8;
    let rest = &rest[close + 1..];
    if let Some(after) = rest.strip_prefix(b"1 ") {
        parse_5424(pri, after)
    } else {
        parse_3164(pri, rest)
    }
}

/// Splits off the next space-terminated header field.
fn field(rest: &mut &[u8], name: &str, max: usize) -> Result<Option<String>, String> {
    let end = rest.iter().position(|&b| b == b' ').ok_or_else(|| format!("{name}: no space after it"))?;
    let value = &rest[..end];
    *rest = &rest[end + 1..];
    if value.is_empty() {
        return Err(format!("{name} is empty (two spaces?)"));
    }
    if value.len() > max {
        return Err(format!("{name} is {} bytes, more than {max}", value.len()));
    }
    if let Some(b) = value.iter().find(|&&b| !(33..=126).contains(&b)) {
        return Err(format!("{name} holds byte {b:#04x}, not printable US-ASCII"));
    }
    let value = String::from_utf8(value.to_vec()).expect("ASCII");
    Ok((value != "-").then_some(value))
}

fn check_5424_timestamp(t: &str) -> Result<(), String> {
    let b = t.as_bytes();
    let ok = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18].iter().all(|&i| b[i].is_ascii_digit());
    if !ok {
        return Err(format!("TIMESTAMP {t:?} is not RFC 3339"));
    }
    let mut tail = &t[19..];
    if let Some(frac) = tail.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 6 {
            return Err(format!("TIMESTAMP {t:?} has {digits} fraction digits (1 to 6 allowed)"));
        }
        tail = &frac[digits..];
    }
    let zone_ok = tail == "Z"
        || (tail.len() == 6
            && (tail.starts_with('+') || tail.starts_with('-'))
            && tail.as_bytes()[3] == b':'
            && [1, 2, 4, 5].iter().all(|&i| tail.as_bytes()[i].is_ascii_digit()));
    if zone_ok {
        Ok(())
    } else {
        Err(format!("TIMESTAMP {t:?} has no valid zone"))
    }
}

fn parse_5424(pri: u8, mut rest: &[u8]) -> Result<SyslogMessage, String> {
    let timestamp = field(&mut rest, "TIMESTAMP", 64)?;
    if let Some(t) = &timestamp {
        check_5424_timestamp(t)?;
    }
    let hostname = field(&mut rest, "HOSTNAME", 255)?;
    let app_name = field(&mut rest, "APP-NAME", 48)?;
    let procid = field(&mut rest, "PROCID", 128)?;
    let msgid = field(&mut rest, "MSGID", 32)?;
    let mut structured_data = Vec::new();
    if let Some(r) = rest.strip_prefix(b"-") {
        rest = r;
    } else {
        if !rest.starts_with(b"[") {
            return Err("STRUCTURED-DATA is neither `-` nor `[`".into());
        }
        while rest.starts_with(b"[") {
            let (el, r) = parse_sd_element(&rest[1..])?;
            structured_data.push(el);
            rest = r;
        }
    }
    let (bom, message) = match rest {
        [] => (false, String::new()),
        [b' ', msg @ ..] => match msg.strip_prefix(b"\xEF\xBB\xBF") {
            Some(m) => (true, String::from_utf8(m.to_vec()).map_err(|_| "MSG after the BOM is not UTF-8")?),
            None => (false, String::from_utf8_lossy(msg).into_owned()),
        },
        _ => return Err("no space between STRUCTURED-DATA and MSG".into()),
    };
    Ok(SyslogMessage {
        protocol: Protocol::Rfc5424,
        pri,
        facility: pri >> 3,
        severity: pri & 7,
        version: Some(1),
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        structured_data,
        bom,
        message,
    })
}

fn sd_name(rest: &mut &[u8], what: &str, stops: &[u8]) -> Result<String, String> {
    let end = rest.iter().position(|b| stops.contains(b)).ok_or_else(|| format!("{what} is not terminated"))?;
    let name = &rest[..end];
    *rest = &rest[end..];
    if name.is_empty() || name.len() > 32 {
        return Err(format!("{what} {:?} must be 1 to 32 chars", String::from_utf8_lossy(name)));
    }
    if let Some(b) = name.iter().find(|&&b| !(33..=126).contains(&b) || matches!(b, b'=' | b']' | b'"')) {
        return Err(format!("{what} {:?} holds the forbidden byte {b:#04x}", String::from_utf8_lossy(name)));
    }
    Ok(String::from_utf8(name.to_vec()).expect("ASCII"))
}

/// Parses one SD-ELEMENT after its `[`; returns it and what follows its `]`.
fn parse_sd_element(mut rest: &[u8]) -> Result<(SdElement, &[u8]), String> {
    let id = sd_name(&mut rest, "SD-ID", b" ]")?;
    let mut params = Vec::new();
    loop {
        match rest {
            [b']', r @ ..] => return Ok((SdElement { id, params }, r)),
            [b' ', r @ ..] => {
                rest = r;
                let name = sd_name(&mut rest, "PARAM-NAME", b"= ]")?;
                rest = rest.strip_prefix(b"=\"").ok_or_else(|| format!("PARAM-NAME {name}: no `=\"` after it"))?;
                let mut value = Vec::new();
                loop {
                    match rest {
                        [b'\\', c @ (b'"' | b'\\' | b']'), r @ ..] => {
                            value.push(*c);
                            rest = r;
                        }
                        [b'"', r @ ..] => {
                            rest = r;
                            break;
                        }
                        [b']', ..] => return Err(format!("PARAM-VALUE of {name} holds an unescaped `]`")),
                        [c, r @ ..] => {
                            value.push(*c);
                            rest = r;
                        }
                        [] => return Err(format!("PARAM-VALUE of {name} is not terminated")),
                    }
                }
                let value = String::from_utf8(value).map_err(|_| format!("PARAM-VALUE of {name} is not UTF-8"))?;
                params.push((name, value));
            }
            _ => return Err(format!("SD-ELEMENT {id}: expected a space or `]`")),
        }
    }
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

fn parse_3164(pri: u8, rest: &[u8]) -> Result<SyslogMessage, String> {
    if rest.len() < 16 {
        return Err("too short for an RFC 3164 TIMESTAMP".into());
    }
    let ts = std::str::from_utf8(&rest[..15]).map_err(|_| "TIMESTAMP is not ASCII")?;
    let b = ts.as_bytes();
    if !MONTHS.contains(&&ts[..3]) || b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' {
        return Err(format!("TIMESTAMP {ts:?} is not `Mmm dd hh:mm:ss`"));
    }
    if b[4] == b'0' {
        return Err(format!("TIMESTAMP {ts:?}: the day must be space-padded, not zero-padded"));
    }
    let day_ok = match b[4] {
        b' ' => (b'1'..=b'9').contains(&b[5]),
        b'1'..=b'3' => b[5].is_ascii_digit(),
        _ => false,
    };
    let digits_ok = [7, 8, 10, 11, 13, 14].iter().all(|&i| b[i].is_ascii_digit());
    if !day_ok || !digits_ok {
        return Err(format!("TIMESTAMP {ts:?} is not `Mmm dd hh:mm:ss`"));
    }
    if rest[15] != b' ' {
        return Err("no space after TIMESTAMP".into());
    }
    let mut r = &rest[16..];
    // HOSTNAME is absent when the first word is already the TAG (`app[42]: ...`, as the C
    // library writes to local sockets).
    let first_word = r.split(|&b| b == b' ').next().unwrap_or_default();
    let hostname = if first_word.ends_with(b":") { None } else { field(&mut r, "HOSTNAME", 255)? };
    // TAG[pid]: CONTENT
    let colon = r.iter().position(|&b| b == b':').ok_or("no `:` after the TAG")?;
    let tag = std::str::from_utf8(&r[..colon]).map_err(|_| "TAG is not ASCII")?;
    let (app, pid) = match tag.find('[') {
        Some(i) if tag.ends_with(']') => (&tag[..i], Some(tag[i + 1..tag.len() - 1].to_owned())),
        Some(_) => return Err(format!("TAG {tag:?}: `[` without `]`")),
        None => (tag, None),
    };
    if app.is_empty() || app.len() > 32 || !app.bytes().all(|b| (33..=126).contains(&b)) {
        return Err(format!("TAG {app:?} must be 1 to 32 printable chars"));
    }
    let content = &r[colon + 1..];
    let content = content.strip_prefix(b" ").unwrap_or(content);
    Ok(SyslogMessage {
        protocol: Protocol::Rfc3164,
        pri,
        facility: pri >> 3,
        severity: pri & 7,
        version: None,
        timestamp: Some(ts.to_owned()),
        hostname,
        app_name: Some(app.to_owned()),
        procid: pid,
        msgid: None,
        structured_data: Vec::new(),
        bom: false,
        message: String::from_utf8_lossy(content).into_owned(),
    })
}

/// A unique socket path in the temporary directory (`/tmp/wb-syslog-PID-N-NAME.sock`), not
/// created; for [`FakeSyslog::unix_datagram`] and [`FakeSyslog::unix_stream`].
pub fn temp_socket_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("wb-syslog-{}-{n}-{name}.sock", std::process::id()))
}

#[derive(Default)]
struct Store {
    frames: Recorded<Vec<Frame>>,
    connections: AtomicUsize,
    /// TCP connections still to reset as soon as they are accepted.
    to_reset: AtomicUsize,
    /// TCP connections reset so far.
    resets: AtomicUsize,
}

impl Store {
    fn push(&self, raw: Vec<u8>, kind: FrameKind, connection: usize) {
        self.frames.update(|frames| frames.push(Frame { raw, kind, connection, received_at: Instant::now() }));
    }
}

/// One run of the listener (between start and stop).
struct Running {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<Conn>>>,
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A loopback syslog receiver that records frames. See the [module docs](self).
///
/// Dropping it stops it (and removes its unix socket file).
pub struct FakeSyslog {
    transport: Transport,
    addr: Option<SocketAddr>,
    path: Option<PathBuf>,
    store: Arc<Store>,
    running: Mutex<Option<Running>>,
}

impl fmt::Debug for FakeSyslog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeSyslog")
            .field("transport", &self.transport)
            .field("addr", &self.addr)
            .field("path", &self.path)
            .field("frames", &self.store.frames.lock().len())
            .finish()
    }
}

const POLL: Duration = Duration::from_millis(20);

impl FakeSyslog {
    /// A UDP receiver on `127.0.0.1` and a free port.
    ///
    /// # Panics
    /// If no socket can be bound (the test cannot run).
    pub fn udp() -> FakeSyslog {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
        let addr = sock.local_addr().expect("local addr");
        let fake = Self::new(Transport::Udp, Some(addr), None);
        fake.run_udp(sock);
        fake
    }

    /// A TCP receiver on `127.0.0.1` and a free port.
    ///
    /// # Panics
    /// If no socket can be bound.
    pub fn tcp() -> FakeSyslog {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a TCP listener");
        let addr = listener.local_addr().expect("local addr");
        let fake = Self::new(Transport::Tcp, Some(addr), None);
        fake.run_tcp(listener);
        fake
    }

    /// A unix datagram receiver bound at `path` (an existing file there is removed first).
    ///
    /// # Panics
    /// If the socket cannot be bound.
    pub fn unix_datagram(path: impl AsRef<Path>) -> FakeSyslog {
        let path = path.as_ref().to_path_buf();
        let fake = Self::new(Transport::UnixDatagram, None, Some(path));
        fake.start_unix();
        fake
    }

    /// A unix stream receiver listening at `path` (an existing file there is removed first).
    ///
    /// # Panics
    /// If the socket cannot be bound.
    pub fn unix_stream(path: impl AsRef<Path>) -> FakeSyslog {
        let path = path.as_ref().to_path_buf();
        let fake = Self::new(Transport::UnixStream, None, Some(path));
        fake.start_unix();
        fake
    }

    fn new(transport: Transport, addr: Option<SocketAddr>, path: Option<PathBuf>) -> FakeSyslog {
        FakeSyslog { transport, addr, path, store: Arc::new(Store::default()), running: Mutex::new(None) }
    }

    fn start_unix(&self) {
        let path = self.path.as_ref().expect("a unix receiver has a path");
        let _ = std::fs::remove_file(path);
        match self.transport {
            Transport::UnixDatagram => {
                let sock = UnixDatagram::bind(path).expect("bind a unix datagram socket");
                self.run_unix_datagram(sock);
            }
            _ => {
                let listener = UnixListener::bind(path).expect("bind a unix stream socket");
                self.run_unix_stream(listener);
            }
        }
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The UDP or TCP address (`None` for unix sockets).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The unix socket path (`None` for UDP and TCP).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Every frame received so far, in order of arrival.
    pub fn frames(&self) -> Vec<Frame> {
        self.store.frames.lock().clone()
    }

    /// The number of frames received.
    pub fn frame_count(&self) -> usize {
        self.store.frames.lock().len()
    }

    /// Every frame parsed (see [`parse`]).
    ///
    /// # Panics
    /// If a frame does not parse: the message says why and shows the frame.
    pub fn messages(&self) -> Vec<SyslogMessage> {
        self.frames()
            .iter()
            .map(|f| f.parse().unwrap_or_else(|e| panic!("frame does not parse: {e}: {:?}", f.text())))
            .collect()
    }

    /// The number of stream connections accepted so far (over restarts).
    pub fn connection_count(&self) -> usize {
        self.store.connections.load(Ordering::Relaxed)
    }

    /// Forgets the frames received so far.
    pub fn clear(&self) {
        self.store.frames.lock().clear();
    }

    /// Waits until at least `n` frames arrived or `timeout` passed; returns the frames.
    pub fn wait_for_frames(&self, n: usize, timeout: Duration) -> Vec<Frame> {
        self.store.frames.wait_until(timeout, |frames| frames.len() >= n).clone()
    }

    /// Whether the receiver is listening.
    pub fn is_running(&self) -> bool {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Stops listening: the listener and every open connection are closed (the clients see
    /// end of file), a unix socket file is removed. Frames received so far are kept.
    pub fn stop(&self) {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(running) = running else { return };
        running.stop.store(true, Ordering::SeqCst);
        for c in running.conns.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            match c {
                Conn::Tcp(s) => {
                    let _ = s.shutdown(Shutdown::Both);
                }
                Conn::Unix(s) => {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
        for t in running.threads {
            let _ = t.join();
        }
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Resets (a TCP RST, without reading a byte) each of the next `n` TCP connections as soon
    /// as it is accepted, as a receiver that is restarting or refuses the peer does; later
    /// connections are read as usual. No effect on other transports.
    pub fn reset_next(&self, n: usize) {
        self.store.to_reset.store(n, Ordering::SeqCst);
    }

    /// How many TCP connections were reset by [`reset_next`](Self::reset_next).
    pub fn resets(&self) -> usize {
        self.store.resets.load(Ordering::SeqCst)
    }

    /// Listens again on the same port or path (after [`stop`](Self::stop)); does nothing if
    /// it is running.
    ///
    /// # Panics
    /// If the port or path cannot be bound again within 5 s.
    pub fn restart(&self) {
        if self.is_running() {
            return;
        }
        match self.transport {
            Transport::Udp => {
                let sock = retry_bind(|| UdpSocket::bind(self.addr.expect("addr")));
                self.run_udp(sock);
            }
            Transport::Tcp => {
                let l = retry_bind(|| TcpListener::bind(self.addr.expect("addr")));
                self.run_tcp(l);
            }
            Transport::UnixDatagram | Transport::UnixStream => self.start_unix(),
        }
    }

    fn install(&self, stop: Arc<AtomicBool>, conns: Arc<Mutex<Vec<Conn>>>, thread: JoinHandle<()>) {
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(Running { stop, threads: vec![thread], conns });
    }

    fn run_udp(&self, sock: UdpSocket) {
        sock.set_read_timeout(Some(POLL)).expect("set timeout");
        self.run_datagram(65_536, move |buf| sock.recv_from(buf).map(|(n, _)| n));
    }

    fn run_unix_datagram(&self, sock: UnixDatagram) {
        sock.set_read_timeout(Some(POLL)).expect("set timeout");
        self.run_datagram(1 << 20, move |buf| sock.recv(buf));
    }

    /// Records every datagram `recv` reads into a buffer of `size` bytes, until stopped.
    fn run_datagram(&self, size: usize, recv: impl Fn(&mut [u8]) -> io::Result<usize> + Send + 'static) {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, store) = (Arc::clone(&stop), Arc::clone(&self.store));
        let t = std::thread::spawn(move || {
            let mut buf = vec![0u8; size];
            while !s.load(Ordering::SeqCst) {
                if let Ok(n) = recv(&mut buf) {
                    store.push(buf[..n].to_vec(), FrameKind::Datagram, 0);
                }
            }
        });
        self.install(stop, Arc::default(), t);
    }

    fn run_tcp(&self, listener: TcpListener) {
        listener.set_nonblocking(true).expect("nonblocking");
        let store = Arc::clone(&self.store);
        self.run_stream(move || {
            let (stream, _) = listener.accept()?;
            let reset = store.to_reset.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            if reset {
                // SO_LINGER 0: closing sends a TCP RST, not a FIN.
                let _ = rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO));
                drop(stream);
                store.resets.fetch_add(1, Ordering::SeqCst);
                return Err(ErrorKind::WouldBlock.into());
            }
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(POLL));
            let conn = stream.try_clone().ok().map(Conn::Tcp);
            Ok((stream, conn))
        });
    }

    fn run_unix_stream(&self, listener: UnixListener) {
        listener.set_nonblocking(true).expect("nonblocking");
        self.run_stream(move || {
            let (stream, _) = listener.accept()?;
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(POLL));
            let conn = stream.try_clone().ok().map(Conn::Unix);
            Ok((stream, conn))
        });
    }

    /// Reads every connection `accept` returns (with, when the socket could be cloned, its
    /// handle to close on stop) on a thread of its own, until stopped. `accept` does not block;
    /// it owns the listener, which is closed before the readers are joined.
    fn run_stream<S: Read + Send + 'static>(
        &self,
        accept: impl FnMut() -> io::Result<(S, Option<Conn>)> + Send + 'static,
    ) {
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let (s, store, cs) = (Arc::clone(&stop), Arc::clone(&self.store), Arc::clone(&conns));
        let t = std::thread::spawn(move || {
            let mut accept = accept;
            let mut readers = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match accept() {
                    Ok((stream, conn)) => {
                        let id = store.connections.fetch_add(1, Ordering::Relaxed) + 1;
                        if let Some(c) = conn {
                            cs.lock().unwrap_or_else(|e| e.into_inner()).push(c);
                        }
                        let (s2, st2) = (Arc::clone(&s), Arc::clone(&store));
                        readers.push(std::thread::spawn(move || read_stream(stream, id, &s2, &st2)));
                    }
                    Err(_) => std::thread::sleep(POLL / 4),
                }
            }
            drop(accept);
            for r in readers {
                let _ = r.join();
            }
        });
        self.install(stop, conns, t);
    }
}

impl Drop for FakeSyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

fn retry_bind<T>(mut f: impl FnMut() -> std::io::Result<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match f() {
            Ok(t) => return t,
            Err(e) if Instant::now() >= deadline => panic!("cannot bind again: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Reads frames from a stream connection until EOF, an error or stop.
fn read_stream(mut stream: impl Read, id: usize, stop: &AtomicBool, store: &Store) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Take every complete frame from the buffer.
        while let Some((raw, kind, used)) = next_frame(&buf) {
            buf.drain(..used);
            if let Some(raw) = raw {
                store.push(raw, kind, id);
            }
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => break,
        }
    }
    if !buf.is_empty() {
        store.push(buf, FrameKind::Unterminated, id);
    }
}

/// The next complete frame at the start of `buf`: (frame or `None` for an empty line, kind,
/// bytes consumed); `None` if incomplete.
fn next_frame(buf: &[u8]) -> Option<(Option<Vec<u8>>, FrameKind, usize)> {
    let first = *buf.first()?;
    if first.is_ascii_digit() && first != b'0' {
        let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == buf.len() {
            return None;
        }
        if buf[digits] == b' ' && digits <= 9 {
            let len: usize = std::str::from_utf8(&buf[..digits]).ok()?.parse().ok()?;
            let start = digits + 1;
            if buf.len() < start + len {
                return None;
            }
            return Some((Some(buf[start..start + len].to_vec()), FrameKind::OctetCounted, start + len));
        }
    }
    let end = buf.iter().position(|&b| b == b'\n' || b == 0)?;
    let kind = if buf[end] == 0 { FrameKind::Nul } else { FrameKind::LineFeed };
    let mut raw = &buf[..end];
    if kind == FrameKind::LineFeed {
        raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    }
    let raw = (!raw.is_empty()).then(|| raw.to_vec());
    Some((raw, kind, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_rfc_5424_example() {
        let m = parse(b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed")
            .unwrap();
        assert_eq!((m.facility, m.severity, m.pri), (4, 2, 34));
        assert_eq!(m.hostname.as_deref(), Some("mymachine.example.com"));
        assert_eq!(m.app_name.as_deref(), Some("su"));
        assert_eq!(m.procid, None);
        assert_eq!(m.msgid.as_deref(), Some("ID47"));
        assert!(m.bom);
        assert_eq!(m.message, "'su root' failed");
    }

    #[test]
    fn parses_sd_with_escapes() {
        let m = parse(br#"<165>1 2003-10-11T22:14:15.003Z h a - - [ex@1 a="x\"y" b="\\\]"][two@1 c=""]"#).unwrap();
        assert_eq!(m.structured_data.len(), 2);
        assert_eq!(m.structured_data[0].param("a"), Some("x\"y"));
        assert_eq!(m.structured_data[0].param("b"), Some("\\]"));
        assert_eq!(m.sd("two@1").unwrap().param("c"), Some(""));
        assert_eq!(m.message, "");
    }

    #[test]
    fn rejects_malformed() {
        assert!(parse(br#"<165>1 2003-10-11T22:14:15.003Z h a - - [ex@1 a="x]y"]"#).is_err());
        assert!(parse(br#"<165>1 2003-10-11T22:14:15.003Z h a - - [ex@1 a b="1"]"#).is_err());
        assert!(parse(b"<192>1 2003-10-11T22:14:15Z h a - - -").is_err());
        assert!(parse(b"<13>Oct 05 22:14:15 host app[1]: hi").is_err());
        assert!(parse(b"<13>1 2003-10-11T22:14:15.0000001Z h a - - -").is_err());
    }

    #[test]
    fn parses_3164() {
        let m = parse(b"<13>Oct  5 22:14:15 host app[42]: hello: world").unwrap();
        assert_eq!(m.protocol, Protocol::Rfc3164);
        assert_eq!(m.timestamp.as_deref(), Some("Oct  5 22:14:15"));
        assert_eq!(m.app_name.as_deref(), Some("app"));
        assert_eq!(m.procid.as_deref(), Some("42"));
        assert_eq!(m.message, "hello: world");
        let m = parse(b"<13>Oct 15 22:14:15 app[42]: local").unwrap();
        assert_eq!((m.hostname, m.app_name.as_deref(), m.message.as_str()), (None, Some("app"), "local"));
    }

    #[test]
    fn frames_streams() {
        let (raw, kind, used) = next_frame(b"5 hello6 world!").unwrap();
        assert_eq!((raw.unwrap(), kind, used), (b"hello".to_vec(), FrameKind::OctetCounted, 7));
        let (raw, kind, _) = next_frame(b"<13>x\r\nrest").unwrap();
        assert_eq!((raw.unwrap(), kind), (b"<13>x".to_vec(), FrameKind::LineFeed));
        assert!(next_frame(b"12 short").is_none());
    }
}
