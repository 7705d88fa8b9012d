//! How watchbell reports its own failures: a sink that gives up, a record that arrives after
//! shutdown. Logbook calls this `Flags(errors=...)`.
//!
//! Process-wide, set with [`set_error_reporter`]:
//!
//! | [`ErrorReporter`] | what happens |
//! |---|---|
//! | [`Stderr`](ErrorReporter::Stderr) (default) | one line on stderr, `watchbell[<source>]: <message>` |
//! | [`Silent`](ErrorReporter::Silent) | nothing (the failures are still counted in each delivery's [`Stats`](crate::Stats) and kept as its `last_error`) |
//! | [`Callback`](ErrorReporter::Callback) | the function gets each [`Failure`] (on the thread that failed, usually a watchbell worker: it must not block for long) |
//!
//! Reporting never panics: a callback that panics is caught and counted in
//! [`reporter_panics`]. Failures are reported once per kind (a delivery reports each kind of
//! failure once, then counts), so a callback is not flooded during an outage. Messages have
//! secrets redacted by shape and control characters escaped before any reporter sees them.
//! Events a callback emits through `tracing` or `log` are not captured by watchbell layers
//! when it runs on a watchbell thread.
//!
//! ```
//! use watchbell_core::report::{set_error_reporter, ErrorReporter};
//!
//! set_error_reporter(ErrorReporter::callback(|f| {
//!     // Count, or forward to the application's own alerting.
//!     let _ = (f.source, f.message);
//! }));
//! set_error_reporter(ErrorReporter::Stderr);
//! ```

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Records a sink gives up on one by one — items of a batch the peer refused, a single record
/// too large — not retried: counted in [`failed`](Refusals::failed), the last reason kept in
/// [`last_error`](Refusals::last_error), each kind of reason (its first 48 chars) reported once,
/// at most 16 kinds, so that an outage does not flood the reporter.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Records given up on.
    pub failed: AtomicU64,
    /// The last reason.
    pub last_error: std::sync::Mutex<Option<String>>,
    /// The kinds of reason already reported.
    reported: std::sync::Mutex<Vec<String>>,
}

impl Refusals {
    /// `n` records of the sink `source` refused for `reason`.
    pub fn fail(&self, source: &str, n: u64, reason: String) {
        if n == 0 {
            return;
        }
        self.failed.fetch_add(n, Ordering::Relaxed);
        let key: String = reason.chars().take(48).collect();
        let mut seen = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() < 16 && !seen.contains(&key) {
            report(
                source,
                &format!("records refused one by one, not retried: {reason} (further ones counted in stats)"),
            );
            seen.push(key);
        }
        drop(seen);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
    }
}

/// One failure of watchbell's own, as given to a [`ErrorReporter::Callback`].
#[derive(Clone, Copy, Debug)]
pub struct Failure<'a> {
    /// What failed: the delivery's name (`slack`, `mail`, …) or the component.
    pub source: &'a str,
    /// What happened, secrets redacted.
    pub message: &'a str,
}

/// Where watchbell's own failures go (see the module docs).
#[derive(Clone, Default)]
pub enum ErrorReporter {
    /// Not reported (still counted in stats).
    Silent,
    /// One line on stderr (the default).
    #[default]
    Stderr,
    /// Given to a function.
    Callback(Arc<dyn Fn(&Failure<'_>) + Send + Sync>),
}

impl ErrorReporter {
    /// A [`Callback`](ErrorReporter::Callback) reporter.
    pub fn callback(f: impl Fn(&Failure<'_>) + Send + Sync + 'static) -> Self {
        ErrorReporter::Callback(Arc::new(f))
    }
}

impl fmt::Debug for ErrorReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorReporter::Silent => "Silent",
            ErrorReporter::Stderr => "Stderr",
            ErrorReporter::Callback(_) => "Callback(..)",
        })
    }
}

static REPORTER: RwLock<Option<ErrorReporter>> = RwLock::new(None);
static PANICS: AtomicU64 = AtomicU64::new(0);

/// Sets where watchbell's own failures go from now on, for the whole process.
pub fn set_error_reporter(reporter: ErrorReporter) {
    *REPORTER.write().unwrap_or_else(|e| e.into_inner()) = Some(reporter);
}

/// The reporter in use.
pub fn error_reporter() -> ErrorReporter {
    REPORTER.read().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default()
}

/// How many times a [`ErrorReporter::Callback`] panicked (each caught).
pub fn reporter_panics() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

/// Reports a failure of `source` to the process's reporter. `message` should already have
/// its secrets redacted ([`redact_text`](crate::secret::redact_text)). Never panics.
pub fn report(source: &str, message: &str) {
    match error_reporter() {
        ErrorReporter::Silent => {}
        ErrorReporter::Stderr => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "watchbell[{source}]: {message}");
        }
        ErrorReporter::Callback(f) => {
            let failure = Failure { source, message };
            if catch_unwind(AssertUnwindSafe(|| f(&failure))).is_err() {
                PANICS.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
