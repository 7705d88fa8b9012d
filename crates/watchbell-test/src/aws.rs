//! AWS peers for tests: moto's server mode (a real AWS API emulator, started by the
//! workspace's `.ci/moto.sh`), and [`FakeAws`], an AWS-shaped loopback fake for the answers
//! moto does not give on demand (partial batch failures, throttling) and the hostile-peer modes.
//!
//! Tests that need moto call [`moto`]; when it cannot be had, the test fails with a message
//! saying what to do. It is never skipped.
use std::collections::{HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{json, Value as Json};

use crate::http::{FakeHttp, Reply, Request};

/// The script that installs and starts moto, in this workspace.
pub fn moto_script() -> PathBuf {
    crate::ci::script("moto.sh")
}

/// A running moto server and the access key of its test user (`watchbell-test`, allowed
/// everything; moto verifies every request's signature against it).
#[derive(Clone, Debug)]
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The test user's access key id.
    pub access_key_id: String,
    /// The test user's secret access key.
    pub secret_access_key: String,
}

/// A `GET` over plain HTTP/1.0 to a loopback URL: the body, for moto's own API.
pub fn http_get(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut s = TcpStream::connect(host).map_err(|e| format!("{host}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(head.lines().next().unwrap_or("").to_owned());
    }
    Ok(body.to_owned())
}

/// moto's model data (`GET /moto-api/data.json`): every service's instances and attributes.
pub fn moto_data(url: &str) -> Json {
    let text = http_get(&format!("{url}/moto-api/data.json")).unwrap_or_else(|e| panic!("moto data.json: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("moto data.json is not JSON: {e}"))
}

/// The messages published to the SNS topic `topic_arn`, as moto keeps them
/// (`Topic.sent_notifications`: `[message id, message, subject, attributes, group id]`).
pub fn moto_sns_published(url: &str, topic_arn: &str) -> Vec<(String, Option<String>)> {
    let data = moto_data(url);
    let topics = data["sns"]["Topic"].as_array().cloned().unwrap_or_default();
    topics
        .iter()
        .filter(|t| t["arn"] == topic_arn)
        .flat_map(|t| t["sent_notifications"].as_array().cloned().unwrap_or_default())
        .map(|n| (n[1].as_str().unwrap_or("").to_owned(), n[2].as_str().map(str::to_owned)))
        .collect()
}

/// The moto server for tests: `WATCHBELL_TEST_MOTO_URL`, or the one `.ci/moto.sh` starts (run
/// once per test process). Panics (the test fails) when there is none.
pub fn moto() -> Moto {
    static MOTO: OnceLock<Result<Moto, String>> = OnceLock::new();
    MOTO.get_or_init(|| {
        let url = crate::ci::from_env_or_script("WATCHBELL_TEST_MOTO_URL", "moto.sh")?.trim_end_matches('/').to_owned();
        if !url.starts_with("http://") {
            return Err(format!("not an http:// URL: {}", watchbell_core::secret::redact_url(&url)));
        }
        let data = moto_data(&url);
        let key = data["iam"]["AccessKey"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["user_name"] == "watchbell-test"))
            .ok_or_else(|| {
                format!("moto at {url} has no access key of the user watchbell-test (start it with .ci/moto.sh)")
            })?;
        Ok(Moto {
            url,
            access_key_id: key["access_key_id"].as_str().unwrap_or("").to_owned(),
            secret_access_key: key["secret_access_key"].as_str().unwrap_or("").to_owned(),
        })
    })
    .clone()
    .unwrap_or_else(|e| panic!("moto is required for this test and is not available: {e}"))
}

/// How [`FakeAws`] answers the next `SendMessageBatch`: these entry ids fail.
#[derive(Clone, Debug)]
struct EntryFailure {
    ids: Vec<String>,
    code: String,
    sender_fault: bool,
}

#[derive(Debug, Default)]
struct State {
    sqs: Vec<Json>,
    sqs_requests: Vec<Vec<String>>,
    fail_next: VecDeque<EntryFailure>,
    groups: HashSet<String>,
    streams: HashSet<(String, String)>,
    events: Vec<(i64, String)>,
    creates: usize,
    sns: Vec<Vec<(String, String)>>,
    errors: Vec<String>,
}

/// An AWS-shaped fake on loopback: SQS `SendMessageBatch` (JSON protocol), CloudWatch Logs
/// `PutLogEvents`/`CreateLogGroup`/`CreateLogStream` and SNS `Publish` (query protocol),
/// answering as the services do and checking their rules (a signed request, ≤ 10 entries and
/// 256 KiB, events in time order within 10,000 / 1 MiB / 24 h, a subject of < 100 ASCII
/// characters). It does not verify signatures (moto does); it checks that there is one.
///
/// Replies queued on its [`http`](FakeAws::http) fake answer first (the hostile-peer modes).
pub struct FakeAws {
    http: FakeHttp,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FakeAws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeAws").field("url", &self.http.url()).finish_non_exhaustive()
    }
}

fn aws_error(status: u16, code: &str, message: &str, json_version: &str) -> Reply {
    Reply::status(status)
        .header("Content-Type", &format!("application/x-amz-json-{json_version}"))
        .header("x-amzn-query-error", &format!("AWS.SimpleQueueService.{code};Sender"))
        .body(json!({"__type": format!("com.amazonaws.service#{code}"), "message": message}).to_string())
}

impl FakeAws {
    /// Starts the fake on 127.0.0.1.
    pub fn start() -> FakeAws {
        let http = FakeHttp::start();
        let state = Arc::new(Mutex::new(State::default()));
        let s = Arc::clone(&state);
        http.respond_with(move |req| answer(&s, req));
        FakeAws { http, state }
    }

    /// The endpoint URL (`http://127.0.0.1:PORT/`).
    pub fn url(&self) -> String {
        format!("{}/", self.http.url().trim_end_matches('/'))
    }

    /// A queue URL at this fake.
    pub fn queue_url(&self, name: &str) -> String {
        format!("{}/123456789012/{name}", self.http.url().trim_end_matches('/'))
    }

    /// The HTTP fake underneath (queue hostile replies on it).
    pub fn http(&self) -> &FakeHttp {
        &self.http
    }

    /// Makes the next `SendMessageBatch` answer 200 with the entries `ids` in `Failed` (with
    /// `code`; `sender_fault` as given) and the others in `Successful`.
    pub fn fail_entries_next(&self, ids: &[&str], code: &str, sender_fault: bool) {
        self.lock().fail_next.push_back(EntryFailure {
            ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            code: code.to_owned(),
            sender_fault,
        });
    }

    /// Creates a log group and stream (as if they existed before).
    pub fn create_log_stream(&self, group: &str, stream: &str) {
        let mut s = self.lock();
        s.groups.insert(group.to_owned());
        s.streams.insert((group.to_owned(), stream.to_owned()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The SQS entries accepted, in order (each `{"Id", "MessageBody", ...}`).
    pub fn sqs_accepted(&self) -> Vec<Json> {
        self.lock().sqs.clone()
    }

    /// The entry ids of every `SendMessageBatch` received, in order.
    pub fn sqs_requests(&self) -> Vec<Vec<String>> {
        self.lock().sqs_requests.clone()
    }

    /// The log events accepted, in order: `(timestamp ms, message)`.
    pub fn log_events(&self) -> Vec<(i64, String)> {
        self.lock().events.clone()
    }

    /// How many `CreateLogGroup`/`CreateLogStream` calls came.
    pub fn creates(&self) -> usize {
        self.lock().creates
    }

    /// The SNS publishes accepted, each its form fields.
    pub fn sns_published(&self) -> Vec<Vec<(String, String)>> {
        self.lock().sns.clone()
    }

    /// The rule violations seen (each also answered with a 400).
    pub fn errors(&self) -> Vec<String> {
        self.lock().errors.clone()
    }

    /// Waits until `f(self)` holds or `timeout` passed; returns whether it held.
    pub fn wait_until(&self, timeout: Duration, f: impl Fn(&FakeAws) -> bool) -> bool {
        let end = watchbell_core::time::deadline(timeout);
        loop {
            if f(self) {
                return true;
            }
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn answer(state: &Mutex<State>, req: &Request) -> Reply {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let signed = req.header("authorization").is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential="))
        && req.header("x-amz-date").is_some();
    if !signed {
        s.errors.push("an unsigned request".into());
        return Reply::status(403).header("Content-Type", "text/xml").body(
            "<ErrorResponse><Error><Code>MissingAuthenticationToken</Code><Message>Request is missing Authentication Token</Message></Error></ErrorResponse>",
        );
    }
    let target = req.header("x-amz-target").unwrap_or("").to_owned();
    let body: Json = serde_json::from_slice(&req.body).unwrap_or(Json::Null);
    match target.as_str() {
        "AmazonSQS.SendMessageBatch" => {
            let entries = body["Entries"].as_array().cloned().unwrap_or_default();
            let bytes: usize = entries.iter().map(|e| e["MessageBody"].as_str().map_or(0, str::len)).sum();
            if entries.is_empty() || entries.len() > 10 {
                s.errors.push(format!("{} entries", entries.len()));
                return aws_error(400, "TooManyEntriesInBatchRequest", "at most 10 entries", "1.0");
            }
            if bytes > 262_144 {
                s.errors.push(format!("{bytes} bytes of bodies"));
                return aws_error(400, "BatchRequestTooLong", "at most 262144 bytes", "1.0");
            }
            let ids: Vec<String> = entries.iter().map(|e| e["Id"].as_str().unwrap_or("").to_owned()).collect();
            s.sqs_requests.push(ids.clone());
            let fail = s.fail_next.pop_front();
            let (mut ok, mut failed) = (Vec::new(), Vec::new());
            for e in entries {
                let id = e["Id"].as_str().unwrap_or("").to_owned();
                match &fail {
                    Some(f) if f.ids.contains(&id) => failed.push(
                        json!({"Id": id, "SenderFault": f.sender_fault, "Code": f.code, "Message": "entry failed"}),
                    ),
                    _ => {
                        ok.push(json!({"Id": id, "MessageId": format!("m-{}", s.sqs.len()), "MD5OfMessageBody": "x"}));
                        s.sqs.push(e);
                    }
                }
            }
            Reply::json(200, &json!({"Successful": ok, "Failed": failed}).to_string())
        }
        "Logs_20140328.CreateLogGroup" => {
            s.creates += 1;
            let g = body["logGroupName"].as_str().unwrap_or("").to_owned();
            if !s.groups.insert(g) {
                return aws_error(400, "ResourceAlreadyExistsException", "exists", "1.1");
            }
            Reply::json(200, "{}")
        }
        "Logs_20140328.CreateLogStream" => {
            s.creates += 1;
            let g = body["logGroupName"].as_str().unwrap_or("").to_owned();
            let st = body["logStreamName"].as_str().unwrap_or("").to_owned();
            if !s.groups.contains(&g) {
                return aws_error(400, "ResourceNotFoundException", "The specified log group does not exist.", "1.1");
            }
            if !s.streams.insert((g, st)) {
                return aws_error(400, "ResourceAlreadyExistsException", "exists", "1.1");
            }
            Reply::json(200, "{}")
        }
        "Logs_20140328.PutLogEvents" => {
            let g = body["logGroupName"].as_str().unwrap_or("").to_owned();
            let st = body["logStreamName"].as_str().unwrap_or("").to_owned();
            if !s.streams.contains(&(g, st)) {
                return aws_error(400, "ResourceNotFoundException", "The specified log stream does not exist.", "1.1");
            }
            let events = body["logEvents"].as_array().cloned().unwrap_or_default();
            let list: Vec<(i64, String)> = events
                .iter()
                .map(|e| (e["timestamp"].as_i64().unwrap_or(-1), e["message"].as_str().unwrap_or("").to_owned()))
                .collect();
            let bytes: usize = list.iter().map(|(_, m)| m.len() + 26).sum();
            let problem = if list.is_empty() || list.len() > 10_000 {
                Some(format!("{} events", list.len()))
            } else if bytes > 1_048_576 {
                Some(format!("{bytes} bytes"))
            } else if list.windows(2).any(|w| w[0].0 > w[1].0) {
                Some("events not in time order".to_owned())
            } else if list.last().map_or(0, |l| l.0) - list.first().map_or(0, |f| f.0) >= 24 * 3600 * 1000 {
                Some("a batch spanning 24 hours or more".to_owned())
            } else {
                None
            };
            if let Some(p) = problem {
                s.errors.push(p.clone());
                return aws_error(400, "InvalidParameterException", &p, "1.1");
            }
            s.events.extend(list);
            Reply::json(
                200,
                &json!({"nextSequenceToken": "49650000000000000000000000000000000000000000000000000001"}).to_string(),
            )
        }
        "" => {
            let form = req.form();
            let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            if get("Action").as_deref() != Some("Publish") {
                s.errors.push(format!("action {:?}", get("Action")));
                return Reply::status(400)
                    .body("<ErrorResponse><Error><Code>InvalidAction</Code></Error></ErrorResponse>");
            }
            let subject = get("Subject").unwrap_or_default();
            if subject.chars().count() >= 100 || !subject.chars().all(|c| (' '..='~').contains(&c)) {
                s.errors.push(format!("subject {subject:?}"));
                return Reply::status(400).header("Content-Type", "text/xml").body(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameter</Code><Message>Invalid parameter: Subject</Message></Error></ErrorResponse>",
                );
            }
            if get("Message").map_or(0, |m| m.len()) > 262_144 {
                s.errors.push("message over 256 KiB".into());
                return Reply::status(400)
                    .body("<ErrorResponse><Error><Code>InvalidParameter</Code></Error></ErrorResponse>");
            }
            s.sns.push(form);
            Reply::status(200).header("Content-Type", "text/xml").body(format!(
                "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishResult><MessageId>m-{}</MessageId></PublishResult></PublishResponse>",
                s.sns.len()
            ))
        }
        other => {
            s.errors.push(format!("unknown target {other}"));
            aws_error(400, "UnknownOperationException", "unknown", "1.0")
        }
    }
}
