//! The ticket viewer's list page over 100,000 tickets and 1,000,000 stored occurrences, on SQLite
//! and on PostgreSQL: the server's time to read one page (count, 50 tickets, their hourly
//! occurrence counts) and render its HTML, without the network
//! ([`watchbell_ticketing::web::list_page_html`], what the server runs per request).
//!
//! - `viewer/list_page/{sqlite,postgres}`: the default view (open tickets, most recently seen
//!   first, a chart of the last 24 hours per ticket).
//! - `viewer/list_page_14d/{sqlite,postgres}`: the same with the 14-day chart.
//! - `viewer/list_page_count/{sqlite,postgres}`: errors only, most frequent first.
//!
//! The data is made once, outside the timed loop, with SQL of this file (`INSERT … SELECT` over a
//! generated series): 100,000 tickets in 5 apps (every 10th a warning, every 7th solved), 10
//! occurrences each spread over the last 14 days. The SQLite file lives under
//! `target/bench-viewer/`; the PostgreSQL tables (prefix `bench_viewer_`, on
//! `WATCHBELL_TEST_POSTGRES_URL` or the `.ci/postgres.sh` cluster) are kept between runs and
//! refilled only when their counts differ.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use watchbell_ticketing::web::list_page_html;
use watchbell_ticketing::TicketStore;

const TICKETS: i64 = 100_000;
const PER_TICKET: i64 = 10;
const PREFIX: &str = "bench_viewer_";

/// A stored record of the usual size (what the list page never reads, but the table holds).
const DATA: &str = r#"{"time":"2026-11-29T06:00:00.000000Z","level":"ERROR","target":"bench::module7","module":"bench","file":"src/module7.rs","line":120,"message":"request failed: upstream timeout","fields":{"attempt":3,"gateway":"stripe"},"spans":[{"name":"checkout","target":"bench","fields":{"order_id":4711}}],"thread_name":"worker-3","thread_id":7,"pid":4242,"fingerprint":"00000000000004d2"}"#;

fn sqlite_store() -> TicketStore {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-viewer");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tickets.db");
    let url = format!("sqlite://{}", path.display());
    let mut store = TicketStore::open_with(&url, PREFIX, Duration::from_secs(30)).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let counts = |conn: &rusqlite::Connection| -> (i64, i64) {
        let t = conn.query_row(&format!("SELECT COUNT(*) FROM {PREFIX}tickets"), [], |r| r.get(0)).unwrap();
        let o = conn.query_row(&format!("SELECT COUNT(*) FROM {PREFIX}occurrences"), [], |r| r.get(0)).unwrap();
        (t, o)
    };
    if counts(&conn) != (TICKETS, TICKETS * PER_TICKET) {
        eprintln!("viewer bench: filling SQLite with {TICKETS} tickets and {} occurrences", TICKETS * PER_TICKET);
        let p = PREFIX;
        conn.execute_batch(&format!(
            "BEGIN;
             DELETE FROM {p}occurrences; DELETE FROM {p}tickets;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {TICKETS})
             INSERT INTO {p}tickets (id, app_id, fingerprint, level, target, location, module, message,
                 first_occurrence_time, last_occurrence_time, occurrence_count, solved)
             SELECT i, 'app' || (i % 5), printf('%016x', i), CASE WHEN i % 10 = 0 THEN 'WARN' ELSE 'ERROR' END,
                 'bench::module' || (i % 50), 'src/module' || (i % 50) || '.rs:' || i, 'bench',
                 'request ' || i || ' failed: <upstream> timeout',
                 strftime('%Y-%m-%dT%H:%M:%f', 'now', '-336 hours', '+' || i || ' seconds') || '000Z',
                 strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || (i % 336) || ' hours') || '000Z',
                 {PER_TICKET} + i % 100, i % 7 = 0
             FROM n;
             WITH RECURSIVE k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < {PER_TICKET} - 1)
             INSERT INTO {p}occurrences (ticket_id, time, app_id, data)
             SELECT t.id, strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || ((t.id * 7 + k.j * 13) % 336) || ' hours') || '000Z',
                 t.app_id, '{DATA}'
             FROM {p}tickets t, k ORDER BY t.id, k.j;
             COMMIT;
             ANALYZE;"
        ))
        .unwrap();
        assert_eq!(counts(&conn), (TICKETS, TICKETS * PER_TICKET));
    }
    store.create_view_indexes().unwrap();
    store
}

fn postgres_store() -> TicketStore {
    let url = watchbell_test::postgres::url();
    let mut store = TicketStore::open_with(&url, PREFIX, Duration::from_secs(30)).unwrap();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let counts = |c: &mut postgres::Client| -> (i64, i64) {
        let t = c.query_one(&format!("SELECT COUNT(*) FROM {PREFIX}tickets"), &[]).unwrap().get(0);
        let o = c.query_one(&format!("SELECT COUNT(*) FROM {PREFIX}occurrences"), &[]).unwrap().get(0);
        (t, o)
    };
    if counts(&mut client) != (TICKETS, TICKETS * PER_TICKET) {
        eprintln!("viewer bench: filling PostgreSQL with {TICKETS} tickets and {} occurrences", TICKETS * PER_TICKET);
        let p = PREFIX;
        client
            .batch_execute(&format!(
                "BEGIN;
                 TRUNCATE {p}occurrences, {p}tickets;
                 INSERT INTO {p}tickets (id, app_id, fingerprint, level, target, location, module, message,
                     first_occurrence_time, last_occurrence_time, occurrence_count, solved)
                 SELECT i, 'app' || (i % 5), lpad(to_hex(i), 16, '0'), CASE WHEN i % 10 = 0 THEN 'WARN' ELSE 'ERROR' END,
                     'bench::module' || (i % 50), 'src/module' || (i % 50) || '.rs:' || i, 'bench',
                     'request ' || i || ' failed: <upstream> timeout',
                     now() - interval '336 hours' + make_interval(secs => i),
                     now() - make_interval(hours => (i % 336)::int),
                     {PER_TICKET} + i % 100, i % 7 = 0
                 FROM generate_series(1, {TICKETS}) AS i;
                 SELECT setval(pg_get_serial_sequence('{p}tickets', 'id'), {TICKETS});
                 INSERT INTO {p}occurrences (ticket_id, time, app_id, data)
                 SELECT t.id, now() - make_interval(hours => ((t.id * 7 + k * 13) % 336)::int), t.app_id, '{DATA}'
                 FROM {p}tickets t, generate_series(0, {PER_TICKET} - 1) AS k ORDER BY t.id, k;
                 COMMIT;
                 ANALYZE {p}tickets;
                 ANALYZE {p}occurrences;"
            ))
            .unwrap();
        assert_eq!(counts(&mut client), (TICKETS, TICKETS * PER_TICKET));
    }
    store.create_view_indexes().unwrap();
    client.batch_execute(&format!("ANALYZE {PREFIX}tickets; ANALYZE {PREFIX}occurrences;")).unwrap();
    store
}

fn bench_store(c: &mut Criterion, backend: &str, store: &mut TicketStore) {
    for (id, query, must_contain) in [
        ("list_page", "", "more than 10000 tickets"),
        ("list_page_14d", "range=14d", "more than 10000 tickets"),
        ("list_page_count", "level=error&sort=count", "more than 10000 tickets"),
    ] {
        // One render outside the timed loop: the page holds 50 rows and names the total.
        let html = list_page_html(store, query, 50).unwrap();
        assert!(html.contains(must_contain) && html.matches("<tr id=\"t").count() == 50, "{backend} {id}");
        let mut g = c.benchmark_group("viewer");
        g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
        g.bench_function(format!("{id}/{backend}"), |b| b.iter(|| list_page_html(store, query, 50).unwrap()));
        g.finish();
    }
}

fn viewer(c: &mut Criterion) {
    let mut sqlite = sqlite_store();
    bench_store(c, "sqlite", &mut sqlite);
    let mut pg = postgres_store();
    bench_store(c, "postgres", &mut pg);
}

criterion_group!(benches, viewer);
criterion_main!(benches);
