//! The relay's ingest: NDJSON bodies (watchbell-http's own encoding, 1,000 records each, the
//! publisher's default batch) POSTed over loopback HTTP/1.1 keep-alive to a `watchbell-relay`
//! whose only sink is a file (`watchbell-file`, its queue set to wait rather than drop), end to
//! end: an iteration ends when every record it sent has been handed to the file sink.
//!
//! - `relay/ingest_ndjson`: 10 bodies × 1,000 records per iteration; throughput in records/s.
//!   A `429` (queue full) is waited out (1 ms) and the body sent again, as a publisher would.
//!   At the end it prints how many records it sent, for instruction counts per record over a
//!   run (`valgrind --tool=callgrind … --bench relay/ingest --profile-time 2`).
//! - `relay/parse_ndjson`: the parser alone, one body of 1,000 records per iteration (no
//!   HTTP, no queue, no sink): the relay's share of the cost without the machine's noise.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use watchbell_core::{Level, Record, SinkOptions as _, Value};

const PER_BODY: usize = 1000;
const BODIES: usize = 10;

fn body() -> Vec<u8> {
    let records: Vec<Record> = (0..PER_BODY)
        .map(|i| {
            let mut r = Record::new(Level::INFO, "bench::relay", "request served");
            r.file = Some("src/server.rs".into());
            r.line = Some(120);
            r.fields.set("status", Value::U64(200));
            r.fields.set("path", Value::Str(format!("/orders/{i}")));
            r.fields.set("ms", Value::F64(12.5));
            r
        })
        .collect();
    watchbell_http::fuzzing::encode(&watchbell_http::Encoding::Ndjson, &records, Some("shop"), Some("web-1"))
}

/// POSTs `body`; returns the status.
fn post(conn: &mut BufReader<TcpStream>, body: &[u8]) -> u16 {
    let s = conn.get_mut();
    write!(
        s,
        "POST /v1/records HTTP/1.1\r\nHost: relay\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("an HTTP status line");
    let mut len = 0usize;
    loop {
        line.clear();
        conn.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut sink = vec![0u8; len];
    conn.read_exact(&mut sink).unwrap();
    status
}

fn relay(c: &mut Criterion) {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-relay");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (file, file_guard) = watchbell_file::FileLayer::builder(dir.join("relay.log"))
        .overflow(watchbell_core::Overflow::Block(Duration::from_secs(30)))
        .build_handler()
        .unwrap();
    let relay = watchbell_relay::Relay::builder()
        .http("127.0.0.1:0".parse().unwrap())
        .queue(20_000)
        .spawn(Arc::clone(&file))
        .unwrap();
    let addr = relay.http_addr().unwrap();
    let body = body();
    let mut conn = BufReader::new(TcpStream::connect(addr).unwrap());
    conn.get_ref().set_nodelay(true).unwrap();
    let mut sent: u64 = 0;
    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements((PER_BODY * BODIES) as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("ingest_ndjson", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for _ in 0..BODIES {
                    while post(&mut conn, &body) == 429 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    sent += PER_BODY as u64;
                }
            }
            while relay.health()["delivered"].as_u64().unwrap_or(0) < sent {
                std::thread::yield_now();
            }
            start.elapsed()
        })
    });
    g.finish();
    // The total, for instruction counts per record (`perf stat -e instructions` over a run).
    eprintln!("relay/ingest_ndjson: {sent} records sent");
    drop(conn);
    let _ = relay.shutdown(Duration::from_secs(30));
    let _ = file_guard.shutdown(Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&dir);
}

fn parse(c: &mut Criterion) {
    let body = body();
    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements(PER_BODY as u64));
    g.bench_function("parse_ndjson", |b| {
        b.iter(|| {
            let records = watchbell_relay::parse_ndjson(std::hint::black_box(&body)).unwrap();
            assert_eq!(records.len(), PER_BODY);
            records
        })
    });
    g.finish();
}

criterion_group!(benches, relay, parse);
criterion_main!(benches);
