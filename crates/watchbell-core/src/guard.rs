//! [`Guard`]: explicit flush and shutdown, and a bounded flush when dropped.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::handler::{Flushed, Handler, Stats};

/// Returned by every builder that starts background work. Keep it alive until the end of
/// `main`.
///
/// - [`flush`](Guard::flush) delivers what is pending (including rate-limit counts not yet
///   reported) and waits at most the given time.
/// - [`shutdown`](Guard::shutdown) does the same, then stops the workers.
/// - Dropping the guard shuts down with its drop timeout (5 s unless changed): a process that
///   ends `main` with records queued delivers them, and never hangs past that time.
///
/// When the layers live in the global default subscriber (which is never dropped), the guard
/// is what flushes at exit:
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tracing_subscriber::prelude::*;
/// use watchbell_core::{Batch, CaptureLayer, Delivery, Guard, Outcome};
///
/// let delivery = Delivery::builder("stdout", |b: &Batch| {
///     b.records.iter().for_each(|r| println!("{}", r.message));
///     Outcome::Delivered
/// })
/// .spawn()
/// .unwrap();
/// let handler = Arc::new(delivery);
/// let guard = Guard::new(handler.clone());
/// tracing::subscriber::set_global_default(
///     tracing_subscriber::registry().with(CaptureLayer::new(handler).with_level(tracing::Level::WARN)),
/// )
/// .unwrap();
///
/// tracing::warn!("delivered before exit");
/// // At the end of main: flush within 5 s, then stop (dropping `guard` does the same).
/// let flushed = guard.shutdown(Duration::from_secs(5));
/// assert!(flushed.is_complete());
/// ```
///
/// Do not write `let _ = builder.build()`: `_` drops the guard at once, which shuts delivery
/// down before anything is logged (watchbell then says so on stderr).
#[must_use = "dropping the Guard shuts delivery down: bind it with `let _guard = ...` until the end of main"]
pub struct Guard {
    handlers: Vec<Arc<dyn Handler>>,
    drop_timeout: Duration,
    done: AtomicBool,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("handlers", &self.handlers.len())
            .field("drop_timeout", &self.drop_timeout)
            .field("shut_down", &self.done.load(Ordering::Relaxed))
            .finish()
    }
}

impl Guard {
    /// A guard over the handler chain that starts at `handler` (flushing it flushes every
    /// wrapper and delivery below it).
    pub fn new(handler: Arc<dyn Handler>) -> Self {
        register(&handler);
        Guard { handlers: vec![handler], drop_timeout: Duration::from_secs(5), done: AtomicBool::new(false) }
    }

    /// One guard for both: flush and shutdown cover both, with one deadline.
    pub fn join(mut self, mut other: Guard) -> Guard {
        other.done.store(true, Ordering::Relaxed);
        self.handlers.append(&mut other.handlers);
        self
    }

    /// How long dropping the guard may wait for pending records (default 5 s).
    pub fn drop_timeout(mut self, timeout: Duration) -> Self {
        self.drop_timeout = timeout;
        self
    }

    /// Delivers what is pending, waiting at most `timeout` (`Duration::MAX`: no deadline).
    pub fn flush(&self, timeout: Duration) -> Flushed {
        let deadline = crate::time::deadline(timeout);
        self.handlers.iter().fold(Flushed::COMPLETE, |acc, h| acc.and(h.flush(deadline)))
    }

    /// Delivers what is pending and stops background work, waiting at most `timeout`
    /// (`Duration::MAX`: no deadline).
    /// Records left at the deadline are counted as dropped. Later calls return at once.
    pub fn shutdown(&self, timeout: Duration) -> Flushed {
        if self.done.swap(true, Ordering::AcqRel) {
            return Flushed::COMPLETE;
        }
        let deadline = crate::time::deadline(timeout);
        self.handlers.iter().fold(Flushed::COMPLETE, |acc, h| acc.and(h.shutdown(deadline)))
    }

    /// The counters of every delivery and wrapper under this guard.
    pub fn stats(&self) -> Vec<Stats> {
        let mut out = Vec::new();
        for h in &self.handlers {
            h.stats(&mut out);
        }
        out
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.done.load(Ordering::Acquire) {
            let _ = self.shutdown(self.drop_timeout);
        }
    }
}

/// The most handler chains [`flush_all`] knows at once.
const MAX_LIVE: usize = 256;

/// Every guard's handler chain, weakly: what [`flush_all`] flushes.
static LIVE: Mutex<Vec<Weak<dyn Handler>>> = Mutex::new(Vec::new());

fn register(handler: &Arc<dyn Handler>) {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    live.retain(|w| w.strong_count() > 0);
    if live.len() < MAX_LIVE {
        live.push(Arc::downgrade(handler));
    }
}

/// Flushes every handler chain a live [`Guard`] was made for, in the whole process, waiting at
/// most `timeout` in all: for code that must get pending records out but holds no guard, such
/// as a panic hook about to see the process end (watchbell's `capture_panics`).
///
/// Chains whose guard and layers are gone are skipped; at most 256 chains are known at once
/// (the oldest live ones). Must not be called from a watchbell worker thread (a delivery's own
/// worker would wait for itself until the deadline).
pub fn flush_all(timeout: Duration) -> Flushed {
    let deadline = crate::time::deadline(timeout);
    let live: Vec<Arc<dyn Handler>> = {
        let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.iter().filter_map(Weak::upgrade).collect()
    };
    live.iter().fold(Flushed::COMPLETE, |acc, h| acc.and(h.flush(deadline)))
}
