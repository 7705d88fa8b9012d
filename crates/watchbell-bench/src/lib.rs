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
//! With up to three fields stored inside the record (384 bytes) instead of in an allocation of
//! their own: 556 bytes per record. Then 508: the literal message borrowed from its callsite
//! instead of copied (32 bytes), and the span list shared by the events of one span stack
//! instead of one per record (32 bytes, and 8 for the field's size). Then values beyond 64 bits
//! boxed: an inline `i128` made `Value` 16-byte aligned, so every field slot was 64 bytes where
//! 56 do, and the record 400 bytes where 368 do: 476 bytes per record in the last whole run.
//!
//! # Changes and what they did
//!
//! - The worker no longer gets woken by every record when it keeps up: after a delivery it
//!   looks at the queue again after 1 ms (or when a whole batch is queued) instead of asking
//!   to be woken by the next record. Aimed at the sinks whose worker keeps up (file, syslog,
//!   journald), where every record cost the caller a futex wake.
//! - Not tried yet: a lock-free queue. The two-thread case (c) was not yet split between
//!   queue contention and cross-thread frees. (Inline fields and the borrowed message are
//!   below; targets are already borrowed from the callsite.)
//!
//! # The caller's path: profile, changes, what did not help
//!
//! Measured outside criterion with a small driver running the `enabled` event (an `info!` with
//! 3 fields in 2 spans) after warm-up: instructions on the caller's thread with callgrind
//! (`--toggle-collect` on the measured loop; 20,000 events after 110,000, so that the stalled
//! queue sheds its oldest record per event), and per-thread CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`) next to wall clock, old and new binaries interleaved, medians
//! of 7 runs at a load average of 7 on 2 cores. Wall clock there is mostly time spent
//! descheduled: a sink whose worker formats and writes (file, syslog) takes CPU from the
//! caller, so its wall-clock ratio to (b) says more about the worker than about the caller.
//!
//! | per event | instructions before → after | caller CPU ns before → after |
//! |---|---:|---:|
//! | (b) stalled sink, shedding the oldest | 4,356 → 3,709 | 576 → 502 |
//! | delivery that keeps up (null sink) | 3,870 → 4,255 | 729 → 721 |
//! | FileLayer (`error!`) | 4,072 → 3,763 | 806 → 655 |
//! | SyslogLayer, UDP (`error!`) | 3,992 → 3,603 | 673 → 543 |
//! | OpenTelemetry appender (stalled exporter) | 3,194 | 371 / 356 |
//! | tracing-appender non_blocking + fmt | 9,943 | 1,129 / 1,111 |
//! | no layer | 136 | |
//!
//! Where (b)'s 4,356 instructions went: 6 allocations and the frees of the shed record
//! (~1,000, and the shed record is cold: 100,000 records old), recording the fields (~750:
//! the message through `fmt` ~300, the string field ~170), the span stack (~500: registry
//! lookups and `from_root`'s buffer), the queue's size accounting (~220), the fingerprint
//! cache's key (the salt hashed on every event, ~130). The OpenTelemetry appender builds less
//! (message, level, target and the event's fields; no span fields, no file/line, thread or
//! fingerprint) and, its channel full, drops the *new* record while it is still in cache,
//! where (b) frees the oldest.
//!
//! Changes: fields stored inline in the record (`record::INLINE_FIELDS`, 3: one allocation
//! less per event); the fingerprint cache keyed without hashing an empty salt; the span stack
//! walked leaf to root into a stack buffer; the enqueue sheds without allocating and counts
//! `accepted` under the lock it holds (no atomic sharing a cache line with the worker's
//! counters); the worker gathers a batch's records after releasing the lock (it used to move
//! and free up to 1,000 records while producers waited); delivered records are freed by the
//! logging threads, two per enqueue (see the `delivery` module docs: with glibc, a producer
//! whose records are all freed by the worker takes malloc's slow path for every allocation).
//!
//! One criterion run after the changes (`enabled`, `peers/otel_info`, two sinks; load average
//! 5 on 2 cores): (b) 773 ns, OpenTelemetry appender 577 ns (1.34×), tracing-appender
//! non_blocking + fmt 3,948 ns (0.20×), `enabled/watchbell_keeps_up` 1,869 ns, SyslogLayer
//! 1,159 ns (1.50× of (b)), FileLayer 2,059 ns (2.66× of (b): its worker's formatting and
//! writing share the two loaded cores with the caller; its caller's own CPU time is 1.3× of
//! (b)'s in the table above).
//!
//! Tried and dropped, or not enough:
//! - Taking the producers' share of delivered records as `[Option<Record>; 2]` on every
//!   enqueue: +400 instructions per event (two 400-byte moves even when there is nothing to
//!   free). Now out of line, only when records are waiting.
//! - Leaving one delivered batch aside (instead of up to four): the logging thread freed only
//!   a quarter of the records, the worker the rest.
//! - The `memory` figure counted frees made by other threads while it counted: run right
//!   after `enabled/watchbell_stalled_sink`, whose released worker was still freeing its
//!   100,000 records, it printed 383 bytes instead of 556. Only the logging thread's
//!   allocations count now.
//! - Under callgrind the keeps-up case costs *more* instructions after the change (the
//!   producer now frees records) while it costs less CPU natively: instruction counts do not
//!   see the allocator's lock contention. Judge allocator changes by CPU time.
//! - Then, the two largest parts of the list above: the message and the span stack. `tracing`
//!   hands the message over as `fmt::Arguments`, formatted into a new `String` for every
//!   event even when it is a literal. It is now formatted into a 128-byte stack buffer and, when
//!   it equals the first message of its callsite (kept for the life of the process: 128 bytes
//!   at most each, 256 KiB in all), borrowed from there (`Record::message` is a
//!   `Cow<'static, str>`). The span stack was looked up span by span in the registry and
//!   copied into a new list for every event; it is now one list per span stack
//!   (`Record::spans` is a shared `Spans`), kept in the innermost span's extensions per layer
//!   (so each layer's filters still decide which spans are in it), used as it is while no
//!   span's fields changed, checked against the spans when one did (`Span::record` anywhere),
//!   built again only when one of its own spans changed. Instructions per event of (b) on the
//!   caller's thread (callgrind, the driver above: 20,000 events after 110,000): **3,668 →
//!   3,039**, then 3,005 with the boxed 128-bit values; allocations per event 4 → 2 (the string
//!   field's value and the queue slot; test `an_event_with_three_fields_in_two_spans_costs_the_caller_two_allocations`).
//!   Below the OpenTelemetry appender's 3,194 in instructions; its wall clock stays lower
//!   because it drops the new record while (b) frees the oldest of 10,000, cold in cache.
//!   What is left, largest first: `tracing`'s field visiting (~600, the `Visit` calls per
//!   field), the registry's current-span and slab lookups (~450), the queue's accounting
//!   (`Record::size_hint` ~250: it walks the spans' fields for the queue's byte bound),
//!   moving the ~370-byte record into its queue slot (~270 of `memcpy`), the frees of the shed
//!   record (~400).
//!   In the whole run after these changes: (b) 598 ns against the OpenTelemetry appender's
//!   519 (1.15×; 1.91× before); three short rounds later on the quiet machine, (b) 425–479 ns
//!   against 320–359 (1.18× to 1.50×): the ratio moves with the appender's own spread.
//! - The sinks still over 1.0× of (b) are those whose delivery keeps up. Three short rounds on
//!   the quiet machine: `enabled/watchbell_keeps_up` (a sink that returns at once) 1,037 and
//!   1,057 ns against (b)'s 442 and 449; `sinks/file_layer` 864–996, `sinks/ticketing_sqlite`
//!   607–765. The file layer costs its caller *less* than a sink that does nothing, so what is
//!   left is not the sinks' work but the delivery's handoff when its worker keeps up: each
//!   record is written on the logging thread's core, read on the worker's and freed back on
//!   the logging thread (its cache lines cross twice), and both threads take the queue's lock.
//!   What it would take: per-producer rings of preallocated record slots handed to the worker
//!   without the shared lock and reused in place (no allocation and no free per record), so
//!   that a record crosses cores once. Not started: it is the delivery's core, and every sink
//!   and every test of the overflow policies goes through it.
//! - Not done: a single record's queue slot (the `Vec` of `Batch::single`, ~400 bytes) is
//!   still freed by the worker when it gathers a batch, so a producer whose worker keeps up
//!   still allocates it on malloc's slow path (~300 instructions per event in `_int_malloc`);
//!   handing those buffers back to the producers would remove it. Keeping the record inline in
//!   the queue instead was rejected on memory: ~430-byte slots in a `VecDeque` that doubles
//!   make ~720 bytes per queued record. On the worker, redaction (~800 instructions per
//!   record) and the file format (~1,100) are what compete with the caller for the CPU.
//!
//! # The worker's CPU per record
//!
//! What the delivery worker spends on each record competes with the logging thread for the
//! two cores. `benches/worker.rs` measures its parts on the `sinks` group's `error!` record
//! (captured by a real layer): `worker/redact_record`, `worker/file_format` (`DefaultFormat`),
//! `worker/file_write` (`RollingFile::write_record`), `worker/journald_encode`. Instructions per
//! record with callgrind (`--toggle-collect` on the function), and the worker thread of a
//! whole `sinks/file_layer` run (`--separate-threads`), before → after:
//!
//! | per record | instructions before → after | ns before → after |
//! |---|---:|---:|
//! | redaction (`redact_record`, nothing to redact) | 3,250 → 1,106 | 388 → 119 |
//! | `DefaultFormat` | 4,869 → 2,354 | 603 → 298 |
//! | journald entry (new `Vec` each → the sink's buffer) | 15,990 → ~4,500 | 2,810 → 668 |
//! | `RollingFile::write_record` (unchanged) | 247 → 247 | 229 → 259 |
//! | file layer's worker thread, all of it | 14,127 → 4,799 | |
//! | of which `FileSink::deliver` | 9,909 → 2,992 | |
//!
//! (ns: medians of 3 runs, old and new binaries alternated, load average 5 to 6 on 2 cores.)
//! What cost, and what was done:
//! - Redaction: 6 field names per record (3 of the event, 3 of its spans) normalised and
//!   matched against 14 patterns, ~400 instructions each. `is_sensitive` now remembers its
//!   answers in a per-thread cache of 64 entries keyed by the redactor's id (a new id for each
//!   pattern list; clones share it) and the name's text, checked in full (never by address
//!   alone, so an owned name, or another name at a freed name's address, cannot take a wrong
//!   answer): ~77 instructions a hit. A first version copied the whole entry out of its `Cell`
//!   and compared with `memcmp`: 96–104 a hit. `redact_text` checks for `:`/`=` eight bytes at
//!   a time, inlined into its callers (the scanner is out of line). What is left: the calls
//!   per field (~120 each with its cache hit and text check). The spans: a batch's records
//!   that share one span stack (the events of one span) have it redacted once for their run
//!   (`redact_batch` remembers the last stack and what became of it), where every record had
//!   its spans' fields checked.
//! - `DefaultFormat`: the time went through `fmt` (seven padded integers, and the calendar
//!   computed for every record); it is now `time::push_rfc3339`: each second's text computed
//!   once per thread, the microseconds written by hand (~235 a record in all); integers and
//!   booleans written without `fmt`; the quoting test of a text value byte by byte for ASCII.
//!   What is left: a float value through `fmt` (`12.5`: ~750 of the 2,354; a writer identical
//!   to `Display`'s shortest round trip was not attempted), pushing the pieces.
//! - The file sink: its line check walked the formatted text char by char for control
//!   characters (~4,800 a record with the format's ~200 chars, more than the format itself); it
//!   is now a byte test eight bytes at a time, and a line that needs nothing (no control
//!   character, no `0xC2`) is written from the format's buffer without a copy (~390 left for
//!   the check, the newline and the write). One `write` per batch already (64 KiB buffer,
//!   flushed at the end of each batch): no change there. Not changed: two clock reads per
//!   record in `write_record` (the rotation's clock and the reopen check's `Instant`), both
//!   needed for rotation and reopen as documented.
//! - journald: the entry was built from ~25 small `String`s (`format!` per name, `to_string`
//!   per value and number, the time's text) and a new `Vec`; it is now written straight into
//!   one buffer the sink keeps (`encode_entry_into`), byte for byte the same (checked against
//!   the old encoder by a property test). What is left: the float through `fmt`, and one
//!   `send` per record (a datagram per entry is journald's protocol).
//!
//! The callers (`pipeline -- 'sinks/(file|journald)|enabled/watchbell_stalled'`, 9 rounds, old
//! and new binaries alternated, load average 1 to 6; medians): (b)
//! `enabled/watchbell_stalled_sink` 666 → 643 ns; `sinks/journald` 1,319 → 590 ns, its ratio
//! to (b) in the same round 2.02× → 1.12×; `sinks/file_layer` 1,564 → 1,354 ns, 2.51× →
//! 2.21× (rounds spread from 1.6× to 3.3×). The file layer stays far from 1.0× with a worker
//! at a third of its instructions: what is left is on the caller's side of a delivery that
//! keeps up (see the caller's path above: the logging thread frees delivered records, and its
//! own CPU per event was already above (b)'s), which the worker's CPU no longer explains.
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
//!   `fsync=off`, `synchronous_commit=off`, `full_page_writes=on`, `shared_buffers` 128 MB,
//!   autovacuum on.
//! - PostgreSQL tickets, measured per statement (pgbench, a batch of 10 tickets × 50
//!   occurrences of 400 bytes, retention 100): the retention delete was the cost — 10 to 290 ms
//!   a batch, growing with the dead rows earlier deletes left (its backward scan had no limit
//!   and read every dead index entry of the ticket; on fresh statistics the planner also chose
//!   a sequential scan for its `id IN (…)`). It is now a range delete per ticket between a floor
//!   the writer remembers and the newest row past the retention: 2 ms. The foreign key
//!   occurrences → tickets doubled the insert (9 ms against 4.5 ms for 500 rows): dropped by
//!   migration 3, the ticket delete locks the ticket row first instead. Together, 20,000
//!   occurrences 8 times, old and new binaries alternated in one run (load average 7 on 2
//!   cores): **25,000–27,000/s (falling from 44,000 to 12,000 as dead rows piled up) →
//!   70,000–76,000/s (steady)**. Did not help: `COPY … FROM STDIN` instead of the insert over
//!   arrays (2.1–3.7 s against 1.8–2.2 s for 300 × 500 rows: text parsing costs more than the
//!   executor saves). Not tried: one statement for the whole batch (the round trips are now
//!   4 of about 7 ms), `synchronous_commit` per session (the test cluster has it off already,
//!   so the figure above is not helped by it; a user-facing option was not added).
//! - SQLite tickets: occurrences inserted 32 rows per statement; no clean measurement yet
//!   (81,000/s before it, loaded). Then, timed inside the writer over 160,000 occurrences
//!   (3 runs each, load average 7.5): the commit is half of the write (350–750 ms of
//!   900–1,200 ms) — the WAL checkpoints, whose fsyncs `synchronous = NORMAL` keeps; inserts
//!   128 rows per statement with the app id bound once (the rest in one more statement):
//!   insert phase 290 → 210 ms; running each ticket's retention before the inserts (freed pages
//!   refilled in the same transaction) instead of after: commits 630 → 450 ms; in all, no
//!   difference in the end-to-end figure that the machine's noise would let us see (medians of
//!   10 rounds, old and new alternated 3 times: 90,000–114,000/s against 89,000–122,000/s). `wal_autocheckpoint = 10000` halved the commit time (1,400 → 670 ms
//!   over 320,000) but the WAL is fsynced only at a checkpoint under `synchronous = NORMAL`, so
//!   it widens what a power loss can take back: not adopted. `synchronous = OFF`: commit
//!   360 ms (not durable: not adopted). `cache_size` 32 MB, `page_size` 16 KB: no change
//!   seen. Not reached then: 200,000/s; what was left was the commit (WAL and checkpoints) and
//!   the serialization of each record to JSON before the write (about 1.6 µs per occurrence on
//!   the delivery thread, not overlapped with the database thread).
//!   Then, in three steps, each an old binary kept and alternated with the new ones (criterion
//!   medians of 10 samples of 20,000 occurrences, load average 2 to 4.5 on 2 cores):
//!   (1) occurrences written by `watchbell_core::json` (the hand-written writer moved from
//!   watchbell-http, byte-identical to `serde_json::to_string(&record)`: stored documents are
//!   unchanged) into one buffer per batch, with each occurrence's `time` column text taken from
//!   that buffer instead of one `String` per occurrence and per time, and each ticket's sample
//!   (message, target, location, module) taken once from its newest record instead of copied at
//!   every newer record: **124,000 → 166,000/s** (medians of 6 rounds). (2) The statements
//!   prepared once per connection (rusqlite's statement cache, the `cache` feature) instead of
//!   once per batch: `perf` showed SQLite's parser (the 128-row insert and the remainder's
//!   statement, parsed again for every batch) at 7% of the database thread's samples, 0.5%
//!   after; with (1), **152,000 → 224,000/s** (medians of 7 rounds: 122,000–192,000 against
//!   154,000–243,000). (3) The `time` column's text cut from the document's own `"time"` instead
//!   of formatted a second time: no difference the noise lets us see (204,000/s in the same 4
//!   rounds as 194,000/s for (2)). All three against the old binary over 7 rounds, 3 of them at
//!   load average 6 to 7: 122,000/s → 174,000/s (medians; the new one faster in every round,
//!   by 1.24 to 1.64 times, 1.48 the median). 200,000/s is passed when the machine is not
//!   loaded by other builds (225,000–249,000/s at load average 2 to 3), not under load.
//!   Where the time goes now (`perf`, samples per thread): the
//!   database thread 1,527 (SQLite's VDBE and b-tree work, the WAL's `pwrite`s and checksums,
//!   the checkpoints' `fsync`s), the delivery thread 219 (the JSON about a quarter of it, the
//!   rest freeing the batch, redaction, grouping), the producer 231. Not done: overlapping the
//!   delivery thread with the database thread (at most the delivery thread's 12%; the sink's
//!   `deliver` answers for a batch only once it is committed, so only a batch's own JSON could
//!   overlap its upserts); moving the serialization onto the database thread (it would need the
//!   records themselves there: a copy of each costs more than its JSON).
//! - Relay ingest (`relay/ingest_ndjson`, NDJSON over loopback HTTP into a file sink):
//!   instructions counted with callgrind (`relay/parse_ndjson` for the parser alone, and a
//!   whole `ingest_ndjson` run of 10,000 records, start-up included). The parser went from
//!   19,200 to 12,500 instructions per record, the whole process from 35,300 to 27,100.
//!   Records/s, old and new binaries alternated twice on the loaded machine (medians):
//!   258,000 and 189,000 before, 329,000 and 369,000 after. In two steps: (1) borrowed strings
//!   while a line is read (serde's `Cow` does not borrow inside an `Option`: a wrapper that
//!   does), the record built once (no throwaway `Record::new`, no fingerprint computed when
//!   the line has one), names (target, file, module, field names) kept once per process in a
//!   1 MiB budget, the thread name shared while it repeats, the level's usual spelling matched
//!   without a lowercase copy: 19,200 → 16,900, less than hoped (allocations were not the
//!   main cost); (2) the body checked for UTF-8 once and each line read from `&str` (serde_json
//!   otherwise validates every string it reads: `from_utf8` was 12% of the parser), lines found
//!   with memchr, the records' `Vec` sized from the newline count (it was regrown as it
//!   filled): 16,900 → 12,500. What is left is serde_json's own scanning
//!   (`skip_to_escape`, `parse_str`, the derived field matching: about half). Not tried:
//!   parsing one body on both runtime threads (a single keep-alive publisher sends bodies one
//!   after the other; the dispatcher and the file sink's worker already keep the second core
//!   busy), handing the dispatcher's records to the sinks as batches (a batch larger than a
//!   sink's `batch_records` would reach the sink whole).
