//! The layer: finds the scope of each event and hands the record to it; closes span scopes.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tracing_core::span::{Attributes, Id, Record as SpanValues};
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;
use watchbell_core::capture::{self, record_from_event_in};
use watchbell_core::{Flushed, Handler, Record, Stats};

use crate::scope::{Link, ScopeCell, Shared, SpanScopes};
use crate::{FingersCrossedStats, Scope};

/// The fingers-crossed `tracing` layer. Made by [`FingersCrossedLayer::builder`]; see the
/// [crate docs](crate).
#[derive(Clone)]
pub struct FingersCrossedLayer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) salt: Arc<[u8]>,
}

impl fmt::Debug for FingersCrossedLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FingersCrossedLayer")
            .field("name", &self.shared.cfg.name)
            .field("scope", &self.shared.cfg.scope)
            .field("action_level", &self.shared.cfg.action)
            .field("group", &self.shared.cfg.group)
            .finish_non_exhaustive()
    }
}

impl FingersCrossedLayer {
    /// A handle on this layer's counters, usable after the layer went into a subscriber.
    pub fn monitor(&self) -> Monitor {
        Monitor(Arc::clone(&self.shared))
    }

    /// Links a new span to its scope: its own (it is the scope span: the root, or a span with
    /// the scope's name) or its parent's.
    fn link_new_span<S>(&self, id: &Id, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(span) = ctx.span(id) else { return };
        let layer = self.shared.id;
        let own = match &self.shared.cfg.scope {
            Scope::RootSpan => span.parent().is_none(),
            Scope::Span(name) => span.name() == name,
            Scope::Global | Scope::Thread => return,
        };
        let link = if own {
            Some(Link { layer, slot: Arc::new(OnceLock::new()), owner: true })
        } else {
            span.parent().and_then(|parent| {
                let ext = parent.extensions();
                let slot = Arc::clone(&ext.get::<SpanScopes>()?.find(layer)?.slot);
                Some(Link { layer, slot, owner: false })
            })
        };
        let Some(link) = link else { return };
        let mut ext = span.extensions_mut();
        match ext.get_mut::<SpanScopes>() {
            Some(scopes) => scopes.0.push(link),
            None => ext.insert(SpanScopes(vec![link])),
        }
    }

    fn cell_for<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>) -> Arc<ScopeCell>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        match &self.shared.cfg.scope {
            Scope::Global => return self.shared.global_cell(),
            Scope::Thread => return self.shared.thread_cell(),
            Scope::RootSpan | Scope::Span(_) => {}
        }
        let found = ctx.event_span(event).and_then(|leaf| {
            let ext = leaf.extensions();
            let slot = &ext.get::<SpanScopes>()?.find(self.shared.id)?.slot;
            Some(Arc::clone(slot.get_or_init(|| self.shared.new_cell())))
        });
        found.unwrap_or_else(|| self.shared.fallback_cell())
    }
}

impl<S> Layer<S> for FingersCrossedLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        capture::record_new_span(attrs, id, &ctx);
        if capture::is_suppressed() {
            return;
        }
        if catch_unwind(AssertUnwindSafe(|| self.link_new_span(id, &ctx))).is_err() {
            self.shared.counters.panicked.fetch_add(1, Relaxed);
        }
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, ctx: Context<'_, S>) {
        capture::record_span_values(id, values, &ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if capture::is_suppressed() {
            return;
        }
        let done = catch_unwind(AssertUnwindSafe(|| {
            let record = record_from_event_in(self, event, &ctx, &self.salt);
            let cell = self.cell_for(event, &ctx);
            self.shared.accept(record, &cell);
        }));
        if done.is_err() {
            self.shared.counters.panicked.fetch_add(1, Relaxed);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if matches!(self.shared.cfg.scope, Scope::Global | Scope::Thread) {
            return;
        }
        let done = catch_unwind(AssertUnwindSafe(|| {
            let Some(span) = ctx.span(&id) else { return };
            let cell = {
                let ext = span.extensions();
                let Some(link) = ext.get::<SpanScopes>().and_then(|s| s.find(self.shared.id)) else { return };
                if !link.owner {
                    return;
                }
                let Some(cell) = link.slot.get() else { return };
                Arc::clone(cell)
            };
            self.shared.close(&cell);
        }));
        if done.is_err() {
            self.shared.counters.panicked.fetch_add(1, Relaxed);
        }
    }
}

/// A read-only handle on a layer's counters ([`FingersCrossedLayer::monitor`]).
#[derive(Clone)]
pub struct Monitor(Arc<Shared>);

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Monitor").field(&self.0.cfg.name).finish()
    }
}

impl Monitor {
    /// The counters now.
    pub fn stats(&self) -> FingersCrossedStats {
        self.0.stats()
    }
}

/// What the [`Guard`](watchbell_core::Guard) of a fingers-crossed layer holds: flush and
/// shutdown reach the inner handler, and stats report the layer's counters.
pub(crate) struct Control(pub(crate) Arc<Shared>);

impl Handler for Control {
    /// A record handed to the guard's handler is taken as if logged outside any span (into
    /// the fallback scope).
    fn handle(&self, record: Record) {
        if capture::is_suppressed() {
            return;
        }
        let cell = self.0.fallback_cell();
        self.0.accept(record, &cell);
    }

    fn flush(&self, deadline: Instant) -> Flushed {
        self.0.flush(deadline)
    }

    fn shutdown(&self, deadline: Instant) -> Flushed {
        self.0.shutdown(deadline)
    }

    fn stats(&self, out: &mut Vec<Stats>) {
        self.0.core_stats(out)
    }
}
