//! The PostgreSQL backend (the synchronous `postgres` crate, no TLS).
//!
//! Counts stay exact with many writers because every occurrence count changes in one
//! `INSERT … ON CONFLICT … DO UPDATE` (a row lock, not a read-modify-write in the client), and
//! a batch's tickets are upserted in fingerprint order so two writers never deadlock.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use postgres::types::ToSql;
use postgres::{Client, Config, NoTls, Statement};

use crate::store::{
    db_count, parse_level, Change, Occurrence, Param, StoreError, Tables, Ticket, WriteBatch, POSTGRES,
};

/// Versioned migrations; `{p}` is the table prefix. Never edit one that shipped: append.
const MIGRATIONS: &[&str] = &[
    // 1: tickets and occurrences.
    "CREATE TABLE {p}tickets (
        id BIGSERIAL PRIMARY KEY,
        app_id TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        level TEXT NOT NULL,
        target TEXT NOT NULL,
        location TEXT,
        module TEXT,
        message TEXT NOT NULL,
        first_occurrence_time TIMESTAMPTZ NOT NULL,
        last_occurrence_time TIMESTAMPTZ NOT NULL,
        occurrence_count BIGINT NOT NULL,
        solved BOOLEAN NOT NULL DEFAULT false,
        UNIQUE (app_id, fingerprint)
    );
    CREATE INDEX {p}tickets_last ON {p}tickets (last_occurrence_time);
    CREATE TABLE {p}occurrences (
        id BIGSERIAL PRIMARY KEY,
        ticket_id BIGINT NOT NULL REFERENCES {p}tickets (id) ON DELETE CASCADE,
        time TIMESTAMPTZ NOT NULL,
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
        first_time TIMESTAMPTZ NOT NULL,
        last_time TIMESTAMPTZ NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (app_id, fingerprint, destination)
    );",
    // 3: no foreign key from occurrences to tickets. Its check (a locked lookup of the ticket
    // per inserted occurrence) cost as much as the insert itself; `Db::delete` keeps a deleted
    // ticket from leaving occurrences behind instead.
    "DO $$ DECLARE c TEXT; BEGIN
        FOR c IN SELECT conname FROM pg_constraint
                 WHERE conrelid = '{p}occurrences'::regclass AND contype = 'f' LOOP
            EXECUTE format('ALTER TABLE {p}occurrences DROP CONSTRAINT %I', c);
        END LOOP;
    END $$;",
];

/// Ticket ids whose retention floor [`Db`] remembers; past it the memory starts over (a
/// forgotten floor costs one longer index scan, never a wrong delete).
const FLOORS: usize = 65_536;

/// A ticket's text as PostgreSQL can store it: its `text` type cannot hold U+0000 (the whole
/// transaction would be refused, for ever), so that character becomes U+FFFD. The occurrence's
/// JSON escapes it (`\u0000`) and keeps it.
fn text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{fffd}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

pub(crate) struct Db {
    client: Client,
    upsert: String,
    insert: String,
    retain: String,
    prior: String,
    /// The write path's statements, prepared once per connection.
    prepared: Option<Prepared>,
    /// Per ticket id, an occurrence id below which this connection's retention deletes left no
    /// occurrence of that ticket (see [`Db::retain_sql`]).
    floors: HashMap<i64, i64>,
}

/// The statements of a batch write: one round trip each.
struct Prepared {
    prior: Statement,
    upsert: Statement,
    insert: Statement,
    retain: Statement,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("pg::Db").finish_non_exhaustive()
    }
}

fn boxed(params: &[Param]) -> Vec<Box<dyn ToSql + Sync>> {
    params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync> {
            match p {
                Param::Text(s) => Box::new(s.clone()),
                Param::Int(i) => Box::new(*i),
                Param::Bool(b) => Box::new(*b),
            }
        })
        .collect()
}

fn refs(b: &[Box<dyn ToSql + Sync>]) -> Vec<&(dyn ToSql + Sync)> {
    b.iter().map(|p| &**p).collect()
}

impl Db {
    pub(crate) fn open(config: &Config, timeout: Duration, tables: &Tables, create: bool) -> Result<Db, StoreError> {
        let mut config = config.clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(timeout);
        }
        config.application_name("watchbell-ticketing");
        let mut client = config.connect(NoTls)?;
        if create {
            migrate(&mut client, tables)?;
        } else {
            for (table, probe) in POSTGRES.probes(tables) {
                client.prepare(&probe).map_err(|e| POSTGRES.missing(&table, &StoreError::from(e)))?;
            }
        }
        Ok(Db {
            client,
            upsert: POSTGRES.upsert_batch(tables),
            insert: format!(
                "INSERT INTO {} (ticket_id, time, app_id, data) \
                 SELECT t.ticket_id, t.time, $3, t.data FROM UNNEST($1::BIGINT[], $2::TIMESTAMPTZ[], $4::TEXT[]) \
                 AS t (ticket_id, time, data)",
                tables.occurrences
            ),
            retain: Self::retain_sql(tables),
            prior: POSTGRES.prior_batch(tables),
            prepared: None,
            floors: HashMap::new(),
        })
    }

    /// The retention statement: `$1` the touched tickets' ids, `$2` how many occurrences each
    /// keeps, `$3` each ticket's floor (an id below which none of its occurrences is left, 0 when
    /// unknown). For each ticket it finds the newest occurrence past the retention (a backward
    /// scan of the `(ticket_id, id)` index that reads only the kept rows) and deletes the id range
    /// from the floor up to it; it returns each ticket's new floor.
    ///
    /// The floor is what makes it cheap: the rows earlier batches deleted stay in the index
    /// until a vacuum, all of them below the kept ones, and a scan that starts from the ticket's
    /// oldest entry (or that runs past the kept rows to find the ones to delete) reads them
    /// all, a cost that grows with every batch. Occurrence ids grow with commit order for
    /// each ticket (its row is locked by the upsert until commit), so nothing of a ticket is
    /// ever inserted below a floor.
    fn retain_sql(tables: &Tables) -> String {
        let o = &tables.occurrences;
        format!(
            "WITH cut AS (SELECT t.tid, t.floor, (SELECT i.id FROM {o} i WHERE i.ticket_id = t.tid \
             ORDER BY i.id DESC OFFSET $2 LIMIT 1) AS last FROM UNNEST($1::BIGINT[], $3::BIGINT[]) AS t (tid, floor)), \
             gone AS (DELETE FROM {o} o USING cut WHERE o.ticket_id = cut.tid AND o.id >= cut.floor \
             AND o.id <= cut.last) \
             SELECT tid, GREATEST(floor, COALESCE(last + 1, floor)) FROM cut"
        )
    }

    /// Writes a batch in one transaction of at most five round trips (four statements
    /// prepared once per connection): the prior state of its tickets (locked, only when
    /// changes are wanted), every ticket's upsert, every occurrence, and the retention of every
    /// touched ticket (see [`retain_sql`](Self::retain_sql)), each as one statement over arrays.
    pub(crate) fn write(
        &mut self,
        app_id: &str,
        batch: &WriteBatch,
        keep: u32,
        want_changes: bool,
    ) -> Result<Vec<Change>, StoreError> {
        let entries = &batch.entries;
        if self.prepared.is_none() {
            self.prepared = Some(Prepared {
                prior: self.client.prepare(&self.prior)?,
                upsert: self.client.prepare(&self.upsert)?,
                insert: self.client.prepare(&self.insert)?,
                retain: self.client.prepare(&self.retain)?,
            });
        }
        let Some(st) = &self.prepared else { return Err(StoreError::new("postgres: statements not prepared")) };
        let mut tx = self.client.transaction()?;
        let n = entries.len();
        let fingerprints: Vec<&str> = entries.iter().map(|e| e.fingerprint.as_str()).collect();
        let before: std::collections::HashMap<String, bool> = if want_changes {
            tx.query(&st.prior, &[&app_id, &fingerprints])?.iter().map(|r| (r.get(0), r.get(1))).collect()
        } else {
            Default::default()
        };
        let mut levels = Vec::with_capacity(n);
        let mut targets = Vec::with_capacity(n);
        let mut locations = Vec::with_capacity(n);
        let mut modules = Vec::with_capacity(n);
        let mut messages = Vec::with_capacity(n);
        let mut firsts = Vec::with_capacity(n);
        let mut lasts = Vec::with_capacity(n);
        let mut counts = Vec::with_capacity(n);
        for e in entries {
            levels.push(e.level.as_str());
            targets.push(text(&e.target));
            locations.push(e.location.as_deref().map(text));
            modules.push(e.module.as_deref().map(text));
            messages.push(text(&e.message));
            firsts.push(e.first);
            lasts.push(e.last);
            counts.push(db_count(e.count));
        }
        let rows = tx.query(
            &st.upsert,
            &[&app_id, &fingerprints, &levels, &targets, &locations, &modules, &messages, &firsts, &lasts, &counts],
        )?;
        let written: std::collections::HashMap<String, (i64, i64)> =
            rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect();
        let mut changes = Vec::new();
        let mut touched = Vec::with_capacity(n);
        let mut ids = Vec::new();
        let mut times = Vec::new();
        let mut datas: Vec<&str> = Vec::new();
        for e in entries {
            let Some(&(id, count)) = written.get(&e.fingerprint) else {
                return Err(StoreError::new(format!("postgres: the upsert returned no row for {}", e.fingerprint)));
            };
            if want_changes {
                changes.push(Change::of(id, count, db_count(e.count), before.get(&e.fingerprint).copied()));
            }
            touched.push(id);
            for o in &e.occurrences {
                ids.push(id);
                times.push(o.time);
                datas.push(batch.texts(o).1);
            }
        }
        if !ids.is_empty() {
            tx.execute(&st.insert, &[&ids, &times, &app_id, &datas])?;
        }
        let mut floors = Vec::new();
        if !touched.is_empty() {
            let known: Vec<i64> = touched.iter().map(|id| self.floors.get(id).copied().unwrap_or(0)).collect();
            floors = tx.query(&st.retain, &[&touched, &i64::from(keep), &known])?;
        }
        tx.commit()?;
        // Only a committed delete moves a floor.
        if self.floors.len() + floors.len() > FLOORS {
            self.floors.clear();
        }
        for r in &floors {
            self.floors.insert(r.get(0), r.get(1));
        }
        Ok(changes)
    }

    pub(crate) fn ints(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Vec<i64>>, StoreError> {
        let b = boxed(params);
        let rows = self.client.query(sql, &refs(&b))?;
        Ok(rows.iter().map(|r| (0..r.len()).map(|i| r.get::<_, Option<i64>>(i).unwrap_or(0)).collect()).collect())
    }

    pub(crate) fn grouped(&mut self, sql: &str, params: &[Param]) -> Result<Vec<(String, u64, u64)>, StoreError> {
        let b = boxed(params);
        let rows = self.client.query(sql, &refs(&b))?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1).max(0) as u64, r.get::<_, i64>(2).max(0) as u64))
            .collect())
    }

    pub(crate) fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, StoreError> {
        let b = boxed(params);
        Ok(self.client.execute(sql, &refs(&b))?)
    }

    pub(crate) fn tickets(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Ticket>, StoreError> {
        let b = boxed(params);
        let rows = self.client.query(sql, &refs(&b))?;
        Ok(rows
            .iter()
            .map(|r| Ticket {
                id: r.get(0),
                app_id: r.get(1),
                fingerprint: r.get(2),
                level: parse_level(r.get::<_, &str>(3)),
                target: r.get(4),
                location: r.get(5),
                module: r.get(6),
                message: r.get(7),
                first_occurrence_time: r.get::<_, SystemTime>(8),
                last_occurrence_time: r.get::<_, SystemTime>(9),
                occurrence_count: r.get::<_, i64>(10).max(0) as u64,
                solved: r.get(11),
            })
            .collect())
    }

    pub(crate) fn occurrences(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Occurrence>, StoreError> {
        let b = boxed(params);
        let rows = self.client.query(sql, &refs(&b))?;
        Ok(rows
            .iter()
            .map(|r| Occurrence { id: r.get(0), ticket_id: r.get(1), time: r.get(2), app_id: r.get(3), data: r.get(4) })
            .collect())
    }

    /// Deletes ticket `id` and its occurrences. The ticket row is locked first: a writer that
    /// is adding occurrences to it holds that lock until it commits, so the occurrence delete
    /// (a statement started after the lock is granted) sees them, and a writer that comes later
    /// finds no ticket and creates a new one. No occurrence outlives its ticket, with or without
    /// a foreign key (the schema has none since migration 3).
    pub(crate) fn delete(&mut self, tables: &Tables, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.client.transaction()?;
        let [occurrences, ticket] = POSTGRES.delete(tables);
        tx.execute(&format!("SELECT 1 FROM {} WHERE id = $1 FOR UPDATE", tables.tickets), &[&id])?;
        tx.execute(&occurrences, &[&id])?;
        let n = tx.execute(&ticket, &[&id])?;
        tx.commit()?;
        Ok(n > 0)
    }
}

/// FNV-1a of the version table's name: the advisory lock key of one prefix's migrations.
fn lock_key(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

fn migrate(client: &mut Client, tables: &Tables) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    // Serializes concurrent starts of several instances; released at commit.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(&tables.version)])?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        tables.version
    ))?;
    let current: i64 =
        tx.query_one(&format!("SELECT COALESCE(MAX(version), 0)::BIGINT FROM {}", tables.version), &[])?.get(0);
    POSTGRES.check_version(current, MIGRATIONS.len())?;
    for (i, m) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.batch_execute(&tables.sql(m))?;
        tx.execute(&format!("INSERT INTO {} (version) VALUES ($1)", tables.version), &[&(i as i64 + 1)])?;
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
        let b = boxed(params);
        let rows = self.client.query(sql, &refs(&b))?;
        Ok(rows
            .iter()
            .map(|r| crate::store::Notification {
                app_id: r.get(0),
                fingerprint: r.get(1),
                destination: r.get(2),
                first_time: r.get(3),
                last_time: r.get(4),
                count: r.get::<_, i64>(5).max(0) as u64,
            })
            .collect())
    }

    pub(crate) fn record_notifications(
        &mut self,
        sql: &str,
        rows: &[crate::store::NotificationRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.client.transaction()?;
        let st = tx.prepare(sql)?;
        for (app, fp, dest, first, last, count) in rows {
            tx.execute(&st, &[app, fp, dest, first, last, count])?;
        }
        tx.commit()?;
        Ok(())
    }
}
