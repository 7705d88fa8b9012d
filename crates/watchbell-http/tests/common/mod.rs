//! Helpers shared by the test files.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value as J;
use watchbell_core::{Level, Record, Retry, Value};

/// An INFO record `event {i}` with the field `seq = i`.
pub fn rec(i: u64) -> Record {
    let mut r = Record::new(Level::INFO, "app", format!("event {i}"));
    r.fields.set("seq", Value::U64(i));
    r
}

/// Retries from 100 ms doubling to `max`, for up to two minutes, without an attempt limit.
pub fn fast_retry(max: Duration) -> Retry {
    Retry {
        initial: Duration::from_millis(100),
        max,
        multiplier: 2.0,
        budget: Duration::from_secs(120),
        max_attempts: 0,
        ..Retry::default()
    }
}

/// The `seq` fields of received JSON records, in order.
pub fn seqs(records: &[J]) -> Vec<u64> {
    records.iter().map(|r| r["fields"]["seq"].as_u64().expect("seq")).collect()
}
