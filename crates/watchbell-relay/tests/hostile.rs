//! The relay is a server: hostile clients against its HTTP input and its unix socket, over
//! real sockets. Slow and endless requests are cut after their timeouts without holding up
//! anyone else, oversized and bombed bodies cost at most the size limit, bad lines are counted
//! while the good lines of the same body are delivered, wrong tokens are refused before a byte
//! of the body is read and never written anywhere, and idle connections cannot keep `/health`
//! or a publisher out.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use watchbell_core::{Handler, Record};
use watchbell_relay::{Relay, RelayBuilder, RelayHandle};

/// The tests measure the process's memory and open many sockets: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps what the relay hands over.
#[derive(Default)]
struct Sink {
    got: Mutex<Vec<Record>>,
}

impl Handler for Sink {
    fn handle(&self, r: Record) {
        self.got.lock().unwrap().push(r);
    }
}

impl Sink {
    fn messages(&self) -> Vec<String> {
        self.got.lock().unwrap().iter().map(|r| r.message.to_string()).collect()
    }

    fn wait_for(&self, n: usize, timeout: Duration) -> Vec<String> {
        let end = watchbell_core::time::deadline(timeout);
        loop {
            let m = self.messages();
            if m.len() >= n || Instant::now() >= end {
                return m;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn start(b: RelayBuilder) -> (RelayHandle, Arc<Sink>, SocketAddr) {
    let sink = Arc::new(Sink::default());
    let relay = b.http("127.0.0.1:0".parse().unwrap()).spawn(sink.clone()).unwrap();
    let addr = relay.http_addr().unwrap();
    (relay, sink, addr)
}

fn line(message: &str) -> String {
    format!("{{\"level\":\"ERROR\",\"target\":\"svc\",\"message\":\"{message}\",\"app\":\"shop\"}}\n")
}

/// One HTTP/1.1 exchange on a fresh connection: the status and the body (bounded waits).
fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_response(&mut s).expect("an answer within 10 s")
}

fn post(addr: SocketAddr, body: &[u8]) -> (u16, String) {
    let head = format!(
        "POST /v1/records HTTP/1.1\r\nHost: relay\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    exchange(addr, &head, body)
}

/// Reads one response (Content-Length bodies); `None` on a timeout or a closed connection.
fn read_response(s: &mut TcpStream) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((status, String::from_utf8_lossy(&body).to_string()))
}

/// Whether the peer closed the connection (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let end = watchbell_core::time::deadline(within);
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {} // an answer before the close
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

fn health(addr: SocketAddr) -> serde_json::Value {
    let (status, body) = exchange(addr, "GET /health HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n", b"");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// This process's resident memory in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_slowloris_is_cut_after_the_header_timeout_and_holds_up_no_one() {
    let _serial = serial();
    let (relay, sink, addr) = start(Relay::builder().header_timeout(Duration::from_secs(1)));
    let started = Instant::now();
    let slow = std::thread::spawn(move || {
        // A request head, one byte every 100 ms, never finished.
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let head = b"POST /v1/records HTTP/1.1\r\nHost: relay\r\nX-Padding: ".iter().chain(std::iter::repeat(&b'a'));
        for &b in head.take(100) {
            if s.write_all(&[b]).is_err() {
                return Some(started.elapsed());
            }
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                Ok(0) => return Some(started.elapsed()),
                Err(e) if !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return Some(started.elapsed())
                }
                _ => {}
            }
        }
        None
    });
    // Meanwhile, a publisher is served at once.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(post(addr, line("served meanwhile").as_bytes()).0, 200);
    assert_eq!(sink.wait_for(1, Duration::from_secs(5)), ["served meanwhile"]);
    let cut_after = slow.join().unwrap().expect("the slowloris was cut while it kept sending");
    assert!(cut_after < Duration::from_secs(4), "cut after {cut_after:?}, for a header timeout of 1 s");
    assert!(health(addr)["connections"]["cut"].as_u64().unwrap() >= 1);
    assert!(relay.shutdown(Duration::from_secs(5)).is_complete());
}

#[test]
fn a_body_shorter_than_its_content_length_is_cut_after_the_read_timeout_and_nothing_of_it_is_delivered() {
    let _serial = serial();
    let (relay, sink, addr) = start(Relay::builder().read_timeout(Duration::from_secs(1)));
    let mut s = TcpStream::connect(addr).unwrap();
    let lines = format!("{}{}{}", line("one"), line("two"), line("three"));
    write!(s, "POST /v1/records HTTP/1.1\r\nHost: relay\r\nContent-Length: 100000\r\n\r\n{lines}").unwrap();
    // ...and the rest never comes.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let answer = read_response(&mut s);
    assert_eq!(answer.as_ref().map(|a| a.0), Some(408), "{answer:?}");
    assert!(closed_within(&mut s, Duration::from_secs(2)), "the connection is closed after the 408");
    // Three whole lines were in the part that arrived: none of them is taken.
    std::thread::sleep(Duration::from_millis(200));
    assert!(sink.messages().is_empty(), "{:?}", sink.messages());
    let h = relay.input_stats("http-ndjson");
    assert_eq!((h.timed_out, h.accepted), (1, 0));
    // A chunked body that stops mid-chunk is cut the same way.
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "POST /v1/records HTTP/1.1\r\nHost: relay\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{lines}", 1000)
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(read_response(&mut s).map(|a| a.0), Some(408));
    assert_eq!(post(addr, line("after").as_bytes()).0, 200);
    assert_eq!(sink.wait_for(1, Duration::from_secs(5)), ["after"]);
    assert!(relay.shutdown(Duration::from_secs(5)).is_complete());
}

#[test]
fn a_body_over_the_limit_is_refused_with_413_counted_and_not_held() {
    let _serial = serial();
    let (relay, sink, addr) = start(Relay::builder().max_body(1 << 20));
    // Declared too large: refused before the body is read.
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "POST /v1/records HTTP/1.1\r\nHost: relay\r\nContent-Length: {}\r\n\r\n", 100u64 << 20).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(read_response(&mut s).map(|a| a.0), Some(413));
    // Chunked, so the size is only known by reading: 256 MiB of good lines offered.
    let before = rss_kib();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "POST /v1/records HTTP/1.1\r\nHost: relay\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let chunk: String = line("x").repeat(64 * 1024 / 80);
    let mut sent = 0usize;
    while sent < 256 << 20 {
        if write!(s, "{:x}\r\n{chunk}\r\n", chunk.len()).is_err() {
            break;
        }
        sent += chunk.len();
    }
    assert!(sent < 64 << 20, "the relay stopped reading soon after the limit; {sent} bytes went");
    let grew = rss_kib().saturating_sub(before);
    assert!(grew < 32 * 1024, "memory grew by {grew} KiB for a body refused at 1 MiB");
    let h = relay.input_stats("http-ndjson");
    assert_eq!((h.too_large, h.accepted), (2, 0), "{h:?}");
    assert!(sink.messages().is_empty());
    assert_eq!(health(addr)["inputs"]["http-ndjson"]["too_large"], 2);
    assert!(relay.shutdown(Duration::from_secs(5)).is_complete());
}

#[test]
fn bad_lines_are_counted_and_the_good_lines_of_the_same_body_are_delivered() {
    let _serial = serial();
    let (relay, sink, addr) = start(Relay::builder());
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let mut body = Vec::new();
    body.extend_from_slice(line("first good").as_bytes());
    body.extend_from_slice(b"garbage, not JSON\n");
    body.extend_from_slice(b"{\"level\":\"ERROR\",\"message\":\"bad \xff\xfe utf-8\"}\n");
    body.extend_from_slice(format!("{{\"level\":\"ERROR\",\"fields\":{{\"deep\":{}}}}}\n", deep(100_000)).as_bytes());
    // An unknown key is skipped however deep it nests (serde_json skips without recursing).
    body.extend_from_slice(
        format!("{{\"level\":\"ERROR\",\"message\":\"deep unknown key\",\"unknown\":{}}}\n", deep(100_000)).as_bytes(),
    );
    body.extend_from_slice(b"{\"level\":\"ERROR\",\"line\":\"forty-two\"}\n");
    body.extend_from_slice(b"{\"level\":5,\"message\":\"level of the wrong type\"}\n");
    body.extend_from_slice(b"{\"level\":\"ERROR\",\"fields\":[1,2]}\n");
    body.extend_from_slice(b"{\"level\":\"LOUD\"}\n");
    body.extend_from_slice(b"\n   \n");
    body.extend_from_slice(line("second good").as_bytes());
    let (status, answer) = post(addr, &body);
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["accepted"], 3, "{answer}");
    assert_eq!(answer["invalid"], 7, "{answer}");
    let lines: Vec<&str> = answer["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert!(lines[0].starts_with("record 2:") && lines[6].starts_with("record 9:"), "{lines:?}");
    assert!(lines.iter().all(|l| l.len() < 300), "errors never quote the body: {lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("forty-two") || l.contains("garbage") || l.contains("LOUD")),
        "errors never quote the body: {lines:?}"
    );
    assert_eq!(sink.wait_for(3, Duration::from_secs(5)), ["first good", "deep unknown key", "second good"]);
    let h = relay.input_stats("http-ndjson");
    assert_eq!((h.accepted, h.invalid), (3, 7));
    // Nothing good in it: 400, nothing taken.
    let (status, _) = post(addr, b"\xff\xff\xff\n{\"level\":\"LOUD\"}\n");
    assert_eq!(status, 400);
    assert_eq!(relay.input_stats("http-ndjson").invalid, 9);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(sink.messages().len(), 3);
    assert!(relay.shutdown(Duration::from_secs(5)).is_complete());
}

/// Every event any thread of this process emits, as text.
#[derive(Default, Clone)]
struct Everything(Arc<Mutex<String>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Everything {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Text<'a>(&'a mut String);
        impl tracing::field::Visit for Text<'_> {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                use std::fmt::Write as _;
                let _ = write!(self.0, " {}={v:?}", f.name());
            }
        }
        let mut out = self.0.lock().unwrap();
        out.push_str(event.metadata().target());
        event.record(&mut Text(&mut out));
        out.push('\n');
    }
}

#[test]
fn a_flood_of_wrong_tokens_is_refused_before_the_body_counted_and_the_tokens_are_never_written() {
    let _serial = serial();
    let everything = Everything::default();
    {
        use tracing_subscriber::prelude::*;
        let subscriber = tracing_subscriber::registry().with(everything.clone());
        tracing::subscriber::set_global_default(subscriber).expect("only this test sets one");
    }
    let (relay, sink, addr) = start(Relay::builder().token("right-token-Q7"));
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = line("from an intruder");
    for i in 0..500 {
        write!(
            s,
            "POST /v1/records HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer wrong-token-{i}-Z\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let (status, answer) = read_response(&mut s).expect("an answer");
        assert_eq!(status, 401);
        assert!(!answer.contains("token-"), "{answer}");
    }
    // A wrong token with a large body that never comes: answered at once, the body not awaited.
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "POST /v1/records HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer wrong-token-big-Z\r\nContent-Length: {}\r\n\r\n", 32 << 20)
        .unwrap();
    assert_eq!(read_response(&mut s).map(|a| a.0), Some(401));
    assert!(started.elapsed() < Duration::from_secs(3));
    let h = relay.input_stats("http-ndjson");
    assert_eq!((h.unauthorized, h.accepted), (501, 0));
    assert!(sink.messages().is_empty());
    let health = health(addr).to_string();
    let mut stats = Vec::new();
    Handler::stats(&relay, &mut stats);
    for text in [health, format!("{stats:?}"), format!("{relay:?}"), everything.0.lock().unwrap().clone()] {
        assert!(!text.contains("token-"), "a token was written: {text}");
    }
    assert!(relay.shutdown(Duration::from_secs(5)).is_complete());
}

#[test]
fn a_gzip_bomb_is_decoded_only_up_to_the_limit() {
    let _serial = serial();
    let bomb = watchbell_test::hostile::gzip_bomb();
    let (relay, sink, addr) = start(Relay::builder().max_body(4 << 20));
    let before = rss_kib();
    let head = format!(
        "POST /v1/records HTTP/1.1\r\nHost: relay\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bomb.len()
    );
    let (status, _) = exchange(addr, &head, &bomb);
    assert_eq!(status, 413);
    let grew = rss_kib().saturating_sub(before);
    assert!(grew < 64 * 1024, "memory grew by {grew} KiB decoding 1 GiB of zeros with a limit of 4 MiB");
    assert_eq!(relay.input_stats("http-ndjson").too_large, 1);
    // A gzip body within the limit is taken.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(line("zipped").as_bytes()).unwrap();
    let zipped = enc.finish().unwrap();
    let head = format!(
        "POST /v1/records HTTP/1.1\r\nHost: relay\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        zipped.len()
    );
    assert_eq!(exchange(addr, &head, &zipped).0, 200);
    assert_eq!(sink.wait_for(1, Duration::from_secs(5)), ["zipped"]);
    assert!(relay.shutdown(Duration::from_secs(5)).is_complete());
}

#[test]
fn many_idle_connections_meet_a_cap_and_health_and_publishers_still_get_in() {
    let _serial = serial();
    // A long header timeout: what makes room here is the cap, not the timeout.
    let (relay, sink, addr) = start(Relay::builder().max_connections(8).header_timeout(Duration::from_secs(60)));
    let mut idle: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let started = Instant::now();
    let h = health(addr);
    assert!(started.elapsed() < Duration::from_secs(5), "health answered after {:?}", started.elapsed());
    assert_eq!(h["connections"]["max"], 8);
    assert!(h["connections"]["open"].as_u64().unwrap() <= 8, "{h}");
    assert_eq!(post(addr, line("still in").as_bytes()).0, 200);
    assert_eq!(sink.wait_for(1, Duration::from_secs(5)), ["still in"]);
    // The idle ones were closed to make room, the oldest first.
    let mut closed = 0;
    for s in idle.iter_mut().take(190) {
        closed += usize::from(closed_within(s, Duration::from_millis(100)));
    }
    assert!(closed >= 180, "{closed} of the oldest 190 idle connections closed");
    assert!(health(addr)["connections"]["evicted"].as_u64().unwrap() >= 190);
    drop(idle);
    assert!(relay.shutdown(Duration::from_secs(5)).is_complete());
}

fn unix_relay(name: &str, b: RelayBuilder) -> (RelayHandle, Arc<Sink>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("watchbell-relay-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("relay.sock");
    let sink = Arc::new(Sink::default());
    let relay = b.unix(&path).spawn(sink.clone()).unwrap();
    (relay, sink, path)
}

#[test]
fn a_unix_peer_writing_a_1_gib_line_is_counted_once_and_others_go_on() {
    use std::os::unix::net::UnixStream;
    let _serial = serial();
    let (relay, sink, path) = unix_relay("huge", Relay::builder().max_body(1 << 20));
    let before = rss_kib();
    let huge = {
        let path = path.clone();
        std::thread::spawn(move || {
            let mut s = UnixStream::connect(&path).unwrap();
            s.write_all(b"{\"level\":\"ERROR\",\"message\":\"").unwrap();
            let block = vec![b'a'; 1 << 20];
            for _ in 0..1024 {
                s.write_all(&block).unwrap();
            }
            s.write_all(b"\"}\n").unwrap();
            s.write_all(line("after the huge line").as_bytes()).unwrap();
        })
    };
    // Another peer meanwhile.
    let mut other = UnixStream::connect(&path).unwrap();
    for i in 0..100 {
        other.write_all(line(&format!("meanwhile {i}")).as_bytes()).unwrap();
    }
    drop(other);
    let got = sink.wait_for(100, Duration::from_secs(10));
    assert!(got.iter().filter(|m| m.starts_with("meanwhile")).count() == 100, "{}", got.len());
    huge.join().unwrap();
    let got = sink.wait_for(101, Duration::from_secs(60));
    assert_eq!(got.last().map(String::as_str), Some("after the huge line"), "{}", got.len());
    let u = relay.input_stats("unix");
    assert_eq!((u.accepted, u.too_large, u.invalid), (101, 1, 0), "one huge line, counted once: {u:?}");
    let grew = rss_kib().saturating_sub(before);
    assert!(grew < 64 * 1024, "memory grew by {grew} KiB for a 1 GiB line with a limit of 1 MiB");
    assert!(relay.shutdown(Duration::from_secs(5)).is_complete());
}

#[test]
fn a_unix_peer_that_stalls_mid_line_holds_up_no_one_and_its_half_line_is_never_delivered() {
    use std::os::unix::net::UnixStream;
    let _serial = serial();
    let (relay, sink, path) = unix_relay("stall", Relay::builder());
    let mut staller = UnixStream::connect(&path).unwrap();
    staller.write_all(line("whole").as_bytes()).unwrap();
    staller.write_all(b"{\"level\":\"ERROR\",\"message\":\"half").unwrap();
    let mut idle = UnixStream::connect(&path).unwrap(); // connects and never writes
    let mut other = UnixStream::connect(&path).unwrap();
    other.write_all(line("other").as_bytes()).unwrap();
    let mut got = sink.wait_for(2, Duration::from_secs(5));
    got.sort();
    assert_eq!(got, ["other", "whole"]);
    let started = Instant::now();
    assert!(relay.shutdown(Duration::from_secs(3)).is_complete());
    assert!(started.elapsed() < Duration::from_secs(4));
    let mut got = sink.messages();
    got.sort();
    assert_eq!(got, ["other", "whole"], "the half line is not delivered");
    // The relay closed the stalled connections at shutdown.
    let mut buf = [0u8; 8];
    for s in [&mut staller, &mut idle] {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    }
}
