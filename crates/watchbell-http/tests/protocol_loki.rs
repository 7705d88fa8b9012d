//! The Loki push body over hostile text and shuffled times: valid JSON, each stream's entries in
//! time order, every record in exactly one stream, lines within Loki's limit, labels valid.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value as J;
use watchbell_core::{Level, Record, Value};
use watchbell_http::fuzzing::encode;
use watchbell_http::{Encoding, LokiLabel};

fn texts() -> Vec<String> {
    let mut v: Vec<String> = ["", "\"", "\\", "\n\r\t", "\0", "\u{2028}", "日本語", "🦀", "</script>", "{\"a\":1}"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.push("é".repeat(200_000)); // 400 KB: over Loki's 256 KB line limit
    v.push("t".repeat(5000)); // a target over the 2,048-char label limit
    v
}

#[test]
fn every_push_is_valid_sorted_complete_and_within_limits() {
    let labels = vec![LokiLabel::App, LokiLabel::Level, LokiLabel::Target, LokiLabel::Host];
    let texts = texts();
    let base = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    // Times out of order (a pseudo-random walk, with ties), levels and targets mixed.
    let mut records = Vec::new();
    for i in 0..120u64 {
        let t = &texts[(i as usize * 7) % texts.len()];
        let level = [Level::ERROR, Level::WARN, Level::INFO][(i % 3) as usize];
        let target = if i % 5 == 0 { t.chars().take(6000).collect::<String>() } else { "app".to_owned() };
        let mut r = Record::new(level, target, t.clone());
        r.time = base + Duration::from_millis((i * 7919) % 97);
        r.fields.set("seq", Value::U64(i));
        r.fields.set("text", Value::Str(t.chars().take(50).collect()));
        records.push(r);
    }
    let body = encode(&Encoding::Loki { labels }, &records, Some("shop"), Some("web-1"));
    let v: J = serde_json::from_slice(&body).expect("valid JSON");
    let mut seen = Vec::new();
    for stream in v["streams"].as_array().unwrap() {
        for (k, l) in stream["stream"].as_object().unwrap() {
            let l = l.as_str().unwrap();
            assert!(!l.is_empty() && l.chars().count() <= 2048, "label {k} of {} chars", l.chars().count());
        }
        let values = stream["values"].as_array().unwrap();
        let ts: Vec<u128> = values.iter().map(|e| e[0].as_str().unwrap().parse().unwrap()).collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "a stream goes back in time: {ts:?}");
        for e in values {
            let line = e[1].as_str().unwrap();
            assert!(line.len() <= 256 * 1024, "a line of {} bytes", line.len());
            let rec: J = serde_json::from_str(line).expect("the line is the JSON record");
            seen.push(rec["fields"]["seq"].as_u64().unwrap());
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..120).collect::<Vec<u64>>(), "every record once");
}
