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
        fit(&line, self.segments)
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
        self.provider.send(&self.client, &SmsMessage { to: &self.to, body: &body, encoding })
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
