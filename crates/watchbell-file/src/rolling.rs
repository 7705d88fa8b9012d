//! [`RollingFile`]: the synchronous rotating writer both front ends run on their worker thread.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use watchbell_core::zone::Zone;
use watchbell_core::BuildError;

use crate::schedule::{Schedule, When};

/// Maps the default name of a rotated file to the name it gets (see
/// [`RollingFileBuilder::namer`]).
pub(crate) type Namer = Arc<dyn Fn(&Path) -> PathBuf + Send + Sync>;
/// Moves the active file to its rotated name (see [`RollingFileBuilder::rotator`]).
pub(crate) type Rotator = Arc<dyn Fn(&Path, &Path) -> io::Result<()> + Send + Sync>;

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

/// The period of time-based rotation, the first form of [`When`]. Periods are aligned to the
/// [`zone`](RollingFileBuilder::zone)'s clock (UTC unless set): an hourly file covers
/// `14:00:00`–`14:59:59`, a daily file one day from midnight.
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
    /// The same period as a [`When`] (an interval of one unit).
    pub fn when(self) -> When {
        match self {
            Interval::Minutely => When::Minute,
            Interval::Hourly => When::Hour,
            Interval::Daily => When::Day,
        }
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
    when: Option<When>,
    interval: u32,
    at_time: Option<(u8, u8, u8)>,
    zone: Zone,
    date_format: Option<String>,
    namer: Option<Namer>,
    rotator: Option<Rotator>,
    truncate: bool,
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
            .field("when", &self.when)
            .field("interval", &self.interval)
            .field("at_time", &self.at_time)
            .field("zone", &self.zone)
            .field("date_format", &self.date_format)
            .field("namer", &self.namer.is_some())
            .field("rotator", &self.rotator.is_some())
            .field("truncate", &self.truncate)
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
            when: None,
            interval: 1,
            at_time: None,
            zone: Zone::utc(),
            date_format: None,
            namer: None,
            rotator: None,
            truncate: false,
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

    /// How many rotated files to keep (default 5); older ones are deleted. `0` keeps none:
    /// the file is truncated and starts again at each rotation, for size and time rotation
    /// alike — never "grow forever" (see the [crate docs](crate#backup_count0) for why this
    /// differs from Python's `backupCount=0`).
    pub fn backup_count(mut self, n: usize) -> Self {
        self.backup_count = n;
        self
    }

    /// Rotates when a record arrives in a later [`Interval`] than the file's first: the same
    /// as [`when`](Self::when) with the interval's unit and an [`interval`](Self::interval)
    /// of 1.
    pub fn rotate_every(mut self, interval: Interval) -> Self {
        self.when = Some(interval.when());
        self.interval = 1;
        self
    }

    /// Time rotation by [`When`] (`S`, `M`, `H`, `D`, `MIDNIGHT`, `W0`–`W6`), as Python's
    /// `TimedRotatingFileHandler(when=…)`: a record in a later period than the file's first
    /// rotates it first. Periods are aligned to the [`zone`](Self::zone)'s clock (UTC unless
    /// set): see the [crate docs](crate#time-rotation).
    pub fn when(mut self, when: When) -> Self {
        self.when = Some(when);
        self
    }

    /// How many units of [`when`](Self::when) one period lasts (default 1, at least 1):
    /// `when(When::Hour).interval(6)` makes files for 00–05, 06–11, 12–17 and 18–23 h.
    pub fn interval(mut self, n: u32) -> Self {
        self.interval = n;
        self
    }

    /// The time of day of a [`When::Midnight`] or [`When::Weekday`] rollover (default
    /// 00:00:00), on the [`zone`](Self::zone)'s clock. Any other `when` makes it a build
    /// error.
    pub fn at_time(mut self, hour: u8, minute: u8, second: u8) -> Self {
        self.at_time = Some((hour, minute, second));
        self
    }

    /// The zone whose clock the periods and the dates in backup names follow (default
    /// UTC). [`Zone::local`] for the system's local time, as Python's `utc=False`.
    pub fn zone(mut self, zone: Zone) -> Self {
        self.zone = zone;
        self
    }

    /// `true`: [`zone`](Self::zone)`(Zone::local())`; `false`: UTC.
    pub fn local_time(self, local: bool) -> Self {
        self.zone(if local { Zone::local() } else { Zone::utc() })
    }

    /// Logbook's naming: rotated files are named `{stem}-{date}{ext}` with the period's start
    /// written with this `strftime` format (`app.log` with `"%Y-%m-%d"` →
    /// `app-2026-11-28.log`), instead of `app.log.2026-11-28`. The active file keeps its
    /// name. The format should sort as text in time order (year first), since the newest
    /// backups are the last by name. Needs time rotation.
    pub fn date_format(mut self, format: impl Into<String>) -> Self {
        self.date_format = Some(format.into());
        self
    }

    /// Maps the default name of a rotated file to the name it gets, as the standard library's
    /// `namer` (`app.log.2026-11-28` → `app.log.2026-11-28.gz`). The name must keep the
    /// default name's text in it (prefixes and suffixes may be added), so that old backups
    /// are recognised and deleted; it runs on the writer's thread.
    pub fn namer(mut self, namer: impl Fn(&Path) -> PathBuf + Send + Sync + 'static) -> Self {
        self.namer = Some(Arc::new(namer));
        self
    }

    /// Moves the file being rotated (`source`, the active path) to its rotated name
    /// (`dest`, after the [`namer`](Self::namer)), as the standard library's `rotator`
    /// (default: a rename). It runs on the writer's thread and must leave `source` gone on
    /// success; on an error the file is not rotated and writing goes on in it. See
    /// [`gzip`](crate::gzip) and [`gzip`](Self::gzip).
    pub fn rotator(mut self, rotator: impl Fn(&Path, &Path) -> io::Result<()> + Send + Sync + 'static) -> Self {
        self.rotator = Some(Arc::new(rotator));
        self
    }

    /// Compresses rotated files: `.gz` is added to their names and [`gzip`](crate::gzip) is
    /// the [`rotator`](Self::rotator) (after a [`namer`](Self::namer) set before, if any).
    pub fn gzip(mut self) -> Self {
        let inner = self.namer.take();
        self.namer = Some(Arc::new(move |default: &Path| {
            let mut name = match &inner {
                Some(n) => n(default),
                None => default.to_path_buf(),
            }
            .into_os_string();
            name.push(".gz");
            PathBuf::from(name)
        }));
        self.rotator = Some(Arc::new(crate::gzip));
        self
    }

    /// `true`: the file is emptied when it is first opened (Python's `mode='w'`); `false`
    /// (default): records are appended to what it holds. Only the first open of this writer
    /// truncates; files opened after a rotation or a reopen start empty anyway or are
    /// appended to.
    pub fn truncate(mut self, truncate: bool) -> Self {
        self.truncate = truncate;
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
        if self.interval == 0 {
            return Err(BuildError::new(source, "interval", "must be at least 1"));
        }
        if let Some(When::Weekday(d @ 7..)) = self.when {
            return Err(BuildError::new(source, "when", format!("W{d}: weekdays are W0 (Monday) to W6 (Sunday)")));
        }
        if let Some((h, m, s)) = self.at_time {
            if !matches!(self.when, Some(When::Midnight | When::Weekday(_))) {
                return Err(BuildError::new(source, "at_time", "applies to midnight and weekly (W0-W6) rotation only"));
            }
            if h > 23 || m > 59 || s > 59 {
                return Err(BuildError::new(source, "at_time", format!("{h:02}:{m:02}:{s:02} is not a time of day")));
            }
        }
        if let Some(f) = &self.date_format {
            if self.when.is_none() {
                return Err(BuildError::new(source, "date_format", "needs time rotation (when or rotate_every)"));
            }
            match self.zone.strftime(UNIX_EPOCH, f) {
                Ok(s) if !s.is_empty() && !s.contains(['/', '\\', '\0']) => {}
                Ok(s) => {
                    return Err(BuildError::new(
                        source,
                        "date_format",
                        format!("{f:?} gives {s:?}, not a file name part"),
                    ))
                }
                Err(e) => return Err(BuildError::new(source, "date_format", e.to_string())),
            }
        }
        Ok(())
    }

    fn schedule(&self) -> Option<Schedule> {
        let when = self.when?;
        let at = self.at_time.map_or(0, |(h, m, s)| u32::from(h) * 3600 + u32::from(m) * 60 + u32::from(s));
        Some(Schedule { when, interval: self.interval.max(1), at, zone: self.zone.clone() })
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
    /// Time rotation, if any.
    schedule: Option<Schedule>,
    /// The start of the period the current file's records belong to (time rotation only).
    period: Option<SystemTime>,
    /// The start of the next period: a record at or after it rotates.
    next: Option<SystemTime>,
    /// Whether the file was opened once (the truncation of `truncate(true)` is done).
    opened: bool,
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
            schedule: cfg.schedule(),
            cfg,
            file: None,
            period: None,
            next: None,
            opened: false,
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
            watchbell_core::report::report(
                "file",
                &format!("cannot write {msg} (counted; tried again with the next record)"),
            );
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
                watchbell_core::report::report(
                    "file",
                    &format!("cannot cut {} back to its last whole record: {e}", self.cfg.path.display()),
                );
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
        if self.next.is_some_and(|next| now >= next) {
            if let (Some(schedule), Some(period)) = (&self.schedule, self.period) {
                let start = schedule.start(now);
                if start > period {
                    self.rotate(now)?;
                } else {
                    // A repeated civil time belongs to the period it first began.
                    self.next = Some(schedule.next(start).max(watchbell_core::zone::shift(now, 1)));
                }
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
        if self.cfg.truncate && !self.opened {
            let mut first = options.clone();
            first.append(false).write(true).truncate(true);
            first.open(path)?;
        }
        let file = options.open(path)?;
        self.opened = true;
        let meta = file.metadata()?;
        if let (Some(schedule), None) = (&self.schedule, self.period) {
            // A file left by an earlier run belongs to the period it was last written in.
            let since = if meta.len() > 0 { meta.modified().map_or(now, |m| m.min(now)) } else { now };
            let start = schedule.start(since);
            self.period = Some(start);
            self.next = Some(schedule.next(start));
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

    /// Rotates now, whatever the size and the time (an empty file is left as it is: no empty
    /// backups). The rotated file is named as a rotation by time or size would name it (with
    /// time rotation, the current period's name, numbered when a file of that name exists).
    pub fn roll_over(&mut self) -> io::Result<()> {
        let now = self.cfg.clock.now();
        let result = (|| {
            if self.file.is_none() {
                self.open(now)?;
            }
            self.rotate(now)
        })();
        if let Err(e) = &result {
            self.failed(e);
        }
        result
    }

    /// Moves the current file aside (or truncates it) and opens a fresh one.
    fn rotate(&mut self, now: SystemTime) -> io::Result<()> {
        let Some(f) = self.file.take() else { return Ok(()) };
        let size = f.size;
        self.close(f)?;
        let period = self.period;
        if let Some(schedule) = &self.schedule {
            let start = schedule.start(now).max(period.unwrap_or(UNIX_EPOCH));
            self.period = Some(start);
            self.next = Some(schedule.next(start).max(watchbell_core::zone::shift(now, 1)));
        }
        if size == 0 {
            // No empty backups: the empty file simply goes on in the new period.
            return self.open(now);
        }
        let moved = self.move_aside(period);
        if moved.is_err() {
            // Not rotated: the records go on in the same file and period.
            self.period = period;
            if let (Some(schedule), Some(p)) = (&self.schedule, period) {
                self.next = Some(schedule.next(p).max(watchbell_core::zone::shift(now, 1)));
            }
        }
        let opened = self.open(now);
        moved?;
        self.counters.rotations.fetch_add(1, Relaxed);
        opened
    }

    /// Renames (or rotates, or truncates) the active file out of the way and deletes what is
    /// beyond `backup_count`.
    fn move_aside(&self, period: Option<SystemTime>) -> io::Result<()> {
        let path = self.cfg.path.clone();
        if self.cfg.backup_count == 0 {
            OpenOptions::new().write(true).truncate(true).open(&path)?;
        } else if let (Some(names), Some(period)) = (self.names(), period) {
            let date = names.date(period);
            let backups = names.list()?;
            let next = backups.iter().filter(|b| b.0 == date).map(|b| b.1 + 1).max().unwrap_or(0);
            // A name taken by a file that is not a backup of ours (or one the namer maps
            // elsewhere) is never overwritten: take the next number.
            let mut n = next;
            let mut target = names.final_name(&date, n);
            while target.exists() {
                n += 1;
                target = names.final_name(&date, n);
            }
            self.move_to(&path, &target)?;
            let mut backups = names.list()?;
            let excess = backups.len().saturating_sub(self.cfg.backup_count);
            for (_, _, old) in backups.drain(..excess) {
                let _ = fs::remove_file(old);
            }
        } else {
            // Shift .1 … up to the first free number (or .N, which is deleted): a gap
            // absorbs the shift, so a rotation costs as many renames as there are backups
            // below it, not N.
            let n = self.cfg.backup_count;
            let free = (1..n).find(|&i| !self.numbered(i).exists()).unwrap_or(n);
            if free == n {
                let _ = fs::remove_file(self.numbered(n));
            }
            for i in (1..free).rev() {
                fs::rename(self.numbered(i), self.numbered(i + 1))?;
            }
            let first = self.numbered(1);
            self.move_to(&path, &first)?;
        }
        Ok(())
    }

    /// Moves the active file to `target` with the rotator, or renames it.
    fn move_to(&self, source: &Path, target: &Path) -> io::Result<()> {
        match &self.cfg.rotator {
            Some(rotator) => rotator(source, target),
            None => fs::rename(source, target),
        }
    }

    /// The name of numbered backup `i` (size rotation only), after the namer.
    fn numbered(&self, i: usize) -> PathBuf {
        let mut name = self.cfg.path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".{i}"));
        let default = self.cfg.path.with_file_name(name);
        match &self.cfg.namer {
            Some(namer) => namer(&default),
            None => default,
        }
    }

    fn names(&self) -> Option<Names<'_>> {
        let schedule = self.schedule.as_ref()?;
        let base = self.cfg.path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let (prefix, suffix) = match &self.cfg.date_format {
            None => (format!("{base}."), String::new()),
            Some(_) => match base.rfind('.').filter(|&i| i > 0) {
                Some(i) => (format!("{}-", &base[..i]), base[i..].to_owned()),
                None => (format!("{base}-"), String::new()),
            },
        };
        Some(Names { cfg: &self.cfg, schedule, prefix, suffix })
    }
}

/// The names of dated backups: `{prefix}{date}[.{n}]{suffix}`, then the namer.
struct Names<'a> {
    cfg: &'a RollingFileBuilder,
    schedule: &'a Schedule,
    /// `app.log.` (suffix form) or `app-` (date format form).
    prefix: String,
    /// Empty (suffix form) or `.log` (date format form).
    suffix: String,
}

impl Names<'_> {
    /// The date text of the period starting at `start`.
    fn date(&self, start: SystemTime) -> String {
        match &self.cfg.date_format {
            Some(f) => self.schedule.zone.strftime(start, f).unwrap_or_else(|_| self.schedule.suffix(start)),
            None => self.schedule.suffix(start),
        }
    }

    fn is_date(&self, s: &str) -> bool {
        match &self.cfg.date_format {
            Some(f) => watchbell_core::zone::matches_strftime(f, s),
            None => self.schedule.matches(s),
        }
    }

    /// The default name (before the namer) of backup `n` (0: unnumbered) of `date`.
    fn default_name(&self, date: &str, n: u64) -> String {
        match n {
            0 => format!("{}{date}{}", self.prefix, self.suffix),
            n => format!("{}{date}.{n}{}", self.prefix, self.suffix),
        }
    }

    fn final_name(&self, date: &str, n: u64) -> PathBuf {
        let default = self.cfg.path.with_file_name(self.default_name(date, n));
        match &self.cfg.namer {
            Some(namer) => namer(&default),
            None => default,
        }
    }

    /// `core` (`date` or `date.n`) read as (date, n).
    fn parse_core(&self, core: &str) -> Option<(String, u64)> {
        if self.is_date(core) {
            return Some((core.to_owned(), 0));
        }
        let (date, n) = core.rsplit_once('.')?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.starts_with('0') {
            return None;
        }
        Some((date.to_owned(), n.parse().ok()?)).filter(|(d, _)| self.is_date(d))
    }

    /// The dated backups, oldest first: (date, index (0 for none), path). Only files whose
    /// name is exactly what this writer would name a backup (after the namer) count.
    fn list(&self) -> io::Result<Vec<(String, u64, PathBuf)>> {
        let sample = self.final_name("x", 0);
        let dir = match sample.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(d) => d.to_path_buf(),
            None => PathBuf::from("."),
        };
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some((date, n)) = self.parse_name(name) {
                out.push((date, n, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    fn parse_name(&self, name: &str) -> Option<(String, u64)> {
        if self.cfg.namer.is_none() {
            let core = name.strip_prefix(&self.prefix)?.strip_suffix(self.suffix.as_str())?;
            return self.parse_core(core);
        }
        // With a namer, the default name is somewhere inside: try each place the prefix
        // occurs and each end of the date, and keep what the namer maps back to `name`.
        for (p, _) in name.match_indices(self.prefix.as_str()) {
            let tail = &name[p + self.prefix.len()..];
            for (j, _) in tail.char_indices().skip(1).chain([(tail.len(), ' ')]) {
                if !tail[j..].starts_with(self.suffix.as_str()) {
                    continue;
                }
                let Some((date, n)) = self.parse_core(&tail[..j]) else { continue };
                let named = self.final_name(&date, n);
                if named.file_name().and_then(|f| f.to_str()) == Some(name) {
                    return Some((date, n));
                }
            }
        }
        None
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
