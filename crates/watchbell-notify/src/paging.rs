//! Pushover and Opsgenie: what they are sent, within their documented limits.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value as Json};
use watchbell_core::format::FormatContext;
use watchbell_core::http::HttpResponse;
use watchbell_core::text::{single_line, truncate_chars, MARKER};
use watchbell_core::{Level, Record};

use crate::service::{dedup_key, heading, location, message, own_key};

/// Pushover: the longest message (characters).
pub const PUSHOVER_MAX_MESSAGE: usize = 1024;
/// Pushover: the longest title (characters).
pub const PUSHOVER_MAX_TITLE: usize = 250;
/// Pushover: the longest supplementary URL (characters).
pub const PUSHOVER_MAX_URL: usize = 512;
/// Pushover: the shortest `retry` of an emergency notification (seconds).
pub const PUSHOVER_MIN_RETRY: u32 = 30;
/// Pushover: the longest `expire` of an emergency notification (seconds).
pub const PUSHOVER_MAX_EXPIRE: u32 = 10_800;

/// Opsgenie: the longest alert `message` (characters).
pub const OPSGENIE_MAX_MESSAGE: usize = 130;
/// Opsgenie: the longest `alias` (characters).
pub const OPSGENIE_MAX_ALIAS: usize = 512;
/// Opsgenie: the longest `description` (characters).
pub const OPSGENIE_MAX_DESCRIPTION: usize = 15_000;
/// Opsgenie: the longest `entity` (characters).
pub const OPSGENIE_MAX_ENTITY: usize = 512;
/// Opsgenie: the longest `source` (characters).
pub const OPSGENIE_MAX_SOURCE: usize = 100;
/// Opsgenie: the most characters of all `details` keys and values together.
pub const OPSGENIE_MAX_DETAILS: usize = 8_000;

/// The record as plain text: message, then `key = value` lines, then the location.
pub(crate) fn plain_text(r: &Record) -> String {
    let mut text = message(r);
    for (k, v) in r.fields.iter() {
        text.push_str(&format!("\n{k} = {v}"));
    }
    if let Some(loc) = location(r) {
        text.push_str(&format!("\nat {loc}"));
    }
    text
}

/// The one-line summary of `r`, never empty (a blank message is summarised by its level and
/// target), cut to `max` characters.
pub(crate) fn summary(r: &Record, max: usize) -> String {
    let line = single_line(&message(r)).into_owned();
    let line = if line.is_empty() { single_line(&format!("{} {}", r.level, r.target)).into_owned() } else { line };
    truncate_chars(&line, max, MARKER).into_owned()
}

/// Pushover's emergency settings: how often (`retry`, at least 30 s) and how long (`expire`, at
/// most 3 h) Pushover repeats an ERROR until someone acknowledges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Emergency {
    /// Seconds between repeats (raised to 30).
    pub retry: u32,
    /// Seconds the repeats go on (lowered to 10,800).
    pub expire: u32,
}

/// The Pushover message of `r` as form fields: `token`, `user`, `message` (plain text, at most
/// 1,024 chars, never empty), `title` (`[app] LEVEL target`, one line, at most 250 chars),
/// `priority` by level (ERROR 1 — or 2 with [`Emergency`] settings, adding `retry` and
/// `expire` — WARN 0, INFO −1, below −2), `timestamp`, and `url` when a click URL is set.
///
/// ```
/// use watchbell_core::{format::FormatContext, Level, Record};
/// let r = Record::new(Level::ERROR, "app::pay", "payment failed");
/// let form = watchbell_notify::pushover_form(&r, &FormatContext::new("shop"), "tok", "usr", None, None);
/// assert!(form.contains(&("priority", "1".to_owned())));
/// assert!(form.contains(&("title", "[shop] ERROR app::pay".to_owned())));
/// ```
pub fn pushover_form(
    r: &Record,
    cx: &FormatContext,
    token: &str,
    user: &str,
    emergency: Option<Emergency>,
    click: Option<&str>,
) -> Vec<(&'static str, String)> {
    let priority = match r.level {
        Level::ERROR if emergency.is_some() => 2,
        Level::ERROR => 1,
        Level::WARN => 0,
        Level::INFO => -1,
        _ => -2,
    };
    let text = plain_text(r);
    let text = if text.trim().is_empty() { format!("{} {}", r.level, r.target) } else { text };
    let mut form = vec![
        ("token", token.to_owned()),
        ("user", user.to_owned()),
        ("title", truncate_chars(&single_line(&heading(r, cx)), PUSHOVER_MAX_TITLE, MARKER).into_owned()),
        ("message", truncate_chars(&text, PUSHOVER_MAX_MESSAGE, MARKER).into_owned()),
        ("priority", priority.to_string()),
    ];
    if let Ok(t) = r.time.duration_since(UNIX_EPOCH) {
        form.push(("timestamp", t.as_secs().to_string()));
    }
    if let (2, Some(e)) = (priority, emergency) {
        form.push(("retry", e.retry.max(PUSHOVER_MIN_RETRY).to_string()));
        form.push(("expire", e.expire.min(PUSHOVER_MAX_EXPIRE).to_string()));
    }
    if let Some(url) = click.filter(|u| u.chars().count() <= PUSHOVER_MAX_URL) {
        form.push(("url", url.to_owned()));
    }
    form
}

/// The delay a Pushover 429 asks for: until `X-Limit-App-Reset` (a Unix time: the app's
/// monthly quota is spent), else `Retry-After`.
pub(crate) fn pushover_retry_after(resp: &HttpResponse) -> Option<Duration> {
    resp.header("x-limit-app-reset")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|reset| {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            Duration::from_secs(reset.saturating_sub(now))
        })
        .or_else(|| resp.retry_after())
}

/// The Opsgenie alert of `r` (`POST /v2/alerts`): `message` (one line, at most 130 chars),
/// `alias` = the callsite fingerprint (so a storm of one error is one alert, its count rising),
/// `description` (the whole record as text, at most 15,000 chars), `details` (the fields as
/// strings, at most 8,000 chars in all), `entity` (the target), `source` (host or app),
/// `priority` by level (ERROR P2, WARN P3, INFO P4, below P5), `tags`.
///
/// ```
/// use watchbell_core::{format::FormatContext, Level, Record};
/// let r = Record::new(Level::WARN, "app::db", "slow query");
/// let j = watchbell_notify::opsgenie_body(&r, &FormatContext::new("shop"));
/// assert_eq!(j["priority"], "P3");
/// assert_eq!(j["alias"], r.fingerprint.to_hex());
/// ```
pub fn opsgenie_body(r: &Record, cx: &FormatContext) -> Json {
    let priority = match r.level {
        Level::ERROR => "P2",
        Level::WARN => "P3",
        Level::INFO => "P4",
        _ => "P5",
    };
    let mut details = Map::new();
    let mut used = 0;
    for (k, v) in r.fields.iter() {
        let key = truncate_chars(k, 100, MARKER).into_owned();
        let value = truncate_chars(&v.to_string(), 1_000, MARKER).into_owned();
        let n = key.chars().count() + value.chars().count();
        if used + n > OPSGENIE_MAX_DETAILS - 200 {
            break;
        }
        used += n;
        details.insert(key, json!(value));
    }
    if let Some(loc) = location(r) {
        details.insert(own_key(&details, "location"), json!(truncate_chars(&loc, 150, MARKER)));
    }
    if r.suppressed > 0 {
        details.insert(own_key(&details, "suppressed"), json!(r.suppressed.to_string()));
    }
    let source = cx.host.clone().or_else(|| cx.app.clone()).unwrap_or_else(|| "watchbell".into());
    let mut tags = vec![json!("watchbell"), json!(r.level.as_str().to_ascii_lowercase())];
    if let Some(app) = &cx.app {
        tags.push(json!(truncate_chars(&single_line(app), 50, "")));
    }
    json!({
        "message": summary(r, OPSGENIE_MAX_MESSAGE),
        "alias": truncate_chars(&dedup_key(r), OPSGENIE_MAX_ALIAS, ""),
        "description": truncate_chars(&plain_text(r), OPSGENIE_MAX_DESCRIPTION, MARKER),
        "details": details,
        "entity": truncate_chars(&r.target, OPSGENIE_MAX_ENTITY, MARKER),
        "source": truncate_chars(&single_line(&source), OPSGENIE_MAX_SOURCE, MARKER),
        "priority": priority,
        "tags": tags,
    })
}

/// Percent-encodes a path segment (everything but unreserved characters).
pub(crate) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
