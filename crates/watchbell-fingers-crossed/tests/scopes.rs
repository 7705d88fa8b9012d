//! Scopes: per span (root or named), per thread, global; isolation across threads and tokio
//! tasks; buffers freed when spans close.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use tracing::instrument::{Instrument, WithSubscriber};
use tracing::Dispatch;
use tracing_subscriber::prelude::*;
use watchbell_core::{BatchReason, Record};
use watchbell_fingers_crossed::{Fallback, FingersCrossedBuilder, FingersCrossedLayer, Monitor, Scope};
use watchbell_test::TestLayer;

fn dispatch(builder: FingersCrossedBuilder) -> (Dispatch, Monitor, watchbell_core::Guard) {
    let (layer, guard) = builder.build().expect("valid configuration");
    let monitor = layer.inner().monitor();
    (Dispatch::new(tracing_subscriber::registry().with(layer)), monitor, guard)
}

fn span_id(r: &Record, name: &str) -> Option<u64> {
    r.spans.iter().find(|s| s.name == name).and_then(|s| s.fields.get("id")).and_then(|v| v.as_u64())
}

#[test]
fn two_request_spans_on_two_threads_are_isolated() {
    let inner = TestLayer::new();
    let (d, monitor, _guard) = dispatch(FingersCrossedLayer::builder(inner.handler()));
    // Both requests are open at the same time; the barrier interleaves their records.
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2u64)
        .map(|id| {
            let (d, barrier) = (d.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&d, || {
                    let _request = tracing::info_span!("request", id).entered();
                    tracing::debug!("start");
                    barrier.wait();
                    tracing::debug!("middle");
                    barrier.wait();
                    if id == 1 {
                        tracing::error!("failed");
                    }
                    barrier.wait();
                })
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let batches = inner.batches();
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(b.records.iter().map(|r| &*r.message).collect::<Vec<_>>(), ["start", "middle", "failed"]);
    assert!(b.records.iter().all(|r| span_id(r, "request") == Some(1)), "only request 1's records");
    let s = monitor.stats();
    assert_eq!(s.discarded, 2, "request 0's two records were dropped at its close");
    assert_eq!((s.open_scopes, s.buffered_records, s.buffered_bytes), (0, 0, 0));
}

#[test]
fn hundred_concurrent_requests_on_eight_tokio_threads_deliver_only_the_failing_one() {
    let inner = TestLayer::new();
    let (d, monitor, _guard) = dispatch(FingersCrossedLayer::builder(inner.handler()).scope(Scope::span("request")));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(8).enable_time().build().unwrap();
    let threads_seen = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    rt.block_on(async {
        let mut tasks = Vec::new();
        for id in 0..100u64 {
            let span = tracing::dispatcher::with_default(&d, || tracing::info_span!("request", id));
            let seen = Arc::clone(&threads_seen);
            let task = async move {
                for step in 0..5u64 {
                    seen.lock().unwrap().insert((id, std::thread::current().id()));
                    tracing::debug!(step, "step");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    tokio::task::yield_now().await;
                }
                if id == 42 {
                    tracing::error!("request 42 failed");
                }
            };
            tasks.push(tokio::spawn(task.instrument(span).with_subscriber(d.clone())));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    drop(rt);
    let batches = inner.batches();
    assert_eq!(batches.len(), 1, "{batches:?}");
    let records = &batches[0].records;
    assert_eq!(records.len(), 6);
    assert!(records.iter().all(|r| span_id(r, "request") == Some(42)), "none of the other requests' records");
    let steps: Vec<u64> = records[..5].iter().map(|r| r.fields.get("step").and_then(|v| v.as_u64()).unwrap()).collect();
    assert_eq!(steps, [0, 1, 2, 3, 4]);
    assert_eq!(records[5].message, "request 42 failed");
    assert_eq!(inner.len(), 6);
    let s = monitor.stats();
    assert_eq!(s.discarded, 99 * 5);
    assert_eq!((s.open_scopes, s.buffered_bytes), (0, 0));
    // Tasks did move between threads (several threads per task on an 8-thread runtime).
    let seen = threads_seen.lock().unwrap();
    let threads: std::collections::HashSet<_> = seen.iter().map(|(_, t)| *t).collect();
    assert!(threads.len() > 1, "the runtime used more than one thread");
}

#[test]
fn named_span_scope_separates_requests_under_one_root() {
    let inner = TestLayer::new();
    let (d, _m, _guard) = dispatch(FingersCrossedLayer::builder(inner.handler()).scope(Scope::span("request")));
    tracing::dispatcher::with_default(&d, || {
        let _server = tracing::info_span!("server").entered();
        for id in 0..3u64 {
            let _request = tracing::info_span!("request", id).entered();
            tracing::debug!("parse");
            let _db = tracing::info_span!("db").entered();
            tracing::debug!("query");
            if id == 2 {
                tracing::error!("deadlock");
            }
        }
    });
    let batches = inner.batches();
    assert_eq!(batches.len(), 1);
    let msgs: Vec<_> = batches[0].records.iter().map(|r| &*r.message).collect();
    assert_eq!(msgs, ["parse", "query", "deadlock"]);
    assert!(batches[0].records.iter().all(|r| span_id(r, "request") == Some(2)));
}

#[test]
fn root_span_scope_shares_one_buffer_per_root() {
    let inner = TestLayer::new();
    let (d, _m, _guard) = dispatch(FingersCrossedLayer::builder(inner.handler()));
    tracing::dispatcher::with_default(&d, || {
        let _job = tracing::info_span!("job").entered();
        for id in 0..3u64 {
            let _request = tracing::info_span!("request", id).entered();
            tracing::debug!(id, "item");
        }
        tracing::error!("job failed");
    });
    let msgs: Vec<_> = inner.batches()[0].records.iter().map(|r| r.message.clone()).collect();
    assert_eq!(msgs, ["item", "item", "item", "job failed"]);
}

#[test]
fn records_outside_spans_fall_back_to_the_thread_or_global_scope() {
    // Thread fallback: another thread's error does not release this thread's records.
    let inner = TestLayer::new();
    let (d, _m, _guard) = dispatch(FingersCrossedLayer::builder(inner.handler()));
    tracing::dispatcher::with_default(&d, || tracing::debug!("main thread"));
    let d2 = d.clone();
    std::thread::spawn(move || {
        tracing::dispatcher::with_default(&d2, || {
            tracing::debug!("worker");
            tracing::error!("worker failed");
        })
    })
    .join()
    .unwrap();
    let msgs: Vec<_> = inner.records().into_iter().map(|r| r.message).collect();
    assert_eq!(msgs, ["worker", "worker failed"]);

    // Global fallback: it does.
    let inner = TestLayer::new();
    let (d, _m, _guard) = dispatch(FingersCrossedLayer::builder(inner.handler()).outside_spans(Fallback::Global));
    tracing::dispatcher::with_default(&d, || tracing::debug!("main thread"));
    let d2 = d.clone();
    std::thread::spawn(move || tracing::dispatcher::with_default(&d2, || tracing::error!("worker failed")))
        .join()
        .unwrap();
    let msgs: Vec<_> = inner.records().into_iter().map(|r| r.message).collect();
    assert_eq!(msgs, ["main thread", "worker failed"]);
}

#[test]
fn thread_scope_is_per_thread_and_closed_when_the_thread_exits() {
    let inner = TestLayer::new();
    let (d, monitor, _guard) = dispatch(FingersCrossedLayer::builder(inner.handler()).scope(Scope::Thread));
    let run = |fail: bool| {
        let d = d.clone();
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&d, || {
                let _s = tracing::info_span!("request").entered();
                tracing::debug!(fail, "work");
                if fail {
                    tracing::error!("failed");
                }
            })
        })
    };
    let (a, b) = (run(false), run(true));
    a.join().unwrap();
    b.join().unwrap();
    let records = inner.records();
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.field("fail").and_then(|v| v.as_bool()) != Some(false)));
    let s = monitor.stats();
    assert_eq!(s.discarded, 1, "the quiet thread's record, discarded at its exit");
    assert_eq!((s.open_scopes, s.buffered_bytes), (0, 0), "both threads' buffers freed");
}

#[test]
fn buffers_are_freed_when_spans_close() {
    let inner = TestLayer::new();
    let (d, monitor, _guard) = dispatch(FingersCrossedLayer::builder(inner.handler()).scope(Scope::span("request")));
    tracing::dispatcher::with_default(&d, || {
        for round in 0..20 {
            // 50 requests open at once, each buffering 10 records, then all closed.
            let spans: Vec<_> = (0..50u64).map(|id| tracing::info_span!("request", id, round)).collect();
            for span in &spans {
                span.in_scope(|| (0..10).for_each(|i| tracing::debug!(i, "buffered")));
            }
            let s = monitor.stats();
            assert_eq!((s.open_scopes, s.buffered_records), (50, 500));
            assert!(s.buffered_bytes > 0);
            drop(spans);
            let s = monitor.stats();
            assert_eq!((s.open_scopes, s.buffered_records, s.buffered_bytes), (0, 0, 0), "round {round}");
        }
    });
    let s = monitor.stats();
    assert_eq!(s.discarded, 20 * 50 * 10);
    assert!(inner.is_empty());
}

#[test]
fn group_mode_delivers_one_batch_when_the_job_closes() {
    let inner = TestLayer::new();
    let (d, monitor, guard) = dispatch(FingersCrossedLayer::builder(inner.handler()).scope(Scope::span("job")).group());
    tracing::dispatcher::with_default(&d, || {
        let job = tracing::info_span!("job", name = "nightly");
        job.in_scope(|| {
            tracing::warn!("3 rows skipped");
            tracing::info!("imported 997 rows");
            tracing::error!("index rebuild failed");
        });
        assert!(inner.is_empty(), "nothing before the job ends, not even the error");
        drop(job);
        assert_eq!(inner.batches().len(), 1, "one batch at close");
        // A job without records delivers nothing.
        drop(tracing::info_span!("job", name = "empty"));
    });
    let batches = inner.batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].reason, BatchReason::Group);
    let msgs: Vec<_> = batches[0].records.iter().map(|r| &*r.message).collect();
    assert_eq!(msgs, ["3 rows skipped", "imported 997 rows", "index rebuild failed"]);
    assert_eq!(batches[0].significant().unwrap().message, "3 rows skipped", "the first record is significant");
    let s = monitor.stats();
    assert_eq!((s.groups, s.grouped, s.triggers, s.discarded), (1, 3, 0, 0));
    assert_eq!(guard.stats()[0].delivered, 3);
}

#[test]
fn group_mode_global_scope_is_delivered_at_shutdown() {
    let inner = TestLayer::new();
    let (d, _m, guard) = dispatch(FingersCrossedLayer::builder(inner.handler()).scope(Scope::Global).group());
    tracing::dispatcher::with_default(&d, || {
        tracing::info!("a");
        tracing::info!("b");
    });
    assert!(guard.flush(Duration::from_secs(5)).is_complete());
    assert!(inner.is_empty(), "a flush does not cut a group");
    assert!(guard.shutdown(Duration::from_secs(5)).is_complete());
    let batches = inner.batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].reason, BatchReason::Group);
    assert_eq!(batches[0].records.len(), 2);
}

#[test]
fn a_request_spread_over_threads_shares_one_buffer() {
    let inner = TestLayer::new();
    let (d, _m, _guard) = dispatch(FingersCrossedLayer::builder(inner.handler()).scope(Scope::span("request")));
    tracing::dispatcher::with_default(&d, || {
        let request = tracing::info_span!("request", id = 9u64);
        request.in_scope(|| tracing::debug!("on the main thread"));
        let (d2, parent) = (d.clone(), request.clone());
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&d2, || {
                let _work = tracing::info_span!(parent: &parent, "work").entered();
                tracing::debug!("on a helper thread");
                tracing::error!("helper failed");
            })
        })
        .join()
        .unwrap();
    });
    let batches = inner.batches();
    assert_eq!(batches.len(), 1);
    let msgs: Vec<_> = batches[0].records.iter().map(|r| &*r.message).collect();
    assert_eq!(msgs, ["on the main thread", "on a helper thread", "helper failed"]);
}

#[test]
fn nested_spans_of_the_scope_name_are_scopes_of_their_own() {
    let inner = TestLayer::new();
    let (d, _m, _guard) = dispatch(FingersCrossedLayer::builder(inner.handler()).scope(Scope::span("request")));
    tracing::dispatcher::with_default(&d, || {
        let _outer = tracing::info_span!("request", id = 1u64).entered();
        tracing::debug!("outer");
        {
            let _inner = tracing::info_span!("request", id = 2u64).entered();
            tracing::debug!("inner");
            tracing::error!("inner failed");
        }
    });
    let msgs: Vec<_> = inner.batches()[0].records.iter().map(|r| r.message.clone()).collect();
    assert_eq!(msgs, ["inner", "inner failed"], "the nearest span named request is the scope");
}

#[test]
fn group_mode_per_thread_is_delivered_when_the_thread_exits_and_keeps_its_first_record() {
    let inner = TestLayer::new();
    let (d, monitor, _guard) =
        dispatch(FingersCrossedLayer::builder(inner.handler()).scope(Scope::Thread).group().buffer_size(3));
    std::thread::spawn(move || {
        tracing::dispatcher::with_default(&d, || {
            tracing::warn!("job started");
            (0..5u64).for_each(|i| tracing::info!(i, "step"));
        })
    })
    .join()
    .unwrap();
    let batches = inner.batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].reason, BatchReason::Group);
    let texts: Vec<String> = batches[0]
        .records
        .iter()
        .map(|r| format!("{}{}", r.message, r.fields.get("i").map(|v| v.to_string()).unwrap_or_default()))
        .collect();
    assert_eq!(texts, ["job started", "step3", "step4"], "the significant first record is never evicted");
    assert_eq!(monitor.stats().rotated, 3);
}
