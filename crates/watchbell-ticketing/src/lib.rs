//! # watchbell-ticketing
//!
//! Errors as tickets: every event that reaches this layer becomes an *occurrence* of a
//! *ticket*, grouped by its callsite fingerprint, in a SQLite file (the default, nothing to run)
//! or in PostgreSQL (when many instances of a service share one ticket database).
//!
//! ```
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//! use watchbell_core::Level;
//! use watchbell_ticketing::{TicketQuery, TicketStore, TicketingLayer};
//!
//! # let dir = std::env::temp_dir().join(format!("wb-doc-lib-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let url = format!("sqlite://{}/tickets.db", dir.display());
//! let (layer, guard) = TicketingLayer::builder(&url)
//!     .app_id("billing")
//!     .level(Level::WARN)
//!     .build()
//!     .expect("a valid configuration");
//! let subscriber = tracing_subscriber::registry().with(layer);
//! tracing::subscriber::with_default(subscriber, || {
//!     for invoice in 0..3 {
//!         tracing::error!(invoice, "payment failed"); // one callsite: one ticket, 3 occurrences
//!     }
//! });
//! assert!(guard.shutdown(Duration::from_secs(10)).is_complete());
//!
//! let mut store = TicketStore::open(&url).unwrap();
//! let tickets = store.list_tickets(&TicketQuery::default().app("billing")).unwrap();
//! assert_eq!(tickets.len(), 1);
//! assert_eq!(tickets[0].occurrence_count, 3);
//! # std::fs::remove_dir_all(&dir).ok();
//! ```
//!
//! ## Tickets
//!
//! A ticket is one fingerprint of one app: `level + target + file + line` (+ the
//! [`hash_salt`](TicketingBuilder::hash_salt)), never the message, so the same message text
//! with different arguments lands on one ticket and the same text at two call sites lands on
//! two. Like Sentry's explicit fingerprints, an event field named `fingerprint`
//! (`error!(fingerprint = "payment-gateway-down", ...)`) overrides the callsite: every event
//! with that value shares one ticket ([`fingerprint_field`](TicketingBuilder::fingerprint_field)).
//!
//! A new occurrence creates or updates its ticket atomically, in one
//! `INSERT … ON CONFLICT (app_id, fingerprint) DO UPDATE SET occurrence_count =
//! occurrence_count + n, …` (the same statement in both SQL dialects): the count grows, the
//! last occurrence time and the sample message follow the newest occurrence, the first
//! occurrence time stays, and `solved` becomes false — a new occurrence reopens a solved
//! ticket. Occurrences a rate limit withheld (when you set one) count too: a record carrying
//! "N similar suppressed" adds N + 1.
//!
//! Tables (prefix `watchbell_` by default), created if absent and migrated by version (the
//! `watchbell_schema_version` table records the migrations applied):
//!
//! | table | columns |
//! |---|---|
//! | `watchbell_tickets` | `id`, `app_id`, `fingerprint` (unique per app), `level`, `target`, `location` (`file:line`), `module`, `message` (a sample: the newest), `first_occurrence_time`, `last_occurrence_time`, `occurrence_count`, `solved` |
//! | `watchbell_occurrences` | `id`, `ticket_id`, `time`, `app_id`, `data` (the whole [`Record`](watchbell_core::Record) as JSON: the text `serde_json::to_string(&record)` gives, written by [`watchbell_core::json`]) |
//! | `watchbell_notifications` | `app_id`, `fingerprint`, `destination` (the three the primary key), `first_time`, `last_time`, `count`: the alert destinations delivered the ticket's records (see [Alerts that link to their ticket](#alerts-that-link-to-their-ticket)) |
//!
//! Occurrences are bounded: each ticket keeps its newest [`retention`](TicketingBuilder::retention)
//! occurrences (default 100), while `occurrence_count` stays exact.
//!
//! ## Writes
//!
//! The caller's thread only captures and enqueues. A background writer (watchbell's
//! [`Delivery`](watchbell_core::Delivery)) takes up to 500 records at a time, groups them by
//! fingerprint and writes them in one transaction: one upsert per ticket, the occurrences,
//! and the retention trim. A failure (database locked beyond the busy timeout, PostgreSQL
//! unreachable, a deadlock) rolls the transaction back and the whole batch is retried with
//! backoff on a fresh connection, so nothing is lost or counted twice.
//!
//! - **SQLite** (`sqlite:///path/to/tickets.db`, `sqlite://relative.db`, or a bare path):
//!   rusqlite with the bundled SQLite, WAL journal, `synchronous = NORMAL`, a busy timeout
//!   (the [`timeout`](SinkOptions::timeout) setting, 5 s by default), and `BEGIN IMMEDIATE` for
//!   every write, so several processes can write to one file and counts stay exact.
//! - **PostgreSQL** (`postgres://user:password@host:port/db`, Cargo feature `postgres`, on by
//!   default): the synchronous `postgres` crate on the writer's thread. A batch's tickets are
//!   upserted in fingerprint order, so concurrent instances never deadlock on each other.
//!   A batch is at most five statements over arrays, prepared once per connection. The
//!   retention deletes, per ticket, the id range between a floor the writer remembers (up to
//!   65,536 tickets) and the newest occurrence past the retention, so the rows earlier
//!   deletes left for the vacuum are not read again. Since schema version 3 the occurrences
//!   table has no foreign key to the tickets (its check cost as much as the insert); deleting
//!   a ticket locks its row first, so a writer adding occurrences to it at that moment
//!   leaves none behind. PostgreSQL's `text` cannot hold the character U+0000: in a ticket's
//!   `target`, `location`, `module` and `message` it is stored as U+FFFD (the occurrence's
//!   JSON keeps it, escaped as `\u0000`); a record carrying it would otherwise have its
//!   whole batch refused.
//!   Connections are made **without TLS**; hosts other than loopback or a unix socket are
//!   refused unless you opt in with [`allow_plaintext_postgres`](TicketingBuilder::allow_plaintext_postgres)
//!   (for a private network or a TLS-terminating proxy). The password never appears in
//!   `Debug`, errors or stats.
//!
//! Without the `postgres` feature (`default-features = false`), only SQLite is compiled in
//! and 49 fewer crates are built.
//!
//! ## Defaults
//!
//! | setting | default | builder method |
//! |---|---|---|
//! | database | the URL given to [`TicketingLayer::builder`] | — |
//! | app id | `default` | [`app_id`](TicketingBuilder::app_id) |
//! | level captured | `WARN` and more severe | [`level`](TicketingBuilder::level) |
//! | table prefix | `watchbell_` | [`table_prefix`](TicketingBuilder::table_prefix) |
//! | hash salt | none | [`hash_salt`](TicketingBuilder::hash_salt) |
//! | user fingerprint field | `fingerprint` | [`fingerprint_field`](TicketingBuilder::fingerprint_field) |
//! | occurrences kept per ticket | 100 (counts stay exact) | [`retention`](TicketingBuilder::retention) |
//! | records per transaction | 500 | [`batch_records`](TicketingBuilder::batch_records) |
//! | rate limit | none: every occurrence is counted | [`rate_limit`](SinkOptions::rate_limit) |
//! | pace | none | [`pace`](SinkOptions::pace) |
//! | SQLite busy timeout / PostgreSQL connect timeout | 5 s | [`timeout`](SinkOptions::timeout) |
//! | retries | `Retry::default()`: 500 ms doubling to 60 s, for 10 minutes per batch | [`retry`](SinkOptions::retry) |
//! | queue | 20,000 records, the newest dropped and counted when full | [`queue_records`](SinkOptions::queue_records), [`overflow`](SinkOptions::overflow) |
//! | PostgreSQL without TLS to a non-loopback host | refused | [`allow_plaintext_postgres`](TicketingBuilder::allow_plaintext_postgres) |
//! | tables created and migrated | yes (`false`: the schema is managed elsewhere; checked, never created) | [`auto_create_tables`](TicketingBuilder::auto_create_tables) |
//! | what of a record is stored | all of it | [`store_record`](TicketingBuilder::store_record) |
//! | outside ticket systems | none | [`ticket_sink`](TicketingBuilder::ticket_sink) |
//!
//! ## A schema managed elsewhere
//!
//! With [`auto_create_tables(false)`](TicketingBuilder::auto_create_tables) the writer runs no
//! `CREATE` and no migration, and does not create a missing SQLite file. When it connects it
//! checks that both tables have every column above; a missing table is an error naming it
//! (`… the table watchbell_tickets is missing or lacks a column …; auto_create_tables is off`),
//! retried with backoff like any database error and counted (`retried`, then `failed`, the
//! message in `last_error` of the guard's stats), never a panic.
//! [`TicketStore::connect_with`] does the same for the query API.
//!
//! ## What is stored
//!
//! [`store_record`](TicketingBuilder::store_record) gets a copy of every record before it is
//! written, on the writer's thread, and may remove fields or spans or rewrite the message (a
//! redaction hook, Logbook's `process_record`): what it leaves is the occurrence's `data`, the
//! ticket's sample `message` and what the ticket sinks get. Fingerprints are taken before it.
//!
//! ## Outside ticket systems
//!
//! A [`TicketSink`] (the part of Logbook's ticketing `BackendBase` that its trac and redmine
//! backends filled in) is told of each ticket that a write created
//! ([`TicketChange::New`]) or reopened ([`TicketChange::Reopened`]: it was solved), once per
//! ticket per write, after the transaction committed. Sinks run on a thread of their own
//! (`watchbell-ticketing-sink`), never the application's nor the database writer's, so a slow
//! tracker never holds tickets back; an `Err` is retried twice, then counted as failed; a
//! panic is caught and counted; the queue holds 1,000 events (more are dropped and counted).
//! Their counters are in the guard's stats as `ticketing-sink:NAME`; the guard's flush waits
//! for them. With the Cargo feature `github`, [`github::GitHubIssues`] opens a GitHub (or
//! GitHub Enterprise) issue per new ticket and reopens it, with a comment, when the ticket is
//! reopened.
//!
//! ```
//! use watchbell_ticketing::{TicketChange, TicketEvent, TicketSink, TicketingLayer};
//!
//! struct Pager;
//! impl TicketSink for Pager {
//!     fn ticket(&mut self, event: &TicketEvent) -> Result<(), String> {
//!         if event.change == TicketChange::New {
//!             // Open a ticket elsewhere: event.fingerprint is a stable key for it.
//!         }
//!         Ok(())
//!     }
//! }
//! let builder = TicketingLayer::builder("sqlite://tickets.db").ticket_sink(Pager);
//! # let _ = builder;
//! ```
//!
//! ## Alerts that link to their ticket
//!
//! [`TicketingBuilder::ticket_link`] gives the [`TicketLink`](watchbell_core::TicketLink) the
//! alert sinks (Slack, Telegram, mail, SMS: their `ticket_link` option) put in each message:
//! `{public_url}/fp/{app_id}/{fingerprint}`, which the viewer answers with the ticket's page.
//! It carries this layer's app id, salt and fingerprint field, and the fingerprint is computed
//! by the one function both use ([`watchbell_core::link::ticket_fingerprint`]), so a link names
//! exactly the ticket its record is stored under, without asking the database.
//!
//! The alert sinks tell the in-process journal [`watchbell_core::notified`] of every record they
//! delivered with a link; this layer's database writer drains it (between batches and at least
//! every 250 ms while it runs) and counts each delivery in the `notifications` table
//! ([`TicketStore::notifications`] reads it; [`TicketStore::record_notifications`] writes it
//! for deliveries made elsewhere). Only deliveries of this layer's app id are recorded. It is
//! in-process: a relay or another process that runs alert sinks records its own. It is best
//! effort: what cannot be written (the database is down, a schema managed elsewhere has no
//! notifications table) is dropped, counted and reported once; ticket writes never wait for it
//! or fail because of it. Deleting a ticket deletes its notifications.
//!
//! ## Reading tickets
//!
//! [`TicketStore`] is the query API (both backends): [`count_tickets`](TicketStore::count_tickets),
//! [`list_tickets`](TicketStore::list_tickets) (ordered by last or first occurrence or by count,
//! filtered by app, level and solved, paged), [`get_ticket`](TicketStore::get_ticket),
//! [`occurrences`](TicketStore::occurrences) (newest first, paged), [`solve`](TicketStore::solve),
//! [`reopen`](TicketStore::reopen), [`delete`](TicketStore::delete) (with its occurrences) and
//! [`stats`](TicketStore::stats). The `watchbell-tickets` command-line tool (a binary of this
//! crate) does the same from a shell: `watchbell-tickets --db URL list|show ID|solve ID|reopen
//! ID|delete ID|stats [--json]`.
//!
//! For the viewer's filters, [`search_tickets`](TicketStore::search_tickets) and
//! [`count_search`](TicketStore::count_search) take a [`TicketSearch`] (a target and a text
//! search on top of a [`TicketQuery`]), [`hourly_counts`](TicketStore::hourly_counts) counts
//! stored occurrences per hour, and [`ticket_by_fingerprint`](TicketStore::ticket_by_fingerprint)
//! finds the ticket an alert is about.
//!
//! ## The web viewer (feature `serve`)
//!
//! `watchbell-tickets --db URL serve [--listen 127.0.0.1:8080] [--token TOKEN] [--read-only]`
//! serves a list of tickets and a page per ticket (solve, reopen, delete) and a JSON API under
//! `/api/`; `web::serve` starts the same server from a program. It listens on loopback unless
//! given a token, and is built on axum with maud templates, behind the `serve` feature so that
//! services that only write tickets do not compile it. The `web` module's docs list the pages
//! and the rules that keep it safe.
#![deny(missing_docs)]

#[cfg(feature = "postgres")]
pub mod fleet;
#[cfg(feature = "github")]
pub mod github;
mod notify;
#[cfg(feature = "postgres")]
mod pg;
mod sink;
mod sqlite;
mod store;
#[cfg(feature = "serve")]
pub mod web;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tracing_core::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use watchbell_core::options::{Options, SinkLayer};
use watchbell_core::secret::{redact_url, Secret};
pub use watchbell_core::{BuildError, SinkOptions};
use watchbell_core::{CaptureLayer, Guard, Handler, LayerFilter, Level};

pub use crate::store::{
    Occurrence, Order, StoreError, StoreStats, Target, Ticket, TicketQuery, TicketStore, DEFAULT_PREFIX,
};

use crate::notify::{Notifier, WithSinks};
pub use crate::notify::{TicketChange, TicketEvent, TicketSink};
use crate::sink::{DbSink, Grouping, StoreHook};
pub use crate::store::Notification;
pub use crate::store::{HourCount, TicketSearch};
use watchbell_core::Record;

const CRATE: &str = "watchbell-ticketing";

/// The layer [`TicketingBuilder::build`] returns: watchbell's capture layer behind its level
/// filter. Add it to a registry with `.with(layer)`.
pub type TicketingFiltered<S> = SinkLayer<S>;

/// Where [`TicketingLayer::builder`] starts.
#[derive(Debug)]
pub struct TicketingLayer(());

impl TicketingLayer {
    /// A builder writing tickets to `url`: `sqlite://PATH` (or a bare path) or
    /// `postgres://user:password@host:port/db`.
    pub fn builder(url: impl Into<String>) -> TicketingBuilder {
        TicketingBuilder {
            url: Secret::new(url.into()),
            app_id: "default".to_owned(),
            level: Level::WARN,
            prefix: DEFAULT_PREFIX.to_owned(),
            salt: Vec::new(),
            fingerprint_field: Some("fingerprint".to_owned()),
            retention: 100,
            batch_records: 500,
            allow_plaintext_postgres: false,
            create_tables: true,
            store: None,
            sinks: Vec::new(),
            options: Options::new().timeout(Duration::from_secs(5)).queue_records(20_000),
        }
    }
}

/// Configures the ticketing layer; see the [crate docs](crate) for every default.
pub struct TicketingBuilder {
    url: Secret<String>,
    app_id: String,
    level: Level,
    prefix: String,
    salt: Vec<u8>,
    fingerprint_field: Option<String>,
    retention: u32,
    batch_records: usize,
    allow_plaintext_postgres: bool,
    create_tables: bool,
    store: Option<StoreHook>,
    sinks: Vec<Box<dyn TicketSink>>,
    options: Options,
}

impl fmt::Debug for TicketingBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketingBuilder")
            .field("url", &redact_url(self.url.expose()))
            .field("app_id", &self.app_id)
            .field("level", &self.level)
            .field("prefix", &self.prefix)
            .field("salt_len", &self.salt.len())
            .field("fingerprint_field", &self.fingerprint_field)
            .field("retention", &self.retention)
            .field("batch_records", &self.batch_records)
            .field("allow_plaintext_postgres", &self.allow_plaintext_postgres)
            .field("auto_create_tables", &self.create_tables)
            .field("store_record", &self.store.is_some())
            .field("ticket_sinks", &self.sinks.iter().map(|s| s.name().to_owned()).collect::<Vec<_>>())
            .field("options", &self.options)
            .finish()
    }
}

impl SinkOptions for TicketingBuilder {
    fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }
}

fn err(key: &str, message: impl fmt::Display) -> BuildError {
    BuildError::new(CRATE, key, message)
}

impl TicketingBuilder {
    /// The app these tickets belong to (tickets are unique per app and fingerprint, so several
    /// apps can share one database). Default `default`.
    pub fn app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = app_id.into();
        self
    }

    /// Events of `level` and more severe become occurrences (default `WARN`).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// The prefix of the table names (default `watchbell_`): ASCII letters, digits and `_`.
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Mixed into every fingerprint (change it to start new tickets for the same callsites).
    pub fn hash_salt(mut self, salt: impl AsRef<[u8]>) -> Self {
        self.salt = salt.as_ref().to_vec();
        self
    }

    /// The event field whose value, when present, is the fingerprint instead of the callsite
    /// (default `fingerprint`; `None` turns the override off).
    pub fn fingerprint_field(mut self, name: Option<&str>) -> Self {
        self.fingerprint_field = name.map(str::to_owned);
        self
    }

    /// How many occurrences each ticket keeps, the newest (default 100; 0 keeps none). The
    /// occurrence count stays exact whatever this is.
    pub fn retention(mut self, per_ticket: u32) -> Self {
        self.retention = per_ticket;
        self
    }

    /// The most records written in one transaction (default 500).
    pub fn batch_records(mut self, n: usize) -> Self {
        self.batch_records = n;
        self
    }

    /// Accepts a `postgres://` URL whose host is not loopback or a unix socket, although the
    /// connection has no TLS (default: refused).
    pub fn allow_plaintext_postgres(mut self, allow: bool) -> Self {
        self.allow_plaintext_postgres = allow;
        self
    }

    /// Whether the writer creates and migrates the tables (default `true`). `false` is for a
    /// database whose schema is managed elsewhere (a migration tool, a DBA): nothing is
    /// created, not even the SQLite file; the tables are checked when the writer connects, and
    /// a missing table (or column) fails the write with an error naming it — retried with
    /// backoff like any database error, then counted as failed, never a panic
    /// ([`Guard::stats`](watchbell_core::Guard) shows it as `last_error`).
    pub fn auto_create_tables(mut self, create: bool) -> Self {
        self.create_tables = create;
        self
    }

    /// Chooses what of each record is stored: `hook` gets a copy of the record before it is
    /// written (the occurrence's `data`, the ticket's sample `message`, what [`TicketSink`]s
    /// get) and may remove or rewrite fields, spans or the message. The fingerprint is taken
    /// before the hook, so tickets group as without it. It runs on the writer's thread; if it
    /// panics, the record is stored without its message, fields and spans.
    ///
    /// ```
    /// # use watchbell_ticketing::TicketingLayer;
    /// let builder = TicketingLayer::builder("sqlite://tickets.db").store_record(|r| {
    ///     r.fields.remove("card_number");
    ///     r.spans.clear();
    /// });
    /// # let _ = builder;
    /// ```
    pub fn store_record<F>(mut self, hook: F) -> Self
    where
        F: Fn(&mut Record) + Send + Sync + 'static,
    {
        self.store = Some(Arc::new(hook));
        self
    }

    /// Tells `sink` of every ticket created or reopened (see [`TicketSink`]); several sinks can
    /// be added. They run on a thread of their own, behind a queue of 1,000 events (more are
    /// dropped and counted); the guard's flush waits for them.
    pub fn ticket_sink(mut self, sink: impl TicketSink) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// The link alert sinks put in their messages to the ticket of each alert, on the viewer
    /// at `base_url` (`https://tickets.example.com`): this layer's app id, salt and
    /// fingerprint field, so a link's fingerprint is always the one the ticket is stored
    /// under. Give it to the alert sinks' `ticket_link` option; the destinations they deliver
    /// to are recorded for the ticket page (see [`TicketStore::notifications`]).
    pub fn ticket_link(&self, base_url: &str) -> Result<watchbell_core::TicketLink, BuildError> {
        let mut link = watchbell_core::TicketLink::new(base_url, self.app_id.clone())
            .map_err(|e| err("ticket_link", e))?
            .salt(&self.salt);
        if let Some(f) = &self.fingerprint_field {
            link = link.fingerprint_field(f.clone());
        }
        Ok(link)
    }

    /// Checks the configuration, starts the background writer and returns the layer and the
    /// [`Guard`] that flushes it. The database is opened by the writer (a database that is
    /// down at start-up delays tickets; it does not fail the build).
    pub fn build<S>(self) -> Result<(TicketingFiltered<S>, Guard), BuildError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let level = self.level;
        let salt = self.salt.clone();
        let root = self.build_root()?;
        let guard = Guard::new(Arc::clone(&root));
        let layer = CaptureLayer::new(root).with_salt(salt).filtered(LayerFilter::new(level));
        Ok((layer, guard))
    }

    /// Like [`build`](TicketingBuilder::build), but returns the handler chain instead of a
    /// layer, to stand behind another watchbell handler (fingers-crossed, fan-out). The level
    /// is not applied here: every record handed to it becomes an occurrence.
    pub fn build_handler(self) -> Result<(Arc<dyn Handler>, Guard), BuildError> {
        let root = self.build_root()?;
        let guard = Guard::new(Arc::clone(&root));
        Ok((root, guard))
    }

    fn build_root(self) -> Result<Arc<dyn Handler>, BuildError> {
        let target = Target::parse(self.url.expose()).map_err(|e| err("url", e))?;
        if !self.allow_plaintext_postgres && !target.is_local() {
            return Err(err(
                "url",
                "PostgreSQL connections are made without TLS: a host other than loopback or a unix socket \
                 needs allow_plaintext_postgres(true)",
            ));
        }
        store::check_prefix(&self.prefix).map_err(|e| err("table_prefix", e))?;
        if self.app_id.is_empty() || self.app_id.len() > 200 {
            return Err(err("app_id", "expected 1 to 200 bytes"));
        }
        if self.batch_records == 0 {
            return Err(err("batch_records", "expected at least 1"));
        }
        if let Some(f) = &self.fingerprint_field {
            if f.is_empty() {
                return Err(err("fingerprint_field", "expected a field name (or None)"));
            }
        }
        let notifier = if self.sinks.is_empty() {
            None
        } else {
            Some(
                Notifier::spawn(self.sinks)
                    .map_err(|e| err("ticket_sink", format!("cannot start the ticket sinks' thread: {e}")))?,
            )
        };
        let app_id = self.app_id.clone();
        let sink = DbSink {
            target,
            create_tables: self.create_tables,
            notifier: notifier.clone(),
            prefix: self.prefix,
            timeout: self.options.timeout,
            app_id: self.app_id,
            grouping: Grouping {
                salt: self.salt,
                fingerprint_field: self.fingerprint_field,
                keep: self.retention,
                store: self.store,
                newest: notifier.is_some(),
            },
            writer: None,
            hung: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            journal: Arc::new(sink::Journal::new(&app_id)),
        };
        let delivery = self
            .options
            .delivery("ticketing", sink)
            .batch_records(self.batch_records)
            .batch_bytes(64 << 20)
            .spawn()
            .map_err(|e| err("worker", format!("cannot start the writer thread: {e}")))?;
        let root = self.options.limited("ticketing", delivery);
        Ok(match notifier {
            Some(notifier) => Arc::new(WithSinks { inner: root, notifier }),
            None => root,
        })
    }
}
