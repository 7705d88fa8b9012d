//! The Telegram sink: one chat, `sendMessage` over watchbell's HTTP transport.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use watchbell_core::http::{self, HttpClient, HttpResponse, Method};
use watchbell_core::secret::Secret;
use watchbell_core::text::{truncate_utf16, utf16_len, MARKER};
use watchbell_core::{Batch, Fingerprint, Level, Outcome, Record, Sink};

use crate::html::{plain_text, split_html, truncate_html, Renderer};
use crate::ChatId;

/// Telegram's limit on a message's text, counted in UTF-16 code units.
pub(crate) const LIMIT: usize = 4096;

pub(crate) struct TelegramSink {
    pub(crate) client: HttpClient,
    /// The API base, without the token and without a trailing slash.
    pub(crate) base: String,
    pub(crate) token: Secret<String>,
    pub(crate) chat: ChatId,
    pub(crate) thread: Option<i64>,
    pub(crate) notify: Level,
    pub(crate) split: bool,
    pub(crate) protect: bool,
    pub(crate) pace: Duration,
    pub(crate) render: Renderer,
    pub(crate) last_sent: Option<Instant>,
    pub(crate) migration_told: bool,
    /// After a split record was partly sent: which record, and how many of its pieces went.
    pub(crate) resume: Option<(SystemTime, Fingerprint, usize)>,
}

impl fmt::Debug for TelegramSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramSink")
            .field("api_base", &watchbell_core::secret::redact_url(&self.base))
            .field("token", &self.token)
            .field("chat", &self.chat)
            .field("message_thread_id", &self.thread)
            .finish_non_exhaustive()
    }
}

/// One `sendMessage` to make.
struct Message {
    html: String,
    silent: bool,
    /// Records fully delivered once this message is (counted from the batch start).
    done: usize,
    /// The index of the record this message starts with, and whether it is a later piece of it.
    first: usize,
}

#[derive(Deserialize)]
struct ApiAnswer {
    #[serde(default)]
    ok: bool,
    description: Option<String>,
    parameters: Option<Params>,
}

#[derive(Deserialize)]
struct Params {
    retry_after: Option<f64>,
    migrate_to_chat_id: Option<i64>,
}

enum Answer {
    Sent,
    CantParse(String),
    Migrate(i64),
    Failed(Outcome),
}

impl TelegramSink {
    /// Packs the batch's records into messages within the limit (several records per message
    /// where they fit; a record too long alone is cut, or split when configured).
    fn messages(&self, batch: &Batch) -> Vec<Message> {
        let mut out = Vec::new();
        let ring = |rs: &[Record]| rs.iter().any(|r| r.level <= self.notify);
        let mut cur = String::new();
        let mut cur_start = 0;
        let mut cur_units = 0;
        for (i, r) in batch.records.iter().enumerate() {
            let block = self.render.record(r);
            let units = utf16_len(&block);
            let fits_with = cur.is_empty() || cur_units + 2 + units <= LIMIT;
            if !cur.is_empty() && (units > LIMIT || !fits_with) {
                out.push(Message {
                    html: std::mem::take(&mut cur),
                    silent: !ring(&batch.records[cur_start..i]),
                    done: i,
                    first: cur_start,
                });
                cur_units = 0;
            }
            if units > LIMIT {
                let silent = !ring(&batch.records[i..=i]);
                if self.split {
                    let pieces = split_html(&block, LIMIT);
                    let n = pieces.len();
                    for (k, html) in pieces.into_iter().enumerate() {
                        out.push(Message { html, silent, done: if k + 1 == n { i + 1 } else { i }, first: i });
                    }
                } else {
                    out.push(Message { html: truncate_html(&block, LIMIT, MARKER), silent, done: i + 1, first: i });
                }
                continue;
            }
            if cur.is_empty() {
                cur = block;
                cur_start = i;
                cur_units = units;
            } else {
                cur.push_str("\n\n");
                cur.push_str(&block);
                cur_units += 2 + units;
            }
        }
        if !cur.is_empty() {
            let n = batch.records.len();
            out.push(Message { html: cur, silent: !ring(&batch.records[cur_start..]), done: n, first: cur_start });
        }
        out
    }

    fn url(&self) -> String {
        format!("{}/bot{}/sendMessage", self.base, self.token.expose())
    }

    /// Removes the token from text that may be printed.
    fn scrub(&self, s: String) -> String {
        let t = self.token.expose();
        if !t.is_empty() && s.contains(t.as_str()) {
            s.replace(t.as_str(), "[redacted]")
        } else {
            s
        }
    }

    fn wait_pace(&self) {
        if let Some(last) = self.last_sent {
            let at = last + self.pace;
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
        }
    }

    fn payload(&self, text: &str, html: bool, silent: bool) -> Json {
        let mut m = Map::new();
        m.insert("chat_id".into(), self.chat.to_json());
        if let Some(t) = self.thread {
            m.insert("message_thread_id".into(), json!(t));
        }
        m.insert("text".into(), json!(text));
        if html {
            m.insert("parse_mode".into(), json!("HTML"));
        }
        m.insert("link_preview_options".into(), json!({"is_disabled": true}));
        m.insert("disable_notification".into(), json!(silent));
        if self.protect {
            m.insert("protect_content".into(), json!(true));
        }
        Json::Object(m)
    }

    /// One HTTP request, paced.
    fn post(&mut self, text: &str, html: bool, silent: bool) -> Answer {
        self.wait_pace();
        let body = serde_json::to_vec(&self.payload(text, html, silent)).unwrap_or_default();
        let url = self.url();
        let req = self.client.request(Method::POST, &url).header("Content-Type", "application/json").body(body);
        let res = self.client.send(req, &url);
        // After the answer: the next request leaves at least `pace` after this one arrived.
        self.last_sent = Some(Instant::now());
        match res {
            Err(e) => Answer::Failed(Outcome::retry(self.scrub(e.reason))),
            Ok(resp) => self.answer(&resp),
        }
    }

    fn answer(&self, resp: &HttpResponse) -> Answer {
        let parsed: Option<ApiAnswer> = serde_json::from_slice(&resp.body).ok();
        if (200..300).contains(&resp.status) && parsed.as_ref().is_none_or(|a| a.ok) {
            return Answer::Sent;
        }
        let desc = parsed.as_ref().and_then(|a| a.description.clone()).unwrap_or_else(|| resp.text());
        let desc = self.scrub(desc);
        let params = parsed.as_ref().and_then(|a| a.parameters.as_ref());
        if let Some(new) = params.and_then(|p| p.migrate_to_chat_id) {
            return Answer::Migrate(new);
        }
        if resp.status == 400 && desc.to_ascii_lowercase().contains("can't parse entities") {
            return Answer::CantParse(desc);
        }
        let after = params
            .and_then(|p| p.retry_after)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
            .or_else(|| resp.retry_after());
        let status = if (200..300).contains(&resp.status) { 500 } else { resp.status };
        Answer::Failed(http::classify(status, after, "Telegram", &desc))
    }

    fn migrate(&mut self, new: i64) {
        let old = std::mem::replace(&mut self.chat, ChatId::Id(new));
        if !std::mem::replace(&mut self.migration_told, true) {
            eprintln!(
                "watchbell[telegram]: chat {old} was migrated to {new} (a group upgraded to a supergroup); \
                 sending there from now on: update the configuration to chat {new}"
            );
        }
    }

    /// Sends one message, following a chat migration and falling back to plain text once if
    /// Telegram cannot parse the HTML.
    fn send(&mut self, html: &str, silent: bool) -> Outcome {
        let mut text = html.to_owned();
        let mut as_html = true;
        let mut migrations = 0;
        loop {
            match self.post(&text, as_html, silent) {
                Answer::Sent => return Outcome::Delivered,
                Answer::Migrate(new) if migrations < 3 && ChatId::Id(new) != self.chat => {
                    migrations += 1;
                    self.migrate(new);
                }
                Answer::Migrate(_) => return Outcome::permanent("Telegram keeps migrating the chat"),
                Answer::CantParse(_) if as_html => {
                    text = truncate_utf16(&plain_text(&text), LIMIT, MARKER).into_owned();
                    as_html = false;
                }
                Answer::CantParse(desc) => return Outcome::permanent(format!("Telegram answered 400: {desc}")),
                Answer::Failed(o) => return o,
            }
        }
    }
}

impl Sink for TelegramSink {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        let messages = self.messages(batch);
        let mut skip = 0;
        if let (Some((t, fp, n)), Some(r)) = (self.resume.take(), batch.records.first()) {
            if r.time == t && r.fingerprint == fp {
                skip = n;
            }
        }
        let mut delivered = 0;
        let mut pieces_of_next = 0;
        for m in messages.iter() {
            if m.first == 0 && m.done == 0 && skip > 0 {
                skip -= 1;
                pieces_of_next += 1;
                continue;
            }
            match self.send(&m.html, m.silent) {
                Outcome::Delivered => {
                    if m.done > delivered {
                        delivered = m.done;
                        pieces_of_next = 0;
                    } else {
                        pieces_of_next += 1;
                    }
                }
                failed => {
                    if pieces_of_next > 0 {
                        if let Some(r) = batch.records.get(delivered) {
                            self.resume = Some((r.time, r.fingerprint, pieces_of_next));
                        }
                    }
                    return if delivered > 0 { Outcome::Partial { delivered, rest: Box::new(failed) } } else { failed };
                }
            }
        }
        Outcome::Delivered
    }
}
