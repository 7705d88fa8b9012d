//! Every destination at once, on loopback: the fakes the demo runs against and the tests that
//! build a whole watchbell stack use, with a temp dir for files and a SQLite ticket database.
//!
//! ```
//! use watchbell_test::stack::Destinations;
//!
//! let d = Destinations::start("doc");
//! let toml = d.fill("[mail]\nhost = \"127.0.0.1\"\nport = {smtp_port}\n[http]\nurl = \"{collector}\"");
//! assert!(toml.contains(&d.smtp.port().to_string()));
//! assert!(d.tickets_url().starts_with("sqlite://"));
//! ```
use std::path::PathBuf;

use crate::collectors::FakeNdjson;
use crate::journald::FakeJournald;
use crate::slack::FakeSlack;
use crate::sms::{FakeExotel, FakeTwilio};
use crate::smtp::FakeSmtp;
use crate::syslog::FakeSyslog;
use crate::telegram::FakeTelegram;

/// A fresh, empty directory `watchbell-<name>-<pid>` in the system's temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("watchbell-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

/// The fakes of Slack, Telegram, Twilio, Exotel, SMTP, an NDJSON collector, a UDP syslog
/// receiver and journald, and a temp dir.
#[derive(Debug)]
pub struct Destinations {
    /// Slack incoming webhooks.
    pub slack: FakeSlack,
    /// The Telegram Bot API.
    pub telegram: FakeTelegram,
    /// Twilio's Messages API.
    pub twilio: FakeTwilio,
    /// Exotel's SMS API.
    pub exotel: FakeExotel,
    /// An SMTP server (plain).
    pub smtp: FakeSmtp,
    /// An NDJSON log collector.
    pub collector: FakeNdjson,
    /// A UDP syslog receiver.
    pub syslog: FakeSyslog,
    /// A systemd-journald stand-in (the native protocol on a unix socket).
    pub journal: FakeJournald,
    /// PagerDuty's Events API v2.
    pub pagerduty: crate::notify::FakePagerDuty,
    /// A fresh directory for log files and the ticket database.
    pub dir: PathBuf,
}

impl Destinations {
    /// Starts every fake; `name` names the temp dir.
    pub fn start(name: &str) -> Destinations {
        Destinations {
            slack: FakeSlack::start(),
            telegram: FakeTelegram::start(),
            twilio: FakeTwilio::start(),
            exotel: FakeExotel::start(),
            smtp: FakeSmtp::start(),
            collector: FakeNdjson::start(),
            syslog: FakeSyslog::udp(),
            journal: FakeJournald::start(),
            pagerduty: crate::notify::FakePagerDuty::start(),
            dir: temp_dir(name),
        }
    }

    /// A SQLite ticket database in the temp dir.
    pub fn tickets_url(&self) -> String {
        format!("sqlite://{}", self.dir.join("tickets.db").display())
    }

    /// `template` with the fakes' addresses and credentials filled in: `{slack}` (a webhook URL),
    /// `{telegram}` (the API base) and `{telegram_token}`, `{twilio}`, `{twilio_sid}`,
    /// `{twilio_token}`, `{exotel}`, `{exotel_sid}`, `{exotel_key}`, `{exotel_token}`,
    /// `{smtp_port}`, `{collector}`, `{syslog}` (host:port), `{journald}` (a socket path), `{dir}`
    /// and `{tickets}`.
    pub fn fill(&self, template: &str) -> String {
        template
            .replace("{slack}", &self.slack.url())
            .replace("{telegram_token}", self.telegram.token())
            .replace("{telegram}", &self.telegram.api_base())
            .replace("{twilio_sid}", self.twilio.account_sid())
            .replace("{twilio_token}", self.twilio.auth_token())
            .replace("{twilio}", &self.twilio.api_base())
            .replace("{exotel_sid}", self.exotel.sid())
            .replace("{exotel_key}", self.exotel.api_key())
            .replace("{exotel_token}", self.exotel.api_token())
            .replace("{exotel}", &self.exotel.api_base())
            .replace("{smtp_port}", &self.smtp.port().to_string())
            .replace("{collector}", &self.collector.url())
            .replace("{syslog}", &self.syslog.addr().expect("a UDP receiver").to_string())
            .replace("{journald}", &self.journal.path().display().to_string())
            .replace("{pagerduty}", &self.pagerduty.url())
            .replace("{tickets}", &self.tickets_url())
            .replace("{dir}", &self.dir.display().to_string())
    }
}
