//! [`TicketStore`]: the ticket database, its schema and its query API, for both backends.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use watchbell_core::capture::suppress;

use serde::{Serialize, Serializer};
use watchbell_core::{Level, Record};

use crate::sqlite;

/// The default table prefix.
pub const DEFAULT_PREFIX: &str = "watchbell_";

/// An error of the ticket database. Its text never contains a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError {
    message: String,
}

impl StoreError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        StoreError { message: message.into() }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::new(format!("sqlite: {e}"))
    }
}

#[cfg(feature = "postgres")]
impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        // The client's own text is terse ("db error"): the causes say what happened (the
        // server's message, the I/O error). Neither carries the connection password; shapes
        // that look secret are redacted all the same.
        let mut message = format!("postgres: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        StoreError::new(watchbell_core::secret::redact_text(&message).into_owned())
    }
}

/// Where the tickets live: parsed from a URL by [`Target::parse`].
#[derive(Clone)]
pub enum Target {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (the configuration holds the password; `Debug` hides it).
    #[cfg(feature = "postgres")]
    Postgres(Box<postgres::Config>),
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            #[cfg(feature = "postgres")]
            Target::Postgres(c) => {
                f.debug_struct("Postgres").field("hosts", &c.get_hosts()).field("dbname", &c.get_dbname()).finish()
            }
        }
    }
}

impl Target {
    /// Parses `sqlite://PATH` (`sqlite:///abs/path.db`, `sqlite://relative.db`), a bare file path
    /// (SQLite), or `postgres://user:password@host:port/db` / `postgresql://…` (with the
    /// `postgres` feature). Errors never repeat the URL (it may hold a password).
    pub fn parse(url: &str) -> Result<Target, String> {
        if url.contains('\0') {
            return Err("the database URL contains a NUL character".into());
        }
        let url = url.trim();
        if url.is_empty() {
            return Err("empty database URL; expected sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB".into());
        }
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err("sqlite:// URL without a path; expected sqlite://PATH".into());
            }
            if path == ":memory:" {
                return Err("an in-memory SQLite database cannot hold tickets across connections; use a file".into());
            }
            return Ok(Target::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            {
                let config: postgres::Config =
                    url.parse().map_err(|e: postgres::Error| format!("invalid PostgreSQL URL: {e}"))?;
                return Ok(Target::Postgres(Box::new(config)));
            }
            #[cfg(not(feature = "postgres"))]
            return Err(
                "PostgreSQL support is not compiled in: enable the `postgres` feature of watchbell-ticketing".into()
            );
        }
        if let Some((scheme, _)) = url.split_once("://") {
            let scheme: String = scheme.chars().take(20).collect();
            return Err(format!("unsupported scheme {scheme:?}; expected sqlite:// or postgres://"));
        }
        Ok(Target::Sqlite(PathBuf::from(url)))
    }

    /// Whether every host this target connects to is loopback or a unix socket (always true
    /// for SQLite).
    pub fn is_local(&self) -> bool {
        match self {
            Target::Sqlite(_) => true,
            #[cfg(feature = "postgres")]
            Target::Postgres(c) => {
                let hosts_local = c.get_hosts().iter().all(|h| match h {
                    postgres::config::Host::Tcp(name) => watchbell_core::secret::is_loopback_host(name),
                    #[cfg(unix)]
                    postgres::config::Host::Unix(_) => true,
                });
                let addrs_local = c.get_hostaddrs().iter().all(|a| a.is_loopback());
                hosts_local && addrs_local
            }
        }
    }
}

/// Checks a table prefix: letters, digits and `_`, not starting with a digit, at most 40 bytes.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.len() > 40 {
        return Err("at most 40 characters".into());
    }
    if prefix.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("must not start with a digit".into());
    }
    if !prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("only ASCII letters, digits and '_' are allowed".into());
    }
    Ok(())
}

/// The table names for a prefix.
#[derive(Clone, Debug)]
pub(crate) struct Tables {
    pub(crate) prefix: String,
    pub(crate) tickets: String,
    pub(crate) occurrences: String,
    pub(crate) version: String,
}

impl Tables {
    pub(crate) fn new(prefix: &str) -> Self {
        Tables {
            prefix: prefix.to_owned(),
            tickets: format!("{prefix}tickets"),
            occurrences: format!("{prefix}occurrences"),
            version: format!("{prefix}schema_version"),
        }
    }

    /// Replaces `{p}` in a migration's SQL with the prefix.
    pub(crate) fn sql(&self, template: &str) -> String {
        template.replace("{p}", &self.prefix)
    }
}

/// One ticket: every occurrence of one fingerprint in one app.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ticket {
    /// The ticket's id.
    pub id: i64,
    /// The app the occurrences came from.
    pub app_id: String,
    /// The fingerprint: 16 hex digits (a hash of level, target, file, line and the salt, or of a
    /// user-supplied `fingerprint` field).
    pub fingerprint: String,
    /// The level of the occurrences.
    #[serde(serialize_with = "ser_level")]
    pub level: Level,
    /// The target of the latest occurrence.
    pub target: String,
    /// `file:line` of the latest occurrence, when known.
    pub location: Option<String>,
    /// The module path, when known.
    pub module: Option<String>,
    /// The message of the latest occurrence (a sample).
    pub message: String,
    /// When the first occurrence happened.
    #[serde(serialize_with = "ser_time")]
    pub first_occurrence_time: SystemTime,
    /// When the latest occurrence happened.
    #[serde(serialize_with = "ser_time")]
    pub last_occurrence_time: SystemTime,
    /// How many occurrences there were (exact, whatever the retention of stored occurrences).
    pub occurrence_count: u64,
    /// Whether someone marked the ticket solved (a new occurrence reopens it).
    pub solved: bool,
}

/// One stored occurrence of a ticket: the whole record as JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Occurrence {
    /// The occurrence's id (grows with insertion order).
    pub id: i64,
    /// The ticket it belongs to.
    pub ticket_id: i64,
    /// When it happened.
    #[serde(serialize_with = "ser_time")]
    pub time: SystemTime,
    /// The app it came from.
    pub app_id: String,
    /// The whole [`Record`] as JSON text.
    #[serde(serialize_with = "ser_json_text")]
    pub data: String,
}

impl Occurrence {
    /// The stored record.
    pub fn record(&self) -> Result<Record, serde_json::Error> {
        serde_json::from_str(&self.data)
    }
}

fn ser_level<S: Serializer>(l: &Level, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(l.as_str())
}

fn ser_time<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&watchbell_core::time::rfc3339(*t))
}

fn ser_json_text<S: Serializer>(t: &str, s: S) -> Result<S::Ok, S::Error> {
    match serde_json::from_str::<serde_json::Value>(t) {
        Ok(v) => v.serialize(s),
        Err(_) => s.serialize_str(t),
    }
}

/// The order of [`TicketStore::list_tickets`]; always descending, ties broken by the newest id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// The most recently seen first (the default, like Logbook's `-last_occurrence_time`).
    #[default]
    LastOccurrence,
    /// The most recently opened first.
    FirstOccurrence,
    /// The most frequent first.
    Count,
}

impl Order {
    fn sql(self) -> &'static str {
        match self {
            Order::LastOccurrence => "last_occurrence_time DESC, id DESC",
            Order::FirstOccurrence => "first_occurrence_time DESC, id DESC",
            Order::Count => "occurrence_count DESC, id DESC",
        }
    }
}

/// Filters, order and page of a ticket listing. `TicketQuery::default()` lists the 50 most
/// recently seen tickets of every app, solved or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketQuery {
    /// Only tickets of this app.
    pub app_id: Option<String>,
    /// Only tickets of exactly this level.
    pub level: Option<Level>,
    /// Only solved (`Some(true)`) or open (`Some(false)`) tickets.
    pub solved: Option<bool>,
    /// The order.
    pub order: Order,
    /// The most tickets returned (default 50).
    pub limit: u32,
    /// How many tickets to skip.
    pub offset: u64,
}

impl Default for TicketQuery {
    fn default() -> Self {
        TicketQuery { app_id: None, level: None, solved: None, order: Order::LastOccurrence, limit: 50, offset: 0 }
    }
}

impl TicketQuery {
    /// Only tickets of this app.
    pub fn app(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = Some(app_id.into());
        self
    }
    /// Only tickets of exactly this level.
    pub fn level(mut self, level: Level) -> Self {
        self.level = Some(level);
        self
    }
    /// Only solved (`true`) or open (`false`) tickets.
    pub fn solved(mut self, solved: bool) -> Self {
        self.solved = Some(solved);
        self
    }
    /// The order.
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }
    /// The page: at most `limit` tickets after skipping `offset`.
    pub fn page(mut self, limit: u32, offset: u64) -> Self {
        self.limit = limit;
        self.offset = offset;
        self
    }
}

/// Totals of a ticket database (for `watchbell-tickets stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Tickets.
    pub tickets: u64,
    /// Tickets not solved.
    pub open: u64,
    /// Tickets solved.
    pub solved: u64,
    /// The sum of every ticket's occurrence count.
    pub occurrences: u64,
    /// Occurrences stored (bounded by the retention).
    pub stored_occurrences: u64,
    /// Per level: (level, tickets, occurrences), most severe first.
    pub by_level: Vec<(String, u64, u64)>,
    /// Per app: (app id, tickets, occurrences).
    pub by_app: Vec<(String, u64, u64)>,
}

/// A query parameter (the few kinds the query API binds).
#[derive(Clone, Debug)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
    Bool(bool),
}

/// What differs in the SQL of the backends: how a parameter is written, a few names. The
/// statements both backends run are built here once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dialect {
    /// The backend's name, the prefix of its error messages.
    pub(crate) name: &'static str,
    /// The parameter sigil: `?1` (SQLite) or `$1` (PostgreSQL).
    sigil: char,
    least: &'static str,
    greatest: &'static str,
    false_: &'static str,
}

pub(crate) const SQLITE: Dialect = Dialect { name: "sqlite", sigil: '?', least: "MIN", greatest: "MAX", false_: "0" };
#[cfg(feature = "postgres")]
pub(crate) const POSTGRES: Dialect =
    Dialect { name: "postgres", sigil: '$', least: "LEAST", greatest: "GREATEST", false_: "false" };

impl Dialect {
    /// Parameter `n` (from 1).
    pub(crate) fn placeholder(self, n: usize) -> String {
        format!("{}{n}", self.sigil)
    }

    /// Writes `$n` of a statement as this dialect's parameter (table names never hold `$`).
    fn params(self, sql: String) -> String {
        if self.sigil == '$' {
            sql
        } else {
            sql.replace('$', &self.sigil.to_string())
        }
    }

    /// Inserts or counts up one ticket: `$1..$10` = app, fingerprint, level, target, location,
    /// module, message, first time, last time, count; returns the ticket's id.
    pub(crate) fn upsert(self, tables: &Tables) -> String {
        let false_ = self.false_;
        self.params(format!(
            "INSERT INTO {} (app_id, fingerprint, level, target, location, module, message, \
             first_occurrence_time, last_occurrence_time, occurrence_count, solved) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, {false_}) {} RETURNING id, occurrence_count",
            tables.tickets,
            self.on_conflict(tables)
        ))
    }

    /// Inserts or counts up every ticket of a batch in one statement (PostgreSQL): `$1` = app,
    /// `$2..$10` = arrays of fingerprint, level, target, location, module, message, first time,
    /// last time and count, one element per ticket; rows are written (and locked) in the
    /// arrays' order. Returns each ticket's fingerprint, id and new count.
    #[cfg(feature = "postgres")]
    pub(crate) fn upsert_batch(self, tables: &Tables) -> String {
        format!(
            "INSERT INTO {} (app_id, fingerprint, level, target, location, module, message, \
             first_occurrence_time, last_occurrence_time, occurrence_count, solved) \
             SELECT $1, u.fingerprint, u.level, u.target, u.location, u.module, u.message, u.first, u.last, \
             u.count, {} FROM UNNEST($2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], \
             $8::TIMESTAMPTZ[], $9::TIMESTAMPTZ[], $10::BIGINT[]) WITH ORDINALITY \
             AS u (fingerprint, level, target, location, module, message, first, last, count, n) \
             ORDER BY u.n {} RETURNING fingerprint, id, occurrence_count",
            tables.tickets,
            self.false_,
            self.on_conflict(tables)
        )
    }

    /// The conflict clause of the upserts: counts add up, times widen, the newest message wins,
    /// and a solved ticket is reopened.
    fn on_conflict(self, tables: &Tables) -> String {
        let t = &tables.tickets;
        let Dialect { least, greatest, false_, .. } = self;
        format!(
            "ON CONFLICT (app_id, fingerprint) DO UPDATE SET \
             occurrence_count = {t}.occurrence_count + excluded.occurrence_count, \
             message = CASE WHEN excluded.last_occurrence_time >= {t}.last_occurrence_time \
                 THEN excluded.message ELSE {t}.message END, \
             target = excluded.target, location = excluded.location, module = excluded.module, \
             first_occurrence_time = {least}({t}.first_occurrence_time, excluded.first_occurrence_time), \
             last_occurrence_time = {greatest}({t}.last_occurrence_time, excluded.last_occurrence_time), \
             solved = {false_}"
        )
    }

    /// Whether ticket `$1`/`$2` (app, fingerprint) exists and is solved, read before its
    /// upsert; PostgreSQL locks the row until the transaction ends (in the same fingerprint
    /// order as the upserts), so no other writer changes it in between.
    pub(crate) fn prior(self, tables: &Tables) -> String {
        let lock = if self.sigil == '$' { " FOR UPDATE" } else { "" };
        self.params(format!("SELECT solved FROM {} WHERE app_id = $1 AND fingerprint = $2{lock}", tables.tickets))
    }

    /// Statements that read no row but fail when a table or a column this crate uses is
    /// missing: the check made instead of creating the schema.
    pub(crate) fn probes(self, tables: &Tables) -> [(String, String); 2] {
        [
            (tables.tickets.clone(), format!("SELECT {TICKET_COLUMNS} FROM {} LIMIT 0", tables.tickets)),
            (
                tables.occurrences.clone(),
                format!("SELECT id, ticket_id, time, app_id, data FROM {} LIMIT 0", tables.occurrences),
            ),
        ]
    }

    /// The error of a failed probe.
    pub(crate) fn missing(self, table: &str, e: &StoreError) -> StoreError {
        StoreError::new(format!(
            "{}: the table {table} is missing or lacks a column ({e}); auto_create_tables is off, so \
             watchbell does not create it: create the schema (see the crate docs) or turn auto_create_tables on",
            self.name
        ))
    }

    /// Whether each ticket of app `$1` among the fingerprints `$2` (an array) exists and is
    /// solved, read before the batch's upsert and locked until the transaction ends, in
    /// fingerprint order (PostgreSQL).
    #[cfg(feature = "postgres")]
    pub(crate) fn prior_batch(self, tables: &Tables) -> String {
        format!(
            "SELECT fingerprint, solved FROM {} WHERE app_id = $1 AND fingerprint = ANY($2::TEXT[]) \
             ORDER BY fingerprint FOR UPDATE",
            tables.tickets
        )
    }

    /// Deletes the occurrences of ticket `$1` but its newest `$2`.
    pub(crate) fn retain(self, tables: &Tables) -> String {
        let o = &tables.occurrences;
        self.params(format!(
            "DELETE FROM {o} WHERE ticket_id = $1 AND id <= \
             (SELECT id FROM {o} WHERE ticket_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)"
        ))
    }

    /// The two statements that delete ticket `$1`: its occurrences, then itself.
    pub(crate) fn delete(self, tables: &Tables) -> [String; 2] {
        [
            self.params(format!("DELETE FROM {} WHERE ticket_id = $1", tables.occurrences)),
            self.params(format!("DELETE FROM {} WHERE id = $1", tables.tickets)),
        ]
    }

    /// Refuses a schema newer than the `known` migrations.
    pub(crate) fn check_version(self, current: i64, known: usize) -> Result<(), StoreError> {
        if current > known as i64 {
            return Err(StoreError::new(format!(
                "{}: the schema is version {current}, newer than this watchbell-ticketing knows ({known}); upgrade it",
                self.name
            )));
        }
        Ok(())
    }
}

/// A count as the databases store it.
pub(crate) fn db_count(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

/// The occurrences of one fingerprint in one batch, aggregated before they are written.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) fingerprint: String,
    pub(crate) level: Level,
    pub(crate) target: String,
    pub(crate) location: Option<String>,
    pub(crate) module: Option<String>,
    pub(crate) message: String,
    pub(crate) first: SystemTime,
    pub(crate) last: SystemTime,
    /// How much the occurrence count grows (records plus what a rate limiter suppressed).
    pub(crate) count: u64,
    /// The newest occurrences to store (at most the retention), their text in the batch's
    /// [`WriteBatch::text`].
    pub(crate) occurrences: Vec<Occ>,
    /// The newest record, as stored (kept only when ticket sinks are told of changes).
    pub(crate) newest: Option<Record>,
}

/// One stored occurrence of an [`Entry`]: its time, and where its time's text and its record
/// JSON are in the batch's [`WriteBatch::text`].
#[derive(Clone, Debug)]
pub(crate) struct Occ {
    pub(crate) time: SystemTime,
    /// The time as RFC 3339 text (the `time` column).
    pub(crate) time_text: std::ops::Range<usize>,
    /// The record as JSON (the `data` column).
    pub(crate) data: std::ops::Range<usize>,
}

/// A batch as it is written: one entry per ticket, and the text of every stored occurrence
/// side by side in one buffer (one allocation per batch instead of one per occurrence).
#[derive(Clone, Debug, Default)]
pub(crate) struct WriteBatch {
    pub(crate) entries: Vec<Entry>,
    pub(crate) text: String,
}

impl WriteBatch {
    /// The time text and the record JSON of `o`.
    pub(crate) fn texts(&self, o: &Occ) -> (&str, &str) {
        (self.text.get(o.time_text.clone()).unwrap_or(""), self.text.get(o.data.clone()).unwrap_or("{}"))
    }
}

/// What a write did to one entry's ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) ticket_id: i64,
    /// The occurrence count after the write.
    pub(crate) count: i64,
    /// The write created the ticket.
    pub(crate) new: bool,
    /// The ticket was solved before the write.
    pub(crate) reopened: bool,
}

impl Change {
    /// From the upsert's answer: the ticket is new when its count is exactly this write's
    /// (an existing ticket already had at least one occurrence).
    pub(crate) fn of(ticket_id: i64, count: i64, added: i64, prior_solved: Option<bool>) -> Change {
        Change { ticket_id, count, new: prior_solved.is_none() && count == added, reopened: prior_solved == Some(true) }
    }
}

pub(crate) enum Backend {
    Sqlite(Box<sqlite::Db>),
    #[cfg(feature = "postgres")]
    Postgres(Box<crate::pg::Db>),
}

/// The ticket database: opens (and migrates) a SQLite file or a PostgreSQL database, and
/// answers the query API. One store is one connection; open one per thread.
///
/// ```
/// use watchbell_ticketing::{TicketQuery, TicketStore};
/// let dir = std::env::temp_dir().join(format!("wb-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let mut store = TicketStore::open(&format!("sqlite://{}/tickets.db", dir.display())).unwrap();
/// assert_eq!(store.count_tickets(&TicketQuery::default()).unwrap(), 0);
/// # std::fs::remove_dir_all(&dir).ok();
/// ```
pub struct TicketStore {
    pub(crate) backend: Quiet<Backend>,
    pub(crate) tables: Tables,
}

impl fmt::Debug for TicketStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match *self.backend {
            Backend::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => "postgres",
        };
        f.debug_struct("TicketStore").field("backend", &kind).field("prefix", &self.tables.prefix).finish()
    }
}

/// Holds the backend so that closing it (the PostgreSQL client logs as it closes) happens with
/// capture suppressed, like every other call into it.
pub(crate) struct Quiet<T>(Option<T>);

impl<T> std::ops::Deref for Quiet<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("present until dropped")
    }
}

impl<T> std::ops::DerefMut for Quiet<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("present until dropped")
    }
}

impl<T> Drop for Quiet<T> {
    fn drop(&mut self) {
        let _quiet = suppress();
        drop(self.0.take());
    }
}

impl TicketStore {
    /// Opens the database at `url` with the default table prefix (`watchbell_`); creates or
    /// migrates the schema.
    pub fn open(url: &str) -> Result<TicketStore, StoreError> {
        Self::open_with(url, DEFAULT_PREFIX, Duration::from_secs(5))
    }

    /// Opens the database at `url` with table prefix `prefix`; `timeout` is SQLite's busy
    /// timeout or PostgreSQL's connect timeout.
    pub fn open_with(url: &str, prefix: &str, timeout: Duration) -> Result<TicketStore, StoreError> {
        let target = Target::parse(url).map_err(StoreError::new)?;
        check_prefix(prefix).map_err(|e| StoreError::new(format!("table prefix: {e}")))?;
        Self::connect(&target, prefix, timeout)
    }

    /// Opens `target` (see [`open_with`](Self::open_with)).
    pub fn connect(target: &Target, prefix: &str, timeout: Duration) -> Result<TicketStore, StoreError> {
        Self::connect_with(target, prefix, timeout, true)
    }

    /// Opens `target`; with `create_tables` false the schema is neither created nor migrated
    /// (it is managed elsewhere): the tables are checked instead, and a missing one is an
    /// error naming it. A missing SQLite file is an error too.
    pub fn connect_with(
        target: &Target,
        prefix: &str,
        timeout: Duration,
        create_tables: bool,
    ) -> Result<TicketStore, StoreError> {
        let tables = Tables::new(prefix);
        // The database clients log (PostgreSQL's through `log`): on an application thread
        // those records must not reach watchbell's own layers.
        let _quiet = suppress();
        let backend = match target {
            Target::Sqlite(path) => Backend::Sqlite(Box::new(sqlite::Db::open(path, timeout, &tables, create_tables)?)),
            #[cfg(feature = "postgres")]
            Target::Postgres(config) => {
                Backend::Postgres(Box::new(crate::pg::Db::open(config, timeout, &tables, create_tables)?))
            }
        };
        Ok(TicketStore { backend: Quiet(Some(backend)), tables })
    }

    /// The schema version of the database (the number of migrations applied).
    pub fn schema_version(&mut self) -> Result<i64, StoreError> {
        let sql = format!("SELECT COALESCE(MAX(version), 0) FROM {}", self.tables.version);
        Ok(self.ints(&sql, &[])?.first().and_then(|r| r.first().copied()).unwrap_or(0))
    }

    /// Writes a batch of aggregated entries in one transaction; with `changes`, also tells
    /// what happened to each entry's ticket (in the entries' order).
    pub(crate) fn write(
        &mut self,
        app_id: &str,
        batch: &WriteBatch,
        keep: u32,
        changes: bool,
    ) -> Result<Vec<Change>, StoreError> {
        let _quiet = suppress();
        match &mut *self.backend {
            Backend::Sqlite(db) => db.write(app_id, batch, keep, changes),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.write(app_id, batch, keep, changes),
        }
    }

    fn placeholder(&self, n: usize) -> String {
        match *self.backend {
            Backend::Sqlite(_) => SQLITE.placeholder(n),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => POSTGRES.placeholder(n),
        }
    }

    fn ints(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Vec<i64>>, StoreError> {
        let _quiet = suppress();
        match &mut *self.backend {
            Backend::Sqlite(db) => db.ints(sql, params),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.ints(sql, params),
        }
    }

    fn grouped(&mut self, sql: &str, params: &[Param]) -> Result<Vec<(String, u64, u64)>, StoreError> {
        let _quiet = suppress();
        match &mut *self.backend {
            Backend::Sqlite(db) => db.grouped(sql, params),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.grouped(sql, params),
        }
    }

    fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, StoreError> {
        let _quiet = suppress();
        match &mut *self.backend {
            Backend::Sqlite(db) => db.execute(sql, params),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.execute(sql, params),
        }
    }

    fn tickets(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Ticket>, StoreError> {
        let _quiet = suppress();
        match &mut *self.backend {
            Backend::Sqlite(db) => db.tickets(sql, params),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.tickets(sql, params),
        }
    }

    fn where_clause(&self, q: &TicketQuery, params: &mut Vec<Param>) -> String {
        let mut conds = Vec::new();
        if let Some(app) = &q.app_id {
            params.push(Param::Text(app.clone()));
            conds.push(format!("app_id = {}", self.placeholder(params.len())));
        }
        if let Some(level) = q.level {
            params.push(Param::Text(level.as_str().to_owned()));
            conds.push(format!("level = {}", self.placeholder(params.len())));
        }
        if let Some(solved) = q.solved {
            params.push(Param::Bool(solved));
            conds.push(format!("solved = {}", self.placeholder(params.len())));
        }
        if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        }
    }

    /// The number of tickets matching the query's filters (order and page are ignored).
    pub fn count_tickets(&mut self, query: &TicketQuery) -> Result<u64, StoreError> {
        let mut params = Vec::new();
        let w = self.where_clause(query, &mut params);
        let sql = format!("SELECT COUNT(*) FROM {}{w}", self.tables.tickets);
        Ok(self.ints(&sql, &params)?.first().and_then(|r| r.first().copied()).unwrap_or(0) as u64)
    }

    /// The tickets matching the query, in its order, one page.
    pub fn list_tickets(&mut self, query: &TicketQuery) -> Result<Vec<Ticket>, StoreError> {
        let mut params = Vec::new();
        let w = self.where_clause(query, &mut params);
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM {}{w} ORDER BY {} LIMIT {} OFFSET {}",
            self.tables.tickets,
            query.order.sql(),
            query.limit,
            query.offset.min(i64::MAX as u64)
        );
        self.tickets(&sql, &params)
    }

    /// One ticket by id.
    pub fn get_ticket(&mut self, id: i64) -> Result<Option<Ticket>, StoreError> {
        let sql = format!("SELECT {TICKET_COLUMNS} FROM {} WHERE id = {}", self.tables.tickets, self.placeholder(1));
        Ok(self.tickets(&sql, &[Param::Int(id)])?.into_iter().next())
    }

    /// The stored occurrences of a ticket, newest first, one page.
    pub fn occurrences(&mut self, ticket_id: i64, limit: u32, offset: u64) -> Result<Vec<Occurrence>, StoreError> {
        let sql = format!(
            "SELECT id, ticket_id, time, app_id, data FROM {} WHERE ticket_id = {} ORDER BY id DESC LIMIT {limit} OFFSET {}",
            self.tables.occurrences,
            self.placeholder(1),
            offset.min(i64::MAX as u64)
        );
        let params = [Param::Int(ticket_id)];
        let _quiet = suppress();
        match &mut *self.backend {
            Backend::Sqlite(db) => db.occurrences(&sql, &params),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.occurrences(&sql, &params),
        }
    }

    /// Marks a ticket solved; false if there is no such ticket.
    pub fn solve(&mut self, id: i64) -> Result<bool, StoreError> {
        self.set_solved(id, true)
    }

    /// Marks a ticket open again; false if there is no such ticket.
    pub fn reopen(&mut self, id: i64) -> Result<bool, StoreError> {
        self.set_solved(id, false)
    }

    fn set_solved(&mut self, id: i64, solved: bool) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE {} SET solved = {} WHERE id = {}",
            self.tables.tickets,
            self.placeholder(1),
            self.placeholder(2)
        );
        Ok(self.execute(&sql, &[Param::Bool(solved), Param::Int(id)])? > 0)
    }

    /// Deletes a ticket and its occurrences; false if there is no such ticket.
    pub fn delete(&mut self, id: i64) -> Result<bool, StoreError> {
        // Best effort: a schema managed elsewhere may lack the notifications table.
        let _ = self.delete_notifications(id);
        let tables = self.tables.clone();
        let _quiet = suppress();
        match &mut *self.backend {
            Backend::Sqlite(db) => db.delete(&tables, id),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.delete(&tables, id),
        }
    }

    /// Totals, optionally of one app.
    pub fn stats(&mut self, app_id: Option<&str>) -> Result<StoreStats, StoreError> {
        let q = TicketQuery { app_id: app_id.map(str::to_owned), ..TicketQuery::default() };
        let mut params = Vec::new();
        let w = self.where_clause(&q, &mut params);
        let t = self.tables.tickets.clone();
        let row = self.ints(
            &format!(
                "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN solved THEN 1 ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(occurrence_count), 0) AS BIGINT) FROM {t}{w}"
            ),
            &params,
        )?;
        let row = row.first().cloned().unwrap_or_default();
        let get = |i: usize| row.get(i).copied().unwrap_or(0).max(0) as u64;
        let (tickets, solved, occurrences) = (get(0), get(1), get(2));
        let stored_sql = match &q.app_id {
            Some(_) => {
                format!("SELECT COUNT(*) FROM {} WHERE app_id = {}", self.tables.occurrences, self.placeholder(1))
            }
            None => format!("SELECT COUNT(*) FROM {}", self.tables.occurrences),
        };
        let stored = self.ints(&stored_sql, &params)?.first().and_then(|r| r.first().copied()).unwrap_or(0) as u64;
        let mut by_level = self.grouped(
            &format!(
                "SELECT level, COUNT(*), CAST(COALESCE(SUM(occurrence_count), 0) AS BIGINT) FROM {t}{w} GROUP BY level"
            ),
            &params,
        )?;
        by_level.sort_by_key(|(l, _, _)| l.parse::<Level>().map(level_rank).unwrap_or(99));
        let by_app = self.grouped(
            &format!(
                "SELECT app_id, COUNT(*), CAST(COALESCE(SUM(occurrence_count), 0) AS BIGINT) FROM {t}{w} \
                 GROUP BY app_id ORDER BY app_id"
            ),
            &params,
        )?;
        Ok(StoreStats {
            tickets,
            open: tickets - solved.min(tickets),
            solved,
            occurrences,
            stored_occurrences: stored,
            by_level,
            by_app,
        })
    }
}

fn level_rank(l: Level) -> u8 {
    match l {
        Level::ERROR => 0,
        Level::WARN => 1,
        Level::INFO => 2,
        Level::DEBUG => 3,
        _ => 4,
    }
}

pub(crate) const TICKET_COLUMNS: &str = "id, app_id, fingerprint, level, target, location, module, message, \
     first_occurrence_time, last_occurrence_time, occurrence_count, solved";

pub(crate) fn parse_level(s: &str) -> Level {
    watchbell_core::filter::parse_level(s).unwrap_or(Level::ERROR)
}

// ---------------------------------------------------------------------------------------------
// Read queries of the web viewer: text search, target filter, hourly occurrence counts, lookup by
// fingerprint, and the indexes these (and the viewer's sort orders) need.
// ---------------------------------------------------------------------------------------------

/// A ticket listing with the viewer's filters: a [`TicketQuery`] plus a target and a text search.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TicketSearch {
    /// App, level, solved state, order and page.
    pub query: TicketQuery,
    /// Only tickets whose target is this one or inside it (`app` matches `app` and `app::db`).
    pub target: Option<String>,
    /// Only tickets whose message, target or location contains this text (case-insensitive for
    /// ASCII letters; `%` and `_` are matched literally).
    pub text: Option<String>,
}

/// Occurrences of one ticket in one hour, from [`TicketStore::hourly_counts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HourCount {
    /// The ticket.
    pub ticket_id: i64,
    /// The hour, counted from the `since` of the query (0 is the first hour).
    pub hour: u32,
    /// Stored occurrences in that hour.
    pub count: u64,
}

/// `LIKE` pattern for a substring, with `\` as the escape character.
fn like_contains(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl TicketStore {
    fn search_where(&self, s: &TicketSearch, params: &mut Vec<Param>) -> String {
        let mut w = self.where_clause(&s.query, params);
        let mut add = |cond: String| {
            if w.is_empty() {
                w = format!(" WHERE {cond}");
            } else {
                w.push_str(" AND ");
                w.push_str(&cond);
            }
        };
        if let Some(target) = s.target.as_deref().filter(|t| !t.is_empty()) {
            params.push(Param::Text(target.to_owned()));
            let a = self.placeholder(params.len());
            let mut prefix = like_contains(target);
            prefix.remove(0);
            prefix.pop();
            params.push(Param::Text(format!("{prefix}::%")));
            let b = self.placeholder(params.len());
            add(format!("(target = {a} OR target LIKE {b} ESCAPE '\\')"));
        }
        if let Some(text) = s.text.as_deref().filter(|t| !t.is_empty()) {
            params.push(Param::Text(like_contains(text)));
            let p = self.placeholder(params.len());
            add(format!(
                "(LOWER(message) LIKE {p} ESCAPE '\\' OR LOWER(target) LIKE {p} ESCAPE '\\' \
                 OR LOWER(COALESCE(location, '')) LIKE {p} ESCAPE '\\')"
            ));
        }
        w
    }

    /// The number of tickets matching the search's filters (order and page are ignored).
    pub fn count_search(&mut self, search: &TicketSearch) -> Result<u64, StoreError> {
        let mut params = Vec::new();
        let w = self.search_where(search, &mut params);
        let sql = format!("SELECT COUNT(*) FROM {}{w}", self.tables.tickets);
        Ok(self.ints(&sql, &params)?.first().and_then(|r| r.first().copied()).unwrap_or(0).max(0) as u64)
    }

    /// The number of tickets matching the search's filters, counting at most `limit`: a list
    /// page names "more than N" instead of scanning every ticket of a large database.
    pub fn count_search_upto(&mut self, search: &TicketSearch, limit: u64) -> Result<u64, StoreError> {
        let mut params = Vec::new();
        let w = self.search_where(search, &mut params);
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM {}{w} LIMIT {}) AS matching",
            self.tables.tickets,
            limit.min(i64::MAX as u64)
        );
        Ok(self.ints(&sql, &params)?.first().and_then(|r| r.first().copied()).unwrap_or(0).max(0) as u64)
    }

    /// The tickets matching the search, in its order, one page.
    pub fn search_tickets(&mut self, search: &TicketSearch) -> Result<Vec<Ticket>, StoreError> {
        let mut params = Vec::new();
        let w = self.search_where(search, &mut params);
        let q = &search.query;
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM {}{w} ORDER BY {} LIMIT {} OFFSET {}",
            self.tables.tickets,
            q.order.sql(),
            q.limit,
            q.offset.min(i64::MAX as u64)
        );
        self.tickets(&sql, &params)
    }

    /// The ticket of `fingerprint` in app `app_id`, if there is one.
    pub fn ticket_by_fingerprint(&mut self, app_id: &str, fingerprint: &str) -> Result<Option<Ticket>, StoreError> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM {} WHERE app_id = {} AND fingerprint = {}",
            self.tables.tickets,
            self.placeholder(1),
            self.placeholder(2)
        );
        let params = [Param::Text(app_id.to_owned()), Param::Text(fingerprint.to_owned())];
        Ok(self.tickets(&sql, &params)?.into_iter().next())
    }

    /// The stored occurrences of each of `ticket_ids` per hour over `hours` hours from `since`
    /// (only hours with occurrences are returned). Counts only what the retention kept: a ticket
    /// with more occurrences than it stores shows its newest ones.
    pub fn hourly_counts(
        &mut self,
        ticket_ids: &[i64],
        since: SystemTime,
        hours: u32,
    ) -> Result<Vec<HourCount>, StoreError> {
        if ticket_ids.is_empty() || hours == 0 {
            return Ok(Vec::new());
        }
        let since_secs = since.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
        let ids = ticket_ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        let o = &self.tables.occurrences;
        let (sql, params) = match *self.backend {
            Backend::Sqlite(_) => (
                format!(
                    "SELECT ticket_id, (CAST(strftime('%s', time) AS INTEGER) - ?2) / 3600 AS h, COUNT(*) \
                     FROM {o} WHERE ticket_id IN ({ids}) AND time >= ?1 GROUP BY ticket_id, h"
                ),
                vec![Param::Text(watchbell_core::time::rfc3339(since)), Param::Int(since_secs)],
            ),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => (
                format!(
                    "SELECT ticket_id, CAST(FLOOR((EXTRACT(EPOCH FROM time) - $1::BIGINT) / 3600) AS BIGINT) AS h, \
                     COUNT(*) FROM {o} WHERE ticket_id IN ({ids}) AND time >= to_timestamp($1::BIGINT) \
                     GROUP BY ticket_id, h"
                ),
                vec![Param::Int(since_secs)],
            ),
        };
        Ok(self
            .ints(&sql, &params)?
            .into_iter()
            .filter_map(|r| {
                let (id, h, n) = (*r.first()?, *r.get(1)?, *r.get(2)?);
                (0..i64::from(hours)).contains(&h).then(|| HourCount {
                    ticket_id: id,
                    hour: h as u32,
                    count: n.max(0) as u64,
                })
            })
            .collect())
    }

    /// Creates (if absent) the indexes of the viewer's sort orders and charts: tickets by
    /// occurrence count and by first occurrence, occurrences by ticket and time.
    pub fn create_view_indexes(&mut self) -> Result<(), StoreError> {
        let p = self.tables.prefix.clone();
        for sql in [
            format!("CREATE INDEX IF NOT EXISTS {p}tickets_count ON {p}tickets (occurrence_count)"),
            format!("CREATE INDEX IF NOT EXISTS {p}tickets_first ON {p}tickets (first_occurrence_time)"),
            format!("CREATE INDEX IF NOT EXISTS {p}occurrences_ticket_time ON {p}occurrences (ticket_id, time)"),
        ] {
            self.execute(&sql, &[])?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Alert destinations notified of a ticket: the `{prefix}notifications` table, one row per app,
// fingerprint and destination, written from the in-process journal of the alert sinks
// (`watchbell_core::notified`) by the ticketing worker, and read by the viewer.
// ---------------------------------------------------------------------------------------------

/// An alert destination that was notified of a ticket's events, from
/// [`TicketStore::notifications`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// The app of the ticket.
    pub app_id: String,
    /// The ticket's fingerprint.
    pub fingerprint: String,
    /// The destination's name: `slack`, `telegram`, `mail`, `sms:twilio`, …
    pub destination: String,
    /// When it was first notified (the time of the first delivered alert).
    #[serde(serialize_with = "ser_time")]
    pub first_time: SystemTime,
    /// When it was last notified.
    #[serde(serialize_with = "ser_time")]
    pub last_time: SystemTime,
    /// How many records of the ticket it was delivered.
    pub count: u64,
}

type NoteKey<'a> = (&'a str, &'a str, &'a str);
type NoteSpan = (SystemTime, SystemTime, u64);

/// One row of the notifications upsert: app, fingerprint, destination, first and last time
/// (RFC 3339), count.
pub(crate) type NotificationRow = (String, String, String, String, String, i64);

impl TicketStore {
    /// The alert destinations notified of ticket `ticket_id` (most recently notified first);
    /// empty for a ticket nobody was alerted of, or no ticket.
    pub fn notifications(&mut self, ticket_id: i64) -> Result<Vec<Notification>, StoreError> {
        let n = format!("{}notifications", self.tables.prefix);
        let sql = format!(
            "SELECT n.app_id, n.fingerprint, n.destination, n.first_time, n.last_time, n.count FROM {n} n \
             JOIN {} t ON t.app_id = n.app_id AND t.fingerprint = n.fingerprint WHERE t.id = {} \
             ORDER BY n.last_time DESC, n.destination",
            self.tables.tickets,
            self.placeholder(1)
        );
        let params = [Param::Int(ticket_id)];
        let _quiet = suppress();
        match &mut *self.backend {
            Backend::Sqlite(db) => db.notifications(&sql, &params),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.notifications(&sql, &params),
        }
    }

    /// Records deliveries of alerts (as the alert sinks' journal reports them): each counts one
    /// for its app, fingerprint and destination, in one transaction. A ticket that does not
    /// exist yet gets its notifications when it does (they are keyed by fingerprint).
    pub fn record_notifications(&mut self, notes: &[watchbell_core::notified::Notified]) -> Result<(), StoreError> {
        // (app, fingerprint, destination) → (first, last, count), in key order (a fixed lock
        // order for concurrent writers).
        let mut agg: std::collections::BTreeMap<NoteKey<'_>, NoteSpan> = std::collections::BTreeMap::new();
        for note in notes {
            let key = (note.app_id.as_str(), note.fingerprint.as_str(), note.destination.as_str());
            let e = agg.entry(key).or_insert((note.time, note.time, 0));
            e.0 = e.0.min(note.time);
            e.1 = e.1.max(note.time);
            e.2 += 1;
        }
        if agg.is_empty() {
            return Ok(());
        }
        let rows: Vec<NotificationRow> = agg
            .into_iter()
            .map(|((a, f, d), (first, last, count))| {
                let t = |s: SystemTime| watchbell_core::time::rfc3339(s);
                (a.to_owned(), f.to_owned(), d.to_owned(), t(first), t(last), db_count(count))
            })
            .collect();
        let n = format!("{}notifications", self.tables.prefix);
        let _quiet = suppress();
        match &mut *self.backend {
            Backend::Sqlite(db) => db.record_notifications(&SQLITE.notification_upsert(&n), &rows),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.record_notifications(&POSTGRES.notification_upsert(&n), &rows),
        }
    }

    /// Deletes the notifications of a ticket about to be deleted.
    fn delete_notifications(&mut self, id: i64) -> Result<(), StoreError> {
        let n = format!("{}notifications", self.tables.prefix);
        let sql = format!(
            "DELETE FROM {n} WHERE EXISTS (SELECT 1 FROM {t} t WHERE t.id = {p} AND t.app_id = {n}.app_id \
             AND t.fingerprint = {n}.fingerprint)",
            t = self.tables.tickets,
            p = self.placeholder(1)
        );
        self.execute(&sql, &[Param::Int(id)]).map(|_| ())
    }
}

impl Dialect {
    /// Counts up one notification row: `$1..$6` = app, fingerprint, destination, first time,
    /// last time (RFC 3339 text), count.
    fn notification_upsert(self, n: &str) -> String {
        let Dialect { least, greatest, .. } = self;
        let time = |i: u8| if self.sigil == '$' { format!("${i}::TEXT::TIMESTAMPTZ") } else { format!("${i}") };
        self.params(format!(
            "INSERT INTO {n} (app_id, fingerprint, destination, first_time, last_time, count) \
             VALUES ($1, $2, $3, {}, {}, $6) \
             ON CONFLICT (app_id, fingerprint, destination) DO UPDATE SET \
             count = {n}.count + excluded.count, \
             first_time = {least}({n}.first_time, excluded.first_time), \
             last_time = {greatest}({n}.last_time, excluded.last_time)",
            time(4),
            time(5)
        ))
    }
}
