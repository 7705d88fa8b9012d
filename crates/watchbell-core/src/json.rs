//! JSON written by hand: strings, [`Value`]s, [`Fields`], times and whole [`Record`]s, byte for
//! byte as `serde_json` writes them, without its per-value dispatch.
//!
//! Sinks that turn many records into JSON (collector bodies, ticket occurrences) use these
//! functions on one reused buffer:
//! - [`write_str`] escapes as serde_json does: `"` and `\`, `\b \t \n \f \r`, the other control
//!   characters as `\u00xx`; everything else (non-ASCII text, U+2028 and U+2029, DEL) as it is.
//! - [`write_value`] writes integers as numbers, 128-bit integers as decimal strings (as
//!   [`Value`]'s `Serialize` does), floats with serde_json's own formatting (the shortest text
//!   that reads back the same: `0.1`, `1e+300`, `-0.0`; NaN and infinities as `null`), booleans,
//!   and text values as strings.
//! - [`JsonWriter::write_record`] writes the document `serde_json::to_string(&record)` writes
//!   (the keys and order of [`Record`]'s derived `Serialize`, `null` for absent options). The
//!   time's date and clock text is computed once per second and thread
//!   ([`time::push_rfc3339`](crate::time::push_rfc3339)); a time before year 0 or past year
//!   9999 is formatted in full.
//!
//! The output is valid UTF-8 by construction, so the functions append to a `String`.
//!
//! ```
//! use watchbell_core::json::{self, JsonWriter};
//! use watchbell_core::{Record, Value};
//!
//! let mut r = Record::new(tracing::Level::ERROR, "app::db", "line 1\nline \"2\"");
//! r.fields.set("attempt", Value::U64(3));
//! r.fields.set("ratio", Value::F64(f64::NAN));
//! r.fields.set("big", Value::F64(1e300));
//!
//! let mut out = String::new();
//! let mut w = JsonWriter::new();
//! w.write_record(&mut out, &r);
//! assert_eq!(out, serde_json::to_string(&r).unwrap());
//! assert!(out.contains(r#""message":"line 1\nline \"2\"""#));
//! assert!(out.contains(r#""fields":{"attempt":3,"ratio":null,"big":1e+300}"#));
//!
//! let mut s = String::new();
//! json::write_str(&mut s, "tab\there \u{2028}");
//! assert_eq!(s, "\"tab\\there \u{2028}\"");
//! ```

use std::time::SystemTime;

use crate::record::{Fields, Fingerprint, Origin, Record, Value};

/// Bytes that JSON strings escape (serde_json's set: control characters, `"` and `\`).
static ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string (with its quotes), escaped as serde_json escapes.
pub fn write_str(out: &mut String, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if !ESCAPE[c as usize] {
            continue;
        }
        // `c` is ASCII: `i` and `i + 1` are character boundaries.
        out.push_str(&s[start..i]);
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x08 => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            _ => {
                out.push_str("\\u00");
                out.push(char::from(HEX[(c >> 4) as usize]));
                out.push(char::from(HEX[(c & 15) as usize]));
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// The decimal digits of `v`, written at the end of `buf` (as `Display` writes them), for
/// appending to a `String` or a byte buffer without `fmt`.
///
/// ```
/// let mut buf = [0; 20];
/// assert_eq!(watchbell_core::json::u64_digits(u64::MAX, &mut buf), "18446744073709551615");
/// assert_eq!(watchbell_core::json::u64_digits(0, &mut buf), "0");
/// ```
pub fn u64_digits(mut v: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// Appends the decimal digits of `v`.
pub fn write_u64(out: &mut String, v: u64) {
    out.push_str(u64_digits(v, &mut [0; 20]));
}

/// Appends `v` in decimal, with a `-` when negative.
pub fn write_i64(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    write_u64(out, v.unsigned_abs());
}

fn write_u128(out: &mut String, mut v: u128) {
    if let Ok(small) = u64::try_from(v) {
        return write_u64(out, small);
    }
    let mut buf = [0u8; 39];
    let mut i = buf.len();
    while v > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    for &d in &buf[i..] {
        out.push(char::from(d));
    }
}

/// Appends `v` as serde_json writes an `f64`: the shortest text that reads back as the same
/// number, and `null` for NaN and the infinities (JSON has no such numbers).
pub fn write_f64(out: &mut String, v: f64) {
    if !v.is_finite() {
        out.push_str("null");
        return;
    }
    // serde_json's formatting (ryu), into a stack buffer: at most 24 bytes.
    let mut buf = [0u8; 32];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let text = match serde_json::to_writer(&mut cursor, &v) {
        Ok(()) => {
            let n = cursor.position() as usize;
            std::str::from_utf8(&buf[..n]).unwrap_or("null")
        }
        Err(_) => "null",
    };
    out.push_str(text);
}

/// Appends a field value as [`Value`]'s `Serialize` writes it with serde_json.
pub fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Str(s) | Value::Debug(s) | Value::Display(s) => write_str(out, s),
        Value::I64(i) => write_i64(out, *i),
        Value::U64(u) => write_u64(out, *u),
        Value::I128(i) => {
            out.push('"');
            if **i < 0 {
                out.push('-');
            }
            write_u128(out, i.unsigned_abs());
            out.push('"');
        }
        Value::U128(u) => {
            out.push('"');
            write_u128(out, **u);
            out.push('"');
        }
        Value::F64(f) => write_f64(out, *f),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
    }
}

/// Appends fields as a JSON object, in their order.
pub fn write_fields(out: &mut String, f: &Fields) {
    out.push('{');
    for (i, (k, v)) in f.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_value(out, v);
    }
    out.push('}');
}

/// Appends a fingerprint as a JSON string of 16 lowercase hex digits.
pub fn write_fingerprint(out: &mut String, fp: Fingerprint) {
    out.push('"');
    for i in 0..16 {
        out.push(char::from(HEX[((fp.0 >> (60 - 4 * i)) & 15) as usize]));
    }
    out.push('"');
}

/// Appends `,"key":`, the start of an object's next member, for a key that needs no escape
/// (plain ASCII letters, digits, `_`, `@`, `.`): written as it is.
pub fn write_next_key(out: &mut String, key: &str) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
}

use self::write_next_key as key;

fn opt_str(out: &mut String, v: Option<&str>) {
    match v {
        Some(s) => write_str(out, s),
        None => out.push_str("null"),
    }
}

/// Writes times and records. The time text of a whole second is computed once per thread
/// ([`time::push_rfc3339`](crate::time::push_rfc3339)), so the many records of one second
/// only add their microseconds.
///
/// Holds nothing: kept as a type so that a writer with state can come without changing its
/// callers.
#[derive(Clone, Debug, Default)]
pub struct JsonWriter {
    _private: (),
}

impl JsonWriter {
    /// A writer that has written nothing yet.
    pub fn new() -> Self {
        JsonWriter { _private: () }
    }

    /// Appends the text [`time::rfc3339`](crate::time::rfc3339) gives for `t`
    /// (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, no quotes).
    pub fn write_time_text(&mut self, out: &mut String, t: SystemTime) {
        crate::time::push_rfc3339(out, t);
    }

    /// Appends `t` as a JSON string, as [`time::serde_rfc3339`](crate::time::serde_rfc3339)
    /// serializes it.
    pub fn write_time(&mut self, out: &mut String, t: SystemTime) {
        out.push('"');
        self.write_time_text(out, t);
        out.push('"');
    }

    /// Appends `r` as `serde_json::to_string(r)` writes it.
    pub fn write_record(&mut self, out: &mut String, r: &Record) {
        out.push_str("{\"time\":");
        self.write_time(out, r.time);
        key(out, "level");
        write_str(out, r.level.as_str());
        key(out, "target");
        write_str(out, &r.target);
        key(out, "module");
        opt_str(out, r.module.as_deref());
        key(out, "file");
        opt_str(out, r.file.as_deref());
        key(out, "line");
        match r.line {
            Some(l) => write_u64(out, u64::from(l)),
            None => out.push_str("null"),
        }
        key(out, "message");
        write_str(out, r.message.as_ref());
        key(out, "fields");
        write_fields(out, &r.fields);
        key(out, "spans");
        out.push('[');
        for (i, sp) in r.spans.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            write_str(out, &sp.name);
            key(out, "target");
            write_str(out, &sp.target);
            key(out, "fields");
            write_fields(out, &sp.fields);
            out.push('}');
        }
        out.push(']');
        key(out, "thread_name");
        opt_str(out, r.thread_name.as_deref());
        key(out, "thread_id");
        write_u64(out, r.thread_id);
        key(out, "pid");
        write_u64(out, u64::from(r.pid));
        key(out, "fingerprint");
        write_fingerprint(out, r.fingerprint);
        if r.suppressed > 0 {
            key(out, "suppressed");
            write_u64(out, r.suppressed);
        }
        key(out, "origin");
        out.push_str(match r.origin {
            Origin::Tracing => "\"tracing\"",
            Origin::Log => "\"log\"",
            Origin::Watchbell => "\"watchbell\"",
        });
        out.push('}');
    }
}

/// `r` as a JSON document: the text `serde_json::to_string(r)` gives.
pub fn record_to_string(r: &Record) -> String {
    let mut out = String::with_capacity(256 + r.message.len());
    JsonWriter::new().write_record(&mut out, r);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SpanRecord;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};
    use tracing_core::Level;

    /// Every control character, quotes, backslashes, DEL, multibyte text, the line and
    /// paragraph separators (which serde_json leaves as they are), and a text that is nothing
    /// but escapes.
    fn hostile() -> Vec<String> {
        let control: String = (0u8..0x20).map(char::from).collect();
        vec![
            String::new(),
            control.clone(),
            format!("m {control} \"q\" \\b\\ \u{7f} é € 😀 / \u{2028}\u{2029} \u{feff} \u{fffd} end"),
            "\\\\\"\"\n\n".repeat(7),
            "\u{10ffff}\u{80}\u{7ff}\u{800}".into(),
            "</script><!--".into(),
        ]
    }

    fn values() -> Vec<Value> {
        let mut v = vec![
            Value::I64(i64::MIN),
            Value::I64(-1),
            Value::I64(0),
            Value::I64(i64::MAX),
            Value::U64(0),
            Value::U64(9),
            Value::U64(10),
            Value::U64(u64::MAX),
            Value::I128(Box::new(i128::MIN)),
            Value::I128(Box::new(i128::from(i64::MIN) - 1)),
            Value::I128(Box::new(i128::MAX)),
            Value::U128(Box::new(u128::from(u64::MAX) + 1)),
            Value::U128(Box::new(u128::MAX)),
            Value::Bool(true),
            Value::Bool(false),
        ];
        for f in [
            0.0,
            -0.0,
            0.1,
            1.0,
            -1.5,
            1e300,
            1e-7,
            123_456_789.0,
            1e21,
            1e15,
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            v.push(Value::F64(f));
        }
        for s in hostile() {
            v.push(Value::Str(s.clone()));
            v.push(Value::Debug(s.clone()));
            v.push(Value::Display(s));
        }
        v
    }

    fn base() -> Record {
        let mut r = Record::new(Level::WARN, "app::db", hostile()[2].clone());
        for (i, v) in values().into_iter().enumerate() {
            r.fields.set(format!("f{i}"), v);
        }
        for (i, s) in hostile().into_iter().enumerate() {
            r.fields.set(s, Value::U64(i as u64));
        }
        let mut outer = Fields::new();
        outer.set("id", Value::U64(7));
        outer.set("path\n\"", Value::Str(hostile()[2].clone()));
        outer.set("ratio", Value::F64(f64::INFINITY));
        let mut inner = Fields::new();
        inner.set("big", Value::I128(Box::new(i128::MIN)));
        let spans = vec![
            Arc::new(SpanRecord { name: "outer\"".into(), target: "t\\x".into(), fields: outer }),
            Arc::new(SpanRecord { name: "".into(), target: "".into(), fields: Fields::new() }),
            Arc::new(SpanRecord { name: hostile()[1].clone().into(), target: "é".into(), fields: inner }),
        ];
        r.spans = spans.into_iter().collect();
        r.fingerprint = Fingerprint(0x00ab_cdef_0123_4567);
        r
    }

    fn variants() -> Vec<Record> {
        let mut out = vec![base()];
        let mut r = base();
        r.module = Some("app::db::pool".into());
        r.file = Some("src/db\\pool\u{1}.rs".into());
        r.line = Some(u32::MAX);
        r.thread_name = Some("worker \"1\"\t\u{2028}".into());
        r.thread_id = u64::MAX;
        r.suppressed = 41;
        r.pid = u32::MAX;
        r.origin = Origin::Log;
        r.fingerprint = Fingerprint(u64::MAX);
        out.push(r.clone());
        r.line = Some(0);
        r.suppressed = 1;
        r.origin = Origin::Watchbell;
        r.fingerprint = Fingerprint(0);
        out.push(r.clone());
        let mut bare = Record::new(Level::TRACE, "", "");
        bare.thread_name = None;
        bare.pid = 0;
        out.push(bare);
        for level in [Level::ERROR, Level::INFO, Level::DEBUG] {
            out.push(Record::new(level, "x", "y"));
        }
        // Times: the same second twice, the next second, far later, the epoch, before it,
        // the last microsecond of a second, and past year 9999.
        let t0 = UNIX_EPOCH + Duration::new(1_700_000_000, 999_999_999);
        for (i, secs) in [(0u64, 0u64), (1, 0), (2, 1), (3, 86_400 * 400)] {
            let mut x = r.clone();
            x.time = t0 + Duration::new(secs, 0) + Duration::from_micros(i * 7);
            out.push(x);
        }
        for t in [
            UNIX_EPOCH,
            UNIX_EPOCH - Duration::from_secs(1),
            UNIX_EPOCH - Duration::from_nanos(1),
            UNIX_EPOCH + Duration::from_nanos(1_999),
            t0,
            UNIX_EPOCH + Duration::from_secs(253_402_300_799) + Duration::from_micros(999_999),
            UNIX_EPOCH + Duration::from_secs(253_402_300_800 * 2),
            t0,
        ] {
            let mut x = r.clone();
            x.time = t;
            out.push(x);
        }
        out
    }

    /// The writer gives serde_json's bytes for every record above, one writer reused across
    /// all of them (its cached second changing and coming back).
    #[test]
    fn records_match_serde_json() {
        let mut w = JsonWriter::new();
        let mut out = String::new();
        for (k, r) in variants().iter().enumerate() {
            out.clear();
            w.write_record(&mut out, r);
            assert_eq!(out, serde_json::to_string(r).unwrap(), "variant {k}");
            assert_eq!(record_to_string(r), out, "variant {k}");
            // And it reads back as the same record (floats aside: NaN is written as null).
            let back: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(back["message"].as_str(), Some(r.message.as_ref()), "variant {k}");
        }
    }

    #[test]
    fn values_and_strings_match_serde_json() {
        for v in values() {
            let mut out = String::new();
            write_value(&mut out, &v);
            assert_eq!(out, serde_json::to_string(&v).unwrap(), "{v:?}");
        }
        for s in hostile() {
            let mut out = String::new();
            write_str(&mut out, &s);
            assert_eq!(out, serde_json::to_string(&s).unwrap(), "{s:?}");
        }
        // Every single character below 0x80, and a few above.
        for c in (0u32..0x80).chain([0x80, 0x2028, 0x2029, 0xfffd, 0x1f600]).filter_map(char::from_u32) {
            let mut out = String::new();
            write_str(&mut out, &c.to_string());
            assert_eq!(out, serde_json::to_string(&c.to_string()).unwrap(), "{c:?}");
        }
        for i in [0, 1, 9, 10, 99, 100, i64::MAX, i64::MIN, -9, -10] {
            let mut out = String::new();
            write_i64(&mut out, i);
            assert_eq!(out, i.to_string());
        }
    }

    #[test]
    fn time_text_matches_rfc3339() {
        let mut w = JsonWriter::new();
        for r in variants() {
            let mut out = String::new();
            w.write_time_text(&mut out, r.time);
            assert_eq!(out, crate::time::rfc3339(r.time));
        }
    }
}
