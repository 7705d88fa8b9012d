//! coaster's Flask configuration keys: a Flask developer's environment, unchanged, alerts
//! through watchbell's sinks to each loopback fake, with coaster's defaults.
mod common;

use std::process::Command;

use common::{Fakes, CHAT, INDIA, US, WAIT};
use tracing_subscriber::prelude::*;
use watchbell::Config;
use watchbell_test::sms::{FakeExotel, EXOTEL_API_TOKEN, EXOTEL_SID, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN};

/// An environment as a Flask app configured for coaster has it (`FLASK_` + JSON values, as
/// Flask's `from_prefixed_env` reads them), with coaster's legacy names.
fn flask_env(fakes: &Fakes, exotel: &FakeExotel) -> Vec<(String, String)> {
    let v = |k: &str, v: String| (format!("FLASK_{k}"), v);
    vec![
        v("SITE_ID", "billing".into()),
        v("LOGFILE", fakes.dir.join("error.log").display().to_string()),
        v("ADMINS", r#"["oncall@example.com"]"#.into()),
        v("MAIL_DEFAULT_SENDER", r#"["Billing alerts", "alerts@example.com"]"#.into()),
        v("MAIL_SERVER", "127.0.0.1".into()),
        v("MAIL_PORT", fakes.smtp.port().to_string()),
        v(
            "SLACK_LOGGING_WEBHOOKS",
            format!(r#"[{{"levelnames": ["ERROR", "CRITICAL"], "url": "{}"}}]"#, fakes.slack.url()),
        ),
        v("TELEGRAM_ERROR_CHATID", CHAT.to_string()),
        v("TELEGRAM_ERROR_APIKEY", fakes.telegram.token().into()),
        v("ADMIN_NUMBERS", format!(r#"["{US}", "{INDIA}"]"#)),
        v("SMS_TWILIO_SID", TWILIO_ACCOUNT_SID.into()),
        v("SMS_TWILIO_TOKEN", TWILIO_AUTH_TOKEN.into()),
        v("SMS_TWILIO_FROM", "+14155550199".into()),
        v("SMS_EXOTEL_SID", exotel.sid().into()),
        v("SMS_EXOTEL_TOKEN", exotel.api_token().into()),
        v("SMS_EXOTEL_FROM", "08030000000".into()),
    ]
}

/// Only what coaster has no key for: where the loopback fakes of the providers' APIs are.
fn api_bases(fakes: &Fakes, exotel: &FakeExotel) -> Vec<(String, String)> {
    vec![
        ("WATCHBELL_TELEGRAM_API_BASE".into(), fakes.telegram.api_base()),
        ("WATCHBELL_TWILIO_API_BASE".into(), fakes.twilio.api_base()),
        ("WATCHBELL_EXOTEL_API_BASE".into(), exotel.api_base()),
    ]
}

/// coaster authenticates to Exotel with its SID and token: a fake that takes the SID as the
/// API key.
fn coaster_exotel() -> FakeExotel {
    FakeExotel::start_with(EXOTEL_SID, EXOTEL_SID, EXOTEL_API_TOKEN)
}

fn log_events() {
    tracing::info!("an info line below every level");
    tracing::warn!("disk almost full");
    tracing::error!(order = 42, "payment failed");
}

fn assert_alerts_arrived(fakes: &Fakes, exotel: &FakeExotel) {
    let slack = fakes.slack.wait_for_messages(1, WAIT);
    assert!(slack.iter().any(|m| m.to_string().contains("payment failed")), "slack: {slack:?}");
    let tg = fakes.telegram.wait_for_messages(1, WAIT);
    assert!(tg.iter().any(|m| m.text.contains("payment failed") && m.chat == CHAT.to_string()), "telegram: {tg:?}");
    let tw = fakes.twilio.wait_for_messages(1, WAIT);
    assert!(tw.iter().any(|s| s.to == US && s.body.contains("payment failed")), "twilio: {tw:?}");
    let ex = exotel.wait_for_messages(1, WAIT);
    assert!(ex.iter().any(|s| s.to.ends_with("9876543210") && s.body.contains("payment failed")), "exotel: {ex:?}");
    assert!(ex.iter().all(|s| s.user == EXOTEL_SID), "signed with the SID: {ex:?}");
    let mails = fakes.smtp.wait_for_mails(1, WAIT);
    assert!(
        mails.iter().any(|m| m.to == ["oncall@example.com"]
            && m.from.contains("alerts@example.com")
            && m.body_text().contains("payment failed")),
        "mail: {mails:?}"
    );
    // coaster's levels: the warning reached the file only (Slack's levelnames are ERROR and
    // CRITICAL; Telegram, mail and SMS take ERROR).
    assert!(slack.iter().chain(fakes.slack.messages().iter()).all(|m| !m.to_string().contains("disk almost")));
    assert!(fakes.telegram.messages().iter().all(|m| !m.text.contains("disk almost")));
    assert!(fakes.smtp.mails().iter().all(|m| !m.body_text().contains("disk almost")));
    let log = std::fs::read_to_string(fakes.dir.join("error.log")).expect("the log file exists");
    assert!(log.contains("payment failed") && log.contains("disk almost full"), "file: {log}");
    assert!(!log.contains("info line"), "the file's level is WARNING: {log}");
}

#[test]
fn a_flask_developers_environment_alerts_every_destination() {
    let fakes = Fakes::start("coaster-vars");
    let exotel = coaster_exotel();
    let config = Config::from_coaster_vars(flask_env(&fakes, &exotel))
        .expect("coaster's keys are understood")
        .with_vars(api_bases(&fakes, &exotel))
        .expect("the API bases apply over them");
    assert_eq!(config.app.as_deref(), Some("billing"));
    let (layers, guard) = config.layers::<tracing_subscriber::Registry>().expect("every sink builds");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), log_events);
    assert!(guard.flush(WAIT).is_complete(), "every sink delivered within {WAIT:?}");
    assert_alerts_arrived(&fakes, &exotel);
}

/// The child half of [`from_coaster_env_reads_the_process_environment`].
fn child() {
    let config = Config::from_coaster_env().expect("coaster's keys are understood").with_env().expect("api bases");
    let (layers, guard) = config.layers::<tracing_subscriber::Registry>().expect("every sink builds");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), log_events);
    assert!(guard.flush(WAIT).is_complete());
}

#[test]
fn from_coaster_env_reads_the_process_environment() {
    if std::env::var_os("WATCHBELL_TEST_COASTER_CHILD").is_some() {
        return child();
    }
    let fakes = Fakes::start("coaster-env");
    let exotel = coaster_exotel();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "from_coaster_env_reads_the_process_environment", "--test-threads=1", "--nocapture"]);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("WATCHBELL_") || k.starts_with("FLASK_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(flask_env(&fakes, &exotel)).envs(api_bases(&fakes, &exotel)).env("WATCHBELL_TEST_COASTER_CHILD", "1");
    let out = cmd.output().expect("the test binary runs");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the child failed:\n{text}");
    assert!(text.contains("1 passed"), "the child ran the test:\n{text}");
    assert_alerts_arrived(&fakes, &exotel);
}

#[test]
fn coasters_defaults_apply_when_keys_are_missing() {
    let config = Config::from_coaster_vars([("ADMINS", "ops@example.com")]).unwrap();
    let file = config.file.as_ref().expect("coaster logs to a file by default");
    assert_eq!(file.path.as_deref(), Some("error.log"));
    assert_eq!(file.level.as_deref(), Some("warn"));
    assert_eq!(file.when.as_deref(), Some("midnight"));
    assert_eq!(file.backup_count, Some(7), "Python's 0 (keep all) becomes a bound");
    let mail = config.mail.as_ref().expect("ADMINS sets up mail");
    assert_eq!(mail.host.as_deref(), Some("localhost"));
    assert_eq!(mail.from.as_deref(), Some("logs@example.com"));
    assert_eq!(mail.security.as_deref(), Some("plain"));
    assert_eq!(mail.level.as_deref(), Some("error"));
    assert_eq!(mail.to, ["ops@example.com"]);
    assert!(config.slack.is_none() && config.telegram.is_none() && config.sms.is_none());

    // A falsy LOGFILE turns the file off; nothing at all gives the file alone.
    let off = Config::from_coaster_vars([("FLASK_LOGFILE", "null")]).unwrap();
    assert!(off.file.is_none() && off.mail.is_none());
    let off = Config::from_coaster_vars([("LOGFILE", "")]).unwrap();
    assert!(off.file.is_none());
}

#[test]
fn current_names_win_over_legacy_names_and_flask_prefix_wins() {
    let config = Config::from_coaster_vars([
        ("LOGFILE", "old.log"),
        ("LOG_FILE", "new.log"),
        ("LOG_FILE_LEVEL", "40"),
        ("LOGFILE_LEVEL", "DEBUG"),
        ("ADMINS", "a@example.com"),
        ("FLASK_LOG_EMAIL_TO", r#"["b@example.com", "c@example.com"]"#),
        ("MAIL_USE_TLS", "True"),
        ("MAIL_USERNAME", "bot"),
        ("MAIL_PASSWORD", "hunter2"),
        ("LOG_TELEGRAM_CHATID", "@alerts"),
        ("LOG_TELEGRAM_APIKEY", "123:abc"),
        ("LOG_TELEGRAM_THREADID", "7"),
    ])
    .unwrap();
    let file = config.file.unwrap();
    assert_eq!((file.path.as_deref(), file.level.as_deref()), (Some("new.log"), Some("error")));
    let mail = config.mail.unwrap();
    assert_eq!(mail.to, ["b@example.com", "c@example.com"]);
    assert_eq!(mail.security.as_deref(), Some("starttls"));
    assert_eq!(mail.username.as_deref(), Some("bot"));
    let tg = config.telegram.unwrap();
    assert_eq!(tg.chats, [watchbell::config::ChatRef::Name("@alerts".into())]);
    assert_eq!(tg.topic, Some(7));
    assert_eq!(tg.level.as_deref(), Some("warn"), "coaster's LOG_TELEGRAM_LEVEL defaults to WARNING");

    let flask = Config::from_coaster_vars([("FLASK_LOGFILE", "flask.log"), ("LOGFILE", "plain.log")]).unwrap();
    assert_eq!(flask.file.unwrap().path.as_deref(), Some("flask.log"));
}

#[test]
fn bad_values_name_the_variable() {
    let err = Config::from_coaster_vars([
        ("FLASK_LOGFILE_LEVEL", "LOUD"),
        ("FLASK_ADMIN_NUMBERS", r#"["+14155550100"]"#),
        ("FLASK_SLACK_LOGGING_WEBHOOKS", r#"[{"levelnames": ["ERROR"]}]"#),
    ])
    .unwrap_err();
    let text = err.to_string();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"FLASK_LOGFILE_LEVEL"), "{text}");
    assert!(keys.contains(&"FLASK_ADMIN_NUMBERS"), "no SMS provider: {text}");
    assert!(keys.contains(&"FLASK_SLACK_LOGGING_WEBHOOKS[0].url"), "{text}");
}
