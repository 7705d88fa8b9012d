//! The background writer: a [`Sink`] that groups a batch by fingerprint and writes it in one
//! transaction.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use watchbell_core::{Batch, Fingerprint, Level, Origin, Outcome, Record, Sink};

use crate::store::{Entry, Target, TicketStore};

/// How records become tickets.
#[derive(Clone, Debug)]
pub(crate) struct Grouping {
    pub(crate) salt: Vec<u8>,
    pub(crate) fingerprint_field: Option<String>,
    pub(crate) keep: u32,
}

impl Grouping {
    /// The ticket fingerprint of a record: the user's fingerprint field if the event has one,
    /// otherwise level + target + file + line (+ salt). Never the message.
    pub(crate) fn fingerprint(&self, r: &Record) -> String {
        if let Some(name) = &self.fingerprint_field {
            if let Some(v) = r.fields.get(name) {
                let text = v.to_string();
                if !text.is_empty() {
                    return Fingerprint::compute(Level::TRACE, "\u{0}user-fingerprint", Some(&text), None, &self.salt)
                        .to_hex();
                }
            }
        }
        Fingerprint::compute(r.level, &r.target, r.file.as_deref(), r.line, &self.salt).to_hex()
    }

    /// Aggregates a batch: one entry per fingerprint, in fingerprint order.
    pub(crate) fn entries(&self, batch: &Batch) -> Vec<Entry> {
        let mut by_fp: HashMap<String, (Entry, Vec<&Record>)> = HashMap::new();
        for r in &batch.records {
            // A rate limiter's summary record stands for all it suppressed, itself included.
            let count = if r.origin == Origin::Watchbell && r.suppressed > 0 { r.suppressed } else { 1 + r.suppressed };
            let fp = self.fingerprint(r);
            let slot = by_fp.entry(fp.clone()).or_insert_with(|| {
                (
                    Entry {
                        fingerprint: fp,
                        level: r.level,
                        target: r.target.to_string(),
                        location: r.location(),
                        module: r.module.as_ref().map(|m| m.to_string()),
                        message: r.message.clone(),
                        first: r.time,
                        last: r.time,
                        count: 0,
                        occurrences: Vec::new(),
                    },
                    Vec::new(),
                )
            });
            let e = &mut slot.0;
            e.count = e.count.saturating_add(count);
            e.first = e.first.min(r.time);
            if r.time >= e.last {
                e.last = r.time;
                e.message.clone_from(&r.message);
                e.target = r.target.to_string();
                e.location = r.location();
                e.module = r.module.as_ref().map(|m| m.to_string());
            }
            slot.1.push(r);
        }
        let mut out: Vec<Entry> = by_fp
            .into_values()
            .map(|(mut e, records)| {
                let skip = records.len().saturating_sub(self.keep as usize);
                e.occurrences = records[skip..]
                    .iter()
                    .map(|r| (r.time, serde_json::to_string(r).unwrap_or_else(|_| "{}".to_owned())))
                    .collect();
                e
            })
            .collect();
        // A fixed order: two writers never lock the same tickets in opposite orders.
        out.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        out
    }
}

/// Writes batches of occurrences; opens (and reopens after a failure) its own connection.
pub(crate) struct TicketSink {
    pub(crate) target: Target,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) app_id: String,
    pub(crate) grouping: Grouping,
    pub(crate) store: Option<TicketStore>,
}

impl fmt::Debug for TicketSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketSink").field("target", &self.target).field("app_id", &self.app_id).finish_non_exhaustive()
    }
}

impl Sink for TicketSink {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        let entries = self.grouping.entries(batch);
        if entries.is_empty() {
            return Outcome::Delivered;
        }
        if self.store.is_none() {
            match TicketStore::connect(&self.target, &self.prefix, self.timeout) {
                Ok(s) => self.store = Some(s),
                Err(e) => return Outcome::retry(format!("cannot open the ticket database: {e}")),
            }
        }
        let Some(store) = self.store.as_mut() else { return Outcome::retry("no connection") };
        match store.write(&self.app_id, &entries, self.grouping.keep) {
            Ok(()) => Outcome::Delivered,
            Err(e) => {
                // The transaction rolled back: nothing of the batch was counted. Reconnect on
                // the next attempt (the connection may be what failed).
                self.store = None;
                Outcome::retry(format!("writing tickets failed: {e}"))
            }
        }
    }
}
