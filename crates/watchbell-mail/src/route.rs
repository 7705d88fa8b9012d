//! Recipients per record: a closure, rules by level, target and field, and the default list.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use lettre::message::Mailbox;
use watchbell_core::{Level, Record};

/// The closure of [`MailBuilder::route`](crate::MailBuilder::route).
pub(crate) type RouteFn = Arc<dyn Fn(&Record) -> Option<Vec<String>> + Send + Sync>;

/// A routing rule: the records it matches go to its own recipients instead of the default
/// [`to`](crate::MailBuilder::to) list. Every condition set must hold; a rule with no condition
/// matches every record. Added with [`MailBuilder::add_route`](crate::MailBuilder::add_route)
/// (or a `[[mail.route]]` table of `watchbell.toml`); the first rule that matches wins.
///
/// ```
/// use watchbell_core::{Level, Record, Value};
/// use watchbell_mail::Route;
///
/// let billing = Route::to(["billing-oncall@example.com"])
///     .level(Level::WARN)          // WARN and ERROR
///     .target("shop::billing")     // targets starting with this text
///     .field("tenant", "acme");    // a field (of the event or a span) with this value
/// let mut r = Record::new(Level::ERROR, "shop::billing::invoice", "payment failed");
/// r.fields.set("tenant", Value::Str("acme".into()));
/// assert!(billing.matches(&r));
/// r.level = Level::INFO;
/// assert!(!billing.matches(&r));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub(crate) to: Vec<String>,
    level: Option<Level>,
    target: Option<String>,
    fields: Vec<(String, String)>,
}

impl Route {
    /// A rule sending what it matches to these mailboxes (`ops@example.com` or
    /// `Name <ops@example.com>`; at least one, checked at build time).
    pub fn to<I, S>(recipients: I) -> Route
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Route { to: recipients.into_iter().map(Into::into).collect(), level: None, target: None, fields: Vec::new() }
    }

    /// Matches records at this level or more severe (`Level::WARN` takes WARN and ERROR).
    pub fn level(mut self, level: Level) -> Self {
        self.level = Some(level);
        self
    }

    /// Matches records whose target starts with this text (`"shop::billing"` takes
    /// `shop::billing` and `shop::billing::invoice`, and also `shop::billing_v2`: a plain
    /// prefix, as `EnvFilter`'s targets).
    pub fn target(mut self, prefix: impl Into<String>) -> Self {
        self.target = Some(prefix.into());
        self
    }

    /// Matches records with a field `name` (of the event, else of its spans, innermost first:
    /// [`Record::field`]) whose text is `value` (numbers and booleans as they print: `42`,
    /// `true`). Several `field` conditions must all hold.
    pub fn field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    /// Whether `record` meets every condition of this rule.
    pub fn matches(&self, record: &Record) -> bool {
        // tracing's Level orders ERROR as the smallest: "at least WARN" is `<= WARN`.
        self.level.is_none_or(|l| record.level <= l)
            && self.target.as_deref().is_none_or(|p| record.target.starts_with(p))
            && self.fields.iter().all(|(n, v)| record.field(n).is_some_and(|f| field_text_is(f, v)))
    }
}

fn field_text_is(value: &watchbell_core::Value, expected: &str) -> bool {
    match value.as_str() {
        Some(s) => s == expected,
        None => value.to_string() == expected,
    }
}

/// A rule with its recipients parsed.
pub(crate) struct Rule {
    pub(crate) route: Route,
    pub(crate) to: Vec<Mailbox>,
}

/// Chooses the recipients of each record.
pub(crate) struct Router {
    pub(crate) route_fn: Option<RouteFn>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) default: Vec<Mailbox>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("route_fn", &self.route_fn.is_some())
            .field("rules", &self.rules.len())
            .field("default", &self.default.len())
            .finish()
    }
}

impl Router {
    /// The recipients of `record`: the closure's answer, else the first matching rule's, else
    /// the default list. A closure that panics, answers `Some` of an empty list, or answers only
    /// addresses that do not parse, gives the next choice: a record is never left without
    /// recipients.
    pub(crate) fn recipients(&self, record: &Record) -> Vec<Mailbox> {
        if let Some(f) = &self.route_fn {
            if let Ok(Some(list)) = catch_unwind(AssertUnwindSafe(|| f(record))) {
                let parsed: Vec<Mailbox> = list
                    .iter()
                    .filter(|t| !t.contains(['\r', '\n']))
                    .filter_map(|t| t.trim().parse::<Mailbox>().ok())
                    .collect();
                if !parsed.is_empty() {
                    return parsed;
                }
            }
        }
        match self.rules.iter().find(|r| r.route.matches(record)) {
            Some(rule) => rule.to.clone(),
            None => self.default.clone(),
        }
    }
}

/// The identity of a recipient set: its addresses, lowercased, sorted and without repeats.
pub(crate) fn set_key(to: &[Mailbox]) -> Vec<String> {
    let mut key: Vec<String> = to.iter().map(|m| m.email.to_string().to_ascii_lowercase()).collect();
    key.sort();
    key.dedup();
    key
}
