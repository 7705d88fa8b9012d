//! The `[syslog]` keys through `watchbell::Config`: the severity map, `msgid_field`, `bom` and
//! `zone`, from a file and from `WATCHBELL_SYSLOG_*` variables, on the wire of a loopback
//! receiver; and the errors of bad values.
#![cfg(all(feature = "config", feature = "syslog"))]

use std::time::{Duration, SystemTime};

use tracing_subscriber::prelude::*;
use watchbell::syslog::Zone;
use watchbell::Config;
use watchbell_test::syslog::FakeSyslog;

const WAIT: Duration = Duration::from_secs(20);

/// Logs a WARN with `event = "login_failed"` and an ERROR under the layers of `config`.
fn log_two(config: &Config, fake: &FakeSyslog) -> Vec<watchbell_test::syslog::SyslogMessage> {
    let (layers, guard) = config.layers::<tracing_subscriber::Registry>().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
        tracing::warn!(event = "login failed", "bad password");
        tracing::error!("disk full");
    });
    assert!(guard.shutdown(WAIT).is_complete());
    let frames = fake.wait_for_frames(2, WAIT);
    assert_eq!(frames.len(), 2);
    frames.iter().map(|f| f.parse().unwrap()).collect()
}

#[test]
fn syslog_keys_from_a_file_reach_the_wire() {
    let fake = FakeSyslog::udp();
    let toml = format!(
        r#"app = "shop"
[syslog]
transport = "udp"
address = "{}"
level = "warn"
msgid_field = "event"
bom = true
[syslog.severities]
warn = "notice"
error = "crit"
"#,
        fake.addr().unwrap()
    );
    let msgs = log_two(&Config::from_toml_str(&toml).unwrap(), &fake);
    assert_eq!((msgs[0].severity, msgs[1].severity), (5, 2));
    assert_eq!(msgs[0].msgid.as_deref(), Some("login_failed"));
    assert_eq!(msgs[1].msgid, None);
    assert!(msgs[0].bom && msgs[1].bom);
    assert_eq!(msgs[1].message, "disk full");
}

#[test]
fn syslog_keys_from_environment_variables_reach_the_wire() {
    let fake = FakeSyslog::udp();
    let vars = [
        ("WATCHBELL_SYSLOG_TRANSPORT", "udp".to_owned()),
        ("WATCHBELL_SYSLOG_ADDRESS", fake.addr().unwrap().to_string()),
        ("WATCHBELL_SYSLOG_PROTOCOL", "3164".to_owned()),
        ("WATCHBELL_SYSLOG_ZONE", "CET-1CEST,M3.5.0,M10.5.0/3".to_owned()),
        ("WATCHBELL_SYSLOG_SEVERITIES_WARN", "notice".to_owned()),
        ("WATCHBELL_SYSLOG_SEVERITIES_ERROR", "1".to_owned()),
        ("WATCHBELL_SYSLOG_MSGID_FIELD", "event".to_owned()),
        ("WATCHBELL_SYSLOG_BOM", "false".to_owned()),
    ];
    let config = Config::default().with_vars(vars).unwrap();
    let t = config.syslog.as_ref().unwrap();
    assert_eq!(t.bom, Some(false));
    assert_eq!(t.msgid_field.as_deref(), Some("event"));
    let berlin = Zone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
    let before = berlin.civil(SystemTime::now());
    let msgs = log_two(&config, &fake);
    let after = berlin.civil(SystemTime::now());
    assert_eq!((msgs[0].severity, msgs[1].severity), (5, 1));
    // The RFC 3164 stamp is Berlin's wall clock (one or two hours ahead of UTC).
    let stamp = msgs[0].timestamp.clone().unwrap();
    let hm: (u8, u8) = (stamp[7..9].parse().unwrap(), stamp[10..12].parse().unwrap());
    assert!(
        [before, after].iter().any(|c| (c.hour, c.minute) == hm),
        "{stamp} is not Berlin time ({before:?} .. {after:?})"
    );
}

#[test]
fn bad_syslog_values_are_reported_under_their_keys() {
    let toml = r#"[syslog]
transport = "udp"
address = "127.0.0.1:514"
zone = "Mars/Olympus"
[syslog.severities]
warn = "loud"
sometimes = "info"
"#;
    let err = Config::from_toml_str(toml).unwrap_err().to_string();
    assert!(err.contains("syslog.zone"), "{err}");
    assert!(err.contains("syslog.severities.warn"), "{err}");
    assert!(err.contains("syslog.severities.sometimes"), "{err}");
}
