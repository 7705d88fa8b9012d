//! A minimal NDJSON collector sink over watchbell's HTTP transport, to test pipelines (and run
//! the demo) against [`FakeHttp`](crate::http::FakeHttp) before a real collector sink is chosen.
//!
//! ```no_run
//! use watchbell_core::Delivery;
//! use watchbell_test::collector::NdjsonSink;
//! use watchbell_test::http::FakeHttp;
//!
//! let fake = FakeHttp::start();
//! let delivery = Delivery::builder("collector", NdjsonSink::new(fake.url())).spawn().unwrap();
//! ```

use std::time::Duration;

use watchbell_core::http::{HttpClient, Method};
use watchbell_core::{Batch, Outcome, Sink};

/// POSTs a batch as NDJSON (one serialized [`Record`](watchbell_core::Record) per line) to a
/// URL with watchbell's HTTP transport, and classifies the answer the standard way.
#[derive(Debug)]
pub struct NdjsonSink {
    client: HttpClient,
    url: String,
}

impl NdjsonSink {
    /// A sink posting to `url` with a 10 s timeout.
    ///
    /// # Panics
    /// If the URL is refused by the HTTP transport's policy (a mistake in the test).
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_timeout(url, Duration::from_secs(10))
    }

    /// A sink posting to `url` with the given request timeout.
    ///
    /// # Panics
    /// If the URL is refused by the HTTP transport's policy (a mistake in the test).
    pub fn with_timeout(url: impl Into<String>, timeout: Duration) -> Self {
        let client = HttpClient::builder().timeout(timeout).build().expect("client");
        let url = url.into();
        client.check_url(&url).expect("url allowed");
        NdjsonSink { client, url }
    }
}

impl Sink for NdjsonSink {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        let mut body = String::new();
        for r in &batch.records {
            body.push_str(&serde_json::to_string(r).expect("records serialize"));
            body.push('\n');
        }
        let req =
            self.client.request(Method::POST, &self.url).header("content-type", "application/x-ndjson").body(body);
        match self.client.send(req, &self.url) {
            Ok(resp) => resp.outcome("collector"),
            Err(e) => e.outcome(),
        }
    }
}

/// The NDJSON lines a fake collector received, parsed, in order.
pub fn received_records(reqs: &[crate::http::Request]) -> Vec<serde_json::Value> {
    reqs.iter()
        .flat_map(|r| r.body_text().lines().map(|l| serde_json::from_str(l).expect("ndjson")).collect::<Vec<_>>())
        .collect()
}
