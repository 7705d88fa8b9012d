//! watchbell's main job on loopback stand-ins: a small simulated service logs in request spans at
//! every level, fails some requests and panics once; watchbell delivers the alerts to a loopback
//! collector that fails the way real ones do (503s, a 429 with Retry-After), and the demo prints
//! what the collector received and the delivery stats.
//!
//! Run it with `cargo run --example demo`. No credentials, no network: everything is on 127.0.0.1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, info_span, warn};
use tracing_subscriber::prelude::*;
use watchbell::prelude::*;
use watchbell_test::collector::NdjsonSink;
use watchbell_test::http::{FakeHttp, Reply};
use watchbell_test::TestLayer;

fn handle_request(id: u64) -> Result<(), String> {
    let user = ["ana", "bob", "chen", "dara"][id as usize % 4];
    let span = info_span!("request", id, path = "/checkout", user, password = "hunter2");
    let _entered = span.enter();
    debug!(step = "parse", "parsed request body");
    info!(items = id % 5 + 1, "checkout started");
    if id % 7 == 3 {
        warn!(latency_ms = 870 + id, "payment provider slow");
    }
    if id % 9 == 5 {
        // A `log` record from a dependency: it reaches watchbell through the bridge.
        log::error!(target: "payments::client", card = "visa", attempt = 3; "card declined by the issuer");
        return Err("payment declined".into());
    }
    if id == 17 {
        panic!("inventory index out of range for order {id}");
    }
    Ok(())
}

fn main() {
    let started = Instant::now();
    println!("watchbell demo — a simulated service, alerting to loopback stand-ins\n");

    // A collector that fails the way real ones do: two 503s, then a 429 asking for 1 s.
    let collector = FakeHttp::start();
    collector.push_n(2, Reply::status(503));
    collector.push(Reply::status(429).retry_after(1));
    println!("collector stand-in: {} (503, 503, 429 Retry-After: 1, then 200)", collector.url_for("/ingest"));

    let delivery = Delivery::builder("collector", NdjsonSink::new(collector.url_for("/ingest")))
        .batch_wait(Duration::from_millis(200))
        .spawn()
        .expect("a worker thread");
    // The same callsite alerts at most twice a minute; the rest are counted and reported.
    let handler = Arc::new(RateLimit::new(delivery, 2, Duration::from_secs(60)));
    let guard = Guard::new(handler.clone());

    let everything = TestLayer::new();
    watchbell::log::LogBridge::new().init().expect("the only logger");
    // set_global_default rather than `.init()`, which would try to install tracing-log's
    // LogTracer where watchbell's bridge already is.
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(CaptureLayer::new(handler).with_level(Level::WARN))
            .with(everything.clone()),
    )
    .expect("the only subscriber");

    // Panics become ERROR records with their location.
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        error!(panic.location = location, "panic: {msg}");
    }));

    let mut failed = 0;
    for id in 1..=30 {
        match std::panic::catch_unwind(|| handle_request(id)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failed += 1;
                error!(request = id, error = %e, "request failed");
            }
            Err(_) => failed += 1,
        }
    }
    let _ = std::panic::take_hook();
    println!("service: handled 30 requests, {failed} failed, {} events logged in all\n", everything.len());

    let flushed = guard.shutdown(Duration::from_secs(15));

    let requests = collector.requests();
    println!("== what the collector received ({} requests) ==", requests.len());
    let cx = FormatContext::new("checkout-service");
    for (i, req) in requests.iter().enumerate() {
        let records: Vec<Record> = req.body_text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let answer = match i {
            0 | 1 => "answered 503, retried",
            2 => "answered 429 Retry-After: 1, retried after it",
            _ => "answered 200",
        };
        println!("request {} ({} records, {answer})", i + 1, records.len());
        if i >= 3 {
            for r in &records {
                println!("  {}", DefaultFormat.format_to_string(r, &cx));
            }
        }
    }
    println!();
    println!("== delivery stats ==");
    for s in guard.stats() {
        println!("  {s}");
    }
    println!(
        "\nshutdown: {} ; demo finished in {:.1?}",
        if flushed.is_complete() { "everything delivered".to_string() } else { format!("{flushed:?}") },
        started.elapsed()
    );
}
