//! The default Block Kit message, and the escaping and truncation it relies on.

use serde_json::{json, Value as Json};
use std::fmt::Write as _;

use watchbell_core::text::{escape_slack, single_line, truncate_chars, truncate_utf16, utf16_len};
use watchbell_core::{Level, Origin, Record};

/// Slack's limit for a section block's text (counted here in UTF-16 units, which is never less
/// than Slack's count in characters, so the text fits either way).
pub const SECTION_TEXT_LIMIT: usize = 3_000;
/// Slack's limit for the top-level `text`.
pub const TEXT_LIMIT: usize = 40_000;
/// Slack's limit of blocks per message (counted over the message and its attachments).
pub const BLOCK_LIMIT: usize = 50;
/// The most characters of block text watchbell puts into one message (its own choice, to keep a
/// coalesced message readable and its payload small); more records go into a next message.
pub const MESSAGE_TEXT_BUDGET: usize = 40_000;
/// The length the fallback `text` is cut to (a notification preview; Slack allows 40,000).
pub const FALLBACK_LIMIT: usize = 3_000;
/// The marker ending truncated text.
pub const MARKER: &str = watchbell_core::text::MARKER;

/// Field names shown in the code block (error chain and backtrace) instead of the table.
pub const ERROR_FIELDS: [&str; 3] = ["error", "error.sources", "backtrace"];

/// What a renderer knows about the destination besides the records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderContext {
    /// The application name (`app` of the builder).
    pub app: String,
    /// The environment or host label, if one was set.
    pub environment: Option<String>,
    /// The webhook's name (in stats and here).
    pub webhook: String,
    /// The link to each record's ticket, when the layer has one
    /// ([`SlackBuilder::ticket_link`](crate::SlackBuilder::ticket_link)).
    pub ticket_link: Option<watchbell_core::TicketLink>,
}

/// The emoji and attachment colour of a level.
pub fn level_style(level: Level) -> (&'static str, &'static str) {
    match level {
        Level::ERROR => (":red_circle:", "#E01E5A"),
        Level::WARN => (":warning:", "#ECB22E"),
        Level::INFO => (":large_blue_circle:", "#36C5F0"),
        Level::DEBUG => (":white_circle:", "#9E9EA6"),
        _ => (":white_circle:", "#D7D7DB"),
    }
}

/// Escapes `&`, `<` and `>` for Slack mrkdwn and cuts the result to at most `max` UTF-16 units,
/// the marker included, never inside a character or an entity.
pub fn escape_truncate(s: &str, max: usize) -> String {
    let escaped = escape_slack(s);
    if utf16_len(&escaped) <= max {
        return escaped.into_owned();
    }
    let marker_len = utf16_len(MARKER);
    if marker_len > max {
        return String::new();
    }
    let cut = truncate_utf16(&escaped, max - marker_len, "");
    // Every `&` of escaped text starts an entity: one with no `;` after it was cut, drop it.
    let keep = match cut.rfind('&') {
        Some(amp) if !cut[amp..].contains(';') => amp,
        _ => cut.len(),
    };
    format!("{}{MARKER}", &cut[..keep])
}

/// Raw log text in a code block: `&<>` escaped, every run of backticks broken with zero-width
/// spaces between them (so no three in a row can close the block, however long the run), cut
/// to fit `max` UTF-16 units with the fences.
pub fn code_block(s: &str, max: usize) -> String {
    let mut broken = String::with_capacity(s.len());
    let mut after_tick = false;
    for c in s.chars() {
        if c == '`' && after_tick {
            broken.push('\u{200b}');
        }
        after_tick = c == '`';
        broken.push(c);
    }
    let s = broken.trim_end_matches('\n');
    format!("```\n{}\n```", escape_truncate(s, max.saturating_sub(8)))
}

/// The `*ERROR* in app: message` line (escaped, not truncated).
fn headline(r: &Record, ctx: &RenderContext) -> String {
    let env = ctx.environment.as_deref().map(|e| format!(" ({})", escape_truncate(e, 200))).unwrap_or_default();
    format!("*{}* in {}{}: ", r.level, escape_truncate(&ctx.app, 200), env)
}

/// The fallback `text` of a message holding `records` (at least one).
pub fn fallback_text(records: &[Record], ctx: &RenderContext) -> String {
    let first = records.iter().min_by_key(|r| r.level).unwrap_or(&records[0]);
    let mut head = headline(first, ctx);
    if records.len() > 1 {
        head = format!("[{} records] {head}", records.len());
    }
    let room = FALLBACK_LIMIT.saturating_sub(utf16_len(&head));
    head + &escape_truncate(&single_line(&first.message), room)
}

/// The attachment (colour bar and blocks) of one record.
pub fn record_attachment(r: &Record, ctx: &RenderContext) -> Json {
    let (emoji, color) = level_style(r.level);
    let mut blocks = Vec::new();
    let head = format!("{emoji} {}", headline(r, ctx));
    let room = SECTION_TEXT_LIMIT.saturating_sub(utf16_len(&head));
    blocks.push(section(head + &escape_truncate(&r.message, room)));

    // The fields table: event fields, then span fields as `span.field`.
    let mut rows: Vec<(String, String)> = Vec::new();
    for (k, v) in r.fields.iter() {
        if !ERROR_FIELDS.contains(&k) {
            rows.push((k.to_owned(), v.to_string()));
        }
    }
    for span in &r.spans {
        for (k, v) in span.fields.iter() {
            rows.push((format!("{}.{k}", span.name), v.to_string()));
        }
    }
    if !rows.is_empty() {
        let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0).min(24);
        let mut table = String::new();
        for (k, v) in &rows {
            let v = single_line(v);
            let _ = writeln!(table, "{k:<width$}  {}", truncate_chars(&v, 300, MARKER));
        }
        blocks.push(section(code_block(&table, SECTION_TEXT_LIMIT)));
    }

    // The error chain and backtrace.
    let mut err = String::new();
    for name in ERROR_FIELDS {
        if let Some(v) = r.fields.get(name) {
            let text = v.to_string();
            if name == "backtrace" || text.contains('\n') {
                err.push_str(&format!("{name}:\n{text}\n"));
            } else {
                err.push_str(&format!("{name}: {text}\n"));
            }
        }
    }
    if !err.is_empty() {
        blocks.push(section(code_block(&err, SECTION_TEXT_LIMIT)));
    }

    // Context: target, file:line, time, suppressed count.
    let mut ctx_parts = vec![format!("`{}`", escape_truncate(&r.target, 500))];
    if let Some(loc) = r.location() {
        ctx_parts.push(format!("`{}`", escape_truncate(&loc, 500)));
    }
    let secs = r.time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let rfc = watchbell_core::time::rfc3339(r.time);
    ctx_parts.push(format!("<!date^{secs}^{{date_short_pretty}} {{time_secs}}|{rfc}>"));
    if r.suppressed > 0 {
        // A rate limiter's summary (at flush) is the last suppressed record itself.
        let summary = if r.origin == Origin::Watchbell { ", the last one shown" } else { "" };
        let from = match r.fields.get(watchbell_core::ratelimit::INSTANCES_FIELD).and_then(|v| v.as_u64()) {
            Some(m) if m >= 2 => format!(" from {m} instances"),
            _ => String::new(),
        };
        ctx_parts.push(format!(":mute: {} similar suppressed{from}{summary}", r.suppressed));
    }
    if let Some(url) = ctx.ticket_link.as_ref().and_then(|l| l.ticket_url(r)) {
        // A URL holds no `<`, `>` or `|` (percent-encoded); `&` is escaped as Slack wants it.
        ctx_parts.push(format!(":ticket: <{}|Open the ticket>", escape_slack(&url)));
    }
    let context_text = ctx_parts.join(" · ");
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context_text}]}));
    json!({"color": color, "blocks": blocks})
}

fn section(text: String) -> Json {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

/// The number of blocks and characters of block text of an attachment.
pub fn attachment_size(a: &Json) -> (usize, usize) {
    let blocks = a["blocks"].as_array().map_or(&[][..], Vec::as_slice);
    let chars = blocks
        .iter()
        .map(|b| {
            b["text"]["text"].as_str().map_or(0, str::len)
                + b["elements"].as_array().map_or(0, |e| e.iter().map(|e| e["text"].as_str().map_or(0, str::len)).sum())
        })
        .sum();
    (blocks.len(), chars)
}

/// The default rendering of `records` as Slack messages: one attachment per record (its colour
/// bar shows the level), as many records per message as fit in [`BLOCK_LIMIT`] blocks and
/// [`MESSAGE_TEXT_BUDGET`] characters. Returns each message body with how many records it holds.
pub fn render_default(records: &[Record], ctx: &RenderContext) -> Vec<(Json, usize)> {
    render_messages(records, ctx, usize::MAX)
}

/// The first message of [`render_default`] and how many records it holds (`None` without
/// records), rendering no record beyond the one that does not fit.
pub(crate) fn render_first(records: &[Record], ctx: &RenderContext) -> Option<(Json, usize)> {
    render_messages(records, ctx, 1).pop()
}

/// The first `max` messages of [`render_default`].
fn render_messages(records: &[Record], ctx: &RenderContext, max: usize) -> Vec<(Json, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut atts: Vec<Json> = Vec::new();
    let (mut blocks, mut chars) = (0, 0);
    for (i, r) in records.iter().enumerate() {
        let a = record_attachment(r, ctx);
        let (b, c) = attachment_size(&a);
        if !atts.is_empty() && (blocks + b > BLOCK_LIMIT || chars + c > MESSAGE_TEXT_BUDGET) {
            let text = fallback_text(&records[start..i], ctx);
            out.push((json!({"text": text, "attachments": std::mem::take(&mut atts)}), i - start));
            if out.len() == max {
                return out;
            }
            start = i;
            blocks = 0;
            chars = 0;
        }
        blocks += b;
        chars += c;
        atts.push(a);
    }
    if !atts.is_empty() {
        let text = fallback_text(&records[start..], ctx);
        out.push((json!({"text": text, "attachments": atts}), records.len() - start));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_and_cut() {
        assert_eq!(escape_truncate("<!channel> & x", 100), "&lt;!channel&gt; &amp; x");
        let s = escape_truncate(&"<".repeat(100), 30);
        assert!(s.ends_with(MARKER) && utf16_len(&s) <= 30, "{s}");
        assert!(s.trim_end_matches(MARKER).split("&lt;").all(str::is_empty), "{s}");
        let s = escape_truncate(&"👍日".repeat(5000), 3000);
        assert!(utf16_len(&s) <= 3000 && s.ends_with(MARKER));
        let c = code_block("a```b", 100);
        assert!(!c[3..c.len() - 3].contains("```"), "{c}");
    }
}
