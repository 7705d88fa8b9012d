//! The delivery worker's CPU per record: what runs on watchbell's background thread for each
//! record, and so competes with the logging thread for the cores.
//!
//! The record is the `error!` of `pipeline`'s `sinks` group (`user = "bob"`, `attempt = 3`,
//! `latency_ms = 12.5`, "payment failed", inside `request{id=7 path="/checkout"}` and
//! `db{table="orders"}`), captured by a real layer, so its names are the callsite's own.
//!
//! - `worker/redact_record`: the default [`Redactor`] over the record (nothing in it is a
//!   secret, as with nearly every record: the cost is the scan).
//! - `worker/file_format`: [`DefaultFormat`] into a reused `String`.
//! - `worker/file_write`: the formatted line into a [`RollingFile`] (buffered, flushed every
//!   1,000 records as the file layer's batches are), clock and reopen check included.
//! - `worker/journald_encode`: journald's native-protocol entry of the record, into a reused
//!   buffer as its sink writes it.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tracing::info_span;
use watchbell_core::format::{DefaultFormat, Format, FormatContext};
use watchbell_core::redact::Redactor;
use watchbell_core::Record;

#[inline(never)]
fn error_event(i: u64) {
    tracing::error!(user = "bob", attempt = i, latency_ms = 12.5, "payment failed");
}

fn in_spans<R>(f: impl FnOnce() -> R) -> R {
    let outer = info_span!("request", id = 7u64, path = "/checkout");
    let _o = outer.enter();
    let inner = info_span!("db", table = "orders");
    let _i = inner.enter();
    f()
}

/// The bench's `error!` record, captured by a real layer.
fn record() -> Record {
    let logs = watchbell_test::TestLayer::new();
    logs.in_scope(|| in_spans(|| error_event(3)));
    logs.records().pop().expect("one record captured")
}

fn worker(c: &mut Criterion) {
    let mut g = c.benchmark_group("worker");
    g.measurement_time(Duration::from_secs(3));
    let template = record();

    let redactor = Redactor::default();
    let mut r = template.clone();
    g.bench_function("redact_record", |b| b.iter(|| redactor.redact_record(std::hint::black_box(&mut r))));

    let cx = FormatContext::default();
    let mut out = String::with_capacity(256);
    g.bench_function("file_format", |b| {
        b.iter(|| {
            out.clear();
            DefaultFormat.format(std::hint::black_box(&template), &cx, &mut out);
            out.len()
        })
    });

    let dir = std::env::temp_dir().join(format!("watchbell-bench-worker-{}", std::process::id()));
    let mut file = watchbell_file::RollingFile::builder(dir.join("worker.log"))
        .max_bytes(64 << 20)
        .backup_count(1)
        .build()
        .expect("a rolling file");
    let mut line = String::with_capacity(256);
    DefaultFormat.format(&template, &cx, &mut line);
    line.push('\n');
    let mut n = 0u32;
    g.bench_function("file_write", |b| {
        b.iter(|| {
            file.write_record(line.as_bytes()).expect("write");
            n += 1;
            if n.is_multiple_of(1000) {
                file.flush().expect("flush");
            }
        })
    });
    let _ = file.flush();
    drop(file);
    let _ = std::fs::remove_dir_all(&dir);

    let mut entry = Vec::with_capacity(1024);
    g.bench_function("journald_encode", |b| {
        b.iter(|| {
            entry.clear();
            watchbell_journald::encode_entry_into(&mut entry, std::hint::black_box(&template), "bench", &[]);
            entry.len()
        })
    });
    g.finish();
}

criterion_group!(benches, worker);
criterion_main!(benches);
