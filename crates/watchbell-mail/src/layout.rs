//! The text of a mail: subject and body, after Logbook's `MailHandler`.

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use watchbell_core::format::{DefaultFormat, Format, FormatContext, Template};
use watchbell_core::text::{single_line, truncate_bytes, truncate_chars, MARKER};
use watchbell_core::{Batch, BatchReason, Record};

/// The longest short line of a related record, in chars.
const SHORT_LINE_CHARS: usize = 500;

/// Everything the text of a mail depends on.
pub(crate) struct Layout {
    pub(crate) cx: FormatContext,
    pub(crate) subject: Template,
    pub(crate) max_subject_chars: usize,
    pub(crate) max_body_bytes: usize,
    pub(crate) format: Option<Arc<dyn Format>>,
    /// The text of each related record (default: one short line).
    pub(crate) related: Option<Arc<dyn Format>>,
}

impl Layout {
    /// The subject: the template over the significant record, one line, cut to the limit.
    pub(crate) fn subject(&self, batch: &Batch, significant: &Record) -> String {
        let mut s = self.subject.format_to_string(significant, &self.cx);
        if matches!(batch.reason, BatchReason::Single | BatchReason::Flush) && batch.len() > 1 {
            let _ = write!(s, " (+{} more)", batch.len() - 1);
        }
        let mut line = single_line(&s).into_owned();
        if line.contains("=?") {
            // Log text shaped like an RFC 2047 encoded-word (`=?utf-8?b?...?=`) would be decoded
            // by mail readers and shown as other text. An invisible WORD JOINER between `=` and
            // `?` keeps it literal (and makes lettre encode the subject, which shows it as is).
            line = line.replace("=?", "=\u{2060}?");
        }
        truncate_chars(&line, self.max_subject_chars, "…").into_owned()
    }

    /// The body: one record's block, a block with its related records, or a digest.
    pub(crate) fn body(&self, batch: &Batch, significant: &Record) -> String {
        let mut out = String::new();
        match batch.reason {
            BatchReason::Escalation | BatchReason::Group if batch.len() > 1 => {
                self.block(significant, &mut out);
                out.push_str(if batch.reason == BatchReason::Escalation {
                    "\nLog records that led up to this one:\n\n"
                } else {
                    "\nOther log records in the same group:\n\n"
                });
                for r in batch.records.iter().filter(|r| !std::ptr::eq(*r, significant)) {
                    self.related_block(r, &mut out);
                }
            }
            _ if batch.len() > 1 => {
                let _ = writeln!(out, "{} log records:\n", batch.len());
                for (i, r) in batch.records.iter().enumerate() {
                    let _ = writeln!(out, "---- {} of {} ----\n", i + 1, batch.len());
                    self.block(r, &mut out);
                    out.push('\n');
                }
            }
            _ => self.block(significant, &mut out),
        }
        let mut body = match truncate_bytes(&out, self.max_body_bytes, &format!("\n{MARKER}")) {
            std::borrow::Cow::Borrowed(_) => out,
            std::borrow::Cow::Owned(cut) => cut,
        };
        // SMTP ends the last line itself: a final newline would add an empty line.
        let end = body.trim_end_matches(['\n', '\r']).len();
        body.truncate(end);
        body
    }

    /// One record's block: the custom format's text, or the default layout. A panicking
    /// custom format falls back to the default layout.
    fn block(&self, r: &Record, out: &mut String) {
        if let Some(f) = &self.format {
            match catch_unwind(AssertUnwindSafe(|| f.format_to_string(r, &self.cx))) {
                Ok(text) => {
                    out.push_str(&text);
                    if !text.ends_with('\n') {
                        out.push('\n');
                    }
                    return;
                }
                Err(_) => out.push_str("(the custom mail format panicked; the default layout follows)\n\n"),
            }
        }
        self.default_block(r, out);
    }

    /// A related record: the related format's text (a text of several lines is followed by a
    /// blank line, to keep records apart), or the short line, also when the format panics.
    fn related_block(&self, r: &Record, out: &mut String) {
        let text = match &self.related {
            Some(f) => {
                catch_unwind(AssertUnwindSafe(|| f.format_to_string(r, &self.cx))).unwrap_or_else(|_| short_line(r))
            }
            None => short_line(r),
        };
        let text = text.trim_end_matches(['\n', '\r']);
        out.push_str(text);
        out.push('\n');
        if text.contains('\n') {
            out.push('\n');
        }
    }

    fn default_block(&self, r: &Record, out: &mut String) {
        watchbell_core::format::write_mail_block(r, &self.cx, out);
    }
}

/// A related record on one line: `time LEVEL target: message fields [spans] (N similar suppressed)`.
pub(crate) fn short_line(r: &Record) -> String {
    let text = DefaultFormat.format_to_string(r, &FormatContext::default());
    let line = single_line(&text);
    truncate_chars(&line, SHORT_LINE_CHARS, "…").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchbell_core::{Level, Value};

    fn layout() -> Layout {
        Layout {
            cx: FormatContext::new("shop").with_host("db-1"),
            subject: Template::parse(crate::DEFAULT_SUBJECT).unwrap(),
            max_subject_chars: 200,
            max_body_bytes: 1 << 20,
            format: None,
            related: None,
        }
    }

    #[test]
    fn subject_is_one_line_and_cut() {
        let l = layout();
        let r = Record::new(Level::ERROR, "app", format!("first\r\nBcc: x@example.com {}", "y".repeat(300)));
        let b = Batch::single(r.clone());
        let s = l.subject(&b, &r);
        assert!(!s.contains(['\r', '\n']));
        assert!(s.starts_with("[shop] ERROR: first Bcc: x@example.com yyy"));
        assert_eq!(s.chars().count(), 200);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn block_has_fields_table() {
        let l = layout();
        let mut r = Record::new(Level::ERROR, "app::db", "payment failed");
        r.fields.set("invoice", Value::I64(42));
        r.fields.set("customer", Value::Str("bob".into()));
        r.fields.set("error", Value::Display("timeout: reset".into()));
        r.suppressed = 3;
        let body = l.body(&Batch::single(r.clone()), &r);
        assert!(body.starts_with("Message type:    ERROR\nTarget:          app::db\nTime:            "), "{body}");
        assert!(body.contains("\nHost:            db-1\n"), "{body}");
        assert!(
            body.contains("\nMessage:\n\npayment failed\n\nFields:\n\n  invoice   42\n  customer  bob\n"),
            "{body}"
        );
        assert!(body.contains("\nError:\n\n  timeout: reset\n"), "{body}");
        assert!(body.ends_with("\nThis message occurred 3 more times and was suppressed."), "{body}");
    }

    #[test]
    fn digest_of_single_records() {
        let l = layout();
        let a = Record::new(Level::WARN, "app", "one");
        let b = Record::new(Level::ERROR, "app", "two");
        let batch = Batch::new(BatchReason::Single, vec![a, b]);
        let sig = batch.significant().unwrap().clone();
        assert_eq!(l.subject(&batch, &sig), "[shop] ERROR: two (+1 more)");
        let body = l.body(&batch, &sig);
        assert!(body.starts_with("2 log records:\n\n---- 1 of 2 ----\n\nMessage type:    WARN\n"), "{body}");
        assert!(body.contains("---- 2 of 2 ----\n\nMessage type:    ERROR\n"), "{body}");
    }
}
