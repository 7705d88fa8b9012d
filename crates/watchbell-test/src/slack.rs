//! A loopback fake of Slack incoming webhooks, built on [`FakeHttp`].
//!
//! It answers like the real service (see `providers.md` §1): `200` with the plain-text body `ok`;
//! errors as plain-text codes (`400 invalid_payload`, `400 missing_text_or_fallback_or_attachments`,
//! `404 channel_not_found`, `410 channel_is_archived`, `500 rollup_error`, ...); `429` with
//! `Retry-After` when programmed.
//!
//! Every request is checked for the shape a webhook accepts, before anything programmed:
//! - `POST` to a path `/services/T…/<name>/<secret>` given by [`webhook_url`](FakeSlack::webhook_url)
//!   (another path: `404 no_service`; another method: `405 invalid_method`);
//! - `Content-Type: application/json`, a JSON object body (else `400 invalid_payload`);
//! - a non-empty string `text` (else `400 missing_text_or_fallback_or_attachments`: the fake is
//!   stricter than Slack, which also accepts attachments alone, because watchbell always sends
//!   the notification fallback);
//! - Slack's limits: at most 50 blocks (counted over the message and its attachments), section
//!   text ≤ 3,000 chars, header text ≤ 150, section fields ≤ 10 of ≤ 2,000 chars (else
//!   `400 invalid_blocks`); `text` ≤ 40,000 chars (else `400 invalid_payload` — Slack itself
//!   truncates, the fake refuses so that a sink relying on that is caught).
//!
//! Accepted messages are parsed and kept ([`messages`](FakeSlack::messages),
//! [`messages_for`](FakeSlack::messages_for)); every attempt, accepted or not, is in
//! [`received`](FakeSlack::received).
//!
//! ```
//! use watchbell_test::slack::FakeSlack;
//!
//! let slack = FakeSlack::start();
//! let ops = slack.webhook_url("ops");
//! let dev = slack.webhook_url("dev");
//! assert_ne!(ops, dev);
//! slack.push_error(404, "channel_not_found"); // the next request fails
//! slack.push_rate_limit(2);                    // then a 429 with Retry-After: 2
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::{FakeHttp, Reply, Request};
use crate::store::Recorded;

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The webhook name (the `<name>` of [`FakeSlack::webhook_url`]), or `""` for a foreign path.
    pub webhook: String,
    /// The parsed body (`Value::Null` if it was not JSON).
    pub body: Value,
    /// The status the fake answered.
    pub status: u16,
    /// When the request was read.
    pub at: Instant,
}

#[derive(Default)]
struct State {
    /// Programmed replies: (webhook name or any, reply).
    queue: VecDeque<(Option<String>, Reply, u16)>,
    /// (from, until, status) windows during which every request gets `status`.
    outages: Vec<(Instant, Instant, u16)>,
    received: Vec<Received>,
}

impl State {
    /// The requests accepted (status 200).
    fn accepted(&self) -> impl Iterator<Item = &Received> {
        self.received.iter().filter(|r| r.status == 200)
    }
}

type Shared = Recorded<State>;

/// A fake Slack: several incoming webhooks on one loopback server.
pub struct FakeSlack {
    http: FakeHttp,
    shared: Arc<Shared>,
    started: Instant,
}

impl fmt::Debug for FakeSlack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("FakeSlack")
            .field("addr", &self.http.addr())
            .field("received", &st.received.len())
            .field("programmed", &st.queue.len())
            .finish_non_exhaustive()
    }
}

const PREFIX: &str = "/services/TFAKE0000/";

fn text_len(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// Checks the body against Slack's limits; the error code if it breaks one.
fn check_blocks(blocks: &[Value]) -> Result<usize, &'static str> {
    for b in blocks {
        let text = &b["text"]["text"];
        match b["type"].as_str() {
            Some("section") => {
                if text_len(text) > 3000 {
                    return Err("invalid_blocks");
                }
                if let Some(fields) = b["fields"].as_array() {
                    if fields.len() > 10 || fields.iter().any(|f| text_len(&f["text"]) > 2000) {
                        return Err("invalid_blocks");
                    }
                }
                if text.is_null() && b["fields"].is_null() {
                    return Err("invalid_blocks");
                }
            }
            Some("header") if text_len(text) > 150 => return Err("invalid_blocks"),
            Some("context") => {
                let els = b["elements"].as_array().ok_or("invalid_blocks")?;
                if els.is_empty() || els.len() > 10 || els.iter().any(|e| text_len(&e["text"]) > 3000) {
                    return Err("invalid_blocks");
                }
            }
            Some(_) => {}
            None => return Err("invalid_blocks_format"),
        }
    }
    Ok(blocks.len())
}

fn check_shape(req: &Request) -> Result<Value, (u16, &'static str)> {
    if req.method != "POST" {
        return Err((405, "invalid_method"));
    }
    let ct = req.header("content-type").unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("application/json") {
        return Err((400, "invalid_payload"));
    }
    let body: Value = serde_json::from_slice(&req.body).map_err(|_| (400, "invalid_payload"))?;
    if !body.is_object() {
        return Err((400, "invalid_payload"));
    }
    match body["text"].as_str() {
        Some(t) if !t.trim().is_empty() => {
            if t.chars().count() > 40_000 {
                return Err((400, "invalid_payload"));
            }
        }
        _ => return Err((400, "missing_text_or_fallback_or_attachments")),
    }
    let mut blocks = 0;
    if let Some(b) = body.get("blocks") {
        blocks += check_blocks(b.as_array().ok_or((400, "invalid_blocks_format"))?).map_err(|e| (400, e))?;
    }
    if let Some(atts) = body.get("attachments") {
        for a in atts.as_array().ok_or((400, "invalid_attachments"))? {
            if let Some(b) = a.get("blocks") {
                blocks += check_blocks(b.as_array().ok_or((400, "invalid_blocks_format"))?).map_err(|e| (400, e))?;
            }
        }
    }
    if blocks > 50 {
        return Err((400, "invalid_blocks"));
    }
    Ok(body)
}

impl FakeSlack {
    /// Starts the fake on a free loopback port.
    pub fn start() -> FakeSlack {
        let http = FakeHttp::start();
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        http.respond_with(move |req| {
            let webhook =
                req.path.strip_prefix(PREFIX).and_then(|rest| rest.split('/').next()).unwrap_or("").to_owned();
            let (reply, status, body) = if webhook.is_empty() {
                (Reply::text(404, "no_service"), 404, Value::Null)
            } else {
                match check_shape(req) {
                    Err((code, text)) => (Reply::text(code, text), code, Value::Null),
                    Ok(body) => {
                        let mut st = s.lock();
                        let now = Instant::now();
                        st.outages.retain(|(_, until, _)| *until > now);
                        let pos = st.queue.iter().position(|(w, _, _)| w.as_deref().is_none_or(|w| w == webhook));
                        if let Some(p) = pos {
                            let (_, r, code) = st.queue.remove(p).expect("position is valid");
                            (r, code, body)
                        } else if let Some((_, _, code)) = st.outages.iter().find(|(from, _, _)| *from <= now) {
                            (Reply::text(*code, "service_unavailable"), *code, body)
                        } else {
                            (Reply::ok(), 200, body)
                        }
                    }
                }
            };
            s.update(|st| st.received.push(Received { webhook, body, status, at: req.received_at }));
            reply
        });
        FakeSlack { http, shared, started: Instant::now() }
    }

    /// The URL of the webhook named `name` (letters, digits, `-` and `_`): each name gets its own
    /// path, `http://127.0.0.1:PORT/services/TFAKE0000/<name>/<secret>`, so that tests see which
    /// webhook got what.
    pub fn webhook_url(&self, name: &str) -> String {
        self.http.url_for(&format!("{PREFIX}{name}/fakesecret{:x}", name.len() * 7919 + 12345))
    }

    /// The URL of the webhook named `default`.
    pub fn url(&self) -> String {
        self.webhook_url("default")
    }

    /// The underlying HTTP fake (raw requests, connection counts).
    pub fn http(&self) -> &FakeHttp {
        &self.http
    }

    fn program(&self, webhook: Option<&str>, reply: Reply, status: u16) {
        self.shared.lock().queue.push_back((webhook.map(str::to_owned), reply, status));
    }

    /// The next well-formed request (to any webhook) gets `status` with the plain-text `code`
    /// (`push_error(404, "channel_not_found")`). Calls queue up in order.
    pub fn push_error(&self, status: u16, code: &str) {
        self.program(None, Reply::text(status, code), status);
    }

    /// Like [`push_error`](FakeSlack::push_error), for the next request to the webhook `name` only.
    pub fn push_error_for(&self, name: &str, status: u16, code: &str) {
        self.program(Some(name), Reply::text(status, code), status);
    }

    /// The next well-formed request gets `429 rate_limited` with `Retry-After: secs`.
    pub fn push_rate_limit(&self, secs: u64) {
        self.program(None, Reply::text(429, "rate_limited").retry_after(secs), 429);
    }

    /// The next well-formed request gets `reply` (status `status` is what [`received`](FakeSlack::received) records).
    pub fn push_reply(&self, status: u16, reply: Reply) {
        self.program(None, reply, status);
    }

    /// An outage: from now for `d`, every well-formed request gets `503 service_unavailable`
    /// (decided on each request's arrival time; programmed replies still come first).
    pub fn outage(&self, d: Duration) {
        self.outage_window(Duration::ZERO, d, 503);
    }

    /// An outage window `[start, start + len)` after now, answering `status`.
    pub fn outage_window(&self, start: Duration, len: Duration, status: u16) {
        let from = Instant::now() + start;
        self.shared.lock().outages.push((from, from + len, status));
    }

    /// Every request received, in order, with the status it got.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().received.clone()
    }

    /// The messages accepted (status 200), in order, over every webhook.
    pub fn messages(&self) -> Vec<Value> {
        self.shared.lock().accepted().map(|r| r.body.clone()).collect()
    }

    /// The messages the webhook `name` accepted, in order.
    pub fn messages_for(&self, name: &str) -> Vec<Value> {
        self.shared.lock().accepted().filter(|r| r.webhook == name).map(|r| r.body.clone()).collect()
    }

    /// Waits until at least `n` messages were accepted or `timeout` passed; returns them.
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let st = self.shared.wait_until(timeout, |st| st.accepted().count() >= n);
        st.accepted().map(|r| r.body.clone()).collect()
    }

    /// The time since the fake started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn post(slack: &FakeSlack, url: &str, ct: &str, body: &str) -> String {
        let path = url.split_once("127.0.0.1").unwrap().1.split_once('/').unwrap().1;
        let mut s = TcpStream::connect(slack.http().addr()).unwrap();
        write!(
            s,
            "POST /{path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn answers_like_slack() {
        let slack = FakeSlack::start();
        let a = slack.webhook_url("a");
        let r = post(&slack, &a, "application/json", r#"{"text":"hi"}"#);
        assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("ok"), "{r}");
        let r = post(&slack, &a, "application/json", r#"{"blocks":[]}"#);
        assert!(r.starts_with("HTTP/1.1 400") && r.ends_with("missing_text_or_fallback_or_attachments"), "{r}");
        let r = post(&slack, &a, "text/plain", r#"{"text":"hi"}"#);
        assert!(r.ends_with("invalid_payload"), "{r}");
        let big = format!(
            r#"{{"text":"x","blocks":[{{"type":"section","text":{{"type":"mrkdwn","text":"{}"}}}}]}}"#,
            "y".repeat(3001)
        );
        assert!(post(&slack, &a, "application/json", &big).ends_with("invalid_blocks"));
        slack.push_error(404, "channel_not_found");
        let r = post(&slack, &a, "application/json", r#"{"text":"hi"}"#);
        assert!(r.starts_with("HTTP/1.1 404") && r.ends_with("channel_not_found"), "{r}");
        slack.push_rate_limit(3);
        let r = post(&slack, &slack.webhook_url("b"), "application/json", r#"{"text":"b"}"#);
        assert!(r.starts_with("HTTP/1.1 429") && r.contains("Retry-After: 3"), "{r}");
        assert_eq!(slack.messages_for("a").len(), 1);
        assert!(slack.messages_for("b").is_empty());
        slack.outage(Duration::from_secs(60));
        assert!(post(&slack, &a, "application/json", r#"{"text":"hi"}"#).starts_with("HTTP/1.1 503"));
        assert_eq!(slack.received().len(), 7);
    }
}
