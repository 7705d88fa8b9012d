//! # watchbell-file
//!
//! Size- and time-rotated log files for tracing, reopened after logrotate. Rotation and the
//! deletion of old files never run on the application's thread.
//!
//! Two ways to use it:
//!
//! 1. **A non-blocking writer for `tracing_subscriber::fmt`**: [`RollingFile::builder`] …
//!    [`non_blocking`](RollingFileBuilder::non_blocking) gives a [`FileWriter`] (a
//!    [`MakeWriter`](tracing_subscriber::fmt::MakeWriter)) and a [`WriterGuard`]. The fmt layer
//!    formats on the caller's thread; the line goes through a bounded queue to a worker thread
//!    that writes and rotates.
//! 2. **A watchbell sink**: [`FileLayer::builder`] gives a layer (or, with
//!    [`build_handler`](FileLayerBuilder::build_handler), a handler, so fingers-crossed and group
//!    batches can go to a file), writing records formatted by a watchbell
//!    [`Format`] from watchbell's delivery thread, with its
//!    retries and counted drops.
//!
//! ```
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//! use watchbell_core::{Level, SinkOptions};
//! use watchbell_file::{FileLayer, Interval, RollingFile};
//!
//! let dir = std::env::temp_dir().join(format!("watchbell-file-example-{}", std::process::id()));
//!
//! // 1. Everything from INFO through fmt, into app.log, 10 MiB per file, 5 backups.
//! let (writer, writer_guard) = RollingFile::builder(dir.join("app.log"))
//!     .max_bytes(10 << 20)
//!     .backup_count(5)
//!     .non_blocking()
//!     .expect("a valid configuration");
//!
//! // 2. Warnings and errors, one file per day, the last 7 days kept.
//! let (layer, guard) = FileLayer::builder(dir.join("alerts.log"))
//!     .rotate_every(Interval::Daily)
//!     .backup_count(7)
//!     .level(Level::WARN)
//!     .app("billing")
//!     .queue_records(50_000)
//!     .build()
//!     .expect("a valid configuration");
//!
//! let subscriber = tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(writer))
//!     .with(layer);
//! tracing::subscriber::with_default(subscriber, || {
//!     tracing::warn!(disk = "/var", "almost full");
//! });
//!
//! // At the end of main: write what is queued, within 5 s.
//! assert!(guard.shutdown(Duration::from_secs(5)).is_complete());
//! assert!(writer_guard.shutdown(Duration::from_secs(5)));
//! let alerts = std::fs::read_to_string(dir.join("alerts.log")).unwrap();
//! assert!(alerts.starts_with("[billing] ") && alerts.contains(" WARN "));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```
//!
//! ## Rotation and names
//!
//! The active file keeps its name (`app.log`, so `tail -F` and log shippers follow one path);
//! rotated files carry a suffix:
//!
//! | configured | rotated when | backups |
//! |---|---|---|
//! | [`max_bytes`](RollingFileBuilder::max_bytes) only | the next record would make the file larger than `max_bytes` bytes | `app.log.1` (newest) … `app.log.N`; the oldest is deleted |
//! | [`when`](RollingFileBuilder::when) or [`rotate_every`](RollingFileBuilder::rotate_every) only | the first record whose time is in a later period than the file's | `app.log.2026-11-21` (`D`, `MIDNIGHT`, `W0`–`W6`, daily), `app.log.2026-11-21_14` (`H`, hourly), `app.log.2026-11-21_14-05` (`M`, minutely), `app.log.2026-11-21_14-05-09` (`S`), named after the start of the period of their contents, as Python's `TimedRotatingFileHandler`; the newest N kept |
//! | both | whichever comes first | `app.log.2026-11-21_14`, then `app.log.2026-11-21_14.1`, `.2`, … within one period; the newest N kept |
//! | a [`date_format`](RollingFileBuilder::date_format) with time rotation | as above | Logbook's names: `app-2026-11-21.log` (`{stem}-{date}{ext}`, the date written with the format), `app-2026-11-21.1.log` within one period |
//! | a [`namer`](RollingFileBuilder::namer) | — | the name above, mapped by the closure (`app.log.2026-11-21.gz`); backups are still recognised, counted and deleted by that name |
//!
//! - Size is measured in bytes and is exact: a file never grows past `max_bytes`, except by a
//!   single record that is larger than `max_bytes` on its own. Records are never split: such a
//!   record is written alone into a fresh file (which then exceeds the limit) and the next record
//!   rotates it.
//! - [`backup_count(0)`](RollingFileBuilder::backup_count) keeps no backup: the file is
//!   truncated and starts again at each rotation (see [below](#backup_count0)).
//! - No empty backups: an empty file is never rotated (a period with no records leaves no file,
//!   and [`roll_over`](RollingFile::roll_over) of an empty file does nothing).
//! - Rotation happens when a record arrives, with the time read from the [`Clock`] when it is
//!   written (default [`SystemClock`]; tests use [`ManualClock`]), or when asked
//!   ([`RollingFile::roll_over`], [`WriterGuard::roll_over`], [`FileWriter::roll_over`]: on the
//!   writer's thread, after the lines queued before). A file left by an earlier run belongs to
//!   the period of its modification time, so a restart on the next day rotates yesterday's file
//!   first.
//! - **Hooks**: the [`namer`](RollingFileBuilder::namer) maps the default name of a rotated file
//!   to its final one, and the [`rotator`](RollingFileBuilder::rotator) moves the file there
//!   (default: a rename), as the standard library's hooks; both run on the writer's thread,
//!   never the application's. [`gzip`](RollingFileBuilder::gzip) sets both to compress backups
//!   (`app.log.2026-11-21.gz`, with [`gzip()`](crate::gzip) as the rotator). When the rotator
//!   fails, the file is not rotated: the error is counted and records go on into the same file.
//! - **Open mode**: records are appended to what the file holds (default);
//!   [`truncate(true)`](RollingFileBuilder::truncate) empties it when the writer first opens it
//!   (Python's `mode='w'`).
//! - Numbered backups are shifted up to the first free number only, so a rotation renames as many
//!   files as there are backups; with hundreds of backups prefer the dated names of time or
//!   combined rotation, which never rename a backup.
//! - Deleting only touches files whose names match the backup pattern of this file exactly;
//!   numbered backups above N left by an earlier configuration are left alone.
//! - **Reopen** ([`Reopen`]): logrotate's `create` mode renames `app.log` away and expects the
//!   writer to start a new `app.log`; the writer compares the path's device and inode with the
//!   open file's and reopens when they differ or the path is gone. Default: checked before a
//!   record at most once per second ([`Reopen::Every`]); [`Reopen::EveryWrite`] checks before
//!   every record (one `stat` each, as Python's `WatchedFileHandler`). `copytruncate` needs no
//!   reopen (files are opened in append mode); the same check notices the file shrank and counts
//!   `max_bytes` from its real size.
//! - **Permissions**: new files are created with mode `0o640` minus the umask
//!   ([`mode`](RollingFileBuilder::mode)); missing directories are created with
//!   `create_dir_all`'s `0o777` minus the umask ([`create_dirs`](RollingFileBuilder::create_dirs)).
//!   Rotated files keep their mode.
//! - **Errors** (a directory that is not writable, a full disk): counted in [`FileStats::errors`]
//!   (and, for the layer, retried by the delivery: see below), reported on stderr once per run of
//!   failures, and the file is opened again at the next record, so writing resumes by itself when
//!   the cause goes away.
//! - **Whole records only** (a full disk): writes are all-or-nothing per record. When a write
//!   or a flush fails part-way, the file is cut back ([`File::set_len`](std::fs::File::set_len))
//!   to the end of the last record that reached the disk whole, so no torn line stays and a
//!   retry never appends after half a record. The layer counts the records of the batch that
//!   are whole on disk as delivered and retries the others in order (each record is in the file
//!   exactly once); the writer counts the lines removed that way, and a line that failed, in
//!   [`FileStats::dropped`] (and the failure in [`FileStats::errors`]).
//!
//! ## Time rotation
//!
//! [`when`](RollingFileBuilder::when) takes the units of Python's `TimedRotatingFileHandler`
//! ([`When`]: `S`, `M`, `H`, `D`, `MIDNIGHT`, `W0`–`W6` with `W0` = Monday), with an
//! [`interval`](RollingFileBuilder::interval) of N units and an
//! [`at_time`](RollingFileBuilder::at_time) for midnight and weekly rollovers, on the clock of
//! a [`zone`](RollingFileBuilder::zone): UTC (default), the system's local time
//! ([`Zone::local`], `TZ` honoured; [`local_time(true)`](RollingFileBuilder::local_time)), or a
//! named IANA zone. [`rotate_every`](RollingFileBuilder::rotate_every) with an [`Interval`] is
//! the same as `when` with an interval of 1.
//!
//! ```
//! use watchbell_file::{RollingFile, When, Zone};
//!
//! # let dir = std::env::temp_dir().join(format!("watchbell-file-when-{}", std::process::id()));
//! // A new file every Monday at 06:00 Berlin time, named app-2026-11-23.log, 8 kept, gzipped.
//! let file = RollingFile::builder(dir.join("app.log"))
//!     .when(When::Weekday(0))
//!     .at_time(6, 0, 0)
//!     .zone(Zone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap()) // or Zone::named("Europe/Berlin")
//!     .date_format("%Y-%m-%d")
//!     .backup_count(8)
//!     .gzip()
//!     .build()
//!     .unwrap();
//! # drop(file);
//! ```
//!
//! - Periods are aligned to the zone's clock, as tracing-appender aligns its own: an hourly
//!   file covers 14:00–14:59, `H` with an interval of 6 makes files for 00–05, 06–11, 12–17 and
//!   18–23, `D` and `MIDNIGHT` start at midnight (or the `at_time`), N days or weeks counted
//!   from 1970-01-01. Python counts `S`, `M`, `H` and `D` from the moment the handler starts
//!   (its files start at 14:23:17 if that is when the program started); aligned periods give
//!   the same names whenever a program restarts, and Python's `D` and `MIDNIGHT` then differ
//!   only in that `at_time` applies to `MIDNIGHT` (and `W0`–`W6`) alone, as in Python.
//! - **Daylight saving time**: the period boundaries are times on the zone's clock, so a
//!   midnight rollover stays at local midnight on both sides of a change (the day the clocks go
//!   forward lasts 23 hours, the day they go back 25), as Python's DST adjustment does. A time
//!   that does not exist (02:30 when clocks jump from 02:00 to 03:00) starts its period when the
//!   clock passes it; a time that happens twice (02:00–02:59 when clocks go back from 03:00 to
//!   02:00) belongs to its first occurrence: an hourly rotation writes both 02:00 hours into one
//!   file, `app.log.2026-10-25_02`, and rolls at 03:00 — never twice into the same name (Python
//!   rolls at the repeated 02:00 into the name it has just used, and older versions deleted the
//!   first file), and never skipping an hour that exists. With `S` or `M`, likewise, the file of
//!   the last period before the change goes on through the repeated hour (one longer file, no
//!   second file of the same name).
//! - Backups are recognised by their exact name (after the namer) and the newest N are kept,
//!   ordered by the date text and then the number, as Python and Logbook order names: choose a
//!   `date_format` that sorts as text in time order (year first).
//!
//! ## `backup_count(0)`
//!
//! `0` keeps **no** backup: at each rotation (size or time) the file is truncated and starts
//! again. The standard library gives `backupCount=0` two other meanings — `RotatingFileHandler`
//! never rotates (the file grows past `maxBytes` forever), `TimedRotatingFileHandler` keeps every
//! file forever — and Logbook's timed handler keeps all too. A setting named "backup count"
//! that, set to zero, keeps an unbounded number of backups or lets a size-limited file grow
//! without limit breaks the one promise a rotated file makes, a bounded disk; so `0` means what
//! it says, for `backup_count(0)` and `file.backup_count = 0` in `watchbell.toml` alike. To keep
//! many backups, give a large count.
//!
//! Why not tracing-appender's `rolling`: it writes straight into the date-suffixed files (no
//! stable active name), has no size trigger (tracing #858), no injectable clock for tests, no
//! reopen after logrotate, and rotates inside `write` on whatever thread writes. This crate keeps
//! its idea (aligned periods, keep the newest N) and its `non_blocking` shape (a bounded queue, a
//! worker thread, a guard that flushes), and writes both itself: a line is queued as one message
//! (never split or interleaved), and the bytes bound and drop notice are ours.
//!
//! ## Defaults
//!
//! | setting | default | method |
//! |---|---|---|
//! | size limit | none (set one with `max_bytes`) | [`max_bytes`](RollingFileBuilder::max_bytes) |
//! | time rotation | none | [`when`](RollingFileBuilder::when) (or [`rotate_every`](RollingFileBuilder::rotate_every)) |
//! | units per period | 1 | [`interval`](RollingFileBuilder::interval) |
//! | time of a midnight or weekly rollover | 00:00:00 | [`at_time`](RollingFileBuilder::at_time) |
//! | zone of the rotation clock and the backup dates | UTC | [`zone`](RollingFileBuilder::zone), [`local_time`](RollingFileBuilder::local_time) |
//! | backup names | `app.log.2026-11-21` (time), `app.log.1` (size) | [`date_format`](RollingFileBuilder::date_format) (`app-2026-11-21.log`), [`namer`](RollingFileBuilder::namer) |
//! | moving a rotated file | a rename | [`rotator`](RollingFileBuilder::rotator), [`gzip`](RollingFileBuilder::gzip) |
//! | backups kept | 5 (`0`: none, the file is truncated) | [`backup_count`](RollingFileBuilder::backup_count) |
//! | open mode | append | [`truncate`](RollingFileBuilder::truncate) |
//! | reopen check | at most once per second, before a record | [`reopen`](RollingFileBuilder::reopen) |
//! | clock | [`SystemClock`] | [`clock`](RollingFileBuilder::clock) |
//! | file mode | `0o640` (unix, minus umask) | [`mode`](RollingFileBuilder::mode) |
//! | parent directories | created | [`create_dirs`](RollingFileBuilder::create_dirs) |
//! | writer queue | 65,536 lines and 64 MiB; what does not fit is dropped, counted and announced in the file | [`queue_lines`](RollingFileBuilder::queue_lines), [`queue_bytes`](RollingFileBuilder::queue_bytes) |
//! | writer when the queue is full | the line is dropped at once (the caller never waits) | [`overflow_wait`](RollingFileBuilder::overflow_wait) |
//! | writer flush | when its queue has been empty for 2 ms, and at least every 100 ms while lines keep coming | [`WriterGuard::flush`] |
//! | writer guard drop | a shutdown of at most 5 s | [`WriterGuard::drop_timeout`] |
//!
//! The layer ([`FileLayer`]) has the same file settings (same methods) and these:
//!
//! | setting | default | method |
//! |---|---|---|
//! | level captured | `INFO` and more severe | [`level`](FileLayerBuilder::level) |
//! | format | [`DefaultFormat`]: `[app] 2026-11-21T18:21:45.123456Z ERROR target: message k=v [spans] (N similar suppressed)` | [`format`](FileLayerBuilder::format) |
//! | line breaks in a record | further lines indented by two spaces, so a message cannot forge a record | [`multiline`](FileLayerBuilder::multiline) |
//! | control characters | NUL and every other C0/C1 control and DEL (tab and the line breaks above excepted) written escaped in Rust's notation, as quoted field values are: `\0`, `\u{1b}`, `\u{7f}`, `\u{85}`; raw NUL or escape bytes never reach the file | — |
//! | rate limit | none | `rate_limit` ([`SinkOptions`]) |
//! | queue | 10,000 records, the newest dropped and counted when full (a "N records dropped" line follows) | `queue_records`, `overflow` |
//! | batches | up to 1,000 records per write and flush | — |
//! | retries | an I/O error retries the records not yet written: 100 ms doubling to 5 s, for 10 minutes | `retry` |
//!
//! Nothing is written on the caller's thread, and the layer's records reach the disk at each
//! batch (flushed).
//!
//! ## Throughput
//!
//! Write N lines through the writer with `writer.write_line(bytes)` or through
//! `tracing_subscriber::fmt::layer().with_writer(writer)`, then `guard.flush(timeout)`; the
//! comparison with tracing-appender is its `non_blocking(RollingFileAppender)` in the same
//! `with_writer`. Both format on the caller's thread; watchbell-file queues one message per
//! event (one allocation) and writes through a 64 KiB buffer on its worker.
#![deny(missing_docs)]

mod rolling;
mod schedule;
mod writer;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing_core::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use watchbell_core::format::{DefaultFormat, Format, FormatContext};
use watchbell_core::{Batch, BuildError, Guard, Handler, Level, Options, Outcome, Retry, Sink, SinkLayer, SinkOptions};

pub use rolling::{Clock, FileStats, Interval, ManualClock, Reopen, RollingFile, RollingFileBuilder, SystemClock};
pub use schedule::{ParseWhenError, When};
pub use watchbell_core::zone::Zone;
pub use writer::{FileWriter, LineWriter, WriterGuard};

/// A [`rotator`](RollingFileBuilder::rotator) that compresses: writes `source` gzip-compressed
/// to `dest` (with `source`'s permissions), then deletes `source`. On an error the partial
/// `dest` is removed and `source` is left as it was. Usually set with
/// [`gzip()`](RollingFileBuilder::gzip), which also adds `.gz` to the rotated names.
///
/// ```
/// use std::io::Read;
///
/// let dir = std::env::temp_dir().join(format!("watchbell-file-gzip-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("app.log.1"), b"one\ntwo\n").unwrap();
/// watchbell_file::gzip(&dir.join("app.log.1"), &dir.join("app.log.1.gz")).unwrap();
/// let mut text = String::new();
/// flate2::read::GzDecoder::new(std::fs::File::open(dir.join("app.log.1.gz")).unwrap())
///     .read_to_string(&mut text)
///     .unwrap();
/// assert_eq!(text, "one\ntwo\n");
/// assert!(!dir.join("app.log.1").exists());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn gzip(source: &std::path::Path, dest: &std::path::Path) -> std::io::Result<()> {
    let compress = || -> std::io::Result<()> {
        let mut input = std::fs::File::open(source)?;
        let permissions = input.metadata()?.permissions();
        let out = std::fs::OpenOptions::new().write(true).create_new(true).open(dest)?;
        out.set_permissions(permissions)?;
        let mut encoder = flate2::write::GzEncoder::new(std::io::BufWriter::new(out), flate2::Compression::default());
        std::io::copy(&mut input, &mut encoder)?;
        encoder.finish()?.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    };
    if let Err(e) = compress() {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            let _ = std::fs::remove_file(dest);
        }
        return Err(e);
    }
    std::fs::remove_file(source)
}

/// What the layer does with line breaks inside one record's text (a message with a newline,
/// a multi-line error): a line-oriented file must not let a message forge a record of its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Multiline {
    /// Each further line is indented by two spaces (the default): tracebacks stay readable,
    /// and a line forged inside a message (`"ok\n2026-… ERROR …"`) is visibly a continuation,
    /// since a record's first line never starts with a space. CR and CRLF count as line breaks.
    #[default]
    Indent,
    /// The record becomes one line ([`single_line`](watchbell_core::text::single_line): every
    /// control char becomes a space), for tools that read one record per line.
    SingleLine,
    /// The text is written as the format made it (trailing newlines still trimmed).
    Keep,
}

/// The namespace of [`FileLayer::builder`]: a watchbell layer that writes records to a
/// rotating file.
#[derive(Debug)]
pub struct FileLayer(());

impl FileLayer {
    /// A layer writing to `path`. See the [crate docs](crate) for the defaults.
    pub fn builder(path: impl Into<PathBuf>) -> FileLayerBuilder {
        FileLayerBuilder {
            file: RollingFileBuilder::new(path),
            options: Options::new().retry(Retry {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(5),
                ..Retry::default()
            }),
            format: Arc::new(DefaultFormat),
            cx: FormatContext::default(),
            level: Level::INFO,
            multiline: Multiline::Indent,
        }
    }
}

/// Configures a [`FileLayer`]. The common delivery setters come from [`SinkOptions`].
pub struct FileLayerBuilder {
    file: RollingFileBuilder,
    options: Options,
    format: Arc<dyn Format>,
    cx: FormatContext,
    level: Level,
    multiline: Multiline,
}

impl fmt::Debug for FileLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileLayerBuilder")
            .field("file", &self.file)
            .field("options", &self.options)
            .field("cx", &self.cx)
            .field("level", &self.level)
            .field("multiline", &self.multiline)
            .finish_non_exhaustive()
    }
}

impl SinkOptions for FileLayerBuilder {
    fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }
}

impl FileLayerBuilder {
    /// See [`RollingFileBuilder::max_bytes`].
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.file = self.file.max_bytes(n);
        self
    }

    /// See [`RollingFileBuilder::backup_count`].
    pub fn backup_count(mut self, n: usize) -> Self {
        self.file = self.file.backup_count(n);
        self
    }

    /// See [`RollingFileBuilder::rotate_every`].
    pub fn rotate_every(mut self, interval: Interval) -> Self {
        self.file = self.file.rotate_every(interval);
        self
    }

    /// See [`RollingFileBuilder::when`].
    pub fn when(mut self, when: When) -> Self {
        self.file = self.file.when(when);
        self
    }

    /// See [`RollingFileBuilder::interval`].
    pub fn interval(mut self, n: u32) -> Self {
        self.file = self.file.interval(n);
        self
    }

    /// See [`RollingFileBuilder::at_time`].
    pub fn at_time(mut self, hour: u8, minute: u8, second: u8) -> Self {
        self.file = self.file.at_time(hour, minute, second);
        self
    }

    /// See [`RollingFileBuilder::zone`].
    pub fn zone(mut self, zone: Zone) -> Self {
        self.file = self.file.zone(zone);
        self
    }

    /// See [`RollingFileBuilder::local_time`].
    pub fn local_time(mut self, local: bool) -> Self {
        self.file = self.file.local_time(local);
        self
    }

    /// See [`RollingFileBuilder::date_format`].
    pub fn date_format(mut self, format: impl Into<String>) -> Self {
        self.file = self.file.date_format(format);
        self
    }

    /// See [`RollingFileBuilder::namer`].
    pub fn namer(mut self, namer: impl Fn(&std::path::Path) -> PathBuf + Send + Sync + 'static) -> Self {
        self.file = self.file.namer(namer);
        self
    }

    /// See [`RollingFileBuilder::rotator`].
    pub fn rotator(
        mut self,
        rotator: impl Fn(&std::path::Path, &std::path::Path) -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.file = self.file.rotator(rotator);
        self
    }

    /// See [`RollingFileBuilder::gzip`].
    pub fn gzip(mut self) -> Self {
        self.file = self.file.gzip();
        self
    }

    /// See [`RollingFileBuilder::truncate`].
    pub fn truncate(mut self, truncate: bool) -> Self {
        self.file = self.file.truncate(truncate);
        self
    }

    /// See [`RollingFileBuilder::reopen`].
    pub fn reopen(mut self, reopen: Reopen) -> Self {
        self.file = self.file.reopen(reopen);
        self
    }

    /// See [`RollingFileBuilder::clock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.file = self.file.clock(clock);
        self
    }

    /// See [`RollingFileBuilder::mode`].
    pub fn mode(mut self, mode: u32) -> Self {
        self.file = self.file.mode(mode);
        self
    }

    /// See [`RollingFileBuilder::create_dirs`].
    pub fn create_dirs(mut self, create: bool) -> Self {
        self.file = self.file.create_dirs(create);
        self
    }

    /// The least severe level captured (default `INFO`).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// The text of one record (default [`DefaultFormat`]); a newline is added after each, and
    /// line breaks inside are handled as [`multiline`](Self::multiline) says.
    /// A [`Template`](watchbell_core::format::Template) or a closure
    /// `Fn(&Record, &FormatContext) -> String`.
    pub fn format(mut self, format: impl Format) -> Self {
        self.format = Arc::new(format);
        self
    }

    /// What happens to line breaks inside a record (default [`Multiline::Indent`]).
    pub fn multiline(mut self, multiline: Multiline) -> Self {
        self.multiline = multiline;
        self
    }

    /// The application name (`[app] ` prefix of the default format, `{app}` in templates).
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.cx.app = Some(app.into());
        self
    }

    /// The host name for `{host}` in templates.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.cx.host = Some(host.into());
        self
    }

    /// The layer (events at [`level`](Self::level) and above) and its [`Guard`].
    pub fn build<S>(self) -> Result<(SinkLayer<S>, Guard), BuildError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let level = self.level;
        Ok(watchbell_core::options::layer(self.handler()?, level))
    }

    /// The handler chain (rate limit, if set, and the delivery to the file) and its [`Guard`],
    /// to stand behind another watchbell handler such as fingers-crossed. Batches are written
    /// whole, in order, whatever their reason.
    pub fn build_handler(self) -> Result<(Arc<dyn Handler>, Guard), BuildError> {
        let handler = self.handler()?;
        let guard = Guard::new(Arc::clone(&handler));
        Ok((handler, guard))
    }

    fn handler(self) -> Result<Arc<dyn Handler>, BuildError> {
        let name = format!("file {}", self.file.file_name());
        let sink = FileSink {
            file: self.file.build()?,
            format: self.format,
            cx: self.cx,
            multiline: self.multiline,
            buf: String::new(),
            line: String::new(),
        };
        let delivery = self.options.delivery(name, sink).batch_records(1000).spawn().map_err(|e| {
            BuildError::new("watchbell-file", "thread", format!("cannot start the delivery thread: {e}"))
        })?;
        Ok(self.options.limited("file", delivery))
    }
}

/// The [`Sink`] behind [`FileLayer`]: formats each record, writes it as one line, flushes at
/// the end of the batch.
struct FileSink {
    file: RollingFile,
    format: Arc<dyn Format>,
    cx: FormatContext,
    multiline: Multiline,
    buf: String,
    line: String,
}

/// Writes `text` into `out` as one record for a line-oriented file, ending in one `\n`.
fn record_text(text: &str, multiline: Multiline, out: &mut String) {
    out.clear();
    let text = text.trim_end_matches(['\r', '\n']);
    match multiline {
        Multiline::Keep => push_escaped(out, text, true),
        Multiline::SingleLine => push_escaped(out, &watchbell_core::text::single_line(text), false),
        Multiline::Indent => {
            let mut rest = text;
            while let Some(i) = rest.bytes().position(|b| b == b'\r' || b == b'\n') {
                push_escaped(out, &rest[..i], false);
                out.push_str("\n  ");
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
            push_escaped(out, rest, false);
        }
    }
    out.push('\n');
}

/// Whether `text` can go to the file as it is in the `Keep` and `Indent` modes (not in
/// `SingleLine`, which also trims spaces): no control character at all (C0 — tab and line
/// breaks included —, DEL, or a byte `0xC2`, which starts every C1 control and some other
/// chars). A byte test: such text (nearly every record) is copied without looking at its chars.
fn is_plain(text: &str) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let special = |b: u8| b < 0x20 || b == 0x7f || b == 0xc2;
    let bytes = text.as_bytes();
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let w = u64::from_le_bytes(w);
        // A byte below 0x20, or equal to 0x7f or 0xc2 (the zero-byte test of each).
        let below = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
        let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
        if below | zero(w ^ (ONES * 0x7f)) | zero(w ^ (ONES * 0xc2)) != 0 {
            return false;
        }
    }
    !chunks.remainder().iter().any(|&b| special(b))
}

/// Appends `text` with every control character (C0, DEL, C1; NUL included) except tab, and
/// except CR and LF when `keep_breaks`, written in Rust's escape notation: `\0`, `\u{1b}`,
/// `\u{7f}`, `\u{85}` (the notation the formats use for quoted field values).
fn push_escaped(out: &mut String, text: &str, keep_breaks: bool) {
    let kept = |c: char| c == '\t' || (keep_breaks && (c == '\n' || c == '\r'));
    if is_plain(text) || !text.chars().any(|c| c.is_control() && !kept(c)) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        if c.is_control() && !kept(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
}

impl Sink for FileSink {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        // Records confirmed whole on disk before this batch: the ones of this batch that reach
        // the disk whole are counted from here, whatever fails later.
        let before = self.file.whole_records();
        let mut failure = None;
        for record in &batch.records {
            self.buf.clear();
            self.format.format(record, &self.cx, &mut self.buf);
            let text = if self.multiline != Multiline::SingleLine && is_plain(&self.buf) {
                // Nothing to escape or indent, no trailing line break to trim (`SingleLine`
                // also trims spaces): the text and its newline are written from the format's
                // own buffer.
                self.buf.push('\n');
                &self.buf
            } else {
                record_text(&self.buf, self.multiline, &mut self.line);
                &self.line
            };
            if let Err(e) = self.file.write_record(text.as_bytes()) {
                failure = Some(format!("cannot write {}: {e}", self.file.path().display()));
                break;
            }
        }
        if failure.is_none() {
            if let Err(e) = self.file.flush() {
                failure = Some(format!("cannot flush {}: {e}", self.file.path().display()));
            }
        }
        let Some(reason) = failure else { return Outcome::Delivered };
        // The file was cut back to its last whole record: those are delivered, the others are
        // retried (in order, never twice on disk).
        let delivered = (self.file.whole_records() - before).min(batch.records.len() as u64) as usize;
        let rest = Outcome::retry(reason);
        match delivered {
            0 => rest,
            n => Outcome::Partial { delivered: n, rest: Box::new(rest) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_inside_a_record_cannot_forge_records() {
        let mut out = String::new();
        let forged = "ok\n2026-11-21T00:00:00Z ERROR app: forged\r\nthird\rfourth\n\n";
        record_text(forged, Multiline::Indent, &mut out);
        assert_eq!(out, "ok\n  2026-11-21T00:00:00Z ERROR app: forged\n  third\n  fourth\n");
        record_text(forged, Multiline::SingleLine, &mut out);
        assert_eq!(out, "ok 2026-11-21T00:00:00Z ERROR app: forged third fourth\n");
        record_text("a\nb\n", Multiline::Keep, &mut out);
        assert_eq!(out, "a\nb\n");
        record_text("plain", Multiline::Indent, &mut out);
        assert_eq!(out, "plain\n");
    }

    #[test]
    fn plain_text_is_exactly_the_text_that_needs_no_change() {
        // Every char up to U+00FF, and some beyond, alone and inside text: a text `is_plain`
        // lets through is written as it is by the modes that take the shortcut (`SingleLine`
        // trims spaces and turns U+2028 into one, and does not).
        let chars = (0u32..=0x100).chain([0x2028, 0x1f600, 0x85, 0xa0]).filter_map(char::from_u32);
        let mut out = String::new();
        for c in chars {
            for text in [c.to_string(), format!("ab{c}cd"), format!("{c}{c}")] {
                if is_plain(&text) {
                    for mode in [Multiline::Indent, Multiline::Keep] {
                        record_text(&text, mode, &mut out);
                        assert_eq!(out, format!("{text}\n"), "{text:?} {mode:?}");
                    }
                } else {
                    // Only text with a control char, a line break, or a char whose UTF-8 starts
                    // with 0xC2 (U+0080 to U+00BF) takes the char-by-char path.
                    assert!(text.chars().any(|c| c.is_control() || ('\u{80}'..='\u{bf}').contains(&c)), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn plain_check_finds_every_special_byte_at_every_position() {
        for len in 1..40 {
            assert!(is_plain(&"a".repeat(len)));
            // The bytes next to the special ones, everywhere.
            let near: String = (0..len).map(|i| [' ', '~', 'é', '!', 'A', 'ÿ', '\u{100}', '\u{3c2}'][i % 8]).collect();
            assert!(is_plain(&near), "{near:?}");
            for pos in 0..len {
                for special in ['\0', '\t', '\n', '\x1f', '\x7f', '\u{85}', '\u{a0}'] {
                    let mut text: Vec<char> = vec!['a'; len];
                    text[pos] = special;
                    let text: String = text.into_iter().collect();
                    assert!(!is_plain(&text), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn control_characters_are_escaped_never_written_raw() {
        let mut out = String::new();
        let text = "a\0b\x1b[31mc\x7fd\u{85}e\tf\ng\0";
        record_text(text, Multiline::Indent, &mut out);
        assert_eq!(out, "a\\0b\\u{1b}[31mc\\u{7f}d\\u{85}e\tf\n  g\\0\n");
        record_text(text, Multiline::Keep, &mut out);
        assert_eq!(out, "a\\0b\\u{1b}[31mc\\u{7f}d\\u{85}e\tf\ng\\0\n");
        record_text(text, Multiline::SingleLine, &mut out);
        assert!(!out.trim_end_matches('\n').chars().any(|c| c.is_control() && c != '\t'), "{out:?}");
    }
}
