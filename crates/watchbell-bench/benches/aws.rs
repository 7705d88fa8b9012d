//! watchbell-aws: the caller's cost of an `error!` into each AWS layer, and throughput against
//! moto.
//!
//! - `aws/sqs`, `aws/cloudwatch_logs`, `aws/sns`: the `error!` of `pipeline`'s `sinks` group
//!   (3 fields in 2 spans) into each layer with its default settings (SNS: its rate limit
//!   included), the endpoint a loopback peer that never answers. Compare with `enabled/
//!   watchbell_stalled_sink` (the (b) capture + enqueue figure) of the same run.
//! - `aws_throughput/sqs_moto`, `aws_throughput/cloudwatch_logs_moto`: records per second from
//!   the first record until the guard's flush returns, against the moto server at
//!   `WATCHBELL_TEST_MOTO_URL` (started by `.ci/moto.sh`); left out when that is unset. moto —
//!   one Python process verifying each request's signature — is the bottleneck, not the layer.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tracing::{info_span, Dispatch};
use tracing_subscriber::prelude::*;
use watchbell_aws::{AwsBuilder, CloudWatchLogsLayer, Credentials, SnsLayer, SqsLayer};

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

fn keys(b: AwsBuilder) -> AwsBuilder {
    b.region("eu-west-1").credentials(Credentials::new("AKIDBENCH", "bench-secret"))
}

fn caller_cost(c: &mut Criterion) {
    let mut g = c.benchmark_group("aws");
    let peer = watchbell_test::http::FakeHttp::start();
    peer.set_default(watchbell_test::http::Reply::stall());
    let endpoint = peer.url();
    let builders = [
        ("sqs", SqsLayer::builder(format!("{endpoint}/123456789012/bench"))),
        ("cloudwatch_logs", CloudWatchLogsLayer::builder("/bench", "caller").endpoint_url(endpoint.clone())),
        ("sns", SnsLayer::builder("arn:aws:sns:eu-west-1:123456789012:bench").endpoint_url(endpoint.clone())),
    ];
    for (id, b) in builders {
        let (layer, guard) = keys(b).build::<tracing_subscriber::Registry>().expect("aws layer");
        let d = Dispatch::new(tracing_subscriber::registry().with(layer));
        tracing::dispatcher::with_default(&d, || {
            in_spans(|| g.bench_function(id, |b| b.iter(|| error_event(3))));
        });
        drop(d);
        let _ = guard.shutdown(Duration::from_millis(200));
    }
    g.finish();
}

fn throughput(c: &mut Criterion) {
    use watchbell_core::{Level, Record, SinkOptions, Value};
    let Ok(url) = std::env::var("WATCHBELL_TEST_MOTO_URL") else {
        eprintln!("aws_throughput: WATCHBELL_TEST_MOTO_URL is not set (bash .ci/moto.sh): left out");
        return;
    };
    if url.trim().is_empty() {
        return;
    }
    let moto = watchbell_test::aws::moto();
    let creds = Credentials::new(moto.access_key_id.clone(), moto.secret_access_key.clone());
    const N: u64 = 500;
    let mut g = c.benchmark_group("aws_throughput");
    g.throughput(criterion::Throughput::Elements(N));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    let queue = {
        let body = serde_json::json!({"QueueName": format!("bench-{}", std::process::id())});
        let out = watchbell_aws::testing::call(
            &format!("{}/", moto.url),
            "us-east-1",
            "sqs",
            &creds,
            "application/x-amz-json-1.0",
            Some("AmazonSQS.CreateQueue"),
            serde_json::to_vec(&body).unwrap(),
        )
        .expect("CreateQueue");
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()["QueueUrl"].as_str().unwrap().to_owned()
    };
    // moto's cost per request grows with the messages a queue holds: each iteration starts
    // from an empty queue (emptied outside the timed part).
    let purge = |queue: &str| {
        let body = serde_json::json!({"QueueUrl": queue});
        let _ = watchbell_aws::testing::call(
            &format!("{}/", moto.url),
            "us-east-1",
            "sqs",
            &creds,
            "application/x-amz-json-1.0",
            Some("AmazonSQS.PurgeQueue"),
            serde_json::to_vec(&body).unwrap(),
        );
    };
    let builders = [
        ("sqs_moto", Some(queue.clone()), SqsLayer::builder(queue.clone())),
        (
            "cloudwatch_logs_moto",
            None,
            CloudWatchLogsLayer::builder(format!("/bench/{}", std::process::id()), "throughput"),
        ),
    ];
    for (id, purged, b) in builders {
        let (h, guard) = b
            .endpoint_url(moto.url.clone())
            .region("us-east-1")
            .credentials(creds.clone())
            .queue_records(N as usize * 2)
            .batch_wait(Duration::from_millis(50))
            .build_handler()
            .expect("aws handler");
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if let Some(q) = &purged {
                        purge(q);
                    }
                    let start = Instant::now();
                    for i in 0..N {
                        let mut r = Record::new(Level::INFO, "bench::aws", "payment accepted");
                        r.fields.set("attempt", Value::U64(i));
                        h.handle(r);
                    }
                    assert!(guard.flush(Duration::from_secs(300)).is_complete(), "{:?}", guard.stats());
                    total += start.elapsed();
                }
                total
            })
        });
        let _ = guard.shutdown(Duration::from_secs(5));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = caller_cost, throughput
}
criterion_main!(benches);
