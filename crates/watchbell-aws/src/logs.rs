//! CloudWatch Logs: `PutLogEvents` within the service's rules, creating the group and stream.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value as Json};
use watchbell_core::{Outcome, Record};

use crate::client::{AwsClient, Call};
use crate::{Counters, Resume};

/// The most events of one `PutLogEvents`.
pub const LOGS_MAX_EVENTS: usize = 10_000;
/// The most bytes of one `PutLogEvents`: the UTF-8 bytes of every message plus
/// [`LOGS_EVENT_OVERHEAD`] per event.
pub const LOGS_MAX_BYTES: usize = 1_048_576;
/// What CloudWatch Logs counts for each event beyond its message.
pub const LOGS_EVENT_OVERHEAD: usize = 26;
/// The largest event (message and overhead), 256 KiB.
pub const LOGS_MAX_EVENT_BYTES: usize = 262_144;
/// The widest time span of one `PutLogEvents`.
pub const LOGS_MAX_SPAN: Duration = Duration::from_secs(24 * 3600);
/// Events older than this are refused by the service (and counted, not sent).
pub const LOGS_MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);
/// Events further in the future than this are refused by the service (and counted, not sent).
pub const LOGS_MAX_AHEAD: Duration = Duration::from_secs(2 * 3600);

/// Milliseconds since the Unix epoch (before it: 0).
pub(crate) fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Plans the `PutLogEvents` calls for events `(time in ms, message bytes)`, given in any
/// order: the indices of each call, each in time order, within [`LOGS_MAX_EVENTS`],
/// [`LOGS_MAX_BYTES`] (with the overhead) and a [`LOGS_MAX_SPAN`]. Sorting is stable: events
/// of the same millisecond keep their order.
///
/// ```
/// use watchbell_aws::plan_log_calls;
/// let day = 24 * 3600 * 1000;
/// let calls = plan_log_calls(&[(5, 10), (1, 10), (1 + day + 1, 10)]);
/// assert_eq!(calls, vec![vec![1, 0], vec![2]]);
/// ```
pub fn plan_log_calls(events: &[(i64, usize)]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| events[i].0);
    let span = i64::try_from(LOGS_MAX_SPAN.as_millis()).unwrap_or(i64::MAX);
    let mut calls: Vec<Vec<usize>> = Vec::new();
    let (mut bytes, mut first) = (0usize, 0i64);
    for i in order {
        let (t, n) = events[i];
        let n = n + LOGS_EVENT_OVERHEAD;
        match calls.last_mut() {
            Some(c) if c.len() < LOGS_MAX_EVENTS && bytes + n <= LOGS_MAX_BYTES && t.saturating_sub(first) < span => {
                c.push(i);
                bytes += n;
            }
            _ => {
                calls.push(vec![i]);
                bytes = n;
                first = t;
            }
        }
    }
    calls
}

/// How many events of a call of `sent` the answer's `rejectedLogEventsInfo` says were
/// refused (too old, expired by the group's retention, too new).
pub(crate) fn rejected(answer: &Json, sent: usize) -> usize {
    let Some(info) = answer.get("rejectedLogEventsInfo") else { return 0 };
    let idx = |k: &str| info.get(k).and_then(Json::as_u64).and_then(|v| usize::try_from(v).ok());
    let old = idx("tooOldLogEventEndIndex").map_or(0, |i| i + 1);
    let expired = idx("expiredLogEventEndIndex").map_or(0, |i| i + 1);
    let new = idx("tooNewLogEventStartIndex").map_or(0, |i| sent.saturating_sub(i));
    (old.max(expired) + new).min(sent)
}

#[derive(Debug)]
pub(crate) struct Logs {
    pub client: AwsClient,
    pub group: String,
    pub stream: String,
    pub create: bool,
    pub app: Option<String>,
    pub host: Option<String>,
    pub counters: std::sync::Arc<Counters>,
    pub resume: Option<Resume>,
    /// The sequence token the service asked for last (services that still use them).
    pub token: Option<String>,
}

enum Put {
    Ok,
    Missing,
    Stop(Outcome),
}

impl Logs {
    pub(crate) fn deliver(&mut self, recs: &[Record]) -> Outcome {
        let mut done = Resume::take(&mut self.resume, recs);
        let now = SystemTime::now();
        let oldest = now.checked_sub(LOGS_MAX_AGE).map_or(0, millis);
        let newest = now.checked_add(LOGS_MAX_AHEAD).map_or(i64::MAX, millis);
        let max_msg = LOGS_MAX_EVENT_BYTES - LOGS_EVENT_OVERHEAD;
        let mut todo = Vec::new();
        let mut events = Vec::new();
        for (i, r) in recs.iter().enumerate() {
            if done[i] {
                continue;
            }
            let t = millis(r.time);
            if t < oldest || t > newest {
                done[i] = true;
                let why = if t < oldest { "older than 14 days" } else { "more than 2 hours in the future" };
                self.counters.fail(1, format!("CloudWatch Logs takes no event {why}: not sent"));
                continue;
            }
            let msg = crate::sqs::record_body(r, self.app.as_deref(), self.host.as_deref(), max_msg);
            todo.push(i);
            events.push((t, msg));
        }
        let sizes: Vec<(i64, usize)> = events.iter().map(|(t, m)| (*t, m.len())).collect();
        let mut failure = None;
        'calls: for call in plan_log_calls(&sizes) {
            let body_events: Vec<Json> =
                call.iter().map(|&k| json!({"timestamp": events[k].0, "message": events[k].1})).collect();
            let mut created = false;
            // A missing group or stream is created once, a stale token taken once.
            for _ in 0..3 {
                match self.put(&body_events) {
                    Put::Ok => {
                        call.iter().for_each(|&k| done[todo[k]] = true);
                        continue 'calls;
                    }
                    Put::Missing if self.create && !created => {
                        created = true;
                        if let Some(o) = self.create_group_and_stream() {
                            failure = Some(o);
                            break 'calls;
                        }
                    }
                    Put::Missing if !self.create => {
                        failure = Some(Outcome::permanent(
                            "CloudWatch Logs: the log group or stream does not exist (creating them is off)",
                        ));
                        break 'calls;
                    }
                    Put::Missing => {
                        failure =
                            Some(Outcome::retry("CloudWatch Logs: the log stream is still missing after creating it"));
                        break 'calls;
                    }
                    Put::Stop(o) => {
                        failure = Some(o);
                        break 'calls;
                    }
                }
            }
            failure = Some(Outcome::retry("CloudWatch Logs: the call did not go through after creating the stream"));
            break;
        }
        Resume::finish(&mut self.resume, recs, &done, failure)
    }

    fn put(&mut self, events: &[Json]) -> Put {
        let mut body = json!({"logGroupName": self.group, "logStreamName": self.stream, "logEvents": events});
        if let Some(t) = &self.token {
            body["sequenceToken"] = json!(t);
        }
        match self.client.json("1.1", "Logs_20140328.PutLogEvents", &body) {
            Call::Ok(resp) => {
                let answer: Json = serde_json::from_slice(&resp.body).unwrap_or(Json::Null);
                if let Some(t) = answer.get("nextSequenceToken").and_then(Json::as_str) {
                    self.token = Some(t.to_owned());
                }
                let n = rejected(&answer, events.len());
                if n > 0 {
                    self.counters
                        .fail(n as u64, "CloudWatch Logs rejected events (too old, too new or past retention)".into());
                }
                Put::Ok
            }
            Call::Failed(e, o) => match e.code.as_str() {
                "ResourceNotFoundException" => Put::Missing,
                // Sent before (a retry after a lost answer): nothing to do.
                "DataAlreadyAcceptedException" => {
                    self.token = expected_token(&e.message).or(self.token.take());
                    Put::Ok
                }
                "InvalidSequenceTokenException" => {
                    match expected_token(&e.message) {
                        Some(t) => self.token = Some(t),
                        None => self.token = None,
                    }
                    Put::Stop(Outcome::retry_after(Some(Duration::ZERO), "CloudWatch Logs: stale sequence token"))
                }
                _ => Put::Stop(o),
            },
            Call::NoAnswer(o) => Put::Stop(o),
        }
    }

    /// `CreateLogGroup` and `CreateLogStream`, each fine when it exists already.
    fn create_group_and_stream(&mut self) -> Option<Outcome> {
        let calls = [
            ("Logs_20140328.CreateLogGroup", json!({"logGroupName": self.group})),
            ("Logs_20140328.CreateLogStream", json!({"logGroupName": self.group, "logStreamName": self.stream})),
        ];
        for (target, body) in calls {
            match self.client.json("1.1", target, &body) {
                Call::Ok(_) => {}
                Call::Failed(e, _) if e.code == "ResourceAlreadyExistsException" => {}
                Call::Failed(_, o) | Call::NoAnswer(o) => return Some(o),
            }
        }
        self.token = None;
        None
    }
}

/// The token in "The given sequenceToken is invalid. The next expected sequenceToken is: X".
fn expected_token(message: &str) -> Option<String> {
    let (_, rest) = message.rsplit_once("sequenceToken is:")?;
    let t = rest.trim().trim_end_matches('.');
    (!t.is_empty() && t != "null").then(|| t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_respect_count_bytes_and_span() {
        let many: Vec<(i64, usize)> = (0..10_001).map(|i| (i, 1)).collect();
        let calls = plan_log_calls(&many);
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), vec![10_000, 1]);
        // 1 MiB counting 26 bytes per event: 4 events of 262,118 bytes are exactly 1 MiB.
        let big: Vec<(i64, usize)> = (0..5).map(|i| (i, 262_118)).collect();
        assert_eq!(plan_log_calls(&big).iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 1]);
        let day = 24 * 3600 * 1000;
        let spread = [(0, 1), (day - 1, 1), (day, 1)];
        assert_eq!(plan_log_calls(&spread), vec![vec![0, 1], vec![2]]);
    }

    #[test]
    fn rejected_counts() {
        let a = json!({"rejectedLogEventsInfo": {"tooOldLogEventEndIndex": 1, "tooNewLogEventStartIndex": 4}});
        assert_eq!(rejected(&a, 6), 4);
        assert_eq!(rejected(&json!({}), 6), 0);
        assert_eq!(expected_token("The next expected sequenceToken is: 4958"), Some("4958".into()));
        assert_eq!(expected_token("The next expected sequenceToken is: null"), None);
    }
}
