//! Delivery behaviour against a loopback fake of Slack: pace, 429, outages, permanent errors,
//! bursts and partial deliveries.

use std::collections::HashSet;
use std::time::{Duration, Instant};
use watchbell_slack::SinkOptions;

use serde_json::Value as Json;
use tracing_subscriber::prelude::*;
use watchbell_core::{Batch, BatchReason, Level, Record, Retry, Stats};
use watchbell_slack::{SlackLayer, Webhook};
use watchbell_test::slack::FakeSlack;

/// Generous upper bounds that only catch hangs.
const WAIT: Duration = Duration::from_secs(25);

fn stats(guard: &watchbell_core::Guard) -> Stats {
    guard
        .stats()
        .into_iter()
        .find(|s| s.name.starts_with("slack-") && s.name != "slack-cap")
        .expect("the webhook's stats")
}

/// The first section text of every record attachment in `msgs`.
fn record_lines(msgs: &[Json]) -> Vec<String> {
    msgs.iter()
        .flat_map(|m| m["attachments"].as_array().cloned().unwrap_or_default())
        .map(|a| a["blocks"][0]["text"]["text"].as_str().unwrap().to_owned())
        .collect()
}

fn message_of(r: &Record) -> String {
    r.message.to_string()
}

#[test]
fn rate_limited_429_waits_for_retry_after() {
    let slack = FakeSlack::start();
    slack.push_rate_limit(2);
    let (h, guard) = SlackLayer::builder().webhook(Webhook::new(slack.url())).build_handler().unwrap();
    h.handle(Record::new(Level::ERROR, "app", "queue stuck"));
    assert!(guard.flush(WAIT).is_complete());
    let got = slack.received();
    assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 200]);
    let waited = got[1].at - got[0].at;
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}, asked for 2 s");
    assert!(record_lines(&slack.messages())[0].contains("queue stuck"));
    let s = stats(&guard);
    assert_eq!((s.delivered, s.retried, s.failed), (1, 1, 0), "{s}");
}

#[test]
fn ten_second_outage_then_everything_delivered() {
    let slack = FakeSlack::start();
    let outage_start = Instant::now();
    slack.outage(Duration::from_secs(10));
    let (h, guard) = SlackLayer::builder()
        .webhook(Webhook::new(slack.url()))
        .no_rate_limit()
        .retry(Retry { initial: Duration::from_millis(500), max: Duration::from_secs(2), ..Retry::default() })
        .build_handler()
        .unwrap();
    let sent: Vec<String> = (0..3).map(|i| format!("early failure {i}")).collect();
    for m in &sent {
        h.handle(Record::new(Level::ERROR, "app", m.as_str()));
    }
    std::thread::sleep(Duration::from_secs(3));
    let later: Vec<String> = (0..2).map(|i| format!("later failure {i}")).collect();
    for m in &later {
        h.handle(Record::new(Level::WARN, "app", m.as_str()));
    }
    assert!(guard.flush(WAIT).is_complete());
    let got = slack.received();
    assert!(got.iter().filter(|r| r.status == 503).count() >= 3, "retried during the outage");
    let first_ok = got.iter().find(|r| r.status == 200).expect("a delivery after the outage");
    assert!(first_ok.at - outage_start >= Duration::from_secs(10));
    let lines = record_lines(&slack.messages());
    for m in sent.iter().chain(&later) {
        assert_eq!(lines.iter().filter(|l| l.ends_with(m.as_str())).count(), 1, "{m} exactly once in {lines:?}");
    }
    let s = stats(&guard);
    assert_eq!((s.delivered, s.failed, s.dropped), (5, 0, 0), "{s}");
    for pair in got.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_secs(1), "paced even while retrying");
    }
}

#[test]
fn channel_not_found_is_permanent_and_counted() {
    let slack = FakeSlack::start();
    slack.push_error(404, "channel_not_found");
    let (h, guard) = SlackLayer::builder().webhook(Webhook::new(slack.url())).no_rate_limit().build_handler().unwrap();
    h.handle(Record::new(Level::ERROR, "app", "lost one"));
    assert!(guard.flush(WAIT).is_complete());
    h.handle(Record::new(Level::ERROR, "app", "next one"));
    assert!(guard.flush(WAIT).is_complete());
    let got = slack.received();
    let attempts_of_lost = got.iter().filter(|r| r.body.to_string().contains("lost one")).count();
    assert_eq!(attempts_of_lost, 1, "not retried");
    assert_eq!(got[0].status, 404);
    let lines = record_lines(&slack.messages());
    assert!(lines[0].ends_with("next one"), "{lines:?}");
    let s = stats(&guard);
    assert_eq!((s.failed, s.retried, s.delivered), (1, 0, 1), "{s}");
    assert!(s.last_error.as_deref().unwrap_or("").contains("channel_not_found"), "{s}");
}

#[test]
fn burst_of_1000_errors_is_paced_and_coalesced() {
    let slack = FakeSlack::start();
    let (layer, guard) = SlackLayer::builder().webhook(Webhook::new(slack.url())).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..1000u32 {
            match i % 4 {
                0 => tracing::error!(i, "disk A failing"),
                1 => tracing::error!(i, "disk B failing"),
                2 => tracing::error!(i, "disk C failing"),
                _ => tracing::error!(i, "disk D failing"),
            }
        }
    });
    assert!(guard.flush(WAIT).is_complete());
    let got = slack.received();
    assert!(got.iter().all(|r| r.status == 200));
    // Coalesced: a handful of messages (one, when the worker starts after the whole burst and
    // the flush's counts are queued with it), never one per event.
    assert!(!got.is_empty() && got.len() <= 6, "{} messages for 1,000 events", got.len());
    for pair in got.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_secs(1), "two requests {gap:?} apart");
    }
    // Every event is accounted for: shown, or counted as suppressed next to a shown one.
    let msgs = slack.messages();
    let mut shown = 0u64;
    let mut suppressed = 0u64;
    let mut disks = HashSet::new();
    for m in &msgs {
        for a in m["attachments"].as_array().unwrap() {
            shown += 1;
            let head = a["blocks"][0]["text"]["text"].as_str().unwrap();
            disks.insert(head.split("disk ").nth(1).unwrap_or("").chars().next());
            let context = a["blocks"].as_array().unwrap().last().unwrap()["elements"][0]["text"].as_str().unwrap();
            if let Some(n) = context.split(":mute: ").nth(1) {
                suppressed += n.split(' ').next().unwrap().parse::<u64>().unwrap();
                if n.ends_with("the last one shown") {
                    shown -= 1; // a flush summary: the record shown is one of those counted
                }
            }
        }
    }
    assert_eq!(disks.len(), 4);
    assert_eq!(shown + suppressed, 1000, "shown {shown} + suppressed {suppressed}");
    assert!(suppressed >= 990);
}

#[test]
fn later_message_failing_is_partial_and_retried_without_duplicates() {
    let slack = FakeSlack::start();
    slack.push_reply(200, watchbell_test::http::Reply::ok());
    slack.push_error(500, "rollup_error");
    let (h, guard) = SlackLayer::builder()
        .webhook(Webhook::new(slack.url()))
        .no_rate_limit()
        .pace(Duration::from_millis(100))
        .build_handler()
        .unwrap();
    let records: Vec<Record> = (0..60).map(|i| Record::new(Level::ERROR, "app", format!("item {i:02}"))).collect();
    let expected: Vec<String> = records.iter().map(message_of).collect();
    h.handle_batch(Batch::new(BatchReason::Group, records));
    assert!(guard.flush(WAIT).is_complete());
    let statuses: Vec<u16> = slack.received().iter().map(|r| r.status).collect();
    assert_eq!(&statuses[..2], [200, 500]);
    let lines = record_lines(&slack.messages());
    assert_eq!(lines.len(), 60, "{lines:?}");
    for (line, m) in lines.iter().zip(&expected) {
        assert!(line.ends_with(m.as_str()), "{line} vs {m}");
    }
    let s = stats(&guard);
    assert_eq!((s.delivered, s.retried, s.failed), (60, 1, 0), "{s}");
}

#[test]
fn several_webhooks_deliver_independently_without_errors() {
    let slack = FakeSlack::start();
    let (h, guard) = SlackLayer::builder()
        .webhook(Webhook::new(slack.webhook_url("a")).name("a"))
        .webhook(Webhook::new(slack.webhook_url("b")).name("b"))
        .no_rate_limit()
        .pace(Duration::from_millis(20))
        .build_handler()
        .unwrap();
    for round in 0..4 {
        h.handle(Record::new(Level::ERROR, "app", format!("round {round}")));
        assert!(guard.flush(WAIT).is_complete());
    }
    for name in ["a", "b"] {
        assert_eq!(record_lines(&slack.messages_for(name)).len(), 4, "{name}");
    }
    for s in guard.stats().into_iter().filter(|s| s.name.starts_with("slack-")) {
        assert_eq!((s.delivered, s.retried, s.failed), (4, 0, 0), "{s}");
    }
}

/// Each webhook has its own HTTP client: a pooled connection opened on one webhook's worker must
/// not be used by another (it dies with the first worker's runtime at shutdown).
#[test]
fn webhook_outliving_another_at_shutdown_delivers_without_errors() {
    let slack = FakeSlack::start();
    let (h, guard) = SlackLayer::builder()
        .webhook(Webhook::new(slack.webhook_url("a")).name("a").levels([Level::ERROR]))
        .webhook(Webhook::new(slack.webhook_url("b")).name("b").levels([Level::ERROR, Level::WARN]))
        .no_rate_limit()
        .pace(Duration::from_millis(300))
        .build_handler()
        .unwrap();
    h.handle(Record::new(Level::ERROR, "app", "both 1"));
    assert!(guard.flush(WAIT).is_complete());
    h.handle(Record::new(Level::ERROR, "app", "both 2"));
    std::thread::sleep(Duration::from_millis(100));
    h.handle(Record::new(Level::WARN, "app", "only b 1"));
    std::thread::sleep(Duration::from_millis(400));
    h.handle(Record::new(Level::WARN, "app", "only b 2"));
    assert!(guard.shutdown(WAIT).is_complete());
    assert_eq!(record_lines(&slack.messages_for("a")).len(), 2);
    assert_eq!(record_lines(&slack.messages_for("b")).len(), 4);
    for s in guard.stats().into_iter().filter(|s| s.name.starts_with("slack-")) {
        assert_eq!((s.retried, s.failed), (0, 0), "{s}");
    }
}

#[test]
fn hourly_cap_bounds_an_incident_across_callsites() {
    let slack = FakeSlack::start();
    let (h, guard) = SlackLayer::builder()
        .webhook(Webhook::new(slack.url()))
        .no_rate_limit()
        .hourly_cap(3)
        .pace(Duration::from_millis(50))
        .build_handler()
        .unwrap();
    for i in 0..20 {
        h.handle(Record::new(Level::ERROR, "app", format!("service {i} down")));
    }
    assert!(guard.flush(WAIT).is_complete());
    let lines = record_lines(&slack.messages());
    assert_eq!(lines.len(), 4, "three alerts and one notice: {lines:#?}");
    for (i, line) in lines[..3].iter().enumerate() {
        assert!(line.contains(&format!("service {i} down")), "{line}");
    }
    assert!(lines[3].contains("slack cap reached (3 alerts per 60 min)"), "{}", lines[3]);
    assert!(lines[3].contains("First withheld: ERROR app: service 3 down"), "{}", lines[3]);
    let cap = guard.stats().into_iter().find(|s| s.name == "slack-cap").expect("the cap's stats");
    assert_eq!((cap.suppressed, cap.notices), (17, 1), "{cap}");
    assert_eq!(stats(&guard).delivered, 4);
}

#[test]
fn after_a_capped_window_the_next_alert_carries_the_withheld_count() {
    let slack = FakeSlack::start();
    let (h, guard) = SlackLayer::builder()
        .webhook(Webhook::new(slack.url()))
        .no_rate_limit()
        .cap(1, Duration::from_millis(600))
        .pace(Duration::ZERO)
        .build_handler()
        .unwrap();
    for i in 0..4 {
        h.handle(Record::new(Level::ERROR, "app", format!("early {i}")));
    }
    std::thread::sleep(Duration::from_millis(700));
    h.handle(Record::new(Level::ERROR, "app", "later"));
    assert!(guard.flush(WAIT).is_complete());
    let msgs = slack.messages();
    let later = msgs.iter().find(|m| m.to_string().contains("later")).expect("the later alert went out");
    let text = later.to_string();
    assert!(text.contains("alerts_withheld") && text.contains('3'), "{text}");
    assert_eq!(record_lines(&msgs).len(), 3, "early 0, the notice, later");
}
