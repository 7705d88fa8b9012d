//! A tokio service whose runtime is shut down before watchbell flushes — and everything is
//! still delivered.
//!
//! ```sh
//! cargo run --example tokio_service
//! ```
//!
//! Tasks on a multi-thread tokio runtime handle jobs in `job` spans; WARN and ERROR go to Slack
//! (a loopback fake from `watchbell-test`, which answers one 503 first), INFO and up to an
//! NDJSON log collector (also a loopback fake). The last burst is logged right before
//! `Runtime::shutdown_timeout`, and the guard flushes only after the runtime is gone: watchbell's
//! delivery runs on its own thread and its own runtime (rule 2 of the design), so the app's
//! runtime shutting down loses nothing. The example prints what both fakes received.

use std::time::Duration;

use tracing::{error, info, info_span, warn, Instrument};
use tracing_subscriber::prelude::*;
use watchbell::http_batch::HttpLayer;
use watchbell::prelude::*;
use watchbell::slack::{SlackLayer, Webhook};
use watchbell_test::collectors::FakeNdjson;
use watchbell_test::slack::FakeSlack;

async fn job(id: u32) {
    info!("job started");
    tokio::time::sleep(Duration::from_millis(5 * u64::from(id % 4))).await;
    if id % 5 == 4 {
        warn!(queue_depth = 120 + id, "backlog growing");
    }
    if id == 7 {
        error!(reason = "upstream returned 500", "job failed");
        return;
    }
    info!(items = id * 3, "job done");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let slack = FakeSlack::start();
    slack.push_error(503, "service_unavailable"); // the first post fails: retried
    let collector = FakeNdjson::start();

    let (slack_layer, slack_guard) = SlackLayer::builder()
        .app("jobs")
        .webhook(Webhook::new(slack.webhook_url("alerts")).name("alerts").levels([Level::ERROR, Level::WARN]))
        .pace(Duration::from_millis(200)) // the default is Slack's 1 message/s; short for the example
        .build()?;
    let (http_layer, http_guard) = HttpLayer::builder(collector.url_for("/ingest"))
        .app("jobs")
        .level(Level::INFO)
        .batch_wait(Duration::from_millis(200))
        .build()?;
    let guard = slack_guard.join(http_guard);
    tracing_subscriber::registry().with(slack_layer).with(http_layer).init();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let tasks: Vec<_> =
            (1..=10).map(|id| tokio::spawn(job(id).instrument(info_span!("job", id, queue = "default")))).collect();
        for t in tasks {
            let _ = t.await;
        }
        // A last burst, logged from a task just before the runtime goes away.
        tokio::spawn(async { error!(signal = "SIGTERM", "shutting down with jobs pending") }).await.ok();
    });
    runtime.shutdown_timeout(Duration::from_millis(100));
    let pending: u64 =
        guard.stats().iter().map(|s| s.accepted.saturating_sub(s.delivered + s.dropped + s.failed)).sum();
    println!("the tokio runtime is shut down with {pending} record(s) not yet delivered; now flushing watchbell\n");

    let flushed = guard.shutdown(Duration::from_secs(30));

    let msgs = slack.messages_for("alerts");
    println!("== Slack webhook \"alerts\": {} message(s), answers {:?}", msgs.len(), statuses(&slack));
    for m in &msgs {
        println!("   {}", m["text"].as_str().unwrap_or_default());
    }
    let records = collector.records();
    let count = |level: &str| records.iter().filter(|r| r["level"] == level).count();
    println!(
        "\n== collector: {} record(s): {} INFO, {} WARN, {} ERROR; those above INFO:",
        records.len(),
        count("INFO"),
        count("WARN"),
        count("ERROR")
    );
    for r in records.iter().filter(|r| r["level"] != "INFO") {
        println!("   {:5} {} {}", r["level"].as_str().unwrap_or(""), r["message"].as_str().unwrap_or(""), r["fields"]);
    }
    println!(
        "\n== delivery after the runtime's shutdown: {}",
        if flushed.is_complete() { "complete" } else { "incomplete" }
    );
    for s in guard.stats() {
        println!("   {s}");
    }
    Ok(())
}

fn statuses(slack: &FakeSlack) -> Vec<u16> {
    slack.received().iter().map(|r| r.status).collect()
}
