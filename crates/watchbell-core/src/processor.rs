//! Processors: functions that add or change fields of every record, process-wide.
//!
//! A processor runs **on the caller's thread**, inside the capture of each event, before the
//! record is handed to any handler: it is the place for what only the caller knows (a request
//! id from a thread local, the current user) and for process constants (a deploy id, a git
//! sha). It sees every record every watchbell layer builds (`tracing` events through
//! [`CaptureLayer`](crate::CaptureLayer), `SinkLayer` and the fingers-crossed layer, and `log`
//! records through watchbell-log), after the layer's level filter and before rate limiting,
//! buffering and delivery. An event that two watchbell layers capture is processed once for
//! each: keep processors cheap and idempotent (set a field, do not append to one).
//!
//! A processor must not block (it runs where the application logs). One that panics is caught:
//! the record goes on with whatever the processor did before panicking, the panic is counted
//! in [`panics`], and the application goes on. Events a processor emits itself are captured
//! like any other (do not log from a processor at a level watchbell captures).
//!
//! Processors are global and cannot be removed; at most 64 can be registered (the 65th is
//! refused: [`processor`] returns `false`). With none registered, the cost is one atomic load
//! per record.
//!
//! ```
//! use watchbell_core::record::Value;
//! use watchbell_core::Record;
//!
//! thread_local! {
//!     static REQUEST_ID: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
//! }
//! watchbell_core::processor(|r: &mut Record| {
//!     r.fields.set("deploy", Value::Str("2026-11-29.1".into()));
//!     let id = REQUEST_ID.with(|c| c.get());
//!     if id != 0 {
//!         r.fields.set("request_id", Value::U64(id));
//!     }
//! });
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::record::Record;

type Processor = Arc<dyn Fn(&mut Record) + Send + Sync>;

/// The most processors [`processor`] accepts.
pub const MAX_PROCESSORS: usize = 64;

static COUNT: AtomicUsize = AtomicUsize::new(0);
static PANICS: AtomicU64 = AtomicU64::new(0);
/// The registered processors, replaced as a whole on registration so that a record's
/// processing holds no lock while processors run (one may even register another).
static PROCESSORS: RwLock<Option<Arc<Vec<Processor>>>> = RwLock::new(None);

/// Registers `f` to run on every record from now on, on the caller's thread (see the module
/// docs). Returns `false`, and registers nothing, when [`MAX_PROCESSORS`] are registered.
pub fn processor(f: impl Fn(&mut Record) + Send + Sync + 'static) -> bool {
    let mut all = PROCESSORS.write().unwrap_or_else(|e| e.into_inner());
    let mut list: Vec<Processor> = all.as_deref().cloned().unwrap_or_default();
    if list.len() >= MAX_PROCESSORS {
        return false;
    }
    list.push(Arc::new(f));
    COUNT.store(list.len(), Ordering::Release);
    *all = Some(Arc::new(list));
    true
}

/// How many times a processor panicked (each panic was caught; the record went on).
pub fn panics() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

/// Runs every registered processor on `record`, in registration order, each panic caught and
/// counted. Called by every front end that builds records; a layer of one's own that builds
/// its records without [`record_from_event`](crate::capture::record_from_event) calls it too.
pub fn apply(record: &mut Record) {
    if COUNT.load(Ordering::Acquire) == 0 {
        return;
    }
    let Some(list) = PROCESSORS.read().unwrap_or_else(|e| e.into_inner()).clone() else { return };
    for p in list.iter() {
        if catch_unwind(AssertUnwindSafe(|| p(record))).is_err() {
            PANICS.fetch_add(1, Ordering::Relaxed);
        }
    }
}
