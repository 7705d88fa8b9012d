//! # watchbell-fingers-crossed
//!
//! Withhold tracing records until one reaches the action level, then deliver the context with it
//! (Logbook's `FingersCrossedHandler` and `GroupHandler`, for `tracing`).
//!
//! Log lots of `DEBUG` records, keep them in memory, and deliver them only when something in the
//! same context — by default the request span — reaches `ERROR`: then whoever reads the error also
//! sees the records that led up to it. Requests that succeed cost a few buffered records that are
//! freed when their span closes.
//!
//! ```
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//! use watchbell_core::Level;
//! use watchbell_fingers_crossed::{FingersCrossedLayer, Scope};
//! use watchbell_test::TestLayer;
//!
//! // Any watchbell handler: `SlackLayer::builder(..).build_handler()?`, a mail handler, ...
//! // (pass the `(handler, guard)` pair to let this layer's guard own the inner guard).
//! let alerts = TestLayer::new();
//! let (layer, guard) = FingersCrossedLayer::builder(alerts.handler())
//!     .scope(Scope::span("request")) // one buffer per request span
//!     .level(Level::DEBUG)           // what is withheld
//!     .action_level("error")         // what releases it
//!     .build()
//!     .expect("a valid configuration");
//! let subscriber = tracing_subscriber::registry().with(layer);
//!
//! tracing::subscriber::with_default(subscriber, || {
//!     for id in 0..3 {
//!         let _request = tracing::info_span!("request", id).entered();
//!         tracing::debug!(id, "parsing body");
//!         if id == 1 {
//!             tracing::error!("payment failed");
//!         }
//!     }
//! });
//!
//! // One delivery: request 1's story, as one batch with the trigger last.
//! let batches = alerts.batches();
//! assert_eq!(batches.len(), 1);
//! let messages: Vec<&str> = batches[0].records.iter().map(|r| &*r.message).collect();
//! assert_eq!(messages, ["parsing body", "payment failed"]);
//! assert_eq!(guard.stats()[0].dropped, 2); // requests 0 and 2: withheld, then discarded
//! assert!(guard.shutdown(Duration::from_secs(5)).is_complete());
//! ```
//!
//! ## How it works
//!
//! - Every record at [`level`](FingersCrossedBuilder::level) or more severe is captured into the
//!   buffer of its **scope**. A record at [`action_level`](FingersCrossedBuilder::action_level)
//!   or more severe is the **trigger**: the buffer goes to the inner handler as **one**
//!   [`Batch`](watchbell_core::Batch) with reason
//!   [`Escalation`](watchbell_core::BatchReason::Escalation), oldest first, the trigger last.
//! - After a trigger, every later record of that scope passes straight through (one record at a
//!   time, reason `Single`) — unless [`reset`](FingersCrossedBuilder::reset) is on: then the
//!   scope goes back to buffering, and each incident (each trigger) is one batch. A full ring
//!   does not lose anything after a reset: with size 2, reset, and the records `a b c E1 d E2`,
//!   the deliveries are `[c, E1]` and `[d, E2]` (Logbook delivers only the first).
//! - When a scope ends without a trigger, its records are dropped silently — that is the
//!   feature — and counted ([`FingersCrossedStats::discarded`]).
//! - The inner handler's own level does not filter the escalated batch: watchbell handlers
//!   (`build_handler()`) take every record they are given, the `DEBUG` context is the point. Only
//!   an explicit [`Select`](watchbell_core::handler::Select) in the chain would filter.
//! - **Group mode** ([`group`](FingersCrossedBuilder::group)): no trigger; every record of a scope
//!   is delivered as one batch with reason [`Group`](watchbell_core::BatchReason::Group) when the
//!   scope closes, the first record (the significant one) first — e.g. one mail per batch job.
//!
//! ## Scopes
//!
//! | [`Scope`] | one buffer per | freed when |
//! |---|---|---|
//! | [`Scope::RootSpan`] (default) | root span of the event (the outermost span it is in) | the span closes |
//! | [`Scope::span("request")`](Scope::span) | nearest enclosing span named `request` | the span closes |
//! | [`Scope::Thread`] | thread | the thread exits |
//! | [`Scope::Global`] | process (one buffer for everything) | shutdown |
//!
//! Per-span buffers live in the span's extensions, so a request span that moves between the
//! threads of a tokio runtime keeps one buffer, and concurrent requests never see each other's
//! records. A span is only a scope if this layer's filter records it: spans at `INFO` and more
//! severe by default ([`LayerFilter::span_level`]). A span's scope is decided when the span is
//! created (it is its own scope, or it shares its parent's), so finding an event's buffer is
//! one lookup of its innermost span, however deep the stack; the buffer itself is allocated at
//! the scope's first record, so spans without records cost no buffer. Spans created before the
//! layer was installed belong to no scope.
//!
//! **Records outside any scope span** (no span at all, or no span with the given name) go to
//! the [fallback scope](FingersCrossedBuilder::outside_spans): the thread's buffer by default
//! ([`Fallback::Thread`]), or the process-wide one ([`Fallback::Global`]).
//!
//! Closing a scope is when a group is delivered and a withheld buffer is discarded: a span's
//! close, a thread's exit, and for every scope still open, the guard's
//! [`shutdown`](watchbell_core::Guard::shutdown). [`flush`](watchbell_core::Guard::flush)
//! only flushes the inner handler: a buffer still waiting for its trigger stays buffered.
//!
//! ## Inner handler
//!
//! [`FingersCrossedLayer::builder`] takes an [`Inner`]:
//!
//! - any `Arc<dyn Handler>` (a sink crate's `build_handler()`, a
//!   [`TestLayer`](https://docs.rs/watchbell-test)'s handler, a `FanOut`, ...), or the
//!   `(Arc<dyn Handler>, Guard)` pair `build_handler()` returns, in which case this layer's guard
//!   owns the inner guard (shut down after this layer has delivered its groups);
//! - a `MakeWriter` ([`Inner::writer`]): records written as lines in
//!   [`DefaultFormat`] or a
//!   [`format`](FingersCrossedBuilder::format) of yours, by a watchbell worker thread (the
//!   application's thread never writes);
//! - a factory ([`Inner::factory`]) called once per scope, at its first delivery (the first
//!   trigger, or the close of a group), with the significant record and the others, which
//!   returns the handler for that scope (e.g. one that opens `incident-<time>.log`). The handler
//!   lives as long as the scope (with [`Scope::Global`], as long as the layer).
//!
//! Calls into the inner handler run with capture suppressed on the calling thread (what it logs
//! is not captured again), and a panic in it is caught and counted
//! ([`FingersCrossedStats::panicked`]); the application goes on.
//!
//! ## Bounds
//!
//! Every buffer is bounded: by [`buffer_size`](FingersCrossedBuilder::buffer_size) records (a
//! ring: the newest survive; the trigger counts, as in Logbook), by
//! [`max_scope_bytes`](FingersCrossedBuilder::max_scope_bytes), and all buffers together by
//! [`max_total_bytes`](FingersCrossedBuilder::max_total_bytes): when the total passes it, the
//! oldest records of the largest scopes are shed until the total is 1/16 below the cap
//! ([`FingersCrossedStats::shed`]). Sizes are [`Record::size_hint`](watchbell_core::Record::size_hint)
//! estimates. In group mode the first record of a scope is never evicted (it is the significant one).
//!
//! ## Defaults
//!
//! | setting | default | builder method |
//! |---|---|---|
//! | level withheld | `DEBUG` and more severe (spans recorded: `INFO` and more severe) | [`level`](FingersCrossedBuilder::level), [`filter`](FingersCrossedBuilder::filter) |
//! | action level | `ERROR` (parsed at build time by [`parse_level`](watchbell_core::filter::parse_level): `error`, `warn`, `info`, `debug`, `trace`, and Logbook's `WARNING`, `CRITICAL`) | [`action_level`](FingersCrossedBuilder::action_level) |
//! | scope | [`Scope::RootSpan`] | [`scope`](FingersCrossedBuilder::scope) |
//! | records outside scope spans | [`Fallback::Thread`] | [`outside_spans`](FingersCrossedBuilder::outside_spans) |
//! | ring size | 1,000 records per scope (0 = no count limit, only with a per-scope byte cap) | [`buffer_size`](FingersCrossedBuilder::buffer_size) |
//! | per-scope byte cap | 1 MiB (0 = none) | [`max_scope_bytes`](FingersCrossedBuilder::max_scope_bytes) |
//! | global byte cap | 64 MiB across all scopes (cannot be turned off) | [`max_total_bytes`](FingersCrossedBuilder::max_total_bytes) |
//! | after a trigger | pass-through for the rest of the scope | [`reset`](FingersCrossedBuilder::reset) |
//! | group mode | off | [`group`](FingersCrossedBuilder::group) |
//! | writer format | [`DefaultFormat`], one line per record | [`format`](FingersCrossedBuilder::format), [`app`](FingersCrossedBuilder::app) |
//! | stats name | `fingers-crossed` | [`name`](FingersCrossedBuilder::name) |
//!
//! ## Cost
//!
//! On the caller's thread a withheld record costs watchbell's capture (building the owned
//! [`Record`]) plus one span lookup, one uncontended lock and a ring push: measured at about
//! 0.65 µs for an `info!` with 3 fields in 2 spans, where capture alone is about 0.5 µs and
//! `tracing-appender`'s `non_blocking` writer under `fmt` about 2.4 µs, on the same (slow, shared)
//! machine in the same run.
//!
//! ## Stats
//!
//! The [`Guard`] reports one [`Stats`](watchbell_core::Stats) entry for
//! the layer: `accepted` = records captured, `delivered` = records handed to the inner handler,
//! `dropped` = records that left a buffer undelivered (scope closed without trigger + ring and
//! per-scope cap evictions + global-cap shedding), `panicked`, and `queued`/`queued_bytes` = what
//! is buffered now; then the stats of what it owns (a writer's delivery, factory handlers). The
//! detailed counters are in [`FingersCrossedStats`], through
//! [`FingersCrossedLayer::monitor`] (for a built layer: `layer.inner().monitor()`).
#![deny(missing_docs)]

mod layer;
mod scope;
mod writer;

use std::fmt;
use std::sync::Arc;

use tracing_core::{Level, Subscriber};
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Layer;
use tracing_subscriber::registry::LookupSpan;
use watchbell_core::format::{DefaultFormat, Format, FormatContext};
use watchbell_core::{BuildError, Delivery, Guard, Handler, LayerFilter, Record};

pub use layer::{FingersCrossedLayer, Monitor};

use crate::layer::Control;
use crate::scope::{Settings, Shared, Target};

const CRATE: &str = "watchbell-fingers-crossed";

/// The layer [`FingersCrossedBuilder::build`] returns: the fingers-crossed layer behind
/// watchbell's per-layer filter. Compose further with `.with_filter(..)`.
pub type FingersCrossedFiltered<S> = Filtered<FingersCrossedLayer, LayerFilter, S>;

/// What one buffer covers. See the [crate docs](crate#scopes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// The root span of the event (the outermost span it is in).
    #[default]
    RootSpan,
    /// The nearest enclosing span with this name (e.g. `"request"`).
    Span(String),
    /// The thread.
    Thread,
    /// The whole process: one buffer.
    Global,
}

impl Scope {
    /// The nearest enclosing span named `name`.
    pub fn span(name: impl Into<String>) -> Self {
        Scope::Span(name.into())
    }
}

/// Where records go that are in no scope span (with [`Scope::RootSpan`] or [`Scope::Span`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fallback {
    /// The thread's buffer (closed when the thread exits).
    #[default]
    Thread,
    /// The process-wide buffer (closed at shutdown).
    Global,
}

/// A factory of inner handlers: `(significant record, the other records) -> handler`.
type FactoryFn = dyn Fn(&Record, &[Record]) -> Arc<dyn Handler> + Send + Sync;

/// Where a fingers-crossed layer delivers: a handler, a writer or a factory.
pub struct Inner(InnerKind);

enum InnerKind {
    Handler(Arc<dyn Handler>, Option<Guard>),
    Writer(Box<dyn writer::WriteText>),
    Factory(Arc<FactoryFn>),
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.0 {
            InnerKind::Handler(_, None) => "handler",
            InnerKind::Handler(_, Some(_)) => "handler with guard",
            InnerKind::Writer(_) => "writer",
            InnerKind::Factory(_) => "factory",
        };
        f.debug_tuple("Inner").field(&kind).finish()
    }
}

impl Inner {
    /// Any watchbell handler.
    pub fn handler(handler: Arc<dyn Handler>) -> Self {
        Inner(InnerKind::Handler(handler, None))
    }

    /// A handler and the guard of what it delivers to: the layer's guard owns that guard.
    pub fn handler_with_guard(handler: Arc<dyn Handler>, guard: Guard) -> Self {
        Inner(InnerKind::Handler(handler, Some(guard)))
    }

    /// A `MakeWriter` (stdout, a file, `tracing_appender`'s writers): records written as
    /// formatted lines, one write per delivered batch, on a watchbell worker thread.
    pub fn writer<W>(make_writer: W) -> Self
    where
        W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        Inner(InnerKind::Writer(Box::new(writer::MakeWriterText(make_writer))))
    }

    /// A factory called once per scope, at its first delivery, with the significant record (the
    /// trigger, or a group's first record) and the other records of that delivery; the handler
    /// it returns gets that delivery and the rest of the scope's. A panicking factory is caught
    /// and counted, and that scope's deliveries are lost (counted as delivered to nobody:
    /// `panicked`).
    pub fn factory<F>(factory: F) -> Self
    where
        F: Fn(&Record, &[Record]) -> Arc<dyn Handler> + Send + Sync + 'static,
    {
        Inner(InnerKind::Factory(Arc::new(factory)))
    }
}

impl From<Arc<dyn Handler>> for Inner {
    fn from(handler: Arc<dyn Handler>) -> Self {
        Inner::handler(handler)
    }
}

impl From<(Arc<dyn Handler>, Guard)> for Inner {
    fn from((handler, guard): (Arc<dyn Handler>, Guard)) -> Self {
        Inner::handler_with_guard(handler, guard)
    }
}

/// The counters of one fingers-crossed layer ([`Monitor::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FingersCrossedStats {
    /// The layer's name.
    pub name: String,
    /// Records captured (buffered, triggers and passed through).
    pub captured: u64,
    /// Triggers: escalation batches delivered.
    pub triggers: u64,
    /// Records delivered in escalation batches (triggers included).
    pub escalated: u64,
    /// Records passed straight through after a trigger.
    pub passed_through: u64,
    /// Group batches delivered.
    pub groups: u64,
    /// Records delivered in group batches.
    pub grouped: u64,
    /// Records dropped without a trigger: their scope closed first (the feature working).
    pub discarded: u64,
    /// Records pushed out of a full ring or a scope's byte cap by newer ones.
    pub rotated: u64,
    /// Records shed by the global byte cap (the oldest of the largest scopes).
    pub shed: u64,
    /// Panics caught: in capture, in the inner handler, in a factory.
    pub panicked: u64,
    /// Calls of the factory.
    pub factory_calls: u64,
    /// Scopes with a buffer now.
    pub open_scopes: u64,
    /// Records buffered now.
    pub buffered_records: u64,
    /// Bytes (estimated) buffered now.
    pub buffered_bytes: u64,
}

/// Builds a [`FingersCrossedLayer`]. See the [crate docs](crate) for every default.
pub struct FingersCrossedBuilder {
    inner: Inner,
    filter: LayerFilter,
    action_level: String,
    buffer_size: usize,
    scope_bytes: usize,
    total_bytes: usize,
    reset: bool,
    group: bool,
    scope: Scope,
    fallback: Fallback,
    format: Option<Arc<dyn Format>>,
    app: Option<String>,
    salt: Vec<u8>,
    name: String,
}

impl fmt::Debug for FingersCrossedBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FingersCrossedBuilder")
            .field("inner", &self.inner)
            .field("filter", &self.filter)
            .field("action_level", &self.action_level)
            .field("buffer_size", &self.buffer_size)
            .field("max_scope_bytes", &self.scope_bytes)
            .field("max_total_bytes", &self.total_bytes)
            .field("reset", &self.reset)
            .field("group", &self.group)
            .field("scope", &self.scope)
            .field("outside_spans", &self.fallback)
            .field("format", &self.format.is_some())
            .field("app", &self.app)
            .field("name", &self.name)
            .finish()
    }
}

impl FingersCrossedLayer {
    /// A builder delivering to `inner`: an `Arc<dyn Handler>`, a `(handler, guard)` pair, or an
    /// [`Inner`] (writer, factory).
    pub fn builder(inner: impl Into<Inner>) -> FingersCrossedBuilder {
        FingersCrossedBuilder {
            inner: inner.into(),
            filter: LayerFilter::new(Level::DEBUG),
            action_level: "ERROR".to_owned(),
            buffer_size: 1_000,
            scope_bytes: 1 << 20,
            total_bytes: 64 << 20,
            reset: false,
            group: false,
            scope: Scope::RootSpan,
            fallback: Fallback::Thread,
            format: None,
            app: None,
            salt: Vec::new(),
            name: "fingers-crossed".to_owned(),
        }
    }

    /// A builder writing to a `MakeWriter` ([`Inner::writer`]).
    pub fn with_writer<W>(make_writer: W) -> FingersCrossedBuilder
    where
        W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        Self::builder(Inner::writer(make_writer))
    }

    /// A builder whose handler is made per scope by `factory` ([`Inner::factory`]).
    pub fn with_factory<F>(factory: F) -> FingersCrossedBuilder
    where
        F: Fn(&Record, &[Record]) -> Arc<dyn Handler> + Send + Sync + 'static,
    {
        Self::builder(Inner::factory(factory))
    }
}

impl FingersCrossedBuilder {
    /// Captures (withholds) records at `level` and more severe (default `DEBUG`).
    pub fn level(mut self, level: Level) -> Self {
        self.filter = LayerFilter::new(level);
        self
    }

    /// The whole per-layer filter (level, span level, target rules). Spans this filter does not
    /// record are not scopes.
    pub fn filter(mut self, filter: LayerFilter) -> Self {
        self.filter = filter;
        self
    }

    /// The level that triggers delivery (default `ERROR`): a level name (`"error"`, `"WARN"`)
    /// or a `tracing::Level`, parsed at build time.
    pub fn action_level(mut self, level: impl fmt::Display) -> Self {
        self.action_level = level.to_string();
        self
    }

    /// The ring size per scope, trigger included (default 1,000): the newest records survive.
    /// 0 means no count limit, which needs a per-scope byte cap.
    pub fn buffer_size(mut self, records: usize) -> Self {
        self.buffer_size = records;
        self
    }

    /// The most bytes buffered per scope (default 1 MiB; 0 = no per-scope byte cap): the oldest
    /// records are evicted first.
    pub fn max_scope_bytes(mut self, bytes: usize) -> Self {
        self.scope_bytes = bytes;
        self
    }

    /// The most bytes buffered by all scopes together (default 64 MiB; must be more than 0):
    /// beyond it the oldest records of the largest scopes are shed and counted.
    pub fn max_total_bytes(mut self, bytes: usize) -> Self {
        self.total_bytes = bytes;
        self
    }

    /// After a trigger, go back to buffering (one batch per incident) instead of passing the
    /// rest of the scope through (default: off, pass-through).
    pub fn reset(mut self, reset: bool) -> Self {
        self.reset = reset;
        self
    }

    /// Group mode: no trigger; each scope's records are delivered as one `Group` batch when the
    /// scope closes (default: off).
    pub fn group(mut self) -> Self {
        self.group = true;
        self
    }

    /// What one buffer covers (default [`Scope::RootSpan`]).
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Where records outside any scope span go (default [`Fallback::Thread`]).
    pub fn outside_spans(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// The line format of a writer inner ([`Inner::writer`]); default
    /// [`DefaultFormat`]. Handlers format for themselves: with them this is a build error.
    pub fn format(mut self, format: impl Format) -> Self {
        self.format = Some(Arc::new(format));
        self
    }

    /// The application's name, for a writer's format (`[app] ` prefix of [`DefaultFormat`]).
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }

    /// Mixes `salt` into the records' fingerprints.
    pub fn salt(mut self, salt: impl AsRef<[u8]>) -> Self {
        self.salt = salt.as_ref().to_vec();
        self
    }

    /// The name in stats (default `fingers-crossed`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The layer behind its per-layer filter, and the guard (flush, shutdown, stats).
    pub fn build<S>(self) -> Result<(FingersCrossedFiltered<S>, Guard), BuildError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let filter = self.filter.clone();
        let (layer, guard) = self.build_layer()?;
        Ok((Layer::<S>::with_filter(layer, filter), guard))
    }

    /// The layer without a filter (it then sees what the subscriber enables: put it behind
    /// your own `.with_filter(..)`), and the guard.
    pub fn build_layer(self) -> Result<(FingersCrossedLayer, Guard), BuildError> {
        let action = parse_level(&self.action_level)?;
        if self.buffer_size == 0 && self.scope_bytes == 0 {
            return Err(BuildError::new(
                CRATE,
                "buffer_size",
                "0 (no count limit) needs a per-scope byte cap: set max_scope_bytes above 0, or a buffer_size",
            ));
        }
        if self.total_bytes == 0 {
            return Err(BuildError::new(CRATE, "max_total_bytes", "must be more than 0: every buffer is bounded"));
        }
        if matches!(&self.scope, Scope::Span(name) if name.is_empty()) {
            return Err(BuildError::new(CRATE, "scope", "a span name must not be empty"));
        }
        if self.format.is_some() && !matches!(self.inner.0, InnerKind::Writer(_)) {
            return Err(BuildError::new(
                CRATE,
                "format",
                "a format applies to a writer inner only; a handler formats for its own destination",
            ));
        }
        let mut inner_guard = None;
        let (target, owns_target) = match self.inner.0 {
            InnerKind::Handler(h, g) => {
                inner_guard = g;
                (Target::Handler(h), false)
            }
            InnerKind::Factory(f) => (Target::Factory(f), false),
            InnerKind::Writer(out) => {
                let cx = FormatContext { app: self.app.clone(), ..FormatContext::default() };
                let format: Arc<dyn Format> = self.format.unwrap_or_else(|| Arc::new(DefaultFormat));
                let sink = writer::WriterSink { out, format, cx };
                let delivery = Delivery::builder(format!("{}-writer", self.name), sink)
                    .spawn()
                    .map_err(|e| BuildError::new(CRATE, "writer", format!("cannot start the writer thread: {e}")))?;
                (Target::Handler(Arc::new(delivery)), true)
            }
        };
        let shared = Arc::new(Shared::new(Settings {
            name: self.name,
            target,
            owns_target,
            action,
            buffer_size: self.buffer_size,
            scope_bytes: self.scope_bytes,
            total_bytes: self.total_bytes,
            reset: self.reset,
            group: self.group,
            scope: self.scope,
            fallback_global: self.fallback == Fallback::Global,
        }));
        let mut guard = Guard::new(Arc::new(Control(Arc::clone(&shared))));
        if let Some(g) = inner_guard {
            guard = guard.join(g);
        }
        let layer = FingersCrossedLayer { shared, salt: Arc::from(self.salt.as_slice()) };
        Ok((layer, guard))
    }
}

fn parse_level(s: &str) -> Result<Level, BuildError> {
    watchbell_core::filter::parse_level(s).ok_or_else(|| {
        BuildError::new(
            CRATE,
            "action_level",
            format!("{s:?} is not a level: expected one of error, warn, info, debug, trace"),
        )
    })
}
