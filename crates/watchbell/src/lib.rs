//! # watchbell
//!
//! watchbell gets a service's log events to the people and systems who must see them. Each
//! destination is a `tracing_subscriber::Layer` that you stack on
//! `tracing_subscriber::registry()` next to what you already have; `log` records reach the same
//! layers through the bridge. Delivery happens on watchbell's own threads, bounded, retried,
//! rate limited and counted, so logging never slows or endangers the service.
//!
//! This crate gathers the suite behind one dependency, a Cargo feature per part:
//!
//! | feature | crate | what |
//! |---|---|---|
//! | (always) | [`watchbell_core`] as [`core`] | records, capture, filters, rate limit, delivery, guards, formats, redaction |
//! | `log` (default) | `watchbell-log` as `log` | the `log` bridge and a direct `log` logger |
//! | `http` | `watchbell-core/http` | the HTTP transport, for writing HTTP sinks of your own |
//! | `slack` | `watchbell-slack` as `slack` | Slack incoming webhooks, several webhooks each with its own levels |
//! | `telegram` | `watchbell-telegram` as `telegram` | Telegram Bot API `sendMessage` to chats, channels and forum topics |
//! | `sms` | `watchbell-sms` as `sms` | SMS through Twilio and Exotel, routed by number prefix, with cost caps |
//! | `mail` | `watchbell-mail` as `mail` | SMTP mails through lettre, with related records of a batch |
//! | `http-batch` | `watchbell-http` as `http_batch` | batches to log collectors: NDJSON, JSON, Loki, Elasticsearch, OTLP |
//! | `syslog` | `watchbell-syslog` as `syslog` | RFC 3164 / 5424 over unix, UDP and TCP sockets |
//! | `file` | `watchbell-file` as `file` | size- and time-rotated files, reopened after logrotate |
//! | `fingers-crossed` | `watchbell-fingers-crossed` as `fingers_crossed` | withhold records until one reaches the action level |
//! | `ticketing` | `watchbell-ticketing` as `ticketing` | error tickets grouped by call site in SQLite |
//! | `postgres` | `watchbell-ticketing/postgres` | tickets in PostgreSQL |
//! | `command` | `watchbell-command` as `command` | run a program per record or batch (argv templates, no shell), killed with its process group at its timeout |
//! | `journald` | `watchbell-journald` as `journald` | the systemd journal's native protocol, fields as journal fields |
//! | `desktop` | `watchbell-desktop` as `desktop` | freedesktop notifications over D-Bus |
//! | `notify` | `watchbell-notify` as `notify` | push and paging: ntfy, Discord webhooks, PagerDuty |
//! | `full` | all of the above | |
//!
//! Every sink builder shares the common settings of [`SinkOptions`](prelude::SinkOptions)
//! (`rate_limit`, `cap`/`hourly_cap`, `pace`, `timeout`, `retry`, `queue_records`, `overflow`,
//! `allow_plain_http`), in the prelude.
//!
//! ```
//! use std::time::Duration;
//! use watchbell::prelude::*;
//! use tracing_subscriber::prelude::*;
//!
//! // Any sink: a closure is one. Real sinks speak a destination's protocol.
//! let delivery = Delivery::builder("stdout", |batch: &Batch| {
//!     batch.records.iter().for_each(|r| println!("{} {}", r.level, r.message));
//!     Outcome::Delivered
//! })
//! .spawn()
//! .unwrap();
//! let handler = std::sync::Arc::new(RateLimit::new(delivery, 5, Duration::from_secs(60)));
//! let guard = Guard::new(handler.clone());
//! let subscriber = tracing_subscriber::registry()
//!     .with(CaptureLayer::new(handler).with_level(Level::ERROR));
//! tracing::subscriber::with_default(subscriber, || tracing::error!("disk full"));
//! guard.shutdown(Duration::from_secs(5));
//! ```
//!
//! # Configuration
//!
//! With the `config` feature (in `full`), the whole setup comes from a TOML file and/or
//! `WATCHBELL_*` environment variables, like coaster's `init_app(app)`:
//!
//! ```no_run
//! # #[cfg(feature = "config")]
//! fn main() -> Result<(), watchbell::ConfigError> {
//!     // The file named by WATCHBELL_CONFIG (if set), then the WATCHBELL_* variables; a
//!     // registry with a fmt layer, every configured sink and the `log` bridge.
//!     let _guard = watchbell::init()?;
//!     tracing::error!(order = 42, "payment failed");
//!     Ok(())
//! }
//! # #[cfg(not(feature = "config"))]
//! # fn main() {}
//! ```
//!
//! To compose your own registry, take the layers (a `Vec` of layers is a layer) and one guard:
//!
//! ```
//! # #[cfg(feature = "config")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tracing_subscriber::prelude::*;
//!
//! let path = std::env::temp_dir().join("watchbell-doc-alerts.log");
//! let config = watchbell::Config::from_toml_str(&format!(r#"
//!     app = "billing"
//!     [file]
//!     path = {path:?}
//!     level = "error"
//! "#))?;
//! let (layers, guard) = config.layers::<tracing_subscriber::Registry>()?;
//! let subscriber = tracing_subscriber::registry().with(layers);
//! tracing::subscriber::with_default(subscriber, || tracing::error!("disk full"));
//! guard.shutdown(std::time::Duration::from_secs(5));
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "config"))]
//! # fn main() {}
//! ```
//!
//! [`Config::from_toml_str`], [`Config::from_file`], [`Config::from_env`],
//! [`Config::with_env`] (variables over a file) and [`Config::load`] read a configuration;
//! [`Config::layers`] builds it; [`init`] / [`init_with`] install it globally. `Config` is a
//! plain `serde::Deserialize` struct (every field public), so it can also be a part of your own
//! configuration.
//!
//! ## The file
//!
//! Every table is optional; a sink is set up when its table is there, and needs its Cargo
//! feature (`slack`, `telegram`, … or `full`). A complete file:
//!
//! ```toml
#![cfg_attr(feature = "config", doc = include_str!("config/example.toml"))]
//! ```
//!
//! - **Secrets** (tokens, passwords, webhook URLs, the ticket database URL) are a string, or
//!   `{ env = "VAR" }` (an environment variable), or `{ file = "/path" }` (a file's content,
//!   trailing whitespace trimmed). They are read by [`Config::layers`], and never appear in an
//!   error or in `Debug` (a literal shows as `"***"`, the others as where they come from).
//! - **Levels**: `error`, `warn` (`warning`), `info`, `debug`, `trace`; `critical` = `error`.
//! - **Durations**: a number and a unit: `500ms`, `60s`, `5m`, `1h`, `1d`.
//! - **Common delivery settings**, in any sink table: `pace`, `timeout` (durations),
//!   `queue_records`, `hourly_cap` (the most alerts per hour to that sink across all callsites,
//!   then one notice and the rest counted; `0`: no cap; SMS has 10 by default, the others
//!   none), `allow_plain_http` (also plain SMTP to a host that is not loopback).
//!   Loopback test servers need none of them: `api_base` (Telegram, Twilio, Exotel), a loopback
//!   `url`, and `security = "plain"` to a loopback SMTP host are ordinary keys.
//! - **Defaults**: each sink's own (see its crate), except `[file] level`, which is `warn` as in
//!   coaster. `[rate_limit]`, when there, replaces every sink's rate limit (`limit = 0`: none).
//! - **`[fingers_crossed] deliver_to`**: the sinks named there are built as handlers
//!   (`build_handler()`) behind one fan-out, behind one fingers-crossed layer: they receive the
//!   buffered records of a scope (`scope`) together when one reaches `action_level` (an
//!   `Escalation` batch, debug context included, whatever the sink's own `level`), and no
//!   direct records. The other sinks keep their own layers.
//!
//! ## Environment variables
//!
//! Each variable sets one key (a list is comma-separated; a chat list takes ids and
//! `@names`); set over a file with [`Config::with_env`] / [`Config::load`]. An unknown
//! `WATCHBELL_*` variable is an error, except `WATCHBELL_CONFIG` (the file [`Config::load`]
//! reads) and `WATCHBELL_TEST_*` (free for tests).
//!
//! | variable | key |
//! |---|---|
//! | `WATCHBELL_APP`, `WATCHBELL_ENVIRONMENT` | `app`, `environment` |
//! | `WATCHBELL_LEVEL` or `WATCHBELL_FMT_LEVEL` | `fmt.level` |
//! | `WATCHBELL_RATE_LIMIT_LIMIT`, `_PER` | `rate_limit.limit`, `.per` |
//! | `WATCHBELL_SLACK_WEBHOOK` (+ `WATCHBELL_SLACK_LEVELS`) | adds a `[[slack.webhooks]]` named `env` with this `url` (and `levels`) |
//! | `WATCHBELL_TELEGRAM_TOKEN`, `_CHAT` (or `_CHATS`), `_TOPIC`, `_LEVEL`, `_NOTIFY_LEVEL`, `_API_BASE` | `telegram.token`, `.chats`, `.topic`, `.level`, `.notify_level`, `.api_base` |
//! | `WATCHBELL_SMS_RECIPIENTS`, `_LEVEL`, `_HOURLY_CAP` | `sms.recipients`, `.level`, `.hourly_cap` |
//! | `WATCHBELL_TWILIO_SID`, `_TOKEN`, `_FROM`, `_API_BASE` | `sms.twilio.sid`, `.token`, `.from`, `.api_base` |
//! | `WATCHBELL_EXOTEL_SID`, `_API_KEY`, `_TOKEN`, `_FROM`, `_SUBDOMAIN`, `_API_BASE` | `sms.exotel.sid`, `.api_key`, `.token`, `.from`, `.subdomain`, `.api_base` |
//! | `WATCHBELL_MAIL_HOST`, `_PORT`, `_SECURITY`, `_USERNAME`, `_PASSWORD`, `_FROM`, `_TO`, `_LEVEL`, `_SUBJECT` | `mail.host`, `.port`, `.security`, `.username`, `.password`, `.from`, `.to`, `.level`, `.subject` |
//! | `WATCHBELL_HTTP_URL`, `_ENCODING`, `_LEVEL`, `_INDEX`, `_SERVICE_NAME`, `_BEARER_TOKEN`, `_BASIC_USER`, `_BASIC_PASSWORD` | `http.url`, `.encoding`, … |
//! | `WATCHBELL_SYSLOG_TRANSPORT`, `_ADDRESS`, `_PROTOCOL`, `_FACILITY`, `_LEVEL` | `syslog.transport`, … |
//! | `WATCHBELL_FILE_PATH`, `_LEVEL`, `_MAX_BYTES`, `_BACKUP_COUNT`, `_ROTATE_EVERY` | `file.path`, … |
//! | `WATCHBELL_FINGERS_CROSSED_ACTION_LEVEL`, `_LEVEL`, `_BUFFER_SIZE`, `_SCOPE`, `_DELIVER_TO` | `fingers_crossed.action_level`, … |
//! | `WATCHBELL_TICKETING_URL`, `_LEVEL`, `_APP_ID` | `ticketing.url`, `.level`, `.app_id` |
//! | `WATCHBELL_COMMAND_PROGRAM`, `_SHELL`, `_ARGS`, `_STDIN`, `_PER_BATCH`, `_CONCURRENCY`, `_LEVEL` | `command.program`, `.shell`, `.args`, … |
//! | `WATCHBELL_JOURNALD_SOCKET`, `_SYSLOG_IDENTIFIER`, `_LEVEL` | `journald.socket`, `.syslog_identifier`, `.level` |
//! | `WATCHBELL_DESKTOP_BUS_ADDRESS`, `_EXPIRE_AFTER`, `_LEVEL` | `desktop.bus_address`, `.expire_after`, `.level` |
//! | `WATCHBELL_NOTIFY` (comma-separated URLs) | `notify` |
//! | `WATCHBELL_<SINK>_PACE`, `_TIMEOUT`, `_QUEUE_RECORDS`, `_ALLOW_PLAIN_HTTP` (`<SINK>`: `SLACK`, `TELEGRAM`, `SMS`, `MAIL`, `HTTP`, `SYSLOG`, `FILE`, `TICKETING`, `COMMAND`, `JOURNALD`, `DESKTOP`) | the common settings of that table |
//!
//! ## coaster's keys
//!
//! | coaster (Flask config) | TOML key | environment variable |
//! |---|---|---|
//! | `LOG_FILE` | `file.path` | `WATCHBELL_FILE_PATH` |
//! | `LOG_FILE_LEVEL` (default WARNING) | `file.level` (default `warn`) | `WATCHBELL_FILE_LEVEL` |
//! | (rotation: midnight, 7 files) | `file.rotate_every = "day"`, `file.backup_count = 7` | `WATCHBELL_FILE_ROTATE_EVERY`, `WATCHBELL_FILE_BACKUP_COUNT` |
//! | `LOG_EMAIL_TO` | `mail.to` | `WATCHBELL_MAIL_TO` |
//! | `LOG_EMAIL_FROM` | `mail.from` | `WATCHBELL_MAIL_FROM` |
//! | `MAIL_SERVER` | `mail.host` | `WATCHBELL_MAIL_HOST` |
//! | `MAIL_PORT` | `mail.port` | `WATCHBELL_MAIL_PORT` |
//! | `MAIL_USERNAME` | `mail.username` | `WATCHBELL_MAIL_USERNAME` |
//! | `MAIL_PASSWORD` | `mail.password` | `WATCHBELL_MAIL_PASSWORD` |
//! | `MAIL_USE_TLS` | `mail.security = "starttls"` (or `"tls"`, `"plain"`: chosen explicitly) | `WATCHBELL_MAIL_SECURITY` |
//! | `LOG_TELEGRAM_CHATID` | `telegram.chats` | `WATCHBELL_TELEGRAM_CHAT` |
//! | `LOG_TELEGRAM_APIKEY` | `telegram.token` | `WATCHBELL_TELEGRAM_TOKEN` |
//! | `LOG_TELEGRAM_THREADID` | `telegram.topic` | `WATCHBELL_TELEGRAM_TOPIC` |
//! | `LOG_TELEGRAM_LEVEL` (default WARNING) | `telegram.level` (default `warn`) | `WATCHBELL_TELEGRAM_LEVEL` |
//! | `LOG_SLACK_WEBHOOKS` (`[{levelnames, url, channel, username, icon_emoji}]`) | `[[slack.webhooks]]` `levels`, `url`, `channel`, `username`, `icon_emoji` | `WATCHBELL_SLACK_WEBHOOK` + `WATCHBELL_SLACK_LEVELS` (one webhook) |
//! | `ADMIN_NUMBERS` | `sms.recipients` | `WATCHBELL_SMS_RECIPIENTS` |
//! | `SMS_EXOTEL_SID` | `sms.exotel.sid` | `WATCHBELL_EXOTEL_SID` |
//! | `SMS_EXOTEL_TOKEN` | `sms.exotel.token` (and `sms.exotel.api_key`) | `WATCHBELL_EXOTEL_TOKEN` (`WATCHBELL_EXOTEL_API_KEY`) |
//! | `SMS_EXOTEL_FROM` | `sms.exotel.from` | `WATCHBELL_EXOTEL_FROM` |
//! | `SMS_TWILIO_SID` | `sms.twilio.sid` | `WATCHBELL_TWILIO_SID` |
//! | `SMS_TWILIO_TOKEN` | `sms.twilio.token` | `WATCHBELL_TWILIO_TOKEN` |
//! | `SMS_TWILIO_FROM` | `sms.twilio.from` | `WATCHBELL_TWILIO_FROM` |
//!
//! Unlike coaster, one SMS provider is enough (numbers go to the one configured), and every
//! setting is checked at start-up.
//!
//! ## Errors
//!
//! A bad configuration gives a [`ConfigError`] with every [`Problem`] found (not just the
//! first), one line each: the key, the value (a secret redacted) and what was expected:
//!
//! ```text
//! telegram.tokn: unknown key: expected one of `token`, `chats`, `topic`, …
//! telegram.token: missing; expected the secret, { env = "VAR" } or { file = "/path" }
//! rate_limit.per = "5 minutes": a duration such as "500ms", "60s", "5m", "1h" or "1d"
//! sms.recipients[1] = "12345": "12345" is not an E.164 number: expected + and 7 to 15 digits, …
//! slack.webhooks[0].url = "http://hooks.example.com/…": refusing plain http:// to …
//! ```
//!
//! Parsing ([`Config::from_toml_str`], [`Config::with_env`]) reports the file's own problems
//! (syntax, unknown keys, types, levels, durations, choices, missing keys);
//! [`Config::layers`] adds what only building finds: unreadable secrets and each sink crate's
//! own validation (URLs, phone numbers, addresses), its key prefixed with the table.
#![deny(missing_docs)]

#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "config")]
pub use config::{init, init_with, Config, ConfigError, Problem};

#[cfg(feature = "command")]
pub use watchbell_command as command;
pub use watchbell_core as core;
#[cfg(feature = "desktop")]
pub use watchbell_desktop as desktop;
#[cfg(feature = "file")]
pub use watchbell_file as file;
#[cfg(feature = "fingers-crossed")]
pub use watchbell_fingers_crossed as fingers_crossed;
#[cfg(feature = "http-batch")]
pub use watchbell_http as http_batch;
#[cfg(feature = "journald")]
pub use watchbell_journald as journald;
#[cfg(feature = "log")]
pub use watchbell_log as log;
#[cfg(feature = "mail")]
pub use watchbell_mail as mail;
#[cfg(feature = "notify")]
pub use watchbell_notify as notify;
#[cfg(feature = "slack")]
pub use watchbell_slack as slack;
#[cfg(feature = "sms")]
pub use watchbell_sms as sms;
#[cfg(feature = "syslog")]
pub use watchbell_syslog as syslog;
#[cfg(feature = "telegram")]
pub use watchbell_telegram as telegram;
#[cfg(feature = "ticketing")]
pub use watchbell_ticketing as ticketing;

/// The names most setups use.
pub mod prelude {
    pub use watchbell_core::format::{DefaultFormat, Format, FormatContext, Template};
    pub use watchbell_core::{
        Batch, BatchReason, CaptureLayer, Delivery, FanOut, Guard, Handler, LayerFilter, Level, Outcome, Overflow,
        RateLimit, Record, Retry, Sink, Stats,
    };
    pub use watchbell_core::{BuildError, SinkLayer, SinkOptions};
    #[cfg(feature = "log")]
    pub use watchbell_log::{DirectLogger, LogBridge};
}
