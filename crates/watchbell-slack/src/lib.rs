//! # watchbell-slack
//!
//! A `tracing` layer that alerts to Slack through incoming webhooks: several webhooks, each with
//! its own set of levels (a record goes to every webhook whose levels include it), delivered on
//! watchbell's own threads, paced to Slack's one message per second per webhook, retried, rate
//! limited per callsite, and never slowing the application.
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//! use watchbell_slack::{SlackLayer, Webhook};
//! use watchbell_core::Level;
//!
//! let (layer, guard) = SlackLayer::builder()
//!     .app("billing")
//!     .environment("prod")
//!     // Errors to the on-call channel, warnings and errors to the team's channel.
//!     .webhook(Webhook::new("https://hooks.slack.com/services/T000/B000/XXXX").levels([Level::ERROR]))
//!     .webhook(
//!         Webhook::new("https://hooks.slack.com/services/T000/B111/YYYY")
//!             .name("team")
//!             .levels([Level::ERROR, Level::WARN])
//!             .username("billing-bot")
//!             .icon_emoji(":rotating_light:"),
//!     )
//!     .build()
//!     .expect("valid Slack configuration");
//! tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).expect("the only subscriber");
//!
//! tracing::error!(invoice = 1042, error = "card declined", "payment failed");
//! // At exit: deliver what is queued, waiting at most 5 s (dropping the guard does the same).
//! guard.shutdown(std::time::Duration::from_secs(5));
//! ```
//!
//! ## Several webhooks
//!
//! Add one [`Webhook`] per destination with [`SlackBuilder::webhook`]. Each has its own
//! [`levels`](Webhook::levels) (default: ERROR and WARN), its own delivery queue and pace (a slow
//! or failing webhook never holds the others up), and the legacy overrides `channel`, `username`
//! and `icon_emoji` (coaster's `LOG_SLACK_WEBHOOKS = [{levelnames, url, channel?, username?,
//! icon_emoji?}]`; Slack apps' webhooks ignore these three). The layer captures events down to
//! the most verbose level any webhook wants. Give webhooks a [`name`](Webhook::name): it names
//! their [`Stats`](watchbell_core::Stats) (`slack-<name>`) and the [`RenderContext`].
//!
//! ## The default message
//!
//! ```json
//! {"text": "*ERROR* in billing (prod): payment failed",
//!  "attachments": [{"color": "#E01E5A", "blocks": [
//!    {"type": "section", "text": {"type": "mrkdwn", "text": ":red_circle: *ERROR* in billing (prod): payment failed"}},
//!    {"type": "section", "text": {"type": "mrkdwn", "text": "```\ninvoice       1042\nrequest.id    7\n```"}},
//!    {"type": "section", "text": {"type": "mrkdwn", "text": "```\nerror: card declined\n```"}},
//!    {"type": "context", "elements": [{"type": "mrkdwn", "text": "`billing::pay` · `src/pay.rs:42` · <!date^…|2026-…Z> · :mute: 3 similar suppressed"}]}]}]}
//! ```
//!
//! - `text` is the notification fallback, `*LEVEL* in app: message` (cut to 3,000 chars).
//! - The level is shown by the colour bar of a legacy `attachments` entry wrapping the blocks
//!   (Block Kit has no colour of its own) and by an emoji.
//! - The event's fields and span fields (`span.field`) form a compact table in a code block;
//!   the fields `error`, `error.sources` and `backtrace` go into a code block of their own.
//! - The context line has the target, `file:line`, the time (Slack shows it in the reader's
//!   time zone, with the RFC 3339 time as fallback) and "N similar suppressed" when the rate
//!   limit withheld records of the same callsite before this one. Counts still pending at
//!   flush or shutdown arrive as the last withheld record itself, marked "N similar suppressed,
//!   the last one shown".
//! - Every piece of log text is escaped (`&` `<` `>`, so `<!channel>` in a message pings
//!   nobody); code blocks hold raw text (still `&<>`-escaped, and a ```` ``` ```` in the text is
//!   broken with a zero-width space so it cannot end the block); message text outside code
//!   blocks may still be shown bold/italic by Slack's `*`/`_` (mrkdwn has no escape for them).
//! - Every text is cut at a character boundary to Slack's limits with the visible marker
//!   `…[truncated]` (limits counted in UTF-16 units, never less than Slack's count).
//! - Records queued together for one webhook (a burst arriving while the webhook is paced, or a
//!   group/escalation batch) are coalesced: one attachment per record, as many per message as
//!   fit in 50 blocks and 40,000 characters; the rest go in further messages, one per pace:
//!   the webhook's delivery waits the pace between them (cut short by shutdown), and a failed
//!   message is retried alone, the messages already sent are never sent again.
//!
//! A custom renderer ([`SlackBuilder::renderer`]) gets the records of one delivery and the
//! [`RenderContext`] and returns the whole JSON body (it should include `text`); `channel`,
//! `username` and `icon_emoji` of the webhook are added when the body has none. A panicking
//! renderer is caught and counted (`panicked` in stats); the next message goes on.
//!
//! ## Ticket links
//!
//! With [`ticket_link`](SlackBuilder::ticket_link) (what `[ticketing] public_url` sets in the
//! umbrella crate's config), the context line of each record ends with
//! `:ticket: <https://tickets.example.com/fp/APP/FINGERPRINT|Open the ticket>`: a link to the
//! record's ticket in `watchbell-tickets serve`. The URL is percent-encoded where a URL must be
//! (spaces, quotes, `<`, `>`, `|` never reach the message) and `&`-escaped for Slack. A custom
//! renderer finds the link in [`RenderContext::ticket_link`]. The ticket page lists the webhook
//! as `slack`, or `slack:NAME` for a [named](Webhook::name) one.
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
//! | setting | default | change with |
//! |---|---|---|
//! | levels per webhook | ERROR, WARN | [`Webhook::levels`] |
//! | pace per webhook | 1 message / s (every request, retries included; bursts coalesce) | [`pace`](SinkOptions::pace) |
//! | rate limit per callsite fingerprint | 1 record per 60 s, the rest counted and shown as "N similar suppressed" with the next one or at flush | [`rate_limit`](SinkOptions::rate_limit), [`no_rate_limit`](SinkOptions::no_rate_limit) |
//! | HTTP timeout | 10 s per request, 5 s to connect | [`timeout`](SinkOptions::timeout) |
//! | retries | 429 → after `Retry-After`; 5xx, timeouts, connection errors → backoff 1 s doubling to 60 s, for up to 10 min | [`retry`](SinkOptions::retry) |
//! | other 4xx (`invalid_payload`, `channel_not_found`, `channel_is_archived`, …) | permanent: counted as failed, printed once on stderr, not retried | — |
//! | queue per webhook | 10,000 records | [`queue_records`](SinkOptions::queue_records), [`overflow`](SinkOptions::overflow) |
//! | records per delivery | 100 (split into messages of ≤ 50 blocks) | — |
//! | limits | section text 3,000, `text` 40,000 (fallback cut to 3,000), 50 blocks | — |
//! | plain `http://` | loopback only | [`allow_plain_http`](SinkOptions::allow_plain_http) |
//!
//! The common settings (pace, rate limit, timeout, retries, queue) are the methods of
//! [`SinkOptions`], the same in every watchbell sink crate: `use watchbell_core::SinkOptions;`.
//!
//! The rate limit is 1 per 60 s (between coaster's 5 minutes and Logbook's 60 s): an error
//! repeating in a loop shows up once a minute with its count, not hundreds of times.
//!
//! Webhook URLs are secrets: they are kept in [`Secret`] and appear in `Debug` output and error
//! messages only as `https://hooks.slack.com/…`.
#![deny(missing_docs)]

mod render;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use watchbell_core::handler::Select;
use watchbell_core::http::{HttpClient, Method};
use watchbell_core::options::{layer, Options, SinkLayer};
use watchbell_core::secret::{redact_url, Secret};
use watchbell_core::{Batch, FanOut, Guard, Handler, Level, Outcome, Record, Retry, Sink};
pub use watchbell_core::{BuildError, SinkOptions};

pub use render::{
    code_block, escape_truncate, level_style, render_default, RenderContext, BLOCK_LIMIT, FALLBACK_LIMIT, MARKER,
    MESSAGE_TEXT_BUDGET, SECTION_TEXT_LIMIT, TEXT_LIMIT,
};

/// The layer [`SlackBuilder::build`] returns: watchbell's capture layer behind its per-layer
/// filter. Add it to a registry with `.with(layer)`.
pub type SlackCapture<S> = SinkLayer<S>;

/// A custom renderer: the records of one delivery and the context → the JSON body of one message.
pub type Renderer = Arc<dyn Fn(&[Record], &RenderContext) -> Json + Send + Sync>;

/// The namespace of [`SlackLayer::builder`].
#[derive(Debug)]
pub struct SlackLayer(());

impl SlackLayer {
    /// A builder with no webhook yet, app name `app`, and the defaults of the
    /// [crate docs](crate#defaults).
    pub fn builder() -> SlackBuilder {
        SlackBuilder {
            webhooks: Vec::new(),
            app: "app".to_owned(),
            environment: None,
            renderer: None,
            ticket_link: None,
            options: Options::new()
                .rate_limit(1, Duration::from_secs(60))
                .pace(Duration::from_secs(1))
                .retry(Retry { initial: Duration::from_secs(1), ..Retry::default() }),
        }
    }
}

/// One incoming webhook and the levels it receives.
#[derive(Clone)]
pub struct Webhook {
    url: Secret<String>,
    name: Option<String>,
    levels: Vec<Level>,
    channel: Option<String>,
    username: Option<String>,
    icon_emoji: Option<String>,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &redact_url(self.url.expose()))
            .field("name", &self.name)
            .field("levels", &self.levels)
            .field("channel", &self.channel)
            .field("username", &self.username)
            .field("icon_emoji", &self.icon_emoji)
            .finish()
    }
}

impl Webhook {
    /// A webhook at `url` (`https://hooks.slack.com/services/T…/B…/…`), receiving ERROR and WARN.
    pub fn new(url: impl Into<String>) -> Self {
        Webhook {
            url: Secret::new(url.into()),
            name: None,
            levels: vec![Level::ERROR, Level::WARN],
            channel: None,
            username: None,
            icon_emoji: None,
        }
    }

    /// The exact set of levels this webhook receives (coaster's `levelnames`).
    pub fn levels(mut self, levels: impl IntoIterator<Item = Level>) -> Self {
        self.levels = levels.into_iter().collect();
        self
    }

    /// `level` and every more severe level (`min_level(Level::WARN)` = WARN and ERROR).
    pub fn min_level(self, level: Level) -> Self {
        let all = [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE];
        self.levels(all.into_iter().filter(|l| *l <= level))
    }

    /// The name in stats and in the [`RenderContext`] (default `webhook-<index>`, from 0).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The legacy `channel` override (`#alerts`).
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// The legacy `username` override.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The legacy `icon_emoji` override (`:rotating_light:`).
    pub fn icon_emoji(mut self, icon: impl Into<String>) -> Self {
        self.icon_emoji = Some(icon.into());
        self
    }
}

/// Builds a Slack layer. See the [crate docs](crate) for the defaults.
#[derive(Clone)]
pub struct SlackBuilder {
    webhooks: Vec<Webhook>,
    app: String,
    environment: Option<String>,
    renderer: Option<Renderer>,
    options: Options,
    ticket_link: Option<watchbell_core::TicketLink>,
}

impl fmt::Debug for SlackBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackBuilder")
            .field("webhooks", &self.webhooks)
            .field("app", &self.app)
            .field("environment", &self.environment)
            .field("renderer", &self.renderer.as_ref().map(|_| "custom"))
            .field("ticket_link", &self.ticket_link)
            .field("options", &self.options)
            .finish()
    }
}

fn err(key: impl Into<String>, message: impl fmt::Display) -> BuildError {
    BuildError::new("watchbell-slack", key, message)
}

impl SinkOptions for SlackBuilder {
    fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }
}

impl SlackBuilder {
    /// Adds a webhook.
    pub fn webhook(mut self, webhook: Webhook) -> Self {
        self.webhooks.push(webhook);
        self
    }

    /// The application name shown in every message (default `app`).
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = app.into();
        self
    }

    /// An environment or host label shown after the app name (`billing (prod)`).
    pub fn environment(mut self, label: impl Into<String>) -> Self {
        self.environment = Some(label.into());
        self
    }

    /// Links every alert to its ticket in the ticket viewer (see
    /// [the crate docs](crate#ticket-links)): the default message's context line gets an
    /// "Open the ticket" link, a custom renderer finds the link in
    /// [`RenderContext::ticket_link`], and each delivered record is told to the ticketing
    /// layer's journal ([`watchbell_core::notified`]) so that the ticket page lists this webhook.
    pub fn ticket_link(mut self, link: watchbell_core::TicketLink) -> Self {
        self.ticket_link = Some(link);
        self
    }

    /// Replaces the default message with `f(records, context)` → the JSON body. It gets the
    /// records of one delivery (one or more) and is called on the webhook's worker thread.
    pub fn renderer<F>(mut self, f: F) -> Self
    where
        F: Fn(&[Record], &RenderContext) -> Json + Send + Sync + 'static,
    {
        self.renderer = Some(Arc::new(f));
        self
    }

    /// Builds the pipeline and returns its root handler (rate limit → per-webhook level
    /// selection → per-webhook delivery) and the guard, without a layer: for feeding records
    /// from other handlers, or for tests.
    pub fn build_handler(self) -> Result<(Arc<dyn Handler>, Guard), BuildError> {
        let (root, _) = self.build_parts()?;
        let guard = Guard::new(Arc::clone(&root));
        Ok((root, guard))
    }

    fn build_parts(self) -> Result<Parts, BuildError> {
        if self.webhooks.is_empty() {
            return Err(err("webhooks", "at least one webhook is needed"));
        }
        if self.app.trim().is_empty() {
            return Err(err("app", "the app name is empty"));
        }
        // One client per webhook: a client's pooled connections belong to the runtime of the
        // worker that opened them, and each delivery worker has its own runtime.
        let new_client = || self.options.http_client().map_err(|e| err("http", e));
        let mut fan = FanOut::new();
        let mut most_verbose = Level::ERROR;
        let mut names = Vec::new();
        for (i, w) in self.webhooks.into_iter().enumerate() {
            let key = format!("webhooks[{i}]");
            let client = new_client()?;
            client.check_url(w.url.expose()).map_err(|e| err(format!("{key}.url"), e))?;
            if w.levels.is_empty() {
                return Err(err(format!("{key}.levels"), "no level: the webhook would receive nothing"));
            }
            let destination = match &w.name {
                Some(n) => format!("slack:{n}"),
                None => "slack".to_owned(),
            };
            let name = w.name.clone().unwrap_or_else(|| format!("webhook-{i}"));
            if names.contains(&name) {
                return Err(err(format!("{key}.name"), format!("the name {name:?} is used twice")));
            }
            names.push(name.clone());
            most_verbose = w.levels.iter().copied().fold(most_verbose, Level::max);
            let sink = SlackSink {
                client,
                url: w.url.clone(),
                ctx: RenderContext {
                    app: self.app.clone(),
                    environment: self.environment.clone(),
                    webhook: name.clone(),
                    ticket_link: self.ticket_link.clone(),
                },
                destination,
                channel: w.channel.clone(),
                username: w.username.clone(),
                icon_emoji: w.icon_emoji.clone(),
                renderer: self.renderer.clone(),
            };
            let delivery = self
                .options
                .delivery(format!("slack-{name}"), sink)
                .batch_records(100)
                .spawn()
                .map_err(|e| err(key.clone(), format!("cannot start the delivery thread: {e}")))?;
            fan = fan.with(Arc::new(Select::levels(delivery, w.levels.clone())));
        }
        Ok((self.options.limited("slack", fan), most_verbose))
    }

    /// Builds the layer and its [`Guard`]. Keep the guard until the end of `main`: dropping it
    /// delivers what is queued (waiting at most 5 s).
    pub fn build<S>(self) -> Result<(SlackCapture<S>, Guard), BuildError>
    where
        S: tracing_core::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let (root, level) = self.build_parts()?;
        Ok(layer(root, level))
    }
}

/// The root handler and the most verbose level any webhook wants.
type Parts = (Arc<dyn Handler>, Level);

/// The protocol to one webhook.
struct SlackSink {
    client: HttpClient,
    url: Secret<String>,
    ctx: RenderContext,
    channel: Option<String>,
    username: Option<String>,
    icon_emoji: Option<String>,
    renderer: Option<Renderer>,
    /// The name of this webhook on the ticket page's list of notified destinations.
    destination: String,
}

impl fmt::Debug for SlackSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackSink")
            .field("url", &redact_url(self.url.expose()))
            .field("webhook", &self.ctx.webhook)
            .finish_non_exhaustive()
    }
}

impl SlackSink {
    fn decorate(&self, mut body: Json) -> Json {
        if let Some(obj) = body.as_object_mut() {
            for (k, v) in [("channel", &self.channel), ("username", &self.username), ("icon_emoji", &self.icon_emoji)] {
                if let Some(v) = v {
                    obj.entry(k).or_insert_with(|| Json::String(v.clone()));
                }
            }
        }
        body
    }

    /// Posts one message (the delivery keeps the pace between requests).
    fn post(&mut self, body: &Json) -> Outcome {
        let payload = serde_json::to_vec(body).unwrap_or_default();
        let url = self.url.expose();
        let req = self.client.request(Method::POST, url).header("content-type", "application/json").body(payload);
        match self.client.send(req, url) {
            Ok(resp) => resp.outcome(&format!("Slack webhook {} ({})", self.ctx.webhook, redact_url(url))),
            Err(e) => e.outcome(),
        }
    }
}

impl Sink for SlackSink {
    /// Sends the batch's first message; when it does not hold every record, the delivery calls
    /// again with the rest once the pace allows.
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        let total = batch.records.len();
        if total == 0 {
            return Outcome::Delivered;
        }
        let (body, n) = match &self.renderer {
            Some(f) => (f(&batch.records, &self.ctx), total),
            None => match render::render_first(&batch.records, &self.ctx) {
                Some(first) => first,
                None => return Outcome::Delivered,
            },
        };
        let body = self.decorate(body);
        let outcome = self.post(&body);
        if matches!(outcome, Outcome::Delivered) {
            if let Some(link) = &self.ctx.ticket_link {
                link.notified(&self.destination, &batch.records[..n.min(total)]);
            }
        }
        match outcome {
            Outcome::Delivered if n < total => Outcome::More { delivered: n },
            outcome => outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_errors_name_the_key_and_hide_the_secret() {
        let e = SlackLayer::builder().build_handler().err().unwrap();
        assert_eq!(e.key, "webhooks");
        let e = SlackLayer::builder()
            .webhook(Webhook::new("http://hooks.example.com/services/T1/B2/s3cr3t"))
            .build_handler()
            .err()
            .unwrap();
        assert_eq!(e.key, "webhooks[0].url");
        assert!(!e.to_string().contains("s3cr3t") && !format!("{e:?}").contains("s3cr3t"), "{e}");
        let e = SlackLayer::builder()
            .webhook(Webhook::new("https://hooks.slack.com/services/T1/B2/s3cr3t").levels([]))
            .build_handler()
            .err()
            .unwrap();
        assert_eq!(e.key, "webhooks[0].levels");
    }

    #[test]
    fn min_level() {
        assert_eq!(Webhook::new("x").min_level(Level::WARN).levels, vec![Level::ERROR, Level::WARN]);
    }
}
