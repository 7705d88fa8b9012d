//! # watchbell-zmq
//!
//! ZeroMQ for `tracing`, wire-compatible with Logbook's queues (`logbook.queues`):
//!
//! - [`ZmqLayer`] publishes each record as one JSON message — Logbook's record dict — on a PUB
//!   socket (`ZeroMQHandler`) or a PUSH socket (`ZeroMQHandler(multi=True)`), from watchbell's
//!   background thread through a [`Delivery`](watchbell_core::Delivery): bounded queue, counted
//!   drops, retries; the caller only captures and enqueues.
//! - [`ZmqSubscriber`] receives such messages on SUB or PULL sockets (`ZeroMQSubscriber`), from
//!   several endpoints at once (`SubscriberGroup`), and dispatches each record into a local
//!   [`Handler`](watchbell_core::Handler): any watchbell sink's `build_handler()`, a
//!   [`FanOut`](watchbell_core::FanOut), a rate limit.
//!
//! So a Python service logging through Logbook's `ZeroMQHandler` feeds a Rust process's
//! watchbell sinks, and a Rust service's `ZmqLayer` feeds a Python `ZeroMQSubscriber`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tracing_subscriber::prelude::*;
//! use watchbell_zmq::{ZmqLayer, ZmqSubscriber};
//!
//! // Publisher: PUB bound on 5555, as Logbook's ZeroMQHandler("tcp://127.0.0.1:5555").
//! let (layer, guard) = ZmqLayer::builder("tcp://127.0.0.1:5555").build().unwrap();
//! tracing_subscriber::registry().with(layer).init();
//! tracing::error!(user = "bob", "payment failed");
//!
//! // Subscriber, in another process: SUB connected to it, records into any handler.
//! let (handler, _guard) = watchbell_core::Delivery::builder("print", |b: &watchbell_core::Batch| {
//!     b.records.iter().for_each(|r| println!("{} {}", r.target, r.message));
//!     watchbell_core::Outcome::Delivered
//! })
//! .spawn()
//! .map(|d| { let h: Arc<dyn watchbell_core::Handler> = Arc::new(d); (h.clone(), watchbell_core::Guard::new(h)) })
//! .unwrap();
//! let sub = ZmqSubscriber::builder().connect("tcp://127.0.0.1:5555").spawn(handler).unwrap();
//! println!("{:?}", sub.stats());
//! # drop(guard);
//! ```
//!
//! ## Sockets
//!
//! | | default | Logbook |
//! |---|---|---|
//! | `ZmqLayer` PUB | binds the endpoint (in `build`, so a used address is a build error) | `ZeroMQHandler(uri)` binds a PUB |
//! | `ZmqLayer` PUSH | connects (from the background thread, retried) | `ZeroMQHandler(uri, multi=True)` connects a PUSH |
//! | `ZmqSubscriber::connect` | SUB connected, subscribed to everything | `ZeroMQSubscriber(uri)` |
//! | `ZmqSubscriber::bind(..).pull()` | PULL bound | `ZeroMQSubscriber(uri, multi=True)` |
//!
//! `.bind()`/`.connect()` on the layer override the direction. ZeroMQ semantics hold: a PUB
//! drops what no subscriber is connected to hear (the records count as accepted and delivered:
//! they were published); a PUSH without a peer keeps the records in the bounded queue and
//! retries, and the queue's overflow drops are counted in the guard's stats. The caller never
//! waits.
//!
//! The caller's cost is that of every watchbell layer: capture and enqueue, nothing more
//! (Logbook's JSON is encoded on the background thread). A bound PUB with no subscriber
//! connected goes one step further: the record is dropped on the caller's thread right after
//! capture, so it never takes the queue's lock, never wakes the background thread and is not
//! freed on another thread (whose allocator and cache traffic the caller would pay for). Such
//! records never fill the queue either, so a PUB nobody listens to drops nothing it counts as
//! lost.
//!
//! ## The wire shape: Logbook's record dict
//!
//! One message per record, one frame, UTF-8 JSON of `LogRecord.to_dict(json_safe=True)` (Logbook
//! 1.x). Received messages with several frames (a topic frame first) use the last frame.
//!
//! | Logbook key | watchbell [`Record`](watchbell_core::Record) | notes |
//! |---|---|---|
//! | `level` | `level` | Logbook → tracing: CRITICAL (15), ERROR (14) → ERROR; WARNING (13) → WARN; NOTICE (12), INFO (11) → INFO; DEBUG (10) → DEBUG; TRACE (9) and NOTSET → TRACE. tracing → Logbook: ERROR 14, WARN 13, INFO 11, DEBUG 10, TRACE 9. CRITICAL and NOTICE are kept in the field `logbook_level` and sent back out as they came |
//! | `channel` | `target` | a record without one gets target `logbook` |
//! | `message` (else `msg` formatted with `args`/`kwargs`) | `message` | Logbook sends both the template (`msg`, `args`, `kwargs`) and the formatted `message`; watchbell reads `message`, and formats `msg` itself (`{}`, `{0}`, `{name}`, `{{`/`}}`) only when `message` is absent. watchbell sends the formatted text as `msg` and `message` with empty `args`/`kwargs`, so a Python formatter shows it as it is, braces included |
//! | `time` | `time` | ISO 8601 UTC with `Z`. Logbook writes the microseconds as an unpadded integer (`.62970Z` is 62,970 µs); watchbell reads a fraction of fewer than 6 digits that way ([`logbook::parse_logbook_time`]) and always sends 6 digits, which Logbook reads exactly |
//! | `filename`, `lineno`, `module` | `file`, `line`, `module` | |
//! | `func_name` | field `func_name` | |
//! | `thread`, `thread_name` | `thread_id`, `thread_name` | `greenlet` is sent as the thread id |
//! | `process`, `process_name` | `pid`, field `process_name` | |
//! | `extra` | `fields` | numbers, strings, booleans as they are; lists and dicts as their JSON text; `null` left out. Sent: the event's fields, then the span fields (innermost first) under names the event does not use |
//! | `formatted_exception` | field `error` | the traceback text; `exception_name`, `exception_message` are fields of the same names. Sent: the record's `error` (the error and its source chain) or `backtrace` field |
//! | `spans`, `span_keys`, `fingerprint`, `suppressed` | `spans`, `fingerprint`, `suppressed` | watchbell's own keys (Logbook keeps unknown keys as attributes): a record crossing from watchbell to watchbell keeps its span stack, callsite fingerprint (so rate limits see one callsite across a fleet) and suppressed count. A Logbook record gets the fingerprint of its level, channel, file and line |
//! | `frame_correction`, `heavy_initialized`, `keep_open`, `late`, `information_pulled`, `args`, `kwargs` | — | sent with Logbook's values for a closed record; ignored when read |
//!
//! Messages that are not a Logbook record (not UTF-8 JSON, not an object, no numeric `level`,
//! larger than the limit, nested deeper than 64) are counted as `malformed` by the subscriber,
//! which goes on; so does a peer that speaks garbage instead of ZMTP.
//!
//! The ZeroMQ implementation is the pure-Rust `zeromq` crate (ZMTP 3, NULL security) on
//! watchbell's own tokio runtime, one worker thread per layer or subscriber, marked so that its
//! internal `log` events are never captured by watchbell layers.
#![deny(missing_docs)]

mod guard;
pub mod layer;
pub mod logbook;
pub mod subscriber;

pub use layer::{SocketKind, ZmqBuilder, ZmqLayer};
pub use logbook::{logbook_json, record_from_logbook_json, MalformedRecord};
pub use subscriber::{SubscriberBuilder, SubscriberHandle, SubscriberStats, ZmqSubscriber};
