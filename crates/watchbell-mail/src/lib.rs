//! # watchbell-mail
//!
//! A `tracing` layer that sends alert mails over SMTP through [lettre]'s async transport (with
//! rustls), run on watchbell's own background thread: the application needs no tokio runtime,
//! and logging never waits on the mail server.
//!
//! ```no_run
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//! use watchbell_core::{Level, SinkOptions};
//! use watchbell_mail::MailLayer;
//!
//! let (layer, guard) = MailLayer::builder("smtp.example.com")
//!     .starttls()                                  // port 587, STARTTLS required
//!     .credentials("alerts@example.com", "app-password")
//!     .from_name("Billing alerts", "alerts@example.com")
//!     .to("ops@example.com")
//!     .to("On call <oncall@example.com>")
//!     .app("billing")
//!     .level(Level::ERROR)
//!     .rate_limit(1, Duration::from_secs(300))     // per callsite
//!     .build()
//!     .expect("a valid configuration");
//! tracing_subscriber::registry().with(layer).init();
//!
//! tracing::error!(invoice = 42, error = "connection refused", "payment failed");
//!
//! // At the end of main: deliver what is pending, within 10 s.
//! guard.shutdown(Duration::from_secs(10));
//! ```
//!
//! ## What a mail looks like
//!
//! A `text/plain; charset=utf-8` mail. The subject is the template `[{app}] {level}: {message}`
//! made one line (every CR, LF and other control char becomes a space, so log text can never
//! add a header) and cut to 200 chars with `…`; non-ASCII text is RFC 2047-encoded by lettre.
//! Log text shaped like an encoded-word (`=?utf-8?b?...?=`), which mail readers would decode and
//! show as other text, gets an invisible WORD JOINER (U+2060) between `=` and `?`, so it is shown
//! as written.
//! The `Date` header is the time of the record that matters (the trigger of an escalation, the
//! first of a group, the most severe otherwise). The body follows Logbook's `MailHandler`:
//!
//! ```text
//! Message type:    ERROR
//! Location:        src/pay.rs:42
//! Module:          billing::pay
//! Target:          billing::pay
//! Time:            2026-11-21T18:21:45.123456Z
//! Host:            db-1
//! Thread:          main
//!
//! Message:
//!
//! payment failed
//!
//! Fields:
//!
//!   invoice  42
//!   user     bob
//!
//! Span fields:
//!
//!   request.id  7
//!
//! Error:
//!
//!   db timeout: connection reset
//!
//! This message occurred 3 more times and was suppressed.
//! ```
//!
//! Lines and sections with nothing to show are left out. `Error:` shows the field named
//! `error` (a `std::error::Error` recorded with its source chain). The last line appears when
//! the rate limit withheld similar records.
//!
//! Batches become one mail each:
//!
//! - an escalation (from a fingers-crossed buffer, handed to [`MailBuilder::build_handler`]):
//!   the trigger's block, then `Log records that led up to this one:` with each earlier record
//!   on one short line (or in the [`related_format`](MailBuilder::related_format)), oldest
//!   first;
//! - a group: the first record's block, then `Other log records in the same group:`;
//! - several independent records (queued while the server was busy or the pace held them, or a
//!   flush): one digest mail, subject `... (+N more)`, each record's block in turn.
//!
//! [`format`](MailBuilder::format) replaces a record's block by your own text (a closure or a
//! [`Template`]); if it panics, the mail is sent with the default block instead (and the panic
//! is reported once on stderr by Rust's panic hook), never lost.
//!
//! ## Custom headers, recipients per record, related records
//!
//! ```no_run
//! use watchbell_core::format::Template;
//! use watchbell_core::Level;
//! use watchbell_mail::{MailLayer, Route};
//!
//! let (mail, guard) = MailLayer::builder("smtp.example.com")
//!     .from("alerts@example.com")
//!     .to("ops@example.com")                      // the default recipients
//!     .header("X-Team", "payments")               // on every mail
//!     .header("Reply-To", "payments@example.com")
//!     // Per record: the closure first (None: no opinion), then the routes in order.
//!     .route(|r| r.field("customer")?.as_str().filter(|c| *c == "acme").map(|_| vec!["acme-oncall@example.com".into()]))
//!     .add_route(Route::to(["invoicing@example.com"]).target("billing::invoice").level(Level::WARN))
//!     .add_route(Route::to(["dba@example.com"]).field("db", "main"))
//!     // Each record that led up to an error, in the mail under the error's block.
//!     .related_format(Template::parse("{time} {level:<5} {location} {message}").unwrap())
//!     .build_handler()
//!     .expect("a valid configuration");
//! # drop((mail, guard));
//! ```
//!
//! - **Headers** ([`header`](MailBuilder::header)): a valid RFC 5322 field name and a value
//!   without control characters, both checked at build time (CR/LF can never start a header);
//!   the headers watchbell writes itself (`From`, `Sender`, `To`, `Cc`, `Bcc`, `Subject`,
//!   `Date`, `Message-ID`, `MIME-Version`, `Content-*`, `Return-Path`) are refused rather than
//!   overridden. Setting a name twice keeps the last value.
//! - **Recipients per record** ([`route`](MailBuilder::route), [`add_route`](MailBuilder::add_route),
//!   `[[mail.route]]` in `watchbell.toml`): the closure's answer, else the first [`Route`] that
//!   matches (by least level, target prefix, field values), else the default
//!   [`to`](MailBuilder::to) list. A digest of records with different recipients becomes one
//!   mail per recipient set (in the order of each set's first record, with its own subject
//!   `(+N more)`); an escalation or a group stays one mail, to its significant record's
//!   recipients (as Logbook's `get_recipients(trigger)`).
//! - **One recipient set failing does not hold back the others.** A set refused for good
//!   (`550`) is counted as failed for its records only; a set put off (`4xx`) is retried alone,
//!   and the mails that already went are not sent again. The delivery's stats count each
//!   record once: delivered, or failed. After a timeout the other sets of that batch wait for
//!   the retry instead of each waiting out the timeout.
//! - **Related records** ([`related_format`](MailBuilder::related_format)): Logbook's
//!   `related_format_string`, a [`Template`] (the placeholders of the subject) or a closure,
//!   for each record of an escalation before its trigger, or of a group after its first.
//!
//! ## Fed by other handlers
//!
//! [`build_handler`](MailBuilder::build_handler) gives the mail delivery as a
//! [`Handler`], for a fingers-crossed buffer or a group handler to feed: each batch it hands
//! over with [`Handler::handle_batch`] is kept together by the delivery (and passes the rate
//! limit untouched) and becomes one mail.
//!
//! ```no_run
//! use watchbell_core::{Batch, BatchReason, Level, Record};
//! use watchbell_mail::MailLayer;
//!
//! let (mail, guard) = MailLayer::builder("smtp.example.com")
//!     .from("alerts@example.com")
//!     .to("ops@example.com")
//!     .build_handler()
//!     .expect("a valid configuration");
//! // What a fingers-crossed buffer does when an error arrives:
//! mail.handle_batch(Batch::new(
//!     BatchReason::Escalation,
//!     vec![
//!         Record::new(Level::DEBUG, "app", "cache miss"),
//!         Record::new(Level::ERROR, "app", "payment failed"), // the trigger, last
//!     ],
//! ));
//! guard.shutdown(std::time::Duration::from_secs(10));
//! ```
//!
//! ## Ticket links
//!
//! With [`ticket_link`](MailBuilder::ticket_link) (what `[ticketing] public_url` sets in the
//! umbrella crate's config), each record's block gets a line
//! `Ticket:          https://tickets.example.com/fp/APP/FINGERPRINT` among its header lines,
//! before the message (a body cut to its limit never loses it). The mail stays `text/plain`
//! (mail readers make the URL a link); a custom format or subject can write `{ticket_url}`.
//! The ticket page lists `mail`.
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
//! | TLS | STARTTLS required, port 587: the mail fails (permanently, before credentials are sent) if the server does not offer it | [`starttls`](MailBuilder::starttls), [`implicit_tls`](MailBuilder::implicit_tls) (465), [`plain`](MailBuilder::plain) (25) |
//! | plain SMTP | only to loopback (`localhost`, `127.0.0.1`, `::1`), or anywhere after `allow_plain_http(true)` (the common opt-in to an unencrypted transport) | [`plain`](MailBuilder::plain), `allow_plain_http` |
//! | certificates | verified by rustls against the platform's roots (rustls-platform-verifier) plus the ones you add (a self-signed server certificate must be CA:FALSE; a CA:TRUE one is refused with an error that says so) | [`add_root_certificate`](MailBuilder::add_root_certificate) |
//! | level captured | `ERROR` | [`level`](MailBuilder::level) |
//! | rate limit | 1 record per 60 s per callsite fingerprint (Logbook's `record_limit` / `record_delta`); the rest are counted and reported in the next mail of that callsite, or at flush | `rate_limit`, `no_rate_limit` |
//! | coalescing | records arriving within 1 s of the first one go into one digest mail (at most 100 records per mail) | [`batch_wait`](MailBuilder::batch_wait), [`batch_records`](MailBuilder::batch_records) |
//! | pace | at most 1 mail per 5 s; records that arrive meanwhile coalesce into the next mail | `pace` |
//! | timeout | 60 s for one mail's whole SMTP conversation (connect, TLS, AUTH, the transaction); a server that takes longer is given up on, its connection dropped, and the mail retried | `timeout` |
//! | connections | reused (lettre's pool, one connection, closed after 60 s idle) | — |
//! | retries | `Retry::default()`: 500 ms doubling to 60 s, for 10 minutes per mail | `retry` |
//! | queue | 10,000 records, the newest dropped and counted when full | `queue_records`, `overflow` |
//! | app name | the executable's file name | [`app`](MailBuilder::app) |
//! | subject | `[{app}] {level}: {message}`, one line, at most 200 chars | [`subject`](MailBuilder::subject), [`max_subject_chars`](MailBuilder::max_subject_chars) |
//! | body size | at most 2 MiB of text, cut at a char boundary with `…[truncated]` | [`max_body_bytes`](MailBuilder::max_body_bytes) |
//! | host line | this machine's host name | [`host_name`](MailBuilder::host_name) |
//! | extra headers | none | [`header`](MailBuilder::header) |
//! | recipients | the [`to`](MailBuilder::to) list for every record | [`route`](MailBuilder::route), [`add_route`](MailBuilder::add_route) |
//! | related records | one short line each: `time LEVEL target: message fields` | [`related_format`](MailBuilder::related_format) |
//!
//! The setters without a link are the common ones of every watchbell sink, from
//! [`SinkOptions`] (bring it into scope with `use watchbell_core::SinkOptions;`).
//!
//! ## How SMTP answers are handled
//!
//! - `4xx` replies (`421 try again later`, `451`, `452`), timeouts and connection errors are
//!   retried with backoff; a mail accepted after retries is delivered once.
//! - `5xx` replies (`550 mailbox unavailable`, `535` bad credentials, `552`), a server that does
//!   not offer STARTTLS when it is required, no usable AUTH mechanism, and TLS failures
//!   (certificate not trusted, wrong host) are permanent: not retried, counted as failed in
//!   [`Guard::stats`](watchbell_core::Guard::stats) and printed once on stderr.
//!
//! The password is a [`Secret`]: it appears in no `Debug` output, error, stats or panic
//! message.
#![deny(missing_docs)]

mod layout;
mod route;
mod sink;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::AsyncSmtpTransport;
use tracing_core::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use watchbell_core::format::{Format, FormatContext, Template};
use watchbell_core::secret::{is_loopback_host, Secret};
use watchbell_core::{Guard, Handler, Level, Record};

pub use watchbell_core::{BuildError, Options, SinkLayer, SinkOptions};

use crate::layout::Layout;
pub use crate::route::Route;
use crate::route::{RouteFn, Router, Rule};
use crate::sink::MailSink;

/// Entry points for fuzz targets and property tests: the subject as made from log text, and
/// the whole mail as sent in `DATA`. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use watchbell_core::format::{FormatContext, Template};
    use watchbell_core::{Batch, BatchReason, Record};

    use crate::layout::Layout;

    fn layout(template: &str, max_subject_chars: usize) -> Result<Layout, String> {
        Ok(Layout {
            cx: FormatContext::new("app".to_owned()),
            subject: Template::parse(template).map_err(|e| e.to_string())?,
            max_subject_chars: max_subject_chars.max(10),
            max_body_bytes: crate::DEFAULT_MAX_BODY_BYTES,
            format: None,
            related: None,
        })
    }

    /// The subject of a mail about `record` with this subject template (an error for an
    /// invalid template) and limit, before lettre encodes it.
    pub fn subject(template: &str, max_subject_chars: usize, record: &Record) -> Result<String, String> {
        let layout = layout(template, max_subject_chars)?;
        let batch = Batch::new(BatchReason::Single, vec![record.clone()]);
        Ok(layout.subject(&batch, record))
    }

    /// The whole mail (headers, blank line, body) a batch of `records` becomes, as the server
    /// receives it in `DATA`, from `alerts@example.com` to `ops@example.com`.
    pub fn mail(template: &str, max_subject_chars: usize, records: Vec<Record>) -> Result<Vec<u8>, String> {
        let layout = layout(template, max_subject_chars)?;
        let from = "Alerts <alerts@example.com>".parse().map_err(|e| format!("{e}"))?;
        let to = vec!["ops@example.com".parse().map_err(|e| format!("{e}"))?];
        let batch = Batch::new(BatchReason::Single, records);
        Ok(crate::sink::message(&from, &to, &[], &layout, &batch)?.map(|m| m.formatted()).unwrap_or_default())
    }
}

const CRATE: &str = "watchbell-mail";

/// The default subject template.
pub const DEFAULT_SUBJECT: &str = "[{app}] {level}: {message}";
/// The default longest subject, in chars.
pub const DEFAULT_MAX_SUBJECT_CHARS: usize = 200;
/// The default largest body, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 << 20;

/// Where [`MailLayer::builder`] starts.
#[derive(Debug)]
pub struct MailLayer(());

impl MailLayer {
    /// A builder for mails through the SMTP server at `host` (a name, or an IP address).
    pub fn builder(host: impl Into<String>) -> MailBuilder {
        MailBuilder {
            host: host.into(),
            port: None,
            security: Security::StartTls,
            credentials: None,
            from: None,
            to: Vec::new(),
            app: None,
            host_name: None,
            level: Level::ERROR,
            subject: DEFAULT_SUBJECT.to_owned(),
            max_subject_chars: DEFAULT_MAX_SUBJECT_CHARS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            format: None,
            related_format: None,
            ticket_link: None,
            headers: Vec::new(),
            route_fn: None,
            routes: Vec::new(),
            roots: Vec::new(),
            batch_wait: Duration::from_secs(1),
            batch_records: 100,
            options: Options::new()
                .rate_limit(1, Duration::from_secs(60))
                .pace(Duration::from_secs(5))
                .timeout(Duration::from_secs(60)),
        }
    }
}

/// How the connection to the server is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (SMTPS), port 465 by default.
    ImplicitTls,
    /// A plain connection upgraded with STARTTLS, which is required: if the server does not
    /// offer it, nothing (no credentials, no mail) is sent. Port 587 by default.
    StartTls,
    /// No encryption at all, port 25 by default: for a relay on the same machine, or with
    /// `allow_plain_http(true)` for a trusted network.
    Plain,
}

impl Security {
    /// The port used when none is set.
    pub fn default_port(self) -> u16 {
        match self {
            Security::ImplicitTls => 465,
            Security::StartTls => 587,
            Security::Plain => 25,
        }
    }
}

/// Configures a mail layer; see the [crate docs](crate) for the defaults.
pub struct MailBuilder {
    host: String,
    port: Option<u16>,
    security: Security,
    credentials: Option<(String, Secret<String>)>,
    from: Option<String>,
    to: Vec<String>,
    app: Option<String>,
    host_name: Option<String>,
    level: Level,
    subject: String,
    max_subject_chars: usize,
    max_body_bytes: usize,
    format: Option<Arc<dyn Format>>,
    related_format: Option<Arc<dyn Format>>,
    ticket_link: Option<watchbell_core::TicketLink>,
    headers: Vec<(String, String)>,
    route_fn: Option<RouteFn>,
    routes: Vec<Route>,
    roots: Vec<String>,
    batch_wait: Duration,
    batch_records: usize,
    options: Options,
}

impl fmt::Debug for MailBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailBuilder")
            .field("host", &self.host)
            .field("port", &self.effective_port())
            .field("security", &self.security)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("password", &self.credentials.as_ref().map(|(_, p)| p))
            .field("from", &self.from)
            .field("to", &self.to)
            .field("app", &self.app)
            .field("level", &self.level)
            .field("subject", &self.subject)
            .field("max_subject_chars", &self.max_subject_chars)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("custom_format", &self.format.is_some())
            .field("related_format", &self.related_format.is_some())
            .field("ticket_link", &self.ticket_link)
            .field("headers", &self.headers)
            .field("route_fn", &self.route_fn.is_some())
            .field("routes", &self.routes)
            .field("extra_roots", &self.roots.len())
            .field("batch_wait", &self.batch_wait)
            .field("batch_records", &self.batch_records)
            .field("options", &self.options)
            .finish()
    }
}

impl SinkOptions for MailBuilder {
    fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }
}

impl MailBuilder {
    /// TLS from the first byte (SMTPS, port 465 unless [`port`](Self::port) says otherwise).
    pub fn implicit_tls(mut self) -> Self {
        self.security = Security::ImplicitTls;
        self
    }

    /// STARTTLS, required (port 587 unless [`port`](Self::port) says otherwise). The default.
    pub fn starttls(mut self) -> Self {
        self.security = Security::StartTls;
        self
    }

    /// No encryption (port 25 unless [`port`](Self::port) says otherwise). Accepted for a
    /// loopback host; for any other host `allow_plain_http(true)` must be set too.
    pub fn plain(mut self) -> Self {
        self.security = Security::Plain;
        self
    }

    /// The connection's security (same as [`implicit_tls`](Self::implicit_tls),
    /// [`starttls`](Self::starttls) or [`plain`](Self::plain)).
    pub fn security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// The server's port (default: by [`Security::default_port`]).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Authenticates with this user and password (AUTH PLAIN or LOGIN, whichever the server
    /// offers). The password is kept as a [`Secret`].
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), Secret::new(password.into())));
        self
    }

    /// The sender: `alerts@example.com` or `Billing alerts <alerts@example.com>`. Required.
    pub fn from(mut self, mailbox: impl Into<String>) -> Self {
        self.from = Some(mailbox.into());
        self
    }

    /// The sender with a display name (encoded by lettre when it is not ASCII).
    pub fn from_name(mut self, name: impl Into<String>, address: impl Into<String>) -> Self {
        let name = name.into().replace(['"', '\\'], "");
        self.from = Some(format!("\"{}\" <{}>", name, address.into()));
        self
    }

    /// Adds a recipient: `ops@example.com` or `On call <oncall@example.com>`. At least one is
    /// required; each mail goes to all of them, unless [`route`](Self::route) or a
    /// [`Route`] chooses others for its records.
    pub fn to(mut self, mailbox: impl Into<String>) -> Self {
        self.to.push(mailbox.into());
        self
    }

    /// The application's name, `{app}` in the subject (default: the executable's file name).
    pub fn app(mut self, name: impl Into<String>) -> Self {
        self.app = Some(name.into());
        self
    }

    /// The `Host:` line of the body, `{host}` in templates (default: this machine's name).
    pub fn host_name(mut self, name: impl Into<String>) -> Self {
        self.host_name = Some(name.into());
        self
    }

    /// The least severe level mailed (default `ERROR`).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// The subject template (default [`DEFAULT_SUBJECT`]), with the placeholders of
    /// [`Template`]. Checked at build time. The result is made one line and cut to
    /// [`max_subject_chars`](Self::max_subject_chars).
    pub fn subject(mut self, template: impl Into<String>) -> Self {
        self.subject = template.into();
        self
    }

    /// The longest subject in chars (default 200; at least 10).
    pub fn max_subject_chars(mut self, n: usize) -> Self {
        self.max_subject_chars = n.max(10);
        self
    }

    /// The largest body in bytes (default 2 MiB; at least 1 KiB). Longer text is cut at a char
    /// boundary and ends with `…[truncated]`.
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n.max(1024);
        self
    }

    /// Links every alert to its ticket in the ticket viewer (see
    /// [the crate docs](crate#ticket-links)): the default block gets a `Ticket:` line with the
    /// URL among its header lines (so cutting a long body never cuts it), a custom format or
    /// subject can write `{ticket_url}`, and each delivered record is told to the ticketing
    /// layer's journal ([`watchbell_core::notified`]) so that the ticket page lists `mail`.
    pub fn ticket_link(mut self, link: watchbell_core::TicketLink) -> Self {
        self.ticket_link = Some(link);
        self
    }

    /// Replaces each record's block in the body by this format's text (a closure
    /// `Fn(&Record, &FormatContext) -> String`, or a [`Template`]). The batch framing ("Log
    /// records that led up to this one:") stays.
    pub fn format(mut self, format: impl Format) -> Self {
        self.format = Some(Arc::new(format));
        self
    }

    /// The text of each related record of an escalation (the records that led up to the
    /// trigger) or a group (the others), shown under the significant record's block, as
    /// Logbook's `related_format_string`: a closure or a [`Template`] (the placeholders of the
    /// subject). Default: one short line per record, `time LEVEL target: message fields`. A text
    /// of several lines is followed by a blank line; a panicking format gives the short line.
    ///
    /// ```
    /// use watchbell_core::format::Template;
    /// use watchbell_mail::MailLayer;
    ///
    /// let b = MailLayer::builder("smtp.example.com")
    ///     .related_format(Template::parse("{level:<5} {location} {message}").unwrap());
    /// ```
    pub fn related_format(mut self, format: impl Format) -> Self {
        self.related_format = Some(Arc::new(format));
        self
    }

    /// Adds a header to every mail, e.g. `header("X-Team", "payments")` or
    /// `header("Reply-To", "payments@example.com")`. Checked at build time:
    ///
    /// - the name is an RFC 5322 field name (printable ASCII without `:` or spaces, at most 76
    ///   chars);
    /// - the headers watchbell writes itself (`From`, `Sender`, `To`, `Cc`, `Bcc`, `Subject`,
    ///   `Date`, `Message-ID`, `MIME-Version`, `Content-*`, `Return-Path`) are refused: the
    ///   recipients come from [`to`](Self::to) and the routes, and a second `From` or `Date`
    ///   would make an invalid mail;
    /// - the value holds no control character (no CR or LF, so it can never start another
    ///   header) and at most 900 chars; non-ASCII text is RFC 2047-encoded, long values folded.
    ///
    /// Names are compared without case: setting a name again replaces the earlier value.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }

    /// Chooses the recipients of each record: `Some(addresses)` sends the record there, `None`
    /// leaves it to the [routes](Self::add_route) and then the default [`to`](Self::to) list.
    /// Logbook's `MailHandler.get_recipients`.
    ///
    /// The closure runs on the delivery's background thread, once per record of each mail
    /// being made (so it may be slow-ish, but should not block). Addresses that do not parse
    /// are skipped; an answer with no usable address, or a panic, counts as `None`: a record
    /// always has recipients. Records of a digest with different recipients make one mail per
    /// recipient set; an escalation or a group stays one mail, to the recipients of its
    /// significant record (the trigger, the group's first record).
    ///
    /// ```
    /// use watchbell_mail::MailLayer;
    ///
    /// let b = MailLayer::builder("smtp.example.com")
    ///     .from("alerts@example.com")
    ///     .to("ops@example.com")
    ///     .route(|r| {
    ///         let tenant = r.field("tenant")?.as_str()?;
    ///         Some(vec![format!("{tenant}-oncall@example.com")])
    ///     });
    /// ```
    pub fn route<F>(mut self, f: F) -> Self
    where
        F: Fn(&Record) -> Option<Vec<String>> + Send + Sync + 'static,
    {
        self.route_fn = Some(Arc::new(f));
        self
    }

    /// Adds a routing [`Route`]: records it matches go to its recipients instead of the
    /// default [`to`](Self::to) list. Rules are tried in the order added, after the
    /// [`route`](Self::route) closure; the first that matches wins.
    pub fn add_route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Trusts this certificate (PEM) as a root, besides the platform's: for a server with a
    /// private CA, or with a self-signed certificate. Checked at build time.
    ///
    /// A self-signed server certificate is accepted only as an end-entity certificate
    /// (`basicConstraints CA:FALSE`, as `openssl req -x509 -addext basicConstraints=CA:FALSE` or
    /// rcgen make it): rustls, like browsers, refuses a CA certificate used as the server's own
    /// (`CaUsedAsEndEntity`). For a CA:TRUE certificate, let that CA sign a server certificate
    /// and trust the CA here.
    pub fn add_root_certificate(mut self, pem: impl Into<String>) -> Self {
        self.roots.push(pem.into());
        self
    }

    /// How long the first queued record waits for others to share its mail (default 1 s).
    pub fn batch_wait(mut self, d: Duration) -> Self {
        self.batch_wait = d;
        self
    }

    /// The most independent records in one digest mail (default 100). Escalation and group
    /// batches always make one mail whatever their size.
    pub fn batch_records(mut self, n: usize) -> Self {
        self.batch_records = n.max(1);
        self
    }

    fn effective_port(&self) -> u16 {
        self.port.unwrap_or(self.security.default_port())
    }

    /// The layer and the [`Guard`] of its delivery. Keep the guard until the end of `main`.
    ///
    /// # Errors
    /// A [`BuildError`] naming the setting at fault: no or an invalid sender or recipient, an
    /// empty host, plain SMTP to a remote host without the opt-in, an invalid subject template
    /// or root certificate. It never contains the password.
    pub fn build<S>(self) -> Result<(SinkLayer<S>, Guard), BuildError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let level = self.level;
        let handler = self.handler()?;
        Ok(watchbell_core::options::layer(handler, level))
    }

    /// The mail delivery as a [`Handler`] (rate limit included), and its [`Guard`], to feed
    /// from other handlers: a fingers-crossed buffer's escalation batch handed to
    /// [`Handler::handle_batch`] becomes one mail. The level set with
    /// [`level`](Self::level) is not applied here (the feeding handler chooses).
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn build_handler(self) -> Result<(Arc<dyn Handler>, Guard), BuildError> {
        let handler = self.handler()?;
        let guard = Guard::new(Arc::clone(&handler));
        Ok((handler, guard))
    }

    fn handler(self) -> Result<Arc<dyn Handler>, BuildError> {
        let host = self.host.trim().to_owned();
        if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
            return Err(BuildError::new(CRATE, "host", "expected a host name or IP address such as smtp.example.com"));
        }
        let from_text = self.from.as_deref().ok_or_else(|| {
            BuildError::new(CRATE, "from", "a sender is required, e.g. .from(\"Alerts <alerts@example.com>\")")
        })?;
        let from = parse_mailbox(from_text, "from")?;
        if self.to.is_empty() {
            return Err(BuildError::new(
                CRATE,
                "to",
                "at least one recipient is required, e.g. .to(\"ops@example.com\")",
            ));
        }
        let to = self
            .to
            .iter()
            .enumerate()
            .map(|(i, t)| parse_mailbox(t, &format!("to[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut rules = Vec::with_capacity(self.routes.len());
        for (i, route) in self.routes.iter().enumerate() {
            if route.to.is_empty() {
                return Err(BuildError::new(
                    CRATE,
                    format!("route[{i}].to"),
                    "a route needs at least one recipient, e.g. Route::to([\"billing@example.com\"])",
                ));
            }
            let to = route
                .to
                .iter()
                .enumerate()
                .map(|(j, t)| parse_mailbox(t, &format!("route[{i}].to[{j}]")))
                .collect::<Result<Vec<_>, _>>()?;
            rules.push(Rule { route: route.clone(), to });
        }
        let router = Router { route_fn: self.route_fn.clone(), rules, default: to };
        let headers = self.headers.iter().map(|(n, v)| custom_header(n, v)).collect::<Result<Vec<_>, _>>()?;
        let subject = Template::parse(&self.subject)
            .map_err(|e| BuildError::new(CRATE, "subject", format!("invalid template: {e}")))?;
        if self.security == Security::Plain && !is_loopback_host(&host) && !self.options.allow_plain_http {
            return Err(BuildError::new(
                CRATE,
                "security",
                format!(
                    "plain SMTP to {host} would send the mail (and any password) unencrypted; use .starttls() or \
                     .implicit_tls(), or opt in with .allow_plain_http(true) for a trusted network"
                ),
            ));
        }
        let tls = match self.security {
            Security::Plain => Tls::None,
            s => {
                let mut params = TlsParameters::builder(host.clone());
                for (i, pem) in self.roots.iter().enumerate() {
                    if !pem.contains("-----BEGIN CERTIFICATE-----") {
                        return Err(BuildError::new(
                            CRATE,
                            format!("root_certificates[{i}]"),
                            "not a PEM certificate (-----BEGIN CERTIFICATE----- ...)",
                        ));
                    }
                    let cert = Certificate::from_pem(pem.as_bytes()).map_err(|_| {
                        BuildError::new(CRATE, format!("root_certificates[{i}]"), "not a PEM certificate")
                    })?;
                    params = params.add_root_certificate(cert);
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| BuildError::new(CRATE, "tls", format!("cannot set up TLS: {e}")))?;
                if s == Security::ImplicitTls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut transport = AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(host.clone())
            .port(self.effective_port())
            .tls(tls)
            .timeout(Some(self.options.timeout))
            .pool_config(PoolConfig::new().max_size(1).idle_timeout(Duration::from_secs(60)));
        if let Some((user, password)) = &self.credentials {
            transport = transport.credentials(Credentials::new(user.clone(), password.expose().clone()));
        }
        let app = self.app.clone().or_else(exe_name).unwrap_or_else(|| "app".to_owned());
        let host_name = self.host_name.clone().or_else(FormatContext::local_host);
        let mut cx = FormatContext::new(app).with_ticket_link(self.ticket_link.clone());
        cx.host = host_name;
        let layout = Layout {
            cx,
            subject,
            max_subject_chars: self.max_subject_chars,
            max_body_bytes: self.max_body_bytes,
            format: self.format.clone(),
            related: self.related_format.clone(),
        };
        let sink = MailSink::new(transport, from, router, headers, layout, self.options.timeout);
        let delivery = self
            .options
            .delivery(format!("mail:{host}"), sink)
            .batch_wait(self.batch_wait)
            .batch_records(self.batch_records)
            .spawn()
            .map_err(|e| BuildError::new(CRATE, "delivery", format!("cannot start the worker thread: {e}")))?;
        Ok(self.options.limited("mail", delivery))
    }
}

fn parse_mailbox(text: &str, key: &str) -> Result<Mailbox, BuildError> {
    if text.contains(['\r', '\n']) {
        return Err(BuildError::new(CRATE, key, "a mailbox cannot contain a line break"));
    }
    text.trim().parse::<Mailbox>().map_err(|e| {
        BuildError::new(
            CRATE,
            key,
            format!("{text:?} is not a mailbox ({e}); expected user@example.com or Name <user@example.com>"),
        )
    })
}

/// The headers watchbell writes itself, which [`MailBuilder::header`] refuses (and any
/// `Content-*`).
const OWN_HEADERS: [&str; 10] =
    ["From", "Sender", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "MIME-Version", "Return-Path"];

/// The longest custom header value, in chars.
const MAX_HEADER_VALUE_CHARS: usize = 900;

fn custom_header(name: &str, value: &str) -> Result<HeaderValue, BuildError> {
    let key = format!("header[{name:?}]");
    // RFC 5322 §3.6.8: field-name = 1*ftext, ftext = %d33-57 / %d59-126.
    if name.is_empty() || name.len() > 76 || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
        return Err(BuildError::new(
            CRATE,
            key,
            "not a header name: expected 1 to 76 printable ASCII chars without ':' or spaces, such as X-Team",
        ));
    }
    if OWN_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name))
        || name.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("content-"))
    {
        return Err(BuildError::new(
            CRATE,
            key,
            format!(
                "{name} is written by watchbell itself and cannot be replaced (recipients come from .to() and the \
                 routes, the text from the subject and the formats)"
            ),
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(BuildError::new(
            CRATE,
            key,
            "a header value cannot contain a line break or another control character",
        ));
    }
    if value.chars().count() > MAX_HEADER_VALUE_CHARS {
        return Err(BuildError::new(CRATE, key, format!("a header value is at most {MAX_HEADER_VALUE_CHARS} chars")));
    }
    let name = HeaderName::new_from_ascii(name.to_owned())
        .map_err(|_| BuildError::new(CRATE, format!("header[{name:?}]"), "not a header name"))?;
    Ok(HeaderValue::new(name, value.trim().to_owned()))
}

fn exe_name() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.file_stem()?.to_string_lossy().into_owned())
}
