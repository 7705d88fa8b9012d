//! Proof that a feedback loop is absent, not just unobserved: [`OwnThreadEvents`] counts the
//! events emitted on watchbell's own threads (its delivery workers and runtime threads, named
//! `watchbell…`), so a test can show that the clients really logged there while no watchbell
//! layer captured any of it.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tracing_subscriber::layer::{Context, Layer};

/// A layer that counts events emitted on threads whose name starts with `watchbell`.
#[derive(Clone, Debug, Default)]
pub struct OwnThreadEvents(Arc<AtomicUsize>);

impl OwnThreadEvents {
    /// A counter at zero.
    pub fn new() -> Self {
        OwnThreadEvents::default()
    }

    /// How many events were emitted on watchbell's threads so far.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl<S: tracing_core::Subscriber> Layer<S> for OwnThreadEvents {
    fn on_event(&self, _: &tracing_core::Event<'_>, _: Context<'_, S>) {
        if std::thread::current().name().is_some_and(|n| n.starts_with("watchbell")) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}
