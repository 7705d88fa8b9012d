//! Load and hung programs, checked in `/proc`: 1,000 records through a program that sleeps, a
//! program that hangs (killed with its group at the timeout), and no zombie left behind. One
//! test, so that no other test of this binary has children of its own while `/proc` is read.
mod common;

use std::time::{Duration, Instant};

use common::{is_dead, my_zombies, proc_state, rec, script, temp_dir, wait_until};
use watchbell_command::CommandLayer;
use watchbell_core::{Retry, SinkOptions};

#[test]
fn a_thousand_runs_then_a_hung_program_leave_no_process_and_no_zombie() {
    let dir = temp_dir("load");

    // 1,000 records through a program that sleeps 20 ms, 8 at a time.
    let prog = script(&dir, "slow", r#"sleep 0.02; printf '%s\n' "$1" >> {dir}/out"#);
    let (handler, guard) =
        CommandLayer::builder(&prog).arg("{field.seq}").concurrency(8).no_rate_limit().build_handler().unwrap();
    let started = Instant::now();
    for i in 0..1000 {
        handler.handle(rec(i, "load"));
    }
    assert!(guard.flush(Duration::from_secs(120)).is_complete(), "{:?}", guard.stats());
    let took = started.elapsed();
    let mut seen: Vec<u64> =
        std::fs::read_to_string(dir.join("out")).unwrap().lines().map(|l| l.parse().unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..1000).collect::<Vec<_>>(), "each record ran exactly once");
    let s = &guard.stats()[0];
    assert_eq!((s.delivered, s.failed, s.dropped), (1000, 0, 0), "{s}");
    println!("1,000 runs of a 20 ms program, 8 at a time: {took:?}");
    assert!(wait_until(Duration::from_secs(2), || my_zombies().is_empty()), "zombies: {:?}", my_zombies());
    drop(guard);

    // A program that hangs, with a background job in its group: killed at the timeout, retried
    // once, then given up; nothing of it survives.
    let hang = script(&dir, "hang", "echo $$ >> {dir}/pids; sleep 1000 & echo $! >> {dir}/pids; sleep 1000");
    let retry = Retry { max_attempts: 2, initial: Duration::from_millis(20), ..Retry::default() };
    let (handler, guard) = CommandLayer::builder(&hang)
        .timeout(Duration::from_millis(300))
        .retry(retry)
        .no_rate_limit()
        .build_handler()
        .unwrap();
    handler.handle(rec(0, "hangs"));
    let started = Instant::now();
    assert!(guard.flush(Duration::from_secs(20)).is_complete());
    assert!(started.elapsed() < Duration::from_secs(5), "two attempts of 300 ms: {:?}", started.elapsed());
    let s = &guard.stats()[0];
    assert_eq!((s.failed, s.retried, s.delivered), (1, 1, 0), "{s}");
    assert!(s.last_error.as_deref().unwrap().contains("timed out after 300ms: its process group was killed"), "{s}");
    let runs = guard.stats().into_iter().find(|s| s.name.ends_with("/runs")).unwrap();
    assert_eq!((runs.accepted, runs.retried), (2, 2), "two runs, both killed: {runs}");
    let pids: Vec<u32> =
        std::fs::read_to_string(dir.join("pids")).unwrap().lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(pids.len(), 4, "two runs, each a program and its background job");
    for pid in &pids {
        assert!(wait_until(Duration::from_secs(2), || is_dead(*pid)), "{pid} still runs: {:?}", proc_state(*pid));
    }
    assert!(wait_until(Duration::from_secs(2), || my_zombies().is_empty()), "zombies: {:?}", my_zombies());
}
