//! Tests of the loopback HTTP fake, with a minimal std-only client.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use watchbell_test::http::{FakeHttp, Reply};

const WAIT: Duration = Duration::from_secs(5);

/// One response as read by the test client.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection with bounded reads.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        Client { reader: BufReader::new(stream) }
    }

    fn stream(&mut self) -> &mut TcpStream {
        self.reader.get_mut()
    }

    fn send(&mut self, raw: &[u8]) {
        self.stream().write_all(raw).expect("write request");
    }

    /// Reads one response framed by Content-Length (or none, for a HEAD request or a 204).
    fn read_response(&mut self, head_only: bool) -> Resp {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("header line");
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header colon");
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut resp = Resp { status, headers, body: Vec::new() };
        if !head_only {
            let len: usize = resp.header("content-length").map_or(0, |v| v.parse().unwrap());
            resp.body = vec![0; len];
            self.reader.read_exact(&mut resp.body).expect("body");
        }
        resp
    }

    /// Whether the server closed the connection (reads end of stream).
    fn at_eof(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0))
    }
}

/// Sends one request on a new connection and reads the response.
fn roundtrip(addr: SocketAddr, raw: &[u8]) -> Resp {
    let mut client = Client::connect(addr);
    client.send(raw);
    client.read_response(false)
}

#[test]
fn get_and_post_with_content_length() {
    let fake = FakeHttp::start();
    assert!(fake.url().starts_with("http://127.0.0.1:") && !fake.url().ends_with('/'));
    assert_eq!(fake.url_for("/x"), format!("{}/x", fake.url()));

    let resp = roundtrip(fake.addr(), b"GET /status?verbose=1 HTTP/1.1\r\nHost: a\r\nX-Token: t1\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "ok");
    assert_eq!(resp.header("connection"), Some("keep-alive"));

    let resp = roundtrip(
        fake.addr(),
        b"POST /services/T/B/X HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"text\":1}\n",
    );
    assert_eq!(resp.status, 200);

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(fake.request_count(), 2);
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path.as_str(), reqs[0].query.as_str()),
        ("GET", "/status", "verbose=1")
    );
    assert_eq!(reqs[0].header("x-token"), Some("t1"));
    assert_eq!(reqs[0].headers[1], ("X-Token".to_owned(), "t1".to_owned()));
    assert!(reqs[0].body.is_empty());
    assert_eq!(
        (reqs[1].method.as_str(), reqs[1].path.as_str(), reqs[1].query.as_str()),
        ("POST", "/services/T/B/X", "")
    );
    assert_eq!(reqs[1].header("CONTENT-TYPE"), Some("application/json"));
    assert_eq!(reqs[1].body_text(), "{\"text\":1}\n");
    assert_eq!((reqs[0].connection, reqs[1].connection), (0, 1));
    assert!(reqs[0].received_at <= reqs[1].received_at);

    fake.clear();
    assert!(fake.requests().is_empty());
    assert_eq!(fake.connection_count(), 2);
}

#[test]
fn chunked_request_body() {
    let fake = FakeHttp::start();
    let resp = roundtrip(
        fake.addr(),
        b"POST /ingest HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(fake.requests()[0].body_text(), "hello, world");
}

#[test]
fn keep_alive_reuses_one_connection() {
    let fake = FakeHttp::start();
    let mut client = Client::connect(fake.addr());
    client.send(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\none");
    assert_eq!(client.read_response(false).status, 200);
    client.send(b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\ntwo");
    assert_eq!(client.read_response(false).status, 200);
    // Pipelined: both requests in one write, answered in order.
    fake.push(Reply::text(201, "third"));
    fake.push(Reply::text(202, "fourth"));
    client.send(b"GET /c HTTP/1.1\r\nHost: a\r\n\r\nGET /d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert_eq!(client.read_response(false).text(), "third");
    let last = client.read_response(false);
    assert_eq!((last.status, last.text().as_str()), (202, "fourth"));
    assert_eq!(last.header("connection"), Some("close"));
    assert!(client.at_eof(), "Connection: close ends the connection");

    assert_eq!(fake.connection_count(), 1);
    let reqs = fake.requests();
    assert_eq!(reqs.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/a", "/b", "/c", "/d"]);
    assert!(reqs.iter().all(|r| r.connection == 0));
}

#[test]
fn http10_closes_after_one_response() {
    let fake = FakeHttp::start();
    let mut client = Client::connect(fake.addr());
    client.send(b"GET / HTTP/1.0\r\n\r\n");
    let resp = client.read_response(false);
    assert_eq!((resp.status, resp.header("connection")), (200, Some("close")));
    assert!(client.at_eof());
}

#[test]
fn queued_replies_are_fifo_then_default() {
    let fake = FakeHttp::start();
    fake.push(Reply::status(503));
    fake.push_n(2, Reply::json(404, r#"{"ok":false}"#));
    fake.push(Reply::text(201, "made"));
    let mut client = Client::connect(fake.addr());
    let mut got = Vec::new();
    for _ in 0..6 {
        client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let resp = client.read_response(false);
        got.push((resp.status, resp.text(), resp.header("content-type").map(str::to_owned)));
    }
    let json = Some("application/json".to_owned());
    let text = Some("text/plain; charset=utf-8".to_owned());
    assert_eq!(got[0], (503, String::new(), None));
    assert_eq!(got[1], (404, r#"{"ok":false}"#.to_owned(), json.clone()));
    assert_eq!(got[2], (404, r#"{"ok":false}"#.to_owned(), json));
    assert_eq!(got[3], (201, "made".to_owned(), text.clone()));
    assert_eq!(got[4], (200, "ok".to_owned(), text.clone()));
    assert_eq!(got[5], (200, "ok".to_owned(), text));

    fake.set_default(Reply::status(500).header("X-A", "1").header("X-A", "2"));
    client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let resp = client.read_response(false);
    assert_eq!(resp.status, 500);
    assert_eq!(resp.headers.iter().filter(|(n, _)| n == "X-A").count(), 2);
}

#[test]
fn respond_with_is_used_when_the_queue_is_empty() {
    let fake = FakeHttp::start();
    fake.respond_with(|req| Reply::text(200, &format!("echo {}", req.path)));
    fake.push(Reply::status(429));
    assert_eq!(roundtrip(fake.addr(), b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n").status, 429);
    assert_eq!(roundtrip(fake.addr(), b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n").text(), "echo /second");

    fake.respond_with(|_| panic!("responder bug"));
    let resp = roundtrip(fake.addr(), b"GET /boom HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(resp.status, 500);
    assert!(resp.text().contains("responder bug"), "{resp:?}");

    // The last call wins.
    fake.set_default(Reply::status(204));
    let resp = roundtrip(fake.addr(), b"GET /third HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((resp.status, resp.header("content-length")), (204, None));
    assert_eq!(fake.request_count(), 4);
}

#[test]
fn retry_after_header_is_sent() {
    let fake = FakeHttp::start();
    fake.push(Reply::status(429).retry_after(2));
    let resp = roundtrip(fake.addr(), b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("retry-after"), Some("2"));
    assert_eq!(resp.header("content-length"), Some("0"));
}

#[test]
fn delay_waits_at_least_the_delay() {
    let fake = FakeHttp::start();
    let delay = Duration::from_millis(300);
    fake.push(Reply::text(200, "late").delay(delay));
    let mut client = Client::connect(fake.addr());
    let sent = Instant::now();
    client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let resp = client.read_response(false);
    assert!(sent.elapsed() >= delay, "answered after {:?}", sent.elapsed());
    assert_eq!(resp.text(), "late");
    // Recorded before the delay, not after it.
    assert!(fake.requests()[0].received_at < sent + delay);
}

#[test]
fn stall_never_answers_but_records() {
    let fake = FakeHttp::start();
    fake.push(Reply::stall());
    let mut client = Client::connect(fake.addr());
    client.stream().set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    client.send(b"POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nping");
    let mut buf = [0u8; 16];
    let err = client.reader.read(&mut buf).expect_err("a stalled request gets no answer");
    assert!(matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{err:?}");
    let reqs = fake.wait_for_requests(1, WAIT);
    assert_eq!((reqs.len(), reqs[0].path.as_str(), reqs[0].body_text().as_str()), (1, "/slow", "ping"));
}

#[test]
fn close_hangs_up_without_a_byte() {
    let fake = FakeHttp::start();
    fake.push(Reply::close());
    let mut client = Client::connect(fake.addr());
    client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut got = Vec::new();
    let read = client.reader.read_to_end(&mut got);
    assert!(got.is_empty(), "no response bytes, got {got:?}");
    assert!(read.is_ok() || read.as_ref().is_err_and(|e| e.kind() == ErrorKind::ConnectionReset), "{read:?}");
    assert_eq!(fake.request_count(), 1);
    // The next connection is served normally.
    assert_eq!(roundtrip(fake.addr(), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").status, 200);
}

#[test]
fn one_megabyte_body_round_trip() {
    let fake = FakeHttp::start();
    fake.respond_with(|req| Reply::status(200).body(req.body.clone()));
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut client = Client::connect(fake.addr());
    let head = format!("PUT /blob HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n", body.len());
    // Written from another thread: the echo may fill the socket buffers before the upload ends.
    let mut writer = client.stream().try_clone().unwrap();
    let upload = body.clone();
    let sender = thread::spawn(move || {
        writer.write_all(head.as_bytes()).unwrap();
        writer.write_all(&upload).unwrap();
    });
    let resp = client.read_response(false);
    sender.join().unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.body == body, "echoed body differs");
    assert!(fake.requests()[0].body == body);
}

#[test]
fn expect_100_continue() {
    let fake = FakeHttp::start();
    let mut client = Client::connect(fake.addr());
    client.send(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let interim = client.read_response(true);
    assert_eq!(interim.status, 100);
    client.send(b"hello");
    assert_eq!(client.read_response(false).status, 200);
    assert_eq!(fake.requests()[0].body_text(), "hello");
}

#[test]
fn head_request_gets_no_body() {
    let fake = FakeHttp::start();
    let mut client = Client::connect(fake.addr());
    client.send(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    let resp = client.read_response(true);
    assert_eq!((resp.status, resp.header("content-length")), (200, Some("2")));
    // The connection is still in sync: the next response is read whole.
    client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(client.read_response(false).text(), "ok");
}

#[test]
fn oversized_requests_are_refused() {
    let fake = FakeHttp::start();
    let resp = roundtrip(fake.addr(), b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000\r\n\r\n");
    assert_eq!(resp.status, 413);
    assert_eq!(resp.header("connection"), Some("close"));

    let mut head = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..1000 {
        head.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "f".repeat(64)).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let mut client = Client::connect(fake.addr());
    // The server may answer before the whole head is written; a failed write is fine.
    let _ = client.stream().write_all(&head);
    assert_eq!(client.read_response(false).status, 431);

    assert_eq!(roundtrip(fake.addr(), b"NONSENSE\r\n\r\n").status, 400);
    assert_eq!(roundtrip(fake.addr(), b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n").status, 400);
    assert_eq!(fake.request_count(), 0, "refused requests are not recorded");
}

#[test]
fn form_and_query_decoding() {
    let fake = FakeHttp::start();
    let body = "To=%2B15550001111&Body=caf%C3%A9+%E2%9C%93+100%25&Flag&Bad=%zz&Empty=";
    let raw = format!(
        "POST /2010-04-01/Accounts/AC1/Messages.json?a=1&name=J%C3%BCrgen+M&x=%F0%9F%94%94 HTTP/1.1\r\n\
         Host: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(roundtrip(fake.addr(), raw.as_bytes()).status, 200);
    let req = &fake.requests()[0];
    let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect::<Vec<_>>();
    assert_eq!(
        req.form(),
        pairs(&[("To", "+15550001111"), ("Body", "café ✓ 100%"), ("Flag", ""), ("Bad", "%zz"), ("Empty", "")])
    );
    assert_eq!(req.query_pairs(), pairs(&[("a", "1"), ("name", "Jürgen M"), ("x", "🔔")]));
    assert_eq!(req.path, "/2010-04-01/Accounts/AC1/Messages.json");

    // Absolute-form targets (as sent to a proxy) and odd bytes are handled too.
    roundtrip(fake.addr(), b"GET HTTP://example.com:80/p?q=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    roundtrip(fake.addr(), "GET \u{e9}\u{e9}\u{e9}\u{e9}/x HTTP/1.1\r\nHost: a\r\n\r\n".as_bytes());
    let reqs = fake.requests();
    assert_eq!((reqs[1].path.as_str(), reqs[1].query.as_str()), ("/p", "q=1"));
    assert_eq!(reqs[2].path, "\u{e9}\u{e9}\u{e9}\u{e9}/x");
}

#[test]
fn wait_for_requests_wakes_on_arrival_and_times_out() {
    let fake = FakeHttp::start();
    let started = Instant::now();
    assert!(fake.wait_for_requests(1, Duration::from_millis(100)).is_empty());
    assert!(started.elapsed() >= Duration::from_millis(100));

    let addr = fake.addr();
    let client = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        roundtrip(addr, b"GET /late HTTP/1.1\r\nHost: a\r\n\r\n").status
    });
    let reqs = fake.wait_for_requests(1, WAIT);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/late");
    assert_eq!(client.join().unwrap(), 200);
}

#[test]
fn drop_with_stalled_and_idle_connections_is_prompt() {
    let fake = FakeHttp::start();
    fake.set_default(Reply::stall());
    let addr = fake.addr();
    let mut stalled = Client::connect(addr);
    stalled.send(b"GET /stall HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut delayed = Client::connect(addr);
    let _idle = Client::connect(addr);
    // The stalled request takes the default; the next one takes the queued delay.
    fake.wait_for_requests(1, WAIT);
    fake.push(Reply::ok().delay(Duration::from_secs(60)));
    delayed.send(b"GET /delay HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(fake.wait_for_requests(2, WAIT).len(), 2);

    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        drop(fake);
        let _ = done.send(());
    });
    finished.recv_timeout(WAIT).expect("drop returned promptly");
    // The connections were closed: the clients see the end (or a reset), not a timeout.
    let mut rest = Vec::new();
    let read = stalled.reader.read_to_end(&mut rest);
    assert!(read.is_ok() || read.as_ref().is_err_and(|e| e.kind() == ErrorKind::ConnectionReset), "{read:?}");
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(), "the listener is closed");
}

#[test]
fn slow_body_delivers_the_full_body() {
    let fake = FakeHttp::start();
    let body = "0123456789".repeat(10);
    let pause = Duration::from_millis(20);
    fake.push(Reply::text(200, &body).slow_body(10, pause));
    let started = Instant::now();
    let resp = roundtrip(fake.addr(), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(resp.text(), body);
    assert!(started.elapsed() >= pause * 9, "took {:?}", started.elapsed());
}

#[test]
fn types_are_send_sync_and_debug() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<FakeHttp>();
    send_sync::<Reply>();
    send_sync::<watchbell_test::http::Request>();

    let fake = FakeHttp::start();
    fake.push(Reply::json(200, &"x".repeat(5000)).delay(Duration::from_millis(1)));
    assert!(format!("{fake:?}").contains("queued_replies: 1"));
    let reply = format!("{:?}", Reply::json(200, &"x".repeat(5000)));
    assert!(reply.contains("(5000 bytes)") && reply.len() < 1500, "{reply}");
    assert!(format!("{:?}", Reply::stall()).contains("stall"));
    roundtrip(fake.addr(), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(format!("{:?}", fake.requests()[0]).contains("path: \"/\""));
}
