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
        let got: Vec<&str> = replay.records.iter().take(valid.len()).map(|r| r.message.as_str()).collect();
        let want: Vec<&str> = valid.iter().map(|r| r.message.as_str()).collect();
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
