//! `zmq/publish`: what an `error!` costs the caller when a [`ZmqLayer`](watchbell_zmq::ZmqLayer)
//! publishes it on a PUB socket with no subscriber: the same event (3 fields in 2 spans) as the
//! `sinks` group of `pipeline.rs`, so the figure compares with `enabled/capture_enqueue` (b).
//! The background thread encodes Logbook's JSON and publishes; the caller captures and enqueues.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tracing::{info_span, Dispatch};
use tracing_subscriber::prelude::*;

#[inline(never)]
fn error_event(i: u64) {
    tracing::error!(user = "bob", attempt = i, latency_ms = 12.5, "payment failed");
}

fn in_spans<R>(f: impl FnOnce() -> R) -> R {
    let outer = info_span!("request", id = 7u64, path = "/checkout");
    let _o = outer.enter();
    let inner = info_span!("db", table = "orders");
    let _i = inner.enter();
    f()
}

fn zmq(c: &mut Criterion) {
    let mut g = c.benchmark_group("zmq");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let (layer, guard) =
        watchbell_zmq::ZmqLayer::builder(format!("tcp://127.0.0.1:{port}")).build().expect("zmq layer");
    let d = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&d, || {
        in_spans(|| g.bench_function("publish", |b| b.iter(|| error_event(3))));
    });
    drop(d);
    let _ = guard.shutdown(Duration::from_millis(500));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = zmq
}
criterion_main!(benches);
