//! Properties of the frames over hostile text, checked with the strict RFC 5424 / 3164 parser of
//! the test receiver: valid frames within their size, structured data that parses back to the
//! field values, stream framing that delimits exactly one frame.

use std::time::{Duration, UNIX_EPOCH};

use watchbell_core::text::MARKER;
use watchbell_core::{Level, Record, Value};
use watchbell_syslog::fuzzing::{escape_sd_value, frame, sd_param_name, stream_bytes};
use watchbell_syslog::{Framing, Protocol};
use watchbell_test::syslog::parse;

/// Texts that have broken syslog frames somewhere: SD specials, newlines, NUL, non-ASCII,
/// a char cut by a byte limit, BOMs, long runs.
fn hostile() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        " ",
        "]",
        "\"",
        "\\",
        "\\]\"",
        "a]b\"c\\d",
        "line\nbreak\r\nand\rcr",
        "nul\0inside",
        "\u{feff}bom first",
        "é",
        "日本語のテキスト",
        "emoji 🦀🦀🦀",
        "\u{2028}\u{2029}\u{85}",
        "[fields@32473 user=\"x\"]",
        "- - -",
        "=",
        "\t\u{7f}\u{1b}[31m",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("é".repeat(5000));
    v.push(format!("x{}", "€".repeat(4000)));
    v.push("]\\\"".repeat(3000));
    v.push("🦀\n".repeat(3000));
    v
}

fn record(message: &str, field: &str) -> Record {
    let mut r = Record::new(Level::ERROR, "app", message);
    r.time = UNIX_EPOCH + Duration::from_secs(1_065_392_055);
    r.fields.set("value", Value::Str(field.into()));
    r.fields.set(field.chars().take(40).collect::<String>(), Value::Str("named".into()));
    r
}

#[test]
fn rfc5424_frames_of_hostile_text_parse_back_within_their_size() {
    for framing in [Framing::OctetCounting, Framing::LineFeed] {
        for max in [480, 2048, 8096] {
            for text in hostile() {
                let r = record(&text, &text);
                let f = frame(Protocol::Rfc5424, framing, Some("fields@32473"), max, &r);
                assert!(f.len() <= max, "{} bytes > {max}", f.len());
                let m = parse(f.as_bytes()).unwrap_or_else(|e| panic!("{e}: {f:?}"));
                assert!(!f.contains('\0'), "{f:?}");
                if framing == Framing::LineFeed {
                    assert!(!f.contains('\n'), "{f:?}");
                }
                let sd = m.sd("fields@32473").expect("the fields element");
                let value = sd.param("value").expect("the value param");
                // The value is the field's own text unless it was cut (then it ends with the marker)
                // or made one line / NUL-free.
                if f.len() < max / 2 && framing == Framing::OctetCounting && !text.contains('\0') {
                    assert_eq!(value, text, "{f:?}");
                } else {
                    assert!(value.ends_with(MARKER) || !value.contains(['\n', '\0']), "{value:?}");
                }
                for (name, _) in &sd.params {
                    assert!(
                        !name.is_empty()
                            && name.len() <= 32
                            && name.bytes().all(|b| (33..=126).contains(&b) && !b"=]\"".contains(&b)),
                        "{name:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn rfc3164_frames_of_hostile_text_parse_and_stay_on_one_line() {
    for max in [480, 1024, 8096] {
        for text in hostile() {
            let f = frame(Protocol::Rfc3164, Framing::OctetCounting, None, max, &record(&text, &text));
            assert!(f.len() <= max, "{} bytes > {max}", f.len());
            assert!(!f.contains(['\n', '\r', '\0']), "{f:?}");
            parse(f.as_bytes()).unwrap_or_else(|e| panic!("{e}: {f:?}"));
        }
    }
}

#[test]
fn stream_framing_delimits_exactly_one_frame() {
    for text in hostile() {
        let f = frame(Protocol::Rfc5424, Framing::OctetCounting, Some("fields@32473"), 8096, &record(&text, &text));
        let bytes = stream_bytes(Framing::OctetCounting, &f);
        let space = bytes.iter().position(|&b| b == b' ').unwrap();
        let len: usize = std::str::from_utf8(&bytes[..space]).unwrap().parse().unwrap();
        assert_eq!(&bytes[space + 1..], f.as_bytes());
        assert_eq!(len, f.len());
        let f = frame(Protocol::Rfc5424, Framing::LineFeed, Some("fields@32473"), 8096, &record(&text, &text));
        let bytes = stream_bytes(Framing::LineFeed, &f);
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1, "{f:?}");
        assert_eq!(bytes.last(), Some(&b'\n'));
    }
}

#[test]
fn sd_escaping_round_trips_and_names_are_valid() {
    for text in hostile() {
        let mut escaped = String::new();
        escape_sd_value(&text, &mut escaped);
        // Unescape as RFC 5424 §6.3.3 says: a backslash before `"`, `\` or `]` is dropped.
        let mut back = String::new();
        let mut chars = escaped.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\' && matches!(chars.peek(), Some('"' | '\\' | ']')) {
                back.push(chars.next().unwrap());
            } else {
                assert!(!matches!(c, '"' | ']'), "unescaped {c:?} in {escaped:?}");
                back.push(c);
            }
        }
        assert_eq!(back, text);
        let name = sd_param_name(&text);
        assert!(!name.is_empty() && name.len() <= 32, "{name:?}");
        assert!(name.bytes().all(|b| (33..=126).contains(&b) && !b"=]\"".contains(&b)), "{name:?}");
    }
}
