//! [`FileWriter`]: a non-blocking `MakeWriter` whose worker thread writes and rotates.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;
use watchbell_core::BuildError;

use crate::rolling::{Counters, FileStats, RollingFile, RollingFileBuilder};

enum Msg {
    Line(Vec<u8>),
    Flush(mpsc::Sender<()>),
    RollOver(Option<mpsc::Sender<bool>>),
    Shutdown,
}

struct Shared {
    counters: Arc<Counters>,
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    overflow_wait: Duration,
}

/// A [`MakeWriter`] for `tracing_subscriber::fmt::layer().with_writer(...)` that never does I/O
/// on the caller's thread.
///
/// Each event's text is collected in the [`LineWriter`] that `make_writer` returns and, when
/// the fmt layer drops it, queued as one message; the worker thread writes every message whole,
/// so lines from different threads are never split or interleaved. The queue is bounded (lines
/// and bytes, see [`RollingFileBuilder::queue_lines`]); a line that does not fit is dropped and
/// counted in [`FileStats::dropped`] ([`WriterGuard::stats`]), and the worker writes a line
/// `watchbell-file: N lines dropped (queue full)` into the file once the queue has drained.
///
/// Cheap to clone: clones share the queue.
#[derive(Clone)]
pub struct FileWriter {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
}

impl fmt::Debug for FileWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileWriter")
            .field("queued_bytes", &self.shared.queued_bytes.load(Relaxed))
            .finish_non_exhaustive()
    }
}

impl FileWriter {
    /// Queues `line` (newline included, if you want one) as one record. Returns `false` when it
    /// was dropped (queue full or writer shut down); drops are counted.
    pub fn write_line(&self, line: impl Into<Vec<u8>>) -> bool {
        let line = line.into();
        if line.is_empty() {
            return true;
        }
        let n = line.len();
        let shared = &self.shared;
        let mut msg = Msg::Line(line);
        let mut deadline = None;
        loop {
            let before = shared.queued_bytes.fetch_add(n, Relaxed);
            if before + n <= shared.max_bytes || before == 0 {
                match self.tx.try_send(msg) {
                    Ok(()) => return true,
                    Err(TrySendError::Disconnected(_)) => {
                        shared.queued_bytes.fetch_sub(n, Relaxed);
                        break;
                    }
                    Err(TrySendError::Full(m)) => msg = m,
                }
            }
            shared.queued_bytes.fetch_sub(n, Relaxed);
            // Full: wait for room if allowed, else drop.
            if shared.overflow_wait.is_zero() {
                break;
            }
            let deadline = *deadline.get_or_insert_with(|| watchbell_core::time::deadline(shared.overflow_wait));
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        shared.counters.dropped.fetch_add(1, Relaxed);
        false
    }
}

impl FileWriter {
    /// Asks the worker to rotate the file now ([`RollingFile::roll_over`]) after the lines
    /// queued before this call; returns at once (`false` if the request could not be queued:
    /// queue full or writer shut down). The rotation happens on the worker's thread.
    pub fn roll_over(&self) -> bool {
        self.tx.try_send(Msg::RollOver(None)).is_ok()
    }
}

impl<'a> MakeWriter<'a> for FileWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter { writer: self, buf: Vec::new() }
    }
}

/// What [`FileWriter::make_writer`] returns: collects one event's bytes and queues them, as one
/// record, when dropped (or when [`flush`](Write::flush)ed).
pub struct LineWriter<'a> {
    writer: &'a FileWriter,
    buf: Vec<u8>,
}

impl fmt::Debug for LineWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineWriter").field("buffered", &self.buf.len()).finish()
    }
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.buf.is_empty() {
            // The fmt layer writes an event in one call: one allocation of the exact size.
            self.buf.reserve_exact(buf.len());
        }
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.writer.write_line(std::mem::take(&mut self.buf));
        }
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        let _ = Write::flush(self);
    }
}

/// Keeps the [`FileWriter`]'s worker alive. [`flush`](Self::flush) waits until every line
/// queued before it is written to the file; dropping the guard does a bounded
/// [`shutdown`](Self::shutdown) (5 s unless changed with [`drop_timeout`](Self::drop_timeout)).
#[must_use = "dropping the WriterGuard stops the file writer: bind it with `let _guard = ...` until the end of main"]
pub struct WriterGuard {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    drop_timeout: Duration,
}

impl fmt::Debug for WriterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriterGuard").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl WriterGuard {
    /// How long dropping the guard may wait for queued lines (default 5 s).
    pub fn drop_timeout(mut self, timeout: Duration) -> Self {
        self.drop_timeout = timeout;
        self
    }

    /// The counters so far (records written, rotations, reopens, errors, dropped lines).
    pub fn stats(&self) -> FileStats {
        self.shared.counters.snapshot()
    }

    /// Waits until every line queued before this call is written and flushed to the file, at
    /// most `timeout`. Returns whether it got there.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = watchbell_core::time::deadline(timeout);
        let (ack, done) = mpsc::channel();
        if !self.send(Msg::Flush(ack), deadline) {
            return false;
        }
        done.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_ok()
    }

    /// Rotates the file now, on the worker's thread, after the lines queued before this call
    /// are written ([`RollingFile::roll_over`]: an empty file is not rotated). Waits at most
    /// `timeout`; returns whether the rotation was done without an error in that time.
    pub fn roll_over(&self, timeout: Duration) -> bool {
        let deadline = watchbell_core::time::deadline(timeout);
        let (ack, done) = mpsc::channel();
        if !self.send(Msg::RollOver(Some(ack)), deadline) {
            return false;
        }
        done.recv_timeout(deadline.saturating_duration_since(Instant::now())).unwrap_or(false)
    }

    /// Writes what is queued, flushes, and stops the worker, waiting at most `timeout`. Lines
    /// written afterwards are dropped and counted. Later calls return at once.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let deadline = watchbell_core::time::deadline(timeout);
        let mut slot = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        let Some(handle) = slot.take() else { return true };
        if !self.send(Msg::Shutdown, deadline) {
            *slot = Some(handle);
            return false;
        }
        while !handle.is_finished() {
            if Instant::now() >= deadline {
                *slot = Some(handle);
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = handle.join();
        true
    }

    fn send(&self, mut msg: Msg, deadline: Instant) -> bool {
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        let _ = self.shutdown(self.drop_timeout);
    }
}

impl RollingFileBuilder {
    /// Starts the worker thread and returns the non-blocking [`FileWriter`] (a
    /// [`MakeWriter`]) and its [`WriterGuard`]. The file is opened at the first line.
    ///
    /// ```
    /// use tracing_subscriber::prelude::*;
    /// use watchbell_file::{Interval, RollingFile};
    ///
    /// let dir = std::env::temp_dir().join(format!("watchbell-file-nb-{}", std::process::id()));
    /// let (writer, guard) = RollingFile::builder(dir.join("app.log"))
    ///     .max_bytes(10 << 20)
    ///     .rotate_every(Interval::Daily)
    ///     .backup_count(7)
    ///     .non_blocking()
    ///     .unwrap();
    /// let subscriber = tracing_subscriber::registry()
    ///     .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(writer));
    /// tracing::subscriber::with_default(subscriber, || tracing::info!("hello"));
    /// assert!(guard.flush(std::time::Duration::from_secs(5)));
    /// assert!(std::fs::read_to_string(dir.join("app.log")).unwrap().contains("hello"));
    /// # drop(guard);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn non_blocking(self) -> Result<(FileWriter, WriterGuard), BuildError> {
        self.validate()?;
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(Shared {
            counters: Arc::clone(&counters),
            queued_bytes: AtomicUsize::new(0),
            max_bytes: self.queue_bytes,
            overflow_wait: self.overflow_wait,
        });
        let (tx, rx) = mpsc::sync_channel(self.queue_lines);
        let name = format!("watchbell-file {}", self.file_name());
        let file = RollingFile::new(self, counters);
        let worker_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || worker(rx, file, worker_shared))
            .map_err(|e| BuildError::new("watchbell-file", "thread", format!("cannot start the writer thread: {e}")))?;
        let writer = FileWriter { tx: tx.clone(), shared: Arc::clone(&shared) };
        let guard = WriterGuard { tx, shared, thread: Mutex::new(Some(thread)), drop_timeout: Duration::from_secs(5) };
        Ok((writer, guard))
    }
}

/// How long the worker waits for more lines before it flushes its buffer to the file, and the
/// longest a written line stays in the buffer while lines keep coming.
const LINGER: Duration = Duration::from_millis(2);
const MAX_UNFLUSHED: Duration = Duration::from_millis(100);

fn worker(rx: Receiver<Msg>, mut file: RollingFile, shared: Arc<Shared>) {
    watchbell_core::capture::mark_current_thread();
    let mut reported_drops = 0;
    // Bytes taken off the queue but not yet subtracted from the shared count (one atomic
    // operation per burst rather than per line keeps the callers' cache line quiet).
    let mut taken = 0usize;
    let mut dirty_since: Option<Instant> = None;
    let mut next = rx.recv().ok();
    while let Some(msg) = next {
        match msg {
            Msg::Line(line) => {
                taken += line.len();
                if taken >= 16 << 10 {
                    shared.queued_bytes.fetch_sub(std::mem::take(&mut taken), Relaxed);
                }
                write_line(&mut file, &shared, &line);
                dirty_since.get_or_insert_with(Instant::now);
            }
            Msg::Flush(ack) => {
                announce_drops(&mut file, &shared, &mut reported_drops);
                flush(&mut file, &shared);
                dirty_since = None;
                let _ = ack.send(());
            }
            Msg::RollOver(ack) => {
                let before = file.rolled_back();
                let ok = file.roll_over().is_ok();
                count_lost(&file, &shared, before, 0);
                if let Some(ack) = ack {
                    let _ = ack.send(ok);
                }
            }
            Msg::Shutdown => break,
        }
        if dirty_since.is_some_and(|t| t.elapsed() >= MAX_UNFLUSHED) {
            flush(&mut file, &shared);
            dirty_since = None;
        }
        next = match rx.try_recv() {
            Ok(m) => Some(m),
            Err(TryRecvError::Disconnected) => None,
            Err(TryRecvError::Empty) => {
                shared.queued_bytes.fetch_sub(std::mem::take(&mut taken), Relaxed);
                announce_drops(&mut file, &shared, &mut reported_drops);
                match wait_briefly(&rx).map_or_else(|| rx.recv_timeout(LINGER), Ok) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Disconnected) => None,
                    Err(RecvTimeoutError::Timeout) => {
                        // Idle: put the buffer on disk, then wait.
                        flush(&mut file, &shared);
                        dirty_since = None;
                        rx.recv().ok()
                    }
                }
            }
        };
    }
    // Shutdown or every sender gone: write what is still queued, then flush.
    while let Ok(msg) = rx.try_recv() {
        if let Msg::Line(line) = msg {
            write_line(&mut file, &shared, &line);
        }
    }
    announce_drops(&mut file, &shared, &mut reported_drops);
    flush(&mut file, &shared);
}

/// Writes one line; a failed line, and the lines the cut back to the last whole record
/// removed, are counted as lost.
fn write_line(file: &mut RollingFile, shared: &Shared, line: &[u8]) {
    let before = file.rolled_back();
    let failed = file.write_record(line).is_err();
    count_lost(file, shared, before, u64::from(failed));
}

fn count_lost(file: &RollingFile, shared: &Shared, before: u64, failed: u64) {
    let lost = file.rolled_back() - before + failed;
    if lost > 0 {
        shared.counters.lost.fetch_add(lost, Relaxed);
    }
}

/// Flushes; lines removed by a failed flush are counted as lost.
fn flush(file: &mut RollingFile, shared: &Shared) {
    let before = file.rolled_back();
    let _ = file.flush();
    count_lost(file, shared, before, 0);
}

/// Looks for the next message a little longer before the worker goes to sleep: spinning, then
/// yielding the CPU, about a few microseconds in all (as crossbeam's receivers do). While
/// lines keep coming, the worker then rarely sleeps, and the application's threads rarely pay
/// a system call to wake it.
fn wait_briefly(rx: &Receiver<Msg>) -> Option<Msg> {
    for step in 0..10u32 {
        if step < 6 {
            for _ in 0..1u32 << step {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
        match rx.try_recv() {
            Ok(m) => return Some(m),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
    }
    None
}

/// Writes `watchbell-file: N lines dropped (queue full)` for drops not yet announced.
fn announce_drops(file: &mut RollingFile, shared: &Shared, reported: &mut u64) {
    let dropped = shared.counters.dropped.load(Relaxed);
    if dropped > *reported {
        let notice = format!("watchbell-file: {} lines dropped (queue full)\n", dropped - *reported);
        if file.write_record(notice.as_bytes()).is_ok() {
            *reported = dropped;
        }
    }
}
