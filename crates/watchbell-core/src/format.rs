//! Formats: the text a text sink (SMS, mail, syslog, files, chat) makes of a [`Record`].
//!
//! A [`Format`] writes a record into a `String`. Three kinds are at hand:
//!
//! - [`DefaultFormat`]: the one-line layout every text sink can fall back on;
//! - [`Template`]: a user template with placeholders such as `{time}`, `{level:>5}` or
//!   `{field.user}`, parsed once when the sink is built, so a mistake is an error at build time
//!   and never a surprise at delivery time;
//! - any closure `Fn(&Record, &FormatContext) -> String`.
//!
//! ```
//! use watchbell_core::format::{Format, FormatContext, Template};
//! use watchbell_core::{Level, Record};
//!
//! let template: Template = "{level:<5}|{target}|{message}{suppressed}".parse().unwrap();
//! let record = Record::new(Level::WARN, "app::db", "slow query");
//! assert_eq!(template.format_to_string(&record, &FormatContext::default()), "WARN |app::db|slow query");
//!
//! let err = Template::parse("{time} {lvl}").unwrap_err();
//! assert!(err.to_string().starts_with("template error at byte 7: unknown placeholder {lvl}; expected one of time, level"));
//! ```

use std::error::Error;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use crate::record::{Fields, Record, SpanRecord, Value};

/// Turns a record into text for a sink.
///
/// Implementations write into `out` (which may already hold text: append, do not clear). A
/// format runs on watchbell's background thread; it should not panic, but a panic is caught by
/// the delivery worker and counted.
pub trait Format: Send + Sync + 'static {
    /// Appends the text of `record` to `out`.
    fn format(&self, record: &Record, cx: &FormatContext, out: &mut String);

    /// The text of `record` as a new `String`.
    fn format_to_string(&self, record: &Record, cx: &FormatContext) -> String {
        let mut out = String::new();
        self.format(record, cx, &mut out);
        out
    }
}

/// Any closure `Fn(&Record, &FormatContext) -> String` is a format.
///
/// ```
/// use watchbell_core::format::{Format, FormatContext};
/// use watchbell_core::{Level, Record};
///
/// let f = |r: &Record, _: &FormatContext| format!("{}!", r.message);
/// let record = Record::new(Level::ERROR, "app", "down");
/// assert_eq!(f.format_to_string(&record, &FormatContext::default()), "down!");
/// ```
impl<F> Format for F
where
    F: Fn(&Record, &FormatContext) -> String + Send + Sync + 'static,
{
    fn format(&self, record: &Record, cx: &FormatContext, out: &mut String) {
        out.push_str(&self(record, cx));
    }

    fn format_to_string(&self, record: &Record, cx: &FormatContext) -> String {
        self(record, cx)
    }
}

/// What a format may need beyond the record: the application's name and the host's, and the
/// link to the record's ticket when the sink has one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormatContext {
    /// The application's name (`{app}`; [`DefaultFormat`] writes it as a `[app] ` prefix).
    pub app: Option<String>,
    /// The host's name (`{host}`).
    pub host: Option<String>,
    /// Where the record's ticket is (`{ticket_url}`); set by the sinks built with a ticket link.
    /// [`DefaultFormat`] does not show it: each sink puts the link where its medium wants it.
    pub ticket_link: Option<crate::link::TicketLink>,
}

impl FormatContext {
    /// A context with an application name and no host.
    pub fn new(app: impl Into<String>) -> Self {
        FormatContext { app: Some(app.into()), host: None, ticket_link: None }
    }

    /// Sets the ticket link (`{ticket_url}`).
    pub fn with_ticket_link(mut self, link: Option<crate::link::TicketLink>) -> Self {
        self.ticket_link = link;
        self
    }

    /// Sets the host name (see [`FormatContext::local_host`] for this machine's).
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// This machine's host name, read without any dependency: `/proc/sys/kernel/hostname`,
    /// else `/etc/hostname`, else the `HOSTNAME` environment variable; trimmed; `None` if none
    /// of them gives a non-empty name.
    pub fn local_host() -> Option<String> {
        let non_empty = |s: String| {
            let t = s.trim();
            (!t.is_empty()).then(|| t.to_owned())
        };
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|path| std::fs::read_to_string(path).ok().and_then(non_empty))
            .or_else(|| std::env::var("HOSTNAME").ok().and_then(non_empty))
    }
}

/// The one-line layout:
///
/// ```text
/// [app] 2026-11-21T18:21:45.123456Z ERROR app::db: message key=value key2="two words" [request{id=7}:db{table=users}] (3 similar suppressed)
/// ```
///
/// The `[app] ` prefix appears when the context has an app; the message, the fields, the span
/// part and the suppressed part are each left out when empty, with single spaces between the
/// parts. Field values are written as in [`Template`]'s `{fields}`. Newlines in the message are
/// kept as they are: a sink that needs one line passes the result through
/// [`text::single_line`](crate::text::single_line).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefaultFormat;

impl Format for DefaultFormat {
    fn format(&self, record: &Record, cx: &FormatContext, out: &mut String) {
        if let Some(app) = &cx.app {
            out.push('[');
            out.push_str(app);
            out.push_str("] ");
        }
        write_time(out, record);
        out.push(' ');
        out.push_str(record.level.as_str());
        out.push(' ');
        out.push_str(&record.target);
        out.push(':');
        if !record.message.is_empty() {
            out.push(' ');
            out.push_str(&record.message);
        }
        if !record.fields.is_empty() {
            out.push(' ');
            write_fields(out, &record.fields);
        }
        if !record.spans.is_empty() {
            out.push_str(" [");
            write_spans(out, &record.spans);
            out.push(']');
        }
        if record.suppressed > 0 {
            out.push(' ');
            write_suppressed(out, record);
        }
    }
}

/// The placeholder names, in the order error messages list them.
const NAMES: &str = "time, level, target, message, fields, field.NAME, spans, file, line, location, module, thread, \
                     app, host, fingerprint, suppressed, ticket_url";

/// The largest width a placeholder may be padded to.
const MAX_WIDTH: usize = 1024;

/// A template parsed at build time.
///
/// Placeholders:
///
/// | placeholder | text |
/// |---|---|
/// | `{time}` | the time, RFC 3339 UTC with microseconds: `2026-11-21T18:21:45.123456Z` |
/// | `{level}` | `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE` |
/// | `{target}` | the target |
/// | `{message}` | the message, as it is (newlines included) |
/// | `{fields}` | the event's fields as `name=value` separated by spaces; a text value that is empty or holds whitespace, a control char, `=` or `"` is written quoted with escapes: `name="two words"` |
/// | `{field.NAME}` | the value of field `NAME`, from the event or else the spans, innermost first (see [`Record::field`]); not quoted |
/// | `{spans}` | the span stack, root first: `request{id=7 user=bob}:db{table=users}` (a span without fields is its name alone) |
/// | `{file}`, `{line}`, `{module}` | the source location's parts |
/// | `{location}` | `file:line`, or the file alone without a line |
/// | `{thread}` | the thread's name, else `thread-<id>` |
/// | `{app}`, `{host}` | from the [`FormatContext`] |
/// | `{fingerprint}` | the callsite fingerprint, 16 hex digits |
/// | `{suppressed}` | `(N similar suppressed)`, or nothing when no record was suppressed |
/// | `{ticket_url}` | the link to the record's ticket (see [`TicketLink`](crate::link::TicketLink)), or nothing when the sink has no ticket link; a URL as it is (a sink escapes the whole text for its medium) |
///
/// A placeholder that has nothing to show (no file, no such field, no app) writes nothing.
///
/// Any placeholder takes a width: `{level:<5}` pads with spaces on the right to 5 chars,
/// `{level:>5}` on the left, `{level:5}` is `{level:<5}`; longer text is not cut. Widths count
/// chars and go up to 1024. `{{` and `}}` are literal braces.
///
/// ```
/// use watchbell_core::format::{Format, FormatContext, Template};
/// use watchbell_core::{Level, Record, Value};
///
/// let t = Template::parse("{{{level:>5}}} {message} user={field.user}").unwrap();
/// let mut record = Record::new(Level::INFO, "app", "hello");
/// record.fields.set("user", Value::Str("bob".into()));
/// assert_eq!(t.format_to_string(&record, &FormatContext::default()), "{ INFO} hello user=bob");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Literal(String),
    Placeholder { kind: Kind, pad: Option<Pad> },
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Time,
    Level,
    Target,
    Message,
    Fields,
    Field(String),
    Spans,
    File,
    Line,
    Location,
    Module,
    Thread,
    App,
    Host,
    Fingerprint,
    Suppressed,
    TicketUrl,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Pad {
    right: bool,
    width: usize,
}

impl Template {
    /// Parses a template (see [`Template`] for the placeholders).
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let b = src.as_bytes();
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'{' if b.get(i + 1) == Some(&b'{') => {
                    lit.push('{');
                    i += 2;
                }
                b'}' if b.get(i + 1) == Some(&b'}') => {
                    lit.push('}');
                    i += 2;
                }
                b'}' => return Err(TemplateError::new(i, TemplateErrorKind::StrayClose)),
                b'{' => {
                    let content_start = i + 1;
                    let close = match src[content_start..].find(['{', '}']) {
                        Some(k) if b[content_start + k] == b'}' => content_start + k,
                        _ => return Err(TemplateError::new(i, TemplateErrorKind::Unclosed)),
                    };
                    let (kind, pad) = parse_placeholder(&src[content_start..close], i)?;
                    if !lit.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Placeholder { kind, pad });
                    i = close + 1;
                }
                _ => {
                    let next = src[i..].find(['{', '}']).map_or(src.len(), |k| i + k);
                    lit.push_str(&src[i..next]);
                    i = next;
                }
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Literal(lit));
        }
        Ok(Template { source: src.to_owned(), pieces })
    }

    /// The template's source text.
    pub fn source(&self) -> &str {
        &self.source
    }
}

fn parse_placeholder(content: &str, offset: usize) -> Result<(Kind, Option<Pad>), TemplateError> {
    let err = |kind| Err(TemplateError::new(offset, kind));
    if content.is_empty() {
        return err(TemplateErrorKind::Empty);
    }
    let (name, spec) = match content.split_once(':') {
        Some((n, s)) => (n, Some(s)),
        None => (content, None),
    };
    let kind = match name {
        "time" => Kind::Time,
        "level" => Kind::Level,
        "target" => Kind::Target,
        "message" => Kind::Message,
        "fields" => Kind::Fields,
        "spans" => Kind::Spans,
        "file" => Kind::File,
        "line" => Kind::Line,
        "location" => Kind::Location,
        "module" => Kind::Module,
        "thread" => Kind::Thread,
        "app" => Kind::App,
        "host" => Kind::Host,
        "fingerprint" => Kind::Fingerprint,
        "suppressed" => Kind::Suppressed,
        "ticket_url" => Kind::TicketUrl,
        "" => return err(TemplateErrorKind::Empty),
        _ => match name.strip_prefix("field.") {
            Some("") => return err(TemplateErrorKind::EmptyFieldName),
            Some(field) => Kind::Field(field.to_owned()),
            None => return err(TemplateErrorKind::UnknownPlaceholder(name.to_owned())),
        },
    };
    let pad = match spec {
        None => None,
        Some(spec) => {
            let (right, digits) = match spec.as_bytes().first() {
                Some(b'<') => (false, &spec[1..]),
                Some(b'>') => (true, &spec[1..]),
                _ => (false, spec),
            };
            let width = if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
                digits.parse::<usize>().ok().filter(|w| *w <= MAX_WIDTH)
            } else {
                None
            };
            match width {
                Some(width) => Some(Pad { right, width }),
                None => return err(TemplateErrorKind::BadSpec(spec.to_owned())),
            }
        }
    };
    Ok((kind, pad))
}

impl FromStr for Template {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::parse(s)
    }
}

impl Format for Template {
    fn format(&self, record: &Record, cx: &FormatContext, out: &mut String) {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Placeholder { kind, pad: None } => write_kind(out, kind, record, cx),
                Piece::Placeholder { kind, pad: Some(pad) } => {
                    let start = out.len();
                    write_kind(out, kind, record, cx);
                    let n = out[start..].chars().count();
                    if n < pad.width {
                        let fill = pad.width - n;
                        if pad.right {
                            out.insert_str(start, &" ".repeat(fill));
                        } else {
                            out.extend(std::iter::repeat_n(' ', fill));
                        }
                    }
                }
            }
        }
    }
}

/// One record as a plain-text block in Logbook's mail layout, appended to `out`: header lines
/// (`Message type`, `Ticket` when the context has a ticket link, `Location`, `Module`, `Target`,
/// `Time`, `Host`, `Thread`, `Spans`), the message, the fields and span fields as aligned tables,
/// the error chain indented, and the suppressed count. Used by the mail sink and by every sink
/// that sends a mail-like text (SNS).
pub fn write_mail_block(r: &Record, cx: &FormatContext, out: &mut String) {
    /// The width of the labels of the header lines.
    const LABEL: usize = 17;
    let mut line = |label: &str, value: &str| {
        let _ = writeln!(out, "{:<LABEL$}{}", format!("{label}:"), crate::text::single_line(value));
    };
    line("Message type", r.level.as_str());
    if let Some(url) = cx.ticket_link.as_ref().and_then(|l| l.ticket_url(r)) {
        line("Ticket", &url);
    }
    if let Some(loc) = r.location() {
        line("Location", &loc);
    }
    if let Some(m) = &r.module {
        line("Module", m);
    }
    line("Target", &r.target);
    line("Time", &crate::time::rfc3339(r.time));
    if let Some(h) = &cx.host {
        line("Host", h);
    }
    match &r.thread_name {
        Some(t) => line("Thread", t),
        None => line("Thread", &format!("thread-{}", r.thread_id)),
    }
    if !r.spans.is_empty() {
        let names: Vec<&str> = r.spans.iter().map(|s| s.name.as_ref()).collect();
        line("Spans", &names.join(" > "));
    }
    out.push_str("\nMessage:\n\n");
    out.push_str(&r.message);
    out.push('\n');
    let fields: Vec<(String, &Value)> =
        r.fields.iter().filter(|(n, _)| *n != "error").map(|(n, v)| (n.to_owned(), v)).collect();
    if !fields.is_empty() {
        out.push_str("\nFields:\n\n");
        mail_table(&fields, out);
    }
    let span_fields: Vec<(String, &Value)> =
        r.spans.iter().flat_map(|s| s.fields.iter().map(move |(n, v)| (format!("{}.{n}", s.name), v))).collect();
    if !span_fields.is_empty() {
        out.push_str("\nSpan fields:\n\n");
        mail_table(&span_fields, out);
    }
    if let Some(e) = r.fields.get("error") {
        out.push_str("\nError:\n\n");
        for l in e.to_string().split('\n') {
            out.push_str("  ");
            out.push_str(l.trim_end_matches('\r'));
            out.push('\n');
        }
    }
    if r.suppressed > 0 {
        let times = if r.suppressed == 1 { "time" } else { "times" };
        let _ = write!(out, "\nThis message occurred {} more {times} and was suppressed.\n", r.suppressed);
    }
}

/// `name  value` lines with the values aligned (the name column at most 32 chars wide); a
/// value's further lines are indented to the value column.
fn mail_table(rows: &[(String, &Value)], out: &mut String) {
    let width = rows.iter().map(|(n, _)| n.chars().count()).max().unwrap_or(0).min(32);
    for (name, value) in rows {
        let name = crate::text::single_line(name);
        let text = value.to_string();
        let mut lines = text.split('\n');
        let _ = writeln!(out, "  {name:<width$}  {}", lines.next().unwrap_or("").trim_end_matches('\r'));
        for l in lines {
            let _ = writeln!(out, "  {:<width$}  {}", "", l.trim_end_matches('\r'));
        }
    }
}

fn write_kind(out: &mut String, kind: &Kind, record: &Record, cx: &FormatContext) {
    match kind {
        Kind::Time => write_time(out, record),
        Kind::Level => out.push_str(record.level.as_str()),
        Kind::Target => out.push_str(&record.target),
        Kind::Message => out.push_str(&record.message),
        Kind::Fields => write_fields(out, &record.fields),
        Kind::Field(name) => {
            if let Some(v) = record.field(name) {
                write_value(out, v);
            }
        }
        Kind::Spans => write_spans(out, &record.spans),
        Kind::File => out.push_str(record.file.as_deref().unwrap_or("")),
        Kind::Line => {
            if let Some(line) = record.line {
                let _ = write!(out, "{line}");
            }
        }
        Kind::Location => {
            if let Some(file) = &record.file {
                out.push_str(file);
                if let Some(line) = record.line {
                    let _ = write!(out, ":{line}");
                }
            }
        }
        Kind::Module => out.push_str(record.module.as_deref().unwrap_or("")),
        Kind::Thread => match &record.thread_name {
            Some(name) => out.push_str(name),
            None => {
                let _ = write!(out, "thread-{}", record.thread_id);
            }
        },
        Kind::App => out.push_str(cx.app.as_deref().unwrap_or("")),
        Kind::Host => out.push_str(cx.host.as_deref().unwrap_or("")),
        Kind::Fingerprint => {
            let _ = write!(out, "{:016x}", record.fingerprint.0);
        }
        Kind::Suppressed => {
            if record.suppressed > 0 {
                write_suppressed(out, record);
            }
        }
        Kind::TicketUrl => {
            if let Some(url) = cx.ticket_link.as_ref().and_then(|l| l.ticket_url(record)) {
                out.push_str(&url);
            }
        }
    }
}

/// RFC 3339 UTC with microseconds, as [`crate::time::rfc3339`] writes it, without allocating
/// (each second's text computed once: [`crate::time::push_rfc3339`]).
fn write_time(out: &mut String, record: &Record) {
    crate::time::push_rfc3339(out, record.time);
}

/// `(N similar suppressed)`, with `from M instances` when a rate limit saw them come from
/// several processes (the `instances` field, see [`crate::ratelimit`]).
fn write_suppressed(out: &mut String, record: &Record) {
    let n = record.suppressed;
    match record.fields.get(crate::ratelimit::INSTANCES_FIELD).and_then(crate::Value::as_u64) {
        Some(m) if m >= 2 => {
            let _ = write!(out, "({n} similar suppressed from {m} instances)");
        }
        _ => {
            let _ = write!(out, "({n} similar suppressed)");
        }
    }
}

/// A value as it is (`{field.NAME}`): its `Display` text, written without `fmt` for text,
/// 64-bit integers and booleans.
fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Str(s) | Value::Debug(s) | Value::Display(s) => out.push_str(s),
        Value::U64(n) => crate::json::write_u64(out, *n),
        Value::I64(n) => crate::json::write_i64(out, *n),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // The value's `Display`: the number's own.
        Value::F64(_) | Value::I128(_) | Value::U128(_) => {
            let _ = write!(out, "{v}");
        }
    }
}

/// Whether a text value is quoted in a `name=value` list: empty, or holding whitespace, a
/// control char, `=` or `"`. ASCII text is checked byte by byte.
fn needs_quotes(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    for &b in s.as_bytes() {
        if b >= 0x80 {
            return s.chars().any(|c| c.is_whitespace() || c.is_control() || c == '=' || c == '"');
        }
        // ASCII: the controls (below 0x20 and DEL), the space (the other ASCII whitespace
        // chars are controls), `=` and `"`.
        if b <= b' ' || b == 0x7f || b == b'=' || b == b'"' {
            return true;
        }
    }
    false
}

/// A value in a `name=value` list: text quoted when it would not read back as one token.
fn write_value_quoted(out: &mut String, v: &Value) {
    match v.as_str() {
        Some(s) if needs_quotes(s) => {
            let _ = write!(out, "{s:?}");
        }
        _ => write_value(out, v),
    }
}

fn write_fields(out: &mut String, fields: &Fields) {
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(name);
        out.push('=');
        write_value_quoted(out, value);
    }
}

fn write_spans(out: &mut String, spans: &[std::sync::Arc<SpanRecord>]) {
    for (i, span) in spans.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&span.name);
        if !span.fields.is_empty() {
            out.push('{');
            write_fields(out, &span.fields);
            out.push('}');
        }
    }
}

/// A template that does not parse: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// The byte offset in the template of the problem: the `{` that opens the faulty
    /// placeholder, or the stray `}`.
    pub offset: usize,
    /// What is wrong.
    pub kind: TemplateErrorKind,
}

/// What is wrong with a template.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateErrorKind {
    /// A placeholder name that does not exist (the name is given).
    UnknownPlaceholder(String),
    /// A `{` without its `}`.
    Unclosed,
    /// A `}` that closes nothing (a literal brace is written `}}`).
    StrayClose,
    /// `{}`: a placeholder without a name.
    Empty,
    /// A width spec that is not `<N`, `>N` or `N` with N up to 1024 (the spec is given).
    BadSpec(String),
    /// `{field.}`: a field placeholder without a field name.
    EmptyFieldName,
}

impl TemplateError {
    fn new(offset: usize, kind: TemplateErrorKind) -> Self {
        TemplateError { offset, kind }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "template error at byte {}: ", self.offset)?;
        match &self.kind {
            TemplateErrorKind::UnknownPlaceholder(name) => {
                write!(f, "unknown placeholder {{{name}}}; expected one of {NAMES}")
            }
            TemplateErrorKind::Unclosed => f.write_str("unclosed '{' (write '{{' for a literal brace)"),
            TemplateErrorKind::StrayClose => f.write_str("unmatched '}' (write '}}' for a literal brace)"),
            TemplateErrorKind::Empty => write!(f, "empty placeholder {{}}; expected one of {NAMES}"),
            TemplateErrorKind::BadSpec(spec) => {
                write!(f, "bad width spec {spec:?}; expected <N, >N or N with N at most {MAX_WIDTH}")
            }
            TemplateErrorKind::EmptyFieldName => f.write_str("empty field name in {field.}; write {field.NAME}"),
        }
    }
}

impl Error for TemplateError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Fingerprint, SpanRecord};
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};
    use tracing_core::Level;

    fn span(name: &'static str, fields: &[(&'static str, Value)]) -> Arc<SpanRecord> {
        Arc::new(SpanRecord { name: name.into(), target: "app".into(), fields: fields.iter().cloned().collect() })
    }

    fn record() -> Record {
        let mut r = Record::new(Level::ERROR, "app::db", "query failed");
        r.time = UNIX_EPOCH + Duration::new(1_795_285_305, 123_456_789);
        r.module = Some("app::db::pool".into());
        r.file = Some("src/db.rs".into());
        r.line = Some(42);
        r.fields.set("key", Value::Str("value".into()));
        r.fields.set("key2", Value::Str("two words".into()));
        r.fields.set("n", Value::I64(-3));
        r.spans = [
            span("request", &[("id", Value::U64(7)), ("user", Value::Str("bob".into()))]),
            span("db", &[("table", Value::Str("users".into()))]),
        ]
        .into();
        r.thread_name = Some("worker-1".into());
        r.thread_id = 9;
        r.fingerprint = Fingerprint(0xab);
        r
    }

    fn fmt(t: &str, r: &Record, cx: &FormatContext) -> String {
        Template::parse(t).unwrap_or_else(|e| panic!("{e}")).format_to_string(r, cx)
    }

    #[test]
    fn every_placeholder() {
        let r = record();
        let cx = FormatContext::new("shop").with_host("db-1");
        let none = FormatContext::default();
        assert_eq!(fmt("{time}", &r, &cx), "2026-11-21T18:21:45.123456Z");
        assert_eq!(fmt("{time}", &r, &cx), crate::time::rfc3339(r.time));
        assert_eq!(fmt("{level}", &r, &cx), "ERROR");
        assert_eq!(fmt("{target}", &r, &cx), "app::db");
        assert_eq!(fmt("{message}", &r, &cx), "query failed");
        assert_eq!(fmt("{fields}", &r, &cx), r#"key=value key2="two words" n=-3"#);
        assert_eq!(fmt("{field.key2}", &r, &cx), "two words");
        assert_eq!(fmt("{field.user}", &r, &cx), "bob");
        assert_eq!(fmt("[{field.nope}]", &r, &cx), "[]");
        assert_eq!(fmt("{spans}", &r, &cx), "request{id=7 user=bob}:db{table=users}");
        assert_eq!(fmt("{file}", &r, &cx), "src/db.rs");
        assert_eq!(fmt("{line}", &r, &cx), "42");
        assert_eq!(fmt("{location}", &r, &cx), "src/db.rs:42");
        assert_eq!(fmt("{module}", &r, &cx), "app::db::pool");
        assert_eq!(fmt("{thread}", &r, &cx), "worker-1");
        assert_eq!(fmt("{app}@{host}", &r, &cx), "shop@db-1");
        assert_eq!(fmt("{app}@{host}", &r, &none), "@");
        assert_eq!(fmt("{fingerprint}", &r, &cx), "00000000000000ab");
        assert_eq!(fmt("[{suppressed}]", &r, &cx), "[]");

        let mut bare = Record::new(Level::TRACE, "t", "");
        bare.thread_name = None;
        bare.thread_id = 12;
        bare.suppressed = 3;
        assert_eq!(fmt("{fields}|{spans}|{file}|{line}|{location}|{module}", &bare, &cx), "|||||");
        assert_eq!(fmt("{thread}", &bare, &cx), "thread-12");
        assert_eq!(fmt("{suppressed}", &bare, &cx), "(3 similar suppressed)");
        bare.file = Some("a.rs".into());
        assert_eq!(fmt("{location}", &bare, &cx), "a.rs");
        for (level, s) in [
            (Level::ERROR, "ERROR"),
            (Level::WARN, "WARN"),
            (Level::INFO, "INFO"),
            (Level::DEBUG, "DEBUG"),
            (Level::TRACE, "TRACE"),
        ] {
            bare.level = level;
            assert_eq!(fmt("{level}", &bare, &cx), s);
        }
    }

    #[test]
    fn field_values_quoting() {
        let mut r = Record::new(Level::INFO, "t", "m");
        r.fields.set("empty", Value::Str(String::new()));
        r.fields.set("eq", Value::Str("a=b".into()));
        r.fields.set("quote", Value::Debug("\"bob\"".into()));
        r.fields.set("nl", Value::Display("a\nb".into()));
        r.fields.set("uni", Value::Str("日本".into()));
        r.fields.set("f", Value::F64(1.5));
        r.fields.set("b", Value::Bool(true));
        r.fields.set("big", Value::U128(Box::new(u128::MAX)));
        assert_eq!(
            fmt("{fields}", &r, &FormatContext::default()),
            r#"empty="" eq="a=b" quote="\"bob\"" nl="a\nb" uni=日本 f=1.5 b=true big=340282366920938463463374607431768211455"#
        );
        assert_eq!(fmt("{field.quote}", &r, &FormatContext::default()), "\"bob\"");
    }

    #[test]
    fn values_are_written_as_display_writes_them() {
        let values = [
            Value::I64(i64::MIN),
            Value::I64(-1),
            Value::I64(0),
            Value::I64(i64::MAX),
            Value::U64(0),
            Value::U64(7),
            Value::U64(10),
            Value::U64(u64::MAX),
            Value::I128(Box::new(i128::MIN)),
            Value::U128(Box::new(u128::MAX)),
            Value::F64(12.5),
            Value::F64(1e300),
            Value::F64(f64::NAN),
            Value::F64(-0.0),
            Value::Bool(true),
            Value::Bool(false),
            Value::Str("bob".into()),
        ];
        for v in &values {
            let mut out = String::from("x");
            write_value(&mut out, v);
            assert_eq!(out, format!("x{v}"));
        }
        // Quoting: the byte check agrees with the char predicate it stands for.
        let old =
            |s: &str| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control() || c == '=' || c == '"');
        let mut texts: Vec<String> = [
            "",
            "bob",
            "a b",
            "a=b",
            "\"",
            "日本",
            "日本 語",
            "a\u{a0}b",
            "a\u{2028}",
            "x\u{85}",
            "é=",
            "~!#$%&'()*+,-./:;<>?@[]^_`{|}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        texts.extend((0u8..=0x7f).map(|b| format!("ab{}", b as char)));
        for t in &texts {
            assert_eq!(needs_quotes(t), old(t), "{t:?}");
        }
    }

    #[test]
    fn default_format_times_across_seconds() {
        let cx = FormatContext::default();
        let base = UNIX_EPOCH + Duration::new(1_795_285_305, 999_999_000);
        for t in [
            base,
            base - Duration::from_micros(999_999),
            base + Duration::from_micros(1),
            base + Duration::from_secs(60),
            base + Duration::from_secs(86_400),
            UNIX_EPOCH - Duration::from_micros(1),
            base,
        ] {
            let mut r = Record::new(Level::WARN, "app", "m");
            r.time = t;
            let want = format!("{} WARN app: m", crate::time::rfc3339(t));
            assert_eq!(DefaultFormat.format_to_string(&r, &cx), want);
            let template: Template = "{time}".parse().unwrap();
            assert_eq!(template.format_to_string(&r, &cx), crate::time::rfc3339(t));
        }
    }

    #[test]
    fn field_lookup_precedence() {
        let mut r = Record::new(Level::INFO, "t", "m");
        r.spans = [
            span("outer", &[("a", Value::Str("outer".into())), ("b", Value::Str("outer".into()))]),
            span("inner", &[("a", Value::Str("inner".into()))]),
        ]
        .into();
        let cx = FormatContext::default();
        assert_eq!(fmt("{field.a} {field.b}", &r, &cx), "inner outer");
        r.fields.set("a", Value::Str("event".into()));
        assert_eq!(fmt("{field.a} {field.b}", &r, &cx), "event outer");
        assert_eq!(fmt("{spans}", &r, &cx), "outer{a=outer b=outer}:inner{a=inner}");
        r.spans.push(span("leaf", &[]));
        assert_eq!(fmt("{spans}", &r, &cx), "outer{a=outer b=outer}:inner{a=inner}:leaf");
    }

    #[test]
    fn width_and_alignment() {
        let mut r = record();
        let cx = FormatContext::default();
        r.level = Level::WARN;
        assert_eq!(fmt("[{level:<5}]", &r, &cx), "[WARN ]");
        assert_eq!(fmt("[{level:>5}]", &r, &cx), "[ WARN]");
        assert_eq!(fmt("[{level:5}]", &r, &cx), "[WARN ]");
        assert_eq!(fmt("[{level:>2}]", &r, &cx), "[WARN]");
        assert_eq!(fmt("[{level:<0}]", &r, &cx), "[WARN]");
        assert_eq!(fmt("[{field.user:>6}]", &r, &cx), "[   bob]");
        assert_eq!(fmt("[{field.nope:>3}]", &r, &cx), "[   ]");
        assert_eq!(fmt("[{line:>4}]", &r, &cx), "[  42]");
        // Multibyte text is padded by chars, not bytes.
        r.message = "日本👍".into();
        assert_eq!(fmt("[{message:<5}]", &r, &cx), "[日本👍  ]");
        assert_eq!(fmt("[{message:>5}]", &r, &cx), "[  日本👍]");
        // Padding after earlier output.
        assert_eq!(fmt("é{level:>6}é", &r, &cx), "é  WARNé");
        assert_eq!(fmt("{message:>1024}", &r, &cx).chars().count(), 1024);
    }

    #[test]
    fn literal_braces_and_text() {
        let r = record();
        let cx = FormatContext::default();
        assert_eq!(fmt("{{}}", &r, &cx), "{}");
        assert_eq!(fmt("{{level}}", &r, &cx), "{level}");
        assert_eq!(fmt("{{{level}}}", &r, &cx), "{ERROR}");
        assert_eq!(fmt("", &r, &cx), "");
        assert_eq!(fmt("plain 日本 text", &r, &cx), "plain 日本 text");
        let t = Template::parse("a {level} b").unwrap();
        assert_eq!(t.source(), "a {level} b");
        let t2: Template = "a {level} b".parse().unwrap();
        assert_eq!(t, t2);
        // Appends to what `out` holds.
        let mut out = String::from(">");
        t.format(&r, &cx, &mut out);
        assert_eq!(out, ">a ERROR b");
    }

    #[test]
    fn ticket_url_comes_from_the_context() {
        let t = Template::parse("{message} {ticket_url}").unwrap();
        let mut r = Record::new(Level::ERROR, "app::pay", "declined");
        r.line = Some(3);
        assert_eq!(t.format_to_string(&r, &FormatContext::default()), "declined ");
        let link = crate::link::TicketLink::new("https://t.example", "shop").unwrap();
        let cx = FormatContext::new("shop").with_ticket_link(Some(link.clone()));
        let want = format!("declined https://t.example/fp/shop/{}", link.fingerprint(&r));
        assert_eq!(t.format_to_string(&r, &cx), want);
    }

    #[test]
    fn errors() {
        let e = Template::parse("{time} {lvl}").unwrap_err();
        assert_eq!(e, TemplateError { offset: 7, kind: TemplateErrorKind::UnknownPlaceholder("lvl".into()) });
        assert_eq!(
            e.to_string(),
            "template error at byte 7: unknown placeholder {lvl}; expected one of time, level, target, message, \
             fields, field.NAME, spans, file, line, location, module, thread, app, host, fingerprint, suppressed, ticket_url"
        );
        let cases: &[(&str, usize, TemplateErrorKind, &str)] = &[
            (
                "abc {level",
                4,
                TemplateErrorKind::Unclosed,
                "template error at byte 4: unclosed '{' (write '{{' for a literal brace)",
            ),
            ("{time {level}", 0, TemplateErrorKind::Unclosed, "template error at byte 0: unclosed '{'"),
            (
                "a } b",
                2,
                TemplateErrorKind::StrayClose,
                "template error at byte 2: unmatched '}' (write '}}' for a literal brace)",
            ),
            (
                "x{}",
                1,
                TemplateErrorKind::Empty,
                "template error at byte 1: empty placeholder {}; expected one of time,",
            ),
            ("{:<5}", 0, TemplateErrorKind::Empty, "template error at byte 0: empty placeholder {}"),
            (
                "{level:^5}",
                0,
                TemplateErrorKind::BadSpec("^5".into()),
                "template error at byte 0: bad width spec \"^5\"; expected <N, >N or N with N at most 1024",
            ),
            ("{level:}", 0, TemplateErrorKind::BadSpec("".into()), "template error at byte 0: bad width spec \"\""),
            ("{level:<}", 0, TemplateErrorKind::BadSpec("<".into()), "bad width spec \"<\""),
            ("{level:<-1}", 0, TemplateErrorKind::BadSpec("<-1".into()), "bad width spec"),
            ("{level:>1025}", 0, TemplateErrorKind::BadSpec(">1025".into()), "bad width spec"),
            (
                "{level:>99999999999999999999999}",
                0,
                TemplateErrorKind::BadSpec(">99999999999999999999999".into()),
                "bad width spec",
            ),
            (
                "日本{field.}",
                6,
                TemplateErrorKind::EmptyFieldName,
                "template error at byte 6: empty field name in {field.}; write {field.NAME}",
            ),
            ("{field}", 0, TemplateErrorKind::UnknownPlaceholder("field".into()), "unknown placeholder {field};"),
            ("{ level }", 0, TemplateErrorKind::UnknownPlaceholder(" level ".into()), "unknown placeholder { level };"),
        ];
        for (src, offset, kind, msg) in cases {
            let e = Template::parse(src).unwrap_err();
            assert_eq!((e.offset, &e.kind), (*offset, kind), "{src}");
            assert!(e.to_string().contains(msg), "{src}: {e}");
            let e2: Result<Template, _> = src.parse();
            assert_eq!(e2.unwrap_err(), e);
        }
        let boxed: Box<dyn Error + Send + Sync> = Box::new(Template::parse("}").unwrap_err());
        assert!(boxed.to_string().contains("byte 0"));
    }

    #[test]
    fn default_format() {
        let r = record();
        let mut r2 = r.clone();
        r2.suppressed = 3;
        r2.spans = [span("request", &[("id", Value::U64(7))])].into();
        let cx = FormatContext::default();
        assert_eq!(
            DefaultFormat.format_to_string(&r, &cx),
            r#"2026-11-21T18:21:45.123456Z ERROR app::db: query failed key=value key2="two words" n=-3 [request{id=7 user=bob}:db{table=users}]"#
        );
        assert_eq!(
            DefaultFormat.format_to_string(&r2, &FormatContext::new("shop")),
            r#"[shop] 2026-11-21T18:21:45.123456Z ERROR app::db: query failed key=value key2="two words" n=-3 [request{id=7}] (3 similar suppressed)"#
        );
        let mut bare = Record::new(Level::INFO, "app", "line one\nline two");
        bare.time = UNIX_EPOCH;
        assert_eq!(
            DefaultFormat.format_to_string(&bare, &cx),
            "1970-01-01T00:00:00.000000Z INFO app: line one\nline two"
        );
        bare.message = "".into();
        bare.fields.set("k", Value::Bool(false));
        assert_eq!(DefaultFormat.format_to_string(&bare, &cx), "1970-01-01T00:00:00.000000Z INFO app: k=false");
        bare.fields = Fields::new();
        bare.suppressed = 1;
        assert_eq!(
            DefaultFormat.format_to_string(&bare, &cx),
            "1970-01-01T00:00:00.000000Z INFO app: (1 similar suppressed)"
        );
    }

    #[test]
    fn closures_and_trait_objects() {
        let r = record();
        let cx = FormatContext::new("shop");
        let f = |r: &Record, cx: &FormatContext| format!("{}:{}", cx.app.as_deref().unwrap_or("-"), r.message);
        assert_eq!(f.format_to_string(&r, &cx), "shop:query failed");
        let mut out = String::from("> ");
        f.format(&r, &cx, &mut out);
        assert_eq!(out, "> shop:query failed");
        let formats: Vec<Box<dyn Format>> =
            vec![Box::new(f), Box::new(DefaultFormat), Box::new(Template::parse("{level}").unwrap())];
        let texts: Vec<String> = formats.iter().map(|f| f.format_to_string(&r, &cx)).collect();
        assert_eq!(texts[0], "shop:query failed");
        assert!(texts[1].starts_with("[shop] 2026-11-21T18:21:45.123456Z ERROR"));
        assert_eq!(texts[2], "ERROR");
    }

    #[test]
    fn local_host_is_trimmed() {
        if let Some(h) = FormatContext::local_host() {
            assert!(!h.is_empty());
            assert_eq!(h.trim(), h);
        }
    }

    #[test]
    fn every_template_formats_without_panic() {
        let r = record();
        let cx = FormatContext::new("a");
        let all = "{time}{level}{target}{message}{fields}{field.x}{spans}{file}{line}{location}{module}{thread}\
                   {app}{host}{fingerprint}{suppressed}";
        let t = Template::parse(all).unwrap();
        assert!(!t.format_to_string(&r, &cx).is_empty());
        // Any source either parses or gives an error whose offset is in the source.
        let parts = ["{", "}", "level", ":", "<", ">", "5", "field.", "日", "x", "{{", "}}"];
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..3000 {
            let mut src = String::new();
            for _ in 0..(seed % 8) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                src.push_str(parts[(seed % parts.len() as u64) as usize]);
            }
            seed = seed.wrapping_add(0x9e37_79b9);
            match Template::parse(&src) {
                Ok(t) => {
                    let _ = t.format_to_string(&r, &cx);
                }
                Err(e) => assert!(e.offset < src.len() && src.is_char_boundary(e.offset), "{src:?} {e}"),
            }
        }
    }
}
