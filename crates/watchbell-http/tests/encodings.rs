//! The exact wire shape of every encoding, against loopback collector fakes.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as J;
use tracing_subscriber::prelude::*;
use watchbell_core::{Batch, BatchReason, Handler, Level, Record, Value};
use watchbell_http::{Encoding, FormMethod, HttpLayer, LokiLabel};
use watchbell_test::collectors::{otlp_attributes, FakeElasticsearch, FakeLoki, FakeNdjson, FakeOtlp};
use watchbell_test::http::FakeHttp;

const WAIT: Duration = Duration::from_secs(10);

fn rec(level: Level, i: u64) -> Record {
    let mut r = Record::new(level, "app::orders", format!("event {i}"));
    r.fields.set("seq", Value::U64(i));
    r
}

fn send(handler: &Arc<dyn Handler>, records: Vec<Record>) {
    handler.handle_batch(Batch::new(BatchReason::Single, records));
}

#[test]
fn ndjson_record_shape_from_tracing() {
    let fake = FakeNdjson::start();
    let (layer, guard) = HttpLayer::builder(fake.url_for("/ingest"))
        .app("billing")
        .host("web-1")
        .batch_wait(Duration::ZERO)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let line = line!() + 4;
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request", id = 7);
        let _e = span.enter();
        tracing::error!(user = "bob", n = 42, ok = true, "payment failed");
        tracing::debug!("not shipped: below INFO");
    });
    assert!(guard.flush(WAIT).is_complete());
    let reqs = fake.http().requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/ingest");
    assert_eq!(reqs[0].header("content-type"), Some("application/x-ndjson"));
    let body = reqs[0].body_text();
    assert!(body.ends_with('\n') && body.matches('\n').count() == 1, "{body:?}");
    assert!(body.starts_with("{\"time\":\""), "{body}");
    let v: J = serde_json::from_str(body.trim_end()).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = vec![
        "time",
        "level",
        "target",
        "module",
        "file",
        "line",
        "message",
        "fields",
        "spans",
        "thread",
        "pid",
        "fingerprint",
        "app",
        "host",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    // The keys come in the documented order.
    let order: Vec<usize> = ["\"time\"", "\"level\"", "\"target\"", "\"message\"", "\"fingerprint\"", "\"host\""]
        .iter()
        .map(|k| body.find(k).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{body}");
    assert_eq!(v["level"], "ERROR");
    assert_eq!(v["pid"], std::process::id());
    assert_eq!(v["target"], "encodings");
    assert_eq!(v["module"], "encodings");
    assert!(v["file"].as_str().unwrap().ends_with("encodings.rs"));
    assert_eq!(v["line"], line);
    assert_eq!(v["message"], "payment failed");
    assert_eq!(v["fields"], serde_json::json!({"user": "bob", "n": 42, "ok": true}));
    assert_eq!(v["spans"], serde_json::json!([{"name": "request", "fields": {"id": 7}}]));
    assert_eq!(v["app"], "billing");
    assert_eq!(v["host"], "web-1");
    let fp = v["fingerprint"].as_str().unwrap();
    assert!(fp.len() == 16 && fp.bytes().all(|b| b.is_ascii_hexdigit()), "{fp}");
    let t = watchbell_core::time::parse_rfc3339(v["time"].as_str().unwrap()).expect("RFC 3339");
    assert!(t.elapsed().unwrap_or_default() < Duration::from_secs(60));
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn json_array_shape() {
    let fake = FakeNdjson::start();
    let (h, guard) = HttpLayer::builder(fake.url())
        .encoding(Encoding::JsonArray)
        .no_gzip()
        .batch_wait(Duration::ZERO)
        .build_handler()
        .unwrap();
    send(&h, (0..3).map(|i| rec(Level::WARN, i)).collect());
    assert!(guard.flush(WAIT).is_complete());
    let reqs = fake.http().requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    let v: J = serde_json::from_slice(&reqs[0].body).unwrap();
    let seqs: Vec<u64> = v.as_array().unwrap().iter().map(|r| r["fields"]["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [0, 1, 2]);
    assert!(fake.errors().is_empty());
}

#[test]
fn loki_push_shape() {
    let fake = FakeLoki::start();
    let (h, guard) = HttpLayer::builder(fake.url())
        .encoding(Encoding::Loki { labels: vec![LokiLabel::App, LokiLabel::Level, LokiLabel::Host] })
        .app("api")
        .host("h1")
        .no_gzip()
        .batch_wait(Duration::ZERO)
        .build_handler()
        .unwrap();
    // (made in time order: entries of a stream are sent sorted by time)
    let (r0, r1) = (rec(Level::ERROR, 0), rec(Level::INFO, 1));
    let mut traced = rec(Level::ERROR, 2);
    traced.fields.set("trace_id", Value::Str("0242ac120002".into()));
    send(&h, vec![r0, r1, traced]);
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(fake.errors(), Vec::<String>::new());
    let req = &fake.http().requests()[0];
    assert_eq!(req.path, "/loki/api/v1/push");
    let body: J = serde_json::from_slice(&req.body).unwrap();
    let streams = body["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "one stream per label set: {body}");
    assert_eq!(streams[0]["stream"], serde_json::json!({"app": "api", "level": "error", "host": "h1"}));
    assert_eq!(streams[1]["stream"], serde_json::json!({"app": "api", "level": "info", "host": "h1"}));
    let errors = streams[0]["values"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    for e in errors {
        let ts = e[0].as_str().expect("timestamps are strings");
        assert!(ts.len() >= 19 && ts.bytes().all(|b| b.is_ascii_digit()), "{ts}");
        let line: J = serde_json::from_str(e[1].as_str().unwrap()).expect("the line is the JSON record");
        assert_eq!(line["level"], "ERROR");
        assert_eq!(e[2]["fingerprint"].as_str().unwrap().len(), 16);
    }
    assert_eq!(errors[1][2]["trace_id"], "0242ac120002");
    // The timestamp is the record's time in nanoseconds.
    let got = fake.records();
    let seqs: Vec<u64> = got
        .iter()
        .map(|r| serde_json::from_str::<J>(r["line"].as_str().unwrap()).unwrap()["fields"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [0, 2, 1]);
}

#[test]
fn loki_cuts_a_line_over_256_kb() {
    let fake = FakeLoki::start();
    let (h, guard) = HttpLayer::builder(fake.url()).encoding(Encoding::loki()).build_handler().unwrap();
    let mut r = rec(Level::WARN, 0);
    r.message = ("日本\u{7}\"\n".repeat(120_000)).into(); // ~1.3 MB of multibyte text and control characters
    send(&h, vec![r]);
    assert!(guard.flush(WAIT).is_complete());
    assert!(fake.errors().is_empty(), "{:?}", fake.errors());
    let got = fake.records();
    assert_eq!(got.len(), 1);
    let line = got[0]["line"].as_str().unwrap();
    assert!(line.len() <= 256 * 1024, "{}", line.len());
    let v: J = serde_json::from_str(line).unwrap();
    let m = v["message"].as_str().unwrap();
    assert!(m.ends_with("…[truncated]") && m.starts_with("日本\u{7}\"\n"), "{}", &m[..40]);
}

#[test]
fn elastic_bulk_shape() {
    let fake = FakeElasticsearch::start();
    let (h, guard) = HttpLayer::builder(fake.url())
        .encoding(Encoding::elastic_bulk("app-logs"))
        .no_gzip()
        .batch_wait(Duration::ZERO)
        .build_handler()
        .unwrap();
    send(&h, (0..3).map(|i| rec(Level::INFO, i)).collect());
    assert!(guard.flush(WAIT).is_complete());
    assert!(fake.errors().is_empty(), "{:?}", fake.errors());
    let req = &fake.http().requests()[0];
    assert_eq!(req.path, "/_bulk");
    assert_eq!(req.header("content-type"), Some("application/x-ndjson"));
    let body = req.body_text();
    assert!(body.ends_with('\n'), "the bulk body ends with a newline");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 6);
    for pair in lines.chunks(2) {
        assert_eq!(pair[0], r#"{"create":{"_index":"app-logs"}}"#);
        let doc: J = serde_json::from_str(pair[1]).unwrap();
        assert!(doc["@timestamp"].is_string() && doc.get("time").is_none(), "{doc}");
    }
    let seqs: Vec<u64> = fake.records().iter().map(|d| d["fields"]["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [0, 1, 2]);
}

#[test]
fn otlp_shape_and_severity_numbers() {
    let fake = FakeOtlp::start();
    let (h, guard) = HttpLayer::builder(fake.url())
        .encoding(Encoding::otlp("checkout"))
        .host("h1")
        .batch_wait(Duration::ZERO)
        .build_handler()
        .unwrap();
    let levels = [Level::TRACE, Level::DEBUG, Level::INFO, Level::WARN, Level::ERROR];
    let mut records: Vec<Record> = levels.iter().enumerate().map(|(i, l)| rec(*l, i as u64)).collect();
    records[4].fields.set("trace_id", Value::Str("4bf92f3577b34da6a3ce929d0e0e4736".into()));
    records[4].line = Some(42);
    send(&h, records);
    assert!(guard.flush(WAIT).is_complete());
    assert!(fake.errors().is_empty(), "{:?}", fake.errors());
    let req = &fake.http().requests()[0];
    assert_eq!(req.path, "/v1/logs");
    let got = fake.records();
    let sev: Vec<u64> = got.iter().map(|r| r["severityNumber"].as_u64().unwrap()).collect();
    assert_eq!(sev, [1, 5, 9, 13, 17]);
    let text: Vec<&str> = got.iter().map(|r| r["severityText"].as_str().unwrap()).collect();
    assert_eq!(text, ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]);
    let res = otlp_attributes(&got[0]["resource"]["attributes"]);
    assert_eq!(res["service.name"], "checkout");
    assert_eq!(res["host.name"], "h1");
    let e = &got[4];
    assert_eq!(e["body"]["stringValue"], "event 4");
    assert!(e["timeUnixNano"].as_str().unwrap().parse::<u64>().unwrap() > 1_600_000_000_000_000_000);
    assert_eq!(e["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    let attrs = otlp_attributes(&e["attributes"]);
    assert_eq!(attrs["target"], "app::orders");
    assert_eq!(attrs["seq"], "4", "OTLP JSON writes 64-bit integers as strings");
    assert_eq!(attrs["code.line.number"], "42");
}

#[test]
fn gzip_above_threshold_decodes() {
    let fake = FakeNdjson::start();
    let (h, guard) = HttpLayer::builder(fake.url()).batch_wait(Duration::ZERO).build_handler().unwrap();
    send(&h, (0..50).map(|i| rec(Level::INFO, i)).collect());
    assert!(guard.flush(WAIT).is_complete());
    send(&h, vec![Record::new(Level::INFO, "t", "tiny")]);
    assert!(guard.flush(WAIT).is_complete());
    let reqs = fake.http().requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("content-encoding"), Some("gzip"));
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&reqs[0].body[..]).read_to_string(&mut plain).unwrap();
    assert_eq!(plain.lines().count(), 50);
    assert!(reqs[0].body.len() < plain.len() / 2, "compressed {} of {}", reqs[0].body.len(), plain.len());
    assert_eq!(reqs[1].header("content-encoding"), None, "a small body is sent as is");
    assert_eq!(fake.records().len(), 51);
    assert!(fake.errors().is_empty());
}

#[test]
fn auth_and_custom_headers() {
    let fake = FakeNdjson::start();
    let (h, guard) = HttpLayer::builder(fake.url())
        .basic_auth("user", "pass")
        .header("X-Scope-OrgID", "tenant-1")
        .batch_wait(Duration::ZERO)
        .build_handler()
        .unwrap();
    send(&h, vec![rec(Level::INFO, 0)]);
    assert!(guard.flush(WAIT).is_complete());
    let (h2, guard2) =
        HttpLayer::builder(fake.url()).bearer_auth("t0ken").batch_wait(Duration::ZERO).build_handler().unwrap();
    send(&h2, vec![rec(Level::INFO, 1)]);
    assert!(guard2.flush(WAIT).is_complete());
    let reqs = fake.http().requests();
    assert_eq!(reqs[0].header("authorization"), Some("Basic dXNlcjpwYXNz"));
    assert_eq!(reqs[0].header("x-scope-orgid"), Some("tenant-1"));
    assert_eq!(reqs[1].header("authorization"), Some("Bearer t0ken"));
}

#[test]
fn form_get_and_post() {
    let fake = FakeHttp::start();
    let (h, guard) = HttpLayer::builder(fake.url_for("/log?src=app"))
        .encoding(Encoding::Form { method: FormMethod::Get })
        .batch_wait(Duration::ZERO)
        .build_handler()
        .unwrap();
    let mut r = rec(Level::ERROR, 0);
    r.message = "a b&c=d é".into();
    send(&h, vec![r, rec(Level::INFO, 1)]);
    assert!(guard.flush(WAIT).is_complete());
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2, "one request per record");
    assert_eq!(reqs[0].method, "GET");
    assert!(reqs[0].body.is_empty());
    let q = reqs[0].query_pairs();
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("src").as_deref(), Some("app"));
    assert_eq!(get("message").as_deref(), Some("a b&c=d é"));
    assert_eq!(get("level").as_deref(), Some("ERROR"));
    assert_eq!(get("target").as_deref(), Some("app::orders"));
    assert_eq!(get("fields").as_deref(), Some(r#"{"seq":0}"#));

    fake.clear();
    let (h, guard) = HttpLayer::builder(fake.url_for("/log"))
        .encoding(Encoding::Form { method: FormMethod::Post })
        .batch_wait(Duration::ZERO)
        .build_handler()
        .unwrap();
    send(&h, vec![rec(Level::WARN, 5)]);
    assert!(guard.flush(WAIT).is_complete());
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].header("content-type"), Some("application/x-www-form-urlencoded"));
    let f = reqs[0].form();
    assert!(f.contains(&("message".into(), "event 5".into())), "{f:?}");
    assert!(f.contains(&("level".into(), "WARN".into())), "{f:?}");
}

#[test]
fn hostile_text_survives_intact() {
    let fake = FakeNdjson::start();
    let (h, guard) = HttpLayer::builder(fake.url()).batch_wait(Duration::ZERO).build_handler().unwrap();
    let mut r = rec(Level::ERROR, 0);
    r.message = ("ü日本\u{0}\u{1b}[31m\r\n\"}\u{2028}".repeat(70_000)).into(); // ~1.1 MB
    r.fields.set("evil", Value::Str("\"}\n{\"level\":\"fake\"\u{7f}\u{1}".into()));
    let message = r.message.clone();
    send(&h, vec![r, rec(Level::INFO, 1)]);
    assert!(guard.flush(WAIT).is_complete());
    assert!(fake.errors().is_empty());
    let got = fake.records();
    assert_eq!(got.len(), 2, "control characters cannot split a record");
    assert_eq!(got[0]["message"].as_str().unwrap(), message);
    assert_eq!(got[0]["fields"]["evil"], "\"}\n{\"level\":\"fake\"\u{7f}\u{1}");
    assert_eq!(got[1]["fields"]["seq"], 1);
}

fn build_err(b: watchbell_http::HttpBuilder) -> watchbell_core::BuildError {
    match b.build_handler() {
        Ok(_) => panic!("expected a build error"),
        Err(e) => e,
    }
}

#[test]
fn build_errors_are_clear_and_secret_free() {
    let e = build_err(HttpLayer::builder("http://logs.example.com/push/s3cr3t"));
    assert_eq!(e.key, "url");
    assert!(!e.to_string().contains("s3cr3t"), "{e}");
    let e = build_err(HttpLayer::builder("https://loki.example.com").encoding(Encoding::Loki { labels: vec![] }));
    assert_eq!(e.key, "encoding.labels");
    let e = build_err(HttpLayer::builder("https://x.example.com").header("bad header", "v"));
    assert_eq!(e.key, "headers[0].name");
    let e = build_err(HttpLayer::builder("https://x.example.com").header("X-Key", "s3cr3t\n"));
    assert!(!format!("{e} {e:?}").contains("s3cr3t"));
}

/// `HTTPHandler.mapLogRecord`'s equivalent: a closure chooses each request's pairs; the field
/// list form picks default keys and event fields; either on another encoding is a build error.
#[test]
fn form_pairs_chosen_by_map_record_or_a_field_list() {
    let fake = FakeHttp::start();
    let (h, guard) = HttpLayer::builder(fake.url_for("/log"))
        .encoding(Encoding::Form { method: FormMethod::Post })
        .batch_wait(Duration::ZERO)
        .map_record(|r| {
            let mut pairs =
                vec![("levelname".to_owned(), r.level.to_string()), ("msg".to_owned(), r.message.to_string())];
            if let Some(seq) = r.fields.get("seq") {
                pairs.push(("seq".to_owned(), seq.to_string()));
            }
            pairs
        })
        .build_handler()
        .unwrap();
    send(&h, vec![rec(Level::ERROR, 7)]);
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    let f = fake.requests()[0].form();
    let expected: Vec<(String, String)> =
        [("levelname", "ERROR"), ("msg", "event 7"), ("seq", "7")].map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec();
    assert_eq!(f, expected, "exactly the chosen pairs, in order");

    // GET: every chosen value is cut to 4 KiB, so the URL stays short.
    fake.clear();
    let (h, guard) = HttpLayer::builder(fake.url_for("/log"))
        .encoding(Encoding::Form { method: FormMethod::Get })
        .batch_wait(Duration::ZERO)
        .map_record(|r| vec![("big".to_owned(), r.message.repeat(2000))])
        .build_handler()
        .unwrap();
    send(&h, vec![rec(Level::ERROR, 1)]);
    assert!(guard.flush(WAIT).is_complete());
    let q = fake.requests()[0].query_pairs();
    assert_eq!(q.len(), 1);
    assert!(q[0].1.len() <= 4096 && q[0].1.starts_with("event 1event 1"), "{}", q[0].1.len());

    fake.clear();
    let (h, guard) = HttpLayer::builder(fake.url_for("/log"))
        .encoding(Encoding::Form { method: FormMethod::Post })
        .batch_wait(Duration::ZERO)
        .form_fields(["message", "level", "fields.seq", "fields.absent", "app"])
        .build_handler()
        .unwrap();
    send(&h, vec![rec(Level::WARN, 3)]);
    assert!(guard.flush(WAIT).is_complete());
    let f = fake.requests()[0].form();
    let expected: Vec<(String, String)> = [("message", "event 3"), ("level", "WARN"), ("fields.seq", "3")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec();
    assert_eq!(f, expected, "the listed keys the record has, in the list's order");

    let e = HttpLayer::builder(fake.url()).form_fields(["level"]).build_handler().err().expect("ndjson refuses it");
    assert_eq!(e.key, "form_fields");
    let e = HttpLayer::builder(fake.url()).map_record(|_| Vec::new()).build_handler().err().expect("ndjson refuses it");
    assert_eq!(e.key, "map_record");
    let e = HttpLayer::builder(fake.url())
        .encoding(Encoding::Form { method: FormMethod::Post })
        .form_fields(["level", "lineno"])
        .build_handler()
        .err()
        .expect("an unknown key");
    assert_eq!(e.key, "form_fields[1]");
    assert!(e.message.contains("\"lineno\""), "{e}");
}
