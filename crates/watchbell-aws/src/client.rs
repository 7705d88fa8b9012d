//! One signed request to an AWS service, and how its answers are read.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use serde_json::Value as Json;
use watchbell_core::http::{HttpClient, HttpResponse, Method};
use watchbell_core::Outcome;

use crate::credentials::{Credentials, Provider};

/// The error codes (JSON `__type`, XML `Code`) that mean "slow down": retried with backoff.
pub const THROTTLING_CODES: [&str; 9] = [
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "SlowDown",
];

/// The error codes of a service that is briefly unable to answer: retried with backoff.
pub const UNAVAILABLE_CODES: [&str; 6] = [
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "RequestTimeout",
];

/// The error codes of credentials that expired or are not (yet) known: the credentials are
/// read again and the request retried.
pub const EXPIRED_CODES: [&str; 4] =
    ["ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"];

/// An AWS error answer: its HTTP status, code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    /// The HTTP status.
    pub status: u16,
    /// The error code without its namespace (`ThrottlingException`), or empty when none was
    /// readable.
    pub code: String,
    /// The error's message (may be empty).
    pub message: String,
}

/// Reads an AWS error answer in any of its shapes: JSON `{"__type": "ns#Code", "message":
/// …}` (x-amz-json), the `x-amzn-ErrorType` / `x-amzn-query-error` headers, or XML `<Code>` and
/// `<Message>` (query protocol, and moto's authentication errors). Total: any bytes give an
/// answer.
///
/// ```
/// let e = watchbell_aws::read_error(400, None, br#"{"__type":"com.amazonaws.sqs#ThrottlingException","message":"Rate exceeded"}"#);
/// assert_eq!((e.code.as_str(), e.message.as_str()), ("ThrottlingException", "Rate exceeded"));
/// let e = watchbell_aws::read_error(403, None, b"<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error></ErrorResponse>");
/// assert_eq!(e.code, "SignatureDoesNotMatch");
/// let e = watchbell_aws::read_error(400, Some("AWS.SimpleQueueService.NonExistentQueue;Sender"), b"");
/// assert_eq!(e.code, "NonExistentQueue");
/// ```
pub fn read_error(status: u16, header_code: Option<&str>, body: &[u8]) -> AwsError {
    let strip = |c: &str| -> String {
        let c = c.split(':').next().unwrap_or(c);
        let c = c.split(';').next().unwrap_or(c);
        // `ns#Code`, `AWS.SimpleQueueService.Code`: codes hold neither `#` nor `.`.
        c.rsplit(['#', '.']).next().unwrap_or(c).trim().to_owned()
    };
    let mut code = header_code.map(strip).unwrap_or_default();
    let mut message = String::new();
    if let Ok(j) = serde_json::from_slice::<Json>(body) {
        if code.is_empty() {
            if let Some(t) = j.get("__type").or_else(|| j.get("code")).and_then(Json::as_str) {
                code = strip(t);
            }
        }
        if let Some(m) = j.get("message").or_else(|| j.get("Message")).and_then(Json::as_str) {
            message = m.to_owned();
        }
    } else {
        let text = String::from_utf8_lossy(body);
        if code.is_empty() {
            code = xml_text(&text, "Code").unwrap_or_default();
        }
        message = xml_text(&text, "Message").unwrap_or_default();
    }
    AwsError { status, code, message }
}

/// The text of the first `<tag>` element (CDATA unwrapped, entities decoded).
pub(crate) fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    let inner = xml[start..end].trim();
    let inner = inner.strip_prefix("<![CDATA[").and_then(|s| s.strip_suffix("]]>")).unwrap_or(inner);
    Some(
        inner
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

impl AwsError {
    /// Whether a later attempt may succeed: throttling, an unavailable service, 429 and 5xx.
    pub fn retryable(&self) -> bool {
        let c = self.code.as_str();
        THROTTLING_CODES.contains(&c)
            || UNAVAILABLE_CODES.contains(&c)
            || EXPIRED_CODES.contains(&c)
            || matches!(self.status, 408 | 429 | 500..=599)
    }

    /// Whether the credentials were refused as expired.
    pub fn expired(&self) -> bool {
        EXPIRED_CODES.contains(&self.code.as_str())
    }

    /// The outcome: retryable failures retried (with `after`, the server's delay), the others
    /// permanent. The reason names the service, status, code and message, cut and escaped,
    /// with `secrets` scrubbed and credential shapes redacted.
    pub(crate) fn outcome(&self, what: &str, after: Option<Duration>, secrets: &[&str]) -> Outcome {
        let reason = reason(what, self, secrets);
        if self.retryable() {
            Outcome::retry_after(after, reason)
        } else {
            Outcome::permanent(reason)
        }
    }
}

/// "`what` answered 400 ThrottlingException: message", safe to print.
pub(crate) fn reason(what: &str, e: &AwsError, secrets: &[&str]) -> String {
    let msg = watchbell_core::secret::scrub(e.message.clone(), secrets);
    let msg = watchbell_core::secret::redact_text(&msg).into_owned();
    let msg: String = msg.chars().take(200).collect();
    let code = watchbell_core::secret::scrub(e.code.chars().take(80).collect(), secrets);
    let text = match (code.is_empty(), msg.is_empty()) {
        (true, true) => format!("{what} answered {}", e.status),
        (false, true) => format!("{what} answered {} {code}", e.status),
        (true, false) => format!("{what} answered {}: {msg}", e.status),
        (false, false) => format!("{what} answered {} {code}: {msg}", e.status),
    };
    watchbell_core::text::escape_controls(&text).into_owned()
}

/// Signs one request with Signature Version 4: the headers to add (`authorization`,
/// `x-amz-date`, and `x-amz-security-token` for temporary credentials).
///
/// `headers` are the request's own headers that are signed with it (`content-type`,
/// `x-amz-target`); `host` comes from `url`.
pub(crate) fn sign_request(
    creds: &Credentials,
    region: &str,
    service: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    now: SystemTime,
) -> Result<Vec<(&'static str, String)>, String> {
    let aws = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.expose().clone(),
        creds.session_token.as_ref().map(|t| t.expose().clone()),
        None,
        "watchbell",
    );
    let identity: Identity = aws.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign: {e}"))?
        .into();
    let req = SignableRequest::new("POST", url, headers.iter().copied(), SignableBody::Bytes(body))
        .map_err(|e| format!("cannot sign: {e}"))?;
    let (instructions, _) = sign(req, &params).map_err(|e| format!("cannot sign: {e}"))?.into_parts();
    let (out, _) = instructions.into_parts();
    Ok(out.into_iter().map(|h| (h.name(), h.value().to_owned())).collect())
}

/// A signed POST to one service endpoint.
#[derive(Debug)]
pub(crate) struct AwsClient {
    pub http: HttpClient,
    pub provider: Provider,
    pub region: String,
    /// The signing name (`sqs`, `logs`, `sns`).
    pub service: &'static str,
    /// The endpoint URL requests are posted to.
    pub endpoint: String,
    /// Names the destination in reasons (`SQS`, `CloudWatch Logs`, `SNS`).
    pub what: &'static str,
    /// The secrets of the last credentials used, to scrub from answers.
    secrets: Vec<String>,
}

/// What one call gave: the 2xx answer, or the outcome of its failure.
pub(crate) enum Call {
    Ok(HttpResponse),
    Failed(AwsError, Outcome),
    /// No answer (connection, timeout) or no request (no credentials, signing).
    NoAnswer(Outcome),
}

impl AwsClient {
    pub(crate) fn new(
        http: HttpClient,
        provider: Provider,
        region: String,
        service: &'static str,
        endpoint: String,
        what: &'static str,
    ) -> Self {
        AwsClient { http, provider, region, service, endpoint, what, secrets: Vec::new() }
    }

    pub(crate) fn secrets(&self) -> Vec<&str> {
        self.secrets.iter().map(String::as_str).collect()
    }

    /// The signed request for `body` with `content_type` (and `x-amz-target` when given), or
    /// why there is none (no credentials: retried; a signing failure: permanent).
    pub(crate) fn signed(
        &mut self,
        content_type: &str,
        target: Option<&str>,
        body: Vec<u8>,
    ) -> Result<watchbell_core::http::RequestBuilder, Outcome> {
        let creds = match self.provider.get() {
            Ok(c) => c,
            // Missing credentials may appear (a file written, a variable set): retried.
            Err(e) => return Err(Outcome::retry(e)),
        };
        self.secrets = creds.secrets();
        let mut headers = vec![("content-type", content_type)];
        if let Some(t) = target {
            headers.push(("x-amz-target", t));
        }
        let signed = match sign_request(
            &creds,
            &self.region,
            self.service,
            &self.endpoint,
            &headers,
            &body,
            SystemTime::now(),
        ) {
            Ok(h) => h,
            Err(e) => return Err(Outcome::permanent(watchbell_core::secret::scrub(e, &self.secrets()))),
        };
        let mut req = self.http.request(Method::POST, &self.endpoint);
        for (k, v) in headers.iter().map(|(k, v)| (*k, *v)).chain(signed.iter().map(|(k, v)| (*k, v.as_str()))) {
            req = req.header(k, v);
        }
        Ok(req.body(body))
    }

    /// Posts `body` with `content_type` (and `x-amz-target` when given), signed.
    pub(crate) fn post(&mut self, content_type: &str, target: Option<&str>, body: Vec<u8>) -> Call {
        let req = match self.signed(content_type, target, body) {
            Ok(r) => r,
            Err(o) => return Call::NoAnswer(o),
        };
        match self.http.send(req, &self.endpoint) {
            Ok(resp) if (200..300).contains(&resp.status) => Call::Ok(resp),
            Ok(resp) => {
                let header = resp.header("x-amzn-query-error").or_else(|| resp.header("x-amzn-errortype"));
                let err = read_error(resp.status, header, &resp.body);
                if err.expired() || matches!(err.code.as_str(), "InvalidClientTokenId" | "UnrecognizedClientException")
                {
                    // A rotated key or refreshed token may be waiting in the source.
                    self.provider.invalidate();
                }
                let outcome = err.outcome(self.what, resp.retry_after(), &self.secrets());
                Call::Failed(err, outcome)
            }
            Err(e) => {
                let o = e.outcome();
                let secrets = self.secrets();
                Call::NoAnswer(match o {
                    Outcome::Retry { after, reason } => {
                        Outcome::Retry { after, reason: watchbell_core::secret::scrub(reason, &secrets) }
                    }
                    Outcome::Permanent { reason } => {
                        Outcome::permanent(watchbell_core::secret::scrub(reason, &secrets))
                    }
                    o => o,
                })
            }
        }
    }

    /// An x-amz-json call (`X-Amz-Target: {target}`).
    pub(crate) fn json(&mut self, version: &str, target: &str, body: &Json) -> Call {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.post(&format!("application/x-amz-json-{version}"), Some(target), bytes)
    }
}
