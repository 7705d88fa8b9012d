//! The in-process journal of alerts delivered with a ticket link: which destination was
//! notified of which ticket, and when.
//!
//! An alert sink built with a [`TicketLink`](crate::link::TicketLink) pushes one [`Notified`]
//! per record after a **successful** delivery (a refused or failed one is not "notified"); the
//! ticketing layer of the same process [`subscribe`]s and drains its [`Subscription`] on its
//! own worker, writing the notifications table its viewer shows.
//!
//! - In-process only: a relay or another process that runs alert sinks keeps its own journal,
//!   and its own ticketing layer (or a call to the ticket store) writes what it delivered.
//! - Bounded and never blocking: each subscription holds at most its capacity of entries; a
//!   push to a full one drops the entry and counts it ([`Subscription::dropped`]). With no
//!   subscriber a push costs a read lock and nothing else.
//! - Every subscription gets every entry (two ticketing layers, two journals).
//!
//! ```
//! use std::time::SystemTime;
//! use watchbell_core::notified::{self, Notified};
//!
//! let journal = notified::subscribe(100);
//! notified::push(Notified {
//!     app_id: "shop".into(),
//!     fingerprint: "00112233aabbccdd".into(),
//!     destination: "slack".into(),
//!     time: SystemTime::now(),
//! });
//! let got = journal.drain();
//! assert_eq!(got.len(), 1);
//! assert_eq!(got[0].destination, "slack");
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::SystemTime;

/// One delivery of an alert about a ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notified {
    /// The ticket's app.
    pub app_id: String,
    /// The ticket's fingerprint (16 hex digits).
    pub fingerprint: String,
    /// The destination: `slack`, `telegram`, `mail`, `sms:twilio`, …
    pub destination: String,
    /// When the delivery succeeded.
    pub time: SystemTime,
}

struct Inner {
    queue: Mutex<VecDeque<Notified>>,
    capacity: usize,
    dropped: AtomicU64,
}

static SUBSCRIBERS: RwLock<Vec<Weak<Inner>>> = RwLock::new(Vec::new());

/// A reader of the journal: holds what was pushed since it subscribed, up to its capacity.
/// Dropping it unsubscribes.
pub struct Subscription {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("capacity", &self.inner.capacity)
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Takes everything pushed since the last drain, oldest first.
    pub fn drain(&self) -> Vec<Notified> {
        let mut q = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.drain(..).collect()
    }

    /// Entries dropped because this subscription was full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}

/// Subscribes to the journal with room for `capacity` entries (at least 1) between drains.
pub fn subscribe(capacity: usize) -> Subscription {
    let inner =
        Arc::new(Inner { queue: Mutex::new(VecDeque::new()), capacity: capacity.max(1), dropped: AtomicU64::new(0) });
    let mut subs = SUBSCRIBERS.write().unwrap_or_else(|e| e.into_inner());
    subs.retain(|w| w.strong_count() > 0);
    subs.push(Arc::downgrade(&inner));
    Subscription { inner }
}

/// Whether anyone reads the journal (a sink skips the work of a push when nobody does).
pub fn has_subscribers() -> bool {
    SUBSCRIBERS.read().unwrap_or_else(|e| e.into_inner()).iter().any(|w| w.strong_count() > 0)
}

/// Tells every subscription of one delivery; never blocks on a full one (the entry is dropped
/// there and counted).
pub fn push(entry: Notified) {
    let subs = SUBSCRIBERS.read().unwrap_or_else(|e| e.into_inner());
    for sub in subs.iter().filter_map(Weak::upgrade) {
        let mut q = sub.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= sub.capacity {
            sub.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            q.push_back(entry.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(fp: &str) -> Notified {
        Notified {
            app_id: "app".into(),
            fingerprint: fp.into(),
            destination: "slack".into(),
            time: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_full_subscription_drops_and_counts_and_others_still_receive() {
        let small = subscribe(2);
        let big = subscribe(10);
        for i in 0..5 {
            push(note(&format!("unit-full-{i}")));
        }
        let got: Vec<_> = small.drain().into_iter().filter(|n| n.fingerprint.starts_with("unit-full-")).collect();
        assert_eq!(got.len(), 2);
        assert!(small.dropped() >= 3);
        let all: Vec<_> = big.drain().into_iter().filter(|n| n.fingerprint.starts_with("unit-full-")).collect();
        assert_eq!(all.len(), 5);
        assert_eq!(all[4].fingerprint, "unit-full-4");
    }

    #[test]
    fn a_dropped_subscription_no_longer_receives() {
        let s = subscribe(4);
        drop(s);
        push(note("unit-gone"));
        let later = subscribe(4);
        assert!(later.drain().iter().all(|n| n.fingerprint != "unit-gone"));
    }
}
