//! A full disk is an ordinary failure: records are written whole or not at all, retried after
//! space returns, each in the file exactly once, in order, and counted exactly. These tests
//! mount a real small tmpfs (`watchbell_test::tmpfs`).

use watchbell_test::tmpfs;

use std::time::{Duration, Instant};

use tracing_subscriber::prelude::*;
use watchbell_file::{FileLayer, RollingFile};

/// Every line of `text` is one whole record `... INFO disk_full: record NNNNN pad`: returns
/// the record numbers in file order, failing on a torn or merged line.
fn record_numbers(text: &str) -> Vec<usize> {
    text.lines()
        .map(|line| {
            assert_eq!(line.matches("record ").count(), 1, "a torn or merged line: {line:?}");
            assert!(line.starts_with("20") && line.ends_with('|'), "a torn line: {line:?}");
            let at = line.find("record ").unwrap() + "record ".len();
            line[at..at + 5].parse().unwrap_or_else(|_| panic!("a torn line: {line:?}"))
        })
        .collect()
}

fn log_records(n: usize) {
    for i in 0..n {
        tracing::info!("record {i:05} {}|", "p".repeat(150));
    }
}

#[test]
fn layer_on_a_full_disk_leaves_no_torn_line_and_delivers_each_record_once_after_space_returns() {
    let fs = tmpfs::mount("layer_full_disk", 256 << 10);
    let filler = tmpfs::fill(&fs, 40 << 10);
    let path = fs.join("app.log");
    let (layer, guard) = FileLayer::builder(&path).build().unwrap();
    let n = 1_000; // about 190 KB: the disk fills after about 200 records
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || log_records(n));

    // Wait until the disk is full and the delivery retries.
    let start = Instant::now();
    while guard.stats()[0].retried == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "the disk never filled: {:?}", guard.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300)); // a few retries against the full disk
    let partial = std::fs::read_to_string(&path).unwrap();
    let written = record_numbers(&partial);
    assert!(!written.is_empty() && written.len() < n, "{} of {n} written", written.len());
    assert_eq!(written, (0..written.len()).collect::<Vec<_>>(), "in order, each once, while full");

    std::fs::remove_file(filler).unwrap();
    assert!(guard.flush(Duration::from_secs(20)).is_complete(), "{:?}", guard.stats());
    let all = record_numbers(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(all, (0..n).collect::<Vec<_>>(), "every record exactly once, in order");
    let s = &guard.stats()[0];
    eprintln!("{} records written before space returned; {s}", written.len());
    assert_eq!((s.accepted, s.delivered, s.dropped, s.failed), (n as u64, n as u64, 0, 0), "{s:?}");
    drop(guard);
}

#[test]
fn rolling_file_on_a_full_disk_is_cut_back_to_its_last_whole_record() {
    let fs = tmpfs::mount("rolling_full_disk", 256 << 10);
    let filler = tmpfs::fill(&fs, 20 << 10);
    let path = fs.join("app.log");
    let mut file = RollingFile::builder(&path).build().unwrap();
    let line = |i: usize| format!("2026-11-28T00:00:00Z INFO disk_full: record {i:05} {}|\n", "p".repeat(150));
    // Records `write_record` accepted (a failed flush does not take them back).
    let (mut accepted, mut i) = (0usize, 0usize);
    // Write, and flush after every 7 records, until the disk refuses.
    let failed_at = loop {
        let written = file.write_record(line(i).as_bytes());
        accepted += usize::from(written.is_ok());
        let r = written.and_then(|()| if i % 7 == 6 { file.flush() } else { Ok(()) });
        i += 1;
        if r.is_err() {
            break i - 1;
        }
        assert!(i < 10_000, "the disk never filled");
    };
    let on_disk = record_numbers(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(on_disk, (0..on_disk.len()).collect::<Vec<_>>());
    let whole = file.whole_records() as usize;
    assert_eq!(on_disk.len(), whole, "the count of whole records is what the file holds");
    assert_eq!(whole + file.rolled_back() as usize, accepted, "every accepted record is whole or rolled back");
    assert_eq!(file.stats().records as usize, whole, "{:?}", file.stats());

    // Space returns: the records not on disk are written again, after the whole ones.
    std::fs::remove_file(filler).unwrap();
    for j in whole..=failed_at {
        file.write_record(line(j).as_bytes()).unwrap();
    }
    file.flush().unwrap();
    let all = record_numbers(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(all, (0..=failed_at).collect::<Vec<_>>());
}

#[test]
fn writer_on_a_full_disk_writes_lines_whole_or_not_at_all_and_counts_the_rest() {
    let fs = tmpfs::mount("writer_full_disk", 256 << 10);
    let filler = tmpfs::fill(&fs, 40 << 10);
    let path = fs.join("app.log");
    let (writer, guard) = RollingFile::builder(&path).non_blocking().unwrap();
    let n = 1_000;
    for i in 0..n {
        let line = format!("2026-11-28T00:00:00Z INFO disk_full: record {i:05} {}|\n", "p".repeat(150));
        assert!(writer.write_line(line));
    }
    assert!(guard.flush(Duration::from_secs(10)));
    let text = std::fs::read_to_string(&path).unwrap();
    let written = record_numbers(&text);
    let s = guard.stats();
    eprintln!("{} lines whole on disk; {s:?}", written.len());
    assert!(s.errors > 0 && s.lost > 0, "{s:?}");
    assert_eq!(written.len() as u64 + s.lost + s.dropped, n as u64, "{s:?}");
    assert_eq!(written.len() as u64, s.records, "{s:?}");
    let mut sorted = written.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), written.len(), "no line twice");
    std::fs::remove_file(filler).unwrap();
    assert!(writer.write_line(format!("2026-11-28T00:00:01Z INFO disk_full: record {n:05} after|\n")));
    assert!(guard.shutdown(Duration::from_secs(10)));
    let all = record_numbers(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(all.last(), Some(&n), "writing resumes once space returns");
}
