//! # watchbell-sms
//!
//! A `tracing` layer that sends SMS alerts through Twilio and Exotel (or a gateway of your
//! own), routed by the recipient's number prefix, with hard cost caps: SMS costs money.
//!
//! ```no_run
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//! use watchbell_core::SinkOptions;
//! use watchbell_sms::{Exotel, SmsLayer, Twilio};
//!
//! let (layer, guard) = SmsLayer::builder()
//!     .recipient("+15558675310")   // → Twilio
//!     .recipient("+919876543210")  // → Exotel (+91)
//!     .twilio(Twilio::new("AC0123456789abcdef0123456789abcdef", "auth-token").from("+15017122661"))
//!     .exotel(Exotel::new("acme1", "api-key", "api-token").from("EXOTEL").subdomain("api.in.exotel.com"))
//!     .app("billing")
//!     .hourly_cap(10)
//!     .timeout(Duration::from_secs(5))
//!     .build()
//!     .expect("a valid configuration");
//! tracing_subscriber::registry().with(layer).init();
//!
//! tracing::error!(invoice = 42, "payment failed");
//!
//! // At the end of main: deliver what is pending, within 5 s.
//! let _ = guard.shutdown(Duration::from_secs(5));
//! ```
//!
//! ## What an SMS looks like
//!
//! One compact line: `[billing] ERROR app::pay: payment failed`, then, when there is one,
//! ` (3 similar suppressed)` (the rate limit's count) and ` (12 alerts withheld by the SMS cap)`
//! (on the first alert after a capped hour). Newlines and control characters are collapsed to
//! single spaces. Without [`app`](SmsBuilder::app) the `[app] ` prefix is left out.
//! [`format`](SmsBuilder::format) replaces the line by your own (still made one line and
//! fitted).
//!
//! The body fits one segment by default: 160 GSM-7 characters, or 70 UTF-16 units as soon as
//! the text that is sent holds a character outside the GSM alphabet (an emoji, `ł`, `日`...)
//! and has to go as UCS-2 (see [`encoding`]). Longer text is cut at a character boundary with
//! a visible marker (`...` in GSM-7, `…` in UCS-2). [`segments`](SmsBuilder::segments) allows
//! longer messages, up to each provider's maximum (Twilio 1,600 characters, Exotel 2,000).
//!
//! An escalation or group batch (from a fingers-crossed buffer behind
//! [`build_handler`](SmsBuilder::build_handler)) becomes one SMS: its significant record, with
//! ` (+N related records)`. Other records are one SMS each: records queued together go out one
//! SMS per [pace](SinkOptions::pace), the delivery waiting between them (a wait that shutdown
//! cuts short, counting what is left as dropped).
//!
//! ## Cost caps
//!
//! In order, on the caller's side (cheap, no I/O):
//!
//! 1. the level: `ERROR` by default;
//! 2. the rate limit per callsite fingerprint: 1 per hour by default; the count of the others
//!    goes with the next SMS of that callsite or, at flush, as one summary SMS per callsite;
//! 3. the global cap: at most [`hourly_cap`](SinkOptions::hourly_cap) alerts (10 by default) per
//!    hour (a fixed window that opens with the first alert). The first alert over it is replaced
//!    by one notice, `SMS cap reached (10 alerts per 60 min): alerts are withheld and counted for
//!    the next N min. First withheld: ERROR target: message`; the alerts after it are not sent,
//!    only counted: [`Guard::stats`] shows them as `suppressed` of the entry named `sms-cap`
//!    (with `notices` counting the cap notices), and the first alert of the next hour says how
//!    many were withheld. The cap counts alerts, and each alert goes to every recipient.
//!
//! ## Routing
//!
//! Each recipient is sent through the first [`route`](SmsBuilder::route) whose prefix its
//! number starts with. Without routes, coaster's rule applies: `+91` through Exotel, every other
//! number through Twilio, among the providers configured (with only Twilio configured, `+91`
//! numbers go through Twilio too). A recipient no configured provider covers is a build error,
//! as is a route to a provider that is not configured. Only the providers a route uses need
//! credentials.
//!
//! ## Deliveries
//!
//! Each (provider, recipient) pair has its own [`Delivery`](watchbell_core::Delivery): its own
//! queue, pace and retries, named `sms:<provider>:<masked number>` in stats (`+1555…10`). A
//! recipient whose number the provider rejects (Twilio 21211) never delays or fails another, and
//! a retry after a 429 re-sends only the SMS that was refused: the SMS already accepted are
//! never sent twice. After records were dropped (a full queue) or failed, the delivery's notice
//! `watchbell: N records dropped ...` goes out as one more SMS after the next success. (A request whose answer is lost, a timeout after the gateway accepted it,
//! is retried and may then arrive twice: no SMS API offers an idempotency key for this.)
//!
//! ## Ticket links
//!
//! With [`ticket_link`](SmsBuilder::ticket_link) (what `[ticketing] public_url` sets in the
//! umbrella crate's config), each SMS ends with the bare URL of the record's ticket in
//! `watchbell-tickets serve`. The link counts toward the segments: the text is cut first (with
//! its marker) and the link is kept whole; when the link would leave fewer than 20 characters
//! of text, it is left out. A custom format places `{ticket_url}` itself (nothing is
//! appended). The ticket page lists the provider: `sms:twilio`, `sms:exotel`, ….
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
//! | level captured | `ERROR` | [`level`](SmsBuilder::level) |
//! | rate limit | 1 SMS per hour per callsite fingerprint; the rest counted and reported | `rate_limit`, `no_rate_limit` ([`SinkOptions`]) |
//! | global cap | 10 alerts per hour, then one "cap reached" notice, the rest counted | [`hourly_cap`](SinkOptions::hourly_cap), [`cap`](SinkOptions::cap), [`no_cap`](SinkOptions::no_cap) |
//! | body | one segment: 160 GSM-7 chars or 70 UCS-2 units, cut with `...` / `…` | [`segments`](SmsBuilder::segments), [`format`](SmsBuilder::format) |
//! | routes | `+91` → Exotel, the rest → Twilio | [`route`](SmsBuilder::route) |
//! | pace | 1 s between two SMS to one recipient through one provider | `pace` ([`SinkOptions`]) |
//! | retries | `Retry::default()`: 500 ms doubling to 60 s, for 10 minutes per SMS; 429 waits `Retry-After` | `retry` ([`SinkOptions`]) |
//! | queue | 1,000 records per (provider, recipient), the newest dropped and counted when full | `queue_records`, `overflow` ([`SinkOptions`]) |
//! | HTTP timeout | 10 s per request | `timeout` ([`SinkOptions`]) |
//! | plain `http://` | refused except to loopback | `allow_plain_http` ([`SinkOptions`]) |
//! | Twilio API | `https://api.twilio.com` | [`Twilio::api_base`] |
//! | Exotel API | `https://api.exotel.com` | [`Exotel::subdomain`], [`Exotel::api_base`] |
//!
//! How answers are handled: Twilio 429 (error 20429) and 5xx are retried (after `Retry-After`
//! when given); 401, 21211 (invalid `To`), 21617 (body too long) and other 4xx are permanent.
//! Exotel 429 and 503 (and other 5xx) are retried after `Retry-After`; 400, 401 and 403 are
//! permanent; both success forms (`{"SMSMessage":{...}}` and a list) and both error forms (JSON
//! `RestException`, XML) are read. Permanent failures are counted as `failed` in
//! [`Guard::stats`] and printed once per kind on stderr.
//!
//! Recipients are given in E.164 (`+` and 7 to 15 digits); spaces, dashes, dots and
//! parentheses are removed first (`+1 (555) 867-5310` is `+15558675310`); a number given twice
//! is sent to once. Credentials (Twilio's auth token, Exotel's API key and token) appear in no
//! `Debug` output, error, stats or panic message; they travel in an `Authorization` header,
//! never in a URL.
#![deny(missing_docs)]

pub mod encoding;
mod provider;
mod sink;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tracing_core::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use watchbell_core::format::{Format, FormatContext};
use watchbell_core::options::{layer, Options, SinkLayer};
use watchbell_core::{FanOut, Guard, Handler, Level};

pub use provider::{form_encode, Exotel, SmsMessage, SmsProvider, Twilio, EXOTEL_SUBDOMAIN, TWILIO_API_BASE};
pub use watchbell_core::{BuildError, SinkOptions};

use crate::sink::{Renderer, SmsSink};

pub(crate) const CRATE: &str = "watchbell-sms";

/// A number prefix and the provider it goes through.
type Route = (String, Arc<dyn SmsProvider>);

/// A provider and a recipient it sends to.
type Pair = (Arc<dyn SmsProvider>, String);

/// Where [`SmsLayer::builder`] starts.
#[derive(Debug)]
pub struct SmsLayer(());

impl SmsLayer {
    /// A builder with the defaults of the [crate docs](crate).
    pub fn builder() -> SmsBuilder {
        SmsBuilder {
            options: Options::new()
                .rate_limit(1, Duration::from_secs(3600))
                .cap(10, Duration::from_secs(3600))
                .pace(Duration::from_secs(1))
                .queue_records(1000),
            recipients: Vec::new(),
            providers: Vec::new(),
            routes: Vec::new(),
            level: Level::ERROR,
            app: None,
            segments: 1,
            format: None,
            ticket_link: None,
        }
    }
}

/// Configures an SMS layer; see the [crate docs](crate) for the defaults. Its `Debug` shows no
/// credential.
pub struct SmsBuilder {
    options: Options,
    recipients: Vec<String>,
    providers: Vec<Arc<dyn SmsProvider>>,
    routes: Vec<(String, String)>,
    level: Level,
    app: Option<String>,
    segments: usize,
    format: Option<Arc<dyn Format>>,
    ticket_link: Option<watchbell_core::TicketLink>,
}

impl fmt::Debug for SmsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let providers: Vec<&str> = self.providers.iter().map(|p| p.name()).collect();
        f.debug_struct("SmsBuilder")
            .field("options", &self.options)
            .field("recipients", &self.recipients)
            .field("providers", &providers)
            .field("routes", &self.routes)
            .field("level", &self.level)
            .field("app", &self.app)
            .field("segments", &self.segments)
            .field("custom_format", &self.format.is_some())
            .field("ticket_link", &self.ticket_link)
            .finish()
    }
}

impl SinkOptions for SmsBuilder {
    fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }
}

/// `number` without spaces, dashes, dots and parentheses, if it is then E.164.
fn normalize_e164(number: &str) -> Option<String> {
    let n: String = number.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}')).collect();
    let digits = n.strip_prefix('+')?;
    let ok = (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
    ok.then_some(n)
}

/// `+1555…10`: enough to tell recipients apart in stats, not the whole number.
fn mask(number: &str) -> String {
    let head: String = number.chars().take(5).collect();
    let tail: String = number.chars().rev().take(2).collect::<Vec<_>>().into_iter().rev().collect();
    format!("{head}…{tail}")
}

impl SmsBuilder {
    /// Adds a recipient, in E.164 (`+15558675310`). At least one is required.
    pub fn recipient(mut self, number: impl Into<String>) -> Self {
        self.recipients.push(number.into());
        self
    }

    /// Adds several recipients.
    pub fn recipients<I>(mut self, numbers: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.recipients.extend(numbers.into_iter().map(Into::into));
        self
    }

    /// Configures Twilio (replacing an earlier Twilio).
    pub fn twilio(self, twilio: Twilio) -> Self {
        self.provider(twilio)
    }

    /// Configures Exotel (replacing an earlier Exotel).
    pub fn exotel(self, exotel: Exotel) -> Self {
        self.provider(exotel)
    }

    /// Adds a provider of your own (or replaces the one with the same
    /// [`name`](SmsProvider::name)). Give it numbers with [`route`](SmsBuilder::route).
    pub fn provider(mut self, provider: impl SmsProvider) -> Self {
        self.providers.retain(|p| p.name() != provider.name());
        self.providers.push(Arc::new(provider));
        self
    }

    /// Sends numbers starting with `prefix` (`"+91"`; `""` for every number) through the
    /// provider named `provider` (`"twilio"`, `"exotel"`, or your own). Routes are tried in the
    /// order given; setting any replaces the default rule (`+91` → Exotel, the rest → Twilio).
    pub fn route(mut self, prefix: impl Into<String>, provider: impl Into<String>) -> Self {
        self.routes.push((prefix.into(), provider.into()));
        self
    }

    /// The least severe level sent (default `ERROR`).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// The application's name, the `[app] ` prefix of every SMS (default none).
    pub fn app(mut self, name: impl Into<String>) -> Self {
        self.app = Some(name.into());
        self
    }

    /// How many segments one SMS may take (default 1: 160 GSM-7 chars or 70 UCS-2 units; more
    /// segments hold 153 / 67 each and are billed each). It must fit every provider used
    /// (Twilio: at most 10, Exotel: at most 13).
    pub fn segments(mut self, n: usize) -> Self {
        self.segments = n;
        self
    }

    /// Links every alert to its ticket in the ticket viewer (see
    /// [the crate docs](crate#ticket-links)): the bare URL ends each SMS when it fits (it counts
    /// toward the segments: the text is cut first, and the link is left out when it would
    /// leave fewer than 20 chars of text), a custom format can write `{ticket_url}` instead,
    /// and each delivered SMS is told to the ticketing layer's journal
    /// ([`watchbell_core::notified`]) as `sms:PROVIDER` so that the ticket page lists it.
    pub fn ticket_link(mut self, link: watchbell_core::TicketLink) -> Self {
        self.ticket_link = Some(link);
        self
    }

    /// Your own text per record (a [`Template`](watchbell_core::format::Template) or a
    /// closure); it is made one line and fitted like the default.
    pub fn format(mut self, format: impl Format) -> Self {
        self.format = Some(Arc::new(format));
        self
    }

    /// Checks the configuration, starts one delivery worker per (provider, recipient), and
    /// returns the layer and the [`Guard`] that flushes it.
    pub fn build<S>(self) -> Result<(SinkLayer<S>, Guard), BuildError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let level = self.level;
        Ok(layer(self.build_root()?, level))
    }

    /// Like [`build`](SmsBuilder::build), but returns the handler chain (rate limit, cap and
    /// deliveries) to stand behind another watchbell handler (a fingers-crossed buffer). The
    /// [level](SmsBuilder::level) is the layer's filter, so it does not apply here.
    pub fn build_handler(self) -> Result<(Arc<dyn Handler>, Guard), BuildError> {
        let root = self.build_root()?;
        let guard = Guard::new(Arc::clone(&root));
        Ok((root, guard))
    }

    fn build_root(self) -> Result<Arc<dyn Handler>, BuildError> {
        let pairs = self.plan()?;
        let render = Arc::new(Renderer {
            format: self.format.clone(),
            cx: FormatContext { app: self.app.clone(), host: None, ticket_link: self.ticket_link.clone() },
            segments: self.segments,
        });
        let mut fan = FanOut::new();
        for (provider, to) in pairs {
            let client = self.options.http_client().map_err(|e| BuildError::new(CRATE, "http", e))?;
            let name = format!("sms:{}:{}", provider.name(), mask(&to));
            let sink = SmsSink { provider, client, to, render: Arc::clone(&render) };
            let delivery = self
                .options
                .delivery(name, sink)
                .spawn()
                .map_err(|e| BuildError::new(CRATE, "worker", format!("cannot start the delivery thread: {e}")))?;
            fan = fan.with(Arc::new(delivery));
        }
        Ok(self.options.limited("SMS", fan))
    }

    /// Validates everything and decides the provider of every recipient.
    fn plan(&self) -> Result<Vec<Pair>, BuildError> {
        if self.recipients.is_empty() {
            return Err(BuildError::new(CRATE, "recipients", "at least one recipient number is required"));
        }
        let mut numbers = Vec::new();
        let mut seen = HashSet::new();
        for (i, raw) in self.recipients.iter().enumerate() {
            let n = normalize_e164(raw).ok_or_else(|| {
                BuildError::new(
                    CRATE,
                    format!("recipients[{i}]"),
                    format!("{raw:?} is not an E.164 number: expected + and 7 to 15 digits, such as +15558675310"),
                )
            })?;
            if seen.insert(n.clone()) {
                numbers.push(n);
            }
        }
        if self.providers.is_empty() {
            return Err(BuildError::new(
                CRATE,
                "providers",
                "configure at least one provider: twilio(..) or exotel(..)",
            ));
        }
        let mut names = HashSet::new();
        for p in &self.providers {
            if p.name().is_empty() || !names.insert(p.name()) {
                return Err(BuildError::new(CRATE, "providers", "every provider needs a unique, non-empty name"));
            }
        }
        if self.segments == 0 {
            return Err(BuildError::new(CRATE, "segments", "at least 1 segment"));
        }
        let find = |name: &str| self.providers.iter().find(|p| p.name() == name);
        let routes: Vec<Route> = if self.routes.is_empty() {
            [("+91", "exotel"), ("", "twilio")]
                .iter()
                .filter_map(|(prefix, name)| find(name).map(|p| ((*prefix).to_owned(), Arc::clone(p))))
                .collect()
        } else {
            let mut out = Vec::new();
            for (i, (prefix, name)) in self.routes.iter().enumerate() {
                let prefix_ok = prefix.is_empty()
                    || prefix.strip_prefix('+').is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()));
                if !prefix_ok {
                    return Err(BuildError::new(
                        CRATE,
                        format!("routes[{i}].prefix"),
                        format!("{prefix:?} is not a number prefix: expected + and digits (\"+91\"), or \"\" for all"),
                    ));
                }
                let p = find(name).ok_or_else(|| {
                    BuildError::new(
                        CRATE,
                        format!("routes[{i}].provider"),
                        format!("no provider named {name:?} is configured"),
                    )
                })?;
                out.push((prefix.clone(), Arc::clone(p)));
            }
            out
        };
        let mut pairs = Vec::new();
        let mut used: Vec<Arc<dyn SmsProvider>> = Vec::new();
        for (i, n) in numbers.into_iter().enumerate() {
            let Some((_, p)) = routes.iter().find(|(prefix, _)| n.starts_with(prefix.as_str())) else {
                let configured: Vec<&str> = self.providers.iter().map(|p| p.name()).collect();
                return Err(BuildError::new(
                    CRATE,
                    format!("recipients[{i}]"),
                    format!(
                        "no configured provider covers {n} (providers: {}); add the provider it needs or a route(prefix, provider)",
                        configured.join(", ")
                    ),
                ));
            };
            if !used.iter().any(|u| u.name() == p.name()) {
                used.push(Arc::clone(p));
            }
            pairs.push((Arc::clone(p), n));
        }
        let client = self.options.http_client().map_err(|e| BuildError::new(CRATE, "http", e))?;
        for p in &used {
            p.check(&client)?;
            let need = encoding::limit(encoding::Encoding::Gsm7, self.segments);
            if need > p.max_chars() {
                return Err(BuildError::new(
                    CRATE,
                    "segments",
                    format!(
                        "{} segments hold {need} characters, over {}'s limit of {}",
                        self.segments,
                        p.name(),
                        p.max_chars()
                    ),
                ));
            }
        }
        Ok(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164() {
        assert_eq!(normalize_e164("+15558675310").as_deref(), Some("+15558675310"));
        assert_eq!(normalize_e164("+1 (555) 867-5310").as_deref(), Some("+15558675310"));
        assert_eq!(normalize_e164("+91 98765.43210").as_deref(), Some("+919876543210"));
        for bad in ["15558675310", "+", "+123", "+1234567890123456", "+1555abc5310", "+05558675310", "", "++1555867"] {
            assert_eq!(normalize_e164(bad), None, "{bad}");
        }
        assert_eq!(mask("+15558675310"), "+1555…10");
    }
}
