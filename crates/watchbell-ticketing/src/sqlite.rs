//! The SQLite backend (rusqlite with the bundled SQLite): WAL, a busy timeout, and
//! `BEGIN IMMEDIATE` for every writer so that counts stay exact with several processes.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OpenFlags, TransactionBehavior};
use watchbell_core::time::{parse_rfc3339, rfc3339};

use crate::store::{db_count, parse_level, Change, Occurrence, Param, StoreError, Tables, Ticket, WriteBatch, SQLITE};

/// Versioned migrations; `{p}` is the table prefix. Never edit one that shipped: append.
const MIGRATIONS: &[&str] = &[
    // 1: tickets and occurrences.
    "CREATE TABLE {p}tickets (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app_id TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        level TEXT NOT NULL,
        target TEXT NOT NULL,
        location TEXT,
        module TEXT,
        message TEXT NOT NULL,
        first_occurrence_time TEXT NOT NULL,
        last_occurrence_time TEXT NOT NULL,
        occurrence_count INTEGER NOT NULL,
        solved BOOLEAN NOT NULL DEFAULT 0,
        UNIQUE (app_id, fingerprint)
    );
    CREATE INDEX {p}tickets_last ON {p}tickets (last_occurrence_time);
    CREATE TABLE {p}occurrences (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ticket_id INTEGER NOT NULL REFERENCES {p}tickets (id) ON DELETE CASCADE,
        time TEXT NOT NULL,
        app_id TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX {p}occurrences_ticket ON {p}occurrences (ticket_id, id);",
    // 2: the alert destinations notified of each ticket (keyed by fingerprint: an alert may be
    // delivered before its ticket is written).
    "CREATE TABLE {p}notifications (
        app_id TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        destination TEXT NOT NULL,
        first_time TEXT NOT NULL,
        last_time TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (app_id, fingerprint, destination)
    );",
];

/// Occurrences per multi-row `INSERT` (3 parameters each and the app id once: far below
/// SQLite's limit of 32,766).
const INSERT_ROWS: usize = 128;

pub(crate) struct Db {
    conn: Connection,
    upsert: String,
    /// [`INSERT_ROWS`] occurrences in one statement.
    insert_many: String,
    retain: String,
    prior: String,
    occurrences_table: String,
}

/// A multi-row insert of `rows` occurrences: `?1` is the app id, then ticket id, time and
/// data of each row.
fn insert_rows(table: &str, rows: usize) -> String {
    let values: Vec<String> =
        (0..rows).map(|k| format!("(?{}, ?{}, ?1, ?{})", 2 + 3 * k, 3 + 3 * k, 4 + 3 * k)).collect();
    format!("INSERT INTO {table} (ticket_id, time, app_id, data) VALUES {}", values.join(", "))
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("sqlite::Db").finish_non_exhaustive()
    }
}

fn value(p: &Param) -> SqlValue {
    match p {
        Param::Text(s) => SqlValue::Text(s.clone()),
        Param::Int(i) => SqlValue::Integer(*i),
        Param::Bool(b) => SqlValue::Integer(i64::from(*b)),
    }
}

/// Binds `?1` (the app id) and each row's ticket id, time and data.
fn bind_rows(st: &mut rusqlite::Statement<'_>, app_id: &str, rows: &[(i64, &str, &str)]) -> rusqlite::Result<()> {
    st.raw_bind_parameter(1, app_id)?;
    for (k, (id, time, data)) in rows.iter().enumerate() {
        st.raw_bind_parameter(2 + 3 * k, id)?;
        st.raw_bind_parameter(3 + 3 * k, *time)?;
        st.raw_bind_parameter(4 + 3 * k, *data)?;
    }
    Ok(())
}

fn time(s: String) -> SystemTime {
    parse_rfc3339(&s).unwrap_or(SystemTime::UNIX_EPOCH)
}

impl Db {
    pub(crate) fn open(path: &Path, busy_timeout: Duration, tables: &Tables, create: bool) -> Result<Db, StoreError> {
        let mut flags =
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let mut conn = Connection::open_with_flags(path, flags).map_err(|e| {
            let hint = if create { "" } else { " (auto_create_tables is off: the database must exist)" };
            StoreError::new(format!("sqlite: cannot open {}: {e}{hint}", path.display()))
        })?;
        // SQLite takes milliseconds as a C int: a longer timeout (a user's `Duration::MAX`) is
        // the longest it can wait, not a panic.
        conn.busy_timeout(busy_timeout.min(Duration::from_millis(i32::MAX as u64)))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::new(format!("sqlite: cannot switch to WAL (journal mode is {mode})")));
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        if create {
            migrate(&mut conn, tables)?;
        } else {
            for (table, probe) in SQLITE.probes(tables) {
                conn.prepare(&probe).map_err(|e| SQLITE.missing(&table, &StoreError::from(e)))?;
            }
        }
        Ok(Db {
            conn,
            upsert: SQLITE.upsert(tables),
            insert_many: insert_rows(&tables.occurrences, INSERT_ROWS),
            retain: SQLITE.retain(tables),
            prior: SQLITE.prior(tables),
            occurrences_table: tables.occurrences.clone(),
        })
    }

    /// Writes a batch in one `BEGIN IMMEDIATE` transaction: each ticket's upsert (and, when
    /// changes are wanted, its prior state) and its retention, then every occurrence of the
    /// batch in multi-row inserts of [`INSERT_ROWS`] rows (the rest in one more).
    ///
    /// The retention runs before the inserts and keeps, of the rows already there, the newest
    /// `keep` minus this batch's (a batch brings at most `keep` per ticket): the end state is
    /// the same as trimming after the inserts, and the pages the deletes free are filled again
    /// in the same transaction, so fewer distinct pages go through the WAL and its checkpoints
    /// (trimming after the inserts, the commits took 630 ms against 450 ms over 160,000
    /// occurrences).
    pub(crate) fn write(
        &mut self,
        app_id: &str,
        batch: &WriteBatch,
        keep: u32,
        want_changes: bool,
    ) -> Result<Vec<Change>, StoreError> {
        let entries = &batch.entries;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut changes = Vec::new();
        {
            // Prepared once per connection (rusqlite's statement cache): parsing the statements,
            // the multi-row insert above all, was 7% of the writer thread's time.
            let mut upsert = tx.prepare_cached(&self.upsert)?;
            let mut retain = tx.prepare_cached(&self.retain)?;
            let mut prior = if want_changes { Some(tx.prepare_cached(&self.prior)?) } else { None };
            let mut ids = Vec::with_capacity(entries.len());
            for e in entries {
                let before: Option<bool> = if let Some(prior) = prior.as_mut() {
                    let mut rows = prior.query(params![app_id, e.fingerprint])?;
                    match rows.next()? {
                        Some(r) => Some(r.get(0)?),
                        None => None,
                    }
                } else {
                    None
                };
                let (id, count): (i64, i64) = upsert.query_row(
                    params![
                        app_id,
                        e.fingerprint,
                        e.level.as_str(),
                        e.target,
                        e.location,
                        e.module,
                        e.message,
                        rfc3339(e.first),
                        rfc3339(e.last),
                        db_count(e.count),
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                if want_changes {
                    changes.push(Change::of(id, count, db_count(e.count), before));
                }
                // The retention first: the pages it frees take this batch's rows.
                let stay = keep.saturating_sub(u32::try_from(e.occurrences.len()).unwrap_or(u32::MAX));
                retain.execute(params![id, i64::from(stay)])?;
                ids.push(id);
            }
            let rows: Vec<(i64, &str, &str)> = entries
                .iter()
                .zip(&ids)
                .flat_map(|(e, &id)| {
                    e.occurrences.iter().map(move |o| {
                        let (time, data) = batch.texts(o);
                        (id, time, data)
                    })
                })
                .collect();
            let mut chunks = rows.chunks_exact(INSERT_ROWS);
            if chunks.len() > 0 {
                let mut insert = tx.prepare_cached(&self.insert_many)?;
                for chunk in &mut chunks {
                    bind_rows(&mut insert, app_id, chunk)?;
                    insert.raw_execute()?;
                }
            }
            let rest = chunks.remainder();
            if !rest.is_empty() {
                let mut insert = tx.prepare_cached(&insert_rows(&self.occurrences_table, rest.len()))?;
                bind_rows(&mut insert, app_id, rest)?;
                insert.raw_execute()?;
            }
        }
        tx.commit()?;
        Ok(changes)
    }

    pub(crate) fn ints(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Vec<i64>>, StoreError> {
        let mut st = self.conn.prepare(sql)?;
        let n = st.column_count();
        let rows = st.query_map(params_from_iter(params.iter().map(value)), |r| {
            (0..n).map(|i| r.get::<_, Option<i64>>(i).map(|v| v.unwrap_or(0))).collect::<Result<Vec<_>, _>>()
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(crate) fn grouped(&mut self, sql: &str, params: &[Param]) -> Result<Vec<(String, u64, u64)>, StoreError> {
        let mut st = self.conn.prepare(sql)?;
        let rows = st.query_map(params_from_iter(params.iter().map(value)), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64, r.get::<_, i64>(2)?.max(0) as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(crate) fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, StoreError> {
        Ok(self.conn.execute(sql, params_from_iter(params.iter().map(value)))? as u64)
    }

    pub(crate) fn tickets(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Ticket>, StoreError> {
        let mut st = self.conn.prepare(sql)?;
        let rows = st.query_map(params_from_iter(params.iter().map(value)), |r| {
            Ok(Ticket {
                id: r.get(0)?,
                app_id: r.get(1)?,
                fingerprint: r.get(2)?,
                level: parse_level(&r.get::<_, String>(3)?),
                target: r.get(4)?,
                location: r.get(5)?,
                module: r.get(6)?,
                message: r.get(7)?,
                first_occurrence_time: time(r.get(8)?),
                last_occurrence_time: time(r.get(9)?),
                occurrence_count: r.get::<_, i64>(10)?.max(0) as u64,
                solved: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(crate) fn occurrences(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Occurrence>, StoreError> {
        let mut st = self.conn.prepare(sql)?;
        let rows = st.query_map(params_from_iter(params.iter().map(value)), |r| {
            Ok(Occurrence {
                id: r.get(0)?,
                ticket_id: r.get(1)?,
                time: time(r.get(2)?),
                app_id: r.get(3)?,
                data: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(crate) fn delete(&mut self, tables: &Tables, id: i64) -> Result<bool, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let [occurrences, ticket] = SQLITE.delete(tables);
        tx.execute(&occurrences, [id])?;
        let n = tx.execute(&ticket, [id])?;
        tx.commit()?;
        Ok(n > 0)
    }
}

fn migrate(conn: &mut Connection, tables: &Tables) -> Result<(), StoreError> {
    // IMMEDIATE: two processes starting at once apply each migration once.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        &format!(
            "CREATE TABLE IF NOT EXISTS {} (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
            tables.version
        ),
        [],
    )?;
    let current: i64 =
        tx.query_row(&format!("SELECT COALESCE(MAX(version), 0) FROM {}", tables.version), [], |r| r.get(0))?;
    SQLITE.check_version(current, MIGRATIONS.len())?;
    for (i, m) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(&tables.sql(m))?;
        tx.execute(
            &format!("INSERT INTO {} (version, applied_at) VALUES (?1, ?2)", tables.version),
            params![i as i64 + 1, rfc3339(SystemTime::now())],
        )?;
    }
    tx.commit()?;
    Ok(())
}

// The notifications table (see `TicketStore::notifications`).
impl Db {
    pub(crate) fn notifications(
        &mut self,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<crate::store::Notification>, StoreError> {
        let mut st = self.conn.prepare(sql)?;
        let rows = st.query_map(params_from_iter(params.iter().map(value)), |r| {
            Ok(crate::store::Notification {
                app_id: r.get(0)?,
                fingerprint: r.get(1)?,
                destination: r.get(2)?,
                first_time: time(r.get(3)?),
                last_time: time(r.get(4)?),
                count: r.get::<_, i64>(5)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(crate) fn record_notifications(
        &mut self,
        sql: &str,
        rows: &[crate::store::NotificationRow],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare(sql)?;
            for (app, fp, dest, first, last, count) in rows {
                st.execute(params![app, fp, dest, first, last, count])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
