//! Running the program: one run per record (up to `concurrency` at once) or one per batch,
//! each in its own process group, reaped, and killed with its group at its timeout.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};
use watchbell_core::capture::mark_current_thread;
use watchbell_core::format::{Format, FormatContext, Template};
use watchbell_core::text::{truncate_bytes, MARKER};
use watchbell_core::{Batch, Outcome, Record, Sink};

use crate::Stdin;

/// The most bytes of one argument or environment value (the kernel refuses a single string
/// over 128 KiB, and all of them together over about 2 MiB): longer ones are cut with the
/// marker. The whole text is on standard input.
pub(crate) const MAX_VALUE_BYTES: usize = 16 * 1024;

/// The most fields exported as environment variables.
pub(crate) const MAX_ENV_FIELDS: usize = 64;

/// How long a finished run's stderr reader is waited for before what it read is taken.
const STDERR_GRACE: Duration = Duration::from_millis(200);

/// Everything a run needs, fixed at build time.
pub(crate) struct Spec {
    pub program: String,
    pub args: Vec<Template>,
    pub shell: bool,
    pub stdin: Stdin,
    pub per_batch: bool,
    pub env_prefix: Option<String>,
    pub timeout: Duration,
    pub concurrency: usize,
    pub retry_codes: Vec<i32>,
    pub max_stderr: usize,
    pub format: Arc<dyn Format>,
    pub cx: FormatContext,
    pub dir: Option<PathBuf>,
}

/// How one run ended.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Ran {
    Ok,
    Retry(String),
    Permanent(String),
}

/// Counters of the runs, besides the delivery's own (a record whose run failed for good inside
/// a batch is counted here: the batch goes on with the others).
#[derive(Debug, Default)]
pub(crate) struct RunCounters {
    pub runs: AtomicU64,
    pub failed: AtomicU64,
    pub killed: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

pub(crate) struct CommandSink {
    spec: Arc<Spec>,
    counters: Arc<RunCounters>,
    /// Records of a batch under retry whose own run already ended (well, or failed for good):
    /// they are not run again when the batch is retried.
    done: HashSet<u64>,
    reported: bool,
}

impl CommandSink {
    pub(crate) fn new(spec: Arc<Spec>, counters: Arc<RunCounters>) -> Self {
        CommandSink { spec, counters, done: HashSet::new(), reported: false }
    }

    fn fail_for_good(&mut self, reason: &str) {
        // The program's stderr is outside text: redacted and escaped like a peer's body, as
        // the delivery does for its own errors.
        let reason = watchbell_core::text::escape_controls(&watchbell_core::secret::redact_text(reason)).into_owned();
        let reason = reason.as_str();
        self.counters.failed.fetch_add(1, Relaxed);
        *self.counters.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_owned());
        if !std::mem::replace(&mut self.reported, true) {
            watchbell_core::report::report(
                "command",
                &format!(
                    "a run failed for good, not retried: {reason} (further failures are counted in stats, not printed)"
                ),
            );
        }
    }

    fn deliver_each(&mut self, batch: &Batch) -> Outcome {
        let n = batch.records.len();
        let keys: Vec<u64> = batch.records.iter().map(key).collect();
        let mut results: Vec<Option<Ran>> = keys.iter().map(|k| self.done.remove(k).then_some(Ran::Ok)).collect();
        let mut running: Vec<(usize, Run)> = Vec::new();
        let mut next = 0;
        let mut pause = Duration::from_millis(1);
        loop {
            while running.len() < self.spec.concurrency && next < n {
                if results[next].is_none() {
                    let r = &batch.records[next];
                    match Run::start(&self.spec, r, std::slice::from_ref(r)) {
                        Ok(run) => running.push((next, run)),
                        Err(ran) => results[next] = Some(ran),
                    }
                    self.counters.runs.fetch_add(1, Relaxed);
                }
                next += 1;
            }
            if running.is_empty() {
                break;
            }
            let before = running.len();
            running.retain_mut(|(i, run)| match run.poll(&self.spec, &self.counters) {
                Some(ran) => {
                    results[*i] = Some(ran);
                    false
                }
                None => true,
            });
            if running.len() == before {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            } else {
                pause = Duration::from_millis(1);
            }
        }
        // Records whose run failed for good are counted here and count as handled.
        let mut first_retry = None;
        for (i, ran) in results.iter().enumerate() {
            match ran {
                Some(Ran::Permanent(reason)) => self.fail_for_good(reason),
                Some(Ran::Retry(reason)) if first_retry.is_none() => first_retry = Some((i, reason.clone())),
                _ => {}
            }
        }
        let Some((i, reason)) = first_retry else {
            self.done.clear();
            return Outcome::Delivered;
        };
        // What ended after the first retryable failure is remembered, not run again.
        for (k, ran) in keys.iter().zip(&results).skip(i + 1) {
            if matches!(ran, Some(Ran::Ok | Ran::Permanent(_))) && self.done.len() < 100_000 {
                self.done.insert(*k);
            }
        }
        let rest = Outcome::retry(reason);
        if i == 0 {
            rest
        } else {
            Outcome::Partial { delivered: i, rest: Box::new(rest) }
        }
    }

    fn deliver_batch(&mut self, batch: &Batch) -> Outcome {
        let Some(subject) = batch.significant().or(batch.records.first()) else {
            return Outcome::Delivered;
        };
        self.counters.runs.fetch_add(1, Relaxed);
        let ran = match Run::start(&self.spec, subject, &batch.records) {
            Ok(mut run) => loop {
                if let Some(ran) = run.poll(&self.spec, &self.counters) {
                    break ran;
                }
                std::thread::sleep(Duration::from_millis(5));
            },
            Err(ran) => ran,
        };
        match ran {
            Ran::Ok => Outcome::Delivered,
            Ran::Retry(r) => Outcome::retry(r),
            Ran::Permanent(r) => Outcome::permanent(r),
        }
    }
}

impl Sink for CommandSink {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        if self.spec.per_batch {
            self.deliver_batch(batch)
        } else {
            self.deliver_each(batch)
        }
    }
}

/// A record's identity while its batch is retried.
fn key(r: &Record) -> u64 {
    let mut h = DefaultHasher::new();
    r.time.hash(&mut h);
    r.thread_id.hash(&mut h);
    r.fingerprint.hash(&mut h);
    r.message.hash(&mut h);
    h.finish()
}

/// One running program.
struct Run {
    child: Child,
    pid: Option<Pid>,
    deadline: Instant,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_done: mpsc::Receiver<()>,
}

impl Run {
    /// Starts the program for `subject` (arguments, environment) with `records` on stdin.
    fn start(spec: &Spec, subject: &Record, records: &[Record]) -> Result<Run, Ran> {
        let mut cmd = if spec.shell {
            let mut c = Command::new("/bin/sh");
            // `$0` is "watchbell"; the rendered arguments are `$1`, `$2`, ...: record text is
            // never part of the script.
            c.arg("-c").arg(&spec.program).arg("watchbell");
            c
        } else {
            Command::new(&spec.program)
        };
        for t in &spec.args {
            cmd.arg(safe_value(&t.format_to_string(subject, &spec.cx)));
        }
        if let Some(prefix) = &spec.env_prefix {
            for (k, v) in environment(prefix, subject, records.len(), &spec.cx) {
                cmd.env(k, v);
            }
        }
        let stdin = match spec.stdin {
            Stdin::Null => None,
            mode => Some(stdin_bytes(mode, spec, records)),
        };
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group: a timeout kills what the program started too.
            .process_group(0);
        if let Some(dir) = &spec.dir {
            cmd.current_dir(dir);
        }
        let child = cmd.spawn().map_err(|e| spawn_error(&spec.program, &e))?;
        let pid = Pid::from_raw(child.id() as i32);
        let deadline = watchbell_core::time::deadline(spec.timeout);
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, stderr_done) = mpsc::channel();
        let mut run = Run { child, pid, deadline, stderr: Arc::clone(&stderr), stderr_done };
        if let (Some(data), Some(mut pipe)) = (stdin, run.child.stdin.take()) {
            let spawned = std::thread::Builder::new().name("watchbell-command-stdin".into()).spawn(move || {
                mark_current_thread();
                // A program that does not read its input, or exits early, closes the pipe:
                // that is its business, not a failure.
                let _ = pipe.write_all(&data);
            });
            if let Err(e) = spawned {
                run.kill();
                return Err(Ran::Retry(format!("cannot start a thread for the program's input: {e}")));
            }
        }
        if let Some(mut pipe) = run.child.stderr.take() {
            let max = spec.max_stderr;
            let spawned = std::thread::Builder::new().name("watchbell-command-stderr".into()).spawn(move || {
                mark_current_thread();
                let mut buf = [0u8; 4096];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) => break,
                        Ok(k) => {
                            let mut kept = stderr.lock().unwrap_or_else(|e| e.into_inner());
                            let room = max.saturating_sub(kept.len());
                            kept.extend_from_slice(&buf[..k.min(room)]);
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                let _ = tx.send(());
            });
            if let Err(e) = spawned {
                run.kill();
                return Err(Ran::Retry(format!("cannot start a thread for the program's stderr: {e}")));
            }
        }
        Ok(run)
    }

    /// How the run ended, or `None` while it runs. At the deadline the process group is killed.
    fn poll(&mut self, spec: &Spec, counters: &RunCounters) -> Option<Ran> {
        // Seen exited but not reaped yet, so that the process group id cannot have been reused
        // when the leftovers of the group are killed.
        let exited = match self.pid {
            Some(pid) => match rustix::process::waitid(
                WaitId::Pid(pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
            ) {
                Ok(status) => status.is_some(),
                Err(_) => true,
            },
            None => true,
        };
        if exited {
            // What the program left running in its group ends with it.
            self.kill_group();
            let status = self.child.wait();
            let stderr = self.stderr_text(spec);
            return Some(match status {
                Ok(status) => classify(status, &spec.retry_codes, &stderr),
                Err(e) => Ran::Retry(format!("waiting for the program failed: {e}{stderr}")),
            });
        }
        if Instant::now() < self.deadline {
            return None;
        }
        self.kill();
        counters.killed.fetch_add(1, Relaxed);
        let stderr = self.stderr_text(spec);
        Some(Ran::Retry(format!("timed out after {:?}: its process group was killed{stderr}", spec.timeout)))
    }

    fn kill_group(&self) {
        if let Some(pid) = self.pid {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
    }

    /// Kills the whole group and reaps the program.
    fn kill(&mut self) {
        self.kill_group();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `: <stderr>` (bounded, one line), or nothing.
    fn stderr_text(&self, spec: &Spec) -> String {
        let _ = self.stderr_done.recv_timeout(STDERR_GRACE);
        let kept = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&kept);
        let line = watchbell_core::text::single_line(text.trim());
        if line.is_empty() {
            return String::new();
        }
        format!(": {}", truncate_bytes(&line, spec.max_stderr, MARKER))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // A run abandoned half way (a panic, a shutdown) leaves neither a process nor a zombie.
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

fn classify(status: ExitStatus, retry_codes: &[i32], stderr: &str) -> Ran {
    if status.success() {
        return Ran::Ok;
    }
    match (status.code(), status.signal()) {
        (Some(code), _) if retry_codes.contains(&code) => Ran::Retry(format!("the program exited with {code}{stderr}")),
        (Some(code), _) => Ran::Permanent(format!("the program exited with {code}{stderr}")),
        (None, Some(sig)) => Ran::Retry(format!("the program was killed by signal {sig}{stderr}")),
        (None, None) => Ran::Retry(format!("the program ended with {status}{stderr}")),
    }
}

fn spawn_error(program: &str, e: &std::io::Error) -> Ran {
    let reason = format!("cannot run {program:?}: {e}");
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::InvalidInput => Ran::Permanent(reason),
        _ => Ran::Retry(reason),
    }
}

/// An argument or environment value the kernel takes: NUL (which it cannot carry) becomes
/// `␀`, and the value is cut at 16 KiB with the marker `…[truncated]`.
///
/// ```
/// assert_eq!(watchbell_command::safe_value("a\0b"), "a\u{2400}b");
/// assert!(watchbell_command::safe_value(&"x".repeat(100_000)).len() <= 16 * 1024);
/// ```
pub fn safe_value(s: &str) -> String {
    if s.contains('\0') {
        truncate_bytes(&s.replace('\0', "\u{2400}"), MAX_VALUE_BYTES, MARKER).into_owned()
    } else {
        truncate_bytes(s, MAX_VALUE_BYTES, MARKER).into_owned()
    }
}

/// An environment variable name: `prefix`, then `name` with ASCII letters and digits
/// upper-cased and anything else `_`.
///
/// ```
/// assert_eq!(watchbell_command::env_name("WATCHBELL_FIELD_", "user.id"), "WATCHBELL_FIELD_USER_ID");
/// ```
pub fn env_name(prefix: &str, name: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + name.len());
    out.push_str(prefix);
    out.extend(name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }));
    out
}

/// The environment of a run: the record's level, target, message, location, time,
/// fingerprint, app, the number of records on stdin, and its fields (`<PREFIX>FIELD_<NAME>`).
/// Public for the fuzz targets and property tests.
#[doc(hidden)]
pub fn environment(prefix: &str, r: &Record, count: usize, cx: &FormatContext) -> Vec<(String, String)> {
    let mut env = vec![
        (env_name(prefix, "LEVEL"), r.level.as_str().to_owned()),
        (env_name(prefix, "TARGET"), safe_value(&r.target)),
        (env_name(prefix, "MESSAGE"), safe_value(&r.message)),
        (env_name(prefix, "TIME"), watchbell_core::time::rfc3339(r.time)),
        (env_name(prefix, "FINGERPRINT"), format!("{:016x}", r.fingerprint.0)),
        (env_name(prefix, "COUNT"), count.to_string()),
        (env_name(prefix, "SUPPRESSED"), r.suppressed.to_string()),
    ];
    if let Some(f) = &r.file {
        env.push((env_name(prefix, "FILE"), safe_value(f)));
    }
    if let Some(l) = r.line {
        env.push((env_name(prefix, "LINE"), l.to_string()));
    }
    if let Some(app) = &cx.app {
        env.push((env_name(prefix, "APP"), safe_value(app)));
    }
    let field_prefix = format!("{prefix}FIELD_");
    for (name, value) in r.fields.iter().take(MAX_ENV_FIELDS) {
        env.push((env_name(&field_prefix, name), safe_value(&value.to_string())));
    }
    env
}

/// What the program reads: each record formatted (a line each), or as JSON (one object per
/// line).
fn stdin_bytes(mode: Stdin, spec: &Spec, records: &[Record]) -> Vec<u8> {
    let mut out = String::new();
    for r in records {
        match mode {
            Stdin::Text => spec.format.format(r, &spec.cx, &mut out),
            Stdin::Json => {
                out.push_str(&serde_json::to_string(r).unwrap_or_else(|e| {
                    serde_json::json!({ "message": r.message, "error": e.to_string() }).to_string()
                }))
            }
            Stdin::Null => {}
        }
        out.push('\n');
    }
    out.into_bytes()
}
