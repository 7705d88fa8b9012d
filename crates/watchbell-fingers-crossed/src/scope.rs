//! The buffers: one [`ScopeCell`] per scope (span, thread or the whole process), the shared
//! state of one layer, and the global byte cap.

use std::cell::RefCell;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Instant;

use watchbell_core::capture;
use watchbell_core::{Batch, BatchReason, Flushed, Handler, Level, Record, Stats};

use crate::{FingersCrossedStats, Scope};

/// Makes the handler of a scope at its first delivery (see [`Inner::factory`](crate::Inner::factory)).
pub(crate) type Factory = Arc<dyn Fn(&Record, &[Record]) -> Arc<dyn Handler> + Send + Sync>;

/// Where the records of a scope go.
pub(crate) enum Target {
    /// One handler for every scope.
    Handler(Arc<dyn Handler>),
    /// A handler made per scope at its first delivery.
    Factory(Factory),
}

/// The counters of one layer, shared with its scopes (which may outlive the layer: a thread's
/// scope lives until the thread exits).
#[derive(Default)]
pub(crate) struct Counters {
    pub captured: AtomicU64,
    pub triggers: AtomicU64,
    pub escalated: AtomicU64,
    pub passed: AtomicU64,
    pub groups: AtomicU64,
    pub grouped: AtomicU64,
    pub discarded: AtomicU64,
    pub rotated: AtomicU64,
    pub shed: AtomicU64,
    pub panicked: AtomicU64,
    pub factory_calls: AtomicU64,
    pub scopes_open: AtomicU64,
    pub buffered_records: AtomicU64,
    pub buffered_bytes: AtomicU64,
}

/// The records withheld for one scope.
#[derive(Default)]
pub(crate) struct ScopeBuf {
    /// The records with their `size_hint`, oldest first.
    records: VecDeque<(Record, usize)>,
    /// The sum of the records' `size_hint`.
    bytes: usize,
    /// Triggered without `reset`: later records pass straight through.
    triggered: bool,
    /// Closed: its records were delivered or discarded; nothing is buffered any more.
    closed: bool,
    /// The handler a factory made for this scope.
    handler: Option<Arc<dyn Handler>>,
}

/// One scope's buffer, shared between the span extension (or thread-local, or the layer for the
/// global scope) that owns it and the layer's registry (weakly, for the global byte cap).
pub(crate) struct ScopeCell {
    counters: Arc<Counters>,
    buf: Mutex<ScopeBuf>,
    /// A copy of `buf.bytes` (written under the lock), read without it to pick what to shed.
    bytes: AtomicUsize,
}

impl ScopeCell {
    fn lock(&self) -> MutexGuard<'_, ScopeBuf> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for ScopeCell {
    /// A scope dropped without being closed (a span whose close this layer did not see, a
    /// thread-local freed with its thread): its records are discarded and counted.
    fn drop(&mut self) {
        let buf = self.buf.get_mut().unwrap_or_else(|e| e.into_inner());
        if !buf.closed {
            let c = &self.counters;
            c.discarded.fetch_add(buf.records.len() as u64, Relaxed);
            c.buffered_records.fetch_sub(buf.records.len() as u64, Relaxed);
            c.buffered_bytes.fetch_sub(buf.bytes as u64, Relaxed);
            c.scopes_open.fetch_sub(1, Relaxed);
        }
    }
}

/// Weak references to every scope buffer of a layer, pruned as scopes go away.
struct Registry {
    cells: Vec<Weak<ScopeCell>>,
    prune_at: usize,
}

/// The configuration and state of one layer.
pub(crate) struct Shared {
    pub id: u64,
    /// The configuration, as built.
    pub cfg: Settings,
    pub counters: Arc<Counters>,
    registry: Mutex<Registry>,
    global: OnceLock<Arc<ScopeCell>>,
    factory_handlers: Mutex<Vec<Weak<dyn Handler>>>,
    shedding: AtomicBool,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The settings [`Shared::new`] takes.
pub(crate) struct Settings {
    pub name: String,
    pub target: Target,
    pub owns_target: bool,
    pub action: Level,
    pub buffer_size: usize,
    pub scope_bytes: usize,
    pub total_bytes: usize,
    pub reset: bool,
    pub group: bool,
    pub scope: Scope,
    pub fallback_global: bool,
}

impl Shared {
    pub(crate) fn new(cfg: Settings) -> Self {
        Shared {
            id: NEXT_ID.fetch_add(1, Relaxed),
            cfg,
            counters: Arc::new(Counters::default()),
            registry: Mutex::new(Registry { cells: Vec::new(), prune_at: 1024 }),
            global: OnceLock::new(),
            factory_handlers: Mutex::new(Vec::new()),
            shedding: AtomicBool::new(false),
        }
    }

    /// A new, registered scope buffer.
    pub(crate) fn new_cell(&self) -> Arc<ScopeCell> {
        let cell = Arc::new(ScopeCell {
            counters: Arc::clone(&self.counters),
            buf: Mutex::new(ScopeBuf::default()),
            bytes: AtomicUsize::new(0),
        });
        self.counters.scopes_open.fetch_add(1, Relaxed);
        let mut reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if reg.cells.len() >= reg.prune_at {
            reg.cells.retain(|w| w.strong_count() > 0);
            reg.prune_at = (reg.cells.len() * 2).max(1024);
        }
        reg.cells.push(Arc::downgrade(&cell));
        cell
    }

    /// Every live scope buffer.
    fn live_cells(&self) -> Vec<Arc<ScopeCell>> {
        upgrade_live(&mut self.registry.lock().unwrap_or_else(|e| e.into_inner()).cells)
    }

    /// The process-wide scope.
    pub(crate) fn global_cell(&self) -> Arc<ScopeCell> {
        Arc::clone(self.global.get_or_init(|| self.new_cell()))
    }

    /// The current thread's scope of this layer (the global one while the thread exits).
    pub(crate) fn thread_cell(self: &Arc<Self>) -> Arc<ScopeCell> {
        let found = THREAD_SCOPES
            .try_with(|t| {
                let mut t = t.try_borrow_mut().ok()?;
                if let Some((_, _, c)) = t.0.iter().find(|(id, _, _)| *id == self.id) {
                    return Some(Arc::clone(c));
                }
                t.0.retain(|(_, layer, _)| layer.strong_count() > 0);
                let cell = self.new_cell();
                t.0.push((self.id, Arc::downgrade(self), Arc::clone(&cell)));
                Some(cell)
            })
            .ok()
            .flatten();
        found.unwrap_or_else(|| self.global_cell())
    }

    /// The scope of records that have no scope span.
    pub(crate) fn fallback_cell(self: &Arc<Self>) -> Arc<ScopeCell> {
        if self.cfg.fallback_global {
            self.global_cell()
        } else {
            self.thread_cell()
        }
    }

    /// Takes one record into `cell`: buffers it, or delivers the buffer with it (a trigger),
    /// or passes it through (after a trigger without reset).
    pub(crate) fn accept(&self, record: Record, cell: &ScopeCell) {
        let c = &self.counters;
        c.captured.fetch_add(1, Relaxed);
        let trigger = !self.cfg.group && record.level <= self.cfg.action;
        let mut buf = cell.lock();
        if buf.closed {
            drop(buf);
            c.discarded.fetch_add(1, Relaxed);
            return;
        }
        if buf.triggered {
            let handler = self.handler_of(&buf);
            drop(buf);
            c.passed.fetch_add(1, Relaxed);
            if let Some(h) = handler {
                self.call(|| h.handle(record));
            }
            return;
        }
        if trigger {
            let mut records = self.take_all(cell, &mut buf);
            // The ring holds `buffer_size` records with the trigger (Logbook's semantics).
            if self.cfg.buffer_size > 0 && records.len() >= self.cfg.buffer_size {
                let excess = records.len() + 1 - self.cfg.buffer_size;
                records.drain(..excess);
                c.rotated.fetch_add(excess as u64, Relaxed);
            }
            let handler = self.handler_for(&mut buf, &record, &records);
            if !self.cfg.reset {
                buf.triggered = true;
            }
            drop(buf);
            records.push(record);
            c.triggers.fetch_add(1, Relaxed);
            c.escalated.fetch_add(records.len() as u64, Relaxed);
            if let Some(h) = handler {
                self.call(|| h.handle_batch(Batch::new(BatchReason::Escalation, records)));
            }
            return;
        }
        let size = record.size_hint();
        buf.records.push_back((record, size));
        buf.bytes += size;
        let mut removed = 0usize;
        let mut evicted = 0u64;
        // Evicted records are dropped under the scope's lock: it is only contended by the
        // scope's own records and by the global cap's shedding.
        while (self.cfg.buffer_size > 0 && buf.records.len() > self.cfg.buffer_size)
            || (self.cfg.scope_bytes > 0 && buf.bytes > self.cfg.scope_bytes)
        {
            match evict_one(&mut buf, self.cfg.group) {
                Some(freed) => {
                    removed += freed;
                    evicted += 1;
                }
                None => break,
            }
        }
        cell.bytes.store(buf.bytes, Relaxed);
        drop(buf);
        // Net changes of the gauges (in the steady state of a full ring: none).
        if evicted > 0 {
            c.rotated.fetch_add(evicted, Relaxed);
        }
        // Deltas in two's complement: adding `0 - n` wraps to subtracting `n`.
        let records_delta = 1u64.wrapping_sub(evicted);
        if records_delta != 0 {
            c.buffered_records.fetch_add(records_delta, Relaxed);
        }
        let bytes_delta = (size as u64).wrapping_sub(removed as u64);
        if bytes_delta == 0 {
            return;
        }
        let total = c.buffered_bytes.fetch_add(bytes_delta, Relaxed).wrapping_add(bytes_delta);
        if total > self.cfg.total_bytes as u64 {
            self.shed();
        }
    }

    /// Empties a scope's buffer (locked as `buf`) and takes its records off the gauges.
    fn take_all(&self, cell: &ScopeCell, buf: &mut ScopeBuf) -> Vec<Record> {
        let records: Vec<Record> = buf.records.drain(..).map(|(r, _)| r).collect();
        let c = &self.counters;
        c.buffered_records.fetch_sub(records.len() as u64, Relaxed);
        c.buffered_bytes.fetch_sub(std::mem::take(&mut buf.bytes) as u64, Relaxed);
        cell.bytes.store(0, Relaxed);
        records
    }

    /// The handler records of this scope go to now (`None`: a factory that panicked).
    fn handler_of(&self, buf: &ScopeBuf) -> Option<Arc<dyn Handler>> {
        match &self.cfg.target {
            Target::Handler(h) => Some(Arc::clone(h)),
            Target::Factory(_) => buf.handler.clone(),
        }
    }

    /// The handler for a delivery of this scope, made by the factory on the first one.
    fn handler_for(&self, buf: &mut ScopeBuf, significant: &Record, others: &[Record]) -> Option<Arc<dyn Handler>> {
        match &self.cfg.target {
            Target::Handler(h) => Some(Arc::clone(h)),
            Target::Factory(f) => {
                if buf.handler.is_none() {
                    self.counters.factory_calls.fetch_add(1, Relaxed);
                    let made = catch_unwind(AssertUnwindSafe(|| capture::suppressed(|| f(significant, others))));
                    match made {
                        Ok(h) => {
                            self.remember_factory_handler(&h);
                            buf.handler = Some(h);
                        }
                        Err(_) => {
                            self.counters.panicked.fetch_add(1, Relaxed);
                        }
                    }
                }
                buf.handler.clone()
            }
        }
    }

    fn remember_factory_handler(&self, h: &Arc<dyn Handler>) {
        let mut list = self.factory_handlers.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() >= 64 && list.len().is_power_of_two() {
            list.retain(|w| w.strong_count() > 0);
        }
        list.push(Arc::downgrade(h));
    }

    fn factory_handlers(&self) -> Vec<Arc<dyn Handler>> {
        upgrade_live(&mut self.factory_handlers.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Calls the inner handler on watchbell's behalf: what it logs is not captured (no feedback),
    /// and a panic is caught and counted.
    fn call(&self, f: impl FnOnce()) {
        if catch_unwind(AssertUnwindSafe(|| capture::suppressed(f))).is_err() {
            self.counters.panicked.fetch_add(1, Relaxed);
        }
    }

    /// Closes a scope: in group mode its records go out as one `Group` batch, otherwise the
    /// records still withheld are discarded and counted.
    pub(crate) fn close(&self, cell: &ScopeCell) {
        let c = &self.counters;
        let mut buf = cell.lock();
        if buf.closed {
            return;
        }
        buf.closed = true;
        let records = self.take_all(cell, &mut buf);
        c.scopes_open.fetch_sub(1, Relaxed);
        if !self.cfg.group || records.is_empty() {
            buf.handler = None;
            drop(buf);
            c.discarded.fetch_add(records.len() as u64, Relaxed);
            return;
        }
        let handler = self.handler_for(&mut buf, &records[0], &records[1..]);
        buf.handler = None;
        drop(buf);
        c.groups.fetch_add(1, Relaxed);
        c.grouped.fetch_add(records.len() as u64, Relaxed);
        if let Some(h) = handler {
            self.call(|| h.handle_batch(Batch::new(BatchReason::Group, records)));
        }
    }

    /// Sheds the oldest records of the largest scopes until the total is 1/16 below the cap.
    fn shed(&self) {
        if self.shedding.swap(true, Relaxed) {
            return;
        }
        let c = &self.counters;
        let target = (self.cfg.total_bytes - self.cfg.total_bytes / 16) as u64;
        let cells = self.live_cells();
        let mut heap: BinaryHeap<(usize, usize)> =
            cells.iter().enumerate().map(|(i, cell)| (cell.bytes.load(Relaxed), i)).filter(|(b, _)| *b > 0).collect();
        while c.buffered_bytes.load(Relaxed) > target {
            let Some((_, i)) = heap.pop() else { break };
            let mut buf = cells[i].lock();
            if buf.closed {
                continue;
            }
            let Some(freed) = evict_one(&mut buf, self.cfg.group) else { continue };
            let left = buf.bytes;
            cells[i].bytes.store(left, Relaxed);
            drop(buf);
            c.shed.fetch_add(1, Relaxed);
            c.buffered_records.fetch_sub(1, Relaxed);
            c.buffered_bytes.fetch_sub(freed as u64, Relaxed);
            if left > 0 {
                heap.push((left, i));
            }
        }
        self.shedding.store(false, Relaxed);
    }

    pub(crate) fn stats(&self) -> FingersCrossedStats {
        let c = &self.counters;
        FingersCrossedStats {
            name: self.cfg.name.clone(),
            captured: c.captured.load(Relaxed),
            triggers: c.triggers.load(Relaxed),
            escalated: c.escalated.load(Relaxed),
            passed_through: c.passed.load(Relaxed),
            groups: c.groups.load(Relaxed),
            grouped: c.grouped.load(Relaxed),
            discarded: c.discarded.load(Relaxed),
            rotated: c.rotated.load(Relaxed),
            shed: c.shed.load(Relaxed),
            panicked: c.panicked.load(Relaxed),
            factory_calls: c.factory_calls.load(Relaxed),
            open_scopes: c.scopes_open.load(Relaxed),
            buffered_records: c.buffered_records.load(Relaxed),
            buffered_bytes: c.buffered_bytes.load(Relaxed),
        }
    }

    pub(crate) fn flush(&self, deadline: Instant) -> Flushed {
        let mut done = Flushed::COMPLETE;
        if let Target::Handler(h) = &self.cfg.target {
            done = done.and(h.flush(deadline));
        }
        for h in self.factory_handlers() {
            done = done.and(h.flush(deadline));
        }
        done
    }

    pub(crate) fn shutdown(&self, deadline: Instant) -> Flushed {
        for cell in self.live_cells() {
            self.close(&cell);
        }
        let mut done = Flushed::COMPLETE;
        if let Target::Handler(h) = &self.cfg.target {
            done = done.and(if self.cfg.owns_target { h.shutdown(deadline) } else { h.flush(deadline) });
        }
        for h in self.factory_handlers() {
            done = done.and(h.shutdown(deadline));
        }
        done
    }

    pub(crate) fn core_stats(&self, out: &mut Vec<Stats>) {
        let s = self.stats();
        out.push(Stats {
            name: s.name.clone(),
            accepted: s.captured,
            delivered: s.escalated + s.passed_through + s.grouped,
            dropped: s.discarded + s.rotated + s.shed,
            panicked: s.panicked,
            queued: s.buffered_records,
            queued_bytes: s.buffered_bytes,
            ..Stats::default()
        });
        if self.cfg.owns_target {
            if let Target::Handler(h) = &self.cfg.target {
                h.stats(out);
            }
        }
        for h in self.factory_handlers() {
            h.stats(out);
        }
    }
}

/// The live entries of a list of weak references; the dead ones are pruned.
fn upgrade_live<T: ?Sized>(list: &mut Vec<Weak<T>>) -> Vec<Arc<T>> {
    let mut live = Vec::with_capacity(list.len());
    list.retain(|w| match w.upgrade() {
        Some(x) => {
            live.push(x);
            true
        }
        None => false,
    });
    live
}

/// Drops the oldest record (in group mode the oldest after the first, which is the
/// significant one) and returns its size.
fn evict_one(buf: &mut ScopeBuf, keep_first: bool) -> Option<usize> {
    let (_, size) = if keep_first {
        if buf.records.len() < 2 {
            return None;
        }
        buf.records.remove(1)?
    } else {
        buf.records.pop_front()?
    };
    buf.bytes = buf.bytes.saturating_sub(size);
    Some(size)
}

/// The per-thread scopes of every layer on this thread; closed when the thread exits.
struct ThreadScopes(Vec<(u64, Weak<Shared>, Arc<ScopeCell>)>);

impl Drop for ThreadScopes {
    fn drop(&mut self) {
        for (_, layer, cell) in self.0.drain(..) {
            if let Some(layer) = layer.upgrade() {
                layer.close(&cell);
            }
        }
    }
}

thread_local! {
    static THREAD_SCOPES: RefCell<ThreadScopes> = const { RefCell::new(ThreadScopes(Vec::new())) };
}

/// The scope a span belongs to, for one layer: a slot shared by the scope span (the owner, which
/// closes it) and every span below it, filled with the buffer at the scope's first record.
pub(crate) struct Link {
    pub(crate) layer: u64,
    pub(crate) slot: Arc<OnceLock<Arc<ScopeCell>>>,
    pub(crate) owner: bool,
}

/// The scope links of the layers that see one span, kept in the span's extensions: found
/// from the event's innermost span in one lookup.
pub(crate) struct SpanScopes(pub(crate) Vec<Link>);

impl SpanScopes {
    pub(crate) fn find(&self, layer: u64) -> Option<&Link> {
        self.0.iter().find(|l| l.layer == layer)
    }
}

impl fmt::Debug for SpanScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanScopes").field("layers", &self.0.len()).finish()
    }
}
