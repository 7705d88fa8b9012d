//! A fake of the Telegram Bot API's `sendMessage`, on [`FakeHttp`].
//!
//! [`FakeTelegram`] answers like the real API: `{"ok":true,"result":{...Message...}}` on
//! success, and `{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`
//! style bodies otherwise (with `parameters.retry_after` on 429 and
//! `parameters.migrate_to_chat_id` for a migrated group). It is stricter than Telegram where
//! that catches bugs:
//!
//! - only `POST /bot<token>/sendMessage` with a JSON object body is accepted (a wrong token gets
//!   401 `Unauthorized`, another method 404, anything else 400);
//! - `chat_id` and a non-empty `text` are required;
//! - the text may hold at most 4096 UTF-16 code units, markup included (Telegram counts after
//!   parsing the markup; counting before is the safe bound), else 400 `message is too long`;
//! - with `parse_mode: "HTML"` the text is validated ([`validate_html`]): only Telegram's tags
//!   and attributes, properly nested and closed, every `&` an entity Telegram knows, no stray
//!   `<` or `>`; else 400 `Bad Request: can't parse entities: ...`.
//!
//! Accepted messages are kept ([`messages`](FakeTelegram::messages)); every request is kept
//! with its answer ([`calls`](FakeTelegram::calls)), for timing checks. Failures are
//! programmed with [`push`](FakeTelegram::push) ([`TgReply`]), [`outage`](FakeTelegram::outage),
//! [`unknown_chat`](FakeTelegram::unknown_chat) and [`migrate_chat`](FakeTelegram::migrate_chat).
//!
//! ```
//! use watchbell_test::telegram::{FakeTelegram, TgReply};
//!
//! let fake = FakeTelegram::start();
//! fake.push(TgReply::too_many_requests(3));
//! assert!(fake.api_base().starts_with("http://127.0.0.1:"));
//! assert!(watchbell_test::telegram::validate_html("<b>ok</b> &amp; <pre>x</pre>").is_ok());
//! assert!(watchbell_test::telegram::validate_html("<b>open").is_err());
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value as Json};
use watchbell_core::text::utf16_len;

use crate::http::{FakeHttp, Reply, Request};
use crate::store::Recorded;

/// The token [`FakeTelegram::start`] accepts.
pub const TEST_TOKEN: &str = "123456789:TEST-fake_bot_token-abcdefghijklmnop";

/// Telegram's limit on a message's text, in UTF-16 code units.
pub const MAX_TEXT_UNITS: usize = 4096;

/// A programmed answer to the next `sendMessage`.
#[derive(Clone, Debug)]
pub enum TgReply {
    /// Accept the message as usual (after the normal checks).
    Accept,
    /// Answer a Telegram error.
    Error {
        /// `error_code` and the HTTP status.
        code: u16,
        /// `description`.
        description: String,
        /// `parameters.retry_after`, in seconds.
        retry_after: Option<u64>,
        /// `parameters.migrate_to_chat_id`.
        migrate_to_chat_id: Option<i64>,
    },
    /// Answer this raw HTTP reply (a proxy's 502 page, a stall, a closed connection ...).
    Http(Reply),
}

impl TgReply {
    /// An error with this code and description.
    pub fn error(code: u16, description: &str) -> TgReply {
        TgReply::Error { code, description: description.to_owned(), retry_after: None, migrate_to_chat_id: None }
    }

    /// 429 `Too Many Requests: retry after N` with `parameters.retry_after`.
    pub fn too_many_requests(retry_after: u64) -> TgReply {
        TgReply::Error {
            code: 429,
            description: format!("Too Many Requests: retry after {retry_after}"),
            retry_after: Some(retry_after),
            migrate_to_chat_id: None,
        }
    }

    /// 400 `Bad Request: can't parse entities: ...`, whatever the text.
    pub fn cant_parse_entities() -> TgReply {
        TgReply::error(400, "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 0")
    }

    /// 400 `Bad Request: chat not found`.
    pub fn chat_not_found() -> TgReply {
        TgReply::error(400, "Bad Request: chat not found")
    }

    /// 400 `group chat was upgraded to a supergroup chat` with `migrate_to_chat_id`.
    pub fn migrate(new_chat_id: i64) -> TgReply {
        TgReply::Error {
            code: 400,
            description: "Bad Request: group chat was upgraded to a supergroup chat".to_owned(),
            retry_after: None,
            migrate_to_chat_id: Some(new_chat_id),
        }
    }

    /// A raw HTTP reply.
    pub fn http(reply: Reply) -> TgReply {
        TgReply::Http(reply)
    }
}

/// A message the fake accepted.
#[derive(Clone, Debug)]
pub struct Message {
    /// `message_id` given in the answer (1, 2, ...).
    pub message_id: i64,
    /// `chat_id` as text (`-100123` or `@channel`).
    pub chat: String,
    /// `text`, as sent.
    pub text: String,
    /// `parse_mode`, if any.
    pub parse_mode: Option<String>,
    /// `disable_notification` (false when absent).
    pub disable_notification: bool,
    /// `message_thread_id`, if any.
    pub message_thread_id: Option<i64>,
    /// The whole JSON body.
    pub body: Json,
    /// When it arrived.
    pub received_at: Instant,
}

/// One request to the fake and how it was answered.
#[derive(Clone, Debug)]
pub struct Call {
    /// `chat_id` as text (empty if absent or unreadable).
    pub chat: String,
    /// The HTTP status answered (0 for a raw [`TgReply::Http`] reply).
    pub status: u16,
    /// The `description` answered, for errors.
    pub description: Option<String>,
    /// The JSON body (`null` if it was not JSON).
    pub body: Json,
    /// When it arrived.
    pub received_at: Instant,
}

#[derive(Default)]
struct State {
    queue: VecDeque<TgReply>,
    outage_until: Option<Instant>,
    unknown: HashSet<String>,
    migrated: HashMap<String, i64>,
    messages: Vec<Message>,
    calls: Vec<Call>,
    next_id: i64,
}

struct Shared {
    token: String,
    state: Recorded<State>,
}

/// A loopback fake of the Telegram Bot API; see the [module docs](self).
pub struct FakeTelegram {
    http: FakeHttp,
    shared: Arc<Shared>,
}

impl fmt::Debug for FakeTelegram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.state.lock();
        f.debug_struct("FakeTelegram")
            .field("api_base", &self.http.url())
            .field("messages", &st.messages.len())
            .field("calls", &st.calls.len())
            .finish_non_exhaustive()
    }
}

impl FakeTelegram {
    /// Starts a fake that accepts [`TEST_TOKEN`].
    pub fn start() -> FakeTelegram {
        FakeTelegram::start_with_token(TEST_TOKEN)
    }

    /// Starts a fake that accepts `token` (others get 401 `Unauthorized`).
    pub fn start_with_token(token: &str) -> FakeTelegram {
        let http = FakeHttp::start();
        let shared = Arc::new(Shared { token: token.to_owned(), state: Recorded::default() });
        let s = Arc::clone(&shared);
        http.respond_with(move |req| answer(&s, req));
        FakeTelegram { http, shared }
    }

    /// The token it accepts.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The base URL to give a client in place of `https://api.telegram.org`.
    pub fn api_base(&self) -> String {
        self.http.url()
    }

    /// The underlying HTTP fake (every raw request).
    pub fn http(&self) -> &FakeHttp {
        &self.http
    }

    /// Queues an answer for the next well-formed `sendMessage` (in order, one each).
    pub fn push(&self, reply: TgReply) {
        self.shared.state.lock().queue.push_back(reply);
    }

    /// Queues `n` copies of an answer.
    pub fn push_n(&self, n: usize, reply: TgReply) {
        self.shared.state.lock().queue.extend(std::iter::repeat_n(reply, n));
    }

    /// Answers `503 Service Unavailable` to everything for `d` from now.
    pub fn outage(&self, d: Duration) {
        self.shared.state.lock().outage_until = Some(Instant::now() + d);
    }

    /// Makes `chat` unknown: messages to it get 400 `chat not found`.
    pub fn unknown_chat(&self, chat: impl fmt::Display) {
        self.shared.state.lock().unknown.insert(chat.to_string());
    }

    /// Makes `old` a group upgraded to the supergroup `new`: messages to `old` get 400 with
    /// `parameters.migrate_to_chat_id = new`.
    pub fn migrate_chat(&self, old: i64, new: i64) {
        self.shared.state.lock().migrated.insert(old.to_string(), new);
    }

    /// The accepted messages, in order.
    pub fn messages(&self) -> Vec<Message> {
        self.shared.state.lock().messages.clone()
    }

    /// The accepted messages to `chat`.
    pub fn messages_to(&self, chat: impl fmt::Display) -> Vec<Message> {
        let chat = chat.to_string();
        self.shared.state.lock().messages.iter().filter(|m| m.chat == chat).cloned().collect()
    }

    /// Every `sendMessage` request with the right token and a JSON object body, with its answer,
    /// in order (every raw request is in [`http`](FakeTelegram::http)`.requests()`).
    pub fn calls(&self) -> Vec<Call> {
        self.shared.state.lock().calls.clone()
    }

    /// The requests for `chat`.
    pub fn calls_to(&self, chat: impl fmt::Display) -> Vec<Call> {
        let chat = chat.to_string();
        self.shared.state.lock().calls.iter().filter(|c| c.chat == chat).cloned().collect()
    }

    /// Waits until at least `n` messages were accepted or `timeout` passed; returns them.
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Message> {
        self.shared.state.wait_until(timeout, |st| st.messages.len() >= n).messages.clone()
    }

    /// Forgets messages and calls (programming stays).
    pub fn clear(&self) {
        let mut st = self.shared.state.lock();
        st.messages.clear();
        st.calls.clear();
    }
}

fn error_body(code: u16, description: &str, params: Option<Json>) -> String {
    let mut v = json!({"ok": false, "error_code": code, "description": description});
    if let Some(p) = params {
        v["parameters"] = p;
    }
    v.to_string()
}

fn error_reply(code: u16, description: &str) -> Reply {
    Reply::json(code, &error_body(code, description, None))
}

fn chat_key(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn answer(sh: &Shared, req: &Request) -> Reply {
    let Some(rest) = req.path.strip_prefix("/bot") else {
        return error_reply(404, "Not Found");
    };
    let Some((token, method)) = rest.split_once('/') else {
        return error_reply(404, "Not Found");
    };
    if token != sh.token {
        return error_reply(401, "Unauthorized");
    }
    if method != "sendMessage" {
        return error_reply(404, "Not Found");
    }
    if req.method != "POST" {
        return error_reply(400, "Bad Request: the fake expects POST with a JSON body");
    }
    if !req.header("content-type").is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json")) {
        return error_reply(400, "Bad Request: the fake expects Content-Type: application/json");
    }
    let body: Json = match serde_json::from_slice(&req.body) {
        Ok(v @ Json::Object(_)) => v,
        _ => return error_reply(400, "Bad Request: the body is not a JSON object"),
    };
    let chat = body.get("chat_id").map(chat_key).unwrap_or_default();
    sh.state.update(|st| {
        let (status, description, reply) = decide(st, &body, &chat, req);
        st.calls.push(Call { chat, status, description, body, received_at: req.received_at });
        reply
    })
}

/// The answer to a well-formed request: (status, description, reply).
fn decide(st: &mut State, body: &Json, chat: &str, req: &Request) -> (u16, Option<String>, Reply) {
    let fail = |code: u16, d: &str, params: Option<Json>| {
        (code, Some(d.to_owned()), Reply::json(code, &error_body(code, d, params)))
    };
    if st.outage_until.is_some_and(|t| Instant::now() < t) {
        return (503, None, Reply::text(503, "Service Unavailable"));
    }
    match st.queue.pop_front() {
        None | Some(TgReply::Accept) => {}
        Some(TgReply::Http(r)) => return (0, None, r),
        Some(TgReply::Error { code, description, retry_after, migrate_to_chat_id }) => {
            let params = match (retry_after, migrate_to_chat_id) {
                (None, None) => None,
                (r, m) => {
                    let mut p = json!({});
                    if let Some(r) = r {
                        p["retry_after"] = json!(r);
                    }
                    if let Some(m) = m {
                        p["migrate_to_chat_id"] = json!(m);
                    }
                    Some(p)
                }
            };
            return fail(code, &description, params);
        }
    }
    if chat.is_empty() {
        return fail(400, "Bad Request: chat_id is empty", None);
    }
    let text = match body.get("text") {
        Some(Json::String(t)) if !t.trim().is_empty() => t.clone(),
        _ => return fail(400, "Bad Request: message text is empty", None),
    };
    if st.unknown.contains(chat) {
        return fail(400, "Bad Request: chat not found", None);
    }
    if let Some(new) = st.migrated.get(chat) {
        return fail(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            Some(json!({"migrate_to_chat_id": new})),
        );
    }
    let parse_mode = body.get("parse_mode").and_then(Json::as_str).map(str::to_owned);
    match parse_mode.as_deref() {
        None | Some("MarkdownV2") | Some("Markdown") => {}
        Some("HTML") => {
            if let Err(e) = validate_html(&text) {
                return fail(400, &format!("Bad Request: can't parse entities: {e}"), None);
            }
        }
        Some(_) => return fail(400, "Bad Request: unsupported parse_mode", None),
    }
    if utf16_len(&text) > MAX_TEXT_UNITS {
        return fail(400, "Bad Request: message is too long", None);
    }
    st.next_id += 1;
    let id = st.next_id;
    let chat_json = body.get("chat_id").cloned().unwrap_or(Json::Null);
    let chat_type = match &chat_json {
        Json::String(_) => "channel",
        Json::Number(n) if n.as_i64().is_some_and(|v| v < 0) => "supergroup",
        _ => "private",
    };
    let date = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    st.messages.push(Message {
        message_id: id,
        chat: chat.to_owned(),
        text: text.clone(),
        parse_mode,
        disable_notification: body.get("disable_notification").and_then(Json::as_bool).unwrap_or(false),
        message_thread_id: body.get("message_thread_id").and_then(Json::as_i64),
        body: body.clone(),
        received_at: req.received_at,
    });
    let result = json!({
        "ok": true,
        "result": {"message_id": id, "date": date, "chat": {"id": chat_json, "type": chat_type}, "text": text}
    });
    (200, None, Reply::json(200, &result.to_string()))
}

const TAGS: &[&str] = &[
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
];

/// Checks text the way Telegram's HTML parse mode reads it, strictly: only the tags Telegram
/// supports (`b strong i em u ins s strike del span class="tg-spoiler" tg-spoiler a href code
/// class="language-x" pre blockquote tg-emoji`), properly nested and all closed, nothing but
/// `code` inside `pre` and nothing inside `code`; `&` only as `&lt; &gt; &amp; &quot;` or a
/// numeric entity of a valid char; no stray `<` or `>`. The error reads like Telegram's.
pub fn validate_html(text: &str) -> Result<(), String> {
    let mut stack: Vec<&str> = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'<' => {
                let end = text[i..].find('>').map(|k| i + k).ok_or(format!("Unclosed start tag at byte offset {i}"))?;
                let inner = &text[i + 1..end];
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim();
                    match stack.pop() {
                        Some(open) if open == name => {}
                        Some(open) => {
                            return Err(format!(
                                "Unmatched end tag at byte offset {i}, expected \"</{open}>\", found \"</{name}>\""
                            ))
                        }
                        None => return Err(format!("Unexpected end tag at byte offset {i}")),
                    }
                } else {
                    let name_end = inner.find(|c: char| c.is_whitespace()).unwrap_or(inner.len());
                    let name = &inner[..name_end];
                    if !TAGS.contains(&name) {
                        return Err(format!("Unsupported start tag \"{name}\" at byte offset {i}"));
                    }
                    check_attributes(name, inner[name_end..].trim(), i)?;
                    if let Some(&parent) = stack.last() {
                        if parent == "code" || (parent == "pre" && name != "code") {
                            return Err(format!("Tag \"{name}\" inside \"{parent}\" at byte offset {i}"));
                        }
                    }
                    stack.push(name);
                }
                i = end + 1;
            }
            b'>' => return Err(format!("Unexpected \">\" at byte offset {i}")),
            b'&' => {
                let end = text[i..]
                    .bytes()
                    .take(12)
                    .position(|c| c == b';')
                    .map(|k| i + k)
                    .ok_or(format!("Can't find end of the entity starting at byte offset {i}"))?;
                if !valid_entity(&text[i + 1..end]) {
                    return Err(format!("Unsupported HTML entity at byte offset {i}"));
                }
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    match stack.last() {
        Some(open) => Err(format!("Can't find end tag corresponding to start tag \"{open}\"")),
        None => Ok(()),
    }
}

fn valid_entity(name: &str) -> bool {
    match name {
        "lt" | "gt" | "amp" | "quot" => true,
        _ => {
            let Some(num) = name.strip_prefix('#') else { return false };
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok(),
                None => num.parse().ok(),
            };
            code.and_then(char::from_u32).is_some()
        }
    }
}

fn check_attributes(tag: &str, attrs: &str, at: usize) -> Result<(), String> {
    let mut rest = attrs;
    while !rest.is_empty() {
        let name_end = rest.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(rest.len());
        let name = &rest[..name_end];
        rest = rest[name_end..].trim_start();
        let value = if let Some(v) = rest.strip_prefix('=') {
            let v = v.trim_start();
            let q = v.chars().next().filter(|c| *c == '"' || *c == '\'');
            match q {
                Some(q) => {
                    let close = v[1..].find(q).ok_or(format!("Unclosed attribute value at byte offset {at}"))?;
                    rest = v[close + 2..].trim_start();
                    Some(&v[1..close + 1])
                }
                None => {
                    let e = v.find(char::is_whitespace).unwrap_or(v.len());
                    rest = v[e..].trim_start();
                    Some(&v[..e])
                }
            }
        } else {
            None
        };
        let ok = match (tag, name) {
            ("a", "href") => value.is_some(),
            ("span", "class") => value == Some("tg-spoiler"),
            ("code", "class") => value.is_some_and(|v| v.starts_with("language-")),
            ("blockquote", "expandable") => true,
            ("tg-emoji", "emoji-id") => value.is_some(),
            _ => false,
        };
        if !ok {
            return Err(format!("Unsupported attribute \"{name}\" of tag \"{tag}\" at byte offset {at}"));
        }
    }
    if tag == "span" && !attrs.contains("tg-spoiler") {
        return Err(format!("Unsupported start tag \"span\" at byte offset {at}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_html;

    #[test]
    fn html_validation() {
        for ok in [
            "plain",
            "<b>a</b> <i>b</i> &lt;x&gt; &amp; &quot; &#39; &#x1F600;",
            "<pre><code class=\"language-rust\">fn main() {}</code></pre>",
            "<a href=\"https://x.test/?a=1&amp;b=2\">link</a>",
            "<span class=\"tg-spoiler\">s</span><tg-spoiler>t</tg-spoiler>",
            "日本語 👍",
        ] {
            assert_eq!(validate_html(ok), Ok(()), "{ok}");
        }
        for bad in [
            "<b>open",
            "</b>",
            "<b><i>x</b></i>",
            "<script>x</script>",
            "a & b",
            "a &amp b",
            "&nbsp;",
            "a > b",
            "a < b",
            "<pre><b>x</b></pre>",
            "<b onclick=\"x\">y</b>",
            "<span>x</span>",
            "<a href=\"x>y",
        ] {
            assert!(validate_html(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod protocol_tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::{FakeTelegram, TgReply, TEST_TOKEN};

    /// One raw request; returns (status, JSON body).
    fn post(fake: &FakeTelegram, path: &str, body: &str) -> (u16, serde_json::Value) {
        let mut s = TcpStream::connect(fake.http().addr()).unwrap();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp[9..12].parse().unwrap();
        let json = resp
            .split_once("\r\n\r\n")
            .map_or(serde_json::Value::Null, |(_, b)| serde_json::from_str(b).unwrap_or(serde_json::Value::Null));
        (status, json)
    }

    #[test]
    fn answers_like_the_bot_api() {
        let fake = FakeTelegram::start();
        let path = format!("/bot{TEST_TOKEN}/sendMessage");
        let (st, v) = post(&fake, &path, r#"{"chat_id":5,"text":"<b>hi</b>","parse_mode":"HTML"}"#);
        assert_eq!(st, 200);
        assert_eq!(v["ok"], true);
        assert_eq!(v["result"]["chat"]["id"], 5);
        assert_eq!(v["result"]["message_id"], 1);

        let (st, v) = post(&fake, "/bot1:wrong/sendMessage", r#"{"chat_id":5,"text":"x"}"#);
        assert_eq!((st, v["description"].as_str()), (401, Some("Unauthorized")));
        let (st, v) = post(&fake, &path, r#"{"text":"x"}"#);
        assert_eq!((st, v["description"].as_str()), (400, Some("Bad Request: chat_id is empty")));
        let long = "👍".repeat(2049);
        let (st, v) = post(&fake, &path, &format!(r#"{{"chat_id":5,"text":"{long}"}}"#));
        assert_eq!((st, v["description"].as_str()), (400, Some("Bad Request: message is too long")));
        let (st, v) = post(&fake, &path, r#"{"chat_id":5,"text":"<b>x","parse_mode":"HTML"}"#);
        assert_eq!(st, 400);
        assert!(v["description"].as_str().unwrap().starts_with("Bad Request: can't parse entities: "));

        fake.push(TgReply::too_many_requests(7));
        let (st, v) = post(&fake, &path, r#"{"chat_id":5,"text":"x"}"#);
        assert_eq!((st, v["error_code"].as_u64(), v["parameters"]["retry_after"].as_u64()), (429, Some(429), Some(7)));
        fake.unknown_chat("@gone");
        let (st, v) = post(&fake, &path, r#"{"chat_id":"@gone","text":"x"}"#);
        assert_eq!((st, v["description"].as_str()), (400, Some("Bad Request: chat not found")));
        fake.migrate_chat(-9, -1009);
        let (st, v) = post(&fake, &path, r#"{"chat_id":-9,"text":"x"}"#);
        assert_eq!((st, v["parameters"]["migrate_to_chat_id"].as_i64()), (400, Some(-1009)));

        assert_eq!(fake.messages().len(), 1);
        assert_eq!(fake.calls().len(), 7, "the request with a wrong token is not a call");
        assert_eq!(fake.http().request_count(), 8);
    }
}
