//! The loopback fakes of every destination, and the config that points at them.
#![allow(dead_code)]
use std::path::PathBuf;
use std::time::Duration;

use watchbell_test::sms::{EXOTEL_API_KEY, EXOTEL_API_TOKEN, EXOTEL_SID, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN};

pub const WAIT: Duration = Duration::from_secs(20);
pub const US: &str = "+14155550100";
pub const INDIA: &str = "+919876543210";
pub const CHAT: i64 = -1001234567890;

#[allow(unused_imports)] // each test binary uses part of this module
pub use watchbell_test::stack::{temp_dir, Destinations as Fakes};

/// What these tests build on the shared destinations: the config pointing at them, as TOML
/// and as variables, and the check that each received an error.
pub trait FakesExt {
    fn log_path(&self) -> PathBuf;
    fn toml(&self) -> String;
    fn vars(&self) -> Vec<(String, String)>;
    fn assert_each_delivered(&self, message: &str);
}

impl FakesExt for Fakes {
    fn log_path(&self) -> PathBuf {
        self.dir.join("app.log")
    }

    /// Every sink, as TOML.
    fn toml(&self) -> String {
        self.fill(
            r##"
app = "billing"
environment = "test"

[fmt]
level = "warn"

[[slack.webhooks]]
url = "{slack}"
levels = ["error", "warning"]
channel = "#alerts"

[telegram]
token = "{telegram_token}"
chats = [{chat}]
api_base = "{telegram}"
level = "warn"

[sms]
recipients = ["{us}", "{india}"]
level = "error"

[sms.twilio]
sid = "{twilio_sid}"
token = "{twilio_token}"
from = "+14155550199"
api_base = "{twilio}"

[sms.exotel]
sid = "{exotel_sid}"
api_key = "{exotel_key}"
token = "{exotel_token}"
from = "08030000000"
api_base = "{exotel}"

[mail]
host = "127.0.0.1"
port = {smtp_port}
security = "plain"
from = "alerts@example.com"
to = ["oncall@example.com"]
level = "error"
timeout = "5s"

[http]
url = "{collector}"
encoding = "ndjson"
level = "error"

[syslog]
transport = "udp"
address = "{syslog}"
protocol = "5424"
facility = "local0"

[file]
path = "{file}"
level = "warn"
max_bytes = 1000000
backup_count = 3

[ticketing]
url = "{tickets}"
level = "error"
"##,
        )
        .replace("{chat}", &CHAT.to_string())
        .replace("{us}", US)
        .replace("{india}", INDIA)
        .replace("{file}", &self.log_path().display().to_string())
    }

    /// Every sink, as `WATCHBELL_*` variables.
    fn vars(&self) -> Vec<(String, String)> {
        let v = |k: &str, v: String| (format!("WATCHBELL_{k}"), v);
        vec![
            v("APP", "billing".into()),
            v("LEVEL", "warn".into()),
            v("SLACK_WEBHOOK", self.slack.url()),
            v("SLACK_LEVELS", "error,warn".into()),
            v("TELEGRAM_TOKEN", self.telegram.token().into()),
            v("TELEGRAM_CHAT", CHAT.to_string()),
            v("TELEGRAM_API_BASE", self.telegram.api_base()),
            v("SMS_RECIPIENTS", format!("{US}, {INDIA}")),
            v("TWILIO_SID", TWILIO_ACCOUNT_SID.into()),
            v("TWILIO_TOKEN", TWILIO_AUTH_TOKEN.into()),
            v("TWILIO_FROM", "+14155550199".into()),
            v("TWILIO_API_BASE", self.twilio.api_base()),
            v("EXOTEL_SID", EXOTEL_SID.into()),
            v("EXOTEL_API_KEY", EXOTEL_API_KEY.into()),
            v("EXOTEL_TOKEN", EXOTEL_API_TOKEN.into()),
            v("EXOTEL_FROM", "08030000000".into()),
            v("EXOTEL_API_BASE", self.exotel.api_base()),
            v("MAIL_HOST", "127.0.0.1".into()),
            v("MAIL_PORT", self.smtp.port().to_string()),
            v("MAIL_SECURITY", "plain".into()),
            v("MAIL_FROM", "alerts@example.com".into()),
            v("MAIL_TO", "oncall@example.com".into()),
            v("HTTP_URL", self.collector.url()),
            v("SYSLOG_TRANSPORT", "udp".into()),
            v("SYSLOG_ADDRESS", self.syslog.addr().unwrap().to_string()),
            v("FILE_PATH", self.log_path().display().to_string()),
            v("TICKETING_URL", self.tickets_url()),
        ]
    }

    /// Checks that every destination received the error `message`.
    fn assert_each_delivered(&self, message: &str) {
        let slack = self.slack.wait_for_messages(1, WAIT);
        assert!(slack.iter().any(|m| m.to_string().contains(message)), "slack: {slack:?}");

        let tg = self.telegram.wait_for_messages(1, WAIT);
        assert!(tg.iter().any(|m| m.text.contains(message) && m.chat == CHAT.to_string()), "telegram: {tg:?}");

        let tw = self.twilio.wait_for_messages(1, WAIT);
        assert!(tw.iter().any(|s| s.to == US && s.body.contains(message)), "twilio: {tw:?}");
        let ex = self.exotel.wait_for_messages(1, WAIT);
        assert!(ex.iter().any(|s| s.to.ends_with("9876543210") && s.body.contains(message)), "exotel: {ex:?}");

        let mails = self.smtp.wait_for_mails(1, WAIT);
        assert!(
            mails.iter().any(|m| m.to == ["oncall@example.com"] && m.body_text().contains(message)),
            "mail: {mails:?}"
        );

        let records = self.collector.wait_for_records(1, WAIT);
        assert!(records.iter().any(|r| r.to_string().contains(message)), "collector: {records:?}");

        let frames = self.syslog.wait_for_frames(1, WAIT);
        assert!(frames.iter().any(|f| f.text().contains(message)), "syslog: {frames:?}");

        let log = std::fs::read_to_string(self.log_path()).expect("the log file exists");
        assert!(log.contains(message), "file: {log}");

        let mut store = watchbell::ticketing::TicketStore::open(&self.tickets_url()).unwrap();
        let tickets = store.list_tickets(&watchbell::ticketing::TicketQuery::default()).unwrap();
        assert!(tickets.iter().any(|t| t.message.contains(message) && t.occurrence_count == 1), "tickets: {tickets:?}");
    }
}
