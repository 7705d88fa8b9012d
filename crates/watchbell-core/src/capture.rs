//! Capture: the layer that turns a `tracing::Event` into an owned [`Record`] and hands it to a
//! [`Handler`], and the thread-local state that keeps watchbell's own threads out of it.
//!
//! Span fields are recorded into the span's extensions when the span is created
//! (`on_new_span`) and updated by `Span::record` (`on_record`); an event's record then shares
//! them through an [`Arc`], so capture inside deep span stacks stays cheap.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use smallvec::SmallVec;
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record as SpanValues};
use tracing_core::{Event, Level, Metadata, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::filter::LayerFilter;
use crate::handler::Handler;
use crate::record::{Fields, Fingerprint, Origin, Record, SpanRecord, Spans, Str, Value};

static NEXT_THREAD_ID: AtomicU64 = AtomicU64::new(1);
static CAPTURE_PANICS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static THREAD: (Option<Arc<str>>, u64) = (
        std::thread::current().name().map(Arc::from),
        NEXT_THREAD_ID.fetch_add(1, Ordering::Relaxed),
    );
    static SUPPRESS: Cell<u32> = const { Cell::new(0) };
    static LOG_CONTEXT: RefCell<Option<LogContext>> = const { RefCell::new(None) };
    /// Fingerprints of recently seen callsites, keyed by metadata address and salt hash.
    static FINGERPRINTS: RefCell<[(usize, u64, Fingerprint); 64]> =
        const { RefCell::new([(0, 0, Fingerprint(0)); 64]) };
    /// The constant messages of recently seen callsites (see [`constant_message`]), keyed by
    /// metadata address; `None` for a callsite whose first message was not kept.
    static MESSAGES: RefCell<[(usize, Option<&'static str>); 128]> =
        const { RefCell::new([(0, None); 128]) };
}

/// Messages up to this many bytes are built on the stack, and may be kept as a callsite's
/// constant message.
const MESSAGE_INLINE: usize = 128;

/// The most bytes of constant messages kept for the life of the process.
const CONSTANT_MESSAGES_BUDGET: usize = 256 * 1024;

/// The first message of each callsite (`None` when it was not kept), kept for the life of the
/// process and shared by threads, and the bytes kept so far. Read under the read lock: only a
/// callsite's first event takes the write lock.
static CONSTANT_MESSAGES: RwLock<Option<ConstantMessages>> = RwLock::new(None);

/// Each callsite's kept first message, by metadata address, and the bytes kept in all.
type ConstantMessages = (HashMap<usize, Option<&'static str>>, usize);

/// The `'static` text equal to `text` if it is the message this callsite logged first.
///
/// Most events log a literal (`info!(user, "payment accepted")`), the same text every time, but
/// `tracing` hands it over as `fmt::Arguments` that can only be formatted. So the first message
/// of each callsite (one built on the stack, so up to [`MESSAGE_INLINE`] bytes;
/// [`CONSTANT_MESSAGES_BUDGET`] bytes in all for the process, then none) is kept for the life
/// of the process, and a later message equal to it is borrowed from there instead of being
/// copied into each record. A callsite whose messages vary just pays a comparison.
fn constant_message(meta: &'static Metadata<'static>, text: &[u8]) -> Option<&'static str> {
    let key = meta as *const Metadata<'static> as usize;
    let look_up = || {
        let known =
            CONSTANT_MESSAGES.read().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|m| m.0.get(&key).copied());
        if let Some(kept) = known {
            return kept;
        }
        let mut guard = CONSTANT_MESSAGES.write().unwrap_or_else(|e| e.into_inner());
        let (map, bytes) = guard.get_or_insert_with(|| (HashMap::new(), 0));
        *map.entry(key).or_insert_with(|| {
            let text = std::str::from_utf8(text).ok()?;
            if *bytes + text.len() > CONSTANT_MESSAGES_BUDGET {
                return None;
            }
            *bytes += text.len();
            Some(&*Box::leak(text.to_owned().into_boxed_str()))
        })
    };
    let kept = MESSAGES
        .try_with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else { return look_up() };
            let slot = &mut cache[(key >> 4) % 128];
            if slot.0 != key {
                *slot = (key, look_up());
            }
            slot.1
        })
        .unwrap_or_else(|_| look_up());
    kept.filter(|m| m.as_bytes() == text)
}

/// An event's message while it is recorded: on the stack up to [`MESSAGE_INLINE`] bytes.
struct MessageText {
    inline: [u8; MESSAGE_INLINE],
    len: usize,
    heap: Option<String>,
}

impl MessageText {
    fn new() -> Self {
        MessageText { inline: [0; MESSAGE_INLINE], len: 0, heap: None }
    }

    fn is_empty(&self) -> bool {
        self.heap.as_ref().map_or(self.len == 0, String::is_empty)
    }

    fn set(&mut self, text: String) {
        self.heap = Some(text);
    }

    /// The message for the record: borrowed when it is its callsite's constant message.
    fn finish(self, meta: Option<&'static Metadata<'static>>) -> Str {
        if let Some(heap) = self.heap {
            return Cow::Owned(heap);
        }
        let text = &self.inline[..self.len];
        if text.is_empty() {
            return Cow::Borrowed("");
        }
        if let Some(m) = meta.and_then(|meta| constant_message(meta, text)) {
            return Cow::Borrowed(m);
        }
        // Only whole `&str`s are ever copied in: always UTF-8.
        Cow::Owned(String::from_utf8_lossy(text).into_owned())
    }
}

impl fmt::Write for MessageText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(heap) = &mut self.heap {
            heap.push_str(s);
        } else if self.len + s.len() <= MESSAGE_INLINE {
            self.inline[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
        } else {
            let mut heap = String::with_capacity(self.len + s.len());
            heap.push_str(&String::from_utf8_lossy(&self.inline[..self.len]));
            heap.push_str(s);
            self.heap = Some(heap);
        }
        Ok(())
    }
}

/// The fingerprint of a tracing callsite (whose metadata is `'static` and unique), computed
/// once per thread and callsite rather than per event.
fn callsite_fingerprint(meta: &'static Metadata<'static>, salt: &[u8]) -> Fingerprint {
    let compute = || Fingerprint::compute(*meta.level(), meta.target(), meta.file(), meta.line(), salt);
    let key = meta as *const Metadata<'static> as usize;
    // The salt's own hash tells cache entries of differently salted layers apart; the usual
    // empty salt costs nothing to hash.
    let salt_key = if salt.is_empty() { 0 } else { Fingerprint::compute(Level::TRACE, "", None, None, salt).0 | 1 };
    FINGERPRINTS
        .try_with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else { return compute() };
            let slot = &mut cache[(key >> 4) % 64];
            if slot.0 == key && slot.1 == salt_key {
                return slot.2;
            }
            let fp = compute();
            *slot = (key, salt_key, fp);
            fp
        })
        .unwrap_or_else(|_| compute())
}

/// The current thread's name and watchbell's process-unique number for it.
pub fn current_thread() -> (Option<Arc<str>>, u64) {
    THREAD.try_with(|t| t.clone()).unwrap_or((None, 0))
}

/// Marks the current thread as one of watchbell's own: no event emitted on it, by watchbell or
/// by any library it calls (HTTP, SMTP and database clients), is ever captured by a watchbell
/// layer. Every worker thread and every runtime thread watchbell starts calls this first.
///
/// Events from such threads still reach the application's other layers (a `fmt` layer shows
/// them), they are only kept out of watchbell's sinks: that is what breaks the feedback loop.
pub fn mark_current_thread() {
    let _ = SUPPRESS.try_with(|s| s.set(s.get().saturating_add(1)));
}

/// Whether capture is suppressed on this thread (see [`mark_current_thread`] and [`suppressed`]).
#[inline]
pub fn is_suppressed() -> bool {
    SUPPRESS.try_with(|s| s.get() > 0).unwrap_or(true)
}

/// Runs `f` with capture suppressed on the current thread: for code that runs on an
/// application thread but on watchbell's behalf.
pub fn suppressed<R>(f: impl FnOnce() -> R) -> R {
    let _quiet = suppress();
    f()
}

/// Suppresses capture on the current thread until the returned guard is dropped: the guard
/// form of [`suppressed`], for code on an application thread that calls a client on
/// watchbell's behalf (a database client that logs through `log` or `tracing`, say).
pub fn suppress() -> Suppressed {
    mark_current_thread();
    Suppressed(std::marker::PhantomData)
}

/// Capture stays suppressed on this thread while this lives (see [`suppress`]). Not `Send`:
/// it ends on the thread that began it.
#[must_use = "capture is suppressed only while the guard lives"]
#[derive(Debug)]
pub struct Suppressed(std::marker::PhantomData<*const ()>);

impl Drop for Suppressed {
    fn drop(&mut self) {
        let _ = SUPPRESS.try_with(|s| s.set(s.get().saturating_sub(1)));
    }
}

/// How many times building a record or handing it to a handler panicked (a field's `Debug`
/// implementation that panics, say). The panic is caught, the event is skipped, the application
/// goes on.
pub fn capture_panics() -> u64 {
    CAPTURE_PANICS.load(Ordering::Relaxed)
}

/// Builds a record with `build` and hands it to `handler`, on the caller's thread, with any panic
/// in either caught and counted in [`capture_panics`]: what [`CaptureLayer`] does with an event,
/// for other front ends (watchbell-log's `DirectLogger`).
pub fn hand_over(handler: &dyn Handler, build: impl FnOnce() -> Record) {
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.handle(build())));
    if caught.is_err() {
        CAPTURE_PANICS.fetch_add(1, Ordering::Relaxed);
    }
}

/// What watchbell-log's bridge knows about a `log` record that it is dispatching as a tracing
/// event: the original message and the key-values as typed fields.
#[derive(Clone, Debug, Default)]
pub struct LogContext {
    /// The message without the key-values the bridge appended for text layers.
    pub message: String,
    /// The record's key-values.
    pub fields: Fields,
}

/// Runs `f` (which dispatches a `log` record as a tracing event) with `cx` visible to every
/// watchbell layer that captures the event on this thread. Used by watchbell-log.
pub fn with_log_context<R>(cx: LogContext, f: impl FnOnce() -> R) -> R {
    struct Clear(Option<LogContext>);
    impl Drop for Clear {
        fn drop(&mut self) {
            let prev = self.0.take();
            let _ = LOG_CONTEXT.try_with(|c| *c.borrow_mut() = prev);
        }
    }
    let prev = LOG_CONTEXT.try_with(|c| c.borrow_mut().replace(cx)).ok().flatten();
    let _clear = Clear(prev);
    f()
}

/// The span data watchbell keeps in each span's extensions.
#[derive(Debug)]
struct SpanData(Arc<SpanRecord>);

/// Records field values into [`Fields`], and the `message` field into a string.
struct FieldVisitor<'a> {
    fields: &'a mut Fields,
    message: Option<&'a mut MessageText>,
    skip_log_fields: bool,
    /// Whether a name may already be present (span updates); an event's names are unique.
    dedupe: bool,
}

impl FieldVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if self.skip_log_fields && name.starts_with("log.") {
            return;
        }
        if name == "message" {
            if let Some(m) = self.message.as_deref_mut() {
                match value {
                    Value::Str(s) | Value::Debug(s) | Value::Display(s) if m.is_empty() => m.set(s),
                    v => {
                        let _ = write!(m, "{v}");
                    }
                }
                return;
            }
        }
        if self.dedupe {
            self.fields.set(Cow::Borrowed(name), value);
        } else {
            self.fields.push_unique(Cow::Borrowed(name), value);
        }
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::F64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::U64(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.put(field, i64::try_from(value).map_or_else(|_| Value::I128(Box::new(value)), Value::I64));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.put(field, u64::try_from(value).map_or_else(|_| Value::U128(Box::new(value)), Value::U64));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::Str(value.to_owned()));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(s) = source {
            let _ = write!(text, ": {s}");
            source = s.source();
        }
        self.put(field, Value::Display(text));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            if let Some(m) = self.message.as_deref_mut() {
                let _ = write!(m, "{value:?}");
                return;
            }
        }
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.put(field, Value::Debug(s));
    }
}

/// Builds a [`Record`] from an event. `salt` goes into the fingerprint.
///
/// Events that came from `log` through tracing-log carry the `log` record's own target,
/// module, file and line; key-values given by watchbell-log's bridge become fields.
///
/// The span stack is looked up span by span for every event; a layer that captures many
/// events uses [`record_from_event_in`], which keeps each span's stack.
pub fn record_from_event<S>(event: &Event<'_>, ctx: &Context<'_, S>, salt: &[u8]) -> Record
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    build_record(event, ctx, salt, None)
}

/// [`record_from_event`] for the layer `layer`: the events this layer captures inside one span
/// share one span stack ([`Spans`]), built at the first of them and kept in the span's
/// extensions for this layer (its filters decide which spans are in it), instead of one list
/// per event. After a span's fields are recorded later (`Span::record`, anywhere), a kept stack
/// is checked against its spans at its next event, and built again if one of them changed.
pub fn record_from_event_in<S, L: ?Sized>(layer: &L, event: &Event<'_>, ctx: &Context<'_, S>, salt: &[u8]) -> Record
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    build_record(event, ctx, salt, Some(layer as *const L as *const () as usize))
}

/// Bumped whenever a span's fields change after its creation: a span stack kept before is then
/// checked against the spans before it is used again.
static SPAN_EPOCH: AtomicU64 = AtomicU64::new(0);

/// The span stacks built for events inside a span, one per capturing layer: (layer, the epoch
/// at which the stack was last known current, the stack).
struct StackCache(SmallVec<[(usize, AtomicU64, Spans); 2]>);

/// The stack of spans an event is in, from the root: kept per layer in the innermost span when
/// `layer` is given.
///
/// A kept stack is used as it is while no span anywhere changed its fields since it was last
/// known current. Otherwise the spans are looked up again and compared with it: the same spans
/// make it current again (no new list), a changed one makes a new list.
fn span_stack<S>(event: &Event<'_>, ctx: &Context<'_, S>, layer: Option<usize>) -> Spans
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(mut scope) = ctx.event_scope(event) else { return Spans::new() };
    let Some(leaf) = scope.next() else { return Spans::new() };
    // Read before the spans are: a change made meanwhile makes the next event check again.
    let epoch = SPAN_EPOCH.load(Ordering::Acquire);
    let mut stack: SmallVec<[Arc<SpanRecord>; 16]> = SmallVec::new();
    let mut kept = None;
    {
        let ext = leaf.extensions();
        if let Some(key) = layer {
            if let Some((_, current, spans)) = ext.get::<StackCache>().and_then(|c| c.0.iter().find(|e| e.0 == key)) {
                if current.load(Ordering::Acquire) == epoch {
                    return spans.clone();
                }
                kept = Some(spans.clone());
            }
        }
        if let Some(d) = ext.get::<SpanData>() {
            stack.push(Arc::clone(&d.0));
        }
    }
    // Walked from the innermost span outwards (what the registry does cheaply) into a stack
    // buffer, then taken from the root into a list of exactly the stack's depth.
    for span in scope {
        if let Some(d) = span.extensions().get::<SpanData>() {
            stack.push(Arc::clone(&d.0));
        }
    }
    let Some(key) = layer else {
        return (0..stack.len()).filter_map(|_| stack.pop()).collect();
    };
    if let Some(kept) = kept {
        let same = kept.len() == stack.len() && kept.iter().zip(stack.iter().rev()).all(|(a, b)| Arc::ptr_eq(a, b));
        if same {
            if let Some(e) = leaf.extensions().get::<StackCache>().and_then(|c| c.0.iter().find(|e| e.0 == key)) {
                e.1.fetch_max(epoch, Ordering::AcqRel);
            }
            return kept;
        }
    }
    let spans: Spans = (0..stack.len()).filter_map(|_| stack.pop()).collect();
    let mut ext = leaf.extensions_mut();
    match ext.get_mut::<StackCache>() {
        Some(cache) => match cache.0.iter_mut().find(|e| e.0 == key) {
            Some(entry) => *entry = (key, AtomicU64::new(epoch), spans.clone()),
            None => cache.0.push((key, AtomicU64::new(epoch), spans.clone())),
        },
        None => {
            let mut entries = SmallVec::new();
            entries.push((key, AtomicU64::new(epoch), spans.clone()));
            ext.insert(StackCache(entries));
        }
    }
    spans
}

fn build_record<S>(event: &Event<'_>, ctx: &Context<'_, S>, salt: &[u8], layer: Option<usize>) -> Record
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let time = SystemTime::now();
    let meta = event.metadata();
    let normalized = event.normalized_metadata();
    let mut message = MessageText::new();
    // Exactly the room the event's fields need (the message is not one of them): a queued
    // record holds no spare capacity.
    let names = meta.fields();
    let room = match names.len() {
        // Inline storage holds these whatever the message (see `INLINE_FIELDS`): no need to
        // look the message up.
        n if n <= crate::record::INLINE_FIELDS => n,
        n => n - usize::from(names.field("message").is_some()),
    };
    let mut fields = Fields::with_capacity(room);
    event.record(&mut FieldVisitor {
        fields: &mut fields,
        message: Some(&mut message),
        skip_log_fields: normalized.is_some(),
        dedupe: false,
    });
    let (message, target, module, file, line, origin): (Str, Str, Option<Str>, Option<Str>, Option<u32>, Origin) =
        match &normalized {
            Some(n) => {
                let mut message = message.finish(None);
                if let Ok(Some(cx)) = LOG_CONTEXT.try_with(|c| c.borrow().clone()) {
                    message = Cow::Owned(cx.message);
                    for (k, v) in cx.fields.iter() {
                        fields.set(k.to_owned(), v.clone());
                    }
                }
                (
                    message,
                    Cow::Owned(n.target().to_owned()),
                    n.module_path().map(|m| Cow::Owned(m.to_owned())),
                    n.file().map(|f| Cow::Owned(f.to_owned())),
                    n.line(),
                    Origin::Log,
                )
            }
            None => (
                message.finish(Some(meta)),
                Cow::Borrowed(meta.target()),
                meta.module_path().map(Cow::Borrowed),
                meta.file().map(Cow::Borrowed),
                meta.line(),
                Origin::Tracing,
            ),
        };
    #[cfg(feature = "opentelemetry")]
    crate::otel::add_ids(&mut fields);
    let level = *meta.level();
    let spans = span_stack(event, ctx, layer);
    let (thread_name, thread_id) = current_thread();
    let fingerprint = match normalized {
        None => callsite_fingerprint(meta, salt),
        Some(_) => Fingerprint::compute(level, &target, file.as_deref(), line, salt),
    };
    let mut record = Record {
        time,
        fingerprint,
        level,
        target,
        module,
        file,
        line,
        message,
        fields,
        spans,
        thread_name,
        thread_id,
        pid: crate::record::pid(),
        suppressed: 0,
        origin,
    };
    crate::processor::apply(&mut record);
    record
}

/// Records a new span's fields into its extensions (once, whichever watchbell layer sees it first).
/// Records a new span's name and fields into its extensions, where [`record_from_event`] finds
/// them (once per span, shared by every watchbell layer). A layer of its own that builds
/// records with [`record_from_event`] calls this from its `on_new_span`, and
/// [`record_span_values`] from its `on_record`. Skipped on watchbell's own threads; a panic in
/// a field's formatting is caught.
pub fn record_new_span<S>(attrs: &Attributes<'_>, id: &Id, ctx: &Context<'_, S>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if is_suppressed() {
        return;
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store_span(attrs, id, ctx)));
}

/// Records fields given to a span after its creation (`span.record(..)`); see
/// [`record_new_span`].
pub fn record_span_values<S>(id: &Id, values: &SpanValues<'_>, ctx: &Context<'_, S>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if is_suppressed() {
        return;
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| update_span(id, values, ctx)));
}

fn store_span<S>(attrs: &Attributes<'_>, id: &Id, ctx: &Context<'_, S>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(span) = ctx.span(id) else { return };
    if span.extensions().get::<SpanData>().is_some() {
        return;
    }
    let meta = span.metadata();
    let mut fields = Fields::new();
    attrs.record(&mut FieldVisitor { fields: &mut fields, message: None, skip_log_fields: false, dedupe: false });
    let data = SpanData(Arc::new(SpanRecord {
        name: Cow::Borrowed(meta.name()),
        target: Cow::Borrowed(meta.target()),
        fields,
    }));
    let mut ext = span.extensions_mut();
    if ext.get_mut::<SpanData>().is_none() {
        ext.insert(data);
    }
}

fn update_span<S>(id: &Id, values: &SpanValues<'_>, ctx: &Context<'_, S>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(span) = ctx.span(id) else { return };
    let mut ext = span.extensions_mut();
    if let Some(data) = ext.get_mut::<SpanData>() {
        let rec = Arc::make_mut(&mut data.0);
        values.record(&mut FieldVisitor {
            fields: &mut rec.fields,
            message: None,
            skip_log_fields: false,
            dedupe: true,
        });
        // After the change: a stack built from now on has it, one kept before is checked.
        SPAN_EPOCH.fetch_add(1, Ordering::Release);
    }
}

/// The generic capture layer: every event that reaches it becomes a [`Record`] handed to its
/// handler. Use it through [`CaptureLayer::with_level`] or [`CaptureLayer::filtered`], which add
/// watchbell's per-layer filter, so that the layer's level never hides events from the
/// application's other layers.
///
/// ```
/// use std::sync::Arc;
/// use tracing_subscriber::prelude::*;
/// use watchbell_core::{CaptureLayer, Handler, Record};
///
/// struct Print;
/// impl Handler for Print {
///     fn handle(&self, record: Record) {
///         println!("{} {}", record.level, record.message);
///     }
/// }
///
/// let layer = CaptureLayer::new(Arc::new(Print)).with_level(tracing::Level::WARN);
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!("not captured");
///     tracing::warn!(user = "bob", "captured");
/// });
/// ```
#[derive(Clone)]
pub struct CaptureLayer {
    handler: Arc<dyn Handler>,
    salt: Arc<[u8]>,
}

impl fmt::Debug for CaptureLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureLayer").field("salt_len", &self.salt.len()).finish_non_exhaustive()
    }
}

impl CaptureLayer {
    /// A capture layer that hands every event it sees to `handler`.
    pub fn new(handler: Arc<dyn Handler>) -> Self {
        CaptureLayer { handler, salt: Arc::from(&b""[..]) }
    }

    /// Mixes `salt` into every fingerprint (for example the app id, so that two apps sharing a
    /// ticket database do not share tickets).
    pub fn with_salt(mut self, salt: impl AsRef<[u8]>) -> Self {
        self.salt = Arc::from(salt.as_ref());
        self
    }

    /// The handler records go to.
    pub fn handler(&self) -> &Arc<dyn Handler> {
        &self.handler
    }

    /// This layer behind watchbell's per-layer filter at `level` (events of `level` and more
    /// severe are captured; spans of every level are recorded for their fields).
    pub fn with_level<S>(self, level: Level) -> tracing_subscriber::filter::Filtered<Self, LayerFilter, S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        self.filtered(LayerFilter::new(level))
    }

    /// This layer behind the given watchbell filter.
    pub fn filtered<S>(self, filter: LayerFilter) -> tracing_subscriber::filter::Filtered<Self, LayerFilter, S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        Layer::<S>::with_filter(self, filter)
    }
}

impl<S> Layer<S> for CaptureLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        record_new_span(attrs, id, &ctx);
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, ctx: Context<'_, S>) {
        record_span_values(id, values, &ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if is_suppressed() {
            return;
        }
        // Neither a panicking `Debug` field nor a panicking handler unwinds into the application.
        hand_over(&*self.handler, || record_from_event_in(self, event, &ctx, &self.salt));
    }
}
