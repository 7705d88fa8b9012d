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
