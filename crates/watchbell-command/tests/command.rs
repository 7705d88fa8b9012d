//! Real programs (`/bin/sh` scripts) run by the layer: arguments, environment, stdin, exit
//! codes, stderr, shell mode, batches, hostile text.
mod common;

use std::time::Duration;

use common::{fast_retry, rec, script, temp_dir, wait_until};
use tracing_subscriber::prelude::*;
use watchbell_command::{CommandLayer, Stdin};
use watchbell_core::{Batch, BatchReason, Guard, SinkOptions, Stats};

const WAIT: Duration = Duration::from_secs(20);

fn stats(guard: &Guard, suffix: &str) -> Stats {
    guard.stats().into_iter().find(|s| s.name.ends_with(suffix)).unwrap_or_else(|| panic!("{:?}", guard.stats()))
}

/// The NUL-separated arguments a script saved with `printf '%s\0' "$@"`.
fn saved_args(path: &std::path::Path) -> Vec<String> {
    let raw = std::fs::read(path).unwrap();
    raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8(a.to_vec()).unwrap()).collect()
}

#[test]
fn arguments_environment_and_stdin_carry_the_record_without_a_shell() {
    let dir = temp_dir("args");
    let prog = script(
        &dir,
        "hook",
        r#"printf '%s\0' "$@" > {dir}/args; env > {dir}/env; cat > {dir}/stdin; echo done > {dir}/done"#,
    );
    let hostile = "$(touch {dir}/pwned) `touch {dir}/pwned2`; \"quoted\" 'single' & | > {dir}/redirected\nsecond line";
    let hostile = hostile.replace("{dir}", &dir.display().to_string());
    let (layer, guard) = CommandLayer::builder(&prog)
        .arg("--level={level}")
        .arg("{message}")
        .arg("{field.invoice}")
        .app("billing")
        .no_rate_limit()
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::error!(invoice = 42, customer.id = "c-7", "{hostile}");
    });
    assert!(guard.flush(WAIT).is_complete());
    assert!(wait_until(WAIT, || dir.join("done").exists()));
    assert_eq!(saved_args(&dir.join("args")), ["--level=ERROR".to_owned(), hostile.clone(), "42".to_owned()]);
    assert!(!dir.join("pwned").exists() && !dir.join("pwned2").exists() && !dir.join("redirected").exists());
    let env = std::fs::read_to_string(dir.join("env")).unwrap();
    for want in [
        "WATCHBELL_LEVEL=ERROR",
        "WATCHBELL_TARGET=command",
        "WATCHBELL_FIELD_INVOICE=42",
        "WATCHBELL_FIELD_CUSTOMER_ID=c-7",
        "WATCHBELL_APP=billing",
        "WATCHBELL_COUNT=1",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} in {env}");
    }
    assert!(env.contains("WATCHBELL_MESSAGE=$(touch"), "{env}");
    let stdin = std::fs::read_to_string(dir.join("stdin")).unwrap();
    assert!(stdin.contains("ERROR command") && stdin.contains("\"quoted\""), "{stdin}");
    let s = stats(&guard, "/runs");
    assert_eq!((s.accepted, s.failed), (1, 0), "{s}");
}

#[test]
fn shell_mode_passes_record_text_as_positional_parameters() {
    let dir = temp_dir("shell");
    let script_text = format!(r#"printf '%s|%s' "$1" "$2" > {}/out"#, dir.display());
    let (handler, guard) =
        CommandLayer::shell(script_text).arg("{level}").arg("{message}").no_rate_limit().build_handler().unwrap();
    handler.handle(rec(1, "a; rm -rf / #\" $(id)"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(std::fs::read_to_string(dir.join("out")).unwrap(), "ERROR|a; rm -rf / #\" $(id)");
}

#[test]
fn a_nul_and_a_huge_message_reach_the_program_safely() {
    let dir = temp_dir("huge");
    let prog = script(
        &dir,
        "hook",
        r#"printf '%s' "$1" > {dir}/arg; printenv WATCHBELL_MESSAGE > {dir}/env; cat > {dir}/stdin"#,
    );
    let (handler, guard) = CommandLayer::builder(&prog).arg("{message}").no_rate_limit().build_handler().unwrap();
    let big = format!("a\0b{}", "é".repeat(600_000)); // 1.2 MB, beyond what argv or env take
    handler.handle(rec(1, &big));
    assert!(guard.flush(WAIT).is_complete());
    let arg = std::fs::read_to_string(dir.join("arg")).unwrap();
    assert!(arg.starts_with("a\u{2400}b") && arg.ends_with("…[truncated]") && arg.len() <= 16 * 1024, "{}", arg.len());
    let env = std::fs::read_to_string(dir.join("env")).unwrap();
    assert!(env.trim_end().ends_with("…[truncated]"));
    let stdin = std::fs::read_to_string(dir.join("stdin")).unwrap();
    assert!(stdin.len() > 1_200_000, "stdin carries the whole text: {}", stdin.len());
    assert_eq!(stats(&guard, "/runs").failed, 0);
}

#[test]
fn a_configured_exit_code_is_retried_and_the_record_delivered() {
    let dir = temp_dir("retry");
    // Fails with 1 on the first two runs, then succeeds.
    let prog =
        script(&dir, "flaky", r#"n=$(cat {dir}/n 2>/dev/null || echo 0); echo $((n+1)) > {dir}/n; [ "$n" -ge 2 ]"#);
    let (handler, guard) = CommandLayer::builder(&prog)
        .retry_exit_codes([1, 75])
        .retry(fast_retry())
        .no_rate_limit()
        .build_handler()
        .unwrap();
    handler.handle(rec(1, "flaky"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(std::fs::read_to_string(dir.join("n")).unwrap().trim(), "3");
    let s = &guard.stats()[0];
    assert_eq!((s.delivered, s.retried, s.failed), (1, 2, 0), "{s}");
    assert!(s.last_error.as_deref().unwrap().contains("exited with 1"), "{s}");
}

#[test]
fn another_exit_code_is_a_permanent_counted_failure_with_stderr_bounded() {
    let dir = temp_dir("permanent");
    // 1 MB on stderr, then exit 3.
    let prog = script(
        &dir,
        "broken",
        r#"echo "config missing: /etc/hook.conf" >&2; head -c 1000000 /dev/zero | tr '\0' x >&2; exit 3"#,
    );
    let (handler, guard) =
        CommandLayer::builder(&prog).max_stderr(200).retry(fast_retry()).no_rate_limit().build_handler().unwrap();
    handler.handle(rec(1, "one"));
    handler.handle(rec(2, "two"));
    assert!(guard.flush(WAIT).is_complete());
    let runs = stats(&guard, "/runs");
    assert_eq!((runs.accepted, runs.failed), (2, 2), "each ran once, not retried: {runs}");
    let err = runs.last_error.unwrap();
    assert!(err.starts_with("the program exited with 3: config missing: /etc/hook.conf xxx"), "{err}");
    assert!(err.len() < 300, "stderr is bounded: {} bytes", err.len());
    assert_eq!(guard.stats()[0].retried, 0);
}

#[test]
fn a_missing_program_is_permanent() {
    let (handler, guard) =
        CommandLayer::builder("/nonexistent/watchbell-hook").no_rate_limit().build_handler().unwrap();
    handler.handle(rec(1, "lost"));
    assert!(guard.flush(WAIT).is_complete());
    let runs = stats(&guard, "/runs");
    assert_eq!(runs.failed, 1);
    assert!(runs.last_error.unwrap().contains("No such file"));
    assert_eq!(guard.stats()[0].retried, 0);
}

#[test]
fn a_program_that_reads_no_stdin_is_fine_even_with_a_large_input() {
    let dir = temp_dir("nostdin");
    let prog = script(&dir, "deaf", "sleep 0.2; echo ran >> {dir}/ran");
    let (handler, guard) = CommandLayer::builder(&prog).no_rate_limit().build_handler().unwrap();
    for i in 0..3 {
        handler.handle(rec(i, &"x".repeat(1 << 20)));
    }
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(std::fs::read_to_string(dir.join("ran")).unwrap().lines().count(), 3);
    assert_eq!((guard.stats()[0].delivered, stats(&guard, "/runs").failed), (3, 0));
}

#[test]
fn background_jobs_left_by_the_program_do_not_hold_the_run() {
    let dir = temp_dir("background");
    // The background job keeps stderr open; it is killed with the program's group.
    let prog = script(&dir, "forks", "sleep 30 >&2 & echo $! > {dir}/job; exit 0");
    let (handler, guard) = CommandLayer::builder(&prog).no_rate_limit().build_handler().unwrap();
    handler.handle(rec(1, "x"));
    assert!(guard.flush(Duration::from_secs(5)).is_complete(), "{:?}", guard.stats());
    let job: u32 = std::fs::read_to_string(dir.join("job")).unwrap().trim().parse().unwrap();
    assert!(wait_until(Duration::from_secs(5), || common::is_dead(job)), "the background job was killed");
}

#[test]
fn a_retried_batch_does_not_run_its_finished_records_again() {
    let dir = temp_dir("rerun");
    // Record seq=1 fails once with 75; every run is logged.
    let prog = script(
        &dir,
        "hook",
        r#"echo "$1" >> {dir}/runs; if [ "$1" = 1 ] && [ ! -e {dir}/failed ]; then touch {dir}/failed; exit 75; fi"#,
    );
    let (handler, guard) = CommandLayer::builder(&prog)
        .arg("{field.seq}")
        .concurrency(4)
        .retry(fast_retry())
        .no_rate_limit()
        .build_handler()
        .unwrap();
    let records = (0..4).map(|i| rec(i, "r")).collect();
    handler.handle_batch(Batch { reason: BatchReason::Single, records });
    assert!(guard.flush(WAIT).is_complete());
    let mut runs: Vec<String> = std::fs::read_to_string(dir.join("runs")).unwrap().lines().map(str::to_owned).collect();
    runs.sort();
    assert_eq!(runs, ["0", "1", "1", "2", "3"], "only the failed record ran twice");
    let s = &guard.stats()[0];
    assert_eq!((s.delivered, s.retried, s.failed), (4, 1, 0), "{s}");
}

#[test]
fn per_batch_runs_once_with_every_record_on_stdin_as_json() {
    let dir = temp_dir("batch");
    let prog = script(
        &dir,
        "batch",
        r#"printf '%s' "$1" > {dir}/arg; printenv WATCHBELL_COUNT > {dir}/count; cat > {dir}/stdin"#,
    );
    let (handler, guard) = CommandLayer::builder(&prog)
        .arg("{message}")
        .per_batch(true)
        .stdin(Stdin::Json)
        .no_rate_limit()
        .build_handler()
        .unwrap();
    let records = vec![rec(0, "debug before"), rec(1, "more context"), rec(2, "the trigger")];
    handler.handle_batch(Batch { reason: BatchReason::Escalation, records });
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(std::fs::read_to_string(dir.join("arg")).unwrap(), "the trigger");
    assert_eq!(std::fs::read_to_string(dir.join("count")).unwrap().trim(), "3");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.join("stdin")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let msgs: Vec<&str> = lines.iter().map(|l| l["message"].as_str().unwrap()).collect();
    assert_eq!(msgs, ["debug before", "more context", "the trigger"]);
    assert_eq!(lines[1]["fields"]["seq"], 1);
}

#[test]
fn bad_configurations_are_build_errors() {
    let e = CommandLayer::builder(" ").build_handler().err().expect("a build error");
    assert_eq!(e.key, "program");
    let e = CommandLayer::builder("/bin/true").arg("ok").arg("{lvl}").build_handler().err().expect("a build error");
    assert_eq!(e.key, "args[1]");
    assert!(e.message.contains("unknown placeholder {lvl}"), "{e}");
    let e = CommandLayer::builder("/bin/true").arg("a\0b").build_handler().err().expect("a build error");
    assert_eq!(e.key, "args[0]");
    let e = CommandLayer::builder("/bin/true").env_prefix("A=B").build_handler().err().expect("a build error");
    assert_eq!(e.key, "env_prefix");
}
