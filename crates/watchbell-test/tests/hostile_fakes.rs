//! Tests of the hostile-peer modes themselves, with a minimal std-only client: each mode does
//! what its documentation says, stays bounded, and leaves the fake answering normally after it.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use watchbell_test::hostile::{gzip_bomb, Hostile, HostileSmtp, StalledTls};
use watchbell_test::http::{FakeHttp, ENDLESS_MAX};
use watchbell_test::smtp::FakeSmtp;
use watchbell_test::syslog::FakeSyslog;

const WAIT: Duration = Duration::from_secs(5);

fn connect(addr: SocketAddr, read_timeout: Duration) -> BufReader<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    s.set_read_timeout(Some(read_timeout)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    BufReader::new(s)
}

const REQUEST: &str = "POST /hook/T000/B000/SeCrEtPaTh?token=tok-123&x=1 HTTP/1.1\r\nHost: x\r\n\
                       Authorization: Basic dXNlcjpwYXNz\r\nContent-Type: application/json\r\n\
                       Content-Length: 15\r\n\r\n{\"text\":\"boom\"}";

/// Sends [`REQUEST`] and reads the status line and headers.
fn head(c: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    c.get_mut().write_all(REQUEST.as_bytes()).expect("write");
    let mut line = String::new();
    c.read_line(&mut line).expect("status line");
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        c.read_line(&mut l).expect("header");
        let l = l.trim_end();
        if l.is_empty() {
            return (status, headers);
        }
        let (n, v) = l.split_once(':').expect("a header");
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
}

fn get<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Reads a body framed by `Content-Length`.
fn body(c: &mut BufReader<TcpStream>, h: &[(String, String)]) -> Vec<u8> {
    let n: usize = get(h, "content-length").expect("content-length").parse().unwrap();
    let mut b = vec![0; n];
    c.read_exact(&mut b).expect("body");
    b
}

/// After a hostile answer the fake answers the next request normally.
fn answers_normally_after(fake: &FakeHttp) {
    let mut c = connect(fake.addr(), WAIT);
    let (status, h) = head(&mut c);
    assert_eq!(status, 200);
    assert_eq!(body(&mut c, &h), b"ok");
}

#[test]
fn every_retry_after_mode_sends_its_status_and_absurd_header() {
    let fake = FakeHttp::start();
    let expected = [
        (Hostile::RetryAfterHuge429, 429, "18446744073709551615"),
        (Hostile::RetryAfterHuge503, 503, "18446744073709551615"),
        (Hostile::RetryAfterNegative, 429, "-5"),
        (Hostile::RetryAfterGarbage, 503, "soon"),
        (Hostile::RetryAfterFloatHuge, 429, "1e308"),
        (Hostile::RetryAfterPastDate, 503, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (Hostile::RetryAfterFarFuture, 429, "Fri, 31 Dec 9999 23:59:59 GMT"),
    ];
    for (mode, code, value) in expected {
        fake.push(mode.reply());
        let mut c = connect(fake.addr(), WAIT);
        let (status, h) = head(&mut c);
        assert_eq!((status, get(&h, "retry-after")), (code, Some(value)), "{}", mode.name());
    }
    answers_normally_after(&fake);
    assert_eq!(fake.request_count(), expected.len() + 1);
}

#[test]
fn the_endless_body_never_ends_properly_and_stops_at_its_bound() {
    let fake = FakeHttp::start();
    fake.push(Hostile::EndlessBody.reply());
    let mut c = connect(fake.addr(), WAIT);
    let (status, h) = head(&mut c);
    assert_eq!(status, 200);
    assert_eq!(get(&h, "transfer-encoding"), Some("chunked"));
    assert_eq!(get(&h, "content-length"), None);
    // Far more than any sink reads, never a last chunk, and cut (without one) at the bound.
    let mut buf = vec![0u8; 1 << 16];
    let mut read = 0usize;
    let mut tail = Vec::new();
    loop {
        let n = c.read(&mut buf).expect("more body");
        if n == 0 {
            break;
        }
        read += n;
        tail.extend_from_slice(&buf[..n]);
        let cut = tail.len().saturating_sub(16);
        tail.drain(..cut);
    }
    assert!(read >= ENDLESS_MAX, "the body ended after {read} bytes");
    assert!(read < ENDLESS_MAX + (1 << 20), "{read} bytes: not bounded");
    assert!(!tail.ends_with(b"0\r\n\r\n"), "a last chunk was sent");
    drop(c);
    answers_normally_after(&fake);
}

#[test]
fn the_endless_body_is_bounded_and_stops_when_the_fake_is_dropped() {
    let fake = FakeHttp::start();
    fake.push(Hostile::EndlessBody.reply());
    let mut c = connect(fake.addr(), WAIT);
    let _ = head(&mut c);
    // The client stops reading: the fake blocks on a full socket buffer, and dropping it must
    // end that writer promptly rather than leave a thread behind.
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    drop(fake);
    assert!(started.elapsed() < Duration::from_secs(3), "drop took {:?}", started.elapsed());
    // What is left to read is what was in flight, far below the bound, and then the end.
    let mut rest = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => rest += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the connection was not closed: {e}"),
        }
    }
    assert!(rest < ENDLESS_MAX, "{rest} bytes");
}

#[test]
fn a_huge_content_length_comes_with_a_short_body_and_then_silence() {
    let fake = FakeHttp::start();
    fake.push(Hostile::HugeContentLength.reply());
    let mut c = connect(fake.addr(), Duration::from_millis(500));
    let (status, h) = head(&mut c);
    assert_eq!((status, get(&h, "content-length")), (200, Some("1073741824")));
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let err = loop {
        match c.read(&mut buf) {
            Ok(0) => panic!("the connection was closed after {got:?}"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break e,
        }
    };
    assert!(matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{err}");
    assert_eq!(got, b"{\"ok\":tr", "a short body, then the connection held open");
    answers_normally_after(&fake);
}

#[test]
fn the_gzip_bomb_is_small_and_inflates_to_a_gibibyte_of_zeros() {
    let bomb = gzip_bomb();
    assert!(bomb.len() < 2 << 20, "{} bytes compressed", bomb.len());
    // The gzip trailer's ISIZE is the inflated size modulo 2^32.
    let isize = u32::from_le_bytes(bomb[bomb.len() - 4..].try_into().unwrap());
    assert_eq!(isize, 1 << 30);
    let fake = FakeHttp::start();
    fake.push(Hostile::GzipBomb.reply());
    let mut c = connect(fake.addr(), WAIT);
    let (status, h) = head(&mut c);
    assert_eq!((status, get(&h, "content-encoding")), (500, Some("gzip")));
    let sent = body(&mut c, &h);
    assert_eq!(sent, bomb);
    // The start of it really inflates (to zeros), faster than it was sent.
    let mut inflated = flate2::read::GzDecoder::new(&sent[..]).take(32 << 20);
    let mut out = Vec::new();
    inflated.read_to_end(&mut out).unwrap();
    assert_eq!(out.len(), 32 << 20);
    assert!(out.iter().all(|&b| b == 0));
    answers_normally_after(&fake);
}

#[test]
fn invalid_json_and_invalid_utf8_bodies_are_what_they_say() {
    let fake = FakeHttp::start();
    for (mode, code) in [(Hostile::InvalidJson200, 200), (Hostile::InvalidJson400, 400)] {
        fake.push(mode.reply());
        let mut c = connect(fake.addr(), WAIT);
        let (status, h) = head(&mut c);
        assert_eq!((status, get(&h, "content-type")), (code, Some("application/json")));
        let b = body(&mut c, &h);
        assert!(serde_json::from_slice::<serde_json::Value>(&b).is_err(), "{mode:?} is valid JSON");
    }
    fake.push(Hostile::InvalidUtf8.reply());
    let mut c = connect(fake.addr(), WAIT);
    let (status, h) = head(&mut c);
    assert_eq!(status, 500);
    assert!(String::from_utf8(body(&mut c, &h)).is_err());
    answers_normally_after(&fake);
}

#[test]
fn slowloris_sends_one_byte_a_second_headers_included() {
    let fake = FakeHttp::start();
    fake.push(Hostile::Slowloris.reply());
    let mut c = connect(fake.addr(), WAIT);
    c.get_mut().write_all(REQUEST.as_bytes()).unwrap();
    let mut times = Vec::new();
    let mut b = [0u8; 16];
    let started = Instant::now();
    let mut got = Vec::new();
    while got.len() < 3 {
        let n = c.get_mut().read(&mut b).expect("a byte");
        assert!(n > 0);
        got.extend_from_slice(&b[..n]);
        times.push(started.elapsed());
    }
    assert_eq!(&got[..3], b"HTT", "the status line itself trickles");
    assert_eq!(times.len(), 3, "one byte per read: {times:?}");
    assert!(times[2] - times[0] >= Duration::from_millis(1800), "{times:?}");
}

#[test]
fn reset_mid_body_sends_part_of_the_body_then_a_tcp_reset() {
    let fake = FakeHttp::start();
    fake.push(Hostile::ResetMidBody.reply());
    let mut c = connect(fake.addr(), WAIT);
    let (status, h) = head(&mut c);
    assert_eq!((status, get(&h, "content-length")), (200, Some("100")));
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    let err = loop {
        match c.read(&mut buf) {
            Ok(0) => panic!("a clean end (FIN) after {got:?}, not a reset"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    assert!(got.len() < 100, "{got:?}");
    answers_normally_after(&fake);
}

#[test]
fn the_401_echoes_the_whole_request_secrets_included() {
    let fake = FakeHttp::start();
    fake.push(Hostile::EchoRequest401.reply());
    let mut c = connect(fake.addr(), WAIT);
    let (status, h) = head(&mut c);
    assert_eq!(status, 401);
    let text = String::from_utf8(body(&mut c, &h)).unwrap();
    for part in [
        "POST /hook/T000/B000/SeCrEtPaTh?token=tok-123&x=1 HTTP/1.1",
        "Authorization: Basic dXNlcjpwYXNz",
        "{\"text\":\"boom\"}",
    ] {
        assert!(text.contains(part), "{part:?} not in {text:?}");
    }
    answers_normally_after(&fake);
}

#[test]
fn a_stalled_tls_endpoint_accepts_and_never_answers_the_client_hello() {
    let stalled = StalledTls::start();
    assert!(stalled.url("/x").starts_with("https://127.0.0.1:"));
    let mut c = connect(stalled.addr(), Duration::from_millis(500));
    // The start of a TLS 1.2 ClientHello record.
    c.get_mut().write_all(&[0x16, 0x03, 0x01, 0x00, 0x2e, 0x01, 0x00, 0x00, 0x2a, 0x03, 0x03]).unwrap();
    let mut b = [0u8; 1];
    let err = c.read(&mut b).expect_err("no answer, and no end");
    assert!(matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{err}");
    let started = Instant::now();
    drop(stalled);
    assert!(started.elapsed() < Duration::from_secs(2));
    c.get_mut().set_read_timeout(Some(WAIT)).unwrap();
    assert!(matches!(c.read(&mut b), Ok(0) | Err(_)), "the held connection is closed on drop");
}

/// Reads SMTP lines until one is a final reply (`NNN ` or a bare code) or the peer stops;
/// returns the lines seen (each cut to 200 bytes) and the total bytes read, stopping at `limit`.
fn smtp_lines(c: &mut BufReader<TcpStream>, limit: usize) -> (Vec<Vec<u8>>, usize, Option<ErrorKind>) {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        match c.by_ref().take(2 << 20).read_until(b'\n', &mut line) {
            Ok(0) => return (lines, total, None),
            Ok(n) => total += n,
            Err(e) => return (lines, total, Some(e.kind())),
        }
        let last = !(line.len() > 3 && line[3] == b'-');
        line.truncate(200);
        lines.push(line);
        if last || total >= limit {
            return (lines, total, None);
        }
    }
}

fn smtp_send(c: &mut BufReader<TcpStream>, line: &str) {
    c.get_mut().write_all(line.as_bytes()).unwrap();
    c.get_mut().write_all(b"\r\n").unwrap();
}

#[test]
fn each_smtp_mode_misbehaves_at_its_step() {
    for &mode in HostileSmtp::ALL {
        let smtp = FakeSmtp::start();
        let (step, answer) = mode.answer();
        smtp.push(step, answer);
        let mut c = connect(smtp.addr(), Duration::from_millis(800));
        match mode {
            HostileSmtp::SilentGreeting => {
                let mut b = [0u8; 1];
                let e = c.read(&mut b).expect_err("a greeting came");
                assert!(matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut));
                continue;
            }
            HostileSmtp::GarbageGreeting => {
                let (lines, _, _) = smtp_lines(&mut c, 1 << 20);
                assert_eq!(lines.len(), 3, "{lines:?}");
                assert_eq!(lines[2], b"what is this\r\n", "the last line has no code");
                continue;
            }
            _ => {}
        }
        let (greeting, _, _) = smtp_lines(&mut c, 1 << 20);
        assert!(greeting[0].starts_with(b"220"), "{mode:?}");
        smtp_send(&mut c, "EHLO test");
        let (ehlo, n, _) = smtp_lines(&mut c, 8 << 20);
        match mode {
            HostileSmtp::NonNumericCode => {
                assert_eq!(ehlo, [b"2x0 fine, thanks\r\n".to_vec()]);
                continue;
            }
            HostileSmtp::EndlessContinuation => {
                assert!(n >= 8 << 20, "{n} bytes of 250- lines");
                assert!(ehlo.iter().all(|l| l.starts_with(b"250-")), "never a final line");
                continue;
            }
            _ => assert!(ehlo.last().unwrap().starts_with(b"250 "), "{mode:?}: {ehlo:?}"),
        }
        smtp_send(&mut c, "MAIL FROM:<a@example.com>");
        let (mail, _, _) = smtp_lines(&mut c, 1 << 20);
        if mode == HostileSmtp::EightBitGarbage {
            assert_eq!(mail, [vec![0xff, 0xfe, 0x80, b'\r', b'\n']]);
            continue;
        }
        assert!(mail[0].starts_with(b"250"), "{mode:?}: {mail:?}");
        smtp_send(&mut c, "RCPT TO:<b@example.com>");
        let (_, n, _) = smtp_lines(&mut c, 4 << 20);
        if mode == HostileSmtp::HugeLine {
            assert_eq!(n, 4 + (1 << 20) + 2, "one reply line of 1 MiB");
            continue;
        }
        assert_eq!(mode, HostileSmtp::ResetMidData);
        smtp_send(&mut c, "DATA");
        let (data, _, _) = smtp_lines(&mut c, 1 << 20);
        assert!(data[0].starts_with(b"354"), "{data:?}");
        smtp_send(&mut c, "Subject: x\r\n\r\nbody\r\n.");
        let (after, n, err) = smtp_lines(&mut c, 1 << 20);
        assert!(after.is_empty() && n == 0, "a reply after the data: {after:?} {err:?}");
        assert!(smtp.wait_for_mails(1, Duration::from_millis(300)).is_empty(), "the mail was not accepted");
    }
}

#[test]
fn a_syslog_receiver_resets_the_next_connections_then_reads_again() {
    let fake = FakeSyslog::tcp();
    fake.reset_next(2);
    for _ in 0..2 {
        let mut c = connect(fake.addr().unwrap(), WAIT);
        let mut b = [0u8; 1];
        // The reset arrives on the first read (or write) after the accept.
        let r = c.read(&mut b);
        assert!(matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset), "{r:?}");
    }
    let deadline = Instant::now() + WAIT;
    while fake.resets() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(fake.resets(), 2);
    let mut c = connect(fake.addr().unwrap(), WAIT);
    c.get_mut().write_all(b"<11>1 - - app - - - after the resets\n").unwrap();
    let frames = fake.wait_for_frames(1, WAIT);
    assert_eq!(frames.len(), 1);
    assert!(frames[0].text().ends_with("after the resets"), "{:?}", frames[0].text());
}
