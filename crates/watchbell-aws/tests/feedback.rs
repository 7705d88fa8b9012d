//! aws-sigv4 logs every signing at TRACE, on the delivery's thread; with a global TRACE
//! subscriber none of it reaches the queue. Its own binary: it sets the global subscriber.

use std::time::Duration;

use tracing_subscriber::prelude::*;
use watchbell_aws::{Credentials, SqsLayer};
use watchbell_core::{Level, SinkOptions};
use watchbell_test::aws::FakeAws;
use watchbell_test::feedback::OwnThreadEvents;

#[test]
fn the_signers_and_http_clients_own_events_at_trace_are_never_shipped() {
    let fake = FakeAws::start();
    let (layer, guard) = SqsLayer::builder(fake.queue_url("q"))
        .endpoint_url(fake.url())
        .region("eu-west-1")
        .credentials(Credentials::new("AKIDFEEDBACK", "feedback-secret"))
        .level(Level::TRACE)
        .batch_wait(Duration::ZERO)
        .no_rate_limit()
        .build()
        .unwrap();
    let own = OwnThreadEvents::new();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer).with(own.clone())).unwrap();
    tracing::error!("the one application record");
    assert!(guard.flush(Duration::from_secs(20)).is_complete());
    std::thread::sleep(Duration::from_millis(300));
    assert!(guard.flush(Duration::from_secs(20)).is_complete());
    assert!(own.count() > 0, "the signer and the HTTP client logged on watchbell's threads");
    let got = fake.sqs_accepted();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0]["MessageBody"].as_str().unwrap().contains("the one application record"));
}
