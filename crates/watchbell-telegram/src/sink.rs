//! The Telegram sink: one chat, `sendMessage` over watchbell's HTTP transport.

use std::fmt;
use std::time::SystemTime;

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
    /// Split mode: at most this many messages per record; `None`: cut to one.
    pub(crate) split: Option<usize>,
    pub(crate) protect: bool,
    pub(crate) render: Renderer,
    pub(crate) migration_told: bool,
    /// The piece cursor of split mode: while the pieces of a split record are being sent (one
    /// per call, at the pace), which record, and how many of its pieces went.
    pub(crate) resume: Option<(SystemTime, Fingerprint, usize)>,
    /// The name this chat has in the ticket page's list of notified destinations.
    pub(crate) destination: String,
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
    /// Records fully delivered once this message is (counted from the batch start): 0 for a
    /// piece of a split record other than its last.
    done: usize,
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
    /// The batch's first message: as many records from the start as fit in the limit; or, when
    /// the first record is too long alone, that record cut to the limit, or all its pieces when
    /// split. Records after the first message are not rendered.
    fn first_messages(&self, batch: &Batch) -> Vec<Message> {
        let ring = |rs: &[Record]| rs.iter().any(|r| r.level <= self.notify);
        // The text of the message being packed, and its length in UTF-16 units.
        let mut cur: Option<(String, usize)> = None;
        for (i, r) in batch.records.iter().enumerate() {
            let block = self.render.record(r);
            let units = utf16_len(&block);
            match &mut cur {
                Some((text, n)) if units > LIMIT || *n + 2 + units > LIMIT => {
                    let silent = !ring(&batch.records[..i]);
                    return vec![Message { html: std::mem::take(text), silent, done: i }];
                }
                Some((text, n)) => {
                    text.push_str("\n\n");
                    text.push_str(&block);
                    *n += 2 + units;
                }
                None if units > LIMIT => {
                    let silent = !ring(&batch.records[..=i]);
                    let Some(max) = self.split else {
                        return vec![Message { html: truncate_html(&block, LIMIT, MARKER), silent, done: i + 1 }];
                    };
                    // More than `max` full messages could hold cannot be sent anyway.
                    let block = if units > max * LIMIT { truncate_html(&block, max * LIMIT, MARKER) } else { block };
                    let mut pieces = split_html(&block, LIMIT);
                    if pieces.len() > max {
                        // The last message holds what fits of the rest (each piece is valid HTML
                        // on its own, so their concatenation is too).
                        let rest: String = pieces.drain(max - 1..).collect();
                        pieces.push(truncate_html(&rest, LIMIT, MARKER));
                    }
                    let last = pieces.len().saturating_sub(1);
                    return pieces
                        .into_iter()
                        .enumerate()
                        // One alert rings once: the pieces after the first are silent.
                        .map(|(k, html)| Message {
                            html,
                            silent: silent || k > 0,
                            done: if k == last { i + 1 } else { 0 },
                        })
                        .collect();
                }
                None => cur = Some((block, units)),
            }
        }
        match cur {
            Some((html, _)) => vec![Message { html, silent: !ring(&batch.records), done: batch.records.len() }],
            None => Vec::new(),
        }
    }

    fn url(&self) -> String {
        format!("{}/bot{}/sendMessage", self.base, self.token.expose())
    }

    /// Removes the token from text that may be printed.
    fn scrub(&self, s: String) -> String {
        watchbell_core::secret::scrub(s, &[self.token.expose()])
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

    /// One HTTP request (the delivery keeps the pace between calls of the sink).
    fn post(&mut self, text: &str, html: bool, silent: bool) -> Answer {
        let body = serde_json::to_vec(&self.payload(text, html, silent)).unwrap_or_default();
        let url = self.url();
        let req = self.client.request(Method::POST, &url).header("Content-Type", "application/json").body(body);
        match self.client.send(req, &url) {
            // A refused TLS handshake (an untrusted certificate, mTLS) cannot heal by retrying.
            Err(e) if e.tls => Answer::Failed(Outcome::permanent(self.scrub(e.reason))),
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
            // Capped by the delivery (`Retry::max_server_delay`, counted), not here.
            .map(watchbell_core::time::secs_f64)
            .or_else(|| resp.retry_after());
        let status = if (200..300).contains(&resp.status) { 500 } else { resp.status };
        Answer::Failed(http::classify(status, after, "Telegram", &desc))
    }

    fn migrate(&mut self, new: i64) {
        let old = std::mem::replace(&mut self.chat, ChatId::Id(new));
        if !std::mem::replace(&mut self.migration_told, true) {
            watchbell_core::report::report(
                "telegram",
                &format!(
                    "chat {old} was migrated to {new} (a group upgraded to a supergroup); \
                 sending there from now on: update the configuration to chat {new}"
                ),
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
    /// Sends one message per call: the batch's first message, and when it does not hold every
    /// record the delivery calls again with the rest once the pace allows ([`Outcome::More`]).
    /// A split record is one record over several messages: one piece per call
    /// ([`Outcome::Progress`] until its last), the piece cursor saying where to go on, so that
    /// the pieces keep the pace and a retry resumes at the piece that failed.
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        let Some(first) = batch.records.first() else { return Outcome::Delivered };
        let sent = match self.resume.take() {
            Some((t, fp, n)) if first.time == t && first.fingerprint == fp => n,
            _ => 0,
        };
        let mut messages = self.first_messages(batch);
        if sent >= messages.len() {
            // Every piece went (the cursor outlived a rendering that changed): the record is done.
            return if batch.records.len() > 1 { Outcome::More { delivered: 1 } } else { Outcome::Delivered };
        }
        let m = messages.swap_remove(sent);
        let outcome = self.send(&m.html, m.silent);
        if matches!(outcome, Outcome::Delivered) && m.done > 0 {
            if let Some(link) = &self.render.cx.ticket_link {
                link.notified(&self.destination, &batch.records[..m.done.min(batch.records.len())]);
            }
        }
        match outcome {
            Outcome::Delivered if m.done == 0 => {
                self.resume = Some((first.time, first.fingerprint, sent + 1));
                Outcome::Progress
            }
            Outcome::Delivered if m.done < batch.records.len() => Outcome::More { delivered: m.done },
            Outcome::Delivered => Outcome::Delivered,
            failed => {
                if sent > 0 {
                    self.resume = Some((first.time, first.fingerprint, sent));
                }
                failed
            }
        }
    }
}
