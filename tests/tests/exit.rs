//! A process that exits with records queued delivers them, and never hangs past the deadline,
//! with the layer in the global default subscriber.

use std::process::Command;
use std::time::{Duration, Instant};

use watchbell_test::collector::received_records;
use watchbell_test::http::{FakeHttp, Reply};

#[test]
fn records_queued_at_exit_are_delivered() {
    let fake = FakeHttp::start();
    let status = Command::new(env!("CARGO_BIN_EXE_exit_probe")).args([&fake.url(), "500", "10000"]).status().unwrap();
    assert!(status.success());
    let got = received_records(&fake.requests());
    assert_eq!(got.len(), 500);
    assert_eq!(got[499]["message"], "record 499");
}

#[test]
fn exit_never_hangs_past_the_deadline_with_a_stalled_peer() {
    let fake = FakeHttp::start();
    fake.set_default(Reply::stall());
    let start = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_exit_probe")).args([&fake.url(), "50", "500"]).status().unwrap();
    let took = start.elapsed();
    assert!(status.success());
    assert!(fake.request_count() >= 1, "the probe reached the peer");
    // The peer never answers and the client timeout is 120 s: the 500 ms deadline is what
    // ends the process (the bound is generous for a loaded machine).
    assert!(took < Duration::from_secs(20), "exit took {took:?}");
}
