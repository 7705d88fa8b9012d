//! Logs and traces join: an event inside a span that tracing-opentelemetry tracks reaches the
//! OTLP collector with that span's trace and span ids (feature `opentelemetry`).

use std::time::Duration;

use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::Value as J;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::prelude::*;
use watchbell_core::Level;
use watchbell_http::{Encoding, HttpLayer};
use watchbell_test::collectors::FakeOtlp;

const WAIT: Duration = Duration::from_secs(10);

/// The ids OpenTelemetry gave `span`, as OTLP/JSON writes them.
fn ids(span: &tracing::Span) -> (String, String) {
    let cx = span.context();
    let otel = cx.span();
    let sc = otel.span_context();
    assert!(sc.is_valid(), "the SDK tracer gives real ids");
    (sc.trace_id().to_string(), sc.span_id().to_string())
}

/// Runs `f` under a registry with tracing-opentelemetry's layer (an SDK tracer, no exporter)
/// and watchbell's OTLP layer to a fake collector, and returns the logRecords it received.
fn collect(f: impl FnOnce()) -> Vec<J> {
    let fake = FakeOtlp::start();
    let provider = SdkTracerProvider::builder().build();
    let (layer, guard) = HttpLayer::builder(fake.url())
        .encoding(Encoding::otlp("checkout"))
        .level(Level::INFO)
        .batch_wait(Duration::ZERO)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("otel_context")))
        .with(layer);
    tracing::subscriber::with_default(subscriber, f);
    assert!(guard.flush(WAIT).is_complete());
    assert!(fake.errors().is_empty(), "{:?}", fake.errors());
    fake.records()
}

fn by_body<'a>(records: &'a [J], body: &str) -> &'a J {
    records.iter().find(|r| r["body"]["stringValue"] == body).unwrap_or_else(|| panic!("no {body:?} in {records:?}"))
}

#[test]
fn an_event_inside_an_otel_span_carries_that_spans_trace_and_span_ids() {
    let mut outer_ids = None;
    let mut inner_ids = None;
    let records = collect(|| {
        let outer = tracing::info_span!("checkout", order = 7);
        let _outer = outer.enter();
        outer_ids = Some(ids(&outer));
        tracing::error!("in outer");
        let inner = tracing::info_span!("charge");
        let _inner = inner.enter();
        inner_ids = Some(ids(&inner));
        tracing::warn!("in inner");
    });
    let (outer_ids, inner_ids) = (outer_ids.unwrap(), inner_ids.unwrap());
    assert_eq!(outer_ids.0, inner_ids.0, "one trace");
    assert_ne!(outer_ids.1, inner_ids.1);
    for (body, (trace, span)) in [("in outer", &outer_ids), ("in inner", &inner_ids)] {
        let r = by_body(&records, body);
        assert_eq!(r["traceId"], trace.as_str(), "{body}: {r}");
        assert_eq!(r["spanId"], span.as_str(), "{body}: {r}");
        assert_eq!(trace.len(), 32);
        assert_eq!(span.len(), 16);
    }
}

#[test]
fn an_event_outside_every_span_has_no_ids() {
    let records = collect(|| {
        {
            let span = tracing::info_span!("before");
            let _entered = span.enter();
            tracing::info!("inside");
        }
        tracing::error!("outside");
    });
    assert!(by_body(&records, "inside").get("traceId").is_some(), "the set-up does give ids");
    let r = by_body(&records, "outside");
    assert!(r.get("traceId").is_none() && r.get("spanId").is_none(), "{r}");
}

#[test]
fn an_events_own_trace_id_wins_over_the_context() {
    const OWN: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut span_ids = None;
    let records = collect(|| {
        let span = tracing::info_span!("request");
        let _entered = span.enter();
        span_ids = Some(ids(&span));
        tracing::error!(trace_id = OWN, "propagated by hand");
    });
    let (trace, _) = span_ids.unwrap();
    assert_ne!(trace, OWN);
    let r = by_body(&records, "propagated by hand");
    assert_eq!(r["traceId"], OWN, "{r}");
    // The event named its own trace: a span id from another trace would not belong to it.
    assert!(r.get("spanId").is_none(), "{r}");
}
