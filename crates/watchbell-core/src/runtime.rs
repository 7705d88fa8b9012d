//! watchbell's own async runtime, for sinks whose clients are async (reqwest, lettre).
//!
//! Each delivery worker thread that needs one gets a current-thread tokio runtime of its own,
//! created on first use. Its blocking-pool threads (DNS lookups, file I/O) are marked as
//! watchbell threads like the worker, so nothing logged there is captured by watchbell. The
//! application's runtime, if it has one, is never used: watchbell works in apps without tokio,
//! inside multi-thread and current-thread runtimes, and after the app shut its runtime down.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use crate::capture::mark_current_thread;

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Runs `future` to completion on the current thread's watchbell runtime.
///
/// Call it only on watchbell's own threads (a [`Sink`](crate::Sink) runs on one): it blocks,
/// and it panics inside an async context, as tokio's `block_on` does.
///
/// # Panics
/// If the runtime cannot be built (the process is out of file descriptors, say) or if called
/// from within an async context. A sink's panic is caught and counted by its delivery.
pub fn block_on<F: Future>(future: F) -> F::Output {
    mark_current_thread_once();
    // Taken out while it runs, so that a nested call (which tokio refuses anyway) cannot find
    // the cell borrowed.
    let rt = RUNTIME.with(|cell| cell.borrow_mut().take()).unwrap_or_else(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("watchbell-blocking")
            .on_thread_start(mark_current_thread)
            .build()
            .expect("watchbell: cannot build its runtime")
    });
    let out = rt.block_on(future);
    RUNTIME.with(|cell| *cell.borrow_mut() = Some(rt));
    out
}

/// Shuts the current thread's watchbell runtime down, if it has one: its remaining tasks (an
/// idle connection's reader, a pool's timer) are dropped now, while the thread's other
/// thread-locals (the tracing registry's among them) still exist. A delivery worker calls it
/// before it exits; left to the thread's exit, dropping those tasks could touch thread-locals
/// already destroyed and panic.
pub fn shutdown_current_thread() {
    if let Some(rt) = RUNTIME.try_with(|cell| cell.borrow_mut().take()).ok().flatten() {
        rt.shutdown_timeout(Duration::from_millis(200));
    }
}

fn mark_current_thread_once() {
    if !crate::capture::is_suppressed() {
        mark_current_thread();
    }
}
