//! The inverse of watchbell-http's encoders: records from the JSON record shape (NDJSON or a
//! JSON array) and from OTLP/HTTP JSON logs.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use watchbell_core::{Fields, Fingerprint, Level, Record, SpanRecord, Value};

/// Why a body could not be read. The text never quotes the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The 1-based line (NDJSON) or record (OTLP) at fault, 0 for the body as a whole.
    pub at: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "record {}: {}", self.at, self.message)
        }
    }
}

impl std::error::Error for ParseError {}

fn err(at: usize, message: impl fmt::Display) -> ParseError {
    // serde_json's messages quote at most a short token of the input; keep them short anyway.
    let mut message = message.to_string();
    if message.len() > 200 {
        let mut cut = 200;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    ParseError { at, message }
}

/// The JSON record shape as watchbell-http writes it (`time` or `@timestamp`).
#[derive(Deserialize)]
struct Shape<'a> {
    #[serde(default, borrow)]
    time: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "@timestamp")]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    level: Cow<'a, str>,
    #[serde(default)]
    target: String,
    #[serde(default)]
    module: Option<String>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    line: Option<u32>,
    #[serde(default)]
    message: String,
    #[serde(default)]
    fields: Fields,
    #[serde(default)]
    spans: Vec<SpanShape>,
    #[serde(default)]
    thread: Option<String>,
    #[serde(default)]
    pid: u32,
    #[serde(default, borrow)]
    fingerprint: Option<Cow<'a, str>>,
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    suppressed: u64,
}

#[derive(Deserialize)]
struct SpanShape {
    name: String,
    #[serde(default)]
    fields: Fields,
}

fn parse_level(s: &str) -> Option<Level> {
    watchbell_core::filter::parse_level(s)
}

/// Keeps the origin: `app` and `host` become fields of those names (a field the record
/// already has keeps its value).
fn set_origin(fields: &mut Fields, name: &'static str, value: Option<String>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        if fields.get(name).is_none() {
            fields.set(name, Value::Str(v));
        }
    }
}

fn from_shape(s: Shape<'_>, at: usize) -> Result<Record, ParseError> {
    let level = parse_level(&s.level).ok_or_else(|| err(at, "level: expected ERROR, WARN, INFO, DEBUG or TRACE"))?;
    let time = match s.time.as_deref().or(s.timestamp.as_deref()) {
        Some(t) => watchbell_core::time::parse_rfc3339(t).ok_or_else(|| err(at, "time: expected RFC 3339"))?,
        None => SystemTime::now(),
    };
    let mut r = Record::new(level, s.target, s.message);
    r.time = time;
    r.module = s.module.map(Cow::Owned);
    r.file = s.file.map(Cow::Owned);
    r.line = s.line;
    r.fields = s.fields;
    set_origin(&mut r.fields, "app", s.app);
    set_origin(&mut r.fields, "host", s.host);
    r.spans = s
        .spans
        .into_iter()
        .map(|sp| Arc::new(SpanRecord { name: Cow::Owned(sp.name), target: r.target.clone(), fields: sp.fields }))
        .collect();
    r.thread_name = s.thread.map(Arc::from);
    r.thread_id = 0;
    r.pid = s.pid;
    r.suppressed = s.suppressed;
    r.fingerprint = match s.fingerprint.as_deref().and_then(Fingerprint::from_hex) {
        Some(fp) => fp,
        None => Fingerprint::compute(level, &r.target, r.file.as_deref(), r.line, b""),
    };
    Ok(r)
}

/// Records from NDJSON (one JSON record shape per line; blank lines are skipped) or, when the
/// body starts with `[`, from a JSON array of record shapes. All or nothing: one bad record
/// refuses the body.
pub fn parse_ndjson(body: &[u8]) -> Result<Vec<Record>, ParseError> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    if start.is_some_and(|i| body[i] == b'[') {
        let shapes: Vec<Shape<'_>> = serde_json::from_slice(body).map_err(|e| err(0, e))?;
        return shapes.into_iter().enumerate().map(|(i, s)| from_shape(s, i + 1)).collect();
    }
    let mut out = Vec::with_capacity(body.len() / 256 + 1);
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let shape: Shape<'_> = serde_json::from_slice(line).map_err(|e| err(i + 1, e))?;
        out.push(from_shape(shape, i + 1)?);
    }
    Ok(out)
}

/// One NDJSON line (the unix socket input).
pub fn parse_line(line: &[u8], at: usize) -> Result<Record, ParseError> {
    let shape: Shape<'_> = serde_json::from_slice(line).map_err(|e| err(at, e))?;
    from_shape(shape, at)
}

// ---- OTLP/HTTP JSON ----

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Export {
    #[serde(default)]
    resource_logs: Vec<ResourceLogs>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ResourceLogs {
    #[serde(default)]
    resource: Resource,
    #[serde(default)]
    scope_logs: Vec<ScopeLogs>,
}

#[derive(Deserialize, Default)]
struct Resource {
    #[serde(default)]
    attributes: Vec<KeyValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ScopeLogs {
    #[serde(default)]
    log_records: Vec<LogRecord>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LogRecord {
    #[serde(default)]
    time_unix_nano: Option<serde_json::Value>,
    #[serde(default)]
    observed_time_unix_nano: Option<serde_json::Value>,
    #[serde(default)]
    severity_number: Option<i64>,
    #[serde(default)]
    severity_text: Option<String>,
    #[serde(default)]
    body: Option<serde_json::Value>,
    #[serde(default)]
    attributes: Vec<KeyValue>,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    span_id: Option<String>,
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: serde_json::Value,
}

/// An OTLP AnyValue as a field value (arrays and maps as their JSON text).
fn any_value(v: &serde_json::Value) -> Value {
    let num = |v: &serde_json::Value| -> Option<Value> {
        match v {
            serde_json::Value::String(s) => {
                s.parse::<i64>().ok().map(Value::I64).or_else(|| s.parse::<u64>().ok().map(Value::U64))
            }
            serde_json::Value::Number(n) => n.as_i64().map(Value::I64).or_else(|| n.as_u64().map(Value::U64)),
            _ => None,
        }
    };
    if let Some(o) = v.as_object() {
        if let Some(s) = o.get("stringValue").and_then(|s| s.as_str()) {
            return Value::Str(s.to_owned());
        }
        if let Some(i) = o.get("intValue").and_then(num) {
            return i;
        }
        if let Some(d) = o.get("doubleValue").and_then(|d| d.as_f64()) {
            return Value::F64(d);
        }
        if let Some(b) = o.get("boolValue").and_then(|b| b.as_bool()) {
            return Value::Bool(b);
        }
        if let Some(x) = o.get("arrayValue").or_else(|| o.get("kvlistValue")).or_else(|| o.get("bytesValue")) {
            return Value::Str(x.to_string());
        }
    }
    match v {
        serde_json::Value::Null => Value::Str(String::new()),
        serde_json::Value::String(s) => Value::Str(s.clone()),
        other => Value::Str(other.to_string()),
    }
}

fn nanos(v: Option<&serde_json::Value>) -> Option<SystemTime> {
    let n: u64 = match v? {
        serde_json::Value::String(s) => s.parse().ok()?,
        serde_json::Value::Number(n) => n.as_u64()?,
        _ => return None,
    };
    (n > 0).then(|| UNIX_EPOCH + Duration::from_nanos(n))
}

fn severity(number: Option<i64>, text: Option<&str>) -> Level {
    match number {
        Some(1..=4) => Level::TRACE,
        Some(5..=8) => Level::DEBUG,
        Some(9..=12) => Level::INFO,
        Some(13..=16) => Level::WARN,
        Some(17..) => Level::ERROR,
        _ => text.and_then(parse_level).unwrap_or(Level::INFO),
    }
}

/// The record attributes watchbell-http writes, which become record parts, not fields.
const OWN_KEYS: [&str; 16] = [
    "target",
    "module_path",
    "code.file.path",
    "code.filepath",
    "code.line.number",
    "code.lineno",
    "thread.name",
    "process.pid",
    "exception.message",
    "exception.stacktrace",
    "exception.type",
    "fingerprint",
    "suppressed",
    "spans",
    "service.name",
    "host.name",
];

/// Records from an OTLP/HTTP JSON logs export (`ExportLogsServiceRequest` in the protobuf JSON
/// mapping): what watchbell-http's OTLP encoding writes, and what any OpenTelemetry SDK's
/// OTLP/HTTP JSON exporter writes. The resource's `service.name`, `host.name` and `app`
/// become the fields `service`, `host` and `app`; `process.pid` (of the record or the
/// resource) the record's pid; `exception.*` the fields `error`, `backtrace`, `error.type`.
pub fn parse_otlp(body: &[u8]) -> Result<Vec<Record>, ParseError> {
    let export: Export = serde_json::from_slice(body).map_err(|e| err(0, e))?;
    let mut out = Vec::new();
    let mut at = 0;
    for rl in export.resource_logs {
        let mut origin: Vec<(&'static str, Value)> = Vec::new();
        let mut resource_pid = None;
        for kv in &rl.resource.attributes {
            match kv.key.as_str() {
                "service.name" => origin.push(("service", any_value(&kv.value))),
                "host.name" => origin.push(("host", any_value(&kv.value))),
                "app" => origin.push(("app", any_value(&kv.value))),
                "process.pid" => resource_pid = any_value(&kv.value).as_u64(),
                _ => {}
            }
        }
        for sl in rl.scope_logs {
            for lr in sl.log_records {
                at += 1;
                out.push(otlp_record(lr, &origin, resource_pid, at));
            }
        }
    }
    Ok(out)
}

fn otlp_record(lr: LogRecord, origin: &[(&'static str, Value)], resource_pid: Option<u64>, _at: usize) -> Record {
    let attr = |k: &str| lr.attributes.iter().find(|kv| kv.key == k).map(|kv| any_value(&kv.value));
    let level = severity(lr.severity_number, lr.severity_text.as_deref());
    let target = attr("target").map(|v| v.to_string()).unwrap_or_default();
    let message = match &lr.body {
        Some(b) => match any_value(b) {
            Value::Str(s) => s,
            other => other.to_string(),
        },
        None => String::new(),
    };
    let mut r = Record::new(level, target, message);
    r.time = nanos(lr.time_unix_nano.as_ref())
        .or_else(|| nanos(lr.observed_time_unix_nano.as_ref()))
        .unwrap_or_else(SystemTime::now);
    r.module = attr("module_path").map(|v| Cow::Owned(v.to_string()));
    r.file = attr("code.file.path").or_else(|| attr("code.filepath")).map(|v| Cow::Owned(v.to_string()));
    r.line = attr("code.line.number").or_else(|| attr("code.lineno")).and_then(|v| v.as_u64()).map(|l| l as u32);
    r.thread_name = attr("thread.name").map(|v| Arc::from(v.to_string()));
    r.thread_id = 0;
    r.pid = attr("process.pid").and_then(|v| v.as_u64()).or(resource_pid).unwrap_or(0) as u32;
    r.suppressed = attr("suppressed").and_then(|v| v.as_u64()).unwrap_or(0);
    let mut fields = Fields::new();
    for (key, name) in
        [("exception.message", "error"), ("exception.stacktrace", "backtrace"), ("exception.type", "error.type")]
    {
        if let Some(v) = attr(key) {
            fields.set(name, v);
        }
    }
    for kv in &lr.attributes {
        if OWN_KEYS.contains(&kv.key.as_str()) {
            continue;
        }
        // A field renamed to `field.<name>` because its name was taken comes back as
        // `<name>` when that is one of the record's own keys.
        let mut name = kv.key.as_str();
        while let Some(rest) = name.strip_prefix("field.") {
            if OWN_KEYS.contains(&rest) || rest.starts_with("field.") {
                name = rest;
            } else {
                break;
            }
        }
        fields.set(name.to_owned(), any_value(&kv.value));
    }
    if let Some(t) = lr.trace_id.filter(|t| !t.is_empty()) {
        fields.set("trace_id", Value::Str(t));
    }
    if let Some(s) = lr.span_id.filter(|s| !s.is_empty()) {
        fields.set("span_id", Value::Str(s));
    }
    for (name, v) in origin {
        if fields.get(name).is_none() {
            fields.set(*name, v.clone());
        }
    }
    r.fields = fields;
    if let Some(names) = attr("spans").map(|v| v.to_string()) {
        r.spans = names
            .split(':')
            .filter(|n| !n.is_empty())
            .map(|n| {
                Arc::new(SpanRecord { name: Cow::Owned(n.to_owned()), target: r.target.clone(), fields: Fields::new() })
            })
            .collect();
    }
    r.fingerprint = match attr("fingerprint").and_then(|v| v.as_str().and_then(Fingerprint::from_hex)) {
        Some(fp) => fp,
        None => Fingerprint::compute(level, &r.target, r.file.as_deref(), r.line, b""),
    };
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_line_refuses_the_body_and_names_the_line() {
        let body = b"{\"level\":\"ERROR\",\"target\":\"a\",\"message\":\"ok\"}\n\n{\"level\":\"LOUD\"}\n";
        let e = parse_ndjson(body).unwrap_err();
        assert_eq!(e.at, 3);
        assert!(parse_ndjson(b"{\"level\":\"ERROR\"} trailing").is_err());
        assert_eq!(parse_ndjson(b"\n \n").unwrap().len(), 0);
    }

    #[test]
    fn otlp_severity_numbers_map_to_levels() {
        assert_eq!(severity(Some(17), None), Level::ERROR);
        assert_eq!(severity(Some(21), None), Level::ERROR);
        assert_eq!(severity(Some(13), None), Level::WARN);
        assert_eq!(severity(Some(9), None), Level::INFO);
        assert_eq!(severity(Some(5), None), Level::DEBUG);
        assert_eq!(severity(Some(1), None), Level::TRACE);
        assert_eq!(severity(None, Some("warn")), Level::WARN);
    }
}
