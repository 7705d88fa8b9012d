//! # watchbell-telegram
//!
//! A `tracing` layer that alerts to Telegram through the Bot API's `sendMessage`: to chats,
//! channels and forum topics, with Telegram's HTML, its limits and its pace.
//!
//! ```no_run
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//! use watchbell_core::Level;
//! use watchbell_telegram::{Chat, TelegramLayer};
//!
//! let (layer, guard) = TelegramLayer::builder("123456:ABC-your-bot-token")
//!     .chat(-1001234567890_i64)                         // a group or supergroup, by id
//!     .chat(Chat::new("@ops_alerts").level(Level::ERROR)) // a channel, errors only
//!     .app("billing")
//!     .level(Level::WARN)
//!     .build()
//!     .expect("a valid configuration");
//! tracing_subscriber::registry().with(layer).init();
//!
//! tracing::error!(invoice = 42, error = "connection refused", "payment failed");
//!
//! // At the end of main: deliver what is pending, within 5 s.
//! guard.shutdown(Duration::from_secs(5));
//! ```
//!
//! ## What a message looks like
//!
//! Messages use `parse_mode=HTML`. One record reads:
//!
//! ```text
//! <b>ERROR</b> in <b>billing</b>: payment failed
//! <i>at</i> src/pay.rs:42
//! <i>invoice</i>: 42
//! <i>in</i> request{id=7}:charge
//! <pre>connection refused</pre>
//! <i>(3 similar suppressed)</i>
//! ```
//!
//! The headline, then the location, the event's fields (one per line), the span context, the
//! field named `error` (an error and its source chain) in `<pre>`, and the number of similar
//! records the rate limit withheld. Lines with nothing to show are left out. Every piece of log
//! text is HTML-escaped, so `<script>` or `&` in a message is shown as it is and can never break
//! the markup. Without [`app`](TelegramBuilder::app), the headline names the record's target.
//! [`format`](TelegramBuilder::format) replaces the whole block by your own (escaped) text.
//!
//! Records that wait while the chat is paced are delivered together: one message lists them,
//! separated by blank lines, as many as fit in Telegram's limit. When they do not all fit, the
//! rest go in further messages, one per pace: the chat's delivery waits between them (a wait
//! that shutdown cuts short).
//!
//! ## Ticket links
//!
//! With [`ticket_link`](TelegramBuilder::ticket_link) (what `[ticketing] public_url` sets in
//! the umbrella crate's config), the headline gets a link to the record's ticket in
//! `watchbell-tickets serve`: `<b>ERROR</b> in <b>billing</b> (<a href="…">ticket</a>): …`,
//! placed before the message so that cutting a long record never cuts it. The URL is
//! HTML-escaped inside the attribute. A custom [`format`](TelegramBuilder::format) can write
//! `{ticket_url}` itself. The ticket page lists the chat as `telegram` (or `telegram:CHAT` when
//! the layer sends to several chats).
//!
//! The ticket is known from the record alone (its fingerprint, computed on the delivery's
//! worker by [`TicketLink`](watchbell_core::TicketLink) exactly as the ticketing layer computes
//! it), so linking costs no database round trip and nothing on the application's thread. After
//! each **successful** delivery the records it carried are told to the in-process journal
//! [`watchbell_core::notified`], which the ticketing layer of the same process writes to its
//! notifications table: the ticket page lists the destinations that were alerted. A delivery
//! that fails or is refused is not listed.
//!
//! ## Defaults
//!
//! | setting | default | builder method |
//! |---|---|---|
//! | API base | `https://api.telegram.org` (the token goes in the path: `/bot<token>/sendMessage`) | [`api_base`](TelegramBuilder::api_base) |
//! | level captured | `WARN` and more severe (per chat: [`Chat::level`]) | [`level`](TelegramBuilder::level) |
//! | notification | a message rings when it holds an `ERROR`; otherwise `disable_notification: true` | [`notify_level`](TelegramBuilder::notify_level) |
//! | rate limit | 1 record per 60 s per callsite fingerprint; the rest are counted and reported as "N similar suppressed" with the next one or at flush | [`rate_limit`](SinkOptions::rate_limit), [`no_rate_limit`](SinkOptions::no_rate_limit) |
//! | pace | 1 message per second per chat; 3 s for groups (negative chat ids: Telegram allows 20 per minute in a group) | [`pace`](SinkOptions::pace) |
//! | long text | cut to 4096 UTF-16 units (markup included) with the marker `…[truncated]`, tags closed, no entity cut | [`split_long`](TelegramBuilder::split_long) sends several messages instead, at the pace, at most 10 per record ([`max_pieces`](TelegramBuilder::max_pieces)) |
//! | link previews | off (`link_preview_options: {"is_disabled": true}`) | — |
//! | retries | `Retry::default()`: 500 ms doubling to 60 s, for 10 minutes per batch; 429 waits `retry_after` | [`retry`](SinkOptions::retry) |
//! | queue | 10,000 records per chat, the newest dropped and counted when full | [`queue_records`](SinkOptions::queue_records), [`overflow`](SinkOptions::overflow) |
//! | HTTP timeout | 10 s per request | [`timeout`](SinkOptions::timeout) |
//! | plain `http://` | refused except to loopback | [`allow_plain_http`](SinkOptions::allow_plain_http) |
//!
//! The common settings are the methods of [`SinkOptions`], the same in every watchbell sink
//! crate (`use watchbell_telegram::SinkOptions;`). Setting [`pace`](SinkOptions::pace) applies
//! one pace to every chat, groups included.
//!
//! How answers are handled:
//!
//! - `429` waits `parameters.retry_after` seconds (or a `Retry-After` header), then retries.
//! - `5xx`, timeouts and connection errors are retried with backoff.
//! - `400 can't parse entities`: the message is sent again once as plain text (tags removed,
//!   entities decoded) rather than lost.
//! - `parameters.migrate_to_chat_id` (a group that became a supergroup): the message is sent to
//!   the new chat, later messages too, and stderr says so once (update your configuration).
//! - `401 Unauthorized`, `403` (bot blocked or removed) and other `400`s such as `chat not
//!   found` are permanent: not retried, counted as failed in [`Guard::stats`] and reported once
//!   on stderr.
//! - When a batch became several messages and a later one fails, the messages already sent are
//!   not sent again; a split record resumes at the piece that failed.
//! - The pieces of a split record ([`split_long`](TelegramBuilder::split_long)) are messages
//!   like any other: they keep the chat's pace (a 1 MB backtrace does not burst hundreds of
//!   messages into a group and a 429 storm), a record gets at most
//!   [`max_pieces`](TelegramBuilder::max_pieces) of them (the last one cut with the marker), a
//!   `429` on the way waits `retry_after` and resumes at the refused piece, and shutdown
//!   interrupts the wait between two pieces. Only the first piece can ring (the rest are sent
//!   with `disable_notification`). The record counts as delivered with its last piece.
//!
//! The bot token is a secret: it appears in no `Debug` output, error, stats or panic message.
//!
//! ## Several chats
//!
//! Each [`chat`](TelegramBuilder::chat) gets its own queue, pace and retries, so a slow or
//! failing chat never delays another; each may take its own level. The rate limit stands in
//! front of all of them.
//!
//! ```no_run
//! # use watchbell_core::Level;
//! # use watchbell_telegram::{Chat, TelegramLayer};
//! # fn main() -> Result<(), watchbell_telegram::BuildError> {
//! let (layer, guard) = TelegramLayer::builder("123456:ABC-token")
//!     .chat(Chat::new(-1001234567890_i64).level(Level::WARN)) // the team: warnings and errors
//!     .chat(Chat::new("@oncall").level(Level::ERROR))          // on call: errors only
//!     .build::<tracing_subscriber::Registry>()?;
//! # Ok(()) }
//! ```
//!
//! ## Forum topics
//!
//! In a supergroup with topics, [`Chat::topic`] sends to one topic (`message_thread_id`):
//!
//! ```no_run
//! # use watchbell_telegram::{Chat, TelegramLayer};
//! let (layer, guard) = TelegramLayer::builder("123456:ABC-token")
//!     .chat(Chat::new(-1001234567890_i64).topic(42))
//!     .build::<tracing_subscriber::Registry>()
//!     .unwrap();
//! ```
#![deny(missing_docs)]

mod html;
mod sink;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tracing_core::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use watchbell_core::format::{Format, FormatContext};
use watchbell_core::handler::Select;
use watchbell_core::options::{layer, Options, SinkLayer};
use watchbell_core::secret::{redact_url, Secret};
pub use watchbell_core::{BuildError, SinkOptions};
use watchbell_core::{FanOut, Guard, Handler, Level, Record};

use crate::html::Renderer;
use crate::sink::TelegramSink;

/// The Telegram API's address.
pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";

/// The layer [`TelegramBuilder::build`] returns: watchbell's capture layer behind its level
/// filter. Add it to a registry with `.with(layer)`.
pub type TelegramFiltered<S> = SinkLayer<S>;

/// The pace value that means "1 s per chat, 3 s per group" (the default).
const AUTO_PACE: Duration = Duration::MAX;

/// Where [`TelegramLayer::builder`] starts.
#[derive(Debug)]
pub struct TelegramLayer(());

impl TelegramLayer {
    /// A builder for a bot with this token (`123456:ABC-DEF...`, from @BotFather).
    pub fn builder(bot_token: impl Into<String>) -> TelegramBuilder {
        TelegramBuilder {
            token: Secret::new(bot_token.into()),
            chats: Vec::new(),
            level: Level::WARN,
            notify: Level::ERROR,
            app: None,
            api_base: DEFAULT_API_BASE.to_owned(),
            split: false,
            max_pieces: 10,
            protect: false,
            options: Options::new().rate_limit(1, Duration::from_secs(60)).pace(AUTO_PACE),
            format: None,
            ticket_link: None,
        }
    }
}

/// A chat's id: a number (users, groups, supergroups and channels) or a public channel's
/// `@username`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ChatId {
    /// A numeric id (negative for groups, supergroups and channels).
    Id(i64),
    /// `@channelusername`.
    Username(String),
}

impl ChatId {
    fn to_json(&self) -> serde_json::Value {
        match self {
            ChatId::Id(id) => serde_json::Value::from(*id),
            ChatId::Username(u) => serde_json::Value::from(u.as_str()),
        }
    }

    /// Whether it is a group (a negative id), where Telegram allows 20 messages per minute.
    pub fn is_group(&self) -> bool {
        matches!(self, ChatId::Id(id) if *id < 0)
    }
}

impl fmt::Display for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatId::Id(id) => write!(f, "{id}"),
            ChatId::Username(u) => f.write_str(u),
        }
    }
}

impl From<i64> for ChatId {
    fn from(id: i64) -> Self {
        ChatId::Id(id)
    }
}

impl From<&str> for ChatId {
    /// A number if the text is one (`"-100123"`), else a username (`"@channel"`).
    fn from(s: &str) -> Self {
        match s.trim().parse::<i64>() {
            Ok(id) => ChatId::Id(id),
            Err(_) => ChatId::Username(s.trim().to_owned()),
        }
    }
}

impl From<String> for ChatId {
    fn from(s: String) -> Self {
        ChatId::from(s.as_str())
    }
}

/// One destination chat, with its own level and forum topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chat {
    id: ChatId,
    topic: Option<i64>,
    level: Option<Level>,
}

impl Chat {
    /// A chat by id (`-1001234567890`) or channel username (`"@ops_alerts"`).
    pub fn new(id: impl Into<ChatId>) -> Self {
        Chat { id: id.into(), topic: None, level: None }
    }

    /// Sends into this forum topic (`message_thread_id`).
    pub fn topic(mut self, message_thread_id: i64) -> Self {
        self.topic = Some(message_thread_id);
        self
    }

    /// Only records of this level and more severe go to this chat (default: the builder's
    /// [`level`](TelegramBuilder::level)). watchbell's own notices about records this chat
    /// dropped or failed always reach it.
    pub fn level(mut self, level: Level) -> Self {
        self.level = Some(level);
        self
    }

    /// The chat's id.
    pub fn id(&self) -> &ChatId {
        &self.id
    }
}

impl From<i64> for Chat {
    fn from(id: i64) -> Self {
        Chat::new(id)
    }
}

impl From<&str> for Chat {
    fn from(id: &str) -> Self {
        Chat::new(id)
    }
}

impl From<String> for Chat {
    fn from(id: String) -> Self {
        Chat::new(id)
    }
}

impl From<ChatId> for Chat {
    fn from(id: ChatId) -> Self {
        Chat::new(id)
    }
}

fn err(key: &'static str, problem: impl fmt::Display) -> BuildError {
    BuildError::new("watchbell-telegram", key, problem)
}

impl SinkOptions for TelegramBuilder {
    fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }
}

/// Configures a Telegram layer; see the [crate docs](crate) for the defaults.
pub struct TelegramBuilder {
    token: Secret<String>,
    chats: Vec<Chat>,
    level: Level,
    notify: Level,
    app: Option<String>,
    api_base: String,
    split: bool,
    max_pieces: usize,
    protect: bool,
    options: Options,
    format: Option<Arc<dyn Format>>,
    ticket_link: Option<watchbell_core::TicketLink>,
}

impl fmt::Debug for TelegramBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramBuilder")
            .field("token", &self.token)
            .field("chats", &self.chats)
            .field("level", &self.level)
            .field("notify_level", &self.notify)
            .field("app", &self.app)
            .field("api_base", &redact_url(&self.api_base))
            .field("split_long", &self.split)
            .field("max_pieces", &self.max_pieces)
            .field("options", &self.options)
            .field("custom_format", &self.format.is_some())
            .field("ticket_link", &self.ticket_link)
            .finish_non_exhaustive()
    }
}

impl TelegramBuilder {
    /// Adds a destination: an id (`-1001234567890_i64`), a `"@channel"`, or a [`Chat`] with its
    /// own level and topic. At least one is required.
    pub fn chat(mut self, chat: impl Into<Chat>) -> Self {
        self.chats.push(chat.into());
        self
    }

    /// Sends to this forum topic of the chat (shorthand for `chat(Chat::new(id).topic(t))`).
    pub fn topic(self, chat: impl Into<ChatId>, message_thread_id: i64) -> Self {
        self.chat(Chat::new(chat).topic(message_thread_id))
    }

    /// The least severe level sent, for chats without their own (default `WARN`).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// Messages holding a record of this level or more severe ring; the others are sent with
    /// `disable_notification` (default `ERROR`: warnings arrive silently).
    pub fn notify_level(mut self, level: Level) -> Self {
        self.notify = level;
        self
    }

    /// The application's name, shown in the headline (default: the record's target).
    pub fn app(mut self, name: impl Into<String>) -> Self {
        self.app = Some(name.into());
        self
    }

    /// The Bot API's base URL (default [`DEFAULT_API_BASE`]); tests point it at a fake.
    pub fn api_base(mut self, url: impl Into<String>) -> Self {
        self.api_base = url.into().trim_end_matches('/').to_owned();
        self
    }

    /// Sends a record longer than the limit as several messages, each valid HTML on its own,
    /// instead of cutting it (default: cut, with a marker). The pieces keep the chat's pace
    /// like other messages, at most [`max_pieces`](Self::max_pieces) per record; the record
    /// counts as delivered when its last piece is.
    pub fn split_long(mut self, split: bool) -> Self {
        self.split = split;
        self
    }

    /// With [`split_long`](Self::split_long): at most `n` messages for one record (default 10,
    /// about 40,000 characters; at least 1). The last of them holds as much of the rest as
    /// fits, cut with the marker `…[truncated]`.
    pub fn max_pieces(mut self, n: usize) -> Self {
        self.max_pieces = n.max(1);
        self
    }

    /// Sets `protect_content` (no forwarding or saving) on every message (default off).
    pub fn protect_content(mut self, on: bool) -> Self {
        self.protect = on;
        self
    }

    /// Your own text per record (a [`Template`](watchbell_core::format::Template) or a closure);
    /// it is HTML-escaped and replaces the default block.
    pub fn format(mut self, format: impl Format) -> Self {
        self.format = Some(Arc::new(format));
        self
    }

    /// Links every alert to its ticket in the ticket viewer (see [the crate docs](crate#ticket-links)):
    /// the default layout gets a line `<a href="…">Open the ticket</a>` under the headline, a
    /// custom [`format`](TelegramBuilder::format) can write `{ticket_url}`, and each delivered
    /// record is told to the ticketing layer's journal
    /// ([`watchbell_core::notified`]) so that the ticket page lists this chat.
    pub fn ticket_link(mut self, link: watchbell_core::TicketLink) -> Self {
        self.ticket_link = Some(link);
        self
    }

    /// Checks the configuration, starts one delivery worker per chat, and returns the layer
    /// and the [`Guard`] that flushes it.
    pub fn build<S>(self) -> Result<(TelegramFiltered<S>, Guard), BuildError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let (root, min) = self.build_parts()?;
        Ok(layer(root, min))
    }

    /// Like [`build`](TelegramBuilder::build), but returns the handler chain (rate limit and
    /// deliveries) instead of a layer, to stand behind another watchbell handler.
    pub fn build_handler(self) -> Result<(Arc<dyn Handler>, Guard), BuildError> {
        let (root, _) = self.build_parts()?;
        let guard = Guard::new(Arc::clone(&root));
        Ok((root, guard))
    }

    /// The root handler and the least severe level any chat takes.
    fn build_parts(self) -> Result<(Arc<dyn Handler>, Level), BuildError> {
        let token = self.token.expose();
        let (id, secret) = token.split_once(':').unwrap_or(("", ""));
        if id.is_empty()
            || !id.bytes().all(|b| b.is_ascii_digit())
            || secret.is_empty()
            || !secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(err(
                "bot_token",
                "expected the form 123456:ABC-DEF (digits, a colon, letters, digits, _ or -)",
            ));
        }
        if self.chats.is_empty() {
            return Err(err("chat", "at least one chat is required"));
        }
        for c in &self.chats {
            if let ChatId::Username(u) = &c.id {
                let ok = u
                    .strip_prefix('@')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
                if !ok {
                    return Err(err("chat", format!("{u:?} is neither a numeric chat id nor an @channelusername")));
                }
            }
        }
        // One client per chat: a client's pooled connections belong to the runtime of the
        // worker thread that opened them, so workers must not share one.
        let new_client = || self.options.http_client().map_err(|e| err("http", e));
        new_client()?.check_url(&format!("{}/", self.api_base)).map_err(|e| err("api_base", e))?;
        let cx = FormatContext { app: self.app.clone(), host: None, ticket_link: self.ticket_link.clone() };
        let mut fan = FanOut::new();
        let mut min = Level::ERROR;
        let several = self.chats.len() > 1;
        for chat in self.chats {
            let level = chat.level.unwrap_or(self.level);
            min = min.max(level);
            let pace = match self.options.pace {
                AUTO_PACE if chat.id.is_group() => Duration::from_secs(3),
                AUTO_PACE => Duration::from_secs(1),
                pace => pace,
            };
            let sink = TelegramSink {
                client: new_client()?,
                base: self.api_base.clone(),
                token: self.token.clone(),
                chat: chat.id.clone(),
                thread: chat.topic,
                notify: self.notify,
                split: self.split.then_some(self.max_pieces),
                protect: self.protect,
                render: Renderer { app: self.app.clone(), format: self.format.clone(), cx: cx.clone() },
                migration_told: false,
                resume: None,
                destination: if several { format!("telegram:{}", chat.id) } else { "telegram".to_owned() },
            };
            let delivery = self
                .options
                .delivery(format!("telegram:{}", chat.id), sink)
                .pace(pace)
                .spawn()
                .map_err(|e| err("worker", format!("cannot start the delivery thread: {e}")))?;
            let select = Select::new(delivery, move |r: &Record| r.level <= level);
            fan = fan.with(Arc::new(select));
        }
        Ok((self.options.limited("telegram", fan), min))
    }
}

/// Entry points for fuzz targets and property tests: the HTML renderer, cutter and splitter as
/// the sink uses them. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use watchbell_core::format::FormatContext;
    use watchbell_core::Record;

    /// The HTML block of `record` with the default layout.
    pub fn render(record: &Record) -> String {
        crate::html::Renderer { app: None, format: None, cx: FormatContext::new("app".to_owned()) }.record(record)
    }

    /// `html` cut to at most `limit` UTF-16 units with `marker` at the end, tags closed.
    pub fn truncate_html(html: &str, limit: usize, marker: &str) -> String {
        crate::html::truncate_html(html, limit, marker)
    }

    /// `html` split into pieces of at most `limit` UTF-16 units, each valid on its own.
    pub fn split_html(html: &str, limit: usize) -> Vec<String> {
        crate::html::split_html(html, limit)
    }

    /// The text Telegram shows for `html`: tags removed, entities decoded.
    pub fn plain_text(html: &str) -> String {
        crate::html::plain_text(html)
    }
}
