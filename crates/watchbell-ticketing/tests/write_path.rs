//! The batch write path: multi-row inserts, the retention of each ticket across many batches and
//! a changed retention, stored documents byte for byte, and (PostgreSQL, `WATCHBELL_TEST_POSTGRES_URL` or `.ci/postgres.sh`) a
//! ticket deleted while a writer adds occurrences to it.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn site_a(i: u64) {
    tracing::error!(i, "site a");
}

fn site_b(i: u64) {
    tracing::error!(i, "site b");
}

/// The `i` field of every stored occurrence of each ticket, newest first, by ticket message.
fn kept(url: &str, prefix: &str) -> Vec<(String, u64, Vec<u64>)> {
    let mut s = open(url, prefix);
    let mut out: Vec<(String, u64, Vec<u64>)> = s
        .list_tickets(&watchbell_ticketing::TicketQuery::default())
        .unwrap()
        .into_iter()
        .map(|t| {
            let is = s
                .occurrences(t.id, 1_000_000, 0)
                .unwrap()
                .iter()
                .map(|o| {
                    let v: serde_json::Value = serde_json::from_str(&o.data).unwrap();
                    v["fields"]["i"].as_u64().unwrap_or_else(|| panic!("no field i in {}", o.data))
                })
                .collect();
            (t.message, t.occurrence_count, is)
        })
        .collect();
    out.sort();
    out
}

/// Writes `from..to` alternately at the two sites with retention `keep`, in batches of 7.
fn write(url: &str, prefix: &str, keep: u32, from: u64, to: u64) {
    with_layer(builder(url, prefix).retention(keep).batch_records(7), || {
        for i in from..to {
            if i % 2 == 0 {
                site_a(i)
            } else {
                site_b(i)
            }
        }
    });
}

/// The newest `n` values of one site among `0..to`, newest first.
fn newest(site: u64, to: u64, n: usize) -> Vec<u64> {
    (0..to).rev().filter(|i| i % 2 == site).take(n).collect()
}

/// Many batches keep exactly the newest occurrences of each ticket; a lower retention later
/// trims the older ones at the next write, and a higher one keeps what is there and adds.
fn retention_across_batches(url: &str, prefix: &str) {
    write(url, prefix, 5, 0, 300);
    assert_eq!(
        kept(url, prefix),
        vec![("site a".into(), 150, newest(0, 300, 5)), ("site b".into(), 150, newest(1, 300, 5))]
    );
    write(url, prefix, 2, 300, 302);
    assert_eq!(
        kept(url, prefix),
        vec![("site a".into(), 151, newest(0, 302, 2)), ("site b".into(), 151, newest(1, 302, 2))]
    );
    write(url, prefix, 4, 302, 304);
    assert_eq!(
        kept(url, prefix),
        vec![("site a".into(), 152, newest(0, 304, 3)), ("site b".into(), 152, newest(1, 304, 3))]
    );
}

#[test]
fn sqlite_retention_holds_across_batches_and_a_changed_retention() {
    retention_across_batches(&sqlite_url("retention"), "watchbell_");
}

#[test]
fn postgres_retention_holds_across_batches_and_a_changed_retention() {
    retention_across_batches(&postgres_url(), &unique_prefix("retention"));
}

/// 1,000 records at two sites in batches of up to 1,000: several full multi-row inserts and a
/// partial one, whose rows alternate between the tickets; every occurrence is stored, in order.
fn one_large_batch(url: &str, prefix: &str) {
    with_layer(builder(url, prefix).retention(1_000).batch_records(1_000), || {
        for i in 0..1_000 {
            if i % 2 == 0 {
                site_a(i)
            } else {
                site_b(i)
            }
        }
    });
    assert_eq!(
        kept(url, prefix),
        vec![("site a".into(), 500, newest(0, 1_000, 500)), ("site b".into(), 500, newest(1, 1_000, 500))]
    );
}

#[test]
fn sqlite_a_large_batch_stores_every_occurrence_in_order() {
    one_large_batch(&sqlite_url("large"), "watchbell_");
}

#[test]
fn postgres_a_large_batch_stores_every_occurrence_in_order() {
    one_large_batch(&postgres_url(), &unique_prefix("large"));
}

/// The occurrences table has no foreign key (its check per row cost as much as the insert),
/// so deleting a ticket must not leave behind the occurrences a concurrent writer is adding:
/// here a transaction holds the ticket row (as a writer's upsert does) and inserts an
/// occurrence; the delete waits for it and removes that occurrence too.
#[test]
fn postgres_a_ticket_deleted_while_a_writer_adds_occurrences_leaves_none_behind() {
    let url = postgres_url();
    let prefix = unique_prefix("delete_race");
    write(&url, &prefix, 10, 0, 4);
    let mut store = open(&url, &prefix);
    assert_eq!(store.schema_version().unwrap(), 3);
    let id = store.list_tickets(&watchbell_ticketing::TicketQuery::default()).unwrap()[0].id;

    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let foreign_keys: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = $1::TEXT::regclass AND contype = 'f'",
            &[&format!("{prefix}occurrences")],
        )
        .unwrap()
        .get(0);
    assert_eq!(foreign_keys, 0);
    let mut writer = client.transaction().unwrap();
    writer
        .execute(&format!("UPDATE {prefix}tickets SET occurrence_count = occurrence_count + 1 WHERE id = $1"), &[&id])
        .unwrap();
    writer
        .execute(
            &format!(
                "INSERT INTO {prefix}occurrences (ticket_id, time, app_id, data) VALUES ($1, now(), 'app', '{{}}')"
            ),
            &[&id],
        )
        .unwrap();

    let deleting = std::thread::spawn(move || store.delete(id).unwrap());
    // Wait (bounded) until the delete waits for the writer's row lock.
    let mut watch = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let until = watchbell_core::time::deadline(Duration::from_secs(10));
    loop {
        let waiting: i64 = watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'watchbell-ticketing' \
                 AND wait_event_type = 'Lock' AND query LIKE $1",
                &[&format!("%{prefix}tickets%")],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < until, "the delete never waited for the writer");
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.commit().unwrap();
    assert!(deleting.join().unwrap(), "the ticket was deleted");
    let left: i64 = watch
        .query_one(&format!("SELECT count(*) FROM {prefix}occurrences WHERE ticket_id = $1"), &[&id])
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "no occurrence outlives its ticket");
}

/// Records with hostile text everywhere (control characters, quotes, backslashes, multibyte,
/// U+2028) in the target, message, fields, span names, span targets and span fields, every
/// value kind (NaN, 128-bit integers, negative numbers, `Debug` text), optional parts present
/// and absent, several records in one second, others seconds apart and before 1970; each has a
/// unique `seq` field.
fn hostile_records() -> Vec<watchbell_core::Record> {
    use std::sync::Arc;
    use std::time::UNIX_EPOCH;
    use watchbell_core::{Fields, Level, Origin, Record, SpanRecord, Value};
    let texts = ["", "\u{0}\u{1}\u{1f}\"\\\n\r\t\u{8}\u{c}", "é € 😀 \u{2028}\u{2029} \u{7f}", "</script> ' &"];
    let t0 = UNIX_EPOCH + Duration::new(1_700_000_000, 999_990_000);
    (0..40u64)
        .map(|i| {
            let text = texts[i as usize % texts.len()];
            let mut r = Record::new(Level::ERROR, format!("app::m{}{text}", i % 3), format!("message {i} {text}"));
            r.time = match i % 5 {
                0..=2 => t0 + Duration::from_micros(i),
                3 => t0 + Duration::from_secs(i),
                _ => UNIX_EPOCH - Duration::new(i * 1_000 + 1, 123_456_000),
            };
            r.fields.set("seq", Value::U64(i));
            r.fields.set(format!("k{text}"), Value::Str(text.to_owned()));
            r.fields.set("f", Value::F64([0.1, f64::NAN, 1e300, -0.0][i as usize % 4]));
            r.fields.set("big", Value::I128(Box::new(i128::MIN + i128::from(i))));
            r.fields.set("neg", Value::I64(-(i as i64)));
            r.fields.set("d", Value::Debug(format!("Some({text:?})")));
            let mut outer = Fields::new();
            outer.set("id", Value::U64(i));
            outer.set(format!("s{text}"), Value::Bool(i % 2 == 0));
            let spans = vec![
                Arc::new(SpanRecord { name: format!("outer{text}").into(), target: "t".into(), fields: outer }),
                Arc::new(SpanRecord { name: "inner".into(), target: text.to_owned().into(), fields: Fields::new() }),
            ];
            r.spans = spans.into_iter().collect();
            if i % 2 == 0 {
                r.module = Some(format!("app::{text}").into());
                r.file = Some(format!("src/{text}.rs").into());
                r.line = Some(i as u32);
            }
            r.thread_name = if i % 3 == 0 { None } else { Some(Arc::from(format!("worker {text}").as_str())) };
            if i % 7 == 0 {
                r.suppressed = i;
                r.origin = Origin::Log;
            }
            r
        })
        .collect()
}

/// Every stored occurrence is, byte for byte, the document `serde_json::to_string` gives for
/// the record handed to the layer (what databases written before hold and the viewer reads),
/// and its `time` column is the record's time, in batches of 16 records.
fn stored_documents(url: &str, prefix: &str) {
    use watchbell_core::time::rfc3339;
    use watchbell_core::Handler;
    let records = hostile_records();
    let (h, guard) = builder(url, prefix).retention(100).batch_records(16).build_handler().unwrap();
    for r in &records {
        h.handle(r.clone());
    }
    assert!(guard.shutdown(Duration::from_secs(60)).is_complete(), "{:?}", guard.stats());
    let mut s = open(url, prefix);
    let mut seen = vec![false; records.len()];
    for t in s.list_tickets(&watchbell_ticketing::TicketQuery::default().page(1_000, 0)).unwrap() {
        for o in s.occurrences(t.id, 1_000, 0).unwrap() {
            let v: serde_json::Value = serde_json::from_str(&o.data).unwrap();
            let seq = v["fields"]["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {}", o.data)) as usize;
            let r = &records[seq];
            assert_eq!(o.data, serde_json::to_string(r).unwrap(), "record {seq}");
            assert_eq!(rfc3339(o.time), rfc3339(r.time), "record {seq}");
            assert!(!seen[seq], "record {seq} stored twice");
            seen[seq] = true;
        }
    }
    assert!(seen.iter().all(|s| *s), "not every record stored: {seen:?}");
}

#[test]
fn sqlite_stored_documents_are_serde_json_text_byte_for_byte() {
    stored_documents(&sqlite_url("documents"), "watchbell_");
}

#[test]
fn postgres_stored_documents_are_serde_json_text_byte_for_byte() {
    stored_documents(&postgres_url(), &unique_prefix("documents"));
}
