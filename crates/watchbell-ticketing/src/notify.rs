//! Outside ticket systems: [`TicketSink`], told of new and reopened tickets on a background
//! thread of its own.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use watchbell_core::{Flushed, Handler, Level, Record, Stats};

/// What happened to a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketChange {
    /// Its first occurrence: the ticket was created.
    New,
    /// A new occurrence of a ticket that was marked solved: it is open again.
    Reopened,
}

/// A ticket that was created or reopened, as handed to a [`TicketSink`].
#[derive(Clone, Debug)]
pub struct TicketEvent {
    /// New or reopened.
    pub change: TicketChange,
    /// The ticket's id in the ticket database.
    pub ticket_id: i64,
    /// The app the ticket belongs to.
    pub app_id: String,
    /// The ticket's fingerprint (stable across occurrences: a key for the outside system).
    pub fingerprint: String,
    /// The ticket's level.
    pub level: Level,
    /// The occurrence count after this write.
    pub occurrence_count: u64,
    /// The newest occurrence that created or reopened the ticket, as stored (after the
    /// [`store_record`](crate::TicketingBuilder::store_record) hook).
    pub record: Record,
}

/// An outside ticket system (an issue tracker, a helpdesk), told when a ticket is new or
/// reopened: the part of Logbook's ticketing backends that its trac and redmine backends
/// added.
///
/// It runs on a background thread of its own (never the application's thread, never the
/// database writer's), one event at a time, in order. An `Err` is retried twice (after 0.5 s
/// and 1 s), then the event is counted as failed; a panic is caught and counted. The guard's
/// `flush` and `shutdown` wait for the events already written to the database.
pub trait TicketSink: Send + 'static {
    /// The name in stats (`ticketing-sink:NAME`).
    fn name(&self) -> &str {
        "sink"
    }

    /// Opens, reopens or comments on the outside ticket. An `Err` explains what failed; never
    /// put a secret in it.
    fn ticket(&mut self, event: &TicketEvent) -> Result<(), String>;
}

/// How many events may wait for the outside systems; more are dropped and counted.
pub(crate) const QUEUE: usize = 1_000;

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    panicked: AtomicU64,
    accepted: AtomicU64,
}

/// The queue and thread in front of the ticket sinks.
pub(crate) struct Notifier {
    tx: Mutex<Option<SyncSender<TicketEvent>>>,
    pending: Mutex<u64>,
    idle: Condvar,
    counters: Counters,
    names: Vec<String>,
    last_error: Mutex<Option<String>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier").field("sinks", &self.names).finish_non_exhaustive()
    }
}

impl Notifier {
    pub(crate) fn spawn(mut sinks: Vec<Box<dyn TicketSink>>) -> std::io::Result<Arc<Notifier>> {
        let (tx, rx) = mpsc::sync_channel::<TicketEvent>(QUEUE);
        let names = sinks.iter().map(|s| s.name().to_owned()).collect();
        let n = Arc::new(Notifier {
            tx: Mutex::new(Some(tx)),
            pending: Mutex::new(0),
            idle: Condvar::new(),
            counters: Counters::default(),
            names,
            last_error: Mutex::new(None),
            thread: Mutex::new(None),
        });
        let me = Arc::clone(&n);
        let handle = std::thread::Builder::new().name("watchbell-ticketing-sink".into()).spawn(move || {
            watchbell_core::capture::mark_current_thread();
            for event in rx {
                for sink in sinks.iter_mut() {
                    me.deliver(sink.as_mut(), &event);
                }
                let mut p = me.pending.lock().unwrap_or_else(|e| e.into_inner());
                *p = p.saturating_sub(1);
                me.idle.notify_all();
            }
        })?;
        *n.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(n)
    }

    fn deliver(&self, sink: &mut dyn TicketSink, event: &TicketEvent) {
        let mut pause = Duration::from_millis(500);
        for attempt in 0..3 {
            if attempt > 0 {
                self.counters.retried.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(pause);
                pause = pause.saturating_mul(2);
            }
            match catch_unwind(AssertUnwindSafe(|| sink.ticket(event))) {
                Ok(Ok(())) => {
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(Err(e)) => {
                    let e = watchbell_core::secret::redact_text(&e).into_owned();
                    *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{}: {e}", sink.name()));
                }
                Err(_) => {
                    self.counters.panicked.fetch_add(1, Ordering::Relaxed);
                    *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(format!("{}: the ticket sink panicked", sink.name()));
                    break;
                }
            }
        }
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Queues an event without blocking; a full queue drops it (counted).
    pub(crate) fn send(&self, event: TicketEvent) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(tx) = tx else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        match tx.try_send(event) {
            Ok(()) => {
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                *p = p.saturating_sub(1);
            }
        }
    }

    /// Waits until every queued event was handled or `deadline` passed.
    fn wait(&self, deadline: Instant) -> Flushed {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        while *p > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Flushed { pending: *p, timed_out: true };
            }
            p = self.idle.wait_timeout(p, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        Flushed::COMPLETE
    }

    fn stats(&self, out: &mut Vec<Stats>) {
        let c = &self.counters;
        let queued = *self.pending.lock().unwrap_or_else(|e| e.into_inner());
        out.push(Stats {
            name: format!("ticketing-sink:{}", self.names.join(",")),
            accepted: c.accepted.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            panicked: c.panicked.load(Ordering::Relaxed),
            queued,
            last_error: self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            ..Stats::default()
        });
    }
}

/// The ticketing handler chain with the ticket sinks behind it: flushing waits for both.
pub(crate) struct WithSinks {
    pub(crate) inner: Arc<dyn Handler>,
    pub(crate) notifier: Arc<Notifier>,
}

impl Drop for WithSinks {
    fn drop(&mut self) {
        // The last owner of the chain is gone: the sinks' thread ends once the queue is empty.
        self.notifier.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

impl Handler for WithSinks {
    fn handle(&self, record: Record) {
        self.inner.handle(record)
    }

    fn handle_batch(&self, batch: watchbell_core::Batch) {
        self.inner.handle_batch(batch)
    }

    fn flush(&self, deadline: Instant) -> Flushed {
        let db = self.inner.flush(deadline);
        let sinks = self.notifier.wait(deadline);
        Flushed { pending: db.pending + sinks.pending, timed_out: db.timed_out || sinks.timed_out }
    }

    fn shutdown(&self, deadline: Instant) -> Flushed {
        let db = self.inner.shutdown(deadline);
        let sinks = self.notifier.wait(deadline);
        // Ends the thread once the queue is empty (it is not joined: a sink stuck past the
        // deadline must not hold the exit).
        self.notifier.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if sinks.is_complete() {
            if let Some(h) = self.notifier.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = h.join();
            }
        }
        Flushed { pending: db.pending + sinks.pending, timed_out: db.timed_out || sinks.timed_out }
    }

    fn stats(&self, out: &mut Vec<Stats>) {
        self.inner.stats(out);
        self.notifier.stats(out);
    }
}
