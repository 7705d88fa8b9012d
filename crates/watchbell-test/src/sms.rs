//! Loopback fakes of Twilio's and Exotel's SMS APIs, on [`FakeHttp`].
//!
//! [`FakeTwilio`] serves `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` and
//! [`FakeExotel`] serves `POST /v1/Accounts/{sid}/Sms/send.json` (and `/Sms/send`, which answers
//! XML), both with form bodies and HTTP Basic auth, and answer like the real APIs:
//!
//! - Twilio: `201` with the message resource (`sid` `SM…`, `status` `queued`, `num_segments`,
//!   `error_code: null`); errors as `{"code":21211,"message":"…","more_info":"…","status":400}`:
//!   401 / 20003 for wrong credentials, 21604 no `To`, 21211 invalid `To`, 21603 no `From` or
//!   `MessagingServiceSid`, 21602 no `Body`, 21617 a body over 1,600 characters.
//! - Exotel: `200` with `{"SMSMessage":{…}}` (or, with [`FakeExotel::list_form`], the list form
//!   `[{"SMSMessage":{…}}]`); errors as `{"RestException":{"Status":400,"Message":"…","Code":"…"}}`
//!   (XML on the non-`.json` path or with [`ExotelReply::xml_error`]): 401 wrong credentials, 400
//!   missing `From`/`To`/`Body`, a body over 2,000 characters or a bad `EncodingType`.
//!
//! Each accepted SMS is recorded as an [`Sms`]: from, to, body, the Basic-auth user, the decoded
//! form and the exact form body as sent, and the encoding and segments the fake computes itself
//! (GSM 03.38 or UCS-2). Every authenticated request is recorded as a [`Call`] with its answer.
//! Failures are programmed with `push` ([`TwilioReply`], [`ExotelReply`]: 429 with
//! `Retry-After`, 5xx, any raw [`Reply`] such as [`Reply::stall`]), `invalid_number` and
//! `outage`.
//!
//! ```
//! use watchbell_test::sms::{FakeTwilio, TwilioReply};
//!
//! let fake = FakeTwilio::start();
//! fake.push(TwilioReply::too_many_requests(Some(1)));
//! assert!(fake.api_base().starts_with("http://127.0.0.1:"));
//! assert_eq!(watchbell_test::sms::gsm_segments("hello"), ("GSM-7", 1));
//! assert_eq!(watchbell_test::sms::gsm_segments("👍"), ("UCS-2", 1));
//! ```

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use watchbell_core::text::utf16_len;

use crate::base64;
use crate::http::{FakeHttp, Reply, Request};
use crate::store::Recorded;

/// The account SID [`FakeTwilio::start`] accepts.
pub const TWILIO_ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// The auth token [`FakeTwilio::start`] accepts.
pub const TWILIO_AUTH_TOKEN: &str = "twilio-secret-auth-token-5f3c9a";
/// The account SID [`FakeExotel::start`] accepts.
pub const EXOTEL_SID: &str = "watchbell1";
/// The API key [`FakeExotel::start`] accepts (the Basic-auth user).
pub const EXOTEL_API_KEY: &str = "exotel-secret-api-key-71ab";
/// The API token [`FakeExotel::start`] accepts (the Basic-auth password).
pub const EXOTEL_API_TOKEN: &str = "exotel-secret-api-token-e04d";

/// Twilio's limit on `Body`, in characters.
pub const TWILIO_MAX_BODY: usize = 1600;
/// Exotel's limit on `Body`, in characters.
pub const EXOTEL_MAX_BODY: usize = 2000;

/// An SMS a fake accepted.
#[derive(Clone, Debug)]
pub struct Sms {
    /// The id given in the answer (`SM…` for Twilio, 32 hex digits for Exotel).
    pub sid: String,
    /// `From` (empty when Twilio got a `MessagingServiceSid` instead).
    pub from: String,
    /// `MessagingServiceSid`, if given (Twilio).
    pub messaging_service_sid: Option<String>,
    /// `To`.
    pub to: String,
    /// `Body`.
    pub body: String,
    /// The Basic-auth user name.
    pub user: String,
    /// The form fields, decoded, in order.
    pub form: Vec<(String, String)>,
    /// The request body exactly as sent.
    pub raw_body: String,
    /// `GSM-7` or `UCS-2`: the encoding the body needs.
    pub encoding: &'static str,
    /// The number of segments the body takes.
    pub segments: usize,
    /// When it arrived.
    pub received_at: Instant,
}

impl Sms {
    /// A form field's value.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// One authenticated request to a fake and how it was answered.
#[derive(Clone, Debug)]
pub struct Call {
    /// `To`, as decoded (empty if absent).
    pub to: String,
    /// The HTTP status answered (0 for a raw [`Reply`]).
    pub status: u16,
    /// The provider's error code, for errors (`21211`, `RATE_LIMIT_EXCEEDED`).
    pub code: Option<String>,
    /// The request body exactly as sent.
    pub raw_body: String,
    /// When it arrived.
    pub received_at: Instant,
}

/// A programmed answer to the next authenticated Twilio request.
#[derive(Clone, Debug)]
pub enum TwilioReply {
    /// Accept the message as usual (after the normal checks).
    Accept,
    /// A Twilio error body with this HTTP status and error code.
    Error {
        /// The HTTP status (and the body's `status`).
        status: u16,
        /// The body's `code` (`21211`).
        code: u32,
        /// The body's `message`.
        message: String,
        /// A `Retry-After` header, in seconds.
        retry_after: Option<u64>,
    },
    /// A raw HTTP reply (a proxy's 502 page, a stall, a closed connection...).
    Http(Reply),
}

impl TwilioReply {
    /// An error with this status, code and message.
    pub fn error(status: u16, code: u32, message: &str) -> TwilioReply {
        TwilioReply::Error { status, code, message: message.to_owned(), retry_after: None }
    }

    /// 429 with error 20429 (too many concurrent requests), with `Retry-After` if given.
    pub fn too_many_requests(retry_after: Option<u64>) -> TwilioReply {
        TwilioReply::Error { status: 429, code: 20429, message: "Too Many Requests".to_owned(), retry_after }
    }

    /// 400 with error 21211 (invalid `To`).
    pub fn invalid_to() -> TwilioReply {
        TwilioReply::error(400, 21211, "The 'To' number is not a valid phone number.")
    }

    /// 400 with error 21617 (body too long).
    pub fn body_too_long() -> TwilioReply {
        TwilioReply::error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
    }

    /// 401 with error 20003 (authentication).
    pub fn unauthorized() -> TwilioReply {
        TwilioReply::error(401, 20003, "Authenticate")
    }

    /// 500 with error 20500 (internal server error).
    pub fn server_error() -> TwilioReply {
        TwilioReply::error(500, 20500, "An internal server error has occurred")
    }

    /// A raw HTTP reply.
    pub fn http(reply: Reply) -> TwilioReply {
        TwilioReply::Http(reply)
    }
}

/// A programmed answer to the next authenticated Exotel request.
#[derive(Clone, Debug)]
pub enum ExotelReply {
    /// Accept the message as usual (after the normal checks), in the fake's success form.
    Accept,
    /// Accept the message and answer in the list form `[{"SMSMessage":{…}}]`.
    AcceptAsList,
    /// A `RestException` with this status.
    Error {
        /// The HTTP status (and `Status`).
        status: u16,
        /// `Code`.
        code: String,
        /// `Message`.
        message: String,
        /// A `Retry-After` header, in seconds.
        retry_after: Option<u64>,
        /// Answer XML instead of JSON.
        xml: bool,
    },
    /// A raw HTTP reply.
    Http(Reply),
}

impl ExotelReply {
    /// A JSON `RestException`.
    pub fn error(status: u16, code: &str, message: &str) -> ExotelReply {
        ExotelReply::Error { status, code: code.to_owned(), message: message.to_owned(), retry_after: None, xml: false }
    }

    /// 429 `RATE_LIMIT_EXCEEDED`, with `Retry-After` if given.
    pub fn rate_limited(retry_after: Option<u64>) -> ExotelReply {
        ExotelReply::Error {
            status: 429,
            code: "RATE_LIMIT_EXCEEDED".to_owned(),
            message: "Too many requests".to_owned(),
            retry_after,
            xml: false,
        }
    }

    /// 503 (platform limits), with `Retry-After` if given.
    pub fn unavailable(retry_after: Option<u64>) -> ExotelReply {
        ExotelReply::Error {
            status: 503,
            code: "SERVICE_UNAVAILABLE".to_owned(),
            message: "Service temporarily unavailable".to_owned(),
            retry_after,
            xml: false,
        }
    }

    /// 400 with this message.
    pub fn bad_request(message: &str) -> ExotelReply {
        ExotelReply::error(400, "BAD_REQUEST", message)
    }

    /// 403 (inactive account or balance).
    pub fn forbidden() -> ExotelReply {
        ExotelReply::error(403, "FORBIDDEN", "Your account is inactive or out of balance")
    }

    /// An XML `RestException` (the form of the non-`.json` endpoints).
    pub fn xml_error(status: u16, message: &str) -> ExotelReply {
        ExotelReply::Error { status, code: String::new(), message: message.to_owned(), retry_after: None, xml: true }
    }

    /// A raw HTTP reply.
    pub fn http(reply: Reply) -> ExotelReply {
        ExotelReply::Http(reply)
    }
}

struct State<R> {
    queue: VecDeque<R>,
    outage_until: Option<Instant>,
    invalid: HashSet<String>,
    list_form: bool,
    messages: Vec<Sms>,
    calls: Vec<Call>,
    next_id: u64,
}

impl<R> Default for State<R> {
    fn default() -> Self {
        State {
            queue: VecDeque::new(),
            outage_until: None,
            invalid: HashSet::new(),
            list_form: false,
            messages: Vec::new(),
            calls: Vec::new(),
            next_id: 0,
        }
    }
}

struct Shared<R> {
    account: String,
    user: String,
    password: String,
    state: Recorded<State<R>>,
}

impl<R> Shared<R> {
    fn record_call(&self, st: &mut State<R>, to: &str, status: u16, code: Option<String>, req: &Request) {
        st.calls.push(Call {
            to: to.to_owned(),
            status,
            code,
            raw_body: req.body_text(),
            received_at: req.received_at,
        });
        self.state.notify();
    }
}

/// What both fakes offer, on a [`Shared`].
macro_rules! common_methods {
    ($reply:ty) => {
        /// The base URL to give the provider in place of the real API.
        pub fn api_base(&self) -> String {
            self.http.url()
        }

        /// The underlying HTTP fake (every raw request).
        pub fn http(&self) -> &FakeHttp {
            &self.http
        }

        /// Queues an answer for the next authenticated request (in order, one each).
        pub fn push(&self, reply: $reply) {
            self.shared.state.lock().queue.push_back(reply);
        }

        /// Queues `n` copies of an answer.
        pub fn push_n(&self, n: usize, reply: $reply) {
            self.shared.state.lock().queue.extend(std::iter::repeat_n(reply, n));
        }

        /// Answers `503` to everything for `d` from now.
        pub fn outage(&self, d: Duration) {
            self.shared.state.lock().outage_until = Some(Instant::now() + d);
        }

        /// Makes `number` a number the provider rejects as invalid.
        pub fn invalid_number(&self, number: &str) {
            self.shared.state.lock().invalid.insert(number.to_owned());
        }

        /// The accepted SMS, in order.
        pub fn messages(&self) -> Vec<Sms> {
            self.shared.state.lock().messages.clone()
        }

        /// The accepted SMS to `number`.
        pub fn messages_to(&self, number: &str) -> Vec<Sms> {
            self.shared.state.lock().messages.iter().filter(|m| m.to == number).cloned().collect()
        }

        /// Every authenticated request with its answer, in order.
        pub fn calls(&self) -> Vec<Call> {
            self.shared.state.lock().calls.clone()
        }

        /// Waits until at least `n` SMS were accepted or `timeout` passed; returns them.
        pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Sms> {
            self.shared.state.wait_until(timeout, |st| st.messages.len() >= n).messages.clone()
        }

        /// Waits until at least `n` authenticated requests arrived or `timeout` passed.
        pub fn wait_for_calls(&self, n: usize, timeout: Duration) -> Vec<Call> {
            self.shared.state.wait_until(timeout, |st| st.calls.len() >= n).calls.clone()
        }

        /// Forgets messages and calls (programming stays).
        pub fn clear(&self) {
            let mut st = self.shared.state.lock();
            st.messages.clear();
            st.calls.clear();
        }
    };
}

/// A loopback fake of Twilio's Messages API; see the [module docs](self).
pub struct FakeTwilio {
    http: FakeHttp,
    shared: Arc<Shared<TwilioReply>>,
}

impl fmt::Debug for FakeTwilio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.state.lock();
        f.debug_struct("FakeTwilio")
            .field("api_base", &self.http.url())
            .field("messages", &st.messages.len())
            .field("calls", &st.calls.len())
            .finish_non_exhaustive()
    }
}

impl FakeTwilio {
    /// Starts a fake that accepts [`TWILIO_ACCOUNT_SID`] / [`TWILIO_AUTH_TOKEN`].
    pub fn start() -> FakeTwilio {
        FakeTwilio::start_with(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)
    }

    /// Starts a fake that accepts these credentials (others get 401 / 20003).
    pub fn start_with(account_sid: &str, auth_token: &str) -> FakeTwilio {
        let http = FakeHttp::start();
        let shared = Arc::new(Shared {
            account: account_sid.to_owned(),
            user: account_sid.to_owned(),
            password: auth_token.to_owned(),
            state: Recorded::new(State::default()),
        });
        let s = Arc::clone(&shared);
        http.respond_with(move |req| twilio_answer(&s, req));
        FakeTwilio { http, shared }
    }

    /// The account SID it accepts.
    pub fn account_sid(&self) -> &str {
        &self.shared.account
    }

    /// The auth token it accepts.
    pub fn auth_token(&self) -> &str {
        &self.shared.password
    }

    common_methods!(TwilioReply);
}

/// A loopback fake of Exotel's SMS API; see the [module docs](self).
pub struct FakeExotel {
    http: FakeHttp,
    shared: Arc<Shared<ExotelReply>>,
}

impl fmt::Debug for FakeExotel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.state.lock();
        f.debug_struct("FakeExotel")
            .field("api_base", &self.http.url())
            .field("messages", &st.messages.len())
            .field("calls", &st.calls.len())
            .finish_non_exhaustive()
    }
}

impl FakeExotel {
    /// Starts a fake that accepts [`EXOTEL_SID`], [`EXOTEL_API_KEY`] and [`EXOTEL_API_TOKEN`].
    pub fn start() -> FakeExotel {
        FakeExotel::start_with(EXOTEL_SID, EXOTEL_API_KEY, EXOTEL_API_TOKEN)
    }

    /// Starts a fake that accepts these credentials (others get 401).
    pub fn start_with(sid: &str, api_key: &str, api_token: &str) -> FakeExotel {
        let http = FakeHttp::start();
        let shared = Arc::new(Shared {
            account: sid.to_owned(),
            user: api_key.to_owned(),
            password: api_token.to_owned(),
            state: Recorded::new(State::default()),
        });
        let s = Arc::clone(&shared);
        http.respond_with(move |req| exotel_answer(&s, req));
        FakeExotel { http, shared }
    }

    /// The account SID it accepts.
    pub fn sid(&self) -> &str {
        &self.shared.account
    }

    /// The API key it accepts.
    pub fn api_key(&self) -> &str {
        &self.shared.user
    }

    /// The API token it accepts.
    pub fn api_token(&self) -> &str {
        &self.shared.password
    }

    /// Answers every success in the list form `[{"SMSMessage":{…}}]` (default: the object form).
    pub fn list_form(&self, on: bool) {
        self.shared.state.lock().list_form = on;
    }

    common_methods!(ExotelReply);
}

/// The GSM 03.38 basic set (letters, digits and space are checked separately).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà";
const GSM_EXTENDED: &str = "^{}\\[~]|€\u{0c}";

/// The encoding (`GSM-7` or `UCS-2`) and number of segments of an SMS body, computed the way
/// carriers do: 160 septets (extension chars count 2) or 70 UTF-16 units in one segment,
/// 153 / 67 per segment beyond.
pub fn gsm_segments(body: &str) -> (&'static str, usize) {
    let mut septets = 0;
    let mut gsm = true;
    for c in body.chars() {
        if c.is_ascii_alphanumeric() || c == ' ' || GSM_BASIC.contains(c) {
            septets += 1;
        } else if GSM_EXTENDED.contains(c) {
            septets += 2;
        } else {
            gsm = false;
            break;
        }
    }
    let (name, units, one, many) = if gsm { ("GSM-7", septets, 160, 153) } else { ("UCS-2", utf16_len(body), 70, 67) };
    (name, if units <= one { 1 } else { units.div_ceil(many) })
}

/// The Basic-auth user and password of a request.
fn basic_auth(req: &Request) -> Option<(String, String)> {
    let value = req.header("authorization")?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let text = String::from_utf8(base64::decode(b64)?).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

fn is_form(req: &Request) -> bool {
    req.header("content-type").is_some_and(|c| c.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn e164(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

fn twilio_error_reply(status: u16, code: u32, message: &str, retry_after: Option<u64>) -> Reply {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    });
    let r = Reply::json(status, &body.to_string());
    match retry_after {
        Some(s) => r.retry_after(s),
        None => r,
    }
}

fn twilio_answer(sh: &Shared<TwilioReply>, req: &Request) -> Reply {
    let path = format!("/2010-04-01/Accounts/{}/Messages.json", sh.account);
    let auth_ok = basic_auth(req).is_some_and(|(u, p)| u == sh.user && p == sh.password);
    if !auth_ok {
        return twilio_error_reply(401, 20003, "Authenticate", None);
    }
    if req.path != path {
        return twilio_error_reply(404, 20404, "The requested resource was not found", None);
    }
    if req.method != "POST" {
        return twilio_error_reply(405, 20004, "Method not allowed", None);
    }
    let form = req.form();
    let to = field(&form, "To").unwrap_or_default().to_owned();
    let mut st = sh.state.lock();
    let fail = |st: &mut State<TwilioReply>, status: u16, code: u32, msg: &str, ra: Option<u64>| {
        sh.record_call(st, &to, status, Some(code.to_string()), req);
        twilio_error_reply(status, code, msg, ra)
    };
    if st.outage_until.is_some_and(|t| Instant::now() < t) {
        sh.record_call(&mut st, &to, 503, None, req);
        return Reply::text(503, "Service Unavailable");
    }
    match st.queue.pop_front() {
        None | Some(TwilioReply::Accept) => {}
        Some(TwilioReply::Http(r)) => {
            sh.record_call(&mut st, &to, 0, None, req);
            return r;
        }
        Some(TwilioReply::Error { status, code, message, retry_after }) => {
            return fail(&mut st, status, code, &message, retry_after)
        }
    }
    if !is_form(req) {
        return fail(&mut st, 400, 20001, "Content-Type must be application/x-www-form-urlencoded", None);
    }
    if to.is_empty() {
        return fail(&mut st, 400, 21604, "A 'To' phone number is required.", None);
    }
    if !e164(&to) || st.invalid.contains(&to) {
        return fail(&mut st, 400, 21211, &format!("The 'To' number {to} is not a valid phone number."), None);
    }
    let from = field(&form, "From").unwrap_or_default().to_owned();
    let service = field(&form, "MessagingServiceSid").map(str::to_owned);
    if from.is_empty() && service.as_deref().is_none_or(str::is_empty) {
        return fail(&mut st, 400, 21603, "A 'From' phone number is required.", None);
    }
    let body = field(&form, "Body").unwrap_or_default().to_owned();
    if body.is_empty() {
        return fail(&mut st, 400, 21602, "Message body is required.", None);
    }
    if body.chars().count() > TWILIO_MAX_BODY {
        return fail(&mut st, 400, 21617, "The concatenated message body exceeds the 1600 character limit.", None);
    }
    st.next_id += 1;
    let sid = format!("SM{:032x}", st.next_id);
    let (encoding, segments) = gsm_segments(&body);
    let user = sh.user.clone();
    st.messages.push(Sms {
        sid: sid.clone(),
        from: from.clone(),
        messaging_service_sid: service.clone(),
        to: to.clone(),
        body: body.clone(),
        user,
        form: form.clone(),
        raw_body: req.body_text(),
        encoding,
        segments,
        received_at: req.received_at,
    });
    sh.record_call(&mut st, &to, 201, None, req);
    drop(st);
    let resource = json!({
        "account_sid": sh.account,
        "api_version": "2010-04-01",
        "body": body,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": if from.is_empty() { Json::Null } else { Json::from(from) },
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": segments.to_string(),
        "price": null,
        "sid": sid,
        "status": if service.is_some() { "accepted" } else { "queued" },
        "to": to,
        "uri": format!("/2010-04-01/Accounts/{}/Messages/{sid}.json", sh.account),
    });
    Reply::json(201, &resource.to_string())
}

fn exotel_error_reply(status: u16, code: &str, message: &str, retry_after: Option<u64>, xml: bool) -> Reply {
    let r = if xml {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<TwilioResponse><RestException><Status>{status}</Status>\
             <Message>{message}</Message></RestException></TwilioResponse>"
        );
        Reply::status(status).header("Content-Type", "application/xml").body(body)
    } else {
        let body = json!({"RestException": {"Status": status, "Message": message, "Code": code}});
        Reply::json(status, &body.to_string())
    };
    match retry_after {
        Some(s) => r.retry_after(s),
        None => r,
    }
}

fn exotel_answer(sh: &Shared<ExotelReply>, req: &Request) -> Reply {
    let base = format!("/v1/Accounts/{}/Sms/send", sh.account);
    let xml = req.path == base;
    if !xml && req.path != format!("{base}.json") {
        return exotel_error_reply(404, "NOT_FOUND", "The requested resource was not found", None, false);
    }
    let auth_ok = basic_auth(req).is_some_and(|(u, p)| u == sh.user && p == sh.password);
    if !auth_ok {
        return exotel_error_reply(401, "UNAUTHORIZED", "Authentication is required to view this resource", None, xml);
    }
    if req.method != "POST" {
        return exotel_error_reply(405, "METHOD_NOT_ALLOWED", "Method not allowed", None, xml);
    }
    let form = req.form();
    let to = field(&form, "To").unwrap_or_default().to_owned();
    let mut st = sh.state.lock();
    let fail = |st: &mut State<ExotelReply>, status: u16, code: &str, msg: &str, ra: Option<u64>, x: bool| {
        sh.record_call(st, &to, status, Some(code.to_owned()), req);
        exotel_error_reply(status, code, msg, ra, x)
    };
    if st.outage_until.is_some_and(|t| Instant::now() < t) {
        return fail(&mut st, 503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable", None, xml);
    }
    let mut as_list = st.list_form;
    match st.queue.pop_front() {
        None | Some(ExotelReply::Accept) => {}
        Some(ExotelReply::AcceptAsList) => as_list = true,
        Some(ExotelReply::Http(r)) => {
            sh.record_call(&mut st, &to, 0, None, req);
            return r;
        }
        Some(ExotelReply::Error { status, code, message, retry_after, xml: x }) => {
            return fail(&mut st, status, &code, &message, retry_after, x || xml)
        }
    }
    if !is_form(req) {
        return fail(&mut st, 400, "BAD_REQUEST", "Content-Type must be application/x-www-form-urlencoded", None, xml);
    }
    let from = field(&form, "From").unwrap_or_default().to_owned();
    let body = field(&form, "Body").unwrap_or_default().to_owned();
    if from.is_empty() || to.is_empty() || body.is_empty() {
        return fail(&mut st, 400, "BAD_REQUEST", "From, To and Body are required", None, xml);
    }
    let digits = to.strip_prefix('+').unwrap_or(&to);
    if digits.len() < 7 || !digits.bytes().all(|b| b.is_ascii_digit()) || st.invalid.contains(&to) {
        return fail(&mut st, 400, "INVALID_TO", &format!("'To' {to} is not a valid number"), None, xml);
    }
    if body.chars().count() > EXOTEL_MAX_BODY {
        return fail(&mut st, 400, "BODY_TOO_LONG", "Body is over 2000 characters", None, xml);
    }
    if field(&form, "EncodingType").is_some_and(|e| e != "plain" && e != "unicode") {
        return fail(&mut st, 400, "BAD_REQUEST", "EncodingType must be plain or unicode", None, xml);
    }
    st.next_id += 1;
    let sid = format!("{:032x}", st.next_id);
    let (encoding, segments) = gsm_segments(&body);
    st.messages.push(Sms {
        sid: sid.clone(),
        from: from.clone(),
        messaging_service_sid: None,
        to: to.clone(),
        body: body.clone(),
        user: sh.user.clone(),
        form: form.clone(),
        raw_body: req.body_text(),
        encoding,
        segments,
        received_at: req.received_at,
    });
    sh.record_call(&mut st, &to, 200, None, req);
    drop(st);
    if xml {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<TwilioResponse><SMSMessage><Sid>{sid}</Sid>\
             <Status>queued</Status></SMSMessage></TwilioResponse>"
        );
        return Reply::status(200).header("Content-Type", "application/xml").body(body);
    }
    let message = json!({
        "Sid": sid,
        "AccountSid": sh.account,
        "From": format!("/{}/{from}", sh.account),
        "To": to,
        "Body": body,
        "Status": "queued",
        "DetailedStatusCode": 21010,
        "DetailedStatus": "PENDING_TO_OPERATOR",
        "Direction": "outbound-api",
        "Price": null,
        "DltEntityId": field(&form, "DltEntityId"),
        "DltTemplateId": field(&form, "DltTemplateId"),
        "Uri": format!("/v1/Accounts/{}/SMS/Messages/{sid}.json", sh.account),
    });
    let answer = if as_list { json!([{ "SMSMessage": message }]) } else { json!({ "SMSMessage": message }) };
    Reply::json(200, &answer.to_string())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};

    use super::*;

    fn b64(s: &str) -> String {
        base64::encode(s.as_bytes())
    }

    fn post(addr: SocketAddr, path: &str, auth: (&str, &str), body: &str) -> (u16, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Basic {}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            b64(&format!("{}:{}", auth.0, auth.1)),
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp[9..12].parse().unwrap();
        (status, resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
    }

    #[test]
    fn segments() {
        assert_eq!(gsm_segments(&"a".repeat(160)), ("GSM-7", 1));
        assert_eq!(gsm_segments(&"a".repeat(161)), ("GSM-7", 2));
        assert_eq!(gsm_segments(&"{".repeat(80)), ("GSM-7", 1));
        assert_eq!(gsm_segments(&"{".repeat(81)), ("GSM-7", 2));
        assert_eq!(gsm_segments(&"é".repeat(160)), ("GSM-7", 1));
        assert_eq!(gsm_segments(&"ł".repeat(70)), ("UCS-2", 1));
        assert_eq!(gsm_segments(&"ł".repeat(71)), ("UCS-2", 2));
        assert_eq!(gsm_segments(&"👍".repeat(35)), ("UCS-2", 1));
        assert_eq!(gsm_segments(&"👍".repeat(36)), ("UCS-2", 2));
    }

    #[test]
    fn twilio_answers_like_twilio() {
        let fake = FakeTwilio::start();
        let path = format!("/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages.json");
        let auth = (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN);
        let (st, body) = post(fake.http().addr(), &path, auth, "To=%2B15558675310&From=%2B15017122661&Body=hi+there");
        assert_eq!(st, 201, "{body}");
        let v: Json = serde_json::from_str(&body).unwrap();
        assert_eq!((v["status"].as_str(), v["num_segments"].as_str()), (Some("queued"), Some("1")));
        assert!(v["sid"].as_str().unwrap().starts_with("SM") && v["error_code"].is_null());
        let m = &fake.messages()[0];
        assert_eq!((m.to.as_str(), m.from.as_str(), m.body.as_str()), ("+15558675310", "+15017122661", "hi there"));
        assert_eq!(m.user, TWILIO_ACCOUNT_SID);

        let (st, body) = post(fake.http().addr(), &path, (TWILIO_ACCOUNT_SID, "wrong"), "To=%2B1555&Body=x");
        let v: Json = serde_json::from_str(&body).unwrap();
        assert_eq!((st, v["code"].as_u64()), (401, Some(20003)));
        // A raw "+" is a space once decoded: not E.164.
        let (st, body) = post(fake.http().addr(), &path, auth, "To=+15558675310&From=%2B1501&Body=x");
        let v: Json = serde_json::from_str(&body).unwrap();
        assert_eq!((st, v["code"].as_u64()), (400, Some(21211)));
        let (_, body) = post(fake.http().addr(), &path, auth, "To=%2B15558675310&Body=x");
        assert!(body.contains("21603"), "{body}");
        let long = "x".repeat(1601);
        let (_, body) = post(fake.http().addr(), &path, auth, &format!("To=%2B15558675310&From=a&Body={long}"));
        assert!(body.contains("21617"), "{body}");
        fake.push(TwilioReply::too_many_requests(Some(3)));
        let mut s = TcpStream::connect(fake.http().addr()).unwrap();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Basic {}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            b64(&format!("{TWILIO_ACCOUNT_SID}:{TWILIO_AUTH_TOKEN}"))
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(
            resp.starts_with("HTTP/1.1 429") && resp.contains("Retry-After: 3") && resp.contains("20429"),
            "{resp}"
        );
        assert_eq!(fake.messages().len(), 1);
        assert_eq!(fake.calls().len(), 5, "the request with wrong credentials is not a call");
    }

    #[test]
    fn exotel_answers_like_exotel() {
        let fake = FakeExotel::start();
        let path = format!("/v1/Accounts/{EXOTEL_SID}/Sms/send.json");
        let auth = (EXOTEL_API_KEY, EXOTEL_API_TOKEN);
        let (st, body) = post(fake.http().addr(), &path, auth, "From=EXO&To=%2B919876543210&Body=%E0%A4%A8+x");
        assert_eq!(st, 200, "{body}");
        let v: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(v["SMSMessage"]["Status"], "queued");
        assert_eq!(fake.messages()[0].encoding, "UCS-2");
        fake.push(ExotelReply::AcceptAsList);
        let (_, body) = post(fake.http().addr(), &path, auth, "From=EXO&To=%2B919876543210&Body=x");
        let v: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(v[0]["SMSMessage"]["Status"], "queued");
        let (st, body) = post(fake.http().addr(), &path, (EXOTEL_API_KEY, "nope"), "From=E&To=1&Body=x");
        assert_eq!(st, 401);
        assert!(body.contains("RestException"));
        fake.push(ExotelReply::rate_limited(Some(2)));
        let (st, body) = post(fake.http().addr(), &path, auth, "From=EXO&To=%2B919876543210&Body=x");
        assert_eq!(st, 429);
        assert!(body.contains("RATE_LIMIT_EXCEEDED"));
        let (st, body) = post(fake.http().addr(), &path, auth, "To=%2B919876543210&Body=x");
        assert_eq!(st, 400, "{body}");
        let (st, body) =
            post(fake.http().addr(), &format!("/v1/Accounts/{EXOTEL_SID}/Sms/send"), auth, "From=EXO&To=%2B91&Body=x");
        assert_eq!(st, 400);
        assert!(body.contains("<RestException>"), "{body}");
        assert_eq!(fake.messages().len(), 2);
    }
}
