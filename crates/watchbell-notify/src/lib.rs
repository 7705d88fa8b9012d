//! # watchbell-notify
//!
//! Push and paging services for tracing: [ntfy](https://ntfy.sh) (self-hostable push to
//! phones and desktops), Discord webhooks and PagerDuty (Events API v2). Each is a layer with
//! watchbell's delivery behind it: one request per alert from watchbell's own thread, paced,
//! retried on 429/5xx with the service's requested delay, rate limited per callsite, counted.
//!
//! ```no_run
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//! use watchbell_notify::NotifyLayer;
//!
//! let (ntfy, g1) = NotifyLayer::ntfy("https://ntfy.sh", "billing-alerts").app("billing").build().unwrap();
//! let (pd, g2) = NotifyLayer::pagerduty("0123456789abcdef0123456789abcdef").build().unwrap();
//! tracing_subscriber::registry().with(ntfy).with(pd).init();
//! tracing::error!(invoice = 42, "payment failed"); // a push, and one incident per callsite
//! g1.join(g2).shutdown(Duration::from_secs(5));
//! ```
//!
//! | service | request | limits and escaping | answers |
//! |---|---|---|---|
//! | ntfy | `POST {server}` JSON: `topic`, `title` (`[app] LEVEL target`), `message` (message, fields, location), `priority` 5/4/3/2 by level, `tags`, optional `click`; `Authorization: Bearer` with [`token`](NotifyBuilder::token) | title 250 chars, one line; message 4,000 bytes; plain text | 429 and 5xx retried (`Retry-After`), other 4xx permanent |
//! | Discord | `POST {webhook}` JSON: one embed (title, description, up to 25 inline fields, colour by level, time, location footer), `allowed_mentions: {parse: []}` | embed limits (256/4,096/256/1,024/2,048) and 6,000 chars in all, cut with `…[truncated]`; markdown escaped, `@everyone` disarmed | 429 waits the body's `retry_after` (seconds); 5xx retried; other 4xx permanent |
//! | PagerDuty | `POST {api}/v2/enqueue`: `trigger` with `dedup_key` = the callsite fingerprint, so a storm is one incident; `summary`, `severity` (`error`/`warning`/`info`), `source`, `component`, `group`, `custom_details` | summary 1,024 chars, one line | 202 delivered; 429 and 5xx retried; 400 permanent |
//!
//! A PagerDuty incident is resolved by handing the layer's handler a
//! [`resolve_record`]`(dedup_key)` (for example when the matching ticket is solved).
//!
//! Defaults: level `ERROR`; 1 alert per 60 s per callsite; a pace of 1 s (ntfy) or 500 ms
//! (Discord: 5 requests per 2 s per webhook; PagerDuty); a 10 s timeout. Webhook URLs, routing
//! keys and tokens never appear in `Debug`, errors, stats or stderr.
#![deny(missing_docs)]

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

pub use service::{
    discord_body, escape_discord, ntfy_body, pagerduty_body, DISCORD_LIMITS, DISCORD_MAX_FIELDS, DISCORD_MAX_TOTAL,
    NTFY_MAX_MESSAGE, NTFY_MAX_TITLE, PAGERDUTY_MAX_SUMMARY,
};

const CRATE: &str = "watchbell-notify";

/// PagerDuty's Events API.
pub const PAGERDUTY_API: &str = "https://events.pagerduty.com";

/// A record that, handed to a PagerDuty layer's handler, resolves the incident of `dedup_key`
/// (a callsite fingerprint in hex, as the triggers carry it).
///
/// ```
/// let r = watchbell_notify::resolve_record("0ae7b87b0fde6fa6");
/// assert_eq!(r.fields.get("pagerduty.dedup_key").and_then(|v| v.as_str()), Some("0ae7b87b0fde6fa6"));
/// ```
pub fn resolve_record(dedup_key: impl Into<String>) -> Record {
    let mut r = Record::new(Level::ERROR, "watchbell", "resolved");
    r.fields.set(service::RESOLVE_FIELD, Value::Bool(true));
    r.fields.set(service::DEDUP_FIELD, Value::Str(dedup_key.into()));
    r
}

#[derive(Clone)]
enum Service {
    Ntfy { server: String, topic: String, token: Option<Secret<String>>, click: Option<String> },
    Discord { webhook: Secret<String> },
    PagerDuty { routing_key: Secret<String>, api: String },
}

impl Service {
    fn name(&self) -> &'static str {
        match self {
            Service::Ntfy { .. } => "ntfy",
            Service::Discord { .. } => "discord",
            Service::PagerDuty { .. } => "pagerduty",
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
}

/// Builds a push or paging layer; see the [crate docs](crate).
pub struct NotifyBuilder {
    options: Options,
    service: Service,
    app: Option<String>,
    host: Option<String>,
    level: Level,
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
        }
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

    /// ntfy: the URL opened when the notification is tapped.
    pub fn click(mut self, url: impl Into<String>) -> Self {
        if let Service::Ntfy { click, .. } = &mut self.service {
            *click = Some(url.into());
        }
        self
    }

    /// PagerDuty: the API's base URL (default [`PAGERDUTY_API`]; EU accounts use the same, a
    /// proxy or a test server another).
    pub fn api_base(mut self, url: impl Into<String>) -> Self {
        if let Service::PagerDuty { api, .. } = &mut self.service {
            *api = url.into();
        }
        self
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
                let k = routing_key.expose();
                if k.len() != 32 || !k.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(Self::err(
                        "routing_key",
                        "32 letters and digits (an integration key of Events API v2)",
                    ));
                }
                (format!("{}/v2/enqueue", api.trim_end_matches('/')), "api_base")
            }
        };
        client.check_url(&url).map_err(|e| Self::err(key, watchbell_core::secret::redact_text(&e)))?;
        let mut cx = FormatContext::default();
        if let Some(app) = &self.app {
            cx = FormatContext::new(app.clone());
        }
        if let Some(h) = self.host.clone().or_else(FormatContext::local_host) {
            cx = cx.with_host(h);
        }
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
        let (body, what, discord): (Json, &str, bool) = match &self.service {
            Service::Ntfy { topic, click, .. } => (ntfy_body(r, &self.cx, topic, click.as_deref()), "ntfy", false),
            Service::Discord { .. } => (discord_body(r, &self.cx), "Discord webhook", true),
            Service::PagerDuty { routing_key, .. } => {
                (pagerduty_body(r, &self.cx, routing_key.expose()), "PagerDuty", false)
            }
        };
        let url = self.url.expose();
        let mut req = self
            .client
            .request(Method::POST, url)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default());
        if let Service::Ntfy { token: Some(t), .. } = &self.service {
            req = req.header("authorization", format!("Bearer {}", t.expose()));
        }
        let secrets: Vec<&str> = match &self.service {
            Service::Ntfy { topic, token, .. } => {
                let mut v = vec![topic.as_str()];
                if let Some(t) = token {
                    v.push(t.expose().as_str());
                }
                v
            }
            Service::Discord { webhook } => vec![webhook.expose().as_str()],
            Service::PagerDuty { routing_key, .. } => vec![routing_key.expose().as_str()],
        };
        let outcome = match self.client.send(req, url) {
            Ok(resp) => service::outcome(&resp, what, discord),
            Err(e) => e.outcome(),
        };
        // The peer may quote the request back: its topic, key or token go, whatever their shape.
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
    /// One request per record; the delivery paces the rest of a batch.
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        let Some(first) = batch.records.first() else { return Outcome::Delivered };
        match self.send(first) {
            Outcome::Delivered if batch.records.len() > 1 => Outcome::More { delivered: 1 },
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
///
/// `?level=warn` (any service) sets the least level. Errors never repeat the URL's secrets.
///
/// ```
/// use watchbell_notify::from_url;
/// assert!(from_url("ntfys://ntfy.example.com/alerts?level=warn").is_ok());
/// assert!(from_url("discord://123/abcDEF").is_ok());
/// assert!(from_url("pagerduty://0123456789abcdef0123456789abcdef").is_ok());
/// let e = from_url("gopher://x/SECRET").unwrap_err();
/// assert!(!e.to_string().contains("SECRET"));
/// ```
pub fn from_url(url: &str) -> Result<NotifyBuilder, BuildError> {
    let bad = |msg: &str| BuildError::new(CRATE, "url", format!("{msg} ({})", redact_url(url)));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("not a URL"))?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut level = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("level", v)) => {
                level = Some(watchbell_core::filter::parse_level(v).ok_or_else(|| bad("an unknown level"))?);
            }
            _ => return Err(bad("an unknown option (only `level`)")),
        }
    }
    let loopback_scheme = |host: &str, tls: bool| {
        if tls || !watchbell_core::secret::is_loopback_host(host.rsplit_once(':').map_or(host, |(h, _)| h)) {
            "https"
        } else {
            "http"
        }
    };
    let builder = match scheme.to_ascii_lowercase().as_str() {
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
        "pagerduty" => {
            let (key, host) = match rest.trim_end_matches('/').split_once('@') {
                Some((k, h)) => (k, Some(h)),
                None => (rest.trim_end_matches('/'), None),
            };
            let b = NotifyLayer::pagerduty(key);
            match host {
                Some(h) => b.api_base(format!("{}://{h}", loopback_scheme(h, false))),
                None => b,
            }
        }
        _ => return Err(bad("an unknown service; expected ntfy://, ntfys://, discord:// or pagerduty://")),
    };
    Ok(match level {
        Some(l) => builder.level(l),
        None => builder,
    })
}
