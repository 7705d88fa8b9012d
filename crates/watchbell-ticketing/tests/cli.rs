//! The `watchbell-tickets` binary, run against SQLite and PostgreSQL databases.

mod common;

use std::process::{Command, Output};

use common::*;
use watchbell_core::Level;

fn run(url: &str, prefix: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_watchbell-tickets"))
        .args(["--db", url, "--prefix", prefix])
        .args(args)
        .env_remove("WATCHBELL_TICKETS_DB")
        .output()
        .expect("the binary runs")
}

fn ok(url: &str, prefix: &str, args: &[&str]) -> String {
    let out = run(url, prefix, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn json(url: &str, prefix: &str, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(url, prefix, &a)).expect("--json prints JSON")
}

fn cli_scenario(url: &str, prefix: &str) {
    with_layer(builder(url, prefix).app_id("cli").level(Level::INFO), || {
        for i in 0..4 {
            tracing::error!(i, "payment <failed> | for invoice {i}");
        }
        tracing::warn!("disk\nalmost full");
    });

    let table = ok(url, prefix, &["list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("LEVEL") && lines[0].contains("MESSAGE"), "{table}");
    assert!(lines[1].contains("WARN") && lines[1].contains("disk almost full"), "newest first, one line: {table}");
    assert!(lines[2].contains("ERROR") && lines[2].contains("payment <failed> | for invoice 3"), "{table}");
    assert_eq!(lines[3], "2 of 2 tickets");

    let list = json(url, prefix, &["list", "--order", "count"]);
    assert_eq!(list["total"], 2);
    let tickets = list["tickets"].as_array().unwrap();
    assert_eq!(tickets[0]["occurrence_count"], 4);
    assert_eq!(tickets[0]["level"], "ERROR");
    assert_eq!(tickets[0]["solved"], false);
    let id = tickets[0]["id"].as_i64().unwrap();
    let ids = id.to_string();

    let filtered = json(url, prefix, &["list", "--level", "warn"]);
    assert_eq!(filtered["total"], 1);

    let shown = ok(url, prefix, &["show", &ids]);
    assert!(shown.contains(&format!("ticket {id}")) && shown.contains("occurrences  4"), "{shown}");
    let shown = json(url, prefix, &["show", &ids, "--limit", "2"]);
    assert_eq!(shown["ticket"]["id"], id);
    let occ = shown["occurrences"].as_array().unwrap();
    assert_eq!(occ.len(), 2);
    assert_eq!(occ[0]["data"]["fields"]["i"], 3, "the whole record, newest first");

    assert_eq!(ok(url, prefix, &["solve", &ids]).trim(), format!("ticket {id} solved"));
    assert_eq!(json(url, prefix, &["list", "--solved"])["total"], 1);
    assert_eq!(json(url, prefix, &["list", "--open"])["total"], 1);
    assert_eq!(json(url, prefix, &["reopen", &ids])["done"], true);
    assert_eq!(json(url, prefix, &["list", "--open"])["total"], 2);

    let stats = json(url, prefix, &["stats"]);
    assert_eq!((stats["tickets"].as_u64(), stats["occurrences"].as_u64()), (Some(2), Some(5)));
    let stats_text = ok(url, prefix, &["stats"]);
    assert!(stats_text.contains("tickets      2 (2 open, 0 solved)"), "{stats_text}");

    assert_eq!(ok(url, prefix, &["delete", &ids]).trim(), format!("ticket {id} deleted"));
    assert_eq!(json(url, prefix, &["list"])["total"], 1);
    let missing = run(url, prefix, &["show", &ids]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains(&format!("no ticket {id}")));
    assert!(!run(url, prefix, &["delete", &ids]).status.success());
}

#[test]
fn cli_on_sqlite() {
    cli_scenario(&sqlite_url("cli"), "watchbell_");
}

#[test]
fn cli_on_postgres() {
    cli_scenario(&postgres_url(), &unique_prefix("cli"));
}

#[test]
fn cli_usage_errors() {
    let url = sqlite_url("cli-usage");
    let out = run(&url, "watchbell_", &["frobnicate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown command"));
    let out = run(&url, "watchbell_", &["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&url, "watchbell_", &["show", "abc"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected a ticket id"));
    let help = Command::new(env!("CARGO_BIN_EXE_watchbell-tickets")).arg("--help").output().unwrap();
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("USAGE"));
    let e = run("postgres://u:hunter2@127.0.0.1:1/x", "watchbell_", &["list"]);
    assert!(!e.status.success());
    assert!(!String::from_utf8_lossy(&e.stderr).contains("hunter2"));
}
