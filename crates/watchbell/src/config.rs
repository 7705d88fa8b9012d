//! [`Config`]: the whole setup from a TOML file and/or `WATCHBELL_*` environment variables.
//! See the [crate docs](crate#configuration) for the format, the variables and the coaster keys.
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use tracing_core::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;
#[allow(unused_imports)]
use watchbell_core::secret::redact_url;
use watchbell_core::{FanOut, Guard, Handler};

mod build;
mod coaster;
mod env;
mod process;
mod schema;
mod secret;
mod sinks;

#[allow(unused_imports)]
use build::{place, quote, Built, Cx, Globals};
pub use schema::{
    ChatRef, Config, ExotelConfig, FileConfig, FingersCrossedConfig, FmtConfig, HttpConfig, MailConfig,
    MailRouteConfig, RateLimitConfig, RelayConfig, SlackConfig, SlackWebhookConfig, SmsConfig, SyslogConfig,
    TelegramConfig, TicketingConfig, TwilioConfig,
};
pub use secret::SecretValue;

/// One problem in a configuration: the key, its value (secrets redacted) and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The key at fault, as a TOML path (`sms.recipients[0]`, `telegram.token`) or an
    /// environment variable (`WATCHBELL_MAIL_PORT`); `(toml)` for a syntax error (with its line),
    /// `(file)` for a file that cannot be read.
    pub key: String,
    /// The value found, quoted; a secret shows as `"***"` or where it comes from; `None` when
    /// missing (or not shown).
    pub value: Option<String>,
    /// What is wrong and what was expected.
    pub expected: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{} = {}: {}", self.key, v, self.expected),
            None => write!(f, "{}: {}", self.key, self.expected),
        }
    }
}

/// A configuration that cannot be used: every problem found, not just the first.
/// `Display` writes one line per problem; nothing in it is a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<Problem>,
}

impl ConfigError {
    /// The problems, in the order found (at least one).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    pub(crate) fn new(problems: Vec<Problem>) -> Self {
        ConfigError { problems }
    }

    fn one(key: impl Into<String>, value: Option<String>, expected: impl Into<String>) -> Self {
        ConfigError { problems: vec![Problem { key: key.into(), value, expected: expected.into() }] }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

fn result(problems: Vec<Problem>) -> Result<(), ConfigError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::new(problems))
    }
}

/// The `[relay]` table, read for `watchbell-relay` ([`Config::relay_settings`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RelaySettings {
    /// The HTTP input's address.
    pub http: Option<std::net::SocketAddr>,
    /// The unix socket input's path.
    pub unix: Option<std::path::PathBuf>,
    /// ZeroMQ endpoints to subscribe to.
    pub zmq: Vec<String>,
    /// The bearer token of the HTTP input (redacted in `Debug`).
    pub token: Option<watchbell_core::secret::Secret<String>>,
    /// The queue's capacity in records.
    pub queue: usize,
    /// The `Retry-After` of a 429.
    pub retry_after: std::time::Duration,
}

/// The layers [`Config::layers`] returns; a `Vec` of layers is itself a layer.
pub type Layers<S> = Vec<Box<dyn Layer<S> + Send + Sync>>;

impl Config {
    /// Parses and checks a TOML document. Reports every problem found: TOML syntax, unknown
    /// keys, wrong types, levels, durations, choices, missing required keys. Secrets given as
    /// `{ env = … }` or `{ file = … }` are read later, by [`layers`](Config::layers).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let msg = e.message().trim().replace('\n', "; ");
            let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            ConfigError::one("(toml)", None, format!("valid TOML{at}: {msg}"))
        })?;
        let json = serde_json::to_value(&table)
            .map_err(|e| ConfigError::one("(toml)", None, format!("plain TOML values: {e}")))?;
        let config = from_json(json, "")?;
        config.check()?;
        Ok(config)
    }

    /// Reads and parses a TOML file ([`from_toml_str`](Config::from_toml_str)).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::one("(file)", Some(quote(&path.display().to_string())), format!("a readable TOML file: {e}"))
        })?;
        Config::from_toml_str(&text)
    }

    /// A configuration from the `WATCHBELL_*` environment variables only (see the
    /// [crate docs](crate#environment-variables)).
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::default().with_env()
    }

    /// This configuration with the `WATCHBELL_*` environment variables applied over it: a
    /// variable sets its key (lists replace lists; `WATCHBELL_SLACK_WEBHOOK` adds a webhook).
    /// An unknown `WATCHBELL_*` variable is an error (except `WATCHBELL_CONFIG` and
    /// `WATCHBELL_TEST_*`).
    pub fn with_env(self) -> Result<Config, ConfigError> {
        let vars = std::env::vars_os().filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            k.starts_with("WATCHBELL_").then(|| (k, v.into_string().unwrap_or_else(|_| "\u{fffd}".into())))
        });
        self.with_vars(vars)
    }

    /// [`with_env`](Config::with_env) with the given variables instead of the process's
    /// environment (names without the `WATCHBELL_` prefix are ignored): for tests and for
    /// programs that read their settings elsewhere.
    pub fn with_vars<I, K, V>(self, vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut json =
            serde_json::to_value(&self).map_err(|e| ConfigError::one("(config)", None, format!("a config: {e}")))?;
        let mut vars: Vec<(String, String)> = vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        vars.sort();
        let mut problems = Vec::new();
        env::apply(&mut json, &vars, &mut problems);
        result(problems)?;
        let config = from_json(json, "WATCHBELL_")?;
        config.check()?;
        Ok(config)
    }

    /// The file named by `WATCHBELL_CONFIG` (if set), then the `WATCHBELL_*` variables over it.
    pub fn load() -> Result<Config, ConfigError> {
        let base = match std::env::var_os("WATCHBELL_CONFIG") {
            Some(path) if !path.is_empty() => Config::from_file(path)?,
            _ => Config::default(),
        };
        base.with_env()
    }

    /// Checks the values without building anything and without reading secrets from the
    /// environment or files. [`from_toml_str`](Config::from_toml_str) and
    /// [`with_env`](Config::with_env) call it; call it after changing a `Config` by hand.
    pub fn check(&self) -> Result<(), ConfigError> {
        let mut cx = Cx::new(false);
        self.missing_features(&mut cx);
        let g = self.globals(&mut cx);
        self.builders::<tracing_subscriber::Registry, _>(&mut cx, &g, |_, _| {});
        result(cx.problems)
    }

    /// Builds every configured sink: the layers (add them to your registry with `.with(layers)`)
    /// and one [`Guard`] for all of them (keep it until the end of `main`). Secrets are read
    /// here. Sinks named in `[fingers_crossed] deliver_to` are built as handlers behind one
    /// fingers-crossed layer instead of layers of their own. Every problem is reported, those
    /// found by each sink's own validation too (`sms.recipients[0]`, `slack.webhooks[0].url`);
    /// on error nothing stays running.
    pub fn layers<S>(&self) -> Result<(Layers<S>, Guard), ConfigError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut cx = Cx::new(true);
        self.missing_features(&mut cx);
        let g = self.globals(&mut cx);
        let mut layers: Layers<S> = Vec::new();
        let mut guard = Guard::new(Arc::new(FanOut::new()));
        let mut handlers: Vec<(Arc<dyn Handler>, Guard)> = Vec::new();
        self.builders(&mut cx, &g, |_name, built: Built<Box<dyn Layer<S> + Send + Sync>>| match built {
            Built::Layer(l, gd) => {
                layers.push(l);
                guard = std::mem::replace(&mut guard, Guard::new(Arc::new(FanOut::new()))).join(gd);
            }
            Built::Handler(h, gd) => handlers.push((h, gd)),
        });
        #[cfg(feature = "fingers-crossed")]
        if let Some(fc) = &self.fingers_crossed {
            if cx.problems.is_empty() && !handlers.is_empty() {
                match self.fingers_crossed_layer::<S>(fc, std::mem::take(&mut handlers)) {
                    Ok((l, gd)) => {
                        layers.push(l);
                        guard = guard.join(gd);
                    }
                    Err(e) => cx.build_error("fingers_crossed", e, None),
                }
            }
        }
        if !cx.problems.is_empty() {
            drop(layers);
            drop(handlers);
            let _ = guard.shutdown(std::time::Duration::from_secs(1));
            return Err(ConfigError::new(cx.problems));
        }
        Ok((layers, guard))
    }

    /// Builds every configured sink as a handler instead of a layer, behind one fan-out: for
    /// programs that receive records rather than capture events (the relay). The same tables,
    /// checks and secrets as [`layers`](Config::layers); each sink's queue waits for room
    /// (up to 30 s) instead of dropping, so that a slow sink pushes back on whoever feeds the
    /// handler. Each sink keeps its level and target filter (its `level` key, or its default:
    /// mail and SMS see only errors), applied to the records handed over. `[fingers_crossed]` and `notify` URLs are not supported here
    /// (use the sink tables).
    pub fn handlers(&self) -> Result<(Arc<dyn Handler>, Guard), ConfigError> {
        let mut cx = Cx::new(true);
        self.missing_features(&mut cx);
        let mut g = self.globals(&mut cx);
        g.deliver_to = build::SINKS.iter().map(|s| (*s).to_owned()).collect();
        g.overflow = Some(watchbell_core::Overflow::Block(std::time::Duration::from_secs(30)));
        g.filtered_handlers = true;
        if self.fingers_crossed.is_some() {
            cx.problem("fingers_crossed", None, "no [fingers_crossed] table where sinks are built as handlers");
        }
        if !self.notify.is_empty() {
            cx.problem("notify", None, "the sink tables ([ntfy], [discord], …) where sinks are built as handlers");
        }
        let mut fan = FanOut::new();
        let mut guard: Option<Guard> = None;
        self.builders::<tracing_subscriber::Registry, _>(&mut cx, &g, |_name, built| {
            let (h, gd) = match built {
                Built::Handler(h, gd) => (h, gd),
                Built::Layer(_, gd) => (Arc::new(FanOut::new()) as Arc<dyn Handler>, gd),
            };
            fan = std::mem::take(&mut fan).with(h);
            guard = Some(match guard.take() {
                Some(all) => all.join(gd),
                None => gd,
            });
        });
        let fan: Arc<dyn Handler> = Arc::new(fan);
        if !cx.problems.is_empty() {
            if let Some(gd) = guard {
                let _ = gd.shutdown(std::time::Duration::from_secs(1));
            }
            return Err(ConfigError::new(cx.problems));
        }
        let guard = guard.unwrap_or_else(|| Guard::new(Arc::clone(&fan)));
        Ok((fan, guard))
    }

    /// The `[relay]` table, checked, its token read: `None` when there is no such table.
    pub fn relay_settings(&self) -> Result<Option<RelaySettings>, ConfigError> {
        if self.relay.is_none() {
            return Ok(None);
        }
        let mut cx = Cx::new(true);
        let s = self.relay_settings_in(&mut cx);
        if !cx.problems.is_empty() {
            return Err(ConfigError::new(cx.problems));
        }
        Ok(s)
    }

    #[cfg(feature = "fingers-crossed")]
    fn fingers_crossed_layer<S>(
        &self,
        fc: &FingersCrossedConfig,
        handlers: Vec<(Arc<dyn Handler>, Guard)>,
    ) -> Result<(Box<dyn Layer<S> + Send + Sync>, Guard), watchbell_core::BuildError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        use watchbell_fingers_crossed::{FingersCrossedLayer, Scope};
        let mut fan = FanOut::new();
        let mut inner_guard: Option<Guard> = None;
        for (h, g) in handlers {
            fan = fan.with(h);
            inner_guard = Some(match inner_guard {
                Some(all) => all.join(g),
                None => g,
            });
        }
        let fan: Arc<dyn Handler> = Arc::new(fan);
        let inner_guard = inner_guard.unwrap_or_else(|| Guard::new(Arc::clone(&fan)));
        let mut b = FingersCrossedLayer::builder((fan, inner_guard));
        if let Some(l) = fc.action_level.as_deref().and_then(build::parse_level) {
            b = b.action_level(l);
        }
        if let Some(l) = fc.level.as_deref().and_then(build::parse_level) {
            b = b.level(l);
        }
        if let Some(n) = fc.buffer_size {
            b = b.buffer_size(n);
        }
        if let Some(s) = &fc.scope {
            b = b.scope(match s.trim() {
                "root" => Scope::RootSpan,
                "thread" => Scope::Thread,
                "global" => Scope::Global,
                name => Scope::span(name),
            });
        }
        let (layer, guard) = b.build::<S>()?;
        Ok((Box::new(layer), guard))
    }

    /// Reads every sink table into its builder and, when `cx.resolve` is on, builds it and hands
    /// it to `out`. Problems go to `cx`.
    #[allow(unused_variables, unused_mut)]
    fn builders<S, F>(&self, cx: &mut Cx, g: &Globals, mut out: F)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        F: FnMut(&'static str, Built<Box<dyn Layer<S> + Send + Sync>>),
    {
        #[cfg(feature = "slack")]
        {
            let t = self.slack.as_ref();
            let value_of = |key: &str| {
                let i = list_index(key, "webhooks")?;
                let url = t?.webhooks.get(i)?.url.as_ref()?;
                match url {
                    SecretValue::Literal(u) => Some(quote(&redact_url(u))),
                    other => Some(other.redacted()),
                }
            };
            place!(cx, g, out, "slack", self.slack_builder(cx, g), value_of);
        }
        #[cfg(feature = "telegram")]
        place!(cx, g, out, "telegram", self.telegram_builder(cx, g), |_: &str| None);
        #[cfg(feature = "sms")]
        {
            let t = self.sms.as_ref();
            let value_of = |key: &str| {
                let i = list_index(key, "recipients")?;
                t?.recipients.get(i).map(|n| quote(n))
            };
            place!(cx, g, out, "sms", self.sms_builder(cx, g), value_of);
        }
        #[cfg(feature = "mail")]
        {
            let t = self.mail.as_ref();
            let value_of = |key: &str| {
                let t = t?;
                if key == "from" {
                    return t.from.as_deref().map(quote);
                }
                if key == "host" {
                    return t.host.as_deref().map(quote);
                }
                let i = list_index(key, "to")?;
                t.to.get(i).map(|n| quote(n))
            };
            place!(cx, g, out, "mail", self.mail_builder(cx, g), value_of);
        }
        #[cfg(feature = "http-batch")]
        {
            let url = self.http.as_ref().and_then(|t| t.url.as_ref()).map(|u| match u {
                SecretValue::Literal(u) => quote(&redact_url(u)),
                other => other.redacted(),
            });
            let value_of = |key: &str| if key == "url" { url.clone() } else { None };
            place!(cx, g, out, "http", self.http_builder(cx, g), value_of);
        }
        #[cfg(feature = "syslog")]
        place!(cx, g, out, "syslog", self.syslog_builder(cx, g), |_: &str| None);
        #[cfg(feature = "file")]
        {
            let path = self.file.as_ref().and_then(|t| t.path.as_deref()).map(quote);
            let value_of = |key: &str| if key == "path" { path.clone() } else { None };
            place!(cx, g, out, "file", self.file_builder(cx, g), value_of);
        }
        #[cfg(feature = "ticketing")]
        place!(cx, g, out, "ticketing", self.ticketing_builder(cx, g), |_: &str| None);
        #[cfg(feature = "command")]
        place!(cx, g, out, "command", self.command_builder(cx, g), |_: &str| None);
        #[cfg(feature = "journald")]
        place!(cx, g, out, "journald", self.journald_builder(cx, g), |_: &str| None);
        #[cfg(feature = "desktop")]
        place!(cx, g, out, "desktop", self.desktop_builder(cx, g), |_: &str| None);
        #[cfg(feature = "zmq")]
        {
            let endpoint = self.zmq.as_ref().and_then(|t| t.endpoint.as_deref()).map(quote);
            let value_of = |key: &str| if key == "endpoint" { endpoint.clone() } else { None };
            place!(cx, g, out, "zmq", self.zmq_builder(cx, g), value_of);
        }
        #[cfg(feature = "aws")]
        for name in ["sqs", "cloudwatch_logs", "sns"] {
            place!(cx, g, out, name, self.aws_builder(cx, g, name), |_: &str| None);
        }
        #[cfg(feature = "notify")]
        for name in
            ["ntfy", "pushover", "discord", "teams", "google_chat", "mattermost", "rocketchat", "pagerduty", "opsgenie"]
        {
            place!(cx, g, out, name, self.notify_table_builder(cx, g, name), |_: &str| None);
        }
        #[cfg(feature = "notify")]
        use watchbell_core::SinkOptions as _;
        #[cfg(feature = "notify")]
        for (i, url) in self.notify.iter().enumerate() {
            let key = format!("notify[{i}]");
            let Some(text) = cx.secret(&key, Some(url), true) else { continue };
            if !cx.resolve {
                continue;
            }
            let built = watchbell_notify::from_url(&text).and_then(|mut b| {
                b = match g.rate_limit {
                    Some((0, _)) => b.no_rate_limit(),
                    Some((n, d)) => b.rate_limit(n, d),
                    None => b,
                };
                if let Some(app) = &self.app {
                    b = b.app(app);
                }
                if let Some(http) = &g.http_client {
                    b.options_mut().http = http.clone();
                }
                b.build::<S>()
            });
            match built {
                Ok((l, gd)) => out("notify", Built::Layer(Box::new(l), gd)),
                Err(e) => cx.build_error(&key, e, Some(url.redacted())),
            }
        }
        #[cfg(not(feature = "notify"))]
        if !self.notify.is_empty() {
            cx.problem("notify", None, "the `notify` feature of the watchbell crate (or `full`)");
        }
    }
}

/// Deserializes a JSON form of the config; on failure, narrows down to every leaf that fails on
/// its own, so that each problem is reported with its full key path.
fn from_json(json: serde_json::Value, env_prefix: &str) -> Result<Config, ConfigError> {
    use serde::Deserialize;
    match Config::deserialize(&json) {
        Ok(c) => Ok(c),
        Err(first) => {
            let mut problems = Vec::new();
            let mut bad = Vec::new();
            narrow(&mut Vec::new(), &json, env_prefix, &mut problems, &mut bad);
            if problems.is_empty() {
                problems.push(serde_problem(&first.to_string(), "(config)", env_prefix));
            } else {
                // The rest of the document, without the bad keys, for the value checks.
                let mut rest = json;
                for path in bad.iter().rev() {
                    remove_at(&mut rest, path);
                }
                if let Ok(c) = Config::deserialize(&rest) {
                    if let Err(e) = c.check() {
                        problems.extend(e.problems);
                    }
                }
            }
            Err(ConfigError::new(problems))
        }
    }
}

/// One step of a key path.
#[derive(Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// The index in a problem key such as `webhooks[2]` or `webhooks[2].url`, for list `name`.
#[cfg(any(feature = "slack", feature = "sms", feature = "mail"))]
fn list_index(key: &str, name: &str) -> Option<usize> {
    key.strip_prefix(name)?.strip_prefix('[')?.split(']').next()?.parse().ok()
}

fn path_text(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The smallest document holding `leaf` at `path`; Err(message) when it does not deserialize.
fn try_at(path: &[Seg], leaf: &serde_json::Value) -> Result<(), String> {
    use serde::Deserialize;
    let mut doc = leaf.clone();
    for seg in path.iter().rev() {
        doc = match seg {
            Seg::Key(k) => serde_json::Value::Object(std::iter::once((k.clone(), doc)).collect()),
            Seg::Index(_) => serde_json::Value::Array(vec![doc]),
        };
    }
    Config::deserialize(&doc).map(|_| ()).map_err(|e| e.to_string())
}

/// Reports every node under `path` that fails on its own (the deepest ones).
fn narrow(
    path: &mut Vec<Seg>,
    value: &serde_json::Value,
    env_prefix: &str,
    out: &mut Vec<Problem>,
    bad: &mut Vec<Vec<Seg>>,
) {
    if !path.is_empty() {
        let Err(msg) = try_at(path, value) else { return };
        let before = out.len();
        match value {
            serde_json::Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    path.push(Seg::Key(k.clone()));
                    narrow(path, v, env_prefix, out, bad);
                    path.pop();
                }
            }
            serde_json::Value::Array(items) if !items.is_empty() => {
                for (i, v) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    narrow(path, v, env_prefix, out, bad);
                    path.pop();
                }
            }
            _ => {}
        }
        if out.len() == before {
            out.push(serde_problem(&msg, &path_text(path), env_prefix));
            bad.push(path.clone());
        }
    } else if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            path.push(Seg::Key(k.clone()));
            narrow(path, v, env_prefix, out, bad);
            path.pop();
        }
    }
}

/// Removes the node at `path` (a key, or an array element).
fn remove_at(root: &mut serde_json::Value, path: &[Seg]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = root;
    for seg in parents {
        let next = match (seg, cur) {
            (Seg::Key(k), serde_json::Value::Object(m)) => m.get_mut(k),
            (Seg::Index(i), serde_json::Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else { return };
        cur = next;
    }
    match (last, cur) {
        (Seg::Key(k), serde_json::Value::Object(m)) => {
            m.remove(k);
        }
        (Seg::Index(i), serde_json::Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
}

/// A serde error as a problem, with any quoted value removed from the message (it could be a
/// secret) and serde's type names in words.
fn serde_problem(msg: &str, key: &str, env_prefix: &str) -> Problem {
    let msg = redact_quoted(msg);
    let key = if env_prefix.is_empty() { key.to_owned() } else { format!("{key} (from {env_prefix}* variables)") };
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let known = rest.split_once(", ").map(|(_, k)| k).unwrap_or("");
        return Problem { key, value: None, expected: format!("unknown key: {known}") };
    }
    let msg = msg
        .replace("data did not match any variant of untagged enum ChatRef", "expected a chat id or \"@channel\"")
        .replace("expected u16", "expected a whole number from 0 to 65535")
        .replace("expected u32", "expected a whole number")
        .replace("expected u64", "expected a whole number")
        .replace("expected usize", "expected a whole number")
        .replace("expected i64", "expected a whole number")
        .replace("expected a boolean", "expected true or false");
    Problem { key, value: None, expected: msg }
}

/// Replaces every `"…"` in a serde message by `"***"`: a value in a wrong place may be a secret.
fn redact_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut inside = false;
    for c in msg.chars() {
        if c == '"' {
            if inside {
                out.push_str("***\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

/// [`Config::load`] (the file named by `WATCHBELL_CONFIG`, then `WATCHBELL_*` variables), then
/// [`init_with`].
///
/// ```no_run
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let _guard = watchbell::init()?;
///     tracing::error!("disk full");
///     Ok(())
/// }
/// ```
pub fn init() -> Result<Guard, ConfigError> {
    init_with(Config::load()?)
}

/// Installs the global subscriber: a registry with the configured sinks ([`Config::layers`]),
/// a console `fmt` layer at `[fmt] level` (default `info`; `off`: none), and the `log` bridge
/// ([`LogBridge`](watchbell_log::LogBridge), so `log` records reach every layer; left out when
/// another `log` logger is already installed). Uses `set_global_default`, so it works next to
/// tracing-subscriber's `tracing-log` feature. Keep the returned guard until the end of `main`:
/// dropping it delivers what is queued.
pub fn init_with(config: Config) -> Result<Guard, ConfigError> {
    use tracing_subscriber::layer::SubscriberExt;
    let fmt_level = match config.fmt.as_ref().and_then(|f| f.level.as_deref()) {
        None => Some(tracing_core::Level::INFO),
        Some(l) if l.trim().eq_ignore_ascii_case("off") => None,
        Some(l) => Some(build::parse_level(l).ok_or_else(|| {
            ConfigError::one("fmt.level", Some(quote(l)), "a level: error, warn, info, debug, trace or off")
        })?),
    };
    config.apply_process_settings()?;
    let (layers, guard) = config.layers::<tracing_subscriber::Registry>()?;
    let fmt_layer = fmt_level.map(|level| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(tracing_subscriber::filter::LevelFilter::from_level(level))
    });
    let subscriber = tracing_subscriber::registry().with(layers).with(fmt_layer);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        let _ = guard.shutdown(std::time::Duration::from_secs(1));
        return Err(ConfigError::one(
            "(global subscriber)",
            None,
            "no global tracing subscriber installed yet: one is already set (use Config::layers to compose your own)",
        ));
    }
    let _ = watchbell_log::LogBridge::new().init();
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_file_is_valid() {
        let config = Config::from_toml_str(include_str!("config/example.toml")).expect("the example parses");
        assert_eq!(config.slack.as_ref().map(|s| s.webhooks.len()), Some(2));
        assert_eq!(config.slack.as_ref().and_then(|s| s.pace.as_deref()), Some("1s"));
        assert_eq!(config.fingers_crossed.as_ref().map(|f| f.deliver_to.clone()), Some(vec!["mail".to_owned()]));
        let every = [
            "slack",
            "telegram",
            "sms",
            "mail",
            "http",
            "syslog",
            "file",
            "ticketing",
            "pushover",
            "opsgenie",
            "mattermost",
        ];
        assert_eq!(config.notify.len(), 1);
        assert!(every.iter().all(|s| config.has_section(s)));
    }

    #[test]
    fn every_documented_variable_is_known() {
        let docs = include_str!("lib.rs");
        for (name, path, _) in env::VARS {
            let var = format!("WATCHBELL_{name}");
            let last = path.rsplit('.').next().unwrap().to_ascii_uppercase();
            let short = name.ends_with(&last).then(|| format!("`_{last}`"));
            let found = docs.contains(&format!("`{var}`")) || short.is_some_and(|s| docs.contains(&s));
            assert!(found, "{var} is not in the crate docs");
        }
    }

    #[test]
    fn redact_quoted_removes_values() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "abc", expected u16"#),
            r#"invalid type: string "***", expected u16"#
        );
    }
}
