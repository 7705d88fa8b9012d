//! coaster's Flask configuration keys (`LOGFILE`, `ADMINS`, `SLACK_LOGGING_WEBHOOKS`, …) read
//! from the environment into a [`Config`]. See the [crate docs](crate#coasters-keys) for the
//! table of keys.
use std::collections::BTreeMap;

use serde_json::Value;

use super::build::quote;
use super::schema::{
    ChatRef, Config, ExotelConfig, FileConfig, MailConfig, SlackConfig, SlackWebhookConfig, SmsConfig, TelegramConfig,
    TwilioConfig,
};
use super::{result, ConfigError, Problem, SecretValue};

/// Every key read, without the `FLASK_` prefix. Secrets are never quoted in a problem.
const KEYS: &[&str] = &[
    "SITE_ID",
    "LOGFILE",
    "LOG_FILE",
    "LOGFILE_LEVEL",
    "LOG_FILE_LEVEL",
    "LOGFILE_WHEN",
    "LOG_FILE_ROTATE",
    "LOG_FILE_ROTATE_WHEN",
    "LOG_FILE_ROTATE_INTERVAL",
    "LOGFILE_BACKUPCOUNT",
    "LOG_FILE_ROTATE_COUNT",
    "LOG_FILE_ROTATE_UTC",
    "ADMINS",
    "LOG_EMAIL_TO",
    "LOG_EMAIL_FROM",
    "MAIL_DEFAULT_SENDER",
    "DEFAULT_MAIL_SENDER",
    "MAIL_SERVER",
    "MAIL_PORT",
    "MAIL_USERNAME",
    "MAIL_PASSWORD",
    "MAIL_USE_TLS",
    "MAIL_USE_SSL",
    "SLACK_LOGGING_WEBHOOKS",
    "LOG_SLACK_WEBHOOKS",
    "TELEGRAM_ERROR_CHATID",
    "LOG_TELEGRAM_CHATID",
    "TELEGRAM_ERROR_APIKEY",
    "LOG_TELEGRAM_APIKEY",
    "TELEGRAM_ERROR_THREADID",
    "LOG_TELEGRAM_THREADID",
    "TELEGRAM_ERROR_LEVEL",
    "LOG_TELEGRAM_LEVEL",
    "ADMIN_NUMBERS",
    "SMS_EXOTEL_SID",
    "SMS_EXOTEL_TOKEN",
    "SMS_EXOTEL_FROM",
    "SMS_TWILIO_SID",
    "SMS_TWILIO_TOKEN",
    "SMS_TWILIO_FROM",
];

/// Keys whose values are never shown.
const SECRET_KEYS: &[&str] = &[
    "MAIL_PASSWORD",
    "SLACK_LOGGING_WEBHOOKS",
    "LOG_SLACK_WEBHOOKS",
    "TELEGRAM_ERROR_APIKEY",
    "LOG_TELEGRAM_APIKEY",
    "SMS_EXOTEL_TOKEN",
    "SMS_TWILIO_TOKEN",
];

/// The file coaster logs to when no file key is set.
pub(crate) const DEFAULT_LOGFILE: &str = "error.log";
/// Rotated files kept when coaster's count is unset or 0 (Python's "keep them all"): the
/// default of coaster's `LOG_FILE_ROTATE_COUNT`.
pub(crate) const DEFAULT_BACKUPS: usize = 7;
/// The sender coaster uses when no sender key is set.
pub(crate) const DEFAULT_SENDER: &str = "logs@example.com";

/// The coaster keys found: key (without `FLASK_`) → (the variable's name, its value).
struct Keys {
    found: BTreeMap<&'static str, (String, Value)>,
    problems: Vec<Problem>,
}

impl Keys {
    fn new<I>(vars: I) -> Keys
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut found: BTreeMap<&'static str, (String, Value, bool)> = BTreeMap::new();
        for (name, text) in vars {
            let (key, prefixed) = match name.strip_prefix("FLASK_") {
                Some(k) => (k, true),
                None => (name.as_str(), false),
            };
            let Some(key) = KEYS.iter().copied().find(|k| *k == key) else { continue };
            // `FLASK_KEY` wins over `KEY`.
            if found.get(key).is_some_and(|(_, _, p)| *p && !prefixed) {
                continue;
            }
            // Flask's `from_prefixed_env`: JSON when it parses, the text otherwise.
            let value = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
            found.insert(key, (name, value, prefixed));
        }
        Keys { found: found.into_iter().map(|(k, (n, v, _))| (k, (n, v))).collect(), problems: Vec::new() }
    }

    /// The value of `key` (null included: Python's `None`).
    fn raw(&self, key: &str) -> Option<(&str, &Value)> {
        self.found.get(key).map(|(n, v)| (n.as_str(), v))
    }

    /// The value of the current name, else of the legacy one (coaster's own precedence).
    fn either(&self, current: &str, legacy: &str) -> Option<(&str, &Value)> {
        self.raw(current).or_else(|| self.raw(legacy))
    }

    /// A value that is set and not null.
    fn get(&self, key: &str) -> Option<(&str, &Value)> {
        self.raw(key).filter(|(_, v)| !v.is_null())
    }

    fn problem(&mut self, name: &str, value: Option<&Value>, expected: impl Into<String>) {
        let key = name.strip_prefix("FLASK_").unwrap_or(name);
        let shown = value.map(|v| if SECRET_KEYS.contains(&key) { "\"***\"".to_owned() } else { quote(&text(v)) });
        self.problems.push(Problem { key: name.to_owned(), value: shown, expected: expected.into() });
    }

    /// A whole number, or a problem.
    fn int(&mut self, found: Option<(String, Value)>) -> Option<i64> {
        let (name, v) = found.filter(|(_, v)| !v.is_null())?;
        let (name, v) = (name.as_str(), &v);
        let n = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        if n.is_none() {
            let (name, v) = (name.to_owned(), v.clone());
            self.problem(&name, Some(&v), "a whole number");
        }
        n
    }

    /// A Python logging level (a name or a number), as watchbell's level name, or a problem.
    fn level(&mut self, found: Option<(String, Value)>) -> Option<String> {
        let (name, v) = found.filter(|(_, v)| !v.is_null())?;
        let (name, v) = (name.as_str(), &v);
        let level = python_level(v);
        if level.is_none() {
            let (name, v) = (name.to_owned(), v.clone());
            self.problem(
                &name,
                Some(&v),
                "a logging level: DEBUG, INFO, WARNING, ERROR, CRITICAL (or 10, 20, 30, 40, 50)",
            );
        }
        level.map(str::to_owned)
    }
}

/// A value as the text Python's `str()` would give for the simple cases.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Python's truth value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => {
            let s = s.trim();
            !(s.is_empty() || ["0", "false", "no", "off", "none"].iter().any(|f| s.eq_ignore_ascii_case(f)))
        }
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A list: a JSON array, or comma-separated text (one address is a list of one, as coaster
/// takes a string for `LOG_EMAIL_TO`).
fn list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().map(text).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
        Value::Null => Vec::new(),
        other => text(other).split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
    }
}

/// Python's level names and numbers as watchbell's names (`CRITICAL`/`FATAL` are `error`,
/// `NOTSET` is `trace`; a number takes the nearest named level at or below it).
fn python_level(v: &Value) -> Option<&'static str> {
    let number = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => match s.trim().to_ascii_uppercase().as_str() {
            "CRITICAL" | "FATAL" | "ERROR" => return Some("error"),
            "WARNING" | "WARN" => return Some("warn"),
            "INFO" => return Some("info"),
            "DEBUG" => return Some("debug"),
            "NOTSET" | "TRACE" => return Some("trace"),
            other => other.parse().ok(),
        },
        _ => None,
    }?;
    Some(match number {
        n if n < 0 => return None,
        0..=9 => "trace",
        10..=19 => "debug",
        20..=29 => "info",
        30..=39 => "warn",
        _ => "error",
    })
}

/// A mail sender: an address, or coaster's `(name, address)` pair (a JSON array).
fn sender(v: &Value) -> Option<String> {
    match v {
        Value::Array(parts) => match parts.as_slice() {
            [name, addr] => {
                let (name, addr) = (text(name), text(addr));
                Some(if name.trim().is_empty() { addr } else { format!("\"{}\" <{addr}>", name.replace('"', "")) })
            }
            [addr] => Some(text(addr)),
            _ => None,
        },
        other if truthy(other) => Some(text(other)),
        _ => None,
    }
}

impl Config {
    /// A configuration from coaster's Flask keys in the process environment, with coaster's
    /// defaults (a log file `error.log` at `WARNING`, mail through `localhost`): an app that
    /// alerted through coaster's `init_app(app)` alerts through watchbell with the environment
    /// it has. Each key is read as `FLASK_KEY` (Flask's `from_prefixed_env`, values parsed as
    /// JSON when they parse) or as plain `KEY`; `FLASK_KEY` wins. See the
    /// [crate docs](crate#coasters-keys) for every key and what it becomes.
    ///
    /// `WATCHBELL_*` variables can be applied over the result with [`with_env`](Config::with_env)
    /// (for settings coaster does not have: `WATCHBELL_TELEGRAM_API_BASE`, …).
    pub fn from_coaster_env() -> Result<Config, ConfigError> {
        let vars = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Config::from_coaster_vars(vars)
    }

    /// [`from_coaster_env`](Config::from_coaster_env) with the given variables instead of the
    /// process's environment (other names are ignored): for tests and for programs that keep
    /// their Flask settings elsewhere.
    ///
    /// ```
    /// # #[cfg(all(feature = "file", feature = "mail"))]
    /// # {
    /// let config = watchbell::Config::from_coaster_vars([
    ///     ("FLASK_ADMINS", r#"["ops@example.com"]"#),
    ///     ("FLASK_MAIL_DEFAULT_SENDER", r#"["Billing", "billing@example.com"]"#),
    ///     ("LOGFILE_LEVEL", "ERROR"),
    /// ])
    /// .unwrap();
    /// let file = config.file.as_ref().unwrap();
    /// assert_eq!(file.path.as_deref(), Some("error.log"));
    /// assert_eq!(file.level.as_deref(), Some("error"));
    /// let mail = config.mail.as_ref().unwrap();
    /// assert_eq!(mail.host.as_deref(), Some("localhost"));
    /// assert_eq!(mail.to, ["ops@example.com"]);
    /// assert_eq!(mail.from.as_deref(), Some("\"Billing\" <billing@example.com>"));
    /// # }
    /// ```
    pub fn from_coaster_vars<I, K, V>(vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut keys = Keys::new(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        let mut config = Config::default();
        if let Some((_, v)) = keys.get("SITE_ID") {
            config.app = Some(text(v)).filter(|s| !s.trim().is_empty());
        }
        config.file = coaster_file(&mut keys);
        config.mail = coaster_mail(&mut keys);
        config.telegram = coaster_telegram(&mut keys);
        config.slack = coaster_slack(&mut keys);
        config.sms = coaster_sms(&mut keys);
        result(std::mem::take(&mut keys.problems))?;
        config.check()?;
        Ok(config)
    }
}

fn coaster_file(keys: &mut Keys) -> Option<FileConfig> {
    let path = match keys.either("LOG_FILE", "LOGFILE") {
        None => DEFAULT_LOGFILE.to_owned(),
        // A falsy value turns the file off, as in coaster.
        Some((_, v)) if !truthy(v) => return None,
        Some((_, v)) => text(v),
    };
    let found = owned(keys.either("LOG_FILE_LEVEL", "LOGFILE_LEVEL"));
    let level = keys.level(found).unwrap_or_else(|| "warn".to_owned());
    let mut file = FileConfig { path: Some(path), level: Some(level), ..FileConfig::default() };
    if keys.get("LOG_FILE_ROTATE").is_none_or(|(_, v)| truthy(v)) {
        file.when = Some(keys.either("LOG_FILE_ROTATE_WHEN", "LOGFILE_WHEN").map(|(_, v)| text(v)))
            .flatten()
            .filter(|w| !w.trim().is_empty())
            .or_else(|| Some("midnight".to_owned()));
        let found = owned(keys.get("LOG_FILE_ROTATE_INTERVAL"));
        if let Some(n) = keys.int(found) {
            match u32::try_from(n) {
                Ok(n) if n > 0 => file.interval = Some(n),
                _ => {
                    let (name, v) = found_owned(keys.get("LOG_FILE_ROTATE_INTERVAL"));
                    keys.problem(&name, v.as_ref(), "a whole number of at least 1");
                }
            }
        }
        let zone = keys.get("LOG_FILE_ROTATE_UTC").is_some_and(|(_, v)| truthy(v));
        file.zone = Some(if zone { "utc" } else { "local" }.to_owned());
    }
    let found = owned(keys.either("LOG_FILE_ROTATE_COUNT", "LOGFILE_BACKUPCOUNT").filter(|(_, v)| !v.is_null()));
    let backups = match keys.int(found) {
        Some(n) if n > 0 => n as usize,
        Some(n) if n < 0 => {
            let (name, v) = found_owned(keys.either("LOG_FILE_ROTATE_COUNT", "LOGFILE_BACKUPCOUNT"));
            keys.problem(&name, v.as_ref(), "a whole number, 0 or more");
            DEFAULT_BACKUPS
        }
        _ => DEFAULT_BACKUPS,
    };
    file.backup_count = Some(backups);
    Some(file)
}

/// A found key and value, owned (to pass to the methods that record problems).
fn owned(found: Option<(&str, &Value)>) -> Option<(String, Value)> {
    found.map(|(n, v)| (n.to_owned(), v.clone()))
}

fn found_owned(found: Option<(&str, &Value)>) -> (String, Option<Value>) {
    match found {
        Some((n, v)) => (n.to_owned(), Some(v.clone())),
        None => (String::new(), None),
    }
}

fn coaster_mail(keys: &mut Keys) -> Option<MailConfig> {
    let to = keys.either("LOG_EMAIL_TO", "ADMINS").map(|(_, v)| list(v)).unwrap_or_default();
    if to.is_empty() {
        return None;
    }
    let from = ["LOG_EMAIL_FROM", "MAIL_DEFAULT_SENDER", "DEFAULT_MAIL_SENDER"]
        .iter()
        .find_map(|k| keys.get(k).and_then(|(_, v)| sender(v)))
        .unwrap_or_else(|| DEFAULT_SENDER.to_owned());
    let host = keys.get("MAIL_SERVER").map(|(_, v)| text(v)).filter(|h| !h.trim().is_empty());
    let found = owned(keys.get("MAIL_PORT"));
    let port = keys.int(found).and_then(|p| match u16::try_from(p) {
        Ok(p) if p > 0 => Some(p),
        _ => {
            let (name, v) = found_owned(keys.get("MAIL_PORT"));
            keys.problem(&name, v.as_ref(), "a port number, 1 to 65535");
            None
        }
    });
    let flag = |k: &str| keys.get(k).is_some_and(|(_, v)| truthy(v));
    let security = if flag("MAIL_USE_SSL") {
        "tls"
    } else if flag("MAIL_USE_TLS") {
        "starttls"
    } else {
        "plain"
    };
    // coaster logs in only with both a user name and a password.
    let user = keys.get("MAIL_USERNAME").map(|(_, v)| text(v)).filter(|s| !s.is_empty());
    let password = keys.get("MAIL_PASSWORD").map(|(_, v)| text(v)).filter(|s| !s.is_empty());
    let (username, password) = match (user, password) {
        (Some(u), Some(p)) => (Some(u), Some(SecretValue::literal(p))),
        _ => (None, None),
    };
    Some(MailConfig {
        host: Some(host.unwrap_or_else(|| "localhost".to_owned())),
        port,
        security: Some(security.to_owned()),
        username,
        password,
        from: Some(from),
        to,
        level: Some("error".to_owned()),
        ..MailConfig::default()
    })
}

fn coaster_telegram(keys: &mut Keys) -> Option<TelegramConfig> {
    let current = keys.get("LOG_TELEGRAM_CHATID").is_some();
    let chat = keys.either("LOG_TELEGRAM_CHATID", "TELEGRAM_ERROR_CHATID").filter(|(_, v)| truthy(v))?;
    let token = keys.either("LOG_TELEGRAM_APIKEY", "TELEGRAM_ERROR_APIKEY").filter(|(_, v)| truthy(v))?;
    let chat = match chat.1 {
        Value::Number(n) => n.as_i64().map(ChatRef::Id).unwrap_or_else(|| ChatRef::Name(n.to_string())),
        v => {
            let t = text(v).trim().to_owned();
            t.parse().map(ChatRef::Id).unwrap_or(ChatRef::Name(t))
        }
    };
    let token = SecretValue::literal(text(token.1));
    let found = owned(keys.either("LOG_TELEGRAM_THREADID", "TELEGRAM_ERROR_THREADID"));
    let topic = keys.int(found);
    let found = owned(keys.either("LOG_TELEGRAM_LEVEL", "TELEGRAM_ERROR_LEVEL"));
    // coaster's current keys default to WARNING, its older ones sent ERROR only.
    let level = keys.level(found).unwrap_or_else(|| if current { "warn" } else { "error" }.to_owned());
    Some(TelegramConfig {
        token: Some(token),
        chats: vec![chat],
        topic,
        level: Some(level),
        ..TelegramConfig::default()
    })
}

fn coaster_slack(keys: &mut Keys) -> Option<SlackConfig> {
    let (name, value) = keys.either("LOG_SLACK_WEBHOOKS", "SLACK_LOGGING_WEBHOOKS").filter(|(_, v)| truthy(v))?;
    let (name, value) = (name.to_owned(), value.clone());
    let items = match &value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let mut webhooks = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = format!("{name}[{i}]");
        let (url, levels) = match item {
            // A bare URL: watchbell's default levels.
            Value::String(url) => (url.clone(), None),
            Value::Object(o) => {
                let Some(url) = o.get("url").map(text).filter(|u| !u.trim().is_empty()) else {
                    keys.problem(&format!("{key}.url"), None, "missing; expected the webhook URL");
                    continue;
                };
                let levels = match o.get("levelnames") {
                    None | Some(Value::Null) => None,
                    Some(names) => {
                        let mut levels = Vec::new();
                        for n in list(names) {
                            match python_level(&Value::String(n.clone())) {
                                Some(l) if !levels.iter().any(|x| x == l) => levels.push(l.to_owned()),
                                Some(_) => {}
                                None => keys.problem(
                                    &format!("{key}.levelnames"),
                                    Some(&Value::String(n)),
                                    "level names: DEBUG, INFO, WARNING, ERROR, CRITICAL",
                                ),
                            }
                        }
                        Some(levels)
                    }
                };
                (url, levels)
            }
            _ => {
                keys.problem(
                    &key,
                    None,
                    "a webhook: {\"levelnames\": [...], \"url\": \"https://hooks.slack.com/...\"}",
                );
                continue;
            }
        };
        webhooks.push(SlackWebhookConfig {
            url: Some(SecretValue::literal(url)),
            levels,
            name: Some(format!("coaster-{i}")),
            ..SlackWebhookConfig::default()
        });
    }
    Some(SlackConfig { webhooks, ..SlackConfig::default() })
}

fn coaster_sms(keys: &mut Keys) -> Option<SmsConfig> {
    let (name, numbers) = keys.get("ADMIN_NUMBERS").filter(|(_, v)| truthy(v))?;
    let name = name.to_owned();
    let recipients = list(numbers);
    let text_of = |k: &str| keys.get(k).map(|(_, v)| text(v)).filter(|s| !s.trim().is_empty());
    let twilio = match (text_of("SMS_TWILIO_SID"), text_of("SMS_TWILIO_TOKEN"), text_of("SMS_TWILIO_FROM")) {
        (Some(sid), Some(token), Some(from)) => Some(TwilioConfig {
            sid: Some(sid),
            token: Some(SecretValue::literal(token)),
            from: Some(from),
            api_base: None,
        }),
        _ => None,
    };
    // coaster signs Exotel requests with the SID as the user and the token as the password:
    // that SID is the API key.
    let exotel = match (text_of("SMS_EXOTEL_SID"), text_of("SMS_EXOTEL_TOKEN"), text_of("SMS_EXOTEL_FROM")) {
        (Some(sid), Some(token), Some(from)) => Some(ExotelConfig {
            api_key: Some(SecretValue::literal(sid.clone())),
            sid: Some(sid),
            token: Some(SecretValue::literal(token)),
            from: Some(from),
            ..ExotelConfig::default()
        }),
        _ => None,
    };
    if twilio.is_none() && exotel.is_none() {
        keys.problem(
            &name,
            None,
            "SMS needs a provider: SMS_TWILIO_SID, SMS_TWILIO_TOKEN and SMS_TWILIO_FROM, or \
             SMS_EXOTEL_SID, SMS_EXOTEL_TOKEN and SMS_EXOTEL_FROM",
        );
        return None;
    }
    Some(SmsConfig { recipients, level: Some("error".to_owned()), twilio, exotel, ..SmsConfig::default() })
}
