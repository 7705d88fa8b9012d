//! [`Delivery`]: the bounded queue and the worker thread between a [`Handler`] and a [`Sink`].
//!
//! The caller's side ([`DeliveryHandle`]) only takes a lock for a few instructions to push onto a
//! bounded queue. Everything slow happens on the delivery's own thread: batching, pacing,
//! redaction, the sink's formatting and I/O, retries with backoff, and the bookkeeping of what
//! was dropped.
//!
//! Guarantees:
//! - Memory is bounded by `queue_records` and `queue_bytes` (estimated with
//!   [`Record::size_hint`]); what does not fit is shed by the overflow policy and counted. A
//!   record larger than the whole queue is cut to fit ([`Record::shrink_to`]: its texts end
//!   with the truncation marker), or dropped and counted when it cannot be.
//! - No value panics: deadlines, backoffs, paces and server-requested delays use the
//!   saturating helpers of [`time`](crate::time) (`Duration::MAX` is "no deadline"), and a
//!   server's delay is capped at [`Retry::max_server_delay`] (counted in `delays_capped`).
//! - A retryable failure is retried with exponential backoff and jitter, or after exactly the
//!   delay the server asked for (plus up to 10 % jitter, never less), within a total retry budget.
//! - A permanent failure is not retried: the records are counted as failed and the reason is
//!   printed on stderr once per kind of failure, not per record.
//! - After records were dropped or failed, the next successful delivery is followed by a notice
//!   record "watchbell: N records dropped ..." to the same sink.
//! - A panic in the sink (or in a format it calls) is caught and counted; the worker goes on.
//!   A panic in the delivery's own code is caught too: the worker starts its loop again with
//!   the batch it held (the undelivered rest of it), after a backoff; a batch that panics it
//!   three times in a row is given up and counted as failed. A destination is never silently
//!   dead.
//! - The worker is marked as a watchbell thread: nothing it logs is captured by watchbell.
//! - The caller does not wake the worker for every record. An idle worker (nothing delivered
//!   yet, or nothing arrived for 1 ms after its last delivery) is woken by the next record, so
//!   a lone alert leaves at once; right after a delivery the worker looks at the queue again
//!   after 1 ms (or as soon as a whole batch is queued), so a stream of records costs the
//!   caller no wake-up system call per record and reaches the sink up to 1 ms later.
//! - The caller holds the lock only for the queue's bookkeeping: the worker gathers a batch's
//!   records, and frees shed records, after releasing it.
//! - Delivered records are freed by the threads that log, not by the worker: the worker leaves
//!   up to four delivered batches aside and each enqueue frees up to two of their records
//!   after releasing the lock; the worker frees what is left when the producers go quiet
//!   (1 ms after its last delivery) and when it exits. With glibc's allocator this keeps the
//!   producers' allocations on the fast, thread-local path (memory freed by another thread
//!   does not return to the allocating thread's cache). Such records hold memory outside the
//!   queue's bounds, at most four batches' worth.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use smallvec::SmallVec;
use tracing_core::Level;

use crate::capture::mark_current_thread;
use crate::handler::{Flushed, Handler, Stats};
use crate::record::{Batch, BatchReason, Origin, Record, Value};
use crate::redact::Redactor;
use crate::time::after;

/// What a sink reports for one batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Every record of the batch was delivered.
    Delivered,
    /// Delivery failed in a way that may work later (429, 5xx, timeout, connection refused).
    Retry {
        /// The delay the server asked for (`Retry-After`, Telegram's `retry_after`, ...).
        after: Option<Duration>,
        /// What went wrong, without secrets.
        reason: String,
    },
    /// Delivery failed in a way that will fail again (400, 401, 403, 404, an invalid payload).
    Permanent {
        /// What went wrong, without secrets.
        reason: String,
    },
    /// The first `delivered` records (at least one) went out in one request and the others
    /// are still to send: the delivery calls the sink again with the rest once the
    /// [pace](DeliveryBuilder::pace) allows. For destinations that take one message per request
    /// (a chat message, an SMS): the sink sends one message per call and the delivery does the
    /// pacing, interrupted by shutdown like every other wait. `delivered: 0` counts as a
    /// retryable failure.
    More {
        /// How many records from the start of the batch were delivered.
        delivered: usize,
    },
    /// One message of the first record went out and more of that record is still to send
    /// (a record the destination only takes as several messages, such as a long Telegram text
    /// split into pieces). The sink keeps its own cursor; the delivery calls it again with the
    /// same batch once the [pace](DeliveryBuilder::pace) allows, with fresh attempts and retry
    /// budget, interrupted by shutdown like every other wait. Nothing is counted as delivered
    /// until the record's last message answers [`More`](Outcome::More) or
    /// [`Delivered`](Outcome::Delivered). More than 10,000 of these in a row count as a
    /// permanent failure of the batch (a sink that never finishes).
    Progress,
    /// The first `refused` records (at least one) were refused for good — counted as failed
    /// and reported like [`Permanent`](Outcome::Permanent) — and the others are still to send:
    /// the delivery calls the sink again with the rest once the [pace](DeliveryBuilder::pace)
    /// allows. For destinations that take one message per request, so that one record the
    /// destination refuses (a payload it will never take) does not fail the records queued
    /// with it.
    Refused {
        /// How many records from the start of the batch were refused.
        refused: usize,
        /// What went wrong, without secrets.
        reason: String,
    },
    /// The first `delivered` records went through; `rest` says what happened to the others
    /// (for sinks that send one batch as several messages).
    Partial {
        /// How many records from the start of the batch were delivered.
        delivered: usize,
        /// The outcome for the remaining records.
        rest: Box<Outcome>,
    },
}

impl Outcome {
    /// A retryable failure with no requested delay.
    pub fn retry(reason: impl Into<String>) -> Self {
        Outcome::Retry { after: None, reason: reason.into() }
    }

    /// A retryable failure with the delay the server asked for.
    pub fn retry_after(after: Option<Duration>, reason: impl Into<String>) -> Self {
        Outcome::Retry { after, reason: reason.into() }
    }

    /// A permanent failure.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Outcome::Permanent { reason: reason.into() }
    }
}

/// The protocol to one destination. It runs only on its delivery's worker thread, gets whole
/// batches and reports an [`Outcome`]. A sink may block (the worker is its own thread), but
/// should bound its I/O with timeouts: a stalled sink delays only its own queue.
///
/// Closures `FnMut(&Batch) -> Outcome` are sinks.
pub trait Sink: Send + 'static {
    /// Delivers `batch`. Called again with the same (or the undelivered rest of the) batch
    /// when the outcome was retryable.
    fn deliver(&mut self, batch: &Batch) -> Outcome;

    /// Whether this sink can [`spill`](Self::spill) (default: no). Asked once, at spawn.
    fn can_spill(&self) -> bool {
        false
    }

    /// Called while a batch waits for a retry and the queue behind it passes half its capacity
    /// (records or bytes): `pending` is that batch (what a retry would send), `queued` every
    /// record queued behind it, in order. A sink with somewhere else to put them (a disk
    /// spool) takes both and answers `true`: they count as delivered, the retry is over, and
    /// the queue has room again instead of shedding records. `false` leaves everything as it
    /// was (the records go back to the queue, the retry goes on).
    fn spill(&mut self, pending: &Batch, queued: &Batch) -> bool {
        let _ = (pending, queued);
        false
    }
}

impl<F: FnMut(&Batch) -> Outcome + Send + 'static> Sink for F {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        self(batch)
    }
}

impl Sink for Box<dyn Sink> {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        (**self).deliver(batch)
    }

    fn can_spill(&self) -> bool {
        (**self).can_spill()
    }

    fn spill(&mut self, pending: &Batch, queued: &Batch) -> bool {
        (**self).spill(pending, queued)
    }
}

/// What happens to a record that does not fit in a full queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Overflow {
    /// The new record is dropped (and counted). The default: the caller never waits.
    #[default]
    DropNewest,
    /// The oldest queued records are dropped (and counted) to make room.
    DropOldest,
    /// The caller waits up to the given time for room, then drops the new record (counted).
    Block(Duration),
}

/// The retry policy for retryable failures.
#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    /// The first backoff delay.
    pub initial: Duration,
    /// The largest backoff delay.
    pub max: Duration,
    /// The backoff growth factor per attempt.
    pub multiplier: f64,
    /// The total time one batch may spend being retried before it is given up (and counted as
    /// failed). A server-requested delay that would overrun it gives the batch up at once.
    pub budget: Duration,
    /// The largest number of attempts per batch (0 = no limit besides the budget).
    pub max_attempts: u32,
    /// The longest delay a server may ask for (`Retry-After`, Telegram's `retry_after`). A
    /// longer one — absurd values such as `18446744073709551615` seconds or a date in the year
    /// 9999 included — is cut to this and counted in `Stats::delays_capped`. A requested delay
    /// is never honoured below the computed backoff (a `Retry-After: 0` storm does not turn
    /// into a hot loop). Default: one hour.
    pub max_server_delay: Duration,
}

impl Default for Retry {
    /// 500 ms doubling up to 60 s, for at most 10 minutes per batch.
    fn default() -> Self {
        Retry {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            budget: Duration::from_secs(600),
            max_attempts: 0,
            max_server_delay: Duration::from_secs(3600),
        }
    }
}

impl Retry {
    /// Never retry.
    pub fn none() -> Self {
        Retry { max_attempts: 1, ..Retry::default() }
    }

    /// The backoff before attempt `attempt + 1`, with "equal jitter": between half and all
    /// of the exponential delay.
    fn backoff(&self, attempt: u32, rng: &mut Rng) -> Duration {
        // A NaN or infinite multiplier (a user's value) must not panic: `max(1.0)` maps NaN
        // to 1, and the saturating conversion takes care of infinities.
        let exp = self.initial.as_secs_f64() * self.multiplier.max(1.0).powi(attempt.saturating_sub(1).min(60) as i32);
        let d = exp.min(self.max.as_secs_f64());
        crate::time::secs_f64(d / 2.0 + rng.unit() * d / 2.0)
    }
}

/// A small xorshift generator for jitter (no need for a crate).
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        Rng(t ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Debug)]
struct Config {
    name: String,
    queue_records: usize,
    queue_bytes: usize,
    batch_records: usize,
    batch_bytes: usize,
    batch_wait: Duration,
    pace: Duration,
    retry: Retry,
    overflow: Overflow,
    redactor: Option<Redactor>,
    notices: bool,
    /// The sink can spill ([`Sink::can_spill`]).
    spills: bool,
}

/// Builds and starts a [`Delivery`]. See the [module docs](self) for what it guarantees.
///
/// ```
/// use std::time::{Duration, Instant};
/// use watchbell_core::{Batch, Delivery, Handler, Outcome, Record};
///
/// let delivery = Delivery::builder("print", |batch: &Batch| {
///     for r in &batch.records {
///         println!("{}", r.message);
///     }
///     Outcome::Delivered
/// })
/// .queue_records(1000)
/// .spawn()
/// .expect("a thread");
/// delivery.handle(Record::new(tracing::Level::ERROR, "app", "disk full"));
/// assert!(delivery.flush(Instant::now() + Duration::from_secs(5)).is_complete());
/// assert_eq!(delivery.snapshot().delivered, 1);
/// ```
pub struct DeliveryBuilder<K> {
    sink: K,
    config: Config,
}

impl<K> fmt::Debug for DeliveryBuilder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryBuilder").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The namespace of [`Delivery::builder`].
#[derive(Debug)]
pub struct Delivery(());

impl Delivery {
    /// A delivery to `sink`, named `name` in stats and error messages. Defaults: a queue of
    /// 10,000 records and 16 MiB, batches of up to 100 records and 1 MiB sent as soon as the
    /// sink is free, no pacing, [`Retry::default`], [`Overflow::DropNewest`], the default
    /// [`Redactor`], drop notices on.
    pub fn builder<K: Sink>(name: impl Into<String>, sink: K) -> DeliveryBuilder<K> {
        DeliveryBuilder {
            sink,
            config: Config {
                name: name.into(),
                queue_records: 10_000,
                queue_bytes: 16 << 20,
                batch_records: 100,
                batch_bytes: 1 << 20,
                batch_wait: Duration::ZERO,
                pace: Duration::ZERO,
                retry: Retry::default(),
                overflow: Overflow::DropNewest,
                redactor: Some(Redactor::default()),
                notices: true,
                spills: false,
            },
        }
    }
}

impl<K: Sink> DeliveryBuilder<K> {
    /// The most records the queue holds (at least 1).
    pub fn queue_records(mut self, n: usize) -> Self {
        self.config.queue_records = n.max(1);
        self
    }

    /// The most bytes (estimated) the queue holds.
    pub fn queue_bytes(mut self, n: usize) -> Self {
        self.config.queue_bytes = n.max(1);
        self
    }

    /// The most records per batch (at least 1). Escalation and group batches are delivered
    /// whole whatever their size.
    pub fn batch_records(mut self, n: usize) -> Self {
        self.config.batch_records = n.max(1);
        self
    }

    /// The most bytes (estimated) per batch of single records.
    pub fn batch_bytes(mut self, n: usize) -> Self {
        self.config.batch_bytes = n.max(1);
        self
    }

    /// How long the first queued record may wait for more to fill a batch (0: send at once;
    /// batches still form while the sink is busy).
    pub fn batch_wait(mut self, d: Duration) -> Self {
        self.config.batch_wait = d;
        self
    }

    /// The least time between two calls of the sink (a provider's pace, such as Slack's one
    /// message per second per webhook): deliveries, retries and notices alike. Records arriving
    /// meanwhile coalesce into the next batch. A sink that needs several requests for one batch
    /// sends one per call and answers [`Outcome::More`] (or, within one record,
    /// [`Outcome::Progress`]): the rest follow at this pace.
    pub fn pace(mut self, d: Duration) -> Self {
        self.config.pace = d;
        self
    }

    /// The retry policy.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.config.retry = retry;
        self
    }

    /// What to do when the queue is full.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.config.overflow = overflow;
        self
    }

    /// The redaction applied to every batch before the sink sees it (`None` turns it off).
    pub fn redactor(mut self, redactor: Option<Redactor>) -> Self {
        self.config.redactor = redactor;
        self
    }

    /// Whether to deliver a "N records dropped" notice after a recovery (default on).
    pub fn notices(mut self, on: bool) -> Self {
        self.config.notices = on;
        self
    }

    /// Starts the worker thread (named `watchbell-NAME`).
    pub fn spawn(mut self) -> std::io::Result<DeliveryHandle> {
        self.config.spills = self.sink.can_spill();
        let shared = Arc::new(Shared {
            state: Mutex::new(State { handles: 1, ..State::default() }),
            work: Condvar::new(),
            room: Condvar::new(),
            progress: Condvar::new(),
            counters: Counters::default(),
            last_error: Mutex::new(None),
            reported: Mutex::new(HashSet::new()),
            epoch: Instant::now(),
            config: self.config,
        });
        let worker_shared = Arc::clone(&shared);
        let sink = self.sink;
        std::thread::Builder::new()
            // A thread name cannot hold NUL (std would panic); the name may come from a path
            // or a URL in a user's config.
            .name(format!("watchbell-{}", shared.config.name).replace('\0', "\u{2400}"))
            .spawn(move || worker(worker_shared, sink))?;
        Ok(DeliveryHandle { shared })
    }
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    retried: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    notices: AtomicU64,
    delays_capped: AtomicU64,
}

struct Item {
    seq: u64,
    batch: Batch,
    bytes: usize,
    at: Instant,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Item>,
    records: usize,
    bytes: usize,
    /// Records accepted into the queue (counted under the lock the enqueue holds anyway: no
    /// atomic of its own, and no cache line shared with the worker's counters).
    accepted: u64,
    /// Delivered batches left for the producers to free (see [`SPENT_PER_RECORD`]): at most
    /// [`SPENT_BATCHES`], none of them empty, freed by the worker itself when it goes idle.
    spent: Vec<Vec<Record>>,
    next_seq: u64,
    /// The first sequence number and record count of the batch the sink is working on.
    in_flight: Option<(u64, usize)>,
    flush_target: u64,
    shutdown: Option<Instant>,
    abandon: bool,
    worker_exited: bool,
    worker_waiting: Waiting,
    /// Producers blocked for room ([`Overflow::Block`]).
    room_waiters: usize,
    progress_waiters: usize,
    handles: usize,
    /// Drops and failures not yet announced by a notice.
    unreported_dropped: u64,
    unreported_failed: u64,
    unreported_since: Option<SystemTime>,
    warned_after_shutdown: bool,
}

impl State {
    /// Every item with a sequence number below this is finished.
    fn done_seq(&self) -> u64 {
        match (self.in_flight, self.queue.front()) {
            (Some((s, _)), _) => s,
            (None, Some(front)) => front.seq,
            (None, None) => self.next_seq,
        }
    }

    fn pending(&self) -> u64 {
        (self.records + self.in_flight.map_or(0, |(_, n)| n)) as u64
    }
}

struct Shared {
    state: Mutex<State>,
    /// The worker waits here for work, for its batch timer and during retry delays.
    work: Condvar,
    /// Blocking producers wait here for room.
    room: Condvar,
    /// Flush and shutdown wait here for the worker's progress.
    progress: Condvar,
    counters: Counters,
    last_error: Mutex<Option<String>>,
    reported: Mutex<HashSet<String>>,
    /// A fixed instant, the arrival time of records when batch_wait is zero.
    epoch: Instant,
    config: Config,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After an enqueue: wakes the worker when it waits for what just arrived. (A notify is a
    /// system call even with nobody waiting, and the caller pays it.)
    fn wake_worker(&self, st: &State, single: bool) {
        let wake = match st.worker_waiting {
            Waiting::ForRecords => true,
            Waiting::ForBatch => {
                !single || st.records >= self.config.batch_records || st.bytes >= self.config.batch_bytes
            }
            Waiting::Retry => self.config.spills && self.under_pressure(st),
            Waiting::No | Waiting::Pace => false,
        };
        if wake {
            self.work.notify_one();
        }
    }

    /// The queue is at least half full (records or bytes).
    fn under_pressure(&self, st: &State) -> bool {
        st.records * 2 >= self.config.queue_records || st.bytes * 2 >= self.config.queue_bytes
    }

    /// After the worker took records off the queue: wakes producers blocked for room.
    fn wake_producers(&self, st: &State) {
        if st.room_waiters > 0 {
            self.room.notify_all();
        }
    }

    fn note_unreported(&self, st: &mut State, dropped: u64, failed: u64) {
        st.unreported_dropped += dropped;
        st.unreported_failed += failed;
        st.unreported_since.get_or_insert_with(SystemTime::now);
    }

    /// Keeps `reason` as the last error, secrets redacted by shape
    /// ([`redact_text`](crate::secret::redact_text)) and control characters escaped
    /// ([`escape_controls`](crate::text::escape_controls)): whatever a sink or a peer put in it.
    fn set_error(&self, reason: &str) {
        let reason = crate::text::escape_controls(&crate::secret::redact_text(reason)).into_owned();
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
    }

    /// Prints a failure on stderr once per kind (the first 48 characters of the reason),
    /// secrets redacted by shape.
    fn report_once(&self, what: &str, reason: &str) {
        let reason = crate::text::escape_controls(&crate::secret::redact_text(reason)).into_owned();
        let reason = reason.as_str();
        let key: String = reason.chars().take(48).collect();
        let mut seen = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() < 64 && seen.insert(key) {
            crate::report::report(
                &self.config.name,
                &format!("{what}: {reason} (further failures of this kind are counted in stats, not reported)"),
            );
        }
    }
}

/// The caller's side of a [`Delivery`]: a [`Handler`] that enqueues.
///
/// When the last handle is dropped, the worker delivers what is queued and exits.
pub struct DeliveryHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for DeliveryHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryHandle").field("name", &self.shared.config.name).finish_non_exhaustive()
    }
}

impl Clone for DeliveryHandle {
    fn clone(&self) -> Self {
        self.shared.lock().handles += 1;
        DeliveryHandle { shared: Arc::clone(&self.shared) }
    }
}

impl Drop for DeliveryHandle {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.handles = st.handles.saturating_sub(1);
        if st.handles == 0 {
            self.shared.work.notify_one();
        }
    }
}

impl DeliveryHandle {
    /// The delivery's name.
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// The counters now.
    pub fn snapshot(&self) -> Stats {
        let c = &self.shared.counters;
        let (queued, queued_bytes, accepted) = {
            let st = self.shared.lock();
            (st.records as u64, st.bytes as u64, st.accepted)
        };
        Stats {
            name: self.shared.config.name.clone(),
            accepted,
            delivered: c.delivered.load(Relaxed),
            retried: c.retried.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            failed: c.failed.load(Relaxed),
            panicked: c.panicked.load(Relaxed),
            suppressed: 0,
            notices: c.notices.load(Relaxed),
            delays_capped: c.delays_capped.load(Relaxed),
            queued,
            queued_bytes,
            last_error: self.shared.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    fn enqueue(&self, mut batch: Batch) {
        let sh = &*self.shared;
        let cfg = &sh.config;
        let mut bytes = batch.size_hint();
        if bytes > cfg.queue_bytes {
            // Larger than the whole queue: cut (rare, so the cost on the caller is fine).
            let cut = fit(&mut batch, cfg.queue_bytes);
            if cut > 0 {
                sh.counters.dropped.fetch_add(cut as u64, Relaxed);
                let mut st = sh.lock();
                sh.note_unreported(&mut st, cut as u64, 0);
            }
            bytes = batch.size_hint();
        }
        let n = batch.len();
        if n == 0 {
            return;
        }
        let mut st = sh.lock();
        if st.shutdown.is_some() {
            sh.counters.dropped.fetch_add(n as u64, Relaxed);
            if !std::mem::replace(&mut st.warned_after_shutdown, true) {
                drop(st);
                crate::report::report(
                    &cfg.name,
                    "a record arrived after shutdown and was dropped (was the Guard bound to `_`? \
                     keep it alive until the end of main)",
                );
            }
            return;
        }
        let mut block_until = None;
        // Records shed to make room are freed after the lock is released (usually one: no
        // allocation for it).
        let mut shed: SmallVec<[Item; 1]> = SmallVec::new();
        while !st.queue.is_empty() && (st.records + n > cfg.queue_records || st.bytes + bytes > cfg.queue_bytes) {
            match cfg.overflow {
                Overflow::DropNewest => {
                    sh.counters.dropped.fetch_add(n as u64, Relaxed);
                    sh.note_unreported(&mut st, n as u64, 0);
                    return;
                }
                Overflow::DropOldest => {
                    let old = st.queue.pop_front().expect("queue is not empty");
                    st.records -= old.batch.len();
                    st.bytes -= old.bytes;
                    sh.counters.dropped.fetch_add(old.batch.len() as u64, Relaxed);
                    sh.note_unreported(&mut st, old.batch.len() as u64, 0);
                    if st.progress_waiters > 0 {
                        sh.progress.notify_all();
                    }
                    shed.push(old);
                }
                Overflow::Block(max) => {
                    let until = *block_until.get_or_insert_with(|| crate::time::deadline(max));
                    let now = Instant::now();
                    if now >= until || st.shutdown.is_some() {
                        sh.counters.dropped.fetch_add(n as u64, Relaxed);
                        sh.note_unreported(&mut st, n as u64, 0);
                        return;
                    }
                    st.room_waiters += 1;
                    st = sh.room.wait_timeout(st, until - now).unwrap_or_else(|e| e.into_inner()).0;
                    st.room_waiters -= 1;
                }
            }
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.records += n;
        st.bytes += bytes;
        // The arrival time only matters for batch_wait: skip the clock read when it is zero.
        let at = if cfg.batch_wait.is_zero() { sh.epoch } else { Instant::now() };
        let single = batch.reason == BatchReason::Single;
        st.queue.push_back(Item { seq, batch, bytes, at });
        st.accepted += n as u64;
        sh.wake_worker(&st, single);
        if st.spent.is_empty() {
            drop(st);
        } else {
            free_spent(st);
        }
        drop(shed);
    }

    fn wait_progress(&self, target: u64, deadline: Instant, shutdown: bool) -> Flushed {
        let sh = &*self.shared;
        let dropped_before = sh.counters.dropped.load(Relaxed);
        let mut st = sh.lock();
        if shutdown {
            st.shutdown.get_or_insert(deadline);
        }
        st.flush_target = st.flush_target.max(target);
        sh.work.notify_one();
        st.progress_waiters += 1;
        let result = loop {
            // A shutdown also waits for the worker to finish: it drops the sink, which closes
            // its connections politely (SMTP's QUIT, a TLS close_notify) before the process
            // may exit. Past the deadline with nothing pending, it is complete all the same.
            let done = if shutdown { st.worker_exited } else { st.done_seq() >= target };
            if done {
                break if st.pending() == 0 {
                    Flushed::COMPLETE
                } else {
                    Flushed { pending: st.pending(), timed_out: false }
                };
            }
            if st.worker_exited {
                break Flushed { pending: st.pending(), timed_out: false };
            }
            let now = Instant::now();
            if now >= deadline {
                break Flushed { pending: st.pending(), timed_out: st.pending() > 0 };
            }
            st = sh.progress.wait_timeout(st, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        };
        st.progress_waiters -= 1;
        // Records the worker gave up on because the deadline was too near count as not delivered.
        let mut result = result;
        result.pending += sh.counters.dropped.load(Relaxed) - dropped_before;
        if shutdown && !result.is_complete() {
            // Give up on what is left: count it, and let the worker go.
            st.abandon = true;
            let left: usize = st.queue.drain(..).map(|i| i.batch.len()).sum();
            st.records = 0;
            st.bytes = 0;
            sh.counters.dropped.fetch_add(left as u64, Relaxed);
            sh.work.notify_one();
            sh.room.notify_all();
        }
        result
    }
}

impl Handler for DeliveryHandle {
    fn handle(&self, record: Record) {
        self.enqueue(Batch::single(record));
    }

    fn handle_batch(&self, batch: Batch) {
        self.enqueue(batch);
    }

    fn flush(&self, deadline: Instant) -> Flushed {
        let target = self.shared.lock().next_seq;
        self.wait_progress(target, deadline, false)
    }

    fn shutdown(&self, deadline: Instant) -> Flushed {
        self.wait_progress(u64::MAX, deadline, true)
    }

    fn stats(&self, out: &mut Vec<Stats>) {
        out.push(self.snapshot());
    }
}

/// Makes a batch larger than `max` bytes (the whole queue) fit: each record gets an equal share
/// and is [cut](Record::shrink_to) to it; a record that cannot be cut that far (it is made of
/// numbers and names, not text) is removed. Returns how many were removed.
fn fit(batch: &mut Batch, max: usize) -> usize {
    let before = batch.records.len();
    let share = max / before.max(1);
    batch.records.retain_mut(|r| r.shrink_to(share));
    before - batch.records.len()
}

/// How many delivered records a producer frees per record it enqueues, after releasing the
/// lock.
///
/// The worker does not free the records it delivered: it leaves them (up to [`SPENT_BATCHES`]
/// batches) in the queue's state, and each enqueue takes up to this many and drops them on the
/// producer's thread. With glibc's allocator, memory freed by another thread goes back to the
/// arena rather than the producer's thread cache, so a producer whose records are always freed
/// by the worker finds its cache empty and takes malloc's slow, locked path for every
/// allocation, in contention with the worker's frees. Measured with an `info!` of three fields
/// in two spans: 350 of the caller's 3,669 instructions per event went to `_int_malloc` when
/// the worker freed everything, and the file layer's caller went from ~806 to ~655 ns of CPU
/// per event with the producers freeing (medians of seven runs). Taking two per record empties a batch in half a batch's worth of events, so
/// the pile does not grow while producers log; a batch that finds the pile full is freed by
/// the worker itself, and so is the pile left when the producers go quiet (the worker's next
/// idle wait, at most a millisecond after its last delivery).
const SPENT_PER_RECORD: usize = 2;

/// The most delivered batches left for the producers to free (the memory they hold is
/// bounded by this many batches of `batch_records`).
const SPENT_BATCHES: usize = 4;

/// Takes up to [`SPENT_PER_RECORD`] delivered records from the pile, releases the lock, frees
/// them. Kept out of line: the records move only when there are some.
#[inline(never)]
fn free_spent(mut st: MutexGuard<'_, State>) {
    let mut spent: SmallVec<[Record; SPENT_PER_RECORD]> = SmallVec::new();
    let mut emptied = None;
    while spent.len() < SPENT_PER_RECORD {
        let Some(last) = st.spent.last_mut() else { break };
        spent.extend(last.pop());
        if last.is_empty() {
            emptied = st.spent.pop();
            break;
        }
    }
    drop(st);
    drop(spent);
    drop(emptied);
}

/// Leaves a delivered batch's records for the producers to free (see [`SPENT_PER_RECORD`]), or
/// frees them here when [`SPENT_BATCHES`] are waiting already (or the delivery is ending).
fn leave_spent(sh: &Shared, batch: Batch) {
    let mut records = batch.records;
    if records.is_empty() {
        return;
    }
    {
        let mut st = sh.lock();
        if st.spent.len() < SPENT_BATCHES && st.shutdown.is_none() && st.handles > 0 {
            st.spent.push(std::mem::take(&mut records));
        }
    }
    drop(records);
}

/// What the worker is waiting for, which decides whether an enqueue wakes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Waiting {
    /// Not waiting.
    #[default]
    No,
    /// The queue is empty: any record.
    ForRecords,
    /// A batch window or the pace: only a full batch or a whole (escalation, group) batch.
    ForBatch,
    /// A retry delay: only a queue filling past half its capacity, when the sink can spill
    /// (flush and shutdown wake it themselves).
    Retry,
    /// The pace between the messages of one batch, or a retry delay once a spill was refused:
    /// nothing a producer does.
    Pace,
}

/// Waits for the next batch to deliver; `None` when the worker should exit.
/// How long the worker, its queue empty after a delivery, waits for more records before it
/// asks to be woken by the next one (see [`next_batch`]).
const LINGER: Duration = Duration::from_millis(1);

fn next_batch(sh: &Shared, last_delivery: Option<Instant>, taken: &mut Vec<Item>) -> Option<Batch> {
    let cfg = &sh.config;
    let mut st = sh.lock();
    let mut lingered = false;
    loop {
        if st.abandon {
            return None;
        }
        let now = Instant::now();
        let Some(front) = st.queue.front() else {
            if st.shutdown.is_some() || st.handles == 0 {
                return None;
            }
            if !lingered && last_delivery.is_some() {
                // Right after a delivery, records that arrive within LINGER do not wake the
                // worker one by one (a wake is a system call on the caller's thread): it looks
                // again when LINGER is over, or when a whole batch is queued.
                lingered = true;
                st.worker_waiting = Waiting::ForBatch;
                st = sh.work.wait_timeout(st, LINGER).unwrap_or_else(|e| e.into_inner()).0;
                st.worker_waiting = Waiting::No;
                continue;
            }
            if !st.spent.is_empty() {
                // The producers went quiet: free what they left here rather than hold it.
                let spent = std::mem::take(&mut st.spent);
                drop(st);
                drop(spent);
                st = sh.lock();
                continue;
            }
            st.worker_waiting = Waiting::ForRecords;
            st = sh.work.wait(st).unwrap_or_else(|e| e.into_inner());
            st.worker_waiting = Waiting::No;
            continue;
        };
        let urgent = st.shutdown.is_some() || st.handles == 0 || st.flush_target > front.seq;
        let full = st.records >= cfg.batch_records || st.bytes >= cfg.batch_bytes;
        let batch_at = if urgent || full || front.batch.reason != BatchReason::Single {
            now
        } else {
            after(front.at, cfg.batch_wait)
        };
        let pace_at = last_delivery.map_or(now, |t| after(t, cfg.pace));
        let at = batch_at.max(pace_at);
        if st.shutdown.is_some_and(|deadline| at > deadline) {
            // The pace allows the next request only after the shutdown deadline: waiting is
            // pointless. What is queued is given up now (counted), not at the deadline.
            let left: usize = st.queue.drain(..).map(|i| i.batch.len()).sum();
            st.records = 0;
            st.bytes = 0;
            sh.counters.dropped.fetch_add(left as u64, Relaxed);
            sh.wake_producers(&st);
            return None;
        }
        if at <= now {
            // Only the queue's bookkeeping happens under the lock: the items of the batch are
            // moved out whole, and their records are gathered into one batch (moving each
            // record and freeing each item's list) after it is released, so that producers
            // never wait for that.
            let seq = front.seq;
            let mut items = 1;
            let mut records = front.batch.len();
            let mut bytes = front.bytes;
            if front.batch.reason == BatchReason::Single {
                for next in st.queue.iter().skip(1) {
                    if next.batch.reason != BatchReason::Single
                        || records + next.batch.len() > cfg.batch_records
                        || bytes + next.bytes > cfg.batch_bytes
                    {
                        break;
                    }
                    items += 1;
                    records += next.batch.len();
                    bytes += next.bytes;
                }
            }
            taken.clear();
            taken.extend(st.queue.drain(..items));
            st.records -= records;
            st.bytes -= bytes;
            st.in_flight = Some((seq, records));
            sh.wake_producers(&st);
            drop(st);
            let mut rest = taken.drain(..);
            let mut batch = rest.next().expect("one item at least").batch;
            if items > 1 {
                batch.records.reserve_exact(records - batch.records.len());
                for item in rest {
                    batch.records.extend(item.batch.records);
                }
            }
            return Some(batch);
        }
        st.worker_waiting = Waiting::ForBatch;
        st = sh.work.wait_timeout(st, at - now).unwrap_or_else(|e| e.into_inner()).0;
        st.worker_waiting = Waiting::No;
    }
}

/// How long until the pace allows the next request.
fn pace_remaining(pace: Duration, last: Option<Instant>) -> Duration {
    last.map_or(Duration::ZERO, |t| after(t, pace).saturating_duration_since(Instant::now()))
}

/// Waits on the worker's condvar for `delay`; false if the delivery is being abandoned or the
/// shutdown deadline comes first (then waiting is pointless).
fn retry_wait(sh: &Shared, delay: Duration) -> bool {
    matches!(wait_until(sh, crate::time::deadline(delay), false), Waited::Elapsed)
}

/// How a wait before a retry ended.
enum Waited {
    Elapsed,
    /// Abandoned, or the shutdown deadline comes first.
    Stop,
    /// The queue passed half its capacity (only when asked to look).
    Pressure,
}

/// Waits until `until`, ending early when the delivery stops or, if `pressure` is asked for,
/// when the queue passes half full.
fn wait_until(sh: &Shared, until: Instant, pressure: bool) -> Waited {
    let mut st = sh.lock();
    loop {
        if st.abandon || st.shutdown.is_some_and(|d| until > d) {
            return Waited::Stop;
        }
        if pressure && sh.under_pressure(&st) {
            return Waited::Pressure;
        }
        let now = Instant::now();
        if now >= until {
            return Waited::Elapsed;
        }
        st.worker_waiting = if pressure { Waiting::Retry } else { Waiting::Pace };
        st = sh.work.wait_timeout(st, until - now).unwrap_or_else(|e| e.into_inner()).0;
        st.worker_waiting = Waiting::No;
    }
}

/// Offers the batch waiting for a retry and everything queued behind it to the sink's
/// [`spill`](Sink::spill). Returns whether the sink took them (then the queue is empty of
/// them and they count as delivered); otherwise they are back at the front of the queue.
fn spill<K: Sink>(sh: &Shared, sink: &mut K, pending: &Batch) -> bool {
    let items: Vec<Item> = {
        let mut st = sh.lock();
        let items: Vec<Item> = st.queue.drain(..).collect();
        st.records = 0;
        st.bytes = 0;
        sh.wake_producers(&st);
        items
    };
    // The records move into one batch (no copies: the queue may be large just now); each
    // item's place is kept to put them back if the sink refuses.
    let mut queued = Batch { reason: BatchReason::Flush, records: Vec::new() };
    let mut places = Vec::with_capacity(items.len());
    for item in items {
        places.push((item.seq, item.bytes, item.at, item.batch.reason, item.batch.records.len()));
        queued.records.extend(item.batch.records);
    }
    if let Some(r) = &sh.config.redactor {
        r.redact_batch(&mut queued);
    }
    let taken = matches!(catch_unwind(AssertUnwindSafe(|| sink.spill(pending, &queued))), Ok(true));
    if taken {
        sh.counters.delivered.fetch_add((pending.len() + queued.len()) as u64, Relaxed);
        return true;
    }
    // Not taken: back to the front, ahead of what arrived meanwhile (their sequence is older).
    let mut records = queued.records.into_iter();
    let items: Vec<Item> = places
        .into_iter()
        .map(|(seq, bytes, at, reason, len)| Item {
            seq,
            batch: Batch { reason, records: records.by_ref().take(len).collect() },
            bytes,
            at,
        })
        .collect();
    let mut st = sh.lock();
    for item in items.into_iter().rev() {
        st.records += item.batch.len();
        st.bytes += item.bytes;
        st.queue.push_front(item);
    }
    false
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// How many [`Outcome::Progress`] answers in a row the delivery follows.
const MAX_PROGRESS: u32 = 10_000;

/// Delivers one batch with retries; returns whether anything was delivered.
fn deliver_with_retry<K: Sink>(
    sh: &Shared,
    sink: &mut K,
    batch: &mut Batch,
    rng: &mut Rng,
    last_delivery: &mut Option<Instant>,
) -> bool {
    let cfg = &sh.config;
    let c = &sh.counters;
    let mut start = Instant::now();
    let mut attempt = 0u32;
    let mut any = false;
    // `Progress` answers since a record was last finished.
    let mut pieces = 0u32;
    loop {
        attempt += 1;
        let outcome = match catch_unwind(AssertUnwindSafe(|| sink.deliver(batch))) {
            Ok(o) => o,
            Err(p) => {
                c.panicked.fetch_add(1, Relaxed);
                Outcome::permanent(format!("the sink panicked: {}", panic_text(&*p)))
            }
        };
        *last_delivery = Some(Instant::now());
        let mut outcome = outcome;
        while let Outcome::Partial { delivered, rest } = outcome {
            let k = delivered.min(batch.records.len());
            batch.records.drain(..k);
            c.delivered.fetch_add(k as u64, Relaxed);
            any |= k > 0;
            outcome = *rest;
        }
        // A message went and more are to send: the next one is a new request, with its own
        // attempts and budget, after the pace.
        let next_request = match outcome {
            Outcome::More { delivered } => {
                let k = delivered.min(batch.records.len());
                batch.records.drain(..k);
                c.delivered.fetch_add(k as u64, Relaxed);
                any |= k > 0;
                if batch.records.is_empty() {
                    return true;
                }
                if k == 0 {
                    outcome = Outcome::retry("the sink reported more to send but sent nothing");
                }
                pieces = 0;
                k > 0
            }
            Outcome::Refused { refused, ref reason } => {
                let k = refused.min(batch.records.len());
                batch.records.drain(..k);
                c.failed.fetch_add(k as u64, Relaxed);
                sh.set_error(reason);
                sh.report_once("permanent delivery failure, not retried", reason);
                {
                    let mut st = sh.lock();
                    sh.note_unreported(&mut st, 0, k as u64);
                }
                if batch.records.is_empty() {
                    return any;
                }
                if k == 0 {
                    outcome = Outcome::retry("the sink reported a refused record but named none");
                }
                pieces = 0;
                k > 0
            }
            Outcome::Progress => {
                // A piece of the first record went.
                pieces += 1;
                if pieces > MAX_PROGRESS {
                    outcome = Outcome::permanent(format!(
                        "the sink sent {MAX_PROGRESS} pieces in a row without finishing a record"
                    ));
                }
                pieces <= MAX_PROGRESS
            }
            _ => false,
        };
        if next_request {
            attempt = 0;
            start = Instant::now();
            if !retry_wait(sh, pace_remaining(cfg.pace, *last_delivery)) {
                c.dropped.fetch_add(batch.len() as u64, Relaxed);
                return any;
            }
            continue;
        }
        let n = batch.len() as u64;
        match outcome {
            Outcome::Delivered | Outcome::Partial { .. } | Outcome::More { .. } | Outcome::Refused { .. } => {
                c.delivered.fetch_add(n, Relaxed);
                return true;
            }
            _ if n == 0 => return any,
            // (Turned into a wait or a permanent failure above.)
            Outcome::Progress => return any,
            Outcome::Permanent { reason } => {
                c.failed.fetch_add(n, Relaxed);
                sh.set_error(&reason);
                sh.report_once("permanent delivery failure, not retried", &reason);
                let mut st = sh.lock();
                sh.note_unreported(&mut st, 0, n);
                return any;
            }
            Outcome::Retry { after, reason } => {
                #[cfg(test)]
                tests::failpoint::hit(&cfg.name);
                sh.set_error(&reason);
                let backoff = cfg.retry.backoff(attempt, rng);
                let delay = match after {
                    Some(a) => {
                        let ceiling = cfg.retry.max_server_delay;
                        if a > ceiling {
                            c.delays_capped.fetch_add(1, Relaxed);
                        }
                        let a = a.min(ceiling);
                        // Up to 10 % (at most 1 s) of jitter on top, never less than asked.
                        let jitter =
                            crate::time::secs_f64(a.as_secs_f64() * 0.1 * rng.unit()).min(Duration::from_secs(1));
                        a.saturating_add(jitter).max(backoff)
                    }
                    None => backoff,
                };
                let out_of_attempts = cfg.retry.max_attempts != 0 && attempt >= cfg.retry.max_attempts;
                if out_of_attempts || start.elapsed().saturating_add(delay) > cfg.retry.budget {
                    c.failed.fetch_add(n, Relaxed);
                    sh.report_once(&format!("gave up after {attempt} attempts over {:.1?}", start.elapsed()), &reason);
                    let mut st = sh.lock();
                    sh.note_unreported(&mut st, 0, n);
                    return any;
                }
                c.retried.fetch_add(1, Relaxed);
                // A retry is a request like any other: it keeps the pace too.
                let delay = delay.max(pace_remaining(cfg.pace, *last_delivery));
                let until = crate::time::deadline(delay);
                let mut look = cfg.spills;
                loop {
                    match wait_until(sh, until, look) {
                        Waited::Elapsed => break,
                        Waited::Stop => {
                            c.dropped.fetch_add(n, Relaxed);
                            return any;
                        }
                        Waited::Pressure if spill(sh, sink, batch) => return true,
                        // Refused: wait out the delay without asking again.
                        Waited::Pressure => look = false,
                    }
                }
            }
        }
    }
}

fn notice(sh: &Shared, dropped: u64, failed: u64, since: Option<SystemTime>) -> Record {
    let mut parts = Vec::new();
    if dropped > 0 {
        parts.push(format!("{dropped} records dropped (queue full or shed)"));
    }
    if failed > 0 {
        parts.push(format!("{failed} records could not be delivered"));
    }
    let since = since.map(crate::time::rfc3339).unwrap_or_default();
    let mut r = Record::new(
        Level::WARN,
        "watchbell",
        format!("watchbell: {} by {} since {since}", parts.join(" and "), sh.config.name),
    );
    r.origin = Origin::Watchbell;
    r.fields.set("dropped", Value::U64(dropped));
    r.fields.set("failed", Value::U64(failed));
    r.fields.set("sink", Value::Str(sh.config.name.clone()));
    r
}

/// After a success: tells the sink, in one notice record, what was dropped or failed since the
/// last notice. One attempt; if it fails, the counts wait for the next success.
fn announce_losses<K: Sink>(sh: &Shared, sink: &mut K, last_delivery: &mut Option<Instant>) {
    let (d, f, since) = {
        let mut st = sh.lock();
        if st.unreported_dropped == 0 && st.unreported_failed == 0 {
            return;
        }
        let d = std::mem::take(&mut st.unreported_dropped);
        let f = std::mem::take(&mut st.unreported_failed);
        (d, f, st.unreported_since.take())
    };
    let mut b = Batch::single(notice(sh, d, f, since));
    if let Some(r) = &sh.config.redactor {
        r.redact_batch(&mut b);
    }
    // The notice keeps the pace as well.
    let delivered = retry_wait(sh, pace_remaining(sh.config.pace, *last_delivery))
        && matches!(catch_unwind(AssertUnwindSafe(|| sink.deliver(&b))), Ok(Outcome::Delivered));
    *last_delivery = Some(Instant::now());
    if delivered {
        sh.counters.notices.fetch_add(1, Relaxed);
    } else {
        let mut st = sh.lock();
        st.unreported_dropped += d;
        st.unreported_failed += f;
        st.unreported_since = st.unreported_since.or(since);
    }
}

/// How many times in a row one batch may panic the delivery's own code before it is given up.
const MAX_BATCH_PANICS: u32 = 3;

fn worker<K: Sink>(sh: Arc<Shared>, mut sink: K) {
    mark_current_thread();
    let mut rng = Rng::new();
    let mut last_delivery = None;
    // The batch being delivered lives outside the unwinding boundary: a panic in the worker's
    // own code (a sink's panics are caught closer, in `deliver_with_retry`) must not lose it.
    let mut held: Option<Batch> = None;
    let mut panics = 0u32;
    // The queue items of the next batch, taken out under the lock (kept for its capacity).
    let mut taken: Vec<Item> = Vec::new();
    loop {
        let step = catch_unwind(AssertUnwindSafe(|| {
            let batch = match &mut held {
                Some(b) => b,
                None => {
                    let Some(batch) = next_batch(&sh, last_delivery, &mut taken) else { return false };
                    let batch = held.insert(batch);
                    if let Some(r) = &sh.config.redactor {
                        r.redact_batch(batch);
                    }
                    batch
                }
            };
            let ok = deliver_with_retry(&sh, &mut sink, batch, &mut rng, &mut last_delivery);
            if let Some(done) = held.take() {
                leave_spent(&sh, done);
            }
            panics = 0;
            if ok && sh.config.notices {
                announce_losses(&sh, &mut sink, &mut last_delivery);
            }
            true
        }));
        match step {
            Ok(true) => {}
            Ok(false) => break,
            Err(p) => {
                panics += 1;
                sh.counters.panicked.fetch_add(1, Relaxed);
                let reason = format!("watchbell's delivery code panicked (restarted): {}", panic_text(&*p));
                sh.set_error(&reason);
                sh.report_once("internal error", &reason);
                if let Some(batch) = &held {
                    let n = batch.len() as u64;
                    if panics >= MAX_BATCH_PANICS {
                        sh.counters.failed.fetch_add(n, Relaxed);
                        let mut st = sh.lock();
                        sh.note_unreported(&mut st, 0, n);
                    } else if retry_wait(&sh, sh.config.retry.backoff(panics, &mut rng)) {
                        // Again with the same (rest of the) batch, still in flight.
                        continue;
                    } else {
                        sh.counters.dropped.fetch_add(n, Relaxed);
                    }
                }
                held = None;
                panics = 0;
            }
        }
        let mut st = sh.lock();
        st.in_flight = None;
        if st.progress_waiters > 0 {
            sh.progress.notify_all();
        }
    }
    // A sink's Drop (closing connections) must not take the bookkeeping below with it.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(sink)));
    #[cfg(feature = "runtime")]
    crate::runtime::shutdown_current_thread();
    let mut st = sh.lock();
    st.worker_exited = true;
    st.in_flight = None;
    let spent = std::mem::take(&mut st.spent);
    sh.progress.notify_all();
    drop(st);
    drop(spent);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic injected into the delivery's own retry path (not the sink: the sink's panics
    /// are caught by `deliver_with_retry`), for deliveries of a given name.
    pub(super) mod failpoint {
        use std::sync::Mutex;

        static ARMED: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());

        pub(crate) fn arm(name: &str, times: u32) {
            ARMED.lock().unwrap_or_else(|e| e.into_inner()).push((name.to_owned(), times));
        }

        pub(crate) fn hit(name: &str) {
            let fire = {
                let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
                match armed.iter_mut().find(|(n, left)| n == name && *left > 0) {
                    Some((_, left)) => {
                        *left -= 1;
                        true
                    }
                    None => false,
                }
            };
            if fire {
                panic!("injected panic in the retry path");
            }
        }
    }

    fn rec(msg: &str) -> Record {
        Record::new(Level::ERROR, "app", msg)
    }

    fn fast() -> Retry {
        Retry { initial: Duration::from_millis(5), max: Duration::from_millis(20), ..Retry::default() }
    }

    /// A sink that fails `fails` times with `outcome`, then delivers, recording what it got.
    fn flaky(fails: usize, outcome: Outcome, got: Arc<Mutex<Vec<String>>>) -> impl FnMut(&Batch) -> Outcome + Send {
        let mut calls = 0;
        move |b: &Batch| {
            calls += 1;
            if calls <= fails {
                return outcome.clone();
            }
            got.lock().unwrap().extend(b.records.iter().map(|r| r.message.to_string()));
            Outcome::Delivered
        }
    }

    fn done(d: &DeliveryHandle) -> Flushed {
        d.flush(crate::time::deadline(Duration::from_secs(10)))
    }

    #[test]
    fn a_panic_in_the_retry_path_restarts_the_worker_with_the_batch_it_held() {
        let got = Arc::new(Mutex::new(Vec::new()));
        failpoint::arm("panics-twice", 2);
        let d = Delivery::builder("panics-twice", flaky(2, Outcome::retry("503"), got.clone()))
            .retry(fast())
            .spawn()
            .unwrap();
        d.handle(rec("survives"));
        assert!(done(&d).is_complete());
        assert_eq!(*got.lock().unwrap(), ["survives"], "the held batch was delivered after two restarts");
        let s = d.snapshot();
        assert_eq!((s.panicked, s.delivered, s.failed, s.dropped), (2, 1, 0, 0));
        assert!(s.last_error.unwrap().contains("injected panic"));
        // The worker is alive for what comes next.
        d.handle(rec("later"));
        assert!(done(&d).is_complete());
        assert_eq!(got.lock().unwrap().last().map(String::as_str), Some("later"));
    }

    #[test]
    fn a_batch_that_keeps_panicking_the_worker_is_given_up_and_counted() {
        let got = Arc::new(Mutex::new(Vec::new()));
        failpoint::arm("panics-always", 3);
        let d = Delivery::builder("panics-always", flaky(3, Outcome::retry("503"), got.clone()))
            .retry(fast())
            .notices(false)
            .spawn()
            .unwrap();
        d.handle(rec("doomed"));
        assert!(done(&d).is_complete());
        let s = d.snapshot();
        assert_eq!((s.panicked, s.failed, s.delivered), (3, 1, 0));
        d.handle(rec("next"));
        assert!(done(&d).is_complete());
        assert_eq!(*got.lock().unwrap(), ["next"], "the worker went on with the next batch");
    }

    #[test]
    fn a_refused_record_fails_alone_and_the_records_queued_with_it_go_on() {
        use std::sync::Condvar;
        let got = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let (g, sink_gate) = (got.clone(), gate.clone());
        // One record per call, as a chat sink sends them; the first call waits until the next
        // three are queued, so that they reach the sink as one batch.
        let sink = move |b: &Batch| {
            let one_more = |o: Outcome| if b.records.len() > 1 { o } else { Outcome::Delivered };
            let first = &b.records[0].message;
            if first == "warm" {
                let (open, cv) = &*sink_gate;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = cv.wait(open).unwrap();
                }
                return one_more(Outcome::More { delivered: 1 });
            }
            if first.starts_with("bad") {
                return if b.records.len() > 1 {
                    Outcome::Refused { refused: 1, reason: "400 invalid payload".into() }
                } else {
                    Outcome::permanent("400 invalid payload")
                };
            }
            g.lock().unwrap().push(first.clone());
            one_more(Outcome::More { delivered: 1 })
        };
        let d = Delivery::builder("refused", sink).retry(fast()).spawn().unwrap();
        d.handle(rec("warm"));
        std::thread::sleep(Duration::from_millis(50));
        for m in ["bad-1", "ok-2", "ok-3"] {
            d.handle(rec(m));
        }
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        assert!(done(&d).is_complete());
        let got = got.lock().unwrap().clone();
        // The records, then the delivery's own notice of the one it could not deliver.
        assert_eq!(got[..2], ["ok-2", "ok-3"]);
        assert!(got[2..].iter().all(|m| m.contains("1 records could not be delivered")), "{got:?}");
        let s = d.snapshot();
        assert_eq!((s.failed, s.retried), (1, 0), "{s}");
        assert!(s.last_error.as_deref().is_some_and(|e| e.contains("invalid payload")));
    }

    #[test]
    fn an_absurd_server_delay_is_capped_and_counted_not_fatal() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let retry = Retry { max_server_delay: Duration::from_millis(50), ..fast() };
        let d = Delivery::builder("absurd", flaky(2, Outcome::retry_after(Some(Duration::MAX), "429"), got.clone()))
            .retry(retry)
            .spawn()
            .unwrap();
        d.handle(rec("after the storm"));
        assert!(done(&d).is_complete());
        assert_eq!(*got.lock().unwrap(), ["after the storm"]);
        let s = d.snapshot();
        assert_eq!((s.delays_capped, s.retried, s.delivered, s.panicked), (2, 2, 1, 0));
    }

    #[test]
    fn a_capped_server_delay_beyond_the_budget_gives_up_at_once() {
        let got = Arc::new(Mutex::new(Vec::new()));
        // Default ceiling (1 h) over a 1 s budget: given up, counted, not waited for.
        let retry = Retry { budget: Duration::from_secs(1), ..fast() };
        let d = Delivery::builder("beyond", flaky(1, Outcome::retry_after(Some(Duration::MAX), "429"), got.clone()))
            .retry(retry)
            .notices(false)
            .spawn()
            .unwrap();
        d.handle(rec("given up"));
        assert!(done(&d).is_complete());
        let s = d.snapshot();
        assert_eq!((s.failed, s.delays_capped, s.panicked), (1, 1, 0));
        d.handle(rec("next"));
        assert!(done(&d).is_complete());
        assert_eq!(*got.lock().unwrap(), ["next"]);
    }

    #[test]
    fn a_server_delay_is_never_honoured_below_the_backoff() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = calls.clone();
        let mut n = 0;
        let sink = move |_: &Batch| {
            c.lock().unwrap().push(Instant::now());
            n += 1;
            if n <= 2 {
                Outcome::retry_after(Some(Duration::ZERO), "429 with Retry-After: 0")
            } else {
                Outcome::Delivered
            }
        };
        let retry = Retry { initial: Duration::from_millis(200), max: Duration::from_millis(400), ..Retry::default() };
        let d = Delivery::builder("zero", sink).retry(retry).spawn().unwrap();
        d.handle(rec("x"));
        assert!(done(&d).is_complete());
        let t = calls.lock().unwrap().clone();
        assert_eq!(t.len(), 3);
        // Equal jitter: at least half the exponential delay (100 ms, then 200 ms).
        assert!(t[1] - t[0] >= Duration::from_millis(100), "{:?}", t[1] - t[0]);
        assert!(t[2] - t[1] >= Duration::from_millis(200), "{:?}", t[2] - t[1]);
    }

    #[test]
    fn extreme_user_durations_never_panic() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let retry = Retry {
            initial: Duration::MAX,
            max: Duration::MAX,
            multiplier: f64::INFINITY,
            budget: Duration::MAX,
            ..Retry::default()
        };
        let d = Delivery::builder("extreme", flaky(0, Outcome::Delivered, got.clone()))
            .retry(retry)
            .batch_wait(Duration::MAX)
            .pace(Duration::MAX)
            .overflow(Overflow::Block(Duration::MAX))
            .spawn()
            .unwrap();
        d.handle(rec("first"));
        // flush makes the batch urgent, whatever the batch wait.
        assert!(d.flush(crate::time::deadline(Duration::MAX)).is_complete());
        d.handle(rec("second: waits for a pace of Duration::MAX"));
        let f = d.shutdown(crate::time::deadline(Duration::from_millis(200)));
        assert_eq!(f.pending, 1, "the second record could not be sent within the deadline");
        assert_eq!(*got.lock().unwrap(), ["first"]);
        assert_eq!(d.snapshot().panicked, 0);
    }

    #[test]
    fn a_record_larger_than_the_queue_is_cut_to_fit() {
        let got: Arc<Mutex<Vec<Record>>> = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let d = Delivery::builder("small-queue", move |b: &Batch| {
            g.lock().unwrap().extend(b.records.iter().cloned());
            Outcome::Delivered
        })
        .queue_bytes(1 << 20)
        .spawn()
        .unwrap();
        let mut big = rec(&"é".repeat(25 << 20)); // 50 MB
        big.fields.set("blob", Value::Str("x".repeat(3 << 20)));
        d.handle(big);
        assert!(d.snapshot().queued_bytes <= 1 << 20, "queued {} bytes", d.snapshot().queued_bytes);
        assert!(done(&d).is_complete());
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert!(got[0].size_hint() <= 1 << 20);
        assert!(got[0].message.ends_with(crate::text::MARKER) && got[0].message.starts_with("éé"));
        assert!(got[0].fields.get("blob").unwrap().as_str().unwrap().ends_with(crate::text::MARKER));
        let s = d.snapshot();
        assert_eq!((s.accepted, s.delivered, s.dropped), (1, 1, 0));
    }

    #[test]
    fn a_record_that_cannot_be_cut_to_fit_is_dropped_and_counted() {
        let d = Delivery::builder("tiny-queue", |_: &Batch| Outcome::Delivered)
            .queue_bytes(16)
            .notices(false)
            .spawn()
            .unwrap();
        d.handle(rec("a record is more than 16 bytes even without text"));
        let s = d.snapshot();
        assert_eq!((s.accepted, s.dropped, s.queued_bytes), (0, 1, 0));
    }
}
