//! Slack alerts from a small simulated service.
//!
//! `cargo run --example slack` posts to a loopback fake of Slack (no credentials, no network):
//! two webhooks, `oncall` for errors and `team` for warnings and errors, with the fake answering
//! one 429 (Retry-After: 1) and one 503 on the way. It prints what each webhook received and the
//! delivery stats.
//!
//! With `WATCHBELL_SLACK_WEBHOOK=https://hooks.slack.com/services/…` set, the same alerts go to
//! that real webhook instead (errors and warnings).

use std::time::{Duration, Instant};

use tracing::{error, info, info_span, warn};
use tracing_subscriber::prelude::*;
use watchbell::prelude::*;
use watchbell::slack::{SlackLayer, Webhook};
use watchbell_test::slack::FakeSlack;

#[derive(Debug)]
struct Timeout;

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("upstream timed out after 3 s")
    }
}

impl std::error::Error for Timeout {}

fn service() {
    for id in 1..=6u64 {
        let span = info_span!("request", id, path = "/checkout");
        let _entered = span.enter();
        info!("request started");
        if id == 2 {
            warn!(latency_ms = 870, "payment provider slow");
        }
        if id == 4 {
            let e = Timeout;
            error!(error = &e as &(dyn std::error::Error + 'static), order = "A-1042", "checkout failed");
        }
        if id == 5 {
            // Hostile text is escaped: this pings nobody.
            error!(user = "<@U123>", "<!channel> card declined & retried");
        }
    }
    // A loop that fails over and over: shown once, the rest counted.
    for attempt in 0..50 {
        error!(attempt, "inventory sync failed");
    }
}

fn main() {
    let started = Instant::now();
    let real = std::env::var("WATCHBELL_SLACK_WEBHOOK").ok().filter(|u| !u.trim().is_empty());
    let fake = if real.is_none() { Some(FakeSlack::start()) } else { None };

    let mut builder = SlackLayer::builder().app("shop").environment("demo");
    match (&real, &fake) {
        (Some(url), _) => {
            println!("posting to the real webhook in WATCHBELL_SLACK_WEBHOOK");
            builder = builder.webhook(Webhook::new(url.as_str()).name("real").levels([Level::ERROR, Level::WARN]));
        }
        (None, Some(fake)) => {
            println!("posting to a loopback fake of Slack (set WATCHBELL_SLACK_WEBHOOK for a real one)");
            fake.push_rate_limit(1);
            fake.push_error(503, "service_unavailable");
            builder = builder
                .webhook(Webhook::new(fake.webhook_url("oncall")).name("oncall").levels([Level::ERROR]))
                .webhook(Webhook::new(fake.webhook_url("team")).name("team").min_level(Level::WARN));
        }
        (None, None) => unreachable!(),
    }
    println!("configuration: {builder:?}\n");
    let (layer, guard) = builder.build().expect("a valid Slack configuration");
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, service);

    let flushed = guard.shutdown(Duration::from_secs(30));
    if let Some(fake) = &fake {
        for name in ["oncall", "team"] {
            let msgs = fake.messages_for(name);
            println!("webhook {name}: {} message(s)", msgs.len());
            for m in msgs {
                println!("  text: {}", m["text"]);
                for a in m["attachments"].as_array().into_iter().flatten() {
                    for b in a["blocks"].as_array().into_iter().flatten() {
                        let t = b["text"]["text"].as_str().or(b["elements"][0]["text"].as_str()).unwrap_or("");
                        println!("    | {}", t.replace('\n', "\n    | "));
                    }
                }
            }
        }
        let statuses: Vec<u16> = fake.received().iter().map(|r| r.status).collect();
        println!("\nanswers of the fake, in order: {statuses:?}");
    }
    for s in guard.stats() {
        println!("{s}");
    }
    println!("flushed: {flushed:?}, in {:.1?}", started.elapsed());
}
