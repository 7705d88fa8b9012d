//! Telegram HTML: rendering records, and cutting or splitting the HTML we made without ever
//! cutting an entity or leaving a tag open. Lengths are counted in UTF-16 code units over the
//! whole text, markup included (a bound on what Telegram counts after parsing).

use std::fmt::Write as _;

use watchbell_core::format::{Format, FormatContext};
use watchbell_core::text::{escape_html, utf16_len};
use watchbell_core::{Record, SpanRecord};

/// One token of our own HTML.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    Open(&'a str),
    Close(&'a str),
    Text,
}

/// The token starting at byte `i`: its end and kind. Our HTML is well formed; anything odd is
/// taken as text one char at a time.
fn next(s: &str, i: usize) -> (usize, Tok<'_>) {
    let rest = &s[i..];
    let char_end = i + rest.chars().next().map_or(1, char::len_utf8);
    match rest.as_bytes()[0] {
        b'<' => match rest.find('>') {
            Some(k) => {
                let inner = &rest[1..k];
                let (closing, inner) = match inner.strip_prefix('/') {
                    Some(n) => (true, n),
                    None => (false, inner),
                };
                let name = inner.split(|c: char| c.is_whitespace()).next().unwrap_or("");
                if name.is_empty() {
                    (char_end, Tok::Text)
                } else if closing {
                    (i + k + 1, Tok::Close(name))
                } else {
                    (i + k + 1, Tok::Open(name))
                }
            }
            None => (char_end, Tok::Text),
        },
        b'&' => match rest.as_bytes().iter().take(12).position(|&b| b == b';') {
            Some(k) => (i + k + 1, Tok::Text),
            None => (char_end, Tok::Text),
        },
        _ => (char_end, Tok::Text),
    }
}

/// The UTF-16 length of `</name>`.
fn close_len(name: &str) -> usize {
    name.len() + 3
}

fn close_tags<'a>(out: &mut String, names: impl DoubleEndedIterator<Item = &'a str>) {
    for n in names.rev() {
        out.push_str("</");
        out.push_str(n);
        out.push('>');
    }
}

/// An open tag while cutting: its name, its raw opening text, and where it starts and ends in
/// the output (to take back a tag left empty).
#[derive(Clone, Debug)]
struct Open<'a> {
    name: &'a str,
    raw: &'a str,
    before: usize,
    after: usize,
}

/// The HTML written so far while cutting or splitting: the text, its UTF-16 length, the UTF-16
/// length of the closing tags it still needs, and the tags open in it.
#[derive(Default)]
struct Writer<'a> {
    out: String,
    used: usize,
    closing: usize,
    stack: Vec<Open<'a>>,
}

impl<'a> Writer<'a> {
    /// Whether `</name>` closes the innermost open tag.
    fn closes_top(&self, name: &str) -> bool {
        self.stack.last().is_some_and(|o| o.name == name)
    }

    /// The length of the closing tags needed once `tok` is written.
    fn closing_after(&self, tok: Tok<'_>) -> usize {
        match tok {
            Tok::Open(n) => self.closing + close_len(n),
            Tok::Close(n) if self.closes_top(n) => self.closing - close_len(n),
            _ => self.closing,
        }
    }

    /// Writes the token `raw` (`units` UTF-16 units long).
    fn push(&mut self, tok: Tok<'a>, raw: &'a str, units: usize) {
        self.closing = self.closing_after(tok);
        let before = self.out.len();
        self.out.push_str(raw);
        self.used += units;
        match tok {
            Tok::Open(name) => self.stack.push(Open { name, raw, before, after: self.out.len() }),
            Tok::Close(n) if self.closes_top(n) => {
                self.stack.pop();
            }
            _ => {}
        }
    }

    /// Takes back the tags left empty at the end, appends `marker` and closes the open tags.
    fn finish(mut self, marker: &str) -> String {
        while self.stack.last().is_some_and(|o| o.after == self.out.len()) {
            let o = self.stack.pop().expect("checked");
            self.out.truncate(o.before);
        }
        self.out.push_str(marker);
        close_tags(&mut self.out, self.stack.iter().map(|o| o.name));
        self.out
    }
}

/// Cuts `html` to at most `limit` UTF-16 units with `marker` (plain text) at the end, closing
/// every tag left open and never cutting a tag or an entity. HTML that fits is returned as is.
pub(crate) fn truncate_html(html: &str, limit: usize, marker: &str) -> String {
    if utf16_len(html) <= limit {
        return html.to_owned();
    }
    let marker_units = utf16_len(marker);
    let mut w = Writer::default();
    let mut i = 0;
    while i < html.len() {
        let (end, tok) = next(html, i);
        let raw = &html[i..end];
        let units = utf16_len(raw);
        if w.used + units + w.closing_after(tok) + marker_units > limit {
            break;
        }
        w.push(tok, raw, units);
        i = end;
    }
    w.finish(marker)
}

/// Splits `html` into pieces of at most `limit` UTF-16 units, each valid on its own: tags open
/// at a cut are closed at the end of one piece and opened again at the start of the next. A
/// piece ends after a newline where one lies in its second half.
pub(crate) fn split_html(html: &str, limit: usize) -> Vec<String> {
    if utf16_len(html) <= limit {
        return vec![html.to_owned()];
    }
    struct Mark<'a> {
        out_len: usize,
        used: usize,
        closing: usize,
        stack: Vec<Open<'a>>,
        i: usize,
    }
    let mut parts = Vec::new();
    let mut w = Writer::default();
    let mut has_text = false;
    let mut newline: Option<Mark<'_>> = None;
    let mut i = 0;
    while i < html.len() {
        let (end, tok) = next(html, i);
        let raw = &html[i..end];
        let units = utf16_len(raw);
        if has_text && w.used + units + w.closing_after(tok) > limit {
            if let Some(m) = newline.take().filter(|m| m.used * 2 >= w.used) {
                w.out.truncate(m.out_len);
                w.closing = m.closing;
                w.stack = m.stack;
                i = m.i;
            }
            // Tags opened with nothing in them yet move to the next piece.
            let mut keep = w.stack.len();
            while keep > 0 && w.stack[keep - 1].after == w.out.len() {
                w.out.truncate(w.stack[keep - 1].before);
                keep -= 1;
            }
            close_tags(&mut w.out, w.stack[..keep].iter().map(|o| o.name));
            parts.push(std::mem::take(&mut w.out));
            for o in &mut w.stack {
                o.before = w.out.len();
                w.out.push_str(o.raw);
                o.after = w.out.len();
            }
            w.used = utf16_len(&w.out);
            has_text = false;
            continue;
        }
        w.push(tok, raw, units);
        if tok == Tok::Text {
            has_text = true;
            if raw == "\n" {
                newline = Some(Mark {
                    out_len: w.out.len(),
                    used: w.used,
                    closing: w.closing,
                    stack: w.stack.clone(),
                    i: end,
                });
            }
        }
        i = end;
    }
    if has_text {
        parts.push(w.finish(""));
    }
    parts
}

/// The text Telegram would show for our HTML: tags removed, entities decoded.
pub(crate) fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut i = 0;
    while i < html.len() {
        let (end, tok) = next(html, i);
        let raw = &html[i..end];
        if tok == Tok::Text {
            match decode_entity(raw) {
                Some(c) => out.push(c),
                None => out.push_str(raw),
            }
        }
        i = end;
    }
    out
}

fn decode_entity(raw: &str) -> Option<char> {
    let name = raw.strip_prefix('&')?.strip_suffix(';')?;
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// How records become HTML.
pub(crate) struct Renderer {
    pub(crate) app: Option<String>,
    pub(crate) format: Option<std::sync::Arc<dyn Format>>,
    pub(crate) cx: FormatContext,
}

impl Renderer {
    /// One record's block (see the crate docs for the layout). Every piece of log text is
    /// escaped.
    pub(crate) fn record(&self, r: &Record) -> String {
        let mut out = String::new();
        if let Some(f) = &self.format {
            let text = f.format_to_string(r, &self.cx);
            // Telegram refuses an empty text: a blank custom text falls back to the default.
            if !text.trim().is_empty() {
                out.push_str(&escape_html(&text));
                return out;
            }
        }
        let _ = write!(out, "<b>{}</b> in <b>", r.level.as_str());
        out.push_str(&escape_html(self.app.as_deref().unwrap_or(&r.target)));
        out.push_str("</b>");
        // In the headline, before the message, so that cutting a long record never cuts it.
        if let Some(url) = self.cx.ticket_link.as_ref().and_then(|l| l.ticket_url(r)) {
            out.push_str(" (<a href=\"");
            out.push_str(&escape_html(&url));
            out.push_str("\">ticket</a>)");
        }
        if !r.message.is_empty() {
            out.push_str(": ");
            out.push_str(&escape_html(&r.message));
        }
        if let Some(loc) = r.location() {
            out.push_str("\n<i>at</i> ");
            out.push_str(&escape_html(&loc));
        }
        for (name, value) in r.fields.iter().filter(|(n, _)| *n != "error") {
            out.push_str("\n<i>");
            out.push_str(&escape_html(name));
            out.push_str("</i>: ");
            out.push_str(&escape_html(&value.to_string()));
        }
        if !r.spans.is_empty() {
            out.push_str("\n<i>in</i> ");
            out.push_str(&escape_html(&spans_text(&r.spans)));
        }
        if let Some(err) = r.fields.get("error") {
            out.push_str("\n<pre>");
            out.push_str(&escape_html(&err.to_string()));
            out.push_str("</pre>");
        }
        if r.suppressed > 0 {
            let _ = write!(out, "\n<i>({} similar suppressed)</i>", r.suppressed);
        }
        out
    }
}

fn spans_text(spans: &[std::sync::Arc<SpanRecord>]) -> String {
    let mut s = String::new();
    for (i, span) in spans.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&span.name);
        if !span.fields.is_empty() {
            s.push('{');
            for (k, (name, v)) in span.fields.iter().enumerate() {
                if k > 0 {
                    s.push(' ');
                }
                let _ = write!(s, "{name}={v}");
            }
            s.push('}');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_closes_tags_and_keeps_entities() {
        let html = format!("<b>ERROR</b> x\n<pre>{}</pre>", "&amp;".repeat(100));
        for limit in 20..120 {
            let t = truncate_html(&html, limit, "…");
            assert!(utf16_len(&t) <= limit, "{limit}: {t}");
            assert!(t.contains('…'));
            assert_eq!(t.matches("<pre>").count(), t.matches("</pre>").count(), "{t}");
            assert!(!t.contains("&amp…") && !t.contains("&…"), "{t}");
            let no_ent = t.replace("&amp;", "");
            assert!(!no_ent.contains('&'), "{t}");
        }
        assert_eq!(truncate_html("short", 10, "…"), "short");
    }

    #[test]
    fn empty_tag_is_taken_back() {
        let t = truncate_html("abc <pre>defghijkl</pre>", 16, "~");
        assert_eq!(t, "abc ~");
    }

    #[test]
    fn split_reopens_tags() {
        let html = format!("<b>ERROR</b> in <b>app</b>\n<pre>{}</pre>", "line &lt;x&gt;\n".repeat(50));
        let parts = split_html(&html, 100);
        assert!(parts.len() > 5);
        for p in &parts {
            assert!(utf16_len(p) <= 100, "{p}");
            assert_eq!(p.matches("<pre>").count(), p.matches("</pre>").count(), "{p}");
        }
        let joined: String = parts.iter().map(|p| plain_text(p)).collect();
        assert_eq!(joined, plain_text(&html));
    }

    #[test]
    fn plain() {
        assert_eq!(plain_text("<b>a</b> &lt;b&gt; &amp;amp; &#39;&#x41;"), "a <b> &amp; 'A");
    }
}
