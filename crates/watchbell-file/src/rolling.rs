//! [`RollingFile`]: the synchronous rotating writer both front ends run on their worker thread.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use watchbell_core::time::UtcTime;
use watchbell_core::BuildError;

/// Where the writers read the time from when they decide on time-based rotation.
///
/// [`SystemClock`] is the default; [`ManualClock`] (or any `Fn() -> SystemTime`) lets a test
/// cross an hour or a day without waiting.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

impl<F: Fn() -> SystemTime + Send + Sync + 'static> Clock for F {
    fn now(&self) -> SystemTime {
        self()
    }
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to: clones share the same time.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use watchbell_file::{Clock, ManualClock};
///
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(3600));
/// let seen_by_writer = clock.clone();
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(seen_by_writer.now(), UNIX_EPOCH + Duration::from_secs(3660));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<Mutex<SystemTime>>);

impl ManualClock {
    /// A clock showing `t`.
    pub fn new(t: SystemTime) -> Self {
        ManualClock(Arc::new(Mutex::new(t)))
    }

    /// Sets the time.
    pub fn set(&self, t: SystemTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = t;
    }

    /// Moves the time forward by `d`.
    pub fn advance(&self, d: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The period of time-based rotation. Periods are aligned to UTC: an hourly file covers
/// `14:00:00`–`14:59:59` UTC, a daily file one UTC day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interval {
    /// A new file every minute; backups are named `app.log.2026-11-21_14-05`.
    Minutely,
    /// A new file every hour; backups are named `app.log.2026-11-21_14`.
    Hourly,
    /// A new file every day; backups are named `app.log.2026-11-21`.
    Daily,
}

impl Interval {
    fn secs(self) -> u64 {
        match self {
            Interval::Minutely => 60,
            Interval::Hourly => 3600,
            Interval::Daily => 86_400,
        }
    }

    /// The start of the period that holds `t`.
    fn floor(self, t: SystemTime) -> SystemTime {
        let s = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        UNIX_EPOCH + Duration::from_secs(s - s % self.secs())
    }

    /// The date suffix of the period that starts at `t`.
    fn suffix(self, t: SystemTime) -> String {
        let u = UtcTime::from_system_time(t);
        let day = format!("{:04}-{:02}-{:02}", u.year, u.month, u.day);
        match self {
            Interval::Daily => day,
            Interval::Hourly => format!("{day}_{:02}", u.hour),
            Interval::Minutely => format!("{day}_{:02}-{:02}", u.hour, u.minute),
        }
    }

    /// Whether `s` is a suffix this interval makes (`YYYY-MM-DD[_HH[-MM]]`).
    fn matches(self, s: &str) -> bool {
        let pattern = match self {
            Interval::Daily => "dddd-dd-dd",
            Interval::Hourly => "dddd-dd-dd_dd",
            Interval::Minutely => "dddd-dd-dd_dd-dd",
        };
        s.len() == pattern.len()
            && s.bytes().zip(pattern.bytes()).all(|(c, p)| if p == b'd' { c.is_ascii_digit() } else { c == p })
    }
}

/// When the writer checks that the file it holds open is still the one at its path (it was
/// not renamed away or deleted, as `logrotate` does without `copytruncate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reopen {
    /// Never check (the file is only reopened after a write error).
    Never,
    /// Before every record, as Python's `WatchedFileHandler` does (one `stat` per record).
    EveryWrite,
    /// Before a record when the last check is at least this old (wall time, not the
    /// [`Clock`]). Records written in between go to the renamed file, where logrotate's
    /// `create` mode keeps them; after a deletion they are lost with the deleted file.
    Every(Duration),
}

impl Default for Reopen {
    /// `Every(1 s)`.
    fn default() -> Self {
        Reopen::Every(Duration::from_secs(1))
    }
}

/// Counters of a rotating file, readable while it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileStats {
    /// Records (lines) written.
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Rotations done (size, time, or a truncation with `backup_count(0)`).
    pub rotations: u64,
    /// Times the file was reopened because it was renamed away or deleted.
    pub reopens: u64,
    /// Failed attempts to open, write, rotate or flush (each record that failed counts).
    pub errors: u64,
    /// Records shed because the non-blocking writer's queue was full or shut down (always 0
    /// for a [`RollingFile`] used directly and for the layer, whose drops are in its `Stats`).
    pub dropped: u64,
    /// Lines the non-blocking writer could not write whole: the line whose write failed and
    /// lines buffered before it that the cut back to the last whole record removed (always 0
    /// for a [`RollingFile`] used directly and for the layer, which retries them).
    pub lost: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

#[derive(Default)]
pub(crate) struct Counters {
    records: AtomicU64,
    bytes: AtomicU64,
    rotations: AtomicU64,
    reopens: AtomicU64,
    errors: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) lost: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> FileStats {
        FileStats {
            records: self.records.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            rotations: self.rotations.load(Relaxed),
            reopens: self.reopens.load(Relaxed),
            errors: self.errors.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            lost: self.lost.load(Relaxed),
            last_error: self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

/// Configures a [`RollingFile`], or the non-blocking [`FileWriter`](crate::FileWriter) around
/// one. See the [crate docs](crate) for the naming of backups and every default.
#[derive(Clone)]
pub struct RollingFileBuilder {
    pub(crate) path: PathBuf,
    max_bytes: Option<u64>,
    backup_count: usize,
    interval: Option<Interval>,
    reopen: Reopen,
    clock: Arc<dyn Clock>,
    #[cfg_attr(not(unix), allow(dead_code))]
    mode: u32,
    create_dirs: bool,
    pub(crate) queue_lines: usize,
    pub(crate) queue_bytes: usize,
    pub(crate) overflow_wait: Duration,
}

impl fmt::Debug for RollingFileBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RollingFileBuilder")
            .field("path", &self.path)
            .field("max_bytes", &self.max_bytes)
            .field("backup_count", &self.backup_count)
            .field("interval", &self.interval)
            .field("reopen", &self.reopen)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("create_dirs", &self.create_dirs)
            .field("queue_lines", &self.queue_lines)
            .field("queue_bytes", &self.queue_bytes)
            .field("overflow_wait", &self.overflow_wait)
            .finish_non_exhaustive()
    }
}

impl RollingFileBuilder {
    /// A file at `path` that never rotates until told to with
    /// [`max_bytes`](Self::max_bytes) or [`rotate_every`](Self::rotate_every).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RollingFileBuilder {
            path: path.into(),
            max_bytes: None,
            backup_count: 5,
            interval: None,
            reopen: Reopen::default(),
            clock: Arc::new(SystemClock),
            mode: 0o640,
            create_dirs: true,
            queue_lines: 65_536,
            queue_bytes: 64 << 20,
            overflow_wait: Duration::ZERO,
        }
    }

    /// Rotates before a record would make the file larger than `n` bytes (at least 1). A
    /// record larger than `n` on its own is never split: it is written alone into a fresh
    /// file, which then exceeds `n`, and the next record rotates it.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }

    /// How many rotated files to keep (default 5); older ones are deleted. `0` means
    /// "truncate the file and start again" at each rotation — never "grow forever".
    pub fn backup_count(mut self, n: usize) -> Self {
        self.backup_count = n;
        self
    }

    /// Rotates when a record arrives in a later [`Interval`] than the file's first.
    pub fn rotate_every(mut self, interval: Interval) -> Self {
        self.interval = Some(interval);
        self
    }

    /// When to check that the file was not renamed away or deleted (default
    /// [`Reopen::Every`] 1 s).
    pub fn reopen(mut self, reopen: Reopen) -> Self {
        self.reopen = reopen;
        self
    }

    /// The clock time-based rotation reads (default [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The permission bits of a file the writer creates (unix; default `0o640`, then the
    /// process umask applies). Existing files keep theirs; a rotated file keeps its own.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Whether missing parent directories are created (default `true`, with the default
    /// permissions of `std::fs::create_dir_all`: `0o777` minus the umask).
    pub fn create_dirs(mut self, create: bool) -> Self {
        self.create_dirs = create;
        self
    }

    /// The non-blocking writer's queue capacity in lines (default 65,536, at least 1).
    pub fn queue_lines(mut self, n: usize) -> Self {
        self.queue_lines = n.max(1);
        self
    }

    /// The non-blocking writer's queue capacity in bytes (default 64 MiB). A line that does not
    /// fit is dropped and counted, whatever the line count.
    pub fn queue_bytes(mut self, n: usize) -> Self {
        self.queue_bytes = n.max(1);
        self
    }

    /// How long a caller of the non-blocking writer may wait for room when the queue is full
    /// before its line is dropped and counted (default zero: never wait, as the rest of
    /// watchbell). Set it when losing a line is worse than a slow log call (tracing-appender's
    /// `lossy(false)`, but bounded).
    pub fn overflow_wait(mut self, wait: Duration) -> Self {
        self.overflow_wait = wait;
        self
    }

    /// The active file's name, for thread and delivery names.
    pub(crate) fn file_name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    pub(crate) fn validate(&self) -> Result<(), BuildError> {
        let source = "watchbell-file";
        if self.path.file_name().is_none() {
            return Err(BuildError::new(source, "path", format!("{:?} does not name a file", self.path)));
        }
        if self.max_bytes == Some(0) {
            return Err(BuildError::new(source, "max_bytes", "must be at least 1 byte"));
        }
        Ok(())
    }

    /// The synchronous writer. Nothing is opened yet: the file (and its directories) are
    /// created at the first record, so a path that is not writable yet is an error per record,
    /// counted, and not a build failure.
    pub fn build(self) -> Result<RollingFile, BuildError> {
        self.validate()?;
        Ok(RollingFile::new(self, Arc::new(Counters::default())))
    }
}

struct OpenFile {
    w: BufWriter<File>,
    size: u64,
    /// The file's length at the end of the last record known to be whole on disk.
    durable: u64,
    /// The end offsets of the records written since `durable` (in the buffer, or partly or
    /// wholly on disk: not yet confirmed by a flush).
    ends: Vec<u64>,
    #[cfg(unix)]
    id: (u64, u64),
}

/// A file that rotates by size, by time or both, and reopens itself after logrotate.
///
/// It is synchronous: rotation and deletion happen inside [`write_record`](Self::write_record).
/// The [`FileLayer`](crate::FileLayer) and the [`FileWriter`](crate::FileWriter) call it only on
/// their own worker thread, never on the application's.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("watchbell-file-doc-{}", std::process::id()));
/// let mut file = watchbell_file::RollingFile::builder(dir.join("app.log"))
///     .max_bytes(10)
///     .backup_count(2)
///     .build()
///     .unwrap();
/// file.write_record(b"12345678\n").unwrap();
/// file.write_record(b"abc\n").unwrap(); // 9 + 4 > 10: app.log becomes app.log.1 first
/// file.flush().unwrap();
/// assert_eq!(std::fs::read(dir.join("app.log.1")).unwrap(), b"12345678\n");
/// assert_eq!(std::fs::read(dir.join("app.log")).unwrap(), b"abc\n");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct RollingFile {
    cfg: RollingFileBuilder,
    file: Option<OpenFile>,
    /// The start of the period the current file's records belong to (time rotation only).
    period: Option<SystemTime>,
    last_check: Option<Instant>,
    failing: bool,
    counters: Arc<Counters>,
    /// Records confirmed whole on disk (by a flush, or kept by a rollback), since creation.
    whole: u64,
    /// Records taken by `write_record` but removed again by a rollback after a failed write
    /// (never whole on disk), since creation.
    rolled_back: u64,
}

impl fmt::Debug for RollingFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RollingFile")
            .field("config", &self.cfg)
            .field("open", &self.file.is_some())
            .field("size", &self.file.as_ref().map(|f| f.size))
            .finish_non_exhaustive()
    }
}

impl RollingFile {
    /// Starts a [`RollingFileBuilder`] for `path`.
    pub fn builder(path: impl Into<PathBuf>) -> RollingFileBuilder {
        RollingFileBuilder::new(path)
    }

    pub(crate) fn new(cfg: RollingFileBuilder, counters: Arc<Counters>) -> Self {
        RollingFile {
            cfg,
            file: None,
            period: None,
            last_check: None,
            failing: false,
            counters,
            whole: 0,
            rolled_back: 0,
        }
    }

    /// The path of the active file.
    pub fn path(&self) -> &Path {
        &self.cfg.path
    }

    /// The counters so far.
    pub fn stats(&self) -> FileStats {
        self.counters.snapshot()
    }

    /// Writes one record (normally one line, newline included) whole: rotation, if due, happens
    /// before it, never in the middle. Records are buffered; they reach the disk at
    /// [`flush`](Self::flush) (or when the buffer fills). Writes are all-or-nothing per record:
    /// when a write or a flush fails (a full disk), the file is cut back
    /// ([`set_len`](File::set_len)) to the end of the last record that reached the disk whole,
    /// so no torn record stays behind; the records removed that way are counted in
    /// [`rolled_back`](Self::rolled_back) (and no longer in [`FileStats::records`]). The error
    /// is counted, and the next record tries to open the file again.
    pub fn write_record(&mut self, record: &[u8]) -> io::Result<()> {
        let result = self.try_write(record);
        match &result {
            Ok(()) => {
                self.counters.records.fetch_add(1, Relaxed);
                self.counters.bytes.fetch_add(record.len() as u64, Relaxed);
                self.failing = false;
            }
            Err(e) => self.failed(e),
        }
        result
    }

    /// Writes buffered bytes to the file. On an error the file is cut back to its last whole
    /// record (see [`write_record`](Self::write_record)).
    pub fn flush(&mut self) -> io::Result<()> {
        let result = match &mut self.file {
            Some(f) => f.w.flush(),
            None => Ok(()),
        };
        match &result {
            Ok(()) => {
                if let Some(f) = &mut self.file {
                    self.whole += f.ends.len() as u64;
                    f.ends.clear();
                    f.durable = f.size;
                }
            }
            Err(e) => self.failed(e),
        }
        result
    }

    /// Records confirmed whole on disk since this file was created (by a successful flush,
    /// or kept by the rollback after a failed one).
    pub fn whole_records(&self) -> u64 {
        self.whole
    }

    /// Records that [`write_record`](Self::write_record) accepted but a later failed write
    /// removed again (they never reached the disk whole), since this file was created.
    pub fn rolled_back(&self) -> u64 {
        self.rolled_back
    }

    fn failed(&mut self, e: &io::Error) {
        self.counters.errors.fetch_add(1, Relaxed);
        let msg = format!("{}: {e}", self.cfg.path.display());
        if !self.failing {
            eprintln!("watchbell-file: cannot write {msg} (counted; tried again with the next record)");
        }
        *self.counters.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg);
        self.failing = true;
        // Whatever state the file is in, start again from the path next time.
        if let Some(f) = self.file.take() {
            self.roll_back(f);
        }
    }

    /// Drops the buffer of a file whose write failed (never written: it could tear a record),
    /// finds how far the disk got, and cuts the file back to the end of the last whole record.
    fn roll_back(&mut self, f: OpenFile) {
        let OpenFile { w, durable, ends, size, .. } = f;
        let (file, _unwritten) = w.into_parts();
        let on_disk = file.metadata().map_or(durable, |m| m.len());
        let whole = ends.iter().take_while(|&&end| end <= on_disk).count();
        let keep = if whole == 0 { durable } else { ends[whole - 1] };
        if on_disk > keep {
            if let Err(e) = file.set_len(keep) {
                eprintln!("watchbell-file: cannot cut {} back to its last whole record: {e}", self.cfg.path.display());
            }
        }
        let lost = (ends.len() - whole) as u64;
        self.whole += whole as u64;
        self.rolled_back += lost;
        self.counters.records.fetch_sub(lost.min(self.counters.records.load(Relaxed)), Relaxed);
        let lost_bytes = size.saturating_sub(keep);
        self.counters.bytes.fetch_sub(lost_bytes.min(self.counters.bytes.load(Relaxed)), Relaxed);
    }

    /// Flushes a file that is being closed (rotation, reopen); on an error it is cut back to
    /// its last whole record.
    fn close(&mut self, mut f: OpenFile) -> io::Result<()> {
        match f.w.flush() {
            Ok(()) => {
                self.whole += f.ends.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.roll_back(f);
                Err(e)
            }
        }
    }

    fn try_write(&mut self, record: &[u8]) -> io::Result<()> {
        let now = self.cfg.clock.now();
        self.check_reopen();
        if self.file.is_none() {
            self.open(now)?;
        }
        let len = record.len() as u64;
        if let (Some(interval), Some(period)) = (self.cfg.interval, self.period) {
            if now >= period + Duration::from_secs(interval.secs()) {
                self.rotate(now)?;
            }
        }
        if let Some(max) = self.cfg.max_bytes {
            let size = self.file.as_ref().map_or(0, |f| f.size);
            if size > 0 && size + len > max {
                self.rotate(now)?;
            }
        }
        let f = self.file.as_mut().ok_or_else(|| io::Error::other("file not open"))?;
        // Counted before the write: if it fails part-way, the rollback knows where the record
        // would have ended (and that it did not end on disk).
        f.size += len;
        f.ends.push(f.size);
        if let Err(e) = f.w.write_all(record) {
            // `write_record` counts only what succeeded: this record is not "rolled back".
            f.ends.pop();
            f.size -= len;
            return Err(e);
        }
        Ok(())
    }

    fn check_reopen(&mut self) {
        let Some(open) = &self.file else { return };
        match self.cfg.reopen {
            Reopen::Never => return,
            Reopen::EveryWrite => {}
            Reopen::Every(d) => {
                if self.last_check.is_some_and(|t| t.elapsed() < d) {
                    return;
                }
            }
        }
        self.last_check = Some(Instant::now());
        let meta = fs::metadata(&self.cfg.path);
        let same = match &meta {
            #[cfg(unix)]
            Ok(m) => {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino()) == open.id
            }
            #[cfg(not(unix))]
            Ok(_) => true,
            Err(_) => false,
        };
        if same {
            // logrotate's copytruncate emptied the file under us: count from its real size.
            if let (Ok(m), Some(open)) = (meta, self.file.as_mut()) {
                let buffered = open.w.buffer().len() as u64;
                if m.len() + buffered < open.size {
                    // Offsets of the records not yet confirmed move down with the file.
                    let shift = open.size - (m.len() + buffered);
                    open.size -= shift;
                    open.durable = open.durable.saturating_sub(shift);
                    for end in &mut open.ends {
                        *end = end.saturating_sub(shift);
                    }
                }
            }
        } else {
            if let Some(f) = self.file.take() {
                if let Err(e) = self.close(f) {
                    self.failed(&e);
                }
            }
            self.counters.reopens.fetch_add(1, Relaxed);
        }
    }

    fn open(&mut self, now: SystemTime) -> io::Result<()> {
        let path = &self.cfg.path;
        if self.cfg.create_dirs {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent)?;
            }
        }
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(self.cfg.mode);
        }
        let file = options.open(path)?;
        let meta = file.metadata()?;
        if let (Some(interval), None) = (self.cfg.interval, self.period) {
            // A file left by an earlier run belongs to the period it was last written in.
            let since = if meta.len() > 0 { meta.modified().map_or(now, |m| m.min(now)) } else { now };
            self.period = Some(interval.floor(since));
        }
        self.last_check = Some(Instant::now());
        self.file = Some(OpenFile {
            w: BufWriter::with_capacity(64 << 10, file),
            size: meta.len(),
            durable: meta.len(),
            ends: Vec::new(),
            #[cfg(unix)]
            id: {
                use std::os::unix::fs::MetadataExt;
                (meta.dev(), meta.ino())
            },
        });
        Ok(())
    }

    /// Moves the current file aside (or truncates it) and opens a fresh one.
    fn rotate(&mut self, now: SystemTime) -> io::Result<()> {
        let Some(f) = self.file.take() else { return Ok(()) };
        let size = f.size;
        self.close(f)?;
        let period = self.period;
        if let Some(interval) = self.cfg.interval {
            self.period = Some(interval.floor(now));
        }
        if size == 0 {
            // No empty backups: the empty file simply goes on in the new period.
            return self.open(now);
        }
        let path = self.cfg.path.clone();
        if self.cfg.backup_count == 0 {
            OpenOptions::new().write(true).truncate(true).open(&path)?;
        } else if let (Some(interval), Some(period)) = (self.cfg.interval, period) {
            let suffix = interval.suffix(period);
            let backups = self.backups(interval)?;
            let next = backups.iter().filter(|b| b.0 == suffix).map(|b| b.1 + 1).max();
            let target = match next {
                None => self.sibling(&suffix),
                Some(n) => self.sibling(&format!("{suffix}.{n}")),
            };
            fs::rename(&path, target)?;
            let mut backups = self.backups(interval)?;
            let excess = backups.len().saturating_sub(self.cfg.backup_count);
            for (_, _, old) in backups.drain(..excess) {
                let _ = fs::remove_file(old);
            }
        } else {
            // Shift .1 … up to the first free number (or .N, which is deleted): a gap
            // absorbs the shift, so a rotation costs as many renames as there are backups
            // below it, not N.
            let n = self.cfg.backup_count;
            let free = (1..n).find(|i| !self.sibling(&i.to_string()).exists()).unwrap_or(n);
            if free == n {
                let _ = fs::remove_file(self.sibling(&n.to_string()));
            }
            for i in (1..free).rev() {
                fs::rename(self.sibling(&i.to_string()), self.sibling(&(i + 1).to_string()))?;
            }
            fs::rename(&path, self.sibling("1"))?;
        }
        self.counters.rotations.fetch_add(1, Relaxed);
        self.open(now)
    }

    /// `app.log` + `suffix` → `app.log.suffix`.
    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.cfg.path.file_name().unwrap_or_default().to_os_string();
        name.push(".");
        name.push(suffix);
        self.cfg.path.with_file_name(name)
    }

    /// The dated backups, oldest first: (date suffix, index (0 for none), path).
    fn backups(&self, interval: Interval) -> io::Result<Vec<(String, u64, PathBuf)>> {
        let base = self.cfg.path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let dir = match self.cfg.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(d) => d.to_path_buf(),
            None => PathBuf::from("."),
        };
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(base)).and_then(|r| r.strip_prefix('.')) else {
                continue;
            };
            let (suffix, index) = match rest.split_once('.') {
                Some((s, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => match n.parse() {
                    Ok(n) => (s, n),
                    Err(_) => continue,
                },
                Some(_) => continue,
                None => (rest, 0),
            };
            if interval.matches(suffix) {
                out.push((suffix.to_owned(), index, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }
}

impl Write for RollingFile {
    /// Writes `buf` as one record (see [`write_record`](RollingFile::write_record)).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_record(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        RollingFile::flush(self)
    }
}

impl Drop for RollingFile {
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            let _ = self.close(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_and_floors_are_utc() {
        // 2026-11-21T14:05:09Z
        let t = UNIX_EPOCH + Duration::from_secs(1_795_269_909);
        assert_eq!(Interval::Daily.suffix(t), "2026-11-21");
        assert_eq!(Interval::Hourly.suffix(Interval::Hourly.floor(t)), "2026-11-21_14");
        assert_eq!(Interval::Minutely.suffix(t), "2026-11-21_14-05");
        assert_eq!(UtcTime::from_system_time(Interval::Daily.floor(t)).hour, 0);
        assert!(Interval::Hourly.matches("2026-11-21_14"));
        assert!(!Interval::Hourly.matches("2026-11-21"));
        assert!(!Interval::Daily.matches("2026-11-2x"));
    }
}
