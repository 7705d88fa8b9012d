//! # watchbell-core
//!
//! The shared machinery of [watchbell](https://docs.rs/watchbell): everything a sink crate
//! would otherwise write again. A sink crate is its builder, its [`Sink`], its default
//! [`Format`](format::Format) and its tests; this crate is the rest.
//!
//! ```text
//! tracing::Event ─┐          (caller's thread: cheap, never blocks, never fails)
//! log::Record ────┴─▶ CaptureLayer ─▶ Record ─▶ LayerFilter ─▶ RateLimit ─▶ DeliveryHandle ─▶ queue
//!                                                                                              │
//!                                  (watchbell's own thread: may be slow, may fail, retries)    ▼
//!                                                                      Sink::deliver(&Batch) ─▶ destination
//! ```
//!
//! | word | type |
//! |---|---|
//! | Record | [`Record`]: an owned snapshot of one event, with its fields, span stack and fingerprint |
//! | Batch | [`Batch`]: records delivered together, with a [`BatchReason`] |
//! | Handler | [`Handler`]: accepts records on the caller's side; [`RateLimit`], [`Cap`] and [`FanOut`] wrap handlers |
//! | Sink | [`Sink`]: the protocol to one destination, on a background thread, answering an [`Outcome`] |
//! | Delivery | [`Delivery`]: bounded queue, batching, pacing, retries, counted drops, [`Stats`] |
//! | Guard | [`Guard`]: `flush`, `shutdown`, and a bounded flush on drop |
//! | Format | [`format::Format`]: templates ([`format::Template`]) and closures for text sinks |
//!
//! A complete pipeline, from `tracing` to a sink:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//! use watchbell_core::{Batch, CaptureLayer, Delivery, Guard, Outcome, RateLimit};
//!
//! // The sink: here it prints; a real one speaks a destination's protocol.
//! let delivery = Delivery::builder("print", |batch: &Batch| {
//!     for record in &batch.records {
//!         println!("{} {} {}", record.level, record.target, record.message);
//!     }
//!     Outcome::Delivered
//! })
//! .spawn()
//! .expect("a worker thread");
//! // At most 5 records per minute per callsite; the rest are counted and reported.
//! let handler = Arc::new(RateLimit::new(delivery, 5, Duration::from_secs(60)));
//! let guard = Guard::new(handler.clone());
//!
//! let subscriber = tracing_subscriber::registry()
//!     .with(CaptureLayer::new(handler).with_level(tracing::Level::WARN));
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("request", id = 7);
//!     let _entered = span.enter();
//!     tracing::error!(user = "bob", password = "hunter2", "payment failed");
//! });
//! assert!(guard.flush(Duration::from_secs(5)).is_complete());
//! ```
//!
//! Rules every piece keeps: the caller's thread only captures, filters and enqueues; no tokio
//! runtime is required (async clients run on watchbell's own, see `runtime`); events from
//! watchbell's own threads are never captured ([`capture::mark_current_thread`]); every queue,
//! buffer and cache is bounded and counts what it sheds; secrets in fields are redacted before
//! any sink sees them ([`redact::Redactor`]).
//!
//! Process-wide hooks:
//!
//! - [`processor()`] registers a function that adds or changes fields of every record, run on
//!   the caller's thread before any handler sees the record (for what only the caller knows:
//!   thread locals, request context); see [`processor`](mod@processor).
//! - [`set_error_reporter`] chooses where watchbell's own failures go: stderr (default),
//!   nowhere, or a callback; see [`report`].
//! - [`notified`] is the journal of alerts delivered with a [`TicketLink`] (the link from an
//!   alert to its ticket), which the ticketing layer of the process turns into the ticket's list
//!   of notified destinations.
//! - [`panic::record_panic`] makes a record of a panic (the umbrella crate's
//!   `capture_panics` installs the hook), and [`guard::flush_all`] flushes every live guard's
//!   deliveries, for a process about to end.
//!
//! Every record carries the process id ([`Record::pid`], read once per process). It is in the
//! JSON and OTLP shapes and in [`Record`]'s serde form; the default one-line text formats do not
//! show it (as Logbook's default format string does not show the process): a
//! [`Format`](format::Format) closure can.
#![deny(missing_docs)]

pub mod cap;
pub mod capture;
pub mod delivery;
pub mod filter;
pub mod format;
pub mod guard;
pub mod handler;
#[cfg(feature = "http")]
pub mod http;
pub mod json;
pub mod link;
pub mod notified;
pub mod options;
#[cfg(feature = "opentelemetry")]
pub mod otel;
pub mod panic;
pub mod processor;
pub mod ratelimit;
pub mod record;
pub mod redact;
pub mod report;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod secret;
pub mod text;
pub mod time;
#[cfg(feature = "zone")]
pub mod zone;

pub use cap::Cap;
pub use capture::CaptureLayer;
pub use delivery::{Delivery, DeliveryBuilder, DeliveryHandle, Outcome, Overflow, Retry, Sink};
pub use filter::LayerFilter;
pub use guard::Guard;
pub use handler::{FanOut, Flushed, Handler, Stats};
pub use link::TicketLink;
pub use options::{BuildError, Options, SinkLayer, SinkOptions};
pub use processor::processor;
pub use ratelimit::RateLimit;
pub use record::{Batch, BatchReason, Fields, Fingerprint, Origin, Record, SpanRecord, Spans, Value};
pub use report::{set_error_reporter, ErrorReporter};

/// Re-exported so that sink crates and users name one version.
pub use tracing_core::{Level, LevelFilter};
