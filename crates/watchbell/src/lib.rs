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
//! | `full` | all of the above | |
//!
//! Every sink builder shares the common settings of [`SinkOptions`](prelude::SinkOptions)
//! (`rate_limit`, `pace`, `timeout`, `retry`, `queue_records`, `overflow`,
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
#![deny(missing_docs)]

pub use watchbell_core as core;
#[cfg(feature = "file")]
pub use watchbell_file as file;
#[cfg(feature = "fingers-crossed")]
pub use watchbell_fingers_crossed as fingers_crossed;
#[cfg(feature = "http-batch")]
pub use watchbell_http as http_batch;
#[cfg(feature = "log")]
pub use watchbell_log as log;
#[cfg(feature = "mail")]
pub use watchbell_mail as mail;
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
