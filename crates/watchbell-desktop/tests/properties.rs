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
        prop_assert!(plain.starts_with(&message) || plain.ends_with("…[truncated]"));
    }

    #[test]
    fn a_summary_is_one_bounded_line(target in any::<String>(), app in any::<String>()) {
        let r = Record::new(Level::WARN, target, "m");
        let s = summary(&r, &app);
        prop_assert!(s.chars().count() <= 100);
        prop_assert!(!s.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']), "{s:?}");
    }
}
