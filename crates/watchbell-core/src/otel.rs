//! Trace and span ids from OpenTelemetry, so that logs and traces join (feature `opentelemetry`).
//!
//! When an event happens inside a span that carries an OpenTelemetry context, its record gets
//! two fields: `trace_id` (32 lowercase hex digits) and `span_id` (16 lowercase hex digits), the
//! ids of that OpenTelemetry span. The OTLP encoding of watchbell-http sends them as the
//! logRecord's `traceId` and `spanId`; the Loki encoding as structured metadata; every other
//! sink shows them as fields.
//!
//! Where the ids come from: the OpenTelemetry context that is active on the event's thread.
//! [tracing-opentelemetry](https://docs.rs/tracing-opentelemetry)'s layer activates the context
//! of each span it tracks when the span is entered (its default,
//! `with_context_activation(true)`), so an event inside an entered span gets the ids of the
//! innermost span the OpenTelemetry layer tracks; a context attached directly with the
//! OpenTelemetry API (`Context::attach`) counts too. The context lives in the `opentelemetry`
//! crate, so the application's tracing-opentelemetry must use the same major version of it as
//! watchbell: opentelemetry 0.33 (tracing-opentelemetry 0.34).
//!
//! Rules:
//! - An event with a field of its own named `trace_id` or `span_id` keeps its fields, and gets
//!   neither id from the context (the pair stays consistent).
//! - No active context, or an invalid one (all-zero ids, as a no-op tracer gives), adds nothing.
//! - Without an OpenTelemetry layer the cost per captured event is one thread-local read; with
//!   the feature off, nothing at all.
//! - An event with an explicit parent (`tracing::error!(parent: &span, ..)`) outside that span,
//!   or with `with_context_activation(false)`, gets the ids of the context active on the thread,
//!   if any, not those of its parent.
//!
//! ```
//! # fn main() {
//! use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
//! use watchbell_core::record::Fields;
//!
//! let remote = SpanContext::new(
//!     TraceId::from_bytes([0x4b; 16]),
//!     SpanId::from_bytes([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]),
//!     TraceFlags::SAMPLED,
//!     true,
//!     TraceState::default(),
//! );
//! let _active = opentelemetry::Context::new().with_remote_span_context(remote).attach();
//! let mut fields = Fields::new();
//! watchbell_core::otel::add_ids(&mut fields);
//! assert_eq!(fields.get("trace_id").and_then(|v| v.as_str()), Some("4b".repeat(16).as_str()));
//! assert_eq!(fields.get("span_id").and_then(|v| v.as_str()), Some("00f067aa0ba902b7"));
//! # }
//! ```

use std::borrow::Cow;

use opentelemetry::trace::TraceContextExt as _;

use crate::record::{Fields, Value};

/// The field names the ids are stored under.
pub const TRACE_ID: &str = "trace_id";
/// See [`TRACE_ID`].
pub const SPAN_ID: &str = "span_id";

/// The trace and span ids (32 and 16 lowercase hex digits) of the OpenTelemetry span active on
/// this thread, if there is a valid one.
pub fn current_ids() -> Option<(String, String)> {
    opentelemetry::Context::map_current(|cx| {
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| (format!("{:032x}", sc.trace_id()), format!("{:016x}", sc.span_id())))
    })
}

/// Adds `trace_id` and `span_id` of the active OpenTelemetry span to `fields`, unless `fields`
/// already has either name (see the module docs). Capture calls this for every record it
/// builds.
pub fn add_ids(fields: &mut Fields) {
    if fields.get(TRACE_ID).is_some() || fields.get(SPAN_ID).is_some() {
        return;
    }
    if let Some((trace, span)) = current_ids() {
        fields.push_unique(Cow::Borrowed(TRACE_ID), Value::Str(trace));
        fields.push_unique(Cow::Borrowed(SPAN_ID), Value::Str(span));
    }
}
