//! The disk spool: outage overflow to disk, replay in order, and survival across a killed process.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{fast_retry, rec, seqs};
use watchbell_core::{Guard, SinkOptions, Stats};
use watchbell_http::HttpLayer;
use watchbell_test::collectors::FakeNdjson;

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    std::env::temp_dir().join(format!("watchbell-http-{tag}-{}-{nanos}", std::process::id()))
}

fn spool_stats(guard: &Guard) -> Stats {
    guard.stats().into_iter().find(|s| s.name.ends_with("/spool")).expect("spool stats")
}

/// A URL where nothing listens (connections are refused).
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/ingest")
}

/// An HTTP layer to `url` that spools to `dir` (at most `max_bytes`) at the first failure,
/// retrying fast, sending each record as it comes.
fn spooling(url: impl Into<String>, dir: impl AsRef<Path>, max_bytes: u64) -> watchbell_http::HttpBuilder {
    HttpLayer::builder(url)
        .retry(fast_retry(Duration::from_millis(300)))
        .spool(dir.as_ref(), max_bytes)
        .spool_after(Duration::ZERO)
        .batch_wait(Duration::ZERO)
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

#[test]
fn outage_goes_to_disk_and_replays_in_order() {
    let dir = temp_dir("outage");
    let fake = FakeNdjson::start();
    fake.set_refusing(true);
    let (h, guard) = spooling(fake.url(), &dir, 64 << 20).build_handler().unwrap();
    for i in 0..300 {
        h.handle(rec(i));
    }
    // Everything leaves the memory queue for the disk while the collector is down.
    assert!(wait_until(Duration::from_secs(10), || spool_stats(&guard).queued == 300), "{}", spool_stats(&guard));
    assert_eq!(guard.stats()[0].queued, 0);
    let on_disk: u64 = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(on_disk >= 300 * 100, "the records are in the spool's files: {on_disk} bytes");
    fake.set_refusing(false);
    // Newer records queue behind the spooled ones.
    for i in 300..350 {
        h.handle(rec(i));
    }
    assert!(guard.flush(Duration::from_secs(20)).is_complete());
    let got = seqs(&fake.records());
    assert_eq!(got, (0..350).collect::<Vec<_>>(), "every record once, oldest first");
    let s = spool_stats(&guard);
    assert_eq!((s.queued, s.dropped), (0, 0), "{s}");
    assert!(s.delivered >= 300, "{s}");
    drop(guard);
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_queue_filling_during_an_outage_goes_to_disk_before_spool_after() {
    let dir = temp_dir("pressure");
    let fake = FakeNdjson::start();
    fake.set_refusing(true);
    let (h, guard) = spooling(fake.url(), &dir, 64 << 20)
        // Far away: only the queue's pressure can send records to disk in this test.
        .spool_after(Duration::from_secs(3600))
        .queue_records(200)
        .build_handler()
        .unwrap();
    // The first record fails, and its batch waits for a retry.
    h.handle(rec(0));
    assert!(wait_until(Duration::from_secs(10), || guard.stats()[0].retried >= 1));
    // Meanwhile 10 times what the queue holds arrives, while the collector refuses every
    // connection: a steady stream (one record about every 50 µs) that fills the queue many
    // times over within one retry delay.
    for i in 1..=2_000 {
        h.handle(rec(i));
        std::thread::sleep(Duration::from_micros(50));
    }
    assert!(
        wait_until(Duration::from_secs(10), || spool_stats(&guard).queued == 2_001),
        "every record reaches the disk: {}; {:?}",
        spool_stats(&guard),
        guard.stats()
    );
    let delivery = guard.stats().into_iter().find(|s| s.name.starts_with("http ")).expect("the delivery's stats");
    assert_eq!(delivery.dropped, 0, "the queue shed nothing: {delivery}");
    fake.set_refusing(false);
    assert!(guard.flush(Duration::from_secs(30)).is_complete());
    assert_eq!(seqs(&fake.records()), (0..=2_000).collect::<Vec<_>>(), "every record once, oldest first");
    let s = spool_stats(&guard);
    assert_eq!((s.queued, s.dropped), (0, 0), "{s}");
    drop(guard);
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_spool_sheds_and_counts() {
    let dir = temp_dir("full");
    let (h, guard) = spooling(dead_url(), &dir, 20 * 1024).build_handler().unwrap();
    for i in 0..500 {
        h.handle(rec(i));
    }
    assert!(wait_until(Duration::from_secs(10), || {
        let s = spool_stats(&guard);
        s.queued + s.dropped == 500
    }));
    let s = spool_stats(&guard);
    assert!(s.dropped > 0 && s.queued > 0, "{s}");
    assert!(s.queued_bytes <= 20 * 1024, "{s}");
    assert!(s.last_error.as_deref().unwrap_or("").contains("bytes"), "{s}");
    let _ = guard.shutdown(Duration::from_millis(100));
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

const DIR: &str = "WATCHBELL_HTTP_SPOOL_DIR";
const URL: &str = "WATCHBELL_HTTP_SPOOL_URL";
const FROM: &str = "WATCHBELL_HTTP_SPOOL_FROM";
const COUNT: &str = "WATCHBELL_HTTP_SPOOL_COUNT";
const PHASE: &str = "WATCHBELL_HTTP_SPOOL_PHASE";

/// Not a test by itself: the body of the child processes of
/// [`the_spool_survives_a_killed_process`] (does nothing without its environment).
#[test]
fn spool_child_process() {
    let Ok(dir) = std::env::var(DIR) else { return };
    let url = std::env::var(URL).unwrap();
    let from: u64 = std::env::var(FROM).unwrap().parse().unwrap();
    let count: u64 = std::env::var(COUNT).unwrap().parse().unwrap();
    let phase = std::env::var(PHASE).unwrap();
    let (h, guard) = spooling(url, &dir, 64 << 20).batch_records(25).build_handler().unwrap();
    for i in from..from + count {
        h.handle(rec(i));
    }
    if phase == "outage" {
        assert!(wait_until(Duration::from_secs(20), || spool_stats(&guard).queued == count));
        println!("SPOOLED");
        // Wait to be killed, mid-outage.
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let flushed = guard.flush(Duration::from_secs(20));
    assert!(flushed.is_complete(), "{flushed:?} {:?}", guard.stats());
    println!("DONE");
}

fn child(dir: &Path, url: &str, from: u64, count: u64, phase: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "spool_child_process", "--nocapture", "--test-threads=1"])
        .env(DIR, dir)
        .env(URL, url)
        .env(FROM, from.to_string())
        .env(COUNT, count.to_string())
        .env(PHASE, phase)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    c
}

#[test]
fn the_spool_survives_a_killed_process() {
    let dir = temp_dir("restart");
    // 1. A process logs while the collector is down, spools, and is killed.
    let mut first = child(&dir, &dead_url(), 0, 300, "outage").spawn().expect("spawn the first child");
    let stdout = first.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("SPOOLED") {
                let _ = tx.send(());
            }
        }
    });
    let spooled = rx.recv_timeout(Duration::from_secs(30));
    first.kill().expect("kill the first child");
    let _ = first.wait();
    assert!(spooled.is_ok(), "the first child never reported its records spooled");

    // 2. The collector comes up; the next process replays the spool first, then its own records.
    let fake = FakeNdjson::start();
    let out = child(&dir, &fake.url_for("/ingest"), 300, 200, "recovery").output().expect("run the second child");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("DONE"), "second child failed: {text}");

    let got = seqs(&fake.records());
    // At least once, in order: with duplicates removed, exactly 0..500 in order.
    let mut firsts = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for s in &got {
        if seen.insert(*s) {
            firsts.push(*s);
        }
    }
    assert_eq!(firsts, (0..500).collect::<Vec<_>>(), "every record at least once, oldest first");
    assert!(got.len() < 600, "duplicates are the exception: {}", got.len());
    let _ = std::fs::remove_dir_all(&dir);
}
