//! # watchbell-journald
//!
//! The systemd journal for tracing: each record becomes one journal entry, sent over journald's
//! native protocol (`/run/systemd/journal/socket`) from watchbell's delivery thread — never from
//! the thread that logs — with its fields as journal fields, so `journalctl INVOICE=42` finds
//! it. Linux's counterpart of Logbook's and the standard library's `NTEventLogHandler`.
//!
//! ```no_run
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//! use watchbell_journald::JournaldLayer;
//!
//! let (layer, guard) = JournaldLayer::builder().syslog_identifier("billing").build().expect("a valid configuration");
//! tracing_subscriber::registry().with(layer).init();
//! tracing::error!(invoice = 42, "payment failed");
//! // MESSAGE=payment failed, PRIORITY=3, INVOICE=42, CODE_FILE=src/main.rs, CODE_LINE=7, ...
//! guard.shutdown(Duration::from_secs(5));
//! ```
//!
//! ## The entry
//!
//! | journal field | from |
//! |---|---|
//! | `MESSAGE` | the message (and ` (N similar suppressed)` when a rate limit withheld some) |
//! | `PRIORITY` | the level as watchbell-syslog maps it: `ERROR` 3, `WARN` 4, `INFO` 6, `DEBUG`/`TRACE` 7 |
//! | `SYSLOG_IDENTIFIER` | [`syslog_identifier`](JournaldBuilder::syslog_identifier), by default the executable's name |
//! | `TARGET`, `CODE_FILE`, `CODE_LINE`, `CODE_MODULE` | the record's target and location |
//! | `THREAD_NAME`, `TID`-like `THREAD_ID` | the logging thread |
//! | `FINGERPRINT` | the callsite fingerprint (hex), the same as watchbell's other sinks show |
//! | each event field | its name upper-cased (`invoice` → `INVOICE`, `user.id` → `USER_ID`) |
//! | each span's name and fields | `S0_NAME=request`, `S0_ID=…` for the outermost span, `S1_…` for the next (tracing-journald's scheme) |
//! | [`extra_field`](JournaldBuilder::extra_field)s | as given |
//!
//! Field names follow journald's rules, as tracing-journald applies them: ASCII letters
//! upper-cased, digits and `_` kept, anything else becomes `_`, at most 64 characters. A name
//! that would start with `_` (journald's trusted fields, which a client cannot set) or a digit
//! gets the prefix `F_`, and so does an event field named like a field watchbell sets
//! (`message`, `priority`, `code_file`, ...), so an event cannot forge them. Values are sent as
//! they are (binary-safe: a value with a newline uses the protocol's length-prefixed form).
//!
//! From tracing-journald (tokio-rs) this crate takes the naming rules, the span scheme and the
//! sealed-memfd fallback; it differs where watchbell's rules require: writing happens on the
//! delivery thread (tracing-journald writes on the caller's), event fields are not prefixed
//! (`journalctl INVOICE=42` works) except to protect the fields above, and the priorities are
//! those of watchbell's syslog sink.
//!
//! ## Large entries and failures
//!
//! An entry that does not fit a datagram (the socket answers `EMSGSIZE`) is written to a
//! memfd, sealed against any change, and its descriptor sent instead, as journald requires.
//! A socket that is missing or refuses (journald restarting) is retried with backoff like every
//! watchbell sink, reconnecting each time; a journal that stops reading makes a send wait at
//! most the [timeout](watchbell_core::SinkOptions::timeout), then it is retried — the thread
//! that logs never waits. journald stamps an entry when it receives it; the record's own time
//! (which differs after a retry) is sent as `WATCHBELL_TIME` (RFC 3339).
#![deny(missing_docs)]

mod native;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use tracing_core::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use watchbell_core::handler::Handler;
use watchbell_core::options::Options;
use watchbell_core::{BuildError, Guard, Level, SinkLayer, SinkOptions};

pub use native::{encode_entry, encode_entry_into, field_name};

const CRATE: &str = "watchbell-journald";

/// The socket systemd-journald reads the native protocol from.
pub const DEFAULT_SOCKET: &str = "/run/systemd/journal/socket";

/// The namespace of [`JournaldLayer::builder`].
#[derive(Debug)]
pub struct JournaldLayer(());

impl JournaldLayer {
    /// A builder with the defaults: [`DEFAULT_SOCKET`], level `INFO`, the executable's name as
    /// `SYSLOG_IDENTIFIER`, no rate limit.
    pub fn builder() -> JournaldBuilder {
        JournaldBuilder {
            options: Options::new(),
            socket: PathBuf::from(DEFAULT_SOCKET),
            identifier: None,
            extra: Vec::new(),
            level: Level::INFO,
        }
    }
}

/// Builds a journald layer; see the [crate docs](crate).
pub struct JournaldBuilder {
    options: Options,
    socket: PathBuf,
    identifier: Option<String>,
    extra: Vec<(String, String)>,
    level: Level,
}

impl fmt::Debug for JournaldBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournaldBuilder")
            .field("socket", &self.socket)
            .field("identifier", &self.identifier)
            .field("extra", &self.extra.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("level", &self.level)
            .field("options", &self.options)
            .finish()
    }
}

impl SinkOptions for JournaldBuilder {
    fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }
}

impl JournaldBuilder {
    /// The journal socket (default [`DEFAULT_SOCKET`]; a journal namespace `NS` listens on
    /// `/run/systemd/journal.NS/socket`).
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket = path.into();
        self
    }

    /// `SYSLOG_IDENTIFIER` (default: the executable's file name), what `journalctl -t` selects.
    pub fn syslog_identifier(mut self, name: impl Into<String>) -> Self {
        self.identifier = Some(name.into());
        self
    }

    /// A field added to every entry (`DEPLOYMENT=blue`). The name follows the same rules as
    /// event fields; one of the fields watchbell sets itself (`MESSAGE`, `PRIORITY`,
    /// `THREAD_ID`, …) is a build error.
    pub fn extra_field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((name.into(), value.into()));
        self
    }

    /// The least level written (default `INFO`).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    fn root(&self) -> Result<Arc<dyn Handler>, BuildError> {
        if self.socket.as_os_str().is_empty() {
            return Err(BuildError::new(CRATE, "socket", "the socket path is empty"));
        }
        if self.socket.as_os_str().as_encoded_bytes().contains(&0) {
            return Err(BuildError::new(CRATE, "socket", "the socket path contains a NUL character"));
        }
        let identifier = match &self.identifier {
            Some(i) if i.is_empty() || i.contains('\n') => {
                return Err(BuildError::new(CRATE, "syslog_identifier", "empty, or with a newline"))
            }
            Some(i) => i.clone(),
            None => std::env::current_exe()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "rust".to_owned()),
        };
        let mut extra = Vec::with_capacity(self.extra.len());
        for (i, (k, v)) in self.extra.iter().enumerate() {
            let name = field_name(k).ok_or_else(|| {
                BuildError::new(CRATE, format!("extra_field[{i}]"), "the name has no letter, digit or `_`")
            })?;
            // An entry with two values of one of watchbell's own fields would be ambiguous.
            if native::OWN_FIELDS.contains(&name.as_str()) {
                return Err(BuildError::new(
                    CRATE,
                    format!("extra_field[{i}]"),
                    format!("{name} is a field watchbell sets itself"),
                ));
            }
            extra.push((name, v.clone()));
        }
        let sink = native::JournalSink::new(self.socket.clone(), identifier, extra, self.options.timeout);
        let delivery = self
            .options
            .delivery("journald", sink)
            .spawn()
            .map_err(|e| BuildError::new(CRATE, "delivery", format!("cannot start the delivery thread: {e}")))?;
        Ok(self.options.limited("journald", delivery))
    }

    /// Starts the delivery and returns the root handler (behind the rate limit, if any) and its
    /// guard: for feeding records from other handlers (a fingers-crossed buffer, a fan-out).
    pub fn build_handler(self) -> Result<(Arc<dyn Handler>, Guard), BuildError> {
        let root = self.root()?;
        let guard = Guard::new(Arc::clone(&root));
        Ok((root, guard))
    }

    /// Builds the layer and its guard. Keep the guard until the end of `main`.
    pub fn build<S>(self) -> Result<(SinkLayer<S>, Guard), BuildError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let level = self.level;
        Ok(watchbell_core::options::layer(self.root()?, level))
    }
}
