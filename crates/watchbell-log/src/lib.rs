//! # watchbell-log
//!
//! `log` records reach watchbell with their original target, module, file, line and level, and
//! their key-values as typed fields. Two ways, for two kinds of app:
//!
//! - **Through tracing** ([`LogBridge`]): for apps (or dependencies) that use `log` next to
//!   `tracing`. Records become tracing events the way `tracing-log`'s `LogTracer` makes them, so
//!   the application's `fmt` layer shows them too (with the key-values appended to the message);
//!   every watchbell layer captures them with the `log` record's own location and the
//!   key-values as fields, inside the current span.
//! - **Directly** ([`DirectLogger`]): for apps that use only `log`. Records go straight to a
//!   watchbell [`Handler`] (a delivery, a rate limit, a fan-out), no tracing subscriber needed.
//!
//! ```
//! use watchbell_log::LogBridge;
//! use tracing_subscriber::prelude::*;
//! # use std::sync::Arc;
//! # use watchbell_core::{CaptureLayer, Handler, Record};
//! # struct Print;
//! # impl Handler for Print { fn handle(&self, r: Record) { println!("{}:{:?} {}", r.target, r.line, r.message); } }
//!
//! // Once, at start-up: `log` records become tracing events.
//! LogBridge::new().init().expect("no other logger is installed");
//! let subscriber = tracing_subscriber::registry()
//!     .with(CaptureLayer::new(Arc::new(Print)).with_level(tracing::Level::WARN));
//! tracing::subscriber::with_default(subscriber, || {
//!     log::warn!(target: "billing", order = 42; "card declined");
//! });
//! ```
//!
//! With the bridge installed, set the global subscriber with
//! `tracing::subscriber::set_global_default(...)` rather than `SubscriberInitExt::init()`: with
//! tracing-subscriber's default `tracing-log` feature, `init()` also tries to install
//! tracing-log's `LogTracer` and fails because the bridge is already the `log` logger.
//!
//! Records logged on watchbell's own threads (by the HTTP, SMTP or database clients its sinks
//! use) are never captured: the bridge passes them on for the `fmt` layer, and watchbell's
//! layers skip them.
#![deny(missing_docs)]

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use log::kv::{Key, Value as KvValue, VisitSource};
use tracing_log::{AsLog, AsTrace};
use watchbell_core::capture::{current_thread, is_suppressed, with_log_context, LogContext};
use watchbell_core::{Fields, Fingerprint, Handler, LayerFilter, Level, LevelFilter, Origin, Record, Value};

/// tracing's level for a `log` level.
pub fn level_of(level: log::Level) -> Level {
    level.as_trace()
}

struct KvFields<'a>(&'a mut Fields);

impl<'kvs> VisitSource<'kvs> for KvFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: KvValue<'kvs>) -> Result<(), log::kv::Error> {
        self.0.set(key.as_str().to_owned(), kv_value(&value));
        Ok(())
    }
}

fn kv_value(v: &KvValue<'_>) -> Value {
    if let Some(b) = v.to_bool() {
        Value::Bool(b)
    } else if let Some(i) = v.to_i64() {
        Value::I64(i)
    } else if let Some(u) = v.to_u64() {
        Value::U64(u)
    } else if let Some(f) = v.to_f64() {
        Value::F64(f)
    } else if let Some(s) = v.to_borrowed_str() {
        Value::Str(s.to_owned())
    } else {
        Value::Display(v.to_string())
    }
}

/// The key-values of a `log` record as watchbell fields.
pub fn fields_of(record: &log::Record<'_>) -> Fields {
    let mut fields = Fields::new();
    let _ = record.key_values().visit(&mut KvFields(&mut fields));
    fields
}

/// A `log::Log` that turns `log` records into tracing events for every layer, with
/// watchbell's layers also seeing the key-values as fields. Install it with
/// [`init`](LogBridge::init), instead of `tracing_log::LogTracer::init()`.
#[derive(Debug)]
pub struct LogBridge {
    tracer: tracing_log::LogTracer,
    max_level: log::LevelFilter,
    /// The ignored crates, as deny rules.
    targets: LayerFilter,
}

impl Default for LogBridge {
    fn default() -> Self {
        Self::new()
    }
}

impl LogBridge {
    /// A bridge that passes every level (tracing's own filters decide).
    pub fn new() -> Self {
        LogBridge {
            tracer: tracing_log::LogTracer::new(),
            max_level: log::LevelFilter::Trace,
            targets: LayerFilter::from_level_filter(LevelFilter::TRACE),
        }
    }

    /// Records above this level are not even turned into events.
    pub fn with_max_level(mut self, level: LevelFilter) -> Self {
        self.max_level = level.as_log();
        self
    }

    /// Records from these crates (targets equal to the name or below it) are ignored.
    pub fn ignore_crates(mut self, crates: &[&str]) -> Self {
        for c in crates {
            self.targets = self.targets.deny_target(*c);
        }
        self
    }

    /// Installs the bridge as the `log` crate's logger.
    pub fn init(self) -> Result<(), log::SetLoggerError> {
        let max = self.max_level;
        log::set_boxed_logger(Box::new(self))?;
        log::set_max_level(max);
        Ok(())
    }
}

impl log::Log for LogBridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.max_level
            && self.targets.allows_target(metadata.target())
            && self.tracer.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // On watchbell's own threads no watchbell layer takes the fields: skip collecting them.
        let fields = if is_suppressed() { Fields::new() } else { fields_of(record) };
        if fields.is_empty() {
            self.tracer.log(record);
            return;
        }
        let message = record.args().to_string();
        let mut text = message.clone();
        for (k, v) in fields.iter() {
            let _ = write!(text, " {k}={v}");
        }
        let cx = LogContext { message, fields };
        with_log_context(cx, || {
            self.tracer.log(
                &log::Record::builder()
                    .args(format_args!("{text}"))
                    .metadata(record.metadata().clone())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            )
        });
    }

    fn flush(&self) {}
}

/// A `log::Log` that hands records straight to a watchbell [`Handler`], for apps that use
/// only `log`.
///
/// ```
/// use std::sync::Arc;
/// use watchbell_core::{Handler, Record};
/// use watchbell_log::DirectLogger;
/// # struct Print;
/// # impl Handler for Print { fn handle(&self, r: Record) { println!("{}", r.message); } }
/// let logger = DirectLogger::new(Arc::new(Print), tracing::Level::WARN);
/// logger.init().expect("no other logger is installed");
/// log::error!(request = 7; "payment failed");
/// ```
#[derive(Clone)]
pub struct DirectLogger {
    handler: Arc<dyn Handler>,
    filter: LayerFilter,
    salt: Arc<[u8]>,
}

impl std::fmt::Debug for DirectLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectLogger").field("filter", &self.filter).finish_non_exhaustive()
    }
}

impl DirectLogger {
    /// Records at `level` and more severe go to `handler`.
    pub fn new(handler: Arc<dyn Handler>, level: Level) -> Self {
        DirectLogger { handler, filter: LayerFilter::new(level), salt: Arc::from(&b""[..]) }
    }

    /// With a full [`LayerFilter`] (level and target rules).
    pub fn with_filter(mut self, filter: LayerFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Mixes `salt` into fingerprints (as [`CaptureLayer::with_salt`](watchbell_core::CaptureLayer::with_salt)).
    pub fn with_salt(mut self, salt: impl AsRef<[u8]>) -> Self {
        self.salt = Arc::from(salt.as_ref());
        self
    }

    /// The record watchbell makes of a `log` record.
    pub fn record_of(&self, record: &log::Record<'_>) -> Record {
        let level = level_of(record.level());
        let target: Cow<'static, str> = Cow::Owned(record.target().to_owned());
        let file = record.file_static().map(Cow::Borrowed).or_else(|| record.file().map(|f| Cow::Owned(f.to_owned())));
        let module = record
            .module_path_static()
            .map(Cow::Borrowed)
            .or_else(|| record.module_path().map(|m| Cow::Owned(m.to_owned())));
        let (thread_name, thread_id) = current_thread();
        let mut out = Record {
            time: std::time::SystemTime::now(),
            fingerprint: Fingerprint::compute(level, &target, file.as_deref(), record.line(), &self.salt),
            level,
            target,
            module,
            file,
            line: record.line(),
            // A literal message is borrowed, not copied.
            message: match record.args().as_str() {
                Some(literal) => literal.into(),
                None => record.args().to_string().into(),
            },
            fields: fields_of(record),
            spans: Default::default(),
            thread_name,
            thread_id,
            pid: watchbell_core::record::pid(),
            suppressed: 0,
            origin: Origin::Log,
        };
        watchbell_core::processor::apply(&mut out);
        out
    }

    /// Installs this logger as the `log` crate's logger.
    pub fn init(self) -> Result<(), log::SetLoggerError> {
        let max = self.filter.level().as_log();
        log::set_boxed_logger(Box::new(self))?;
        log::set_max_level(max);
        Ok(())
    }
}

impl log::Log for DirectLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        !is_suppressed() && self.filter.allows(level_of(metadata.level()), metadata.target())
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // A panicking `Display` argument or handler is caught and counted, as for tracing events.
        watchbell_core::capture::hand_over(&*self.handler, || self.record_of(record));
    }

    fn flush(&self) {
        let _ = self.handler.flush(std::time::Instant::now() + std::time::Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use log::Log as _;

    use super::*;

    #[test]
    fn ignored_crates_cover_their_modules_only() {
        let bridge = LogBridge::new().ignore_crates(&["hyper"]);
        let enabled = |target: &str| {
            let meta = log::Metadata::builder().level(log::Level::Error).target(target).build();
            tracing::subscriber::with_default(tracing_subscriber::registry(), || bridge.enabled(&meta))
        };
        assert!(!enabled("hyper"));
        assert!(!enabled("hyper::client"));
        assert!(enabled("hyperx"));
        assert!(enabled("app"));
    }

    #[test]
    fn direct_logger_catches_and_counts_panics() {
        struct Panics;
        impl Handler for Panics {
            fn handle(&self, _: Record) {
                panic!("handler panics");
            }
        }
        struct BadDisplay;
        impl std::fmt::Display for BadDisplay {
            fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                panic!("Display panics")
            }
        }
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Keep(Arc<std::sync::Mutex<Vec<String>>>);
        impl Handler for Keep {
            fn handle(&self, r: Record) {
                self.0.lock().unwrap().push(r.message.into_owned());
            }
        }
        let before = watchbell_core::capture::capture_panics();
        let panicking = DirectLogger::new(Arc::new(Panics), Level::WARN);
        panicking.log(&log::Record::builder().level(log::Level::Error).args(format_args!("boom")).build());
        assert_eq!(watchbell_core::capture::capture_panics(), before + 1, "the handler's panic is counted");

        let keeping = DirectLogger::new(Arc::new(Keep(seen.clone())), Level::WARN);
        keeping.log(&log::Record::builder().level(log::Level::Error).args(format_args!("{}", BadDisplay)).build());
        assert_eq!(watchbell_core::capture::capture_panics(), before + 2, "the argument's panic is counted");
        keeping.log(&log::Record::builder().level(log::Level::Error).args(format_args!("after")).build());
        assert_eq!(*seen.lock().unwrap(), vec!["after".to_string()], "the logger goes on after both");
    }

    #[test]
    fn levels_map_one_to_one() {
        assert_eq!(level_of(log::Level::Warn), Level::WARN);
        assert_eq!(LevelFilter::OFF.as_log(), log::LevelFilter::Off);
        assert_eq!(LevelFilter::DEBUG.as_log(), log::LevelFilter::Debug);
    }
}
