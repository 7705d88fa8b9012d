//! watchbell's own async runtime, for sinks whose clients are async (reqwest, lettre).
//!
//! Each delivery worker thread that needs one gets a current-thread tokio runtime of its own,
//! created on first use. Its blocking-pool threads (DNS lookups, file I/O) are marked as
//! watchbell threads like the worker, so nothing logged there is captured by watchbell. The
//! application's runtime, if it has one, is never used: watchbell works in apps without tokio,
//! inside multi-thread and current-thread runtimes, and after the app shut its runtime down.

use std::cell::OnceCell;
use std::future::Future;

use crate::capture::mark_current_thread;

thread_local! {
    static RUNTIME: OnceCell<tokio::runtime::Runtime> = const { OnceCell::new() };
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
    RUNTIME.with(|cell| {
        let rt = cell.get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name("watchbell-blocking")
                .on_thread_start(mark_current_thread)
                .build()
                .expect("watchbell: cannot build its runtime")
        });
        rt.block_on(future)
    })
}

fn mark_current_thread_once() {
    if !crate::capture::is_suppressed() {
        mark_current_thread();
    }
}
