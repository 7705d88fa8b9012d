//! HTTPS and proxies for the loopback fakes: a certificate authority generated per test, a TLS
//! front that puts any fake (a [`FakeHttp`](crate::http::FakeHttp), `FakeSlack`,
//! `FakeTelegram`, a collector) behind HTTPS, optionally requiring a client certificate, and a
//! forward proxy ([`FakeProxy`]) that records what went through it.
//!
//! [`TlsFront::start`] listens on `127.0.0.1`, completes the TLS handshake with a server
//! certificate issued by its [`TestCa`] (for `localhost` and `127.0.0.1`), and relays the
//! decrypted bytes to the fake behind it, which records and answers as usual. Every handshake
//! is recorded as a [`Handshake`]: failed ones (the client did not trust the certificate, or
//! sent no client certificate where one is required) never reach the fake.
//!
//! ```
//! use watchbell_test::http::FakeHttp;
//! use watchbell_test::tls::{TestCa, TlsFront};
//!
//! let fake = FakeHttp::start();
//! let ca = TestCa::new("test CA");
//! let front = TlsFront::start(fake.addr(), &ca);
//! // The fake's URLs, reached over HTTPS:
//! assert_eq!(front.rewrite(&fake.url_for("/push")), format!("https://127.0.0.1:{}/push", front.addr().port()));
//! assert!(ca.pem().starts_with("-----BEGIN CERTIFICATE-----"));
//! ```
//!
//! [`FakeProxy::start`] answers `CONNECT host:port` with `200` and splices the tunnel (HTTPS
//! destinations), and forwards absolute-form requests (`POST http://host/path`) for plain HTTP
//! ones. [`FakeProxy::require_auth`] makes it answer `407` unless the request carries the
//! expected `Proxy-Authorization: Basic` credentials.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// How long a handshake or a proxy request head may take before the connection is dropped.
const HANDSHAKE_WAIT: Duration = Duration::from_secs(5);

/// A certificate authority made for one test: it issues server and client certificates.
pub struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
    der: CertificateDer<'static>,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A certificate issued by a [`TestCa`], with its private key.
#[derive(Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new CA whose certificate's common name is `name`.
    ///
    /// # Panics
    /// If the key or certificate cannot be generated (the test cannot run).
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("a CA key");
        let cert = params.self_signed(&key).expect("a CA certificate");
        TestCa { pem: cert.pem(), der: cert.der().clone(), params, key }
    }

    /// The CA certificate, PEM: what a client must trust.
    pub fn pem(&self) -> String {
        self.pem.clone()
    }

    fn issue(&self, names: &[&str], cn: &str, usage: ExtendedKeyUsagePurpose) -> Issued {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("leaf parameters");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("a leaf key");
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("a leaf certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server_cert(&self) -> Issued {
        self.issue(&["localhost", "127.0.0.1"], "localhost", ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate (mTLS) with common name `cn`.
    pub fn client_cert(&self, cn: &str) -> Issued {
        self.issue(&[], cn, ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// One TLS handshake seen by a [`TlsFront`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// `None` when it completed; otherwise why it failed (rustls's words, e.g. `received fatal
    /// alert: UnknownCA` or `peer sent no certificates`).
    pub error: Option<String>,
    /// Whether the client presented a certificate (accepted, when `error` is `None`).
    pub client_cert: bool,
}

#[derive(Default)]
struct FrontState {
    handshakes: Vec<Handshake>,
    open: Vec<TcpStream>,
    workers: Vec<JoinHandle<()>>,
    stopped: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A TLS-terminating front for a loopback fake (see the [module docs](self)). Dropping it
/// stops it and closes its connections.
pub struct TlsFront {
    addr: SocketAddr,
    backend: SocketAddr,
    state: Arc<Mutex<FrontState>>,
    acceptor: Option<JoinHandle<()>>,
}

impl fmt::Debug for TlsFront {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsFront").field("addr", &self.addr).field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl TlsFront {
    /// HTTPS in front of `backend`, on a server certificate issued by `ca`; no client
    /// certificate asked for.
    pub fn start(backend: SocketAddr, ca: &TestCa) -> TlsFront {
        Self::with_config(backend, server_config(ca, None))
    }

    /// Like [`start`](Self::start), and the handshake fails unless the client presents a
    /// certificate issued by `client_ca`.
    pub fn start_mtls(backend: SocketAddr, ca: &TestCa, client_ca: &TestCa) -> TlsFront {
        Self::with_config(backend, server_config(ca, Some(client_ca)))
    }

    fn with_config(backend: SocketAddr, config: Arc<rustls::ServerConfig>) -> TlsFront {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("TlsFront: bind 127.0.0.1");
        let addr = listener.local_addr().expect("TlsFront: local address");
        let state = Arc::new(Mutex::new(FrontState::default()));
        let for_acceptor = Arc::clone(&state);
        let acceptor = thread::Builder::new()
            .name("tlsfront-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    let mut st = lock(&for_acceptor);
                    if st.stopped {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    if let Ok(clone) = stream.try_clone() {
                        st.open.push(clone);
                    }
                    let (config, shared) = (Arc::clone(&config), Arc::clone(&for_acceptor));
                    st.workers.retain(|w| !w.is_finished());
                    if let Ok(w) = thread::Builder::new()
                        .name("tlsfront-conn".into())
                        .spawn(move || front_conn(stream, backend, config, &shared))
                    {
                        st.workers.push(w);
                    }
                }
            })
            .expect("TlsFront: spawn the accept thread");
        TlsFront { addr, backend, state, acceptor: Some(acceptor) }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` of this front.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// `url`, a URL of the fake behind (`http://127.0.0.1:BACKEND/…`), made to reach the fake
    /// through this front (`https://127.0.0.1:PORT/…`). Other URLs are returned unchanged.
    pub fn rewrite(&self, url: &str) -> String {
        url.replace(&format!("http://{}", self.backend), &self.url())
    }

    /// The handshakes so far, in order of completion.
    pub fn handshakes(&self) -> Vec<Handshake> {
        lock(&self.state).handshakes.clone()
    }

    /// Waits up to `timeout` until `n` handshakes are recorded; returns them.
    pub fn wait_for_handshakes(&self, n: usize, timeout: Duration) -> Vec<Handshake> {
        let deadline = watchbell_core::time::deadline(timeout);
        loop {
            let seen = self.handshakes();
            if seen.len() >= n || std::time::Instant::now() >= deadline {
                return seen;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let workers = {
            let mut st = lock(&self.state);
            st.stopped = true;
            for s in st.open.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut st.workers)
        };
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for w in workers {
            let _ = w.join();
        }
    }
}

fn server_config(ca: &TestCa, client_ca: Option<&TestCa>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let issued = ca.server_cert();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(issued.key_der.clone()));
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(client_ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(client_ca.der.clone()).expect("the client CA certificate");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("a client certificate verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(vec![issued.der, ca.der.clone()], key).expect("the server certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Handshakes on `tcp`, then relays between the TLS client and `backend`.
fn front_conn(mut tcp: TcpStream, backend: SocketAddr, config: Arc<rustls::ServerConfig>, state: &Mutex<FrontState>) {
    let Ok(mut conn) = rustls::ServerConnection::new(config) else { return };
    let _ = tcp.set_read_timeout(Some(HANDSHAKE_WAIT));
    let mut error = None;
    while conn.is_handshaking() {
        match conn.complete_io(&mut tcp) {
            Ok((0, 0)) => {
                error = Some("the client closed the connection during the handshake".to_owned());
                break;
            }
            Ok(_) => {}
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    let client_cert = conn.peer_certificates().is_some_and(|c| !c.is_empty());
    let failed = error.is_some();
    lock(state).handshakes.push(Handshake { error, client_cert });
    if failed {
        let _ = tcp.shutdown(Shutdown::Both);
        return;
    }
    let _ = tcp.set_read_timeout(None);
    let Ok(back) = TcpStream::connect(backend) else { return };
    let _ = back.set_nodelay(true);
    let (Ok(back_reader), Ok(tcp_writer)) = (back.try_clone(), tcp.try_clone()) else { return };
    if let Ok(b) = back.try_clone() {
        lock(state).open.push(b);
    }
    // Application data that came with the client's last handshake flight (a TLS 1.3 client
    // sends its request right after its Finished) is already decrypted: pass it on now.
    let early = drain_plaintext(&mut conn);
    let mut back = back;
    if !early.is_empty() && back.write_all(&early).is_err() {
        return;
    }
    let conn = Arc::new(Mutex::new(conn));
    // Backend → client: encrypted under the connection's lock.
    let for_writer = Arc::clone(&conn);
    let writer = thread::spawn(move || {
        let (mut back_reader, mut tcp_writer) = (back_reader, tcp_writer);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = back_reader.read(&mut buf).unwrap_or(0);
            let mut c = lock(&for_writer);
            if n == 0 {
                c.send_close_notify();
            } else if c.writer().write_all(&buf[..n]).is_err() {
                break;
            }
            let mut ok = true;
            while c.wants_write() {
                if c.write_tls(&mut tcp_writer).is_err() {
                    ok = false;
                    break;
                }
            }
            if n == 0 || !ok {
                let _ = tcp_writer.shutdown(Shutdown::Write);
                break;
            }
        }
    });
    // Client → backend: decrypted under the lock, written to the backend outside it.
    let mut buf = vec![0u8; 16 * 1024];
    'relay: loop {
        let n = match tcp.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => 0,
        };
        if n == 0 {
            break;
        }
        let mut plain = Vec::new();
        {
            let mut c = lock(&conn);
            let mut input: &[u8] = &buf[..n];
            while !input.is_empty() {
                if c.read_tls(&mut input).is_err() {
                    break 'relay;
                }
                let processed = c.process_new_packets();
                plain.extend(drain_plaintext(&mut c));
                while c.wants_write() {
                    if c.write_tls(&mut tcp).is_err() {
                        break;
                    }
                }
                if processed.is_err() {
                    break 'relay;
                }
            }
        }
        if !plain.is_empty() && back.write_all(&plain).is_err() {
            break;
        }
    }
    let _ = back.shutdown(Shutdown::Write);
    let _ = writer.join();
    let _ = tcp.shutdown(Shutdown::Both);
    let _ = back.shutdown(Shutdown::Both);
}

/// The decrypted bytes waiting in `conn`.
fn drain_plaintext(conn: &mut rustls::ServerConnection) -> Vec<u8> {
    let mut plain = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(k @ 1..) = conn.reader().read(&mut chunk) {
        plain.extend_from_slice(&chunk[..k]);
    }
    plain
}

/// One request the [`FakeProxy`] received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyRequest {
    /// `CONNECT` for a tunnel, else the forwarded request's method.
    pub method: String,
    /// The `host:port` asked for (`CONNECT`) or the absolute URL (forwarded requests).
    pub target: String,
    /// The `Proxy-Authorization` header, if any.
    pub authorization: Option<String>,
    /// The status the proxy answered itself (`200` for an opened tunnel, `407`, `502`), or
    /// `None` for a forwarded request (the destination answered).
    pub status: Option<u16>,
}

#[derive(Default)]
struct ProxyState {
    requests: Vec<ProxyRequest>,
    /// The expected `Proxy-Authorization` value.
    auth: Option<String>,
    open: Vec<TcpStream>,
    stopped: bool,
}

/// A forward HTTP proxy on loopback that records every request (see the
/// [module docs](self)). Dropping it stops it and closes its tunnels.
pub struct FakeProxy {
    addr: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    acceptor: Option<JoinHandle<()>>,
}

impl fmt::Debug for FakeProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeProxy").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl FakeProxy {
    /// A proxy on `127.0.0.1`, on a free port, accepting every request.
    pub fn start() -> FakeProxy {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("FakeProxy: bind 127.0.0.1");
        let addr = listener.local_addr().expect("FakeProxy: local address");
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let for_acceptor = Arc::clone(&state);
        let acceptor = thread::Builder::new()
            .name("fakeproxy-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    let mut st = lock(&for_acceptor);
                    if st.stopped {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    if let Ok(clone) = stream.try_clone() {
                        st.open.push(clone);
                    }
                    let shared = Arc::clone(&for_acceptor);
                    let _ =
                        thread::Builder::new().name("fakeproxy-conn".into()).spawn(move || proxy_conn(stream, &shared));
                }
            })
            .expect("FakeProxy: spawn the accept thread");
        FakeProxy { addr, state, acceptor: Some(acceptor) }
    }

    /// Requires `Proxy-Authorization: Basic base64(user:password)`; other requests get `407`.
    pub fn require_auth(&self, user: &str, password: &str) {
        let encoded = crate::base64::encode(format!("{user}:{password}").as_bytes());
        lock(&self.state).auth = Some(format!("Basic {encoded}"));
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<ProxyRequest> {
        lock(&self.state).requests.clone()
    }
}

impl Drop for FakeProxy {
    fn drop(&mut self) {
        {
            let mut st = lock(&self.state);
            st.stopped = true;
            for s in st.open.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn proxy_conn(mut client: TcpStream, state: &Mutex<ProxyState>) {
    let _ = client.set_read_timeout(Some(HANDSHAKE_WAIT));
    // The request head (and whatever followed it in the same reads).
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return;
        }
        let mut chunk = [0u8; 4096];
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, target) = (first.next().unwrap_or("").to_owned(), first.next().unwrap_or("").to_owned());
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, v)| v.trim().to_owned());
    let expected = lock(state).auth.clone();
    let record = |status: Option<u16>| {
        lock(state).requests.push(ProxyRequest {
            method: method.clone(),
            target: target.clone(),
            authorization: authorization.clone(),
            status,
        });
    };
    if expected.is_some() && authorization != expected {
        record(Some(407));
        let _ = client.write_all(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"fake\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    }
    let connect = method.eq_ignore_ascii_case("CONNECT");
    let authority = if connect {
        target.clone()
    } else {
        let rest = target.strip_prefix("http://").unwrap_or(&target);
        rest.split(['/', '?']).next().unwrap_or("").to_owned()
    };
    let Ok(mut upstream) = TcpStream::connect(&authority) else {
        record(Some(502));
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    if let Ok(clone) = upstream.try_clone() {
        lock(state).open.push(clone);
    }
    if connect {
        record(Some(200));
        if client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").is_err()
            || upstream.write_all(&buf[head_end..]).is_err()
        {
            return;
        }
    } else {
        record(None);
        if upstream.write_all(&buf).is_err() {
            return;
        }
    }
    let _ = client.set_read_timeout(None);
    splice(client, upstream);
}

/// Copies both ways until both sides are done.
fn splice(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else { return };
    let one = thread::spawn(move || copy_then_close(a, b2));
    copy_then_close(b, a2);
    let _ = one.join();
}

fn copy_then_close(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}
