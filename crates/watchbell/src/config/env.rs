//! `WATCHBELL_*` environment variables over the JSON form of a config.
use serde_json::{Map, Value};

use super::build::quote;
use super::Problem;

/// How a variable's text becomes a value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Text as is.
    Str,
    /// Text, never shown in errors.
    Secret,
    /// A whole number.
    Int,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`).
    Bool,
    /// A comma-separated list of text.
    List,
    /// A comma-separated list of chat ids (numbers) and `@names`.
    Chats,
}

/// The keys of every sink table that take the common delivery settings.
const COMMON: [(&str, Kind); 4] =
    [("pace", Kind::Str), ("timeout", Kind::Str), ("queue_records", Kind::Int), ("allow_plain_http", Kind::Bool)];

/// Every variable (without `WATCHBELL_`): its TOML path and kind. `SLACK_WEBHOOK` and
/// `SLACK_LEVELS` are handled apart.
pub(crate) const VARS: &[(&str, &str, Kind)] = &[
    ("APP", "app", Kind::Str),
    ("ENVIRONMENT", "environment", Kind::Str),
    ("PANICS", "panics", Kind::Bool),
    ("ERRORS", "errors", Kind::Str),
    ("FMT_LEVEL", "fmt.level", Kind::Str),
    ("RATE_LIMIT_LIMIT", "rate_limit.limit", Kind::Int),
    ("RATE_LIMIT_PER", "rate_limit.per", Kind::Str),
    ("RATE_LIMIT_SHARED", "rate_limit.shared", Kind::Secret),
    ("RATE_LIMIT_GATHER", "rate_limit.gather", Kind::Str),
    ("RELAY_HTTP", "relay.http", Kind::Str),
    ("RELAY_UNIX", "relay.unix", Kind::Str),
    ("RELAY_ZMQ", "relay.zmq", Kind::List),
    ("RELAY_TOKEN", "relay.token", Kind::Secret),
    ("RELAY_QUEUE", "relay.queue", Kind::Int),
    ("RELAY_RETRY_AFTER", "relay.retry_after", Kind::Str),
    ("HTTP_CLIENT_CA_FILE", "http_client.ca_file", Kind::Str),
    ("HTTP_CLIENT_BUILT_IN_ROOTS", "http_client.built_in_roots", Kind::Bool),
    ("HTTP_CLIENT_CLIENT_CERT_FILE", "http_client.client_cert_file", Kind::Str),
    ("HTTP_CLIENT_CLIENT_KEY_FILE", "http_client.client_key_file", Kind::Str),
    ("HTTP_CLIENT_PROXY", "http_client.proxy", Kind::Secret),
    ("HTTP_CLIENT_NO_PROXY", "http_client.no_proxy", Kind::Str),
    ("HTTP_CLIENT_PROXY_FROM_ENV", "http_client.proxy_from_env", Kind::Bool),
    ("TELEGRAM_TOKEN", "telegram.token", Kind::Secret),
    ("TELEGRAM_CHAT", "telegram.chats", Kind::Chats),
    ("TELEGRAM_CHATS", "telegram.chats", Kind::Chats),
    ("TELEGRAM_TOPIC", "telegram.topic", Kind::Int),
    ("TELEGRAM_LEVEL", "telegram.level", Kind::Str),
    ("TELEGRAM_NOTIFY_LEVEL", "telegram.notify_level", Kind::Str),
    ("TELEGRAM_API_BASE", "telegram.api_base", Kind::Str),
    ("SMS_RECIPIENTS", "sms.recipients", Kind::List),
    ("SMS_LEVEL", "sms.level", Kind::Str),
    ("SMS_HOURLY_CAP", "sms.hourly_cap", Kind::Int),
    ("TWILIO_SID", "sms.twilio.sid", Kind::Str),
    ("TWILIO_TOKEN", "sms.twilio.token", Kind::Secret),
    ("TWILIO_FROM", "sms.twilio.from", Kind::Str),
    ("TWILIO_API_BASE", "sms.twilio.api_base", Kind::Str),
    ("EXOTEL_SID", "sms.exotel.sid", Kind::Str),
    ("EXOTEL_API_KEY", "sms.exotel.api_key", Kind::Secret),
    ("EXOTEL_TOKEN", "sms.exotel.token", Kind::Secret),
    ("EXOTEL_FROM", "sms.exotel.from", Kind::Str),
    ("EXOTEL_SUBDOMAIN", "sms.exotel.subdomain", Kind::Str),
    ("EXOTEL_API_BASE", "sms.exotel.api_base", Kind::Str),
    ("MAIL_HOST", "mail.host", Kind::Str),
    ("MAIL_PORT", "mail.port", Kind::Int),
    ("MAIL_SECURITY", "mail.security", Kind::Str),
    ("MAIL_USERNAME", "mail.username", Kind::Str),
    ("MAIL_PASSWORD", "mail.password", Kind::Secret),
    ("MAIL_FROM", "mail.from", Kind::Str),
    ("MAIL_TO", "mail.to", Kind::List),
    ("MAIL_LEVEL", "mail.level", Kind::Str),
    ("MAIL_SUBJECT", "mail.subject", Kind::Str),
    ("HTTP_URL", "http.url", Kind::Secret),
    ("HTTP_ENCODING", "http.encoding", Kind::Str),
    ("HTTP_LEVEL", "http.level", Kind::Str),
    ("HTTP_INDEX", "http.index", Kind::Str),
    ("HTTP_SERVICE_NAME", "http.service_name", Kind::Str),
    ("HTTP_BEARER_TOKEN", "http.bearer_token", Kind::Secret),
    ("HTTP_BASIC_USER", "http.basic_user", Kind::Str),
    ("HTTP_BASIC_PASSWORD", "http.basic_password", Kind::Secret),
    ("SYSLOG_TRANSPORT", "syslog.transport", Kind::Str),
    ("SYSLOG_ADDRESS", "syslog.address", Kind::Str),
    ("SYSLOG_PROTOCOL", "syslog.protocol", Kind::Str),
    ("SYSLOG_FACILITY", "syslog.facility", Kind::Str),
    ("SYSLOG_LEVEL", "syslog.level", Kind::Str),
    ("SYSLOG_MSGID_FIELD", "syslog.msgid_field", Kind::Str),
    ("SYSLOG_BOM", "syslog.bom", Kind::Bool),
    ("SYSLOG_ZONE", "syslog.zone", Kind::Str),
    ("SYSLOG_SEVERITIES_ERROR", "syslog.severities.error", Kind::Str),
    ("SYSLOG_SEVERITIES_WARN", "syslog.severities.warn", Kind::Str),
    ("SYSLOG_SEVERITIES_INFO", "syslog.severities.info", Kind::Str),
    ("SYSLOG_SEVERITIES_DEBUG", "syslog.severities.debug", Kind::Str),
    ("SYSLOG_SEVERITIES_TRACE", "syslog.severities.trace", Kind::Str),
    ("FILE_PATH", "file.path", Kind::Str),
    ("FILE_LEVEL", "file.level", Kind::Str),
    ("FILE_MAX_BYTES", "file.max_bytes", Kind::Int),
    ("FILE_BACKUP_COUNT", "file.backup_count", Kind::Int),
    ("FILE_ROTATE_EVERY", "file.rotate_every", Kind::Str),
    ("FILE_WHEN", "file.when", Kind::Str),
    ("FILE_INTERVAL", "file.interval", Kind::Int),
    ("FILE_AT_TIME", "file.at_time", Kind::Str),
    ("FILE_ZONE", "file.zone", Kind::Str),
    ("FILE_DATE_FORMAT", "file.date_format", Kind::Str),
    ("FILE_TRUNCATE", "file.truncate", Kind::Bool),
    ("FILE_COMPRESS", "file.compress", Kind::Str),
    ("FINGERS_CROSSED_ACTION_LEVEL", "fingers_crossed.action_level", Kind::Str),
    ("FINGERS_CROSSED_LEVEL", "fingers_crossed.level", Kind::Str),
    ("FINGERS_CROSSED_BUFFER_SIZE", "fingers_crossed.buffer_size", Kind::Int),
    ("FINGERS_CROSSED_SCOPE", "fingers_crossed.scope", Kind::Str),
    ("FINGERS_CROSSED_DELIVER_TO", "fingers_crossed.deliver_to", Kind::List),
    ("TICKETING_URL", "ticketing.url", Kind::Secret),
    ("TICKETING_LEVEL", "ticketing.level", Kind::Str),
    ("TICKETING_APP_ID", "ticketing.app_id", Kind::Str),
    ("TICKETING_PUBLIC_URL", "ticketing.public_url", Kind::Str),
    ("COMMAND_PROGRAM", "command.program", Kind::Str),
    ("COMMAND_SHELL", "command.shell", Kind::Str),
    ("COMMAND_ARGS", "command.args", Kind::List),
    ("COMMAND_STDIN", "command.stdin", Kind::Str),
    ("COMMAND_PER_BATCH", "command.per_batch", Kind::Bool),
    ("COMMAND_CONCURRENCY", "command.concurrency", Kind::Int),
    ("COMMAND_LEVEL", "command.level", Kind::Str),
    ("JOURNALD_SOCKET", "journald.socket", Kind::Str),
    ("JOURNALD_SYSLOG_IDENTIFIER", "journald.syslog_identifier", Kind::Str),
    ("JOURNALD_LEVEL", "journald.level", Kind::Str),
    ("DESKTOP_BUS_ADDRESS", "desktop.bus_address", Kind::Str),
    ("DESKTOP_EXPIRE_AFTER", "desktop.expire_after", Kind::Str),
    ("DESKTOP_LEVEL", "desktop.level", Kind::Str),
    ("NOTIFY", "notify", Kind::List),
    ("NTFY_SERVER", "ntfy.server", Kind::Str),
    ("NTFY_TOPIC", "ntfy.topic", Kind::Str),
    ("NTFY_TOKEN", "ntfy.token", Kind::Str),
    ("NTFY_CLICK", "ntfy.click", Kind::Str),
    ("NTFY_LEVEL", "ntfy.level", Kind::Str),
    ("PUSHOVER_TOKEN", "pushover.token", Kind::Str),
    ("PUSHOVER_USER", "pushover.user", Kind::Str),
    ("PUSHOVER_EMERGENCY_RETRY", "pushover.emergency_retry", Kind::Str),
    ("PUSHOVER_EMERGENCY_EXPIRE", "pushover.emergency_expire", Kind::Str),
    ("PUSHOVER_CLICK", "pushover.click", Kind::Str),
    ("PUSHOVER_API_BASE", "pushover.api_base", Kind::Str),
    ("PUSHOVER_LEVEL", "pushover.level", Kind::Str),
    ("DISCORD_WEBHOOK", "discord.webhook", Kind::Str),
    ("DISCORD_LEVEL", "discord.level", Kind::Str),
    ("TEAMS_WEBHOOK", "teams.webhook", Kind::Str),
    ("TEAMS_LEVEL", "teams.level", Kind::Str),
    ("GOOGLE_CHAT_WEBHOOK", "google_chat.webhook", Kind::Str),
    ("GOOGLE_CHAT_THREAD_BY_CALLSITE", "google_chat.thread_by_callsite", Kind::Bool),
    ("GOOGLE_CHAT_LEVEL", "google_chat.level", Kind::Str),
    ("MATTERMOST_WEBHOOK", "mattermost.webhook", Kind::Str),
    ("MATTERMOST_CHANNEL", "mattermost.channel", Kind::Str),
    ("MATTERMOST_USERNAME", "mattermost.username", Kind::Str),
    ("MATTERMOST_LEVEL", "mattermost.level", Kind::Str),
    ("ROCKETCHAT_WEBHOOK", "rocketchat.webhook", Kind::Str),
    ("ROCKETCHAT_CHANNEL", "rocketchat.channel", Kind::Str),
    ("ROCKETCHAT_USERNAME", "rocketchat.username", Kind::Str),
    ("ROCKETCHAT_LEVEL", "rocketchat.level", Kind::Str),
    ("PAGERDUTY_ROUTING_KEY", "pagerduty.routing_key", Kind::Str),
    ("PAGERDUTY_API_BASE", "pagerduty.api_base", Kind::Str),
    ("PAGERDUTY_LEVEL", "pagerduty.level", Kind::Str),
    ("OPSGENIE_KEY", "opsgenie.key", Kind::Str),
    ("OPSGENIE_REGION", "opsgenie.region", Kind::Str),
    ("OPSGENIE_API_BASE", "opsgenie.api_base", Kind::Str),
    ("OPSGENIE_LEVEL", "opsgenie.level", Kind::Str),
    ("ZMQ_ENDPOINT", "zmq.endpoint", Kind::Str),
    ("ZMQ_SOCKET", "zmq.socket", Kind::Str),
    ("ZMQ_LEVEL", "zmq.level", Kind::Str),
    ("SQS_QUEUE_URL", "sqs.queue_url", Kind::Str),
    ("SQS_MESSAGE_GROUP_ID", "sqs.message_group_id", Kind::Str),
    ("SQS_REGION", "sqs.region", Kind::Str),
    ("SQS_ENDPOINT_URL", "sqs.endpoint_url", Kind::Str),
    ("SQS_PROFILE", "sqs.profile", Kind::Str),
    ("SQS_LEVEL", "sqs.level", Kind::Str),
    ("CLOUDWATCH_LOGS_GROUP", "cloudwatch_logs.log_group", Kind::Str),
    ("CLOUDWATCH_LOGS_STREAM", "cloudwatch_logs.log_stream", Kind::Str),
    ("CLOUDWATCH_LOGS_CREATE", "cloudwatch_logs.create", Kind::Bool),
    ("CLOUDWATCH_LOGS_REGION", "cloudwatch_logs.region", Kind::Str),
    ("CLOUDWATCH_LOGS_ENDPOINT_URL", "cloudwatch_logs.endpoint_url", Kind::Str),
    ("CLOUDWATCH_LOGS_PROFILE", "cloudwatch_logs.profile", Kind::Str),
    ("CLOUDWATCH_LOGS_LEVEL", "cloudwatch_logs.level", Kind::Str),
    ("SNS_TOPIC_ARN", "sns.topic_arn", Kind::Str),
    ("SNS_REGION", "sns.region", Kind::Str),
    ("SNS_ENDPOINT_URL", "sns.endpoint_url", Kind::Str),
    ("SNS_PROFILE", "sns.profile", Kind::Str),
    ("SNS_LEVEL", "sns.level", Kind::Str),
];

/// The sink tables that take the common settings, as variable prefixes.
const SINK_PREFIXES: [(&str, &str); 24] = [
    ("SLACK", "slack"),
    ("TELEGRAM", "telegram"),
    ("SMS", "sms"),
    ("MAIL", "mail"),
    ("HTTP", "http"),
    ("SYSLOG", "syslog"),
    ("FILE", "file"),
    ("TICKETING", "ticketing"),
    ("COMMAND", "command"),
    ("JOURNALD", "journald"),
    ("DESKTOP", "desktop"),
    ("NTFY", "ntfy"),
    ("PUSHOVER", "pushover"),
    ("DISCORD", "discord"),
    ("TEAMS", "teams"),
    ("GOOGLE_CHAT", "google_chat"),
    ("MATTERMOST", "mattermost"),
    ("ROCKETCHAT", "rocketchat"),
    ("PAGERDUTY", "pagerduty"),
    ("OPSGENIE", "opsgenie"),
    ("ZMQ", "zmq"),
    ("SQS", "sqs"),
    ("CLOUDWATCH_LOGS", "cloudwatch_logs"),
    ("SNS", "sns"),
];

fn lookup(name: &str) -> Option<(String, Kind)> {
    if let Some((_, path, kind)) = VARS.iter().find(|(n, _, _)| *n == name) {
        return Some((path.to_string(), *kind));
    }
    for (prefix, section) in SINK_PREFIXES {
        if let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')) {
            for (key, kind) in COMMON {
                if rest.eq_ignore_ascii_case(key) {
                    return Some((format!("{section}.{key}"), kind));
                }
            }
        }
    }
    None
}

fn parse(var: &str, text: &str, kind: Kind, problems: &mut Vec<Problem>) -> Option<Value> {
    let shown = || if kind == Kind::Secret { "\"***\"".to_owned() } else { quote(text) };
    let list = || text.split(',').map(str::trim).filter(|s| !s.is_empty());
    Some(match kind {
        Kind::Str | Kind::Secret => Value::String(text.to_owned()),
        Kind::Int => match text.trim().parse::<u64>() {
            Ok(n) => Value::from(n),
            Err(_) => match text.trim().parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => {
                    problems.push(Problem {
                        key: var.to_owned(),
                        value: Some(shown()),
                        expected: "a whole number".into(),
                    });
                    return None;
                }
            },
        },
        Kind::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Value::Bool(true),
            "false" | "0" | "no" | "off" => Value::Bool(false),
            _ => {
                problems.push(Problem { key: var.to_owned(), value: Some(shown()), expected: "true or false".into() });
                return None;
            }
        },
        Kind::List => Value::Array(list().map(|s| Value::String(s.to_owned())).collect()),
        Kind::Chats => Value::Array(
            list().map(|s| s.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(s.to_owned()))).collect(),
        ),
    })
}

/// The object at `path` in `root`, created (or replacing a null) on the way.
fn object_at<'a>(root: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut cur = root;
    for key in path {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let map = cur.as_object_mut().expect("an object");
        let next = map.entry(key.to_string()).or_insert(Value::Null);
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        cur = next;
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    cur.as_object_mut().expect("an object")
}

/// Applies the variables (full names, sorted) to the JSON form of a config.
pub(crate) fn apply(json: &mut Value, vars: &[(String, String)], problems: &mut Vec<Problem>) {
    let mut slack_webhook = None;
    let mut slack_levels = None;
    for (var, text) in vars {
        let Some(name) = var.strip_prefix("WATCHBELL_") else { continue };
        if name == "CONFIG" || name.starts_with("TEST_") {
            continue;
        }
        match name {
            "SLACK_WEBHOOK" => {
                slack_webhook = Some(text.clone());
                continue;
            }
            "SLACK_LEVELS" => {
                slack_levels = parse(var, text, Kind::List, problems);
                continue;
            }
            "LEVEL" => {
                object_at(json, &["fmt"]).insert("level".into(), Value::String(text.clone()));
                continue;
            }
            _ => {}
        }
        let Some((path, kind)) = lookup(name) else {
            problems.push(Problem {
                key: var.clone(),
                value: None,
                expected:
                    "a known WATCHBELL_* variable: this one is unknown (see the watchbell crate docs for the list)"
                        .into(),
            });
            continue;
        };
        if let Some(value) = parse(var, text, kind, problems) {
            let parts: Vec<&str> = path.split('.').collect();
            let (last, parents) = parts.split_last().expect("a path");
            object_at(json, parents).insert(last.to_string(), value);
        }
    }
    match (slack_webhook, slack_levels) {
        (Some(url), levels) => {
            let slack = object_at(json, &["slack"]);
            let hooks = slack.entry("webhooks").or_insert(Value::Array(Vec::new()));
            if !hooks.is_array() {
                *hooks = Value::Array(Vec::new());
            }
            let mut hook = Map::new();
            hook.insert("url".into(), Value::String(url));
            hook.insert("name".into(), Value::String("env".into()));
            if let Some(levels) = levels {
                hook.insert("levels".into(), levels);
            }
            hooks.as_array_mut().expect("an array").push(Value::Object(hook));
        }
        (None, Some(_)) => problems.push(Problem {
            key: "WATCHBELL_SLACK_LEVELS".into(),
            value: None,
            expected: "WATCHBELL_SLACK_WEBHOOK too: the levels are those of that webhook".into(),
        }),
        (None, None) => {}
    }
}
