//! The messages watchbell-slack sends, checked on a loopback fake of Slack.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use watchbell_slack::SinkOptions;

use serde_json::{json, Value as Json};
use tracing_subscriber::prelude::*;
use watchbell_core::record::{Fields, SpanRecord, Value};
use watchbell_core::{Batch, BatchReason, Level, Record};
use watchbell_slack::{SlackLayer, Webhook, MARKER};
use watchbell_test::slack::FakeSlack;

const WAIT: Duration = Duration::from_secs(10);

fn record(level: Level, message: &str, line: u32) -> Record {
    let mut r = Record::new(level, "billing::pay", message);
    r.time = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    r.file = Some("src/pay.rs".into());
    r.line = Some(line);
    r
}

/// Every text a message holds (fallback, section texts, context elements).
fn texts(msg: &Json) -> Vec<String> {
    let mut out = vec![msg["text"].as_str().unwrap().to_owned()];
    for a in msg["attachments"].as_array().into_iter().flatten() {
        for b in a["blocks"].as_array().unwrap() {
            if let Some(t) = b["text"]["text"].as_str() {
                out.push(t.to_owned());
            }
            for e in b["elements"].as_array().into_iter().flatten() {
                out.push(e["text"].as_str().unwrap().to_owned());
            }
        }
    }
    out
}

#[test]
fn single_record_exact_shape() {
    let slack = FakeSlack::start();
    let (handler, guard) = SlackLayer::builder()
        .app("billing")
        .environment("prod")
        .webhook(Webhook::new(slack.url()).channel("#alerts").username("bell").icon_emoji(":bell:"))
        .no_rate_limit()
        .build_handler()
        .unwrap();
    let mut r = record(Level::ERROR, "payment failed", 42);
    r.fields.set("invoice", Value::I64(1042));
    r.fields.set("error", Value::Display("card declined: issuer said no".into()));
    let mut span_fields = Fields::new();
    span_fields.set("id", Value::U64(7));
    r.spans.push(Arc::new(SpanRecord { name: "request".into(), target: "billing".into(), fields: span_fields }));
    r.suppressed = 3;
    handler.handle(r);
    assert!(guard.flush(WAIT).is_complete());
    let msgs = slack.messages();
    assert_eq!(msgs.len(), 1);
    let req = &slack.http().requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        msgs[0],
        json!({
            "text": "*ERROR* in billing (prod): payment failed",
            "channel": "#alerts",
            "username": "bell",
            "icon_emoji": ":bell:",
            "attachments": [{
                "color": "#E01E5A",
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": ":red_circle: *ERROR* in billing (prod): payment failed"}},
                    {"type": "section", "text": {"type": "mrkdwn", "text": "```\ninvoice     1042\nrequest.id  7\n```"}},
                    {"type": "section", "text": {"type": "mrkdwn", "text": "```\nerror: card declined: issuer said no\n```"}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text":
                        "`billing::pay` · `src/pay.rs:42` · <!date^1700000000^{date_short_pretty} {time_secs}|2023-11-14T22:13:20.000000Z> · :mute: 3 similar suppressed"}]}
                ]
            }]
        })
    );
}

#[test]
fn coalesced_exact_shape() {
    let slack = FakeSlack::start();
    let (handler, guard) = SlackLayer::builder()
        .app("billing")
        .webhook(Webhook::new(slack.url()))
        .no_rate_limit()
        .build_handler()
        .unwrap();
    let records = vec![
        record(Level::WARN, "slow provider", 10),
        record(Level::ERROR, "payment failed", 11),
        record(Level::WARN, "retrying", 12),
    ];
    handler.handle_batch(Batch::new(BatchReason::Group, records));
    assert!(guard.flush(WAIT).is_complete());
    let msgs = slack.messages();
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    let att = |color: &str, emoji: &str, level: &str, msg: &str, line: u32| {
        json!({"color": color, "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("{emoji} *{level}* in billing: {msg}")}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
                "`billing::pay` · `src/pay.rs:{line}` · <!date^1700000000^{{date_short_pretty}} {{time_secs}}|2023-11-14T22:13:20.000000Z>")}]}
        ]})
    };
    assert_eq!(
        msgs[0],
        json!({
            "text": "[3 records] *ERROR* in billing: payment failed",
            "attachments": [
                att("#ECB22E", ":warning:", "WARN", "slow provider", 10),
                att("#E01E5A", ":red_circle:", "ERROR", "payment failed", 11),
                att("#ECB22E", ":warning:", "WARN", "retrying", 12),
            ]
        })
    );
}

#[test]
fn many_records_split_within_block_limit() {
    let slack = FakeSlack::start();
    let (handler, guard) = SlackLayer::builder()
        .webhook(Webhook::new(slack.url()))
        .no_rate_limit()
        .pace(Duration::from_millis(50))
        .build_handler()
        .unwrap();
    let records: Vec<Record> = (0..60).map(|i| record(Level::ERROR, &format!("failure {i}"), i)).collect();
    handler.handle_batch(Batch::new(BatchReason::Group, records));
    assert!(guard.flush(WAIT).is_complete());
    let msgs = slack.messages();
    assert!(msgs.len() >= 3, "60 records of 2 blocks need ≥ 3 messages of ≤ 50 blocks: {}", msgs.len());
    let mut n = 0;
    for m in &msgs {
        let atts = m["attachments"].as_array().unwrap();
        let blocks: usize = atts.iter().map(|a| a["blocks"].as_array().unwrap().len()).sum();
        assert!(blocks <= 50, "{blocks}");
        n += atts.len();
    }
    assert_eq!(n, 60);
    assert!(slack.received().iter().all(|r| r.status == 200));
}

#[test]
fn routing_by_level() {
    let slack = FakeSlack::start();
    let (layer, guard) = SlackLayer::builder()
        .webhook(Webhook::new(slack.webhook_url("oncall")).name("oncall").levels([Level::ERROR]))
        .webhook(Webhook::new(slack.webhook_url("team")).name("team").levels([Level::WARN, Level::INFO]))
        .no_rate_limit()
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        tracing::error!("db down");
        tracing::warn!("disk 90%");
        tracing::info!("deployed");
        tracing::debug!("cache miss");
    });
    assert!(guard.flush(WAIT).is_complete());
    let all = |name: &str| slack.messages_for(name).iter().flat_map(texts).collect::<Vec<_>>().join("\n");
    let oncall = all("oncall");
    let team = all("team");
    assert!(oncall.contains("db down") && !oncall.contains("disk 90%") && !oncall.contains("deployed"), "{oncall}");
    assert!(team.contains("disk 90%") && team.contains("deployed") && !team.contains("db down"), "{team}");
    assert!(!oncall.contains("cache miss") && !team.contains("cache miss"));
    let stats = guard.stats();
    let names: Vec<&str> = stats.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"slack-oncall") && names.contains(&"slack-team"), "{names:?}");
}

#[test]
fn hostile_text_is_escaped() {
    let slack = FakeSlack::start();
    let (layer, guard) =
        SlackLayer::builder().app("a<b>&c").webhook(Webhook::new(slack.url())).no_rate_limit().build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let span = tracing::info_span!("req", who = "<@U123>");
        let _e = span.enter();
        tracing::error!(note = "<!here> & co", error = "<script>alert(1)</script>", "<!channel> & <script>");
    });
    assert!(guard.flush(WAIT).is_complete());
    let msgs = slack.messages();
    assert_eq!(msgs.len(), 1);
    let all = texts(&msgs[0]);
    let joined = all.join("\n");
    for raw in ["<!channel>", "<script>", "<!here>", "<@U123>", "a<b>"] {
        assert!(!joined.contains(raw), "{raw} unescaped in {joined}");
    }
    assert!(all[0].contains("&lt;!channel&gt; &amp; &lt;script&gt;"), "{}", all[0]);
    assert!(joined.contains("&lt;!here&gt; &amp; co") && joined.contains("&lt;@U123&gt;"), "{joined}");
    assert!(joined.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{joined}");
    assert!(joined.contains("a&lt;b&gt;&amp;c"), "{joined}");
    // No `&` that does not start one of the three entities (nothing double-escaped or bare).
    for t in &all {
        for (i, _) in t.match_indices('&') {
            let rest = &t[i..];
            assert!(rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;"), "{t}");
        }
    }
}

fn check_limits(msg: &Json) {
    let text = msg["text"].as_str().unwrap();
    assert!(text.chars().count() <= 40_000);
    let mut truncated = text.ends_with(MARKER);
    for a in msg["attachments"].as_array().unwrap() {
        for b in a["blocks"].as_array().unwrap() {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(t.encode_utf16().count() <= 3000, "section of {} units", t.encode_utf16().count());
                truncated |= t.contains(MARKER);
            }
        }
    }
    assert!(truncated, "a visible marker");
}

#[test]
fn huge_and_multibyte_messages_are_truncated_validly() {
    let slack = FakeSlack::start();
    let (layer, guard) =
        SlackLayer::builder().webhook(Webhook::new(slack.url())).no_rate_limit().pace(Duration::ZERO).build().unwrap();
    let mega = "x<".repeat(512 * 1024); // 1 MiB, half of it needing escapes
    let cjk = "日本語👍🏽é".repeat(20_000);
    let trace = "frame 👍 at src/lib.rs:1\n".repeat(5_000);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::error!(big = %mega, "{mega}");
        tracing::error!(backtrace = %trace, "{cjk}");
    });
    assert!(guard.flush(WAIT).is_complete());
    let msgs = slack.messages();
    let statuses: Vec<u16> = slack.received().iter().map(|r| r.status).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let n: usize = msgs.iter().map(|m| m["attachments"].as_array().unwrap().len()).sum();
    assert_eq!(n, 2);
    for req in slack.http().requests() {
        let body = String::from_utf8(req.body.clone()).expect("valid UTF-8");
        assert!(body.len() < 200_000, "{}", body.len());
    }
    for m in &msgs {
        check_limits(m);
    }
    let all: String = msgs.iter().flat_map(texts).collect();
    assert!(all.contains("日本語👍🏽é") && all.contains("frame 👍"));
    assert!(all.contains("x&lt;x&lt;"));
}

#[test]
fn secrets_are_redacted_in_debug() {
    let secret = "T0SECRET/B0SECRET/xyzzySECRET";
    let url = format!("https://hooks.slack.com/services/{secret}");
    let builder = SlackLayer::builder().webhook(Webhook::new(&url));
    let dbg = format!("{builder:?}");
    assert!(!dbg.contains("SECRET") && dbg.contains("hooks.slack.com"), "{dbg}");
    let (layer, guard) = builder.clone().build::<tracing_subscriber::Registry>().unwrap();
    let dbg = format!("{layer:?} {guard:?}");
    assert!(!dbg.contains("SECRET"), "{dbg}");
    let e =
        SlackLayer::builder().webhook(Webhook::new(format!("ftp://hooks.slack.com/services/{secret}"))).build_handler();
    let e = e.err().unwrap();
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("SECRET") && shown.contains("webhooks[0].url"), "{shown}");
    // A failing delivery's error (in stats) does not show it either.
    let slack = FakeSlack::start();
    let url = slack.webhook_url("hidden");
    slack.push_error(404, "channel_not_found");
    let (h, guard) = SlackLayer::builder().webhook(Webhook::new(&url)).build_handler().unwrap();
    h.handle(Record::new(Level::ERROR, "x", "boom"));
    assert!(guard.flush(WAIT).is_complete());
    let stats = format!("{:?}", guard.stats());
    let token = url.rsplit('/').next().unwrap();
    assert!(stats.contains("channel_not_found") && !stats.contains(token), "{stats}");
}

#[test]
fn panicking_renderer_is_caught() {
    let slack = FakeSlack::start();
    let (handler, guard) = SlackLayer::builder()
        .webhook(Webhook::new(slack.url()))
        .no_rate_limit()
        .pace(Duration::from_millis(10))
        .renderer(|records, ctx| {
            if records.iter().any(|r| r.message == "boom") {
                panic!("renderer bug");
            }
            json!({"text": format!("{} in {}: {}", records.len(), ctx.app, records[0].message)})
        })
        .build_handler()
        .unwrap();
    handler.handle(Record::new(Level::ERROR, "t", "boom"));
    assert!(guard.flush(WAIT).is_complete());
    handler.handle(Record::new(Level::ERROR, "t", "fine"));
    assert!(guard.flush(WAIT).is_complete());
    let msgs = slack.messages();
    assert_eq!(msgs[0], json!({"text": "1 in app: fine"}));
    // What follows is only watchbell's notice that one record could not be delivered.
    assert!(msgs[1..].iter().all(|m| m["text"].as_str().unwrap().contains("could not be delivered")), "{msgs:?}");
    let s = guard.stats().into_iter().find(|s| s.name == "slack-webhook-0").unwrap();
    assert_eq!((s.panicked, s.failed, s.delivered), (1, 1, 1), "{s}");
}

/// The ticket link goes in the context line, `&`-escaped for Slack, with nothing of the base
/// URL or app id able to end the `<url|text>` link early; a huge message does not push it out.
/// A failed delivery is not told to the journal, a successful one is (named webhook).
#[test]
fn the_ticket_link_in_the_context_line() {
    let fake = FakeSlack::start();
    let link = watchbell_core::TicketLink::new("https://t.example/x|y>z&w", "shop|<!channel>&").unwrap();
    let journal = watchbell_core::notified::subscribe(100);
    let (handler, guard) = SlackLayer::builder()
        .webhook(Webhook::new(fake.webhook_url("alerts")).name("ops"))
        .ticket_link(link.clone())
        .no_rate_limit()
        .pace(Duration::ZERO)
        .build_handler()
        .unwrap();
    fake.push_error(400, "invalid_payload");
    let r = record(Level::ERROR, &"<!channel> ".repeat(2_000), 7);
    handler.handle(r.clone());
    assert!(guard.flush(WAIT).is_complete());
    handler.handle(r.clone());
    assert!(guard.flush(WAIT).is_complete());
    let msgs = fake.messages();
    // The record's message (the other is the notice of the failed delivery: no ticket, no link).
    let last = msgs.iter().find(|m| texts(m).last().unwrap().starts_with("`billing::pay`")).expect("the record");
    assert!(msgs.iter().all(|m| std::ptr::eq(m, last) || !m.to_string().contains("ticket")), "{msgs:?}");
    let context = texts(last).pop().unwrap();
    let url = link.url(&r);
    assert_eq!(url, format!("https://t.example/x%7Cy%3Ez&w/fp/shop%7C%3C%21channel%3E%26/{}", link.fingerprint(&r)));
    assert!(context.ends_with(&format!(" · :ticket: <{}|Open the ticket>", url.replace('&', "&amp;"))), "{context}");
    assert_eq!(context.matches('<').count(), 2, "the date and the ticket link: {context}");
    assert!(texts(last)[1].ends_with(MARKER), "the message was cut");
    let notes: Vec<_> = journal.drain().into_iter().filter(|n| n.app_id == link.app_id()).collect();
    assert_eq!(notes.len(), 1, "only the delivery that succeeded: {notes:?}");
    assert_eq!(notes[0].destination, "slack:ops");
}
