//! Rules of the collectors' protocols that real servers enforce: unique OTLP attribute keys,
//! OTLP's own retry rule, and Loki's time order within a stream.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value as J;
use watchbell_core::record::SpanRecord;
use watchbell_core::{Batch, BatchReason, Handler, Level, Record, Retry, SinkOptions, Value};
use watchbell_http::{Encoding, HttpLayer, LokiLabel};
use watchbell_test::collectors::{FakeLoki, FakeOtlp};
use watchbell_test::http::Reply;

const WAIT: Duration = Duration::from_secs(10);

fn send(handler: &Arc<dyn Handler>, records: Vec<Record>) {
    handler.handle_batch(Batch::new(BatchReason::Single, records));
}

#[test]
fn otlp_attribute_keys_are_unique_even_when_fields_reuse_ours() {
    let fake = FakeOtlp::start();
    let (h, guard) = HttpLayer::builder(fake.url())
        .encoding(Encoding::otlp("svc"))
        .batch_wait(Duration::ZERO)
        .build_handler()
        .unwrap();
    let mut r = Record::new(Level::ERROR, "app::orders", "collides");
    r.line = Some(7);
    r.file = Some("src/orders.rs".into());
    for key in ["target", "fingerprint", "code.line.number", "spans", "thread.name", "user"] {
        r.fields.set(key, Value::Str(format!("event's {key}")));
    }
    let mut span_fields = watchbell_core::record::Fields::default();
    span_fields.set("user", Value::Str("span's user".into()));
    span_fields.set("target", Value::Str("span's target".into()));
    span_fields.set("request_id", Value::Str("r-1".into()));
    r.spans.push(Arc::new(SpanRecord { name: "request".into(), target: "app".into(), fields: span_fields }));
    send(&h, vec![r]);
    assert!(guard.flush(WAIT).is_complete());
    let got = fake.records();
    let attrs = got[0]["attributes"].as_array().unwrap();
    let keys: Vec<&str> = attrs.iter().map(|a| a["key"].as_str().unwrap()).collect();
    let mut unique = keys.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "duplicate keys in {keys:?}");
    let value =
        |k: &str| attrs.iter().find(|a| a["key"] == k).map(|a| a["value"]["stringValue"].clone()).unwrap_or(J::Null);
    assert_eq!(value("target"), "app::orders", "ours win");
    assert_eq!(value("field.target"), "event's target", "the event's is kept, renamed");
    assert_eq!(value("field.code.line.number"), "event's code.line.number");
    assert_eq!(value("user"), "event's user", "the event's own field wins over the span's");
    assert_eq!(value("request_id"), "r-1");
}

#[test]
fn otlp_retries_only_what_its_spec_allows() {
    let fake = FakeOtlp::start();
    let retry = Retry { initial: Duration::from_millis(20), max: Duration::from_millis(50), ..Retry::default() };
    let (h, guard) = HttpLayer::builder(fake.url())
        .encoding(Encoding::otlp("svc"))
        .retry(retry)
        .batch_wait(Duration::ZERO)
        .build_handler()
        .unwrap();
    // 503 and 429 are retried; a 500 is not (it would be under the general rule).
    fake.http().push(Reply::status(503));
    fake.http().push(Reply::status(429));
    send(&h, vec![Record::new(Level::ERROR, "app", "retried")]);
    assert!(guard.flush(WAIT).is_complete());
    fake.http().push(Reply::status(500));
    send(&h, vec![Record::new(Level::ERROR, "app", "refused")]);
    assert!(guard.flush(WAIT).is_complete());
    let bodies: Vec<String> =
        fake.records().iter().map(|r| r["body"]["stringValue"].as_str().unwrap().to_owned()).collect();
    assert_eq!(bodies, ["retried"]);
    let s = &guard.stats()[0];
    assert_eq!((s.delivered, s.retried, s.failed), (1, 2, 1), "{s}");
    assert!(s.last_error.as_deref().unwrap().contains("OTLP retries only 429, 502, 503 and 504"), "{s}");
    assert_eq!(fake.http().request_count(), 4, "the 500 was sent once");
}

#[test]
fn loki_entries_of_a_stream_are_sent_in_time_order() {
    let fake = FakeLoki::start();
    let (h, guard) = HttpLayer::builder(fake.url())
        .encoding(Encoding::Loki { labels: vec![LokiLabel::Level] })
        .no_gzip()
        .batch_wait(Duration::ZERO)
        .build_handler()
        .unwrap();
    let t0 = SystemTime::now();
    // Arrival order is not time order (two threads; a suppressed-count summary stamped with
    // an earlier time).
    let at = |secs: u64, msg: &str| {
        let mut r = Record::new(Level::ERROR, "app", msg);
        r.time = t0 + Duration::from_secs(secs);
        r
    };
    send(&h, vec![at(3, "c"), at(1, "a"), at(3, "c2"), at(2, "b"), at(0, "first")]);
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(fake.errors(), Vec::<String>::new());
    let body: J = serde_json::from_slice(&fake.http().requests()[0].body).unwrap();
    let values = body["streams"][0]["values"].as_array().unwrap();
    let ts: Vec<u128> = values.iter().map(|v| v[0].as_str().unwrap().parse().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    let lines: Vec<String> = values
        .iter()
        .map(|v| serde_json::from_str::<J>(v[1].as_str().unwrap()).unwrap()["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(lines, ["first", "a", "b", "c", "c2"], "equal times keep their order");
}
