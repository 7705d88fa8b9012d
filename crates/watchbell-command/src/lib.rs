//! # watchbell-command
//!
//! Runs a program for every record (or every batch) that reaches the layer: Logbook's
//! `ExternalApplicationHandler`, made safe for production. The program gets the record as
//! arguments (templates), as environment variables and on its standard input, runs on
//! watchbell's delivery thread — never on the thread that logs — and is killed with everything
//! it started when it overstays its timeout.
//!
//! ```no_run
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//! use watchbell_command::{CommandLayer, Stdin};
//! use watchbell_core::SinkOptions;
//!
//! let (layer, guard) = CommandLayer::builder("/usr/local/bin/page-oncall")
//!     .arg("--severity")
//!     .arg("{level}")
//!     .arg("{message}")
//!     .stdin(Stdin::Json)
//!     .timeout(Duration::from_secs(20))
//!     .retry_exit_codes([75, 1])
//!     .build()
//!     .expect("a valid configuration");
//! tracing_subscriber::registry().with(layer).init();
//!
//! tracing::error!(invoice = 42, "payment failed");
//! // runs: page-oncall --severity ERROR "payment failed"
//! //   with WATCHBELL_LEVEL=ERROR, WATCHBELL_MESSAGE=payment failed, WATCHBELL_FIELD_INVOICE=42, ...
//! //   and the record as one JSON line on stdin
//! guard.shutdown(Duration::from_secs(30));
//! ```
//!
//! ## What the program gets
//!
//! - **Arguments**: each [`arg`](CommandBuilder::arg) is a [`Template`] (`{level}`, `{message}`,
//!   `{target}`, `{field.NAME}`, `{location}`, ... — see watchbell-core's `format` module),
//!   rendered per record. The program is started directly, **never through a shell**, so a
//!   message such as `$(rm -rf ~); "` is one argument, inert. With
//!   [`shell`](CommandLayer::shell) the program text is a `/bin/sh -c` script and the
//!   rendered arguments are its positional parameters `$1`, `$2`, ...: record text is still
//!   never part of the script.
//! - **Environment** (unless [`no_env`](CommandBuilder::no_env)): `WATCHBELL_LEVEL`,
//!   `WATCHBELL_TARGET`, `WATCHBELL_MESSAGE`, `WATCHBELL_TIME` (RFC 3339), `WATCHBELL_FILE`,
//!   `WATCHBELL_LINE`, `WATCHBELL_FINGERPRINT`, `WATCHBELL_APP`, `WATCHBELL_COUNT` (records on
//!   stdin), `WATCHBELL_SUPPRESSED`, and each field as `WATCHBELL_FIELD_<NAME>` (upper-cased,
//!   other characters `_`; at most 64 fields). The prefix is configurable
//!   ([`env_prefix`](CommandBuilder::env_prefix)); the process's own environment is inherited.
//! - **Standard input** ([`stdin`](CommandBuilder::stdin)): the record formatted with the
//!   [format](CommandBuilder::format) (a line each, the default), one JSON object per line
//!   ([`Stdin::Json`], the record's serde shape), or nothing ([`Stdin::Null`]). A program that
//!   does not read its input is fine.
//! - Arguments and environment values are cut at 16 KiB with the marker `…[truncated]` (the
//!   kernel refuses longer ones); a NUL, which they cannot carry, becomes `␀`. Standard input
//!   carries the whole text.
//!
//! ## How a run ends
//!
//! | end | outcome |
//! |---|---|
//! | exit 0 | delivered |
//! | an exit code of [`retry_exit_codes`](CommandBuilder::retry_exit_codes) (default `75`, `EX_TEMPFAIL`) | retried with backoff |
//! | the [timeout](watchbell_core::SinkOptions::timeout) (default 30 s) | its process group is killed (`SIGKILL`), then retried |
//! | killed by a signal | retried |
//! | any other exit code, or the program cannot be run (not found, not executable) | failed for good, counted, not retried |
//!
//! The first 4 KiB of the program's stderr ([`max_stderr`](CommandBuilder::max_stderr)) are
//! kept, on one line, in the error (stats `last_error`, the once-per-kind stderr line). Each run
//! is its own process group, reaped when it ends: no zombie is left, and what the program left
//! running in its group (background jobs) is killed when it exits, so a hook cannot pile up
//! processes under load.
//!
//! ## Records and batches
//!
//! By default each record is one run, up to [`concurrency`](CommandBuilder::concurrency) (4) at
//! once. When one record's run fails retryably, the records after it that did run are not run
//! again on the retry; a record whose run fails for good is counted in the
//! `command:<program>/runs` stats entry and the batch goes on. With
//! [`per_batch`](CommandBuilder::per_batch) a batch (records queued together, or a
//! fingers-crossed escalation) is one run: the arguments and environment come from its
//! significant record (the trigger), stdin has them all.
//!
//! ## Defaults
//!
//! | setting | default |
//! |---|---|
//! | level | `ERROR` ([`level`](CommandBuilder::level)) |
//! | rate limit | 1 per 60 s per callsite (a program per alert; [`SinkOptions::no_rate_limit`] for every record) |
//! | timeout | 30 s, then the process group is killed |
//! | concurrency | 4 runs at once |
//! | retried exit codes | `75` |
//! | stdin | the formatted record |
//! | queue | 10,000 records, drop newest when full (counted) |
#![deny(missing_docs)]

mod sink;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing_core::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use watchbell_core::format::{DefaultFormat, Format, FormatContext, Template};
use watchbell_core::handler::{Flushed, Handler, Stats};
use watchbell_core::options::Options;
use watchbell_core::{Batch, BuildError, Guard, Level, Record, SinkLayer, SinkOptions};

#[doc(hidden)]
pub use sink::environment;
pub use sink::{env_name, safe_value};
use sink::{CommandSink, RunCounters, Spec};

const CRATE: &str = "watchbell-command";

/// What the program reads on its standard input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stdin {
    /// Each record formatted with the layer's [format](CommandBuilder::format), a line each.
    #[default]
    Text,
    /// Each record as one JSON object per line (the record's serde shape: `time`, `level`,
    /// `target`, `message`, `fields`, `spans`, ...).
    Json,
    /// Nothing (`/dev/null`).
    Null,
}

/// The namespace of [`CommandLayer::builder`] and [`CommandLayer::shell`].
#[derive(Debug)]
pub struct CommandLayer(());

impl CommandLayer {
    /// A layer that runs `program` (a path, or a name looked up in `PATH`) directly, without a
    /// shell. See the [crate docs](crate) for the defaults.
    pub fn builder(program: impl Into<String>) -> CommandBuilder {
        CommandBuilder::new(program.into(), false)
    }

    /// A layer that runs `script` with `/bin/sh -c`; the rendered [`arg`](CommandBuilder::arg)s
    /// are the script's `$1`, `$2`, ... (quote them: `"$1"`). Record text never becomes part of
    /// the script.
    ///
    /// ```
    /// use watchbell_command::CommandLayer;
    /// let builder = CommandLayer::shell(r#"logger -t app -- "$1: $2""#).arg("{level}").arg("{message}");
    /// assert!(format!("{builder:?}").contains("shell: true"));
    /// ```
    pub fn shell(script: impl Into<String>) -> CommandBuilder {
        CommandBuilder::new(script.into(), true)
    }
}

/// Builds a program layer; see the [crate docs](crate).
pub struct CommandBuilder {
    options: Options,
    program: String,
    shell: bool,
    args: Vec<String>,
    stdin: Stdin,
    per_batch: bool,
    env_prefix: Option<String>,
    concurrency: usize,
    retry_codes: Vec<i32>,
    max_stderr: usize,
    format: Arc<dyn Format>,
    app: Option<String>,
    dir: Option<PathBuf>,
    level: Level,
}

impl fmt::Debug for CommandBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandBuilder")
            .field("program", &self.program)
            .field("shell", &self.shell)
            .field("args", &self.args)
            .field("stdin", &self.stdin)
            .field("per_batch", &self.per_batch)
            .field("env_prefix", &self.env_prefix)
            .field("concurrency", &self.concurrency)
            .field("retry_codes", &self.retry_codes)
            .field("level", &self.level)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SinkOptions for CommandBuilder {
    fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }
}

impl CommandBuilder {
    fn new(program: String, shell: bool) -> Self {
        CommandBuilder {
            options: Options::new().timeout(Duration::from_secs(30)).rate_limit(1, Duration::from_secs(60)),
            program,
            shell,
            args: Vec::new(),
            stdin: Stdin::Text,
            per_batch: false,
            env_prefix: Some("WATCHBELL_".to_owned()),
            concurrency: 4,
            retry_codes: vec![75],
            max_stderr: 4096,
            format: Arc::new(DefaultFormat),
            app: None,
            dir: None,
            level: Level::ERROR,
        }
    }

    /// Adds an argument: a [`Template`] rendered per record (`"{message}"`, `"--level={level}"`,
    /// a literal `"-v"`). A template error is a build error.
    pub fn arg(mut self, template: impl Into<String>) -> Self {
        self.args.push(template.into());
        self
    }

    /// Adds several arguments (see [`arg`](Self::arg)).
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, templates: I) -> Self {
        self.args.extend(templates.into_iter().map(Into::into));
        self
    }

    /// What the program reads on stdin (default [`Stdin::Text`]).
    pub fn stdin(mut self, stdin: Stdin) -> Self {
        self.stdin = stdin;
        self
    }

    /// One run per batch instead of per record (see the [crate docs](crate#records-and-batches)).
    pub fn per_batch(mut self, on: bool) -> Self {
        self.per_batch = on;
        self
    }

    /// The prefix of the environment variables (default `WATCHBELL_`).
    pub fn env_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.env_prefix = Some(prefix.into());
        self
    }

    /// No record environment variables (the process's own environment is still inherited).
    pub fn no_env(mut self) -> Self {
        self.env_prefix = None;
        self
    }

    /// The most runs at once in per-record mode (at least 1; default 4).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The exit codes that mean "try again later" (default `[75]`, `EX_TEMPFAIL`). Other
    /// non-zero codes are permanent failures.
    pub fn retry_exit_codes(mut self, codes: impl IntoIterator<Item = i32>) -> Self {
        self.retry_codes = codes.into_iter().collect();
        self
    }

    /// The most bytes of the program's stderr kept for the error (default 4,096).
    pub fn max_stderr(mut self, bytes: usize) -> Self {
        self.max_stderr = bytes;
        self
    }

    /// The format of the records on stdin in [`Stdin::Text`] mode (default: watchbell's
    /// one-line [`DefaultFormat`]).
    pub fn format(mut self, format: impl Format) -> Self {
        self.format = Arc::new(format);
        self
    }

    /// The application's name (`{app}`, `WATCHBELL_APP`).
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }

    /// The working directory of the program (default: the process's).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The least level that runs the program (default `ERROR`).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    fn err(key: &str, msg: impl fmt::Display) -> BuildError {
        BuildError::new(CRATE, key, msg)
    }

    fn spec(&self) -> Result<Spec, BuildError> {
        if self.program.trim().is_empty() {
            return Err(Self::err("program", "the program is empty"));
        }
        if self.program.contains('\0') {
            return Err(Self::err("program", "the program contains a NUL character"));
        }
        let mut args = Vec::with_capacity(self.args.len());
        for (i, a) in self.args.iter().enumerate() {
            if a.contains('\0') {
                return Err(Self::err(&format!("args[{i}]"), "the argument contains a NUL character"));
            }
            args.push(Template::parse(a).map_err(|e| Self::err(&format!("args[{i}]"), e))?);
        }
        if let Some(p) = &self.env_prefix {
            if p.contains(['=', '\0']) {
                return Err(Self::err("env_prefix", "an environment name cannot contain `=` or NUL"));
            }
        }
        if self.dir.as_ref().is_some_and(|d| d.as_os_str().as_encoded_bytes().contains(&0)) {
            return Err(Self::err("current_dir", "the directory contains a NUL character"));
        }
        let mut cx = FormatContext::default();
        if let Some(app) = &self.app {
            cx = FormatContext::new(app.clone());
        }
        Ok(Spec {
            program: self.program.clone(),
            args,
            shell: self.shell,
            stdin: self.stdin,
            per_batch: self.per_batch,
            env_prefix: self.env_prefix.clone(),
            timeout: self.options.timeout,
            concurrency: self.concurrency,
            retry_codes: self.retry_codes.clone(),
            max_stderr: self.max_stderr,
            format: Arc::clone(&self.format),
            cx,
            dir: self.dir.clone(),
        })
    }

    /// The delivery's name: `command:<program's file name>`.
    fn name(&self) -> String {
        let base = if self.shell {
            "sh".to_owned()
        } else {
            std::path::Path::new(&self.program)
                .file_name()
                .map_or_else(|| self.program.clone(), |n| n.to_string_lossy().into_owned())
        };
        format!("command:{base}")
    }

    /// Starts the delivery and returns the root handler (behind the rate limit, if any) and its
    /// guard: for feeding records from other handlers (a fingers-crossed buffer, a fan-out).
    pub fn build_handler(self) -> Result<(Arc<dyn Handler>, Guard), BuildError> {
        let root = self.root()?;
        let guard = Guard::new(Arc::clone(&root));
        Ok((root, guard))
    }

    /// Builds the layer and its guard. Keep the guard until the end of `main`.
    pub fn build<S>(self) -> Result<(SinkLayer<S>, Guard), BuildError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let level = self.level;
        Ok(watchbell_core::options::layer(self.root()?, level))
    }

    fn root(&self) -> Result<Arc<dyn Handler>, BuildError> {
        let spec = Arc::new(self.spec()?);
        let counters = Arc::new(RunCounters::default());
        let name = self.name();
        let delivery = self
            .options
            .delivery(name.clone(), CommandSink::new(spec, Arc::clone(&counters)))
            .spawn()
            .map_err(|e| Self::err("delivery", format!("cannot start the delivery thread: {e}")))?;
        let handler = CommandHandler { inner: Arc::new(delivery), counters, name };
        Ok(self.options.limited("command", handler))
    }
}

/// The delivery, plus the runs' own counters in [`stats`](Handler::stats).
struct CommandHandler {
    inner: Arc<dyn Handler>,
    counters: Arc<RunCounters>,
    name: String,
}

impl Handler for CommandHandler {
    fn handle(&self, record: Record) {
        self.inner.handle(record);
    }

    fn handle_batch(&self, batch: Batch) {
        self.inner.handle_batch(batch);
    }

    fn flush(&self, deadline: Instant) -> Flushed {
        self.inner.flush(deadline)
    }

    fn shutdown(&self, deadline: Instant) -> Flushed {
        self.inner.shutdown(deadline)
    }

    fn stats(&self, out: &mut Vec<Stats>) {
        self.inner.stats(out);
        let c = &self.counters;
        out.push(Stats {
            name: format!("{}/runs", self.name),
            accepted: c.runs.load(Relaxed),
            failed: c.failed.load(Relaxed),
            retried: c.killed.load(Relaxed),
            last_error: c.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            ..Stats::default()
        });
    }
}
