//! The recording state every fake keeps: a mutex-protected state and a condition variable that
//! wakes the tests waiting for something to arrive.
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A fake's state `S` with waiting: [`update`](Recorded::update) (or
/// [`lock`](Recorded::lock) and [`notify`](Recorded::notify)) on the server side,
/// [`wait_until`](Recorded::wait_until) on the test side. A poisoned lock is taken over: a
/// panicking server thread must not hide what was recorded.
#[derive(Default)]
pub(crate) struct Recorded<S> {
    state: Mutex<S>,
    changed: Condvar,
}

impl<S> Recorded<S> {
    pub(crate) fn new(state: S) -> Self {
        Recorded { state: Mutex::new(state), changed: Condvar::new() }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes every [`wait_until`](Recorded::wait_until).
    pub(crate) fn notify(&self) {
        self.changed.notify_all();
    }

    /// Changes the state under the lock, then wakes the waiters.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        let r = f(&mut self.lock());
        self.notify();
        r
    }

    /// Waits until `done(state)` holds or `timeout` passed (a timeout too large for the clock
    /// waits without limit); returns the lock either way.
    pub(crate) fn wait_until(&self, timeout: Duration, mut done: impl FnMut(&S) -> bool) -> MutexGuard<'_, S> {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.lock();
        while !done(&state) {
            state = match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    self.changed.wait_timeout(state, deadline - now).unwrap_or_else(PoisonError::into_inner).0
                }
                None => self.changed.wait(state).unwrap_or_else(PoisonError::into_inner),
            };
        }
        state
    }
}
