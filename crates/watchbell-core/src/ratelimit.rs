//! [`RateLimit`]: at most `record_limit` records per `record_delta` per fingerprint, with the
//! exact number suppressed reported, never lost — and, for a fleet, the number of instances
//! the suppressed records came from, and windows shared between processes ([`SharedWindows`]).
//!
//! ## Instances
//!
//! A record's *origin* is the process that logged it: its [`Record::pid`] and its `host` and
//! `app` (or `service`) fields, which a relay keeps on the records it receives. Each
//! fingerprint's entry keeps the set of origins its suppressed records came from (at most
//! [`MAX_INSTANCES`] are told apart). When the suppressed count is reported and the records
//! came from two or more origins, the reporting record gets the field [`INSTANCES_FIELD`]
//! (`instances`), and the formats say "N similar suppressed from M instances". One process
//! alone never gets the field: its output does not change.
//!
//! ## Shared windows
//!
//! With a [`SharedWindows`] backend ([`RateLimit::shared`], or [`install_shared`] for every
//! rate limit built afterwards), the records the local limiter lets through are decided again
//! against windows shared by every process of the fleet (PostgreSQL in
//! `watchbell_ticketing::fleet`). That decision is I/O, so it never runs on the caller's
//! thread: a watchbell thread of the rate limit makes it, between the local limiter and the
//! sink's queue. A record suppressed there adds its weight (itself and the records the local
//! limiter had suppressed before it) and its origin to the shared window; the record that opens
//! the next window carries the whole fleet's count and instances. When the backend fails, the
//! local decision stands (every record the local limiter passed is delivered), each such record
//! is counted (`shared_unavailable` in [`RateLimit::shared_unavailable`]), the failure is said
//! once through the error reporter, and the backend is tried again after
//! [`SHARED_RETRY`].
//!
//! ## Gathering: the count in the first alert
//!
//! Without more, the first record of a window goes out at once, before the records it will
//! stand for exist: their count comes with the next record that passes, or at flush. With
//! [`RateLimit::gather`], a record that passes is held for that long on a watchbell thread
//! (never the caller's), and goes out carrying the number of similar records suppressed
//! meanwhile and the instances they came from — locally, and with shared windows across the
//! fleet ([`SharedWindows::collect`]): 8 replicas × 1,000 identical errors make **one** alert
//! saying "7999 similar suppressed from 8 instances". The price is that delay on every alert
//! that passes (Alertmanager's `group_wait` makes the same trade). A flush or shutdown does not
//! wait for the whole gather: it releases what is held by half the time left to its deadline.
//! Summaries (counts delivered at flush) are never held.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use crate::handler::{Flushed, Handler, Stats};
use crate::record::{Batch, BatchReason, Fingerprint, Origin, Record, Value};

/// The field that tells how many instances the suppressed records came from (set only when
/// they came from two or more).
pub const INSTANCES_FIELD: &str = "instances";

/// The most distinct origins told apart per fingerprint (the set is bounded; beyond it the
/// count stays at this number).
pub const MAX_INSTANCES: usize = 1024;

/// How long a failing [`SharedWindows`] backend is left alone before it is tried again.
pub const SHARED_RETRY: Duration = Duration::from_secs(5);

/// How many records wait for the shared decision or the gather at most; beyond it the record
/// goes on at once on the local decision (counted as `shared_unavailable`).
const SHARED_QUEUE: usize = 4096;

/// The most records held for their gather at once; beyond it a record goes on at once.
const MAX_HELD: usize = 1024;

/// The identity of the process a record came from: its pid and its `host` and `app`
/// (or `service`) fields, hashed.
pub fn origin_key(r: &Record) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    r.pid.hash(&mut h);
    for name in ["host", "app", "service"] {
        match r.fields.get(name) {
            Some(v) => v.to_string().hash(&mut h),
            None => 0u8.hash(&mut h),
        }
    }
    h.finish()
}

/// The text naming a record's origin for a shared window: `host/app:pid` (the host from the
/// record's `host` field, else this machine's name).
pub fn origin_name(r: &Record) -> String {
    let host = r.fields.get("host").map(|v| v.to_string()).unwrap_or_else(|| local_host().to_owned());
    let app = r.fields.get("app").or_else(|| r.fields.get("service")).map(|v| v.to_string()).unwrap_or_default();
    format!("{host}/{app}:{}", r.pid)
}

/// This machine's host name (`/proc/sys/kernel/hostname`, `HOSTNAME`, or `localhost`), read once.
pub fn local_host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "localhost".to_owned())
    })
}

/// One question to a [`SharedWindows`] backend: may a record of `fingerprint` pass?
#[derive(Clone, Debug)]
pub struct Claim<'a> {
    /// Which limiter asks (the sink's name): each sink has windows of its own.
    pub scope: &'a str,
    /// The record's fingerprint.
    pub fingerprint: Fingerprint,
    /// Records that pass per window.
    pub limit: u32,
    /// The window.
    pub window: Duration,
    /// How many records this one stands for: itself and those the local limiter suppressed
    /// before it (a summary record stands for its count alone).
    pub weight: u64,
    /// The record's origin ([`origin_name`]).
    pub instance: &'a str,
}

/// The answer of a [`SharedWindows`] backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The record passes; it reports what the fleet suppressed before it.
    Pass {
        /// Records suppressed fleet-wide since the last report.
        suppressed: u64,
        /// The distinct origins those came from.
        instances: u32,
    },
    /// The record is suppressed; the window counted its weight and origin.
    Suppressed,
}

/// Rate-limit windows shared by the processes of a fleet. Called only on watchbell's own
/// threads. An error makes the rate limit fall back to its local decision.
pub trait SharedWindows: Send + Sync + 'static {
    /// Decides for one record, atomically for the whole fleet.
    fn claim(&self, claim: &Claim<'_>) -> Result<Verdict, String>;

    /// At the end of a [gather](RateLimit::gather): adds `claim.weight` (records this process
    /// suppressed meanwhile; 0 for none) and `claim.instance` (when the weight is above 0) to
    /// the window, then takes what the fleet suppressed since the record passed and the number
    /// of distinct origins it came from, leaving 0 behind (so the next window's first record
    /// does not report it again).
    fn collect(&self, claim: &Claim<'_>) -> Result<(u64, u32), String>;

    /// A short description for messages (no secrets).
    fn describe(&self) -> String {
        "shared rate-limit windows".to_owned()
    }
}

static SHARED: RwLock<Option<Arc<dyn SharedWindows>>> = RwLock::new(None);

/// Makes every [`RateLimit`] built from now on (the sink builders' included) use `backend`;
/// `None` stops that for later ones.
pub fn install_shared(backend: Option<Arc<dyn SharedWindows>>) {
    *SHARED.write().unwrap_or_else(|e| e.into_inner()) = backend;
}

fn installed_shared() -> Option<Arc<dyn SharedWindows>> {
    SHARED.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Rate limiting per callsite fingerprint, in front of any handler.
///
/// - A fixed window of `record_delta` opens at the first record of a fingerprint; at most
///   `record_limit` records of that fingerprint pass in it, the rest are suppressed and counted.
/// - The exact number suppressed is delivered with the next record of that fingerprint that
///   passes (in [`Record::suppressed`]; formats show it as "N similar suppressed", and "from M
///   instances" when the suppressed records came from several processes, see the
///   [module docs](self)).
/// - If none comes, the count is delivered at flush or shutdown, or when the fingerprint is
///   evicted from the cache: as the last suppressed record itself, with
///   [`Origin::Watchbell`] and `suppressed` set to the whole count.
/// - The fingerprint cache holds at most `capacity` fingerprints (default 512) and evicts the
///   least recently seen, so memory stays bounded whatever the number of callsites.
///
/// Records of an escalation or group batch pass untouched: they were already selected.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use watchbell_core::{Handler, RateLimit, Record};
/// # struct Null;
/// # impl Handler for Null { fn handle(&self, _: Record) {} }
/// let limited = RateLimit::new(Null, 1, Duration::from_secs(60));
/// for _ in 0..4 {
///     limited.handle(Record::new(tracing::Level::ERROR, "app", "disk full"));
/// }
/// assert_eq!(limited.suppressed_total(), 3);
/// ```
pub struct RateLimit<H> {
    inner: Arc<H>,
    limit: u32,
    window: Duration,
    capacity: usize,
    state: Arc<Mutex<State>>,
    backend: Option<Arc<dyn SharedWindows>>,
    gather: Duration,
    /// The thread deciding against the shared windows and holding gathered records, when
    /// either is configured.
    worker: Option<WorkerPart>,
}

struct WorkerPart {
    tx: SyncSender<Msg>,
    counters: Arc<SharedCounters>,
}

#[derive(Default)]
struct SharedCounters {
    suppressed: AtomicU64,
    unavailable: AtomicU64,
    said: AtomicBool,
}

// Records are nearly every message: boxing them would add an allocation each.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Record(Record),
    /// Answer when nothing is held or queued any more; release what is held by the instant.
    Flush(mpsc::Sender<()>, Instant),
}

#[derive(Default)]
struct State {
    entries: HashMap<Fingerprint, Entry>,
    /// last-seen tick → fingerprint, for least-recently-seen eviction.
    order: BTreeMap<u64, Fingerprint>,
    tick: u64,
    suppressed_total: u64,
    evicted: u64,
}

struct Entry {
    window_start: Instant,
    passed: u32,
    suppressed: u64,
    last_suppressed: Option<Record>,
    /// The origins of the suppressed records not yet reported.
    origins: HashSet<u64>,
    tick: u64,
}

impl<H> fmt::Debug for RateLimit<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("capacity", &self.capacity)
            .field("shared", &self.backend.is_some())
            .field("gather", &self.gather)
            .finish_non_exhaustive()
    }
}

/// Sets the instances field when the count came from two or more origins.
fn mark_instances(r: &mut Record, instances: usize) {
    if instances >= 2 {
        r.fields.set(INSTANCES_FIELD, Value::U64(instances as u64));
    }
}

impl<H: Handler> RateLimit<H> {
    /// At most `record_limit` records per `record_delta` per fingerprint (`record_limit` 0 is
    /// taken as 1). Uses the backend of [`install_shared`] if one is installed.
    pub fn new(inner: H, record_limit: u32, record_delta: Duration) -> Self {
        let rl = RateLimit {
            inner: Arc::new(inner),
            limit: record_limit.max(1),
            window: record_delta,
            capacity: 512,
            state: Arc::default(),
            backend: None,
            gather: Duration::ZERO,
            worker: None,
        };
        match installed_shared() {
            Some(backend) => rl.shared(backend),
            None => rl,
        }
    }

    /// Decides the records the local limiter passes again against `backend`'s windows, shared
    /// by the fleet, on a thread of its own (see the [module docs](self#shared-windows)). The
    /// windows' scope is the name of the first handler below (the sink's name).
    pub fn shared(mut self, backend: Arc<dyn SharedWindows>) -> Self {
        self.backend = Some(backend);
        self.respawn();
        self
    }

    /// Holds each record that passes for `gather` and sends it with the count of the similar
    /// records suppressed meanwhile — the fleet's, with shared windows — so that the first alert
    /// already says "N similar suppressed from M instances" (see the
    /// [module docs](self#gathering-the-count-in-the-first-alert)). `Duration::ZERO` (the
    /// default) sends at once.
    pub fn gather(mut self, gather: Duration) -> Self {
        self.gather = gather;
        self.respawn();
        self
    }

    /// (Re)starts the worker thread with the current backend and gather (the old one, which has
    /// seen no record yet, ends when its channel closes).
    fn respawn(&mut self) {
        self.worker = None;
        if self.backend.is_none() && self.gather.is_zero() {
            return;
        }
        let mut names = Vec::new();
        self.inner.stats(&mut names);
        let scope = names.first().map(|s| s.name.trim_end_matches("-cap").to_owned()).unwrap_or_default();
        let (tx, rx) = mpsc::sync_channel(SHARED_QUEUE);
        let counters = Arc::new(SharedCounters::default());
        let worker = Worker {
            inner: Arc::clone(&self.inner),
            state: Arc::clone(&self.state),
            backend: self.backend.clone(),
            gather: self.gather,
            scope,
            limit: self.limit,
            window: self.window,
            counters: Arc::clone(&counters),
            down_until: None,
            held: Vec::new(),
            waiting: Vec::new(),
        };
        let spawned = std::thread::Builder::new().name("watchbell-shared-limit".into()).spawn(move || worker.run(rx));
        match spawned {
            Ok(_) => self.worker = Some(WorkerPart { tx, counters }),
            Err(e) => crate::report::report(
                "rate-limit",
                &format!("no thread for shared windows or gathering ({e}): local decisions, sent at once"),
            ),
        }
    }

    /// How many fingerprints the cache keeps (at least 1).
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// Records suppressed since the start (locally and, with shared windows, by the fleet's).
    pub fn suppressed_total(&self) -> u64 {
        self.lock().suppressed_total + self.worker.as_ref().map_or(0, |s| s.counters.suppressed.load(Ordering::Relaxed))
    }

    /// Records passed on the local decision alone because the shared windows could not be
    /// asked (backend failing, or its queue full), or sent without their gather (queue full).
    pub fn shared_unavailable(&self) -> u64 {
        self.worker.as_ref().map_or(0, |s| s.counters.unavailable.load(Ordering::Relaxed))
    }

    /// Fingerprints in the cache now.
    pub fn cached(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides for one record; returns what to hand on (the record itself, and perhaps the
    /// summary of an evicted fingerprint).
    fn admit(&self, mut record: Record, now: Instant) -> (Option<Record>, Option<Record>) {
        let mut st = self.lock();
        st.tick += 1;
        let tick = st.tick;
        let fp = record.fingerprint;
        let mut evicted_summary = None;
        if let Some(e) = st.entries.get_mut(&fp) {
            let old_tick = std::mem::replace(&mut e.tick, tick);
            if now.duration_since(e.window_start) >= self.window {
                e.window_start = now;
                e.passed = 0;
            }
            let out = if e.passed < self.limit {
                e.passed += 1;
                let n = std::mem::take(&mut e.suppressed);
                record.suppressed += n;
                if n > 0 {
                    mark_instances(&mut record, e.origins.len());
                }
                e.origins.clear();
                e.last_suppressed = None;
                Some(record)
            } else {
                e.suppressed += 1;
                if e.origins.len() < MAX_INSTANCES {
                    e.origins.insert(origin_key(&record));
                }
                e.last_suppressed = Some(record);
                None
            };
            st.order.remove(&old_tick);
            st.order.insert(tick, fp);
            if out.is_none() {
                st.suppressed_total += 1;
            }
            return (out, None);
        }
        if st.entries.len() >= self.capacity {
            if let Some((_, victim)) = st.order.pop_first() {
                if let Some(v) = st.entries.remove(&victim) {
                    st.evicted += 1;
                    evicted_summary = summary(v);
                }
            }
        }
        st.entries.insert(
            fp,
            Entry { window_start: now, passed: 1, suppressed: 0, last_suppressed: None, origins: HashSet::new(), tick },
        );
        st.order.insert(tick, fp);
        (Some(record), evicted_summary)
    }

    /// Takes the pending suppressed counts as summary records.
    fn take_summaries(&self) -> Vec<Record> {
        let mut st = self.lock();
        let mut out = Vec::new();
        for e in st.entries.values_mut() {
            if e.suppressed > 0 {
                let n = std::mem::take(&mut e.suppressed);
                let instances = e.origins.len();
                e.origins.clear();
                if let Some(mut r) = e.last_suppressed.take() {
                    r.suppressed = n;
                    r.origin = Origin::Watchbell;
                    mark_instances(&mut r, instances);
                    out.push(r);
                }
            }
        }
        out.sort_by_key(|r| r.time);
        out
    }

    /// Hands a record on: to the worker (shared decision, gather) when there is one, else to
    /// the inner handler.
    fn pass_on(&self, r: Record) {
        match &self.worker {
            Some(s) => match s.tx.try_send(Msg::Record(r)) {
                Ok(()) => {}
                Err(TrySendError::Full(Msg::Record(r)) | TrySendError::Disconnected(Msg::Record(r))) => {
                    s.counters.unavailable.fetch_add(1, Ordering::Relaxed);
                    self.inner.handle(r);
                }
                Err(_) => {}
            },
            None => self.inner.handle(r),
        }
    }

    /// Flush's own part: the held records are released first (each takes its fingerprint's
    /// count), then what is still counted goes out as summaries, and their decisions are
    /// awaited.
    fn settle(&self, deadline: Instant) -> Flushed {
        let released = if self.gather.is_zero() { Flushed::COMPLETE } else { self.drain_shared(deadline) };
        for r in self.take_summaries() {
            self.pass_on(r);
        }
        released.and(self.drain_shared(deadline))
    }

    /// Waits (until `deadline`) for the shared decisions of the records handed on so far and
    /// for the release of the records held for their gather.
    fn drain_shared(&self, deadline: Instant) -> Flushed {
        let Some(s) = &self.worker else { return Flushed::COMPLETE };
        let (tx, rx) = mpsc::channel();
        let mut msg = Msg::Flush(tx, deadline);
        loop {
            match s.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return Flushed { pending: 0, timed_out: true };
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(TrySendError::Disconnected(_)) => return Flushed::COMPLETE,
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(()) => Flushed::COMPLETE,
            Err(mpsc::RecvTimeoutError::Disconnected) => Flushed::COMPLETE,
            Err(mpsc::RecvTimeoutError::Timeout) => Flushed { pending: 0, timed_out: true },
        }
    }
}

/// A record held for its gather.
struct Held {
    due: Instant,
    record: Record,
    /// Whether the fleet's windows passed it (then they are asked for the fleet's count).
    claimed: bool,
}

struct Worker<H> {
    inner: Arc<H>,
    state: Arc<Mutex<State>>,
    backend: Option<Arc<dyn SharedWindows>>,
    gather: Duration,
    scope: String,
    limit: u32,
    window: Duration,
    counters: Arc<SharedCounters>,
    down_until: Option<Instant>,
    held: Vec<Held>,
    /// Flushes waiting for the held records' release.
    waiting: Vec<mpsc::Sender<()>>,
}

impl<H: Handler> Worker<H> {
    fn run(mut self, rx: Receiver<Msg>) {
        crate::capture::mark_current_thread();
        let sync_every = self.sync_interval();
        let mut next_sync = sync_every.map(|d| crate::time::after(Instant::now(), d));
        loop {
            if let (Some(at), Some(every)) = (next_sync, sync_every) {
                if Instant::now() >= at {
                    self.sync();
                    next_sync = Some(crate::time::after(Instant::now(), every));
                }
            }
            self.release_due(Instant::now());
            if self.held.is_empty() {
                for done in self.waiting.drain(..) {
                    let _ = done.send(());
                }
            }
            let wake = self.held.iter().map(|h| h.due).chain(next_sync).min();
            let msg = match wake {
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match msg {
                Ok(Msg::Record(r)) => self.decide(r),
                Ok(Msg::Flush(done, deadline)) => {
                    // Released by half the time left, so the inner flush has the other half.
                    let now = Instant::now();
                    let by = crate::time::after(now, deadline.saturating_duration_since(now) / 2);
                    for h in &mut self.held {
                        h.due = h.due.min(by);
                    }
                    self.waiting.push(done);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.release_all();
                    return;
                }
            }
        }
    }

    /// With shared windows and a gather, how often the counts this process suppressed are
    /// added to the fleet's windows (so that the process holding the window's record collects
    /// them before its gather ends, however long the others keep running).
    fn sync_interval(&self) -> Option<Duration> {
        (self.backend.is_some() && !self.gather.is_zero())
            .then(|| (self.gather / 4).clamp(Duration::from_millis(50), Duration::from_secs(5)))
    }

    /// Adds the locally suppressed counts to the shared windows (taken from the local entries:
    /// they are reported by the fleet from now on). A window that has ended meanwhile passes
    /// the count on as a summary; a backend error puts the counts back.
    fn sync(&mut self) {
        let Some(backend) = self.backend.clone() else { return };
        if self.down_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let pending: Vec<Record> = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.entries
                .values_mut()
                .filter(|e| e.suppressed > 0 && e.last_suppressed.is_some())
                .filter_map(|e| {
                    let mut r = e.last_suppressed.take()?;
                    r.suppressed = std::mem::take(&mut e.suppressed);
                    e.origins.clear();
                    Some(r)
                })
                .collect()
        };
        for r in pending {
            match self.ask(&r, r.suppressed, |claim| backend.claim(claim)) {
                Ok(Verdict::Suppressed) => {}
                Ok(Verdict::Pass { suppressed, instances }) => {
                    let mut r = r;
                    r.origin = Origin::Watchbell;
                    r.suppressed += suppressed;
                    mark_instances(&mut r, instances as usize);
                    self.inner.handle(r);
                }
                Err(e) => {
                    self.backend_failed(&e);
                    let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(entry) = st.entries.get_mut(&r.fingerprint) {
                        entry.suppressed += r.suppressed;
                        entry.origins.insert(origin_key(&r));
                        if entry.last_suppressed.is_none() {
                            let mut r = r;
                            r.suppressed = 0;
                            entry.last_suppressed = Some(r);
                        }
                    }
                    return;
                }
            }
        }
    }

    /// Holds `r` for the gather, or hands it on at once without one (or when too many are held).
    fn forward(&mut self, r: Record, claimed: bool) {
        if self.gather.is_zero() || r.origin == Origin::Watchbell || self.held.len() >= MAX_HELD {
            self.inner.handle(r);
            return;
        }
        let due = crate::time::after(Instant::now(), self.gather);
        self.held.push(Held { due, record: r, claimed });
    }

    fn release_due(&mut self, now: Instant) {
        if self.held.iter().all(|h| h.due > now) {
            return;
        }
        let (due, keep): (Vec<Held>, Vec<Held>) =
            std::mem::take(&mut self.held).into_iter().partition(|h| h.due <= now);
        self.held = keep;
        for h in due {
            self.release(h);
        }
    }

    fn release_all(&mut self) {
        for h in std::mem::take(&mut self.held) {
            self.release(h);
        }
    }

    /// Sends a held record with what was suppressed meanwhile: this process's count (taken from
    /// the local entry, so it is not reported again) and, when the fleet's windows passed it,
    /// the fleet's.
    fn release(&mut self, h: Held) {
        let mut r = h.record;
        let (local, origins) = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match st.entries.get_mut(&r.fingerprint) {
                Some(e) => {
                    e.last_suppressed = None;
                    (std::mem::take(&mut e.suppressed), std::mem::take(&mut e.origins).len())
                }
                None => (0, 0),
            }
        };
        let mut suppressed = local;
        let mut instances = origins;
        if let (true, Some(backend)) = (h.claimed, self.backend.clone()) {
            match self.ask(&r, local, |claim| backend.collect(claim)) {
                // The fleet's count includes the local weight just added.
                Ok((fleet, fleet_instances)) => {
                    suppressed = fleet.max(local);
                    instances = instances.max(fleet_instances as usize);
                }
                Err(e) => self.backend_failed(&e),
            }
        }
        if suppressed > 0 {
            r.suppressed += suppressed;
            let before = r.fields.get(INSTANCES_FIELD).and_then(Value::as_u64).unwrap_or(1) as usize;
            mark_instances(&mut r, instances.max(before));
        }
        self.inner.handle(r);
    }

    fn backend_failed(&mut self, e: &str) {
        self.down_until = Some(crate::time::after(Instant::now(), SHARED_RETRY));
        self.counters.unavailable.fetch_add(1, Ordering::Relaxed);
        if !self.counters.said.swap(true, Ordering::Relaxed) {
            let describe = self.backend.as_ref().map_or_else(String::new, |b| b.describe());
            crate::report::report(
                "rate-limit",
                &format!(
                    "{describe} unavailable, rate limiting locally until it answers again: {}",
                    crate::secret::redact_text(e)
                ),
            );
        }
    }

    /// Asks the backend about `r` (its fingerprint and origin) standing for `weight` records;
    /// a panicking backend is an error like any other.
    fn ask<T>(&self, r: &Record, weight: u64, op: impl FnOnce(&Claim<'_>) -> Result<T, String>) -> Result<T, String> {
        let instance = origin_name(r);
        let claim = Claim {
            scope: &self.scope,
            fingerprint: r.fingerprint,
            limit: self.limit,
            window: self.window,
            weight,
            instance: &instance,
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(&claim)))
            .unwrap_or_else(|_| Err("the backend panicked".to_owned()))
    }

    fn decide(&mut self, mut r: Record) {
        let Some(backend) = self.backend.clone() else {
            self.forward(r, false);
            return;
        };
        if self.down_until.is_some_and(|t| Instant::now() < t) {
            self.counters.unavailable.fetch_add(1, Ordering::Relaxed);
            self.forward(r, false);
            return;
        }
        // A summary stands for its count; any other record for itself and the records the
        // local limiter suppressed before it.
        let weight = if r.origin == Origin::Watchbell && r.suppressed > 0 { r.suppressed } else { 1 + r.suppressed };
        match self.ask(&r, weight, |claim| backend.claim(claim)) {
            Ok(Verdict::Pass { suppressed, instances }) => {
                self.down_until = None;
                if suppressed > 0 {
                    r.suppressed += suppressed;
                    let local = r.fields.get(INSTANCES_FIELD).and_then(Value::as_u64).unwrap_or(1) as u32;
                    mark_instances(&mut r, instances.max(local) as usize);
                }
                self.forward(r, true);
            }
            Ok(Verdict::Suppressed) => {
                self.down_until = None;
                self.counters.suppressed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.backend_failed(&e);
                self.forward(r, false);
            }
        }
    }
}

fn summary(e: Entry) -> Option<Record> {
    let mut r = e.last_suppressed?;
    if e.suppressed == 0 {
        return None;
    }
    r.suppressed = e.suppressed;
    r.origin = Origin::Watchbell;
    mark_instances(&mut r, e.origins.len());
    Some(r)
}

impl<H: Handler> Handler for RateLimit<H> {
    fn handle(&self, record: Record) {
        let (pass, evicted) = self.admit(record, Instant::now());
        if let Some(r) = evicted {
            self.pass_on(r);
        }
        if let Some(r) = pass {
            self.pass_on(r);
        }
    }

    fn handle_batch(&self, batch: Batch) {
        if batch.reason == BatchReason::Single {
            for r in batch.records {
                self.handle(r);
            }
        } else {
            self.inner.handle_batch(batch);
        }
    }

    fn flush(&self, deadline: Instant) -> Flushed {
        self.settle(deadline).and(self.inner.flush(deadline))
    }

    fn shutdown(&self, deadline: Instant) -> Flushed {
        self.settle(deadline).and(self.inner.shutdown(deadline))
    }

    fn stats(&self, out: &mut Vec<Stats>) {
        let st = self.lock();
        let suppressed = st.suppressed_total;
        drop(st);
        let mut s = Stats { name: "rate-limit".into(), suppressed, ..Stats::default() };
        if let Some(sh) = &self.worker {
            s.suppressed += sh.counters.suppressed.load(Ordering::Relaxed);
            let down = sh.counters.unavailable.load(Ordering::Relaxed);
            if down > 0 {
                s.last_error = Some(format!("shared windows unavailable for {down} records (decided locally)"));
            }
        }
        out.push(s);
        self.inner.stats(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tracing_core::Level;

    #[derive(Default)]
    struct Keep(Mutex<Vec<Record>>);
    impl Handler for Keep {
        fn handle(&self, r: Record) {
            self.0.lock().unwrap().push(r);
        }
    }

    fn rec(line: u32, msg: &str) -> Record {
        let mut r = Record::new(Level::ERROR, "app", msg);
        r.line = Some(line);
        r.file = Some("src/main.rs".into());
        r.fingerprint = Fingerprint::compute(r.level, &r.target, r.file.as_deref(), r.line, b"");
        r
    }

    #[test]
    fn four_records_limit_one_reports_exactly_three() {
        let keep = Arc::new(Keep::default());
        let rl = RateLimit::new(keep.clone(), 1, Duration::from_millis(50));
        for i in 0..4 {
            rl.handle(rec(10, &format!("attempt {i}")));
        }
        assert_eq!(keep.0.lock().unwrap().len(), 1);
        assert_eq!(rl.suppressed_total(), 3);
        std::thread::sleep(Duration::from_millis(60));
        rl.handle(rec(10, "later"));
        let got = keep.0.lock().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].message, "later");
        assert_eq!(got[1].suppressed, 3, "the true count, not Logbook's off-by-one 4");
    }

    #[test]
    fn pending_counts_are_reported_at_flush() {
        let keep = Arc::new(Keep::default());
        let rl = RateLimit::new(keep.clone(), 2, Duration::from_secs(3600));
        for i in 0..7 {
            rl.handle(rec(1, &format!("a{i}")));
        }
        rl.handle(rec(2, "other"));
        assert!(rl.flush(Instant::now()).is_complete());
        let got = keep.0.lock().unwrap();
        assert_eq!(got.len(), 4);
        let summary = &got[3];
        assert_eq!(summary.suppressed, 5);
        assert_eq!(summary.message, "a6");
        assert_eq!(summary.origin, Origin::Watchbell);
        drop(got);
        // Nothing is reported twice.
        let _ = rl.flush(Instant::now());
        assert_eq!(keep.0.lock().unwrap().len(), 4);
    }

    #[test]
    fn cache_is_bounded_and_evictions_report_their_counts() {
        let keep = Arc::new(Keep::default());
        let rl = RateLimit::new(keep.clone(), 1, Duration::from_secs(3600)).cache_capacity(512);
        // One fingerprint with suppressed records, then 10,000 distinct ones push it out.
        rl.handle(rec(0, "first"));
        rl.handle(rec(0, "first again"));
        for line in 1..=10_000 {
            rl.handle(rec(line, "distinct"));
        }
        assert!(rl.cached() <= 512);
        let got = keep.0.lock().unwrap();
        let summaries: Vec<_> = got.iter().filter(|r| r.origin == Origin::Watchbell).collect();
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].suppressed, 1);
        assert_eq!(got.len(), 1 + 10_000 + 1);
    }

    fn from_process(pid: u32, host: &str, msg: &str) -> Record {
        let mut r = rec(7, msg);
        r.pid = pid;
        r.fields.set("host", Value::Str(host.into()));
        r
    }

    #[test]
    fn the_count_says_how_many_instances_the_suppressed_records_came_from() {
        let keep = Arc::new(Keep::default());
        let rl = RateLimit::new(keep.clone(), 1, Duration::from_secs(3600));
        // 3 processes on 2 hosts (pid 10 on both is two instances), 5 records each.
        for (pid, host) in [(10, "a"), (10, "b"), (11, "a")] {
            for i in 0..5 {
                rl.handle(from_process(pid, host, &format!("{host}:{pid}:{i}")));
            }
        }
        assert!(rl.flush(Instant::now()).is_complete());
        let got = keep.0.lock().unwrap();
        assert_eq!(got.len(), 2);
        assert!(got[0].fields.get(INSTANCES_FIELD).is_none(), "the first record stands for itself");
        assert_eq!(got[1].suppressed, 14);
        assert_eq!(got[1].fields.get(INSTANCES_FIELD), Some(&Value::U64(3)));
    }

    #[test]
    fn one_process_alone_gets_no_instances_field() {
        let keep = Arc::new(Keep::default());
        let rl = RateLimit::new(keep.clone(), 1, Duration::from_millis(30));
        for i in 0..4 {
            rl.handle(rec(3, &format!("a{i}")));
        }
        std::thread::sleep(Duration::from_millis(40));
        rl.handle(rec(3, "next window"));
        let got = keep.0.lock().unwrap();
        assert_eq!(got[1].suppressed, 3);
        assert!(got[1].fields.get(INSTANCES_FIELD).is_none());
    }

    #[test]
    fn the_instance_set_is_bounded() {
        let keep = Arc::new(Keep::default());
        let rl = RateLimit::new(keep.clone(), 1, Duration::from_secs(3600));
        for pid in 0..(MAX_INSTANCES as u32 + 500) {
            rl.handle(from_process(pid, "h", "m"));
        }
        assert!(rl.flush(Instant::now()).is_complete());
        let got = keep.0.lock().unwrap();
        assert_eq!(got[1].suppressed, MAX_INSTANCES as u64 + 499);
        assert_eq!(got[1].fields.get(INSTANCES_FIELD), Some(&Value::U64(MAX_INSTANCES as u64)));
    }

    /// A backend that suppresses everything after the first record per fingerprint and
    /// reports the weights it saw, as a database would.
    #[derive(Default)]
    struct Windows(Mutex<HashMap<u64, Row>>);
    /// Whether the window passed its record, the weight suppressed, the origins.
    type Row = (bool, u64, HashSet<String>);
    impl SharedWindows for Windows {
        fn claim(&self, c: &Claim<'_>) -> Result<Verdict, String> {
            let mut m = self.0.lock().unwrap();
            let e = m.entry(c.fingerprint.0).or_default();
            if !e.0 {
                e.0 = true;
                return Ok(Verdict::Pass { suppressed: 0, instances: 0 });
            }
            e.1 += c.weight;
            e.2.insert(c.instance.to_owned());
            Ok(Verdict::Suppressed)
        }

        fn collect(&self, c: &Claim<'_>) -> Result<(u64, u32), String> {
            let mut m = self.0.lock().unwrap();
            let e = m.entry(c.fingerprint.0).or_default();
            if c.weight > 0 {
                e.1 += c.weight;
                e.2.insert(c.instance.to_owned());
            }
            let out = (std::mem::take(&mut e.1), std::mem::take(&mut e.2).len() as u32);
            Ok(out)
        }
    }

    #[test]
    fn shared_decisions_weigh_local_counts_and_origins() {
        let keep = Arc::new(Keep::default());
        let windows = Arc::new(Windows::default());
        let a = RateLimit::new(keep.clone(), 1, Duration::from_secs(3600)).shared(windows.clone());
        let b = RateLimit::new(keep.clone(), 1, Duration::from_secs(3600)).shared(windows.clone());
        for i in 0..10 {
            a.handle(from_process(1, "a", &format!("a{i}")));
            b.handle(from_process(2, "b", &format!("b{i}")));
        }
        let d = crate::time::deadline(Duration::from_secs(5));
        assert!(a.flush(d).is_complete() && b.flush(d).is_complete());
        // One passed; the other limiter's first record and both local summaries were counted.
        assert_eq!(keep.0.lock().unwrap().len(), 1);
        let m = windows.0.lock().unwrap();
        let (_, weight, instances) = m.values().next().unwrap();
        assert_eq!(*weight, 19, "1 + 9 + 9: every record but the one that passed");
        assert_eq!(instances.len(), 2);
    }

    #[test]
    fn a_gathered_record_goes_out_once_with_the_count_of_its_window() {
        let keep = Arc::new(Keep::default());
        let rl = RateLimit::new(keep.clone(), 1, Duration::from_secs(3600)).gather(Duration::from_secs(1));
        for (pid, host) in [(10, "a"), (11, "b"), (12, "c")] {
            for i in 0..5 {
                rl.handle(from_process(pid, host, &format!("{host}:{i}")));
            }
        }
        assert!(keep.0.lock().unwrap().is_empty(), "held on the worker, not sent at once");
        let end = Instant::now() + Duration::from_secs(10);
        while keep.0.lock().unwrap().is_empty() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(rl.flush(crate::time::deadline(Duration::from_secs(5))).is_complete());
        let got = keep.0.lock().unwrap();
        assert_eq!(got.len(), 1, "one record, and no summary after it");
        assert_eq!(got[0].message, "a:0");
        assert_eq!(got[0].suppressed, 14);
        assert_eq!(got[0].fields.get(INSTANCES_FIELD), Some(&Value::U64(3)));
        assert_eq!(rl.suppressed_total(), 14);
    }

    #[test]
    fn a_flush_releases_held_records_within_its_deadline() {
        let keep = Arc::new(Keep::default());
        let rl = RateLimit::new(keep.clone(), 1, Duration::from_secs(3600)).gather(Duration::from_secs(3600));
        for i in 0..3 {
            rl.handle(rec(5, &format!("a{i}")));
        }
        rl.handle(rec(6, "other"));
        let started = Instant::now();
        assert!(rl.shutdown(crate::time::deadline(Duration::from_secs(2))).is_complete());
        assert!(started.elapsed() < Duration::from_secs(2), "an hour's gather cut short by the deadline");
        let got = keep.0.lock().unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        let a = got.iter().find(|r| r.message == "a0").unwrap();
        assert_eq!(a.suppressed, 2);
        assert!(a.fields.get(INSTANCES_FIELD).is_none(), "one process alone");
    }

    #[test]
    fn a_gathered_record_that_won_the_shared_window_carries_the_fleets_count() {
        let keep = Arc::new(Keep::default());
        let windows = Arc::new(Windows::default());
        // An hour: `a`'s record is released by its flush, after the others have flushed.
        let gather = Duration::from_secs(3600);
        let a = RateLimit::new(keep.clone(), 1, Duration::from_secs(3600)).shared(windows.clone()).gather(gather);
        a.handle(from_process(1, "a", "a0"));
        // `a`'s first record wins the window before the others log.
        let end = Instant::now() + Duration::from_secs(5);
        while windows.0.lock().unwrap().is_empty() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        let others: Vec<_> = (2..5)
            .map(|_| RateLimit::new(keep.clone(), 1, Duration::from_secs(3600)).shared(windows.clone()).gather(gather))
            .collect();
        for (n, rl) in others.iter().enumerate() {
            for i in 0..10 {
                rl.handle(from_process(n as u32 + 2, "b", &format!("b{i}")));
            }
        }
        for i in 1..10 {
            a.handle(from_process(1, "a", &format!("a{i}")));
        }
        let d = crate::time::deadline(Duration::from_secs(5));
        for rl in &others {
            assert!(rl.flush(d).is_complete());
        }
        assert!(a.flush(crate::time::deadline(Duration::from_secs(1))).is_complete());
        let got = keep.0.lock().unwrap();
        assert_eq!(got.len(), 1, "one alert for the fleet: {got:?}");
        assert_eq!(got[0].message, "a0");
        assert_eq!(got[0].suppressed, 39, "9 of its own and 3 × 10 of the others");
        assert_eq!(got[0].fields.get(INSTANCES_FIELD), Some(&Value::U64(4)));
    }

    #[test]
    fn with_a_gather_a_running_process_adds_its_counts_to_the_shared_window_without_a_flush() {
        let keep = Arc::new(Keep::default());
        let windows = Arc::new(Windows::default());
        let a = RateLimit::new(keep.clone(), 1, Duration::from_secs(3600))
            .shared(windows.clone())
            .gather(Duration::from_secs(3600));
        a.handle(from_process(1, "a", "a0"));
        let end = Instant::now() + Duration::from_secs(5);
        while windows.0.lock().unwrap().is_empty() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        // `b` keeps running (no flush): its counts reach the window on its own thread.
        let b = RateLimit::new(keep.clone(), 1, Duration::from_secs(3600))
            .shared(windows.clone())
            .gather(Duration::from_millis(200));
        for i in 0..10 {
            b.handle(from_process(2, "b", &format!("b{i}")));
        }
        let weight = || windows.0.lock().unwrap().values().next().map_or(0, |row| row.1);
        let end = Instant::now() + Duration::from_secs(10);
        while weight() < 10 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(weight(), 10, "b's first record and its 9 local suppressed");
        assert!(a.flush(crate::time::deadline(Duration::from_secs(1))).is_complete());
        let got = keep.0.lock().unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].suppressed, 10);
        assert!(got[0].fields.get(INSTANCES_FIELD).is_none(), "all of them from b");
    }
}
