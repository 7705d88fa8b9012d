//! One alert per fleet without a relay: rate-limit windows shared in PostgreSQL
//! ([`PgWindows`], a [`SharedWindows`] backend for watchbell-core's rate limit).
//!
//! Each sink's rate limit (`scope`) and fingerprint has one row in `watchbell_rate_windows`.
//! A record is decided by **one** statement, `INSERT … ON CONFLICT (scope, fingerprint) DO
//! UPDATE … RETURNING`: the first record of a fingerprint inserts the row and passes; later
//! ones pass while the window has room, or add their weight to the row's `suppressed` count
//! and their origin (`host/app:pid`) to its `instances` (at most
//! [`MAX_INSTANCES`](watchbell_core::ratelimit::MAX_INSTANCES) told apart); the first record
//! after the window opens the next one and takes the count and the number of instances with
//! it ("7999 similar suppressed from 8 instances"). With a gather
//! (`RateLimit::gather`, `[rate_limit] gather`), the process whose record passed holds it and
//! then takes the fleet's count in one more statement ([`SharedWindows::collect`]), so the first
//! alert already carries it. The database's clock decides the windows,
//! so the processes' clocks do not matter. Rows are a few per fingerprint and sink: the table
//! stays small.
//!
//! The rate limit calls this on its own thread, never the caller's. The connection is opened
//! on first use (connect timeout 2 s) and again after a failure; while the database cannot be
//! reached the rate limit decides locally (see watchbell-core's `ratelimit` docs).
//!
//! ```no_run
//! use std::sync::Arc;
//! use watchbell_ticketing::fleet::PgWindows;
//! let windows = PgWindows::new("postgres://watchbell@db.internal/watchbell")?;
//! // Every rate limit built from now on (the sinks' own) shares its windows with the fleet.
//! watchbell_core::ratelimit::install_shared(Some(Arc::new(windows)));
//! # Ok::<(), String>(())
//! ```
//!
//! With the umbrella crate: `[rate_limit] shared = "postgres://…"` (or
//! `WATCHBELL_RATE_LIMIT_SHARED`).

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use postgres::{Client, Config, NoTls};
use watchbell_core::ratelimit::{Claim, SharedWindows, Verdict, MAX_INSTANCES};

/// The table, created when absent.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS watchbell_rate_windows (
    scope text NOT NULL,
    fingerprint bigint NOT NULL,
    window_start timestamptz NOT NULL,
    passed integer NOT NULL,
    suppressed bigint NOT NULL DEFAULT 0,
    instances text[] NOT NULL DEFAULT '{}',
    last_pass boolean NOT NULL DEFAULT true,
    reported_suppressed bigint NOT NULL DEFAULT 0,
    reported_instances integer NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, fingerprint)
)";

/// The one statement that decides a record. Every `SET` expression reads the row as it was
/// (PostgreSQL's rule for `ON CONFLICT DO UPDATE`), so `pass` is computed once per row lock:
/// the window has ended, or it has room.
const CLAIM: &str = "INSERT INTO watchbell_rate_windows AS w
    (scope, fingerprint, window_start, passed, suppressed, instances, last_pass, reported_suppressed, reported_instances)
    VALUES ($1, $2, now(), 1, 0, '{}', true, 0, 0)
ON CONFLICT (scope, fingerprint) DO UPDATE SET
    window_start = CASE WHEN w.window_start + make_interval(secs => $3) <= now() THEN now() ELSE w.window_start END,
    passed = CASE WHEN w.window_start + make_interval(secs => $3) <= now() THEN 1
                  WHEN w.passed < $4 THEN w.passed + 1 ELSE w.passed END,
    suppressed = CASE WHEN w.window_start + make_interval(secs => $3) <= now() OR w.passed < $4 THEN 0
                      ELSE w.suppressed + $5 END,
    instances = CASE WHEN w.window_start + make_interval(secs => $3) <= now() OR w.passed < $4 THEN '{}'
                     WHEN $6 = ANY(w.instances) OR cardinality(w.instances) >= $7 THEN w.instances
                     ELSE array_append(w.instances, $6) END,
    last_pass = (w.window_start + make_interval(secs => $3) <= now() OR w.passed < $4),
    reported_suppressed = CASE WHEN w.window_start + make_interval(secs => $3) <= now() OR w.passed < $4
                               THEN w.suppressed ELSE 0 END,
    reported_instances = CASE WHEN w.window_start + make_interval(secs => $3) <= now() OR w.passed < $4
                              THEN cardinality(w.instances)
                                   + CASE WHEN $5 > 1 AND w.suppressed > 0 AND NOT ($6 = ANY(w.instances)) THEN 1 ELSE 0 END
                              ELSE 0 END
RETURNING last_pass, reported_suppressed, reported_instances";

/// The end of a gather: the holder's own count and origin are added, and what the fleet
/// suppressed since its record passed is taken (and left at 0), in one statement under the
/// row's lock.
const COLLECT: &str = "WITH old AS (
    SELECT suppressed, instances FROM watchbell_rate_windows
    WHERE scope = $1 AND fingerprint = $2 FOR UPDATE
)
UPDATE watchbell_rate_windows AS w SET suppressed = 0, instances = '{}'
FROM old WHERE w.scope = $1 AND w.fingerprint = $2
RETURNING old.suppressed + $3::bigint,
    cardinality(CASE WHEN $3::bigint > 0 AND NOT ($4::text = ANY(old.instances))
                     THEN array_append(old.instances, $4::text) ELSE old.instances END)";

/// Rate-limit windows shared by a fleet in PostgreSQL (see the [module docs](self)).
pub struct PgWindows {
    config: Config,
    client: Mutex<Option<Client>>,
}

impl fmt::Debug for PgWindows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgWindows").field("hosts", &self.config.get_hosts().len()).finish_non_exhaustive()
    }
}

impl PgWindows {
    /// Windows in the database at `url` (`postgres://user:password@host/db`). Checks the URL
    /// only; the connection is made on first use.
    ///
    /// # Errors
    /// A URL that does not parse (the message holds no password).
    pub fn new(url: &str) -> Result<Self, String> {
        let mut config: Config = url
            .parse()
            .map_err(|e| watchbell_core::secret::redact_text(&format!("a PostgreSQL URL: {e}")).into_owned())?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(2));
        }
        Ok(PgWindows { config, client: Mutex::new(None) })
    }

    fn connect(&self) -> Result<Client, String> {
        let _quiet = watchbell_core::capture::suppress();
        let mut client = self.config.connect(NoTls).map_err(|e| format!("connect: {e}"))?;
        // Processes starting together race on `CREATE TABLE IF NOT EXISTS` (PostgreSQL can
        // answer a unique violation on its catalog to the losers): tried again, briefly.
        let mut attempt = 0;
        loop {
            match client.batch_execute(SCHEMA) {
                Ok(()) => return Ok(client),
                Err(_) if attempt < 5 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(20 * attempt));
                }
                Err(e) => return Err(format!("create table: {e}")),
            }
        }
    }
}

impl SharedWindows for PgWindows {
    fn claim(&self, claim: &Claim<'_>) -> Result<Verdict, String> {
        let _quiet = watchbell_core::capture::suppress();
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = Some(self.connect()?);
        }
        let Some(client) = slot.as_mut() else { return Err("no connection".to_owned()) };
        let fp = claim.fingerprint.0 as i64;
        let window = claim.window.as_secs_f64();
        let limit = i32::try_from(claim.limit).unwrap_or(i32::MAX);
        let weight = i64::try_from(claim.weight).unwrap_or(i64::MAX);
        let cap = MAX_INSTANCES as i32;
        let row = client
            .query_one(CLAIM, &[&claim.scope, &fp, &window, &limit, &weight, &claim.instance, &cap])
            .map_err(|e| {
                *slot = None;
                format!("claim: {e}")
            });
        let row = row?;
        let pass: bool = row.get(0);
        if !pass {
            return Ok(Verdict::Suppressed);
        }
        let suppressed: i64 = row.get(1);
        let instances: i32 = row.get(2);
        Ok(Verdict::Pass { suppressed: suppressed.max(0) as u64, instances: instances.max(0) as u32 })
    }

    fn collect(&self, claim: &Claim<'_>) -> Result<(u64, u32), String> {
        let _quiet = watchbell_core::capture::suppress();
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = Some(self.connect()?);
        }
        let Some(client) = slot.as_mut() else { return Err("no connection".to_owned()) };
        let fp = claim.fingerprint.0 as i64;
        let weight = i64::try_from(claim.weight).unwrap_or(i64::MAX);
        let rows = client.query(COLLECT, &[&claim.scope, &fp, &weight, &claim.instance]).map_err(|e| {
            *slot = None;
            format!("collect: {e}")
        })?;
        let Some(row) = rows.first() else {
            // The row is gone (dropped by hand): only the local count is known.
            return Ok((claim.weight, u32::from(claim.weight > 0)));
        };
        let suppressed: i64 = row.get(0);
        let instances: i32 = row.get(1);
        Ok((suppressed.max(0) as u64, instances.max(0) as u32))
    }

    fn describe(&self) -> String {
        "the shared rate-limit windows in PostgreSQL".to_owned()
    }
}
