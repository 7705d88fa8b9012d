//! A ZMTP frame guard in front of every ZeroMQ socket.
//!
//! The `zeromq` crate reserves a frame's announced length before the bytes arrive: one peer
//! announcing a 1 TiB frame makes the allocation fail and the process abort. Every socket of
//! this crate therefore talks to the network through a small loopback proxy that reads the
//! peer's ZMTP stream (the 64-byte greeting, then frame headers) and hangs up on a peer whose
//! frame is larger than the limit, before the ZeroMQ implementation sees the header.
//!
//! - bound endpoint: watchbell listens on the user's address; the ZeroMQ socket is bound on
//!   `127.0.0.1:0` and gets one guarded connection per accepted peer;
//! - connected endpoint: the ZeroMQ socket connects to a loopback listener of the guard, which
//!   connects to the user's address for each connection (failing that, it hangs up, and ZeroMQ
//!   tries again).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const GREETING: usize = 64;

/// The number of peers connected to a bound endpoint now.
#[derive(Clone, Debug, Default)]
pub(crate) struct Peers(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Peers {
    /// Whether any peer is connected.
    pub(crate) fn any(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed) > 0
    }

    fn join(&self) -> PeerGone {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        PeerGone(self.clone())
    }
}

/// Counts a peer out when its connection ends.
struct PeerGone(Peers);

impl Drop for PeerGone {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Reads a ZMTP 3 stream and says when a frame is larger than `max` bytes.
#[derive(Debug)]
struct FrameCheck {
    max: u64,
    state: State,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Greeting(usize),
    Flags,
    Len { long: bool, have: usize, acc: u64 },
    Body(u64),
}

impl FrameCheck {
    fn new(max: usize) -> Self {
        FrameCheck { max: max as u64, state: State::Greeting(0) }
    }

    /// Feeds bytes; `false` when the peer announced a frame larger than the limit.
    fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            match self.state {
                State::Greeting(n) => {
                    let take = (GREETING - n).min(bytes.len());
                    bytes = &bytes[take..];
                    self.state = if n + take == GREETING { State::Flags } else { State::Greeting(n + take) };
                }
                State::Flags => {
                    let long = bytes[0] & 0x02 != 0;
                    bytes = &bytes[1..];
                    self.state = State::Len { long, have: 0, acc: 0 };
                }
                State::Len { long, mut have, mut acc } => {
                    let need = if long { 8 } else { 1 };
                    while have < need && !bytes.is_empty() {
                        acc = (acc << 8) | u64::from(bytes[0]);
                        bytes = &bytes[1..];
                        have += 1;
                    }
                    if have < need {
                        self.state = State::Len { long, have, acc };
                    } else if acc > self.max {
                        return false;
                    } else {
                        self.state = if acc == 0 { State::Flags } else { State::Body(acc) };
                    }
                }
                State::Body(left) => {
                    let take = left.min(bytes.len() as u64);
                    bytes = &bytes[take as usize..];
                    self.state = if take == left { State::Flags } else { State::Body(left - take) };
                }
            }
        }
        true
    }
}

/// Copies `from` (the outside peer) to `to` (the ZeroMQ socket), checking frames.
async fn guarded_copy<R, W>(mut from: R, mut to: W, max: usize) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut check = FrameCheck::new(max);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        if !check.feed(&buf[..n]) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "frame larger than the limit"));
        }
        to.write_all(&buf[..n]).await?;
    }
}

/// Joins an outside stream and an inside (ZeroMQ) stream until either side ends or the outside
/// breaks the frame limit.
async fn splice<O, I>(outside: O, inside: I, max: usize)
where
    O: AsyncRead + AsyncWrite + Unpin,
    I: AsyncRead + AsyncWrite + Unpin,
{
    let (or, mut ow) = tokio::io::split(outside);
    let (mut ir, iw) = tokio::io::split(inside);
    tokio::select! {
        _ = guarded_copy(or, iw, max) => {}
        _ = tokio::io::copy(&mut ir, &mut ow) => {}
    }
}

/// An address of the outside world: TCP `host:port` or a unix socket path.
#[derive(Debug, Clone)]
enum Addr {
    Tcp(String),
    #[cfg(unix)]
    Ipc(std::path::PathBuf),
}

fn parse(endpoint: &str) -> io::Result<Addr> {
    if let Some(a) = endpoint.strip_prefix("tcp://") {
        return Ok(Addr::Tcp(a.to_owned()));
    }
    #[cfg(unix)]
    if let Some(p) = endpoint.strip_prefix("ipc://") {
        return Ok(Addr::Ipc(p.into()));
    }
    Err(io::Error::new(io::ErrorKind::InvalidInput, format!("unsupported endpoint {endpoint}")))
}

/// The guard in front of a bound ZeroMQ socket: listens on `endpoint` and forwards each peer
/// to `inner` (the ZeroMQ socket's loopback address, `host:port`). Returns the endpoint as
/// bound (with the port a `:0` got). Runs until `stop` says so.
pub(crate) async fn front_bind(
    endpoint: &str,
    inner: String,
    max: usize,
    stop: watch::Receiver<bool>,
    peers: Peers,
) -> io::Result<String> {
    match parse(endpoint)? {
        Addr::Tcp(a) => {
            let listener = TcpListener::bind(&a).await?;
            let bound = format!("tcp://{}", listener.local_addr()?);
            tokio::spawn(accept_loop_tcp(listener, inner, max, stop, peers));
            Ok(bound)
        }
        #[cfg(unix)]
        Addr::Ipc(p) => {
            let _ = std::fs::remove_file(&p);
            let listener = tokio::net::UnixListener::bind(&p)?;
            let bound = format!("ipc://{}", p.display());
            tokio::spawn(async move {
                let mut stop = stop;
                loop {
                    let conn = tokio::select! {
                        c = listener.accept() => c,
                        _ = stop.changed() => break,
                    };
                    let Ok((outside, _)) = conn else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let inner = inner.clone();
                    let stop = stop.clone();
                    let peer = peers.join();
                    tokio::spawn(async move {
                        if let Ok(inside) = TcpStream::connect(&inner).await {
                            until_stop(splice(outside, inside, max), stop).await;
                        }
                        drop(peer);
                    });
                }
                let _ = std::fs::remove_file(&p);
            });
            Ok(bound)
        }
    }
}

async fn accept_loop_tcp(
    listener: TcpListener,
    inner: String,
    max: usize,
    mut stop: watch::Receiver<bool>,
    peers: Peers,
) {
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = stop.changed() => break,
        };
        let Ok((outside, _)) = conn else {
            // Out of descriptors and the like: do not spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = outside.set_nodelay(true);
        let inner = inner.clone();
        let stop = stop.clone();
        let peer = peers.join();
        tokio::spawn(async move {
            if let Ok(inside) = TcpStream::connect(&inner).await {
                let _ = inside.set_nodelay(true);
                until_stop(splice(outside, inside, max), stop).await;
            }
            drop(peer);
        });
    }
}

async fn until_stop(f: impl std::future::Future<Output = ()>, mut stop: watch::Receiver<bool>) {
    if *stop.borrow() {
        return;
    }
    tokio::select! {
        _ = f => {}
        _ = stop.changed() => {}
    }
}

/// The guard in front of a connecting ZeroMQ socket: a loopback listener whose address the
/// ZeroMQ socket connects to (returned as `tcp://127.0.0.1:port`); each connection is
/// forwarded to `endpoint`, or closed when that cannot be reached.
pub(crate) async fn front_connect(endpoint: &str, max: usize, stop: watch::Receiver<bool>) -> io::Result<String> {
    let target = parse(endpoint)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let local = format!("tcp://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let mut stop = stop;
        loop {
            let conn = tokio::select! {
                c = listener.accept() => c,
                _ = stop.changed() => break,
            };
            let Ok((inside, _)) = conn else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = inside.set_nodelay(true);
            let target = target.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                match target {
                    Addr::Tcp(a) => {
                        if let Ok(Ok(outside)) =
                            tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&a)).await
                        {
                            let _ = outside.set_nodelay(true);
                            until_stop(splice(outside, inside, max), stop).await;
                        }
                    }
                    #[cfg(unix)]
                    Addr::Ipc(p) => {
                        if let Ok(outside) = tokio::net::UnixStream::connect(&p).await {
                            until_stop(splice(outside, inside, max), stop).await;
                        }
                    }
                }
            });
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greeting() -> Vec<u8> {
        vec![0xff; GREETING]
    }

    #[test]
    fn frames_within_the_limit_pass_in_any_split() {
        let mut stream = greeting();
        stream.extend([0x00, 3, b'a', b'b', b'c']);
        stream.push(0x02);
        stream.extend(300u64.to_be_bytes());
        stream.extend(vec![b'x'; 300]);
        stream.extend([0x04, 0]);
        for split in 1..stream.len() {
            let mut c = FrameCheck::new(1000);
            assert!(c.feed(&stream[..split]) && c.feed(&stream[split..]), "split at {split}");
            assert!(matches!(c.state, State::Flags), "{:?}", c.state);
        }
        let mut c = FrameCheck::new(1000);
        for b in &stream {
            assert!(c.feed(std::slice::from_ref(b)));
        }
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_at_its_header() {
        let mut stream = greeting();
        stream.push(0x06);
        stream.extend((1u64 << 40).to_be_bytes());
        let mut c = FrameCheck::new(1 << 20);
        assert!(!c.feed(&stream));
        let mut c = FrameCheck::new(10);
        let mut s = greeting();
        s.extend([0x00, 11]);
        assert!(!c.feed(&s));
    }
}
