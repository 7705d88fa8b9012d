//! The per-sink settings on the wire: the level → severity map, the MSGID from a field, the
//! zone of RFC 3164 timestamps (across daylight-saving changes), and the BOM.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use watchbell_core::{Guard, Handler, Level, Record, Value};
use watchbell_syslog::{Protocol, Severity, SyslogBuilder, SyslogLayer, Zone};
use watchbell_test::syslog::{temp_socket_path, FakeSyslog, Frame};

const WAIT: Duration = Duration::from_secs(20);

/// Europe/Berlin's rule: CET (UTC+1), CEST (UTC+2) from the last Sunday of March 02:00 to the
/// last Sunday of October 03:00.
const BERLIN: &str = "CET-1CEST,M3.5.0,M10.5.0/3";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn record(level: Level, msg: &str, time: SystemTime) -> Record {
    let mut r = Record::new(level, "shop::auth", msg);
    r.time = time;
    r
}

fn base(b: SyslogBuilder) -> SyslogBuilder {
    b.app_name("shop").hostname("web-1").pid(4242)
}

/// Sends `records` through `b` and returns the frames the fake received.
fn send(fake: &FakeSyslog, b: SyslogBuilder, records: Vec<Record>) -> Vec<Frame> {
    let (handler, guard): (_, Guard) = b.build_handler().expect("valid configuration");
    let n = records.len();
    for r in records {
        handler.handle(r);
    }
    assert!(guard.flush(WAIT).is_complete());
    let frames = fake.wait_for_frames(n, WAIT);
    assert_eq!(frames.len(), n);
    frames
}

fn udp(fake: &FakeSyslog) -> SyslogBuilder {
    base(SyslogLayer::builder().udp(fake.addr().unwrap().to_string()))
}

#[test]
fn a_custom_severity_map_reaches_the_wire() {
    let fake = FakeSyslog::udp();
    let b = udp(&fake)
        .level(Level::TRACE)
        .level_severity(Level::ERROR, Severity::Critical)
        .level_severity(Level::WARN, "notice".parse().unwrap())
        .level_severity(Level::TRACE, Severity::from_code(7).unwrap());
    let t = at(1_065_392_055);
    let levels = [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE];
    let frames = send(&fake, b, levels.iter().map(|l| record(*l, "m", t)).collect());
    let got: Vec<(u8, u8)> = frames.iter().map(|f| f.parse().map(|m| (m.facility, m.severity)).unwrap()).collect();
    // user(1); crit(2), notice(5), and the defaults info(6), debug(7), debug(7).
    assert_eq!(got, [(1, 2), (1, 5), (1, 6), (1, 7), (1, 7)]);
    assert!(frames[0].text().starts_with("<10>1 "), "{}", frames[0].text());
    assert!(frames[1].text().starts_with("<13>1 "), "{}", frames[1].text());

    // The same map in RFC 3164.
    let fake = FakeSyslog::udp();
    let b = udp(&fake).protocol(Protocol::Rfc3164).zone(Zone::utc()).level_severity(Level::INFO, Severity::Notice);
    let frames = send(&fake, b, vec![record(Level::INFO, "m", t)]);
    assert_eq!(frames[0].text(), "<13>Oct  5 22:14:15 web-1 shop[4242]: m");
}

#[test]
fn severity_names_parse_as_syslog_conf_writes_them() {
    let cases = [
        ("emerg", 0),
        ("PANIC", 0),
        ("alert", 1),
        ("crit", 2),
        ("critical", 2),
        ("LOG_ERR", 3),
        ("error", 3),
        ("warn", 4),
        ("warning", 4),
        ("notice", 5),
        ("info", 6),
        ("informational", 6),
        ("debug", 7),
        ("5", 5),
    ];
    for (name, code) in cases {
        assert_eq!(name.parse::<Severity>().map(Severity::code), Ok(code), "{name}");
    }
    assert!("8".parse::<Severity>().is_err());
    assert!("loud".parse::<Severity>().is_err());
    for code in 0..8 {
        let s = Severity::from_code(code).unwrap();
        assert_eq!(s.name().parse::<Severity>(), Ok(s));
    }
}

#[test]
fn the_msgid_comes_from_a_field_sanitised_or_is_nil() {
    let fake = FakeSyslog::udp();
    let t = at(1_065_392_055);
    let mut plain = record(Level::WARN, "bad password", t);
    plain.fields.set("event", Value::Str("login_failed".into()));
    plain.fields.set("user", Value::Str("bob".into()));
    let mut hostile = record(Level::WARN, "odd", t);
    hostile.fields.set("event", Value::Str("log in\tfailé]\"=".into()));
    let mut long = record(Level::WARN, "long", t);
    long.fields.set("event", Value::Str("x".repeat(40)));
    let mut number = record(Level::WARN, "number", t);
    number.fields.set("event", Value::U64(4625));
    let mut empty = record(Level::WARN, "empty", t);
    empty.fields.set("event", Value::Str(String::new()));
    let absent = record(Level::WARN, "absent", t);
    let frames = send(&fake, udp(&fake).msgid_field("event"), vec![plain, hostile, long, number, empty, absent]);
    assert_eq!(
        frames[0].text(),
        "<12>1 2003-10-05T22:14:15.000000Z web-1 shop 4242 login_failed \
         [fields@32473 event=\"login_failed\" user=\"bob\"] bad password"
    );
    let ids: Vec<Option<String>> = frames.iter().map(|f| f.parse().unwrap().msgid).collect();
    let want = [Some("log_in_fail_]\"=".to_owned()), Some("x".repeat(32)), Some("4625".to_owned()), None, None];
    assert_eq!(&ids[1..], &want);
    // Without the setting the MSGID stays the NILVALUE even when the field is there.
    let fake = FakeSyslog::udp();
    let mut r = record(Level::WARN, "m", t);
    r.fields.set("event", Value::Str("login_failed".into()));
    let frames = send(&fake, udp(&fake), vec![r]);
    assert_eq!(frames[0].parse().unwrap().msgid, None);
}

#[test]
fn rfc3164_time_is_local_time_of_the_zone_across_both_dst_changes() {
    let path = temp_socket_path("zone3164");
    let fake = FakeSyslog::unix_datagram(&path);
    let b = SyslogLayer::builder().unix(&path).app_name("shop").pid(7).zone(Zone::posix(BERLIN).unwrap());
    let times = [
        1_774_745_999, // 2026-03-29T00:59:59Z: 01:59:59 CET
        1_774_746_000, // 2026-03-29T01:00:00Z: clocks jump to 03:00:00 CEST
        1_792_889_999, // 2026-10-25T00:59:59Z: 02:59:59 CEST
        1_792_890_000, // 2026-10-25T01:00:00Z: clocks go back to 02:00:00 CET
        1_793_487_600, // 2026-10-31T23:00:00Z: already 1 November in Berlin, a one-digit day
        1_798_761_599, // 2026-12-31T23:59:59Z: already 2027 in Berlin
    ];
    let frames = send(&fake, b, times.iter().map(|s| record(Level::INFO, "tick", at(*s))).collect());
    let got: Vec<String> = frames.iter().map(Frame::text).collect();
    assert_eq!(
        got,
        [
            "<14>Mar 29 01:59:59 shop[7]: tick",
            "<14>Mar 29 03:00:00 shop[7]: tick",
            "<14>Oct 25 02:59:59 shop[7]: tick",
            "<14>Oct 25 02:00:00 shop[7]: tick",
            "<14>Nov  1 00:00:00 shop[7]: tick",
            "<14>Jan  1 00:59:59 shop[7]: tick",
        ]
    );
    for f in &frames {
        f.parse().expect("a valid RFC 3164 frame");
    }

    // UTC when asked.
    fake.clear();
    let b = SyslogLayer::builder().unix(&path).app_name("shop").pid(7).zone(Zone::utc());
    let frames = send(&fake, b, vec![record(Level::INFO, "tick", at(1_774_746_000))]);
    assert_eq!(frames[0].text(), "<14>Mar 29 01:00:00 shop[7]: tick");
}

/// Set in the child process of the test below: the test body runs there, with `TZ` set.
const CHILD: &str = "WATCHBELL_SYSLOG_LOCAL_ZONE_CHILD";

#[test]
fn rfc3164_time_defaults_to_the_local_zone_of_tz() {
    if std::env::var_os(CHILD).is_some() {
        let fake = FakeSyslog::udp();
        let b = udp(&fake).protocol(Protocol::Rfc3164);
        // 2026-07-01T12:00:00Z is 14:00 summer time in Berlin.
        let frames = send(&fake, b, vec![record(Level::INFO, "noon", at(1_782_907_200))]);
        assert_eq!(frames[0].text(), "<14>Jul  1 14:00:00 web-1 shop[4242]: noon");
        return;
    }
    // The zone comes from TZ, read by a fresh process (setting TZ in this multi-threaded
    // test process would be unsound).
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "rfc3164_time_defaults_to_the_local_zone_of_tz", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("TZ", BERLIN)
        .output()
        .expect("the test binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

#[test]
fn the_bom_is_off_by_default_and_written_when_asked() {
    let t = at(1_065_392_055);
    let fake = FakeSyslog::udp();
    let frames = send(&fake, udp(&fake), vec![record(Level::INFO, "héllo", t)]);
    assert_eq!(frames[0].text(), "<14>1 2003-10-05T22:14:15.000000Z web-1 shop 4242 - - héllo");
    assert!(!frames[0].parse().unwrap().bom);

    let fake = FakeSyslog::tcp();
    let b = base(SyslogLayer::builder().tcp(fake.addr().unwrap().to_string())).bom(true);
    let frames = send(&fake, b, vec![record(Level::INFO, "héllo", t), record(Level::INFO, "", t)]);
    assert_eq!(frames[0].text(), "<14>1 2003-10-05T22:14:15.000000Z web-1 shop 4242 - - \u{feff}héllo");
    let m = frames[0].parse().unwrap();
    assert!(m.bom);
    assert_eq!(m.message, "héllo");
    // An empty MSG has neither the separating space nor a BOM.
    assert_eq!(frames[1].text(), "<14>1 2003-10-05T22:14:15.000000Z web-1 shop 4242 - -");
}
