//! Chat services: Microsoft Teams (workflow webhooks, Adaptive Cards), Google Chat (cards), and
//! the Slack-compatible webhooks of Mattermost and Rocket.Chat.

use serde_json::{json, Value as Json};
use watchbell_core::format::FormatContext;
use watchbell_core::text::{escape_html, single_line, truncate_bytes, truncate_chars, MARKER};
use watchbell_core::{Level, Record};

use crate::service::{escape_markdown, heading, location, message, truncate_escaped};

/// Teams: the most bytes of a workflow webhook's body (Teams refuses larger posts with
/// "request entity too large"; the documented limit is about 28 KB).
pub const TEAMS_MAX_BODY: usize = 27_000;
/// Google Chat: the most bytes of a message, text and cards together.
pub const GOOGLE_CHAT_MAX_BODY: usize = 32_000;
/// Mattermost: the longest post text (characters).
pub const MATTERMOST_MAX_TEXT: usize = 16_383;
/// Rocket.Chat: the longest message text with the default `Message_MaxAllowedSize`.
pub const ROCKETCHAT_MAX_TEXT: usize = 5_000;

/// A body that must fit in `max` bytes once serialised: `build(budget)` is called with a
/// shrinking text budget (bytes) until it does. Control characters are written as `\u00XX`,
/// so the serialised size can be several times the text's: the measure is the real one.
fn within(max: usize, mut build: impl FnMut(usize) -> Json) -> Json {
    let mut budget = max;
    loop {
        let body = build(budget);
        let size = serde_json::to_vec(&body).map_or(usize::MAX, |v| v.len());
        if size <= max || budget < 64 {
            return body;
        }
        budget = budget * 3 / 4;
    }
}

fn level_colour(level: Level) -> (&'static str, &'static str) {
    // (Adaptive Card colour, hex colour)
    match level {
        Level::ERROR => ("Attention", "#D03030"),
        Level::WARN => ("Warning", "#E0A020"),
        _ => ("Accent", "#3080D0"),
    }
}

/// The fields as `key = value` lines.
fn field_lines(r: &Record) -> String {
    let mut out = String::new();
    for (k, v) in r.fields.iter() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("{k} = {v}"));
    }
    out
}

fn footer(r: &Record) -> String {
    let mut f = r.target.to_string();
    if let Some(loc) = location(r) {
        f.push_str(" · ");
        f.push_str(&loc);
    }
    f.push_str(" · ");
    f.push_str(&watchbell_core::time::rfc3339(r.time));
    f
}

fn text_run(text: &str) -> Json {
    json!({"type": "TextRun", "text": text})
}

/// The Teams workflow-webhook message: one Adaptive Card 1.4 (full width) with the heading
/// coloured by level, the message, the fields in monospace and a subtle footer (target,
/// location, time). All log text is in `RichTextBlock` text runs, which Teams shows as typed —
/// no markdown, no mentions — and the body stays within [`TEAMS_MAX_BODY`] bytes.
///
/// ```
/// use watchbell_core::{format::FormatContext, Level, Record};
/// let r = Record::new(Level::ERROR, "app::pay", "**payment** failed");
/// let j = watchbell_notify::teams_body(&r, &FormatContext::new("shop"));
/// let card = &j["attachments"][0]["content"];
/// assert_eq!(card["type"], "AdaptiveCard");
/// assert_eq!(card["body"][1]["inlines"][0]["text"], "**payment** failed");
/// ```
pub fn teams_body(r: &Record, cx: &FormatContext) -> Json {
    let (colour, _) = level_colour(r.level);
    let head = truncate_chars(&single_line(&heading(r, cx)), 500, MARKER).into_owned();
    let msg = message(r);
    let fields = field_lines(r);
    let foot = truncate_chars(&single_line(&footer(r)), 500, MARKER).into_owned();
    within(TEAMS_MAX_BODY, |budget| {
        let mut body = vec![
            json!({"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": head, "weight": "Bolder", "size": "Medium", "color": colour}]}),
            json!({"type": "RichTextBlock", "inlines": [text_run(&truncate_bytes(&msg, budget * 2 / 3, MARKER))]}),
        ];
        if !fields.is_empty() {
            body.push(json!({"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": truncate_bytes(&fields, budget / 4, MARKER), "fontType": "Monospace"}]}));
        }
        body.push(json!({"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": foot, "isSubtle": true, "size": "Small"}]}));
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "msteams": {"width": "Full"},
                    "body": body,
                },
            }],
        })
    })
}

/// Breaks every `<` of Google Chat message text with a zero-width space, so that
/// `<users/all>` mentions nobody and `<url|text>` makes no link.
fn disarm_chat_text(s: &str) -> String {
    s.replace('<', "<\u{200b}")
}

/// HTML for a Google Chat card's text: escaped, line breaks as `<br>`.
fn card_html(s: &str) -> String {
    escape_html(s).replace('\n', "<br>")
}

/// The Google Chat message: a one-line `text` (the heading, for notifications; `<` disarmed so
/// it mentions nobody) and one card (`cardsV2`): the heading and footer as header, the message
/// and each field (at most 20) as HTML-escaped widgets. Within [`GOOGLE_CHAT_MAX_BODY`] bytes.
///
/// ```
/// use watchbell_core::{format::FormatContext, Level, Record};
/// let r = Record::new(Level::ERROR, "app::pay", "<users/all> <b>x</b>");
/// let j = watchbell_notify::google_chat_body(&r, &FormatContext::new("shop"));
/// let w = &j["cardsV2"][0]["card"]["sections"][0]["widgets"][0];
/// assert_eq!(w["textParagraph"]["text"], "&lt;users/all&gt; &lt;b&gt;x&lt;/b&gt;");
/// ```
pub fn google_chat_body(r: &Record, cx: &FormatContext) -> Json {
    let head = truncate_chars(&single_line(&heading(r, cx)), 200, MARKER).into_owned();
    let foot = truncate_chars(&single_line(&footer(r)), 300, MARKER).into_owned();
    let msg = message(r);
    within(GOOGLE_CHAT_MAX_BODY, |budget| {
        // The message gets half the budget before escaping (escaping can grow it fivefold; the
        // loop shrinks it until the whole fits).
        let mut widgets =
            vec![json!({"textParagraph": {"text": card_html(&truncate_bytes(&msg, budget / 2, MARKER))}})];
        for (k, v) in r.fields.iter().take(20) {
            widgets.push(json!({"decoratedText": {
                "topLabel": escape_html(&truncate_chars(&single_line(k), 100, MARKER)),
                "text": card_html(&truncate_chars(&v.to_string(), (budget / 40).max(16), MARKER)),
                "wrapText": true,
            }}));
        }
        json!({
            "text": disarm_chat_text(&head),
            "cardsV2": [{
                "cardId": "watchbell",
                "card": {
                    "header": {"title": escape_html(&head), "subtitle": escape_html(&foot)},
                    "sections": [{"widgets": widgets}],
                },
            }],
        })
    })
}

/// Which Slack-compatible service a body is for (their limits and mention words differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlackCompatible {
    /// Mattermost incoming webhooks.
    Mattermost,
    /// Rocket.Chat incoming webhooks.
    RocketChat,
}

impl SlackCompatible {
    fn max_text(self) -> usize {
        match self {
            SlackCompatible::Mattermost => MATTERMOST_MAX_TEXT,
            SlackCompatible::RocketChat => ROCKETCHAT_MAX_TEXT,
        }
    }
}

/// The Mattermost or Rocket.Chat webhook message, in the Slack message-attachment format both
/// document: `text` (the escaped heading), one attachment with the level's colour, the escaped
/// message as `text`, up to 20 short `fields`, a footer (target and location) and `ts`. Both
/// render markdown and mentions in every text, so every piece of log text is
/// [escaped](crate::escape_markdown) (`@channel`, `@all` and `@here` ping nobody). Within the
/// service's message limit ([`MATTERMOST_MAX_TEXT`], [`ROCKETCHAT_MAX_TEXT`] characters in all).
///
/// (Slack's own default message is Block Kit, which neither service renders: the colour bar and
/// escaping of watchbell's Slack renderer are kept, in the older attachment fields.)
pub fn slack_compatible_body(r: &Record, cx: &FormatContext, service: SlackCompatible) -> Json {
    let (_, colour) = level_colour(r.level);
    let max = service.max_text();
    let head = truncate_escaped(&escape_markdown(&single_line(&heading(r, cx))), 300);
    let foot = truncate_escaped(&escape_markdown(&single_line(&footer(r))), 300);
    let mut used = head.chars().count() + foot.chars().count();
    let mut fields = Vec::new();
    for (k, v) in r.fields.iter().take(20) {
        let title = truncate_escaped(&escape_markdown(&single_line(k)), 100);
        let value = truncate_escaped(&escape_markdown(&v.to_string()), 500);
        let n = title.chars().count() + value.chars().count();
        if used + n > max / 2 {
            break;
        }
        used += n;
        fields.push(json!({"title": title, "value": value, "short": true}));
    }
    let text = truncate_escaped(&escape_markdown(&message(r)), max - used);
    let fallback = truncate_chars(&single_line(&message(r)), 200, MARKER).into_owned();
    let ts = r.time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut att = json!({
        "fallback": escape_markdown(&fallback),
        "color": colour,
        "text": text,
        "footer": foot,
        "ts": ts,
    });
    if !fields.is_empty() {
        att["fields"] = Json::Array(fields);
    }
    json!({"text": head, "attachments": [att]})
}
