//! The [`SmsProvider`] trait and the two providers watchbell ships: [`Twilio`] and [`Exotel`].

use std::fmt;

use serde_json::Value as Json;
use watchbell_core::http::{self, HttpClient, HttpResponse, Method};
use watchbell_core::secret::{redact_url, scrub, Secret};
use watchbell_core::{BuildError, Outcome};

use crate::encoding::Encoding;
use crate::CRATE;

/// One SMS to send: the recipient, the body (already fitted to the configured segments) and
/// its encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmsMessage<'a> {
    /// The recipient, in E.164 (`+15558675310`).
    pub to: &'a str,
    /// The text.
    pub body: &'a str,
    /// The encoding the text needs.
    pub encoding: Encoding,
}

/// A way to send SMS. [`Twilio`] and [`Exotel`] implement it; implement it to add another
/// gateway and register it with [`SmsBuilder::provider`](crate::SmsBuilder::provider) and a
/// [`route`](crate::SmsBuilder::route).
///
/// `send` runs on watchbell's delivery worker (one per provider and recipient), never on the
/// application's thread; it may block, within the client's timeout. It answers an [`Outcome`]:
/// [`Outcome::Delivered`] when the gateway accepted the message, [`Outcome::Retry`] when trying
/// again may work (rate limits, 5xx, network errors; give the delay the gateway asked for), and
/// [`Outcome::Permanent`] otherwise. Reasons must not contain credentials.
///
/// ```
/// use watchbell_core::http::{HttpClient, Method};
/// use watchbell_core::Outcome;
/// use watchbell_sms::{SmsMessage, SmsProvider};
///
/// /// A gateway that takes JSON.
/// struct MyGateway {
///     url: String,
/// }
///
/// impl SmsProvider for MyGateway {
///     fn name(&self) -> &str {
///         "mygateway"
///     }
///
///     fn send(&self, client: &HttpClient, sms: &SmsMessage<'_>) -> Outcome {
///         let body = serde_json::json!({"to": sms.to, "text": sms.body}).to_string();
///         let req = client.request(Method::POST, &self.url).header("Content-Type", "application/json").body(body);
///         match client.send(req, &self.url) {
///             Ok(resp) => resp.outcome("mygateway"),
///             Err(e) => e.outcome(),
///         }
///     }
/// }
/// ```
pub trait SmsProvider: Send + Sync + 'static {
    /// The provider's name, used in [routes](crate::SmsBuilder::route), stats and errors
    /// (`twilio`, `exotel`). Names are unique within a layer.
    fn name(&self) -> &str;

    /// The most characters one message may hold (default 1,600, Twilio's): the configured
    /// [`segments`](crate::SmsBuilder::segments) must fit in it.
    fn max_chars(&self) -> usize {
        1600
    }

    /// Checks the configuration at build time (URLs against the client's plain-HTTP policy,
    /// credentials present). The default accepts everything.
    fn check(&self, client: &HttpClient) -> Result<(), BuildError> {
        let _ = client;
        Ok(())
    }

    /// Sends one SMS and says how it went.
    fn send(&self, client: &HttpClient, sms: &SmsMessage<'_>) -> Outcome;
}

/// `application/x-www-form-urlencoded` text of `pairs`, as both providers take it (core's
/// [`form_urlencode`](watchbell_core::text::form_urlencode)).
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    watchbell_core::text::form_urlencode(pairs)
}

/// A JSON field as text (Twilio and Exotel send codes as numbers or strings).
fn json_text(v: Option<&Json>) -> Option<String> {
    match v? {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Twilio's API address.
pub const TWILIO_API_BASE: &str = "https://api.twilio.com";

/// Who a Twilio message is from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TwilioSender {
    None,
    From(String),
    Service(String),
}

/// Twilio Programmable SMS: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP
/// Basic `AccountSid:AuthToken` and the form fields `To`, `From` (or `MessagingServiceSid`)
/// and `Body`.
///
/// Answers: 2xx is delivered; 429 (Twilio's error 20429) and 5xx are retried, after
/// `Retry-After` when Twilio sends one; 401 (bad credentials), 21211 (invalid `To`), 21617
/// (body too long) and every other 4xx are permanent.
///
/// ```
/// use watchbell_sms::Twilio;
/// let twilio = Twilio::new("AC0123456789abcdef0123456789abcdef", "your-auth-token").from("+15017122661");
/// assert!(!format!("{twilio:?}").contains("your-auth-token"));
/// ```
#[derive(Clone)]
pub struct Twilio {
    account_sid: String,
    auth_token: Secret<String>,
    sender: TwilioSender,
    api_base: String,
}

impl fmt::Debug for Twilio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Twilio")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &self.auth_token)
            .field("sender", &self.sender)
            .field("api_base", &redact_url(&self.api_base))
            .finish()
    }
}

impl Twilio {
    /// Twilio with an account SID (`AC` and 32 hex digits) and its auth token. Set the sender
    /// with [`from`](Twilio::from) or [`messaging_service_sid`](Twilio::messaging_service_sid).
    pub fn new(account_sid: impl Into<String>, auth_token: impl Into<String>) -> Self {
        Twilio {
            account_sid: account_sid.into().trim().to_owned(),
            auth_token: Secret::new(auth_token.into()),
            sender: TwilioSender::None,
            api_base: TWILIO_API_BASE.to_owned(),
        }
    }

    /// Sends from this Twilio number (E.164) or alphanumeric sender id (`From`).
    pub fn from(mut self, from: impl Into<String>) -> Self {
        self.sender = TwilioSender::From(from.into());
        self
    }

    /// Sends through this Messaging Service (`MessagingServiceSid`, `MG...`) instead of a
    /// `From` number.
    pub fn messaging_service_sid(mut self, sid: impl Into<String>) -> Self {
        self.sender = TwilioSender::Service(sid.into());
        self
    }

    /// The API's base URL (default [`TWILIO_API_BASE`]); tests point it at a fake.
    pub fn api_base(mut self, url: impl Into<String>) -> Self {
        self.api_base = url.into().trim_end_matches('/').to_owned();
        self
    }

    fn url(&self) -> String {
        format!("{}/2010-04-01/Accounts/{}/Messages.json", self.api_base, self.account_sid)
    }

    fn answer(&self, resp: &HttpResponse) -> Outcome {
        if (200..300).contains(&resp.status) {
            return Outcome::Delivered;
        }
        let parsed: Option<Json> = serde_json::from_slice(&resp.body).ok();
        let code = parsed.as_ref().and_then(|j| json_text(j.get("code")));
        let message = parsed.as_ref().and_then(|j| json_text(j.get("message")));
        let detail = match (&code, &message) {
            (Some(c), Some(m)) => format!("error {c}: {m}"),
            (Some(c), None) => format!("error {c}"),
            (None, Some(m)) => m.clone(),
            (None, None) => resp.text(),
        };
        let detail = scrub(detail, &[self.auth_token.expose()]);
        let what = match (resp.status, code.as_deref()) {
            (401, _) | (_, Some("20003")) => "Twilio rejected the credentials",
            (_, Some("21211")) => "Twilio: invalid To number",
            (_, Some("21617")) => "Twilio: body too long",
            _ => "Twilio",
        };
        // 20429 is "too many requests" whatever the status says.
        let status = if code.as_deref() == Some("20429") { 429 } else { resp.status };
        http::classify(status, resp.retry_after(), what, &detail)
    }
}

impl SmsProvider for Twilio {
    fn name(&self) -> &str {
        "twilio"
    }

    fn max_chars(&self) -> usize {
        1600
    }

    fn check(&self, client: &HttpClient) -> Result<(), BuildError> {
        let sid = &self.account_sid;
        if !(sid.len() == 34 && sid.starts_with("AC") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(BuildError::new(CRATE, "twilio.account_sid", "expected AC followed by 32 hex digits"));
        }
        if self.auth_token.expose().trim().is_empty() {
            return Err(BuildError::new(CRATE, "twilio.auth_token", "the auth token is empty"));
        }
        match &self.sender {
            TwilioSender::None => {
                return Err(BuildError::new(
                    CRATE,
                    "twilio.from",
                    "a sender is required: Twilio::from(\"+1...\") or Twilio::messaging_service_sid(\"MG...\")",
                ))
            }
            TwilioSender::From(f) | TwilioSender::Service(f) if f.trim().is_empty() => {
                return Err(BuildError::new(CRATE, "twilio.from", "the sender is empty"))
            }
            _ => {}
        }
        client.check_url(&self.url()).map_err(|e| BuildError::new(CRATE, "twilio.api_base", e))
    }

    fn send(&self, client: &HttpClient, sms: &SmsMessage<'_>) -> Outcome {
        let sender = match &self.sender {
            TwilioSender::From(f) => ("From", f.as_str()),
            TwilioSender::Service(s) => ("MessagingServiceSid", s.as_str()),
            TwilioSender::None => ("From", ""),
        };
        let body = form_encode(&[("To", sms.to), sender, ("Body", sms.body)]);
        let url = self.url();
        let req = client
            .request(Method::POST, &url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(body);
        match client.send(req, &url) {
            Ok(resp) => self.answer(&resp),
            // A refused TLS handshake (an untrusted certificate, mTLS) cannot heal by retrying.
            Err(e) if e.tls => Outcome::permanent(scrub(e.reason, &[self.auth_token.expose()])),
            Err(e) => Outcome::retry(scrub(e.reason, &[self.auth_token.expose()])),
        }
    }
}

/// Exotel's default API host (Singapore); `api.in.exotel.com` is Mumbai.
pub const EXOTEL_SUBDOMAIN: &str = "api.exotel.com";

/// Exotel SMS: `POST https://<subdomain>/v1/Accounts/<sid>/Sms/send.json` with HTTP Basic
/// `api_key:api_token` (in a header, never in the URL) and the form fields `From`, `To`,
/// `Body`, `EncodingType=unicode` for UCS-2 text, and `DltEntityId` / `DltTemplateId` when set
/// (Indian numbers need a registered DLT template).
///
/// Answers: 2xx is delivered, whether the body is `{"SMSMessage":{...}}` or a list of them
/// (an unreadable 2xx body too: the message was accepted, and sending again would duplicate
/// it); 429 and 503 (and other 5xx) are retried after `Retry-After`; 400, 401, 403 and other
/// 4xx are permanent. JSON (`RestException`) and XML error bodies are both read.
///
/// ```
/// use watchbell_sms::Exotel;
/// let exotel = Exotel::new("acme1", "api-key", "api-token").from("EXOTEL").subdomain("api.in.exotel.com");
/// assert!(!format!("{exotel:?}").contains("api-token"));
/// ```
#[derive(Clone)]
pub struct Exotel {
    sid: String,
    api_key: Secret<String>,
    api_token: Secret<String>,
    from: String,
    subdomain: String,
    api_base: Option<String>,
    dlt: Option<(String, String)>,
}

impl fmt::Debug for Exotel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exotel")
            .field("sid", &self.sid)
            .field("api_key", &self.api_key)
            .field("api_token", &self.api_token)
            .field("from", &self.from)
            .field("subdomain", &self.subdomain)
            .field("api_base", &self.api_base.as_deref().map(redact_url))
            .field("dlt", &self.dlt)
            .finish()
    }
}

impl Exotel {
    /// Exotel with an account SID, an API key and its token. Set the sender with
    /// [`from`](Exotel::from).
    pub fn new(sid: impl Into<String>, api_key: impl Into<String>, api_token: impl Into<String>) -> Self {
        Exotel {
            sid: sid.into().trim().to_owned(),
            api_key: Secret::new(api_key.into()),
            api_token: Secret::new(api_token.into()),
            from: String::new(),
            subdomain: EXOTEL_SUBDOMAIN.to_owned(),
            api_base: None,
            dlt: None,
        }
    }

    /// Sends from this ExoPhone or sender id (`From`).
    pub fn from(mut self, from: impl Into<String>) -> Self {
        self.from = from.into();
        self
    }

    /// The API host (default [`EXOTEL_SUBDOMAIN`]; `api.in.exotel.com` for the Mumbai cluster).
    pub fn subdomain(mut self, host: impl Into<String>) -> Self {
        self.subdomain = host.into().trim().to_owned();
        self
    }

    /// A full base URL instead of `https://<subdomain>` (tests point it at a fake).
    pub fn api_base(mut self, url: impl Into<String>) -> Self {
        self.api_base = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// The DLT entity id and template id sent with every message (`DltEntityId`,
    /// `DltTemplateId`).
    pub fn dlt(mut self, entity_id: impl Into<String>, template_id: impl Into<String>) -> Self {
        self.dlt = Some((entity_id.into(), template_id.into()));
        self
    }

    fn url(&self) -> String {
        let base = self.api_base.clone().unwrap_or_else(|| format!("https://{}", self.subdomain));
        format!("{base}/v1/Accounts/{}/Sms/send.json", self.sid)
    }

    fn secrets(&self) -> [&str; 2] {
        [self.api_key.expose(), self.api_token.expose()]
    }

    fn answer(&self, resp: &HttpResponse) -> Outcome {
        let text = resp.text();
        let parsed: Option<Json> = serde_json::from_slice(&resp.body).ok();
        let exception = parsed.as_ref().and_then(|j| j.get("RestException"));
        let (status, detail) = match exception {
            Some(e) => {
                let status = e
                    .get("Status")
                    .and_then(|s| json_text(Some(s)))
                    .and_then(|s| s.parse::<u16>().ok())
                    .filter(|s| (400..600).contains(s))
                    .unwrap_or(if (200..300).contains(&resp.status) { 400 } else { resp.status });
                let msg = json_text(e.get("Message")).unwrap_or_default();
                let code = json_text(e.get("Code"));
                (status, code.map_or(msg.clone(), |c| format!("{c}: {msg}")))
            }
            None if (200..300).contains(&resp.status) => return Outcome::Delivered,
            None => (resp.status, xml_message(&text).unwrap_or(text)),
        };
        let what = match status {
            401 => "Exotel rejected the credentials",
            403 => "Exotel refused (inactive account or balance)",
            _ => "Exotel",
        };
        http::classify(status, resp.retry_after(), what, &scrub(detail, &self.secrets()))
    }
}

/// The `<Message>` of an XML `RestException`, if the body is one.
fn xml_message(body: &str) -> Option<String> {
    let start = body.find("<Message>")? + "<Message>".len();
    let end = body[start..].find("</Message>")? + start;
    Some(body[start..end].trim().to_owned())
}

impl SmsProvider for Exotel {
    fn name(&self) -> &str {
        "exotel"
    }

    fn max_chars(&self) -> usize {
        2000
    }

    fn check(&self, client: &HttpClient) -> Result<(), BuildError> {
        if self.sid.is_empty() || !self.sid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(BuildError::new(CRATE, "exotel.sid", "expected the account SID (letters, digits, _ or -)"));
        }
        if self.api_key.expose().trim().is_empty() {
            return Err(BuildError::new(CRATE, "exotel.api_key", "the API key is empty"));
        }
        if self.api_token.expose().trim().is_empty() {
            return Err(BuildError::new(CRATE, "exotel.api_token", "the API token is empty"));
        }
        if self.from.trim().is_empty() {
            return Err(BuildError::new(CRATE, "exotel.from", "a sender is required: Exotel::from(\"EXOPHONE\")"));
        }
        let host_ok = !self.subdomain.is_empty()
            && self.subdomain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if self.api_base.is_none() && !host_ok {
            return Err(BuildError::new(
                CRATE,
                "exotel.subdomain",
                "expected a host name such as api.exotel.com or api.in.exotel.com",
            ));
        }
        client.check_url(&self.url()).map_err(|e| BuildError::new(CRATE, "exotel.api_base", e))
    }

    fn send(&self, client: &HttpClient, sms: &SmsMessage<'_>) -> Outcome {
        let mut pairs = vec![("From", self.from.as_str()), ("To", sms.to), ("Body", sms.body)];
        if sms.encoding == Encoding::Ucs2 {
            pairs.push(("EncodingType", "unicode"));
        }
        if let Some((entity, template)) = &self.dlt {
            pairs.push(("DltEntityId", entity));
            pairs.push(("DltTemplateId", template));
        }
        let url = self.url();
        let req = client
            .request(Method::POST, &url)
            .basic_auth(self.api_key.expose(), Some(self.api_token.expose()))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(form_encode(&pairs));
        match client.send(req, &url) {
            Ok(resp) => self.answer(&resp),
            Err(e) if e.tls => Outcome::permanent(scrub(e.reason, &self.secrets())),
            Err(e) => Outcome::retry(scrub(e.reason, &self.secrets())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(
            form_encode(&[("To", "+15558675310"), ("From", "+15017122661"), ("Body", "ERROR: db timeout")]),
            "To=%2B15558675310&From=%2B15017122661&Body=ERROR%3A+db+timeout"
        );
        assert_eq!(form_encode(&[("a", "é&=👍~")]), "a=%C3%A9%26%3D%F0%9F%91%8D%7E");
    }

    #[test]
    fn xml_errors() {
        let xml = "<TwilioResponse><RestException><Status>403</Status><Message>Account inactive</Message></RestException></TwilioResponse>";
        assert_eq!(xml_message(xml).as_deref(), Some("Account inactive"));
        assert_eq!(xml_message("nothing"), None);
    }
}
