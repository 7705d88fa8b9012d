//! SNS: `Publish` (query protocol) for alerts.

use std::fmt::Write as _;

use watchbell_core::format::{Format, FormatContext};
use watchbell_core::text::{single_line, truncate_bytes, MARKER};
use watchbell_core::{Outcome, Record};

use crate::client::{AwsClient, Call};

/// The longest subject sent (SNS: ASCII, one line, fewer than 100 characters).
pub const SNS_MAX_SUBJECT: usize = 99;
/// The largest message (256 KiB).
pub const SNS_MAX_MESSAGE: usize = 262_144;

/// The subject of an alert: `[app] LEVEL target: message`, as SNS takes it — printable ASCII
/// only (other characters become `?`), one line, starting with a letter, digit or punctuation,
/// at most [`SNS_MAX_SUBJECT`] characters (a cut one ends with `...`).
///
/// ```
/// use watchbell_core::{format::FormatContext, Level, Record};
/// let r = Record::new(Level::ERROR, "app::pay", "paiement échoué\nline 2");
/// let s = watchbell_aws::sns_subject(&r, &FormatContext::new("shop"));
/// assert_eq!(s, "[shop] ERROR app::pay: paiement ?chou? line 2");
/// ```
pub fn sns_subject(r: &Record, cx: &FormatContext) -> String {
    let mut s = String::new();
    if let Some(app) = &cx.app {
        let _ = write!(s, "[{app}] ");
    }
    let _ = write!(s, "{} {}", r.level, r.target);
    if !r.message.is_empty() {
        let _ = write!(s, ": {}", r.message);
    }
    let line = single_line(&s);
    let ascii: String = line.chars().map(|c| if (' '..='~').contains(&c) { c } else { '?' }).collect();
    let ascii = ascii.trim();
    if ascii.chars().count() <= SNS_MAX_SUBJECT {
        return ascii.to_owned();
    }
    let mut cut: String = ascii.chars().take(SNS_MAX_SUBJECT - 3).collect();
    cut.truncate(cut.trim_end().len());
    cut.push_str("...");
    cut
}

/// The message of an alert: the mail layout (header lines, the message, the fields, the span
/// fields, the error, the suppressed count), or a custom format's text, at most
/// [`SNS_MAX_MESSAGE`] bytes (cut with the marker).
pub fn sns_message(r: &Record, cx: &FormatContext, format: Option<&dyn Format>) -> String {
    let text = match format {
        Some(f) => f.format_to_string(r, cx),
        None => mail_layout(r, cx),
    };
    truncate_bytes(&text, SNS_MAX_MESSAGE, &format!("\n{MARKER}")).into_owned()
}

/// The plain-text block of one record, as watchbell's mails lay it out.
fn mail_layout(r: &Record, cx: &FormatContext) -> String {
    let mut out = String::new();
    watchbell_core::format::write_mail_block(r, cx, &mut out);
    let end = out.trim_end().len();
    out.truncate(end);
    out
}

pub(crate) struct Sns {
    pub client: AwsClient,
    pub topic_arn: String,
    pub cx: FormatContext,
    pub format: Option<std::sync::Arc<dyn Format>>,
    /// `Some(group)` for a FIFO topic.
    pub fifo_group: Option<String>,
}

impl std::fmt::Debug for Sns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sns").field("topic_arn", &self.topic_arn).finish_non_exhaustive()
    }
}

impl Sns {
    /// Publishes one record.
    pub(crate) fn publish(&mut self, r: &Record) -> Outcome {
        let message = sns_message(r, &self.cx, self.format.as_deref());
        let mut form = vec![
            ("Action", "Publish".to_owned()),
            ("Version", "2010-03-31".to_owned()),
            ("TopicArn", self.topic_arn.clone()),
            ("Subject", sns_subject(r, &self.cx)),
        ];
        if let Some(g) = &self.fifo_group {
            form.push(("MessageGroupId", g.clone()));
            form.push(("MessageDeduplicationId", crate::sqs::dedup_id(&message, 0)));
        }
        // SNS refuses an empty message.
        form.push(("Message", if message.is_empty() { r.level.to_string() } else { message }));
        let body = watchbell_core::text::form_urlencode(&form).into_bytes();
        match self.client.post("application/x-www-form-urlencoded; charset=utf-8", None, body) {
            Call::Ok(_) => Outcome::Delivered,
            Call::Failed(_, o) | Call::NoAnswer(o) => o,
        }
    }
}
