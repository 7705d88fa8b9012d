//! SQS: `SendMessageBatch` in the JSON protocol.

use serde_json::{json, Value as Json};
use watchbell_core::{Outcome, Record};

use crate::client::{AwsClient, Call};
use crate::{Counters, Resume};

/// The most entries of one `SendMessageBatch`.
pub const SQS_MAX_ENTRIES: usize = 10;
/// The most bytes of one message body, and of all bodies of one `SendMessageBatch` (256 KiB).
pub const SQS_MAX_BYTES: usize = 262_144;

/// Escapes what SQS refuses in a message body but JSON text may hold: U+FFFE and U+FFFF
/// (SQS takes `#x9 | #xA | #xD | #x20–#xD7FF | #xE000–#xFFFD | #x10000–#x10FFFF`). In the
/// JSON record shape these can only stand inside strings, where `\ufffe` is the same text.
/// Control characters are escaped by JSON already.
///
/// ```
/// assert_eq!(watchbell_aws::sqs_safe_json("{\"m\":\"a\u{ffff}b\"}".into()), "{\"m\":\"a\\uffffb\"}");
/// ```
pub fn sqs_safe_json(text: String) -> String {
    if !text.contains(['\u{fffe}', '\u{ffff}']) {
        return text;
    }
    text.replace('\u{fffe}', "\\ufffe").replace('\u{ffff}', "\\uffff")
}

/// The JSON record shape of `r` (as watchbell-http ships it), at most `max` bytes: a larger
/// record is cut — its message and text fields shortened with the marker — until it fits, or,
/// when even its fixed parts do not fit, replaced by its time, level, target and the start of
/// its message.
pub fn record_body(r: &Record, app: Option<&str>, host: Option<&str>, max: usize) -> String {
    let body = sqs_safe_json(watchbell_http::record_json(r, app, host));
    if body.len() <= max {
        return body;
    }
    let mut cut = r.clone();
    // The size hint counts memory, not JSON (escapes grow text up to 6×): aim lower each time.
    let mut aim = max.saturating_sub(body.len().saturating_sub(r.size_hint()).min(max / 2));
    for _ in 0..12 {
        if !cut.shrink_to(aim) {
            break;
        }
        let b = sqs_safe_json(watchbell_http::record_json(&cut, app, host));
        if b.len() <= max {
            return b;
        }
        aim = aim * 2 / 3;
    }
    // Only the essentials, the message cut to what is left.
    let mut bare = Record::new(r.level, r.target.clone(), String::new());
    bare.time = r.time;
    bare.fingerprint = r.fingerprint;
    let mut room = max / 8;
    loop {
        bare.message =
            watchbell_core::text::truncate_bytes(&r.message, room, watchbell_core::text::MARKER).into_owned().into();
        let b = sqs_safe_json(watchbell_http::record_json(&bare, app, host));
        if b.len() <= max || room == 0 {
            return b;
        }
        room /= 2;
    }
}

/// 64-bit FNV-1a.
pub(crate) fn fnv(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The deduplication id of a FIFO entry: a hash of its body and of how many identical bodies
/// came before it in the batch — the same when the entry is sent again, different for two
/// identical records logged together.
pub(crate) fn dedup_id(body: &str, repeat: usize) -> String {
    let b = body.as_bytes();
    format!("{:016x}{:016x}-{repeat}", fnv(b, 0), fnv(b, 0x9e37_79b9_7f4a_7c15))
}

/// What the sink needs to send to one queue.
#[derive(Debug)]
pub(crate) struct Sqs {
    pub client: AwsClient,
    pub queue_url: String,
    /// `Some(group)` for a FIFO queue.
    pub fifo_group: Option<String>,
    pub app: Option<String>,
    pub host: Option<String>,
    pub counters: std::sync::Arc<Counters>,
    pub resume: Option<Resume>,
}

impl Sqs {
    pub(crate) fn deliver(&mut self, recs: &[Record]) -> Outcome {
        let mut done = Resume::take(&mut self.resume, recs);
        let bodies: Vec<Option<String>> = recs
            .iter()
            .zip(&done)
            .map(|(r, d)| (!d).then(|| record_body(r, self.app.as_deref(), self.host.as_deref(), SQS_MAX_BYTES)))
            .collect();
        let todo: Vec<usize> = (0..recs.len()).filter(|&i| !done[i]).collect();
        // Requests of at most 10 entries and 256 KiB of bodies.
        let mut requests: Vec<Vec<usize>> = Vec::new();
        let mut bytes = 0;
        for i in todo {
            let n = bodies[i].as_ref().map_or(0, String::len);
            match requests.last_mut() {
                Some(last) if last.len() < SQS_MAX_ENTRIES && bytes + n <= SQS_MAX_BYTES => {
                    last.push(i);
                    bytes += n;
                }
                _ => {
                    requests.push(vec![i]);
                    bytes = n;
                }
            }
        }
        let mut failure = None;
        for request in requests {
            if let Some(o) = self.send(&bodies, &request, &mut done) {
                failure = Some(o);
                break;
            }
        }
        Resume::finish(&mut self.resume, recs, &done, failure)
    }

    /// Sends one request; marks the entries done that went through (or were refused for
    /// good, counted). Returns the failure that stops this delivery, if any.
    fn send(&mut self, bodies: &[Option<String>], idx: &[usize], done: &mut [bool]) -> Option<Outcome> {
        let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let entries: Vec<Json> = idx
            .iter()
            .map(|&i| {
                let body = bodies[i].as_deref().unwrap_or("");
                let mut e = json!({"Id": i.to_string(), "MessageBody": body});
                if let Some(group) = &self.fifo_group {
                    let n = seen.entry(body).or_insert(0);
                    e["MessageGroupId"] = json!(group);
                    e["MessageDeduplicationId"] = json!(dedup_id(body, *n));
                    *n += 1;
                }
                e
            })
            .collect();
        let body = json!({"QueueUrl": self.queue_url, "Entries": entries});
        match self.client.json("1.0", "AmazonSQS.SendMessageBatch", &body) {
            Call::Ok(resp) => {
                let answer: Json = serde_json::from_slice(&resp.body).unwrap_or(Json::Null);
                let mut retry = None;
                let failed = answer.get("Failed").and_then(Json::as_array).cloned().unwrap_or_default();
                let mut failed_ids = std::collections::HashSet::new();
                for f in &failed {
                    let Some(id) = f.get("Id").and_then(Json::as_str).and_then(|s| s.parse::<usize>().ok()) else {
                        continue;
                    };
                    if !idx.contains(&id) {
                        continue;
                    }
                    failed_ids.insert(id);
                    let code = f.get("Code").and_then(Json::as_str).unwrap_or("").to_owned();
                    let message = f.get("Message").and_then(Json::as_str).unwrap_or("").to_owned();
                    let sender = f.get("SenderFault").and_then(Json::as_bool).unwrap_or(false);
                    let err = crate::client::AwsError { status: resp.status, code, message };
                    let reason = crate::client::reason("SQS entry", &err, &self.client.secrets());
                    if sender && !err.retryable() {
                        // The entry will never be taken: counted, not sent again.
                        done[id] = true;
                        self.counters.fail(1, reason);
                    } else {
                        retry = Some(reason);
                    }
                }
                for &i in idx {
                    if !failed_ids.contains(&i) {
                        done[i] = true;
                    }
                }
                retry.map(Outcome::retry)
            }
            Call::Failed(_, o) | Call::NoAnswer(o) => Some(o),
        }
    }
}
