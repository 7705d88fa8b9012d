//! The global cost cap: at most N alerts per window, then one "cap reached" notice, then
//! withheld alerts are counted.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use watchbell_core::handler::{Flushed, Stats};
use watchbell_core::{Batch, BatchReason, Handler, Level, Origin, Record, Value};

use crate::sink::WITHHELD_FIELD;

#[derive(Default)]
struct State {
    window_start: Option<Instant>,
    passed: u32,
    notified: bool,
    withheld_in_window: u64,
    /// Withheld in earlier windows, not yet reported with an alert.
    carry: u64,
    withheld_total: u64,
    notices: u64,
}

enum Verdict {
    Pass(u64),
    Notice(Duration),
    Withhold,
}

/// On the caller's side, in front of the deliveries: a fixed window opens with the first alert;
/// `per_window` alerts pass in it; the first one over gets a notice sent instead (once per
/// window), the others are counted in `suppressed`. The first alert after a capped window
/// carries the count of the alerts withheld (field `sms_withheld`).
pub(crate) struct Cap<H> {
    inner: H,
    per_window: u32,
    window: Duration,
    state: Mutex<State>,
}

impl<H: Handler> Cap<H> {
    pub(crate) fn new(inner: H, per_window: u32, window: Duration) -> Self {
        Cap { inner, per_window, window, state: Mutex::default() }
    }

    fn decide(&self, records: u64) -> Verdict {
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let start = *st.window_start.get_or_insert(now);
        if now.duration_since(start) >= self.window {
            st.window_start = Some(now);
            st.passed = 0;
            st.notified = false;
            st.carry += std::mem::take(&mut st.withheld_in_window);
        }
        if st.passed < self.per_window {
            st.passed += 1;
            return Verdict::Pass(std::mem::take(&mut st.carry));
        }
        st.withheld_in_window += records;
        st.withheld_total += records;
        if st.notified {
            return Verdict::Withhold;
        }
        st.notified = true;
        st.notices += 1;
        let start = st.window_start.unwrap_or(now);
        Verdict::Notice(self.window.saturating_sub(now.duration_since(start)))
    }

    fn notice(&self, first: &Record, remaining: Duration) -> Record {
        let mins = remaining.as_secs().div_ceil(60).max(1);
        let mut r = Record::new(
            Level::WARN,
            "watchbell",
            format!(
                "SMS cap reached ({} alerts per {} min): alerts are withheld and counted for the next {mins} min. \
                 First withheld: {} {}: {}",
                self.per_window,
                self.window.as_secs().div_ceil(60).max(1),
                first.level,
                first.target,
                first.message
            ),
        );
        r.origin = Origin::Watchbell;
        r
    }

    fn admit(&self, mut record: Record, records: u64) -> Option<Record> {
        match self.decide(records) {
            Verdict::Pass(carry) => {
                if carry > 0 {
                    record.fields.set(WITHHELD_FIELD, Value::U64(carry));
                }
                Some(record)
            }
            Verdict::Notice(remaining) => Some(self.notice(&record, remaining)),
            Verdict::Withhold => None,
        }
    }
}

impl<H: Handler> Handler for Cap<H> {
    fn handle(&self, record: Record) {
        if let Some(r) = self.admit(record, 1) {
            self.inner.handle(r);
        }
    }

    fn handle_batch(&self, mut batch: Batch) {
        if matches!(batch.reason, BatchReason::Single | BatchReason::Flush) {
            for r in batch.records {
                self.handle(r);
            }
            return;
        }
        // An escalation or group batch is one alert (one SMS).
        if batch.is_empty() {
            return;
        }
        match self.decide(batch.len() as u64) {
            Verdict::Pass(carry) => {
                if carry > 0 {
                    let idx = match batch.reason {
                        BatchReason::Escalation => batch.records.len() - 1,
                        _ => 0,
                    };
                    batch.records[idx].fields.set(WITHHELD_FIELD, Value::U64(carry));
                }
                self.inner.handle_batch(batch);
            }
            Verdict::Notice(remaining) => {
                if let Some(significant) = batch.significant() {
                    self.inner.handle(self.notice(significant, remaining));
                }
            }
            Verdict::Withhold => {}
        }
    }

    fn flush(&self, deadline: Instant) -> Flushed {
        self.inner.flush(deadline)
    }

    fn shutdown(&self, deadline: Instant) -> Flushed {
        self.inner.shutdown(deadline)
    }

    fn stats(&self, out: &mut Vec<Stats>) {
        let (suppressed, notices) = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            (st.withheld_total, st.notices)
        };
        out.push(Stats { name: "sms-cap".into(), suppressed, notices, ..Stats::default() });
        self.inner.stats(out);
    }
}
