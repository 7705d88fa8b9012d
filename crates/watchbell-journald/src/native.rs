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

/// An event or span field's journal name: [`field_name`], with `F_` before the names watchbell
/// sets itself.
fn user_field(name: &str) -> Option<String> {
    let n = field_name(name)?;
    if OWN_FIELDS.contains(&n.as_str()) {
        let mut p = String::with_capacity(n.len() + 2);
        p.push_str("F_");
        p.push_str(&n);
        p.truncate(MAX_NAME);
        Some(p)
    } else {
        Some(n)
    }
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
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn value_text(v: &Value) -> String {
    v.to_string()
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
    let message: std::borrow::Cow<'_, str> = if record.suppressed > 0 {
        format!("{} ({} similar suppressed)", record.message, record.suppressed).into()
    } else {
        std::borrow::Cow::Borrowed(&record.message)
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
            put(&mut out, &n, value_text(value).as_bytes());
        }
    }
    for (depth, span) in record.spans.iter().enumerate() {
        let prefix = format!("S{depth}_");
        put(&mut out, &format!("{prefix}NAME"), span.name.as_bytes());
        for (name, value) in span.fields.iter() {
            if let Some(n) = field_name(name) {
                let mut full = format!("{prefix}{n}");
                full.truncate(MAX_NAME);
                put(&mut out, &full, value_text(value).as_bytes());
            }
        }
    }
    for (name, value) in extra {
        put(&mut out, name, value.as_bytes());
    }
    out
}

pub(crate) struct JournalSink {
    socket: PathBuf,
    identifier: String,
    extra: Vec<(String, String)>,
    timeout: Duration,
    conn: Option<UnixDatagram>,
}

impl JournalSink {
    pub(crate) fn new(socket: PathBuf, identifier: String, extra: Vec<(String, String)>, timeout: Duration) -> Self {
        JournalSink { socket, identifier, extra, timeout, conn: None }
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

impl Sink for JournalSink {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        for (i, record) in batch.records.iter().enumerate() {
            let entry = encode_entry(record, &self.identifier, &self.extra);
            if let Err(e) = self.send(&entry) {
                // Reconnect next time: journald may have been restarted.
                self.conn = None;
                let rest = Outcome::retry(format!("journald at {}: {e}", self.socket.display()));
                return if i == 0 { rest } else { Outcome::Partial { delivered: i, rest: Box::new(rest) } };
            }
        }
        Outcome::Delivered
    }
}
