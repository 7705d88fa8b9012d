//! What each service is sent, and how its answers are read.

use std::time::Duration;

use serde_json::{json, Map, Value as Json};
use watchbell_core::format::FormatContext;
use watchbell_core::http::{self, HttpResponse};
use watchbell_core::text::{single_line, truncate_bytes, truncate_chars, MARKER};
use watchbell_core::{Level, Outcome, Record};

/// ntfy: the longest message body sent (ntfy turns longer ones into attachments, or refuses
/// them where attachments are off).
pub const NTFY_MAX_MESSAGE: usize = 4_000;
/// ntfy: the longest title.
pub const NTFY_MAX_TITLE: usize = 250;
/// Discord: the limits of one embed (title, description, field name, field value, footer), the
/// most fields, and the most characters of all embeds of a message.
pub const DISCORD_LIMITS: (usize, usize, usize, usize, usize) = (256, 4096, 256, 1024, 2048);
/// Discord: the most fields of an embed.
pub const DISCORD_MAX_FIELDS: usize = 25;
/// Discord: the most characters across a message's embeds.
pub const DISCORD_MAX_TOTAL: usize = 6000;
/// PagerDuty: the longest `payload.summary`.
pub const PAGERDUTY_MAX_SUMMARY: usize = 1024;

/// The record's message, with the suppressed count.
pub(crate) fn message(r: &Record) -> String {
    if r.suppressed > 0 {
        format!("{} ({} similar suppressed)", r.message, r.suppressed)
    } else {
        r.message.to_string()
    }
}

pub(crate) fn location(r: &Record) -> Option<String> {
    r.file.as_ref().map(|f| match r.line {
        Some(l) => format!("{f}:{l}"),
        None => f.to_string(),
    })
}

pub(crate) fn heading(r: &Record, cx: &FormatContext) -> String {
    match &cx.app {
        Some(app) => format!("[{app}] {} {}", r.level, r.target),
        None => format!("{} {}", r.level, r.target),
    }
}

/// The ntfy publish (JSON form): `topic`, `title`, `message`, `priority` (5 for ERROR, 4 WARN,
/// 3 INFO, 2 below), `tags`, and `click` when set. Text is plain (ntfy renders no markup unless
/// asked), cut to [`NTFY_MAX_MESSAGE`] bytes and a one-line title of [`NTFY_MAX_TITLE`] chars.
///
/// ```
/// use watchbell_core::{format::FormatContext, Level, Record};
/// let r = Record::new(Level::ERROR, "app::pay", "payment failed");
/// let j = watchbell_notify::ntfy_body(&r, &FormatContext::new("shop"), "alerts", None);
/// assert_eq!(j["priority"], 5);
/// assert_eq!(j["title"], "[shop] ERROR app::pay");
/// ```
pub fn ntfy_body(r: &Record, cx: &FormatContext, topic: &str, click: Option<&str>) -> Json {
    let (priority, tag) = match r.level {
        Level::ERROR => (5, "rotating_light"),
        Level::WARN => (4, "warning"),
        Level::INFO => (3, "information_source"),
        _ => (2, "mag"),
    };
    let mut text = message(r);
    for (k, v) in r.fields.iter() {
        text.push_str(&format!("\n{k} = {v}"));
    }
    if let Some(loc) = location(r) {
        text.push_str(&format!("\nat {loc}"));
    }
    let mut body = json!({
        "topic": topic,
        "title": truncate_chars(&single_line(&heading(r, cx)), NTFY_MAX_TITLE, MARKER),
        "message": truncate_bytes(&text, NTFY_MAX_MESSAGE, MARKER),
        "priority": priority,
        "tags": [tag],
    });
    if let Some(c) = click {
        body["click"] = json!(c);
    }
    body
}

/// Escapes Discord markdown (`\`, `*`, `_`, `~`, `` ` ``, `|`, `>`, `#`, `-`, `[`, `]`) so that text is
/// shown as typed; mentions are disarmed by `allowed_mentions` as well.
///
/// ```
/// assert_eq!(watchbell_notify::escape_discord("**bold** @everyone"), "\\*\\*bold\\*\\* @\u{200b}everyone");
/// ```
pub fn escape_discord(s: &str) -> String {
    escape_markdown(s)
}

/// Escapes CommonMark (and its chat dialects: Discord, Mattermost, Rocket.Chat) with
/// backslashes, and breaks every `@` with a zero-width space so that `@everyone`, `@channel`,
/// `@all` and `@here` ping nobody.
///
/// ```
/// assert_eq!(watchbell_notify::escape_markdown("_x_ @channel"), "\\_x\\_ @\u{200b}channel");
/// ```
pub fn escape_markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '#' | '-' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            // A zero-width space after `@` keeps `@everyone`/`@here` from reading as mentions
            // even where `allowed_mentions` is ignored (a forwarded message).
            '@' => out.push_str("@\u{200b}"),
            _ => out.push(c),
        }
    }
    out
}

/// Cuts `s` to `max` chars with the marker, after escaping (so an escape is never split).
fn discord_text(s: &str, max: usize) -> String {
    truncate_escaped(&escape_discord(s), max)
}

/// Cuts markdown-escaped text to `max` chars with the marker without splitting an escape: a
/// cut that would keep the backslash of a pair and lose its char drops the backslash too (a
/// lone backslash would show, and the char it escaped would not).
pub(crate) fn truncate_escaped(escaped: &str, max: usize) -> String {
    let cut = truncate_chars(escaped, max, MARKER);
    // Borrowed: the text fits, as it is.
    let Some(kept) = cut.strip_suffix(MARKER).filter(|_| matches!(cut, std::borrow::Cow::Owned(_))) else {
        return cut.into_owned();
    };
    let backslashes = kept.len() - kept.trim_end_matches('\\').len();
    if backslashes % 2 == 1 {
        format!("{}{MARKER}", &kept[..kept.len() - 1])
    } else {
        cut.into_owned()
    }
}

/// The Discord webhook message: one embed (title, escaped description, up to 25 inline
/// fields, time, a footer with the location), within every limit of Discord's (one embed's
/// and 6,000 characters in all), mentions disabled.
pub fn discord_body(r: &Record, cx: &FormatContext) -> Json {
    let (tmax, dmax, nmax, vmax, fmax) = DISCORD_LIMITS;
    let color = match r.level {
        Level::ERROR => 0xD0_30_30,
        Level::WARN => 0xE0_A0_20,
        _ => 0x30_80_D0,
    };
    let title = truncate_chars(&single_line(&heading(r, cx)), tmax, MARKER).into_owned();
    // Budget: the title, the footer and the fields first, the description gets what is left.
    let mut used = title.chars().count();
    let footer = location(r).map(|l| discord_text(&l, fmax.min(200)));
    used += footer.as_ref().map_or(0, |f| f.chars().count());
    let mut fields = Vec::new();
    for (k, v) in r.fields.iter().take(DISCORD_MAX_FIELDS) {
        let name = discord_text(k, nmax.min(64));
        let value = discord_text(&v.to_string(), vmax.min(200));
        let value = if value.is_empty() { "\u{200b}".to_owned() } else { value };
        let n = name.chars().count() + value.chars().count();
        if used + n > DISCORD_MAX_TOTAL - 600 {
            break;
        }
        used += n;
        fields.push(
            json!({"name": if name.is_empty() { "\u{200b}".to_owned() } else { name }, "value": value, "inline": true}),
        );
    }
    let room = (DISCORD_MAX_TOTAL - used).min(dmax);
    let description = discord_text(&message(r), room);
    let mut embed = Map::new();
    embed.insert("title".into(), json!(title));
    embed.insert("description".into(), json!(description));
    embed.insert("color".into(), json!(color));
    embed.insert("timestamp".into(), json!(watchbell_core::time::rfc3339(r.time)));
    if !fields.is_empty() {
        embed.insert("fields".into(), Json::Array(fields));
    }
    if let Some(f) = footer {
        embed.insert("footer".into(), json!({ "text": f }));
    }
    let mut body = json!({"embeds": [Json::Object(embed)], "allowed_mentions": {"parse": []}});
    // Discord refuses an empty username: a name that is blank once on one line is left out.
    if let Some(app) = cx.app.as_deref().map(single_line).filter(|a| !a.is_empty()) {
        body["username"] = json!(truncate_chars(&app, 80, MARKER));
    }
    body
}

/// The PagerDuty Events API v2 `trigger` event of `r`: `dedup_key` = the callsite fingerprint
/// (so a storm of one error is one incident), `payload.summary` the one-line message (at most
/// 1,024 chars), `severity` by level (`error`, `warning`, `info`), `source` the host or app,
/// `component` the target, `group` the app, `custom_details` the fields and location.
pub fn pagerduty_body(r: &Record, cx: &FormatContext, routing_key: &str) -> Json {
    let severity = match r.level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        _ => "info",
    };
    let mut details = Map::new();
    for (k, v) in r.fields.iter() {
        details.insert(k.to_owned(), json!(truncate_chars(&v.to_string(), 4096, MARKER)));
    }
    if let Some(loc) = location(r) {
        details.insert(own_key(&details, "location"), json!(loc));
    }
    if r.suppressed > 0 {
        details.insert(own_key(&details, "suppressed"), json!(r.suppressed));
    }
    let source = cx.host.clone().or_else(|| cx.app.clone()).unwrap_or_else(|| "watchbell".into());
    // PagerDuty refuses an empty summary: a blank message is summarised by its level and target.
    let line = single_line(&message(r)).into_owned();
    let line = if line.is_empty() { single_line(&format!("{} {}", r.level, r.target)).into_owned() } else { line };
    let mut payload = json!({
        "summary": truncate_chars(&line, PAGERDUTY_MAX_SUMMARY, MARKER),
        "source": source,
        "severity": severity,
        "timestamp": watchbell_core::time::rfc3339(r.time),
        "component": r.target.to_string(),
        "custom_details": details,
    });
    if let Some(app) = &cx.app {
        payload["group"] = json!(app);
    }
    json!({
        "routing_key": routing_key,
        "event_action": if is_resolve(r) { "resolve" } else { "trigger" },
        "dedup_key": dedup_key(r),
        "payload": payload,
        "client": "watchbell",
    })
}

/// The key of one of the sink's own details: `name`, or `watchbell.name` when a field of the
/// record has that name (the field keeps its own).
pub(crate) fn own_key(details: &Map<String, Json>, name: &str) -> String {
    if details.contains_key(name) {
        format!("watchbell.{name}")
    } else {
        name.to_owned()
    }
}

/// The field that turns a record into a `resolve` event (see [`crate::resolve_record`]).
pub(crate) const RESOLVE_FIELD: &str = "alert.resolve";
/// The field that carries an explicit dedup key (see [`crate::resolve_record`]).
pub(crate) const DEDUP_FIELD: &str = "alert.dedup_key";

/// Whether `r` is a [`crate::resolve_record`].
pub(crate) fn is_resolve(r: &Record) -> bool {
    r.fields.get(RESOLVE_FIELD).is_some()
}

/// The incident key of `r`: its explicit key, else the callsite fingerprint in hex.
pub(crate) fn dedup_key(r: &Record) -> String {
    r.fields.get(DEDUP_FIELD).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| r.fingerprint.to_hex())
}

/// The delay a Discord 429 asks for: `retry_after` in the body (seconds, fractional), else
/// `Retry-After`.
pub(crate) fn discord_retry_after(resp: &HttpResponse) -> Option<Duration> {
    serde_json::from_slice::<Json>(&resp.body)
        .ok()
        .and_then(|j| j.get("retry_after").and_then(Json::as_f64))
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(watchbell_core::time::secs_f64)
        .or_else(|| resp.retry_after())
}

/// Maps a service's answer: the general rule (2xx delivered; 429, 408, 5xx retried with the
/// server's delay; other 4xx permanent), with Discord's `retry_after` read from its body.
///
/// `body` is the answer's text as it may be quoted (secrets already scrubbed: before the quote
/// is cut, so that no piece of a secret survives the cut).
pub(crate) fn outcome(resp: &HttpResponse, body: &str, what: &str, discord: bool) -> Outcome {
    let after = if discord && resp.status == 429 { discord_retry_after(resp) } else { resp.retry_after() };
    http::classify(resp.status, after, what, body)
}
