//! Panics as records: what watchbell's panic hook (`watchbell::capture_panics`) calls.
//!
//! [`record_panic`] turns a panic into an ERROR event with target `panic`, dispatched on the
//! panicking thread to the current subscriber, so that every layer sees it with its own
//! filters: watchbell's layers make a [`Record`](crate::Record) of it whose
//!
//! - `message` is the panic's message (`"index out of bounds: …"`, or `Box<dyn Any>` when the
//!   payload is not text),
//! - `file` and `line` are the panic's location (so the fingerprint, and rate limiting and
//!   tickets, tell one panic site from another),
//! - fields are `panic.location` (`file:line:column`), `thread` (the thread's name, or
//!   `<unnamed>`) and `backtrace` when `RUST_BACKTRACE` (or `RUST_LIB_BACKTRACE`) enables
//!   backtraces,
//! - `spans` are the span stack of the panicking thread,
//! - `origin` is `Log` (the event is dispatched through the `log` normalization that carries
//!   the location).
//!
//! Nothing is recorded on watchbell's own threads (a panic there is a sink's, caught and
//! counted by its delivery).

use std::panic::PanicHookInfo;

use crate::capture::{is_suppressed, with_log_context, LogContext};
use crate::record::{Fields, Value};

/// The target of panic records.
pub const TARGET: &str = "panic";

/// The text of a panic's payload.
pub fn message(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

/// Dispatches the panic described by `info` as an ERROR event (see the module docs). Call it
/// from a panic hook; it does nothing on watchbell's own threads.
pub fn record_panic(info: &PanicHookInfo<'_>) {
    if is_suppressed() {
        return;
    }
    let message = message(info);
    let mut fields = Fields::new();
    let (file, line) = match info.location() {
        Some(l) => {
            fields.set("panic.location", Value::Str(format!("{}:{}:{}", l.file(), l.line(), l.column())));
            (Some(l.file()), Some(l.line()))
        }
        None => (None, None),
    };
    let thread = std::thread::current();
    fields.set("thread", Value::Str(thread.name().unwrap_or("<unnamed>").to_owned()));
    let backtrace = std::backtrace::Backtrace::capture();
    if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
        fields.set("backtrace", Value::Str(backtrace.to_string()));
    }
    let cx = LogContext { message: message.clone(), fields };
    with_log_context(cx, || {
        let args = format_args!("{message}");
        let record = log::Record::builder()
            .level(log::Level::Error)
            .target(TARGET)
            .module_path(None)
            .file(file)
            .line(line)
            .args(args)
            .build();
        let _ = tracing_log::format_trace(&record);
    });
}
