//! Properties of the mail headers over hostile log text: the subject is one line of printable
//! text within its limit, no text can add or end a header, and the encoded subject decodes back
//! to exactly the subject made.

use watchbell_core::{Level, Record, Value};
use watchbell_mail::fuzzing::{mail, subject};
use watchbell_test::smtp::decode_rfc2047;

fn hostile() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        "plain",
        "crlf\r\nBcc: victim@example.com",
        "lf\nX-Injected: 1",
        "cr\rX-Injected: 2",
        "\r\n\r\nbody starts here",
        "nul\0byte",
        "unicode line sep\u{2028}para\u{2029}nel\u{85}",
        "=?utf-8?q?already_encoded?=",
        "ünïcödé 日本語 🦀",
        "\t\u{7f}\u{1b}[31mansi",
        ".\r\n.\r\nQUIT",
        "{app} {level} {message}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("é".repeat(500));
    v.push(format!("{}\r\nBcc: x@example.com", "a".repeat(997)));
    v.push("\u{feff}".repeat(100));
    v
}

const KNOWN: [&str; 8] =
    ["From", "Message-ID", "To", "Subject", "Date", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"];

#[test]
fn hostile_text_never_adds_a_header_and_the_subject_round_trips() {
    for template in ["[{app}] {level}: {message}", "{message} {field.user}"] {
        for max in [10, 78, 200, 1000] {
            for text in hostile() {
                let mut r = Record::new(Level::ERROR, "app", text.clone());
                r.fields.set("user", Value::Str(text.clone()));
                let made = subject(template, max, &r).unwrap();
                assert!(made.chars().count() <= max.max(10), "{made:?}");
                assert!(!made.chars().any(char::is_control), "{made:?}");
                assert!(!made.contains(['\u{2028}', '\u{2029}']), "{made:?}");

                let raw = mail(template, max, vec![r]).unwrap();
                let raw = String::from_utf8(raw).expect("headers and 8bit/qp body are UTF-8 here");
                let end = raw.find("\r\n\r\n").expect("a blank line ends the headers");
                let head = &raw[..end];
                assert!(!head.replace("\r\n", "").contains(['\r', '\n']), "a bare CR or LF in {head:?}");
                let mut subjects = Vec::new();
                for line in head.split("\r\n") {
                    if line.starts_with([' ', '\t']) {
                        if let Some(s) = subjects.last_mut() {
                            *s = format!("{s}{line}");
                        }
                        continue;
                    }
                    let name = line.split(':').next().unwrap();
                    assert!(KNOWN.contains(&name), "unexpected header {line:?} for {text:?}");
                    if name == "Subject" {
                        subjects.push(line["Subject:".len()..].to_owned());
                    }
                }
                assert!(head.contains("\r\nMIME-Version: 1.0"), "{head}");
                assert_eq!(subjects.len(), 1, "{head}");
                // Unfolding (RFC 5322 §2.2.3) then RFC 2047 decoding gives the subject made.
                let decoded = decode_rfc2047(subjects[0].trim_start());
                assert_eq!(decoded, made, "{head}");
            }
        }
    }
}

#[test]
fn an_invalid_template_is_an_error_not_a_panic() {
    let r = Record::new(Level::ERROR, "app", "x");
    for template in ["{", "}", "{nope}", "{field.}", "{{{"] {
        let _ = subject(template, 200, &r);
        let _ = mail(template, 200, vec![r.clone()]);
    }
}
