//! Loopback fakes of log collectors: Loki, Elasticsearch bulk, OTLP/HTTP, NDJSON receivers.
//!
//! Each fake is a [`FakeHttp`] with a responder that speaks the collector's push protocol:
//! it decodes the body (gzip when `Content-Encoding: gzip` says so), checks its shape, keeps
//! the received records in arrival order and answers as the real collector does. A request
//! whose body does not follow the protocol is answered `400`, and the reason is kept in
//! [`errors`](FakeLoki::errors) so that a test can assert there were none.
//!
//! Every fake can misbehave on purpose, for outage tests:
//! - [`set_down`](FakeNdjson::set_down): answer `503` to every request;
//! - [`set_refusing`](FakeNdjson::set_refusing): hang up on every request without a byte (the
//!   client sees a connection error, as with a collector that is not listening);
//! - [`set_stalled`](FakeNdjson::set_stalled): read requests and never answer;
//! - [`set_max_body`](FakeNdjson::set_max_body): answer `413` to bodies (as sent on the wire)
//!   above a size.
//!
//! ```
//! use watchbell_test::collectors::FakeNdjson;
//!
//! let fake = FakeNdjson::start();
//! assert!(fake.url().starts_with("http://127.0.0.1:"));
//! assert!(fake.records().is_empty());
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::http::{FakeHttp, Reply, Request};
use crate::store::Recorded;

/// What the fakes share: the protocol-independent state.
#[derive(Default)]
struct State {
    records: Vec<Value>,
    errors: Vec<String>,
    down: bool,
    refusing: bool,
    stalled: bool,
    max_body: Option<usize>,
    /// Elasticsearch: statuses for the next items, in order.
    item_statuses: VecDeque<u16>,
}

type Shared = Recorded<State>;

/// The collector protocol a fake speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Loki,
    Elastic,
    Otlp,
    Ndjson,
}

/// The common part of every collector fake.
struct Collector {
    http: FakeHttp,
    shared: Arc<Shared>,
}

impl fmt::Debug for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("Collector")
            .field("url", &self.http.url())
            .field("records", &st.records.len())
            .field("errors", &st.errors)
            .finish_non_exhaustive()
    }
}

/// The body of a request, gzip-decoded when `Content-Encoding` says so.
///
/// # Errors
/// When the body claims gzip but does not decode, or another content coding is used.
pub fn decoded_body(req: &Request) -> Result<Vec<u8>, String> {
    match req.header("content-encoding").map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(req.body.clone()),
        Some(c) if c.is_empty() || c == "identity" => Ok(req.body.clone()),
        Some(c) if c == "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&req.body[..])
                .read_to_end(&mut out)
                .map_err(|e| format!("invalid gzip body: {e}"))?;
            Ok(out)
        }
        Some(c) => Err(format!("unsupported Content-Encoding {c:?}")),
    }
}

impl Collector {
    fn start(kind: Kind) -> Collector {
        let http = FakeHttp::start();
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        http.respond_with(move |req| answer(kind, &s, req));
        Collector { http, shared }
    }

    fn records(&self) -> Vec<Value> {
        self.shared.lock().records.clone()
    }

    fn wait_for_records(&self, n: usize, timeout: Duration) -> Vec<Value> {
        self.shared.wait_until(timeout, |st| st.records.len() >= n).records.clone()
    }
}

fn answer(kind: Kind, shared: &Shared, req: &Request) -> Reply {
    {
        let st = shared.lock();
        if st.stalled {
            return Reply::stall();
        }
        if st.refusing {
            return Reply::close();
        }
        if st.down {
            return Reply::text(503, "collector down");
        }
        if st.max_body.is_some_and(|m| req.body.len() > m) {
            return Reply::text(413, "request entity too large");
        }
    }
    let parsed = decoded_body(req).and_then(|body| match kind {
        Kind::Loki => parse_loki(req, &body),
        Kind::Elastic => parse_bulk(req, &body),
        Kind::Otlp => parse_otlp(req, &body),
        Kind::Ndjson => parse_ndjson(&body),
    });
    let records = match parsed {
        Ok(r) => r,
        Err(e) => {
            shared.lock().errors.push(e.clone());
            return Reply::text(400, &e);
        }
    };
    let mut st = shared.lock();
    let reply = if kind == Kind::Elastic {
        // Per-item results: the programmed statuses first, then 201.
        let mut items = Vec::new();
        let mut errors = false;
        for doc in records {
            let status = st.item_statuses.pop_front().unwrap_or(201);
            if (200..300).contains(&status) {
                st.records.push(doc);
                items.push(serde_json::json!({"create": {"status": status, "result": "created"}}));
            } else {
                errors = true;
                items.push(serde_json::json!({"create": {"status": status,
                    "error": {"type": if status == 429 { "es_rejected_execution_exception" } else { "mapper_parsing_exception" },
                              "reason": "programmed failure"}}}));
            }
        }
        Reply::json(200, &serde_json::json!({"took": 1, "errors": errors, "items": items}).to_string())
    } else {
        st.records.extend(records);
        match kind {
            Kind::Loki => Reply::status(204),
            Kind::Otlp => Reply::json(200, "{}"),
            _ => Reply::ok(),
        }
    };
    drop(st);
    shared.notify();
    reply
}

fn json_type(req: &Request, want: &str) -> Result<(), String> {
    let ct = req.header("content-type").unwrap_or("");
    if ct.to_ascii_lowercase().starts_with(want) {
        Ok(())
    } else {
        Err(format!("Content-Type {ct:?}, expected {want}"))
    }
}

fn parse_json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))
}

fn parse_loki(req: &Request, body: &[u8]) -> Result<Vec<Value>, String> {
    if req.method != "POST" || req.path != "/loki/api/v1/push" {
        return Err(format!("{} {}: expected POST /loki/api/v1/push", req.method, req.path));
    }
    json_type(req, "application/json")?;
    let v = parse_json(body)?;
    let streams = v.get("streams").and_then(Value::as_array).ok_or("no \"streams\" array")?;
    let mut out = Vec::new();
    for s in streams {
        let labels = s.get("stream").and_then(Value::as_object).ok_or("a stream without a \"stream\" object")?;
        if labels.is_empty() || labels.len() > 15 {
            return Err(format!("a stream with {} labels (1 to 15 allowed)", labels.len()));
        }
        for (k, l) in labels {
            let l = l.as_str().ok_or_else(|| format!("label {k} is not a string"))?;
            if l.chars().count() > 2048 {
                return Err(format!("label {k} is over 2048 characters"));
            }
        }
        let values = s.get("values").and_then(Value::as_array).ok_or("a stream without a \"values\" array")?;
        for e in values {
            let e = e.as_array().ok_or("a value that is not an array")?;
            if !(2..=3).contains(&e.len()) {
                return Err(format!("a value of {} elements (2 or 3 expected)", e.len()));
            }
            let ts = e[0].as_str().ok_or("a timestamp that is not a string")?;
            if ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit()) || ts.len() < 19 {
                return Err(format!("timestamp {ts:?} is not a string of Unix nanoseconds"));
            }
            let line = e[1].as_str().ok_or("a log line that is not a string")?;
            let mut meta = serde_json::Map::new();
            if let Some(m) = e.get(2) {
                let m = m.as_object().ok_or("structured metadata that is not an object")?;
                for (k, x) in m {
                    if !x.is_string() {
                        return Err(format!("structured metadata {k} is not a string"));
                    }
                }
                meta = m.clone();
            }
            out.push(serde_json::json!({
                "stream": Value::Object(labels.clone()),
                "ts": ts,
                "line": line,
                "metadata": Value::Object(meta),
            }));
        }
    }
    Ok(out)
}

fn parse_bulk(req: &Request, body: &[u8]) -> Result<Vec<Value>, String> {
    if req.method != "POST" || !req.path.ends_with("/_bulk") {
        return Err(format!("{} {}: expected POST /_bulk", req.method, req.path));
    }
    json_type(req, "application/x-ndjson")?;
    if !body.ends_with(b"\n") {
        return Err("bulk body does not end with a newline".into());
    }
    let text = std::str::from_utf8(body).map_err(|_| "bulk body is not UTF-8")?;
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    if !lines.len().is_multiple_of(2) {
        return Err(format!("{} bulk lines: action and source lines must pair", lines.len()));
    }
    let mut out = Vec::new();
    for pair in lines.chunks(2) {
        let action = parse_json(pair[0].as_bytes())?;
        let (op, meta) = action
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
            .ok_or_else(|| format!("invalid action line {:?}", pair[0]))?;
        if op != "create" && op != "index" {
            return Err(format!("unexpected bulk action {op:?}"));
        }
        let index = meta.get("_index").and_then(Value::as_str).map(str::to_owned);
        let mut doc = parse_json(pair[1].as_bytes())?;
        if !doc.is_object() {
            return Err("a bulk source that is not an object".into());
        }
        if let (Some(i), Some(o)) = (index, doc.as_object_mut()) {
            o.insert("_index".into(), Value::String(i));
        }
        out.push(doc);
    }
    Ok(out)
}

fn parse_otlp(req: &Request, body: &[u8]) -> Result<Vec<Value>, String> {
    if req.method != "POST" || req.path != "/v1/logs" {
        return Err(format!("{} {}: expected POST /v1/logs", req.method, req.path));
    }
    json_type(req, "application/json")?;
    let v = parse_json(body)?;
    let rls = v.get("resourceLogs").and_then(Value::as_array).ok_or("no \"resourceLogs\" array")?;
    let mut out = Vec::new();
    for rl in rls {
        let resource = rl.get("resource").cloned().unwrap_or(Value::Null);
        let sls = rl.get("scopeLogs").and_then(Value::as_array).ok_or("no \"scopeLogs\" array")?;
        for sl in sls {
            let lrs = sl.get("logRecords").and_then(Value::as_array).ok_or("no \"logRecords\" array")?;
            for lr in lrs {
                let ts = lr.get("timeUnixNano").and_then(Value::as_str).ok_or("timeUnixNano is not a string")?;
                if ts.parse::<u64>().is_err() {
                    return Err(format!("timeUnixNano {ts:?} is not a decimal string"));
                }
                let sev = lr.get("severityNumber").and_then(Value::as_u64).ok_or("no severityNumber")?;
                if !(1..=24).contains(&sev) {
                    return Err(format!("severityNumber {sev} out of 1..=24"));
                }
                let mut rec = lr.clone();
                if let Some(o) = rec.as_object_mut() {
                    o.insert("resource".into(), resource.clone());
                    o.insert("scope".into(), sl.get("scope").cloned().unwrap_or(Value::Null));
                }
                out.push(rec);
            }
        }
    }
    Ok(out)
}

fn parse_ndjson(body: &[u8]) -> Result<Vec<Value>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "body is not UTF-8")?;
    if text.trim_start().starts_with('[') {
        let v = parse_json(text.as_bytes())?;
        return v.as_array().cloned().ok_or_else(|| "not an array".into());
    }
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| parse_json(l.as_bytes())).collect()
}

/// The attributes of an OTLP object (`[{"key":"k","value":{"stringValue":"v"}}]`) as a map of
/// key to the inner value (`"v"`, `42` for `intValue`, ...).
pub fn otlp_attributes(attrs: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for a in attrs.as_array().into_iter().flatten() {
        let (Some(k), Some(v)) = (a.get("key").and_then(Value::as_str), a.get("value")) else { continue };
        let inner = v.as_object().and_then(|o| o.values().next()).cloned().unwrap_or(Value::Null);
        out.insert(k.to_owned(), inner);
    }
    out
}

macro_rules! collector {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(Collector);

        impl $name {
            /// Starts the fake on a free loopback port.
            pub fn start() -> Self {
                $name(Collector::start($kind))
            }

            /// The base URL, `http://127.0.0.1:PORT`.
            pub fn url(&self) -> String {
                self.0.http.url()
            }

            /// The base URL followed by `path`.
            pub fn url_for(&self, path: &str) -> String {
                self.0.http.url_for(path)
            }

            /// The HTTP fake underneath (requests as received, queued replies).
            pub fn http(&self) -> &FakeHttp {
                &self.0.http
            }

            /// The records accepted so far, in arrival order.
            pub fn records(&self) -> Vec<Value> {
                self.0.records()
            }

            /// Waits until at least `n` records were accepted or `timeout` passed; returns them.
            pub fn wait_for_records(&self, n: usize, timeout: Duration) -> Vec<Value> {
                self.0.wait_for_records(n, timeout)
            }

            /// The protocol violations seen (each answered `400`).
            pub fn errors(&self) -> Vec<String> {
                self.0.shared.lock().errors.clone()
            }

            /// While `true`, every request is answered `503`.
            pub fn set_down(&self, down: bool) {
                self.0.shared.lock().down = down;
            }

            /// While `true`, every request is read and the connection closed without an answer.
            pub fn set_refusing(&self, refusing: bool) {
                self.0.shared.lock().refusing = refusing;
            }

            /// While `true`, requests are read and never answered (until the fake is dropped).
            pub fn set_stalled(&self, stalled: bool) {
                self.0.shared.lock().stalled = stalled;
            }

            /// Bodies (as sent, compressed or not) over `max` bytes are answered `413`.
            pub fn set_max_body(&self, max: Option<usize>) {
                self.0.shared.lock().max_body = max;
            }
        }
    };
}

collector!(
    /// A Grafana Loki fake: `POST /loki/api/v1/push` with JSON streams. Each record kept is
    /// `{"stream": {labels}, "ts": "<ns>", "line": "...", "metadata": {..}}`; timestamps must be
    /// strings of Unix nanoseconds, labels 1 to 15 strings of at most 2048 characters. Answers `204`.
    FakeLoki,
    Kind::Loki
);

collector!(
    /// An Elasticsearch/OpenSearch fake: `POST /_bulk` (or `/<index>/_bulk`) with action and
    /// source line pairs, the body ending in `\n`. Answers `200` with per-item results; the
    /// items programmed with [`push_item_statuses`](FakeElasticsearch::push_item_statuses)
    /// fail (and are not kept). Each record kept is the source document, plus `_index` from
    /// its action line.
    FakeElasticsearch,
    Kind::Elastic
);

collector!(
    /// An OpenTelemetry collector fake: `POST /v1/logs` with OTLP/HTTP JSON. Each record kept is
    /// a `logRecord` object with its `resource` and `scope` added. Answers `200 {}`.
    FakeOtlp,
    Kind::Otlp
);

collector!(
    /// A generic NDJSON receiver (Vector, Fluent Bit): any path, one JSON value per line, or a
    /// JSON array. Answers `200`.
    FakeNdjson,
    Kind::Ndjson
);

impl FakeElasticsearch {
    /// The next items received get these statuses, in order (then `201` again): `429` or `5xx`
    /// for retryable rejections, `400`/`409` for permanent ones. Failed items are not kept.
    pub fn push_item_statuses(&self, statuses: &[u16]) {
        self.0.shared.lock().item_statuses.extend(statuses.iter().copied());
    }
}
