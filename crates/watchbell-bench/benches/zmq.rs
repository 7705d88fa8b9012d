//! `zmq/*`: what an event costs the caller when a [`ZmqLayer`](watchbell_zmq::ZmqLayer)
//! publishes it, next to the (b) figure measured in the same run.
//!
//! - `zmq/b_capture_enqueue`: (b) exactly as `enabled/watchbell_stalled_sink` of `pipeline.rs`:
//!   an `info!` with 3 fields inside 2 spans, captured at INFO and enqueued to a delivery whose
//!   sink is stalled (the queue sheds its oldest record per push).
//! - `zmq/b_capture_enqueue_error`: the same with `error!` (`peers/watchbell_error`).
//! - `zmq/sink_delivers_at_once`: the `error!` into a capture layer in front of a delivery with
//!   the ZeroMQ layer's queue settings whose sink returns at once: what any sink whose worker
//!   keeps up costs the caller (records freed on the worker's thread), ZeroMQ or not.
//! - `zmq/publish`: that `error!` into a `ZmqLayer` with its defaults (PUB, bound, INFO, no rate
//!   limit) and no subscriber: ZeroMQ drops what no subscriber hears.
//! - `zmq/publish_info`: the (b) `info!` itself, same layer.
//! - `zmq/publish_stalled_subscriber`: the `error!`, one subscriber connected and subscribed to
//!   everything that reads the first message and then nothing more: the background thread
//!   encodes and publishes every record, and ZeroMQ drops what the full connection cannot take.
//!
//! The background thread encodes Logbook's JSON and publishes; the caller captures and enqueues.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tracing::{info_span, Dispatch, Level};
use tracing_subscriber::prelude::*;
use watchbell_core::{Batch, CaptureLayer, Delivery, Outcome, Overflow};

#[inline(never)]
fn error_event(i: u64) {
    tracing::error!(user = "bob", attempt = i, latency_ms = 12.5, "payment failed");
}

#[inline(never)]
fn info_event(i: u64) {
    tracing::info!(user = "bob", attempt = i, latency_ms = 12.5, "payment accepted");
}

fn in_spans<R>(f: impl FnOnce() -> R) -> R {
    let outer = info_span!("request", id = 7u64, path = "/checkout");
    let _o = outer.enter();
    let inner = info_span!("db", table = "orders");
    let _i = inner.enter();
    f()
}

/// (b)'s subscriber: a capture layer at INFO in front of a delivery whose sink never returns
/// from its first batch (until the sender is dropped), as in `pipeline.rs`.
fn stalled_dispatch() -> (Dispatch, mpsc::Sender<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    let d = Delivery::builder("stalled", move |_: &Batch| {
        let _ = rx.recv();
        Outcome::Delivered
    })
    .queue_records(100_000)
    .queue_bytes(64 << 20)
    .overflow(Overflow::DropOldest)
    .notices(false)
    .spawn()
    .expect("worker");
    let sub = tracing_subscriber::registry().with(CaptureLayer::new(Arc::new(d)).with_level(Level::INFO));
    (Dispatch::new(sub), tx)
}

/// A capture layer at INFO in front of a delivery whose sink takes every batch at once, with
/// the ZeroMQ layer's queue settings (10,000 records, drop newest, batches of 256).
fn delivering_dispatch() -> Dispatch {
    let d = Delivery::builder("at-once", |_: &Batch| Outcome::Delivered)
        .batch_records(256)
        .notices(false)
        .spawn()
        .expect("worker");
    Dispatch::new(tracing_subscriber::registry().with(CaptureLayer::new(Arc::new(d)).with_level(Level::INFO)))
}

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port()
}

/// One ZMTP 3.0 frame: flags, a short or long size, the body.
fn frame(flags: u8, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(body.len() + 9);
    if body.len() < 256 {
        f.extend([flags, body.len() as u8]);
    } else {
        f.push(flags | 0x02);
        f.extend((body.len() as u64).to_be_bytes());
    }
    f.extend(body);
    f
}

/// Reads one ZMTP frame (flags and body).
fn read_frame(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut flags = [0u8; 1];
    s.read_exact(&mut flags)?;
    let len = if flags[0] & 0x02 != 0 {
        let mut n = [0u8; 8];
        s.read_exact(&mut n)?;
        u64::from_be_bytes(n) as usize
    } else {
        let mut n = [0u8; 1];
        s.read_exact(&mut n)?;
        n[0] as usize
    };
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok((flags[0], body))
}

/// A SUB peer speaking ZMTP 3.0 over a plain TCP connection: greeting, READY, a subscription to
/// everything. It reads nothing after the handshake unless told to.
fn raw_subscriber(port: u16) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut greeting = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0];
    greeting.extend(b"NULL");
    greeting.resize(64, 0);
    s.write_all(&greeting)?;
    let mut theirs = [0u8; 64];
    s.read_exact(&mut theirs)?;
    let mut ready = vec![5u8];
    ready.extend(b"READY");
    ready.push(11);
    ready.extend(b"Socket-Type");
    ready.extend(3u32.to_be_bytes());
    ready.extend(b"SUB");
    s.write_all(&frame(0x04, &ready))?;
    let (flags, _) = read_frame(&mut s)?;
    if flags & 0x04 == 0 {
        return Err(std::io::Error::other("the publisher's READY is not a command"));
    }
    // ZMTP 3.0 subscription: a message whose first byte is 1, the topic (empty: everything).
    s.write_all(&frame(0x00, &[1]))?;
    Ok(s)
}

fn zmq(c: &mut Criterion) {
    let mut g = c.benchmark_group("zmq");
    {
        let (d, _release) = stalled_dispatch();
        tracing::dispatcher::with_default(&d, || {
            in_spans(|| {
                g.bench_function("b_capture_enqueue", |b| b.iter(|| info_event(3)));
                g.bench_function("b_capture_enqueue_error", |b| b.iter(|| error_event(3)));
            })
        });
    }
    {
        let d = delivering_dispatch();
        tracing::dispatcher::with_default(&d, || {
            in_spans(|| g.bench_function("sink_delivers_at_once", |b| b.iter(|| error_event(3))));
        });
    }
    {
        let port = free_port();
        let (layer, guard) =
            watchbell_zmq::ZmqLayer::builder(format!("tcp://127.0.0.1:{port}")).build().expect("zmq layer");
        let d = Dispatch::new(tracing_subscriber::registry().with(layer));
        tracing::dispatcher::with_default(&d, || {
            in_spans(|| {
                g.bench_function("publish", |b| b.iter(|| error_event(3)));
                g.bench_function("publish_info", |b| b.iter(|| info_event(3)));
            })
        });
        drop(d);
        let _ = guard.shutdown(Duration::from_millis(500));
    }
    {
        let port = free_port();
        let (layer, guard) =
            watchbell_zmq::ZmqLayer::builder(format!("tcp://127.0.0.1:{port}")).build().expect("zmq layer");
        let mut peer = raw_subscriber(port).expect("a subscriber");
        let d = Dispatch::new(tracing_subscriber::registry().with(layer));
        tracing::dispatcher::with_default(&d, || {
            in_spans(|| {
                // Publish until the subscriber hears a record (the subscription has arrived), then
                // it reads no more.
                let heard = std::thread::scope(|s| {
                    let reader = s.spawn(|| read_frame(&mut peer).map(|(_, body)| body));
                    while !reader.is_finished() {
                        error_event(0);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    reader.join().expect("reader")
                });
                let body = heard.expect("the subscriber hears the publisher");
                assert!(body.starts_with(b"{"), "a Logbook record: {:?}", String::from_utf8_lossy(&body));
                g.bench_function("publish_stalled_subscriber", |b| b.iter(|| error_event(3)));
            })
        });
        drop(d);
        drop(peer);
        let _ = guard.shutdown(Duration::from_millis(500));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = zmq
}
criterion_main!(benches);
