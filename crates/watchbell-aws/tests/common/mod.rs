//! What the tests share: quick retries, a record with a field and a location, stats, and
//! signed admin calls to moto (creating queues, topics, reading back).
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{json, Value as Json};
use watchbell_aws::{AwsBuilder, Credentials};
use watchbell_core::{Guard, Level, Record, Retry, SinkOptions, Value};
use watchbell_test::aws::Moto;

/// How long a test waits for a peer.
pub const WAIT: Duration = Duration::from_secs(30);

/// `b` without pace or rate limit, app `shop` on host `web-1`, retries after 20–100 ms, a
/// server's delay honoured up to 1 s, batches sent at once.
pub fn quick(b: AwsBuilder) -> AwsBuilder {
    b.pace(Duration::ZERO).no_rate_limit().app("shop").host("web-1").batch_wait(Duration::ZERO).retry(Retry {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
        max_server_delay: Duration::from_secs(1),
        ..Retry::default()
    })
}

/// A record of `shop::pay` with `invoice = 42` at `src/pay.rs:7`.
pub fn rec(level: Level, msg: &str) -> Record {
    let mut r = Record::new(level, "shop::pay", msg);
    r.fields.set("invoice", Value::U64(42));
    r.file = Some("src/pay.rs".into());
    r.line = Some(7);
    r
}

/// The delivery's stats (not the rate limiter's, not the items').
pub fn stats(g: &Guard) -> watchbell_core::Stats {
    g.stats().into_iter().find(|s| s.name != "rate-limit" && !s.name.ends_with("/items")).unwrap()
}

/// The `<name>/items` stats, if any record was refused one by one.
pub fn items(g: &Guard) -> Option<watchbell_core::Stats> {
    g.stats().into_iter().find(|s| s.name.ends_with("/items"))
}

pub fn creds(m: &Moto) -> Credentials {
    Credentials::new(m.access_key_id.clone(), m.secret_access_key.clone())
}

/// A builder aimed at moto with the test user's key.
pub fn at_moto(b: AwsBuilder, m: &Moto) -> AwsBuilder {
    quick(b.endpoint_url(m.url.clone()).region("us-east-1").credentials(creds(m)))
}

/// A name no other test (or earlier run against the same moto) uses.
pub fn unique(prefix: &str) -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{t}", std::process::id())
}

/// An x-amz-json call to moto.
pub fn json_call(m: &Moto, service: &'static str, version: &str, target: &str, body: Json) -> Json {
    let out = watchbell_aws::testing::call(
        &format!("{}/", m.url),
        "us-east-1",
        service,
        &creds(m),
        &format!("application/x-amz-json-{version}"),
        Some(target),
        serde_json::to_vec(&body).unwrap(),
    )
    .unwrap_or_else(|e| panic!("{target}: {e}"));
    serde_json::from_slice(&out).unwrap_or(Json::Null)
}

/// A query-protocol call to moto: the XML answer.
pub fn query_call(m: &Moto, service: &'static str, form: &[(&str, &str)]) -> String {
    let out = watchbell_aws::testing::call(
        &format!("{}/", m.url),
        "us-east-1",
        service,
        &creds(m),
        "application/x-www-form-urlencoded; charset=utf-8",
        None,
        watchbell_core::text::form_urlencode(form).into_bytes(),
    )
    .unwrap_or_else(|e| panic!("{form:?}: {e}"));
    String::from_utf8_lossy(&out).into_owned()
}

/// Creates a queue (FIFO when the name ends in `.fifo`): its URL.
pub fn create_queue(m: &Moto, name: &str) -> String {
    let mut body = json!({"QueueName": name});
    if name.ends_with(".fifo") {
        body["Attributes"] = json!({"FifoQueue": "true"});
    }
    let j = json_call(m, "sqs", "1.0", "AmazonSQS.CreateQueue", body);
    j["QueueUrl"].as_str().unwrap_or_else(|| panic!("CreateQueue: {j}")).to_owned()
}

/// Receives (and deletes) messages until `n` came or the wait is over: their bodies, in the
/// order received.
pub fn receive(m: &Moto, queue_url: &str, n: usize) -> Vec<String> {
    let end = std::time::Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < n && std::time::Instant::now() < end {
        let j = json_call(
            m,
            "sqs",
            "1.0",
            "AmazonSQS.ReceiveMessage",
            json!({"QueueUrl": queue_url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1, "VisibilityTimeout": 300}),
        );
        for msg in j["Messages"].as_array().cloned().unwrap_or_default() {
            got.push(msg["Body"].as_str().unwrap_or("").to_owned());
            json_call(
                m,
                "sqs",
                "1.0",
                "AmazonSQS.DeleteMessage",
                json!({"QueueUrl": queue_url, "ReceiptHandle": msg["ReceiptHandle"]}),
            );
        }
    }
    got
}
