//! The non-blocking `MakeWriter` for `tracing_subscriber::fmt`.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use common::{names, read, tmp, utc};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use watchbell_file::{FileWriter, Interval, ManualClock, Reopen, RollingFile};

const WAIT: Duration = Duration::from_secs(20);

/// A dispatcher whose fmt layer writes bare messages (`msg\n`) through `writer`.
fn dispatch(writer: FileWriter) -> tracing::Dispatch {
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .without_time()
        .with_level(false)
        .with_target(false)
        .with_writer(writer);
    tracing::Dispatch::new(tracing_subscriber::registry().with(layer))
}

/// Every line of `app.log` and its backups.
fn all_lines(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for n in names(dir) {
        out.extend(read(dir.join(n)).lines().map(str::to_owned));
    }
    out
}

#[test]
fn four_threads_lose_and_duplicate_nothing_across_rotations() {
    let dir = tmp("threads");
    let (writer, guard) =
        RollingFile::builder(dir.join("app.log")).max_bytes(4096).backup_count(10_000).non_blocking().unwrap();
    let dispatch = dispatch(writer);
    let per_thread = 2500;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..per_thread {
                        tracing::info!("thread {t} line {i:05} {}", "-".repeat(i % 40));
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(guard.flush(WAIT));
    let stats = guard.stats();
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert!(stats.rotations > 20, "{stats:?}");

    let mut seen: HashMap<(usize, usize), usize> = HashMap::new();
    for l in all_lines(&dir) {
        // Each line exactly as written: never split, never interleaved.
        let rest = l.strip_prefix("thread ").unwrap_or_else(|| panic!("malformed line {l:?}"));
        let (t, rest) = rest.split_once(" line ").unwrap_or_else(|| panic!("malformed line {l:?}"));
        let (i, dashes) = rest.split_once(' ').unwrap_or_else(|| panic!("malformed line {l:?}"));
        let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
        assert_eq!(dashes, "-".repeat(i % 40), "line {l:?} is damaged");
        *seen.entry((t, i)).or_default() += 1;
    }
    for t in 0..4 {
        for i in 0..per_thread {
            assert_eq!(seen.get(&(t, i)), Some(&1), "thread {t} line {i} must appear exactly once");
        }
    }
    assert_eq!(seen.len(), 4 * per_thread);
    for n in names(&dir) {
        let len = std::fs::metadata(dir.join(&n)).unwrap().len();
        assert!(len > 0 && len <= 4096, "{n} has {len} bytes");
    }
}

#[test]
fn one_megabyte_multibyte_lines_arrive_whole() {
    let dir = tmp("big");
    let (writer, guard) =
        RollingFile::builder(dir.join("app.log")).max_bytes(512 << 10).backup_count(10).non_blocking().unwrap();
    let dispatch = dispatch(writer);
    let lines: Vec<String> = ["日本語", "é€", "🦀x"].iter().map(|s| s.repeat((1 << 20) / s.len())).collect();
    tracing::dispatcher::with_default(&dispatch, || {
        for l in &lines {
            tracing::info!("{l}");
        }
    });
    assert!(guard.flush(WAIT));
    assert_eq!(names(&dir), ["app.log", "app.log.1", "app.log.2"]);
    assert_eq!(read(dir.join("app.log.2")), format!("{}\n", lines[0]));
    assert_eq!(read(dir.join("app.log.1")), format!("{}\n", lines[1]));
    assert_eq!(read(dir.join("app.log")), format!("{}\n", lines[2]));
    assert!(lines.iter().all(|l| l.len() >= 1_000_000));
}

#[test]
fn reopens_after_logrotate_renames_the_file() {
    let dir = tmp("nb-reopen");
    let path = dir.join("app.log");
    let (writer, guard) = RollingFile::builder(&path).reopen(Reopen::EveryWrite).non_blocking().unwrap();
    writer.write_line("one\n");
    assert!(guard.flush(WAIT));
    std::fs::rename(&path, dir.join("app.log.1")).unwrap();
    writer.write_line("two\n");
    assert!(guard.flush(WAIT));
    std::fs::remove_file(&path).unwrap();
    writer.write_line("three\n");
    assert!(guard.flush(WAIT));
    assert_eq!(read(dir.join("app.log.1")), "one\n");
    assert_eq!(read(&path), "three\n");
    assert_eq!(guard.stats().reopens, 2);
}

#[test]
fn an_unwritable_directory_counts_errors_and_writing_resumes() {
    let dir = tmp("nb-unwritable");
    std::fs::write(dir.join("logs"), "a file where the directory should be").unwrap();
    let path = dir.join("logs").join("app.log");
    let (writer, guard) = RollingFile::builder(&path).non_blocking().unwrap();
    for i in 0..3 {
        assert!(writer.write_line(format!("lost {i}\n")), "queued even though the disk fails");
    }
    assert!(guard.flush(WAIT));
    let stats = guard.stats();
    assert_eq!((stats.errors, stats.records), (3, 0), "{stats:?}");
    std::fs::remove_file(dir.join("logs")).unwrap();
    writer.write_line("back\n");
    assert!(guard.flush(WAIT));
    assert_eq!(read(&path), "back\n");
    assert_eq!(guard.stats().records, 1);
}

#[test]
fn time_rotation_through_the_writer_with_a_manual_clock() {
    let dir = tmp("nb-time");
    let clock = ManualClock::new(utc(2026, 11, 21, 23, 59, 0));
    let (writer, guard) = RollingFile::builder(dir.join("app.log"))
        .rotate_every(Interval::Daily)
        .backup_count(2)
        .clock(clock.clone())
        .non_blocking()
        .unwrap();
    for day in 0..4u64 {
        writer.write_line(format!("day {day}\n"));
        assert!(guard.flush(WAIT));
        clock.advance(Duration::from_secs(86_400));
    }
    assert_eq!(names(&dir), ["app.log", "app.log.2026-11-22", "app.log.2026-11-23"]);
    assert_eq!(read(dir.join("app.log")), "day 3\n");
}

#[test]
fn a_full_queue_drops_counts_and_announces() {
    let dir = tmp("nb-full");
    // A stat per line slows the worker down so that the queue of 64 bytes overflows.
    let (writer, guard) =
        RollingFile::builder(dir.join("app.log")).queue_bytes(64).reopen(Reopen::EveryWrite).non_blocking().unwrap();
    let total = 5000;
    let mut accepted = 0;
    for i in 0..total {
        if writer.write_line(format!("{i:08}\n")) {
            accepted += 1;
        }
    }
    assert!(guard.flush(WAIT));
    let stats = guard.stats();
    assert_eq!(stats.dropped, total - accepted, "every refused line is counted");
    assert!(stats.dropped > 0, "the test must overflow the queue to mean anything");
    let text = read(dir.join("app.log"));
    let written = text.lines().filter(|l| !l.starts_with("watchbell-file:")).count() as u64;
    assert_eq!(written, accepted, "every accepted line is written");
    let announced: u64 = text
        .lines()
        .filter_map(|l| {
            l.strip_prefix("watchbell-file: ")?.strip_suffix(" lines dropped (queue full)")?.parse::<u64>().ok()
        })
        .sum();
    assert_eq!(announced, stats.dropped, "drops are announced in the file");
}

#[test]
fn the_guard_flushes_on_drop_and_later_lines_are_counted_as_dropped() {
    let dir = tmp("nb-drop");
    let (writer, guard) = RollingFile::builder(dir.join("app.log")).non_blocking().unwrap();
    {
        let mut w = writer.make_writer();
        w.write_all(b"part one, ").unwrap();
        w.write_all(b"part two\n").unwrap();
    }
    for i in 0..100 {
        writer.write_line(format!("line {i}\n"));
    }
    let stats_before = guard.stats();
    drop(guard);
    let text = read(dir.join("app.log"));
    assert!(text.starts_with("part one, part two\nline 0\n"), "one make_writer = one record: {text:?}");
    assert_eq!(text.lines().count(), 101);
    assert_eq!(stats_before.dropped, 0);
    assert!(!writer.write_line("too late\n"), "the writer is shut down");
}

#[test]
fn with_overflow_wait_a_full_queue_makes_the_caller_wait_instead_of_dropping() {
    let dir = tmp("nb-wait");
    let (writer, guard) = RollingFile::builder(dir.join("app.log"))
        .queue_lines(2)
        .queue_bytes(64)
        .reopen(Reopen::EveryWrite)
        .overflow_wait(Duration::from_secs(10))
        .non_blocking()
        .unwrap();
    for i in 0..3000 {
        assert!(writer.write_line(format!("{i:08}\n")), "line {i} was dropped");
    }
    assert!(guard.flush(WAIT));
    assert_eq!(guard.stats().dropped, 0);
    let expected: String = (0..3000).map(|i| format!("{i:08}\n")).collect();
    assert_eq!(read(dir.join("app.log")), expected, "one producer's lines stay in order");
}
