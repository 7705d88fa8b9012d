//! The caller-side cost of watchbell, measured side by side with the alternatives in one run.
//!
//! - `disabled/*`: a `debug!` callsite below every layer's level, with and without a watchbell
//!   layer next to a `fmt` layer at INFO.
//! - `enabled/*`: an `info!` with 3 fields inside 2 spans: captured and enqueued by watchbell to a
//!   delivery whose sink is stalled (so the measured thread does all the caller's work and the
//!   worker none; the queue sheds its oldest record per push, so memory stays bounded by the
//!   queue bytes), versus `tracing-appender`'s `non_blocking` writer under a `fmt` layer.
//! - `enabled/watchbell_destination_down`: the same event while the destination is down and the
//!   delivery waits out a retry delay (the queue again sheds its oldest record per push).
//! - `enabled/watchbell_keeps_up`: the same event into a delivery with the default settings
//!   whose sink takes every batch at once: the caller's cost when its worker keeps up (the
//!   worker takes batches and frees records concurrently), what every sink's caller pays before
//!   its own formatting and I/O compete for the CPU.
//! - `two_threads/*`: the same, two threads logging at once (time per event per thread).
//! - `sinks/*`: an `error!` of the same shape into each sink layer with its default settings
//!   (rate limit included), its destination a loopback peer that never answers.
//! - `peers/*`: the same `info!` (and its `error!` variant) into the other crates a user would
//!   pick instead, each against a loopback peer that never answers: OpenTelemetry's tracing
//!   appender with the SDK's batch log processor and the OTLP/HTTP (protobuf) exporter,
//!   `tracing-loki`, `sentry-tracing` with a loopback DSN, `tracing-layer-slack`, and
//!   `tracing-appender` (`error!` only: its `info!` is `enabled/appender_non_blocking_fmt`).
//! - `memory`: bytes held per queued record for the `enabled/watchbell_stalled_sink` event,
//!   counted by this binary's global allocator (on the logging thread only) while 10,000
//!   records sit in a stalled queue; printed and written to
//!   `target/criterion/memory/watchbell_queued_record.json`.
//! - `processors/two_fields`: the `enabled/watchbell_stalled_sink` event with a processor that
//!   adds 2 fields (run last: processors are process-wide).

use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tracing::{debug, info, info_span, Dispatch, Level};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;
use watchbell_core::{Batch, CaptureLayer, Delivery, DeliveryHandle, Outcome, Overflow};

/// The system allocator, counting the bytes held by allocations made while [`COUNTING`] is on,
/// on the thread that turned it on ([`COUNTED_HERE`]): the workers of earlier benches may still
/// be freeing their queues meanwhile, and those frees must not count. One relaxed load per
/// call otherwise, so the timed benches are not disturbed.
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static HELD: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Whether this thread's allocations are counted (while [`COUNTING`] is on).
    static COUNTED_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether an allocation made now, on this thread, is counted.
fn counted() -> bool {
    COUNTING.load(Relaxed) && COUNTED_HERE.try_with(std::cell::Cell::get).unwrap_or(false)
}

// A global allocator is an `unsafe impl`: this one only forwards to `System`.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if counted() {
            HELD.fetch_add(layout.size() as isize, Relaxed);
        }
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        if counted() {
            HELD.fetch_sub(layout.size() as isize, Relaxed);
        }
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if counted() {
            HELD.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn fmt_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer().with_writer(std::io::sink).with_filter(LevelFilter::INFO)
}

/// A delivery whose sink never returns from its first batch, and a sender that releases it.
fn stalled_delivery() -> (DeliveryHandle, mpsc::Sender<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    let d = Delivery::builder("stalled", move |_: &Batch| {
        let _ = rx.recv();
        Outcome::Delivered
    })
    .queue_records(100_000)
    .queue_bytes(64 << 20)
    .overflow(Overflow::DropOldest)
    .notices(false)
    .spawn()
    .expect("worker");
    (d, tx)
}

/// A delivery whose destination is down: every batch is answered "retry in an hour".
fn down_delivery() -> DeliveryHandle {
    Delivery::builder("down", |_: &Batch| Outcome::retry_after(Some(Duration::from_secs(3600)), "down"))
        .queue_records(100_000)
        .queue_bytes(64 << 20)
        .overflow(Overflow::DropOldest)
        .retry(watchbell_core::Retry { budget: Duration::from_secs(86_400), ..watchbell_core::Retry::default() })
        .notices(false)
        .spawn()
        .expect("worker")
}

fn watchbell_dispatch() -> (Dispatch, mpsc::Sender<()>) {
    let (d, release) = stalled_delivery();
    let sub = tracing_subscriber::registry().with(CaptureLayer::new(Arc::new(d)).with_level(Level::INFO));
    (Dispatch::new(sub), release)
}

fn appender_dispatch() -> (Dispatch, tracing_appender::non_blocking::WorkerGuard) {
    let (writer, guard) = tracing_appender::non_blocking(std::io::sink());
    let sub = tracing_subscriber::registry().with(tracing_subscriber::fmt::layer().with_writer(writer));
    (Dispatch::new(sub), guard)
}

#[inline(never)]
fn error_event(i: u64) {
    tracing::error!(user = "bob", attempt = i, latency_ms = 12.5, "payment failed");
}

#[inline(never)]
fn info_event(i: u64) {
    info!(user = "bob", attempt = i, latency_ms = 12.5, "payment accepted");
}

fn in_spans<R>(f: impl FnOnce() -> R) -> R {
    let outer = info_span!("request", id = 7u64, path = "/checkout");
    let _o = outer.enter();
    let inner = info_span!("db", table = "orders");
    let _i = inner.enter();
    f()
}

fn disabled(c: &mut Criterion) {
    let mut g = c.benchmark_group("disabled");
    {
        let d = Dispatch::new(tracing_subscriber::registry().with(fmt_layer()));
        tracing::dispatcher::with_default(&d, || {
            g.bench_function("fmt_only", |b| b.iter(|| debug!(x = 1, "below every level")));
        });
    }
    {
        let (del, _release) = stalled_delivery();
        let d = Dispatch::new(
            tracing_subscriber::registry()
                .with(fmt_layer())
                .with(CaptureLayer::new(Arc::new(del)).with_level(Level::WARN)),
        );
        tracing::dispatcher::with_default(&d, || {
            g.bench_function("fmt_and_watchbell", |b| b.iter(|| debug!(x = 1, "below every level")));
        });
    }
    g.finish();
}

fn enabled(c: &mut Criterion) {
    let mut g = c.benchmark_group("enabled");
    {
        let (d, _release) = watchbell_dispatch();
        tracing::dispatcher::with_default(&d, || {
            in_spans(|| g.bench_function("watchbell_stalled_sink", |b| b.iter(|| info_event(3))));
        });
    }
    {
        let down = down_delivery();
        let d = Dispatch::new(
            tracing_subscriber::registry().with(CaptureLayer::new(Arc::new(down)).with_level(Level::INFO)),
        );
        tracing::dispatcher::with_default(&d, || {
            in_spans(|| g.bench_function("watchbell_destination_down", |b| b.iter(|| info_event(3))));
        });
    }
    {
        let keeps_up = Delivery::builder("keeps-up", |_: &Batch| Outcome::Delivered).spawn().expect("worker");
        let d = Dispatch::new(
            tracing_subscriber::registry().with(CaptureLayer::new(Arc::new(keeps_up)).with_level(Level::INFO)),
        );
        tracing::dispatcher::with_default(&d, || {
            in_spans(|| g.bench_function("watchbell_keeps_up", |b| b.iter(|| info_event(3))));
        });
    }
    {
        let (d, _guard) = appender_dispatch();
        tracing::dispatcher::with_default(&d, || {
            in_spans(|| g.bench_function("appender_non_blocking_fmt", |b| b.iter(|| info_event(3))));
        });
    }
    g.finish();
}

fn two_threads(c: &mut Criterion) {
    fn run(d: &Dispatch, iters: u64) -> Duration {
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let d = d.clone();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    tracing::dispatcher::with_default(&d, || {
                        in_spans(|| {
                            barrier.wait();
                            let start = Instant::now();
                            for i in 0..iters {
                                info_event(i);
                            }
                            start.elapsed()
                        })
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).max().unwrap()
    }
    let mut g = c.benchmark_group("two_threads");
    {
        let (d, _release) = watchbell_dispatch();
        g.bench_function("watchbell_stalled_sink", |b| b.iter_custom(|iters| run(&d, iters)));
    }
    {
        let (d, _guard) = appender_dispatch();
        g.bench_function("appender_non_blocking_fmt", |b| b.iter_custom(|iters| run(&d, iters)));
    }
    g.finish();
}

fn sinks(c: &mut Criterion) {
    let mut g = c.benchmark_group("sinks");
    let peer = watchbell_test::http::FakeHttp::start();
    peer.set_default(watchbell_test::http::Reply::stall());
    {
        let (layer, guard) = watchbell_slack::SlackLayer::builder()
            .webhook(watchbell_slack::Webhook::new(peer.url_for("/services/T/B/X")))
            .build()
            .expect("slack layer");
        let d = Dispatch::new(tracing_subscriber::registry().with(layer));
        tracing::dispatcher::with_default(&d, || {
            in_spans(|| g.bench_function("slack", |b| b.iter(|| error_event(3))));
        });
        drop(d);
        let _ = guard.shutdown(Duration::from_millis(100));
    }
    {
        let (layer, guard) = watchbell_telegram::TelegramLayer::builder("123456:bench-token")
            .api_base(peer.url())
            .chat(-1001234567890i64)
            .build()
            .expect("telegram layer");
        let d = Dispatch::new(tracing_subscriber::registry().with(layer));
        tracing::dispatcher::with_default(&d, || {
            in_spans(|| g.bench_function("telegram", |b| b.iter(|| error_event(3))));
        });
        drop(d);
        let _ = guard.shutdown(Duration::from_millis(100));
    }
    {
        // The SMS layer with its defaults (ERROR, 1 per callsite per hour, cap 10 per hour):
        // what a repeating error costs the caller once it is rate limited.
        let (layer, guard) = watchbell_sms::SmsLayer::builder()
            .recipient("+15558675310")
            .twilio(
                watchbell_sms::Twilio::new("AC0123456789abcdef0123456789abcdef", "bench-token")
                    .from("+15017122661")
                    .api_base(peer.url()),
            )
            .build()
            .expect("sms layer");
        run_sink(&mut g, "sms", layer, guard);
    }
    {
        use watchbell_test::smtp::{Answer, FakeSmtp, Step};
        let smtp = FakeSmtp::start();
        smtp.set_always(Step::MailFrom, Some(Answer::Stall));
        let (layer, guard) = watchbell_mail::MailLayer::builder("127.0.0.1")
            .plain()
            .port(smtp.port())
            .from("alerts@example.com")
            .to("oncall@example.com")
            .build()
            .expect("mail layer");
        run_sink(&mut g, "mail", layer, guard);
    }
    {
        let receiver = watchbell_test::syslog::FakeSyslog::udp();
        let addr = receiver.addr().expect("udp address").to_string();
        let (layer, guard) = watchbell_syslog::SyslogLayer::builder().udp(addr).build().expect("syslog layer");
        run_sink(&mut g, "syslog_udp", layer, guard);
    }
    {
        let dir = bench_dir("file-layer");
        let (layer, guard) =
            watchbell_file::FileLayer::builder(dir.join("app.log")).max_bytes(64 << 20).build().expect("file layer");
        run_sink(&mut g, "file_layer", layer, guard);
    }
    {
        let (layer, guard) = watchbell_http::HttpLayer::builder(peer.url()).build().expect("http layer");
        run_sink(&mut g, "http", layer, guard);
    }
    {
        // Buffering (no trigger): an info! withheld in its request span's ring (1,000 records).
        let inner = watchbell_test::TestLayer::new();
        let (layer, guard) =
            watchbell_fingers_crossed::FingersCrossedLayer::builder(inner.handler()).build().expect("fingers-crossed");
        let d = Dispatch::new(tracing_subscriber::registry().with(layer));
        tracing::dispatcher::with_default(&d, || {
            in_spans(|| g.bench_function("fingers_crossed_buffer", |b| b.iter(|| info_event(3))));
        });
        drop(d);
        let _ = guard.shutdown(Duration::from_millis(500));
    }
    {
        let dir = bench_dir("tickets");
        let url = format!("sqlite://{}", dir.join("tickets.db").display());
        let (layer, guard) = watchbell_ticketing::TicketingLayer::builder(url).build().expect("ticketing layer");
        run_sink(&mut g, "ticketing_sqlite", layer, guard);
    }
    {
        // A program that hangs, with the defaults (ERROR, 1 per callsite per 60 s).
        let (layer, guard) =
            watchbell_command::CommandLayer::builder("/bin/sleep").arg("1000").build().expect("command layer");
        run_sink(&mut g, "command", layer, guard);
    }
    {
        // Every record encoded and sent (no rate limit by default) to a receiver on loopback.
        let journal = watchbell_test::journald::FakeJournald::start();
        let (layer, guard) =
            watchbell_journald::JournaldLayer::builder().socket(journal.path()).build().expect("journald layer");
        run_sink(&mut g, "journald", layer, guard);
    }
    {
        let desktop = watchbell_test::desktop::FakeNotifications::start();
        let (layer, guard) =
            watchbell_desktop::DesktopLayer::builder().bus_address(desktop.address()).build().expect("desktop layer");
        run_sink(&mut g, "desktop", layer, guard);
    }
    {
        // The push, chat and paging services share one sink: ntfy stands for all of them.
        let (layer, guard) = watchbell_notify::NotifyLayer::ntfy(peer.url(), "bench").build().expect("notify layer");
        run_sink(&mut g, "notify", layer, guard);
    }
    g.finish();
}

/// A fresh, empty directory under the system's temp dir for one bench, removed with what it
/// holds when dropped (the file layer's bench alone writes hundreds of MB there).
struct BenchDir(std::path::PathBuf);

impl std::ops::Deref for BenchDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for BenchDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bench_dir(name: &str) -> BenchDir {
    let dir = std::env::temp_dir().join(format!("watchbell-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    BenchDir(dir)
}

/// Benches `error_event(3)` in two spans into `layer` as the only layer.
fn run_sink<L>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    layer: L,
    guard: watchbell_core::Guard,
) where
    L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    let d = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&d, || {
        in_spans(|| g.bench_function(id, |b| b.iter(|| error_event(3))));
    });
    drop(d);
    let _ = guard.shutdown(Duration::from_millis(500));
}

/// Throughput of the HTTP layer: N records, gzip NDJSON, to a loopback peer answering 200,
/// timed from the first record until the guard's flush returns (everything accepted).
fn http_throughput(c: &mut Criterion) {
    use watchbell_core::{Handler, SinkOptions, Value};
    const N: u64 = 50_000;
    let mut g = c.benchmark_group("http_throughput");
    g.throughput(criterion::Throughput::Elements(N));
    g.sample_size(10);
    let peer = watchbell_test::http::FakeHttp::start();
    let mut template = watchbell_core::Record::new(Level::INFO, "bench::http", "request handled");
    template.fields.set("status", Value::U64(200));
    template.fields.set("path", Value::Str("/api/v1/orders".into()));
    g.bench_function("watchbell_http_gzip_ndjson", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (h, guard) = watchbell_http::HttpLayer::builder(peer.url())
                    .batch_records(5_000)
                    .batch_bytes(16 << 20)
                    .batch_wait(Duration::from_millis(50))
                    .queue_records(200_000)
                    .queue_bytes(256 << 20)
                    .build_handler()
                    .expect("http handler");
                let start = Instant::now();
                for i in 0..N {
                    let mut r = template.clone();
                    r.fields.set("seq", Value::U64(i));
                    h.handle(r);
                }
                assert!(guard.flush(Duration::from_secs(120)).is_complete());
                total += start.elapsed();
                assert_eq!(guard.stats()[0].delivered, N);
                let _ = guard.shutdown(Duration::from_secs(1));
            }
            total
        })
    });
    g.finish();
}

/// Sustained occurrences per second into the ticket store: N error records of 10 callsites
/// handed to the ticketing handler, timed until the guard's flush returns (all committed).
/// SQLite always; PostgreSQL when `WATCHBELL_TEST_POSTGRES_URL` is set (`.ci/postgres.sh`).
fn tickets_throughput(c: &mut Criterion) {
    use watchbell_core::{Handler, SinkOptions, Value};
    const N: u64 = 20_000;
    let mut g = c.benchmark_group("tickets_throughput");
    g.throughput(criterion::Throughput::Elements(N));
    g.sample_size(10);
    let records: Vec<watchbell_core::Record> = (0..10)
        .map(|i| {
            let mut r = watchbell_core::Record::new(Level::ERROR, format!("bench::site{i}"), "payment failed");
            r.fields.set("attempt", Value::U64(i));
            r
        })
        .collect();
    let dir = bench_dir("tickets-throughput");
    let mut stores = vec![("sqlite", format!("sqlite://{}", dir.join("tickets.db").display()))];
    if let Ok(url) = std::env::var("WATCHBELL_TEST_POSTGRES_URL") {
        stores.push(("postgres", url));
    }
    for (id, url) in stores {
        let prefix = format!("bench{}_", std::process::id());
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (h, guard) = watchbell_ticketing::TicketingLayer::builder(url.clone())
                        .table_prefix(prefix.clone())
                        .queue_records(2 * N as usize)
                        .build_handler()
                        .expect("ticketing handler");
                    let start = Instant::now();
                    for i in 0..N {
                        h.handle(records[(i % 10) as usize].clone());
                    }
                    assert!(guard.flush(Duration::from_secs(300)).is_complete());
                    total += start.elapsed();
                    let delivered: u64 = guard.stats().iter().map(|s| s.delivered).max().unwrap_or(0);
                    assert_eq!(delivered, N);
                    let _ = guard.shutdown(Duration::from_secs(5));
                }
                total
            })
        });
    }
    g.finish();
}

/// Throughput of the file writers: N fmt events through each MakeWriter into a file on disk,
/// timed until the last line is written (the writer's guard flushed or dropped).
fn file_throughput(c: &mut Criterion) {
    const N: u64 = 20_000;
    let mut g = c.benchmark_group("file_throughput");
    g.throughput(criterion::Throughput::Elements(N));
    g.sample_size(10);
    let dir = bench_dir("file-throughput");
    g.bench_function("watchbell_file_writer", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let path = dir.join(format!("wb-{i}.log"));
                let (w, wg) = watchbell_file::RollingFile::builder(&path)
                    .max_bytes(1 << 30)
                    .queue_lines(1 << 20)
                    .queue_bytes(1 << 30)
                    .non_blocking()
                    .expect("writer");
                let d =
                    Dispatch::new(tracing_subscriber::registry().with(tracing_subscriber::fmt::layer().with_writer(w)));
                let start = Instant::now();
                tracing::dispatcher::with_default(&d, || (0..N).for_each(info_event));
                wg.flush(Duration::from_secs(60));
                total += start.elapsed();
                assert_eq!(wg.stats().dropped, 0);
                let _ = std::fs::remove_file(&path);
            }
            total
        })
    });
    g.bench_function("appender_rolling_non_blocking", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let sub = dir.join(format!("ta-{i}"));
                let appender = tracing_appender::rolling::RollingFileAppender::builder()
                    .rotation(tracing_appender::rolling::Rotation::DAILY)
                    .filename_prefix("app")
                    .build(&sub)
                    .expect("appender");
                let (w, wg) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                    .lossy(false)
                    .buffered_lines_limit(1 << 20)
                    .finish(appender);
                let d =
                    Dispatch::new(tracing_subscriber::registry().with(tracing_subscriber::fmt::layer().with_writer(w)));
                let start = Instant::now();
                tracing::dispatcher::with_default(&d, || (0..N).for_each(info_event));
                drop(wg);
                total += start.elapsed();
                let _ = std::fs::remove_dir_all(&sub);
            }
            total
        })
    });
    g.finish();
}

/// A tokio runtime for the peers that need one (tracing-loki, tracing-layer-slack).
fn peer_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("tokio runtime")
}

/// Benches `info_event` and `error_event` in two spans under `d` as `{name}_info`, `{name}_error`.
fn bench_both(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, name: &str, d: &Dispatch) {
    tracing::dispatcher::with_default(d, || {
        in_spans(|| {
            g.bench_function(format!("{name}_info"), |b| b.iter(|| info_event(3)));
            g.bench_function(format!("{name}_error"), |b| b.iter(|| error_event(3)));
        })
    });
}

fn peers(c: &mut Criterion) {
    let mut g = c.benchmark_group("peers");
    let peer = watchbell_test::http::FakeHttp::start();
    peer.set_default(watchbell_test::http::Reply::stall());
    {
        // watchbell's error! (its info! is enabled/watchbell_stalled_sink).
        let (d, _release) = watchbell_dispatch();
        tracing::dispatcher::with_default(&d, || {
            in_spans(|| g.bench_function("watchbell_error", |b| b.iter(|| error_event(3))));
        });
    }
    {
        let (d, _guard) = appender_dispatch();
        tracing::dispatcher::with_default(&d, || {
            in_spans(|| g.bench_function("appender_error", |b| b.iter(|| error_event(3))));
        });
    }
    {
        // The OpenTelemetry appender: a LogRecord per event (message, level, target and the
        // event's fields; not the spans' fields), the SDK's batch log processor (a bounded
        // channel of 2,048, dropping when full) and the OTLP/HTTP protobuf exporter.
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(peer.url_for("/v1/logs"))
            .with_timeout(Duration::from_secs(3600))
            .build()
            .expect("otlp exporter");
        let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder().with_batch_exporter(exporter).build();
        let layer = opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&provider);
        let d = Dispatch::new(tracing_subscriber::registry().with(layer));
        bench_both(&mut g, "otel", &d);
        drop(d);
        // Its shutdown waits for the export that the stalled peer never answers: leave it.
        std::mem::forget(provider);
    }
    let rt = peer_runtime();
    {
        // tracing-loki: the event's fields and its spans' fields as JSON, a bounded channel of
        // 512 (dropping when full), its background task on a tokio runtime.
        let (layer, task) = tracing_loki::builder()
            .label("service", "bench")
            .expect("label")
            .build_url(tracing_loki::url::Url::parse(&peer.url()).expect("url"))
            .expect("loki layer");
        rt.spawn(task);
        let d = Dispatch::new(tracing_subscriber::registry().with(layer));
        bench_both(&mut g, "loki", &d);
    }
    {
        // sentry-tracing's defaults: error! becomes an event (queued to the transport's thread,
        // 30 at most, dropping when full), info! a breadcrumb (the last 100 kept).
        let port = peer.addr().port();
        let mut options = sentry::ClientOptions::default();
        options.shutdown_timeout = Duration::ZERO;
        let guard = sentry::init((format!("http://public@127.0.0.1:{port}/1"), options));
        // The layer most users have (its replacement splits it in two, same behaviour).
        #[allow(deprecated)]
        let layer = sentry_tracing::layer();
        let d = Dispatch::new(tracing_subscriber::registry().with(layer));
        bench_both(&mut g, "sentry", &d);
        drop(d);
        // Its drop flushes: a blocking send into the transport's full channel (30 events) that
        // the stalled peer never drains, whatever `shutdown_timeout` says. Leave it.
        std::mem::forget(guard);
    }
    {
        // tracing-layer-slack renders and enqueues every event on an unbounded channel: with
        // its peer stalled, memory grows for as long as it is measured, so it is measured for
        // a shorter time.
        g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(20);
        let (layer, delivery) = tracing_layer_slack::SlackLayer::builder(
            "bench",
            tracing_layer_slack::EventFilters::new(None, None),
            peer.url_for("/services/T/B/X"),
        )
        .expect("slack layer")
        .build();
        let _handle = {
            let _rt = rt.enter();
            delivery.spawn().expect("slack delivery")
        };
        let d = Dispatch::new(tracing_subscriber::registry().with(layer));
        bench_both(&mut g, "tracing_layer_slack", &d);
    }
    g.finish();
    rt.shutdown_background();
}

/// Bytes held per queued record: the `enabled/watchbell_stalled_sink` event, 10,000 of them in
/// a queue whose sink is stalled on the batch before them, counted by [`CountingAlloc`].
fn memory(_: &mut Criterion) {
    const N: usize = 10_000;
    let (tx, rx) = mpsc::channel::<()>();
    let (taken_tx, taken_rx) = mpsc::channel::<()>();
    let d = Delivery::builder("memory", move |_: &Batch| {
        let _ = taken_tx.send(());
        let _ = rx.recv();
        Outcome::Delivered
    })
    .queue_records(2 * N)
    .queue_bytes(1 << 30)
    .batch_records(1)
    .notices(false)
    .spawn()
    .expect("worker");
    let handle: Arc<DeliveryHandle> = Arc::new(d);
    let dispatch = Dispatch::new(
        tracing_subscriber::registry()
            .with(CaptureLayer::new(Arc::clone(&handle) as Arc<dyn watchbell_core::Handler>).with_level(Level::INFO)),
    );
    let per_record = tracing::dispatcher::with_default(&dispatch, || {
        in_spans(|| {
            // The first record stalls the worker; the next ones stay queued.
            info_event(0);
            taken_rx.recv_timeout(Duration::from_secs(10)).expect("the worker took the first batch");
            HELD.store(0, Relaxed);
            COUNTED_HERE.with(|c| c.set(true));
            COUNTING.store(true, Relaxed);
            for i in 0..N as u64 {
                info_event(i);
            }
            COUNTING.store(false, Relaxed);
            COUNTED_HERE.with(|c| c.set(false));
            HELD.load(Relaxed) as f64 / N as f64
        })
    });
    let queued = handle.snapshot().queued;
    assert_eq!(queued, N as u64, "every record is still queued");
    println!("memory/watchbell_queued_record: {per_record:.0} bytes held per queued record ({N} queued)");
    if let Some(dir) = criterion_dir() {
        let dir = dir.join("memory");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(
            dir.join("watchbell_queued_record.json"),
            format!("{{\"bytes_per_record\": {per_record:.1}, \"records\": {N}}}\n"),
        );
    }
    drop(dispatch);
    drop(tx);
}

/// `target/criterion`, from this binary's path (`target/<profile>/deps/pipeline-…`).
fn criterion_dir() -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(std::path::PathBuf::from(dir).join("criterion"));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("criterion"))
}

/// The `enabled/watchbell_stalled_sink` event with a processor that adds 2 fields (a deploy id
/// and a request id from a thread local). Processors are process-wide, so this group runs last.
fn processors(c: &mut Criterion) {
    thread_local! {
        static REQUEST_ID: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    watchbell_core::processor(|r: &mut watchbell_core::Record| {
        r.fields.set("deploy", watchbell_core::Value::Str("2026-11-29.1".to_owned()));
        r.fields.set("request_id", watchbell_core::Value::U64(REQUEST_ID.with(std::cell::Cell::get)));
    });
    let mut g = c.benchmark_group("processors");
    let (d, _release) = watchbell_dispatch();
    tracing::dispatcher::with_default(&d, || {
        REQUEST_ID.with(|c| c.set(42));
        in_spans(|| g.bench_function("two_fields", |b| b.iter(|| info_event(3))));
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = disabled, enabled, memory, two_threads, peers, sinks, file_throughput, http_throughput, tickets_throughput, processors
}
criterion_main!(benches);
