//! From a checked [`Config`] to builders, layers and one guard.
// With only some sink features, parts of this serve no table.
#![allow(dead_code, unused_macros)]
use std::sync::Arc;
use std::time::Duration;

#[allow(unused_imports)]
use watchbell_core::{BuildError, FanOut, Guard, Handler, Level, SinkOptions};

use super::{Config, Problem};

/// The common delivery settings of a sink table.
pub(crate) struct CommonRef<'a> {
    pub pace: Option<&'a str>,
    pub timeout: Option<&'a str>,
    pub queue_records: Option<usize>,
    pub hourly_cap: Option<u32>,
    pub allow_plain_http: Option<bool>,
}

/// Gives a sink table's common settings.
pub(crate) trait Common {
    fn common(&self) -> CommonRef<'_>;
}

/// The sink names `deliver_to` accepts, in build order.
pub(crate) const SINKS: [&str; 24] = [
    "slack",
    "telegram",
    "sms",
    "mail",
    "http",
    "syslog",
    "file",
    "ticketing",
    "command",
    "journald",
    "desktop",
    "ntfy",
    "pushover",
    "discord",
    "teams",
    "google_chat",
    "mattermost",
    "rocketchat",
    "pagerduty",
    "opsgenie",
    "zmq",
    "sqs",
    "cloudwatch_logs",
    "sns",
];

/// Collects problems while reading a config. With `resolve` off, secrets are only checked for
/// presence (no environment or file access) and nothing is built.
pub(crate) struct Cx {
    pub problems: Vec<Problem>,
    pub resolve: bool,
}

impl Cx {
    pub fn new(resolve: bool) -> Self {
        Cx { problems: Vec::new(), resolve }
    }

    pub fn problem(&mut self, key: impl Into<String>, value: Option<String>, expected: impl Into<String>) {
        self.problems.push(Problem { key: key.into(), value, expected: expected.into() });
    }

    /// A level (`error`, `warn`/`warning`, `info`, `debug`, `trace`; `critical` = error).
    pub fn level(&mut self, key: &str, value: Option<&str>) -> Option<Level> {
        self.parsed(key, value, parse_level, "a level: error, warn, info, debug or trace")
    }

    /// A duration such as `500ms`, `60s`, `5m`, `1h`, `1d`.
    pub fn duration(&mut self, key: &str, value: Option<&str>) -> Option<Duration> {
        self.parsed(key, value, parse_duration, "a duration such as \"500ms\", \"60s\", \"5m\", \"1h\" or \"1d\"")
    }

    /// An optional value read by `parse`; a value it rejects is a problem.
    fn parsed<T>(&mut self, key: &str, value: Option<&str>, parse: fn(&str) -> Option<T>, expected: &str) -> Option<T> {
        let v = value?;
        let parsed = parse(v);
        if parsed.is_none() {
            self.problem(key, Some(quote(v)), expected);
        }
        parsed
    }

    /// A required plain value.
    pub fn required<'a>(&mut self, key: &str, value: Option<&'a str>, expected: &str) -> Option<&'a str> {
        match value {
            Some(v) if !v.trim().is_empty() => Some(v),
            Some(v) => {
                self.problem(key, Some(quote(v)), expected);
                None
            }
            None => {
                self.problem(key, None, format!("missing; expected {expected}"));
                None
            }
        }
    }

    /// A secret: resolved (or, without `resolve`, a placeholder when present).
    pub fn secret(&mut self, key: &str, value: Option<&super::SecretValue>, required: bool) -> Option<String> {
        let Some(v) = value else {
            if required {
                self.problem(key, None, "missing; expected the secret, { env = \"VAR\" } or { file = \"/path\" }");
            }
            return None;
        };
        if let super::SecretValue::Literal(s) = v {
            if s.trim().is_empty() {
                self.problem(key, Some(v.redacted()), "a non-empty secret");
                return None;
            }
        }
        if !self.resolve {
            return Some(String::new());
        }
        match v.resolve() {
            Ok(s) => Some(s),
            Err(e) => {
                self.problem(key, Some(v.redacted()), e);
                None
            }
        }
    }

    /// Applies a table's common delivery settings, then the global `[rate_limit]`, to a builder.
    pub fn common<B: SinkOptions>(&mut self, section: &str, table: &dyn Common, g: &Globals, mut b: B) -> B {
        let c = table.common();
        if let Some(d) = self.duration(&format!("{section}.pace"), c.pace) {
            b = b.pace(d);
        }
        if let Some(d) = self.duration(&format!("{section}.timeout"), c.timeout) {
            if d.is_zero() {
                self.problem(format!("{section}.timeout"), c.timeout.map(quote), "a timeout above 0");
            }
            b = b.timeout(d);
        }
        if let Some(n) = c.queue_records {
            if n == 0 {
                self.problem(format!("{section}.queue_records"), Some("0".into()), "at least 1 record");
            }
            b = b.queue_records(n);
        }
        match c.hourly_cap {
            Some(0) => b = b.no_cap(),
            Some(n) => b = b.hourly_cap(n),
            None => {}
        }
        if let Some(allow) = c.allow_plain_http {
            b = b.allow_plain_http(allow);
        }
        if let Some(http) = &g.http_client {
            b.options_mut().http = http.clone();
        }
        if let Some(o) = g.overflow {
            b = b.overflow(o);
        }
        if !g.gather.is_zero() {
            b = b.gather(g.gather);
        }
        match g.rate_limit {
            Some((0, _)) => b.no_rate_limit(),
            Some((n, d)) => b.rate_limit(n, d),
            None => b,
        }
    }

    /// A sink crate's build error, its key prefixed with the section.
    pub fn build_error(&mut self, section: &str, e: BuildError, value: Option<String>) {
        let key = if e.key.is_empty() { section.to_owned() } else { format!("{section}.{}", e.key) };
        self.problem(key, value, e.message);
    }
}

/// `"value"` with quotes (Debug escaping, so control characters cannot break the line).
pub(crate) fn quote(v: &str) -> String {
    let short: String = v.chars().take(200).collect();
    format!("{short:?}")
}

pub(crate) use watchbell_core::filter::parse_level;

/// `500ms`, `60s`, `5m`, `1h`, `1d` (a number and a unit, no space needed).
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let unit = unit.trim();
    let secs = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(secs).map(Duration::from_secs)
}

/// What [`Config::plan`] found: the global settings every sink uses.
pub(crate) struct Globals {
    pub rate_limit: Option<(u32, Duration)>,
    /// `[rate_limit] gather` (zero: not set).
    pub gather: Duration,
    pub deliver_to: Vec<String>,
    /// `[http_client]`, its files read (when resolving).
    pub http_client: Option<watchbell_core::options::HttpSettings>,
    /// The overflow policy of every sink's queue, when set ([`Config::handlers`] sets it to
    /// wait, so that a relay pushes back on its senders instead of dropping).
    pub overflow: Option<watchbell_core::Overflow>,
    /// Every sink as a handler behind its own level and target filter ([`Config::handlers`]:
    /// records that were captured elsewhere, such as a relay's, still meet each sink's `level`).
    pub filtered_handlers: bool,
}

/// The handler of a built sink layer behind that layer's filter (level, allowed and denied
/// targets), for records that reach it without passing through the layer.
pub(crate) fn filtered_handler<S>(layer: &watchbell_core::SinkLayer<S>) -> std::sync::Arc<dyn watchbell_core::Handler> {
    let filter = layer.filter().clone();
    let inner = std::sync::Arc::clone(layer.inner().handler());
    std::sync::Arc::new(watchbell_core::handler::Select::new(inner, move |r: &watchbell_core::Record| {
        filter.allows(r.level, &r.target)
    }))
}

/// A PEM file of `[http_client]`: read and checked for a `marker` block (when resolving).
fn pem_file(cx: &mut Cx, key: &str, path: Option<&str>, marker: &str, what: &str) -> Option<Vec<u8>> {
    let path = path?;
    if path.trim().is_empty() {
        cx.problem(key, Some(quote(path)), format!("the path of a PEM file of {what}"));
        return None;
    }
    if !cx.resolve {
        return Some(Vec::new());
    }
    match std::fs::read(path) {
        // Only the marker is looked for: the content (a private key) is never quoted.
        Ok(bytes) if bytes.windows(marker.len()).any(|w| w == marker.as_bytes()) => Some(bytes),
        Ok(_) => {
            cx.problem(key, Some(quote(path)), format!("a PEM file of {what} (no {marker} in it)"));
            None
        }
        Err(e) => {
            cx.problem(key, Some(quote(path)), format!("a readable PEM file of {what} ({e})"));
            None
        }
    }
}

impl Config {
    /// Reads `[http_client]` into the settings every HTTP sink gets.
    fn http_client_settings(&self, cx: &mut Cx) -> Option<watchbell_core::options::HttpSettings> {
        use watchbell_core::options::{ClientIdentity, HttpSettings, PemSource};
        let t = self.http_client.as_ref()?;
        let mut h = HttpSettings::default();
        let before = cx.problems.len();
        if let Some(pem) =
            pem_file(cx, "http_client.ca_file", t.ca_file.as_deref(), "-----BEGIN CERTIFICATE-----", "CA certificates")
        {
            h.roots.push(PemSource::Pem(pem));
        }
        if let Some(b) = t.built_in_roots {
            h.built_in_roots = b;
            if !b && t.ca_file.is_none() {
                cx.problem(
                    "http_client.built_in_roots",
                    Some("false".into()),
                    "true, or a ca_file to trust instead of the system's roots",
                );
            }
        }
        let cert = pem_file(
            cx,
            "http_client.client_cert_file",
            t.client_cert_file.as_deref(),
            "-----BEGIN CERTIFICATE-----",
            "the client certificate",
        );
        let key = pem_file(
            cx,
            "http_client.client_key_file",
            t.client_key_file.as_deref(),
            "PRIVATE KEY-----",
            "the client certificate's private key",
        );
        match (cert, key, t.client_cert_file.is_some(), t.client_key_file.is_some()) {
            (Some(cert), Some(key), ..) => {
                h.identity = Some(ClientIdentity { cert: PemSource::Pem(cert), key: PemSource::Pem(key) })
            }
            (_, _, true, false) => {
                cx.problem("http_client.client_key_file", None, "missing; expected with client_cert_file")
            }
            (_, _, false, true) => {
                cx.problem("http_client.client_cert_file", None, "missing; expected with client_key_file")
            }
            _ => {}
        }
        if let Some(url) = cx.secret("http_client.proxy", t.proxy.as_ref(), false) {
            if cx.resolve {
                let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
                if !matches!(scheme.as_deref(), Some("http" | "https")) {
                    let shown = t.proxy.as_ref().map(|p| match p {
                        super::SecretValue::Literal(u) => quote(&watchbell_core::secret::redact_url(u)),
                        other => other.redacted(),
                    });
                    cx.problem("http_client.proxy", shown, "http://[user:password@]host:port or https://…");
                }
            }
            h.proxy = Some(watchbell_core::secret::Secret::new(url));
        }
        h.no_proxy.clone_from(&t.no_proxy);
        if let Some(b) = t.proxy_from_env {
            h.proxy_from_env = b;
        }
        (cx.problems.len() == before).then_some(h)
    }
}

impl Config {
    /// `[rate_limit] shared`: checks the URL and, when resolving, installs the PostgreSQL
    /// windows for every rate limit built afterwards (it connects on first use, on a watchbell
    /// thread).
    fn shared_rate_limit(&self, cx: &mut Cx) {
        let Some(value) = self.rate_limit.as_ref().and_then(|r| r.shared.as_ref()) else { return };
        let Some(url) = cx.secret("rate_limit.shared", Some(value), true) else { return };
        if !cx.resolve {
            return;
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            cx.problem("rate_limit.shared", Some(value.redacted()), "a postgres:// or postgresql:// URL");
            return;
        }
        #[cfg(feature = "postgres")]
        match watchbell_ticketing::fleet::PgWindows::new(&url) {
            Ok(w) => watchbell_core::ratelimit::install_shared(Some(Arc::new(w))),
            Err(e) => cx.problem("rate_limit.shared", Some(value.redacted()), e),
        }
        #[cfg(not(feature = "postgres"))]
        cx.problem(
            "rate_limit.shared",
            Some(value.redacted()),
            "the `postgres` feature of the watchbell crate (or `full`)",
        );
    }

    /// Reads `[relay]` (problems go to `cx`); `None` without the table or with a problem.
    pub(crate) fn relay_settings_in(&self, cx: &mut Cx) -> Option<super::RelaySettings> {
        let t = self.relay.as_ref()?;
        let before = cx.problems.len();
        let http = t.http.as_deref().and_then(|a| match a.trim().parse::<std::net::SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                cx.problem("relay.http", Some(quote(a)), "an address and port such as \"127.0.0.1:9400\"");
                None
            }
        });
        let unix = t.unix.as_deref().and_then(|p| {
            if p.trim().is_empty() {
                cx.problem("relay.unix", Some(quote(p)), "the path of a unix socket");
                None
            } else {
                Some(std::path::PathBuf::from(p))
            }
        });
        for (i, e) in t.zmq.iter().enumerate() {
            if !e.contains("://") {
                cx.problem(
                    format!("relay.zmq[{i}]"),
                    Some(quote(e)),
                    "a ZeroMQ endpoint such as \"tcp://127.0.0.1:5556\"",
                );
            }
        }
        if t.http.is_none() && t.unix.is_none() && t.zmq.is_empty() {
            cx.problem("relay", None, "at least one input: http, unix or zmq");
        }
        let token = cx.secret("relay.token", t.token.as_ref(), false);
        if t.queue == Some(0) {
            cx.problem("relay.queue", Some("0".into()), "at least 1 record");
        }
        let retry_after = cx.duration("relay.retry_after", t.retry_after.as_deref()).unwrap_or(Duration::from_secs(1));
        (cx.problems.len() == before).then(|| super::RelaySettings {
            http,
            unix,
            zmq: t.zmq.clone(),
            token: token.map(watchbell_core::secret::Secret::new),
            queue: t.queue.unwrap_or(100_000),
            retry_after,
        })
    }

    /// Checks the global settings and `deliver_to`.
    pub(crate) fn globals(&self, cx: &mut Cx) -> Globals {
        if let Some(f) = &self.fmt {
            if f.level.as_deref().map(|l| l.trim().eq_ignore_ascii_case("off")) != Some(true) {
                cx.level("fmt.level", f.level.as_deref());
            }
        }
        let rate_limit = self.rate_limit.as_ref().and_then(|r| {
            let limit = r.limit.or_else(|| {
                cx.problem("rate_limit.limit", None, "missing; expected records per window (0 = no rate limit)");
                None
            })?;
            let per = match r.per.as_deref() {
                Some(p) => cx.duration("rate_limit.per", Some(p))?,
                None => Duration::from_secs(60),
            };
            if per.is_zero() && limit > 0 {
                cx.problem("rate_limit.per", r.per.as_deref().map(quote), "a window above 0");
            }
            Some((limit, per))
        });
        let gather = self
            .rate_limit
            .as_ref()
            .and_then(|r| r.gather.as_deref())
            .and_then(|g| cx.duration("rate_limit.gather", Some(g)))
            .unwrap_or(Duration::ZERO);
        let mut deliver_to = Vec::new();
        if let Some(fc) = &self.fingers_crossed {
            cx.level("fingers_crossed.action_level", fc.action_level.as_deref());
            cx.level("fingers_crossed.level", fc.level.as_deref());
            if let Some(s) = &fc.scope {
                if s.trim().is_empty() {
                    cx.problem("fingers_crossed.scope", Some(quote(s)), "root, thread, global or a span name");
                }
            }
            if fc.deliver_to.is_empty() {
                cx.problem(
                    "fingers_crossed.deliver_to",
                    None,
                    "missing; expected the sinks to deliver to, e.g. [\"mail\"]",
                );
            }
            for (i, name) in fc.deliver_to.iter().enumerate() {
                let key = format!("fingers_crossed.deliver_to[{i}]");
                if !SINKS.contains(&name.as_str()) {
                    cx.problem(key, Some(quote(name)), format!("a sink name: one of {}", SINKS.join(", ")));
                } else if !self.has_section(name) {
                    cx.problem(key, Some(quote(name)), format!("a configured sink (there is no [{name}] table)"));
                } else if deliver_to.contains(name) {
                    cx.problem(key, Some(quote(name)), "each sink once");
                } else {
                    deliver_to.push(name.clone());
                }
            }
        }
        let http_client = self.http_client_settings(cx);
        self.shared_rate_limit(cx);
        self.relay_settings_in(cx);
        Globals { rate_limit, gather, deliver_to, http_client, overflow: None, filtered_handlers: false }
    }

    /// Every table: (name, present, its Cargo feature, whether that feature is compiled in).
    fn sections(&self) -> [(&'static str, bool, &'static str, bool); 25] {
        let notify = cfg!(feature = "notify");
        [
            ("slack", self.slack.is_some(), "slack", cfg!(feature = "slack")),
            ("telegram", self.telegram.is_some(), "telegram", cfg!(feature = "telegram")),
            ("sms", self.sms.is_some(), "sms", cfg!(feature = "sms")),
            ("mail", self.mail.is_some(), "mail", cfg!(feature = "mail")),
            ("http", self.http.is_some(), "http-batch", cfg!(feature = "http-batch")),
            ("syslog", self.syslog.is_some(), "syslog", cfg!(feature = "syslog")),
            ("file", self.file.is_some(), "file", cfg!(feature = "file")),
            ("ticketing", self.ticketing.is_some(), "ticketing", cfg!(feature = "ticketing")),
            ("command", self.command.is_some(), "command", cfg!(feature = "command")),
            ("journald", self.journald.is_some(), "journald", cfg!(feature = "journald")),
            ("desktop", self.desktop.is_some(), "desktop", cfg!(feature = "desktop")),
            ("ntfy", self.ntfy.is_some(), "notify", notify),
            ("pushover", self.pushover.is_some(), "notify", notify),
            ("discord", self.discord.is_some(), "notify", notify),
            ("teams", self.teams.is_some(), "notify", notify),
            ("google_chat", self.google_chat.is_some(), "notify", notify),
            ("mattermost", self.mattermost.is_some(), "notify", notify),
            ("rocketchat", self.rocketchat.is_some(), "notify", notify),
            ("pagerduty", self.pagerduty.is_some(), "notify", notify),
            ("opsgenie", self.opsgenie.is_some(), "notify", notify),
            ("zmq", self.zmq.is_some(), "zmq", cfg!(feature = "zmq")),
            ("sqs", self.sqs.is_some(), "aws", cfg!(feature = "aws")),
            ("cloudwatch_logs", self.cloudwatch_logs.is_some(), "aws", cfg!(feature = "aws")),
            ("sns", self.sns.is_some(), "aws", cfg!(feature = "aws")),
            ("fingers_crossed", self.fingers_crossed.is_some(), "fingers-crossed", cfg!(feature = "fingers-crossed")),
        ]
    }

    /// Whether the sink table `name` is present (`fingers_crossed` is no sink).
    pub(crate) fn has_section(&self, name: &str) -> bool {
        SINKS.contains(&name) && self.sections().iter().any(|(n, present, ..)| *n == name && *present)
    }

    /// Reports tables whose Cargo feature is not compiled in.
    pub(crate) fn missing_features(&self, cx: &mut Cx) {
        for (name, present, feature, compiled) in self.sections() {
            if present && !compiled {
                cx.problem(name, None, format!("the `{feature}` feature of the watchbell crate (or `full`)"));
            }
        }
    }
}

/// A built sink: a layer, or a handler for fingers-crossed.
pub(crate) enum Built<L> {
    Layer(L, Guard),
    Handler(Arc<dyn Handler>, Guard),
}

/// Builds the sink as a layer, or as a handler when fingers-crossed delivers to it.
macro_rules! place {
    // `$make` reads a sink table into its builder (problems go to `$cx`); when it found none
    // and the config is being built, the builder builds and `$out` gets the result. A build
    // error is reported under the sink's name, with the offending value from `$value_of`.
    ($cx:expr, $globals:expr, $out:expr, $name:expr, $make:expr, $value_of:expr) => {{
        let before = $cx.problems.len();
        if let Some(builder) = $make {
            if $cx.resolve && $cx.problems.len() == before {
                let r = if $globals.filtered_handlers {
                    builder.build::<S>().map(|(l, g)| Built::Handler($crate::config::build::filtered_handler(&l), g))
                } else if $globals.deliver_to.iter().any(|n| n == $name) {
                    builder.build_handler().map(|(h, g)| Built::Handler(h, g))
                } else {
                    builder.build::<S>().map(|(l, g)| Built::Layer(Box::new(l) as Box<dyn Layer<S> + Send + Sync>, g))
                };
                match r {
                    Ok(b) => ($out)($name, b),
                    Err(e) => {
                        let value = ($value_of)(&e.key);
                        $cx.build_error($name, e, value);
                    }
                }
            }
        }
    }};
}
pub(crate) use place;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2 d"), Some(Duration::from_secs(172_800)));
        for bad in ["", "5", "m", "5 minutes", "-1s", "1.5s", "99999999999999999999s"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn levels() {
        assert_eq!(parse_level("WARNING"), Some(Level::WARN));
        assert_eq!(parse_level("critical"), Some(Level::ERROR));
        assert_eq!(parse_level(" debug "), Some(Level::DEBUG));
        assert_eq!(parse_level("loud"), None);
    }
}
