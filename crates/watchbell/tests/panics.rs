//! The panic hook, in child processes (this test has its own `main`, so that a child can
//! panic on the real main thread): each child sends its records to a loopback peer run by the
//! parent, through a sink that takes 300 ms per batch, with its guard kept out of reach of
//! unwinding (as in an app that keeps it in a static), so that only the hook's flush can get
//! the alert out before the process is gone.

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::prelude::*;
use watchbell::core::{Batch, CaptureLayer, Delivery, Guard, Outcome};

const MODE: &str = "WATCHBELL_PANICS_TEST_MODE";
const PEER: &str = "WATCHBELL_PANICS_TEST_PEER";

fn main() {
    match std::env::var(MODE) {
        Ok(mode) => child(&mode),
        Err(_) => {
            a_panic_in_a_worker_thread_is_recorded_and_the_process_goes_on();
            a_panic_in_main_is_delivered_before_the_process_exits();
            a_panic_that_aborts_is_delivered_before_the_abort();
            println!("panics: 3 tests passed");
        }
    }
}

// ---- the child ----

fn child(mode: &str) {
    let peer = std::env::var(PEER).unwrap();
    let delivery = Delivery::builder("peer", move |b: &Batch| {
        std::thread::sleep(Duration::from_millis(300));
        let mut out = TcpStream::connect(&peer).expect("the parent's peer");
        for r in &b.records {
            let line = serde_json::json!({
                "message": r.message,
                "level": r.level.as_str(),
                "target": r.target,
                "file": r.file,
                "line": r.line,
                "thread": r.field("thread").and_then(|v| v.as_str()),
                "location": r.field("panic.location").and_then(|v| v.as_str()),
                "spans": r.spans.iter().map(|s| s.name.to_string()).collect::<Vec<_>>(),
            });
            writeln!(out, "{line}").unwrap();
        }
        Outcome::Delivered
    })
    .spawn()
    .unwrap();
    let handler = Arc::new(delivery);
    let guard = Guard::new(handler.clone());
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(CaptureLayer::new(handler).with_level(tracing::Level::ERROR)),
    )
    .unwrap();
    match mode {
        "worker" => {
            assert!(watchbell::capture_panics());
            assert!(!watchbell::capture_panics(), "installed once");
            let joined = std::thread::Builder::new()
                .name("worker-7".into())
                .spawn(|| {
                    let _job = tracing::error_span!("job", id = 3).entered();
                    panic!("worker gave up");
                })
                .unwrap()
                .join();
            assert!(joined.is_err());
            tracing::error!("after the panic");
            assert!(guard.flush(Duration::from_secs(5)).is_complete());
            println!("CONTINUED");
        }
        "main" => {
            std::mem::forget(guard);
            watchbell::capture_panics();
            let _request = tracing::error_span!("request").entered();
            let v: Vec<u32> = Vec::new();
            let _ = v[usize::from(v.is_empty()) * 3];
        }
        "abort" => {
            std::mem::forget(guard);
            // What `panic = "abort"` does after the hooks: end the process at once. Installed
            // first, so watchbell's hook runs before it.
            std::panic::set_hook(Box::new(|_| std::process::abort()));
            watchbell::panics::Panics::new().flush_on_every_panic(true).install();
            let _ =
                std::thread::Builder::new().name("doomed".into()).spawn(|| panic!("fatal in a worker")).unwrap().join();
            unreachable!("the process aborted");
        }
        other => panic!("unknown mode {other}"),
    }
}

// ---- the parent ----

/// Runs the child in `mode` with a loopback peer; returns its output and the lines the peer got.
fn run(mode: &str) -> (Output, Vec<serde_json::Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let peer_got = Arc::clone(&got);
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peer_stop = Arc::clone(&stop);
    let peer = std::thread::spawn(move || loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut text = String::new();
                let _ = BufReader::new(conn).read_to_string(&mut text);
                for line in text.lines() {
                    peer_got.lock().unwrap().push(serde_json::from_str::<serde_json::Value>(line).unwrap());
                }
            }
            Err(_) if peer_stop.load(std::sync::atomic::Ordering::Relaxed) => return,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    });
    let out = Command::new(std::env::current_exe().unwrap())
        .env(MODE, mode)
        .env(PEER, addr.to_string())
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the test binary runs again");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    peer.join().unwrap();
    let lines = got.lock().unwrap().clone();
    (out, lines)
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn a_panic_in_a_worker_thread_is_recorded_and_the_process_goes_on() {
    let (out, got) = run("worker");
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("CONTINUED"), "{}", show(&out));
    // The previous hook (Rust's default) still printed the panic.
    assert!(String::from_utf8_lossy(&out.stderr).contains("worker gave up"), "{}", show(&out));
    assert_eq!(got.len(), 2, "{got:?}");
    let p = &got[0];
    assert_eq!(p["message"], "worker gave up");
    assert_eq!(p["level"], "ERROR");
    assert_eq!(p["target"], "panic");
    assert_eq!(p["thread"], "worker-7");
    assert_eq!(p["spans"], serde_json::json!(["job"]));
    assert!(p["file"].as_str().unwrap().ends_with("panics.rs"), "{p}");
    assert!(p["line"].as_u64().unwrap() > 0);
    assert!(p["location"].as_str().unwrap().contains("panics.rs:"), "{p}");
    assert_eq!(got[1]["message"], "after the panic");
    println!("a_panic_in_a_worker_thread_is_recorded_and_the_process_goes_on ... ok");
}

fn a_panic_in_main_is_delivered_before_the_process_exits() {
    let (out, got) = run("main");
    assert_eq!(out.status.code(), Some(101), "{}", show(&out));
    assert_eq!(got.len(), 1, "the alert left before the process ended: {got:?}\n{}", show(&out));
    let p = &got[0];
    assert!(p["message"].as_str().unwrap().starts_with("index out of bounds"), "{p}");
    assert_eq!(p["thread"], "main");
    assert_eq!(p["spans"], serde_json::json!(["request"]));
    println!("a_panic_in_main_is_delivered_before_the_process_exits ... ok");
}

fn a_panic_that_aborts_is_delivered_before_the_abort() {
    let (out, got) = run("abort");
    assert!(!out.status.success() && out.status.code().is_none(), "killed by SIGABRT: {}", show(&out));
    assert_eq!(got.len(), 1, "the alert left before the abort: {got:?}\n{}", show(&out));
    assert_eq!(got[0]["message"], "fatal in a worker");
    assert_eq!(got[0]["thread"], "doomed");
    println!("a_panic_that_aborts_is_delivered_before_the_abort ... ok");
}
