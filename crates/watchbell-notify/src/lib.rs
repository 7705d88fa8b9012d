//! # watchbell-notify
//!
//! Push, chat and paging services for tracing: [ntfy](https://ntfy.sh) (self-hostable push to
//! phones and desktops), Pushover, Discord, Microsoft Teams, Google Chat, Mattermost,
//! Rocket.Chat, PagerDuty and Opsgenie. Each is a layer with watchbell's delivery behind it: one
//! request per alert from watchbell's own thread, paced, retried on 429/5xx with the service's
//! requested delay, rate limited per callsite, counted. One URL per destination
//! ([`from_url`], apprise's style) or a builder per service.
//!
//! ```no_run
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//! use watchbell_notify::NotifyLayer;
//!
//! let (ntfy, g1) = NotifyLayer::ntfy("https://ntfy.sh", "billing-alerts").app("billing").build().unwrap();
//! let (pd, g2) = NotifyLayer::pagerduty("0123456789abcdef0123456789abcdef").build().unwrap();
//! let (chat, g3) = watchbell_notify::from_url("mmosts://chat.example.com/xr3j5x3p4pfk7qz7").unwrap().build().unwrap();
//! tracing_subscriber::registry().with(ntfy).with(pd).with(chat).init();
//! tracing::error!(invoice = 42, "payment failed"); // a push, one incident per callsite, a post
//! g1.join(g2).join(g3).shutdown(Duration::from_secs(5));
//! ```
//!
//! | service | request | limits and escaping | answers |
//! |---|---|---|---|
//! | ntfy | `POST {server}` JSON: `topic`, `title` (`[app] LEVEL target`), `message` (message, fields, location), `priority` 5/4/3/2 by level, `tags`, optional `click`; `Authorization: Bearer` with [`token`](NotifyBuilder::token) | title 250 chars, one line; message 4,000 bytes; plain text | 429 and 5xx retried (`Retry-After`), other 4xx permanent |
//! | Pushover | `POST {api}/1/messages.json` form: `token`, `user`, `title`, `message`, `priority` 1/0/−1/−2 by level (ERROR 2 with [`emergency`](NotifyBuilder::emergency): `retry` ≥ 30 s, `expire` ≤ 3 h), `timestamp`, optional `url` | message 1,024 chars, never empty; title 250; url 512; plain text | 429 (the app's monthly quota) waits until `X-Limit-App-Reset`; 5xx retried; other 4xx permanent |
//! | Discord | `POST {webhook}` JSON: one embed (title, description, up to 25 inline fields, colour by level, time, location footer), `allowed_mentions: {parse: []}` | embed limits (256/4,096/256/1,024/2,048) and 6,000 chars in all, cut with `…[truncated]`; markdown escaped, `@everyone` disarmed | 429 waits the body's `retry_after` (seconds); 5xx retried; other 4xx permanent |
//! | Teams | `POST {workflow URL}`: `{"type":"message","attachments":[Adaptive Card 1.4]}` — heading coloured by level, message, fields in monospace, footer | body ≤ 27,000 bytes (Teams: ~28 KB); all log text in `TextRun`s, shown as typed (no markdown, no mentions) | 202 delivered; 429 and 5xx retried; other 4xx permanent |
//! | Google Chat | `POST {webhook}&threadKey={fingerprint}&messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD`: `text` (heading) and one `cardsV2` card (header, message, up to 20 fields) — one thread per callsite | 32,000 bytes; card text HTML-escaped; `<` in `text` broken so `<users/all>` mentions nobody | 429 (`RESOURCE_EXHAUSTED`) and 5xx retried; other 4xx permanent |
//! | Mattermost, Rocket.Chat | `POST {webhook}`: Slack's attachment format (`text` heading; one attachment with the level's colour, message, up to 20 short fields, footer, `ts`), optional `channel` and `username` (Rocket.Chat: `alias`) | text 16,383 (Mattermost) / 5,000 (Rocket.Chat) chars; markdown escaped; `@channel`/`@all`/`@here` disarmed | 429 and 5xx retried; other 4xx permanent |
//! | PagerDuty | `POST {api}/v2/enqueue`: `trigger` with `dedup_key` = the callsite fingerprint, so a storm is one incident; `summary`, `severity` (`error`/`warning`/`info`), `source`, `component`, `group`, `custom_details` | summary 1,024 chars, one line | 202 delivered; 429 and 5xx retried; 400 permanent |
//! | Opsgenie | `POST {api}/v2/alerts` with `Authorization: GenieKey`: `alias` = the callsite fingerprint (a storm is one alert), `message`, `description`, `details`, `entity` (target), `source`, `priority` P2/P3/P4/P5 by level, `tags` | message 130 chars, one line; alias 512; description 15,000; details 8,000 in all; source 100 | 202 delivered; 429 and 5xx retried; other 4xx permanent |
//!
//! PagerDuty's `custom_details` and Opsgenie's `details` hold the record's fields and the sink's
//! own `location` and `suppressed`; a field of one of those names keeps it, and the sink's goes
//! under `watchbell.location` / `watchbell.suppressed`.
//!
//! A PagerDuty incident or an Opsgenie alert is resolved (closed) by handing the layer's handler
//! a [`resolve_record`]`(dedup_key)`; the other services ignore such a record. The key is the
//! callsite fingerprint, which is also the fingerprint of the callsite's error ticket
//! (watchbell-ticketing, without a hash salt): `watchbell-tickets solve ID --resolve
//! pagerduty://ROUTING_KEY` solves the ticket and resolves its incident (the `notify` feature of
//! watchbell-ticketing, on in the umbrella's `full`). Opsgenie closes through
//! `POST /v2/alerts/{alias}/close?identifierType=alias`; an alias it does not know (closed
//! already) counts as done.
//!
//! Defaults: level `ERROR`; 1 alert per 60 s per callsite; a pace of 1 s (ntfy, Pushover,
//! Teams, Google Chat — 60 per minute per space —, Mattermost, Rocket.Chat) or 500 ms (Discord:
//! 5 requests per 2 s per webhook; PagerDuty; Opsgenie); a 10 s timeout. Webhook URLs, routing
//! keys, app tokens, user keys, API keys and signatures never appear in `Debug`, errors, stats
//! or stderr.
#![deny(missing_docs)]

mod chat;
mod paging;
mod service;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use tracing_core::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use watchbell_core::format::FormatContext;
use watchbell_core::handler::Handler;
use watchbell_core::http::{HttpClient, Method};
use watchbell_core::options::Options;
use watchbell_core::secret::{redact_url, Secret};
use watchbell_core::{Batch, BuildError, Guard, Level, Outcome, Record, Sink, SinkLayer, SinkOptions, Value};

pub use chat::{
    google_chat_body, slack_compatible_body, teams_body, SlackCompatible, GOOGLE_CHAT_MAX_BODY, MATTERMOST_MAX_TEXT,
    ROCKETCHAT_MAX_TEXT, TEAMS_MAX_BODY,
};
pub use paging::{
    opsgenie_body, pushover_form, Emergency, OPSGENIE_MAX_ALIAS, OPSGENIE_MAX_DESCRIPTION, OPSGENIE_MAX_DETAILS,
    OPSGENIE_MAX_ENTITY, OPSGENIE_MAX_MESSAGE, OPSGENIE_MAX_SOURCE, PUSHOVER_MAX_EXPIRE, PUSHOVER_MAX_MESSAGE,
    PUSHOVER_MAX_TITLE, PUSHOVER_MAX_URL, PUSHOVER_MIN_RETRY,
};
pub use service::{
    discord_body, escape_discord, escape_markdown, ntfy_body, pagerduty_body, DISCORD_LIMITS, DISCORD_MAX_FIELDS,
    DISCORD_MAX_TOTAL, NTFY_MAX_MESSAGE, NTFY_MAX_TITLE, PAGERDUTY_MAX_SUMMARY,
};

const CRATE: &str = "watchbell-notify";

/// PagerDuty's Events API.
pub const PAGERDUTY_API: &str = "https://events.pagerduty.com";
/// Pushover's API.
pub const PUSHOVER_API: &str = "https://api.pushover.net";
/// Opsgenie's API (EU accounts: `https://api.eu.opsgenie.com`).
pub const OPSGENIE_API: &str = "https://api.opsgenie.com";

/// A record that, handed to a PagerDuty or Opsgenie layer's handler, resolves (closes) the
/// incident or alert of `dedup_key` (a callsite fingerprint in hex, as the triggers carry it).
/// The other services ignore it.
///
/// ```
/// let r = watchbell_notify::resolve_record("0ae7b87b0fde6fa6");
/// assert_eq!(r.fields.get("alert.dedup_key").and_then(|v| v.as_str()), Some("0ae7b87b0fde6fa6"));
/// ```
pub fn resolve_record(dedup_key: impl Into<String>) -> Record {
    let mut r = Record::new(Level::ERROR, "watchbell", "resolved");
    r.fields.set(service::RESOLVE_FIELD, Value::Bool(true));
    r.fields.set(service::DEDUP_FIELD, Value::Str(dedup_key.into()));
    r
}

#[derive(Clone)]
enum Service {
    Ntfy {
        server: String,
        topic: String,
        token: Option<Secret<String>>,
        click: Option<String>,
    },
    Discord {
        webhook: Secret<String>,
    },
    PagerDuty {
        routing_key: Secret<String>,
        api: String,
    },
    Pushover {
        token: Secret<String>,
        user: Secret<String>,
        emergency: Option<Emergency>,
        click: Option<String>,
        api: String,
    },
    Opsgenie {
        key: Secret<String>,
        api: String,
    },
    Teams {
        webhook: Secret<String>,
    },
    GoogleChat {
        webhook: Secret<String>,
        thread: bool,
    },
    SlackCompatible {
        kind: SlackCompatible,
        webhook: Secret<String>,
        channel: Option<String>,
        username: Option<String>,
    },
}

impl Service {
    fn name(&self) -> &'static str {
        match self {
            Service::Ntfy { .. } => "ntfy",
            Service::Discord { .. } => "discord",
            Service::PagerDuty { .. } => "pagerduty",
            Service::Pushover { .. } => "pushover",
            Service::Opsgenie { .. } => "opsgenie",
            Service::Teams { .. } => "teams",
            Service::GoogleChat { .. } => "google-chat",
            Service::SlackCompatible { kind: SlackCompatible::Mattermost, .. } => "mattermost",
            Service::SlackCompatible { kind: SlackCompatible::RocketChat, .. } => "rocketchat",
        }
    }

    /// Every secret of the service: scrubbed from whatever a peer answers. For a webhook, the
    /// whole URL, its path and query, and every path segment or query value long enough to be
    /// a key (a peer may quote any of them alone).
    fn secrets(&self) -> Vec<String> {
        fn url_parts(url: &str) -> Vec<String> {
            let mut v = vec![url.to_owned()];
            let rest = url.split_once("://").map_or(url, |(_, r)| r);
            if let Some(i) = rest.find('/') {
                let tail = &rest[i..];
                v.push(tail.to_owned());
                let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
                v.extend(path.split('/').filter(|p| p.len() >= 10).map(str::to_owned));
                for pair in query.split('&') {
                    let value = pair.split_once('=').map_or(pair, |(_, v)| v);
                    if value.len() >= 10 {
                        v.push(value.to_owned());
                    }
                }
            }
            v
        }
        match self {
            Service::Ntfy { topic, token, .. } => {
                let mut v = vec![topic.clone()];
                if let Some(t) = token {
                    v.push(t.expose().clone());
                }
                v
            }
            Service::Discord { webhook }
            | Service::Teams { webhook }
            | Service::GoogleChat { webhook, .. }
            | Service::SlackCompatible { webhook, .. } => url_parts(webhook.expose()),
            Service::PagerDuty { routing_key, .. } => vec![routing_key.expose().clone()],
            Service::Pushover { token, user, .. } => vec![token.expose().clone(), user.expose().clone()],
            Service::Opsgenie { key, .. } => vec![key.expose().clone()],
        }
    }
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Service::Ntfy { server, topic: _, token, click } => f
                .debug_struct("Ntfy")
                .field("server", &redact_url(server))
                .field("topic", &"[redacted]")
                .field("token", token)
                .field("click", &click.as_deref().map(redact_url))
                .finish(),
            Service::Discord { webhook } => {
                f.debug_struct("Discord").field("webhook", &redact_url(webhook.expose())).finish()
            }
            Service::PagerDuty { routing_key, api } => {
                f.debug_struct("PagerDuty").field("routing_key", routing_key).field("api", &redact_url(api)).finish()
            }
            Service::Pushover { token, user, emergency, click, api } => f
                .debug_struct("Pushover")
                .field("token", token)
                .field("user", user)
                .field("emergency", emergency)
                .field("click", &click.as_deref().map(redact_url))
                .field("api", &redact_url(api))
                .finish(),
            Service::Opsgenie { key, api } => {
                f.debug_struct("Opsgenie").field("key", key).field("api", &redact_url(api)).finish()
            }
            Service::Teams { webhook } => {
                f.debug_struct("Teams").field("webhook", &redact_url(webhook.expose())).finish()
            }
            Service::GoogleChat { webhook, thread } => f
                .debug_struct("GoogleChat")
                .field("webhook", &redact_url(webhook.expose()))
                .field("thread", thread)
                .finish(),
            Service::SlackCompatible { kind, webhook, channel, username } => f
                .debug_struct("SlackCompatible")
                .field("kind", kind)
                .field("webhook", &redact_url(webhook.expose()))
                .field("channel", channel)
                .field("username", username)
                .finish(),
        }
    }
}

/// The namespace of the builders.
#[derive(Debug)]
pub struct NotifyLayer(());

impl NotifyLayer {
    /// ntfy: publish to `topic` on `server` (`https://ntfy.sh`, or your own). A topic is a
    /// shared secret on a public server: it is never printed.
    pub fn ntfy(server: impl Into<String>, topic: impl Into<String>) -> NotifyBuilder {
        NotifyBuilder::new(
            Service::Ntfy { server: server.into(), topic: topic.into(), token: None, click: None },
            Duration::from_secs(1),
        )
    }

    /// A Discord webhook (`https://discord.com/api/webhooks/ID/TOKEN`).
    pub fn discord(webhook_url: impl Into<String>) -> NotifyBuilder {
        NotifyBuilder::new(Service::Discord { webhook: Secret::new(webhook_url.into()) }, Duration::from_millis(500))
    }

    /// PagerDuty Events API v2 with an integration's routing key.
    pub fn pagerduty(routing_key: impl Into<String>) -> NotifyBuilder {
        NotifyBuilder::new(
            Service::PagerDuty { routing_key: Secret::new(routing_key.into()), api: PAGERDUTY_API.to_owned() },
            Duration::from_millis(500),
        )
    }

    /// Pushover: an application's API token and a user (or group) key, both 30 letters and
    /// digits.
    pub fn pushover(app_token: impl Into<String>, user_key: impl Into<String>) -> NotifyBuilder {
        NotifyBuilder::new(
            Service::Pushover {
                token: Secret::new(app_token.into()),
                user: Secret::new(user_key.into()),
                emergency: None,
                click: None,
                api: PUSHOVER_API.to_owned(),
            },
            Duration::from_secs(1),
        )
    }

    /// Opsgenie's Alert API with an API integration's key (`GenieKey`). EU accounts: add
    /// `.api_base("https://api.eu.opsgenie.com")`.
    pub fn opsgenie(api_key: impl Into<String>) -> NotifyBuilder {
        NotifyBuilder::new(
            Service::Opsgenie { key: Secret::new(api_key.into()), api: OPSGENIE_API.to_owned() },
            Duration::from_millis(500),
        )
    }

    /// A Microsoft Teams workflow webhook (the URL of a "When a Teams webhook request is
    /// received" workflow; its `sig` is a secret).
    pub fn teams(workflow_url: impl Into<String>) -> NotifyBuilder {
        NotifyBuilder::new(Service::Teams { webhook: Secret::new(workflow_url.into()) }, Duration::from_secs(1))
    }

    /// A Google Chat space's incoming webhook
    /// (`https://chat.googleapis.com/v1/spaces/…/messages?key=…&token=…`). The alerts of one
    /// callsite go into one thread (see [`NotifyBuilder::thread_by_callsite`]).
    pub fn google_chat(webhook_url: impl Into<String>) -> NotifyBuilder {
        NotifyBuilder::new(
            Service::GoogleChat { webhook: Secret::new(webhook_url.into()), thread: true },
            Duration::from_secs(1),
        )
    }

    /// A Mattermost incoming webhook (`https://HOST/hooks/KEY`).
    pub fn mattermost(webhook_url: impl Into<String>) -> NotifyBuilder {
        Self::slack_compatible(SlackCompatible::Mattermost, webhook_url.into())
    }

    /// A Rocket.Chat incoming webhook (`https://HOST/hooks/ID/TOKEN`).
    pub fn rocketchat(webhook_url: impl Into<String>) -> NotifyBuilder {
        Self::slack_compatible(SlackCompatible::RocketChat, webhook_url.into())
    }

    fn slack_compatible(kind: SlackCompatible, url: String) -> NotifyBuilder {
        NotifyBuilder::new(
            Service::SlackCompatible { kind, webhook: Secret::new(url), channel: None, username: None },
            Duration::from_secs(1),
        )
    }
}

/// Builds a push or paging layer; see the [crate docs](crate).
pub struct NotifyBuilder {
    options: Options,
    service: Service,
    app: Option<String>,
    host: Option<String>,
    level: Level,
    ticket_link: Option<watchbell_core::TicketLink>,
}

impl fmt::Debug for NotifyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifyBuilder")
            .field("service", &self.service)
            .field("app", &self.app)
            .field("level", &self.level)
            .field("options", &self.options)
            .finish()
    }
}

impl SinkOptions for NotifyBuilder {
    fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }
}

impl NotifyBuilder {
    fn new(service: Service, pace: Duration) -> Self {
        NotifyBuilder {
            options: Options::new().pace(pace).rate_limit(1, Duration::from_secs(60)),
            service,
            app: None,
            host: None,
            level: Level::ERROR,
            ticket_link: None,
        }
    }

    /// Links each alert to its ticket in the ticket viewer: ntfy's `click` and Pushover's `url`
    /// open the record's ticket (an explicit `click` URL wins), and each delivered record is
    /// told to the ticketing layer's journal ([`watchbell_core::notified`]) under the service's
    /// name (`ntfy`, `pushover`, `discord`, …) so that the ticket page lists it.
    pub fn ticket_link(mut self, link: watchbell_core::TicketLink) -> Self {
        self.ticket_link = Some(link);
        self
    }

    /// The application's name (in titles, Discord's username, PagerDuty's `group`).
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }

    /// The host's name (PagerDuty's `source`; default: the machine's).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// ntfy: an access token (`Authorization: Bearer`). Ignored by the other services.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        if let Service::Ntfy { token: t, .. } = &mut self.service {
            *t = Some(Secret::new(token.into()));
        }
        self
    }

    /// ntfy and Pushover: the URL opened when the notification is tapped.
    pub fn click(mut self, url: impl Into<String>) -> Self {
        match &mut self.service {
            Service::Ntfy { click, .. } | Service::Pushover { click, .. } => *click = Some(url.into()),
            _ => {}
        }
        self
    }

    /// PagerDuty, Pushover and Opsgenie: the API's base URL (default [`PAGERDUTY_API`],
    /// [`PUSHOVER_API`], [`OPSGENIE_API`]; Opsgenie's EU accounts, a proxy or a test server
    /// another).
    pub fn api_base(mut self, url: impl Into<String>) -> Self {
        match &mut self.service {
            Service::PagerDuty { api, .. } | Service::Pushover { api, .. } | Service::Opsgenie { api, .. } => {
                *api = url.into()
            }
            _ => {}
        }
        self
    }

    /// Pushover: send ERROR as an emergency (priority 2), repeated every `retry` (at least
    /// 30 s) for `expire` (at most 3 h) until acknowledged.
    pub fn emergency(mut self, retry: Duration, expire: Duration) -> Self {
        if let Service::Pushover { emergency, .. } = &mut self.service {
            let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
            *emergency = Some(Emergency { retry: secs(retry), expire: secs(expire) });
        }
        self
    }

    /// Google Chat: post the alerts of one callsite into one thread (default `true`: the
    /// thread key is the callsite fingerprint).
    pub fn thread_by_callsite(mut self, on: bool) -> Self {
        if let Service::GoogleChat { thread, .. } = &mut self.service {
            *thread = on;
        }
        self
    }

    /// Mattermost and Rocket.Chat: the channel to post to instead of the webhook's own
    /// (`town-square`, `#alerts`, `@user`), where the webhook allows it.
    pub fn channel(mut self, name: impl Into<String>) -> Self {
        if let Service::SlackCompatible { channel, .. } = &mut self.service {
            *channel = Some(name.into());
        }
        self
    }

    /// Mattermost and Rocket.Chat: the name shown as the poster (default: the app's name).
    pub fn username(mut self, name: impl Into<String>) -> Self {
        if let Service::SlackCompatible { username, .. } = &mut self.service {
            *username = Some(name.into());
        }
        self
    }

    /// The service's name (`ntfy`, `pushover`, `discord`, `teams`, `google-chat`,
    /// `mattermost`, `rocketchat`, `pagerduty`, `opsgenie`): also the name of its stats.
    pub fn service(&self) -> &'static str {
        self.service.name()
    }

    /// Whether the service resolves incidents ([`resolve_record`]s): PagerDuty and Opsgenie.
    pub fn resolves(&self) -> bool {
        matches!(self.service, Service::PagerDuty { .. } | Service::Opsgenie { .. })
    }

    /// The least level sent (default `ERROR`).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    fn err(key: &str, msg: impl fmt::Display) -> BuildError {
        BuildError::new(CRATE, key, msg)
    }

    fn root(&self) -> Result<Arc<dyn Handler>, BuildError> {
        let client = self.options.http_client().map_err(|e| Self::err("http", e))?;
        let name = self.service.name();
        let alnum = |k: &str, n: usize| k.len() == n && k.bytes().all(|b| b.is_ascii_alphanumeric());
        let (url, key) = match &self.service {
            Service::Ntfy { server, topic, .. } => {
                if topic.is_empty()
                    || topic.len() > 64
                    || !topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(Self::err("topic", "1 to 64 letters, digits, `-` or `_`"));
                }
                (server.clone(), "server")
            }
            Service::Discord { webhook } => (webhook.expose().clone(), "webhook"),
            Service::PagerDuty { routing_key, api } => {
                if !alnum(routing_key.expose(), 32) {
                    return Err(Self::err(
                        "routing_key",
                        "32 letters and digits (an integration key of Events API v2)",
                    ));
                }
                (format!("{}/v2/enqueue", api.trim_end_matches('/')), "api_base")
            }
            Service::Pushover { token, user, api, .. } => {
                if !alnum(token.expose(), 30) {
                    return Err(Self::err("token", "30 letters and digits (an application's API token)"));
                }
                if !alnum(user.expose(), 30) {
                    return Err(Self::err("user", "30 letters and digits (a user or group key)"));
                }
                (format!("{}/1/messages.json", api.trim_end_matches('/')), "api_base")
            }
            Service::Opsgenie { key, api } => {
                let k = key.expose();
                if k.is_empty() || k.len() > 100 || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    return Err(Self::err("key", "an API integration's key (letters, digits and `-`)"));
                }
                (format!("{}/v2/alerts", api.trim_end_matches('/')), "api_base")
            }
            Service::Teams { webhook }
            | Service::GoogleChat { webhook, .. }
            | Service::SlackCompatible { webhook, .. } => (webhook.expose().clone(), "webhook"),
        };
        client.check_url(&url).map_err(|e| Self::err(key, watchbell_core::secret::redact_text(&e)))?;
        let mut cx = FormatContext::default();
        if let Some(app) = &self.app {
            cx = FormatContext::new(app.clone());
        }
        if let Some(h) = self.host.clone().or_else(FormatContext::local_host) {
            cx = cx.with_host(h);
        }
        cx.ticket_link = self.ticket_link.clone();
        let sink = NotifySink { service: self.service.clone(), client, url: Secret::new(url), cx };
        let delivery = self
            .options
            .delivery(name, sink)
            .spawn()
            .map_err(|e| Self::err("delivery", format!("cannot start the delivery thread: {e}")))?;
        Ok(self.options.limited(name, delivery))
    }

    /// Starts the delivery and returns the root handler (behind the rate limit) and its guard:
    /// for feeding records from other handlers (a fingers-crossed buffer, a fan-out), and for
    /// [`resolve_record`]s.
    pub fn build_handler(self) -> Result<(Arc<dyn Handler>, Guard), BuildError> {
        let root = self.root()?;
        let guard = Guard::new(Arc::clone(&root));
        Ok((root, guard))
    }

    /// Builds the layer and its guard. Keep the guard until the end of `main`.
    pub fn build<S>(self) -> Result<(SinkLayer<S>, Guard), BuildError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let level = self.level;
        Ok(watchbell_core::options::layer(self.root()?, level))
    }
}

struct NotifySink {
    service: Service,
    client: HttpClient,
    url: Secret<String>,
    cx: FormatContext,
}

impl NotifySink {
    fn send(&self, r: &Record) -> Outcome {
        let resolve = service::is_resolve(r);
        let base = self.url.expose();
        let json = |j: &Json| serde_json::to_vec(j).unwrap_or_default();
        let ticket = self.cx.ticket_link.as_ref().and_then(|l| l.ticket_url(r));
        let (url, body, form) = match &self.service {
            // A resolve is for the paging services; the others have nothing to resolve.
            _ if resolve && !matches!(self.service, Service::PagerDuty { .. } | Service::Opsgenie { .. }) => {
                return Outcome::Delivered;
            }
            Service::Ntfy { topic, click, .. } => {
                let click = click.as_deref().or(ticket.as_deref());
                (base.clone(), json(&ntfy_body(r, &self.cx, topic, click)), false)
            }
            Service::Discord { .. } => (base.clone(), json(&discord_body(r, &self.cx)), false),
            Service::PagerDuty { routing_key, .. } => {
                (base.clone(), json(&pagerduty_body(r, &self.cx, routing_key.expose())), false)
            }
            Service::Pushover { token, user, emergency, click, .. } => {
                let click = click.as_deref().or(ticket.as_deref());
                let form = pushover_form(r, &self.cx, token.expose(), user.expose(), *emergency, click);
                (base.clone(), watchbell_core::text::form_urlencode(&form).into_bytes(), true)
            }
            Service::Opsgenie { .. } if resolve => {
                let alias = paging::path_segment(&service::dedup_key(r));
                let note = serde_json::json!({"source": self.cx.host.clone().or_else(|| self.cx.app.clone()).unwrap_or_else(|| "watchbell".into()), "note": "resolved"});
                (format!("{base}/{alias}/close?identifierType=alias"), json(&note), false)
            }
            Service::Opsgenie { .. } => (base.clone(), json(&opsgenie_body(r, &self.cx)), false),
            Service::Teams { .. } => (base.clone(), json(&teams_body(r, &self.cx)), false),
            Service::GoogleChat { thread, .. } => {
                let url = if *thread {
                    let sep = if base.contains('?') { '&' } else { '?' };
                    format!(
                        "{base}{sep}threadKey={}&messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD",
                        r.fingerprint.to_hex()
                    )
                } else {
                    base.clone()
                };
                (url, json(&google_chat_body(r, &self.cx)), false)
            }
            Service::SlackCompatible { kind, channel, username, .. } => {
                let mut j = slack_compatible_body(r, &self.cx, *kind);
                if let Some(c) = channel {
                    j["channel"] = Json::from(c.as_str());
                }
                match (username, &self.cx.app, kind) {
                    (Some(u), _, SlackCompatible::Mattermost) | (None, Some(u), SlackCompatible::Mattermost) => {
                        j["username"] = Json::from(u.as_str())
                    }
                    (Some(u), _, SlackCompatible::RocketChat) | (None, Some(u), SlackCompatible::RocketChat) => {
                        j["alias"] = Json::from(u.as_str())
                    }
                    _ => {}
                }
                (base.clone(), json(&j), false)
            }
        };
        let content_type = if form { "application/x-www-form-urlencoded" } else { "application/json" };
        let mut req = self.client.request(Method::POST, &url).header("content-type", content_type).body(body);
        match &self.service {
            Service::Ntfy { token: Some(t), .. } => req = req.header("authorization", format!("Bearer {}", t.expose())),
            Service::Opsgenie { key, .. } => req = req.header("authorization", format!("GenieKey {}", key.expose())),
            _ => {}
        }
        let owned = self.service.secrets();
        let secrets: Vec<&str> = owned.iter().map(String::as_str).collect();
        let what = match &self.service {
            Service::Ntfy { .. } => "ntfy",
            Service::Discord { .. } => "Discord webhook",
            Service::PagerDuty { .. } => "PagerDuty",
            Service::Pushover { .. } => "Pushover",
            Service::Opsgenie { .. } => "Opsgenie",
            Service::Teams { .. } => "Teams workflow",
            Service::GoogleChat { .. } => "Google Chat webhook",
            Service::SlackCompatible { kind: SlackCompatible::Mattermost, .. } => "Mattermost webhook",
            Service::SlackCompatible { kind: SlackCompatible::RocketChat, .. } => "Rocket.Chat webhook",
        };
        let outcome = match self.client.send(req, &url) {
            Ok(resp) => {
                let body = watchbell_core::secret::scrub(resp.text(), &secrets);
                match &self.service {
                    // An Opsgenie alert closed already, or never opened: nothing left to resolve.
                    Service::Opsgenie { .. } if resolve && resp.status == 404 => Outcome::Delivered,
                    Service::Pushover { .. } if resp.status == 429 => {
                        watchbell_core::http::classify(429, paging::pushover_retry_after(&resp), what, &body)
                    }
                    Service::Discord { .. } => service::outcome(&resp, &body, what, true),
                    _ => service::outcome(&resp, &body, what, false),
                }
            }
            Err(e) => e.outcome(),
        };
        // The peer may quote the request back: its keys, tokens and webhook paths go, whatever
        // their shape.
        match outcome {
            Outcome::Retry { after, reason } => {
                Outcome::Retry { after, reason: watchbell_core::secret::scrub(reason, &secrets) }
            }
            Outcome::Permanent { reason } => Outcome::permanent(watchbell_core::secret::scrub(reason, &secrets)),
            o => o,
        }
    }
}

impl Sink for NotifySink {
    /// One request per record; the delivery paces the rest of a batch. A record refused for
    /// good fails alone.
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        let Some(first) = batch.records.first() else { return Outcome::Delivered };
        let more = batch.records.len() > 1;
        let outcome = self.send(first);
        if let (Outcome::Delivered, Some(link)) = (&outcome, &self.cx.ticket_link) {
            if !service::is_resolve(first) {
                link.notified(self.service.name(), [first]);
            }
        }
        match outcome {
            Outcome::Delivered if more => Outcome::More { delivered: 1 },
            // A record the service will never take fails alone; the others go on.
            Outcome::Permanent { reason } if more => Outcome::Refused { refused: 1, reason },
            o => o,
        }
    }
}

/// A builder from one apprise-style URL, the form `watchbell.toml`'s `notify = [...]` takes:
///
/// | URL | service |
/// |---|---|
/// | `ntfys://[TOKEN@]HOST[:PORT]/TOPIC` (`ntfy://` for plain HTTP) | ntfy on `https://HOST` |
/// | `discord://ID/TOKEN`, or the webhook's own `https://…/api/webhooks/ID/TOKEN` | Discord |
/// | `pagerduty://ROUTING_KEY[@HOST[:PORT]]` | PagerDuty's Events API (or the given host: `https://`, `http://` for loopback) |
/// | `pover://USER_KEY@APP_TOKEN[/HOST[:PORT]]` | Pushover (apprise's form; the host for a test server) |
/// | `opsgenie://API_KEY[@HOST[:PORT]]`, `?region=eu` | Opsgenie (`api.opsgenie.com`, `api.eu.opsgenie.com`, or the host) |
/// | `teams://HOST/PATH?QUERY` (the workflow URL with `teams` for `https`), or a workflow's own `https://…/workflows/…` URL | Microsoft Teams |
/// | `gchat://SPACE/KEY/TOKEN`, or the webhook's own `https://chat.googleapis.com/v1/spaces/…` URL | Google Chat |
/// | `mmosts://HOST[:PORT]/KEY` (`mmost://` for plain HTTP), `?channel=NAME` | Mattermost's `/hooks/KEY` |
/// | `rockets://HOST[:PORT]/ID/TOKEN` (`rocket://` for plain HTTP), `?channel=NAME` | Rocket.Chat's `/hooks/ID/TOKEN` |
///
/// `?level=warn` (any service) sets the least level. Errors never repeat the URL's secrets.
///
/// ```
/// use watchbell_notify::from_url;
/// assert!(from_url("ntfys://ntfy.example.com/alerts?level=warn").is_ok());
/// assert!(from_url("discord://123/abcDEF").is_ok());
/// assert!(from_url("pagerduty://0123456789abcdef0123456789abcdef").is_ok());
/// assert!(from_url("pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi").is_ok());
/// assert!(from_url("opsgenie://0a1b2c3d-aaaa-bbbb-cccc-0123456789ab?region=eu").is_ok());
/// assert!(from_url("gchat://AAAA1234/KEYkey/TOKENtoken").is_ok());
/// assert!(from_url("mmosts://chat.example.com/xr3j5x3p4pfk7qz7?channel=alerts").is_ok());
/// let e = from_url("gopher://x/SECRET").unwrap_err();
/// assert!(!e.to_string().contains("SECRET"));
/// ```
pub fn from_url(url: &str) -> Result<NotifyBuilder, BuildError> {
    // In these forms a key may stand where a host does (`pagerduty://KEY`): only the scheme of
    // a bad URL is repeated, and only when it is one's shape.
    let shown = match url.split_once("://") {
        Some((s, _)) if !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_alphabetic()) => {
            format!("{s}://…")
        }
        _ => "…".to_owned(),
    };
    let bad = |msg: &str| BuildError::new(CRATE, "url", format!("{msg} ({shown})"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("not a URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    // A Teams workflow or Google Chat URL keeps its own query (its signature, key and token).
    let own_query = matches!(scheme.as_str(), "teams" | "https" | "http");
    let (rest, query) = if own_query { (rest, "") } else { rest.split_once('?').unwrap_or((rest, "")) };
    let (mut level, mut channel, mut region) = (None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("level", v)) => {
                level = Some(watchbell_core::filter::parse_level(v).ok_or_else(|| bad("an unknown level"))?);
            }
            Some(("channel", v)) if !v.is_empty() => channel = Some(v.to_owned()),
            Some(("region", v)) if v.eq_ignore_ascii_case("eu") || v.eq_ignore_ascii_case("us") => {
                region = Some(v.to_ascii_lowercase())
            }
            _ => return Err(bad("an unknown option (`level`, `channel` or `region`)")),
        }
    }
    let web = |host: &str, tls: bool| {
        if tls || !watchbell_core::secret::is_loopback_host(host.rsplit_once(':').map_or(host, |(h, _)| h)) {
            "https"
        } else {
            "http"
        }
    };
    let trimmed = rest.trim_end_matches('/');
    let builder = match scheme.as_str() {
        s @ ("ntfy" | "ntfys") => {
            let (auth, hostpath) = match rest.rsplit_once('@') {
                Some((a, h)) => (Some(a), h),
                None => (None, rest),
            };
            let (host, topic) = hostpath.split_once('/').ok_or_else(|| bad("expected ntfys://HOST/TOPIC"))?;
            let web = if s == "ntfys" { "https" } else { "http" };
            let b = NotifyLayer::ntfy(format!("{web}://{host}"), topic.trim_end_matches('/'));
            match auth {
                Some(t) => b.token(t),
                None => b,
            }
        }
        "discord" => {
            let (id, token) = rest.split_once('/').ok_or_else(|| bad("expected discord://ID/TOKEN"))?;
            NotifyLayer::discord(format!("https://discord.com/api/webhooks/{id}/{}", token.trim_end_matches('/')))
        }
        "https" | "http" if rest.contains("/api/webhooks/") => {
            NotifyLayer::discord(url.split('?').next().unwrap_or(url))
        }
        "https" | "http" if rest.starts_with("chat.googleapis.com/") => NotifyLayer::google_chat(url),
        "https" | "http" if rest.contains("/workflows/") => NotifyLayer::teams(url),
        "teams" => NotifyLayer::teams(format!("https://{rest}")),
        "pagerduty" => {
            let (key, host) = match trimmed.split_once('@') {
                Some((k, h)) => (k, Some(h)),
                None => (trimmed, None),
            };
            let b = NotifyLayer::pagerduty(key);
            match host {
                Some(h) => b.api_base(format!("{}://{h}", web(h, false))),
                None => b,
            }
        }
        "pover" => {
            let (user, rest) = trimmed.split_once('@').ok_or_else(|| bad("expected pover://USER_KEY@APP_TOKEN"))?;
            let (token, host) = match rest.split_once('/') {
                Some((t, h)) => (t, Some(h)),
                None => (rest, None),
            };
            let b = NotifyLayer::pushover(token, user);
            match host {
                Some(h) => b.api_base(format!("{}://{h}", web(h, false))),
                None => b,
            }
        }
        "opsgenie" => {
            let (key, host) = match trimmed.split_once('@') {
                Some((k, h)) => (k, Some(h)),
                None => (trimmed, None),
            };
            let b = NotifyLayer::opsgenie(key);
            match (host, region.as_deref()) {
                (Some(h), _) => b.api_base(format!("{}://{h}", web(h, false))),
                (None, Some("eu")) => b.api_base("https://api.eu.opsgenie.com"),
                _ => b,
            }
        }
        "gchat" => {
            let mut parts = trimmed.splitn(3, '/');
            let (Some(space), Some(key), Some(token)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad("expected gchat://SPACE/KEY/TOKEN"));
            };
            NotifyLayer::google_chat(format!(
                "https://chat.googleapis.com/v1/spaces/{space}/messages?key={key}&token={token}"
            ))
        }
        s @ ("mmost" | "mmosts") => {
            let (host, key) = trimmed.split_once('/').ok_or_else(|| bad("expected mmosts://HOST/KEY"))?;
            NotifyLayer::mattermost(format!("{}://{host}/hooks/{key}", if s == "mmosts" { "https" } else { "http" }))
        }
        s @ ("rocket" | "rockets") => {
            let (host, path) = trimmed.split_once('/').ok_or_else(|| bad("expected rockets://HOST/ID/TOKEN"))?;
            if !path.contains('/') {
                return Err(bad("expected rockets://HOST/ID/TOKEN"));
            }
            NotifyLayer::rocketchat(format!("{}://{host}/hooks/{path}", if s == "rockets" { "https" } else { "http" }))
        }
        _ => {
            return Err(bad(
                "an unknown service; expected ntfy(s)://, discord://, pagerduty://, pover://, opsgenie://, teams://, gchat://, mmost(s):// or rocket(s)://",
            ))
        }
    };
    let builder = match channel {
        Some(c) => builder.channel(c),
        None => builder,
    };
    Ok(match level {
        Some(l) => builder.level(l),
        None => builder,
    })
}
