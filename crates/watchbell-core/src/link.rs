//! [`TicketLink`]: the link from an alert to its ticket in the ticket viewer, and the one
//! definition of a ticket's fingerprint.
//!
//! A ticket is one fingerprint in one app. The fingerprint is the user's fingerprint field when
//! the event has one, otherwise a hash of level, target, file and line (and a salt); never the
//! message. The ticketing layer stores tickets under [`ticket_fingerprint`] and the alert sinks
//! link to `{base_url}/fp/{app_id}/{fingerprint}` with the same function, so an alert knows its
//! ticket without asking the database (the viewer answers that address with a redirect to the
//! ticket's page).
//!
//! The link is built on the sink's worker, never on the caller's thread. The base URL is
//! normalised once when the link is made: characters that cannot stand in a URL (spaces,
//! quotes, `<`, `>`, non-ASCII, …) are percent-encoded, and the app id is percent-encoded as a
//! path segment. What is left (`&`, `'`, …) each sink escapes for its medium (HTML attribute,
//! Slack link syntax, …).
//!
//! watchbell's own notices ("N records dropped", "cap reached") have no ticket: they get no
//! link ([`TicketLink::ticket_url`] is `None`) and are not told to the
//! [`notified`](crate::notified) journal. A rate limiter's summary is a real record and does.
//!
//! ```
//! use watchbell_core::link::TicketLink;
//! use watchbell_core::{Level, Record};
//!
//! let link = TicketLink::new("https://tickets.example.com/", "shop api").unwrap().salt("v2");
//! let mut record = Record::new(Level::ERROR, "shop::pay", "declined");
//! record.file = Some("src/pay.rs".into());
//! record.line = Some(42);
//! let url = link.url(&record);
//! assert!(url.starts_with("https://tickets.example.com/fp/shop%20api/"));
//! assert_eq!(url.len(), "https://tickets.example.com/fp/shop%20api/".len() + 16);
//! assert_eq!(link.fingerprint(&record), watchbell_core::link::ticket_fingerprint(&record, b"v2", None));
//! ```

use std::fmt::{self, Write as _};
use std::time::SystemTime;

use crate::{Fingerprint, Level, Record};

/// The ticket fingerprint of a record: the value of the field `fingerprint_field` if the record
/// has it (and it is not empty), otherwise level + target + file + line, each with `salt`.
/// 16 lowercase hex digits.
pub fn ticket_fingerprint(record: &Record, salt: &[u8], fingerprint_field: Option<&str>) -> String {
    if let Some(name) = fingerprint_field {
        if let Some(v) = record.fields.get(name) {
            let text = v.to_string();
            if !text.is_empty() {
                return Fingerprint::compute(Level::TRACE, "\u{0}user-fingerprint", Some(&text), None, salt).to_hex();
            }
        }
    }
    Fingerprint::compute(record.level, &record.target, record.file.as_deref(), record.line, salt).to_hex()
}

/// Where an alert links to its ticket: the viewer's public base URL, the ticketing layer's app
/// id, and the salt and fingerprint field it groups tickets by (give the same ones, or the
/// links point at tickets that do not exist).
#[derive(Clone, PartialEq, Eq)]
pub struct TicketLink {
    base_url: String,
    app_id: String,
    app_segment: String,
    salt: Vec<u8>,
    fingerprint_field: Option<String>,
}

impl fmt::Debug for TicketLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketLink")
            .field("base_url", &self.base_url)
            .field("app_id", &self.app_id)
            .field("fingerprint_field", &self.fingerprint_field)
            .finish_non_exhaustive()
    }
}

impl TicketLink {
    /// A link to the viewer at `base_url` (absolute `http://` or `https://` with a host) for
    /// the tickets of `app_id`. A trailing `/` of the base is ignored.
    pub fn new(base_url: impl AsRef<str>, app_id: impl Into<String>) -> Result<TicketLink, String> {
        let base_url = normalise_base(base_url.as_ref())?;
        let app_id = app_id.into();
        let app_segment = encode_segment(&app_id);
        Ok(TicketLink { base_url, app_id, app_segment, salt: Vec::new(), fingerprint_field: None })
    }

    /// The salt the ticketing layer mixes into fingerprints (default: none).
    pub fn salt(mut self, salt: impl AsRef<[u8]>) -> Self {
        self.salt = salt.as_ref().to_vec();
        self
    }

    /// The field whose value is the fingerprint when an event has it (default: none).
    pub fn fingerprint_field(mut self, name: impl Into<String>) -> Self {
        self.fingerprint_field = Some(name.into());
        self
    }

    /// The base URL as normalised (no trailing `/`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The app id.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The ticket fingerprint of `record` (see [`ticket_fingerprint`]).
    pub fn fingerprint(&self, record: &Record) -> String {
        ticket_fingerprint(record, &self.salt, self.fingerprint_field.as_deref())
    }

    /// The link to the ticket of `record`: `{base_url}/fp/{app_id}/{fingerprint}`.
    pub fn url(&self, record: &Record) -> String {
        self.url_for(&self.fingerprint(record))
    }

    /// The link to the ticket of `record` if it has one: `None` for watchbell's own notices
    /// (records dropped, a cap reached: [`Origin::Watchbell`](crate::Origin::Watchbell) without
    /// a suppressed count), which no ticketing layer stores. A rate limiter's summary is the
    /// last suppressed record itself and links to its ticket. What the sinks show.
    pub fn ticket_url(&self, record: &Record) -> Option<String> {
        has_ticket(record).then(|| self.url(record))
    }

    /// The link to the ticket with `fingerprint`.
    pub fn url_for(&self, fingerprint: &str) -> String {
        format!("{}/fp/{}/{}", self.base_url, self.app_segment, encode_segment(fingerprint))
    }

    /// Tells the [`notified`](crate::notified) journal that `destination` was delivered the
    /// alerts of `records` (call it after a successful delivery only). Does nothing when no
    /// ticketing layer reads the journal.
    pub fn notified<'a>(&self, destination: &str, records: impl IntoIterator<Item = &'a Record>) {
        if !crate::notified::has_subscribers() {
            return;
        }
        let time = SystemTime::now();
        for r in records.into_iter().filter(|r| has_ticket(r)) {
            crate::notified::push(crate::notified::Notified {
                app_id: self.app_id.clone(),
                fingerprint: self.fingerprint(r),
                destination: destination.to_owned(),
                time,
            });
        }
    }
}

/// Whether a record can have a ticket: not one of watchbell's own notices.
fn has_ticket(r: &Record) -> bool {
    r.origin != crate::Origin::Watchbell || r.suppressed > 0
}

/// Checks and normalises a base URL: `http(s)://host…`, no control characters; characters that
/// cannot stand in a URL percent-encoded; the trailing `/`s, query and fragment refused or
/// dropped as described in the errors.
fn normalise_base(url: &str) -> Result<String, String> {
    let url = url.trim();
    if url.is_empty() {
        return Err("empty URL: expected https://HOST[/PATH]".into());
    }
    if url.chars().any(char::is_control) {
        return Err("the URL contains a control character".into());
    }
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) => {
            let scheme: String = scheme.chars().take(20).collect();
            return Err(format!("unsupported URL scheme {scheme:?}: expected http:// or https://"));
        }
        None => return Err("not an absolute URL (no scheme://): expected https://HOST[/PATH]".into()),
    };
    let scheme = &url[..url.len() - rest.len() - 3];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err("the URL has no host: expected https://HOST[/PATH]".into());
    }
    if authority.contains('@') {
        return Err("the URL holds credentials (user@); a public link must not".into());
    }
    if rest.contains(['?', '#']) {
        return Err("the URL has a query or fragment; expected https://HOST[/PATH]".into());
    }
    let mut out = String::with_capacity(url.len() + 8);
    out.push_str(&scheme.to_ascii_lowercase());
    out.push_str("://");
    for c in rest.trim_end_matches('/').chars() {
        if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%[]".contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    Ok(out)
}

/// Percent-encodes a path segment: everything but `A-Z a-z 0-9 - . _ ~`.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_base_and_app_id_are_percent_encoded() {
        let link = TicketLink::new("https://t.example/a b\"<x>&y'/", "a\"<b>&c d/é").unwrap();
        let url = link.url_for("0011223344556677");
        assert_eq!(url, "https://t.example/a%20b%22%3Cx%3E&y'/fp/a%22%3Cb%3E%26c%20d%2F%C3%A9/0011223344556677");
        assert!(!url.contains([' ', '"', '<', '>']));
    }

    #[test]
    fn bad_base_urls_are_refused_with_a_reason() {
        for (url, want) in [
            ("", "empty"),
            ("tickets.example", "no scheme"),
            ("ftp://t.example", "unsupported URL scheme"),
            ("https://", "no host"),
            ("https://u:p@t.example", "credentials"),
            ("https://t.example/?q=1", "query"),
            ("https://t.example/\nx", "control"),
        ] {
            let err = TicketLink::new(url, "app").unwrap_err();
            assert!(err.contains(want), "{url:?}: {err}");
        }
        assert_eq!(TicketLink::new("HTTP://t.example//", "a").unwrap().base_url(), "http://t.example");
    }

    #[test]
    fn watchbells_own_notices_have_no_ticket() {
        let link = TicketLink::new("https://t.example", "notices-app").unwrap();
        let journal = crate::notified::subscribe(10);
        let mut notice = Record::new(Level::WARN, "watchbell", "3 records dropped");
        notice.origin = crate::Origin::Watchbell;
        let mut summary = Record::new(Level::ERROR, "app", "the last suppressed one");
        summary.origin = crate::Origin::Watchbell;
        summary.suppressed = 4;
        let plain = Record::new(Level::ERROR, "app", "x");
        assert_eq!(link.ticket_url(&notice), None);
        assert_eq!(link.ticket_url(&summary), Some(link.url(&summary)));
        assert_eq!(link.ticket_url(&plain), Some(link.url(&plain)));
        link.notified("slack", [&notice, &summary, &plain]);
        let got: Vec<_> = journal.drain().into_iter().filter(|n| n.app_id == "notices-app").collect();
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn the_fingerprint_field_wins_over_the_callsite() {
        let mut a = Record::new(Level::ERROR, "x", "m");
        a.file = Some("a.rs".into());
        a.line = Some(1);
        let mut b = Record::new(Level::WARN, "y", "m");
        b.file = Some("b.rs".into());
        b.line = Some(2);
        let link = TicketLink::new("https://t.example", "app").unwrap().fingerprint_field("fp");
        assert_ne!(link.fingerprint(&a), link.fingerprint(&b));
        a.fields.set("fp", crate::Value::Str("checkout".into()));
        let mut b2 = b.clone();
        b2.fields.set("fp", crate::Value::Str("checkout".into()));
        assert_eq!(link.fingerprint(&a), link.fingerprint(&b2));
        assert_ne!(link.fingerprint(&b2), link.clone().salt("s").fingerprint(&b2));
    }
}
