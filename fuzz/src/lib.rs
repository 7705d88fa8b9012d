//! The fuzz targets of watchbell: one function per target, taking the fuzzer's bytes and
//! asserting the properties of what it exercises (a failed assertion is a finding, like a
//! panic). `fuzz_targets/<name>.rs` hands libFuzzer's input to the function of that name; the
//! `smoke` binary runs them on stable Rust over the corpus and random mutations of it. The
//! integration tests (`tests/tests/properties.rs`) include this file to check the same
//! properties with proptest's generated inputs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use watchbell_core::{Level, Record, Value};

/// A target's function: it panics on a finding.
pub type Target = fn(&[u8]);

/// Every target: its name and its function.
pub const TARGETS: &[(&str, Target)] = &[
    ("config", config),
    ("telegram_html", telegram_html),
    ("slack_escape", slack_escape),
    ("smtp_header", smtp_header),
    ("syslog_frame", syslog_frame),
    ("retry_after", retry_after),
    ("spool_reader", spool_reader),
    ("es_bulk", es_bulk),
    ("encoders", encoders),
    ("redact", redact),
    ("command", command),
    ("journald", journald),
    ("desktop", desktop),
    ("notify", notify),
    ("zmq_logbook", zmq_logbook),
    ("relay_ingest", relay_ingest),
    ("aws", aws),
    ("json_record", json_record),
];

/// A reader of structured values from fuzz bytes: once the bytes run out, zeros.
#[derive(Debug)]
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    /// Reads from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, if any.
    pub fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    /// The next byte, 0 when none is left.
    pub fn u8(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | (u16::from(self.u8()) << 8)
    }

    /// The next eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        (0..8).fold(0u64, |v, i| v | (u64::from(self.u8()) << (8 * i)))
    }

    /// Up to `max` bytes, as a string (invalid UTF-8 replaced).
    pub fn text(&mut self, max: usize) -> String {
        let n = usize::from(self.u8()).min(max).min(self.data.len());
        let (t, rest) = self.data.split_at(n);
        self.data = rest;
        String::from_utf8_lossy(t).into_owned()
    }

    /// What is left, as a string (invalid UTF-8 replaced).
    pub fn rest(&mut self) -> String {
        let s = String::from_utf8_lossy(self.data).into_owned();
        self.data = &[];
        s
    }
}

/// The length of `s` in UTF-16 units, as Telegram and Slack count.
pub fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

const LEVELS: [Level; 5] = [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE];
const FIELD_NAMES: [&str; 8] = ["target", "fingerprint", "code.lineno", "message", "level", "user", "token", "n"];

/// A record made from fuzz bytes: level, target, message, fields (names that collide with the
/// encoders' own attributes included), file/line, and a time anywhere in 0..=9999 years.
pub fn record(u: &mut Bytes<'_>) -> Record {
    let level = LEVELS[usize::from(u.u8()) % LEVELS.len()];
    let target = u.text(40);
    let message = u.text(255);
    let mut r = Record::new(level, if target.is_empty() { "app".to_owned() } else { target }, message);
    r.time = UNIX_EPOCH + Duration::from_secs(u.u64() % 253_402_300_800) + Duration::from_micros(u64::from(u.u16()));
    let n = u.u8() % 6;
    for _ in 0..n {
        let sel = u.u8();
        let name = if sel & 8 == 0 { FIELD_NAMES[usize::from(sel) % FIELD_NAMES.len()].to_owned() } else { u.text(16) };
        let value = match sel >> 4 {
            0 => Value::I64(u.u64() as i64),
            1 => Value::U64(u.u64()),
            2 => Value::F64(f64::from_bits(u.u64())),
            3 => Value::Bool(sel & 1 == 1),
            _ => Value::Str(u.text(80)),
        };
        r.fields.push_unique(name, value);
    }
    if u.u8() & 1 == 1 {
        r.file = Some(u.text(30).into());
        r.line = Some(u32::from(u.u16()));
    }
    r
}

/// The TOML loader and the `WATCHBELL_*` variables loader: any text gives a config or an
/// error listing at least one problem; a config accepted checks again, and reads back from its
/// own serialized form unchanged; `Debug` and the error's `Display` never panic.
pub fn config(data: &[u8]) {
    use watchbell::Config;
    let text = String::from_utf8_lossy(data);
    match Config::from_toml_str(&text) {
        Ok(c) => {
            let _ = format!("{c:?}");
            c.check().expect("a config from_toml_str accepted checks");
            let again = c.clone().with_vars(Vec::<(String, String)>::new()).expect("an accepted config reads back");
            assert_eq!(again, c, "a config changed by reading it back");
        }
        Err(e) => {
            assert!(!e.problems().is_empty(), "an error without problems");
            let _ = e.to_string();
        }
    }
    let vars: Vec<(String, String)> =
        text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (format!("WATCHBELL_{k}"), v.to_owned())).collect();
    match Config::default().with_vars(vars) {
        Ok(c) => c.check().expect("a config with_vars accepted checks"),
        Err(e) => {
            assert!(!e.problems().is_empty(), "an error without problems");
            let _ = e.to_string();
        }
    }
}

/// Valid Telegram HTML (as the validator of watchbell-test reads it) made from fuzz bytes:
/// allowed tags nested up to 4 deep (the renderer nests 2), escaped text of any script,
/// entities, newlines, long runs.
pub fn telegram_markup(u: &mut Bytes<'_>) -> String {
    const TAGS: [(&str, &str); 9] = [
        ("b", "<b>"),
        ("i", "<i>"),
        ("u", "<u>"),
        ("s", "<s>"),
        ("tg-spoiler", "<tg-spoiler>"),
        ("blockquote", "<blockquote>"),
        ("a", "<a href=\"https://example.com/?a=1&amp;b=2\">"),
        ("pre", "<pre>"),
        ("code", "<code>"),
    ];
    let mut out = String::new();
    let mut stack: Vec<&str> = Vec::new();
    let mut steps = 0;
    while let Some(op) = u.byte() {
        steps += 1;
        if steps > 400 {
            break;
        }
        let top = stack.last().copied();
        match op % 8 {
            0 | 1 => {
                let (name, raw) = TAGS[usize::from(u.u8()) % TAGS.len()];
                let allowed = stack.len() < 4
                    && match top {
                        Some("code") => false,
                        Some("pre") => name == "code",
                        _ => !(name == "a" && stack.contains(&"a")),
                    };
                if allowed {
                    out.push_str(raw);
                    stack.push(name);
                }
            }
            2 => {
                // No empty elements (the renderer makes none): a split piece can exceed its
                // limit with markup that holds no text.
                if out.ends_with('>') {
                    out.push('x');
                }
                if let Some(name) = stack.pop() {
                    out.push_str("</");
                    out.push_str(name);
                    out.push('>');
                }
            }
            3 | 4 => {
                for c in u.text(64).chars() {
                    match c {
                        '&' => out.push_str("&amp;"),
                        '<' => out.push_str("&lt;"),
                        '>' => out.push_str("&gt;"),
                        c => out.push(c),
                    }
                }
            }
            5 => out.push('\n'),
            6 => out.push_str(["&amp;", "&lt;", "&gt;", "&quot;", "&#128512;", "&#x1F600;"][usize::from(u.u8()) % 6]),
            _ => {
                let c = ["a", "é", "😀", "👨\u{200d}👩", " ", "\n"][usize::from(u.u8()) % 6];
                let n = 1 + usize::from(u.u8()) * 8;
                out.push_str(&c.repeat(n));
            }
        }
    }
    while let Some(name) = stack.pop() {
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }
    out
}

fn check_telegram(html: &str, limit: usize) {
    use watchbell_telegram::fuzzing::{plain_text, split_html, truncate_html};
    use watchbell_test::telegram::validate_html;
    let t = truncate_html(html, limit, "…");
    assert!(utf16_len(&t) <= limit, "truncated to {} UTF-16 units > {limit}: {t:?}", utf16_len(&t));
    if let Err(e) = validate_html(&t) {
        panic!("truncated HTML invalid ({e}): {t:?} from {html:?}");
    }
    if utf16_len(html) <= limit {
        assert_eq!(t, html, "HTML that fits was changed");
    }
    let parts = split_html(html, limit);
    let mut shown = String::new();
    for p in &parts {
        assert!(utf16_len(p) <= limit, "piece of {} UTF-16 units > {limit}: {p:?}", utf16_len(p));
        if let Err(e) = validate_html(p) {
            panic!("piece invalid ({e}): {p:?} from {html:?}");
        }
        shown.push_str(&plain_text(p));
    }
    assert_eq!(shown, plain_text(html), "the pieces do not show the whole text");
}

/// The Telegram HTML cutter and splitter, on generated valid HTML with a limit from 160 to 4,255
/// UTF-16 units and at Telegram's 4,096, and on the renderer's block of a fuzzed record: every
/// output is valid Telegram HTML within the limit, HTML that fits is kept as it is, and the
/// pieces of a split show the whole text.
pub fn telegram_html(data: &[u8]) {
    use watchbell_test::telegram::validate_html;
    let mut u = Bytes::new(data);
    // At least room for 4 nested tags, their closing tags and one character.
    let limit = 160 + usize::from(u.u16() % 4096);
    if u.u8() & 1 == 0 {
        let html = telegram_markup(&mut u);
        validate_html(&html).expect("the generator makes valid HTML");
        check_telegram(&html, limit);
        check_telegram(&html, 4096);
    } else {
        let r = record(&mut u);
        let html = watchbell_telegram::fuzzing::render(&r);
        if let Err(e) = validate_html(&html) {
            panic!("rendered HTML invalid ({e}): {html:?}");
        }
        check_telegram(&html, limit);
        check_telegram(&html, 4096);
    }
}

fn slack_unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

fn assert_slack_escaped(out: &str) {
    assert!(!out.contains(['<', '>']), "raw < or > in {out:?}");
    for (i, _) in out.match_indices('&') {
        let rest = &out[i..];
        assert!(
            rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;"),
            "a & that is not an entity in {out:?}"
        );
    }
    assert!(!out.contains("<!channel>") && !out.contains("<!here>"), "a mention in {out:?}");
}

/// Slack's escaping: no raw `<` or `>` (so no `<!channel>`, no link), every `&` an entity, at
/// most `max` UTF-16 units; text that fits reads back whole, text cut reads back as a prefix.
/// The code block never holds three backticks in a row.
pub fn slack_escape(data: &[u8]) {
    use watchbell_slack::{code_block, escape_truncate, MARKER};
    let mut u = Bytes::new(data);
    let max = usize::from(u.u16() % 4000);
    let s = u.rest();
    let out = escape_truncate(&s, max);
    assert_slack_escaped(&out);
    assert!(utf16_len(&out) <= max, "{} UTF-16 units > {max}", utf16_len(&out));
    if out.is_empty() && !s.is_empty() {
        assert!(utf16_len(MARKER) > max, "text emptied although the marker fits");
        return;
    }
    match out.strip_suffix(MARKER) {
        Some(cut) if slack_unescape(&out) != s => {
            assert!(s.starts_with(&slack_unescape(cut)), "the cut text is not a prefix: {out:?}")
        }
        _ => assert_eq!(slack_unescape(&out), s, "text that fits was changed"),
    }
    let block = code_block(&s, max);
    let inner = block.strip_prefix("```\n").and_then(|b| b.strip_suffix("\n```")).expect("fenced");
    assert_slack_escaped(inner);
    assert!(!inner.contains("```"), "the text can close the code block: {block:?}");
}

/// SMTP header sanitising: the subject (any template, any log text) holds no CR or LF and at
/// most its limit of chars; in the whole mail every header line ends in CRLF, holds no other
/// CR or LF, and is at most 998 bytes (RFC 5322 §2.1.1).
pub fn smtp_header(data: &[u8]) {
    use watchbell_mail::fuzzing::{mail, subject};
    let mut u = Bytes::new(data);
    let max = usize::from(u.u8());
    let template = if u.u8() & 1 == 0 { watchbell_mail::DEFAULT_SUBJECT.to_owned() } else { u.text(80) };
    let r = record(&mut u);
    if let Ok(s) = subject(&template, max, &r) {
        assert!(!s.contains(['\r', '\n']), "CR/LF in subject {s:?}");
        assert!(s.chars().count() <= max.max(10), "subject of {} chars > {}", s.chars().count(), max.max(10));
    }
    let mut records = vec![r];
    while !u.is_empty() && records.len() < 4 {
        records.push(record(&mut u));
    }
    if let Ok(bytes) = mail(&template, max, records) {
        if bytes.is_empty() {
            return;
        }
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a blank line after the headers");
        let head = [&bytes[..end], &b"\r\n"[..]].concat();
        for line in head.strip_suffix(b"\n").unwrap_or_default().split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or_else(|| panic!("a header line without CRLF: {line:?}"));
            assert!(!line.contains(&b'\r'), "a bare CR in a header line: {:?}", String::from_utf8_lossy(line));
            assert!(line.len() <= 998, "a header line of {} bytes", line.len());
        }
    }
}

/// Reverses RFC 5424 PARAM-VALUE escaping, checking that `"`, `\` and `]` appear only escaped.
fn sd_unescape(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some(e @ ('"' | '\\' | ']')) => out.push(e),
                other => panic!("a backslash before {other:?} in {s:?}"),
            },
            '"' | ']' => panic!("an unescaped {c:?} in {s:?}"),
            c => out.push(c),
        }
    }
    out
}

/// Syslog: SD-value escaping escapes exactly `"`, `\` and `]` and reads back; a frame (3164 or
/// 5424, either framing, any record, any limit) is within its byte limit, on one line when
/// LF-framed, and the octet-counting prefix equals the frame's length.
pub fn syslog_frame(data: &[u8]) {
    use watchbell_syslog::fuzzing::{escape_sd_value, frame, stream_bytes};
    use watchbell_syslog::{Framing, Protocol};
    let mut u = Bytes::new(data);
    let sel = u.u8();
    let max = usize::from(u.u16() % 9000);
    let value = u.text(255);
    let mut escaped = String::new();
    escape_sd_value(&value, &mut escaped);
    assert_eq!(sd_unescape(&escaped), value);
    let protocol = if sel & 1 == 0 { Protocol::Rfc5424 } else { Protocol::Rfc3164 };
    let framing = if sel & 2 == 0 { Framing::OctetCounting } else { Framing::LineFeed };
    let sd_id = match sel >> 2 & 3 {
        0 => None,
        1 => Some(watchbell_syslog::DEFAULT_SD_ID.to_owned()),
        _ => Some(u.text(40)),
    };
    let r = record(&mut u);
    let f = frame(protocol, framing, sd_id.as_deref(), max, &r);
    assert!(f.len() <= max.max(480), "a frame of {} bytes > {}", f.len(), max.max(480));
    let bytes = stream_bytes(framing, &f);
    match framing {
        Framing::LineFeed => {
            assert!(!f.contains('\n'), "a newline inside an LF-framed frame: {f:?}");
            assert_eq!(bytes, format!("{f}\n").into_bytes());
        }
        Framing::OctetCounting => {
            let sp = bytes.iter().position(|&b| b == b' ').expect("LEN SP");
            let len: usize = std::str::from_utf8(&bytes[..sp]).unwrap().parse().expect("a decimal length");
            assert_eq!(len, bytes.len() - sp - 1, "the octet count is not the frame's length");
            assert_eq!(&bytes[sp + 1..], f.as_bytes());
        }
    }
}

/// `Retry-After` and HTTP dates: any text parses or not without panicking; delay-seconds
/// digits give exactly their value (saturated); a parsed date prints and parses back to
/// itself; every second of years 0..=9999 round-trips through `http_date`, and as a
/// `Retry-After` date gives the delay until it.
pub fn retry_after(data: &[u8]) {
    use watchbell_core::http::parse_retry_after;
    use watchbell_core::time::{http_date, parse_http_date};
    let mut u = Bytes::new(data);
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + u64::from(u.u16()));
    let secs = u.u64() % 253_402_300_800;
    let t = UNIX_EPOCH + Duration::from_secs(secs);
    let printed = http_date(t);
    assert_eq!(parse_http_date(&printed), Some(t), "{printed} does not parse back");
    assert_eq!(parse_retry_after(&printed, now), Some(t.duration_since(now).unwrap_or(Duration::ZERO)));
    let s = u.rest();
    let r = parse_retry_after(&s, now);
    let v = s.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        assert_eq!(r, Some(v.parse::<u64>().map_or(Duration::MAX, Duration::from_secs)));
    }
    if v.starts_with('-') {
        assert_eq!(r, None, "a negative delay accepted: {v:?}");
    }
    if let Some(at) = parse_http_date(&s) {
        assert_eq!(parse_http_date(&http_date(at)), Some(at));
    }
}

static SPOOL_DIRS: AtomicU64 = AtomicU64::new(0);

/// A fresh directory under the system's temporary directory.
fn temp_dir() -> PathBuf {
    let n = SPOOL_DIRS.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("watchbell-fuzz-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("a temporary directory");
    d
}

/// The HTTP spool's reader on a segment of fuzz bytes (after some valid records) with a cursor
/// anywhere: it opens and replays to the end without panicking in a bounded number of reads;
/// the valid records ahead of the cursor come back in order; damaged lines are skipped and
/// counted; nothing is left pending.
pub fn spool_reader(data: &[u8]) {
    let mut u = Bytes::new(data);
    let sel = u.u8();
    let valid: Vec<Record> = (0..sel % 4).map(|i| Record::new(Level::INFO, "app", format!("valid {i}"))).collect();
    let mut seg = Vec::new();
    for r in &valid {
        seg.extend(serde_json::to_vec(r).unwrap());
        seg.push(b'\n');
    }
    let cursor = if sel & 4 == 0 { None } else { Some(u64::from(u.u16())) };
    seg.extend_from_slice(u.data);
    let dir = temp_dir();
    std::fs::write(dir.join("seg-00000000000000000001.ndjson"), &seg).unwrap();
    if let Some(off) = cursor {
        std::fs::write(dir.join("cursor"), format!("1 {off}")).unwrap();
    }
    let lines = seg.iter().filter(|&&b| b == b'\n').count() + 1;
    let replay = watchbell_http::fuzzing_spool::replay(&dir, 64 << 20, 1 + usize::from(sel >> 4), 100_000);
    let _ = std::fs::remove_dir_all(&dir);
    let replay = replay.expect("the spool opens");
    assert!(replay.reads < 100_000, "the replay does not end");
    assert!(replay.records.len() + replay.shed as usize <= lines, "more records than lines");
    assert_eq!(replay.pending, 0, "records left pending after a full replay");
    if cursor.is_none() {
        let got: Vec<&str> = replay.records.iter().take(valid.len()).map(|r| &*r.message).collect();
        let want: Vec<&str> = valid.iter().map(|r| &*r.message).collect();
        assert_eq!(got, want, "the valid records were not replayed in order");
    }
}

/// The Elasticsearch `_bulk` answer parser: any bytes give an answer with exactly one result
/// per record sent; a well-formed answer with `errors: true` is read item by item (2xx
/// created, 429 and 5xx retried, 3xx and other 4xx refused, a status outside 200..=599
/// unknown, so sent again).
pub fn es_bulk(data: &[u8]) {
    use watchbell_http::fuzzing::{parse_bulk_answer, BulkAnswer, BulkItem};
    let mut u = Bytes::new(data);
    let sent = usize::from(u.u8() % 64);
    let sel = u.u8();
    if sel & 1 == 0 {
        if let BulkAnswer::Items(items) = parse_bulk_answer(u.data, sent) {
            assert_eq!(items.len(), sent, "not one result per record");
        }
        return;
    }
    let statuses: Vec<u16> = (0..sent).map(|_| u.u16() % 1000).collect();
    let items: Vec<serde_json::Value> = statuses
        .iter()
        .map(|s| serde_json::json!({"create": {"_index": "logs", "status": s, "error": {"type": "x", "reason": "y"}}}))
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({"took": 3, "errors": true, "items": items})).unwrap();
    match parse_bulk_answer(&body, sent) {
        BulkAnswer::Items(got) => {
            assert_eq!(got.len(), sent);
            for (s, item) in statuses.iter().zip(&got) {
                let ok = match item {
                    BulkItem::Created => (200..300).contains(s),
                    BulkItem::Retry(_) => *s == 429 || *s >= 500,
                    BulkItem::Refused(_) => (300..500).contains(s) && *s != 429,
                    BulkItem::Unknown => !(200..600).contains(s),
                };
                assert!(ok, "status {s} read as {item:?}");
            }
        }
        other => panic!("a well-formed answer read as {other:?}"),
    }
}

/// Equal JSON values, numbers within the precision serde_json's default float parsing keeps.
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) if x.is_f64() || y.is_f64() => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= f64::EPSILON * 4.0 * x.abs().max(y.abs()),
            _ => false,
        },
        (J::Array(x), J::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn json(body: &[u8], what: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{what} is not JSON ({e}): {}", String::from_utf8_lossy(body)));
    let again: serde_json::Value = serde_json::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert!(same_json(&again, &v), "{what} does not round-trip through serde_json: {v} became {again}");
    v
}

/// The collector encoders on fuzzed records: NDJSON, JSON array and `_bulk` bodies are valid
/// JSON (one document per record); Loki's push is JSON with every stream's values sorted by
/// time and every record in one; OTLP is JSON with unique attribute keys in every log record.
pub fn encoders(data: &[u8]) {
    use watchbell_http::fuzzing::encode;
    use watchbell_http::Encoding;
    let mut u = Bytes::new(data);
    let n = 1 + usize::from(u.u8() % 6);
    let records: Vec<Record> = (0..n).map(|_| record(&mut u)).collect();
    let app = Some("app");
    let host = Some("host");

    let body = encode(&Encoding::Ndjson, &records, app, host);
    let lines: Vec<&[u8]> = body.strip_suffix(b"\n").expect("ends in a newline").split(|&b| b == b'\n').collect();
    assert_eq!(lines.len(), n);
    for l in lines {
        json(l, "an NDJSON line");
    }
    let v = json(&encode(&Encoding::JsonArray, &records, app, host), "the JSON array");
    assert_eq!(v.as_array().map(Vec::len), Some(n));
    let body = encode(&Encoding::elastic_bulk("logs"), &records, app, host);
    let lines: Vec<&[u8]> = body.strip_suffix(b"\n").expect("ends in a newline").split(|&b| b == b'\n').collect();
    assert_eq!(lines.len(), 2 * n);
    for l in lines {
        json(l, "a _bulk line");
    }

    let v = json(&encode(&Encoding::loki(), &records, app, host), "the Loki push");
    let mut total = 0;
    for stream in v["streams"].as_array().expect("streams") {
        let values = stream["values"].as_array().expect("values");
        let ts: Vec<u128> =
            values.iter().map(|e| e[0].as_str().expect("a string timestamp").parse().expect("nanoseconds")).collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "Loki values out of order: {ts:?}");
        total += values.len();
    }
    assert_eq!(total, n, "not every record in a Loki stream");

    let v = json(&encode(&Encoding::otlp("svc"), &records, app, host), "the OTLP body");
    let mut total = 0;
    for rl in v["resourceLogs"].as_array().expect("resourceLogs") {
        for sl in rl["scopeLogs"].as_array().expect("scopeLogs") {
            for lr in sl["logRecords"].as_array().expect("logRecords") {
                let mut keys: Vec<&str> = lr["attributes"]
                    .as_array()
                    .map(|a| a.iter().map(|kv| kv["key"].as_str().expect("a key")).collect())
                    .unwrap_or_default();
                keys.sort_unstable();
                let len = keys.len();
                keys.dedup();
                assert_eq!(keys.len(), len, "repeated OTLP attribute keys in {lr}");
                total += 1;
            }
        }
    }
    assert_eq!(total, n, "not every record in the OTLP body");
}

/// Shape-based redaction: any text is redacted without panicking, and a secret planted in
/// a shape the redaction promises to hide (URL userinfo, a secret-named query parameter, JSON
/// key or header, a Telegram bot token, a Slack webhook path) is gone from the output, whatever
/// text surrounds it.
pub fn redact(data: &[u8]) {
    use watchbell_core::secret::redact_text;
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let _ = redact_text(&String::from_utf8_lossy(data));
    let mut u = Bytes::new(data);
    let sel = u.u8();
    let len = 12 + usize::from(u.u8() % 40);
    let secret: String = (0..len).map(|_| char::from(ALNUM[usize::from(u.u8()) % ALNUM.len()])).collect();
    let prefix = u.text(100);
    let suffix = u.rest();
    let text = match sel % 7 {
        0 => format!("{prefix} https://user:{secret}@logs.example.com/x {suffix}"),
        1 => format!("{prefix} GET https://logs.example.com/push?token={secret}&page=2 {suffix}"),
        2 => format!("{prefix}\nAuthorization: Bearer {secret}\n{suffix}"),
        3 => format!("{prefix} POST /bot123456789:AA{secret}{secret}{secret}/sendMessage {suffix}"),
        4 => format!("{prefix} https://hooks.slack.com/services/T000/B000/{secret} {suffix}"),
        5 => format!("{prefix} {{\"api_key\": \"{secret}\"}} {suffix}"),
        _ => format!("{prefix} https://ingest:a/{secret}@logs.example.com/x {suffix}"),
    };
    if prefix.contains(&secret) || suffix.contains(&secret) {
        return;
    }
    let out = redact_text(&text);
    assert!(!out.contains(&secret), "the secret survived: {out:?}");
}

/// A record with the extras the new sinks read: a suppressed count, a module, a thread name,
/// up to two spans with fields, and, when asked, a message repeated past every sink's limit.
fn rich_record(u: &mut Bytes<'_>, names: &[&str]) -> Record {
    use std::sync::Arc;
    use watchbell_core::record::{Fields, SpanRecord};
    let mut r = record(u);
    let sel = u.u8();
    if sel & 1 == 1 {
        r.suppressed = u64::from(u.u16());
    }
    if sel & 2 == 2 {
        r.module = Some(u.text(30).into());
    }
    if sel & 4 == 4 {
        r.thread_name = Some(u.text(20).into());
    }
    if sel & 8 == 8 {
        // Past 16 KiB (the program's argument limit) and 6,000 chars (Discord's).
        r.message = (r.message.repeat(1 + usize::from(u.u8()))).into();
    }
    for _ in 0..(sel >> 4) % 3 {
        let mut fields = Fields::new();
        for _ in 0..u.u8() % 4 {
            let k = u.u8();
            let name = if k & 1 == 0 { names[usize::from(k >> 1) % names.len()].to_owned() } else { u.text(12) };
            fields.push_unique(name, Value::Str(u.text(40)));
        }
        r.spans.push(Arc::new(SpanRecord { name: u.text(16).into(), target: "app".into(), fields }));
    }
    for _ in 0..u.u8() % 4 {
        let k = u.u8();
        r.fields.push_unique(names[usize::from(k) % names.len()].to_owned(), Value::Str(u.text(60)));
    }
    r
}

/// A format context from fuzz bytes: with or without an app (any text) and a host.
fn context(u: &mut Bytes<'_>) -> watchbell_core::format::FormatContext {
    use watchbell_core::format::FormatContext;
    let sel = u.u8();
    // A name that is blank on one line is a configuration mistake, not log text.
    let nonblank = |s: String, or: &str| {
        if watchbell_core::text::single_line(&s).is_empty() {
            or.to_owned()
        } else {
            s
        }
    };
    let mut cx = if sel & 1 == 1 { FormatContext::new(nonblank(u.text(40), "app")) } else { FormatContext::default() };
    if sel & 2 == 2 {
        cx = cx.with_host(nonblank(u.text(30), "host"));
    }
    cx
}

/// Whether `s` is a portable environment variable name: `[A-Z_][A-Z0-9_]*`.
fn portable_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_uppercase() || c == b'_')
        && b.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

/// `s` cut by a truncation with `marker`: either `s` itself, or a prefix of `s` followed by the
/// marker (or a prefix of the marker, when not even the marker fits).
fn is_cut_of(out: &str, s: &str, marker: &str) -> bool {
    out == s || out.strip_suffix(marker).is_some_and(|kept| s.starts_with(kept)) || marker.starts_with(out)
}

/// The program sink's arguments and environment: a template argument (any placeholder, any
/// literal) rendered for any record is one argument holding no NUL and at most 16 KiB, equal to
/// the rendered text (NUL shown as `␀`) or a char-boundary cut of it with the marker; every
/// environment entry has a `[A-Z_][A-Z0-9_]*` name (for a prefix of that form) and a value
/// with no NUL within 16 KiB; every field (up to 64) has its `<PREFIX>FIELD_<NAME>` entry with
/// its value; the record's own entries appear once each.
pub fn command(data: &[u8]) {
    use watchbell_command::{env_name, environment, safe_value};
    use watchbell_core::format::{Format, Template};
    use watchbell_core::text::MARKER;
    const MAX: usize = 16 * 1024;
    const NAMES: [&str; 8] = ["user.id", "user_id", "2fa", "é", "", "a-b c", "PATH", "x\0y"];
    const PREFIXES: [&str; 4] = ["WATCHBELL_", "APP_", "_", "X"];
    const TEMPLATES: [&str; 6] =
        ["{message}", "--level={level}", "{field.user}", "{target} {location}", "{fields}", "{{{spans}}}{suppressed}"];
    let mut u = Bytes::new(data);
    let sel = u.u8();
    let template =
        if sel & 1 == 0 { TEMPLATES[usize::from(sel >> 1) % TEMPLATES.len()].to_owned() } else { u.text(40) };
    let prefix = PREFIXES[usize::from(sel >> 4) % PREFIXES.len()];
    let cx = context(&mut u);
    let r = rich_record(&mut u, &NAMES);

    let nuls = if sel & 8 == 8 { "\0".repeat(MAX / 2 + usize::from(u.u8())) } else { "\0".to_owned() };
    for s in [&*r.message, &r.target, "", &nuls] {
        let v = safe_value(s);
        assert!(!v.contains('\0'), "a NUL in a value: {v:?}");
        assert!(v.len() <= MAX, "a value of {} bytes", v.len());
        assert!(is_cut_of(&v, &s.replace('\0', "\u{2400}"), MARKER), "the value is not the text or a cut of it");
    }
    if let Ok(t) = Template::parse(&template) {
        let rendered = t.format_to_string(&r, &cx);
        let arg = safe_value(&rendered);
        assert!(!arg.contains('\0') && arg.len() <= MAX, "an argument with a NUL or over 16 KiB");
        assert!(is_cut_of(&arg, &rendered.replace('\0', "\u{2400}"), MARKER), "the argument is not its rendered text");
        if template == "{message}" && !r.message.contains('\0') && r.message.len() <= MAX {
            assert_eq!(arg, r.message, "the message placeholder was changed");
        }
    }

    let env = environment(prefix, &r, 1, &cx);
    for (k, v) in &env {
        assert!(portable_env_name(k), "an environment name outside [A-Z_][A-Z0-9_]*: {k:?}");
        assert!(!v.contains('\0'), "a NUL in the value of {k}");
        assert!(v.len() <= MAX, "{k} has {} bytes", v.len());
    }
    let field_prefix = format!("{prefix}FIELD_");
    let (fields, own): (Vec<_>, Vec<_>) = env.iter().partition(|(k, _)| k.starts_with(&field_prefix));
    let mut own_names: Vec<&str> = own.iter().map(|(k, _)| k.as_str()).collect();
    own_names.sort_unstable();
    let n = own_names.len();
    own_names.dedup();
    assert_eq!(own_names.len(), n, "an entry of the record's own twice: {own_names:?}");
    let message = &own.iter().find(|(k, _)| *k == format!("{prefix}MESSAGE")).expect("the message").1;
    assert!(is_cut_of(message, &r.message.replace('\0', "\u{2400}"), MARKER), "the message entry is not the message");
    let want: Vec<(String, String)> =
        r.fields.iter().take(64).map(|(k, v)| (env_name(&field_prefix, k), safe_value(&v.to_string()))).collect();
    let got: Vec<(String, String)> = fields.into_iter().cloned().collect();
    assert_eq!(got, want, "the fields' entries");
}

/// Parses journald's native protocol: `NAME=value\n`, or `NAME\n`, the value's length as 64-bit
/// little endian, the value and `\n`. Fails on anything else (a truncated entry, a missing
/// newline, a name with a character journald refuses).
pub fn parse_journal(mut b: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let end = b.iter().position(|&c| c == b'=' || c == b'\n').ok_or("a name without = or newline")?;
        let name = std::str::from_utf8(&b[..end]).map_err(|_| "a name that is not UTF-8")?.to_owned();
        if !journal_name_valid(&name) {
            return Err(format!("an invalid field name {name:?}"));
        }
        let value;
        if b[end] == b'=' {
            let rest = &b[end + 1..];
            let nl = rest.iter().position(|&c| c == b'\n').ok_or("a value without its newline")?;
            value = rest[..nl].to_vec();
            b = &rest[nl + 1..];
        } else {
            let rest = &b[end + 1..];
            let len: [u8; 8] = rest.get(..8).ok_or("a short length")?.try_into().unwrap();
            let len = usize::try_from(u64::from_le_bytes(len)).map_err(|_| "a huge length")?;
            let data = rest.get(8..8usize.saturating_add(len)).ok_or("a value shorter than its length")?;
            if rest.get(8 + len) != Some(&b'\n') {
                return Err("a binary value without its newline".into());
            }
            value = data.to_vec();
            b = &rest[8 + len + 1..];
        }
        out.push((name, value));
    }
    Ok(out)
}

/// journald's rule for a field a client may set: 1 to 64 of `[A-Z0-9_]`, not starting with a
/// digit, and not with `_` (trusted fields, set by journald alone).
pub fn journal_name_valid(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
        && !name.starts_with(|c: char| c.is_ascii_digit() || c == '_')
}

/// The fields the journald sink sets itself (an event field of one of these names is renamed).
const JOURNAL_OWN: [&str; 11] = [
    "MESSAGE",
    "PRIORITY",
    "SYSLOG_IDENTIFIER",
    "TARGET",
    "CODE_FILE",
    "CODE_LINE",
    "CODE_MODULE",
    "THREAD_NAME",
    "THREAD_ID",
    "FINGERPRINT",
    "WATCHBELL_TIME",
];

/// journald's native encoder and its field-name sanitiser: any name sanitises to a valid
/// journal name (or `None` for the empty name); the entry of any record (hostile field and span
/// names, values with newlines, NUL and invalid UTF-8 replaced) parses back with every field
/// name valid; the sink's own fields appear exactly once each, with the record's values (an
/// event field cannot forge them); every event field, span name, span field and extra field is
/// there once with its value, and nothing else is.
pub fn journald(data: &[u8]) {
    use watchbell_journald::{encode_entry, field_name};
    const NAMES: [&str; 12] = [
        "message",
        "priority",
        "code.file",
        "_PID",
        "_",
        "2fa",
        "é",
        "F_MESSAGE",
        "S0_NAME",
        "name",
        "a_name_of_seventy_characters_a_name_of_seventy_characters_a_name_of_s",
        "_a_name_of_sixty_four_characters_that_starts_with_an_underscore_",
    ];
    let mut u = Bytes::new(data);
    let sel = u.u8();
    let identifier = if sel & 1 == 0 { "billing".to_owned() } else { u.text(20).replace('\n', " ") };
    let raw = u.text(80);
    match field_name(&raw) {
        Some(n) => assert!(journal_name_valid(&n), "field_name({raw:?}) = {n:?} is not a valid journal name"),
        None => assert!(raw.is_empty(), "field_name({raw:?}) refused a non-empty name"),
    }
    let extra: Vec<(String, String)> = (0..(sel >> 1) % 3)
        .filter_map(|_| {
            let k = u.text(20);
            let v = u.text(30);
            // The builder takes an extra field's name as given: one named like a field the
            // sink sets would be a second value of it.
            field_name(&k).filter(|k| !JOURNAL_OWN.contains(&k.as_str())).map(|k| (k, v))
        })
        .collect();
    let r = rich_record(&mut u, &NAMES);
    let entry = encode_entry(&r, &identifier, &extra);
    let mut got = parse_journal(&entry).unwrap_or_else(|e| panic!("the entry does not parse ({e}): {entry:?}"));

    let message = if r.suppressed > 0 {
        format!("{} ({} similar suppressed)", r.message, r.suppressed)
    } else {
        r.message.to_string()
    };
    let priority = match r.level {
        Level::ERROR => "3",
        Level::WARN => "4",
        Level::INFO => "6",
        _ => "7",
    };
    let mut own: Vec<(&str, String)> = vec![
        ("MESSAGE", message),
        ("PRIORITY", priority.to_owned()),
        ("SYSLOG_IDENTIFIER", identifier.clone()),
        ("TARGET", r.target.to_string()),
        ("THREAD_ID", r.thread_id.to_string()),
    ];
    if let Some(f) = &r.file {
        own.push(("CODE_FILE", f.to_string()));
    }
    if let Some(l) = r.line {
        own.push(("CODE_LINE", l.to_string()));
    }
    if let Some(m) = &r.module {
        own.push(("CODE_MODULE", m.to_string()));
    }
    if let Some(t) = &r.thread_name {
        own.push(("THREAD_NAME", t.to_string()));
    }
    for (name, value) in own {
        let n = got.iter().filter(|(k, _)| k == name).count();
        assert_eq!(n, 1, "{name} appears {n} times in {:?}", String::from_utf8_lossy(&entry));
        let at = got.iter().position(|(k, _)| k == name).unwrap();
        assert_eq!(got.remove(at).1, value.into_bytes(), "{name} does not hold the record's value");
    }
    for name in ["FINGERPRINT", "WATCHBELL_TIME"] {
        let at = got.iter().position(|(k, _)| k == name).unwrap_or_else(|| panic!("no {name}"));
        got.remove(at);
        assert!(!got.iter().any(|(k, _)| k == name), "{name} twice");
    }
    // What is left: one entry per event field, span name, span field and extra field.
    let mut want: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, value) in r.fields.iter() {
        if let Some(n) = field_name(name) {
            let n = if JOURNAL_OWN.contains(&n.as_str()) {
                let mut p = format!("F_{n}");
                p.truncate(64);
                p
            } else {
                n
            };
            want.push((n, value.to_string().into_bytes()));
        }
    }
    for (depth, span) in r.spans.iter().enumerate() {
        want.push((format!("S{depth}_NAME"), span.name.as_bytes().to_vec()));
        for (name, value) in span.fields.iter() {
            if let Some(n) = field_name(name) {
                let mut full = format!("S{depth}_{n}");
                full.truncate(64);
                want.push((full, value.to_string().into_bytes()));
            }
        }
    }
    want.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())));
    got.sort();
    want.sort();
    assert_eq!(got, want, "the fields of the entry are not the record's");
}

/// Reverses freedesktop body-markup escaping, checking that `<` and `>` appear only escaped
/// and every `&` starts one of the entities the escaper writes.
fn markup_unescape(s: &str) -> String {
    assert!(!s.contains(['<', '>']), "a raw < or > in the body: {s:?}");
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (c, n) = [("&amp;", '&'), ("&lt;", '<'), ("&gt;", '>'), ("&quot;", '"'), ("&#39;", '\'')]
            .iter()
            .find(|(e, _)| tail.starts_with(e))
            .map(|(e, c)| (*c, e.len()))
            .unwrap_or_else(|| panic!("a & that is not an entity in the body: {s:?}"));
        out.push(c);
        rest = &tail[n..];
    }
    out.push_str(rest);
    out
}

/// The desktop notification's texts: the summary is one line without control characters, at
/// most 100 chars; the body, with markup, holds no raw `<`/`>` and only the escaper's entities,
/// and reads back to the plain body; the plain body holds no control character but newline and
/// tab (a NUL cannot even cross D-Bus), is at most 1,000 chars, and when the text has none to
/// replace, is the text itself or a char-boundary cut of it with the marker.
pub fn desktop(data: &[u8]) {
    use watchbell_core::text::MARKER;
    use watchbell_desktop::{body_text, summary};
    const NAMES: [&str; 4] = ["<b>", "a&b", "user", "\u{1b}[31m"];
    let mut u = Bytes::new(data);
    let app = u.text(40);
    let r = rich_record(&mut u, &NAMES);
    let s = summary(&r, &app);
    assert!(!s.chars().any(char::is_control), "a control character in the summary: {s:?}");
    assert!(s.chars().count() <= 100, "a summary of {} chars", s.chars().count());

    let plain = body_text(&r, false);
    let marked = body_text(&r, true);
    assert_eq!(markup_unescape(&marked), plain, "the markup body does not read back to the plain body");
    assert!(
        !plain.chars().any(|c| c.is_control() && c != '\n' && c != '\t'),
        "a control character in the body: {plain:?}"
    );
    assert!(plain.chars().count() <= 1000, "a body of {} chars", plain.chars().count());
    let mut text = r.message.to_string();
    for (name, value) in r.fields.iter() {
        text.push_str(&format!("\n{name} = {value}"));
    }
    if r.suppressed > 0 {
        text.push_str(&format!("\n({} similar suppressed)", r.suppressed));
    }
    if !text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        assert!(is_cut_of(&plain, &text, MARKER), "the body is not the text or a cut of it: {plain:?}");
    }
}

/// The chars Discord's markdown gives a meaning to, which [`watchbell_notify::escape_discord`]
/// escapes with a backslash.
const DISCORD_MARKDOWN: [char; 11] = ['\\', '*', '_', '~', '`', '|', '>', '#', '-', '[', ']'];

/// Reverses Discord escaping, checking that every markdown char is escaped, every backslash
/// escapes one, and every `@` is followed by a zero-width space (so no `@everyone`/`@here`).
fn discord_unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some(e) if DISCORD_MARKDOWN.contains(&e) => out.push(e),
                other => return Err(format!("a backslash before {other:?} in {s:?}")),
            },
            '@' => match it.next() {
                Some('\u{200b}') => out.push('@'),
                other => return Err(format!("an @ followed by {other:?} (a possible mention) in {s:?}")),
            },
            c if DISCORD_MARKDOWN.contains(&c) => return Err(format!("an unescaped {c:?} in {s:?}")),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Checks Discord text cut with the marker: what is kept is escaped text, whole (no escape
/// split by the cut; an `@` whose zero-width space was cut off is followed by the marker, which
/// makes no mention), reading back to a prefix of `original` (all of it when not cut).
fn check_discord_text(out: &str, original: &str, max: usize, what: &str) {
    use watchbell_core::text::MARKER;
    let n = out.chars().count();
    assert!(n <= max, "{what} of {n} chars > {max}");
    match out.strip_suffix(MARKER) {
        Some(kept) if discord_unescape(out).ok().as_deref() != Some(original) => {
            let kept = kept.strip_suffix('@').unwrap_or(kept);
            let back = discord_unescape(kept).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(original.starts_with(&back), "{what} cut is not a prefix of the text: {out:?}");
        }
        _ => assert_eq!(
            discord_unescape(out).unwrap_or_else(|e| panic!("{what}: {e}")),
            original,
            "{what} does not read back"
        ),
    }
}

/// Whether `s` holds no line break: no control char, no U+2028/U+2029.
fn one_line(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
}

/// The push and paging bodies. `escape_discord`: every markdown char escaped, every backslash
/// an escape, every `@` broken (no `@everyone`/`@here`), reading back to the text. The
/// Discord message: every embed limit (title, description, field name and value, footer, at
/// most 25 fields), the 6,000 chars across the embed, mentions disabled, escaped texts whose
/// cuts split no escape. ntfy: a one-line title of at most 250 chars, a message of at most
/// 4,000 bytes that is the text or a cut of it. PagerDuty: a non-empty one-line summary of at
/// most 1,024 chars, a dedup key. Pushover: a one-line title of at most 250 chars, a non-empty
/// message of at most 1,024, emergency `retry` ≥ 30 s and `expire` ≤ 3 h. Opsgenie: a
/// non-empty one-line message of at most 130 chars, alias, description, entity, source, tag
/// and details limits. Teams: log text only in `TextRun`s, at most 27,000 bytes. Google Chat:
/// a one-line text with every `<` broken, escaped card HTML, at most 32,000 bytes. Mattermost
/// and Rocket.Chat: every piece of log text escaped, within the text limit. Every body is JSON
/// that round-trips.
pub fn notify(data: &[u8]) {
    use watchbell_core::text::MARKER;
    use watchbell_notify::{
        discord_body, escape_discord, google_chat_body, ntfy_body, opsgenie_body, pagerduty_body, pushover_form,
        slack_compatible_body, teams_body, Emergency, SlackCompatible, DISCORD_LIMITS, DISCORD_MAX_FIELDS,
        DISCORD_MAX_TOTAL, GOOGLE_CHAT_MAX_BODY, MATTERMOST_MAX_TEXT, NTFY_MAX_MESSAGE, NTFY_MAX_TITLE,
        OPSGENIE_MAX_ALIAS, OPSGENIE_MAX_DESCRIPTION, OPSGENIE_MAX_DETAILS, OPSGENIE_MAX_ENTITY, OPSGENIE_MAX_MESSAGE,
        OPSGENIE_MAX_SOURCE, PAGERDUTY_MAX_SUMMARY, PUSHOVER_MAX_EXPIRE, PUSHOVER_MAX_MESSAGE, PUSHOVER_MAX_TITLE,
        PUSHOVER_MIN_RETRY, ROCKETCHAT_MAX_TEXT, TEAMS_MAX_BODY,
    };
    const NAMES: [&str; 8] = ["@everyone", "**b**", "location", "suppressed", "user", "a\\b", "", "x\ny"];
    let mut u = Bytes::new(data);
    let raw = u.text(200);
    let escaped = escape_discord(&raw);
    assert_eq!(discord_unescape(&escaped).unwrap_or_else(|e| panic!("escape_discord: {e}")), raw);
    let cx = context(&mut u);
    let r = rich_record(&mut u, &NAMES);
    let text = |j: &serde_json::Value| j.as_str().expect("a string").to_owned();
    let message = if r.suppressed > 0 {
        format!("{} ({} similar suppressed)", r.message, r.suppressed)
    } else {
        r.message.to_string()
    };

    // Discord.
    let body = discord_body(&r, &cx);
    let v = json(&serde_json::to_vec(&body).unwrap(), "the Discord body");
    assert_eq!(v["allowed_mentions"]["parse"], serde_json::json!([]), "mentions not disabled");
    let (tmax, dmax, nmax, vmax, fmax) = DISCORD_LIMITS;
    let embeds = v["embeds"].as_array().expect("embeds");
    assert_eq!(embeds.len(), 1);
    let e = &embeds[0];
    let title = text(&e["title"]);
    assert!(title.chars().count() <= tmax && one_line(&title), "the title {title:?}");
    let description = text(&e["description"]);
    check_discord_text(&description, &message, dmax, "the description");
    let mut total = title.chars().count() + description.chars().count();
    let fields = e["fields"].as_array().cloned().unwrap_or_default();
    assert!(fields.len() <= DISCORD_MAX_FIELDS, "{} fields", fields.len());
    for (f, (k, val)) in fields.iter().zip(r.fields.iter()) {
        let name = text(&f["name"]);
        let value = text(&f["value"]);
        assert!(!name.is_empty() && !value.is_empty(), "an empty field name or value");
        if name != "\u{200b}" {
            check_discord_text(&name, k, nmax, "a field name");
        }
        if value != "\u{200b}" {
            check_discord_text(&value, &val.to_string(), vmax, "a field value");
        }
        total += name.chars().count() + value.chars().count();
    }
    if let Some(footer) = e["footer"]["text"].as_str() {
        check_discord_text(footer, &r.location().unwrap_or_default(), fmax, "the footer");
        total += footer.chars().count();
    }
    assert!(total <= DISCORD_MAX_TOTAL, "{total} chars across the embed > {DISCORD_MAX_TOTAL}");
    if let Some(name) = v["username"].as_str() {
        assert!((1..=80).contains(&name.chars().count()), "a username of {name:?}");
    }

    // ntfy.
    let topic = "alerts";
    let v =
        json(&serde_json::to_vec(&ntfy_body(&r, &cx, topic, Some("https://example.com/x"))).unwrap(), "the ntfy body");
    assert_eq!(v["topic"], topic);
    let title = text(&v["title"]);
    assert!(one_line(&title), "a title of more than one line: {title:?}");
    assert!(title.chars().count() <= NTFY_MAX_TITLE, "a title of {} chars", title.chars().count());
    let msg = text(&v["message"]);
    assert!(msg.len() <= NTFY_MAX_MESSAGE, "a message of {} bytes", msg.len());
    let mut full = message.clone();
    for (k, val) in r.fields.iter() {
        full.push_str(&format!("\n{k} = {val}"));
    }
    if let Some(loc) = r.location() {
        full.push_str(&format!("\nat {loc}"));
    }
    assert!(is_cut_of(&msg, &full, MARKER), "the message is not the text or a cut of it");
    assert!((1..=5).contains(&v["priority"].as_u64().expect("a priority")));

    // PagerDuty.
    let v = json(&serde_json::to_vec(&pagerduty_body(&r, &cx, "R0UTINGKEY")).unwrap(), "the PagerDuty body");
    let summary = text(&v["payload"]["summary"]);
    assert!(!summary.trim().is_empty(), "an empty summary");
    assert!(one_line(&summary), "a summary of more than one line: {summary:?}");
    assert!(summary.chars().count() <= PAGERDUTY_MAX_SUMMARY, "a summary of {} chars", summary.chars().count());
    assert!(["critical", "error", "warning", "info"].contains(&v["payload"]["severity"].as_str().unwrap_or("")));
    let key = text(&v["dedup_key"]);
    assert!((1..=255).contains(&key.chars().count()), "a dedup key of {} chars", key.chars().count());
    assert!(!text(&v["payload"]["source"]).is_empty(), "an empty source");
    // Pushover.
    let form = pushover_form(&r, &cx, "T0KEN", "US3R", Some(Emergency { retry: 1, expire: u32::MAX }), None);
    let get = |k: &str| form.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
    let title = get("title").expect("a title");
    assert!(one_line(title) && title.chars().count() <= PUSHOVER_MAX_TITLE, "the Pushover title {title:?}");
    let msg = get("message").expect("a message");
    assert!(!msg.trim().is_empty(), "an empty Pushover message");
    assert!(msg.chars().count() <= PUSHOVER_MAX_MESSAGE, "a Pushover message of {} chars", msg.chars().count());
    if r.level == Level::ERROR {
        assert_eq!(get("priority"), Some("2"));
        let retry: u32 = get("retry").expect("retry").parse().unwrap();
        let expire: u32 = get("expire").expect("expire").parse().unwrap();
        assert!(retry >= PUSHOVER_MIN_RETRY && expire <= PUSHOVER_MAX_EXPIRE, "retry {retry}, expire {expire}");
    }

    // Opsgenie.
    let v = json(&serde_json::to_vec(&opsgenie_body(&r, &cx)).unwrap(), "the Opsgenie body");
    let m = text(&v["message"]);
    assert!(!m.trim().is_empty() && one_line(&m), "the Opsgenie message {m:?}");
    assert!(m.chars().count() <= OPSGENIE_MAX_MESSAGE, "an Opsgenie message of {} chars", m.chars().count());
    let alias = text(&v["alias"]);
    assert!((1..=OPSGENIE_MAX_ALIAS).contains(&alias.chars().count()), "an alias of {} chars", alias.chars().count());
    assert!(text(&v["description"]).chars().count() <= OPSGENIE_MAX_DESCRIPTION);
    assert!(text(&v["entity"]).chars().count() <= OPSGENIE_MAX_ENTITY);
    let source = text(&v["source"]);
    assert!(!source.is_empty() && source.chars().count() <= OPSGENIE_MAX_SOURCE, "the source {source:?}");
    let details = v["details"].as_object().expect("details");
    let size: usize =
        details.iter().map(|(k, d)| k.chars().count() + d.as_str().expect("a string").chars().count()).sum();
    assert!(size <= OPSGENIE_MAX_DETAILS, "details of {size} chars");
    for t in v["tags"].as_array().expect("tags") {
        let t = t.as_str().expect("a string tag");
        assert!((1..=50).contains(&t.chars().count()), "a tag {t:?}");
    }

    // Teams: log text only in text runs (shown as typed), within the body limit.
    let body = teams_body(&r, &cx);
    let bytes = serde_json::to_vec(&body).unwrap();
    assert!(bytes.len() <= TEAMS_MAX_BODY, "a Teams body of {} bytes", bytes.len());
    let v = json(&bytes, "the Teams body");
    let card = &v["attachments"][0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    for block in card["body"].as_array().expect("a card body") {
        assert_eq!(block["type"], "RichTextBlock", "log text outside a RichTextBlock");
        for run in block["inlines"].as_array().expect("inlines") {
            assert_eq!(run["type"], "TextRun");
        }
    }

    // Google Chat: the one-line text mentions nobody; card texts hold no markup but `<br>`.
    let bytes = serde_json::to_vec(&google_chat_body(&r, &cx)).unwrap();
    assert!(bytes.len() <= GOOGLE_CHAT_MAX_BODY, "a Google Chat body of {} bytes", bytes.len());
    let v = json(&bytes, "the Google Chat body");
    let t = text(&v["text"]);
    assert!(one_line(&t), "the Google Chat text {t:?}");
    for (i, _) in t.match_indices('<') {
        assert!(t[i + 1..].starts_with('\u{200b}'), "a `<` that can open a mention or link: {t:?}");
    }
    let card = &v["cardsV2"][0]["card"];
    let mut html = vec![text(&card["header"]["title"]), text(&card["header"]["subtitle"])];
    for w in card["sections"][0]["widgets"].as_array().expect("widgets") {
        if let Some(p) = w["textParagraph"]["text"].as_str() {
            html.push(p.to_owned());
        } else {
            html.push(text(&w["decoratedText"]["topLabel"]));
            html.push(text(&w["decoratedText"]["text"]));
        }
    }
    for h in &html {
        markup_unescape(&h.replace("<br>", "\n"));
    }

    // Mattermost and Rocket.Chat: every piece of log text escaped, within the text limit.
    for (service, max) in
        [(SlackCompatible::Mattermost, MATTERMOST_MAX_TEXT), (SlackCompatible::RocketChat, ROCKETCHAT_MAX_TEXT)]
    {
        let v = json(&serde_json::to_vec(&slack_compatible_body(&r, &cx, service)).unwrap(), "a Slack-compatible body");
        let att = &v["attachments"][0];
        let head = text(&v["text"]);
        let foot = text(&att["footer"]);
        let body = text(&att["text"]);
        check_discord_text(&body, &message, max, "the attachment text");
        for (piece, what) in [(&head, "the heading"), (&foot, "the footer"), (&text(&att["fallback"]), "the fallback")]
        {
            assert!(one_line(piece), "{what} is not one line: {piece:?}");
            let kept = piece.strip_suffix(MARKER).map_or(piece.as_str(), |k| k.strip_suffix('@').unwrap_or(k));
            discord_unescape(kept).unwrap_or_else(|e| panic!("{what}: {e}"));
        }
        let mut total = head.chars().count() + foot.chars().count() + body.chars().count();
        for f in att["fields"].as_array().into_iter().flatten() {
            for k in ["title", "value"] {
                let s = text(&f[k]);
                let kept = s.strip_suffix(MARKER).map_or(s.as_str(), |k| k.strip_suffix('@').unwrap_or(k));
                discord_unescape(kept).unwrap_or_else(|e| panic!("a field {k}: {e}"));
                total += s.chars().count();
            }
        }
        assert!(total <= max, "{total} chars > {max} ({service:?})");
    }
}

/// Runs `f` over `input`, returning the panic message if it panicked.
pub fn run_one(f: Target, input: &[u8]) -> Result<(), String> {
    std::panic::catch_unwind(|| f(input)).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    })
}

/// A seconds-since-epoch seed for the stable driver.
pub fn seed() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
}

/// Logbook's record dict from a ZeroMQ peer: [`watchbell_zmq::record_from_logbook_json`] never
/// panics, and a record it accepts goes back out ([`watchbell_zmq::logbook_json`]) and in again
/// unchanged: level, channel, message, time (to the microsecond), place, thread, process,
/// spans, fingerprint, and every field (more may appear: a backtrace becomes the traceback).
pub fn zmq_logbook(data: &[u8]) {
    let Ok(r) = watchbell_zmq::record_from_logbook_json(data) else { return };
    let out = watchbell_zmq::logbook_json(&r);
    let back = watchbell_zmq::record_from_logbook_json(&out)
        .unwrap_or_else(|e| panic!("our own JSON refused: {e}: {}", String::from_utf8_lossy(&out)));
    assert_eq!(back.level, r.level);
    assert_eq!(back.target, r.target);
    assert_eq!(back.message, r.message);
    assert_eq!(watchbell_core::time::rfc3339(back.time), watchbell_core::time::rfc3339(r.time));
    assert_eq!((&back.file, back.line, &back.module), (&r.file, r.line, &r.module));
    assert_eq!((&back.thread_name, back.thread_id, back.pid), (&r.thread_name, r.thread_id, r.pid));
    assert_eq!((back.fingerprint, back.suppressed), (r.fingerprint, r.suppressed));
    assert_eq!(back.spans, r.spans);
    for (k, v) in r.fields.iter() {
        assert_eq!(back.fields.get(k), Some(v), "field {k:?}");
    }
}

/// A body posted to the relay: the NDJSON and OTLP parsers never panic, and a record the NDJSON
/// parser accepts goes back out through watchbell-http's encoder and in again unchanged in
/// every part the record shape carries.
pub fn relay_ingest(data: &[u8]) {
    let _ = watchbell_relay::parse_otlp(data);
    let Ok(records) = watchbell_relay::parse_ndjson(data) else { return };
    let out = watchbell_http::fuzzing::encode(&watchbell_http::Encoding::Ndjson, &records, None, None);
    let back = watchbell_relay::parse_ndjson(&out).expect("the encoder's own NDJSON parses");
    assert_eq!(back.len(), records.len());
    for (a, b) in records.iter().zip(&back) {
        assert_eq!((a.level, &a.target, &a.message, a.line, a.pid), (b.level, &b.target, &b.message, b.line, b.pid));
        assert_eq!(
            (&a.file, &a.module, a.fingerprint, a.suppressed),
            (&b.file, &b.module, b.fingerprint, b.suppressed)
        );
        assert_eq!(a.fields.len(), b.fields.len());
        assert_eq!(a.spans.len(), b.spans.len());
    }
    let otlp = watchbell_http::fuzzing::encode(&watchbell_http::Encoding::otlp("fuzz"), &records, None, None);
    let back = watchbell_relay::parse_otlp(&otlp).expect("the encoder's own OTLP parses");
    assert_eq!(back.len(), records.len());
    for (a, b) in records.iter().zip(&back) {
        assert_eq!((a.level, &a.message, a.fingerprint), (b.level, &b.message, b.fingerprint));
    }
}

/// AWS: error answers in any shape (JSON, XML, garbage) are read without panicking; a shared
/// credentials/config file is parsed into its sections; the SNS subject is one printable-ASCII
/// line of at most 99 chars and the message at most 256 KiB; an SQS body is JSON within the size
/// asked with none of the characters SQS refuses; CloudWatch call plans keep every event once,
/// in time order, within the count, byte and 24 h limits, whatever the times (pre-1970, i64
/// extremes).
pub fn aws(data: &[u8]) {
    use watchbell_aws::{
        plan_log_calls, read_error, record_body, sns_message, sns_subject, LOGS_EVENT_OVERHEAD, LOGS_MAX_BYTES,
        LOGS_MAX_EVENTS, LOGS_MAX_SPAN, SNS_MAX_MESSAGE, SNS_MAX_SUBJECT,
    };
    const NAMES: [&str; 6] = ["error", "token", "a\u{fffe}b", "", "x\ny", "\u{ffff}"];
    let mut u = Bytes::new(data);
    let status = u.u16();
    let code = u.text(30);
    let body = u.text(300);
    let _ = read_error(status, if code.is_empty() { None } else { Some(&code) }, body.as_bytes());
    let ini = u.text(300);
    let sections = watchbell_aws::fuzzing::parse_ini(&ini);
    for (name, keys) in &sections {
        assert!(!name.contains('\n'), "a section name spans lines");
        for k in keys.keys() {
            assert_eq!(k, &k.to_ascii_lowercase(), "keys are lower-cased");
        }
    }
    let cx = context(&mut u);
    let r = rich_record(&mut u, &NAMES);
    let subject = sns_subject(&r, &cx);
    assert!(subject.chars().count() <= SNS_MAX_SUBJECT, "subject too long: {subject:?}");
    assert!(subject.chars().all(|c| (' '..='~').contains(&c)), "subject not printable ASCII: {subject:?}");
    assert!(sns_message(&r, &cx, None).len() <= SNS_MAX_MESSAGE);
    let max = 64 + usize::from(u.u16());
    let sqs = record_body(&r, cx.app.as_deref(), cx.host.as_deref(), max);
    assert!(!sqs.contains(['\u{fffe}', '\u{ffff}']), "a character SQS refuses: {sqs:?}");
    serde_json::from_str::<serde_json::Value>(&sqs).unwrap_or_else(|e| panic!("SQS body not JSON: {e}: {sqs}"));
    if sqs.len() > max {
        // Only the bare essentials may exceed a very small limit.
        assert!(max < 1024, "{} > {max}", sqs.len());
    }
    let mut events = Vec::new();
    while events.len() < 64 && !u.is_empty() {
        let t = match u.u8() % 4 {
            0 => i64::MIN + i64::from(u.u16()),
            1 => i64::MAX - i64::from(u.u16()),
            _ => (u.u64() as i64) >> (u.u8() % 64),
        };
        events.push((t, usize::from(u.u16()) * 16));
    }
    let calls = plan_log_calls(&events);
    let mut seen = vec![false; events.len()];
    let span = i128::try_from(LOGS_MAX_SPAN.as_millis()).unwrap_or(i128::MAX);
    let mut last_time = i64::MIN;
    for call in &calls {
        assert!(!call.is_empty() && call.len() <= LOGS_MAX_EVENTS);
        let bytes: usize = call.iter().map(|&i| events[i].1 + LOGS_EVENT_OVERHEAD).sum();
        assert!(call.len() == 1 || bytes <= LOGS_MAX_BYTES, "{bytes} bytes in a call");
        let (first, last) = (events[call[0]].0, events[*call.last().unwrap()].0);
        assert!(i128::from(last) - i128::from(first) < span, "a call spans {first}..{last}");
        for &i in call {
            assert!(!seen[i], "event {i} twice");
            seen[i] = true;
            assert!(events[i].0 >= last_time, "calls out of time order");
            last_time = events[i].0;
        }
    }
    assert!(seen.iter().all(|s| *s), "an event left out");
}

/// A field value of any kind, 128-bit integers and every float bit pattern included.
fn any_value(u: &mut Bytes<'_>) -> Value {
    let wide = |u: &mut Bytes<'_>| (u128::from(u.u64()) << 64) | u128::from(u.u64());
    match u.u8() % 9 {
        0 => Value::I64(u.u64() as i64),
        1 => Value::U64(u.u64()),
        2 => Value::I128(Box::new(wide(u) as i128)),
        3 => Value::U128(Box::new(wide(u))),
        4 => Value::F64(f64::from_bits(u.u64())),
        5 => Value::Bool(u.u8() & 1 == 1),
        6 => Value::Str(u.text(80)),
        7 => Value::Debug(u.text(80)),
        _ => Value::Display(u.text(80)),
    }
}

fn any_fields(u: &mut Bytes<'_>, max: u8) -> watchbell_core::Fields {
    let mut f = watchbell_core::Fields::new();
    for _ in 0..u.u8() % (max + 1) {
        let sel = u.u8();
        let name =
            if sel & 1 == 0 { FIELD_NAMES[usize::from(sel >> 1) % FIELD_NAMES.len()].to_owned() } else { u.text(16) };
        f.set(name, any_value(u));
    }
    f
}

/// A record with every part chosen by the fuzzer: any text (control characters, quotes,
/// multibyte), every value kind, spans with fields, optional parts present or not, suppressed
/// counts, origins, and a time near `base` (the same second as the record before, or not) or
/// anywhere from 1900 to 9999.
fn any_record(u: &mut Bytes<'_>, base: &mut SystemTime) -> Record {
    use std::sync::Arc;
    use watchbell_core::{Fingerprint, Origin, SpanRecord};
    let level = LEVELS[usize::from(u.u8()) % LEVELS.len()];
    let target = u.text(40);
    let message = u.text(255);
    let mut r = Record::new(level, target, message);
    let sel = u.u8();
    r.time = match sel % 4 {
        0 => *base + Duration::from_nanos(u64::from(u.u16()) * 1_000),
        1 => *base + Duration::from_secs(u64::from(u.u8())),
        2 => UNIX_EPOCH + Duration::new(u.u64() % 253_402_300_800, u32::from(u.u16()) * 15_259),
        _ => UNIX_EPOCH - Duration::new(u.u64() % 2_208_988_800, u32::from(u.u16()) * 15_259),
    };
    *base = r.time;
    r.fields = any_fields(u, 5);
    let spans: Vec<Arc<SpanRecord>> = (0..u.u8() % 4)
        .map(|_| Arc::new(SpanRecord { name: u.text(20).into(), target: u.text(20).into(), fields: any_fields(u, 3) }))
        .collect();
    r.spans = spans.into_iter().collect();
    if sel & 4 != 0 {
        r.module = Some(u.text(30).into());
    }
    if sel & 8 != 0 {
        r.file = Some(u.text(30).into());
    }
    if sel & 16 != 0 {
        r.line = Some(u32::from(u.u16()) << (u.u8() % 17));
    }
    r.thread_name = if sel & 32 != 0 { Some(u.text(20).into()) } else { None };
    r.thread_id = u.u64();
    r.pid = u.u64() as u32;
    r.fingerprint = Fingerprint(u.u64());
    r.suppressed = if sel & 64 != 0 { u.u64() >> (u.u8() % 64) } else { 0 };
    r.origin = [Origin::Tracing, Origin::Log, Origin::Watchbell][usize::from(u.u8() % 3)];
    r
}

/// Core's hand-written JSON (`watchbell_core::json`) on any records: each one gives exactly
/// the bytes of `serde_json::to_string(&record)`, one writer reused across them (its cached
/// second kept, changed and returned to); each field value alone too.
pub fn json_record(data: &[u8]) {
    use watchbell_core::json::{self, JsonWriter};
    let mut u = Bytes::new(data);
    let mut base = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut w = JsonWriter::new();
    let mut out = String::new();
    for _ in 0..1 + u.u8() % 4 {
        let r = any_record(&mut u, &mut base);
        out.clear();
        w.write_record(&mut out, &r);
        assert_eq!(out, serde_json::to_string(&r).expect("serde_json"), "{r:?}");
        for (_, v) in r.fields.iter() {
            out.clear();
            json::write_value(&mut out, v);
            assert_eq!(out, serde_json::to_string(v).expect("serde_json"), "{v:?}");
        }
    }
}
