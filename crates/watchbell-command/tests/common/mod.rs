//! Scripts in temp dirs, and what they leave behind.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use watchbell_core::{Level, Record, Retry, Value};

/// A fresh directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("watchbell-command-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes an executable `/bin/sh` script `name` into `dir`; `{dir}` in `body` is the directory.
pub fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{}\n", body.replace("{dir}", &dir.display().to_string()))).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// An ERROR record `message` with the field `seq = i`.
pub fn rec(i: u64, message: &str) -> Record {
    let mut r = Record::new(Level::ERROR, "app::billing", message);
    r.fields.set("seq", Value::U64(i));
    r
}

/// Retries from 20 ms doubling to 200 ms, for up to 20 s.
pub fn fast_retry() -> Retry {
    Retry {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        budget: Duration::from_secs(20),
        ..Retry::default()
    }
}

/// Waits until `f()` or `timeout`; returns the last `f()`.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// `(state, ppid)` of a process from `/proc/PID/stat`, if it exists.
pub fn proc_state(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses; it ends at the last `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut it = rest.split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The zombie children of this process.
pub fn my_zombies() -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| proc_state(pid) == Some(('Z', me)))
        .collect()
}

/// Whether a process is gone or dead (a zombie of another parent counts as dead).
pub fn is_dead(pid: u32) -> bool {
    !matches!(proc_state(pid), Some((s, _)) if s != 'Z' && s != 'X')
}
