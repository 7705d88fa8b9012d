//! Shared by the interop tests: the Python venv with Logbook and pyzmq, free ports, a handler
//! that keeps what it is given.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use watchbell_core::{Handler, Record};

/// The venv's python: `WATCHBELL_TEST_PYTHON`, else what `.ci/python.sh` prints. Panics (the
/// test fails) when neither gives one: these tests never skip.
pub fn python() -> String {
    static PY: OnceLock<String> = OnceLock::new();
    PY.get_or_init(|| {
        watchbell_test::ci::from_env_or_script("WATCHBELL_TEST_PYTHON", "python.sh")
            .unwrap_or_else(|e| panic!("cannot test against Logbook: {e}"))
    })
    .clone()
}

/// A Python child running `script` with `args`, stdin/stdout piped.
pub fn spawn_python(script: &str, args: &[String]) -> Child {
    Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python starts")
}

/// Waits for `child` to end within `timeout` (killing it after), returning its stdout.
pub fn finish(mut child: Child, timeout: Duration) -> String {
    drop(child.stdin.take());
    let deadline = watchbell_core::time::deadline(timeout);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut out = String::new();
            std::io::Read::read_to_string(child.stdout.as_mut().expect("stdout"), &mut out).expect("stdout");
            assert!(status.success(), "python failed ({status}); stdout:\n{out}");
            return out;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("python did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes one line to the child's stdin.
pub fn tell(child: &mut Child, line: &str) {
    let stdin = child.stdin.as_mut().expect("stdin");
    writeln!(stdin, "{line}").expect("write to python");
    stdin.flush().expect("flush");
}

/// A loopback TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = watchbell_core::time::deadline(timeout);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// A handler that keeps every record (the end of a pipeline under test).
#[derive(Clone, Default)]
pub struct Keep(pub Arc<Mutex<Vec<Record>>>);

impl Keep {
    pub fn records(&self) -> Vec<Record> {
        self.0.lock().unwrap().clone()
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

impl Handler for Keep {
    fn handle(&self, record: Record) {
        self.0.lock().unwrap().push(record);
    }
}
