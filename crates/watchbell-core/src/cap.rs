//! A global budget per destination: at most N alerts per window, then one "cap reached"
//! notice, then the withheld alerts are only counted.
//!
//! The [rate limit](crate::RateLimit) bounds each callsite; a cap bounds everything that goes
//! to one destination, so that an incident touching hundreds of callsites cannot page someone
//! hundreds of times (or run up an SMS bill). Sink builders offer it as
//! [`cap`](crate::SinkOptions::cap) / [`hourly_cap`](crate::SinkOptions::hourly_cap).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use watchbell_core::cap::{Cap, WITHHELD_FIELD};
//! use watchbell_core::{Handler, Level, Record};
//! # use std::sync::Mutex;
//! # #[derive(Default)] struct Keep(Mutex<Vec<Record>>);
//! # impl Handler for Keep { fn handle(&self, r: Record) { self.0.lock().unwrap().push(r); } }
//! let keep = Arc::new(Keep::default());
//! let cap = Cap::new(keep.clone(), 2, Duration::from_secs(3600)).label("pager");
//! for i in 0..5 {
//!     cap.handle(Record::new(Level::ERROR, "app", format!("alert {i}")));
//! }
//! let got = keep.0.lock().unwrap();
//! assert_eq!(got.len(), 3); // two alerts and one notice; two more withheld and counted
//! assert!(got[2].message.starts_with("pager cap reached (2 alerts per 60 min)"));
//! # let _ = WITHHELD_FIELD;
//! ```
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing_core::Level;

use crate::handler::{Flushed, Handler, Stats};
use crate::record::{Batch, BatchReason, Origin, Record, Value};

/// The field the cap sets on the first alert let through after a capped window: how many
/// alerts were withheld meanwhile.
pub const WITHHELD_FIELD: &str = "alerts_withheld";

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

/// On the caller's side, in front of a destination's deliveries: a fixed window opens with
/// the first alert; `per_window` alerts pass in it; the first one over gets a notice sent
/// instead (once per window), the others are counted (`suppressed` in the stats entry
/// `<label>-cap`). The first alert after a capped window carries the count of the alerts
/// withheld in the field [`WITHHELD_FIELD`].
///
/// An alert is a record, or a whole escalation or group batch (which a sink sends as one
/// message); records of single and flush batches count one by one.
pub struct Cap<H> {
    inner: H,
    per_window: u32,
    window: Duration,
    label: String,
    state: Mutex<State>,
}

impl<H> std::fmt::Debug for Cap<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cap")
            .field("label", &self.label)
            .field("per_window", &self.per_window)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl<H: Handler> Cap<H> {
    /// At most `per_window` alerts (at least 1) per `window` reach `inner`.
    pub fn new(inner: H, per_window: u32, window: Duration) -> Self {
        Cap { inner, per_window: per_window.max(1), window, label: "alert".into(), state: Mutex::default() }
    }

    /// The name in the notice (`"<label> cap reached …"`) and in the stats entry
    /// (`<label>-cap`, lower case); default `alert`.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
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
                "{} cap reached ({} alerts per {} min): alerts are withheld and counted for the next {mins} min. \
                 First withheld: {} {}: {}",
                self.label,
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

    fn admit(&self, mut record: Record) -> Option<Record> {
        match self.decide(1) {
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
        if let Some(r) = self.admit(record) {
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
        // An escalation or group batch is one alert (one message).
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
        out.push(Stats { name: format!("{}-cap", self.label.to_lowercase()), suppressed, notices, ..Stats::default() });
        self.inner.stats(out);
    }
}
