//! # watchbell-http
//!
//! Batch shipping of tracing records to log collectors: NDJSON, JSON, Loki, Elasticsearch bulk,
//! OTLP/HTTP JSON, and the standard library's single-record form.
//!
//! Records are captured on the caller's thread and shipped from watchbell's own worker thread,
//! first in first out, in real batched requests, with retries, gzip and bounded memory (and,
//! optionally, a bounded disk spool). A slow or dead collector never blocks the application.
//!
//! ```no_run
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//! use watchbell_core::{Level, SinkOptions};
//! use watchbell_http::{Encoding, HttpLayer};
//!
//! let (layer, guard) = HttpLayer::builder("https://loki.example.com")
//!     .encoding(Encoding::loki())
//!     .app("billing")
//!     .basic_auth("tenant-1", "s3cret")
//!     .header("X-Scope-OrgID", "tenant-1")
//!     .level(Level::INFO)
//!     .timeout(Duration::from_secs(5))
//!     .spool("/var/spool/billing-logs", 256 << 20)
//!     .build()
//!     .expect("a valid configuration");
//! tracing_subscriber::registry().with(layer).init();
//!
//! tracing::info!(order = 42, "order shipped");
//!
//! // At the end of main: deliver what is pending, within 5 s.
//! let _ = guard.shutdown(Duration::from_secs(5));
//! ```
//!
//! ## The JSON record shape (stable)
//!
//! [`Encoding::Ndjson`], [`Encoding::JsonArray`], the Loki line and the `_bulk` document write
//! each record as one JSON object with these keys, in this order:
//!
//! | key | type | content |
//! |---|---|---|
//! | `time` | string | RFC 3339, UTC, microseconds: `2026-11-21T18:21:45.123456Z` (`@timestamp` in `_bulk` documents) |
//! | `level` | string | `ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE` |
//! | `target` | string | the event's target |
//! | `module` | string | the module path (absent when unknown) |
//! | `file` | string | the source file (absent when unknown) |
//! | `line` | number | the source line (absent when unknown) |
//! | `message` | string | the message (empty when the event had none) |
//! | `fields` | object | the event's fields: strings, integers, floats, booleans (`?`/`%` values as strings; 128-bit integers as decimal strings) |
//! | `spans` | array | the span stack, root first: `{"name": "request", "fields": {..}}` |
//! | `thread` | string | the thread's name (absent when unnamed) |
//! | `pid` | number | the id of the process that logged |
//! | `fingerprint` | string | the callsite fingerprint, 16 hex digits |
//! | `app` | string | [`app`](HttpBuilder::app) (absent when unset) |
//! | `host` | string | [`host`](HttpBuilder::host) (the machine's hostname by default) |
//! | `suppressed` | number | similar records a rate limit withheld before this one (absent when 0) |
//!
//! Keys may be added in later versions; none is renamed or removed. Every string is JSON-escaped
//! (control characters included), so hostile log text cannot break a line or a document.
//!
//! ## Encodings
//!
//! - **NDJSON** (default): one record per line, every line ending in `\n`,
//!   `Content-Type: application/x-ndjson` — Vector's and Fluent Bit's `http` sources, custom
//!   receivers.
//! - **JSON array**: `[record, record, ...]`, `application/json`.
//! - **Loki** ([`Encoding::loki`]): `POST /loki/api/v1/push` (added to the URL when it has no
//!   path), one stream per distinct label set, values `["<unix ns>", "<line>", {metadata}]`.
//!   Labels come only from [`LokiLabel`] — `app`, `level` (lowercase), `target`, `host` — to keep
//!   cardinality low (one whose value is empty, as an empty target, is left out: Loki reads an
//!   empty value as no label; `level` stands in when no label is left); entries of a stream are
//!   sent in time order (records with the same time keep their order); the line is the JSON
//!   record shape (its message shortened with `…[truncated]` when the line would pass Loki's
//!   256 KB `max_line_size`), and structured
//!   metadata carries `fingerprint` and, when the record or its spans have them, `trace_id`,
//!   `span_id` and `request_id`. Multi-tenant Loki: `.header("X-Scope-OrgID", "tenant")`.
//! - **Elasticsearch / OpenSearch `_bulk`** ([`Encoding::elastic_bulk`]): `/_bulk` is added
//!   to the URL unless it ends with it; a `{"create":{"_index":"<index>"}}` line then the
//!   document per record (`@timestamp` instead of `time`, for data streams); the body ends in
//!   `\n`. The per-item results are read: items answered 429 or 5xx are retried (with backoff,
//!   only those items: the others are not sent again), items answered 400/409 and other 4xx
//!   are given up on and counted (`<name>/items` in [`Guard::stats`]). The answer is read as
//!   a stream, so one cut short (the client keeps its first 64 KiB: about 1,400 items) still
//!   gives the items before the cut. Records without a readable result — after the cut, missing
//!   from a shorter list, an item without a numeric status, or every record when `"errors":
//!   true` comes without usable `items` — are sent again: delivery is at least once, a record
//!   that was in fact indexed may be indexed twice. A 2xx answer that is not a `_bulk` answer at
//!   all (not JSON, not an object, neither `errors` nor `items`, e.g. a proxy's page) is
//!   trusted: its records are counted delivered, and also as `delivered` in a
//!   `<name>/unverified` stats line with the reason (printed once on stderr), not sent again.
//!   Nothing in an answer can panic the worker. API keys:
//!   `.header("Authorization", "ApiKey <base64>")`.
//! - **OTLP/HTTP JSON** ([`Encoding::otlp`]): `POST /v1/logs` (added when the URL has no path),
//!   one `resourceLogs` entry with `service.name` (and `host.name`, `app`), scope `watchbell`;
//!   per record `timeUnixNano` (string), `severityNumber` (TRACE 1, DEBUG 5, INFO 9, WARN 13,
//!   ERROR 17), `severityText`, `body.stringValue` (the message) and attributes: `target`,
//!   `module_path`, `code.file.path`, `code.line.number`, `thread.name`, `process.pid` (the semantic
//!   conventions' names; a module has none: `code.namespace` is deprecated), for an error event
//!   `exception.message` (its `error` field), `exception.stacktrace` (`backtrace`) and
//!   `exception.type` (an `error.type` field) instead of those fields, `fingerprint`,
//!   `suppressed` (when some were), `spans` (names joined by `:`), then the event's fields, then
//!   the spans' fields (innermost first; one named like the event's or an inner span's field is
//!   left out, never overriding). Keys are unique, as OTLP requires: ours win, and a field whose
//!   name is taken is sent as `field.<name>` (`field.field.<name>` if that is taken too).
//!   `trace_id` (32 hex digits) and `span_id` (16) fields become `traceId`/`spanId`; with the
//!   `opentelemetry` feature every record gets them from the OpenTelemetry span it happens in
//!   (tracing-opentelemetry 0.34), so logs and traces join (`watchbell_core::otel`). Answers
//!   are retried only when OTLP/HTTP allows it: 429, 502, 503 and 504 (and connection errors
//!   and timeouts); a 500 or other 5xx is a permanent failure, counted.
//! - **Form** (`Encoding::Form`): the standard library's `HTTPHandler`, done right — one
//!   request per record, url-encoded pairs (the record shape's keys; `fields` and `spans` as
//!   compact JSON), in the query string (`GET`, message cut to 4 KiB) or the body (`POST`),
//!   with a timeout and the status checked. What each request carries can be chosen, as with
//!   `HTTPHandler.mapLogRecord`: a closure from the record to the pairs
//!   ([`map_record`](HttpBuilder::map_record)) or a list of keys
//!   ([`form_fields`](HttpBuilder::form_fields), event fields as `fields.NAME`).
//!
//! ## Delivery
//!
//! - **Batching**: a request carries up to [`batch_records`](HttpBuilder::batch_records) records
//!   and about [`batch_bytes`](HttpBuilder::batch_bytes) (estimated in memory); the first record
//!   waits at most [`batch_wait`](HttpBuilder::batch_wait) for others, and records arriving while
//!   a request is in flight join the next one.
//! - **gzip**: bodies of [`gzip_above`](HttpBuilder::gzip_above) bytes or more are sent with
//!   `Content-Encoding: gzip` (fast level).
//! - **Answers**: 2xx delivered; 429, 408 and 5xx, timeouts and connection errors retried with
//!   backoff (and `Retry-After`); other 4xx given up on and counted. **413** splits the batch in
//!   halves and sends both (recursively); a single record still refused with 413 is given up on
//!   and counted. When part of a batch went through and the rest fails, the part that went
//!   through is not sent again.
//! - **Order**: records are sent first in first out. `_bulk` items retried after a 429 arrive
//!   after the items that went through.
//!
//! ## Disk spool
//!
//! With [`spool(dir, max_bytes)`](HttpBuilder::spool), a batch that still fails after
//! [`spool_after`](HttpBuilder::spool_after) of retrying goes to append-only segment files in
//! `dir` instead of waiting in memory (so the in-memory queue keeps draining while the
//! collector is down) — sooner if the in-memory queue passes half its capacity while the batch
//! waits for a retry: then the batch and the whole queue go to disk at once, so an outage under
//! heavy logging fills the spool rather than shedding records from the queue — and so do all
//! newer records while the spool is not empty: **the spool is
//! always older than the queue, and records are replayed oldest first**, by a thread of its own,
//! with backoff while the collector fails. What a previous process left in `dir` is replayed
//! after a restart, before anything newer. Delivery from the spool is **at least once**: the
//! replay position is saved after each successful request, so a crash between the request and
//! the save sends that request's records again. Files are written but not `fsync`ed: the spool
//! survives a process crash, not a power loss. Records that would take the spool over
//! `max_bytes` are shed and counted, as are damaged lines (a record half-written by a killed
//! process). [`Guard::stats`] shows `<name>/spool`: `accepted` (spooled), `delivered`
//! (replayed), `dropped` (shed; bytes in `last_error`), `failed`, `queued` (waiting on disk).
//! `Guard::flush` and `shutdown` also wait for the spool to empty, until their deadline; what
//! is left stays on disk.
//!
//! ## Defaults
//!
//! | setting | default | builder method |
//! |---|---|---|
//! | encoding | NDJSON | [`encoding`](HttpBuilder::encoding) |
//! | level captured | `INFO` and more severe | [`level`](HttpBuilder::level) |
//! | batch | 1,000 records or 1 MiB (estimated), waiting at most 1 s | [`batch_records`](HttpBuilder::batch_records), [`batch_bytes`](HttpBuilder::batch_bytes), [`batch_wait`](HttpBuilder::batch_wait) |
//! | gzip | bodies of 1 KiB or more | [`gzip_above`](HttpBuilder::gzip_above), [`no_gzip`](HttpBuilder::no_gzip) |
//! | auth and headers | none | [`basic_auth`](HttpBuilder::basic_auth), [`bearer_auth`](HttpBuilder::bearer_auth), [`header`](HttpBuilder::header) |
//! | `app` / `host` | unset / the machine's hostname | [`app`](HttpBuilder::app), [`host`](HttpBuilder::host) |
//! | rate limit | none: a log shipper ships everything | `rate_limit` |
//! | pace | none | `pace` |
//! | retries | `Retry::default()`: 500 ms doubling to 60 s, for 10 minutes per batch | `retry` |
//! | queue | 10,000 records and 16 MiB (estimated), the newest dropped and counted when full | `queue_records`, `queue_bytes`, `overflow` |
//! | HTTP timeout | 10 s per request | `timeout` |
//! | plain `http://` | refused except to loopback | `allow_plain_http` |
//! | spool | off; when on, batches failing for 5 s go to disk | [`spool`](HttpBuilder::spool), [`spool_after`](HttpBuilder::spool_after) |
//!
//! The common setters come from [`SinkOptions`] (`use watchbell_core::SinkOptions;`).
//!
//! Credentials are secrets: the password, the token, custom header values and the URL's path
//! and query appear in no `Debug` output, error or stats.
//!
//! For high throughput (≥ 200,000 records/s to a loopback collector on a small machine):
//! NDJSON with gzip, `.batch_records(5_000).batch_bytes(16 << 20).batch_wait(Duration::from_millis(50))`
//! and `.queue_records(200_000).queue_bytes(256 << 20)` (a record takes about 300 bytes in memory).
#![deny(missing_docs)]

mod encode;
mod sink;
mod spool;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing_core::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use watchbell_core::http::{HeaderMap, HeaderName, HeaderValue, Method};
use watchbell_core::options::{layer, Options, SinkLayer, SinkOptions};
use watchbell_core::secret::{redact_url, Secret};
use watchbell_core::{BuildError, Guard, Handler, Level, Record};

pub use encode::{record_json, Encoding, FormMethod, LokiLabel, FORM_KEYS};

/// Entry points for fuzz targets and property tests: the encoders and the `_bulk` answer
/// parser, as the sink uses them. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use watchbell_core::Record;

    pub use crate::sink::{parse_bulk_answer, BulkAnswer, BulkItem};

    /// The request body `encoding` makes of `records` (not [`Encoding::Form`](crate::Encoding::Form),
    /// which sends one request per record), with the builder's `app` and `host`.
    pub fn encode(encoding: &crate::Encoding, records: &[Record], app: Option<&str>, host: Option<&str>) -> Vec<u8> {
        let cx = crate::encode::Context { app: app.map(str::to_owned), host: host.map(str::to_owned) };
        let refs: Vec<&Record> = records.iter().collect();
        crate::encode::encode(encoding, &refs, &cx)
    }
}

/// The namespace of [`HttpLayer::builder`].
#[derive(Debug)]
pub struct HttpLayer(());

impl HttpLayer {
    /// A builder shipping to `url` (the collector's endpoint; see [`Encoding`] for the paths
    /// added when it has none).
    pub fn builder(url: impl Into<String>) -> HttpBuilder {
        HttpBuilder {
            url: Secret::new(url.into()),
            encoding: Encoding::Ndjson,
            level: Level::INFO,
            app: None,
            host: None,
            gzip_min: Some(1024),
            auth: None,
            headers: Vec::new(),
            batch_records: 1000,
            batch_bytes: 1 << 20,
            batch_wait: Duration::from_secs(1),
            spool: None,
            spool_after: Duration::from_secs(5),
            form: None,
            options: Options::new(),
        }
    }
}

enum Auth {
    Basic(String, Secret<String>),
    Bearer(Secret<String>),
}

/// Builds an HTTP shipping layer. See the [crate docs](crate) for defaults and behaviour.
pub struct HttpBuilder {
    url: Secret<String>,
    encoding: Encoding,
    level: Level,
    app: Option<String>,
    host: Option<String>,
    gzip_min: Option<usize>,
    auth: Option<Auth>,
    headers: Vec<(String, Secret<String>)>,
    batch_records: usize,
    batch_bytes: usize,
    batch_wait: Duration,
    spool: Option<(PathBuf, u64)>,
    spool_after: Duration,
    form: Option<FormSpec>,
    options: Options,
}

/// What the form encoding sends of each record, when not the default pairs.
enum FormSpec {
    Map(encode::FormMap),
    Keys(Vec<String>),
}

impl fmt::Debug for FormSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormSpec::Map(_) => f.write_str("map_record(..)"),
            FormSpec::Keys(k) => f.debug_tuple("form_fields").field(k).finish(),
        }
    }
}

impl fmt::Debug for HttpBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            None => "none".to_owned(),
            Some(Auth::Basic(u, _)) => format!("basic({u}, [redacted])"),
            Some(Auth::Bearer(_)) => "bearer([redacted])".to_owned(),
        };
        let headers: Vec<String> = self.headers.iter().map(|(n, _)| format!("{n}: [redacted]")).collect();
        f.debug_struct("HttpBuilder")
            .field("url", &redact_url(self.url.expose()))
            .field("encoding", &self.encoding)
            .field("level", &self.level)
            .field("app", &self.app)
            .field("host", &self.host)
            .field("gzip_min", &self.gzip_min)
            .field("auth", &auth)
            .field("headers", &headers)
            .field("batch_records", &self.batch_records)
            .field("batch_bytes", &self.batch_bytes)
            .field("batch_wait", &self.batch_wait)
            .field("spool", &self.spool)
            .field("spool_after", &self.spool_after)
            .field("form", &self.form)
            .field("options", &self.options)
            .finish()
    }
}

impl SinkOptions for HttpBuilder {
    fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }
}

fn err(key: impl Into<String>, message: impl fmt::Display) -> BuildError {
    BuildError::new("watchbell-http", key, message)
}

/// Adds `path` to `url` when its path is empty or `/` (and it has no query).
fn with_default_path(url: &str, path: &str) -> String {
    let Some(i) = url.find("://") else { return url.to_owned() };
    let rest = &url[i + 3..];
    match rest.find(['/', '?', '#']) {
        None => format!("{url}{path}"),
        Some(j) if &rest[j..] == "/" => format!("{}{path}", &url[..i + 3 + j]),
        Some(_) => url.to_owned(),
    }
}

/// Adds `/_bulk` to the URL's path unless it ends with it.
fn with_bulk_path(url: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    if base.ends_with("/_bulk") {
        url.to_owned()
    } else {
        format!("{}/_bulk{query}", base.trim_end_matches('/'))
    }
}

impl HttpBuilder {
    /// The wire format (default [`Encoding::Ndjson`]).
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// The least severe level shipped (default `INFO`).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// The application's name: the `app` key of every record, a Loki label, an OTLP resource
    /// attribute.
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }

    /// The host name sent with every record (default: the machine's hostname).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Compresses bodies of `min_bytes` or more with gzip (default 1024).
    pub fn gzip_above(mut self, min_bytes: usize) -> Self {
        self.gzip_min = Some(min_bytes);
        self
    }

    /// Never compresses.
    pub fn no_gzip(mut self) -> Self {
        self.gzip_min = None;
        self
    }

    /// `Authorization: Basic` with this user and password (the password is a secret).
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some(Auth::Basic(user.into(), Secret::new(password.into())));
        self
    }

    /// `Authorization: Bearer <token>` (the token is a secret).
    pub fn bearer_auth(mut self, token: impl Into<String>) -> Self {
        self.auth = Some(Auth::Bearer(Secret::new(token.into())));
        self
    }

    /// A header sent with every request (`X-Scope-OrgID`, `Authorization: ApiKey ..`). Its
    /// value is treated as a secret.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), Secret::new(value.into())));
        self
    }

    /// The most records per request (default 1,000; at least 1).
    pub fn batch_records(mut self, n: usize) -> Self {
        self.batch_records = n.max(1);
        self
    }

    /// The most bytes per request, estimated from the records in memory (default 1 MiB).
    pub fn batch_bytes(mut self, n: usize) -> Self {
        self.batch_bytes = n.max(1);
        self
    }

    /// How long the first record of a batch waits for more (default 1 s; 0 sends at once,
    /// records arriving during a request still join the next one).
    pub fn batch_wait(mut self, d: Duration) -> Self {
        self.batch_wait = d;
        self
    }

    /// Spools to append-only files in `dir`, at most `max_bytes` on disk, when the collector
    /// cannot be reached (see [Disk spool](crate#disk-spool)).
    pub fn spool(mut self, dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        self.spool = Some((dir.into(), max_bytes));
        self
    }

    /// How long a failing batch is retried in memory before it goes to the spool (default
    /// 5 s; keep it under the retry budget). A queue half full during the retry sends it
    /// sooner.
    pub fn spool_after(mut self, d: Duration) -> Self {
        self.spool_after = d;
        self
    }

    /// The form pairs of each record, chosen by `f` — the equivalent of
    /// `logging.handlers.HTTPHandler.mapLogRecord` (whose default sends the whole record
    /// `__dict__`). For [`Encoding::Form`] only (another encoding is a build error under
    /// `map_record`). `f` runs on the delivery thread, never on the caller's; a panic in it is
    /// caught and the record counted as failed. For `GET`, each value is cut to 4 KiB with a
    /// marker, so that the URL stays within what servers accept.
    ///
    /// ```
    /// use watchbell_http::{Encoding, FormMethod, HttpLayer};
    /// let builder = HttpLayer::builder("https://logs.example/ingest")
    ///     .encoding(Encoding::Form { method: FormMethod::Post })
    ///     .map_record(|r| {
    ///         let mut pairs = vec![("levelname".to_owned(), r.level.to_string()), ("msg".to_owned(), r.message.to_string())];
    ///         if let Some(user) = r.fields.get("user") {
    ///             pairs.push(("user".to_owned(), user.to_string()));
    ///         }
    ///         pairs
    ///     });
    /// ```
    pub fn map_record<F>(mut self, f: F) -> Self
    where
        F: Fn(&Record) -> Vec<(String, String)> + Send + Sync + 'static,
    {
        self.form = Some(FormSpec::Map(encode::FormMap(Arc::new(f))));
        self
    }

    /// The form pairs of each record, by name, in this order: any of [`FORM_KEYS`] (`time`,
    /// `level`, `target`, `module`, `file`, `line`, `message`, `fields`, `spans`, `thread`,
    /// `fingerprint`, `app`, `host`, `suppressed`) and `fields.NAME` (the event's field `NAME`,
    /// a string as is, other values as JSON). A key a record does not have is left out of its
    /// request. The field-list form of [`map_record`](Self::map_record); an unknown name is a
    /// build error under `form_fields[i]`.
    pub fn form_fields<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.form = Some(FormSpec::Keys(keys.into_iter().map(Into::into).collect()));
        self
    }

    /// Builds the layer and its [`Guard`] (keep the guard until the end of `main`).
    ///
    /// # Errors
    /// A [`BuildError`] naming the setting at fault: a URL that is not http(s) or is plain
    /// `http://` to a host other than loopback, an invalid header, a Loki encoding without
    /// labels, a spool directory that cannot be opened.
    pub fn build<S>(self) -> Result<(SinkLayer<S>, Guard), BuildError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let level = self.level;
        Ok(layer(self.build_root()?, level))
    }

    /// Like [`build`](HttpBuilder::build), but returns the handler chain instead of a layer, to
    /// stand behind another watchbell handler (fingers-crossed, groups).
    ///
    /// # Errors
    /// As [`build`](HttpBuilder::build).
    pub fn build_handler(self) -> Result<(Arc<dyn Handler>, Guard), BuildError> {
        let handler = self.build_root()?;
        let guard = Guard::new(Arc::clone(&handler));
        Ok((handler, guard))
    }

    fn build_root(self) -> Result<Arc<dyn Handler>, BuildError> {
        let raw = self.url.expose().trim().to_owned();
        let url = match &self.encoding {
            Encoding::Loki { .. } => with_default_path(&raw, "/loki/api/v1/push"),
            Encoding::Otlp { .. } => with_default_path(&raw, "/v1/logs"),
            Encoding::ElasticBulk { .. } => with_bulk_path(&raw),
            _ => raw,
        };
        let client = self.options.http_client().map_err(|e| err("client", e))?;
        client.check_url(&url).map_err(|e| err("url", e))?;
        if let Encoding::Loki { labels } = &self.encoding {
            if labels.is_empty() {
                return Err(err("encoding.labels", "Loki needs at least one label (app, level, target or host)"));
            }
        }
        if let Encoding::Otlp { service_name } = &self.encoding {
            if service_name.trim().is_empty() {
                return Err(err("encoding.service_name", "OTLP needs a non-empty service.name"));
            }
        }
        let mut headers = HeaderMap::new();
        for (i, (name, value)) in self.headers.iter().enumerate() {
            let n = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| err(format!("headers[{i}].name"), format!("{name:?} is not a valid header name")))?;
            let mut v = HeaderValue::from_str(value.expose()).map_err(|_| {
                err(format!("headers[{i}].value"), "not a valid header value (control characters or non-ASCII)")
            })?;
            v.set_sensitive(true);
            headers.append(n, v);
        }
        if let Some(auth) = &self.auth {
            // reqwest writes the header (base64 for Basic) and marks it sensitive; building a
            // throwaway request checks it now rather than at the first send.
            let req = client.request(Method::POST, &url);
            let req = match auth {
                Auth::Basic(u, p) => {
                    if u.contains(':') {
                        return Err(err("basic_auth.user", "a user name cannot contain ':'"));
                    }
                    req.basic_auth(u, Some(p.expose()))
                }
                Auth::Bearer(t) => req.bearer_auth(t.expose().trim()),
            };
            let v = req
                .build()
                .ok()
                .and_then(|r| r.headers().get("authorization").cloned())
                .ok_or_else(|| err("auth", "credentials with characters not allowed in a header"))?;
            headers.insert("authorization", v);
        }
        let host = self.host.clone().or_else(watchbell_core::format::FormatContext::local_host);
        let cx = Arc::new(encode::Context { app: self.app.clone(), host });
        let map_record = match &self.form {
            None => None,
            Some(_) if !matches!(self.encoding, Encoding::Form { .. }) => {
                let key = if matches!(self.form, Some(FormSpec::Map(_))) { "map_record" } else { "form_fields" };
                return Err(err(key, "applies to the form encoding only (Encoding::Form)"));
            }
            Some(FormSpec::Map(m)) => Some(m.clone()),
            Some(FormSpec::Keys(keys)) => {
                for (i, k) in keys.iter().enumerate() {
                    let known =
                        FORM_KEYS.contains(&k.as_str()) || k.strip_prefix("fields.").is_some_and(|n| !n.is_empty());
                    if !known {
                        return Err(err(
                            format!("form_fields[{i}]"),
                            format!("{k:?}: expected one of {} or fields.NAME", FORM_KEYS.join(", ")),
                        ));
                    }
                }
                let (keys, cx) = (keys.clone(), Arc::clone(&cx));
                Some(encode::FormMap(Arc::new(move |r: &Record| encode::selected_pairs(r, &cx, &keys))))
            }
        };
        let items = Arc::new(sink::ItemCounters::default());
        let shipper = sink::Shipper {
            client,
            url: url.clone(),
            encoding: self.encoding.clone(),
            headers,
            gzip_min: self.gzip_min,
            cx,
            items: Arc::clone(&items),
            map_record,
        };
        let spool = match &self.spool {
            Some((dir, max)) => {
                let s =
                    spool::Spool::open(dir, *max).map_err(|e| err("spool", format!("cannot open the spool: {e}")))?;
                let s = Arc::new(s);
                sink::spawn_replayer(Arc::clone(&s), shipper.clone(), self.batch_records, self.options.retry.clone())
                    .map_err(|e| err("spool", format!("cannot start the spool thread: {e}")))?;
                Some(s)
            }
            None => None,
        };
        let name = format!("http {}", redact_url(&url));
        let sink = sink::HttpSink::new(shipper, spool.clone(), self.spool_after);
        let delivery = self
            .options
            .delivery(name.clone(), sink)
            .batch_records(self.batch_records)
            .batch_bytes(self.batch_bytes)
            .batch_wait(self.batch_wait)
            .spawn()
            .map_err(|e| {
                if let Some(s) = &spool {
                    s.stop();
                }
                err("delivery", format!("cannot start the delivery thread: {e}"))
            })?;
        let inner = self.options.limited("http", delivery);
        Ok(Arc::new(sink::HttpHandler { inner, spool, items, name }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_paths() {
        assert_eq!(with_default_path("http://l:3100", "/v1/logs"), "http://l:3100/v1/logs");
        assert_eq!(with_default_path("http://l:3100/", "/v1/logs"), "http://l:3100/v1/logs");
        assert_eq!(with_default_path("http://l:3100/custom", "/v1/logs"), "http://l:3100/custom");
        assert_eq!(with_bulk_path("http://es:9200"), "http://es:9200/_bulk");
        assert_eq!(with_bulk_path("http://es:9200/logs/"), "http://es:9200/logs/_bulk");
        assert_eq!(with_bulk_path("http://es:9200/_bulk?pipeline=x"), "http://es:9200/_bulk?pipeline=x");
        assert_eq!(with_bulk_path("http://es:9200?refresh=true"), "http://es:9200/_bulk?refresh=true");
    }

    #[test]
    fn debug_hides_secrets() {
        let b = HttpLayer::builder("https://logs.example.com/ingest/tok3n")
            .basic_auth("user", "pa55word")
            .header("X-Api-Key", "k3y-value");
        let d = format!("{b:?}");
        for s in ["tok3n", "pa55word", "k3y-value"] {
            assert!(!d.contains(s), "{d}");
        }
        let d = format!("{:?}", HttpLayer::builder("https://x.example.com").bearer_auth("beareRtok"));
        assert!(!d.contains("beareRtok"), "{d}");
    }
}

/// Entry point for fuzz targets: the spool's reader over a directory of segment files. Not a
/// stable API.
#[doc(hidden)]
pub mod fuzzing_spool {
    use std::path::Path;

    use watchbell_core::Record;

    /// What [`replay`] read back.
    #[derive(Debug, Default)]
    pub struct Replay {
        /// The records read, in order.
        pub records: Vec<Record>,
        /// Records skipped as damaged.
        pub shed: u64,
        /// Records still pending after the replay (0 when everything was read).
        pub pending: u64,
        /// Read calls made.
        pub reads: usize,
    }

    /// Opens the spool in `dir` (as a sink does at start) and replays it to the end, `chunk`
    /// records per read, committing each chunk as delivered; stops after `max_reads` reads.
    pub fn replay(dir: &Path, max_bytes: u64, chunk: usize, max_reads: usize) -> std::io::Result<Replay> {
        let spool = crate::spool::Spool::open(dir, max_bytes)?;
        let mut out = Replay::default();
        while out.reads < max_reads {
            out.reads += 1;
            let c = spool.read(chunk.max(1));
            if c.records.is_empty() {
                break;
            }
            spool.commit(&c, c.records.len(), 0);
            out.records.extend(c.records);
        }
        let counts = spool.counts();
        out.shed = counts.shed_records;
        out.pending = counts.pending_records;
        Ok(out)
    }
}
