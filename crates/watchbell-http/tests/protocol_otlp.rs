//! OTLP attribute keys over field names chosen to collide: unique in every logRecord, and no
//! event field lost.

use std::sync::Arc;

use serde_json::Value as J;
use watchbell_core::record::{Fields, SpanRecord};
use watchbell_core::{Level, Record, Value};
use watchbell_http::fuzzing::encode;
use watchbell_http::Encoding;

const NAMES: [&str; 12] = [
    "target",
    "field.target",
    "field.field.target",
    "fingerprint",
    "code.line.number",
    "code.file.path",
    "module_path",
    "thread.name",
    "spans",
    "suppressed",
    "user",
    "",
];

fn record(event: &[&str], spans: &[&[&str]]) -> Record {
    let mut r = Record::new(Level::ERROR, "app::orders", "collides");
    r.line = Some(7);
    r.file = Some("src/orders.rs".into());
    r.module = Some("app::orders".into());
    r.thread_name = Some("main".into());
    r.suppressed = 2;
    for name in event {
        r.fields.set(name.to_string(), Value::Str(format!("event {name}")));
    }
    for (i, names) in spans.iter().enumerate() {
        let mut f = Fields::default();
        for name in *names {
            f.set(name.to_string(), Value::Str(format!("span{i} {name}")));
        }
        r.spans.push(Arc::new(SpanRecord { name: format!("s{i}").into(), target: "app".into(), fields: f }));
    }
    r
}

fn attributes(r: &Record) -> Vec<(String, J)> {
    let body = encode(&Encoding::otlp("svc"), std::slice::from_ref(r), Some("app"), Some("host"));
    let v: J = serde_json::from_slice(&body).unwrap();
    v["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["key"].as_str().unwrap().to_owned(), a["value"].clone()))
        .collect()
}

#[test]
fn keys_are_unique_and_every_event_field_is_kept_whatever_the_names() {
    // Every ordered pair and triple of colliding names, as event fields and in two spans.
    for a in NAMES {
        for b in NAMES {
            for c in ["target", "field.target", "user", "spans"] {
                let r = record(&[a, b, c], &[&[c, a], &[b, "target", "request_id"]]);
                let attrs = attributes(&r);
                let mut keys: Vec<&str> = attrs.iter().map(|(k, _)| k.as_str()).collect();
                keys.sort_unstable();
                let n = keys.len();
                keys.dedup();
                assert_eq!(keys.len(), n, "duplicate keys for {a:?} {b:?} {c:?}: {attrs:?}");
                for name in [a, b, c] {
                    let want = J::String(format!("event {name}"));
                    assert!(
                        attrs.iter().any(|(_, v)| v["stringValue"] == want),
                        "event field {name:?} lost for {a:?} {b:?} {c:?}: {attrs:?}"
                    );
                }
                // Ours win.
                let ours = |k: &str| attrs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
                assert_eq!(ours("target").unwrap()["stringValue"], "app::orders");
                assert_eq!(ours("code.line.number").unwrap()["intValue"], "7");
                assert_eq!(ours("spans").unwrap()["stringValue"], "s0:s1");
                // A span's field never stands in for the event's of the same name.
                assert!(
                    attrs.iter().all(|(_, v)| !matches!(
                        v["stringValue"].as_str(),
                        Some(s) if s.starts_with("span") && [a, b, c].iter().any(|n| s.ends_with(&format!(" {n}")))
                    )),
                    "{attrs:?}"
                );
            }
        }
    }
}

/// The semantic conventions' names: code location, thread, and an error event's exception.
#[test]
fn otlp_uses_the_semantic_conventions_for_code_thread_and_exceptions() {
    let mut r = record(&[], &[]);
    r.fields.set("error", Value::Str("card declined".into()));
    r.fields.set("error.sources", Value::Str("issuer said no".into()));
    r.fields.set("backtrace", Value::Str("0: app::pay\n1: main".into()));
    r.fields.set("error.type", Value::Str("PaymentError".into()));
    let attrs = attributes(&r);
    let get = |k: &str| attrs.iter().find(|(key, _)| key == k).map(|(_, v)| v["stringValue"].clone());
    assert_eq!(get("code.file.path").unwrap(), "src/orders.rs");
    assert_eq!(attrs.iter().find(|(k, _)| k == "code.line.number").unwrap().1["intValue"], "7");
    assert_eq!(get("module_path").unwrap(), "app::orders");
    assert_eq!(get("thread.name").unwrap(), "main");
    assert_eq!(get("exception.message").unwrap(), "card declined");
    assert_eq!(get("exception.stacktrace").unwrap(), "0: app::pay\n1: main");
    assert_eq!(get("exception.type").unwrap(), "PaymentError");
    assert_eq!(get("error.sources").unwrap(), "issuer said no", "the chain stays");
    for gone in ["error", "backtrace", "error.type", "code.filepath", "code.lineno", "code.namespace"] {
        assert!(get(gone).is_none(), "{gone} is sent under its convention's name only: {attrs:?}");
    }
}
