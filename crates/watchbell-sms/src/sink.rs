//! The SMS sink (one provider, one recipient) and the default one-line body.

use std::fmt::Write as _;
use std::sync::Arc;

use watchbell_core::format::{Format, FormatContext};
use watchbell_core::http::HttpClient;
use watchbell_core::text::{single_line, truncate_bytes};
use watchbell_core::{Batch, BatchReason, Outcome, Record, Sink};

use crate::encoding::{fit, Encoding};
use crate::provider::{SmsMessage, SmsProvider};

/// How much of a record's text is looked at before fitting (an SMS holds at most a few KiB).
const MAX_INPUT_BYTES: usize = 16 * 1024;

/// Turns records into SMS bodies.
pub(crate) struct Renderer {
    pub(crate) format: Option<Arc<dyn Format>>,
    pub(crate) cx: FormatContext,
    pub(crate) segments: usize,
}

impl Renderer {
    /// The default line: `[app] LEVEL target: message (N similar suppressed)`.
    fn default_text(&self, r: &Record, out: &mut String) {
        if let Some(app) = &self.cx.app {
            let _ = write!(out, "[{app}] ");
        }
        let _ = write!(out, "{} {}: ", r.level, r.target);
        out.push_str(&truncate_bytes(&r.message, MAX_INPUT_BYTES, ""));
    }

    /// The text of one record (or of a batch's significant record, with `related` others),
    /// on one line, fitted to the configured segments.
    pub(crate) fn body(&self, r: &Record, related: usize) -> (String, Encoding) {
        let mut text = String::new();
        match &self.format {
            Some(f) => f.format(r, &self.cx, &mut text),
            None => self.default_text(r, &mut text),
        }
        let text = truncate_bytes(&text, MAX_INPUT_BYTES, "");
        let mut line = single_line(&text).into_owned();
        if r.suppressed > 0 {
            let _ = write!(line, " ({} similar suppressed)", r.suppressed);
        }
        if let Some(n) = r.fields.get(watchbell_core::cap::WITHHELD_FIELD).and_then(|v| v.as_u64()).filter(|n| *n > 0) {
            let _ = write!(line, " ({n} alerts withheld by the SMS cap)");
        }
        if related > 0 {
            let _ = write!(line, " (+{related} related records)");
        }
        // A custom format places the link itself (`{ticket_url}`), or not at all.
        let url = self.cx.ticket_link.as_ref().and_then(|l| l.ticket_url(r));
        match (&self.format, url) {
            (None, Some(url)) => fit_with_link(&line, &format!(" {url}"), self.segments),
            _ => fit(&line, self.segments),
        }
    }
}

/// The fewest chars of the text kept before a ticket link; with less room the link is left out.
const MIN_TEXT_BEFORE_LINK: usize = 20;

/// `text` followed by `link` (` https://…`), fitted to `segments`: the text is cut first (with
/// the marker), the link is kept whole; when the link leaves room for fewer than
/// [`MIN_TEXT_BEFORE_LINK`] chars of the text, the link is left out and the text fitted alone.
pub(crate) fn fit_with_link(text: &str, link: &str, segments: usize) -> (String, Encoding) {
    use crate::encoding::{detect, limit, units, GSM_MARKER, UCS2_MARKER};
    let fits = |s: &str| {
        let enc = detect(s);
        (units(s, enc) <= limit(enc, segments)).then_some(enc)
    };
    let whole = format!("{text}{link}");
    if let Some(enc) = fits(&whole) {
        return (whole, enc);
    }
    // The longest cut text (in chars) that fits before the link, in either encoding.
    let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
    let candidate = |k: usize| -> Option<(String, Encoding)> {
        let kept = text[..bounds[k]].trim_end();
        let gsm = format!("{kept}{GSM_MARKER}{link}");
        if let Some(Encoding::Gsm7) = fits(&gsm) {
            return Some((gsm, Encoding::Gsm7));
        }
        let ucs = format!("{kept}{UCS2_MARKER}{link}");
        fits(&ucs).map(|enc| (ucs, enc))
    };
    let (mut lo, mut hi) = (0usize, bounds.len() - 1);
    let mut best = None;
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        match candidate(mid) {
            Some(c) => {
                best = Some((mid, c));
                lo = mid + 1;
            }
            None if mid == 0 => break,
            None => hi = mid - 1,
        }
    }
    match best {
        Some((k, c)) if k >= MIN_TEXT_BEFORE_LINK.min(bounds.len() - 1) => c,
        _ => fit(text, segments),
    }
}

/// Sends to one recipient through one provider: one SMS per record (or one per escalation or
/// group batch), one SMS per call. The delivery's pace spaces the SMS of a batch
/// ([`Outcome::More`]), so the sink keeps no clock of its own.
pub(crate) struct SmsSink {
    pub(crate) provider: Arc<dyn SmsProvider>,
    pub(crate) client: HttpClient,
    pub(crate) to: String,
    pub(crate) render: Arc<Renderer>,
}

impl SmsSink {
    fn send(&mut self, record: &Record, related: usize) -> Outcome {
        let (body, encoding) = self.render.body(record, related);
        let outcome = self.provider.send(&self.client, &SmsMessage { to: &self.to, body: &body, encoding });
        if matches!(outcome, Outcome::Delivered) {
            if let Some(link) = &self.render.cx.ticket_link {
                link.notified(&format!("sms:{}", self.provider.name()), [record]);
            }
        }
        outcome
    }
}

impl Sink for SmsSink {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        match batch.reason {
            BatchReason::Escalation | BatchReason::Group => match batch.significant() {
                Some(r) => self.send(r, batch.len() - 1),
                None => Outcome::Delivered,
            },
            // The first record's SMS; the delivery calls again for the rest once the pace allows.
            BatchReason::Single | BatchReason::Flush => match batch.records.first() {
                None => Outcome::Delivered,
                Some(r) => match self.send(r, 0) {
                    Outcome::Delivered if batch.records.len() > 1 => Outcome::More { delivered: 1 },
                    outcome => outcome,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fit_with_link;
    use crate::encoding::{limit, units, Encoding};

    const LINK: &str = " https://tickets.example.com/fp/shop/0011223344556677";

    #[test]
    fn the_text_is_cut_before_the_link() {
        let (s, e) = fit_with_link("short alert", LINK, 1);
        assert_eq!(
            (s.as_str(), e),
            ("short alert https://tickets.example.com/fp/shop/0011223344556677", Encoding::Gsm7)
        );
        let text = format!("[shop] ERROR pay: {}", "x".repeat(300));
        let (s, e) = fit_with_link(&text, LINK, 1);
        assert_eq!(e, Encoding::Gsm7);
        assert!(s.ends_with(&format!("...{LINK}")), "{s}");
        assert!(s.starts_with("[shop] ERROR pay: xxx"), "{s}");
        assert_eq!(units(&s, e), limit(e, 1), "{s}");
        // UCS-2 text in two segments: cut with its own marker, the link whole.
        let (s, e) = fit_with_link(&"日本".repeat(200), LINK, 2);
        assert_eq!(e, Encoding::Ucs2);
        assert!(s.ends_with(&format!("…{LINK}")) && units(&s, e) <= limit(e, 2), "{s}");
    }

    #[test]
    fn a_link_that_leaves_too_little_room_is_left_out() {
        // One UCS-2 segment (70 units) holds the 53-char link and fewer than 20 chars of text.
        let text = format!("日本 {}", "y".repeat(100));
        let (s, e) = fit_with_link(&text, LINK, 1);
        assert!(!s.contains("https://"), "{s}");
        assert_eq!((e, units(&s, e)), (Encoding::Ucs2, 70));
        let huge = format!(" https://t.example/{}", "z".repeat(400));
        let (s, _) = fit_with_link("disk full", &huge, 1);
        assert_eq!(s, "disk full");
    }
}
