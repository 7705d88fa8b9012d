//! A systemd-journald stand-in: a unix datagram socket that parses the native protocol
//! (`NAME=value` lines, length-prefixed binary values, entries passed as a memfd with
//! `SCM_RIGHTS`), records each entry and every protocol violation.
//!
//! ```
//! use watchbell_test::journald::FakeJournald;
//! let journal = FakeJournald::start();
//! let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
//! client.send_to(b"MESSAGE=hi\nPRIORITY=3\n", journal.path()).unwrap();
//! let entries = journal.wait_for_entries(1, std::time::Duration::from_secs(5));
//! assert_eq!(entries[0].get("MESSAGE"), Some("hi"));
//! ```
use std::io::{IoSliceMut, Read, Seek};
use std::mem::MaybeUninit;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

use crate::store::Recorded;

/// One journal entry: its fields in the order sent (a name may repeat, as in journald).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// `(name, value)` pairs; values are bytes (the protocol is binary-safe).
    pub fields: Vec<(String, Vec<u8>)>,
    /// Whether it came in a memfd rather than in the datagram itself.
    pub via_memfd: bool,
}

impl Entry {
    /// The first value of `name`, as text.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Every value of `name`, as text.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.fields.iter().filter(|(n, _)| n == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned()).collect()
    }
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    errors: Vec<String>,
}

/// The fake journal; stops when dropped.
pub struct FakeJournald {
    path: PathBuf,
    own_dir: Option<PathBuf>,
    shared: Arc<Recorded<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeJournald {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeJournald").field("path", &self.path).finish_non_exhaustive()
    }
}

impl FakeJournald {
    /// Binds a fresh socket in a temp dir and starts reading it.
    pub fn start() -> FakeJournald {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "watchbell-journald-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let mut fake = Self::start_at(dir.join("socket"));
        fake.own_dir = Some(dir);
        fake
    }

    /// Binds `path` (its directory must exist; a stale socket file there is replaced) and
    /// starts reading it: a journald that comes back after a restart. The socket file is
    /// removed when the fake is dropped.
    pub fn start_at(path: impl Into<PathBuf>) -> FakeJournald {
        let path = path.into();
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).expect("bind the journal socket");
        sock.set_read_timeout(Some(Duration::from_millis(50))).expect("a read timeout");
        let shared = Arc::new(Recorded::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&shared), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("fake-journald".into())
            .spawn(move || serve(&sock, &s, &st))
            .expect("a thread");
        FakeJournald { path, own_dir: None, shared, stop, thread: Some(thread) }
    }

    /// The socket's path (give it to the layer's `socket`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entries received so far.
    pub fn entries(&self) -> Vec<Entry> {
        self.shared.lock().entries.clone()
    }

    /// Waits until `n` entries arrived or `timeout` passed; returns them.
    pub fn wait_for_entries(&self, n: usize, timeout: Duration) -> Vec<Entry> {
        self.shared.wait_until(timeout, |s| s.entries.len() >= n).entries.clone()
    }

    /// Protocol violations seen (each datagram with one is not recorded as an entry).
    pub fn errors(&self) -> Vec<String> {
        self.shared.lock().errors.clone()
    }
}

impl Drop for FakeJournald {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
        if let Some(dir) = &self.own_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn serve(sock: &UnixDatagram, shared: &Recorded<State>, stop: &AtomicBool) {
    // Datagrams of up to 8 MiB (journald's own limit is about that).
    let mut buf = vec![0u8; 8 << 20];
    while !stop.load(Ordering::Relaxed) {
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = rustix::net::recvmsg(sock, &mut [IoSliceMut::new(&mut buf)], &mut control, RecvFlags::CMSG_CLOEXEC);
        let len = match got {
            Ok(msg) => msg.bytes,
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => continue,
            Err(_) => break,
        };
        let mut memfds = Vec::new();
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = msg {
                memfds.extend(fds);
            }
        }
        let parsed = match memfds.pop() {
            Some(fd) => {
                read_memfd(fd).and_then(|data| parse_entry(&data)).map(|fields| Entry { fields, via_memfd: true })
            }
            None => parse_entry(&buf[..len]).map(|fields| Entry { fields, via_memfd: false }),
        };
        shared.update(|s| match parsed {
            Ok(e) => s.entries.push(e),
            Err(e) => s.errors.push(e),
        });
    }
}

/// A memfd must be sealed against writes, growth and shrinking, as journald checks.
fn read_memfd(fd: std::os::fd::OwnedFd) -> Result<Vec<u8>, String> {
    let seals = rustix::fs::fcntl_get_seals(&fd).map_err(|e| format!("not a sealable memfd: {e}"))?;
    use rustix::fs::SealFlags;
    let needed = SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK;
    if !seals.contains(needed) {
        return Err(format!("the memfd is not sealed (seals {seals:?})"));
    }
    let mut file = std::fs::File::from(fd);
    // The descriptor shares the sender's file offset (at the end after writing): read from 0,
    // as journald does (it maps the file).
    file.seek(std::io::SeekFrom::Start(0)).map_err(|e| format!("seeking the memfd: {e}"))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data).map_err(|e| format!("reading the memfd: {e}"))?;
    Ok(data)
}

/// Parses one entry of the native protocol, checking field names as journald does.
pub fn parse_entry(mut data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut fields = Vec::new();
    while !data.is_empty() {
        let line_end = data.iter().position(|&b| b == b'\n').ok_or("a field without its newline")?;
        let line = &data[..line_end];
        let (name, value, rest) = match line.iter().position(|&b| b == b'=') {
            Some(eq) => (&line[..eq], line[eq + 1..].to_vec(), &data[line_end + 1..]),
            None => {
                // NAME\n, 64-bit LE length, value, \n
                let after = &data[line_end + 1..];
                if after.len() < 8 {
                    return Err("a binary field without its length".into());
                }
                let n = u64::from_le_bytes(after[..8].try_into().expect("8 bytes")) as usize;
                let body = &after[8..];
                if body.len() < n.saturating_add(1) || body[n] != b'\n' {
                    return Err(format!("a binary field of {n} bytes does not end where its length says"));
                }
                (line, body[..n].to_vec(), &body[n + 1..])
            }
        };
        let name = std::str::from_utf8(name).map_err(|_| "a field name that is not ASCII".to_owned())?;
        let valid = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(format!("an invalid field name {name:?}"));
        }
        fields.push((name.to_owned(), value));
        data = rest;
    }
    if fields.is_empty() {
        return Err("an empty entry".into());
    }
    Ok(fields)
}
