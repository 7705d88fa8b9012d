//! [`RateLimit`]: at most `record_limit` records per `record_delta` per fingerprint, with the
//! exact number suppressed reported, never lost.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::handler::{Flushed, Handler, Stats};
use crate::record::{Batch, BatchReason, Fingerprint, Origin, Record};

/// Rate limiting per callsite fingerprint, in front of any handler.
///
/// - A fixed window of `record_delta` opens at the first record of a fingerprint; at most
///   `record_limit` records of that fingerprint pass in it, the rest are suppressed and counted.
/// - The exact number suppressed is delivered with the next record of that fingerprint that
///   passes (in [`Record::suppressed`]; formats show it as "N similar suppressed").
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
    inner: H,
    limit: u32,
    window: Duration,
    capacity: usize,
    state: Mutex<State>,
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
    tick: u64,
}

impl<H> fmt::Debug for RateLimit<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<H: Handler> RateLimit<H> {
    /// At most `record_limit` records per `record_delta` per fingerprint (`record_limit` 0 is
    /// taken as 1).
    pub fn new(inner: H, record_limit: u32, record_delta: Duration) -> Self {
        RateLimit { inner, limit: record_limit.max(1), window: record_delta, capacity: 512, state: Mutex::default() }
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

    /// Records suppressed since the start.
    pub fn suppressed_total(&self) -> u64 {
        self.lock().suppressed_total
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
                record.suppressed += std::mem::take(&mut e.suppressed);
                e.last_suppressed = None;
                Some(record)
            } else {
                e.suppressed += 1;
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
        st.entries.insert(fp, Entry { window_start: now, passed: 1, suppressed: 0, last_suppressed: None, tick });
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
                if let Some(mut r) = e.last_suppressed.take() {
                    r.suppressed = n;
                    r.origin = Origin::Watchbell;
                    out.push(r);
                }
            }
        }
        out.sort_by_key(|r| r.time);
        out
    }
}

fn summary(e: Entry) -> Option<Record> {
    let mut r = e.last_suppressed?;
    if e.suppressed == 0 {
        return None;
    }
    r.suppressed = e.suppressed;
    r.origin = Origin::Watchbell;
    Some(r)
}

impl<H: Handler> Handler for RateLimit<H> {
    fn handle(&self, record: Record) {
        let (pass, evicted) = self.admit(record, Instant::now());
        if let Some(r) = evicted {
            self.inner.handle(r);
        }
        if let Some(r) = pass {
            self.inner.handle(r);
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
        for r in self.take_summaries() {
            self.inner.handle(r);
        }
        self.inner.flush(deadline)
    }

    fn shutdown(&self, deadline: Instant) -> Flushed {
        for r in self.take_summaries() {
            self.inner.handle(r);
        }
        self.inner.shutdown(deadline)
    }

    fn stats(&self, out: &mut Vec<Stats>) {
        let st = self.lock();
        out.push(Stats { name: "rate-limit".into(), suppressed: st.suppressed_total, ..Stats::default() });
        drop(st);
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
}
