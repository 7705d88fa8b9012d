//! [`Record`]: the owned snapshot of one event, and [`Batch`]: records delivered together.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use tracing_core::Level;

/// A string that is usually `'static` (taken from a callsite's metadata) and owned otherwise
/// (for example a `log` record's target).
pub type Str = Cow<'static, str>;

/// A typed field value, as recorded from a `tracing` event or span or a `log` key-value.
///
/// Serialized as the plain JSON value (`"text"`, `42`, `1.5`, `true`); `Debug` and `Display`
/// text serialize as strings, so a round trip through JSON turns them into [`Value::Str`].
/// 128-bit integers (only used beyond the 64-bit range) serialize as decimal strings.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string recorded with `record_str`.
    Str(String),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A signed 128-bit integer (only when it does not fit an `i64`). Boxed: such values are
    /// rare, and an `i128` held inline would make every value 16-byte aligned, and every field
    /// of every record 8 bytes larger.
    I128(Box<i128>),
    /// An unsigned 128-bit integer (only when it does not fit a `u64`), boxed like
    /// [`Value::I128`].
    U128(Box<u128>),
    /// A floating point number.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// The `Debug` text of a value (`?value` in a macro, or any type without a typed record method).
    Debug(String),
    /// The `Display` text of a value (`%value` in a macro), or an error with its source chain.
    Display(String),
}

impl Value {
    /// The value as a string if it holds text (`Str`, `Debug` or `Display`).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Debug(s) | Value::Display(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an `i64` if it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I64(v) => Some(v),
            Value::U64(v) => i64::try_from(v).ok(),
            Value::I128(ref v) => i64::try_from(**v).ok(),
            Value::U128(ref v) => i64::try_from(**v).ok(),
            _ => None,
        }
    }

    /// The value as a `u64` if it is a non-negative integer that fits.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::I64(v) => u64::try_from(v).ok(),
            Value::U64(v) => Some(v),
            Value::I128(ref v) => u64::try_from(**v).ok(),
            Value::U128(ref v) => u64::try_from(**v).ok(),
            _ => None,
        }
    }

    /// The value as an `f64` if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F64(v) => Some(v),
            Value::I64(v) => Some(v as f64),
            Value::U64(v) => Some(v as f64),
            Value::I128(ref v) => Some(**v as f64),
            Value::U128(ref v) => Some(**v as f64),
            _ => None,
        }
    }

    /// The value as a `bool` if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// Bytes of heap this value holds (used for queue accounting).
    pub fn heap_size(&self) -> usize {
        match self {
            Value::I128(_) | Value::U128(_) => 16,
            _ => self.as_str().map_or(0, str::len),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) | Value::Debug(s) | Value::Display(s) => f.write_str(s),
            Value::I64(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::I128(v) => write!(f, "{v}"),
            Value::U128(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Str(v) | Value::Debug(v) | Value::Display(v) => s.serialize_str(v),
            Value::I64(v) => s.serialize_i64(*v),
            Value::U64(v) => s.serialize_u64(*v),
            // Beyond 64 bits JSON consumers disagree (and serde_json's Value refuses them):
            // written as decimal strings.
            Value::I128(v) => s.collect_str(v),
            Value::U128(v) => s.collect_str(v),
            Value::F64(v) => s.serialize_f64(*v),
            Value::Bool(v) => s.serialize_bool(*v),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
                Ok(Value::Str(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value::I64(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                Ok(Value::U64(v))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
                Ok(Value::I128(Box::new(v)))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
                Ok(Value::U128(Box::new(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                Ok(Value::F64(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Debug("()".to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// How many fields a [`Fields`] holds without an allocation of its own.
///
/// Most events carry a few fields: up to this many live inside the record itself (one
/// allocation less per record on the caller's thread, and one free less on the worker's);
/// more move to the heap together. Three keeps a queued `info!` with three fields in two spans
/// near 500 bytes.
pub const INLINE_FIELDS: usize = 3;

/// Named field values in the order they were recorded. A name recorded twice keeps its last value.
///
/// The first [`INLINE_FIELDS`] are stored inline (no allocation). Serialized as a JSON object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields(SmallVec<[(Str, Value); INLINE_FIELDS]>);

impl Fields {
    /// An empty set of fields.
    pub const fn new() -> Self {
        Fields(SmallVec::new_const())
    }

    /// An empty set of fields with room for `n` of them (no growth, no spare room held while
    /// the record is queued; up to [`INLINE_FIELDS`] take no allocation).
    pub fn with_capacity(n: usize) -> Self {
        Fields(SmallVec::with_capacity(n))
    }

    /// Sets `name` to `value`, replacing an earlier value of the same name.
    pub fn set(&mut self, name: impl Into<Str>, value: Value) {
        let name = name.into();
        if let Some(slot) = self.0.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
        } else {
            self.0.push((name, value));
        }
    }

    /// Appends without looking for an earlier value of the same name: for callers that know
    /// the names are unique (a tracing event's fields are).
    pub fn push_unique(&mut self, name: impl Into<Str>, value: Value) {
        self.0.push((name.into(), value));
    }

    /// The value of `name`, if recorded.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// A mutable reference to the value of `name`, if recorded.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.0.iter_mut().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Removes `name` and returns its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.remove(i).1)
    }

    /// The fields in recording order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> + '_ {
        self.0.iter().map(|(n, v)| (n.as_ref(), v))
    }

    /// Mutable access to the values in recording order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value)> + '_ {
        self.0.iter_mut().map(|(n, v)| (&**n, v))
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no field is recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes of heap these fields hold (used for queue accounting): nothing for the slots of
    /// up to [`INLINE_FIELDS`] fields, which are part of the record.
    pub fn heap_size(&self) -> usize {
        let slots = if self.0.spilled() { self.0.capacity() * std::mem::size_of::<(Str, Value)>() } else { 0 };
        slots
            + self
                .0
                .iter()
                .map(|(n, v)| {
                    let name = match n {
                        Cow::Borrowed(_) => 0,
                        Cow::Owned(s) => s.len(),
                    };
                    name + v.heap_size()
                })
                .sum::<usize>()
    }
}

impl<N: Into<Str>> FromIterator<(N, Value)> for Fields {
    fn from_iter<T: IntoIterator<Item = (N, Value)>>(iter: T) -> Self {
        let mut f = Fields::new();
        for (n, v) in iter {
            f.set(n, v);
        }
        f
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (n, v) in &self.0 {
            m.serialize_entry(n.as_ref(), v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of field names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut f = Fields::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    f.set(k, v);
                }
                Ok(f)
            }
        }
        d.deserialize_map(V)
    }
}

/// One span of the stack an event happened in: its name, target and fields.
///
/// Shared between the records of events inside the same span ([`Arc`]), so capturing an event
/// inside spans does not copy the span fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpanRecord {
    /// The span's name (`info_span!("request", ..)` → `request`).
    pub name: Str,
    /// The span's target.
    pub target: Str,
    /// The span's fields, with values recorded later by `Span::record` applied.
    pub fields: Fields,
}

/// The span stack of a record, from the root to the innermost span.
///
/// Shared: the events of one span stack hold the same list (one reference count, no copy of
/// the list per event), and an empty stack holds no allocation. Reads go through `Deref` to a
/// slice (`record.spans.iter()`, `record.spans.len()`, `&record.spans[..]`); a changed stack
/// is built from a `Vec` (`record.spans = vec![span].into()`) or changed in place with
/// [`Spans::make_mut`], which copies the list first if another record shares it.
/// Serialized as a JSON array of span objects.
#[derive(Clone, Default, PartialEq)]
pub struct Spans(Option<Arc<[Arc<SpanRecord>]>>);

impl Spans {
    /// An empty stack.
    pub const fn new() -> Self {
        Spans(None)
    }

    /// The spans, copied first if this list is shared with other records.
    pub fn make_mut(&mut self) -> &mut [Arc<SpanRecord>] {
        match &mut self.0 {
            None => &mut [],
            Some(list) => {
                if Arc::get_mut(list).is_none() {
                    *list = list.iter().cloned().collect();
                }
                Arc::get_mut(list).expect("a list just copied is not shared")
            }
        }
    }

    /// Empties the stack (other records sharing it keep theirs).
    pub fn clear(&mut self) {
        self.0 = None;
    }

    /// Adds `span` as the innermost span (the list is copied: meant for building a record by
    /// hand, not for a hot path).
    pub fn push(&mut self, span: Arc<SpanRecord>) {
        let mut list = Vec::with_capacity(self.len() + 1);
        list.extend(self.iter().cloned());
        list.push(span);
        *self = list.into();
    }

    /// Whether `self` and `other` are the same shared list (not just equal spans).
    pub fn ptr_eq(&self, other: &Spans) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl std::ops::Deref for Spans {
    type Target = [Arc<SpanRecord>];
    fn deref(&self) -> &[Arc<SpanRecord>] {
        self.0.as_deref().unwrap_or(&[])
    }
}

impl fmt::Debug for Spans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<Arc<SpanRecord>>> for Spans {
    fn from(v: Vec<Arc<SpanRecord>>) -> Self {
        if v.is_empty() {
            Spans(None)
        } else {
            Spans(Some(v.into()))
        }
    }
}

impl<const N: usize> From<[Arc<SpanRecord>; N]> for Spans {
    fn from(list: [Arc<SpanRecord>; N]) -> Self {
        Vec::from(list).into()
    }
}

impl FromIterator<Arc<SpanRecord>> for Spans {
    fn from_iter<T: IntoIterator<Item = Arc<SpanRecord>>>(iter: T) -> Self {
        iter.into_iter().collect::<Vec<_>>().into()
    }
}

impl<'a> IntoIterator for &'a Spans {
    type Item = &'a Arc<SpanRecord>;
    type IntoIter = std::slice::Iter<'a, Arc<SpanRecord>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Serialize for Spans {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Spans {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<Arc<SpanRecord>>::deserialize(d).map(Spans::from)
    }
}

/// Where a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A `tracing` event.
    #[default]
    Tracing,
    /// A `log` record (through the tracing bridge or watchbell-log's direct logger).
    Log,
    /// A notice made by watchbell itself (dropped records, suppressed counts, cap reached).
    Watchbell,
}

/// A stable callsite fingerprint: a 64-bit FNV-1a hash of level, target, file and line, plus an
/// optional salt. The message is never part of it, so events from one callsite with different
/// arguments share a fingerprint, across runs and across builds of the same source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Fingerprint(pub u64);

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

impl Fingerprint {
    /// Computes the fingerprint of a callsite. Each part is length-prefixed, so
    /// `("ab", "c")` and `("a", "bc")` differ.
    pub fn compute(level: Level, target: &str, file: Option<&str>, line: Option<u32>, salt: &[u8]) -> Self {
        let mut h = FNV_OFFSET;
        let part = |h: u64, b: &[u8]| fnv(fnv(h, &(b.len() as u32).to_le_bytes()), b);
        h = part(h, salt);
        h = part(h, level.as_str().as_bytes());
        h = part(h, target.as_bytes());
        h = part(h, file.unwrap_or("").as_bytes());
        h = part(h, &line.unwrap_or(0).to_le_bytes());
        Fingerprint(h)
    }

    /// The fingerprint as 16 lowercase hex digits.
    pub fn to_hex(self) -> String {
        format!("{:016x}", self.0)
    }

    /// Parses 16 hex digits back into a fingerprint.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 16 {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(Fingerprint)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Fingerprint::from_hex(&s).ok_or_else(|| de::Error::custom("expected 16 hex digits"))
    }
}

/// An owned, serializable snapshot of one event.
///
/// Built once on the caller's thread, only for events that pass a watchbell layer's filter.
/// Everything a sink needs is here: sinks never look at `tracing` state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the event happened (serialized as RFC 3339 UTC with microseconds).
    #[serde(with = "crate::time::serde_rfc3339")]
    pub time: SystemTime,
    /// The event's level.
    #[serde(with = "level_serde")]
    pub level: Level,
    /// The event's target (for `log` records, the original target).
    pub target: Str,
    /// The module path, when known.
    pub module: Option<Str>,
    /// The source file, when known.
    pub file: Option<Str>,
    /// The source line, when known.
    pub line: Option<u32>,
    /// The message (the event's `message` field; empty if it had none). Borrowed when the
    /// event's message is a literal without arguments (`info!("started")`): no copy is made.
    pub message: Str,
    /// The event's other fields.
    pub fields: Fields,
    /// The span stack from the root to the innermost span, shared with the other records of
    /// the same stack.
    #[serde(default)]
    pub spans: Spans,
    /// The name of the thread that logged, if it has one.
    pub thread_name: Option<Arc<str>>,
    /// A process-unique number of the thread that logged (1 is the first thread that logged).
    pub thread_id: u64,
    /// The id of the process that logged ([`std::process::id`], read once per process, see
    /// [`pid`]). Serialized as `"pid"`; a record read without one gets 0.
    #[serde(default)]
    pub pid: u32,
    /// The callsite fingerprint (level, target, file, line and the layer's salt).
    pub fingerprint: Fingerprint,
    /// How many records of the same fingerprint a rate limiter suppressed before this one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub suppressed: u64,
    /// Where the record came from.
    #[serde(default)]
    pub origin: Origin,
}

/// The id of this process ([`std::process::id`]), read once and then served from a static:
/// every record carries it in [`Record::pid`] at the cost of one atomic load.
///
/// A child made by `fork` without `exec` keeps its parent's cached id: such a child should
/// not log through layers its parent set up (their worker threads do not survive a fork).
pub fn pid() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Record {
    /// A record with the given level, target and message, the current time and thread, and
    /// nothing else. Used for watchbell's own notices and in tests.
    pub fn new(level: Level, target: impl Into<Str>, message: impl Into<String>) -> Self {
        let target = target.into();
        let (thread_name, thread_id) = crate::capture::current_thread();
        Record {
            time: SystemTime::now(),
            fingerprint: Fingerprint::compute(level, &target, None, None, b""),
            level,
            target,
            module: None,
            file: None,
            line: None,
            message: Cow::Owned(message.into()),
            fields: Fields::new(),
            spans: Spans::new(),
            thread_name,
            thread_id,
            pid: pid(),
            suppressed: 0,
            origin: Origin::Tracing,
        }
    }

    /// `file:line`, or the file alone, or `None`.
    pub fn location(&self) -> Option<String> {
        match (&self.file, self.line) {
            (Some(f), Some(l)) => Some(format!("{f}:{l}")),
            (Some(f), None) => Some(f.to_string()),
            _ => None,
        }
    }

    /// Looks a field up in the event's fields, then in the spans from the innermost outwards.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields.get(name).or_else(|| self.spans.iter().rev().find_map(|s| s.fields.get(name)))
    }

    /// An estimate of the memory this record holds, used for the byte bounds of queues and
    /// buffers. Span records shared with other records are counted in full (an upper bound).
    pub fn size_hint(&self) -> usize {
        let owned = |s: &Str| match s {
            Cow::Borrowed(_) => 0,
            Cow::Owned(s) => s.len(),
        };
        std::mem::size_of::<Record>()
            + owned(&self.target)
            + self.module.as_ref().map_or(0, owned)
            + self.file.as_ref().map_or(0, owned)
            + match &self.message {
                Cow::Borrowed(_) => 0,
                Cow::Owned(m) => m.capacity(),
            }
            + self.fields.heap_size()
            + self
                .spans
                .iter()
                .map(|s| std::mem::size_of::<SpanRecord>() + owned(&s.name) + s.fields.heap_size())
                .sum::<usize>()
    }

    /// Cuts the message and the text field values at character boundaries, each ending with
    /// [`MARKER`](crate::text::MARKER), until [`size_hint`](Self::size_hint) is at most
    /// `max_bytes`. The room left is shared fairly: texts shorter than their share stay whole,
    /// the longer ones are cut to equal lengths. Returns whether the record fits now (it may
    /// not: numbers, names and span fields are never cut). A record that already fits is left
    /// alone.
    ///
    /// ```
    /// use watchbell_core::Record;
    /// let mut r = Record::new(tracing::Level::ERROR, "app", "x".repeat(1 << 20));
    /// assert!(r.shrink_to(64 * 1024));
    /// assert!(r.size_hint() <= 64 * 1024);
    /// assert!(r.message.ends_with(watchbell_core::text::MARKER));
    /// assert!(!r.shrink_to(10)); // the fixed part alone is larger
    /// ```
    pub fn shrink_to(&mut self, max_bytes: usize) -> bool {
        use crate::text::{truncate_bytes, MARKER};
        if self.size_hint() <= max_bytes {
            return true;
        }
        if let Cow::Owned(m) = &mut self.message {
            m.shrink_to_fit();
        }
        // Text lengths: the message first, then the text fields.
        let mut lens: Vec<usize> = std::iter::once(self.message.len())
            .chain(self.fields.0.iter().map(|(_, v)| v.as_str().map_or(0, str::len)))
            .collect();
        let texts: usize = lens.iter().sum();
        let fixed = self.size_hint() - texts;
        let Some(mut room) = max_bytes.checked_sub(fixed) else { return false };
        // Water-filling: the shortest texts first, each whole if it fits its share.
        let mut order: Vec<usize> = (0..lens.len()).collect();
        order.sort_by_key(|&i| lens[i]);
        let mut cap = usize::MAX;
        for (k, &i) in order.iter().enumerate() {
            let share = room / (order.len() - k);
            if lens[i] > share {
                cap = share;
                break;
            }
            room -= lens[i];
        }
        if cap < MARKER.len() {
            return false;
        }
        for len in &mut lens {
            *len = (*len).min(cap);
        }
        if self.message.len() > lens[0] {
            let mut short = truncate_bytes(&self.message, lens[0], MARKER).into_owned();
            short.shrink_to_fit();
            self.message = Cow::Owned(short);
        }
        for ((_, v), &keep) in self.fields.0.iter_mut().zip(&lens[1..]) {
            let short = match v.as_str() {
                Some(s) if s.len() > keep => truncate_bytes(s, keep, MARKER).into_owned(),
                _ => continue,
            };
            *v = match v {
                Value::Debug(_) => Value::Debug(short),
                Value::Display(_) => Value::Display(short),
                _ => Value::Str(short),
            };
        }
        self.size_hint() <= max_bytes
    }
}

mod level_serde {
    use serde::{de, Deserialize, Deserializer, Serializer};
    use tracing_core::Level;

    pub(super) fn serialize<S: Serializer>(level: &Level, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(level.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Level, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<Level>().map_err(|_| de::Error::custom(format!("unknown level {s:?}")))
    }
}

/// Why the records of a [`Batch`] are delivered together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchReason {
    /// Independent records, one or several that the queue delivers together.
    Single,
    /// A fingers-crossed buffer released by a trigger: the last record is the trigger.
    Escalation,
    /// A closed scope's records: the first record is the significant one.
    Group,
    /// Records released by a flush or shutdown of a buffering handler.
    Flush,
}

/// Records delivered together, with the reason. Always owned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Why these records travel together.
    pub reason: BatchReason,
    /// The records, oldest first.
    pub records: Vec<Record>,
}

impl Batch {
    /// A batch of one record with reason [`BatchReason::Single`].
    pub fn single(record: Record) -> Self {
        Batch { reason: BatchReason::Single, records: vec![record] }
    }

    /// A batch with the given reason.
    pub fn new(reason: BatchReason, records: Vec<Record>) -> Self {
        Batch { reason, records }
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The record that matters most: the trigger (last) of an escalation, the first of a
    /// group, the most severe (then latest) otherwise.
    pub fn significant(&self) -> Option<&Record> {
        match self.reason {
            BatchReason::Escalation => self.records.last(),
            BatchReason::Group => self.records.first(),
            // tracing's Level orders ERROR as the smallest.
            _ => self.records.iter().rev().min_by_key(|r| r.level),
        }
    }

    /// Sum of the records' [`Record::size_hint`].
    pub fn size_hint(&self) -> usize {
        self.records.iter().map(Record::size_hint).sum()
    }
}
