//! The disk spool on a full disk and with a damaged cursor: what reached the disk is counted
//! as spooled and replayed, the rest is shed and counted, no half line is left to swallow the
//! next record, and a cursor is checked against its segment. These tests mount a real small
//! tmpfs (`watchbell_test::tmpfs`).

mod common;
#[allow(dead_code)]
use watchbell_test::tmpfs;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{fast_retry, rec, seqs};
use watchbell_core::{Guard, SinkOptions, Stats};
use watchbell_http::HttpLayer;
use watchbell_test::collectors::FakeNdjson;

fn spool_stats(guard: &Guard) -> Stats {
    guard.stats().into_iter().find(|s| s.name.ends_with("/spool")).expect("spool stats")
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

fn spooling(url: impl Into<String>, dir: &Path) -> watchbell_http::HttpBuilder {
    HttpLayer::builder(url)
        .retry(fast_retry(Duration::from_millis(300)))
        .spool(dir, 64 << 20)
        .spool_after(Duration::ZERO)
        .batch_wait(Duration::ZERO)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_full_disk_while_spooling_counts_exactly_and_leaves_no_half_line() {
    let fs = tmpfs::mount("spool_full_disk", 256 << 10);
    let dir = fs.join("spool");
    let fake = FakeNdjson::start();
    fake.set_refusing(true);
    let (h, guard) = spooling(fake.url(), &dir).build_handler().unwrap();
    let filler = tmpfs::fill(&fs, 40 << 10);
    let n = 1_000;
    for i in 0..n {
        h.handle(rec(i));
    }
    assert!(
        wait_until(Duration::from_secs(20), || {
            let s = spool_stats(&guard);
            s.accepted + s.dropped == n
        }),
        "every record reaches the spool or is shed: {}; {:?}",
        spool_stats(&guard),
        guard.stats()
    );
    let s = spool_stats(&guard);
    eprintln!("disk full: {s}");
    assert!(s.dropped > 0 && s.accepted > 0, "the disk filled part-way: {s}");
    assert_eq!(s.queued, s.accepted, "what is counted spooled is what is pending: {s}");
    // No torn line in the segments: each one is a whole record.
    for seg in segments(&dir) {
        let text = std::fs::read(&seg).unwrap();
        assert!(text.is_empty() || text.ends_with(b"\n"), "a half line at the end of {}", seg.display());
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            serde_json::from_slice::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("a torn line in {}: {e}", seg.display()));
        }
    }

    // Space returns; newer records queue behind the spooled ones, then the collector is back.
    std::fs::remove_file(filler).unwrap();
    for i in n..n + 50 {
        h.handle(rec(i));
    }
    assert!(
        wait_until(Duration::from_secs(20), || spool_stats(&guard).accepted + spool_stats(&guard).dropped == n + 50)
    );
    fake.set_refusing(false);
    assert!(guard.flush(Duration::from_secs(30)).is_complete(), "{:?}", guard.stats());
    let got = seqs(&fake.records());
    let s = spool_stats(&guard);
    eprintln!("after space returned: {s}; {} records received", got.len());
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order, each once: {got:?}");
    assert!((n..n + 50).all(|i| got.contains(&i)), "every record spooled after space returned is delivered");
    assert_eq!(s.queued, 0, "{s}");
    assert_eq!(s.accepted, s.delivered, "every record counted spooled is replayed, no more: {s}");
    assert_eq!(got.len() as u64, s.delivered, "{s}");
    assert_eq!(got.len() as u64 + s.dropped, n + 50, "accepted = delivered + shed: {s}");
    drop(guard);
    drop(h);
}

/// Spools `n` records while the collector is down, then shuts the layer down (they stay on
/// disk) and returns the segment holding them.
fn spool_and_stop(dir: &Path, n: u64) -> PathBuf {
    let fake = FakeNdjson::start();
    fake.set_refusing(true);
    let (h, guard) = spooling(fake.url(), dir).build_handler().unwrap();
    for i in 0..n {
        h.handle(rec(i));
    }
    assert!(wait_until(Duration::from_secs(10), || spool_stats(&guard).queued == n), "{}", spool_stats(&guard));
    let _ = guard.shutdown(Duration::from_millis(200));
    drop(h);
    drop(guard);
    let segs: Vec<PathBuf> = segments(dir).into_iter().filter(|p| std::fs::metadata(p).unwrap().len() > 0).collect();
    assert_eq!(segs.len(), 1, "{segs:?}");
    segs.into_iter().next().unwrap()
}

fn seg_id(seg: &Path) -> u64 {
    let name = seg.file_name().unwrap().to_string_lossy().into_owned();
    name.trim_start_matches("seg-").trim_end_matches(".ndjson").parse().unwrap()
}

/// Reopens the spool with `cursor` written into it and replays to an accepting collector.
fn replay_with_cursor(dir: &Path, cursor: String) -> (Vec<u64>, Stats) {
    std::fs::write(dir.join("cursor"), cursor).unwrap();
    let fake = FakeNdjson::start();
    let (h, guard) = spooling(fake.url(), dir).build_handler().unwrap();
    assert!(guard.flush(Duration::from_secs(20)).is_complete(), "{:?}", guard.stats());
    assert!(wait_until(Duration::from_secs(20), || spool_stats(&guard).queued == 0));
    let s = spool_stats(&guard);
    drop(h);
    drop(guard);
    (seqs(&fake.records()), s)
}

#[test]
fn a_cursor_past_the_end_of_its_segment_is_counted_and_replay_starts_at_the_segment_start() {
    let tmp = std::env::temp_dir().join(format!("watchbell-spool-cursor-end-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let seg = spool_and_stop(&tmp, 300);
    let len = std::fs::metadata(&seg).unwrap().len();
    let (got, s) = replay_with_cursor(&tmp, format!("{} {}\n", seg_id(&seg), len + 1_000_000));
    assert_eq!(got, (0..300).collect::<Vec<_>>(), "nothing skipped: {s}");
    assert!(s.last_error.as_deref().unwrap_or("").contains("1 corrupt cursor"), "counted: {s}");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_cursor_inside_a_record_is_counted_and_replay_starts_at_the_segment_start() {
    let tmp = std::env::temp_dir().join(format!("watchbell-spool-cursor-mid-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let seg = spool_and_stop(&tmp, 300);
    let (got, s) = replay_with_cursor(&tmp, format!("{} 10\n", seg_id(&seg)));
    assert_eq!(got, (0..300).collect::<Vec<_>>(), "nothing skipped or torn: {s}");
    assert_eq!(s.dropped, 0, "{s}");
    assert!(s.last_error.as_deref().unwrap_or("").contains("1 corrupt cursor"), "counted: {s}");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_cursor_naming_a_segment_newer_than_all_is_counted_and_nothing_is_skipped() {
    let tmp = std::env::temp_dir().join(format!("watchbell-spool-cursor-seg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let seg = spool_and_stop(&tmp, 300);
    let (got, s) = replay_with_cursor(&tmp, format!("{} 0\n", seg_id(&seg) + 100));
    assert_eq!(got, (0..300).collect::<Vec<_>>(), "nothing skipped: {s}");
    assert!(s.last_error.as_deref().unwrap_or("").contains("1 corrupt cursor"), "counted: {s}");
    let _ = std::fs::remove_dir_all(&tmp);
}
