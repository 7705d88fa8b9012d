//! The delivery side: connections, framing, reconnection.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use watchbell_core::{Batch, Outcome, Sink};

use crate::format::FrameFormat;
use crate::Framing;

/// Where the frames go.
#[derive(Clone, Debug)]
pub(crate) enum Dest {
    /// Unix socket paths, tried in order.
    Unix(Vec<PathBuf>),
    /// A UDP `host:port`.
    Udp(String),
    /// A TCP `host:port`.
    Tcp(String),
}

/// An open connection.
enum Conn {
    /// A datagram transport (unix datagram or UDP), through the `syslog` crate's backend.
    Datagram(syslog::LoggerBackend),
    /// A unix stream socket (when the path refuses datagrams).
    UnixStream(UnixStream),
    /// A TCP connection.
    Tcp(TcpStream),
}

pub(crate) struct SyslogSink {
    pub dest: Dest,
    pub format: FrameFormat,
    pub framing: Framing,
    pub timeout: Duration,
    conn: Option<Conn>,
    buf: Vec<u8>,
}

/// Frames `frame` for a stream transport (RFC 6587) into `buf`, replacing its content.
pub(crate) fn stream_frame(framing: Framing, frame: &str, buf: &mut Vec<u8>) {
    buf.clear();
    match framing {
        Framing::OctetCounting => {
            let _ = write!(buf, "{} ", frame.len());
            buf.extend_from_slice(frame.as_bytes());
        }
        Framing::LineFeed => {
            buf.extend_from_slice(frame.as_bytes());
            buf.push(b'\n');
        }
    }
}

fn resolve(addr: &str) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(ErrorKind::NotFound, format!("{addr} resolves to no address")))
}

fn syslog_err(e: syslog::Error) -> io::Error {
    match e {
        syslog::Error::Io(e) | syslog::Error::Write(e) => e,
        syslog::Error::Initialization(e) => match e.downcast::<syslog::Error>() {
            Ok(inner) => syslog_err(*inner),
            Err(e) => match e.downcast::<io::Error>() {
                Ok(io) => *io,
                Err(e) => io::Error::other(e.to_string()),
            },
        },
    }
}

/// Whether a stream the peer never writes to is still open: a read without blocking sees end
/// of file (or an error) once the peer closed it.
fn stream_alive(mut s: impl Read, set_nb: impl Fn(bool) -> io::Result<()>) -> bool {
    if set_nb(true).is_err() {
        return false;
    }
    let mut b = [0u8; 64];
    let alive = match s.read(&mut b) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == ErrorKind::WouldBlock,
    };
    set_nb(false).is_ok() && alive
}

impl SyslogSink {
    pub fn new(dest: Dest, format: FrameFormat, framing: Framing, timeout: Duration) -> Self {
        SyslogSink { dest, format, framing, timeout, conn: None, buf: Vec::new() }
    }

    fn connect(&self) -> io::Result<Conn> {
        match &self.dest {
            Dest::Unix(paths) => {
                let mut last = io::Error::new(ErrorKind::NotFound, "no unix socket path");
                for p in paths {
                    // The `syslog` crate connects a datagram socket, and falls back to a stream
                    // when the path is a stream socket (EPROTOTYPE).
                    match syslog::unix_custom((), p) {
                        Ok(logger) => {
                            return Ok(match logger.backend {
                                syslog::LoggerBackend::Unix(d) => {
                                    d.set_write_timeout(Some(self.timeout))?;
                                    Conn::Datagram(syslog::LoggerBackend::Unix(d))
                                }
                                syslog::LoggerBackend::UnixStream(w) => {
                                    let s = w.into_inner().map_err(|e| e.into_error())?;
                                    s.set_write_timeout(Some(self.timeout))?;
                                    Conn::UnixStream(s)
                                }
                                other => Conn::Datagram(other),
                            });
                        }
                        Err(e) => last = syslog_err(e),
                    }
                }
                Err(io::Error::new(last.kind(), format!("unix socket: {last}")))
            }
            Dest::Udp(addr) => {
                let server = resolve(addr)?;
                let local = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                let logger = syslog::udp((), local, server).map_err(syslog_err)?;
                Ok(Conn::Datagram(logger.backend))
            }
            Dest::Tcp(addr) => {
                let server = resolve(addr)?;
                let s = TcpStream::connect_timeout(&server, self.timeout)?;
                s.set_write_timeout(Some(self.timeout))?;
                let _ = s.set_nodelay(true);
                Ok(Conn::Tcp(s))
            }
        }
    }

    /// Frames `frame` for a stream transport into `self.buf`.
    fn stream_bytes(&mut self, frame: &str) {
        stream_frame(self.framing, frame, &mut self.buf);
    }

    /// Sends one frame, connecting (or reconnecting) first when needed.
    fn send(&mut self, frame: &str) -> io::Result<()> {
        // A stream whose peer went away still accepts the first write (the kernel buffers it
        // and the reset comes later): check before writing, so nothing is written into a dead
        // connection.
        let alive = match &self.conn {
            None => false,
            Some(Conn::Datagram(_)) => true,
            Some(Conn::Tcp(s)) => stream_alive(s, |nb| s.set_nonblocking(nb)),
            Some(Conn::UnixStream(s)) => stream_alive(s, |nb| s.set_nonblocking(nb)),
        };
        if !alive {
            self.conn = None;
            self.conn = Some(self.connect()?);
        }
        let is_stream = !matches!(self.conn, Some(Conn::Datagram(_)));
        if is_stream {
            self.stream_bytes(frame);
        }
        let buf = std::mem::take(&mut self.buf);
        let result = match self.conn.as_mut().expect("connected") {
            Conn::Datagram(b) => b.write(frame.as_bytes()).and_then(|n| {
                if n == frame.len() {
                    Ok(())
                } else {
                    Err(io::Error::new(ErrorKind::WriteZero, "datagram sent in part"))
                }
            }),
            Conn::Tcp(s) => s.write_all(&buf),
            Conn::UnixStream(s) => s.write_all(&buf),
        };
        self.buf = buf;
        result
    }
}

fn what(dest: &Dest) -> &'static str {
    match dest {
        Dest::Unix(_) => "unix socket",
        Dest::Udp(_) => "UDP",
        Dest::Tcp(_) => "TCP",
    }
}

impl Sink for SyslogSink {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        for (i, record) in batch.records.iter().enumerate() {
            let frame = self.format.frame(record);
            if let Err(e) = self.send(&frame) {
                // Reconnect on the next attempt; the Delivery retries with backoff.
                self.conn = None;
                let rest = Outcome::retry(format!("syslog over {}: {e}", what(&self.dest)));
                return if i == 0 { rest } else { Outcome::Partial { delivered: i, rest: Box::new(rest) } };
            }
        }
        Outcome::Delivered
    }
}
