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

use crate::http::{percent_decode, FakeHttp, Reply, Request};
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

fn query_value(req: &Request, key: &str) -> Option<String> {
    req.query_pairs().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Pushover's `POST /1/messages.json` (form fields): a 30-character `token` and `user` that must
/// be the ones the fake was started with, a `message` of 1 to 1,024 characters, `title` ≤ 250,
/// `url` ≤ 512, `priority` −2 to 2, and for priority 2 `retry` ≥ 30 and `expire` ≤ 10,800;
/// answers `200` `{"status":1,"request":…}` with the `X-Limit-App-*` headers, or `400`
/// `{"status":0,"errors":[…]}`. Accepted messages are recorded as JSON objects of their fields.
pub struct FakePushover(Fake);
accessors!(FakePushover);

impl FakePushover {
    /// Starts the fake for an app token and a user key.
    pub fn start(token: &str, user: &str) -> FakePushover {
        let (token, user) = (token.to_owned(), user.to_owned());
        FakePushover(Fake::start(move |req| {
            let invalid = |e: String| {
                let body = json!({"status": 0, "errors": [e.clone()], "request": "fake-request"});
                (e, Reply::json(400, &body.to_string()))
            };
            if req.method != "POST" || req.path != "/1/messages.json" {
                return Err(("not found".into(), Reply::status(404)));
            }
            if !req.header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
                return Err(invalid("the body is not a form".into()));
            }
            let form = req.form();
            let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            if get("token").as_deref() != Some(token.as_str()) {
                return Err(invalid("application token is invalid".into()));
            }
            if get("user").as_deref() != Some(user.as_str()) {
                return Err(invalid("user identifier is not a valid user, group, or subscribed user key".into()));
            }
            let len = |k: &str| get(k).map_or(0, |v| v.chars().count());
            if len("message") == 0 || len("message") > 1024 {
                return Err(invalid(format!("message of {} characters", len("message"))));
            }
            if len("title") > 250 || len("url") > 512 {
                return Err(invalid(format!("title of {} or url of {} characters", len("title"), len("url"))));
            }
            let num = |k: &str| get(k).and_then(|v| v.parse::<i64>().ok());
            let priority = match get("priority") {
                None => 0,
                Some(_) => num("priority")
                    .filter(|p| (-2..=2).contains(p))
                    .ok_or_else(|| invalid("priority is invalid".into()))?,
            };
            if priority == 2 {
                if num("retry").is_none_or(|r| r < 30) {
                    return Err(invalid("retry must be supplied with priority=2 and be at least 30".into()));
                }
                if num("expire").is_none_or(|e| !(1..=10_800).contains(&e)) {
                    return Err(invalid("expire must be supplied with priority=2 and be at most 10800".into()));
                }
            }
            let body: serde_json::Map<String, Value> = form.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let reply = Reply::json(200, r#"{"status":1,"request":"fake-request"}"#)
                .header("X-Limit-App-Limit", "10000")
                .header("X-Limit-App-Remaining", "9999")
                .header("X-Limit-App-Reset", "4102444800");
            Ok((Value::Object(body), reply))
        }))
    }

    /// The API's base URL (what the layer's `api_base` is given).
    pub fn url(&self) -> String {
        self.0.http.url()
    }
}

/// Opsgenie's Alert API: `POST /v2/alerts` with `Authorization: GenieKey <key>` (the key the fake
/// was started with, else `401`), `message` of 1 to 130 characters, `alias` ≤ 512, `description`
/// ≤ 15,000, `entity` ≤ 512, `source` ≤ 100, `priority` `P1`–`P5`, at most 20 `tags` of ≤ 50,
/// `details` ≤ 8,000 characters in all — else `422` `{"message": …}`; answers `202`
/// `{"result":"Request will be processed",…}`. `POST /v2/alerts/{alias}/close?identifierType=alias`
/// closes (recorded as `{"action":"close","alias":…}`).
pub struct FakeOpsgenie(Fake);
accessors!(FakeOpsgenie);

impl FakeOpsgenie {
    /// Starts the fake for an API key.
    pub fn start(key: &str) -> FakeOpsgenie {
        let auth = format!("GenieKey {key}");
        FakeOpsgenie(Fake::start(move |req| {
            let invalid = |code: u16, e: String| {
                let body = json!({"message": e.clone(), "took": 0.001, "requestId": "fake"});
                (e, Reply::json(code, &body.to_string()))
            };
            if req.header("authorization") != Some(auth.as_str()) {
                return Err(invalid(401, "Could not authenticate".into()));
            }
            let accepted =
                Reply::json(202, r#"{"result":"Request will be processed","took":0.002,"requestId":"fake"}"#);
            if req.method == "POST" && req.path.starts_with("/v2/alerts/") && req.path.ends_with("/close") {
                if query_value(req, "identifierType").as_deref() != Some("alias") {
                    return Err(invalid(422, "identifierType must be alias here".into()));
                }
                let alias = &req.path["/v2/alerts/".len()..req.path.len() - "/close".len()];
                let alias = percent_decode(alias);
                return Ok((json!({"action": "close", "alias": alias}), accepted));
            }
            if req.method != "POST" || req.path != "/v2/alerts" {
                return Err(invalid(404, "not found".into()));
            }
            let body = json_body(req).map_err(|e| invalid(400, e))?;
            let m = chars(&body, "message");
            if m == 0 || m > 130 {
                return Err(invalid(422, format!("message of {m} characters")));
            }
            for (k, max) in [("alias", 512), ("description", 15_000), ("entity", 512), ("source", 100)] {
                if chars(&body, k) > max {
                    return Err(invalid(422, format!("{k} of {} characters", chars(&body, k))));
                }
            }
            if let Some(p) = body.get("priority") {
                if !p.as_str().is_some_and(|p| matches!(p, "P1" | "P2" | "P3" | "P4" | "P5")) {
                    return Err(invalid(422, format!("priority {p}")));
                }
            }
            let tags = body.get("tags").and_then(Value::as_array).cloned().unwrap_or_default();
            if tags.len() > 20 || tags.iter().any(|t| t.as_str().is_none_or(|t| t.chars().count() > 50)) {
                return Err(invalid(422, "tags".into()));
            }
            let details = body.get("details").and_then(Value::as_object).cloned().unwrap_or_default();
            let total: usize = details
                .iter()
                .map(|(k, v)| k.chars().count() + v.as_str().map_or(usize::MAX / 2, |v| v.chars().count()))
                .sum();
            if total > 8_000 {
                return Err(invalid(422, format!("details of {total} characters, or not strings")));
            }
            Ok((body, accepted))
        }))
    }

    /// The API's base URL (what the layer's `api_base` is given).
    pub fn url(&self) -> String {
        self.0.http.url()
    }
}

/// The path and signature of [`FakeTeams::url`].
pub const TEAMS_WORKFLOW: &str = "/workflows/0f1e2d3c/triggers/manual/paths/invoke";

/// A Microsoft Teams workflow webhook: `POST` the workflow URL with its `sig`, a body
/// `{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive",
/// "content":{"type":"AdaptiveCard","version":…,"body":[…]}}]}` of at most 28,000 bytes (else
/// `413`); a wrong signature gets `401`; answers `202`.
pub struct FakeTeams(Fake);
accessors!(FakeTeams);

/// The signature of [`FakeTeams::url`] (a secret).
pub const TEAMS_SIG: &str = "fakeSig0123456789secret";

impl FakeTeams {
    /// Starts the fake.
    pub fn start() -> FakeTeams {
        FakeTeams(Fake::start(|req| {
            let invalid = |code: u16, e: String| {
                let body = json!({"error": {"code": "InvalidRequestContent", "message": e.clone()}});
                (e, Reply::json(code, &body.to_string()))
            };
            if req.method != "POST" || req.path != TEAMS_WORKFLOW {
                return Err(invalid(404, "workflow not found".into()));
            }
            if query_value(req, "sig").as_deref() != Some(TEAMS_SIG) {
                return Err(invalid(401, "The provided signature is invalid".into()));
            }
            if req.body.len() > 28_000 {
                return Err(invalid(413, format!("request entity too large: {} bytes", req.body.len())));
            }
            let body = json_body(req).map_err(|e| invalid(400, e))?;
            let att = &body["attachments"][0];
            if body["type"] != "message"
                || att["contentType"] != "application/vnd.microsoft.card.adaptive"
                || att["content"]["type"] != "AdaptiveCard"
                || !att["content"]["version"].is_string()
                || !att["content"]["body"].is_array()
            {
                return Err(invalid(400, "not a message with an Adaptive Card".into()));
            }
            Ok((body, Reply::status(202)))
        }))
    }

    /// The workflow's URL (its signature is part of it).
    pub fn url(&self) -> String {
        format!(
            "{}?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={TEAMS_SIG}",
            self.0.http.url_for(TEAMS_WORKFLOW)
        )
    }
}

/// The key and token of [`FakeGoogleChat::url`] (secrets).
pub const GOOGLE_CHAT_TOKEN: &str = "fakeChatToken0123456789";

/// A Google Chat space's incoming webhook: `POST /v1/spaces/SPACE/messages?key=…&token=…` with
/// `text` and/or `cardsV2` (each card with sections of widgets), at most 32,000 bytes (else `400`
/// `INVALID_ARGUMENT`); a wrong token gets `401`. The thread key (`threadKey`) of each accepted
/// message is recorded in it as `"_threadKey"`. Answers `200` with the created message.
pub struct FakeGoogleChat(Fake);
accessors!(FakeGoogleChat);

impl FakeGoogleChat {
    /// Starts the fake.
    pub fn start() -> FakeGoogleChat {
        FakeGoogleChat(Fake::start(|req| {
            let invalid = |code: u16, status: &str, e: String| {
                let body = json!({"error": {"code": code, "message": e.clone(), "status": status}});
                (e, Reply::json(code, &body.to_string()))
            };
            if req.method != "POST" || req.path != "/v1/spaces/AAAAfake/messages" {
                return Err(invalid(404, "NOT_FOUND", "space not found".into()));
            }
            if query_value(req, "token").as_deref() != Some(GOOGLE_CHAT_TOKEN) {
                return Err(invalid(401, "UNAUTHENTICATED", "invalid token".into()));
            }
            if req.body.len() > 32_000 {
                return Err(invalid(400, "INVALID_ARGUMENT", format!("message of {} bytes", req.body.len())));
            }
            let mut body = json_body(req).map_err(|e| invalid(400, "INVALID_ARGUMENT", e))?;
            let cards = body.get("cardsV2").and_then(Value::as_array).cloned().unwrap_or_default();
            if chars(&body, "text") == 0 && cards.is_empty() {
                return Err(invalid(400, "INVALID_ARGUMENT", "an empty message".into()));
            }
            for c in &cards {
                let sections = c["card"]["sections"].as_array().cloned().unwrap_or_default();
                if sections.is_empty() || sections.iter().any(|s| s["widgets"].as_array().is_none_or(Vec::is_empty)) {
                    return Err(invalid(400, "INVALID_ARGUMENT", "a card without widgets".into()));
                }
            }
            let thread = query_value(req, "threadKey");
            body["_threadKey"] = thread.clone().map_or(Value::Null, Value::String);
            let answer = json!({"name": "spaces/AAAAfake/messages/m1", "thread": {"name": format!("spaces/AAAAfake/threads/{}", thread.unwrap_or_default())}});
            Ok((body, Reply::json(200, &answer.to_string())))
        }))
    }

    /// The webhook's URL (its key and token are part of it).
    pub fn url(&self) -> String {
        format!("{}?key=AIzaFakeKey&token={GOOGLE_CHAT_TOKEN}", self.0.http.url_for("/v1/spaces/AAAAfake/messages"))
    }
}

/// The hook path of [`FakeMattermost::url`] (its key is a secret).
pub const MATTERMOST_HOOK: &str = "/hooks/xr3j5x3p4pfk7qz7fakekey";

/// A Mattermost incoming webhook: `POST /hooks/KEY` with `text` (at most 16,383 characters)
/// and/or Slack-style `attachments`; an unknown key gets `400` "Invalid webhook"; answers `200`
/// `ok`.
pub struct FakeMattermost(Fake);
accessors!(FakeMattermost);

impl FakeMattermost {
    /// Starts the fake.
    pub fn start() -> FakeMattermost {
        FakeMattermost(Fake::start(|req| {
            let invalid = |e: String| {
                let body =
                    json!({"id": "web.incoming_webhook.invalid.app_error", "message": e.clone(), "status_code": 400});
                (e, Reply::json(400, &body.to_string()))
            };
            if req.method != "POST" || req.path != MATTERMOST_HOOK {
                return Err(invalid("Invalid webhook".into()));
            }
            let body = json_body(req).map_err(invalid)?;
            let atts = body.get("attachments").and_then(Value::as_array).map_or(0, Vec::len);
            if chars(&body, "text") == 0 && atts == 0 {
                return Err(invalid("Unable to parse incoming data: no text".into()));
            }
            if chars(&body, "text") > 16_383 {
                return Err(invalid(format!("text of {} characters", chars(&body, "text"))));
            }
            Ok((body, Reply::text(200, "ok")))
        }))
    }

    /// The webhook's URL.
    pub fn url(&self) -> String {
        self.0.http.url_for(MATTERMOST_HOOK)
    }
}

/// The hook path of [`FakeRocketChat::url`] (its token is a secret).
pub const ROCKETCHAT_HOOK: &str = "/hooks/6f1b2c3d4e5f/fakeRocketToken0123456789";

/// A Rocket.Chat incoming webhook: `POST /hooks/ID/TOKEN` with `text` (at most 5,000
/// characters) and/or Slack-style `attachments`; a wrong id or token gets `404`
/// `{"success":false,…}`; answers `200` `{"success":true}`.
pub struct FakeRocketChat(Fake);
accessors!(FakeRocketChat);

impl FakeRocketChat {
    /// Starts the fake.
    pub fn start() -> FakeRocketChat {
        FakeRocketChat(Fake::start(|req| {
            let refuse = |code: u16, e: String| {
                let body = json!({"success": false, "error": e.clone()});
                (e, Reply::json(code, &body.to_string()))
            };
            if req.method != "POST" || req.path != ROCKETCHAT_HOOK {
                return Err(refuse(404, "Invalid integration id or token provided.".into()));
            }
            let body = json_body(req).map_err(|e| refuse(400, e))?;
            let atts = body.get("attachments").and_then(Value::as_array).map_or(0, Vec::len);
            if chars(&body, "text") == 0 && atts == 0 {
                return Err(refuse(400, "an empty message".into()));
            }
            if chars(&body, "text") > 5_000 {
                return Err(refuse(400, format!("text of {} characters", chars(&body, "text"))));
            }
            Ok((body, Reply::json(200, r#"{"success":true}"#)))
        }))
    }

    /// The webhook's URL.
    pub fn url(&self) -> String {
        self.0.http.url_for(ROCKETCHAT_HOOK)
    }
}
