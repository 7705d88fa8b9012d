//! The background writer: a [`Sink`] that groups a batch by fingerprint and writes it in one
//! transaction.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime};

use watchbell_core::json::JsonWriter;
use watchbell_core::{Batch, Level, Origin, Outcome, Record, Sink};

use crate::notify::{Notifier, TicketChange, TicketEvent};
use crate::store::{Change, Entry, Occ, Target, TicketStore, WriteBatch};

/// The hook that chooses what of a record is stored.
pub(crate) type StoreHook = Arc<dyn Fn(&mut Record) + Send + Sync>;

/// How records become tickets.
#[derive(Clone)]
pub(crate) struct Grouping {
    pub(crate) salt: Vec<u8>,
    pub(crate) fingerprint_field: Option<String>,
    pub(crate) keep: u32,
    pub(crate) store: Option<StoreHook>,
    /// Keep each entry's newest record (for the ticket sinks).
    pub(crate) newest: bool,
}

impl fmt::Debug for Grouping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grouping")
            .field("fingerprint_field", &self.fingerprint_field)
            .field("keep", &self.keep)
            .field("store_hook", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

/// Where the time's text starts in a record's JSON document (after `{"time":"`).
const TIME_AT: usize = "{\"time\":\"".len();

/// The text that stands for a message when the store hook panicked.
pub(crate) const WITHHELD: &str = "(withheld: the store_record hook panicked)";

impl Grouping {
    /// The record as stored: the hook applied to a copy. A panicking hook stores the record
    /// without its message, fields and spans (never the data it was meant to remove).
    fn stored<'a>(&self, r: &'a Record) -> std::borrow::Cow<'a, Record> {
        let Some(hook) = &self.store else { return std::borrow::Cow::Borrowed(r) };
        let mut copy = r.clone();
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(&mut copy))).is_ok();
        if !ok {
            copy = r.clone();
            copy.message = WITHHELD.into();
            copy.fields = Default::default();
            copy.spans = Default::default();
        }
        std::borrow::Cow::Owned(copy)
    }
}

impl Grouping {
    /// The ticket fingerprint of a record: the user's fingerprint field if the event has one,
    /// otherwise level + target + file + line (+ salt). Never the message. The one definition
    /// is core's, which the alert sinks' ticket links use too.
    pub(crate) fn fingerprint(&self, r: &Record) -> String {
        watchbell_core::link::ticket_fingerprint(r, &self.salt, self.fingerprint_field.as_deref())
    }

    /// Aggregates a batch: one entry per fingerprint, in fingerprint order, each with the
    /// newest `keep` of its records as stored: their JSON (the document
    /// `serde_json::to_string(&record)` gives, written by [`watchbell_core::json`]) in one
    /// buffer for the whole batch, each time's text found in its document.
    pub(crate) fn entries(&self, batch: &Batch) -> WriteBatch {
        struct Group<'a> {
            fingerprint: String,
            first: SystemTime,
            /// The newest record (the last of those with the latest time).
            newest: usize,
            count: u64,
            records: Vec<Cow<'a, Record>>,
        }
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut groups: Vec<Group<'_>> = Vec::new();
        for r in &batch.records {
            // A rate limiter's summary record stands for all it suppressed, itself included.
            let count = if r.origin == Origin::Watchbell && r.suppressed > 0 { r.suppressed } else { 1 + r.suppressed };
            let fp = self.fingerprint(r);
            let stored = self.stored(r);
            let g = match index.get(&fp) {
                Some(&i) => &mut groups[i],
                None => {
                    index.insert(fp.clone(), groups.len());
                    groups.push(Group {
                        fingerprint: fp,
                        first: stored.time,
                        newest: 0,
                        count: 0,
                        records: Vec::new(),
                    });
                    let last = groups.len() - 1;
                    &mut groups[last]
                }
            };
            g.count = g.count.saturating_add(count);
            g.first = g.first.min(stored.time);
            if stored.time >= g.records.get(g.newest).map_or(stored.time, |n| n.time) {
                g.newest = g.records.len();
            }
            g.records.push(stored);
        }
        // A fixed order: two writers never lock the same tickets in opposite orders.
        groups.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        let stored: usize = groups.iter().map(|g| g.records.len().min(self.keep as usize)).sum();
        let mut text = String::with_capacity(stored * 512);
        let mut w = JsonWriter::new();
        let entries = groups
            .into_iter()
            .map(|g| {
                let n = &g.records[g.newest];
                let skip = g.records.len().saturating_sub(self.keep as usize);
                let occurrences = g.records[skip..]
                    .iter()
                    .map(|r| {
                        let d = text.len();
                        w.write_record(&mut text, r);
                        // The document opens with `{"time":"` and the time's text (which holds
                        // no quote): the `time` column is that text, not formatted again.
                        let t = d + TIME_AT;
                        let time_end = text.get(t..).and_then(|s| s.find('"')).map_or(t, |n| t + n);
                        Occ { time: r.time, time_text: t..time_end, data: d..text.len() }
                    })
                    .collect();
                Entry {
                    level: n.level,
                    target: n.target.to_string(),
                    location: n.location(),
                    module: n.module.as_ref().map(|m| m.to_string()),
                    message: n.message.to_string(),
                    first: g.first,
                    last: n.time,
                    count: g.count,
                    occurrences,
                    newest: if self.newest { Some(n.clone().into_owned()) } else { None },
                    fingerprint: g.fingerprint,
                }
            })
            .collect();
        WriteBatch { entries, text }
    }
}

/// Writes batches of occurrences; opens (and reopens after a failure) its own connection.
///
/// The database is spoken to from a thread of its own, and each write is waited for at most
/// [`write_wait`]: a server that accepts connections and never answers (a hung PostgreSQL, a
/// proxy in front of a dead one) would otherwise hold the delivery's worker for ever — the
/// PostgreSQL client's timeout covers only the socket's connect. A write that overstays is
/// retried on a fresh connection; the hung one is left to end on its own (at most
/// [`MAX_HUNG`] at a time; past that, writes wait for one to end rather than open more).
pub(crate) struct DbSink {
    pub(crate) target: Target,
    pub(crate) create_tables: bool,
    pub(crate) notifier: Option<Arc<Notifier>>,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) app_id: String,
    pub(crate) grouping: Grouping,
    pub(crate) writer: Option<Writer>,
    pub(crate) hung: Arc<AtomicUsize>,
    /// The alert sinks' journal of delivered alerts (see [`Journal`]).
    pub(crate) journal: Arc<Journal>,
}

/// The alert sinks' journal as the writer thread reads it: the subscription, this layer's app
/// id (entries of other apps belong to another ticketing layer), and what could not be
/// written. Best effort: the entries are written once, on the writer's connection; when that
/// fails (the database is down, a schema managed elsewhere lacks the notifications table) they
/// are shed, counted, and the first such failure is reported.
pub(crate) struct Journal {
    pub(crate) subscription: watchbell_core::notified::Subscription,
    pub(crate) app_id: String,
    /// Entries lost because writing them failed (the subscription counts its own overflow).
    pub(crate) shed: std::sync::atomic::AtomicU64,
    told: AtomicBool,
}

/// How many delivered alerts wait for the writer at most.
pub(crate) const JOURNAL_CAPACITY: usize = 10_000;

/// How often the writer thread looks at the journal when no batch comes.
const JOURNAL_POLL: Duration = Duration::from_millis(250);

impl Journal {
    pub(crate) fn new(app_id: &str) -> Journal {
        Journal {
            subscription: watchbell_core::notified::subscribe(JOURNAL_CAPACITY),
            app_id: app_id.to_owned(),
            shed: std::sync::atomic::AtomicU64::new(0),
            told: AtomicBool::new(false),
        }
    }

    /// Writes what the alert sinks delivered since the last call (on the writer's thread).
    fn write(&self, store: &mut Option<TicketStore>, open: impl FnOnce() -> Result<TicketStore, String>) {
        let notes: Vec<_> = self.subscription.drain().into_iter().filter(|n| n.app_id == self.app_id).collect();
        if notes.is_empty() {
            return;
        }
        if store.is_none() {
            match open() {
                Ok(s) => *store = Some(s),
                Err(e) => return self.shed(notes.len(), &e),
            }
        }
        let Some(s) = store.as_mut() else { return };
        if let Err(e) = s.record_notifications(&notes) {
            // Reconnect next time (the connection may be what failed).
            *store = None;
            self.shed(notes.len(), &e.to_string());
        }
    }

    fn shed(&self, n: usize, reason: &str) {
        self.shed.fetch_add(n as u64, Ordering::Relaxed);
        if !self.told.swap(true, Ordering::Relaxed) {
            watchbell_core::report::report(
                "ticketing",
                &format!(
                    "the destinations notified of {n} alert(s) were not recorded ({reason}); \
                     further losses are counted, not reported"
                ),
            );
        }
    }
}

/// The most abandoned writer threads (each blocked on a database that stopped answering)
/// alive at once.
pub(crate) const MAX_HUNG: usize = 4;

/// How long one write may take before it is given up: six times the timeout, at least 3 s
/// (a large transaction on a slow but working server must not be abandoned and written twice).
pub(crate) fn write_wait(timeout: Duration) -> Duration {
    timeout.saturating_mul(6).max(Duration::from_secs(3))
}

type Job = (String, WriteBatch, u32, bool);

/// A thread that owns the connection.
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
    done: mpsc::Receiver<Result<Vec<Change>, String>>,
    /// Set (before the writer is dropped) when the sink stopped waiting for this thread: it
    /// counts itself out of the hung ones when it ends.
    abandoned: Arc<AtomicBool>,
}

impl Writer {
    fn spawn(
        target: Target,
        prefix: String,
        timeout: Duration,
        create_tables: bool,
        hung: Arc<AtomicUsize>,
        journal: Arc<Journal>,
    ) -> std::io::Result<Writer> {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel();
        let abandoned = Arc::new(AtomicBool::new(false));
        let gone = Arc::clone(&abandoned);
        std::thread::Builder::new().name("watchbell-ticketing-db".into()).spawn(move || {
            watchbell_core::capture::mark_current_thread();
            let mut store: Option<TicketStore> = None;
            let open = || {
                TicketStore::connect_with(&target, &prefix, timeout, create_tables)
                    .map_err(|e| format!("cannot open the ticket database: {e}"))
            };
            loop {
                let (app_id, entries, keep, changes) = match job_rx.recv_timeout(JOURNAL_POLL) {
                    Ok(job) => job,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        journal.write(&mut store, open);
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        journal.write(&mut store, open);
                        break;
                    }
                };
                let result = (|| {
                    if store.is_none() {
                        store = Some(open()?);
                    }
                    let s = store.as_mut().ok_or("no connection")?;
                    s.write(&app_id, &entries, keep, changes).map_err(|e| {
                        // The transaction rolled back: nothing of the batch was counted.
                        // Reconnect next time (the connection may be what failed).
                        store = None;
                        format!("writing tickets failed: {e}")
                    })
                })();
                if done_tx.send(result).is_err() {
                    break;
                }
                journal.write(&mut store, open);
            }
            if gone.load(Ordering::Acquire) {
                hung.fetch_sub(1, Ordering::Relaxed);
            }
        })?;
        Ok(Writer { jobs, done, abandoned })
    }
}

impl fmt::Debug for DbSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketSink").field("target", &self.target).field("app_id", &self.app_id).finish_non_exhaustive()
    }
}

impl Sink for DbSink {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        let entries = self.grouping.entries(batch);
        if entries.entries.is_empty() {
            return Outcome::Delivered;
        }
        if self.writer.is_none() {
            let hung = self.hung.load(Ordering::Relaxed);
            if hung >= MAX_HUNG {
                return Outcome::retry(format!(
                    "the ticket database stopped answering ({hung} connections still hang)"
                ));
            }
            match Writer::spawn(
                self.target.clone(),
                self.prefix.clone(),
                self.timeout,
                self.create_tables,
                Arc::clone(&self.hung),
                Arc::clone(&self.journal),
            ) {
                Ok(w) => self.writer = Some(w),
                Err(e) => return Outcome::retry(format!("cannot start the database thread: {e}")),
            }
        }
        let Some(w) = self.writer.as_ref() else { return Outcome::retry("no database thread") };
        let notify = self.notifier.is_some();
        // What the ticket sinks need of each entry, kept before the entries go to the writer.
        let sample: Vec<(String, Level, Option<Record>)> = if notify {
            entries.entries.iter().map(|e| (e.fingerprint.clone(), e.level, e.newest.clone())).collect()
        } else {
            Vec::new()
        };
        if w.jobs.send((self.app_id.clone(), entries, self.grouping.keep, notify)).is_err() {
            self.writer = None;
            return Outcome::retry("the database thread ended");
        }
        let wait = write_wait(self.timeout);
        match w.done.recv_timeout(wait) {
            Ok(Ok(changes)) => {
                if let Some(n) = &self.notifier {
                    for ((fingerprint, level, record), c) in sample.into_iter().zip(changes) {
                        let change = if c.new {
                            TicketChange::New
                        } else if c.reopened {
                            TicketChange::Reopened
                        } else {
                            continue;
                        };
                        let Some(record) = record else { continue };
                        n.send(TicketEvent {
                            change,
                            ticket_id: c.ticket_id,
                            app_id: self.app_id.clone(),
                            fingerprint,
                            level,
                            occurrence_count: c.count.max(0) as u64,
                            record,
                        });
                    }
                }
                Outcome::Delivered
            }
            Ok(Err(e)) => Outcome::retry(e),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Left to end on its own; a fresh connection next time.
                self.hung.fetch_add(1, Ordering::Relaxed);
                w.abandoned.store(true, Ordering::Release);
                self.writer = None;
                Outcome::retry(format!("the ticket database did not answer within {wait:?}"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.writer = None;
                Outcome::retry("the database thread ended")
            }
        }
    }
}
