//! Time rotation as the standard library's `TimedRotatingFileHandler` (every `when`, intervals,
//! `at_time`, local time across both DST changes), Logbook's names, the namer and rotator
//! hooks, gzip, manual rollover, `backup_count(0)` and truncate mode.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{names, read, tmp, utc};
use watchbell_file::{ManualClock, RollingFile, RollingFileBuilder, When, Zone};

/// Europe/Berlin's rule (CET/CEST, last Sundays of March and October).
const BERLIN: &str = "CET-1CEST,M3.5.0,M10.5.0/3";
/// America/New_York's rule (second Sunday of March, first Sunday of November).
const NEW_YORK: &str = "EST5EDT,M3.2.0,M11.1.0";

/// A file at `dir/app.log` on a manual clock starting at `t`, keeping up to 50 backups.
fn timed(dir: &Path, t: SystemTime) -> (RollingFileBuilder, ManualClock) {
    let clock = ManualClock::new(t);
    (RollingFile::builder(dir.join("app.log")).backup_count(50).clock(clock.clone()), clock)
}

/// Writes one record per time, `"<label>\n"`, and flushes.
fn write_at(file: &mut RollingFile, clock: &ManualClock, records: &[(SystemTime, &str)]) {
    for (t, label) in records {
        clock.set(*t);
        file.write_record(format!("{label}\n").as_bytes()).unwrap();
    }
    file.flush().unwrap();
}

fn gunzip(path: impl AsRef<Path>) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_string(&mut text).unwrap();
    text
}

#[test]
fn each_when_rolls_at_the_end_of_its_unit_and_names_as_the_standard_library() {
    let cases: [(When, SystemTime, Duration, &str); 5] = [
        (When::Second, utc(2026, 11, 21, 14, 5, 9), Duration::from_secs(1), "app.log.2026-11-21_14-05-09"),
        (When::Minute, utc(2026, 11, 21, 14, 5, 0), Duration::from_secs(60), "app.log.2026-11-21_14-05"),
        (When::Hour, utc(2026, 11, 21, 14, 0, 0), Duration::from_secs(3600), "app.log.2026-11-21_14"),
        (When::Day, utc(2026, 11, 21, 0, 0, 0), Duration::from_secs(86_400), "app.log.2026-11-21"),
        (When::Midnight, utc(2026, 11, 21, 0, 0, 0), Duration::from_secs(86_400), "app.log.2026-11-21"),
    ];
    for (when, start, unit, rotated) in cases {
        let dir = tmp("when");
        let (b, clock) = timed(&dir, start);
        let mut file = b.when(when).build().unwrap();
        let last = start + unit - Duration::from_millis(1);
        write_at(&mut file, &clock, &[(start, "first"), (last, "last of the unit"), (start + unit, "next unit")]);
        assert_eq!(names(&dir), ["app.log", rotated], "{when}");
        assert_eq!(read(dir.join(rotated)), "first\nlast of the unit\n", "{when}");
        assert_eq!(read(dir.join("app.log")), "next unit\n", "{when}");
        assert_eq!(file.stats().rotations, 1, "{when}");
    }
}

#[test]
fn an_interval_of_n_units_keeps_n_units_per_file_aligned_to_the_clock() {
    let dir = tmp("interval");
    let (b, clock) = timed(&dir, utc(2026, 11, 21, 1, 0, 0));
    let mut file = b.when(When::Hour).interval(6).build().unwrap();
    write_at(
        &mut file,
        &clock,
        &[
            (utc(2026, 11, 21, 1, 0, 0), "01"),
            (utc(2026, 11, 21, 5, 59, 59), "05"),
            (utc(2026, 11, 21, 6, 0, 0), "06"),
            (utc(2026, 11, 21, 11, 59, 0), "11"),
            (utc(2026, 11, 21, 12, 0, 0), "12"),
        ],
    );
    assert_eq!(names(&dir), ["app.log", "app.log.2026-11-21_00", "app.log.2026-11-21_06"]);
    assert_eq!(read(dir.join("app.log.2026-11-21_00")), "01\n05\n");
    assert_eq!(read(dir.join("app.log.2026-11-21_06")), "06\n11\n");

    let dir = tmp("interval-days");
    let (b, clock) = timed(&dir, utc(2026, 11, 21, 10, 0, 0));
    let mut file = b.when(When::Midnight).interval(2).build().unwrap();
    // Periods of two days, counted from 1970-01-01 (as an interval of hours is counted from
    // midnight): 2026-11-21 is day 20,778, even, so 21-22 Nov is one period, 23-24 the next.
    write_at(
        &mut file,
        &clock,
        &[
            (utc(2026, 11, 21, 10, 0, 0), "21st"),
            (utc(2026, 11, 22, 23, 59, 0), "22nd"),
            (utc(2026, 11, 23, 0, 0, 0), "23rd"),
            (utc(2026, 11, 24, 23, 0, 0), "24th"),
        ],
    );
    assert_eq!(names(&dir), ["app.log", "app.log.2026-11-21"]);
    assert_eq!(read(dir.join("app.log.2026-11-21")), "21st\n22nd\n");
    assert_eq!(read(dir.join("app.log")), "23rd\n24th\n");
}

#[test]
fn at_time_moves_the_midnight_rollover_to_that_time_of_day() {
    let dir = tmp("at-time");
    let (b, clock) = timed(&dir, utc(2026, 11, 21, 12, 0, 0));
    let mut file = b.when(When::Midnight).at_time(6, 30, 0).build().unwrap();
    write_at(
        &mut file,
        &clock,
        &[
            (utc(2026, 11, 21, 12, 0, 0), "noon"),
            (utc(2026, 11, 22, 0, 0, 0), "midnight"),
            (utc(2026, 11, 22, 6, 29, 59), "06:29:59"),
            (utc(2026, 11, 22, 6, 30, 0), "06:30"),
        ],
    );
    assert_eq!(names(&dir), ["app.log", "app.log.2026-11-21"], "named after the day its period began");
    assert_eq!(read(dir.join("app.log.2026-11-21")), "noon\nmidnight\n06:29:59\n");
    assert_eq!(read(dir.join("app.log")), "06:30\n");
}

#[test]
fn w0_rolls_over_on_monday_and_w6_on_sunday() {
    // 2026-11-21 is a Saturday.
    for (when, roll, rotated) in [
        (When::Weekday(0), utc(2026, 11, 23, 0, 0, 0), "app.log.2026-11-16"),
        (When::Weekday(6), utc(2026, 11, 22, 0, 0, 0), "app.log.2026-11-15"),
    ] {
        let dir = tmp("weekly");
        let (b, clock) = timed(&dir, utc(2026, 11, 21, 9, 0, 0));
        let mut file = b.when(when).build().unwrap();
        let before = roll - Duration::from_secs(1);
        write_at(&mut file, &clock, &[(utc(2026, 11, 21, 9, 0, 0), "saturday"), (before, "before"), (roll, "after")]);
        assert_eq!(names(&dir), ["app.log", rotated], "{when}");
        assert_eq!(read(dir.join(rotated)), "saturday\nbefore\n", "{when}");
        assert_eq!(read(dir.join("app.log")), "after\n", "{when}");
    }
    // W0 at 08:00: Monday 07:59 is still last week.
    let dir = tmp("weekly-at");
    let (b, clock) = timed(&dir, utc(2026, 11, 21, 9, 0, 0));
    let mut file = b.when(When::Weekday(0)).at_time(8, 0, 0).build().unwrap();
    write_at(
        &mut file,
        &clock,
        &[
            (utc(2026, 11, 21, 9, 0, 0), "sat"),
            (utc(2026, 11, 23, 7, 59, 0), "mon 07:59"),
            (utc(2026, 11, 23, 8, 0, 0), "mon 08:00"),
        ],
    );
    assert_eq!(names(&dir), ["app.log", "app.log.2026-11-16"]);
    assert_eq!(read(dir.join("app.log")), "mon 08:00\n");
}

#[test]
fn hourly_in_local_time_across_spring_forward_skips_no_record_and_names_the_real_hours() {
    // Berlin, 29 March 2026: at 01:00Z clocks jump from 02:00 CET to 03:00 CEST.
    let dir = tmp("spring-hourly");
    let (b, clock) = timed(&dir, utc(2026, 3, 29, 0, 30, 0));
    let mut file = b.when(When::Hour).zone(Zone::posix(BERLIN).unwrap()).build().unwrap();
    write_at(
        &mut file,
        &clock,
        &[
            (utc(2026, 3, 29, 0, 30, 0), "01:30 CET"),
            (utc(2026, 3, 29, 0, 59, 59), "01:59:59 CET"),
            (utc(2026, 3, 29, 1, 0, 0), "03:00 CEST"),
            (utc(2026, 3, 29, 1, 59, 0), "03:59 CEST"),
            (utc(2026, 3, 29, 2, 0, 0), "04:00 CEST"),
        ],
    );
    assert_eq!(names(&dir), ["app.log", "app.log.2026-03-29_01", "app.log.2026-03-29_03"]);
    assert_eq!(read(dir.join("app.log.2026-03-29_01")), "01:30 CET\n01:59:59 CET\n");
    assert_eq!(read(dir.join("app.log.2026-03-29_03")), "03:00 CEST\n03:59 CEST\n");
    assert_eq!(read(dir.join("app.log")), "04:00 CEST\n");
    assert_eq!(file.stats().rotations, 2);
}

#[test]
fn hourly_in_local_time_across_fall_back_never_rolls_twice_into_the_same_name() {
    // Berlin, 25 October 2026: at 01:00Z clocks go back from 03:00 CEST to 02:00 CET, so
    // 02:00-02:59 happens twice. Both go into the one file named `_02`.
    let dir = tmp("fall-hourly");
    let (b, clock) = timed(&dir, utc(2026, 10, 24, 23, 30, 0));
    let mut file = b.when(When::Hour).zone(Zone::posix(BERLIN).unwrap()).build().unwrap();
    write_at(
        &mut file,
        &clock,
        &[
            (utc(2026, 10, 24, 23, 30, 0), "01:30 CEST"),
            (utc(2026, 10, 25, 0, 0, 0), "02:00 CEST"),
            (utc(2026, 10, 25, 0, 59, 59), "02:59:59 CEST"),
            (utc(2026, 10, 25, 1, 0, 0), "02:00 CET"),
            (utc(2026, 10, 25, 1, 59, 59), "02:59:59 CET"),
            (utc(2026, 10, 25, 2, 0, 0), "03:00 CET"),
        ],
    );
    assert_eq!(names(&dir), ["app.log", "app.log.2026-10-25_01", "app.log.2026-10-25_02"]);
    assert_eq!(read(dir.join("app.log.2026-10-25_01")), "01:30 CEST\n");
    assert_eq!(read(dir.join("app.log.2026-10-25_02")), "02:00 CEST\n02:59:59 CEST\n02:00 CET\n02:59:59 CET\n");
    assert_eq!(read(dir.join("app.log")), "03:00 CET\n");
    assert_eq!(file.stats().rotations, 2, "one rollover per hour of the clock, none at the repeat");
}

#[test]
fn midnight_in_local_time_stays_at_local_midnight_across_both_changes() {
    let berlin = Zone::posix(BERLIN).unwrap();
    // Spring: 29 March has 23 hours. Local midnights: 28th 23:00Z (CET), 29th 22:00Z (CEST).
    // Autumn: 25 October has 25 hours. Local midnights: 24th 22:00Z (CEST), 25th 23:00Z (CET).
    let days = [
        (
            utc(2026, 3, 28, 12, 0, 0),
            utc(2026, 3, 28, 23, 0, 0),
            utc(2026, 3, 29, 22, 0, 0),
            ["app.log", "app.log.2026-03-28", "app.log.2026-03-29"],
        ),
        (
            utc(2026, 10, 24, 12, 0, 0),
            utc(2026, 10, 24, 22, 0, 0),
            utc(2026, 10, 25, 23, 0, 0),
            ["app.log", "app.log.2026-10-24", "app.log.2026-10-25"],
        ),
    ];
    for (noon, midnight1, midnight2, expected) in days {
        let dir = tmp("dst-midnight");
        let (b, clock) = timed(&dir, noon);
        let mut file = b.when(When::Midnight).zone(berlin.clone()).build().unwrap();
        let second = Duration::from_secs(1);
        // One hour before the second local midnight: a "+24 h" rule would roll here.
        let hour = Duration::from_secs(3600);
        write_at(
            &mut file,
            &clock,
            &[
                (noon, "day 1"),
                (midnight1 - second, "day 1 end"),
                (midnight1, "day 2 start"),
                (midnight1 + Duration::from_secs(23 * 3600) - hour, "day 2, 22 h in"),
                (midnight2 - second, "day 2 end"),
                (midnight2, "day 3 start"),
            ],
        );
        assert_eq!(names(&dir), expected);
        assert_eq!(read(dir.join(expected[1])), "day 1\nday 1 end\n");
        assert_eq!(read(dir.join(expected[2])), "day 2 start\nday 2, 22 h in\nday 2 end\n");
        assert_eq!(read(dir.join("app.log")), "day 3 start\n");
    }
}

#[test]
fn new_york_hourly_and_midnight_across_its_2026_changes() {
    let ny = Zone::posix(NEW_YORK).unwrap();
    // 1 November 2026: 01:00-01:59 EDT (05:xxZ), then again as EST (06:xxZ).
    let dir = tmp("ny-fall");
    let (b, clock) = timed(&dir, utc(2026, 11, 1, 4, 30, 0));
    let mut file = b.when(When::Hour).zone(ny.clone()).build().unwrap();
    write_at(
        &mut file,
        &clock,
        &[
            (utc(2026, 11, 1, 4, 30, 0), "00:30 EDT"),
            (utc(2026, 11, 1, 5, 30, 0), "01:30 EDT"),
            (utc(2026, 11, 1, 6, 30, 0), "01:30 EST"),
            (utc(2026, 11, 1, 7, 0, 0), "02:00 EST"),
        ],
    );
    assert_eq!(names(&dir), ["app.log", "app.log.2026-11-01_00", "app.log.2026-11-01_01"]);
    assert_eq!(read(dir.join("app.log.2026-11-01_01")), "01:30 EDT\n01:30 EST\n");
    // 8 March 2026: 02:00 EST becomes 03:00 EDT; local midnights at 05:00Z (7th, 8th) and
    // 04:00Z (9th).
    let dir = tmp("ny-spring");
    let (b, clock) = timed(&dir, utc(2026, 3, 8, 5, 0, 0));
    let mut file = b.when(When::Midnight).zone(ny).build().unwrap();
    write_at(
        &mut file,
        &clock,
        &[
            (utc(2026, 3, 8, 5, 0, 0), "8th"),
            (utc(2026, 3, 9, 3, 59, 59), "8th end"),
            (utc(2026, 3, 9, 4, 0, 0), "9th"),
        ],
    );
    assert_eq!(names(&dir), ["app.log", "app.log.2026-03-08"]);
    assert_eq!(read(dir.join("app.log.2026-03-08")), "8th\n8th end\n");
}

#[test]
fn the_named_berlin_zone_of_the_system_database_agrees_with_its_rule() {
    let named = Zone::named("Europe/Berlin").expect("the system's zoneinfo has Europe/Berlin");
    let rule = Zone::posix(BERLIN).unwrap();
    let mut t = utc(2026, 1, 1, 0, 30, 0);
    while t < utc(2027, 1, 1, 0, 0, 0) {
        assert_eq!(named.offset_at(t), rule.offset_at(t), "{:?}", rule.civil(t));
        t += Duration::from_secs(3600);
    }
}

#[test]
fn date_format_names_backups_as_logbook_and_deletes_only_its_own() {
    let dir = tmp("logbook");
    std::fs::write(dir.join("app-notes.log"), "not a backup").unwrap();
    std::fs::write(dir.join("app-2026-11-01.log.bak"), "not a backup").unwrap();
    let (b, clock) = timed(&dir, utc(2026, 11, 21, 10, 0, 0));
    let mut file = b.when(When::Midnight).date_format("%Y-%m-%d").backup_count(2).max_bytes(20).build().unwrap();
    for day in 21..=24 {
        clock.set(utc(2026, 11, day, 10, 0, 0));
        file.write_record(format!("day {day}\n").as_bytes()).unwrap();
    }
    // A size rotation within a day is numbered before the extension.
    file.write_record(b"day 24, more text\n").unwrap();
    file.flush().unwrap();
    assert_eq!(
        names(&dir),
        ["app-2026-11-01.log.bak", "app-2026-11-23.log", "app-2026-11-24.log", "app-notes.log", "app.log"],
        "the newest 2 backups kept (22nd deleted with the 21st), other files untouched"
    );
    assert_eq!(read(dir.join("app-2026-11-24.log")), "day 24\n");
    assert_eq!(read(dir.join("app.log")), "day 24, more text\n");

    // With time and size, a second file of one day is `app-2026-11-24.1.log`.
    clock.set(utc(2026, 11, 24, 11, 0, 0));
    file.write_record(b"day 24, and again!\n").unwrap();
    file.flush().unwrap();
    assert!(names(&dir).contains(&"app-2026-11-24.1.log".to_owned()), "{:?}", names(&dir));
}

#[test]
fn gzip_compresses_rotated_files_and_counts_them_as_backups() {
    let dir = tmp("gzip");
    std::fs::write(dir.join("other.gz"), "not ours").unwrap();
    let (b, clock) = timed(&dir, utc(2026, 11, 21, 10, 0, 0));
    let mut file = b.when(When::Midnight).backup_count(2).gzip().build().unwrap();
    for day in 21..=24 {
        clock.set(utc(2026, 11, day, 10, 0, 0));
        file.write_record(format!("day {day} line 1\n").as_bytes()).unwrap();
        file.write_record(format!("day {day} line 2\n").as_bytes()).unwrap();
    }
    file.flush().unwrap();
    assert_eq!(names(&dir), ["app.log", "app.log.2026-11-22.gz", "app.log.2026-11-23.gz", "other.gz"]);
    assert_eq!(gunzip(dir.join("app.log.2026-11-23.gz")), "day 23 line 1\nday 23 line 2\n");
    assert_eq!(gunzip(dir.join("app.log.2026-11-22.gz")), "day 22 line 1\nday 22 line 2\n");
    assert_eq!(read(dir.join("app.log")), "day 24 line 1\nday 24 line 2\n");

    // Size rotation with gzip: numbered .gz files shift.
    let dir = tmp("gzip-size");
    let mut file = RollingFile::builder(dir.join("app.log")).max_bytes(8).backup_count(2).gzip().build().unwrap();
    for i in 0..4 {
        file.write_record(format!("line {i}\n").as_bytes()).unwrap();
    }
    file.flush().unwrap();
    assert_eq!(names(&dir), ["app.log", "app.log.1.gz", "app.log.2.gz"]);
    assert_eq!(gunzip(dir.join("app.log.1.gz")), "line 2\n");
    assert_eq!(gunzip(dir.join("app.log.2.gz")), "line 1\n");
}

#[test]
fn a_namer_renames_backups_and_old_ones_are_still_found_and_deleted() {
    let dir = tmp("namer");
    let (b, clock) = timed(&dir, utc(2026, 11, 21, 10, 0, 0));
    let mut file = b
        .when(When::Day)
        .backup_count(1)
        .namer(|default: &Path| {
            let name = default.file_name().unwrap().to_str().unwrap();
            default.with_file_name(format!("old-{name}.txt"))
        })
        .build()
        .unwrap();
    write_at(
        &mut file,
        &clock,
        &[
            (utc(2026, 11, 21, 10, 0, 0), "21"),
            (utc(2026, 11, 22, 10, 0, 0), "22"),
            (utc(2026, 11, 23, 10, 0, 0), "23"),
        ],
    );
    assert_eq!(names(&dir), ["app.log", "old-app.log.2026-11-22.txt"]);
    assert_eq!(read(dir.join("old-app.log.2026-11-22.txt")), "22\n");
}

#[test]
fn the_rotator_runs_on_the_writer_thread_and_a_failing_one_leaves_the_file_in_place() {
    let dir = tmp("rotator");
    type Call = (Option<String>, PathBuf, PathBuf);
    let seen: Arc<Mutex<Vec<Call>>> = Arc::default();
    let log = Arc::clone(&seen);
    let (writer, guard) = RollingFile::builder(dir.join("app.log"))
        .rotator(move |from: &Path, to: &Path| {
            log.lock().unwrap().push((std::thread::current().name().map(str::to_owned), from.into(), to.into()));
            std::fs::rename(from, to)
        })
        .non_blocking()
        .unwrap();
    assert!(writer.write_line("one\n"));
    assert!(guard.roll_over(Duration::from_secs(5)), "rolled over");
    assert!(writer.write_line("two\n"));
    assert!(guard.flush(Duration::from_secs(5)));
    assert_eq!(read(dir.join("app.log.1")), "one\n");
    assert_eq!(read(dir.join("app.log")), "two\n");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0.as_deref(), Some("watchbell-file app.log"), "on the writer's thread");
    assert_eq!((seen[0].1.clone(), seen[0].2.clone()), (dir.join("app.log"), dir.join("app.log.1")));

    let dir = tmp("rotator-fails");
    let mut file = RollingFile::builder(dir.join("app.log"))
        .max_bytes(8)
        .rotator(|_: &Path, _: &Path| Err(std::io::Error::other("no room for the archive")))
        .build()
        .unwrap();
    file.write_record(b"line 1\n").unwrap();
    assert!(file.write_record(b"line 2\n").is_err(), "the failed rotation is reported");
    file.write_record(b"line 3\n").unwrap_err();
    file.flush().unwrap();
    assert_eq!(names(&dir), ["app.log"]);
    assert_eq!(read(dir.join("app.log")), "line 1\n", "nothing lost from the file, nothing torn");
    assert_eq!(file.stats().rotations, 0);
    assert!(file.stats().errors >= 2);
}

#[test]
fn roll_over_rotates_now_and_never_makes_an_empty_backup() {
    let dir = tmp("roll-over");
    let (b, clock) = timed(&dir, utc(2026, 11, 21, 10, 0, 0));
    let mut file = b.when(When::Midnight).build().unwrap();
    file.roll_over().unwrap();
    assert_eq!(names(&dir), ["app.log"], "an empty file is not rotated");
    write_at(&mut file, &clock, &[(utc(2026, 11, 21, 10, 0, 0), "a")]);
    file.roll_over().unwrap();
    write_at(&mut file, &clock, &[(utc(2026, 11, 21, 11, 0, 0), "b")]);
    file.roll_over().unwrap();
    write_at(&mut file, &clock, &[(utc(2026, 11, 21, 12, 0, 0), "c"), (utc(2026, 11, 22, 0, 0, 0), "d")]);
    assert_eq!(names(&dir), ["app.log", "app.log.2026-11-21", "app.log.2026-11-21.1", "app.log.2026-11-21.2"]);
    assert_eq!(read(dir.join("app.log.2026-11-21")), "a\n");
    assert_eq!(read(dir.join("app.log.2026-11-21.1")), "b\n");
    assert_eq!(read(dir.join("app.log.2026-11-21.2")), "c\n");
    assert_eq!(read(dir.join("app.log")), "d\n");

    // Through the non-blocking writer: the request is queued behind the lines before it.
    let dir = tmp("roll-over-writer");
    let (writer, guard) = RollingFile::builder(dir.join("app.log")).non_blocking().unwrap();
    for i in 0..100 {
        writer.write_line(format!("{i}\n"));
    }
    assert!(writer.roll_over());
    writer.write_line("after\n");
    assert!(guard.flush(Duration::from_secs(5)));
    let before: String = (0..100).map(|i| format!("{i}\n")).collect();
    assert_eq!(read(dir.join("app.log.1")), before);
    assert_eq!(read(dir.join("app.log")), "after\n");
}

#[test]
fn backup_count_zero_with_time_rotation_truncates_instead_of_keeping_every_file() {
    let dir = tmp("zero-timed");
    let (b, clock) = timed(&dir, utc(2026, 11, 21, 10, 0, 0));
    let mut file = b.when(When::Hour).backup_count(0).build().unwrap();
    write_at(
        &mut file,
        &clock,
        &[
            (utc(2026, 11, 21, 10, 0, 0), "10"),
            (utc(2026, 11, 21, 11, 0, 0), "11"),
            (utc(2026, 11, 21, 12, 0, 0), "12"),
        ],
    );
    assert_eq!(names(&dir), ["app.log"], "no backups: 0 means none kept");
    assert_eq!(read(dir.join("app.log")), "12\n");
    assert_eq!(file.stats().rotations, 2);
}

#[test]
fn truncate_mode_empties_the_file_at_start_and_append_keeps_it() {
    let dir = tmp("truncate");
    let path = dir.join("app.log");
    std::fs::write(&path, "from an earlier run\n").unwrap();
    let mut file = RollingFile::builder(&path).build().unwrap();
    file.write_record(b"appended\n").unwrap();
    file.flush().unwrap();
    assert_eq!(read(&path), "from an earlier run\nappended\n");
    drop(file);

    // 20 bytes left by the earlier run: appended to, the 26-byte record would not fit in 40.
    let mut file = RollingFile::builder(&path).truncate(true).max_bytes(40).build().unwrap();
    file.write_record(b"fresh\n").unwrap();
    file.write_record(b"a record of 26 bytes ....\n").unwrap();
    file.write_record(b"third\n").unwrap();
    file.flush().unwrap();
    assert_eq!(names(&dir), ["app.log"]);
    assert_eq!(read(&path), "fresh\na record of 26 bytes ....\nthird\n", "the size counts from the emptied file");
}

#[test]
fn invalid_timed_settings_are_build_errors() {
    let dir = tmp("invalid");
    let b = || RollingFile::builder(dir.join("app.log"));
    let err = |r: Result<RollingFile, watchbell_core::BuildError>| r.unwrap_err().to_string();
    assert!(err(b().when(When::Hour).interval(0).build()).contains("interval"));
    assert!(err(b().when(When::Hour).at_time(6, 0, 0).build()).contains("at_time"));
    assert!(err(b().when(When::Midnight).at_time(24, 0, 0).build()).contains("at_time"));
    assert!(err(b().when(When::Weekday(7)).build()).contains("W7"));
    assert!(err(b().date_format("%Y-%m-%d").build()).contains("date_format"));
    assert!(err(b().when(When::Day).date_format("%Y/%m/%d").build()).contains("date_format"));
    assert!(b().when(When::Weekday(6)).at_time(23, 59, 59).interval(2).build().is_ok());
}

#[test]
fn minutely_in_local_time_across_fall_back_keeps_the_last_minute_through_the_repeated_hour() {
    let dir = tmp("fall-minutely");
    let (b, clock) = timed(&dir, utc(2026, 10, 25, 0, 59, 30));
    let mut file = b.when(When::Minute).zone(Zone::posix(BERLIN).unwrap()).build().unwrap();
    write_at(
        &mut file,
        &clock,
        &[
            (utc(2026, 10, 25, 0, 59, 30), "02:59:30 CEST"),
            (utc(2026, 10, 25, 1, 0, 0), "02:00 CET"),
            (utc(2026, 10, 25, 1, 59, 59), "02:59:59 CET"),
            (utc(2026, 10, 25, 2, 0, 0), "03:00 CET"),
            (utc(2026, 10, 25, 2, 1, 0), "03:01 CET"),
        ],
    );
    assert_eq!(names(&dir), ["app.log", "app.log.2026-10-25_02-59", "app.log.2026-10-25_03-00"]);
    assert_eq!(read(dir.join("app.log.2026-10-25_02-59")), "02:59:30 CEST\n02:00 CET\n02:59:59 CET\n");
    assert_eq!(read(dir.join("app.log.2026-10-25_03-00")), "03:00 CET\n");
}
