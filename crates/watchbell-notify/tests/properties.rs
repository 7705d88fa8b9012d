//! Properties of the request bodies over generated records: within every documented limit,
//! whatever the text; Discord's markup and mentions always escaped.
use proptest::prelude::*;
use watchbell_core::format::FormatContext;
use watchbell_core::{Level, Record, Value};
use watchbell_notify::{
    discord_body, escape_discord, ntfy_body, pagerduty_body, slack_compatible_body, SlackCompatible,
};

fn record(message: String, fields: Vec<(String, String)>) -> Record {
    let mut r = Record::new(Level::ERROR, "app", message);
    for (k, v) in fields {
        r.fields.set(k, Value::Str(v));
    }
    r
}

proptest! {
    #[test]
    fn bodies_stay_within_the_services_limits(
        message in any::<String>(),
        big in 0usize..3,
        fields in proptest::collection::vec(("[a-z]{1,8}", any::<String>()), 0..40),
        app in any::<String>(),
    ) {
        let r = record(message.repeat(1 + big * 3000), fields);
        let cx = FormatContext::new(app);
        let n = ntfy_body(&r, &cx, "t", None);
        prop_assert!(n["message"].as_str().unwrap().len() <= 4000);
        prop_assert!(n["title"].as_str().unwrap().chars().count() <= 250);
        prop_assert!(!n["title"].as_str().unwrap().contains('\n'));
        let d = discord_body(&r, &cx);
        let e = &d["embeds"][0];
        let len = |v: &serde_json::Value| v.as_str().map_or(0, |s| s.chars().count());
        let mut total = len(&e["title"]) + len(&e["description"]) + len(&e["footer"]["text"]);
        prop_assert!(len(&e["title"]) <= 256 && len(&e["description"]) <= 4096);
        for f in e["fields"].as_array().into_iter().flatten() {
            prop_assert!(len(&f["name"]) >= 1 && len(&f["name"]) <= 256 && len(&f["value"]) >= 1 && len(&f["value"]) <= 1024);
            total += len(&f["name"]) + len(&f["value"]);
        }
        prop_assert!(total <= 6000, "{total}");
        let p = pagerduty_body(&r, &cx, "k");
        let summary = len(&p["payload"]["summary"]);
        prop_assert!((1..=1024).contains(&summary), "{summary} chars");
    }

    #[test]
    fn a_blank_message_gives_a_one_line_pagerduty_summary(target in "(\\PC|[\r\n\x00-\x1f\u{85}\u{2028}]){0,40}", blank in "[ \t\r\n]{0,4}") {
        let r = Record::new(Level::ERROR, target, blank);
        let p = pagerduty_body(&r, &FormatContext::default(), "k");
        let summary = p["payload"]["summary"].as_str().unwrap();
        prop_assert!(!summary.trim().is_empty());
        prop_assert!(!summary.chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'), "{summary:?}");
    }

    #[test]
    fn discord_escaping_leaves_no_markup_or_mention(s in any::<String>()) {
        let e = escape_discord(&s);
        let b = e.as_bytes();
        for (i, c) in e.char_indices() {
            if "*_~`|>#-[]".contains(c) {
                prop_assert!(i > 0 && b[i - 1] == b'\\', "{e:?}");
            }
            if c == '@' {
                prop_assert!(e[i + 1..].starts_with('\u{200b}'), "{e:?}");
            }
        }
    }
}

/// A long run of markdown chars cut to a limit: the cut fell between a backslash and the char
/// it escaped, leaving a lone `\` before the marker (shown, while the `*` was lost).
#[test]
fn a_cut_never_splits_an_escape() {
    let lone_backslash = |s: &str| {
        let kept = s.strip_suffix("…[truncated]").unwrap_or(s);
        (kept.len() - kept.trim_end_matches('\\').len()) % 2 == 1
    };
    for pad in 0..4 {
        let r = Record::new(Level::ERROR, "app", format!("{}{}", "a".repeat(pad), "*".repeat(20_000)));
        let d = discord_body(&r, &FormatContext::default());
        let description = d["embeds"][0]["description"].as_str().unwrap();
        assert!(description.ends_with("…[truncated]"));
        assert!(!lone_backslash(description), "{pad}: {}", &description[description.len() - 20..]);
        for service in [SlackCompatible::Mattermost, SlackCompatible::RocketChat] {
            let b = slack_compatible_body(&r, &FormatContext::default(), service);
            let text = b["attachments"][0]["text"].as_str().unwrap();
            assert!(text.ends_with("…[truncated]"));
            assert!(!lone_backslash(text), "{service:?} {pad}: {}", &text[text.len() - 20..]);
        }
    }
}

#[test]
fn a_blank_app_name_sends_no_empty_discord_username() {
    for app in ["\u{1}", " ", "\n\t"] {
        let r = Record::new(Level::ERROR, "t", "m");
        let j = discord_body(&r, &FormatContext::new(app));
        assert!(j.get("username").is_none(), "{app:?}: {j}");
    }
    let j = discord_body(&Record::new(Level::ERROR, "t", "m"), &FormatContext::new("shop"));
    assert_eq!(j["username"], "shop");
}

#[test]
fn a_field_named_like_a_paging_detail_keeps_its_value() {
    let mut r = Record::new(Level::ERROR, "t", "m");
    r.fields.set("location", Value::Str("warehouse 7".into()));
    r.file = Some("src/a.rs".into());
    r.line = Some(3);
    r.suppressed = 2;
    let pd = pagerduty_body(&r, &FormatContext::default(), "k");
    let d = &pd["payload"]["custom_details"];
    assert_eq!((d["location"].as_str(), d["watchbell.location"].as_str()), (Some("warehouse 7"), Some("src/a.rs:3")));
    let og = watchbell_notify::opsgenie_body(&r, &FormatContext::default());
    let d = &og["details"];
    assert_eq!((d["location"].as_str(), d["watchbell.location"].as_str()), (Some("warehouse 7"), Some("src/a.rs:3")));
    assert_eq!(d["suppressed"], "2");
}
