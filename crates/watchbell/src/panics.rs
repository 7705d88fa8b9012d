//! Panics as alerts: an opt-in panic hook ([`capture_panics`], or `panics = true` in
//! `watchbell.toml`).
//!
//! The hook, on the panicking thread:
//!
//! 1. records the panic as an ERROR event with target `panic`: the panic's message, its
//!    location as the record's file and line, fields `panic.location`, `thread` and
//!    `backtrace` (when `RUST_BACKTRACE` enables backtraces), and the span stack of the
//!    panicking thread ([`watchbell_core::panic`] says each); every layer of the current
//!    subscriber sees it with its own filters, so the sinks at `error` get it;
//! 2. when the panic will end the process, flushes every watchbell delivery
//!    ([`watchbell_core::guard::flush_all`]) within the flush timeout (5 s by default), so the
//!    alert leaves before the process is gone. The panic ends the process when it happens on
//!    the thread named `main` (a panic that ends `main`; one caught there with `catch_unwind`
//!    costs a flush too), when the crate is built with `panic = "abort"`, or always with
//!    [`Panics::flush_on_every_panic`] (for processes that abort on any panic by other means);
//!    a panic in another thread is delivered by the usual background delivery and the process
//!    goes on;
//! 3. calls the hook that was installed before (Rust's default prints the message on stderr).
//!
//! Installing twice installs once. The hook must not panic (a panic inside a panic hook aborts
//! the process): everything it calls catches its own panics.
//!
//! ```no_run
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let _guard = watchbell::init()?; // with `panics = true` in watchbell.toml, or:
//!     watchbell::capture_panics();
//!     let v: Vec<u32> = Vec::new();
//!     let _ = v[3]; // alerted: "index out of bounds: the len is 0 but the index is 3"
//!     Ok(())
//! }
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The panic hook's settings (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct Panics {
    flush_timeout: Duration,
    flush_on_every_panic: bool,
}

impl Default for Panics {
    fn default() -> Self {
        Panics { flush_timeout: Duration::from_secs(5), flush_on_every_panic: false }
    }
}

impl Panics {
    /// The default settings: flush within 5 s when the panic ends the process.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long the hook may wait for deliveries when the panic ends the process (default 5 s).
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Flush after every panic, not only those that end the process (default `false`): for
    /// processes that abort on any panic in a way the hook cannot see (a supervisor that
    /// kills the process, a `panic = "abort"` binary whose watchbell was built separately).
    pub fn flush_on_every_panic(mut self, yes: bool) -> Self {
        self.flush_on_every_panic = yes;
        self
    }

    /// Installs the hook, chaining the one installed before. Returns `false`, changing
    /// nothing, when watchbell's hook is already installed.
    pub fn install(self) -> bool {
        if INSTALLED.swap(true, Ordering::AcqRel) {
            return false;
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            watchbell_core::panic::record_panic(info);
            if self.ends_process() && !watchbell_core::capture::is_suppressed() {
                let _ = watchbell_core::guard::flush_all(self.flush_timeout);
            }
            previous(info);
        }));
        true
    }

    fn ends_process(&self) -> bool {
        self.flush_on_every_panic || cfg!(panic = "abort") || std::thread::current().name() == Some("main")
    }
}

/// Installs watchbell's panic hook with the default settings ([`Panics::new`]`.install()`):
/// every panic becomes an ERROR record, and a panic that ends the process waits (at most 5 s)
/// for the alerts to leave. Returns `false` when it was already installed.
pub fn capture_panics() -> bool {
    Panics::new().install()
}
