//! The relay's parsers are the exact inverse of watchbell-http's encoders: records encoded by
//! watchbell-http (NDJSON, JSON array, OTLP JSON) come back with every part the shape carries.
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use watchbell_core::{Fields, Fingerprint, Level, Record, SpanRecord, Value};
use watchbell_http::fuzzing::encode;
use watchbell_http::Encoding;

fn sample(i: u32) -> Record {
    let mut r = Record::new(Level::ERROR, "billing::pay", format!("payment {i} failed: \"é\" <&>\nline 2"));
    r.time = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456 + u64::from(i));
    r.module = Some(Cow::Borrowed("billing::pay"));
    r.file = Some(Cow::Borrowed("src/pay.rs"));
    r.line = Some(42 + i);
    r.fields.set("user", Value::Str("bob".into()));
    r.fields.set("amount", Value::I64(-1200));
    r.fields.set("ratio", Value::F64(0.25));
    r.fields.set("retry", Value::Bool(true));
    r.fields.set("big", Value::U64(u64::MAX));
    r.spans = [Arc::new(SpanRecord {
        name: Cow::Borrowed("request"),
        target: Cow::Borrowed("billing::pay"),
        fields: [("id", Value::I64(7))].into_iter().collect::<Fields>(),
    })]
    .into();
    r.thread_name = Some(Arc::from("worker-1"));
    r.pid = 4242 + i;
    r.fingerprint = Fingerprint::compute(r.level, &r.target, r.file.as_deref(), r.line, b"salt");
    r.suppressed = u64::from(i);
    r
}

fn check_common(sent: &Record, got: &Record) {
    assert_eq!(got.level, sent.level);
    assert_eq!(got.target, sent.target);
    assert_eq!(got.module, sent.module);
    assert_eq!(got.file, sent.file);
    assert_eq!(got.line, sent.line);
    assert_eq!(got.message, sent.message);
    assert_eq!(got.thread_name, sent.thread_name);
    assert_eq!(got.pid, sent.pid);
    assert_eq!(got.fingerprint, sent.fingerprint, "the publisher's fingerprint is kept (salt included)");
    assert_eq!(got.suppressed, sent.suppressed);
    assert_eq!(got.time, sent.time);
    assert_eq!(got.field("app").and_then(Value::as_str), Some("shop"));
    assert_eq!(got.field("host").and_then(Value::as_str), Some("web-3"));
}

#[test]
fn ndjson_and_json_array_round_trip_every_part_of_the_record_shape() {
    let sent: Vec<Record> = (0..5).map(sample).collect();
    for enc in [Encoding::Ndjson, Encoding::JsonArray] {
        let body = encode(&enc, &sent, Some("shop"), Some("web-3"));
        let got = watchbell_relay::parse_ndjson(&body).expect("watchbell-http's body parses");
        assert_eq!(got.len(), sent.len());
        for (s, g) in sent.iter().zip(&got) {
            check_common(s, g);
            for (k, v) in s.fields.iter() {
                assert_eq!(g.fields.get(k), Some(v), "field {k} with {enc:?}");
            }
            assert_eq!(g.spans.len(), 1);
            assert_eq!(g.spans[0].name, "request");
            // JSON does not say signed or unsigned: a non-negative integer reads back as U64.
            assert_eq!(g.spans[0].fields.get("id").and_then(Value::as_i64), Some(7));
        }
    }
}

#[test]
fn otlp_round_trips_what_the_otlp_encoding_carries() {
    let mut sent: Vec<Record> = (0..3).map(sample).collect();
    // Names the encoder must rename (`target` is one of its own attribute keys) come back.
    sent[0].fields.set("target", Value::Str("field named target".into()));
    sent[1].fields.set("error", Value::Str("connection refused".into()));
    let body = encode(&Encoding::otlp("billing"), &sent, Some("shop"), Some("web-3"));
    let got = watchbell_relay::parse_otlp(&body).expect("watchbell-http's OTLP body parses");
    assert_eq!(got.len(), sent.len());
    for (s, g) in sent.iter().zip(&got) {
        check_common(s, g);
        assert_eq!(g.field("service").and_then(Value::as_str), Some("billing"));
        for (k, v) in s.fields.iter() {
            // OTLP has no unsigned 64-bit integers: beyond i64 the value travels as text.
            let want = match v {
                Value::U64(u) if i64::try_from(*u).is_err() => Value::Str(u.to_string()),
                other => other.clone(),
            };
            assert_eq!(g.fields.get(k), Some(&want), "field {k}");
        }
        // Span names travel (OTLP flattens span fields into the attributes).
        assert_eq!(g.spans.iter().map(|s| s.name.as_ref()).collect::<Vec<_>>(), ["request"]);
        assert_eq!(g.fields.get("id").and_then(Value::as_i64), Some(7));
    }
}

#[test]
fn bodies_that_are_not_the_shapes_are_refused_whole() {
    assert!(watchbell_relay::parse_ndjson(b"{\"level\":\"ERROR\",\"message\":\"a\"}\nnot json\n").is_err());
    assert!(watchbell_relay::parse_ndjson(b"{\"message\":\"no level\"}").is_err());
    assert!(watchbell_relay::parse_ndjson(b"{\"level\":\"ERROR\",\"time\":\"yesterday\"}").is_err());
    assert!(watchbell_relay::parse_otlp(b"[1,2]").is_err());
    assert_eq!(watchbell_relay::parse_otlp(b"{}").unwrap().len(), 0);
}
