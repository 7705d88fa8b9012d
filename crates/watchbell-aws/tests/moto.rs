//! The three layers against moto's server mode, a real AWS API emulator that verifies every
//! request's SigV4 signature: what was sent is read back through the services' own APIs
//! (`ReceiveMessage`, `GetLogEvents`) and moto's published-messages data.

mod common;

use std::time::{Duration, SystemTime};

use common::{at_moto, create_queue, items, json_call, query_call, rec, receive, stats, unique, WAIT};
use serde_json::{json, Value as Json};
use watchbell_aws::{CloudWatchLogsLayer, Credentials, SnsLayer, SqsLayer};
use watchbell_core::{Level, Value};
use watchbell_test::aws::{moto, moto_sns_published};

#[test]
fn sqs_messages_read_back_with_receive_message_match_the_records() {
    let m = moto();
    let q = create_queue(&m, &unique("logs"));
    let (h, guard) = at_moto(SqsLayer::builder(q.clone()), &m).build_handler().unwrap();
    let mut sent = Vec::new();
    for i in 0..23 {
        let mut r = rec(Level::ERROR, &format!("payment {i} failed: ünïcödé ✓ \u{ffff}"));
        r.fields.set("i", Value::U64(i));
        sent.push(r.clone());
        h.handle(r);
    }
    // Larger than one message: cut with the marker, still one message.
    h.handle(rec(Level::WARN, &"€".repeat(200_000)));
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    let s = stats(&guard);
    assert_eq!((s.delivered, s.failed), (24, 0), "{s:?}");
    let bodies = receive(&m, &q, 24);
    assert_eq!(bodies.len(), 24);
    let mut got: Vec<Json> = bodies.iter().map(|b| serde_json::from_str(b).unwrap()).collect();
    let big = got.iter().position(|j| j["level"] == "WARN").expect("the large record");
    let big = got.remove(big);
    let text = big["message"].as_str().unwrap();
    assert!(bodies.iter().all(|b| b.len() <= 262_144));
    assert!(text.starts_with("€€€") && text.ends_with(watchbell_core::text::MARKER), "{}", text.len());
    got.sort_by_key(|j| j["fields"]["i"].as_u64());
    for (j, r) in got.iter().zip(&sent) {
        assert_eq!(j["message"], &*r.message);
        assert_eq!(j["level"], "ERROR");
        assert_eq!(j["target"], "shop::pay");
        assert_eq!(j["fields"]["invoice"], 42);
        assert_eq!(j["app"], "shop");
    }
}

#[test]
fn sqs_fifo_keeps_the_order_and_identical_records_are_not_deduplicated() {
    let m = moto();
    let q = create_queue(&m, &format!("{}.fifo", unique("f")));
    let (h, guard) = at_moto(SqsLayer::builder(q.clone()), &m).build_handler().unwrap();
    let same = rec(Level::ERROR, "same record twice");
    h.handle(same.clone());
    h.handle(same);
    for i in 0..15 {
        h.handle(rec(Level::INFO, &format!("step {i}")));
    }
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    let bodies = receive(&m, &q, 17);
    let messages: Vec<String> = bodies
        .iter()
        .map(|b| serde_json::from_str::<Json>(b).unwrap()["message"].as_str().unwrap().to_owned())
        .collect();
    let mut want = vec!["same record twice".to_owned(), "same record twice".to_owned()];
    want.extend((0..15).map(|i| format!("step {i}")));
    assert_eq!(messages, want);
}

#[test]
fn cloudwatch_logs_creates_the_stream_and_events_read_back_in_time_order() {
    let m = moto();
    let (group, stream) = (unique("/watchbell/test"), "web-1".to_owned());
    let (h, guard) = at_moto(CloudWatchLogsLayer::builder(group.clone(), stream.clone()), &m).build_handler().unwrap();
    let now = SystemTime::now();
    // Handed over out of time order, one too old for the service (counted, not sent).
    let offsets = [30u64, 10, 50, 20, 40];
    for (i, secs) in offsets.iter().enumerate() {
        let mut r = rec(Level::INFO, &format!("event {secs}"));
        r.time = now - Duration::from_secs(100 - secs);
        r.fields.set("i", Value::U64(i as u64));
        h.handle(r);
    }
    let mut old = rec(Level::INFO, "from 15 days ago");
    old.time = now - Duration::from_secs(15 * 24 * 3600);
    h.handle(old);
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    assert_eq!(items(&guard).map(|s| s.failed), Some(1), "{:?}", guard.stats());
    let j = json_call(
        &m,
        "logs",
        "1.1",
        "Logs_20140328.GetLogEvents",
        json!({"logGroupName": group, "logStreamName": stream, "startFromHead": true}),
    );
    let events = j["events"].as_array().cloned().unwrap_or_default();
    let messages: Vec<String> = events
        .iter()
        .map(|e| {
            serde_json::from_str::<Json>(e["message"].as_str().unwrap()).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(messages, ["event 10", "event 20", "event 30", "event 40", "event 50"], "{j}");
    let times: Vec<i64> = events.iter().map(|e| e["timestamp"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[test]
fn sns_publishes_are_visible_in_moto_with_an_ascii_subject_and_the_mail_layout() {
    let m = moto();
    let xml =
        query_call(&m, "sns", &[("Action", "CreateTopic"), ("Version", "2010-03-31"), ("Name", &unique("alerts"))]);
    let arn = xml.split("<TopicArn>").nth(1).and_then(|s| s.split("</TopicArn>").next()).unwrap().to_owned();
    let (h, guard) = at_moto(SnsLayer::builder(arn.clone()), &m).build_handler().unwrap();
    h.handle(rec(Level::ERROR, "paiement échoué\nsecond line"));
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    let published = moto_sns_published(&m.url, &arn);
    assert_eq!(published.len(), 1, "{published:?}");
    let (message, subject) = &published[0];
    assert_eq!(subject.as_deref(), Some("[shop] ERROR shop::pay: paiement ?chou? second line"));
    assert!(message.starts_with("Message type:    ERROR\nLocation:        src/pay.rs:7\n"), "{message}");
    assert!(message.contains("\nMessage:\n\npaiement échoué\nsecond line\n"), "{message}");
    assert!(message.contains("invoice  42"), "{message}");
}

#[test]
fn a_wrong_secret_is_a_permanent_counted_failure_that_never_prints_the_secret() {
    let m = moto();
    let q = create_queue(&m, &unique("wrong"));
    const WRONG: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYWRONGSECRET";
    let b = at_moto(SqsLayer::builder(q.clone()), &m).credentials(Credentials::new(m.access_key_id.clone(), WRONG));
    let debug = format!("{b:?}");
    let (h, guard) = b.build_handler().unwrap();
    h.handle(rec(Level::ERROR, "never arrives"));
    assert!(guard.flush(WAIT).is_complete());
    let s = stats(&guard);
    assert_eq!((s.delivered, s.failed, s.retried), (0, 1, 0), "{s}");
    let reason = s.last_error.clone().unwrap_or_default();
    assert!(reason.contains("SignatureDoesNotMatch"), "{reason}");
    let shown = format!("{debug} {s} {:?}", guard.stats());
    assert!(!shown.contains(WRONG) && !shown.contains("WRONGSECRET"), "{shown}");
    // The right key still works against the same queue: the refusal was the signature.
    assert!(receive(&m, &q, 0).is_empty());
}
