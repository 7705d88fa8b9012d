//! `cargo xtask ci | demo | bench | fuzz`
//!
//! - `ci`: what CI runs (`.ci/run`): format check, clippy with `-D warnings`, the tests.
//! - `demo`: `cargo run --example demo`.
//! - `bench`: runs the criterion benches once and prints one table of medians, watchbell's
//!   layers side by side with tracing-appender's non_blocking fmt layer.
//! - `fuzz [--seconds N] [--target T] [--smoke]`: runs every fuzz target of `fuzz/` (or `T`) for
//!   `N` seconds each (60 by default): with libFuzzer (`cargo +nightly fuzz run`, one process
//!   on one core) when the nightly toolchain and cargo-fuzz are installed, else (and always with
//!   `--smoke`) with the stable driver over the committed corpus and random mutations of it.
//!   Builds go to `fuzz/target`, apart from the workspace's.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn run(cmd: &mut Command) -> bool {
    eprintln!("$ {cmd:?}");
    cmd.current_dir(root()).status().map(|s| s.success()).unwrap_or(false)
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Median in nanoseconds of one criterion benchmark, from its estimates file.
fn median_ns(group: &str, id: &str) -> Option<f64> {
    let path = root().join("target/criterion").join(group).join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// Records per iteration of the throughput benches (as in benches/pipeline.rs).
const FILE_N: f64 = 20_000.0;
const HTTP_N: f64 = 50_000.0;
const TICKETS_N: f64 = 20_000.0;

fn bench() -> bool {
    // The PostgreSQL row needs a server: .ci/postgres.sh starts one (and prints its URL).
    if std::env::var_os("WATCHBELL_TEST_POSTGRES_URL").is_none() {
        eprintln!("(set WATCHBELL_TEST_POSTGRES_URL, e.g. from `bash .ci/postgres.sh`, to measure PostgreSQL too)");
    }
    if !run(cargo().args(["bench", "-p", "watchbell-bench", "--bench", "pipeline"])) {
        return false;
    }
    let rows = [
        ("(a) debug! below every level: fmt(INFO) only", "disabled", "fmt_only"),
        ("(a) debug! below every level: fmt(INFO) + watchbell(WARN)", "disabled", "fmt_and_watchbell"),
        ("(b) info!, 3 fields, 2 spans: watchbell capture+enqueue, stalled sink", "enabled", "watchbell_stalled_sink"),
        ("(b) info!, 3 fields, 2 spans: tracing-appender non_blocking + fmt", "enabled", "appender_non_blocking_fmt"),
        ("(c) same, 2 threads: watchbell, stalled sink", "two_threads", "watchbell_stalled_sink"),
        ("(c) same, 2 threads: tracing-appender non_blocking + fmt", "two_threads", "appender_non_blocking_fmt"),
        ("error!, same shape, into SlackLayer (defaults, peer stalled)", "sinks", "slack"),
        ("error!, same shape, into TelegramLayer (defaults, peer stalled)", "sinks", "telegram"),
        ("error!, same shape, into SmsLayer (defaults, peer stalled)", "sinks", "sms"),
        ("error!, same shape, into MailLayer (defaults, SMTP peer stalled)", "sinks", "mail"),
        ("error!, same shape, into SyslogLayer (UDP, defaults)", "sinks", "syslog_udp"),
        ("error!, same shape, into FileLayer (defaults)", "sinks", "file_layer"),
        ("error!, same shape, into TicketingLayer (SQLite, defaults)", "sinks", "ticketing_sqlite"),
        ("error!, same shape, into HttpLayer (gzip NDJSON, defaults)", "sinks", "http"),
        (
            "info!, 3 fields, 2 spans, withheld by FingersCrossedLayer (root-span scope)",
            "sinks",
            "fingers_crossed_buffer",
        ),
        (
            "(b) the same event, the destination down (its delivery waiting out a retry)",
            "enabled",
            "watchbell_destination_down",
        ),
        ("error!, same shape, into CommandLayer (defaults, program hung)", "sinks", "command"),
        ("error!, same shape, into JournaldLayer (defaults, local receiver)", "sinks", "journald"),
        ("error!, same shape, into DesktopLayer (defaults, notification server on a private bus)", "sinks", "desktop"),
        ("error!, same shape, into NotifyLayer (ntfy, defaults, peer stalled)", "sinks", "notify"),
        (
            "(b) the same event with a processor adding 2 fields (deploy id, thread-local request id)",
            "processors",
            "two_fields",
        ),
    ];
    let values: Vec<Option<f64>> = rows.iter().map(|(_, g, id)| median_ns(g, id)).collect();
    println!("\n| case | median ns/event |\n|---|---:|");
    for ((label, _, _), v) in rows.iter().zip(&values) {
        match v {
            Some(ns) => println!("| {label} | {ns:.1} |"),
            None => println!("| {label} | (not measured) |"),
        }
    }
    let ratio = |a: usize, b: usize| match (values[a], values[b]) {
        (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
        _ => "n/a".into(),
    };
    println!("\n(a) watchbell / no watchbell: {}×  (target ≤ 1.5×)", ratio(1, 0));
    println!("(b) watchbell / non_blocking+fmt: {}×  (target ≤ 0.5×)", ratio(2, 3));
    println!("(c) watchbell / non_blocking+fmt, 2 threads: {}×", ratio(4, 5));
    println!("slack / capture+enqueue (b): {}×  (target ≤ 1.2×)", ratio(6, 2));
    for (i, name) in
        [(7, "telegram"), (8, "sms"), (9, "mail"), (10, "syslog"), (11, "file"), (12, "ticketing"), (13, "http")]
    {
        println!("{name} / capture+enqueue (b): {}×  (target ≤ 1.2×)", ratio(i, 2));
    }
    println!("fingers-crossed buffering / non_blocking+fmt (b): {}×  (target ≤ 0.5×)", ratio(14, 3));
    for (i, name) in [(16, "command"), (17, "journald"), (18, "desktop"), (19, "notify")] {
        println!("{name} / capture+enqueue (b): {}×  (target ≤ 1.0×)", ratio(i, 2));
    }
    println!("processor adding 2 fields / capture+enqueue (b): {}×", ratio(20, 2));
    let per_record = |group: &str, id: &str, n: f64| median_ns(group, id).map(|ns| ns / n);
    println!("\n| throughput (end to end, until the last record is written/accepted) | ns/record | records/s |\n|---|---:|---:|");
    for (label, group, id, n) in [
        ("fmt → watchbell-file non-blocking writer → file", "file_throughput", "watchbell_file_writer", FILE_N),
        (
            "fmt → tracing-appender rolling + non_blocking → file",
            "file_throughput",
            "appender_rolling_non_blocking",
            FILE_N,
        ),
        ("info! → HttpLayer gzip NDJSON → loopback collector", "http_throughput", "watchbell_http_gzip_ndjson", HTTP_N),
        ("error occurrences → TicketingLayer → SQLite (committed)", "tickets_throughput", "sqlite", TICKETS_N),
        ("error occurrences → TicketingLayer → PostgreSQL (committed)", "tickets_throughput", "postgres", TICKETS_N),
    ] {
        match per_record(group, id, n) {
            Some(ns) => println!("| {label} | {ns:.0} | {:.0} |", 1e9 / ns),
            None => println!("| {label} | (not measured) | |"),
        }
    }
    true
}

/// The fuzz targets of `fuzz/`, from its `fuzz_targets` directory.
fn fuzz_targets() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("fuzz/fuzz_targets"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.strip_suffix(".rs").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn has_nightly_fuzz() -> bool {
    Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn fuzz(args: &[String]) -> bool {
    let mut seconds: u64 = 60;
    let mut target: Option<String> = None;
    let mut smoke = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => match it.next().and_then(|s| s.parse().ok()) {
                Some(n) => seconds = n,
                None => {
                    eprintln!("--seconds takes a whole number");
                    return false;
                }
            },
            "--target" => target = it.next().cloned(),
            "--smoke" => smoke = true,
            other => {
                eprintln!("unknown argument {other}; usage: cargo xtask fuzz [--seconds N] [--target T] [--smoke]");
                return false;
            }
        }
    }
    let targets = fuzz_targets();
    if let Some(t) = &target {
        if !targets.contains(t) {
            eprintln!("no fuzz target {t}; targets: {}", targets.join(" "));
            return false;
        }
    }
    let manifest = root().join("fuzz/Cargo.toml");
    if !smoke && has_nightly_fuzz() {
        let mut ok = true;
        for t in targets.iter().filter(|t| target.as_ref().is_none_or(|o| o == *t)) {
            ok &= run(Command::new("cargo")
                .env_remove("RUSTUP_TOOLCHAIN")
                .env("CARGO_TARGET_DIR", root().join("fuzz/target"))
                // No sanitizer: the code under test forbids `unsafe`; builds and runs are faster.
                .args(["+nightly", "fuzz", "run", "--sanitizer", "none", "--features", "libfuzzer", t, "--"])
                .arg(format!("-max_total_time={seconds}"))
                // One process on one core (`-jobs` would fork and log to files instead).
                .arg("-print_final_stats=1"));
        }
        return ok;
    }
    eprintln!("(the stable driver: {})", if smoke { "--smoke" } else { "no nightly toolchain with cargo-fuzz" });
    let mut cmd = cargo();
    cmd.arg("run").arg("--manifest-path").arg(&manifest);
    if smoke {
        // A smoke run is short: a debug build in the main target dir, which reuses what the
        // tests already compiled (a release build of the whole tree costs CI about 8 minutes).
        cmd.env("CARGO_TARGET_DIR", root().join("target"));
    } else {
        cmd.env("CARGO_TARGET_DIR", root().join("fuzz/target")).arg("--release");
    }
    cmd.args(["--features", "driver", "--bin", "smoke", "--", "--seconds"]).arg(seconds.to_string());
    if let Some(t) = &target {
        cmd.args(["--target", t]);
    }
    run(&mut cmd)
}

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let ok = match task.as_str() {
        "ci" => run(Command::new("bash").arg(".ci/run")),
        "demo" => run(cargo().args(["run", "--example", "demo"])),
        "bench" => bench(),
        "fuzz" => fuzz(&std::env::args().skip(2).collect::<Vec<_>>()),
        _ => {
            eprintln!("usage: cargo xtask <ci|demo|bench|fuzz>");
            false
        }
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
