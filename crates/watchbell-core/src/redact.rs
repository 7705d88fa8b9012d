//! Redaction: secrets in fields and messages become [`REDACTED`] before any sink sees them.
//!
//! A [`Redactor`] holds a list of name patterns ([`DEFAULT_PATTERNS`] by default). A field
//! whose name matches a pattern has its value replaced; the text of every other field, of the
//! message and of every span field is scanned for `name: value`, `name=value`, `"name": value`
//! and `name => value` pairs with a matching name, at any nesting level of `Debug`, `Display`
//! or JSON text, and their values are replaced.
//!
//! ```
//! use watchbell_core::redact::Redactor;
//! let r = Redactor::default();
//! assert!(r.is_sensitive("X-Auth-Token"));
//! assert!(!r.is_sensitive("author"));
//! assert_eq!(
//!     r.redact_text(r#"Config { user: "bob", password: "hunter2" }"#),
//!     r#"Config { user: "bob", password: [redacted] }"#
//! );
//! assert_eq!(r.redact_text("GET /x?token=abc&page=2"), "GET /x?token=[redacted]&page=2");
//! ```

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::record::{Batch, Fields, Record, SpanRecord, Spans, Value};

/// The text that replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// The name patterns of [`Redactor::default`].
pub const DEFAULT_PATTERNS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_token",
    "auth",
    "authorization",
    "cookie",
    "session",
    "credentials",
    "card",
];

/// Keys longer than this in scanned text are not names (a long quoted string before a colon).
const MAX_KEY_LEN: usize = 256;

/// Replaces the values of sensitive fields, and of `name=value` pairs with a sensitive name
/// inside text, by [`REDACTED`].
///
/// # Which names are sensitive
///
/// A name and each pattern are normalised the same way: camelCase is split into snake_case
/// (`passwordHash` → `password_hash`, `APIKey` → `api_key`), letters are lowercased, and every
/// char that is not alphanumeric (`-`, `.`, a space, …) becomes `_`. The name matches the
/// pattern `p` when the normalised name equals `p`, starts with `p_`, ends with `_p` or contains
/// `_p_`: the pattern must be a whole word (or words) of the name.
///
/// With the default patterns, `user_password`, `X-Auth-Token`, `stripe.api_key`,
/// `passwordHash`, `db_pwd`, `session_id`, `card_number`, `Authorization` and `set-cookie` are
/// sensitive; `author`, `discard_count`, `tokenizer_name` and `passthrough` are not.
///
/// # What is replaced
///
/// See [`Redactor::redact_fields`] for fields and [`Redactor::redact_text`] for text.
///
/// # Cost
///
/// [`is_sensitive`](Redactor::is_sensitive) remembers its last answers in a small cache per
/// thread (64 entries of names up to 32 bytes, 4 KiB), keyed by the redactor's pattern list
/// and the name's text: the same names come back record after record (they are the
/// callsites' field names), so the normalisation and matching run once per name and thread,
/// not once per record. An entry is used only when the text it holds equals the name, so a name that merely
/// sits at the same address as an earlier one, or has the same hash, is never mistaken for it;
/// two redactors with different patterns never share entries (each pattern list has an id of
/// its own, a clone shares its original's).
/// [`redact_text`](Redactor::redact_text) first checks, eight bytes at a time, whether the text
/// has a `:` or `=` at all; text without one (most messages and values) is returned at once.
#[derive(Clone)]
pub struct Redactor {
    /// Normalised, non-empty, without duplicates.
    patterns: Vec<Box<str>>,
    /// Identifies this pattern list in the per-thread cache of [`Redactor::is_sensitive`]:
    /// a new id for every list made or changed, the same for clones.
    id: u64,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor").field("patterns", &self.patterns).finish()
    }
}

/// The source of [`Redactor::id`]s (0 is never given: it marks an empty cache entry).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Relaxed)
}

/// The longest name the cache of [`Redactor::is_sensitive`] holds.
const CACHED_NAME: usize = 32;
/// Entries of that cache per thread (a power of two).
const CACHE_SLOTS: usize = 64;

/// One remembered answer of [`Redactor::is_sensitive`].
struct Slot {
    /// The redactor's id; 0 for an empty slot.
    id: Cell<u64>,
    len: Cell<u8>,
    sensitive: Cell<bool>,
    /// The name's [`Key`] words.
    head: Cell<u64>,
    tail: Cell<u64>,
    /// The name's text, zero-padded (compared beyond the key words for names over 16 bytes).
    text: Cell<[u8; CACHED_NAME]>,
}

thread_local! {
    static CACHE: [Slot; CACHE_SLOTS] = const {
        [const {
            Slot {
                id: Cell::new(0),
                len: Cell::new(0),
                sensitive: Cell::new(false),
                head: Cell::new(0),
                tail: Cell::new(0),
                text: Cell::new([0; CACHED_NAME]),
            }
        }; CACHE_SLOTS]
    };
}

/// Two words that, with the length, tell names of up to 16 bytes apart: the bytes packed into
/// one word (under 8 bytes), or the first and the last eight bytes.
struct Key {
    head: u64,
    tail: u64,
}

impl Key {
    fn of(name: &[u8]) -> Key {
        let n = name.len();
        if n >= 8 {
            let word = |i: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&name[i..i + 8]);
                u64::from_le_bytes(w)
            };
            Key { head: word(0), tail: word(n - 8) }
        } else {
            Key { head: name.iter().fold(0u64, |h, &b| (h << 8) | u64::from(b)), tail: 0 }
        }
    }

    /// The cache slot of a name with this key and length, for the redactor `id`.
    fn slot(&self, id: u64, len: usize) -> usize {
        let h = (self.head ^ self.tail.rotate_left(29) ^ id.rotate_left(47) ^ len as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> 58) as usize & (CACHE_SLOTS - 1)
    }
}

/// Whether `text` holds a `:` or `=` byte, eight bytes at a time.
fn has_separator(text: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let n = text.len();
    if n < 8 {
        return text.iter().any(|&b| b == b':' || b == b'=');
    }
    let has = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&text[i..i + 8]);
        let w = u64::from_le_bytes(w);
        let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
        zero_byte(w ^ (ONES * u64::from(b':'))) || zero_byte(w ^ (ONES * u64::from(b'=')))
    };
    let mut i = 0;
    while i + 8 <= n {
        if has(i) {
            return true;
        }
        i += 8;
    }
    // The last (overlapping) word.
    i < n && has(n - 8)
}

impl Default for Redactor {
    /// A redactor with the [`DEFAULT_PATTERNS`].
    fn default() -> Self {
        Redactor::new(DEFAULT_PATTERNS.iter().copied())
    }
}

impl Redactor {
    /// A redactor with exactly these name patterns (normalised as described on [`Redactor`];
    /// empty patterns are ignored).
    pub fn new(patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let mut r = Redactor::none();
        for p in patterns {
            r = r.with_pattern(p);
        }
        r
    }

    /// A redactor that redacts nothing.
    pub fn none() -> Self {
        Redactor { patterns: Vec::new(), id: next_id() }
    }

    /// Adds a name pattern.
    pub fn with_pattern(mut self, pattern: impl Into<String>) -> Self {
        let p = normalize_pattern(&pattern.into());
        if !p.is_empty() && !self.patterns.iter().any(|q| **q == *p) {
            self.patterns.push(p.into_boxed_str());
            self.id = next_id();
        }
        self
    }

    /// Removes a name pattern (compared after normalisation); no effect if it is not present.
    pub fn without_pattern(mut self, pattern: impl AsRef<str>) -> Self {
        let p = normalize_pattern(pattern.as_ref());
        let before = self.patterns.len();
        self.patterns.retain(|q| **q != *p);
        if self.patterns.len() != before {
            self.id = next_id();
        }
        self
    }

    /// The normalised patterns.
    pub fn patterns(&self) -> impl Iterator<Item = &str> + '_ {
        self.patterns.iter().map(|p| &**p)
    }

    /// Whether a field called `name` holds a secret (see the matching rule on [`Redactor`]).
    ///
    /// Does not allocate for names up to 32 bytes; the answers for names up to 32 bytes are
    /// remembered per thread (see [Cost](Redactor#cost)).
    pub fn is_sensitive(&self, name: &str) -> bool {
        if self.patterns.is_empty() || name.is_empty() {
            return false;
        }
        let bytes = name.as_bytes();
        if bytes.len() > CACHED_NAME {
            return self.is_sensitive_uncached(name);
        }
        let n = bytes.len();
        let key = Key::of(bytes);
        let cached = CACHE.try_with(|cache| {
            let slot = &cache[key.slot(self.id, n)];
            if slot.id.get() == self.id
                && usize::from(slot.len.get()) == n
                && slot.head.get() == key.head
                && slot.tail.get() == key.tail
                && (n <= 16 || slot.text.get()[8..n - 8] == bytes[8..n - 8])
            {
                return slot.sensitive.get();
            }
            let sensitive = self.is_sensitive_uncached(name);
            let mut text = [0u8; CACHED_NAME];
            text[..n].copy_from_slice(bytes);
            slot.id.set(self.id);
            slot.len.set(n as u8);
            slot.sensitive.set(sensitive);
            slot.head.set(key.head);
            slot.tail.set(key.tail);
            slot.text.set(text);
            sensitive
        });
        cached.unwrap_or_else(|_| self.is_sensitive_uncached(name))
    }

    /// [`is_sensitive`](Self::is_sensitive) without the cache.
    fn is_sensitive_uncached(&self, name: &str) -> bool {
        let mut stack = [0u8; 64];
        if name.len() <= stack.len() / 2 && name.is_ascii() {
            // Each ASCII char gives at most two bytes (`_` and itself).
            let len = normalize_ascii(name.as_bytes(), &mut stack);
            return self.matches(&stack[..len]);
        }
        let mut len = 0;
        let mut overflow = false;
        normalize_with(name, |bytes| {
            if overflow || len + bytes.len() > stack.len() {
                overflow = true;
            } else {
                stack[len..len + bytes.len()].copy_from_slice(bytes);
                len += bytes.len();
            }
        });
        if !overflow {
            return self.matches(&stack[..len]);
        }
        let mut heap = Vec::with_capacity(name.len() * 2);
        normalize_with(name, |bytes| heap.extend_from_slice(bytes));
        self.matches(&heap)
    }

    /// Whether a pattern occurs in the normalised name as whole `_`-separated words.
    fn matches(&self, name: &[u8]) -> bool {
        let mut start = 0;
        loop {
            let rest = &name[start..];
            if let Some(&first) = rest.first() {
                if first != b'_' {
                    for p in &self.patterns {
                        let p = p.as_bytes();
                        if p[0] == first
                            && rest.len() >= p.len()
                            && rest.starts_with(p)
                            && (rest.len() == p.len() || rest[p.len()] == b'_')
                        {
                            return true;
                        }
                    }
                }
            }
            match rest.iter().position(|&b| b == b'_') {
                Some(k) => start += k + 1,
                None => return false,
            }
        }
    }

    /// Redacts fields in place.
    ///
    /// The value of a field with a sensitive name becomes `Value::Str("[redacted]")`, whatever
    /// its type. The text of other fields (`Str`, `Debug` and `Display` values) goes through
    /// [`Redactor::redact_text`], so a field `config = ?Config { user: "bob", password: "x" }`
    /// becomes `Config { user: "bob", password: [redacted] }` and keeps its variant.
    pub fn redact_fields(&self, fields: &mut Fields) {
        if self.patterns.is_empty() {
            return;
        }
        for (name, value) in fields.iter_mut() {
            if let Some(new) = self.redacted_value(name, value) {
                *value = new;
            }
        }
    }

    /// The redacted copy of a span record, or `None` when redaction changes nothing in it (the
    /// usual case: the span can stay shared). Its fields are redacted as
    /// [`Redactor::redact_fields`] redacts an event's; its name and target are kept.
    ///
    /// ```
    /// use watchbell_core::record::{SpanRecord, Value};
    /// use watchbell_core::redact::{Redactor, REDACTED};
    ///
    /// let r = Redactor::default();
    /// let span = SpanRecord {
    ///     name: "login".into(),
    ///     target: "app".into(),
    ///     fields: [("user", Value::Str("bob".into())), ("token", Value::Str("t0k".into()))].into_iter().collect(),
    /// };
    /// let redacted = r.redact_span(&span).unwrap();
    /// assert_eq!(redacted.fields.get("token"), Some(&Value::Str(REDACTED.into())));
    /// assert_eq!(redacted.fields.get("user"), Some(&Value::Str("bob".into())));
    /// assert!(r.redact_span(&redacted).is_none());
    /// ```
    pub fn redact_span(&self, span: &SpanRecord) -> Option<SpanRecord> {
        if self.patterns.is_empty() {
            return None;
        }
        let (first, new) =
            span.fields.iter().enumerate().find_map(|(i, (n, v))| self.redacted_value(n, v).map(|v| (i, v)))?;
        let mut copy = span.clone();
        let mut new = Some(new);
        for (i, (name, value)) in copy.fields.iter_mut().enumerate().skip(first) {
            if i == first {
                if let Some(v) = new.take() {
                    *value = v;
                }
            } else if let Some(v) = self.redacted_value(name, value) {
                *value = v;
            }
        }
        Some(copy)
    }

    /// The new value of a field, if redaction changes it.
    fn redacted_value(&self, name: &str, value: &Value) -> Option<Value> {
        if self.is_sensitive(name) {
            return match value {
                Value::Str(s) if s == REDACTED => None,
                _ => Some(Value::Str(REDACTED.to_owned())),
            };
        }
        let text = value.as_str()?;
        match self.redact_text(text) {
            Cow::Borrowed(_) => None,
            Cow::Owned(new) => Some(match value {
                Value::Debug(_) => Value::Debug(new),
                Value::Display(_) => Value::Display(new),
                _ => Value::Str(new),
            }),
        }
    }

    /// Redacts the record's message (with [`Redactor::redact_text`]), its fields and the
    /// fields of its spans (with [`Redactor::redact_fields`]).
    ///
    /// Span records are shared between records: a span is copied (`Arc::make_mut`) only when
    /// something in it actually changes, so unchanged spans stay shared.
    pub fn redact_record(&self, record: &mut Record) {
        if self.patterns.is_empty() {
            return;
        }
        self.redact_own_parts(record);
        if let Some(spans) = self.redacted_spans(&record.spans) {
            record.spans = spans;
        }
    }

    /// Redacts the record's message and its event fields (not its spans).
    fn redact_own_parts(&self, record: &mut Record) {
        if let Cow::Owned(m) = self.redact_text(&record.message) {
            record.message = Cow::Owned(m);
        }
        self.redact_fields(&mut record.fields);
    }

    /// The span stack with its spans redacted ([`Redactor::redact_span`]), or `None` when
    /// nothing in it changes. Only the changed spans are copied; the others stay shared.
    fn redacted_spans(&self, spans: &Spans) -> Option<Spans> {
        let mut changed: Option<Vec<Arc<SpanRecord>>> = None;
        for (i, span) in spans.iter().enumerate() {
            if let Some(new) = self.redact_span(span) {
                changed.get_or_insert_with(|| spans.to_vec())[i] = Arc::new(new);
            }
        }
        changed.map(Spans::from)
    }

    /// Redacts every record of the batch (see [`Redactor::redact_record`]).
    ///
    /// The records of one span stack share it ([`Spans`]): a stack is redacted once for the run
    /// of records that share it, and they all share the redacted stack.
    pub fn redact_batch(&self, batch: &mut Batch) {
        if self.patterns.is_empty() {
            return;
        }
        // The last stack seen, and what redaction made of it (`None`: unchanged).
        let mut last: Option<(Spans, Option<Spans>)> = None;
        for record in &mut batch.records {
            self.redact_own_parts(record);
            if record.spans.is_empty() {
                continue;
            }
            match &last {
                Some((seen, done)) if seen.ptr_eq(&record.spans) => {
                    if let Some(done) = done {
                        record.spans = done.clone();
                    }
                }
                _ => {
                    let seen = record.spans.clone();
                    let done = self.redacted_spans(&record.spans);
                    if let Some(done) = &done {
                        record.spans = done.clone();
                    }
                    last = Some((seen, done));
                }
            }
        }
    }

    /// Replaces the values of sensitive `name: value` pairs in `Debug`, `Display`, JSON or
    /// plain text by [`REDACTED`]; text without any is returned unchanged (`Borrowed`).
    ///
    /// A pair is a name (a run of letters, digits, `_`, `-` and `.`, bare or single-quoted, or
    /// a double-quoted string), optional whitespace, a separator (`:` but not `::`, `=`, or `=>`), optional
    /// whitespace, and a value. The value that is replaced is:
    ///
    /// - a double-quoted string with backslash escapes, quotes included (`"hunter2"`), or a
    ///   single-quoted one;
    /// - a balanced `{…}`, `[…]` or `(…)` group;
    /// - otherwise a run up to the next `,`, `;`, `}`, `)`, `]`, `&`, whitespace or the end,
    ///   taking in any quoted string or bracketed group it reaches (`Some("x")`,
    ///   `Secret { .. }`); an authentication scheme (`Bearer`, `Basic`, `Token`, …) takes the
    ///   credentials after it along.
    ///
    /// Values of non-sensitive names are scanned too, and so is the content of quoted strings
    /// (with `\"` as their quotes), so secrets are found at any nesting level: a Rust struct's
    /// `Debug` text, a URL query (`?token=abc&b=1` → `?token=[redacted]&b=1`), a JSON document
    /// inside a `Debug` string. An unterminated string or group after a sensitive name is
    /// redacted to the end of the text.
    ///
    /// Redaction errs on the side of hiding: in prose such as `invalid password: too short`
    /// the word after the separator goes too (`invalid password: [redacted] short`).
    ///
    /// The scan is linear in the length of the text and never panics.
    #[inline]
    pub fn redact_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.patterns.is_empty() || !has_separator(text.as_bytes()) {
            return Cow::Borrowed(text);
        }
        self.scan_text(text)
    }

    /// [`redact_text`](Self::redact_text) of a text with a separator.
    #[inline(never)]
    fn scan_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut scanner = Scanner { redactor: self, text, ranges: Vec::new() };
        scanner.scan(0, text.len(), false, 0);
        if scanner.ranges.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (start, end) in scanner.ranges {
            out.push_str(&text[last..start]);
            out.push_str(REDACTED);
            last = end;
        }
        out.push_str(&text[last..]);
        Cow::Owned(out)
    }
}

/// Normalises `name` (camelCase → snake_case, lowercase, non-alphanumerics → `_`), handing the
/// UTF-8 bytes of the result to `push` piece by piece.
fn normalize_with(name: &str, mut push: impl FnMut(&[u8])) {
    let mut prev: Option<char> = None;
    let mut chars = name.chars().peekable();
    let mut buf = [0u8; 4];
    while let Some(c) = chars.next() {
        if c.is_ascii() {
            if c.is_ascii_uppercase() {
                if split_before(prev, chars.peek().copied()) {
                    push(b"_");
                }
                push(&[c.to_ascii_lowercase() as u8]);
            } else if c.is_ascii_alphanumeric() {
                push(&[c as u8]);
            } else {
                push(b"_");
            }
        } else if c.is_alphanumeric() {
            if c.is_uppercase() && split_before(prev, chars.peek().copied()) {
                push(b"_");
            }
            for l in c.to_lowercase() {
                push(l.encode_utf8(&mut buf).as_bytes());
            }
        } else {
            push(b"_");
        }
        prev = Some(c);
    }
}

/// Whether an uppercase char after `prev` and before `next` starts a new word:
/// `passwordHash`, `pwd2Hash`, and the last capital of an acronym (`APIKey` → `api_key`).
fn split_before(prev: Option<char>, next: Option<char>) -> bool {
    match prev {
        Some(p) if p.is_lowercase() || p.is_numeric() => true,
        Some(p) if p.is_uppercase() => next.is_some_and(char::is_lowercase),
        _ => false,
    }
}

fn normalize_pattern(p: &str) -> String {
    let mut v = Vec::with_capacity(p.len() + 4);
    normalize_with(p, |b| v.extend_from_slice(b));
    let s = String::from_utf8(v).unwrap_or_default();
    s.trim_matches('_').to_owned()
}

/// [`normalize_with`] for an ASCII name, into `out` (at least twice as long as `name`); returns
/// the length written.
fn normalize_ascii(name: &[u8], out: &mut [u8]) -> usize {
    let mut len = 0;
    for (i, &c) in name.iter().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                let p = name[i - 1];
                if p.is_ascii_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_ascii_uppercase() && name.get(i + 1).is_some_and(u8::is_ascii_lowercase))
                {
                    out[len] = b'_';
                    len += 1;
                }
            }
            out[len] = c.to_ascii_lowercase();
        } else if c.is_ascii_alphanumeric() {
            out[len] = c;
        } else {
            out[len] = b'_';
        }
        len += 1;
    }
    len
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.') || b >= 0x80
}

fn is_delimiter(b: u8) -> bool {
    matches!(b, b',' | b';' | b'}' | b')' | b']' | b'&') || b.is_ascii_whitespace()
}

fn is_opener(b: u8) -> bool {
    matches!(b, b'{' | b'[' | b'(')
}

fn is_closer(b: u8) -> bool {
    matches!(b, b'}' | b']' | b')')
}

/// HTTP authentication schemes: after `Authorization: Bearer`, the credentials follow a space.
fn is_auth_scheme(word: &[u8]) -> bool {
    const SCHEMES: &[&[u8]] = &[b"bearer", b"basic", b"digest", b"token", b"bot", b"negotiate", b"ntlm", b"hoba"];
    SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(word))
}

/// The forward scan of [`Redactor::redact_text`]: collects the byte ranges of values to replace,
/// in order and without overlap. Every range boundary is an ASCII byte or the end of the text,
/// so a char boundary.
struct Scanner<'r, 't> {
    redactor: &'r Redactor,
    text: &'t str,
    ranges: Vec<(usize, usize)>,
}

impl Scanner<'_, '_> {
    fn bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }

    /// Whether a string quote starts at `i`: `"`, or `\"` inside a quoted string (`esc`).
    fn quote_at(&self, i: usize, end: usize, esc: bool) -> bool {
        let b = self.bytes();
        if esc {
            i + 1 < end && b[i] == b'\\' && b[i + 1] == b'"'
        } else {
            i < end && b[i] == b'"'
        }
    }

    fn quote_len(esc: bool) -> usize {
        if esc {
            2
        } else {
            1
        }
    }

    /// From just after an opening quote, the index just after the closing quote, or `None` if
    /// the string is not terminated before `end`.
    fn skip_string(&self, mut i: usize, end: usize, esc: bool) -> Option<usize> {
        let b = self.bytes();
        while i < end {
            match b[i] {
                b'\\' if esc && i + 1 < end && b[i + 1] == b'"' => return Some(i + 2),
                b'\\' => i += 2,
                b'"' if !esc => return Some(i + 1),
                _ => i += 1,
            }
        }
        None
    }

    /// From an opening bracket, the index just after its matching closer (or `end`).
    fn skip_group(&self, mut i: usize, end: usize, esc: bool) -> usize {
        let b = self.bytes();
        let mut depth = 0usize;
        while i < end {
            if self.quote_at(i, end, esc) {
                match self.skip_string(i + Self::quote_len(esc), end, esc) {
                    Some(after) => {
                        i = after;
                        continue;
                    }
                    None => return end,
                }
            }
            let c = b[i];
            i += 1;
            if is_opener(c) {
                depth += 1;
            } else if is_closer(c) {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i;
                }
            }
        }
        end
    }

    /// A run of value bytes from `i`, taking in quoted strings and groups.
    fn skip_run(&self, mut i: usize, end: usize, esc: bool) -> usize {
        let b = self.bytes();
        while i < end {
            if self.quote_at(i, end, esc) {
                i = self.skip_string(i + Self::quote_len(esc), end, esc).unwrap_or(end);
            } else if is_opener(b[i]) {
                i = self.skip_group(i, end, esc);
            } else if is_delimiter(b[i]) {
                break;
            } else {
                i += 1;
            }
        }
        i
    }

    /// The end of the value that starts at `v`.
    fn value_end(&self, v: usize, end: usize, esc: bool) -> usize {
        let b = self.bytes();
        if v >= end {
            return v;
        }
        if self.quote_at(v, end, esc) {
            return self.skip_string(v + Self::quote_len(esc), end, esc).unwrap_or(end);
        }
        if b[v] == b'\'' {
            if let Some(k) = b[v + 1..end].iter().position(|&c| c == b'\'') {
                return v + 1 + k + 1;
            }
        }
        if is_opener(b[v]) {
            return self.skip_group(v, end, esc);
        }
        let k = self.skip_run(v, end, esc);
        if k + 1 < end && b[k] == b' ' {
            let word = &b[v..k];
            // `Secret { .. }`: a struct's Debug text.
            if b[k + 1] == b'{'
                && word[0].is_ascii_uppercase()
                && word.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
            {
                return self.skip_group(k + 1, end, esc);
            }
            // `Bearer abc`: the credentials follow the scheme.
            if is_auth_scheme(word) && !is_delimiter(b[k + 1]) {
                return self.skip_run(k + 1, end, esc);
            }
        }
        k
    }

    fn skip_ws(&self, mut i: usize, end: usize) -> usize {
        let b = self.bytes();
        while i < end && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    }

    /// Like [`skip_ws`](Self::skip_ws) but within the line: a value is never looked for on the
    /// next line (`token=` then a newline has an empty value; what follows is a pair of its
    /// own, `Authorization: Bearer …`, and is scanned as such).
    fn skip_blanks(&self, mut i: usize, end: usize) -> usize {
        let b = self.bytes();
        while i < end && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        i
    }

    /// The length of a key-value separator at `i` (`=>`, `=`, or a `:` that is not `::`), or 0.
    fn separator_at(&self, i: usize, end: usize) -> usize {
        let b = self.bytes();
        if i >= end {
            return 0;
        }
        match b[i] {
            b'=' if i + 1 < end && b[i + 1] == b'>' => 2,
            b'=' => 1,
            b':' if i + 1 < end && b[i + 1] == b':' => 0,
            b':' => 1,
            _ => 0,
        }
    }

    /// Scans `start..end`. `esc`: the range is the content of a quoted string, where quotes are
    /// written `\"`. `depth` bounds the recursion into strings.
    fn scan(&mut self, start: usize, end: usize, esc: bool, depth: u32) {
        let mut i = start;
        // Cleared after an unterminated string: later quotes are plain chars (keeps it linear).
        let mut strings = true;
        while i < end {
            let b = self.bytes();
            // A key candidate: a quoted string or a run of name bytes.
            let (key_start, key_end, after, quoted) = if strings && self.quote_at(i, end, esc) {
                let open = Self::quote_len(esc);
                match self.skip_string(i + open, end, esc) {
                    Some(after) => (i + open, after - open, after, true),
                    None => {
                        strings = false;
                        i += 1;
                        continue;
                    }
                }
            } else if is_name_byte(b[i]) {
                let mut j = i;
                while j < end && is_name_byte(b[j]) {
                    j += 1;
                }
                // A single-quoted key (`'password': ..`), or a double-quoted one met as a bare
                // name because an unmatched quote earlier shifted how quotes pair up: step over
                // the closing quote.
                let closes = |q: u8| j < end && b[j] == q && i > start && b[i - 1] == q;
                let after = if closes(b'\'') || closes(b'"') { j + 1 } else { j };
                (i, j, after, false)
            } else {
                i += 1;
                continue;
            };
            let j = self.skip_ws(after, end);
            let sep = self.separator_at(j, end);
            // The content of a quoted string may hold pairs of its own (a URL, a JSON document
            // in a Debug string, or text that only looks like a key): scanned first, so that
            // ranges stay in order.
            if quoted && depth < 2 {
                self.scan(key_start, key_end, true, depth + 1);
            }
            if sep == 0 {
                i = j;
                continue;
            }
            let key = &self.text[key_start..key_end];
            if key.len() <= MAX_KEY_LEN && self.redactor.is_sensitive(key) {
                let v = self.skip_blanks(j + sep, end);
                let v_end = self.value_end(v, end, esc);
                if v_end > v && &self.text[v..v_end] != REDACTED {
                    self.ranges.push((v, v_end));
                }
                i = v_end.max(j + sep);
            } else {
                i = j + sep;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_core::Level;

    fn r() -> Redactor {
        Redactor::default()
    }

    #[test]
    fn a_secret_after_an_unmatched_quote_or_an_empty_value_is_still_found() {
        let r = r();
        // (found by fuzzing) an unterminated string earlier hid a JSON pair.
        let text = r#"…t"\u0xt {"api_key": "jklmnopqrstuvwxyz012345678wx"}"#;
        assert!(!r.redact_text(text).contains("jklmnop"), "{}", r.redact_text(text));
        // (found by fuzzing) an empty value took the next line's pair as its value.
        let text = "?token=\nAuthorization: Bearer jk5mnopqrstuvwxyz012345678wd";
        let out = r.redact_text(text);
        assert!(!out.contains("jk5mnop") && out.contains("Authorization"), "{out}");
    }

    #[test]
    fn sensitive_names() {
        let r = r();
        for name in [
            "password",
            "user_password",
            "X-Auth-Token",
            "stripe.api_key",
            "passwordHash",
            "db_pwd",
            "session_id",
            "card_number",
            "Authorization",
            "set-cookie",
            "PASSWORD",
            "apiKey",
            "APIKey",
            "stripeApiKey",
            "access_token",
            "refresh_token",
            "client-secret",
            "my secret value",
            "__password",
            "credentials",
            "auth",
            "HTTPAuthHeader",
        ] {
            assert!(r.is_sensitive(name), "{name} should be sensitive");
        }
        for name in [
            "author",
            "discard_count",
            "tokenizer_name",
            "passthrough",
            "user",
            "message",
            "id",
            "",
            "_",
            "oauth_state",
            "cardinality",
            "sessions",
            "secretary",
            "tokens",
            "ünïcödé",
        ] {
            assert!(!r.is_sensitive(name), "{name} should not be sensitive");
        }
    }

    #[test]
    fn the_name_cache_checks_the_text_not_the_address() {
        let r = r();
        // A borrowed name cached, then an owned name of the same text: the same answer.
        assert!(r.is_sensitive("session_id"));
        assert!(r.is_sensitive(&String::from("session_id")));
        assert!(!r.is_sensitive("user_name"));
        assert!(!r.is_sensitive(&String::from("user_name")));
        // An owned name cached, then other text of the same length in the same buffer (same
        // address, same length): answered for the new text.
        let mut name = String::from("userx");
        let address = name.as_ptr();
        assert!(!r.is_sensitive(&name));
        name.replace_range(.., "token");
        assert_eq!(name.as_ptr(), address);
        assert!(r.is_sensitive(&name));
        name.replace_range(.., "tokex");
        assert!(!r.is_sensitive(&name));
        // Names that differ only between their first and last eight bytes (the same slot).
        for _ in 0..2 {
            assert!(r.is_sensitive("aaaaaaa_token_bbbbbbb"));
            assert!(!r.is_sensitive("aaaaaaa_tokex_bbbbbbb"));
            assert!(r.is_sensitive("aaaaaaaa_session_bbbbbbbbbbbbbbb"));
            assert!(!r.is_sensitive("aaaaaaaa_sessian_bbbbbbbbbbbbbbb"));
        }
        // Names of 32 bytes (cached) and 33 (not), both ways.
        let at_limit = format!("{}_token", "a".repeat(26));
        let over = format!("{}_token", "a".repeat(27));
        assert_eq!((at_limit.len(), over.len()), (32, 33));
        for _ in 0..2 {
            assert!(r.is_sensitive(&at_limit) && r.is_sensitive(&over));
            assert!(!r.is_sensitive(&at_limit.replace("token", "tokes")));
        }
    }

    #[test]
    fn the_name_cache_keeps_redactors_apart() {
        let default = r();
        let users = Redactor::new(["user"]);
        let no_password = default.clone().without_pattern("password");
        let with_user = default.clone().with_pattern("user");
        let unchanged = default.clone().without_pattern("no_such_pattern").with_pattern("token");
        for _ in 0..3 {
            // One name, sensitive for one redactor and not for another, asked in turn.
            assert!(!default.is_sensitive("user") && users.is_sensitive("user") && with_user.is_sensitive("user"));
            assert!(default.is_sensitive("password") && !users.is_sensitive("password"));
            // A clone shares the cache of its original until its patterns change.
            assert!(!no_password.is_sensitive("password") && no_password.is_sensitive("token"));
            assert!(unchanged.is_sensitive("password") && !unchanged.is_sensitive("user"));
        }
        // Other threads have caches of their own, with the same answers.
        std::thread::spawn(move || {
            assert!(users.is_sensitive("user") && !default.is_sensitive("user"));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn cached_answers_equal_uncached_ones_across_slot_collisions() {
        let r = r();
        let other = Redactor::new(["id", "key"]);
        // Far more names than slots, so that entries are evicted and slots shared.
        let names: Vec<String> = (0..500)
            .map(|i| match i % 5 {
                0 => format!("field{i}"),
                1 => format!("user{i}_token"),
                2 => format!("x{i}.apiKey"),
                3 => format!("{i}_id"),
                _ => format!("card{i}"),
            })
            .collect();
        for _ in 0..3 {
            for name in &names {
                assert_eq!(r.is_sensitive(name), r.is_sensitive_uncached(name), "{name}");
                assert_eq!(other.is_sensitive(name), other.is_sensitive_uncached(name), "{name}");
            }
        }
    }

    #[test]
    fn separator_check_finds_every_position() {
        for len in 0..40 {
            for pos in 0..len {
                for sep in [b':', b'='] {
                    let mut text = vec![b'a'; len];
                    text[pos] = sep;
                    assert!(has_separator(&text), "{len} {pos}");
                }
            }
            // Bytes next to `:` (0x3a) and `=` (0x3d), and high bytes: no false match.
            let text: Vec<u8> = (0..len).map(|i| [b'9', b';', b'<', b'>', 0xba, 0xbd, 0xff, 0][i % 8]).collect();
            assert!(!has_separator(&text), "{len}");
        }
    }

    #[test]
    fn long_names_fall_back_to_the_heap() {
        let r = r();
        let long = format!("{}_password", "x".repeat(100));
        assert!(r.is_sensitive(&long));
        let long = format!("{}Password", "someVeryLongCamelCaseName".repeat(5));
        assert!(r.is_sensitive(&long));
        assert!(!r.is_sensitive(&"abcDef".repeat(50)));
    }

    #[test]
    fn ascii_fast_path_normalises_like_the_general_one() {
        for name in [
            "passwordHash",
            "APIKey",
            "HTTPAuthHeader",
            "X-Auth-Token",
            "pwd2Hash",
            "a.b c-d_e",
            "ABC",
            "aBC",
            "A",
            "__x__",
            "stripe.apiKey",
            "Ab1Cd",
        ] {
            let mut fast = [0u8; 64];
            let len = normalize_ascii(name.as_bytes(), &mut fast);
            let mut general = Vec::new();
            normalize_with(name, |b| general.extend_from_slice(b));
            assert_eq!(&fast[..len], &general[..], "{name}");
        }
        let mut out = Vec::new();
        normalize_with("passwordHash", |b| out.extend_from_slice(b));
        assert_eq!(out, b"password_hash");
        out.clear();
        normalize_with("ÄpfelPasswort", |b| out.extend_from_slice(b));
        assert_eq!(String::from_utf8(out).unwrap(), "äpfel_passwort");
    }

    #[test]
    fn pattern_list_changes() {
        let r = r().with_pattern("ssn").without_pattern("session").with_pattern("ssn");
        assert!(r.is_sensitive("user_ssn"));
        assert!(!r.is_sensitive("session_id"));
        assert!(r.is_sensitive("password"));
        assert_eq!(r.patterns().filter(|p| *p == "ssn").count(), 1);
        let r = Redactor::new(["privateKey", "", "--"]);
        assert_eq!(r.patterns().collect::<Vec<_>>(), ["private_key"]);
        assert!(r.is_sensitive("ssh.private-key"));
        assert!(!r.is_sensitive("password"));
        let r = Redactor::new(vec![String::from("pin")]).without_pattern("PIN");
        assert_eq!(r.patterns().count(), 0);
    }

    #[test]
    fn none_redacts_nothing() {
        let r = Redactor::none();
        assert!(!r.is_sensitive("password"));
        assert!(matches!(r.redact_text("password=hunter2"), Cow::Borrowed(_)));
        let mut rec = Record::new(Level::ERROR, "t", "password=hunter2");
        rec.fields.set("password", Value::Str("hunter2".into()));
        let before = rec.clone();
        r.redact_record(&mut rec);
        assert_eq!(rec, before);
    }

    #[test]
    fn text_pairs() {
        let r = r();
        let cases = [
            ("login failed password=hunter2", "login failed password=[redacted]"),
            ("password: hunter2, user: bob", "password: [redacted], user: bob"),
            (r#"password: Some("hunter2")"#, "password: [redacted]"),
            (r#"password: Some("hunter2"), x: 1"#, "password: [redacted], x: 1"),
            (r#"Config { user: "bob", password: "hunter2" }"#, r#"Config { user: "bob", password: [redacted] }"#),
            (r#"{"password":"x","user":"y"}"#, r#"{"password":[redacted],"user":"y"}"#),
            (r#"{"password": "a \"quoted\" pw", "user": "y"}"#, r#"{"password": [redacted], "user": "y"}"#),
            ("https://x/y?token=abc&b=1", "https://x/y?token=[redacted]&b=1"),
            ("https://x/y?a=1&api_key=k3y", "https://x/y?a=1&api_key=[redacted]"),
            (r#"{"token" => "abc", "n" => 1}"#, r#"{"token" => [redacted], "n" => 1}"#),
            ("secret = [1, 2, 3] rest", "secret = [redacted] rest"),
            ("secret=(a, (b)) rest", "secret=[redacted] rest"),
            ("auth: Secret { inner: \"x\" }, y: 2", "auth: [redacted], y: 2"),
            ("Authorization: Bearer abc.def.ghi", "Authorization: [redacted]"),
            ("Cookie: session=abc; theme=dark", "Cookie: [redacted]; theme=dark"),
            ("X-Auth-Token: t0k3n\nHost: x", "X-Auth-Token: [redacted]\nHost: x"),
            ("password='two words' ok", "password=[redacted] ok"),
            ("{'password': 'hunter2', 'user': 'bob'}", "{'password': [redacted], 'user': 'bob'}"),
            ("it's: fine, isn't it", "it's: fine, isn't it"),
            ("password=\"unterminated rest", "password=[redacted]"),
            ("token: [redacted]", "token: [redacted]"),
            ("passwordHash=abc", "passwordHash=[redacted]"),
            ("user.password=abc", "user.password=[redacted]"),
            ("--password=abc --verbose", "--password=[redacted] --verbose"),
            ("日本 password=日本語 👍", "日本 password=[redacted] 👍"),
        ];
        for (input, want) in cases {
            assert_eq!(r.redact_text(input), want, "input {input:?}");
        }
    }

    #[test]
    fn nested_text() {
        let r = r();
        let text = r#"Request { url: "https://api/x?token=abc", headers: {"authorization": "Bearer xyz", "accept": "*/*"}, body: Some(Login { user: "bob", credentials: Creds { pwd: "p" } }) }"#;
        let want = r#"Request { url: "https://api/x?token=[redacted]", headers: {"authorization": [redacted], "accept": "*/*"}, body: Some(Login { user: "bob", credentials: [redacted] }) }"#;
        assert_eq!(r.redact_text(text), want);
        // JSON inside a Debug string.
        let text = r#"Event { body: "{\"password\":\"x\",\"user\":\"y\"}" }"#;
        let want = r#"Event { body: "{\"password\":[redacted],\"user\":\"y\"}" }"#;
        assert_eq!(r.redact_text(text), want);
        // Pretty Debug.
        let text = "Config {\n    user: \"bob\",\n    password: \"hunter2\",\n}";
        assert_eq!(r.redact_text(text), "Config {\n    user: \"bob\",\n    password: [redacted],\n}");
    }

    #[test]
    fn untouched_text_is_borrowed() {
        let r = r();
        for text in [
            "",
            "plain message",
            "user=bob count=3",
            "std::io::Error: password file missing",
            "author: Tolkien, tokenizer_name: bpe",
            r#"{"user":"y","n":[1,2]}"#,
            "session ended",
            "日本語 = 👍",
        ] {
            assert!(matches!(r.redact_text(text), Cow::Borrowed(_)), "{text:?}");
        }
    }

    #[test]
    fn a_shared_span_stack_is_redacted_once_per_batch_and_stays_whole_elsewhere() {
        let r = r();
        let span = |name: &'static str, fields: &[(&'static str, Value)]| {
            Arc::new(SpanRecord { name: name.into(), target: "t".into(), fields: fields.iter().cloned().collect() })
        };
        let outer = span("request", &[("path", Value::Str("/pay".into()))]);
        let secret: Spans = [outer.clone(), span("auth", &[("api_key", Value::Str("k-123".into()))])].into();
        let clean: Spans = [outer.clone(), span("db", &[("table", Value::Str("users".into()))])].into();
        let record = |spans: &Spans, i: u64| {
            let mut rec = Record::new(tracing::Level::ERROR, "t", format!("event {i}"));
            rec.spans = spans.clone();
            rec
        };
        // Runs of one stack, and a stack coming back after another.
        let order = [&secret, &secret, &clean, &clean, &secret, &clean, &secret];
        let mut batch = Batch::new(
            crate::record::BatchReason::Single,
            order.iter().enumerate().map(|(i, s)| record(s, i as u64)).collect(),
        );
        r.redact_batch(&mut batch);
        for (rec, stack) in batch.records.iter().zip(order) {
            assert_eq!(rec.spans.len(), 2);
            assert!(Arc::ptr_eq(&rec.spans[0], &outer), "an unchanged span is not copied");
            if stack.ptr_eq(&secret) {
                assert_eq!(rec.spans[1].fields.get("api_key"), Some(&Value::Str(REDACTED.into())));
            } else {
                assert!(rec.spans.ptr_eq(&clean), "a stack with nothing to redact is not copied");
            }
        }
        // One redacted copy for each run of the secret stack.
        assert!(batch.records[0].spans.ptr_eq(&batch.records[1].spans));
        // The stack the records were captured with is untouched for whoever else holds it.
        assert_eq!(secret[1].fields.get("api_key"), Some(&Value::Str("k-123".into())));
        // The same through redact_record, one record at a time.
        let mut one = record(&secret, 9);
        r.redact_record(&mut one);
        assert_eq!(one.spans[1].fields.get("api_key"), Some(&Value::Str(REDACTED.into())));
        assert!(Arc::ptr_eq(&one.spans[0], &outer));
    }

    #[test]
    fn fields_and_records() {
        let r = r();
        let mut f = Fields::new();
        f.set("user", Value::Str("bob".into()));
        f.set("password", Value::Str("hunter2".into()));
        f.set("card", Value::U64(4_111_111_111_111_111));
        f.set("config", Value::Debug(r#"Config { user: "bob", password: "hunter2" }"#.into()));
        f.set("url", Value::Display("https://x/?token=abc".into()));
        f.set("count", Value::I64(3));
        r.redact_fields(&mut f);
        assert_eq!(f.get("user"), Some(&Value::Str("bob".into())));
        assert_eq!(f.get("password"), Some(&Value::Str(REDACTED.into())));
        assert_eq!(f.get("card"), Some(&Value::Str(REDACTED.into())));
        assert_eq!(f.get("config"), Some(&Value::Debug(r#"Config { user: "bob", password: [redacted] }"#.into())));
        assert_eq!(f.get("url"), Some(&Value::Display("https://x/?token=[redacted]".into())));
        assert_eq!(f.get("count"), Some(&Value::I64(3)));

        let clean = Arc::new(SpanRecord {
            name: "request".into(),
            target: "app".into(),
            fields: [("id", Value::U64(7)), ("user", Value::Str("bob".into()))].into_iter().collect(),
        });
        let dirty = Arc::new(SpanRecord {
            name: "login".into(),
            target: "app".into(),
            fields: [("session", Value::Str("s3ss".into())), ("n", Value::U64(1))].into_iter().collect(),
        });
        let mut rec = Record::new(Level::WARN, "app", "login failed password=hunter2 for bob");
        rec.fields.set("api_key", Value::Str("k".into()));
        rec.spans = (vec![clean.clone(), dirty.clone()]).into();
        let mut batch = Batch::single(rec);
        r.redact_batch(&mut batch);
        let rec = &batch.records[0];
        assert_eq!(rec.message, "login failed password=[redacted] for bob");
        assert_eq!(rec.fields.get("api_key"), Some(&Value::Str(REDACTED.into())));
        assert!(Arc::ptr_eq(&rec.spans[0], &clean), "unchanged span stays shared");
        assert!(!Arc::ptr_eq(&rec.spans[1], &dirty));
        assert_eq!(rec.spans[1].fields.get("session"), Some(&Value::Str(REDACTED.into())));
        assert_eq!(rec.spans[1].fields.get("n"), Some(&Value::U64(1)));
        assert_eq!(dirty.fields.get("session"), Some(&Value::Str("s3ss".into())), "original untouched");

        // Redacting again changes nothing and copies nothing.
        let mut again = batch.clone();
        r.redact_batch(&mut again);
        assert_eq!(again, batch);
        assert!(Arc::ptr_eq(&again.records[0].spans[1], &batch.records[0].spans[1]));
    }

    /// xorshift64*: deterministic pseudo-random numbers for the fuzz tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn fuzz_never_panics() {
        const TOKENS: &[&str] = &[
            "password",
            "token",
            "user",
            "auth",
            ":",
            "=",
            "=>",
            "::",
            "\"",
            "\\",
            "\\\"",
            "{",
            "}",
            "[",
            "]",
            "(",
            ")",
            ",",
            ";",
            " ",
            "\n",
            "&",
            "?",
            "'",
            "é",
            "日本",
            "👍",
            "Some",
            "Bearer",
            "a",
            "1",
            ".",
            "-",
            "_",
            "[redacted]",
            "\u{85}",
            "\0",
        ];
        let r = r();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..5000 {
            let n = (rng.next() % 40) as usize;
            let mut s = String::new();
            for _ in 0..n {
                s.push_str(TOKENS[(rng.next() % TOKENS.len() as u64) as usize]);
            }
            let out = r.redact_text(&s);
            if let Cow::Owned(o) = &out {
                assert!(o.contains(REDACTED), "{s:?} -> {o:?}");
            }
            // Idempotent: redacting the result again changes nothing.
            assert!(matches!(r.redact_text(&out), Cow::Borrowed(_)), "{s:?} -> {out:?}");
            // A pair between any surrounding text is always caught.
            let wrapped = format!("{s} password=hunter2 {s}");
            assert!(!r.redact_text(&wrapped).contains("hunter2"), "{wrapped:?}");
            // Random bytes turned into text, too.
            let bytes: Vec<u8> = (0..n).map(|_| (rng.next() % 256) as u8).collect();
            let _ = r.redact_text(&String::from_utf8_lossy(&bytes));
            let _ = r.is_sensitive(&s);
        }
    }

    #[test]
    fn adversarial_inputs_are_linear() {
        let r = r();
        let n = 200_000;
        let inputs = [
            "\"".repeat(n),
            "\\\"".repeat(n / 2),
            "\"\\".repeat(n / 2),
            "{".repeat(n),
            "password=".repeat(n / 9),
            "password:{".repeat(n / 10),
            "a:".repeat(n / 2),
            "\"a\":".repeat(n / 4),
            "\"a\"".repeat(n / 3),
            "x = ".repeat(n / 4),
            "\"\\\"\\\\\\\"".repeat(n / 7),
            format!("\"{}\":1", "a".repeat(n)),
        ];
        let start = std::time::Instant::now();
        for s in &inputs {
            let _ = r.redact_text(s);
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "{:?}", start.elapsed());
    }
}
