//! The syslog layer against real UDP, TCP and unix socket receivers on loopback.

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use tracing::Dispatch;
use tracing_subscriber::prelude::*;
use tracing_subscriber::Registry;
use watchbell_core::text::MARKER;
use watchbell_core::{Guard, Handler, Level, Record, Retry, Stats, Value};
use watchbell_syslog::{Facility, Framing, Protocol, SinkOptions, SyslogBuilder, SyslogLayer, Zone};
use watchbell_test::syslog::{parse, temp_socket_path, FakeSyslog, FrameKind, Protocol as Parsed};

const WAIT: Duration = Duration::from_secs(20);

/// 2003-10-05T22:14:15.003Z
fn fixed_time() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_065_392_055_003)
}

fn fast_retry() -> Retry {
    Retry {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        multiplier: 2.0,
        budget: Duration::from_secs(60),
        max_attempts: 0,
        ..Retry::default()
    }
}

fn base(b: SyslogBuilder) -> SyslogBuilder {
    b.app_name("shop").hostname("web-1").pid(4242).retry(fast_retry())
}

fn start(b: SyslogBuilder) -> (Dispatch, Guard) {
    let (layer, guard) = b.build::<Registry>().expect("valid configuration");
    (Dispatch::new(tracing_subscriber::registry().with(layer)), guard)
}

fn log(d: &Dispatch, f: impl FnOnce()) {
    tracing::dispatcher::with_default(d, f)
}

fn syslog_stats(guard: &Guard) -> Stats {
    guard.stats().into_iter().find(|s| s.name.starts_with("syslog:")).expect("the syslog delivery's stats")
}

fn record(level: Level, msg: &str) -> Record {
    let mut r = Record::new(level, "shop::pay", msg);
    r.time = fixed_time();
    r
}

#[test]
fn udp_rfc5424_exact_frame_with_structured_data_and_bom() {
    let fake = FakeSyslog::udp();
    let (handler, guard) = base(SyslogLayer::builder().udp(fake.addr().unwrap().to_string()))
        .facility(Facility::Local3)
        .bom(true)
        .build_handler()
        .unwrap();
    let mut r = record(Level::ERROR, "payment failed: 'héllo' 日本");
    r.fields.set("user", Value::Str("bob".into()));
    r.fields.set("query", Value::Str(r#"a"b]c\d"#.into()));
    r.fields.set("count", Value::U64(3));
    handler.handle(r);
    assert!(guard.flush(WAIT).is_complete());
    let frames = fake.wait_for_frames(1, WAIT);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].kind, FrameKind::Datagram);
    assert_eq!(
        frames[0].text(),
        "<155>1 2003-10-05T22:14:15.003000Z web-1 shop 4242 - \
         [fields@32473 user=\"bob\" query=\"a\\\"b\\]c\\\\d\" count=\"3\"] \u{feff}payment failed: 'héllo' 日本"
    );
    let m = frames[0].parse().unwrap();
    assert_eq!(m.protocol, Parsed::Rfc5424);
    assert_eq!((m.facility, m.severity), (19, 3));
    assert_eq!(m.hostname.as_deref(), Some("web-1"));
    assert_eq!(m.app_name.as_deref(), Some("shop"));
    assert_eq!(m.procid.as_deref(), Some("4242"));
    assert_eq!(m.msgid, None);
    assert!(m.bom);
    let sd = m.sd("fields@32473").unwrap();
    assert_eq!(
        sd.params,
        [("user".into(), "bob".into()), ("query".into(), r#"a"b]c\d"#.into()), ("count".into(), "3".into())]
    );
    let s = syslog_stats(&guard);
    assert_eq!((s.accepted, s.delivered, s.failed, s.dropped), (1, 1, 0, 0), "{s}");
}

#[test]
fn pri_is_facility_times_8_plus_severity_of_the_level() {
    let fake = FakeSyslog::udp();
    let (d, guard) = start(
        base(SyslogLayer::builder().udp(fake.addr().unwrap().to_string()))
            .facility(Facility::Local7)
            .level(Level::TRACE),
    );
    log(&d, || {
        tracing::error!("e");
        tracing::warn!("w");
        tracing::info!("i");
        tracing::debug!("d");
        tracing::trace!("t");
    });
    assert!(guard.flush(WAIT).is_complete());
    fake.wait_for_frames(5, WAIT);
    let got: Vec<(u8, u8, String)> = fake.messages().into_iter().map(|m| (m.pri, m.severity, m.message)).collect();
    assert_eq!(
        got,
        [
            (187, 3, "e".to_owned()),
            (188, 4, "w".to_owned()),
            (190, 6, "i".to_owned()),
            (191, 7, "d".to_owned()),
            (191, 7, "t".to_owned())
        ]
    );
    // Below the level: not sent.
    let (d, guard) = start(base(SyslogLayer::builder().udp(fake.addr().unwrap().to_string())).level(Level::WARN));
    fake.clear();
    log(&d, || {
        tracing::info!("not sent");
        tracing::warn!("sent");
    });
    assert!(guard.flush(WAIT).is_complete());
    std::thread::sleep(Duration::from_millis(100));
    let msgs = fake.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!((msgs[0].pri, msgs[0].message.as_str()), (12, "sent"));
}

#[test]
fn tcp_octet_counting_keeps_newlines_on_one_connection() {
    let fake = FakeSyslog::tcp();
    let (d, guard) = start(base(SyslogLayer::builder().tcp(fake.addr().unwrap().to_string())));
    log(&d, || {
        tracing::warn!(detail = "x\ny", "line one\nline two");
        for i in 0..20 {
            tracing::info!(i, "record {i}");
        }
    });
    assert!(guard.flush(WAIT).is_complete());
    let frames = fake.wait_for_frames(21, WAIT);
    assert_eq!(frames.len(), 21);
    assert!(frames.iter().all(|f| f.kind == FrameKind::OctetCounted && f.connection == 1));
    let m = frames[0].parse().unwrap();
    assert_eq!(m.message, "line one\nline two");
    assert_eq!(m.sd("fields@32473").unwrap().param("detail"), Some("x\ny"));
    for (i, f) in frames[1..].iter().enumerate() {
        let m = f.parse().unwrap();
        assert_eq!(m.message, format!("record {i}"));
        assert_eq!(m.sd("fields@32473").unwrap().param("i"), Some(i.to_string().as_str()));
    }
}

#[test]
fn tcp_line_feed_framing_makes_one_line_per_record() {
    let fake = FakeSyslog::tcp();
    let (d, guard) =
        start(base(SyslogLayer::builder().tcp(fake.addr().unwrap().to_string())).framing(Framing::LineFeed));
    log(&d, || {
        tracing::error!(detail = "x\ny", "line one\r\nline two");
        tracing::error!("second");
    });
    assert!(guard.flush(WAIT).is_complete());
    let frames = fake.wait_for_frames(2, WAIT);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert!(frames.iter().all(|f| f.kind == FrameKind::LineFeed));
    let m = frames[0].parse().unwrap();
    assert_eq!(m.message, "line one line two");
    assert_eq!(m.sd("fields@32473").unwrap().param("detail"), Some("x y"));
    assert_eq!(frames[1].parse().unwrap().message, "second");
}

#[test]
fn unix_datagram_rfc3164_exact_frame_space_padded_day() {
    let path = temp_socket_path("dgram3164");
    let fake = FakeSyslog::unix_datagram(&path);
    let (handler, guard) =
        base(SyslogLayer::builder().unix(&path)).facility(Facility::Daemon).zone(Zone::utc()).build_handler().unwrap();
    let mut r = record(Level::WARN, "disk\nalmost\0full");
    r.fields.set("mount", Value::Str("/var lib".into()));
    r.fields.set("pct", Value::U64(93));
    r.suppressed = 2;
    handler.handle(r);
    assert!(guard.flush(WAIT).is_complete());
    let frames = fake.wait_for_frames(1, WAIT);
    // Daemon(3) × 8 + warning(4) = 28; the hostname set explicitly is written.
    assert_eq!(
        frames[0].text(),
        "<28>Oct  5 22:14:15 web-1 shop[4242]: disk almost\u{fffd}full mount=\"/var lib\" pct=93 (2 similar suppressed)"
    );
    let m = frames[0].parse().unwrap();
    assert_eq!(m.protocol, Parsed::Rfc3164);
    assert_eq!(m.timestamp.as_deref(), Some("Oct  5 22:14:15"));
    assert_eq!((m.facility, m.severity), (3, 4));

    // Without an explicit hostname, a unix socket gets the C library's layout (no HOSTNAME).
    let (handler, guard) = SyslogLayer::builder()
        .unix(&path)
        .app_name("shop")
        .pid(7)
        .utc_offset_minutes(-23 * 60)
        .build_handler()
        .unwrap();
    fake.clear();
    handler.handle(record(Level::INFO, "local"));
    assert!(guard.flush(WAIT).is_complete());
    let frames = fake.wait_for_frames(1, WAIT);
    assert_eq!(frames[0].text(), "<14>Oct  4 23:14:15 shop[7]: local");
}

#[test]
fn rfc5424_on_unix_datagram_and_hostile_field_names() {
    let path = temp_socket_path("dgram5424");
    let fake = FakeSyslog::unix_datagram(&path);
    let (handler, guard) =
        base(SyslogLayer::builder().unix(&path)).protocol(Protocol::Rfc5424).sd_id("ev@12345").build_handler().unwrap();
    let mut r = record(Level::INFO, "");
    r.fields.set("a b", Value::Str("1".into()));
    r.fields.set("x=y", Value::Str("2".into()));
    r.fields.set("q\"]", Value::Str("3".into()));
    r.fields.set("ünï", Value::Str("4".into()));
    r.fields.set("n".repeat(40), Value::Str("5".into()));
    r.fields.set("v", Value::Str("nul\0 ] \\ \" end\nline".into()));
    handler.handle(r);
    assert!(guard.flush(WAIT).is_complete());
    let frames = fake.wait_for_frames(1, WAIT);
    let text = frames[0].text();
    assert_eq!(
        text,
        format!(
            "<14>1 2003-10-05T22:14:15.003000Z web-1 shop 4242 - [ev@12345 a_b=\"1\" x_y=\"2\" q__=\"3\" _n_=\"4\" {}=\"5\" \
             v=\"nul\u{fffd} \\] \\\\ \\\" end\nline\"]",
            "n".repeat(32)
        )
    );
    let m = frames[0].parse().unwrap();
    assert!(!m.bom, "an empty MSG has no BOM");
    assert_eq!(m.message, "");
    assert_eq!(m.sd("ev@12345").unwrap().param("v"), Some("nul\u{fffd} ] \\ \" end\nline"));
}

#[test]
fn unix_stream_socket_is_used_when_the_path_refuses_datagrams() {
    let path = temp_socket_path("stream");
    let fake = FakeSyslog::unix_stream(&path);
    let (d, guard) = start(base(SyslogLayer::builder().unix(&path)));
    log(&d, || {
        tracing::error!("one\ntwo");
        tracing::error!("three");
    });
    assert!(guard.flush(WAIT).is_complete());
    let frames = fake.wait_for_frames(2, WAIT);
    assert_eq!(frames.len(), 2);
    assert!(frames.iter().all(|f| f.kind == FrameKind::OctetCounted));
    let msgs: Vec<String> = frames.iter().map(|f| f.parse().unwrap().message).collect();
    assert_eq!(msgs, ["one two", "three"]);
}

#[test]
fn tcp_listener_restart_reconnects_and_loses_nothing() {
    let fake = FakeSyslog::tcp();
    let (d, guard) = start(base(SyslogLayer::builder().tcp(fake.addr().unwrap().to_string())));
    let send = |from: usize, to: usize| {
        log(&d, || {
            for i in from..to {
                tracing::error!("record {i}");
            }
        })
    };
    send(0, 5);
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(fake.wait_for_frames(5, WAIT).len(), 5);

    fake.stop();
    send(5, 10);
    // The receiver is away: the records wait and are retried.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(fake.frame_count(), 5);
    assert!(syslog_stats(&guard).retried > 0, "{}", syslog_stats(&guard));
    fake.restart();
    send(10, 15);
    assert!(guard.flush(WAIT).is_complete());
    let frames = fake.wait_for_frames(15, WAIT);
    let msgs: Vec<String> = frames.iter().map(|f| f.parse().unwrap().message).collect();
    let want: Vec<String> = (0..15).map(|i| format!("record {i}")).collect();
    assert_eq!(msgs, want);
    assert!(fake.connection_count() >= 2);
    assert!(frames[5..].iter().all(|f| f.connection > 1));
    let s = syslog_stats(&guard);
    assert_eq!((s.delivered, s.failed, s.dropped), (15, 0, 0), "{s}");
    // A second restart works the same.
    fake.stop();
    fake.restart();
    send(15, 16);
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(fake.wait_for_frames(16, WAIT)[15].parse().unwrap().message, "record 15");
}

#[test]
fn unix_datagram_receiver_restart_reconnects() {
    let path = temp_socket_path("dgram-restart");
    let fake = FakeSyslog::unix_datagram(&path);
    let (d, guard) = start(base(SyslogLayer::builder().unix(&path)));
    log(&d, || tracing::error!("before"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(fake.wait_for_frames(1, WAIT).len(), 1);
    // The daemon restarts: its socket is removed and bound again (a new socket at the path).
    fake.stop();
    log(&d, || tracing::error!("while away"));
    std::thread::sleep(Duration::from_millis(200));
    fake.restart();
    log(&d, || tracing::error!("after"));
    assert!(guard.flush(WAIT).is_complete());
    let msgs: Vec<String> = fake.wait_for_frames(3, WAIT).iter().map(|f| f.parse().unwrap().message).collect();
    assert_eq!(msgs, ["before", "while away", "after"]);
    assert!(syslog_stats(&guard).retried > 0);
}

#[test]
fn unix_socket_absent_at_start_then_appearing() {
    let path = temp_socket_path("late");
    let (d, guard) = start(base(SyslogLayer::builder().unix(&path)));
    let t = Instant::now();
    log(&d, || {
        for i in 0..200 {
            tracing::error!("early {i}");
        }
    });
    // The caller only enqueues: no socket, no wait (generous bound that only catches a hang).
    assert!(t.elapsed() < Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let s = syslog_stats(&guard);
    assert!(s.retried > 0 && s.delivered == 0, "{s}");
    assert!(s.last_error.as_deref().unwrap_or("").contains("unix socket"), "{s}");

    let fake = FakeSyslog::unix_datagram(&path);
    assert!(guard.flush(WAIT).is_complete());
    let frames = fake.wait_for_frames(200, WAIT);
    let msgs: Vec<String> = frames.iter().map(|f| f.parse().unwrap().message).collect();
    let want: Vec<String> = (0..200).map(|i| format!("early {i}")).collect();
    assert_eq!(msgs, want);
    let s = syslog_stats(&guard);
    assert_eq!((s.delivered, s.failed, s.dropped), (200, 0, 0), "{s}");
}

#[test]
fn one_megabyte_message_is_truncated_at_a_char_boundary_on_udp() {
    let fake = FakeSyslog::udp();
    // With the BOM, the strict parser requires valid UTF-8 after it.
    let (handler, guard) =
        base(SyslogLayer::builder().udp(fake.addr().unwrap().to_string())).bom(true).build_handler().unwrap();
    let big = "é".repeat(512 * 1024); // 1 MiB of two-byte chars
    handler.handle(record(Level::ERROR, &format!("x{big}")));
    assert!(guard.flush(WAIT).is_complete());
    let frames = fake.wait_for_frames(1, WAIT);
    assert!(frames[0].raw.len() <= 2048, "{} bytes", frames[0].raw.len());
    assert!(frames[0].raw.len() >= 2040, "the frame is filled: {} bytes", frames[0].raw.len());
    let m = frames[0].parse().expect("valid UTF-8 after the BOM, so the cut is at a char boundary");
    assert!(m.message.starts_with("xéé"));
    assert!(m.message.ends_with(MARKER));

    // Over TCP the default limit is rsyslog's 8,096 (the frame, without its octet count),
    // cut at a char boundary.
    let fake = FakeSyslog::tcp();
    let (handler, guard) = base(SyslogLayer::builder().tcp(fake.addr().unwrap().to_string())).build_handler().unwrap();
    handler.handle(record(Level::ERROR, &format!("x{big}")));
    assert!(guard.flush(WAIT).is_complete());
    let frames = fake.wait_for_frames(1, WAIT);
    assert!((8088..=8096).contains(&frames[0].raw.len()), "{} bytes", frames[0].raw.len());
    assert!(frames[0].parse().unwrap().message.ends_with(MARKER));

    // And it can be changed.
    let fake = FakeSyslog::tcp();
    let (handler, guard) = base(SyslogLayer::builder().tcp(fake.addr().unwrap().to_string()))
        .max_message_bytes(1000)
        .build_handler()
        .unwrap();
    handler.handle(record(Level::ERROR, &big));
    let mut r = record(Level::ERROR, "many fields");
    for i in 0..200 {
        r.fields.set(format!("f{i}"), Value::Str("v".repeat(30)));
    }
    handler.handle(r);
    assert!(guard.flush(WAIT).is_complete());
    let frames = fake.wait_for_frames(2, WAIT);
    assert!(frames.iter().all(|f| f.raw.len() <= 1000));
    assert!(frames[0].parse().unwrap().message.ends_with(MARKER));
    let m = frames[1].parse().unwrap();
    assert_eq!(m.message, "many fields");
    let sd = m.sd("fields@32473").unwrap();
    let omitted: usize = sd.param("watchbell.omitted").unwrap().parse().unwrap();
    assert_eq!(sd.params.len() - 1 + omitted, 200);
}

#[test]
fn stats_count_what_was_delivered_and_given_up() {
    // A TCP port nobody listens on, with a short retry budget: the records fail, counted.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let retry = Retry { budget: Duration::from_millis(300), ..fast_retry() };
    let (handler, guard) =
        base(SyslogLayer::builder().tcp(format!("127.0.0.1:{port}"))).retry(retry).build_handler().unwrap();
    handler.handle(record(Level::ERROR, "lost"));
    let _ = guard.flush(WAIT);
    let s = syslog_stats(&guard);
    assert_eq!((s.accepted, s.delivered, s.failed), (1, 0, 1), "{s}");
    assert!(s.retried >= 1, "{s}");
    assert!(s.last_error.as_deref().unwrap_or("").starts_with("syslog over TCP:"), "{s}");
}

#[test]
fn build_errors_name_the_setting() {
    let key = |b: SyslogBuilder| b.build_handler().map(|_| ()).unwrap_err().key;
    assert_eq!(key(SyslogLayer::builder().udp("no-port")), "udp");
    assert_eq!(key(SyslogLayer::builder().tcp("host:99999")), "tcp");
    assert_eq!(key(SyslogLayer::builder().udp("h:514").app_name("my app")), "app_name");
    assert_eq!(key(SyslogLayer::builder().udp("h:514").app_name("a".repeat(49))), "app_name");
    assert_eq!(key(SyslogLayer::builder().udp("h:514").hostname("")), "hostname");
    assert_eq!(key(SyslogLayer::builder().udp("h:514").sd_id("a b")), "sd_id");
    assert_eq!(key(SyslogLayer::builder().udp("h:514").max_message_bytes(100)), "max_message_bytes");
    assert_eq!(key(SyslogLayer::builder().udp("h:514").max_message_bytes(70_000)), "max_message_bytes");
    assert_eq!(key(SyslogLayer::builder().unix("")), "unix");
    let e = SyslogLayer::builder().udp("no-port").build_handler().map(|_| ()).unwrap_err();
    assert_eq!(e.to_string(), "watchbell-syslog: udp: \"no-port\" is not `host:port` (such as `127.0.0.1:514`)");
}

#[test]
fn no_structured_data_puts_fields_in_the_message_and_custom_format() {
    let fake = FakeSyslog::udp();
    let (handler, guard) = base(SyslogLayer::builder().udp(fake.addr().unwrap().to_string()))
        .no_structured_data()
        .build_handler()
        .unwrap();
    let mut r = record(Level::INFO, "hello");
    r.fields.set("user", Value::Str("bob smith".into()));
    handler.handle(r);
    assert!(guard.flush(WAIT).is_complete());
    let m = parse(&fake.wait_for_frames(1, WAIT)[0].raw).unwrap();
    assert!(m.structured_data.is_empty());
    assert_eq!(m.message, "hello user=\"bob smith\"");

    let fake = FakeSyslog::udp();
    let (handler, guard) = base(SyslogLayer::builder().udp(fake.addr().unwrap().to_string()))
        .format(|r: &Record, _: &watchbell_core::format::FormatContext| format!("{}|{}", r.target, r.message))
        .build_handler()
        .unwrap();
    handler.handle(record(Level::INFO, "hi"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(parse(&fake.wait_for_frames(1, WAIT)[0].raw).unwrap().message, "shop::pay|hi");
    let _: Arc<dyn Handler> = handler;
}
