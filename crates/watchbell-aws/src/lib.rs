//! # watchbell-aws
//!
//! Three AWS destinations for tracing, each a layer with watchbell's delivery behind it (its own
//! thread, a bounded queue, retries with backoff, counted drops), signed with Signature
//! Version 4 on watchbell's HTTP transport:
//!
//! - [`SqsLayer`]: records to an SQS queue (`SendMessageBatch`), Camelot's
//!   `ThreadedAwsHandler` done right.
//! - [`CloudWatchLogsLayer`]: records to a CloudWatch Logs stream (`PutLogEvents`).
//! - [`SnsLayer`]: alerts to an SNS topic (`Publish`), which fans out to mail, SMS and Lambda.
//!
//! ```no_run
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//! use watchbell_aws::{CloudWatchLogsLayer, SnsLayer, SqsLayer};
//!
//! let (sqs, g1) = SqsLayer::builder("https://sqs.eu-west-1.amazonaws.com/123456789012/logs").app("billing").build().unwrap();
//! let (cwl, g2) = CloudWatchLogsLayer::builder("/billing/app", "i-0abc").build().unwrap();
//! let (sns, g3) = SnsLayer::builder("arn:aws:sns:eu-west-1:123456789012:alerts").app("billing").build().unwrap();
//! tracing_subscriber::registry().with(sqs).with(cwl).with(sns).init();
//! tracing::error!(invoice = 42, "payment failed");
//! g1.join(g2).join(g3).shutdown(Duration::from_secs(5));
//! ```
//!
//! | layer | request | limits | answers |
//! |---|---|---|---|
//! | SQS | `POST /` JSON protocol, `X-Amz-Target: AmazonSQS.SendMessageBatch`, `application/x-amz-json-1.0`: `QueueUrl`, `Entries` (`Id` = the record's index in the batch, `MessageBody` = the record in watchbell-http's JSON shape) | ≤ 10 entries and ≤ 256 KiB of bodies per request; a record larger than one message (256 KiB) is cut — message and text fields shortened with the marker, else only time, level, target and the start of the message — and sent as one message; U+FFFE/U+FFFF (refused by SQS) escaped as `\ufffe`/`\uffff` | entries in `Failed` with `SenderFault` and a code that is not throttling are counted and dropped; the others are sent again **alone** (the entries that went through are not resent) |
//! | FIFO queue (URL ends in `.fifo`) | each entry also has `MessageGroupId` ([`message_group_id`](AwsBuilder::message_group_id), default the app's name, else `watchbell`: one group keeps the log's order) and `MessageDeduplicationId` = a hash of the body and of how many identical bodies precede it in the batch (the same when resent) | | |
//! | CloudWatch Logs | `Logs_20140328.PutLogEvents`, `application/x-amz-json-1.1`: `logGroupName`, `logStreamName`, `logEvents` (`timestamp` ms, `message` = the JSON record) | events sorted by time (stable); ≤ 10,000 events and ≤ 1 MiB per call counting 26 bytes per event; no call spans 24 h; an event ≤ 256 KiB (cut like SQS); events older than 14 days or more than 2 h ahead are not sent, counted | `ResourceNotFoundException` → `CreateLogGroup` + `CreateLogStream` (`ResourceAlreadyExistsException` is fine) and the call again, unless [`create_log_stream(false)`](AwsBuilder::create_log_stream); `rejectedLogEventsInfo` counted; `DataAlreadyAcceptedException` is success; `InvalidSequenceTokenException` takes the expected token and retries at once |
//! | SNS | `POST /` form, `Action=Publish&Version=2010-03-31`: `TopicArn`, `Subject`, `Message` (FIFO topics: `MessageGroupId`, `MessageDeduplicationId`); XML answer | subject: printable ASCII, one line, < 100 chars ([`sns_subject`]); message ≤ 256 KiB, the mail layout by default ([`sns_message`]) or a [`format`](AwsBuilder::format) | one request per alert |
//!
//! Every layer: `ThrottlingException` (and the other throttling codes, [`THROTTLING_CODES`]),
//! `ServiceUnavailable`/`InternalFailure` ([`UNAVAILABLE_CODES`]), 429, 5xx, timeouts and
//! connection errors are retried with exponential backoff and jitter (`Retry-After` honoured);
//! other 4xx answers are permanent, counted failures (a wrong secret: `SignatureDoesNotMatch`).
//! Expired or unknown credentials (`ExpiredToken`, `InvalidClientTokenId`) make the sink read
//! its credentials again before the next attempt. Records refused one by one are counted under
//! `<name>/items` in [`Guard::stats`](watchbell_core::Guard::stats) (`sqs`, `cloudwatch-logs`,
//! `sns`) and said once on stderr.
//!
//! Defaults: SQS and CloudWatch Logs take `INFO` and above with no rate limit (they ship logs);
//! SQS batches 10 records waiting at most 200 ms, CloudWatch Logs 10,000 records waiting at
//! most 1 s. SNS takes `ERROR`, 1 alert per callsite per 60 s, a pace of 100 ms, like the other
//! alert sinks ([`cap`](watchbell_core::SinkOptions::cap) to bound alerts per window).
//!
//! # Credentials, region, endpoint
//!
//! Like the AWS tools, in this order:
//!
//! 1. [`credentials`](AwsBuilder::credentials) given to the builder;
//! 2. `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (and
//!    `AWS_CREDENTIAL_EXPIRATION`, RFC 3339);
//! 3. the profile ([`profile`](AwsBuilder::profile), else `AWS_PROFILE`, else `default`) in the
//!    shared files `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`) and
//!    `AWS_CONFIG_FILE` (default `~/.aws/config`, `[profile NAME]`): `aws_access_key_id`,
//!    `aws_secret_access_key`, `aws_session_token`, or a `credential_process` (its JSON's
//!    `Expiration` is honoured).
//!
//! Credentials with an expiry are read again 5 minutes before it; credentials without one (the
//! variables, the files) are read again every 5 minutes, so a rotated key is picked up; all of
//! them are read again after the service refused them as expired or unknown. The chain is read
//! once at build time too: no credentials anywhere is a build error saying where it looked.
//! Secret keys and session tokens never appear in `Debug`, errors, stats or stderr (answers
//! are scrubbed of them, and of anything shaped like a credential).
//!
//! Region: [`region`](AwsBuilder::region), else the queue URL's (`sqs.REGION.amazonaws.com`)
//! or the topic ARN's, else `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`.
//! Endpoint: [`endpoint_url`](AwsBuilder::endpoint_url) (tests, LocalStack, VPC endpoints),
//! else `AWS_ENDPOINT_URL_SQS` / `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS` / `AWS_ENDPOINT_URL_SNS`,
//! else `AWS_ENDPOINT_URL`, else the queue URL's origin (SQS) or
//! `https://logs.REGION.amazonaws.com` / `https://sns.REGION.amazonaws.com`. Plain `http://`
//! only to loopback unless [`allow_plain_http`](watchbell_core::SinkOptions::allow_plain_http).
//!
//! # Signing: aws-sigv4, not the SDK
//!
//! Requests are signed by the `aws-sigv4` crate (the SDK's own signer, default features off)
//! and sent by watchbell's reqwest transport, which every HTTP sink shares (TLS settings,
//! proxies, redaction, bounded answers, its thread's events never captured). The other choice
//! was the AWS SDK (`aws-config` + `aws-sdk-sqs` + `aws-sdk-cloudwatchlogs` + `aws-sdk-sns`).
//! Measured on this project's 2-core build machine, each alone in a fresh target directory
//! (`cargo build --release`, other builds running at the same time, so the times are
//! indicative):
//!
//! | choice | crates in its tree | crates new to watchbell's tree | clean build |
//! |---|---|---|---|
//! | `aws-sigv4` (+ `aws-credential-types`, `aws-smithy-runtime-api`) | 52 | 11 | 95 s |
//! | AWS SDK: `aws-config` + 3 service crates | 172 | 33 | 2,374 s |
//!
//! The SDK would also bring its own HTTP client and runtime, retry and credential machinery
//! beside watchbell's (two of each to configure); what this crate needs of it is the signer
//! and three small request shapes. Both require Rust 1.94.1 (the smithy crates' minimum),
//! which is this crate's `rust-version`.
//!
//! # Throughput against moto
//!
//! `cargo bench --bench aws` (watchbell-bench) ships 500 records per iteration to moto's server
//! mode. Measured once on the 2-core build machine while other benchmarks ran: CloudWatch Logs
//! about 21,000 records/s (500 events in one or two `PutLogEvents`), SQS about 64 records/s
//! (10 entries per `SendMessageBatch`, about 6 requests/s). moto — one Python process
//! verifying each request's signature, its cost per request growing with the messages a queue
//! holds — is the bottleneck, not the layer; AWS itself takes thousands of SQS requests per
//! second per queue.
//!
//! # Feedback
//!
//! The HTTP client's, hyper's and aws-sigv4's own events (aws-sigv4 logs every signing at
//! TRACE) are emitted on watchbell's delivery thread, whose events no watchbell layer captures:
//! a subscriber with TRACE on for everything does not feed the layers their own traffic.
#![deny(missing_docs)]

mod client;
mod credentials;
mod logs;
mod sns;
mod sqs;

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing_core::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use watchbell_core::format::{Format, FormatContext};
use watchbell_core::handler::Handler;
use watchbell_core::options::Options;
use watchbell_core::{Batch, BuildError, Flushed, Guard, Level, Outcome, Record, Sink, SinkLayer, SinkOptions, Stats};

pub use client::{read_error, AwsError, EXPIRED_CODES, THROTTLING_CODES, UNAVAILABLE_CODES};
pub use credentials::{Credentials, REFRESH_BEFORE, REREAD_AFTER};
pub use logs::{
    plan_log_calls, LOGS_EVENT_OVERHEAD, LOGS_MAX_AGE, LOGS_MAX_AHEAD, LOGS_MAX_BYTES, LOGS_MAX_EVENTS,
    LOGS_MAX_EVENT_BYTES, LOGS_MAX_SPAN,
};
pub use sns::{sns_message, sns_subject, SNS_MAX_MESSAGE, SNS_MAX_SUBJECT};
pub use sqs::{record_body, sqs_safe_json, SQS_MAX_BYTES, SQS_MAX_ENTRIES};

/// Internals exposed for the fuzz targets (not a stable API).
#[doc(hidden)]
pub mod fuzzing {
    use std::collections::HashMap;

    /// The sections of a shared credentials or config file: `[name]` → keys → values.
    pub fn parse_ini(text: &str) -> HashMap<String, HashMap<String, String>> {
        crate::credentials::parse_ini(text)
    }
}

const CRATE: &str = "watchbell-aws";

/// Counters of what the sinks decide per record (beyond the delivery's own).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    refused: watchbell_core::report::Refusals,
}

impl Counters {
    /// `n` records refused one by one (not retried): counted, the reason said once on stderr
    /// per kind.
    pub(crate) fn fail(&self, n: u64, reason: String) {
        self.refused.fail("aws", n, reason);
    }
}

/// Where a retried batch left off: which of its records went through already.
#[derive(Debug)]
pub(crate) struct Resume {
    first: Record,
    done: Vec<bool>,
}

impl Resume {
    /// The done flags for `recs`: those saved when this batch (or its undelivered rest) was
    /// tried before, else none done.
    pub(crate) fn take(slot: &mut Option<Resume>, recs: &[Record]) -> Vec<bool> {
        match slot.take() {
            Some(r) if r.done.len() == recs.len() && recs.first() == Some(&r.first) => r.done,
            _ => vec![false; recs.len()],
        }
    }

    /// The outcome of a delivery that stopped with `failure` (or finished): the leading done
    /// records are delivered, and for a retry the flags of the rest are kept, so that only
    /// what did not go through is sent again.
    pub(crate) fn finish(
        slot: &mut Option<Resume>,
        recs: &[Record],
        done: &[bool],
        failure: Option<Outcome>,
    ) -> Outcome {
        let k = done.iter().take_while(|d| **d).count();
        let Some(outcome) = failure.filter(|_| k < recs.len()) else { return Outcome::Delivered };
        if matches!(outcome, Outcome::Retry { .. }) {
            *slot = Some(Resume { first: recs[k].clone(), done: done[k..].to_vec() });
        }
        if k == 0 {
            outcome
        } else {
            Outcome::Partial { delivered: k, rest: Box::new(outcome) }
        }
    }
}

/// The destination of a builder.
#[derive(Clone)]
enum Service {
    Sqs { queue_url: String, group: Option<String> },
    Logs { group: String, stream: String, create: bool },
    Sns { topic_arn: String, format: Option<Arc<dyn Format>> },
}

impl Service {
    fn name(&self) -> &'static str {
        match self {
            Service::Sqs { .. } => "sqs",
            Service::Logs { .. } => "cloudwatch-logs",
            Service::Sns { .. } => "sns",
        }
    }
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Service::Sqs { queue_url, group } => f
                .debug_struct("Sqs")
                .field("queue_url", &watchbell_core::secret::redact_url(queue_url))
                .field("group", group)
                .finish(),
            Service::Logs { group, stream, create } => {
                f.debug_struct("Logs").field("group", group).field("stream", stream).field("create", create).finish()
            }
            Service::Sns { topic_arn, format } => {
                f.debug_struct("Sns").field("topic_arn", topic_arn).field("format", &format.is_some()).finish()
            }
        }
    }
}

/// SQS: records to a queue. See the [crate docs](crate).
#[derive(Debug)]
pub struct SqsLayer(());

impl SqsLayer {
    /// A builder for the queue at `queue_url` (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`;
    /// a FIFO queue's name ends in `.fifo`).
    pub fn builder(queue_url: impl Into<String>) -> AwsBuilder {
        AwsBuilder::new(Service::Sqs { queue_url: queue_url.into(), group: None })
    }
}

/// CloudWatch Logs: records to a log stream. See the [crate docs](crate).
#[derive(Debug)]
pub struct CloudWatchLogsLayer(());

impl CloudWatchLogsLayer {
    /// A builder for the stream `stream` of the log group `group` (both created when absent,
    /// unless turned off).
    pub fn builder(group: impl Into<String>, stream: impl Into<String>) -> AwsBuilder {
        AwsBuilder::new(Service::Logs { group: group.into(), stream: stream.into(), create: true })
    }
}

/// SNS: alerts to a topic. See the [crate docs](crate).
#[derive(Debug)]
pub struct SnsLayer(());

impl SnsLayer {
    /// A builder for the topic `topic_arn` (`arn:aws:sns:REGION:ACCOUNT:NAME`).
    pub fn builder(topic_arn: impl Into<String>) -> AwsBuilder {
        AwsBuilder::new(Service::Sns { topic_arn: topic_arn.into(), format: None })
    }
}

/// Builds an SQS, CloudWatch Logs or SNS layer; see the [crate docs](crate).
pub struct AwsBuilder {
    options: Options,
    service: Service,
    app: Option<String>,
    host: Option<String>,
    level: Level,
    credentials: Option<Credentials>,
    profile: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    batch_wait: Duration,
}

impl fmt::Debug for AwsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsBuilder")
            .field("service", &self.service)
            .field("app", &self.app)
            .field("level", &self.level)
            .field("credentials", &self.credentials)
            .field("profile", &self.profile)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint.as_deref().map(watchbell_core::secret::redact_url))
            .field("options", &self.options)
            .finish()
    }
}

impl SinkOptions for AwsBuilder {
    fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }
}

impl AwsBuilder {
    fn new(service: Service) -> Self {
        let (options, level, wait) = match service {
            Service::Sns { .. } => (
                Options::new().rate_limit(1, Duration::from_secs(60)).pace(Duration::from_millis(100)),
                Level::ERROR,
                Duration::ZERO,
            ),
            Service::Sqs { .. } => (Options::new(), Level::INFO, Duration::from_millis(200)),
            Service::Logs { .. } => (Options::new(), Level::INFO, Duration::from_secs(1)),
        };
        AwsBuilder {
            options,
            service,
            app: None,
            host: None,
            level,
            credentials: None,
            profile: None,
            region: None,
            endpoint: None,
            batch_wait: wait,
        }
    }

    /// The application's name (the JSON record's `app`, the SNS subject's `[app]`, the default
    /// FIFO message group).
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }

    /// The host's name (the JSON record's `host`; default: the machine's).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The least level sent (default `INFO` for SQS and CloudWatch Logs, `ERROR` for SNS).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// Explicit credentials, before the environment and the shared files.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The profile of the shared files (default: `AWS_PROFILE`, else `default`).
    pub fn profile(mut self, name: impl Into<String>) -> Self {
        self.profile = Some(name.into());
        self
    }

    /// The region signed for (`eu-west-1`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The endpoint requests go to instead of the service's (tests, LocalStack, a VPC
    /// endpoint): `http://127.0.0.1:4566`.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// SQS and SNS FIFO: the message group of every message (default: the app's name, else
    /// `watchbell`). Ignored for standard queues and topics.
    pub fn message_group_id(mut self, group: impl Into<String>) -> Self {
        if let Service::Sqs { group: g, .. } = &mut self.service {
            *g = Some(group.into());
        }
        self
    }

    /// CloudWatch Logs: create the log group and stream when the service says they do not
    /// exist (default `true`; `false` makes that a permanent failure).
    pub fn create_log_stream(mut self, create: bool) -> Self {
        if let Service::Logs { create: c, .. } = &mut self.service {
            *c = create;
        }
        self
    }

    /// SNS: the message text instead of the mail layout (a [`Template`](watchbell_core::format::Template)
    /// or any [`Format`]).
    pub fn format(mut self, format: impl Format + 'static) -> Self {
        if let Service::Sns { format: f, .. } = &mut self.service {
            *f = Some(Arc::new(format));
        }
        self
    }

    /// How long the first queued record waits for others to fill a request (default 200 ms
    /// for SQS, 1 s for CloudWatch Logs).
    pub fn batch_wait(mut self, d: Duration) -> Self {
        self.batch_wait = d;
        self
    }

    /// The name of the layer's stats (`sqs`, `cloudwatch-logs`, `sns`).
    pub fn service(&self) -> &'static str {
        self.service.name()
    }

    fn err(key: &str, msg: impl fmt::Display) -> BuildError {
        BuildError::new(CRATE, key, msg)
    }

    /// The region in a queue URL's host or a topic ARN.
    fn inferred_region(&self) -> Option<String> {
        match &self.service {
            Service::Sqs { queue_url, .. } => {
                let host = queue_url.split_once("://")?.1.split(['/', ':']).next()?;
                let mut parts = host.split('.');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("sqs"), Some(region), Some("amazonaws")) => Some(region.to_owned()),
                    _ => None,
                }
            }
            Service::Sns { topic_arn, .. } => topic_arn.split(':').nth(3).filter(|r| !r.is_empty()).map(str::to_owned),
            Service::Logs { .. } => None,
        }
    }

    fn root(&self) -> Result<Arc<dyn Handler>, BuildError> {
        let http = self.options.http_client().map_err(|e| Self::err("http", e))?;
        let name = self.service.name();
        // Validate the destination.
        match &self.service {
            Service::Sqs { queue_url, .. } => {
                http.check_url(queue_url).map_err(|e| Self::err("queue_url", e))?;
                let path = queue_url.split_once("://").and_then(|(_, r)| r.split_once('/')).map_or("", |(_, p)| p);
                if path.trim_matches('/').is_empty() {
                    return Err(Self::err("queue_url", "expected https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE"));
                }
            }
            Service::Logs { group, stream, .. } => {
                let ok_group = |g: &str| {
                    (1..=512).contains(&g.len())
                        && g.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/#".contains(&b))
                };
                if !ok_group(group) {
                    return Err(Self::err("log_group", "1 to 512 of letters, digits and `._-/#`"));
                }
                if stream.is_empty() || stream.len() > 512 || stream.contains([':', '*']) {
                    return Err(Self::err("log_stream", "1 to 512 characters, without `:` or `*`"));
                }
            }
            Service::Sns { topic_arn, .. } => {
                let parts: Vec<&str> = topic_arn.split(':').collect();
                if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sns" || parts[5].is_empty() {
                    return Err(Self::err("topic_arn", "expected arn:aws:sns:REGION:ACCOUNT:TOPIC"));
                }
            }
        }
        let region = self
            .region
            .clone()
            .or_else(|| self.inferred_region())
            .or_else(|| credentials::chain_region(self.profile.as_deref()))
            .ok_or_else(|| {
                Self::err("region", "none found: set it on the builder, AWS_REGION, or `region` in ~/.aws/config")
            })?;
        let (signing, env_name, what) = match &self.service {
            Service::Sqs { .. } => ("sqs", "AWS_ENDPOINT_URL_SQS", "SQS"),
            Service::Logs { .. } => ("logs", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "CloudWatch Logs"),
            Service::Sns { .. } => ("sns", "AWS_ENDPOINT_URL_SNS", "SNS"),
        };
        let env = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        let endpoint =
            self.endpoint.clone().or_else(|| env(env_name)).or_else(|| env("AWS_ENDPOINT_URL")).unwrap_or_else(|| {
                match &self.service {
                    Service::Sqs { queue_url, .. } => {
                        let (scheme, rest) = queue_url.split_once("://").unwrap_or(("https", queue_url));
                        format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest))
                    }
                    _ => format!("https://{signing}.{region}.amazonaws.com"),
                }
            });
        let endpoint = if endpoint.trim_end_matches('/').contains("://") && !endpoint.ends_with('/') {
            match endpoint.split_once("://").map(|(_, r)| r.contains('/')) {
                Some(true) => endpoint,
                _ => format!("{endpoint}/"),
            }
        } else {
            endpoint
        };
        http.check_url(&endpoint).map_err(|e| Self::err("endpoint_url", e))?;
        let source = match &self.credentials {
            Some(c) => credentials::Source::Static(c.clone()),
            None => {
                credentials::read_chain(self.profile.as_deref()).map_err(|e| Self::err("credentials", e))?;
                credentials::Source::Chain { profile: self.profile.clone() }
            }
        };
        let client = client::AwsClient::new(http, credentials::Provider::new(source), region, signing, endpoint, what);
        let host = self.host.clone().or_else(FormatContext::local_host);
        let counters = Arc::new(Counters::default());
        let fifo_group = || self.app.clone().unwrap_or_else(|| "watchbell".to_owned());
        let sink = match &self.service {
            Service::Sqs { queue_url, group } => AwsSink::Sqs(sqs::Sqs {
                client,
                queue_url: queue_url.clone(),
                fifo_group: queue_url.ends_with(".fifo").then(|| group.clone().unwrap_or_else(fifo_group)),
                app: self.app.clone(),
                host,
                counters: Arc::clone(&counters),
                resume: None,
            }),
            Service::Logs { group, stream, create } => AwsSink::Logs(logs::Logs {
                client,
                group: group.clone(),
                stream: stream.clone(),
                create: *create,
                app: self.app.clone(),
                host,
                counters: Arc::clone(&counters),
                resume: None,
                token: None,
            }),
            Service::Sns { topic_arn, format } => {
                let mut cx = self.app.clone().map(FormatContext::new).unwrap_or_default();
                if let Some(h) = host {
                    cx = cx.with_host(h);
                }
                AwsSink::Sns(Box::new(sns::Sns {
                    client,
                    topic_arn: topic_arn.clone(),
                    cx,
                    format: format.clone(),
                    fifo_group: topic_arn.ends_with(".fifo").then(fifo_group),
                }))
            }
        };
        let builder = self.options.delivery(name, sink).batch_wait(self.batch_wait);
        let builder = match &self.service {
            Service::Sqs { .. } => builder.batch_records(SQS_MAX_ENTRIES).batch_bytes(SQS_MAX_BYTES),
            Service::Logs { .. } => builder.batch_records(LOGS_MAX_EVENTS).batch_bytes(LOGS_MAX_BYTES),
            Service::Sns { .. } => builder,
        };
        let delivery =
            builder.spawn().map_err(|e| Self::err("delivery", format!("cannot start the delivery thread: {e}")))?;
        let inner = self.options.limited(name, delivery);
        Ok(Arc::new(AwsHandler { inner, counters, name }))
    }

    /// Starts the delivery and returns the root handler (behind the rate limit) and its
    /// guard, for feeding records from other handlers (a fingers-crossed buffer, a fan-out).
    pub fn build_handler(self) -> Result<(Arc<dyn Handler>, Guard), BuildError> {
        let root = self.root()?;
        let guard = Guard::new(Arc::clone(&root));
        Ok((root, guard))
    }

    /// Builds the layer and its guard. Keep the guard until the end of `main`.
    ///
    /// # Errors
    /// A destination, region, endpoint or HTTP setting that cannot work, or no credentials
    /// anywhere in the chain: the error names the key, never a secret.
    pub fn build<S>(self) -> Result<(SinkLayer<S>, Guard), BuildError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let level = self.level;
        Ok(watchbell_core::options::layer(self.root()?, level))
    }
}

/// Signed calls for tests and tools (creating a queue, reading messages back). Not a stable
/// API.
#[doc(hidden)]
pub mod testing {
    use crate::client::AwsClient;
    use crate::credentials::{Provider, Source};
    use crate::Credentials;

    /// One signed POST on the calling thread: the whole answer's body (not bounded like a
    /// sink's), or why it failed.
    pub fn call(
        endpoint: &str,
        region: &str,
        service: &'static str,
        creds: &Credentials,
        content_type: &str,
        target: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        let http = watchbell_core::http::HttpClient::builder().build()?;
        let provider = Provider::new(Source::Static(creds.clone()));
        let mut c = AwsClient::new(http, provider, region.to_owned(), service, endpoint.to_owned(), "AWS");
        let req = c.signed(content_type, target, body).map_err(|o| format!("{o:?}"))?;
        watchbell_core::runtime::block_on(async {
            let resp = req.send().await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await.map_err(|e| e.to_string())?.to_vec();
            if (200..300).contains(&status) {
                Ok(body)
            } else {
                Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
            }
        })
    }
}

enum AwsSink {
    Sqs(sqs::Sqs),
    Logs(logs::Logs),
    Sns(Box<sns::Sns>),
}

impl Sink for AwsSink {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        match self {
            AwsSink::Sqs(s) => s.deliver(&batch.records),
            AwsSink::Logs(l) => l.deliver(&batch.records),
            AwsSink::Sns(s) => {
                // One alert per request; the delivery paces the rest.
                let Some(first) = batch.records.first() else { return Outcome::Delivered };
                let more = batch.records.len() > 1;
                match s.publish(first) {
                    Outcome::Delivered if more => Outcome::More { delivered: 1 },
                    Outcome::Permanent { reason } if more => Outcome::Refused { refused: 1, reason },
                    o => o,
                }
            }
        }
    }
}

/// The root handler: the delivery (behind its limits) and the per-record counters.
struct AwsHandler {
    inner: Arc<dyn Handler>,
    counters: Arc<Counters>,
    name: &'static str,
}

impl Handler for AwsHandler {
    fn handle(&self, record: Record) {
        self.inner.handle(record);
    }

    fn handle_batch(&self, batch: Batch) {
        self.inner.handle_batch(batch);
    }

    fn flush(&self, deadline: Instant) -> Flushed {
        self.inner.flush(deadline)
    }

    fn shutdown(&self, deadline: Instant) -> Flushed {
        self.inner.shutdown(deadline)
    }

    fn stats(&self, out: &mut Vec<Stats>) {
        self.inner.stats(out);
        let failed = self.counters.refused.failed.load(Relaxed);
        if failed > 0 {
            out.push(Stats {
                name: format!("{}/items", self.name),
                failed,
                last_error: self.counters.refused.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                ..Stats::default()
            });
        }
    }
}
