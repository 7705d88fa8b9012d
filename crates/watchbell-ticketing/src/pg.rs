//! The PostgreSQL backend (the synchronous `postgres` crate, no TLS).
//!
//! Counts stay exact with many writers because every occurrence count changes in one
//! `INSERT … ON CONFLICT … DO UPDATE` (a row lock, not a read-modify-write in the client), and
//! a batch's tickets are upserted in fingerprint order so two writers never deadlock.

use std::fmt;
use std::time::{Duration, SystemTime};

use postgres::types::ToSql;
use postgres::{Client, Config, NoTls};

use crate::store::{db_count, parse_level, Change, Entry, Occurrence, Param, StoreError, Tables, Ticket, POSTGRES};

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
];

pub(crate) struct Db {
    client: Client,
    upsert: String,
    insert: String,
    retain: String,
    prior: String,
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
            upsert: POSTGRES.upsert(tables),
            insert: format!(
                "INSERT INTO {} (ticket_id, time, app_id, data) \
                 SELECT t.ticket_id, t.time, $3, t.data FROM UNNEST($1::BIGINT[], $2::TIMESTAMPTZ[], $4::TEXT[]) \
                 AS t (ticket_id, time, data)",
                tables.occurrences
            ),
            retain: POSTGRES.retain(tables),
            prior: POSTGRES.prior(tables),
        })
    }

    pub(crate) fn write(
        &mut self,
        app_id: &str,
        entries: &[Entry],
        keep: u32,
        want_changes: bool,
    ) -> Result<Vec<Change>, StoreError> {
        let mut tx = self.client.transaction()?;
        let upsert = tx.prepare(&self.upsert)?;
        let retain = tx.prepare(&self.retain)?;
        let prior = if want_changes { Some(tx.prepare(&self.prior)?) } else { None };
        let mut changes = Vec::new();
        let mut ids = Vec::new();
        let mut times = Vec::new();
        let mut datas: Vec<&str> = Vec::new();
        let mut touched = Vec::with_capacity(entries.len());
        for e in entries {
            let count = db_count(e.count);
            let before: Option<bool> = match &prior {
                Some(p) => tx.query_opt(p, &[&app_id, &e.fingerprint])?.map(|r| r.get(0)),
                None => None,
            };
            let row = tx.query_one(
                &upsert,
                &[
                    &app_id,
                    &e.fingerprint,
                    &e.level.as_str(),
                    &e.target,
                    &e.location,
                    &e.module,
                    &e.message,
                    &e.first,
                    &e.last,
                    &count,
                ],
            )?;
            let id: i64 = row.get(0);
            if want_changes {
                changes.push(Change::of(id, row.get(1), count, before));
            }
            touched.push(id);
            for (t, data) in &e.occurrences {
                ids.push(id);
                times.push(*t);
                datas.push(data);
            }
        }
        if !ids.is_empty() {
            tx.execute(&self.insert, &[&ids, &times, &app_id, &datas])?;
        }
        let keep = i64::from(keep);
        for id in touched {
            tx.execute(&retain, &[&id, &keep])?;
        }
        tx.commit()?;
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

    pub(crate) fn delete(&mut self, tables: &Tables, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.client.transaction()?;
        let [occurrences, ticket] = POSTGRES.delete(tables);
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
