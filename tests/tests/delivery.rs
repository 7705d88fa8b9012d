//! Delivery against a real HTTP peer on loopback: outage and recovery, 429 with Retry-After,
//! permanent 4xx, overflow, panics, shutdown with a stalled peer, tokio runtimes.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::Level;
use watchbell_core::{
    Batch, BatchReason, Delivery, DeliveryHandle, Guard, Handler, Origin, Outcome, Overflow, Record, Retry,
};
use watchbell_test::collector::{received_records, NdjsonSink};
use watchbell_test::http::{FakeHttp, Reply};

fn rec(msg: &str) -> Record {
    Record::new(Level::ERROR, "app", msg)
}

fn fast_retry() -> Retry {
    Retry { initial: Duration::from_millis(20), max: Duration::from_millis(200), ..Retry::default() }
}

fn messages(v: &[serde_json::Value]) -> Vec<String> {
    v.iter().map(|r| r["message"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn outage_then_recovery_loses_nothing_within_capacity() {
    let fake = FakeHttp::start();
    fake.push_n(6, Reply::status(503));
    let d = Delivery::builder("collector", NdjsonSink::new(fake.url_for("/ingest")))
        .queue_records(1000)
        .batch_records(50)
        .retry(fast_retry())
        .spawn()
        .unwrap();
    for i in 0..200 {
        d.handle(rec(&format!("m{i}")));
    }
    assert!(d.flush(Instant::now() + Duration::from_secs(30)).is_complete());
    let reqs = fake.requests();
    // The 503 answers were retried: the delivered batches are the requests after the outage.
    let delivered = received_records(&reqs[6..]);
    let want: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    assert_eq!(messages(&delivered), want, "all 200, in order, once");
    let s = d.snapshot();
    assert_eq!((s.accepted, s.delivered, s.dropped, s.failed), (200, 200, 0, 0));
    assert!(s.retried >= 6);
    assert!(s.last_error.unwrap().contains("503"));
}

#[test]
fn retry_after_is_honoured() {
    let fake = FakeHttp::start();
    fake.push(Reply::status(429).retry_after(2));
    let d = Delivery::builder("collector", NdjsonSink::new(fake.url())).retry(fast_retry()).spawn().unwrap();
    d.handle(rec("rate limited"));
    assert!(d.flush(Instant::now() + Duration::from_secs(20)).is_complete());
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].received_at.duration_since(reqs[0].received_at);
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?}, before the 2 s the server asked for");
    assert_eq!(d.snapshot().delivered, 1);
}

#[test]
fn permanent_failure_is_not_retried_and_is_counted_and_announced() {
    let fake = FakeHttp::start();
    fake.push(Reply::json(404, r#"{"ok":false,"error":"channel_not_found"}"#));
    let d = Delivery::builder("collector", NdjsonSink::new(fake.url())).retry(fast_retry()).spawn().unwrap();
    d.handle(rec("lost to a 404"));
    assert!(d.flush(Instant::now() + Duration::from_secs(10)).is_complete());
    assert_eq!(fake.request_count(), 1, "a 404 is not retried");
    let s = d.snapshot();
    assert_eq!((s.failed, s.delivered, s.retried), (1, 0, 0));
    assert!(s.last_error.as_deref().unwrap().contains("channel_not_found"));

    // The sink keeps going, and the next success is followed by a notice of the failure.
    d.handle(rec("next one"));
    assert!(d.flush(Instant::now() + Duration::from_secs(10)).is_complete());
    let got = received_records(&fake.requests()[1..]);
    assert_eq!(got[0]["message"], "next one");
    assert_eq!(got[1]["origin"], "watchbell");
    assert_eq!(got[1]["fields"]["failed"], 1);
    assert!(got[1]["message"].as_str().unwrap().contains("1 records could not be delivered"));
    assert_eq!(d.snapshot().notices, 1);
}

/// A sink that blocks until released, to hold the worker while the queue fills.
type Seen = Arc<Mutex<Vec<Batch>>>;

fn gated() -> (impl FnMut(&Batch) -> Outcome + Send, mpsc::Sender<()>, mpsc::Receiver<()>, Seen) {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let mut first = true;
    let sink = move |b: &Batch| {
        if std::mem::take(&mut first) {
            entered_tx.send(()).unwrap();
            release_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        }
        seen2.lock().unwrap().push(b.clone());
        Outcome::Delivered
    };
    (sink, release_tx, entered_rx, seen)
}

#[test]
fn overflow_drop_newest_is_counted_and_reported() {
    let (sink, release, entered, seen) = gated();
    let d = Delivery::builder("gated", sink).queue_records(10).spawn().unwrap();
    d.handle(rec("in flight"));
    entered.recv_timeout(Duration::from_secs(5)).unwrap();
    for i in 0..15 {
        d.handle(rec(&format!("q{i}")));
    }
    let s = d.snapshot();
    assert_eq!((s.accepted, s.dropped, s.queued), (11, 5, 10));
    release.send(()).unwrap();
    assert!(d.flush(Instant::now() + Duration::from_secs(10)).is_complete());
    let batches = seen.lock().unwrap().clone();
    let all: Vec<&Record> = batches.iter().flat_map(|b| &b.records).collect();
    let (notices, records): (Vec<&Record>, Vec<&Record>) = all.iter().partition(|r| r.origin == Origin::Watchbell);
    let msgs: Vec<&str> = records.iter().map(|r| &*r.message).collect();
    assert_eq!(msgs, ["in flight", "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9"]);
    // The notice follows the first success after the drops.
    assert_eq!(notices.len(), 1);
    assert_eq!(all[1].origin, Origin::Watchbell);
    assert!(notices[0].message.contains("5 records dropped"), "{}", notices[0].message);
    assert_eq!(notices[0].fields.get("dropped"), Some(&watchbell_core::Value::U64(5)));
    assert_eq!(d.snapshot().notices, 1);
}

#[test]
fn overflow_drop_oldest_keeps_the_newest() {
    let (sink, release, entered, seen) = gated();
    let d = Delivery::builder("gated", sink)
        .queue_records(3)
        .overflow(Overflow::DropOldest)
        .notices(false)
        .spawn()
        .unwrap();
    d.handle(rec("in flight"));
    entered.recv_timeout(Duration::from_secs(5)).unwrap();
    for i in 0..6 {
        d.handle(rec(&format!("q{i}")));
    }
    release.send(()).unwrap();
    assert!(d.flush(Instant::now() + Duration::from_secs(10)).is_complete());
    let msgs: Vec<String> =
        seen.lock().unwrap().iter().flat_map(|b| b.records.iter().map(|r| r.message.to_string())).collect();
    assert_eq!(msgs, ["in flight", "q3", "q4", "q5"]);
    assert_eq!(d.snapshot().dropped, 3);
}

#[test]
fn overflow_block_waits_for_room() {
    let (sink, release, entered, seen) = gated();
    let d = Delivery::builder("gated", sink)
        .queue_records(2)
        .overflow(Overflow::Block(Duration::from_secs(10)))
        .spawn()
        .unwrap();
    d.handle(rec("in flight"));
    entered.recv_timeout(Duration::from_secs(5)).unwrap();
    d.handle(rec("a"));
    d.handle(rec("b"));
    let d2 = d.clone();
    let producer = std::thread::spawn(move || d2.handle(rec("c")));
    std::thread::sleep(Duration::from_millis(100));
    assert!(!producer.is_finished(), "the producer waits for room");
    release.send(()).unwrap();
    producer.join().unwrap();
    assert!(d.flush(Instant::now() + Duration::from_secs(10)).is_complete());
    let n: usize = seen.lock().unwrap().iter().map(|b| b.len()).sum();
    assert_eq!(n, 4);
    assert_eq!(d.snapshot().dropped, 0);
}

#[test]
fn byte_bound_sheds_what_does_not_fit() {
    let (sink, release, entered, _seen) = gated();
    let d = Delivery::builder("gated", sink).queue_bytes(64 * 1024).spawn().unwrap();
    d.handle(rec("in flight"));
    entered.recv_timeout(Duration::from_secs(5)).unwrap();
    let big = "x".repeat(10_000);
    for _ in 0..20 {
        d.handle(rec(&big));
    }
    let s = d.snapshot();
    assert!(s.queued_bytes <= 64 * 1024, "{s:?}");
    assert!(s.dropped >= 14, "{s:?}");
    assert_eq!(s.accepted + s.dropped, 21);
    release.send(()).unwrap();
}

#[test]
fn a_panicking_sink_does_not_take_the_worker_down() {
    let mut calls = 0;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let d = Delivery::builder("flaky", move |b: &Batch| {
        calls += 1;
        if calls == 1 {
            panic!("format exploded");
        }
        seen2.lock().unwrap().extend(b.records.iter().map(|r| r.message.clone()));
        Outcome::Delivered
    })
    .spawn()
    .unwrap();
    d.handle(rec("boom"));
    assert!(d.flush(Instant::now() + Duration::from_secs(5)).is_complete());
    d.handle(rec("after"));
    assert!(d.flush(Instant::now() + Duration::from_secs(5)).is_complete());
    let s = d.snapshot();
    assert_eq!((s.panicked, s.failed, s.delivered), (1, 1, 1));
    assert!(s.last_error.unwrap().contains("format exploded"));
    let msgs = seen.lock().unwrap().clone();
    assert_eq!(msgs[0], "after");
    assert!(msgs[1].contains("1 records could not be delivered"));
}

#[test]
fn retry_budget_gives_up_and_counts() {
    let fake = FakeHttp::start();
    fake.set_default(Reply::status(500));
    let d = Delivery::builder("collector", NdjsonSink::new(fake.url()))
        .retry(Retry { max_attempts: 3, ..fast_retry() })
        .spawn()
        .unwrap();
    d.handle(rec("never"));
    assert!(d.flush(Instant::now() + Duration::from_secs(10)).is_complete());
    assert_eq!(fake.request_count(), 3);
    let s = d.snapshot();
    assert_eq!((s.failed, s.retried), (1, 2));
}

#[test]
fn shutdown_flushes_pending_records() {
    let fake = FakeHttp::start();
    let d = Delivery::builder("collector", NdjsonSink::new(fake.url())).batch_records(7).spawn().unwrap();
    let guard = Guard::new(Arc::new(d.clone()));
    for i in 0..100 {
        d.handle(rec(&format!("m{i}")));
    }
    let flushed = guard.shutdown(Duration::from_secs(20));
    assert!(flushed.is_complete(), "{flushed:?}");
    assert_eq!(received_records(&fake.requests()).len(), 100);
    assert!(fake.requests().iter().all(|r| received_records(std::slice::from_ref(r)).len() <= 7));
    // After shutdown, records are counted as dropped, not queued.
    d.handle(rec("late"));
    assert_eq!(d.snapshot().dropped, 1);
}

#[test]
fn shutdown_returns_on_time_with_a_stalled_peer() {
    let fake = FakeHttp::start();
    fake.set_default(Reply::stall());
    let d =
        Delivery::builder("collector", NdjsonSink::with_timeout(fake.url(), Duration::from_secs(120))).spawn().unwrap();
    let guard = Guard::new(Arc::new(d.clone()));
    for i in 0..10 {
        d.handle(rec(&format!("m{i}")));
    }
    fake.wait_for_requests(1, Duration::from_secs(5));
    let start = Instant::now();
    let flushed = guard.shutdown(Duration::from_millis(500));
    let took = start.elapsed();
    assert!(flushed.timed_out);
    assert_eq!(flushed.pending, 10);
    // Returns at its deadline, not after the peer's 120 s (a generous bound for a busy machine).
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
}

#[test]
fn batches_of_other_reasons_stay_whole() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let d = Delivery::builder("batches", move |b: &Batch| {
        seen2.lock().unwrap().push((b.reason, b.len()));
        Outcome::Delivered
    })
    .batch_records(2)
    .spawn()
    .unwrap();
    d.handle_batch(Batch::new(BatchReason::Escalation, (0..5).map(|i| rec(&i.to_string())).collect()));
    assert!(d.flush(Instant::now() + Duration::from_secs(5)).is_complete());
    assert_eq!(*seen.lock().unwrap(), [(BatchReason::Escalation, 5)]);
}

#[test]
fn pace_coalesces_bursts() {
    let times = Arc::new(Mutex::new(Vec::new()));
    let t2 = Arc::clone(&times);
    let d = Delivery::builder("paced", move |b: &Batch| {
        t2.lock().unwrap().push((Instant::now(), b.len()));
        Outcome::Delivered
    })
    .pace(Duration::from_millis(300))
    .spawn()
    .unwrap();
    d.handle(rec("first"));
    std::thread::sleep(Duration::from_millis(50));
    for i in 0..20 {
        d.handle(rec(&format!("burst {i}")));
    }
    assert!(d.flush(Instant::now() + Duration::from_secs(5)).is_complete());
    let t = times.lock().unwrap().clone();
    assert_eq!(t.iter().map(|x| x.1).collect::<Vec<_>>(), [1, 20], "the burst went as one batch");
    assert!(t[1].0.duration_since(t[0].0) >= Duration::from_millis(300));
}

#[test]
fn retries_keep_the_pace() {
    let fake = FakeHttp::start();
    fake.push(Reply::status(503));
    let d = Delivery::builder("collector", NdjsonSink::new(fake.url()))
        .pace(Duration::from_millis(500))
        .retry(fast_retry())
        .spawn()
        .unwrap();
    d.handle(rec("paced retry"));
    assert!(d.flush(Instant::now() + Duration::from_secs(10)).is_complete());
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].received_at.duration_since(reqs[0].received_at);
    assert!(gap >= Duration::from_millis(500), "a 20 ms backoff must still wait for the 500 ms pace: {gap:?}");
}

#[test]
fn one_client_serves_several_workers() {
    // Clones of one HttpClient in two deliveries: each worker thread keeps its own connection
    // pool (a pooled connection belongs to the runtime that opened it), so one worker ending does
    // not leave the other holding connections of a dropped runtime.
    let fake = FakeHttp::start();
    let client = watchbell_core::http::HttpClient::builder().build().unwrap();
    let url = fake.url();
    let make = |name: &str| {
        let client = client.clone();
        let url = url.clone();
        Delivery::builder(name, move |b: &Batch| {
            let req = client.request(watchbell_core::http::Method::POST, &url).body(b.records[0].message.to_string());
            match client.send(req, &url) {
                Ok(r) => r.outcome("fake"),
                Err(e) => e.outcome(),
            }
        })
        .retry(Retry::none())
        .spawn()
        .unwrap()
    };
    let a = make("a");
    let b = make("b");
    a.handle(rec("a1"));
    b.handle(rec("b1"));
    assert!(a.flush(Instant::now() + Duration::from_secs(10)).is_complete());
    assert!(b.flush(Instant::now() + Duration::from_secs(10)).is_complete());
    let _ = a.shutdown(Instant::now() + Duration::from_secs(5));
    drop(a);
    for i in 0..5 {
        b.handle(rec(&format!("b after a is gone {i}")));
        assert!(b.flush(Instant::now() + Duration::from_secs(10)).is_complete());
    }
    let s = b.snapshot();
    assert_eq!((s.delivered, s.failed), (6, 0), "{s:?}");
}

#[test]
fn works_inside_a_multi_thread_tokio_runtime() {
    let fake = FakeHttp::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let url = fake.url();
    let d = rt.block_on(async move {
        let d = Delivery::builder("collector", NdjsonSink::new(url)).spawn().unwrap();
        d.handle(rec("from a task"));
        tokio::task::spawn_blocking({
            let d = d.clone();
            move || assert!(d.flush(Instant::now() + Duration::from_secs(10)).is_complete())
        })
        .await
        .unwrap();
        d
    });
    assert_eq!(received_records(&fake.requests()).len(), 1);
    // The app shuts its runtime down; watchbell's delivery goes on.
    drop(rt);
    d.handle(rec("after the app's runtime is gone"));
    assert!(d.flush(Instant::now() + Duration::from_secs(10)).is_complete());
    assert_eq!(messages(&received_records(&fake.requests()))[1], "after the app's runtime is gone");
}

#[test]
fn works_inside_a_current_thread_tokio_runtime() {
    let fake = FakeHttp::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let url = fake.url();
    rt.block_on(async move {
        let d = Delivery::builder("collector", NdjsonSink::new(url)).spawn().unwrap();
        d.handle(rec("from the only runtime thread"));
        // Even a flush from inside the single runtime thread completes: the work happens on
        // watchbell's own thread and runtime.
        assert!(d.flush(Instant::now() + Duration::from_secs(10)).is_complete());
    });
    assert_eq!(received_records(&fake.requests()).len(), 1);
}

#[test]
fn secrets_in_fields_are_redacted_before_the_sink() {
    let fake = FakeHttp::start();
    let d = Delivery::builder("collector", NdjsonSink::new(fake.url())).spawn().unwrap();
    let mut r = rec("login failed password=hunter2");
    r.fields.set("api_key", watchbell_core::Value::Str("sk-live-123".into()));
    r.fields.set("user", watchbell_core::Value::Str("bob".into()));
    d.handle(r);
    assert!(d.flush(Instant::now() + Duration::from_secs(10)).is_complete());
    let body = fake.requests()[0].body_text();
    assert!(!body.contains("hunter2") && !body.contains("sk-live-123"), "{body}");
    assert!(body.contains("bob"));
}

#[test]
fn dropping_every_handle_delivers_the_queue_and_stops_the_worker() {
    let fake = FakeHttp::start();
    let d = Delivery::builder("collector", NdjsonSink::new(fake.url()))
        .batch_wait(Duration::from_secs(3600))
        .spawn()
        .unwrap();
    d.handle(rec("queued when the layer goes away"));
    drop(d);
    let reqs = fake.wait_for_requests(1, Duration::from_secs(10));
    assert_eq!(messages(&received_records(&reqs)), ["queued when the layer goes away"]);
}

#[test]
fn a_one_megabyte_multibyte_message_arrives_intact() {
    let fake = FakeHttp::start();
    let d = Delivery::builder("collector", NdjsonSink::new(fake.url())).spawn().unwrap();
    let huge: String = "日本語 👍 \"quoted\" <b>&amp;</b>\r\n\u{0}".repeat(30_000);
    assert!(huge.len() > 1_000_000);
    d.handle(rec(&huge));
    assert!(d.flush(Instant::now() + Duration::from_secs(20)).is_complete());
    let got = received_records(&fake.requests());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["message"].as_str().unwrap(), huge);
}

/// A sink that sends one record per call, like a chat sink with one message per request.
fn one_per_call(calls: Arc<Mutex<Vec<(Instant, String)>>>) -> impl FnMut(&Batch) -> Outcome + Send {
    move |b: &Batch| {
        calls.lock().unwrap().push((Instant::now(), b.records[0].message.to_string()));
        Outcome::More { delivered: 1 }
    }
}

#[test]
fn more_sends_the_rest_of_a_batch_at_the_pace() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let pace = Duration::from_millis(100);
    let d = Delivery::builder("chat", one_per_call(calls.clone())).pace(pace).spawn().unwrap();
    d.handle_batch(Batch { reason: BatchReason::Group, records: (0..4).map(|i| rec(&format!("r{i}"))).collect() });
    let guard = Guard::new(Arc::new(d.clone()));
    assert!(guard.flush(Duration::from_secs(10)).is_complete());
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.iter().map(|c| c.1.as_str()).collect::<Vec<_>>(), ["r0", "r1", "r2", "r3"]);
    for w in calls.windows(2) {
        assert!(w[1].0 - w[0].0 >= pace, "one message per pace: {:?}", w[1].0 - w[0].0);
    }
    let s = d.snapshot();
    assert_eq!((s.delivered, s.retried, s.failed), (4, 0, 0), "{s}");
}

#[test]
fn shutdown_does_not_wait_out_the_pace_of_a_long_batch() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let d = Delivery::builder("chat", one_per_call(calls.clone())).pace(Duration::from_secs(30)).spawn().unwrap();
    d.handle_batch(Batch { reason: BatchReason::Group, records: (0..3).map(|i| rec(&format!("r{i}"))).collect() });
    let guard = Guard::new(Arc::new(d.clone()));
    let began = Instant::now();
    assert!(!guard.shutdown(Duration::from_millis(300)).is_complete());
    assert!(began.elapsed() < Duration::from_secs(10), "shutdown waited {:?}", began.elapsed());
    assert_eq!(calls.lock().unwrap().len(), 1);
    let s = d.snapshot();
    assert_eq!((s.delivered, s.dropped), (1, 2), "{s}");
}

#[test]
fn progress_sends_the_pieces_of_a_record_at_the_pace() {
    // Each record takes three messages: two `Progress` answers, then the record is done.
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let mut piece = 0;
    let sink = move |b: &Batch| {
        seen.lock().unwrap().push((Instant::now(), format!("{}#{piece}", b.records[0].message)));
        piece += 1;
        if piece < 3 {
            return Outcome::Progress;
        }
        piece = 0;
        if b.records.len() > 1 {
            Outcome::More { delivered: 1 }
        } else {
            Outcome::Delivered
        }
    };
    let pace = Duration::from_millis(80);
    let d = Delivery::builder("chat", sink).pace(pace).spawn().unwrap();
    d.handle_batch(Batch { reason: BatchReason::Group, records: vec![rec("a"), rec("b")] });
    let guard = Guard::new(Arc::new(d.clone()));
    assert!(guard.flush(Duration::from_secs(10)).is_complete());
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.iter().map(|c| c.1.as_str()).collect::<Vec<_>>(), ["a#0", "a#1", "a#2", "b#0", "b#1", "b#2"]);
    for w in calls.windows(2) {
        assert!(w[1].0 - w[0].0 >= pace, "one piece per pace: {:?}", w[1].0 - w[0].0);
    }
    let s = d.snapshot();
    assert_eq!((s.delivered, s.retried, s.failed), (2, 0, 0), "{s}");
}

#[test]
fn a_sink_that_never_finishes_a_record_is_stopped() {
    let calls = Arc::new(Mutex::new(0u32));
    let n = calls.clone();
    let sink = move |_: &Batch| {
        *n.lock().unwrap() += 1;
        Outcome::Progress
    };
    let d = Delivery::builder("endless", sink).spawn().unwrap();
    d.handle(rec("never done"));
    let guard = Guard::new(Arc::new(d.clone()));
    assert!(guard.flush(Duration::from_secs(30)).is_complete());
    assert_eq!(*calls.lock().unwrap(), 10_001, "10,000 pieces in a row are followed, then the batch fails");
    let s = d.snapshot();
    assert_eq!((s.delivered, s.failed), (0, 1), "{s}");
}

/// What a test sink saw, shared with the test.
type Log<T> = Arc<Mutex<Vec<T>>>;

/// A sink whose destination fails until `up_at`, and that can spill (or refuses to).
struct Spilling {
    up_at: Instant,
    accept: bool,
    delivered: Log<String>,
    spilled: Log<Vec<String>>,
}

impl watchbell_core::Sink for Spilling {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        if Instant::now() < self.up_at {
            return Outcome::retry_after(Some(Duration::from_millis(200)), "down");
        }
        self.delivered.lock().unwrap().extend(batch.records.iter().map(|r| r.message.to_string()));
        Outcome::Delivered
    }

    fn can_spill(&self) -> bool {
        true
    }

    fn spill(&mut self, pending: &Batch, queued: &Batch) -> bool {
        let all = pending.records.iter().chain(&queued.records).map(|r| r.message.to_string()).collect();
        self.spilled.lock().unwrap().push(all);
        self.accept
    }
}

/// A delivery to a [`Spilling`] sink (queue of 20) whose first record, `r0`, already waits for
/// a retry; and what the sink delivered and was offered to spill.
fn retrying_r0(accept: bool, down_for: Duration) -> (DeliveryHandle, Log<String>, Log<Vec<String>>) {
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let spilled = Arc::new(Mutex::new(Vec::new()));
    let sink =
        Spilling { up_at: Instant::now() + down_for, accept, delivered: delivered.clone(), spilled: spilled.clone() };
    let d = Delivery::builder("spilling", sink).queue_records(20).retry(fast_retry()).notices(false).spawn().unwrap();
    d.handle(rec("r0"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.snapshot().retried == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    (d, delivered, spilled)
}

fn names(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("r{i}")).collect()
}

#[test]
fn a_half_full_queue_during_a_retry_is_spilled_with_the_waiting_batch() {
    let (d, delivered, spilled) = retrying_r0(true, Duration::from_secs(3600));
    for i in 1..10 {
        d.handle(rec(&format!("r{i}")));
    }
    assert!(spilled.lock().unwrap().is_empty(), "below half the queue: no spill");
    d.handle(rec("r10"));
    let guard = Guard::new(Arc::new(d.clone()));
    assert!(guard.flush(Duration::from_secs(10)).is_complete(), "the spill finished the work");
    assert_eq!(*spilled.lock().unwrap(), vec![names(0..11)], "the waiting batch, then the queue, in order");
    assert!(delivered.lock().unwrap().is_empty());
    let s = d.snapshot();
    assert_eq!((s.delivered, s.dropped, s.failed, s.queued), (11, 0, 0, 0), "{s}");
}

#[test]
fn a_refused_spill_leaves_the_records_queued_in_order() {
    let (d, delivered, spilled) = retrying_r0(false, Duration::from_millis(600));
    for i in 1..11 {
        d.handle(rec(&format!("r{i}")));
    }
    let guard = Guard::new(Arc::new(d.clone()));
    assert!(guard.flush(Duration::from_secs(10)).is_complete());
    assert_eq!(*delivered.lock().unwrap(), names(0..11), "delivered once the destination is back, in order");
    let offers = spilled.lock().unwrap().len() as u64;
    let s = d.snapshot();
    assert!(offers >= 1 && offers <= s.retried, "one offer per retry wait at most: {offers} offers, {s}");
    assert_eq!((s.delivered, s.dropped, s.failed), (11, 0, 0), "{s}");
}

#[test]
fn an_absurd_retry_after_from_the_peer_leaves_the_worker_alive() {
    // A 429 and a 503 asking for u64::MAX seconds, then a date in the year 9999, then garbage:
    // each is capped or ignored, counted, and the next good answer delivers.
    let fake = FakeHttp::start();
    fake.push(Reply::status(429).header("Retry-After", "18446744073709551615"));
    fake.push(Reply::status(503).header("Retry-After", "18446744073709551615"));
    fake.push(Reply::status(503).header("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT"));
    fake.push(Reply::status(429).header("Retry-After", "-5"));
    fake.push(Reply::status(429).header("Retry-After", "garbage"));
    let retry = Retry { max_server_delay: Duration::from_millis(100), ..fast_retry() };
    let d = Delivery::builder("collector", NdjsonSink::new(fake.url())).retry(retry).spawn().unwrap();
    d.handle(rec("after the storm"));
    assert!(d.flush(Instant::now() + Duration::from_secs(20)).is_complete());
    assert_eq!(messages(&received_records(&fake.requests()[5..])), ["after the storm"]);
    let s = d.snapshot();
    assert_eq!((s.delivered, s.retried, s.delays_capped, s.panicked, s.failed), (1, 5, 3, 0, 0));
}

#[test]
fn guard_flush_and_shutdown_take_duration_max_as_no_deadline() {
    let fake = FakeHttp::start();
    fake.push_n(2, Reply::status(503));
    let d = Delivery::builder("collector", NdjsonSink::new(fake.url())).retry(fast_retry()).spawn().unwrap();
    let guard = Guard::new(Arc::new(d.clone()));
    d.handle(rec("one"));
    assert!(guard.flush(Duration::MAX).is_complete());
    d.handle(rec("two"));
    assert!(guard.shutdown(Duration::MAX).is_complete());
    assert_eq!(d.snapshot().delivered, 2);
}

#[test]
fn overflow_block_with_duration_max_waits_without_panicking() {
    let (sink, release, entered, seen) = gated();
    let d = Delivery::builder("gated", sink).queue_records(1).overflow(Overflow::Block(Duration::MAX)).spawn().unwrap();
    d.handle(rec("in flight"));
    entered.recv_timeout(Duration::from_secs(5)).unwrap();
    d.handle(rec("queued"));
    let d2 = d.clone();
    let producer = std::thread::spawn(move || d2.handle(rec("waits for room")));
    std::thread::sleep(Duration::from_millis(100));
    assert!(!producer.is_finished(), "the producer waits for room");
    release.send(()).unwrap();
    producer.join().expect("the producer did not panic");
    assert!(d.flush(Instant::now() + Duration::from_secs(10)).is_complete());
    let n: usize = seen.lock().unwrap().iter().map(|b| b.len()).sum();
    assert_eq!((n, d.snapshot().dropped), (3, 0));
}
