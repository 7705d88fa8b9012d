//! What capturing and enqueueing an event costs the caller's thread in allocations, and which
//! thread frees the records a worker delivered. Counted by this binary's global allocator, per
//! thread, so the other threads of the test harness do not disturb the counts.

use std::cell::Cell;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use tracing_subscriber::prelude::*;
use watchbell_core::{Batch, CaptureLayer, Delivery, Outcome};

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static FREES: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting allocations and frees of the current thread.
struct Counting;

// A global allocator is an `unsafe impl`: this one only forwards to `System`.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        let _ = FREES.try_with(|c| c.set(c.get() + 1));
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

fn frees() -> u64 {
    FREES.with(Cell::get)
}

#[inline(never)]
fn event(i: u64) {
    tracing::info!(user = "bob", attempt = i, latency_ms = 12.5, "payment accepted");
}

fn in_spans<R>(f: impl FnOnce() -> R) -> R {
    let outer = tracing::info_span!("request", id = 7u64, path = "/checkout");
    let _o = outer.enter();
    let inner = tracing::info_span!("db", table = "orders");
    let _i = inner.enter();
    f()
}

/// An `info!` with three fields in two spans costs the caller two allocations: the one string
/// field's value and the record's place in the queue. The fields themselves live inside the
/// record (up to `INLINE_FIELDS` of them); the literal message is the callsite's constant one,
/// borrowed; the list of the two spans is the one every event in the inner span shares.
#[test]
fn an_event_with_three_fields_in_two_spans_costs_the_caller_two_allocations() {
    let (release, stalled) = mpsc::channel::<()>();
    let delivery = Delivery::builder("stalled", move |_: &Batch| {
        let _ = stalled.recv_timeout(Duration::from_secs(30));
        Outcome::Delivered
    })
    .queue_records(10_000)
    .notices(false)
    .spawn()
    .unwrap();
    let subscriber =
        tracing_subscriber::registry().with(CaptureLayer::new(Arc::new(delivery)).with_level(tracing::Level::INFO));
    let per_event = tracing::subscriber::with_default(subscriber, || {
        in_spans(|| {
            // The first events pay for what is made once (the queue's first room, thread
            // locals); the queue grows by doubling, so the least of a run is the steady cost.
            for i in 0..8 {
                event(i);
            }
            (0..64)
                .map(|i| {
                    let before = allocs();
                    event(i);
                    allocs() - before
                })
                .min()
                .unwrap()
        })
    });
    drop(release);
    assert_eq!(per_event, 2, "allocations on the caller's thread per captured event");
}

/// Frees on this thread while it logs `n` events in two spans into `delivery`.
fn frees_while_logging(delivery: watchbell_core::DeliveryHandle, n: u64) -> (u64, watchbell_core::Stats) {
    let handler = Arc::new(delivery);
    let layer = CaptureLayer::new(Arc::clone(&handler) as Arc<dyn watchbell_core::Handler>);
    let subscriber = tracing_subscriber::registry().with(layer.with_level(tracing::Level::INFO));
    let freed = tracing::subscriber::with_default(subscriber, || {
        in_spans(|| {
            let before = frees();
            for i in 0..n {
                event(i);
            }
            frees() - before
        })
    });
    (freed, handler.snapshot())
}

/// A delivery that keeps up leaves the records it delivered for the logging thread to free (a
/// few per event it logs), so that memory goes back to the thread that allocates it: that
/// thread frees more than when nothing is delivered at all.
#[test]
fn records_a_worker_delivered_are_freed_by_the_thread_that_logs() {
    const N: u64 = 20_000;
    let (release, stalled) = mpsc::channel::<()>();
    let stalled = Delivery::builder("stalled", move |_: &Batch| {
        let _ = stalled.recv_timeout(Duration::from_secs(30));
        Outcome::Delivered
    })
    .queue_records(2 * N as usize)
    .queue_bytes(1 << 30)
    .notices(false)
    .spawn()
    .unwrap();
    let (freed_stalled, stats) = frees_while_logging(stalled, N);
    drop(release);
    assert_eq!(stats.dropped, 0);
    let keeps_up = Delivery::builder("keeps-up", |_: &Batch| Outcome::Delivered).notices(false).spawn().unwrap();
    let (freed_keeping_up, stats) = frees_while_logging(keeps_up, N);
    assert_eq!((stats.accepted, stats.dropped), (N, 0));
    // Each record freed here is three frees (message, string field, span list); at least a
    // twentieth of them, however loaded the machine.
    assert!(
        freed_keeping_up >= freed_stalled + 3 * N / 20,
        "the logging thread freed {freed_keeping_up} times with a delivery that keeps up, \
         {freed_stalled} with a stalled one: the worker freed what it delivered"
    );
}
