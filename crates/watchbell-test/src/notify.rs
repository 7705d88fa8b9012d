//! Fakes of push and paging services that check requests as the real APIs do and answer like
//! them: ntfy's JSON publish, Discord's webhook (embed limits, `204`), PagerDuty's Events API
//! v2 (`202`, `invalid event`). Each records what it accepted and every violation it refused;
//! misbehaviour (429s, outages, the [`hostile`](crate::hostile) modes) is queued on its
//! [`http`](FakeNtfy::http) side.
//!
//! ```
//! use watchbell_test::notify::FakeDiscord;
//! let discord = FakeDiscord::start();
//! assert!(discord.url().contains("/api/webhooks/"));
//! assert!(discord.accepted().is_empty());
//! ```
// The checks answer `Err((violation, reply))`; a reply is large, and boxing it buys nothing in
// a fake that answers one request at a time.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::http::{FakeHttp, Reply, Request};
use crate::store::Recorded;

#[derive(Default)]
struct State {
    accepted: Vec<Value>,
    errors: Vec<String>,
}

/// The state and waiting shared by the three fakes.
struct Fake {
    http: FakeHttp,
    state: Arc<Recorded<State>>,
}

impl Fake {
    fn start(check: impl Fn(&Request) -> Result<(Value, Reply), (String, Reply)> + Send + Sync + 'static) -> Fake {
        let http = FakeHttp::start();
        let state = Arc::new(Recorded::new(State::default()));
        let s = Arc::clone(&state);
        http.respond_with(move |req| match check(req) {
            Ok((body, reply)) => {
                s.update(|st| st.accepted.push(body));
                reply
            }
            Err((error, reply)) => {
                s.update(|st| st.errors.push(error));
                reply
            }
        });
        Fake { http, state }
    }

    fn accepted(&self) -> Vec<Value> {
        self.state.lock().accepted.clone()
    }

    fn errors(&self) -> Vec<String> {
        self.state.lock().errors.clone()
    }

    fn wait(&self, n: usize, timeout: Duration) -> Vec<Value> {
        self.state.wait_until(timeout, |s| s.accepted.len() >= n).accepted.clone()
    }
}

fn json_body(req: &Request) -> Result<Value, String> {
    serde_json::from_slice(&req.body).map_err(|e| format!("the body is not JSON: {e}"))
}

fn chars(v: &Value, key: &str) -> usize {
    v.get(key).and_then(Value::as_str).map_or(0, |s| s.chars().count())
}

macro_rules! accessors {
    ($name:ident) => {
        impl $name {
            /// The HTTP side: queue misbehaviour here (it comes before the fake's own answers).
            pub fn http(&self) -> &FakeHttp {
                &self.0.http
            }

            /// The requests accepted, as JSON, in order.
            pub fn accepted(&self) -> Vec<Value> {
                self.0.accepted()
            }

            /// Waits until `n` were accepted or `timeout` passed; returns them.
            pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Value> {
                self.0.wait(n, timeout)
            }

            /// The violations refused (each answered as the service does).
            pub fn errors(&self) -> Vec<String> {
                self.0.errors()
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).field("url", &self.0.http.url()).finish_non_exhaustive()
            }
        }
    };
}

/// ntfy's JSON publish: `POST /` with `topic`, `message` (at most 4,096 bytes), `title`,
/// `priority` 1–5, `tags`; answers `200` with the message event. With a token set, requests
/// without `Authorization: Bearer <token>` get `401`.
pub struct FakeNtfy(Fake);
accessors!(FakeNtfy);

impl FakeNtfy {
    /// Starts the fake; `token`: the access token it requires, if any.
    pub fn start(token: Option<&str>) -> FakeNtfy {
        let token = token.map(|t| format!("Bearer {t}"));
        FakeNtfy(Fake::start(move |req| {
            let refuse = |code: u16, e: &str| {
                (
                    e.to_owned(),
                    Reply::json(code, &json!({"code": code as u32 * 100 + 1, "http": code, "error": e}).to_string()),
                )
            };
            if req.method != "POST" || req.path != "/" {
                return Err(refuse(404, "page not found"));
            }
            if let Some(t) = &token {
                if req.header("authorization") != Some(t.as_str()) {
                    return Err(refuse(401, "unauthorized"));
                }
            }
            let body = json_body(req).map_err(|e| refuse(400, &e))?;
            let topic = body.get("topic").and_then(Value::as_str).unwrap_or("");
            if topic.is_empty()
                || topic.len() > 64
                || !topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(refuse(400, "invalid topic"));
            }
            let message = body.get("message").and_then(Value::as_str).unwrap_or("");
            if message.len() > 4096 {
                return Err(refuse(413, "message too large"));
            }
            if let Some(p) = body.get("priority") {
                if !p.as_u64().is_some_and(|p| (1..=5).contains(&p)) {
                    return Err(refuse(400, "invalid priority"));
                }
            }
            let reply = Reply::json(
                200,
                &json!({"id": "fake1", "event": "message", "topic": topic, "message": message}).to_string(),
            );
            Ok((body, reply))
        }))
    }

    /// The server's base URL (what the layer is given).
    pub fn url(&self) -> String {
        self.0.http.url()
    }
}

/// A Discord webhook: `POST /api/webhooks/<id>/<token>` with `content` (at most 2,000 chars)
/// and/or up to 10 `embeds` within Discord's limits (title 256, description 4,096, 25 fields of
/// name 256 / value 1,024, both non-empty, footer 2,048, 6,000 characters in all); answers `204`,
/// or `400` `{"code": 50035, "message": "Invalid Form Body"}`.
pub struct FakeDiscord(Fake);
accessors!(FakeDiscord);

/// The webhook id and token of [`FakeDiscord::url`].
pub const DISCORD_WEBHOOK: &str = "/api/webhooks/1234567890/fake-webhook-token";

impl FakeDiscord {
    /// Starts the fake.
    pub fn start() -> FakeDiscord {
        FakeDiscord(Fake::start(|req| {
            let invalid = |e: String| (e, Reply::json(400, r#"{"code": 50035, "message": "Invalid Form Body"}"#));
            if req.method != "POST" || req.path != DISCORD_WEBHOOK {
                return Err((
                    "unknown webhook".into(),
                    Reply::json(404, r#"{"message": "Unknown Webhook", "code": 10015}"#),
                ));
            }
            let body = json_body(req).map_err(invalid)?;
            let content = chars(&body, "content");
            let embeds = body.get("embeds").and_then(Value::as_array).cloned().unwrap_or_default();
            if content > 2000 {
                return Err(invalid(format!("content of {content} chars")));
            }
            if content == 0 && embeds.is_empty() {
                return Err(invalid("an empty message".into()));
            }
            if embeds.len() > 10 {
                return Err(invalid("more than 10 embeds".into()));
            }
            let mut total = 0;
            for e in &embeds {
                let (t, d) = (chars(e, "title"), chars(e, "description"));
                let footer = e.get("footer").map_or(0, |f| chars(f, "text"));
                if t > 256 || d > 4096 || footer > 2048 {
                    return Err(invalid(format!("embed title {t}, description {d}, footer {footer} chars")));
                }
                total += t + d + footer;
                let fields = e.get("fields").and_then(Value::as_array).cloned().unwrap_or_default();
                if fields.len() > 25 {
                    return Err(invalid(format!("{} fields", fields.len())));
                }
                for f in &fields {
                    let (n, v) = (chars(f, "name"), chars(f, "value"));
                    if n == 0 || v == 0 || n > 256 || v > 1024 {
                        return Err(invalid(format!("a field of name {n} and value {v} chars")));
                    }
                    total += n + v;
                }
            }
            if total > 6000 {
                return Err(invalid(format!("embeds of {total} chars in all")));
            }
            Ok((body, Reply::status(204)))
        }))
    }

    /// The webhook's URL (its token is part of it).
    pub fn url(&self) -> String {
        self.0.http.url_for(DISCORD_WEBHOOK)
    }
}

/// PagerDuty's Events API v2: `POST /v2/enqueue` with a 32-character `routing_key`, an
/// `event_action` (`trigger`, `acknowledge`, `resolve`), a `dedup_key` of at most 255 chars
/// (required but for `trigger`), and for a trigger a `payload` with `summary` (1 to 1,024
/// chars), `source` and `severity` (`critical`, `error`, `warning`, `info`); answers `202`
/// `{"status": "success", "dedup_key": …}` or `400` `{"status": "invalid event", …}`.
pub struct FakePagerDuty(Fake);
accessors!(FakePagerDuty);

impl FakePagerDuty {
    /// Starts the fake.
    pub fn start() -> FakePagerDuty {
        FakePagerDuty(Fake::start(|req| {
            let invalid = |e: String| {
                let body =
                    json!({"status": "invalid event", "message": "Event object is invalid", "errors": [e.clone()]});
                (e, Reply::json(400, &body.to_string()))
            };
            if req.method != "POST" || req.path != "/v2/enqueue" {
                return Err(("not found".into(), Reply::status(404)));
            }
            let body = json_body(req).map_err(invalid)?;
            let key = body.get("routing_key").and_then(Value::as_str).unwrap_or("");
            if key.len() != 32 {
                return Err(invalid("'routing_key' must be 32 characters".into()));
            }
            let action = body.get("event_action").and_then(Value::as_str).unwrap_or("");
            if !matches!(action, "trigger" | "acknowledge" | "resolve") {
                return Err(invalid(format!("'event_action' is invalid: {action:?}")));
            }
            let dedup = body.get("dedup_key").and_then(Value::as_str);
            if dedup.is_some_and(|d| d.chars().count() > 255) || (action != "trigger" && dedup.is_none()) {
                return Err(invalid("'dedup_key' is missing or too long".into()));
            }
            if action == "trigger" {
                let p = body.get("payload").cloned().unwrap_or(Value::Null);
                let summary = chars(&p, "summary");
                if summary == 0 || summary > 1024 {
                    return Err(invalid(format!("'payload.summary' of {summary} chars")));
                }
                if chars(&p, "source") == 0 {
                    return Err(invalid("'payload.source' is missing".into()));
                }
                let sev = p.get("severity").and_then(Value::as_str).unwrap_or("");
                if !matches!(sev, "critical" | "error" | "warning" | "info") {
                    return Err(invalid(format!("'payload.severity' is invalid: {sev:?}")));
                }
            }
            let answer =
                json!({"status": "success", "message": "Event processed", "dedup_key": dedup.unwrap_or("generated")});
            Ok((body, Reply::json(202, &answer.to_string())))
        }))
    }

    /// The API's base URL (what the layer's `api_base` is given).
    pub fn url(&self) -> String {
        self.0.http.url()
    }
}
