//! Turning records into request bodies: the JSON record shape and every [`Encoding`].

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use watchbell_core::json::{self, write_next_key as key, JsonWriter};
use watchbell_core::text::{truncate_bytes, MARKER};
use watchbell_core::{Level, Record, Value};

/// How a batch of records is written on the wire. See the [crate docs](crate) for each shape.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Encoding {
    /// One JSON record per line, each line ending in `\n` (`application/x-ndjson`): Vector,
    /// Fluent Bit, Logstash's `http` input, custom receivers. The default.
    Ndjson,
    /// One JSON array of records (`application/json`).
    JsonArray,
    /// Grafana Loki's JSON push (`/loki/api/v1/push`): one stream per distinct label set.
    Loki {
        /// The labels, chosen from a small fixed set to keep cardinality low (at least one).
        labels: Vec<LokiLabel>,
    },
    /// Elasticsearch / OpenSearch `_bulk`: a `create` action line then the document, per record.
    ElasticBulk {
        /// The index or data stream in each action line; empty: none (the URL names it,
        /// `/<index>/_bulk`).
        index: String,
    },
    /// OTLP/HTTP JSON logs (`/v1/logs`), for any OpenTelemetry collector.
    Otlp {
        /// The resource's `service.name`.
        service_name: String,
    },
    /// The standard library's `HTTPHandler` form: one request per record, url-encoded, in the
    /// query string (`GET`) or the body (`POST`).
    Form {
        /// `GET` or `POST`.
        method: FormMethod,
    },
}

impl Encoding {
    /// Loki with the labels `app` and `level`.
    pub fn loki() -> Self {
        Encoding::Loki { labels: vec![LokiLabel::App, LokiLabel::Level] }
    }

    /// `_bulk` into `index` (a data stream or an index).
    pub fn elastic_bulk(index: impl Into<String>) -> Self {
        Encoding::ElasticBulk { index: index.into() }
    }

    /// OTLP/HTTP JSON with this `service.name`.
    pub fn otlp(service_name: impl Into<String>) -> Self {
        Encoding::Otlp { service_name: service_name.into() }
    }

    pub(crate) fn content_type(&self) -> &'static str {
        match self {
            Encoding::Ndjson | Encoding::ElasticBulk { .. } => "application/x-ndjson",
            Encoding::JsonArray | Encoding::Loki { .. } | Encoding::Otlp { .. } => "application/json",
            Encoding::Form { .. } => "application/x-www-form-urlencoded",
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Encoding::Ndjson | Encoding::JsonArray | Encoding::Form { .. } => "collector",
            Encoding::Loki { .. } => "loki",
            Encoding::ElasticBulk { .. } => "elasticsearch",
            Encoding::Otlp { .. } => "otlp collector",
        }
    }
}

/// A Loki stream label. Only these four exist: everything else goes in the line and in
/// structured metadata, so that streams stay few.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LokiLabel {
    /// `app`: the builder's [`app`](crate::HttpBuilder::app) (left out when unset).
    App,
    /// `level`: `error`, `warn`, `info`, `debug`, `trace`.
    Level,
    /// `target`: the record's target.
    Target,
    /// `host`: the builder's [`host`](crate::HttpBuilder::host).
    Host,
}

impl LokiLabel {
    fn name(self) -> &'static str {
        match self {
            LokiLabel::App => "app",
            LokiLabel::Level => "level",
            LokiLabel::Target => "target",
            LokiLabel::Host => "host",
        }
    }
}

/// The method of [`Encoding::Form`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormMethod {
    /// The record in the query string.
    Get,
    /// The record in an `application/x-www-form-urlencoded` body.
    Post,
}

/// The largest Loki line (Loki's default `max_line_size` is 256 KB).
pub(crate) const LOKI_MAX_LINE: usize = 256 * 1024;
/// The largest message in a `GET` form request (URLs are short).
pub(crate) const FORM_GET_MAX_MESSAGE: usize = 4 * 1024;
/// The largest Loki label value, in bytes (Loki counts 2,048 characters).
const LOKI_MAX_LABEL: usize = 2048;

/// What every record is serialized with besides itself.
#[derive(Clone, Debug, Default)]
pub(crate) struct Context {
    pub app: Option<String>,
    pub host: Option<String>,
}

fn level_lower(l: Level) -> &'static str {
    match l {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        _ => "trace",
    }
}

/// OpenTelemetry severity numbers.
pub(crate) fn severity_number(l: Level) -> u8 {
    match l {
        Level::ERROR => 17,
        Level::WARN => 13,
        Level::INFO => 9,
        Level::DEBUG => 5,
        _ => 1,
    }
}

pub(crate) fn unix_nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// The record shape, serialized with `time_key` for the time (`time`, or `@timestamp` for
/// Elasticsearch) and `message` possibly shortened: the reference the hand-written
/// [`shape`] is checked against.
#[cfg(test)]
struct Shape<'a> {
    r: &'a Record,
    cx: &'a Context,
    time_key: &'static str,
    message: &'a str,
}

#[cfg(test)]
impl Serialize for Shape<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.r;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(self.time_key, &watchbell_core::time::rfc3339(r.time))?;
        m.serialize_entry("level", r.level.as_str())?;
        m.serialize_entry("target", r.target.as_ref())?;
        if let Some(v) = &r.module {
            m.serialize_entry("module", v.as_ref())?;
        }
        if let Some(v) = &r.file {
            m.serialize_entry("file", v.as_ref())?;
        }
        if let Some(v) = r.line {
            m.serialize_entry("line", &v)?;
        }
        m.serialize_entry("message", self.message)?;
        m.serialize_entry("fields", &r.fields)?;
        m.serialize_entry("spans", &Spans(r))?;
        if let Some(t) = &r.thread_name {
            m.serialize_entry("thread", t.as_ref())?;
        }
        m.serialize_entry("pid", &r.pid)?;
        m.serialize_entry("fingerprint", &r.fingerprint.to_hex())?;
        if let Some(a) = &self.cx.app {
            m.serialize_entry("app", a)?;
        }
        if let Some(h) = &self.cx.host {
            m.serialize_entry("host", h)?;
        }
        if r.suppressed > 0 {
            m.serialize_entry("suppressed", &r.suppressed)?;
        }
        m.end()
    }
}

struct Spans<'a>(&'a Record);

impl Serialize for Spans<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.spans.len()))?;
        for sp in &self.0.spans {
            seq.serialize_element(&SpanShape(sp))?;
        }
        seq.end()
    }
}

struct SpanShape<'a>(&'a watchbell_core::SpanRecord);

impl Serialize for SpanShape<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("name", self.0.name.as_ref())?;
        m.serialize_entry("fields", &self.0.fields)?;
        m.end()
    }
}

/// Appends the JSON record shape of `r` to `out`.
pub(crate) fn write_record(out: &mut String, r: &Record, cx: &Context) {
    shape(&mut JsonWriter::new(), out, r, cx, "time", &r.message);
}

/// Appends the record shape of `r`, with `time_key` for the time and `message` for the
/// message, written with core's [`json`] functions: the bytes serde_json writes for the same
/// shape (same key order, same escaping, same numbers), with the time's text reused while the
/// records `w` writes share a second.
pub(crate) fn shape(w: &mut JsonWriter, out: &mut String, r: &Record, cx: &Context, time_key: &str, message: &str) {
    out.push_str("{\"");
    out.push_str(time_key);
    out.push_str("\":");
    w.write_time(out, r.time);
    key(out, "level");
    json::write_str(out, r.level.as_str());
    key(out, "target");
    json::write_str(out, &r.target);
    if let Some(v) = &r.module {
        key(out, "module");
        json::write_str(out, v);
    }
    if let Some(v) = &r.file {
        key(out, "file");
        json::write_str(out, v);
    }
    if let Some(v) = r.line {
        key(out, "line");
        json::write_u64(out, u64::from(v));
    }
    key(out, "message");
    json::write_str(out, message);
    key(out, "fields");
    json::write_fields(out, &r.fields);
    key(out, "spans");
    out.push('[');
    for (i, sp) in r.spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json::write_str(out, &sp.name);
        key(out, "fields");
        json::write_fields(out, &sp.fields);
        out.push('}');
    }
    out.push(']');
    if let Some(t) = &r.thread_name {
        key(out, "thread");
        json::write_str(out, t);
    }
    key(out, "pid");
    json::write_u64(out, u64::from(r.pid));
    key(out, "fingerprint");
    json::write_fingerprint(out, r.fingerprint);
    if let Some(a) = &cx.app {
        key(out, "app");
        json::write_str(out, a);
    }
    if let Some(h) = &cx.host {
        key(out, "host");
        json::write_str(out, h);
    }
    if r.suppressed > 0 {
        key(out, "suppressed");
        json::write_u64(out, r.suppressed);
    }
    out.push('}');
}

/// The JSON record shape of `r` as a string.
pub fn record_json(r: &Record, app: Option<&str>, host: Option<&str>) -> String {
    let cx = Context { app: app.map(str::to_owned), host: host.map(str::to_owned) };
    let mut out = String::new();
    write_record(&mut out, r, &cx);
    out
}

/// Encodes records (not the form encoding, which sends one request per record).
pub(crate) fn encode(enc: &Encoding, records: &[&Record], cx: &Context) -> Vec<u8> {
    let mut out = String::with_capacity(records.len() * 384);
    let mut w = JsonWriter::new();
    match enc {
        Encoding::Ndjson | Encoding::Form { .. } => {
            for r in records {
                shape(&mut w, &mut out, r, cx, "time", &r.message);
                out.push('\n');
            }
        }
        Encoding::JsonArray => {
            out.push('[');
            for (i, r) in records.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                shape(&mut w, &mut out, r, cx, "time", &r.message);
            }
            out.push(']');
        }
        Encoding::ElasticBulk { index } => {
            let action = if index.is_empty() {
                "{\"create\":{}}\n".to_owned()
            } else {
                let mut a = "{\"create\":{\"_index\":".to_owned();
                json::write_str(&mut a, index);
                a.push_str("}}\n");
                a
            };
            for r in records {
                out.push_str(&action);
                shape(&mut w, &mut out, r, cx, "@timestamp", &r.message);
                out.push('\n');
            }
        }
        Encoding::Loki { labels } => {
            let mut body = out.into_bytes();
            encode_loki(&mut body, labels, records, cx);
            return body;
        }
        Encoding::Otlp { service_name } => {
            let mut body = out.into_bytes();
            encode_otlp(&mut body, service_name, records, cx);
            return body;
        }
    }
    out.into_bytes()
}

/// A stream's label set, in the configured order.
type Labels = Vec<(&'static str, String)>;

fn loki_labels(labels: &[LokiLabel], r: &Record, cx: &Context) -> Labels {
    let mut out = Vec::with_capacity(labels.len());
    for l in labels {
        let v = match l {
            LokiLabel::App => cx.app.clone(),
            LokiLabel::Level => Some(level_lower(r.level).to_owned()),
            LokiLabel::Target => Some(r.target.to_string()),
            LokiLabel::Host => cx.host.clone(),
        };
        // An empty value is no label at all for Loki (as for Prometheus): left out.
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            if !out.iter().any(|(n, _)| *n == l.name()) {
                out.push((l.name(), truncate_bytes(&v, LOKI_MAX_LABEL, "…").into_owned()));
            }
        }
    }
    if out.is_empty() {
        // Loki refuses a stream without labels.
        out.push(("level", level_lower(r.level).to_owned()));
    }
    out
}

/// The Loki line: the JSON record shape, the message shortened if the line would pass Loki's
/// `max_line_size`.
fn loki_line(r: &Record, cx: &Context) -> String {
    let mut out = String::with_capacity(256 + r.message.len());
    write_record(&mut out, r, cx);
    if out.len() > LOKI_MAX_LINE {
        // Escaping can grow the message up to 6 times: shrink in proportion until it fits.
        let mut budget = r.message.len();
        loop {
            budget = ((budget as f64) * (LOKI_MAX_LINE as f64 / out.len() as f64) * 0.98) as usize;
            out.clear();
            let m = truncate_bytes(&r.message, budget.max(MARKER.len() + 1), MARKER);
            shape(&mut JsonWriter::new(), &mut out, r, cx, "time", &m);
            if out.len() <= LOKI_MAX_LINE || budget <= MARKER.len() + 1 {
                break;
            }
        }
    }
    out
}

fn encode_loki(out: &mut Vec<u8>, labels: &[LokiLabel], records: &[&Record], cx: &Context) {
    // Streams in the order their first record arrived; entries in record order.
    let mut streams: Vec<(Labels, Vec<usize>)> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let l = loki_labels(labels, r, cx);
        match streams.iter_mut().find(|(k, _)| *k == l) {
            Some((_, v)) => v.push(i),
            None => streams.push((l, vec![i])),
        }
    }
    // Loki refuses (or drops) entries whose time goes backwards within a stream of one push:
    // records of concurrent threads, or a rate limit's summary stamped with the first
    // suppressed record's time, can arrive out of order. Each stream is sorted by time,
    // stably (equal times keep their order).
    for (_, idx) in &mut streams {
        idx.sort_by_key(|&i| records[i].time);
    }
    let _ = write!(out, "{{\"streams\":[");
    for (si, (labels, idx)) in streams.iter().enumerate() {
        if si > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"stream\":{");
        for (li, (k, v)) in labels.iter().enumerate() {
            if li > 0 {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut *out, k);
            out.push(b':');
            let _ = serde_json::to_writer(&mut *out, v);
        }
        out.extend_from_slice(b"},\"values\":[");
        for (ei, &i) in idx.iter().enumerate() {
            let r = records[i];
            if ei > 0 {
                out.push(b',');
            }
            let _ = write!(out, "[\"{}\",", unix_nanos(r.time));
            let _ = serde_json::to_writer(&mut *out, &loki_line(r, cx));
            out.push(b',');
            let mut meta = serde_json::Map::new();
            meta.insert("fingerprint".into(), r.fingerprint.to_hex().into());
            for key in ["trace_id", "span_id", "request_id"] {
                if let Some(v) = r.field(key) {
                    meta.insert(key.into(), v.to_string().into());
                }
            }
            let _ = serde_json::to_writer(&mut *out, &meta);
            out.push(b']');
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
}

fn any_value(v: &Value) -> serde_json::Value {
    use serde_json::json;
    match v {
        Value::Str(s) | Value::Debug(s) | Value::Display(s) => json!({"stringValue": s}),
        Value::I64(i) => json!({"intValue": i.to_string()}),
        Value::U64(u) if i64::try_from(*u).is_ok() => json!({"intValue": u.to_string()}),
        Value::F64(f) if f.is_finite() => json!({"doubleValue": f}),
        Value::Bool(b) => json!({"boolValue": b}),
        other => json!({"stringValue": other.to_string()}),
    }
}

fn attr(key: &str, v: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"key": key, "value": v})
}

fn str_attr(key: &str, v: &str) -> serde_json::Value {
    attr(key, serde_json::json!({"stringValue": v}))
}

fn hex_id(v: Option<&Value>, len: usize) -> Option<String> {
    let s = v?.as_str()?;
    (s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0'))
        .then(|| s.to_ascii_lowercase())
}

fn otlp_record(r: &Record) -> serde_json::Value {
    let ns = unix_nanos(r.time).to_string();
    let mut attrs = vec![str_attr("target", &r.target)];
    // The semantic conventions' names (code.*, thread.*, exception.*). A module path has no
    // convention (`code.namespace` is deprecated, and `code.function.name` names a function,
    // which tracing does not know): it is `module_path`, tracing's own word.
    if let Some(m) = &r.module {
        attrs.push(str_attr("module_path", m));
    }
    if let Some(f) = &r.file {
        attrs.push(str_attr("code.file.path", f));
    }
    if let Some(l) = r.line {
        attrs.push(attr("code.line.number", serde_json::json!({"intValue": l.to_string()})));
    }
    if let Some(t) = &r.thread_name {
        attrs.push(str_attr("thread.name", t));
    }
    attrs.push(attr("process.pid", serde_json::json!({"intValue": r.pid.to_string()})));
    // An error event: its `error` field (the error's message, as tracing records a `dyn Error`)
    // and `backtrace` become `exception.message` and `exception.stacktrace`, and an
    // `error.type` field `exception.type`; `error.sources` (the chain) stays as it is.
    let mut mapped: Vec<&str> = Vec::new();
    for (field, key) in
        [("error", "exception.message"), ("backtrace", "exception.stacktrace"), ("error.type", "exception.type")]
    {
        if let Some(v) = r.fields.get(field) {
            attrs.push(str_attr(key, &v.to_string()));
            mapped.push(field);
        }
    }
    attrs.push(str_attr("fingerprint", &r.fingerprint.to_hex()));
    if r.suppressed > 0 {
        attrs.push(attr("suppressed", serde_json::json!({"intValue": r.suppressed.to_string()})));
    }
    if !r.spans.is_empty() {
        let names: Vec<&str> = r.spans.iter().map(|s| s.name.as_ref()).collect();
        attrs.push(str_attr("spans", &names.join(":")));
    }
    // Keys are unique in a logRecord (OTLP requires it). The record's own attributes above
    // come first; a field whose name is taken is sent as `field.<name>` (prefixed again while
    // that is taken too). Span fields follow the event's own, innermost span first; a span
    // field named like the event's or an inner span's field is left out (never overriding).
    let mut seen: std::collections::HashSet<String> =
        attrs.iter().filter_map(|a| a["key"].as_str().map(str::to_owned)).collect();
    let mut names: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let fields = r
        .fields
        .iter()
        .filter(|(k, _)| !mapped.contains(k))
        .chain(r.spans.iter().rev().flat_map(|sp| sp.fields.iter()));
    for (k, v) in fields {
        if !names.insert(k) || mapped.contains(&k) {
            continue;
        }
        let mut key = k.to_owned();
        while seen.contains(&key) {
            key.insert_str(0, "field.");
        }
        attrs.push(attr(&key, any_value(v)));
        seen.insert(key);
    }
    let mut lr = serde_json::json!({
        "timeUnixNano": ns,
        "observedTimeUnixNano": ns,
        "severityNumber": severity_number(r.level),
        "severityText": r.level.as_str(),
        "body": {"stringValue": r.message},
        "attributes": attrs,
    });
    if let Some(o) = lr.as_object_mut() {
        if let Some(t) = hex_id(r.field("trace_id"), 32) {
            o.insert("traceId".into(), t.into());
        }
        if let Some(s) = hex_id(r.field("span_id"), 16) {
            o.insert("spanId".into(), s.into());
        }
    }
    lr
}

fn encode_otlp(out: &mut Vec<u8>, service: &str, records: &[&Record], cx: &Context) {
    let mut res = vec![str_attr("service.name", service)];
    if let Some(h) = &cx.host {
        res.push(str_attr("host.name", h));
    }
    if let Some(a) = &cx.app {
        res.push(str_attr("app", a));
    }
    let logs: Vec<serde_json::Value> = records.iter().map(|r| otlp_record(r)).collect();
    let body = serde_json::json!({"resourceLogs": [{
        "resource": {"attributes": res},
        "scopeLogs": [{
            "scope": {"name": "watchbell", "version": env!("CARGO_PKG_VERSION")},
            "logRecords": logs,
        }],
    }]});
    let _ = serde_json::to_writer(out, &body);
}

/// Percent-encodes for `application/x-www-form-urlencoded`.
/// One record as url-encoded pairs: the record shape's keys, `fields` and `spans` as compact
/// JSON. `max_message` shortens the message (for `GET`).
pub(crate) fn encode_form(r: &Record, cx: &Context, max_message: Option<usize>, map: Option<&FormMap>) -> String {
    match map {
        Some(map) => {
            let mut pairs = (map.0)(r);
            if let Some(m) = max_message {
                // A URL stays short whatever the function chose.
                for (_, v) in &mut pairs {
                    if v.len() > m {
                        *v = truncate_bytes(v, m, MARKER).into_owned();
                    }
                }
            }
            watchbell_core::text::form_urlencode(&pairs)
        }
        None => watchbell_core::text::form_urlencode(&form_pairs(r, cx, max_message)),
    }
}

/// The keys of the default form pairs, in their order.
pub const FORM_KEYS: [&str; 14] = [
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
    "fingerprint",
    "app",
    "host",
    "suppressed",
];

/// The default form pairs of `r` (the keys of [`FORM_KEYS`] that apply).
pub(crate) fn form_pairs(r: &Record, cx: &Context, max_message: Option<usize>) -> Vec<(&'static str, String)> {
    let message = match max_message {
        Some(m) => truncate_bytes(&r.message, m, MARKER),
        None => std::borrow::Cow::Borrowed(&*r.message),
    };
    let mut pairs: Vec<(&'static str, String)> = vec![
        ("time", watchbell_core::time::rfc3339(r.time)),
        ("level", r.level.as_str().to_owned()),
        ("target", r.target.to_string()),
    ];
    if let Some(m) = &r.module {
        pairs.push(("module", m.to_string()));
    }
    if let Some(f) = &r.file {
        pairs.push(("file", f.to_string()));
    }
    if let Some(l) = r.line {
        pairs.push(("line", l.to_string()));
    }
    pairs.push(("message", message.into_owned()));
    pairs.push(("fields", serde_json::to_string(&r.fields).unwrap_or_default()));
    pairs.push(("spans", serde_json::to_string(&Spans(r)).unwrap_or_default()));
    if let Some(t) = &r.thread_name {
        pairs.push(("thread", t.to_string()));
    }
    pairs.push(("fingerprint", r.fingerprint.to_hex()));
    if let Some(a) = &cx.app {
        pairs.push(("app", a.clone()));
    }
    if let Some(h) = &cx.host {
        pairs.push(("host", h.clone()));
    }
    if r.suppressed > 0 {
        pairs.push(("suppressed", r.suppressed.to_string()));
    }
    pairs
}

/// The function choosing a record's form pairs (see
/// [`HttpBuilder::map_record`](crate::HttpBuilder::map_record)).
pub(crate) type MapRecordFn = dyn Fn(&Record) -> Vec<(String, String)> + Send + Sync;

/// A [`MapRecordFn`] that can be cloned and shown.
#[derive(Clone)]
pub(crate) struct FormMap(pub std::sync::Arc<MapRecordFn>);

impl std::fmt::Debug for FormMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FormMap(..)")
    }
}

/// The pairs named in `keys`, in that order: default keys ([`FORM_KEYS`]) and `fields.NAME`
/// (the event's field `NAME` as text); a key the record does not have is left out.
pub(crate) fn selected_pairs(r: &Record, cx: &Context, keys: &[String]) -> Vec<(String, String)> {
    let all = form_pairs(r, cx, None);
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        if let Some(name) = k.strip_prefix("fields.") {
            if let Some(v) = r.fields.get(name) {
                let text = match v.as_str() {
                    Some(s) => s.to_owned(),
                    None => v.to_string(),
                };
                out.push((k.clone(), text));
            }
        } else if let Some((_, v)) = all.iter().find(|(n, _)| n == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_escaping() {
        assert_eq!(watchbell_core::text::form_urlencode(&[("k", "a b&c=d/é")]), "k=a+b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn loki_line_is_cut_to_the_limit() {
        let r = Record::new(Level::INFO, "t", "é\u{1}".repeat(300_000));
        let line = loki_line(&r, &Context::default());
        assert!(line.len() <= LOKI_MAX_LINE, "{}", line.len());
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let m = v["message"].as_str().unwrap();
        assert!(m.ends_with(MARKER) && m.len() > 90_000, "{}", m.len());
    }

    /// The hand-written writer gives serde_json's bytes for the record shape: escapes of
    /// every control character, quotes and backslashes, non-ASCII text, every value type
    /// (non-finite floats as `null`, 128-bit integers as strings), spans, optional keys, and
    /// times in the same second, in another second and before 1970.
    #[test]
    fn hand_written_json_matches_serde_json() {
        use std::time::Duration;
        use watchbell_core::{Fields, Fingerprint, SpanRecord};
        let control: String =
            (0u8..0x20).map(char::from).chain("\"\\\u{7f}é€😀/\u{2028}\u{2029}\u{feff}".chars()).collect();
        let mut base = Record::new(Level::WARN, "app::db", format!("m {control} end"));
        base.fields.set("s", Value::Str(control.clone()));
        base.fields.set("d", Value::Debug("Some(\"x\")".into()));
        base.fields.set("i", Value::I64(i64::MIN));
        base.fields.set("u", Value::U64(u64::MAX));
        base.fields.set("big", Value::I128(Box::new(i128::MIN)));
        base.fields.set("ubig", Value::U128(Box::new(u128::MAX)));
        base.fields.set("f", Value::F64(0.1));
        base.fields.set("f2", Value::F64(1e300));
        base.fields.set("f3", Value::F64(-0.0));
        base.fields.set("nan", Value::F64(f64::NAN));
        base.fields.set("inf", Value::F64(f64::NEG_INFINITY));
        base.fields.set("t", Value::Bool(true));
        base.fields.set("n", Value::Bool(false));
        base.fields.set(control.clone(), Value::U64(1));
        let mut sf = Fields::new();
        sf.set("id", Value::U64(7));
        base.spans = [
            std::sync::Arc::new(SpanRecord { name: "outer\"".into(), target: "t".into(), fields: sf }),
            std::sync::Arc::new(SpanRecord { name: "inner".into(), target: "t".into(), fields: Fields::new() }),
        ]
        .into_iter()
        .collect();
        base.fingerprint = Fingerprint(0x00ab_cdef_0123_4567);
        let mut variants = vec![base.clone()];
        let mut r = base.clone();
        r.module = Some("app::db::pool".into());
        r.file = Some("src/db\\pool.rs".into());
        r.line = Some(u32::MAX);
        r.thread_name = Some("worker \"1\"".into());
        r.suppressed = 41;
        r.pid = u32::MAX;
        variants.push(r.clone());
        let mut bare = Record::new(Level::TRACE, "", "");
        bare.thread_name = None;
        variants.push(bare);
        let t0 = UNIX_EPOCH + Duration::new(1_700_000_000, 999_999_999);
        for (i, secs) in [(0, 0), (1, 0), (2, 1), (3, 86_400 * 400)] {
            let mut x = r.clone();
            x.time = t0 + Duration::new(secs, 0) + Duration::from_micros(i * 7);
            variants.push(x);
        }
        for t in [UNIX_EPOCH, UNIX_EPOCH - Duration::from_secs(1), UNIX_EPOCH + Duration::from_nanos(1_999)] {
            let mut x = r.clone();
            x.time = t;
            variants.push(x);
        }
        let cxs = [Context::default(), Context { app: Some("a\u{1}pp".into()), host: Some("hôst".into()) }];
        for cx in &cxs {
            let mut w = JsonWriter::new();
            for (k, r) in variants.iter().enumerate() {
                for key in ["time", "@timestamp"] {
                    let mut ours = String::new();
                    shape(&mut w, &mut ours, r, cx, key, &r.message);
                    let theirs = serde_json::to_string(&Shape { r, cx, time_key: key, message: &r.message }).unwrap();
                    assert_eq!(ours, theirs, "variant {k}");
                }
            }
        }
    }
}
