//! Properties of the notification texts: whatever the record, a markup body holds no markup
//! and stays within its bound, and a summary is one bounded line.
use proptest::prelude::*;
use watchbell_core::{Level, Record, Value};
use watchbell_desktop::{body_text, summary};

proptest! {
    #[test]
    fn a_markup_body_is_inert_and_bounded(message in any::<String>(), field in any::<String>()) {
        let mut r = Record::new(Level::ERROR, "app", message.clone());
        r.fields.set("f", Value::Str(field));
        let body = body_text(&r, true);
        prop_assert!(!body.contains('<') && !body.contains('>'));
        // Every `&` starts one of the entities escaping writes.
        for (i, _) in body.match_indices('&') {
            let rest = &body[i..];
            prop_assert!(["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"].iter().any(|e| rest.starts_with(e)), "{rest:?}");
        }
        let plain = body_text(&r, false);
        prop_assert!(plain.chars().count() <= 1000);
        // Control characters are written as escapes: the text without them is kept as it is.
        prop_assert!(message.chars().any(char::is_control) || plain.starts_with(&message) || plain.ends_with("…[truncated]"));
    }

    #[test]
    fn a_body_holds_no_control_character_but_newline_and_tab(message in "(\\PC|[\\x00-\\x1f\\x7f\\u{85}]){0,60}", field in any::<String>()) {
        let mut r = Record::new(Level::ERROR, "app", message.clone());
        r.fields.set("f\u{1b}[2J", Value::Str(field));
        for markup in [false, true] {
            let body = body_text(&r, markup);
            prop_assert!(!body.chars().any(|c| c.is_control() && c != '\n' && c != '\t'), "{body:?}");
        }
        if !message.chars().any(char::is_control) {
            prop_assert!(body_text(&r, false).starts_with(&message));
        }
    }

    #[test]
    fn a_summary_is_one_bounded_line(target in any::<String>(), app in any::<String>()) {
        let r = Record::new(Level::WARN, target, "m");
        let s = summary(&r, &app);
        prop_assert!(s.chars().count() <= 100);
        prop_assert!(!s.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']), "{s:?}");
    }
}
