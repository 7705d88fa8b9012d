//! The benchmarks are in `benches/pipeline.rs`: `cargo bench -p watchbell-bench`, or
//! `cargo xtask bench` for one table of the medians, the ratios that have targets and the bytes
//! held per queued record.
//!
//! # The peers
//!
//! The same events (`info!` with 3 fields in 2 spans, and its `error!` variant) go, in the same
//! criterion run, into the crates a user would compare watchbell with, each against a loopback
//! peer that never answers: `opentelemetry-appender-tracing` 0.33 (the SDK's batch log
//! processor, OTLP/HTTP protobuf exporter on reqwest's blocking client), `tracing-loki` 0.2,
//! `sentry-tracing` 0.49 (loopback DSN, reqwest transport), `tracing-layer-slack` 0.9 and
//! `tracing-appender` 0.2. They are plain dev-dependencies of this crate: one tokio, TLS
//! through rustls (no OpenSSL). They add about 97 s of compiler time (check mode, as
//! `cargo clippy --all-targets` builds them) to a clean CI run on 2 cores, under the 3 minutes
//! that would have put them behind a feature.
//!
//! What each one captures for the event, on the caller's thread:
//! - watchbell: an owned record with time, level, target, module, file, line, message, typed
//!   fields, the span stack with each span's fields (shared, not copied), thread, pid and the
//!   callsite fingerprint; queued for its worker (bounded, shedding the oldest when full).
//! - OpenTelemetry: a `LogRecord` with message, level, target and the event's fields, not the
//!   spans' fields; sent to a channel of 2,048 that drops when full.
//! - tracing-loki: the event's and the spans' fields as JSON; a channel of 512 dropping when full.
//! - sentry-tracing: `info!` becomes a breadcrumb (the last 100 kept), `error!` an event for
//!   the transport's thread (30 queued at most).
//! - tracing-layer-slack: a rendered Slack message on an unbounded channel (memory grows for as
//!   long as its peer stalls, so it is measured for a shorter time).
//!
//! # Memory
//!
//! `memory` counts, with this binary's global allocator, the bytes held while 10,000 records
//! of the `info!` event sit in a stalled queue: 572 bytes per record (record 200-odd bytes in
//! its batch, its fields at 64 bytes each, message, string field, span list, queue slot).
//! Fields are allocated with exactly the room the event needs (4 slots of 64 bytes became 3).
//!
//! # Changes and what they did
//!
//! - The worker no longer gets woken by every record when it keeps up: after a delivery it
//!   looks at the queue again after 1 ms (or when a whole batch is queued) instead of asking
//!   to be woken by the next record. Aimed at the sinks whose worker keeps up (file, syslog,
//!   journald), where every record cost the caller a futex wake.
//! - Not tried yet, by lack of time: interning targets, inline storage for fields, a reused
//!   message buffer, a lock-free queue. The two-thread case (c) was not yet split between
//!   queue contention and cross-thread frees.
//!
//! # Throughput: what was tried
//!
//! Medians of one criterion run each, the machine loaded by other builds (compare within a
//! line, not across lines):
//! - HTTP gzip NDJSON (`http_throughput`): a hand-written JSON writer for the record shape
//!   (byte-identical to serde_json's, checked by `hand_written_json_matches_serde_json`; one
//!   writer per batch, each second's time text formatted once) together with flate2 on `zlib-rs`
//!   instead of miniz_oxide, at level 1: 274,000 → 513,000 records/s. The two were not measured
//!   apart; level 6 and streaming compression were not tried.
//! - PostgreSQL tickets (`tickets_throughput`): one transaction of at most five round trips with
//!   four statements prepared once per connection (one locked read of prior state, one upsert
//!   of every ticket from arrays, one insert of every occurrence, one retention delete), instead
//!   of about 25 round trips: 10,600–14,300/s against 9,400/s for the old code in the same
//!   conditions. **Round trips are not the bottleneck**: the bench process is idle, the server
//!   busy. The retention delete now reads each ticket's occurrences newest first (300 buffers
//!   instead of 1,832 on a ticket with 26,000 dead rows). Suspects not yet measured: the
//!   foreign-key check per occurrence, 500 inserts and 500 retention deletes per batch at a
//!   retention of 100, autovacuum. The cluster of `.ci/postgres.sh`: PostgreSQL 15,
//!   `fsync=off`, `synchronous_commit=off`, `shared_buffers` 128 MB.
//! - SQLite tickets: occurrences inserted 32 rows per statement; no clean measurement yet
//!   (81,000/s before it, loaded).
