//! `cargo xtask ci | demo | bench | fuzz`
//!
//! - `ci`: what CI runs (`.ci/run`): format check, clippy with `-D warnings`, the tests.
//! - `demo`: `cargo run --example demo`.
//! - `bench`: runs the criterion benches once and prints one table of medians, watchbell's
//!   layers side by side with the peers (tracing-appender's non_blocking fmt layer, the
//!   OpenTelemetry appender, tracing-loki, sentry-tracing, tracing-layer-slack), the ratios
//!   that have targets, and the bytes held per queued record.
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

/// Where criterion writes its results: `CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`,
/// else the workspace's `target/criterion`.
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => Path::new(&dir).join("criterion"),
        None => root().join("target/criterion"),
    }
}

/// Median in nanoseconds of one criterion benchmark, from its estimates file (criterion writes
/// an id's `/` as `_` in the directory name).
fn median_ns(group: &str, id: &str) -> Option<f64> {
    let path = criterion_dir().join(group).join(id.replace('/', "_")).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// Records per iteration of the throughput benches (as in benches/pipeline.rs).
const FILE_N: f64 = 20_000.0;
const HTTP_N: f64 = 50_000.0;
const TICKETS_N: f64 = 20_000.0;
const RELAY_N: f64 = 10_000.0;
const AWS_N: f64 = 500.0;

/// The rows of the table: (label, criterion group, criterion id). A ratio names its rows as
/// `"group/id"`. Adding a row is one line here (and one in [`RATIOS`] for its ratio).
const ROWS: &[(&str, &str, &str)] = &[
    ("(a) debug! below every level: fmt(INFO) only", "disabled", "fmt_only"),
    ("(a) debug! below every level: fmt(INFO) + watchbell(WARN)", "disabled", "fmt_and_watchbell"),
    ("(b) info!, 3 fields, 2 spans: watchbell capture+enqueue, stalled sink", "enabled", "watchbell_stalled_sink"),
    ("(b) info!, 3 fields, 2 spans: tracing-appender non_blocking + fmt", "enabled", "appender_non_blocking_fmt"),
    ("(b) info!: OpenTelemetry appender, batch processor, OTLP/HTTP exporter, peer stalled", "peers", "otel_info"),
    ("(b) info!: tracing-loki, peer stalled", "peers", "loki_info"),
    ("(b) info!: sentry-tracing (a breadcrumb), loopback DSN stalled", "peers", "sentry_info"),
    ("(b) info!: tracing-layer-slack, peer stalled", "peers", "tracing_layer_slack_info"),
    ("(b') error!, same shape: watchbell capture+enqueue, stalled sink", "peers", "watchbell_error"),
    ("(b') error!: tracing-appender non_blocking + fmt", "peers", "appender_error"),
    ("(b') error!: OpenTelemetry appender, batch processor, OTLP/HTTP exporter, peer stalled", "peers", "otel_error"),
    ("(b') error!: tracing-loki, peer stalled", "peers", "loki_error"),
    ("(b') error!: sentry-tracing (an event), loopback DSN stalled", "peers", "sentry_error"),
    ("(b') error!: tracing-layer-slack, peer stalled", "peers", "tracing_layer_slack_error"),
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
    ("info!, 3 fields, 2 spans, withheld by FingersCrossedLayer (root-span scope)", "sinks", "fingers_crossed_buffer"),
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
    ("error!, same shape, into SqsLayer (defaults, peer stalled)", "aws", "sqs"),
    ("error!, same shape, into CloudWatchLogsLayer (defaults, peer stalled)", "aws", "cloudwatch_logs"),
    ("error!, same shape, into SnsLayer (defaults, peer stalled)", "aws", "sns"),
    ("error!, same shape, into ZmqLayer (PUB, no subscriber)", "zmq", "publish"),
    ("error!, same shape, into ZmqLayer (PUB, a subscriber that reads nothing)", "zmq", "publish_stalled_subscriber"),
    ("(b') error!, capture+enqueue, stalled sink, in the zmq run", "zmq", "b_capture_enqueue_error"),
];

/// The ratios printed under the table: (label, numerator, denominator, target), rows named
/// `"group/id"`.
const RATIOS: &[(&str, &str, &str, Option<&str>)] = &[
    ("(a) watchbell / no watchbell", "disabled/fmt_and_watchbell", "disabled/fmt_only", Some("≤ 1.5×")),
    (
        "(b) watchbell / non_blocking+fmt",
        "enabled/watchbell_stalled_sink",
        "enabled/appender_non_blocking_fmt",
        Some("≤ 0.25×"),
    ),
    ("(b) watchbell / OpenTelemetry appender", "enabled/watchbell_stalled_sink", "peers/otel_info", Some("≤ 1.0×")),
    ("(b) watchbell / tracing-loki", "enabled/watchbell_stalled_sink", "peers/loki_info", None),
    ("(b) watchbell / sentry-tracing (breadcrumb)", "enabled/watchbell_stalled_sink", "peers/sentry_info", None),
    ("(b) watchbell / tracing-layer-slack", "enabled/watchbell_stalled_sink", "peers/tracing_layer_slack_info", None),
    ("(b') error!: watchbell / non_blocking+fmt", "peers/watchbell_error", "peers/appender_error", None),
    ("(b') error!: watchbell / OpenTelemetry appender", "peers/watchbell_error", "peers/otel_error", None),
    ("(b') error!: watchbell / tracing-loki", "peers/watchbell_error", "peers/loki_error", None),
    ("(b') error!: watchbell / sentry-tracing (event)", "peers/watchbell_error", "peers/sentry_error", None),
    ("(b') error!: watchbell / tracing-layer-slack", "peers/watchbell_error", "peers/tracing_layer_slack_error", None),
    ("error!: SlackLayer / tracing-layer-slack", "sinks/slack", "peers/tracing_layer_slack_error", None),
    ("error!: TicketingLayer / sentry-tracing (event)", "sinks/ticketing_sqlite", "peers/sentry_error", None),
    (
        "(c) watchbell / non_blocking+fmt, 2 threads",
        "two_threads/watchbell_stalled_sink",
        "two_threads/appender_non_blocking_fmt",
        Some("≤ 0.35×"),
    ),
    ("slack / capture+enqueue (b)", "sinks/slack", "enabled/watchbell_stalled_sink", Some("≤ 1.0×")),
    ("telegram / capture+enqueue (b)", "sinks/telegram", "enabled/watchbell_stalled_sink", Some("≤ 1.0×")),
    ("sms / capture+enqueue (b)", "sinks/sms", "enabled/watchbell_stalled_sink", Some("≤ 1.0×")),
    ("mail / capture+enqueue (b)", "sinks/mail", "enabled/watchbell_stalled_sink", Some("≤ 1.0×")),
    ("syslog / capture+enqueue (b)", "sinks/syslog_udp", "enabled/watchbell_stalled_sink", Some("≤ 1.0×")),
    ("file / capture+enqueue (b)", "sinks/file_layer", "enabled/watchbell_stalled_sink", Some("≤ 1.0×")),
    ("ticketing / capture+enqueue (b)", "sinks/ticketing_sqlite", "enabled/watchbell_stalled_sink", Some("≤ 1.0×")),
    ("http / capture+enqueue (b)", "sinks/http", "enabled/watchbell_stalled_sink", Some("≤ 1.0×")),
    ("command / capture+enqueue (b)", "sinks/command", "enabled/watchbell_stalled_sink", Some("≤ 1.0×")),
    ("journald / capture+enqueue (b)", "sinks/journald", "enabled/watchbell_stalled_sink", Some("≤ 1.0×")),
    ("desktop / capture+enqueue (b)", "sinks/desktop", "enabled/watchbell_stalled_sink", Some("≤ 1.0×")),
    ("notify / capture+enqueue (b)", "sinks/notify", "enabled/watchbell_stalled_sink", Some("≤ 1.0×")),
    (
        "fingers-crossed buffering / non_blocking+fmt (b)",
        "sinks/fingers_crossed_buffer",
        "enabled/appender_non_blocking_fmt",
        Some("≤ 0.5×"),
    ),
    ("sqs / capture+enqueue (b)", "aws/sqs", "enabled/watchbell_stalled_sink", Some("≤ 1.0×")),
    ("cloudwatch logs / capture+enqueue (b)", "aws/cloudwatch_logs", "enabled/watchbell_stalled_sink", Some("≤ 1.0×")),
    ("sns / capture+enqueue (b)", "aws/sns", "enabled/watchbell_stalled_sink", Some("≤ 1.0×")),
    ("zmq publish / capture+enqueue (b'), same run", "zmq/publish", "zmq/b_capture_enqueue_error", Some("≤ 1.0×")),
    (
        "zmq publish, stalled subscriber / capture+enqueue (b'), same run",
        "zmq/publish_stalled_subscriber",
        "zmq/b_capture_enqueue_error",
        Some("≤ 1.0×"),
    ),
    (
        "processor adding 2 fields / capture+enqueue (b)",
        "processors/two_fields",
        "enabled/watchbell_stalled_sink",
        None,
    ),
];

/// The `"group/id"` name of a row.
fn key(group: &str, id: &str) -> String {
    format!("{group}/{id}")
}

/// Bytes held per queued record, as the `memory` bench wrote it.
fn memory_bytes_per_record() -> Option<f64> {
    let path = criterion_dir().join("memory/watchbell_queued_record.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["bytes_per_record"].as_f64()
}

fn bench() -> bool {
    // The PostgreSQL row needs a server: .ci/postgres.sh starts one (and prints its URL).
    if std::env::var_os("WATCHBELL_TEST_POSTGRES_URL").is_none() {
        eprintln!("(set WATCHBELL_TEST_POSTGRES_URL, e.g. from `bash .ci/postgres.sh`, to measure PostgreSQL too)");
    }
    if std::env::var_os("WATCHBELL_TEST_MOTO_URL").is_none() {
        eprintln!("(set WATCHBELL_TEST_MOTO_URL, e.g. from `bash .ci/moto.sh`, to measure SQS and CloudWatch Logs throughput)");
    }
    // Every bench target of watchbell-bench: pipeline, and the aws, zmq, relay and viewer benches.
    if !run(cargo().args(["bench", "-p", "watchbell-bench"])) {
        return false;
    }
    let values: std::collections::HashMap<String, f64> =
        ROWS.iter().filter_map(|&(_, group, id)| Some((key(group, id), median_ns(group, id)?))).collect();
    println!("\n| case | median ns/event |\n|---|---:|");
    for &(label, group, id) in ROWS {
        match values.get(&key(group, id)) {
            Some(ns) => println!("| {label} | {ns:.1} |"),
            None => println!("| {label} | (not measured) |"),
        }
    }
    println!("\n| ratio (same run) | value | target |\n|---|---:|---|");
    for &(label, num, den, target) in RATIOS {
        let value = match (values.get(num), values.get(den)) {
            (Some(x), Some(y)) if *y > 0.0 => format!("{:.2}×", x / y),
            _ => "n/a".into(),
        };
        println!("| {label} | {value} | {} |", target.unwrap_or(""));
    }
    match memory_bytes_per_record() {
        Some(b) => println!("\nmemory: {b:.0} bytes held per queued record, the (b) event  (target ≤ 512)"),
        None => println!("\nmemory: (not measured)"),
    }
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
        ("NDJSON over loopback HTTP → watchbell-relay → file sink", "relay", "ingest_ndjson", RELAY_N),
        ("error! → SqsLayer → moto (the emulator is the bottleneck)", "aws_throughput", "sqs_moto", AWS_N),
        ("error! → CloudWatchLogsLayer → moto", "aws_throughput", "cloudwatch_logs_moto", AWS_N),
    ] {
        match per_record(group, id, n) {
            Some(ns) => println!("| {label} | {ns:.0} | {:.0} |", 1e9 / ns),
            None => println!("| {label} | (not measured) | |"),
        }
    }
    println!("\n| ticket viewer: list page over 100,000 tickets and 1,000,000 occurrences (server time) | SQLite ms | PostgreSQL ms | target |\n|---|---:|---:|---|");
    for (label, id) in [
        ("last seen first, 24 h chart, 50 per page", "list_page"),
        ("the same with the 14-day chart", "list_page_14d"),
        ("sorted by count", "list_page_count"),
    ] {
        let ms = |backend: &str| match median_ns("viewer", &format!("{id}/{backend}")) {
            Some(ns) => format!("{:.2}", ns / 1e6),
            None => "(not measured)".into(),
        };
        println!("| {label} | {} | {} | ≤ 50 ms |", ms("sqlite"), ms("postgres"));
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
