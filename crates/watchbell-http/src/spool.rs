//! The disk spool: bounded append-only segment files of records, read back in order.
//!
//! Layout of the directory: `seg-<20-digit id>.ndjson` segment files, each line one
//! [`Record`] as watchbell serializes it, and `cursor`, the position of the next record to
//! replay (`<segment id> <byte offset>`), replaced atomically (written aside, then renamed)
//! after every replayed chunk. Records are appended in the order they were spooled and read
//! back in that order; a segment is deleted once it is replayed. A process that stops between
//! a successful send and the cursor update sends that chunk again after a restart: delivery
//! is at least once.
//!
//! A full disk is an ordinary failure. Appends are all-or-nothing per record: when a write
//! fails part-way, the segment is cut back to the end of the last record that reached the disk
//! whole; those records count as spooled (and are replayed), the others as shed, so
//! `spooled = replayed + failed + shed while reading + pending` holds exactly, and no half
//! line is left to merge with the first record spooled after space returns. (If the cut itself
//! fails, the next append starts a fresh segment and the reader skips the torn line, counted.)
//!
//! The cursor is checked against its segment when the spool is opened: a cursor past the end
//! of its segment or inside a record, or naming a segment newer than every segment present, is
//! counted as corrupt (in the spool's stats line) and replay starts again at the beginning of
//! its segment, or of the oldest segment present when it names a newer one: at least once,
//! records may be sent twice, none is skipped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use watchbell_core::Record;

/// Counters of a spool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SpoolCounts {
    pub spooled: u64,
    pub replayed: u64,
    pub shed_records: u64,
    pub shed_bytes: u64,
    pub failed: u64,
    pub pending_records: u64,
    pub pending_bytes: u64,
    /// Cursors found invalid at open (past the end of their segment, inside a frame, or in a
    /// segment newer than every segment present): replay restarted at a safe point.
    pub corrupt_cursors: u64,
}

struct State {
    dir: PathBuf,
    max_bytes: u64,
    segment_max: u64,
    /// Segment ids present, oldest first; the last is the one written to.
    segments: Vec<u64>,
    writer: Option<File>,
    writer_len: u64,
    cursor: (u64, u64),
    counts: SpoolCounts,
    /// Set by [`Spool::stop`]: the replayer ends and waits return.
    stopped: bool,
    error_reported: bool,
}

/// A chunk read from the spool: the records and where the cursor goes after each.
pub(crate) struct Chunk {
    pub records: Vec<Record>,
    pub ends: Vec<(u64, u64)>,
    pub bytes: Vec<u64>,
}

pub(crate) struct Spool {
    state: Mutex<State>,
    changed: Condvar,
}

/// Whether `off` is a place a cursor can point at in a segment holding `data`: its start, or
/// just after a record's newline (never past the end, never inside a frame).
pub(crate) fn cursor_is_valid(data: &[u8], off: u64) -> bool {
    off == 0 || (off <= data.len() as u64 && data[off as usize - 1] == b'\n')
}

fn seg_name(id: u64) -> String {
    format!("seg-{id:020}.ndjson")
}

fn parse_seg(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?.strip_suffix(".ndjson")?.parse().ok()
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, finds what is left from earlier runs and starts a
    /// new segment for writing (a record half-written by a killed process stays in an older
    /// segment, where the reader skips it).
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let mut segments: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| parse_seg(&e.file_name().to_string_lossy()))
            .collect();
        segments.sort_unstable();
        let cursor = fs::read_to_string(dir.join("cursor"))
            .ok()
            .and_then(|s| {
                let mut it = s.split_whitespace();
                Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
            })
            .unwrap_or((segments.first().copied().unwrap_or(1), 0));
        let mut corrupt_cursor = false;
        let mut cursor = cursor;
        if let (Some(&first), Some(&last)) = (segments.first(), segments.last()) {
            if cursor.0 > last {
                // Newer than every segment: trusting it would drop them all unreplayed.
                corrupt_cursor = true;
                cursor = (first, 0);
            } else if cursor.0 < first || !segments.contains(&cursor.0) {
                // Its segment was replayed and removed before the cursor moved on: the next
                // segment starts at its beginning.
                let next = segments.iter().copied().find(|&id| id > cursor.0).unwrap_or(first);
                cursor = (next, 0);
            } else {
                let data = fs::read(dir.join(seg_name(cursor.0)))?;
                if !cursor_is_valid(&data, cursor.1) {
                    corrupt_cursor = true;
                    cursor.1 = 0;
                }
            }
        }
        if corrupt_cursor {
            watchbell_core::report::report(
                "http spool",
                &format!(
                    "the spool cursor does not point at a record boundary of its \
                 segment; replaying from the start of segment {} (records may be sent twice)",
                    cursor.0
                ),
            );
        }
        // Segments before the cursor were replayed.
        for id in segments.iter().filter(|&&id| id < cursor.0) {
            let _ = fs::remove_file(dir.join(seg_name(*id)));
        }
        segments.retain(|&id| id >= cursor.0);
        let mut counts = SpoolCounts { corrupt_cursors: u64::from(corrupt_cursor), ..SpoolCounts::default() };
        for &id in &segments {
            let data = fs::read(dir.join(seg_name(id)))?;
            let from = if id == cursor.0 { (cursor.1 as usize).min(data.len()) } else { 0 };
            let rest = &data[from..];
            counts.pending_bytes += rest.len() as u64;
            counts.pending_records += rest.iter().filter(|&&b| b == b'\n').count() as u64
                + u64::from(!rest.is_empty() && !rest.ends_with(b"\n"));
        }
        if counts.pending_bytes == 0 {
            // Nothing left to replay: start afresh rather than keep empty segments around.
            for id in segments.drain(..) {
                let _ = fs::remove_file(dir.join(seg_name(id)));
            }
            counts.pending_records = 0;
        }
        let next = segments.last().map_or(cursor.0.max(1), |l| l + 1);
        let mut st = State {
            dir: dir.to_owned(),
            max_bytes: max_bytes.max(1),
            segment_max: (max_bytes / 16).clamp(64 * 1024, 64 << 20),
            segments,
            writer: None,
            writer_len: 0,
            cursor,
            counts,
            stopped: false,
            error_reported: false,
        };
        st.start_segment(next)?;
        Ok(Spool { state: Mutex::new(st), changed: Condvar::new() })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn counts(&self) -> SpoolCounts {
        self.lock().counts
    }

    /// Appends `records` if the spool already holds records (so that newer records never pass
    /// older ones) or if `force`; returns whether they were taken. Records that do not fit in
    /// the size cap are shed and counted (they are taken all the same: they will not be sent).
    pub(crate) fn append_if(&self, records: &[&Record], force: bool) -> bool {
        let mut st = self.lock();
        if !force && st.counts.pending_bytes == 0 {
            return false;
        }
        let mut buf = Vec::with_capacity(records.len() * 512);
        // Where each record taken ends in `buf`.
        let mut ends = Vec::with_capacity(records.len());
        for r in records {
            let start = buf.len();
            if serde_json::to_writer(&mut buf, r).is_err() {
                buf.truncate(start);
                continue;
            }
            buf.push(b'\n');
            let len = (buf.len() - start) as u64;
            if st.counts.pending_bytes + (buf.len() as u64) > st.max_bytes {
                buf.truncate(start);
                st.counts.shed_records += 1;
                st.counts.shed_bytes += len;
                continue;
            }
            ends.push(buf.len());
        }
        if !buf.is_empty() {
            let n = ends.len() as u64;
            let (whole, whole_bytes) = match st.write(&buf, &ends) {
                Ok(()) => (n, buf.len() as u64),
                Err((e, whole, whole_bytes)) => {
                    if !std::mem::replace(&mut st.error_reported, true) {
                        watchbell_core::report::report(
                            "http spool",
                            &format!("cannot write the spool, records shed: {e}"),
                        );
                    }
                    (whole, whole_bytes)
                }
            };
            // What reached the disk whole is spooled (and replayed); the rest is shed.
            st.counts.spooled += whole;
            st.counts.pending_records += whole;
            st.counts.pending_bytes += whole_bytes;
            st.counts.shed_records += n - whole;
            st.counts.shed_bytes += buf.len() as u64 - whole_bytes;
        }
        drop(st);
        self.changed.notify_all();
        true
    }

    /// Reads up to `max` records from the cursor (within one segment).
    pub(crate) fn read(&self, max: usize) -> Chunk {
        let mut st = self.lock();
        let mut chunk = Chunk { records: Vec::new(), ends: Vec::new(), bytes: Vec::new() };
        loop {
            if st.counts.pending_bytes == 0 {
                return chunk;
            }
            let (id, off) = st.cursor;
            let path = st.dir.join(seg_name(id));
            let last = st.segments.last() == Some(&id);
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(_) if !last => {
                    st.advance_segment();
                    continue;
                }
                Err(_) => return chunk,
            };
            let mut reader = BufReader::new(file);
            if reader.seek(SeekFrom::Start(off)).is_err() {
                return chunk;
            }
            let mut pos = off;
            let mut line = Vec::new();
            while chunk.records.len() < max {
                line.clear();
                let n: usize = reader.read_until(b'\n', &mut line).unwrap_or_default();
                if n == 0 {
                    break;
                }
                pos += n as u64;
                let complete = line.ends_with(b"\n");
                match serde_json::from_slice::<Record>(&line).ok().filter(|_| complete || !last) {
                    Some(r) => {
                        chunk.records.push(r);
                        chunk.ends.push((id, pos));
                        chunk.bytes.push(n as u64);
                    }
                    None if !complete && last => {
                        // Being written (cannot happen under the lock, but be safe).
                        break;
                    }
                    None if !chunk.records.is_empty() => {
                        // Skipped by the next read, once what precedes it is committed.
                        break;
                    }
                    None => {
                        // A line cut by a killed process, or damaged: skipped and counted.
                        st.counts.shed_records += 1;
                        st.counts.shed_bytes += n as u64;
                        st.counts.pending_records = st.counts.pending_records.saturating_sub(1);
                        st.counts.pending_bytes = st.counts.pending_bytes.saturating_sub(n as u64);
                        st.cursor = (id, pos);
                        st.save_cursor();
                    }
                }
            }
            if !chunk.records.is_empty() || last {
                return chunk;
            }
            // Nothing more in an older segment: go on with the next.
            st.advance_segment();
        }
    }

    /// Marks the first `k` records of `chunk` as replayed (`failed` of them given up on).
    pub(crate) fn commit(&self, chunk: &Chunk, k: usize, failed: u64) {
        if k == 0 {
            return;
        }
        let mut st = self.lock();
        st.cursor = chunk.ends[k - 1];
        let bytes: u64 = chunk.bytes[..k].iter().sum();
        st.counts.pending_bytes = st.counts.pending_bytes.saturating_sub(bytes);
        st.counts.pending_records = st.counts.pending_records.saturating_sub(k as u64);
        st.counts.replayed += k as u64 - failed;
        st.counts.failed += failed;
        st.save_cursor();
        if st.counts.pending_bytes == 0 {
            // Everything replayed: older segments go; the current one is restarted.
            let cur = *st.segments.last().unwrap_or(&1);
            for id in st.segments.clone() {
                let _ = fs::remove_file(st.dir.join(seg_name(id)));
            }
            st.segments.clear();
            let _ = st.start_segment(cur + 1);
            st.cursor = (cur + 1, 0);
            st.save_cursor();
        }
        drop(st);
        self.changed.notify_all();
    }

    /// Waits until the spool is empty or `deadline`; returns the records left.
    pub(crate) fn wait_empty(&self, deadline: Instant) -> u64 {
        let mut st = self.lock();
        while st.counts.pending_bytes > 0 && !st.stopped {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .changed
                .wait_timeout(st, (deadline - now).min(Duration::from_millis(200)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        st.counts.pending_records
    }

    /// Tells the replayer to stop.
    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.lock().stopped
    }

    /// Sleeps until `d` passed, something was spooled, or the spool was stopped.
    pub(crate) fn wait_change(&self, d: Duration, until_backlog: bool) {
        let deadline = watchbell_core::time::deadline(d);
        let mut st = self.lock();
        loop {
            if st.stopped || (until_backlog && st.counts.pending_bytes > 0) {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            st = self.changed.wait_timeout(st, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

impl State {
    fn start_segment(&mut self, id: u64) -> io::Result<()> {
        let path = self.dir.join(seg_name(id));
        let f = OpenOptions::new().create(true).append(true).open(&path)?;
        self.writer_len = f.metadata().map(|m| m.len()).unwrap_or(0);
        self.writer = Some(f);
        self.segments.push(id);
        Ok(())
    }

    /// Appends `buf`, whose records end at `ends`. All-or-nothing per record: on an error the
    /// segment is cut back to the end of the last record that reached the disk whole (or, if
    /// that fails, left for a fresh segment, where nothing can merge with the torn frame, which
    /// the reader skips and counts); returns the error with the records and bytes kept.
    fn write(&mut self, buf: &[u8], ends: &[usize]) -> Result<(), (io::Error, u64, u64)> {
        if self.writer_len >= self.segment_max || self.writer.is_none() {
            let next = self.segments.last().map_or(1, |l| l + 1);
            self.start_segment(next).map_err(|e| (e, 0, 0))?;
        }
        let base = self.writer_len;
        let w = self.writer.as_mut().ok_or_else(|| (io::Error::other("no segment"), 0, 0))?;
        let Err(e) = w.write_all(buf) else {
            self.writer_len += buf.len() as u64;
            return Ok(());
        };
        let Ok(meta) = w.metadata() else {
            // How far the disk got is unknown: a fresh segment for the next records.
            self.writer = None;
            return Err((e, 0, 0));
        };
        let on_disk = meta.len().saturating_sub(base);
        let whole = ends.iter().take_while(|&&end| end as u64 <= on_disk).count();
        let keep = if whole == 0 { 0 } else { ends[whole - 1] as u64 };
        if on_disk != keep && w.set_len(base + keep).is_err() {
            // The torn frame stays: never append after it.
            self.writer = None;
        }
        self.writer_len = base + keep;
        Err((e, whole as u64, keep))
    }

    fn advance_segment(&mut self) {
        let (id, _) = self.cursor;
        if let Some(next) = self.segments.iter().copied().find(|&s| s > id) {
            let _ = fs::remove_file(self.dir.join(seg_name(id)));
            self.segments.retain(|&s| s != id);
            self.cursor = (next, 0);
            self.save_cursor();
        }
    }

    fn save_cursor(&mut self) {
        let tmp = self.dir.join("cursor.tmp");
        let ok = fs::write(&tmp, format!("{} {}\n", self.cursor.0, self.cursor.1))
            .and_then(|()| fs::rename(&tmp, self.dir.join("cursor")));
        if let Err(e) = ok {
            if !std::mem::replace(&mut self.error_reported, true) {
                watchbell_core::report::report("http spool", &format!("cannot save the spool cursor: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchbell_core::Level;

    fn dir(tag: &str) -> PathBuf {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        std::env::temp_dir().join(format!("watchbell-spool-unit-{tag}-{}-{n}", std::process::id()))
    }

    #[test]
    fn a_cursor_is_valid_only_at_a_record_boundary() {
        let data = b"{}\n{\"a\":1}\n";
        assert!(cursor_is_valid(data, 0) && cursor_is_valid(data, 3) && cursor_is_valid(data, 11));
        assert!(!cursor_is_valid(data, 1) && !cursor_is_valid(data, 5) && !cursor_is_valid(data, 12));
        assert!(!cursor_is_valid(b"", 1) && !cursor_is_valid(data, u64::MAX));
    }

    #[test]
    fn reopens_in_order_and_skips_a_cut_line() {
        let d = dir("cut");
        let recs: Vec<Record> = (0..5).map(|i| Record::new(Level::INFO, "t", format!("m{i}"))).collect();
        {
            let s = Spool::open(&d, 1 << 20).unwrap();
            assert!(!s.append_if(&recs.iter().collect::<Vec<_>>(), false), "empty spool: not taken");
            assert!(s.append_if(&recs[..3].iter().collect::<Vec<_>>(), true));
            let c = s.read(2);
            assert_eq!(c.records.len(), 2);
            s.commit(&c, 1, 0);
            // A killed process leaves half a line behind.
            let seg = fs::read_dir(&d)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.to_string_lossy().ends_with(".ndjson"))
                .unwrap();
            let mut f = OpenOptions::new().append(true).open(seg).unwrap();
            f.write_all(b"{\"time\":\"20").unwrap();
        }
        let s = Spool::open(&d, 1 << 20).unwrap();
        assert_eq!(s.counts().pending_records, 3, "two records and the cut line");
        assert!(s.append_if(&recs[3..].iter().collect::<Vec<_>>(), false), "behind the backlog");
        let mut got = Vec::new();
        loop {
            let c = s.read(10);
            if c.records.is_empty() {
                break;
            }
            got.extend(c.records.iter().map(|r| r.message.clone()));
            s.commit(&c, c.records.len(), 0);
        }
        assert_eq!(got, ["m1", "m2", "m3", "m4"]);
        let c = s.counts();
        assert_eq!((c.shed_records, c.pending_records, c.pending_bytes), (1, 0, 0), "{c:?}");
        let _ = fs::remove_dir_all(&d);
    }
}
