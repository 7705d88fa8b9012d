//! Escaping and truncation helpers shared by the sinks.
//!
//! Every provider limits the size of a message and counts it its own way: bytes (SMS gateways,
//! syslog, HTTP collectors), Unicode scalar values (Slack), or UTF-16 code units (Telegram).
//! The `truncate_*` functions cut at character boundaries, never inside a multi-byte character
//! or a surrogate pair, and end the result with a visible marker ([`MARKER`] by default) that is
//! counted within the limit. The `escape_*` functions make text safe for a medium's markup, and
//! [`single_line`] makes it safe for a mail header or a one-line format.
//!
//! Every function returns the input unchanged ([`Cow::Borrowed`]) when there is nothing to do.
//!
//! ```
//! use watchbell_core::text::{escape_slack, truncate_bytes, MARKER};
//! assert_eq!(escape_slack("<!channel> a & b"), "&lt;!channel&gt; a &amp; b");
//! assert_eq!(truncate_bytes("héllo wörld", 12, "…"), "héllo w…");
//! assert_eq!(truncate_bytes("short", 100, MARKER), "short");
//! ```

use std::borrow::Cow;

/// The default visible marker appended to truncated text.
pub const MARKER: &str = "…[truncated]";

/// The largest char boundary of `s` that is `<= i`.
fn floor_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    let mut i = i;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The byte index just past the first `n` chars of `s`, or `None` if `s` has `n` chars or fewer
/// (so that `s` fits within `n`).
fn chars_prefix(s: &str, n: usize) -> Option<usize> {
    s.char_indices().nth(n).map(|(i, _)| i)
}

/// The byte index just past the longest prefix of `s` that is at most `units` UTF-16 code units.
fn utf16_prefix(s: &str, units: usize) -> usize {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        let w = c.len_utf16();
        if used + w > units {
            return i;
        }
        used += w;
    }
    s.len()
}

/// Joins the kept prefix and the marker.
fn join(kept: &str, marker: &str) -> Cow<'static, str> {
    let mut out = String::with_capacity(kept.len() + marker.len());
    out.push_str(kept);
    out.push_str(marker);
    Cow::Owned(out)
}

/// Truncates `s` to at most `max_bytes` bytes of UTF-8, the `marker` included.
///
/// Text that fits is returned unchanged. Otherwise the text is cut at a char boundary so that
/// the kept text plus the marker fit; if the marker alone does not fit, the result is the
/// marker, cut at a char boundary to `max_bytes`.
///
/// ```
/// use watchbell_core::text::truncate_bytes;
/// assert_eq!(truncate_bytes("日本語", 7, "~"), "日本~");
/// assert_eq!(truncate_bytes("日本語", 9, "~"), "日本語");
/// assert_eq!(truncate_bytes("abcdef", 2, "[cut]"), "[c");
/// ```
pub fn truncate_bytes<'a>(s: &'a str, max_bytes: usize, marker: &str) -> Cow<'a, str> {
    if s.len() <= max_bytes {
        return Cow::Borrowed(s);
    }
    if marker.len() >= max_bytes {
        return Cow::Owned(marker[..floor_boundary(marker, max_bytes)].to_owned());
    }
    let keep = floor_boundary(s, max_bytes - marker.len());
    join(&s[..keep], marker)
}

/// Truncates `s` to at most `max_chars` Unicode scalar values, the `marker` included.
///
/// Same rules as [`truncate_bytes`], counted in `char`s (Slack's and most chat APIs' unit).
///
/// ```
/// use watchbell_core::text::truncate_chars;
/// assert_eq!(truncate_chars("héllo wörld", 6, "…"), "héllo…");
/// assert_eq!(truncate_chars("héllo", 5, "…"), "héllo");
/// ```
pub fn truncate_chars<'a>(s: &'a str, max_chars: usize, marker: &str) -> Cow<'a, str> {
    if chars_prefix(s, max_chars).is_none() {
        return Cow::Borrowed(s);
    }
    let marker_chars = marker.chars().count();
    if marker_chars >= max_chars {
        let end = chars_prefix(marker, max_chars).unwrap_or(marker.len());
        return Cow::Owned(marker[..end].to_owned());
    }
    let keep = chars_prefix(s, max_chars - marker_chars).unwrap_or(s.len());
    join(&s[..keep], marker)
}

/// The length of `s` in UTF-16 code units (how Telegram and JavaScript count): one unit per
/// char of the Basic Multilingual Plane, two for the others (most emoji).
///
/// ```
/// use watchbell_core::text::utf16_len;
/// assert_eq!(utf16_len("a👍"), 3);
/// ```
pub fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Truncates `s` to at most `max_units` UTF-16 code units, the `marker` included.
///
/// Same rules as [`truncate_bytes`], counted in UTF-16 code units; a char needing a surrogate
/// pair is kept whole or dropped whole.
///
/// ```
/// use watchbell_core::text::truncate_utf16;
/// assert_eq!(truncate_utf16("👍👍👍", 5, "…"), "👍👍…");
/// assert_eq!(truncate_utf16("👍👍👍", 4, "…"), "👍…");
/// ```
pub fn truncate_utf16<'a>(s: &'a str, max_units: usize, marker: &str) -> Cow<'a, str> {
    // UTF-16 units never exceed UTF-8 bytes: a string of at most `max_units` bytes fits.
    if s.len() <= max_units || utf16_len(s) <= max_units {
        return Cow::Borrowed(s);
    }
    let marker_units = utf16_len(marker);
    if marker_units >= max_units {
        return Cow::Owned(marker[..utf16_prefix(marker, max_units)].to_owned());
    }
    let keep = utf16_prefix(s, max_units - marker_units);
    join(&s[..keep], marker)
}

/// Replaces each char for which `map` returns a replacement; `Borrowed` when none does.
fn escape_with(s: &str, map: impl Fn(char) -> Option<&'static str>) -> Cow<'_, str> {
    let first = match s.char_indices().find(|&(_, c)| map(c).is_some()) {
        Some((i, _)) => i,
        None => return Cow::Borrowed(s),
    };
    let mut out = String::with_capacity(s.len() + s.len() / 8 + 8);
    out.push_str(&s[..first]);
    for c in s[first..].chars() {
        match map(c) {
            Some(r) => out.push_str(r),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Escapes text for Slack `mrkdwn`: `&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;`.
///
/// These are the three characters Slack gives a meaning to in message text; with them escaped,
/// `<!channel>` or `<@U123>` in a log message pings nobody and `<http://x|y>` makes no link.
pub fn escape_slack(s: &str) -> Cow<'_, str> {
    escape_with(s, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        _ => None,
    })
}

/// Escapes text for HTML (and Telegram's HTML parse mode): `&`, `<`, `>`, `"` (→ `&quot;`)
/// and `'` (→ `&#39;`), so the result is safe in element content and in quoted attributes.
pub fn escape_html(s: &str) -> Cow<'_, str> {
    escape_with(s, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '"' => Some("&quot;"),
        '\'' => Some("&#39;"),
        _ => None,
    })
}

/// Chars that [`single_line`] replaces: control chars (C0 including CR, LF and tab, DEL, C1
/// including NEL U+0085) and the Unicode line and paragraph separators.
fn breaks_line(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// Makes text safe for a mail header or a one-line format.
///
/// Every control char (CR, LF, tab, NEL U+0085 and the rest of C0 and C1) and the line and
/// paragraph separators U+2028 and U+2029 are replaced by a space; a run of whitespace that
/// contains such a replacement becomes a single space (other runs of spaces are kept); the
/// result is trimmed. No CR or LF survives, so `"subject\r\nBcc: x"` cannot inject a header.
///
/// ```
/// use watchbell_core::text::single_line;
/// assert_eq!(single_line("disk full\r\n  on db-1\n"), "disk full on db-1");
/// assert_eq!(single_line("a  b"), "a  b");
/// ```
pub fn single_line(s: &str) -> Cow<'_, str> {
    if !s.chars().any(breaks_line) {
        return Cow::Borrowed(s.trim());
    }
    let mut out = String::with_capacity(s.len());
    // A pending run of whitespace: its text, and whether it held a replaced char.
    let mut run = String::new();
    let mut run_broken = false;
    for c in s.chars() {
        let broken = breaks_line(c);
        if broken || c.is_whitespace() {
            run_broken |= broken;
            if !broken {
                run.push(c);
            }
            continue;
        }
        if run_broken || !run.is_empty() {
            if !out.is_empty() {
                if run_broken {
                    out.push(' ');
                } else {
                    out.push_str(&run);
                }
            }
            run.clear();
            run_broken = false;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// Splits `s` into pieces of at most `max_bytes` bytes each, at char boundaries.
///
/// A piece ends after the last newline of its window when that newline lies in the second
/// half of the window (so a long message splits between lines where it can), and at the limit
/// otherwise. The newline stays at the end of its piece: concatenating the pieces gives `s`
/// back. An empty `s` gives no piece. A char longer than `max_bytes` (for example a 4-byte
/// emoji with `max_bytes` 3) is never split: it becomes a piece of its own, over the limit.
///
/// ```
/// use watchbell_core::text::split_chunks;
/// assert_eq!(split_chunks("line one\nline two\nend", 12), ["line one\n", "line two\nend"]);
/// assert_eq!(split_chunks("abcdef", 4), ["abcd", "ef"]);
/// ```
pub fn split_chunks(s: &str, max_bytes: usize) -> Vec<&str> {
    let mut out = Vec::with_capacity(s.len() / max_bytes.max(1) + 1);
    let mut rest = s;
    while !rest.is_empty() {
        if rest.len() <= max_bytes {
            out.push(rest);
            break;
        }
        let mut end = floor_boundary(rest, max_bytes);
        if end == 0 {
            // Not even one char fits: take the first char whole.
            end = rest.chars().next().map_or(rest.len(), char::len_utf8);
        } else if let Some(nl) = rest.as_bytes()[..end].iter().rposition(|&b| b == b'\n') {
            if nl >= end / 2 {
                end = nl + 1;
            }
        }
        let (piece, tail) = rest.split_at(end);
        out.push(piece);
        rest = tail;
    }
    out
}

/// `application/x-www-form-urlencoded` text of `pairs` (the WHATWG form serializer: ASCII
/// letters, digits and `*-._` stay, space becomes `+`, every other byte of the UTF-8 text is
/// `%XX`).
///
/// ```
/// use watchbell_core::text::form_urlencode;
/// assert_eq!(form_urlencode(&[("To", "+1 555"), ("Body", "é&=")]), "To=%2B1+555&Body=%C3%A9%26%3D");
/// ```
pub fn form_urlencode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    fn escape(out: &mut String, s: &str) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(char::from(b)),
                b' ' => out.push('+'),
                _ => {
                    out.push('%');
                    out.push(char::from(HEX[usize::from(b >> 4)]));
                    out.push(char::from(HEX[usize::from(b & 15)]));
                }
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        escape(&mut out, k.as_ref());
        out.push('=');
        escape(&mut out, v.as_ref());
    }
    out
}

/// `s` with every control character (C0 including CR, LF, tab and NUL; DEL; C1) written in
/// Rust's escape notation (`\n`, `\0`, `\u{1b}`): for text from outside — a peer's error body,
/// a server's reason — that is printed on one line (stderr, `Stats::last_error`), so that it can
/// neither forge lines nor send terminal escape sequences. Text without control characters is
/// returned as it is.
///
/// ```
/// use watchbell_core::text::escape_controls;
/// assert_eq!(escape_controls("bad\r\nX-Injected: 1\u{1b}[2J"), "bad\\r\\nX-Injected: 1\\u{1b}[2J");
/// assert_eq!(escape_controls("plain"), "plain");
/// ```
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::ptr_arg)] // it is the variant that is checked
    fn is_borrowed(c: &Cow<'_, str>) -> bool {
        matches!(c, Cow::Borrowed(_))
    }

    #[test]
    fn truncate_bytes_fits_and_exact() {
        let r = truncate_bytes("hello", 5, MARKER);
        assert_eq!(r, "hello");
        assert!(is_borrowed(&r));
        assert!(is_borrowed(&truncate_bytes("", 0, MARKER)));
        // One byte over: cut, marker included in the limit.
        let r = truncate_bytes("hello world", 10, "..");
        assert_eq!(r, "hello wo..");
        assert_eq!(r.len(), 10);
    }

    #[test]
    fn truncate_bytes_multibyte() {
        // é is 2 bytes, 日 and 本 are 3 bytes, 👍 is 4 bytes.
        assert_eq!(truncate_bytes("éééé", 7, "."), "ééé.");
        assert_eq!(truncate_bytes("éééé", 6, "."), "éé.");
        assert_eq!(truncate_bytes("日本日本", 8, "~"), "日本~");
        assert_eq!(truncate_bytes("日本日本", 6, "~"), "日~");
        assert_eq!(truncate_bytes("👍👍", 7, "~"), "👍~");
        assert_eq!(truncate_bytes("👍👍", 4, "~"), "~");
        for max in 0..40 {
            for s in ["héllo wörld", "日本語のテキスト", "👍a👍b👍c", "plain ascii text"] {
                let r = truncate_bytes(s, max, MARKER);
                assert!(r.len() <= max || r == s, "{s:?} {max} {r:?}");
                if r != s {
                    assert!(MARKER.starts_with(&*r) || r.ends_with(MARKER), "{r:?}");
                }
            }
        }
    }

    #[test]
    fn marker_longer_than_limit() {
        assert_eq!(truncate_bytes("abcdefghijklmnop", 3, MARKER), "…"); // … is 3 bytes
        assert_eq!(truncate_bytes("abcdefghijklmnop", 5, MARKER), "…[t");
        assert_eq!(truncate_bytes("abcdefghijklmnop", 2, MARKER), "");
        assert_eq!(truncate_bytes("abcdef", 0, MARKER), "");
        assert_eq!(truncate_chars("abcdefghijklmnop", 3, MARKER), "…[t");
        assert_eq!(truncate_chars("abcdefghijklmnop", 0, MARKER), "");
        assert_eq!(truncate_utf16("abcdefghijklmnop", 2, "👍👍"), "👍");
        assert_eq!(truncate_utf16("abcdefghijklmnop", 3, "👍👍"), "👍");
        assert_eq!(truncate_utf16("abcdefghijklmnop", 1, "👍👍"), "");
        // Marker exactly the limit: the marker alone.
        assert_eq!(truncate_bytes("abcdefghijklmnop", MARKER.len(), MARKER), MARKER);
    }

    #[test]
    fn truncate_chars_cases() {
        let r = truncate_chars("日本語", 3, MARKER);
        assert!(is_borrowed(&r));
        assert_eq!(truncate_chars("日本語です", 4, "…"), "日本語…");
        assert_eq!(truncate_chars("👍👍👍👍", 3, "…"), "👍👍…");
        assert_eq!(truncate_chars("éé", 2, "…"), "éé");
        assert_eq!(truncate_chars("ééé", 2, "…"), "é…");
        assert_eq!(truncate_chars("ééé", 2, "").chars().count(), 2);
    }

    #[test]
    fn utf16_counting() {
        assert_eq!(utf16_len(""), 0);
        assert_eq!(utf16_len("é"), 1);
        assert_eq!(utf16_len("日本"), 2);
        assert_eq!(utf16_len("👍"), 2);
        assert_eq!(utf16_len("a👍é"), 4);
        assert!(is_borrowed(&truncate_utf16("👍👍", 4, "…")));
        // Never splits a surrogate pair: 3 units leave room for one 👍 and the marker.
        assert_eq!(truncate_utf16("👍👍", 3, "…"), "👍…");
        assert_eq!(truncate_utf16("👍👍", 2, "…"), "…");
        assert_eq!(truncate_utf16("a👍👍", 3, "…"), "a…");
        for max in 0..20 {
            let r = truncate_utf16("x👍y日本👍é👍", max, "…");
            assert!(utf16_len(&r) <= max, "{max} {r:?}");
        }
    }

    #[test]
    fn one_megabyte() {
        let s = "日本語👍é-".repeat((1 << 20) / 16);
        assert!(s.len() > 900_000);
        let r = truncate_bytes(&s, 4096, MARKER);
        assert!(r.len() <= 4096 && r.ends_with(MARKER));
        let r = truncate_chars(&s, 4096, MARKER);
        assert_eq!(r.chars().count(), 4096);
        let r = truncate_utf16(&s, 4096, MARKER);
        assert!(utf16_len(&r) <= 4096 && utf16_len(&r) >= 4095);
        assert!(is_borrowed(&truncate_bytes(&s, s.len(), MARKER)));
        let chunks = split_chunks(&s, 4096);
        assert!(chunks.iter().all(|c| c.len() <= 4096 && !c.is_empty()));
        assert_eq!(chunks.concat(), s);
        assert!(is_borrowed(&escape_html(&s)));
        assert!(is_borrowed(&single_line(&s)));
    }

    #[test]
    fn escapes() {
        assert_eq!(escape_slack("<!channel> & <@U1>"), "&lt;!channel&gt; &amp; &lt;@U1&gt;");
        assert_eq!(escape_slack("a \"b\" 'c'"), "a \"b\" 'c'");
        assert!(is_borrowed(&escape_slack("nothing to do: *bold* é")));
        assert_eq!(escape_slack("&amp;"), "&amp;amp;");
        assert_eq!(
            escape_html(r#"<a href="x">O'Neil & co</a>"#),
            "&lt;a href=&quot;x&quot;&gt;O&#39;Neil &amp; co&lt;/a&gt;"
        );
        assert!(is_borrowed(&escape_html("日本 👍 plain")));
        assert_eq!(escape_html("日<本>👍"), "日&lt;本&gt;👍");
        assert_eq!(escape_html(""), "");
    }

    #[test]
    fn single_line_cases() {
        assert_eq!(single_line("Subject\r\nBcc: evil@example.com"), "Subject Bcc: evil@example.com");
        assert_eq!(single_line("a\r\rb\n\nc"), "a b c");
        assert_eq!(single_line("a \r\n b"), "a b");
        assert_eq!(single_line("\r\n\tleading and trailing\r\n"), "leading and trailing");
        assert_eq!(single_line("tab\there"), "tab here");
        assert_eq!(single_line("nel\u{85}ls\u{2028}ps\u{2029}end"), "nel ls ps end");
        assert_eq!(single_line("bell\u{7}del\u{7f}c1\u{9b}x"), "bell del c1 x");
        assert_eq!(single_line("\r\n\r\n"), "");
        assert_eq!(single_line("keeps  double  spaces"), "keeps  double  spaces");
        assert_eq!(single_line("  trims  "), "trims");
        assert!(is_borrowed(&single_line("  trims  ")));
        assert_eq!(single_line("日本\n👍"), "日本 👍");
        for s in ["x\r\ny", "\r", "\n", "a\u{85}", "%0d%0a\r\n:\n\r"] {
            let r = single_line(s);
            assert!(!r.contains(['\r', '\n', '\u{85}', '\u{2028}', '\u{2029}']), "{r:?}");
        }
    }

    #[test]
    fn chunks() {
        assert!(split_chunks("", 10).is_empty());
        assert_eq!(split_chunks("abc", 10), ["abc"]);
        assert_eq!(split_chunks("abc", 3), ["abc"]);
        assert_eq!(split_chunks("abcdefg", 3), ["abc", "def", "g"]);
        // Newline in the first half of the window: not used.
        assert_eq!(split_chunks("a\nbcdefghij", 6), ["a\nbcde", "fghij"]);
        // Newline in the second half: the piece ends after it.
        assert_eq!(split_chunks("abcd\nefghij", 6), ["abcd\n", "efghij"]);
        assert_eq!(split_chunks("ab\ncd\nef\ngh", 7), ["ab\ncd\n", "ef\ngh"]);
        assert_eq!(split_chunks("日本語", 4), ["日", "本", "語"]);
        assert_eq!(split_chunks("日本語", 6), ["日本", "語"]);
        assert_eq!(split_chunks("👍👍", 3), ["👍", "👍"]);
        assert_eq!(split_chunks("ab", 0), ["a", "b"]);
        let s = "é".repeat(1001) + "\n" + &"x".repeat(10);
        let c = split_chunks(&s, 999);
        assert!(c.iter().all(|p| p.len() <= 999));
        assert_eq!(c.concat(), s);
    }
}
