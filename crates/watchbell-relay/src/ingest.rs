//! The inverse of watchbell-http's encoders: records from the JSON record shape (NDJSON or a
//! JSON array) and from OTLP/HTTP JSON logs.
//!
//! # Cost per record
//!
//! The relay reads every record a fleet logs, so the NDJSON path is built to allocate little:
//! strings are borrowed from the body while a line is read, and the record is built once
//! (no throwaway record, no fingerprint computed when the publisher sent one). Targets,
//! modules, files, span names and field names repeat from record to record: they are kept
//! once for the life of the process ([`names`]), up to 1 MiB in all, and shared by every
//! record that names them; past that budget (a peer sending ever new names) they are copied
//! into each record that has them. Messages and text field values are copied once into the
//! record. A body that is UTF-8 as a whole is checked once, and its lines read as text
//! (serde_json would otherwise check each string again).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use watchbell_core::record::Str;
use watchbell_core::{Fields, Fingerprint, Level, Origin, Record, SpanRecord, Value};

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
    ParseError { at, message: message.to_string() }
}

/// A JSON error as a [`ParseError`]: what kind of error and where, never serde_json's own
/// text, which quotes the value it could not take (`invalid type: string "…"`).
fn json_err(at: usize, e: &serde_json::Error) -> ParseError {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax => "not valid JSON",
        Category::Data => "a value of the wrong type or shape, or a required one missing",
        Category::Eof => "the JSON ends too early",
        Category::Io => "the body could not be read",
    };
    err(at, format_args!("{what} (line {}, column {})", e.line(), e.column()))
}

/// The names a relay keeps once for the life of the process (targets, modules, files, span
/// and field names): the first ones seen, up to [`MAX_BYTES`](names::MAX_BYTES) in all, each
/// at most 256 bytes long. A name past the budget is copied into each record that has it.
pub mod names {
    use std::borrow::Cow;
    use std::cell::RefCell;
    use std::collections::HashSet;
    use std::hash::{BuildHasherDefault, Hasher};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The most bytes (names and their bookkeeping) kept, across all threads.
    pub const MAX_BYTES: usize = 1 << 20;
    const MAX_LEN: usize = 256;
    /// Bookkeeping counted per name (its slot in a set, its allocation).
    const OVERHEAD: usize = 32;

    static KEPT: AtomicUsize = AtomicUsize::new(0);

    /// A multiply-rotate hash (names are short; SipHash would cost more than the lookup saves).
    #[derive(Default)]
    struct Quick(u64);

    impl Hasher for Quick {
        fn write(&mut self, bytes: &[u8]) {
            for chunk in bytes.chunks(8) {
                let mut w = [0u8; 8];
                w[..chunk.len()].copy_from_slice(chunk);
                self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x517c_c1b7_2722_0a95);
            }
        }
        fn finish(&self) -> u64 {
            self.0
        }
    }

    thread_local! {
        static SET: RefCell<HashSet<&'static str, BuildHasherDefault<Quick>>> = RefCell::default();
    }

    /// `s` as a name shared by every record (borrowed from the kept names), or an owned copy
    /// once the budget is spent.
    pub fn intern(s: &str) -> Cow<'static, str> {
        if s.len() > MAX_LEN {
            return Cow::Owned(s.to_owned());
        }
        SET.with(|set| {
            let mut set = set.borrow_mut();
            if let Some(&kept) = set.get(s) {
                return Cow::Borrowed(kept);
            }
            let cost = s.len() + OVERHEAD;
            if KEPT
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |k| (k + cost <= MAX_BYTES).then_some(k + cost))
                .is_err()
            {
                return Cow::Owned(s.to_owned());
            }
            let kept: &'static str = Box::leak(s.to_owned().into_boxed_str());
            set.insert(kept);
            Cow::Borrowed(kept)
        })
    }

    /// Bytes of the budget spent so far.
    pub fn kept_bytes() -> usize {
        KEPT.load(Ordering::Relaxed)
    }
}

/// A string borrowed from the body when it has no escapes, copied otherwise.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Field names and values, the names kept once (see [`names`]); a name given twice keeps
/// its last value.
#[derive(Default)]
struct NamedFields(Vec<(Str, Value)>);

impl<'de> Deserialize<'de> for NamedFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NamedFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of field names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NamedFields, A::Error> {
                let mut out: Vec<(Str, Value)> = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(Text(k)) = map.next_key::<Text<'de>>()? {
                    let v: Value = map.next_value()?;
                    match out.iter_mut().find(|(n, _)| *n == *k) {
                        Some(slot) => slot.1 = v,
                        None => out.push((names::intern(&k), v)),
                    }
                }
                Ok(NamedFields(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl NamedFields {
    /// The fields with exactly the room they need plus `extra`.
    fn into_fields(self, extra: usize) -> Fields {
        let mut f = Fields::with_capacity(self.0.len() + extra);
        for (n, v) in self.0 {
            f.push_unique(n, v);
        }
        f
    }
}

/// The JSON record shape as watchbell-http writes it (`time` or `@timestamp`).
#[derive(Deserialize)]
struct Shape<'a> {
    #[serde(default, borrow)]
    time: Option<Text<'a>>,
    #[serde(default, borrow, rename = "@timestamp")]
    timestamp: Option<Text<'a>>,
    #[serde(borrow)]
    level: Text<'a>,
    #[serde(default, borrow)]
    target: Option<Text<'a>>,
    #[serde(default, borrow)]
    module: Option<Text<'a>>,
    #[serde(default, borrow)]
    file: Option<Text<'a>>,
    #[serde(default)]
    line: Option<u32>,
    #[serde(default)]
    message: String,
    #[serde(default)]
    fields: NamedFields,
    #[serde(default, borrow)]
    spans: Vec<SpanShape<'a>>,
    #[serde(default, borrow)]
    thread: Option<Text<'a>>,
    #[serde(default)]
    pid: u32,
    #[serde(default, borrow)]
    fingerprint: Option<Text<'a>>,
    #[serde(default, borrow)]
    app: Option<Text<'a>>,
    #[serde(default, borrow)]
    host: Option<Text<'a>>,
    #[serde(default)]
    suppressed: u64,
}

#[derive(Deserialize)]
struct SpanShape<'a> {
    #[serde(borrow)]
    name: Text<'a>,
    #[serde(default)]
    fields: NamedFields,
}

fn parse_level(s: &str) -> Option<Level> {
    // The spelling watchbell-http writes first (no lowercase copy), then every other one.
    match s {
        "ERROR" => Some(Level::ERROR),
        "WARN" => Some(Level::WARN),
        "INFO" => Some(Level::INFO),
        "DEBUG" => Some(Level::DEBUG),
        "TRACE" => Some(Level::TRACE),
        _ => watchbell_core::filter::parse_level(s),
    }
}

/// What a body's lines share: the last thread name seen, handed out again while it repeats.
#[derive(Default)]
struct Reader {
    thread: Option<Arc<str>>,
}

impl Reader {
    fn thread(&mut self, name: &str) -> Arc<str> {
        match &self.thread {
            Some(t) if **t == *name => Arc::clone(t),
            _ => {
                let t: Arc<str> = Arc::from(name);
                self.thread = Some(Arc::clone(&t));
                t
            }
        }
    }

    fn record(&mut self, s: Shape<'_>, at: usize) -> Result<Record, ParseError> {
        let level =
            parse_level(&s.level.0).ok_or_else(|| err(at, "level: expected ERROR, WARN, INFO, DEBUG or TRACE"))?;
        let time = match s.time.as_ref().or(s.timestamp.as_ref()) {
            Some(t) => watchbell_core::time::parse_rfc3339(&t.0).ok_or_else(|| err(at, "time: expected RFC 3339"))?,
            None => SystemTime::now(),
        };
        let target: Str = s.target.map_or(Cow::Borrowed(""), |t| names::intern(&t.0));
        let file = s.file.map(|f| names::intern(&f.0));
        // The origin: `app` and `host` become fields of those names (a field the record
        // already has keeps its value).
        let app = s.app.filter(|v| !v.0.is_empty());
        let host = s.host.filter(|v| !v.0.is_empty());
        let mut fields = s.fields.into_fields(usize::from(app.is_some()) + usize::from(host.is_some()));
        for (name, value) in [("app", app), ("host", host)] {
            if let Some(v) = value {
                if fields.get(name).is_none() {
                    fields.push_unique(name, Value::Str(v.0.into_owned()));
                }
            }
        }
        let fingerprint = match s.fingerprint.as_ref().and_then(|f| Fingerprint::from_hex(&f.0)) {
            Some(fp) => fp,
            None => Fingerprint::compute(level, &target, file.as_deref(), s.line, b""),
        };
        let spans = s
            .spans
            .into_iter()
            .map(|sp| {
                Arc::new(SpanRecord {
                    name: names::intern(&sp.name.0),
                    target: target.clone(),
                    fields: sp.fields.into_fields(0),
                })
            })
            .collect();
        Ok(Record {
            time,
            level,
            module: s.module.map(|m| names::intern(&m.0)),
            file,
            line: s.line,
            message: s.message.into(),
            fields,
            spans,
            thread_name: s.thread.map(|t| self.thread(&t.0)),
            thread_id: 0,
            pid: s.pid,
            fingerprint,
            suppressed: s.suppressed,
            origin: Origin::default(),
            target,
        })
    }

    fn line(&mut self, line: &[u8], at: usize) -> Result<Record, ParseError> {
        let shape: Shape<'_> = serde_json::from_slice(line).map_err(|e| json_err(at, &e))?;
        self.record(shape, at)
    }

    fn line_str(&mut self, line: &str, at: usize) -> Result<Record, ParseError> {
        let shape: Shape<'_> = serde_json::from_str(line).map_err(|e| json_err(at, &e))?;
        self.record(shape, at)
    }
}

/// The records of a body, and what was wrong with the rest of it.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The records that were read.
    pub records: Vec<Record>,
    /// Records (lines) that could not be read.
    pub invalid: usize,
    /// The first few problems (at most 10), each naming its line.
    pub errors: Vec<ParseError>,
}

impl Parsed {
    fn fail(&mut self, e: ParseError) {
        self.invalid += 1;
        if self.errors.len() < 10 {
            self.errors.push(e);
        }
    }
}

/// Records from NDJSON (one JSON record shape per line; blank lines are skipped) or, when the
/// body starts with `[`, from a JSON array of record shapes, keeping the good ones: a line that
/// does not parse, or has a field of the wrong type, an unknown level or a bad time, is left
/// out and counted. A JSON array is one JSON text: a syntax error or a wrong type anywhere in
/// it refuses it whole (one problem, at 0); an unknown level or bad time leaves out only that
/// element.
pub fn read_ndjson(body: &[u8]) -> Parsed {
    let mut out = Parsed::default();
    let mut reader = Reader::default();
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    if start.is_some_and(|i| body[i] == b'[') {
        match serde_json::from_slice::<Vec<Shape<'_>>>(body) {
            Ok(shapes) => {
                out.records.reserve_exact(shapes.len());
                for (i, s) in shapes.into_iter().enumerate() {
                    match reader.record(s, i + 1) {
                        Ok(r) => out.records.push(r),
                        Err(e) => out.fail(e),
                    }
                }
            }
            Err(e) => out.fail(err(0, e)),
        }
        return out;
    }
    // Room for every line at once (no regrowth copying the records made so far).
    out.records.reserve_exact(memchr::memchr_iter(b'\n', body).count() + 1);
    // A body that is UTF-8 as a whole (the usual case) is checked once, not string by string.
    let text = std::str::from_utf8(body).ok();
    let mut start = 0;
    let mut at = 0;
    while start <= body.len() {
        let end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |p| start + p);
        at += 1;
        let line = &body[start..end];
        if !line.iter().all(u8::is_ascii_whitespace) {
            // A newline is a character boundary: the slice of the text is the line.
            let read = match text {
                Some(t) => reader.line_str(&t[start..end], at),
                None => reader.line(line, at),
            };
            match read {
                Ok(r) => out.records.push(r),
                Err(e) => out.fail(e),
            }
        }
        start = end + 1;
    }
    out
}

/// Records from NDJSON or a JSON array, as [`read_ndjson`], all or nothing: the first problem
/// refuses the body.
pub fn parse_ndjson(body: &[u8]) -> Result<Vec<Record>, ParseError> {
    let mut parsed = read_ndjson(body);
    if parsed.errors.is_empty() {
        Ok(parsed.records)
    } else {
        Err(parsed.errors.swap_remove(0))
    }
}

/// One NDJSON line (the unix socket input).
pub fn parse_line(line: &[u8], at: usize) -> Result<Record, ParseError> {
    Reader::default().line(line, at)
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
    let export: Export = serde_json::from_slice(body).map_err(|e| json_err(0, &e))?;
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
    let target: Str = attr("target").map(|v| names::intern(&v.to_string())).unwrap_or_default();
    let message = match &lr.body {
        Some(b) => match any_value(b) {
            Value::Str(s) => s,
            other => other.to_string(),
        },
        None => String::new(),
    };
    let time = nanos(lr.time_unix_nano.as_ref())
        .or_else(|| nanos(lr.observed_time_unix_nano.as_ref()))
        .unwrap_or_else(SystemTime::now);
    let module = attr("module_path").map(|v| names::intern(&v.to_string()));
    let file = attr("code.file.path").or_else(|| attr("code.filepath")).map(|v| names::intern(&v.to_string()));
    let line = attr("code.line.number").or_else(|| attr("code.lineno")).and_then(|v| v.as_u64()).map(|l| l as u32);
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
        fields.set(names::intern(name), any_value(&kv.value));
    }
    if let Some(t) = lr.trace_id.as_ref().filter(|t| !t.is_empty()) {
        fields.set("trace_id", Value::Str(t.clone()));
    }
    if let Some(s) = lr.span_id.as_ref().filter(|s| !s.is_empty()) {
        fields.set("span_id", Value::Str(s.clone()));
    }
    for (name, v) in origin {
        if fields.get(name).is_none() {
            fields.set(*name, v.clone());
        }
    }
    let spans = match attr("spans").map(|v| v.to_string()) {
        Some(names) => names
            .split(':')
            .filter(|n| !n.is_empty())
            .map(|n| {
                Arc::new(SpanRecord { name: self::names::intern(n), target: target.clone(), fields: Fields::new() })
            })
            .collect(),
        None => Vec::new(),
    };
    let fingerprint = match attr("fingerprint").and_then(|v| v.as_str().and_then(Fingerprint::from_hex)) {
        Some(fp) => fp,
        None => Fingerprint::compute(level, &target, file.as_deref(), line, b""),
    };
    Record {
        time,
        level,
        module,
        file,
        line,
        message: message.into(),
        fields,
        spans: spans.into(),
        thread_name: attr("thread.name").map(|v| Arc::from(v.to_string())),
        thread_id: 0,
        pid: attr("process.pid").and_then(|v| v.as_u64()).or(resource_pid).unwrap_or(0) as u32,
        fingerprint,
        suppressed: attr("suppressed").and_then(|v| v.as_u64()).unwrap_or(0),
        origin: Origin::default(),
        target,
    }
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
    fn read_ndjson_keeps_the_good_lines_and_counts_the_bad_ones() {
        let body = b"{\"level\":\"ERROR\",\"target\":\"a\",\"message\":\"one\"}\n\
                     {\"level\":\"LOUD\"}\n\
                     {\"level\":\"WARN\",\"line\":\"twelve\"}\n\
                     \xff\xfe not json\n\
                     {\"level\":\"INFO\",\"target\":\"a\",\"message\":\"two\"}";
        let p = read_ndjson(body);
        let messages: Vec<&str> = p.records.iter().map(|r| &*r.message).collect();
        assert_eq!(messages, ["one", "two"]);
        assert_eq!(p.invalid, 3);
        assert_eq!(p.errors.iter().map(|e| e.at).collect::<Vec<_>>(), [2, 3, 4]);
    }

    #[test]
    fn escaped_names_and_the_same_name_twice_read_as_the_record_shape_says() {
        let line = br#"{"level":"warn","target":"a\u0062c","file":"C:\\src\\x.rs","thread":"t\"1","fields":{"k":1,"k":2,"n\u00e9":"v"}}"#;
        let r = parse_line(line, 1).unwrap();
        assert_eq!(r.level, Level::WARN);
        assert_eq!(r.target, "abc");
        assert_eq!(r.file.as_deref(), Some("C:\\src\\x.rs"));
        assert_eq!(r.thread_name.as_deref(), Some("t\"1"));
        assert_eq!(r.fields.len(), 2);
        assert_eq!(r.fields.get("k"), Some(&Value::U64(2)));
        assert_eq!(r.fields.get("né"), Some(&Value::Str("v".into())));
        assert_eq!(r.fingerprint, Fingerprint::compute(Level::WARN, "abc", Some("C:\\src\\x.rs"), None, b""));
    }

    #[test]
    fn names_are_kept_once_and_the_budget_holds() {
        let a = names::intern("relay::names::test");
        let b = names::intern("relay::names::test");
        match (&a, &b) {
            (Cow::Borrowed(x), Cow::Borrowed(y)) => assert!(std::ptr::eq(*x, *y), "one copy"),
            _ => panic!("kept: {a:?} {b:?}"),
        }
        assert!(matches!(names::intern(&"x".repeat(300)), Cow::Owned(_)), "long names are not kept");
        // Spend the budget with ever new names: past it, names are copies, and the budget holds.
        let mut i = 0u64;
        while names::kept_bytes() + 300 <= names::MAX_BYTES {
            let _ = names::intern(&format!("{i:0>200}"));
            i += 1;
        }
        for j in 0..100 {
            assert!(matches!(names::intern(&format!("{j:x>200}")), Cow::Owned(_)));
        }
        assert!(names::kept_bytes() <= names::MAX_BYTES);
        assert!(matches!(names::intern("relay::names::test"), Cow::Borrowed(_)), "kept names stay");
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
