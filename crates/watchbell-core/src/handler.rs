//! [`Handler`]: what accepts records on the caller's side, and [`FanOut`].

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::record::{Batch, Record};

/// The result of a flush or shutdown: whether everything pending was delivered (or given up
/// on, and counted) before the deadline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Flushed {
    /// Records that were still pending at the deadline.
    pub pending: u64,
    /// Whether the deadline passed before everything was done.
    pub timed_out: bool,
}

impl Flushed {
    /// Nothing left pending.
    pub const COMPLETE: Flushed = Flushed { pending: 0, timed_out: false };

    /// Whether nothing was left pending.
    pub fn is_complete(&self) -> bool {
        !self.timed_out && self.pending == 0
    }

    /// Both results together.
    pub fn and(self, other: Flushed) -> Flushed {
        Flushed { pending: self.pending + other.pending, timed_out: self.timed_out || other.timed_out }
    }
}

/// Counters of one delivery or wrapper, readable at any time through a [`Guard`](crate::Guard).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// The sink or wrapper these counters belong to.
    pub name: String,
    /// Records accepted into the queue.
    pub accepted: u64,
    /// Records the sink reported delivered.
    pub delivered: u64,
    /// Delivery attempts that failed and were retried.
    pub retried: u64,
    /// Records shed without a delivery attempt: queue full, after shutdown, left at a deadline.
    pub dropped: u64,
    /// Records given up on: a permanent failure, or the retry budget spent.
    pub failed: u64,
    /// Panics caught in the sink or its format.
    pub panicked: u64,
    /// Records a rate limiter withheld (they are reported as counts, not lost silently).
    pub suppressed: u64,
    /// "N records dropped" and other notices watchbell delivered about itself.
    pub notices: u64,
    /// Records waiting in the queue now.
    pub queued: u64,
    /// Bytes (estimated) waiting in the queue now.
    pub queued_bytes: u64,
    /// Server-requested delays (`Retry-After` and the like) longer than the retry policy's
    /// `max_server_delay` that were cut to it: absurd or hostile values show up here.
    pub delays_capped: u64,
    /// The last delivery error, with secrets redacted.
    pub last_error: Option<String>,
}

impl fmt::Display for Stats {
    /// `name: accepted 10, delivered 9, retried 2, ...`, leaving out counters that are zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counters = [
            ("accepted", self.accepted),
            ("delivered", self.delivered),
            ("retried", self.retried),
            ("dropped", self.dropped),
            ("failed", self.failed),
            ("panicked", self.panicked),
            ("suppressed", self.suppressed),
            ("notices", self.notices),
            ("delays capped", self.delays_capped),
            ("queued", self.queued),
        ];
        write!(f, "{}:", self.name)?;
        let mut any = false;
        for (label, v) in counters.iter().filter(|(_, v)| *v > 0) {
            write!(f, "{} {label} {v}", if any { "," } else { "" })?;
            any = true;
        }
        if !any {
            f.write_str(" nothing yet")?;
        }
        if let Some(e) = &self.last_error {
            write!(f, " (last error: {e})")?;
        }
        Ok(())
    }
}

/// Anything that accepts records on the caller's side: a delivery queue, or a wrapper around
/// another handler (rate limit, fan-out, fingers-crossed, group).
///
/// `handle` runs on the application's thread: it must be quick, must not block (unless the
/// user chose a blocking overflow policy) and must not do I/O.
pub trait Handler: Send + Sync + 'static {
    /// Accepts one record.
    fn handle(&self, record: Record);

    /// Accepts records that travel together. The default hands them to
    /// [`handle`](Handler::handle) one by one, which loses the batch reason: handlers that
    /// deliver batches override it.
    fn handle_batch(&self, batch: Batch) {
        for r in batch.records {
            self.handle(r);
        }
    }

    /// Delivers what is pending, waiting at most until `deadline`.
    fn flush(&self, deadline: Instant) -> Flushed {
        let _ = deadline;
        Flushed::COMPLETE
    }

    /// Delivers what is pending and stops background work, waiting at most until `deadline`.
    /// Records handled after shutdown are counted as dropped.
    fn shutdown(&self, deadline: Instant) -> Flushed {
        self.flush(deadline)
    }

    /// Appends the counters of this handler and the handlers it wraps to `out`.
    fn stats(&self, out: &mut Vec<Stats>) {
        let _ = out;
    }
}

impl<H: Handler + ?Sized> Handler for Arc<H> {
    fn handle(&self, record: Record) {
        (**self).handle(record)
    }
    fn handle_batch(&self, batch: Batch) {
        (**self).handle_batch(batch)
    }
    fn flush(&self, deadline: Instant) -> Flushed {
        (**self).flush(deadline)
    }
    fn shutdown(&self, deadline: Instant) -> Flushed {
        (**self).shutdown(deadline)
    }
    fn stats(&self, out: &mut Vec<Stats>) {
        (**self).stats(out)
    }
}

impl<H: Handler + ?Sized> Handler for Box<H> {
    fn handle(&self, record: Record) {
        (**self).handle(record)
    }
    fn handle_batch(&self, batch: Batch) {
        (**self).handle_batch(batch)
    }
    fn flush(&self, deadline: Instant) -> Flushed {
        (**self).flush(deadline)
    }
    fn shutdown(&self, deadline: Instant) -> Flushed {
        (**self).shutdown(deadline)
    }
    fn stats(&self, out: &mut Vec<Stats>) {
        (**self).stats(out)
    }
}

/// Hands every record to several handlers (each gets its own copy).
///
/// ```
/// use std::sync::Arc;
/// use watchbell_core::{FanOut, Handler, Record};
/// struct Count(std::sync::atomic::AtomicUsize);
/// impl Handler for Count {
///     fn handle(&self, _: Record) { self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed); }
/// }
/// let a = Arc::new(Count(0.into()));
/// let b = Arc::new(Count(0.into()));
/// let fan = FanOut::new().with(a.clone()).with(b.clone());
/// fan.handle(Record::new(tracing::Level::ERROR, "app", "boom"));
/// assert_eq!(a.0.load(std::sync::atomic::Ordering::Relaxed), 1);
/// assert_eq!(b.0.load(std::sync::atomic::Ordering::Relaxed), 1);
/// ```
#[derive(Default)]
pub struct FanOut {
    handlers: Vec<Arc<dyn Handler>>,
}

impl fmt::Debug for FanOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanOut").field("handlers", &self.handlers.len()).finish()
    }
}

impl FanOut {
    /// A fan-out to no handler yet.
    pub fn new() -> Self {
        FanOut { handlers: Vec::new() }
    }

    /// Adds a handler.
    pub fn with(mut self, handler: Arc<dyn Handler>) -> Self {
        self.handlers.push(handler);
        self
    }

    /// The number of handlers.
    pub fn len(&self) -> usize {
        self.handlers.len()
    }

    /// Whether there is no handler.
    pub fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }
}

impl Handler for FanOut {
    fn handle(&self, record: Record) {
        if let Some((last, rest)) = self.handlers.split_last() {
            for h in rest {
                h.handle(record.clone());
            }
            last.handle(record);
        }
    }

    fn handle_batch(&self, batch: Batch) {
        if let Some((last, rest)) = self.handlers.split_last() {
            for h in rest {
                h.handle_batch(batch.clone());
            }
            last.handle_batch(batch);
        }
    }

    fn flush(&self, deadline: Instant) -> Flushed {
        self.handlers.iter().fold(Flushed::COMPLETE, |acc, h| acc.and(h.flush(deadline)))
    }

    fn shutdown(&self, deadline: Instant) -> Flushed {
        self.handlers.iter().fold(Flushed::COMPLETE, |acc, h| acc.and(h.shutdown(deadline)))
    }

    fn stats(&self, out: &mut Vec<Stats>) {
        for h in &self.handlers {
            h.stats(out);
        }
    }
}

/// Passes on only the records a predicate accepts (for example one webhook's set of levels);
/// batches keep their reason and lose the records that do not match (an empty batch is not
/// passed on).
///
/// ```
/// use std::sync::Arc;
/// use watchbell_core::handler::Select;
/// use watchbell_core::{Handler, Level, Record};
/// # struct Null;
/// # impl Handler for Null { fn handle(&self, _: Record) {} }
/// let errors_only = Select::new(Null, |r: &Record| r.level == Level::ERROR);
/// errors_only.handle(Record::new(Level::WARN, "app", "not passed on"));
/// ```
pub struct Select<H> {
    inner: H,
    accept: Box<dyn Fn(&Record) -> bool + Send + Sync>,
}

impl<H> fmt::Debug for Select<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select").finish_non_exhaustive()
    }
}

impl<H: Handler> Select<H> {
    /// Records for which `accept` is true go to `inner`.
    pub fn new(inner: H, accept: impl Fn(&Record) -> bool + Send + Sync + 'static) -> Self {
        Select { inner, accept: Box::new(accept) }
    }

    /// Records whose level is one of `levels` go to `inner`.
    pub fn levels(inner: H, levels: impl IntoIterator<Item = tracing_core::Level>) -> Self {
        let levels: Vec<tracing_core::Level> = levels.into_iter().collect();
        Self::new(inner, move |r| levels.contains(&r.level))
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }
}

impl<H: Handler> Handler for Select<H> {
    fn handle(&self, record: Record) {
        if (self.accept)(&record) {
            self.inner.handle(record);
        }
    }

    fn handle_batch(&self, mut batch: Batch) {
        batch.records.retain(|r| (self.accept)(r));
        if !batch.records.is_empty() {
            self.inner.handle_batch(batch);
        }
    }

    fn flush(&self, deadline: Instant) -> Flushed {
        self.inner.flush(deadline)
    }

    fn shutdown(&self, deadline: Instant) -> Flushed {
        self.inner.shutdown(deadline)
    }

    fn stats(&self, out: &mut Vec<Stats>) {
        self.inner.stats(out)
    }
}
