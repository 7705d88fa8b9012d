//! Logbook's record dict (`LogRecord.to_dict(json_safe=True)`) to and from a [`Record`].
//!
//! See the [crate docs](crate) for the mapping table.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value as Json};
use smallvec::SmallVec;
use watchbell_core::json;
use watchbell_core::record::{Fields, Fingerprint, Origin, Record, SpanRecord, Str, Value};
use watchbell_core::Level;

/// Logbook's level numbers (`logbook.base`).
pub mod level {
    /// `logbook.CRITICAL`.
    pub const CRITICAL: i64 = 15;
    /// `logbook.ERROR`.
    pub const ERROR: i64 = 14;
    /// `logbook.WARNING`.
    pub const WARNING: i64 = 13;
    /// `logbook.NOTICE`.
    pub const NOTICE: i64 = 12;
    /// `logbook.INFO`.
    pub const INFO: i64 = 11;
    /// `logbook.DEBUG`.
    pub const DEBUG: i64 = 10;
    /// `logbook.TRACE`.
    pub const TRACE: i64 = 9;
    /// `logbook.NOTSET`.
    pub const NOTSET: i64 = 0;
}

/// The field that keeps a Logbook level that `tracing` has no level for (`CRITICAL`, `NOTICE`),
/// so that a record passing through watchbell goes back out with it.
pub const LEVEL_FIELD: &str = "logbook_level";

/// The most bytes [`record_from_logbook_json`] accepts (16 MiB): a message beyond it is refused
/// before it is parsed.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// The most nesting of arrays and objects accepted in a message (a hostile document cannot
/// exhaust the stack).
const MAX_DEPTH: usize = 64;

/// Why a message is not a Logbook record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedRecord(String);

impl MalformedRecord {
    fn new(msg: impl Into<String>) -> Self {
        MalformedRecord(msg.into())
    }
}

impl fmt::Display for MalformedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a Logbook record: {}", self.0)
    }
}

impl std::error::Error for MalformedRecord {}

/// The `tracing` level of a Logbook level number: `CRITICAL` and `ERROR` → `ERROR`, `WARNING` →
/// `WARN`, `NOTICE` and `INFO` → `INFO`, `DEBUG` → `DEBUG`, `TRACE` and below → `TRACE`.
/// Numbers between the named ones take the next lower name (Logbook compares numbers).
pub fn level_from_logbook(n: i64) -> Level {
    match n {
        n if n >= level::ERROR => Level::ERROR,
        level::WARNING => Level::WARN,
        level::INFO..=level::NOTICE => Level::INFO,
        level::DEBUG => Level::DEBUG,
        _ => Level::TRACE,
    }
}

/// The Logbook level number of a `tracing` level: `ERROR` 14, `WARN` 13, `INFO` 11, `DEBUG` 10,
/// `TRACE` 9.
pub fn level_to_logbook(level: Level) -> i64 {
    match level {
        Level::ERROR => level::ERROR,
        Level::WARN => level::WARNING,
        Level::INFO => level::INFO,
        Level::DEBUG => level::DEBUG,
        _ => level::TRACE,
    }
}

fn value_from_json(v: &Json) -> Option<Value> {
    Some(match v {
        Json::Null => return None,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::I64(i)
            } else if let Some(u) = n.as_u64() {
                Value::U64(u)
            } else {
                Value::F64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::Str(s.clone()),
        // Lists and dicts: kept as their JSON text.
        other => Value::Str(other.to_string()),
    })
}

fn depth_ok(bytes: &[u8]) -> bool {
    // Brackets inside strings count too: an upper bound, which is what a limit needs.
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for &b in bytes {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// Formats Logbook's `msg` with its `args` and `kwargs` as `str.format` does for the plain
/// replacement fields `{}`, `{0}` and `{name}` (with `{{` and `}}` as braces). A field with a
/// conversion, format spec, attribute or index (`{0!r}`, `{x:>5}`, `{a.b}`) or one without a
/// value is left as written.
pub fn format_logbook_message(msg: &str, args: &[Json], kwargs: &Map<String, Json>) -> String {
    let text = |v: &Json| match v {
        Json::String(s) => s.clone(),
        Json::Null => "None".to_owned(),
        Json::Bool(true) => "True".to_owned(),
        Json::Bool(false) => "False".to_owned(),
        other => other.to_string(),
    };
    let mut out = String::with_capacity(msg.len());
    let mut auto = 0usize;
    let mut rest = msg;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if let Some(after) = tail.strip_prefix('}') {
            out.push('}');
            rest = after;
            continue;
        }
        let Some(end) = tail.find('}') else {
            out.push_str(tail);
            rest = "";
            break;
        };
        let name = &tail[1..end];
        let value = if name.is_empty() {
            auto += 1;
            args.get(auto - 1)
        } else if let Ok(n) = name.parse::<usize>() {
            args.get(n)
        } else if name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            kwargs.get(name)
        } else {
            None
        };
        match value {
            Some(v) => out.push_str(&text(v)),
            None => out.push_str(&tail[..=end]),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Logbook's `time`: ISO 8601 in UTC as Logbook's `format_iso8601` writes it, which appends
/// the microseconds as an unpadded integer (`.5000Z` is 5,000 µs, not half a second). A
/// fraction of fewer than 6 digits is read that way; 6 or more digits are a decimal fraction.
pub fn parse_logbook_time(s: &str) -> Option<SystemTime> {
    if let Some(dot) = s.find('.') {
        let frac_len = s[dot + 1..].bytes().take_while(u8::is_ascii_digit).count();
        if (1..6).contains(&frac_len) {
            let frac = &s[dot + 1..dot + 1 + frac_len];
            let padded = format!("{}.{frac:0>6}{}", &s[..dot], &s[dot + 1 + frac_len..]);
            return watchbell_core::time::parse_rfc3339(&padded);
        }
    }
    watchbell_core::time::parse_rfc3339(s)
}

fn str_of<'a>(d: &'a Map<String, Json>, key: &str) -> Option<&'a str> {
    d.get(key).and_then(Json::as_str)
}

/// Reads one message of Logbook's queues (`ZeroMQHandler`, `MultiProcessingHandler`; the JSON
/// of `LogRecord.to_dict(json_safe=True)`) into a [`Record`], as the [crate docs](crate) map it.
///
/// # Errors
/// A message that is not UTF-8 JSON, is larger than [`MAX_MESSAGE_BYTES`], nests deeper than 64,
/// is not an object, or has no numeric `level` is refused with the reason. Every other key is
/// optional and a value of the wrong type is ignored: the record is built from what there is.
///
/// ```
/// let msg = br#"{"channel": "billing", "level": 14, "msg": "charge {0} failed", "args": [7],
///                "kwargs": {}, "extra": {"user": "bob"}, "time": "2026-11-29T06:24:48.278557Z",
///                "filename": "app.py", "lineno": 12, "thread_name": "MainThread", "process": 4242}"#;
/// let record = watchbell_zmq::record_from_logbook_json(msg).unwrap();
/// assert_eq!(record.level, tracing::Level::ERROR);
/// assert_eq!(record.target, "billing");
/// assert_eq!(record.message, "charge 7 failed");
/// assert_eq!(record.fields.get("user").and_then(|v| v.as_str()), Some("bob"));
/// assert_eq!(record.pid, 4242);
/// assert!(watchbell_zmq::record_from_logbook_json(b"[1, 2]").is_err());
/// ```
pub fn record_from_logbook_json(bytes: &[u8]) -> Result<Record, MalformedRecord> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(MalformedRecord::new(format!("{} bytes, more than {MAX_MESSAGE_BYTES}", bytes.len())));
    }
    if !depth_ok(bytes) {
        return Err(MalformedRecord::new(format!("nested deeper than {MAX_DEPTH}")));
    }
    let json: Json = serde_json::from_slice(bytes).map_err(|e| MalformedRecord::new(e.to_string()))?;
    let Json::Object(mut d) = json else {
        return Err(MalformedRecord::new("not a JSON object"));
    };
    let lb_level = match d.get("level") {
        Some(Json::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        _ => None,
    }
    .ok_or_else(|| MalformedRecord::new("no numeric `level`"))?;
    let level = level_from_logbook(lb_level);
    let target: Str = str_of(&d, "channel").map_or(Str::Borrowed("logbook"), |s| Str::Owned(s.to_owned()));

    let message = match str_of(&d, "message") {
        Some(m) => m.to_owned(),
        None => {
            let msg = match d.get("msg") {
                Some(Json::String(s)) => s.clone(),
                Some(Json::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            let empty = Vec::new();
            let args = d.get("args").and_then(Json::as_array).unwrap_or(&empty);
            let no_kwargs = Map::new();
            let kwargs = d.get("kwargs").and_then(Json::as_object).unwrap_or(&no_kwargs);
            if args.is_empty() && kwargs.is_empty() {
                msg
            } else {
                format_logbook_message(&msg, args, kwargs)
            }
        }
    };

    let mut fields = Fields::new();
    // Keys the span fields were flattened under (a watchbell publisher): not event fields.
    let span_keys: Vec<String> = d
        .get("span_keys")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if let Some(Json::Object(extra)) = d.remove("extra") {
        for (k, v) in &extra {
            if span_keys.iter().any(|s| s == k) {
                continue;
            }
            if let Some(v) = value_from_json(v) {
                fields.set(k.clone(), v);
            }
        }
    }
    if lb_level == level::CRITICAL || lb_level == level::NOTICE {
        fields.set(LEVEL_FIELD, Value::I64(lb_level));
    }
    for key in ["func_name", "process_name", "exception_name", "exception_message"] {
        if let Some(s) = str_of(&d, key) {
            fields.set(key, Value::Str(s.to_owned()));
        }
    }
    if let Some(tb) = str_of(&d, "formatted_exception") {
        fields.set("error", Value::Str(tb.to_owned()));
    }

    let time = str_of(&d, "time").and_then(parse_logbook_time).unwrap_or_else(SystemTime::now);
    let file: Option<Str> = str_of(&d, "filename").map(|s| Str::Owned(s.to_owned()));
    let line = d.get("lineno").and_then(Json::as_u64).and_then(|l| u32::try_from(l).ok());
    let module: Option<Str> = str_of(&d, "module").map(|s| Str::Owned(s.to_owned()));
    let thread_name: Option<Arc<str>> = str_of(&d, "thread_name").map(Arc::from);
    let thread_id = d.get("thread").and_then(Json::as_u64).unwrap_or(0);
    let pid = d.get("process").and_then(Json::as_u64).and_then(|p| u32::try_from(p).ok()).unwrap_or(0);

    let spans: Vec<Arc<SpanRecord>> = d
        .get("spans")
        .and_then(Json::as_array)
        .map(|spans| {
            spans
                .iter()
                .filter_map(|s| {
                    let s = s.as_object()?;
                    let name = s.get("name")?.as_str()?.to_owned();
                    let target = s.get("target").and_then(Json::as_str).unwrap_or("").to_owned();
                    let mut fields = Fields::new();
                    if let Some(Json::Object(f)) = s.get("fields") {
                        for (k, v) in f {
                            if let Some(v) = value_from_json(v) {
                                fields.set(k.clone(), v);
                            }
                        }
                    }
                    Some(Arc::new(SpanRecord { name: Str::Owned(name), target: Str::Owned(target), fields }))
                })
                .collect()
        })
        .unwrap_or_default();

    let fingerprint = str_of(&d, "fingerprint")
        .and_then(Fingerprint::from_hex)
        .unwrap_or_else(|| Fingerprint::compute(level, &target, file.as_deref(), line, b""));
    let suppressed = d.get("suppressed").and_then(Json::as_u64).unwrap_or(0);

    Ok(Record {
        time,
        level,
        target,
        module,
        file,
        line,
        message: message.into(),
        fields,
        spans: spans.into(),
        thread_name,
        thread_id,
        pid,
        fingerprint,
        suppressed,
        origin: Origin::Tracing,
    })
}

/// The Logbook record dict of `record` as one JSON message, as `ZeroMQHandler` sends it: the
/// keys of `LogRecord.to_dict(json_safe=True)`, plus `spans`, `span_keys`, `fingerprint` and
/// `suppressed` (which Logbook keeps as plain attributes and watchbell reads back).
///
/// ```
/// let mut record = watchbell_core::Record::new(tracing::Level::WARN, "billing", "card {declined}");
/// record.fields.set("user", watchbell_core::Value::Str("bob".into()));
/// let json: serde_json::Value = serde_json::from_slice(&watchbell_zmq::logbook_json(&record)).unwrap();
/// assert_eq!(json["level"], 13);
/// assert_eq!(json["channel"], "billing");
/// assert_eq!(json["message"], "card {declined}");
/// assert_eq!(json["extra"]["user"], "bob");
/// let back = watchbell_zmq::record_from_logbook_json(&watchbell_zmq::logbook_json(&record)).unwrap();
/// assert_eq!(back.message, record.message);
/// assert_eq!(back.fingerprint, record.fingerprint);
/// ```
pub fn logbook_json(record: &Record) -> Vec<u8> {
    // Written directly, keys in the order serde_json's map gives them (sorted), the same bytes
    // as building the document as a `serde_json::Value` (the test `written_like_the_map`), at a
    // fraction of the cost: no map, no copy of any text.
    let mut lb_level = level_to_logbook(record.level);
    // Fields given by the record for Logbook's own top-level keys.
    let mut own: [Option<&Value>; 4] = [None; 4];
    let mut exception: Option<String> = None;
    let mut extra: SmallVec<[(&str, &Value); 12]> = SmallVec::new();
    for (k, v) in record.fields.iter() {
        match k {
            // CRITICAL for ERROR, NOTICE for INFO; any other value is an ordinary field.
            LEVEL_FIELD
                if v.as_i64().is_some_and(|n| {
                    (n == level::CRITICAL || n == level::NOTICE) && level_from_logbook(n) == record.level
                }) =>
            {
                lb_level = v.as_i64().unwrap_or(lb_level);
            }
            "exception_message" => own[0] = Some(v),
            "exception_name" => own[1] = Some(v),
            "func_name" => own[2] = Some(v),
            "process_name" => own[3] = Some(v),
            "error" | "backtrace" if exception.is_none() => {
                exception = Some(v.to_string());
                extra.push((k, v));
            }
            _ => extra.push((k, v)),
        }
    }
    // Span fields, innermost first, under names the event does not use.
    let mut span_keys: SmallVec<[&str; 8]> = SmallVec::new();
    for span in record.spans.iter().rev() {
        for (k, v) in span.fields.iter() {
            if !extra.iter().any(|(e, _)| *e == k) {
                extra.push((k, v));
                span_keys.push(k);
            }
        }
    }
    // A map keeps the last value of a key given twice; the event's own names are unique.
    extra.sort_by(|a, b| a.0.cmp(b.0));

    let mut out = String::with_capacity(640 + record.message.len() * 2);
    let o = &mut out;
    o.push_str("{\"args\":[],\"channel\":");
    json::write_str(o, &record.target);
    o.push_str(",\"exception_message\":");
    opt_value(o, own[0]);
    o.push_str(",\"exception_name\":");
    opt_value(o, own[1]);
    o.push_str(",\"extra\":{");
    json_members(o, &extra);
    o.push_str("},\"filename\":");
    opt_str(o, record.file.as_deref());
    o.push_str(",\"fingerprint\":\"");
    o.push_str(&record.fingerprint.to_hex());
    o.push_str("\",\"formatted_exception\":");
    opt_str(o, exception.as_deref());
    o.push_str(",\"frame_correction\":0,\"func_name\":");
    opt_value(o, own[2]);
    o.push_str(",\"greenlet\":");
    json::write_u64(o, record.thread_id);
    o.push_str(",\"heavy_initialized\":true,\"information_pulled\":true,\"keep_open\":false,\"kwargs\":{},\"late\":false,\"level\":");
    json::write_i64(o, lb_level);
    o.push_str(",\"lineno\":");
    match record.line {
        Some(l) => json::write_u64(o, u64::from(l)),
        None => o.push_str("null"),
    }
    // The message goes out formatted: `msg` is the text, with no args, so that Logbook's
    // `message` (and any formatter that reads `msg`) shows it as it is, braces included.
    o.push_str(",\"message\":");
    json::write_str(o, &record.message);
    o.push_str(",\"module\":");
    opt_str(o, record.module.as_deref());
    o.push_str(",\"msg\":");
    json::write_str(o, &record.message);
    o.push_str(",\"process\":");
    json::write_u64(o, u64::from(record.pid));
    o.push_str(",\"process_name\":");
    opt_value(o, own[3]);
    if !record.spans.is_empty() {
        o.push_str(",\"span_keys\":[");
        for (i, k) in span_keys.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            json::write_str(o, k);
        }
        o.push_str("],\"spans\":[");
        for (i, span) in record.spans.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let mut fields: SmallVec<[(&str, &Value); 8]> = span.fields.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            fields.dedup_by(|b, a| a.0 == b.0);
            o.push_str("{\"fields\":{");
            json_members(o, &fields);
            o.push_str("},\"name\":");
            json::write_str(o, &span.name);
            o.push_str(",\"target\":");
            json::write_str(o, &span.target);
            o.push('}');
        }
        o.push(']');
    }
    if record.suppressed > 0 {
        o.push_str(",\"suppressed\":");
        json::write_u64(o, record.suppressed);
    }
    o.push_str(",\"thread\":");
    json::write_u64(o, record.thread_id);
    o.push_str(",\"thread_name\":");
    opt_str(o, record.thread_name.as_deref());
    o.push_str(",\"time\":");
    json::write_str(o, &watchbell_core::time::rfc3339(record.time));
    o.push('}');
    out.into_bytes()
}

/// `"name":value` members, comma-separated.
fn json_members(out: &mut String, members: &[(&str, &Value)]) {
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_str(out, k);
        out.push(':');
        json_value(out, v);
    }
}

fn opt_value(out: &mut String, v: Option<&Value>) {
    match v {
        Some(v) => json_value(out, v),
        None => out.push_str("null"),
    }
}

fn opt_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => json::write_str(out, s),
        None => out.push_str("null"),
    }
}

/// A field value as watchbell's JSON writes it, except non-finite floats: their text as a
/// string (`"NaN"`, `"inf"`), where JSON's `null` would lose them.
fn json_value(out: &mut String, v: &Value) {
    match v {
        Value::F64(f) if !f.is_finite() => json::write_str(out, &f.to_string()),
        _ => json::write_value(out, v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of every shape `logbook_json` treats differently, chosen by `seed`.
    fn varied_record(seed: u64) -> Record {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        const TEXTS: [&str; 8] = [
            "",
            "plain",
            "quote \" back \\ slash",
            "ctrl \u{0}\u{1f}\n\t",
            "日本語 ✓",
            "\u{2028}\u{7f}",
            "{brace} %s",
            "x",
        ];
        const NAMES: [&str; 14] = [
            "user",
            "error",
            "backtrace",
            "func_name",
            "process_name",
            "exception_name",
            "exception_message",
            LEVEL_FIELD,
            "a",
            "zeta",
            "b\"q",
            "id",
            "日",
            "table",
        ];
        let levels = [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE];
        let level = levels[(next() % 5) as usize];
        let mut r =
            Record::new(level, TEXTS[(next() % 8) as usize].to_owned() + "target", TEXTS[(next() % 8) as usize]);
        let value = |n: u64| match n % 10 {
            0 => Value::Str(TEXTS[(n / 10 % 8) as usize].into()),
            1 => Value::I64(-(n as i64)),
            2 => Value::U64(u64::MAX - n),
            3 => Value::I128(Box::new(i128::MIN + n as i128)),
            4 => Value::U128(Box::new(u128::MAX - u128::from(n))),
            5 => Value::F64([12.5, f64::NAN, f64::INFINITY, -0.0, 1e300, f64::NEG_INFINITY][(n / 10 % 6) as usize]),
            6 => Value::Bool(n % 20 == 6),
            7 => Value::Debug(format!("Some({:?})", TEXTS[(n / 10 % 8) as usize])),
            8 => Value::Display(TEXTS[(n / 10 % 8) as usize].into()),
            _ => Value::I64([level::CRITICAL, level::NOTICE, 3][(n / 10 % 3) as usize]),
        };
        for _ in 0..next() % 6 {
            let name = NAMES[(next() % 14) as usize];
            r.fields.set(name, value(next()));
        }
        for s in 0..next() % 4 {
            let mut f = Fields::new();
            for _ in 0..next() % 4 {
                f.set(NAMES[(next() % 14) as usize], value(next()));
            }
            r.spans.push(Arc::new(SpanRecord {
                name: format!("span{s}").into(),
                target: TEXTS[(next() % 8) as usize].into(),
                fields: f,
            }));
        }
        if next() % 3 == 0 {
            r.file = Some("src/lib.rs".into());
            r.line = Some((next() % 1000) as u32);
            r.module = Some("app::db".into());
        }
        if next() % 2 == 0 {
            r.thread_name = None;
        }
        r.suppressed = next() % 3;
        r.thread_id = next() % 100;
        r
    }

    #[test]
    fn written_like_the_map() {
        for seed in 0..5_000 {
            let r = varied_record(seed);
            let written = logbook_json(&r);
            let mapped = logbook_json_via_map(&r);
            assert_eq!(String::from_utf8_lossy(&written), String::from_utf8_lossy(&mapped), "seed {seed}: {r:?}");
        }
    }

    fn value_to_json(v: &Value) -> Json {
        match v {
            Value::Str(s) | Value::Debug(s) | Value::Display(s) => Json::String(s.clone()),
            Value::I64(i) => Json::from(*i),
            Value::U64(u) => Json::from(*u),
            Value::I128(i) => Json::String(i.to_string()),
            Value::U128(u) => Json::String(u.to_string()),
            Value::F64(f) => serde_json::Number::from_f64(*f).map_or_else(|| Json::String(f.to_string()), Json::Number),
            Value::Bool(b) => Json::Bool(*b),
        }
    }

    /// The document as it was built before: a `serde_json` map, serialized.
    fn logbook_json_via_map(record: &Record) -> Vec<u8> {
        let mut d = Map::new();
        let mut lb_level = level_to_logbook(record.level);
        let mut extra = Map::new();
        let mut exception = None;
        for (k, v) in record.fields.iter() {
            match k {
                // CRITICAL for ERROR, NOTICE for INFO; any other value is an ordinary field.
                LEVEL_FIELD
                    if v.as_i64().is_some_and(|n| {
                        (n == level::CRITICAL || n == level::NOTICE) && level_from_logbook(n) == record.level
                    }) =>
                {
                    lb_level = v.as_i64().unwrap_or(lb_level);
                }
                "func_name" | "process_name" | "exception_name" | "exception_message" => {
                    d.insert(k.to_owned(), value_to_json(v));
                }
                "error" | "backtrace" if exception.is_none() => {
                    exception = Some(v.to_string());
                    extra.insert(k.to_owned(), value_to_json(v));
                }
                _ => {
                    extra.insert(k.to_owned(), value_to_json(v));
                }
            }
        }
        // Span fields, innermost first, under names the event does not use.
        let mut span_keys = Vec::new();
        for span in record.spans.iter().rev() {
            for (k, v) in span.fields.iter() {
                if !extra.contains_key(k) {
                    extra.insert(k.to_owned(), value_to_json(v));
                    span_keys.push(Json::String(k.to_owned()));
                }
            }
        }
        d.insert("channel".into(), Json::String(record.target.to_string()));
        // The message goes out formatted: `msg` is the text, with no args, so that Logbook's
        // `message` (and any formatter that reads `msg`) shows it as it is, braces included.
        d.insert("msg".into(), Json::String(record.message.to_string()));
        d.insert("args".into(), Json::Array(Vec::new()));
        d.insert("kwargs".into(), Json::Object(Map::new()));
        d.insert("level".into(), Json::from(lb_level));
        d.insert("extra".into(), Json::Object(extra));
        d.insert("frame_correction".into(), Json::from(0));
        d.insert("process".into(), Json::from(record.pid));
        d.insert("heavy_initialized".into(), Json::Bool(true));
        d.insert("time".into(), Json::String(watchbell_core::time::rfc3339(record.time)));
        d.insert("keep_open".into(), Json::Bool(false));
        d.insert("late".into(), Json::Bool(false));
        d.insert(
            "thread_name".into(),
            record.thread_name.as_deref().map_or(Json::Null, |n| Json::String(n.to_owned())),
        );
        d.insert("module".into(), record.module.as_deref().map_or(Json::Null, |m| Json::String(m.to_owned())));
        d.insert("filename".into(), record.file.as_deref().map_or(Json::Null, |f| Json::String(f.to_owned())));
        d.insert("formatted_exception".into(), exception.map_or(Json::Null, Json::String));
        d.insert("message".into(), Json::String(record.message.to_string()));
        d.entry("func_name").or_insert(Json::Null);
        d.insert("greenlet".into(), Json::from(record.thread_id));
        d.entry("exception_message").or_insert(Json::Null);
        d.insert("thread".into(), Json::from(record.thread_id));
        d.entry("exception_name").or_insert(Json::Null);
        d.entry("process_name").or_insert(Json::Null);
        d.insert("lineno".into(), record.line.map_or(Json::Null, Json::from));
        d.insert("information_pulled".into(), Json::Bool(true));
        if !record.spans.is_empty() {
            let spans = record
                .spans
                .iter()
                .map(|s| {
                    let fields: Map<String, Json> =
                        s.fields.iter().map(|(k, v)| (k.to_owned(), value_to_json(v))).collect();
                    serde_json::json!({"name": s.name, "target": s.target, "fields": fields})
                })
                .collect();
            d.insert("spans".into(), Json::Array(spans));
            d.insert("span_keys".into(), Json::Array(span_keys));
        }
        d.insert("fingerprint".into(), Json::String(record.fingerprint.to_hex()));
        if record.suppressed > 0 {
            d.insert("suppressed".into(), Json::from(record.suppressed));
        }
        serde_json::to_vec(&Json::Object(d)).unwrap_or_default()
    }

    #[test]
    fn levels_map_both_ways() {
        for (n, l) in [
            (15, Level::ERROR),
            (14, Level::ERROR),
            (13, Level::WARN),
            (12, Level::INFO),
            (11, Level::INFO),
            (10, Level::DEBUG),
            (9, Level::TRACE),
            (0, Level::TRACE),
        ] {
            assert_eq!(level_from_logbook(n), l, "{n}");
        }
        for l in [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE] {
            assert_eq!(level_from_logbook(level_to_logbook(l)), l);
        }
    }

    #[test]
    fn critical_and_notice_survive_a_round_trip() {
        for n in [level::CRITICAL, level::NOTICE] {
            let msg = format!(r#"{{"level": {n}, "channel": "c", "message": "m"}}"#);
            let r = record_from_logbook_json(msg.as_bytes()).unwrap();
            let back: Json = serde_json::from_slice(&logbook_json(&r)).unwrap();
            assert_eq!(back["level"], n);
            assert!(back["extra"].get(LEVEL_FIELD).is_none() || back["extra"][LEVEL_FIELD] == n);
        }
    }

    #[test]
    fn python_format_fields() {
        let args = vec![Json::from(1), Json::from("two")];
        let mut kw = Map::new();
        kw.insert("x".into(), Json::from("é"));
        assert_eq!(format_logbook_message("{} {} {x} {{lit}} {0!r} {9}", &args, &kw), "1 two é {lit} {0!r} {9}");
        assert_eq!(format_logbook_message("a {1} {0} b {", &args, &kw), "a two 1 b {");
        assert_eq!(format_logbook_message("}}{", &[], &kw), "}{");
    }

    #[test]
    fn spans_are_extra_for_python_and_spans_for_watchbell() {
        let mut r = Record::new(Level::ERROR, "t", "m");
        let mut sf = Fields::new();
        sf.set("request_id", Value::I64(7));
        r.spans.push(Arc::new(SpanRecord { name: "request".into(), target: "t".into(), fields: sf }));
        r.fields.set("user", Value::Str("bob".into()));
        let json: Json = serde_json::from_slice(&logbook_json(&r)).unwrap();
        assert_eq!(json["extra"]["request_id"], 7);
        let back = record_from_logbook_json(&logbook_json(&r)).unwrap();
        assert!(back.fields.get("request_id").is_none());
        assert_eq!(back.field("request_id"), Some(&Value::I64(7)));
        assert_eq!(back.spans.len(), 1);
        assert_eq!(back.fields.get("user"), r.fields.get("user"));
        assert_eq!(back.time, {
            // Microsecond precision on the wire.
            let d = r.time.duration_since(std::time::UNIX_EPOCH).unwrap();
            std::time::UNIX_EPOCH + std::time::Duration::from_micros(d.as_micros() as u64)
        });
    }

    #[test]
    fn logbook_time_fractions_are_unpadded_microseconds() {
        use std::time::{Duration, UNIX_EPOCH};
        let base = UNIX_EPOCH + Duration::from_secs(1_795_933_488);
        let t = |s: &str| parse_logbook_time(s).unwrap().duration_since(base).unwrap();
        // datetime(…, microsecond=62970) as Logbook writes it.
        assert_eq!(t("2026-11-29T06:24:48.62970Z"), Duration::from_micros(62_970));
        assert_eq!(t("2026-11-29T06:24:48.5Z"), Duration::from_micros(5));
        assert_eq!(t("2026-11-29T06:24:48.278557Z"), Duration::from_micros(278_557));
        assert_eq!(t("2026-11-29T06:24:48Z"), Duration::ZERO);
        assert_eq!(t("2026-11-29T06:24:48.1234567Z"), Duration::from_nanos(123_456_700));
    }

    #[test]
    fn hostile_documents_are_refused() {
        assert!(record_from_logbook_json(b"").is_err());
        assert!(record_from_logbook_json(b"{\"level\": \"x\"}").is_err());
        assert!(record_from_logbook_json(b"\xff\xfe").is_err());
        let deep = "[".repeat(100_000);
        assert!(record_from_logbook_json(deep.as_bytes()).is_err());
        assert!(record_from_logbook_json(b"{\"level\": 1e308, \"lineno\": -1, \"process\": 1e99}").is_ok());
    }
}
