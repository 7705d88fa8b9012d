//! The synchronous rotating file: size, time, both, reopen, errors.

mod common;

use std::time::Duration;

use common::{names, read, tmp, utc};
use watchbell_file::{Interval, ManualClock, Reopen, RollingFile};

/// Lines of varying byte length, with two-byte chars so that chars and bytes differ.
fn line(i: usize) -> String {
    format!("{i:04} {}\n", "é".repeat(i % 23))
}

#[test]
fn size_rotation_is_exact_in_bytes() {
    let dir = tmp("size");
    let max = 100u64;
    let mut file = RollingFile::builder(dir.join("app.log")).max_bytes(max).backup_count(3).build().unwrap();
    let lines: Vec<String> = (0..200).map(line).collect();
    for l in &lines {
        file.write_record(l.as_bytes()).unwrap();
    }
    file.flush().unwrap();

    assert_eq!(names(&dir), ["app.log", "app.log.1", "app.log.2", "app.log.3"], "3 backups, the oldest deleted");
    // Oldest first.
    let files: Vec<String> =
        ["app.log.3", "app.log.2", "app.log.1", "app.log"].iter().map(|n| read(dir.join(n))).collect();
    let all = lines.concat();
    assert!(all.ends_with(&files.concat()), "the files hold the newest records, in order, none split");
    for (i, f) in files.iter().enumerate() {
        assert!(!f.is_empty(), "no empty file");
        assert!(f.len() as u64 <= max, "file {i} has {} bytes > {max}", f.len());
        assert!(f.ends_with('\n') && f.starts_with(char::is_numeric), "whole records only");
        if let Some(next) = files.get(i + 1) {
            let first = next.split_inclusive('\n').next().unwrap();
            assert!(f.len() + first.len() > max as usize, "rotated only when the next record did not fit: {f:?}");
        }
    }
    assert!(file.stats().rotations > 20);
    assert_eq!(file.stats().records, 200);
    assert_eq!(file.stats().bytes, all.len() as u64);
}

/// logging.handlers' `RotatingFileHandler` (before Python 3.13) rolled an empty file over when
/// the first record was larger than `maxBytes`, leaving an empty backup; size rotation here never
/// makes one, whatever the record sizes.
#[test]
fn size_rotation_never_makes_an_empty_backup_even_for_records_larger_than_max_bytes() {
    let dir = tmp("oversized-first");
    let mut file = RollingFile::builder(dir.join("app.log")).max_bytes(10).backup_count(5).build().unwrap();
    let (big1, big2) = (format!("{}\n", "a".repeat(30)), format!("{}\n", "b".repeat(40)));
    file.write_record(big1.as_bytes()).unwrap();
    file.flush().unwrap();
    assert_eq!(names(&dir), ["app.log"], "an empty file is not rolled over for an oversized first record");
    file.write_record(big2.as_bytes()).unwrap();
    file.write_record(b"c\n").unwrap();
    file.flush().unwrap();
    assert_eq!(names(&dir), ["app.log", "app.log.1", "app.log.2"]);
    assert_eq!(
        (read(dir.join("app.log.2")), read(dir.join("app.log.1")), read(dir.join("app.log"))),
        (big1, big2, "c\n".to_owned())
    );
    for n in names(&dir) {
        assert!(!read(dir.join(&n)).is_empty(), "{n} is empty");
    }
}

#[test]
fn a_record_larger_than_max_bytes_is_written_alone_and_never_split() {
    let dir = tmp("oversized");
    let mut file = RollingFile::builder(dir.join("app.log")).max_bytes(10).backup_count(5).build().unwrap();
    let big = format!("{}\n", "x".repeat(24));
    file.write_record(b"abcd\n").unwrap();
    file.write_record(big.as_bytes()).unwrap();
    file.write_record(b"xyz\n").unwrap();
    file.flush().unwrap();
    assert_eq!(read(dir.join("app.log.2")), "abcd\n");
    assert_eq!(read(dir.join("app.log.1")), big);
    assert_eq!(read(dir.join("app.log")), "xyz\n");
}

#[test]
fn backup_count_zero_truncates_and_restarts() {
    let dir = tmp("zero");
    let mut file = RollingFile::builder(dir.join("app.log")).max_bytes(20).backup_count(0).build().unwrap();
    for i in 0..5 {
        file.write_record(format!("record number {i}\n").as_bytes()).unwrap();
    }
    file.flush().unwrap();
    assert_eq!(names(&dir), ["app.log"], "no backups with backup_count 0");
    assert_eq!(read(dir.join("app.log")), "record number 4\n");
    assert_eq!(file.stats().rotations, 4);
}

#[test]
fn time_rotation_crosses_hour_and_day_boundaries() {
    let dir = tmp("hourly");
    let clock = ManualClock::new(utc(2026, 11, 21, 22, 59, 30));
    let mut file = RollingFile::builder(dir.join("app.log"))
        .rotate_every(Interval::Hourly)
        .backup_count(10)
        .clock(clock.clone())
        .build()
        .unwrap();
    file.write_record(b"a\n").unwrap();
    clock.set(utc(2026, 11, 21, 22, 59, 59));
    file.write_record(b"b\n").unwrap();
    clock.set(utc(2026, 11, 21, 23, 0, 0));
    file.write_record(b"c\n").unwrap();
    clock.set(utc(2026, 11, 22, 0, 0, 1));
    file.write_record(b"d\n").unwrap();
    file.flush().unwrap();
    assert_eq!(names(&dir), ["app.log", "app.log.2026-11-21_22", "app.log.2026-11-21_23"]);
    assert_eq!(read(dir.join("app.log.2026-11-21_22")), "a\nb\n");
    assert_eq!(read(dir.join("app.log.2026-11-21_23")), "c\n");
    assert_eq!(read(dir.join("app.log")), "d\n");

    let dir = tmp("daily");
    let clock = ManualClock::new(utc(2026, 12, 31, 23, 59, 59));
    let mut file =
        RollingFile::builder(dir.join("app.log")).rotate_every(Interval::Daily).clock(clock.clone()).build().unwrap();
    file.write_record(b"old year\n").unwrap();
    clock.advance(Duration::from_secs(2));
    file.write_record(b"new year\n").unwrap();
    file.flush().unwrap();
    assert_eq!(names(&dir), ["app.log", "app.log.2026-12-31"]);
    assert_eq!(read(dir.join("app.log.2026-12-31")), "old year\n");
    assert_eq!(read(dir.join("app.log")), "new year\n");

    let dir = tmp("minutely");
    let clock = ManualClock::new(utc(2026, 11, 21, 14, 5, 0));
    let mut file = RollingFile::builder(dir.join("app.log"))
        .rotate_every(Interval::Minutely)
        .clock(clock.clone())
        .build()
        .unwrap();
    file.write_record(b"1\n").unwrap();
    clock.advance(Duration::from_secs(60));
    file.write_record(b"2\n").unwrap();
    assert_eq!(read(dir.join("app.log.2026-11-21_14-05")), "1\n");
}

#[test]
fn time_rotation_keeps_the_newest_n_and_deletes_only_its_own_backups() {
    let dir = tmp("keep");
    std::fs::write(dir.join("app.log.notes"), "mine").unwrap();
    std::fs::write(dir.join("other.log.2026-11-21_01"), "not ours").unwrap();
    std::fs::write(dir.join("app.log.2026-11-21_xx"), "not a date").unwrap();
    let clock = ManualClock::new(utc(2026, 11, 21, 1, 10, 0));
    let mut file = RollingFile::builder(dir.join("app.log"))
        .rotate_every(Interval::Hourly)
        .backup_count(2)
        .clock(clock.clone())
        .build()
        .unwrap();
    for hour in 1..=5 {
        clock.set(utc(2026, 11, 21, hour, 10, 0));
        file.write_record(format!("hour {hour}\n").as_bytes()).unwrap();
    }
    file.flush().unwrap();
    assert_eq!(
        names(&dir),
        [
            "app.log",
            "app.log.2026-11-21_03",
            "app.log.2026-11-21_04",
            "app.log.2026-11-21_xx",
            "app.log.notes",
            "other.log.2026-11-21_01"
        ]
    );
    assert_eq!(read(dir.join("app.log.2026-11-21_03")), "hour 3\n");
    assert_eq!(read(dir.join("app.log.2026-11-21_04")), "hour 4\n");
    assert_eq!(read(dir.join("app.log")), "hour 5\n");
}

#[test]
fn idle_periods_leave_no_empty_backups() {
    let dir = tmp("idle");
    let clock = ManualClock::new(utc(2026, 11, 21, 10, 0, 0));
    let mut file =
        RollingFile::builder(dir.join("app.log")).rotate_every(Interval::Hourly).clock(clock.clone()).build().unwrap();
    file.write_record(b"ten\n").unwrap();
    clock.set(utc(2026, 11, 21, 13, 30, 0));
    file.write_record(b"half past one\n").unwrap();
    file.flush().unwrap();
    assert_eq!(names(&dir), ["app.log", "app.log.2026-11-21_10"]);
    for n in names(&dir) {
        assert!(std::fs::metadata(dir.join(&n)).unwrap().len() > 0, "{n} is empty");
    }
}

#[test]
fn size_and_time_combined_roll_on_whichever_comes_first() {
    let dir = tmp("combined");
    let clock = ManualClock::new(utc(2026, 11, 21, 10, 0, 0));
    let mut file = RollingFile::builder(dir.join("app.log"))
        .rotate_every(Interval::Hourly)
        .max_bytes(20)
        .backup_count(3)
        .clock(clock.clone())
        .build()
        .unwrap();
    for r in ["r1 1234\n", "r2 1234\n", "r3 1234\n", "r4 1234\n", "r5 1234\n"] {
        file.write_record(r.as_bytes()).unwrap(); // size: 2 records (16 bytes) per file
    }
    clock.set(utc(2026, 11, 21, 11, 0, 0));
    file.write_record(b"r6\n").unwrap(); // time
    file.flush().unwrap();
    assert_eq!(names(&dir), ["app.log", "app.log.2026-11-21_10", "app.log.2026-11-21_10.1", "app.log.2026-11-21_10.2"]);
    assert_eq!(read(dir.join("app.log.2026-11-21_10")), "r1 1234\nr2 1234\n");
    assert_eq!(read(dir.join("app.log.2026-11-21_10.1")), "r3 1234\nr4 1234\n");
    assert_eq!(read(dir.join("app.log.2026-11-21_10.2")), "r5 1234\n");
    assert_eq!(read(dir.join("app.log")), "r6\n");

    // Keep 3: the oldest (the un-numbered first of hour 10) goes next.
    for r in ["r7 1234\n", "r8 1234\n", "r9 1234\n"] {
        file.write_record(r.as_bytes()).unwrap();
    }
    file.flush().unwrap();
    assert_eq!(names(&dir), ["app.log", "app.log.2026-11-21_10.1", "app.log.2026-11-21_10.2", "app.log.2026-11-21_11"]);
    assert_eq!(read(dir.join("app.log.2026-11-21_11")), "r6\nr7 1234\nr8 1234\n", "3 + 8 + 8 = 19 bytes fit in 20");
    assert_eq!(read(dir.join("app.log")), "r9 1234\n");

    // Twelve backups in one period sort by number, not by text (".10" after ".9").
    let dir = tmp("combined-many");
    let mut file = RollingFile::builder(dir.join("app.log"))
        .rotate_every(Interval::Daily)
        .max_bytes(4)
        .backup_count(3)
        .clock(ManualClock::new(utc(2026, 11, 21, 10, 0, 0)))
        .build()
        .unwrap();
    for i in 0..13 {
        file.write_record(format!("{:02}\n", i).as_bytes()).unwrap();
    }
    file.flush().unwrap();
    assert_eq!(names(&dir), ["app.log", "app.log.2026-11-21.10", "app.log.2026-11-21.11", "app.log.2026-11-21.9"]);
    assert_eq!(read(dir.join("app.log.2026-11-21.11")), "11\n");
    assert_eq!(read(dir.join("app.log")), "12\n");
}

#[test]
fn reopens_after_the_file_is_renamed_away_or_deleted() {
    let dir = tmp("reopen");
    let path = dir.join("app.log");
    let mut file = RollingFile::builder(&path).reopen(Reopen::EveryWrite).build().unwrap();
    file.write_record(b"before\n").unwrap();
    file.flush().unwrap();
    // logrotate's create mode: rename, then expect a new file at the path.
    std::fs::rename(&path, dir.join("app.log-20261121")).unwrap();
    file.write_record(b"after rename\n").unwrap();
    file.flush().unwrap();
    assert_eq!(read(dir.join("app.log-20261121")), "before\n");
    assert_eq!(read(&path), "after rename\n");
    // Deleted.
    std::fs::remove_file(&path).unwrap();
    file.write_record(b"after delete\n").unwrap();
    file.flush().unwrap();
    assert_eq!(read(&path), "after delete\n");
    assert_eq!(file.stats().reopens, 2);
    assert_eq!(file.stats().errors, 0);
}

#[test]
fn reopen_checks_at_most_once_per_interval() {
    let dir = tmp("reopen-interval");
    let path = dir.join("app.log");
    let mut file = RollingFile::builder(&path).reopen(Reopen::Every(Duration::from_millis(300))).build().unwrap();
    file.write_record(b"1\n").unwrap();
    file.flush().unwrap();
    std::fs::rename(&path, dir.join("moved")).unwrap();
    file.write_record(b"2\n").unwrap(); // within the interval: still the moved file
    file.flush().unwrap();
    std::thread::sleep(Duration::from_millis(350));
    file.write_record(b"3\n").unwrap();
    file.flush().unwrap();
    assert_eq!(read(dir.join("moved")), "1\n2\n");
    assert_eq!(read(&path), "3\n");

    let dir = tmp("reopen-never");
    let path = dir.join("app.log");
    let mut file = RollingFile::builder(&path).reopen(Reopen::Never).build().unwrap();
    file.write_record(b"1\n").unwrap();
    std::fs::rename(&path, dir.join("moved")).unwrap();
    file.write_record(b"2\n").unwrap();
    file.flush().unwrap();
    assert_eq!(read(dir.join("moved")), "1\n2\n");
    assert!(!path.exists());
}

#[test]
fn an_unwritable_directory_counts_errors_and_recovers() {
    let dir = tmp("unwritable");
    // A regular file where the directory should be: fails even for root.
    std::fs::write(dir.join("logs"), "in the way").unwrap();
    let path = dir.join("logs").join("app.log");
    let mut file = RollingFile::builder(&path).build().unwrap();
    for _ in 0..3 {
        assert!(file.write_record(b"lost\n").is_err());
    }
    assert_eq!(file.stats().errors, 3);
    assert_eq!(file.stats().records, 0);
    assert!(file.stats().last_error.unwrap().contains("app.log"));
    std::fs::remove_file(dir.join("logs")).unwrap();
    file.write_record(b"back\n").unwrap();
    file.flush().unwrap();
    assert_eq!(read(&path), "back\n");
    assert_eq!(file.stats().records, 1);
}

#[test]
fn creates_parent_directories_with_the_configured_mode() {
    let dir = tmp("dirs");
    let path = dir.join("a").join("b").join("app.log");
    let mut file = RollingFile::builder(&path).mode(0o600).build().unwrap();
    file.write_record(b"x\n").unwrap();
    file.flush().unwrap();
    assert_eq!(read(&path), "x\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let dir = tmp("no-dirs");
    let mut file = RollingFile::builder(dir.join("missing").join("app.log")).create_dirs(false).build().unwrap();
    assert!(file.write_record(b"x\n").is_err());
}

#[test]
fn an_existing_file_is_appended_to_and_counts_toward_max_bytes() {
    let dir = tmp("existing");
    std::fs::write(dir.join("app.log"), "0123456789\n").unwrap();
    let mut file = RollingFile::builder(dir.join("app.log")).max_bytes(15).build().unwrap();
    file.write_record(b"abc\n").unwrap(); // 11 + 4 = 15: fits
    file.write_record(b"d\n").unwrap(); // 17 > 15: rotates
    file.flush().unwrap();
    assert_eq!(read(dir.join("app.log.1")), "0123456789\nabc\n");
    assert_eq!(read(dir.join("app.log")), "d\n");
}

#[test]
fn invalid_configuration_is_a_build_error() {
    let e = RollingFile::builder("app.log").max_bytes(0).build().unwrap_err();
    assert_eq!(e.key, "max_bytes");
    let e = RollingFile::builder("").build().unwrap_err();
    assert_eq!(e.key, "path");
    let e = RollingFile::builder("logs/..").non_blocking().unwrap_err();
    assert_eq!(e.key, "path");
}

#[test]
fn a_file_left_by_an_earlier_run_belongs_to_the_period_it_was_written_in() {
    let dir = tmp("restart");
    let path = dir.join("app.log");
    std::fs::write(&path, "yesterday\n").unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_modified(utc(2026, 11, 20, 18, 30, 0)).unwrap();
    drop(f);
    let clock = ManualClock::new(utc(2026, 11, 21, 9, 0, 0));
    let mut file = RollingFile::builder(&path).rotate_every(Interval::Daily).clock(clock).build().unwrap();
    file.write_record(b"today\n").unwrap();
    file.flush().unwrap();
    assert_eq!(names(&dir), ["app.log", "app.log.2026-11-20"]);
    assert_eq!(read(dir.join("app.log.2026-11-20")), "yesterday\n");
    assert_eq!(read(&path), "today\n");
}

#[test]
fn numbered_backups_shift_into_the_first_gap_and_the_oldest_goes_at_n() {
    let dir = tmp("gap");
    std::fs::write(dir.join("app.log.1"), "b1\n").unwrap();
    std::fs::write(dir.join("app.log.3"), "b3\n").unwrap();
    let mut file = RollingFile::builder(dir.join("app.log")).max_bytes(3).backup_count(3).build().unwrap();
    file.write_record(b"x1\n").unwrap();
    file.write_record(b"x2\n").unwrap(); // rotates: .1 → .2 (the gap), x1 → .1
    file.flush().unwrap();
    assert_eq!(names(&dir), ["app.log", "app.log.1", "app.log.2", "app.log.3"]);
    assert_eq!(read(dir.join("app.log.1")), "x1\n");
    assert_eq!(read(dir.join("app.log.2")), "b1\n");
    assert_eq!(read(dir.join("app.log.3")), "b3\n");
    file.write_record(b"x3\n").unwrap(); // no gap: b3 (the oldest) is deleted
    file.flush().unwrap();
    assert_eq!(names(&dir), ["app.log", "app.log.1", "app.log.2", "app.log.3"]);
    let contents: Vec<String> =
        ["app.log.3", "app.log.2", "app.log.1", "app.log"].iter().map(|n| read(dir.join(n))).collect();
    assert_eq!(contents, ["b1\n", "x1\n", "x2\n", "x3\n"]);
}

#[test]
fn after_copytruncate_the_size_is_counted_from_the_truncated_file() {
    let dir = tmp("copytruncate");
    let path = dir.join("app.log");
    let mut file = RollingFile::builder(&path).max_bytes(10).reopen(Reopen::EveryWrite).build().unwrap();
    file.write_record(b"1234567\n").unwrap();
    file.flush().unwrap();
    // logrotate copytruncate: copy, then truncate in place.
    std::fs::copy(&path, dir.join("app.log.copy")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
    file.write_record(b"abcdefg\n").unwrap(); // 0 + 8 <= 10: no rotation
    file.flush().unwrap();
    assert_eq!(names(&dir), ["app.log", "app.log.copy"]);
    assert_eq!(read(&path), "abcdefg\n");
    assert_eq!(file.stats().rotations, 0);
}
