//! journald's native protocol: the entry encoding, and the sink that sends it (a datagram, or a
//! sealed memfd when the entry is too large for one).

use std::io::{ErrorKind, Write};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use watchbell_core::record::Value;
use watchbell_core::{Batch, Level, Outcome, Record, Sink};

/// The fields watchbell sets itself: an event field of the same name gets the `F_` prefix.
pub(crate) const OWN_FIELDS: &[&str] = &[
    "MESSAGE",
    "PRIORITY",
    "SYSLOG_IDENTIFIER",
    "TARGET",
    "CODE_FILE",
    "CODE_LINE",
    "CODE_MODULE",
    "THREAD_NAME",
    "THREAD_ID",
    "FINGERPRINT",
    "WATCHBELL_TIME",
];

/// The longest field name journald takes.
const MAX_NAME: usize = 64;

/// A journal field name for `name`: ASCII letters upper-cased, digits and `_` kept, anything
/// else `_`, at most 64 characters; `F_` in front of a name that would start with `_` or a
/// digit. `None` for the empty name.
///
/// ```
/// use watchbell_journald::field_name;
/// assert_eq!(field_name("user.id").as_deref(), Some("USER_ID"));
/// assert_eq!(field_name("_PID").as_deref(), Some("F__PID"));
/// assert_eq!(field_name("2fa").as_deref(), Some("F_2FA"));
/// assert_eq!(field_name("é").as_deref(), Some("F__"));
/// assert_eq!(field_name(""), None);
/// ```
pub fn field_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(name.len().min(MAX_NAME) + 2);
    let first = name.chars().next()?;
    if !first.is_ascii_alphabetic() {
        out.push_str("F_");
    }
    for c in name.chars() {
        if out.len() >= MAX_NAME {
            break;
        }
        out.push(if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' });
    }
    Some(out)
}

/// Writes [`field_name`]`(name)` into `buf`, returning its length (0 for the empty name).
fn name_into(name: &str, buf: &mut [u8; MAX_NAME]) -> usize {
    let Some(&first) = name.as_bytes().first() else { return 0 };
    let mut len = 0;
    // A non-ASCII first char starts with a byte that is not an ASCII letter either.
    if !first.is_ascii_alphabetic() {
        buf[..2].copy_from_slice(b"F_");
        len = 2;
    }
    if name.is_ascii() {
        let take = name.len().min(MAX_NAME - len);
        for (d, &b) in buf[len..].iter_mut().zip(&name.as_bytes()[..take]) {
            *d = if b.is_ascii_alphanumeric() { b.to_ascii_uppercase() } else { b'_' };
        }
        len += take;
    } else {
        for c in name.chars() {
            if len >= MAX_NAME {
                break;
            }
            buf[len] = if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() as u8 } else { b'_' };
            len += 1;
        }
    }
    len
}

/// Appends an event field's journal name: [`field_name`], with `F_` before the names
/// watchbell sets itself. Returns `false` (and appends nothing) for the empty name.
fn push_user_field(out: &mut Vec<u8>, name: &str) -> bool {
    let mut buf = [0u8; MAX_NAME];
    let len = name_into(name, &mut buf);
    if len == 0 {
        return false;
    }
    let n = &buf[..len];
    if OWN_FIELDS.iter().any(|own| own.as_bytes() == n) {
        out.extend_from_slice(b"F_");
        out.extend_from_slice(&n[..len.min(MAX_NAME - 2)]);
    } else {
        out.extend_from_slice(n);
    }
    true
}

/// Appends a span field's journal name: `S{depth}_` and [`field_name`], at most 64
/// characters. Returns `false` (and appends nothing) for the empty name.
fn push_span_field(out: &mut Vec<u8>, depth: usize, name: &str) -> bool {
    let mut buf = [0u8; MAX_NAME];
    let len = name_into(name, &mut buf);
    if len == 0 {
        return false;
    }
    let start = out.len();
    out.push(b'S');
    push_u64(out, depth as u64);
    out.push(b'_');
    let room = MAX_NAME.saturating_sub(out.len() - start);
    out.extend_from_slice(&buf[..len.min(room)]);
    true
}

fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Appends one field: `NAME=value\n`, or, when the value holds a newline, `NAME\n`, its length
/// as 64-bit little endian, the value and `\n`.
fn put(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    put_value(out, value);
}

/// The value part of [`put`], after a name already appended.
fn put_value(out: &mut Vec<u8>, value: &[u8]) {
    out.reserve(value.len() + 10);
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// `n` in decimal, as `Display` writes it.
fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(watchbell_core::json::u64_digits(n, &mut [0; 20]).as_bytes());
}

/// The value part of a field whose value is `v` (its `Display` text), after its name.
fn put_field_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) | Value::Debug(s) | Value::Display(s) => return put_value(out, s.as_bytes()),
        // Numbers and booleans never hold a newline.
        Value::U64(n) => {
            out.push(b'=');
            push_u64(out, *n);
        }
        Value::I64(n) => {
            out.push(b'=');
            if *n < 0 {
                out.push(b'-');
            }
            push_u64(out, n.unsigned_abs());
        }
        Value::Bool(b) => {
            out.push(b'=');
            out.extend_from_slice(if *b { b"true" } else { b"false" });
        }
        _ => {
            out.push(b'=');
            let _ = write!(out, "{v}");
        }
    }
    out.push(b'\n');
}

/// The native-protocol entry of `record`: see the [crate docs](crate#the-entry).
///
/// ```
/// use watchbell_core::{Level, Record};
/// let r = Record::new(Level::ERROR, "app", "disk full\nsecond line");
/// let entry = watchbell_journald::encode_entry(&r, "billing", &[]);
/// assert!(entry.starts_with(b"MESSAGE\n"));
/// assert!(entry.windows(11).any(|w| w == b"PRIORITY=3\n"));
/// ```
pub fn encode_entry(record: &Record, identifier: &str, extra: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + record.message.len());
    encode_entry_into(&mut out, record, identifier, extra);
    out
}

/// [`encode_entry`], appended to `out` (the sink reuses one buffer for every entry). Writes
/// every part straight into `out`: no text of its own is allocated, except the message of a
/// record with suppressed repeats.
///
/// ```
/// use watchbell_core::{Level, Record};
/// let r = Record::new(Level::WARN, "app", "slow");
/// let mut buf = Vec::new();
/// watchbell_journald::encode_entry_into(&mut buf, &r, "billing", &[]);
/// assert_eq!(buf, watchbell_journald::encode_entry(&r, "billing", &[]));
/// ```
pub fn encode_entry_into(out: &mut Vec<u8>, record: &Record, identifier: &str, extra: &[(String, String)]) {
    out.reserve(256 + record.message.len());
    if record.suppressed > 0 {
        let message = format!("{} ({} similar suppressed)", record.message, record.suppressed);
        put(out, "MESSAGE", message.as_bytes());
    } else {
        put(out, "MESSAGE", record.message.as_bytes());
    }
    out.extend_from_slice(b"PRIORITY=");
    out.push(b'0' + priority(record.level));
    out.push(b'\n');
    put(out, "SYSLOG_IDENTIFIER", identifier.as_bytes());
    put(out, "TARGET", record.target.as_bytes());
    if let Some(f) = &record.file {
        put(out, "CODE_FILE", f.as_bytes());
    }
    if let Some(l) = record.line {
        out.extend_from_slice(b"CODE_LINE=");
        push_u64(out, u64::from(l));
        out.push(b'\n');
    }
    if let Some(m) = &record.module {
        put(out, "CODE_MODULE", m.as_bytes());
    }
    if let Some(t) = &record.thread_name {
        put(out, "THREAD_NAME", t.as_bytes());
    }
    out.extend_from_slice(b"THREAD_ID=");
    push_u64(out, record.thread_id);
    out.extend_from_slice(b"\nFINGERPRINT=");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let fp = record.fingerprint.0;
    for k in (0..16).rev() {
        out.push(HEX[(fp >> (k * 4)) as usize & 15]);
    }
    out.extend_from_slice(b"\nWATCHBELL_TIME=");
    watchbell_core::time::extend_rfc3339(out, record.time);
    out.push(b'\n');
    for (name, value) in record.fields.iter() {
        if push_user_field(out, name) {
            put_field_value(out, value);
        }
    }
    for (depth, span) in record.spans.iter().enumerate() {
        out.push(b'S');
        push_u64(out, depth as u64);
        put(out, "_NAME", span.name.as_bytes());
        for (name, value) in span.fields.iter() {
            if push_span_field(out, depth, name) {
                put_field_value(out, value);
            }
        }
    }
    for (name, value) in extra {
        put(out, name, value.as_bytes());
    }
}

pub(crate) struct JournalSink {
    socket: PathBuf,
    identifier: String,
    extra: Vec<(String, String)>,
    timeout: Duration,
    conn: Option<UnixDatagram>,
    /// The entry being sent, reused from record to record.
    entry: Vec<u8>,
}

impl JournalSink {
    pub(crate) fn new(socket: PathBuf, identifier: String, extra: Vec<(String, String)>, timeout: Duration) -> Self {
        JournalSink { socket, identifier, extra, timeout, conn: None, entry: Vec::new() }
    }

    fn connect(&mut self) -> std::io::Result<&UnixDatagram> {
        if self.conn.is_none() {
            let s = UnixDatagram::unbound()?;
            // A journald that cannot keep up makes the send wait, at most the timeout.
            s.set_write_timeout(Some(self.timeout.max(Duration::from_millis(1))))?;
            s.connect(&self.socket)?;
            self.conn = Some(s);
        }
        Ok(self.conn.as_ref().expect("connected"))
    }

    fn send(&mut self, entry: &[u8]) -> std::io::Result<()> {
        let sock = self.connect()?;
        match sock.send(entry) {
            Ok(_) => Ok(()),
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::MSGSIZE.raw_os_error())
                    || e.kind() == ErrorKind::OutOfMemory =>
            {
                send_memfd(sock, entry)
            }
            Err(e) => Err(e),
        }
    }
}

/// Sends a large entry as journald wants it: in a sealed memfd whose descriptor travels in an
/// empty datagram (`SCM_RIGHTS`).
fn send_memfd(sock: &UnixDatagram, entry: &[u8]) -> std::io::Result<()> {
    let fd = rustix::fs::memfd_create("watchbell-journal-entry", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(entry)?;
    rustix::fs::fcntl_add_seals(&file, SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL)?;
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [file.as_fd()];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(std::io::Error::other("no room for the descriptor"));
    }
    rustix::net::sendmsg(sock, &[], &mut control, SendFlags::empty())?;
    Ok(())
}

impl JournalSink {
    /// Keeps the entry buffer for the next batch, unless one large entry made it big.
    fn keep(&mut self, mut entry: Vec<u8>) {
        if entry.capacity() > 64 << 10 {
            entry = Vec::new();
        }
        self.entry = entry;
    }
}

impl Sink for JournalSink {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        let mut entry = std::mem::take(&mut self.entry);
        for (i, record) in batch.records.iter().enumerate() {
            entry.clear();
            encode_entry_into(&mut entry, record, &self.identifier, &self.extra);
            if let Err(e) = self.send(&entry) {
                // Reconnect next time: journald may have been restarted.
                self.conn = None;
                let rest = Outcome::retry(format!("journald at {}: {e}", self.socket.display()));
                self.keep(entry);
                return if i == 0 { rest } else { Outcome::Partial { delivered: i, rest: Box::new(rest) } };
            }
        }
        self.keep(entry);
        Outcome::Delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};
    use watchbell_core::record::{Fingerprint, SpanRecord};

    /// The entry as it was built with a `String` per part: the reference the writer that
    /// appends straight into the buffer must match byte for byte.
    fn reference_entry(record: &Record, identifier: &str, extra: &[(String, String)]) -> Vec<u8> {
        fn user_field(name: &str) -> Option<String> {
            let n = field_name(name)?;
            if OWN_FIELDS.contains(&n.as_str()) {
                let mut p = format!("F_{n}");
                p.truncate(MAX_NAME);
                Some(p)
            } else {
                Some(n)
            }
        }
        let mut out = Vec::new();
        let message = if record.suppressed > 0 {
            format!("{} ({} similar suppressed)", record.message, record.suppressed)
        } else {
            record.message.to_string()
        };
        put(&mut out, "MESSAGE", message.as_bytes());
        put(&mut out, "PRIORITY", priority(record.level).to_string().as_bytes());
        put(&mut out, "SYSLOG_IDENTIFIER", identifier.as_bytes());
        put(&mut out, "TARGET", record.target.as_bytes());
        if let Some(f) = &record.file {
            put(&mut out, "CODE_FILE", f.as_bytes());
        }
        if let Some(l) = record.line {
            put(&mut out, "CODE_LINE", l.to_string().as_bytes());
        }
        if let Some(m) = &record.module {
            put(&mut out, "CODE_MODULE", m.as_bytes());
        }
        if let Some(t) = &record.thread_name {
            put(&mut out, "THREAD_NAME", t.as_bytes());
        }
        put(&mut out, "THREAD_ID", record.thread_id.to_string().as_bytes());
        put(&mut out, "FINGERPRINT", format!("{:016x}", record.fingerprint.0).as_bytes());
        put(&mut out, "WATCHBELL_TIME", watchbell_core::time::rfc3339(record.time).as_bytes());
        for (name, value) in record.fields.iter() {
            if let Some(n) = user_field(name) {
                put(&mut out, &n, value.to_string().as_bytes());
            }
        }
        for (depth, span) in record.spans.iter().enumerate() {
            let prefix = format!("S{depth}_");
            put(&mut out, &format!("{prefix}NAME"), span.name.as_bytes());
            for (name, value) in span.fields.iter() {
                if let Some(n) = field_name(name) {
                    let mut full = format!("{prefix}{n}");
                    full.truncate(MAX_NAME);
                    put(&mut out, &full, value.to_string().as_bytes());
                }
            }
        }
        for (name, value) in extra {
            put(&mut out, name, value.as_bytes());
        }
        out
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<String>().prop_map(Value::Str),
            "[a-z \n=]{0,12}".prop_map(Value::Debug),
            any::<String>().prop_map(Value::Display),
            any::<i64>().prop_map(Value::I64),
            any::<u64>().prop_map(Value::U64),
            any::<i128>().prop_map(|v| Value::I128(Box::new(v))),
            any::<u128>().prop_map(|v| Value::U128(Box::new(v))),
            any::<f64>().prop_map(Value::F64),
            any::<bool>().prop_map(Value::Bool),
        ]
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z_.0-9é-]{0,12}",
            "[a-z_]{60,70}",
            Just("message".to_owned()),
            Just("thread_id".to_owned()),
            Just("watchbell.time".to_owned()),
            any::<String>(),
        ]
    }

    proptest! {
        #[test]
        fn entries_match_the_reference_byte_for_byte(
            message in any::<String>(),
            fields in proptest::collection::vec((name(), value()), 0..6),
            spans in proptest::collection::vec(proptest::collection::vec((name(), value()), 0..3), 0..12),
            suppressed in 0u64..3,
            line in proptest::option::of(any::<u32>()),
            secs in -5_000_000_000i64..300_000_000_000,
            fingerprint in any::<u64>(),
            thread_id in any::<u64>(),
        ) {
            let mut r = Record::new(Level::WARN, "app::db", message);
            r.suppressed = suppressed;
            r.line = line;
            r.file = line.map(|_| "src/db.rs".into());
            r.module = line.map(|_| "app::db".into());
            r.thread_id = thread_id;
            r.fingerprint = Fingerprint(fingerprint);
            r.time = if secs >= 0 {
                UNIX_EPOCH + Duration::new(secs as u64, 123_456_789)
            } else {
                UNIX_EPOCH - Duration::new(secs.unsigned_abs(), 987_654_321)
            };
            for (k, v) in fields {
                r.fields.set(k, v);
            }
            let spans: Vec<Arc<SpanRecord>> = spans
                .into_iter()
                .enumerate()
                .map(|(i, f)| Arc::new(SpanRecord { name: format!("span{i}").into(), target: "app".into(), fields: f.into_iter().collect() }))
                .collect();
            r.spans = spans.into_iter().collect();
            let extra = [("DEPLOYMENT".to_owned(), "blue\ngreen".to_owned())];
            let want = reference_entry(&r, "ident", &extra);
            prop_assert_eq!(&encode_entry(&r, "ident", &extra), &want);
            // Appended after what the buffer holds, as the sink reuses it.
            let mut buf = b"old".to_vec();
            encode_entry_into(&mut buf, &r, "ident", &extra);
            prop_assert_eq!(&buf[3..], &want[..]);
        }
    }
}
