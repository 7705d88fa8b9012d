//! The TOML shape: one struct per table.
use serde::{Deserialize, Serialize};

use super::SecretValue;

/// Declares a sink table: its own keys plus the common delivery settings.
macro_rules! sink_table {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $($(#[$fm])* pub $field: $ty,)*
            /// Common: the least time between two deliveries (`"2s"`); default: the sink's.
            pub pace: Option<String>,
            /// Common: the timeout of one request or connection (`"10s"`); default: the sink's.
            pub timeout: Option<String>,
            /// Common: the most records queued for this destination; default: the sink's.
            pub queue_records: Option<usize>,
            /// Common: the most alerts per hour to this sink, across all callsites (`0`: no
            /// cap); default: the sink's (10 for SMS, none for the others).
            pub hourly_cap: Option<u32>,
            /// Common: accept `http://` URLs (or plain SMTP) to hosts that are not loopback;
            /// default `false`.
            pub allow_plain_http: Option<bool>,
        }

        impl super::build::Common for $name {
            fn common(&self) -> super::build::CommonRef<'_> {
                super::build::CommonRef {
                    pace: self.pace.as_deref(),
                    timeout: self.timeout.as_deref(),
                    queue_records: self.queue_records,
                    hourly_cap: self.hourly_cap,
                    allow_plain_http: self.allow_plain_http,
                }
            }
        }
    };
}

/// The whole configuration: every table is optional; a sink is set up when its table is there.
/// See the [crate docs](crate#configuration) for the file format.
///
/// Its `Debug` shows secret slots as `***` (or where they come from: `{ env = "NAME" }`), and
/// the URLs in other values with their secrets redacted
/// ([`redact_urls`](watchbell_core::secret::redact_urls)): credentials in an `api_base`
/// URL's userinfo, a `?token=` in its query.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The application's name, shown in every message (`app = "billing"`).
    pub app: Option<String>,
    /// `panics = true`: [`init`](crate::init) installs the panic hook
    /// ([`capture_panics`](crate::capture_panics)): each panic becomes an ERROR record, and one
    /// that ends the process waits (at most 5 s) for the alerts to leave. Default `false`.
    pub panics: bool,
    /// Where watchbell's own failures go: `"stderr"` (default: one line per kind of failure)
    /// or `"silent"` (counted in stats only); set by [`init`](crate::init). A callback is set in
    /// code: [`watchbell_core::set_error_reporter`].
    pub errors: Option<String>,
    /// A label such as `production`, shown by the sinks that show one (Slack).
    pub environment: Option<String>,
    /// The console (`fmt`) layer that [`init`](crate::init) installs.
    pub fmt: Option<FmtConfig>,
    /// One rate limit for every sink, instead of each sink's own default.
    pub rate_limit: Option<RateLimitConfig>,
    /// TLS trust, client certificate and proxy for every sink that speaks HTTP(S).
    pub http_client: Option<HttpClientConfig>,
    /// Slack incoming webhooks.
    pub slack: Option<SlackConfig>,
    /// Telegram Bot API.
    pub telegram: Option<TelegramConfig>,
    /// SMS through Twilio and/or Exotel.
    pub sms: Option<SmsConfig>,
    /// SMTP mail.
    pub mail: Option<MailConfig>,
    /// A log collector over HTTP.
    pub http: Option<HttpConfig>,
    /// Syslog.
    pub syslog: Option<SyslogConfig>,
    /// A rotated log file.
    pub file: Option<FileConfig>,
    /// Withhold records until one matters, then deliver the context to `deliver_to`.
    pub fingers_crossed: Option<FingersCrossedConfig>,
    /// Error tickets in SQLite (or PostgreSQL).
    pub ticketing: Option<TicketingConfig>,
    /// A program run per alert (or per batch).
    pub command: Option<CommandConfig>,
    /// The systemd journal.
    pub journald: Option<JournaldConfig>,
    /// Desktop notifications over D-Bus.
    pub desktop: Option<DesktopConfig>,
    /// Push, chat and paging destinations, one apprise-style URL each (secrets: a URL holds its
    /// token): `ntfys://[TOKEN@]HOST/TOPIC`, `discord://ID/TOKEN`, `pagerduty://ROUTING_KEY`,
    /// `pover://USER@TOKEN`, `opsgenie://KEY`, `gchat://SPACE/KEY/TOKEN`, `mmosts://HOST/KEY`,
    /// `rockets://HOST/ID/TOKEN`, a Teams workflow URL, with `?level=` if not the default
    /// (`error`). See `watchbell_notify::from_url`.
    pub notify: Vec<SecretValue>,
    /// ntfy (push to phones and desktops), as a table.
    pub ntfy: Option<NtfyConfig>,
    /// Pushover.
    pub pushover: Option<PushoverConfig>,
    /// A Discord webhook.
    pub discord: Option<WebhookConfig>,
    /// A Microsoft Teams workflow webhook.
    pub teams: Option<WebhookConfig>,
    /// A Google Chat space's webhook.
    pub google_chat: Option<GoogleChatConfig>,
    /// A Mattermost incoming webhook.
    pub mattermost: Option<ChatWebhookConfig>,
    /// A Rocket.Chat incoming webhook.
    pub rocketchat: Option<ChatWebhookConfig>,
    /// PagerDuty Events API v2.
    pub pagerduty: Option<PagerDutyConfig>,
    /// Opsgenie alerts.
    pub opsgenie: Option<OpsgenieConfig>,
    /// The inputs of `watchbell-relay` (read by the relay; a service ignores it).
    pub relay: Option<RelayConfig>,
    /// A ZeroMQ publisher in Logbook's wire shape.
    pub zmq: Option<ZmqConfig>,
    /// Records to an SQS queue.
    pub sqs: Option<SqsConfig>,
    /// Records to a CloudWatch Logs stream.
    pub cloudwatch_logs: Option<CloudWatchLogsConfig>,
    /// Alerts to an SNS topic.
    pub sns: Option<SnsConfig>,
}

/// `[relay]`: the inputs of the `watchbell-relay` binary, which runs this file's sinks for the
/// records of many services.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// HTTP input (`"127.0.0.1:9400"`): NDJSON at `POST /v1/records`, OTLP/HTTP JSON at
    /// `POST /v1/logs`, `GET /health`.
    pub http: Option<String>,
    /// Unix stream socket input taking NDJSON lines (`"/run/watchbell.sock"`).
    pub unix: Option<String>,
    /// ZeroMQ endpoints to subscribe to (`"tcp://127.0.0.1:5556"`).
    pub zmq: Vec<String>,
    /// Bearer token required on the HTTP input.
    pub token: Option<SecretValue>,
    /// The most records queued (default 100000); beyond it HTTP answers 429.
    pub queue: Option<usize>,
    /// The `Retry-After` of a 429 (default `"1s"`).
    pub retry_after: Option<String>,
}

/// `[fmt]`: the console layer of [`init`](crate::init).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FmtConfig {
    /// The least severe level printed (default `info`); `off` prints nothing.
    pub level: Option<String>,
}

/// `[rate_limit]`: at most `limit` records per `per` per call site, for every sink.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Records per window and call site; `0` turns every sink's rate limit off.
    pub limit: Option<u32>,
    /// The window (default `"60s"`).
    pub per: Option<String>,
    /// Windows shared by every process of a fleet, in PostgreSQL (`"postgres://…"`): one
    /// alert per fingerprint per window across the fleet (feature `postgres`).
    pub shared: Option<SecretValue>,
    /// How long the first record of a window is held to gather the count of its similar
    /// records, so the first alert already says "N similar suppressed from M instances"
    /// (default `"0s"`: sent at once). Every alert that passes waits this long.
    pub gather: Option<String>,
}

/// `[http_client]`: how every sink that speaks HTTP(S) (Slack, Telegram, SMS, the HTTP
/// collector, `notify`) connects: extra trusted CAs, a client certificate, a proxy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpClientConfig {
    /// A PEM file of CA certificates trusted in addition to the system's (a private CA, a
    /// proxy that re-signs traffic).
    pub ca_file: Option<String>,
    /// Whether the system's trust store is used too (default `true`; `false`: only `ca_file`).
    pub built_in_roots: Option<bool>,
    /// The client certificate chain (PEM) presented to servers that ask for one (mTLS).
    pub client_cert_file: Option<String>,
    /// The client certificate's private key (PEM, unencrypted; with `client_cert_file`).
    pub client_key_file: Option<String>,
    /// `http://[user:password@]host:port` or `https://…` (a secret: it may hold credentials).
    pub proxy: Option<SecretValue>,
    /// Hosts reached without the proxy, `NO_PROXY` style (`"localhost,.internal,10.0.0.0/8"`).
    pub no_proxy: Option<String>,
    /// Whether `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` are honoured when `proxy`
    /// is not set (default `true`).
    pub proxy_from_env: Option<bool>,
}

sink_table! {
    /// `[slack]`: one or more `[[slack.webhooks]]`.
    SlackConfig {
        /// The webhooks, each with its own levels.
        webhooks: Vec<SlackWebhookConfig>,
    }
}

/// `[[slack.webhooks]]`: one incoming webhook.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackWebhookConfig {
    /// The webhook URL (a secret).
    pub url: Option<SecretValue>,
    /// The exact levels it receives (default `["error", "warn"]`).
    pub levels: Option<Vec<String>>,
    /// The legacy channel override.
    pub channel: Option<String>,
    /// The legacy username override.
    pub username: Option<String>,
    /// The legacy icon override (`":rotating_light:"`).
    pub icon_emoji: Option<String>,
    /// The name in stats (default `webhook-N`).
    pub name: Option<String>,
}

/// A Telegram chat: a numeric id or an `@channel` name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatRef {
    /// A numeric chat id (groups are negative).
    Id(i64),
    /// A numeric id as a string, or `@channelname`.
    Name(String),
}

sink_table! {
    /// `[telegram]`: a bot sending to chats.
    TelegramConfig {
        /// The bot token (a secret; required).
        token: Option<SecretValue>,
        /// The chats (at least one).
        chats: Vec<ChatRef>,
        /// The forum topic (`message_thread_id`) in every chat.
        topic: Option<i64>,
        /// The least severe level sent (default `warn`).
        level: Option<String>,
        /// The least severe level sent with a notification sound (default `error`).
        notify_level: Option<String>,
        /// The Bot API base URL (default `https://api.telegram.org`).
        api_base: Option<String>,
    }
}

sink_table! {
    /// `[sms]`: text messages to on-call numbers.
    SmsConfig {
        /// The numbers (E.164, `+14155550100`).
        recipients: Vec<String>,
        /// The least severe level sent (default `error`).
        level: Option<String>,
        /// Twilio: numbers not routed to Exotel.
        twilio: Option<TwilioConfig>,
        /// Exotel: `+91` numbers.
        exotel: Option<ExotelConfig>,
    }
}

/// `[sms.twilio]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwilioConfig {
    /// The account SID (`AC…`; required).
    pub sid: Option<String>,
    /// The auth token (a secret; required).
    pub token: Option<SecretValue>,
    /// The sending number (required).
    pub from: Option<String>,
    /// The API base URL (default `https://api.twilio.com`).
    pub api_base: Option<String>,
}

/// `[sms.exotel]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExotelConfig {
    /// The account SID (required).
    pub sid: Option<String>,
    /// The API key (a secret; required).
    pub api_key: Option<SecretValue>,
    /// The API token (a secret; required).
    pub token: Option<SecretValue>,
    /// The sending ExoPhone (required).
    pub from: Option<String>,
    /// The API host (default `api.exotel.com`; `api.in.exotel.com` for the Mumbai cluster).
    pub subdomain: Option<String>,
    /// The whole API base URL instead of the subdomain (for tests and proxies).
    pub api_base: Option<String>,
}

sink_table! {
    /// `[mail]`: SMTP.
    MailConfig {
        /// The SMTP server (required).
        host: Option<String>,
        /// The port (default: 587 for starttls, 465 for tls, 25 for plain).
        port: Option<u16>,
        /// `starttls` (default), `tls` or `plain`.
        security: Option<String>,
        /// The login (with `password`).
        username: Option<String>,
        /// The password (a secret).
        password: Option<SecretValue>,
        /// The sender (required).
        from: Option<String>,
        /// The recipients (at least one).
        to: Vec<String>,
        /// The least severe level sent (default `error`).
        level: Option<String>,
        /// The subject template (default `[{app}] {level}: {message}`).
        subject: Option<String>,
        /// Headers added to every mail (`headers = { "X-Team" = "payments" }`); watchbell's own
        /// (`From`, `To`, `Subject`, `Date`, `Content-*`, …) are refused.
        headers: std::collections::BTreeMap<String, String>,
        /// The template of each record that led up to an escalation's trigger (or of a group's
        /// other records), Logbook's `related_format_string` (default: one short line each).
        related_format: Option<String>,
        /// `[[mail.route]]`: recipients chosen per record; the first route that matches wins,
        /// `to` takes the rest.
        route: Vec<MailRouteConfig>,
    }
}

/// `[[mail.route]]`: the records it matches go to its own `to` list. Every condition given must
/// hold; a route without conditions takes every record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailRouteConfig {
    /// Records at this level or more severe (`warn` takes WARN and ERROR).
    pub level: Option<String>,
    /// Records whose target starts with this text.
    pub target: Option<String>,
    /// Records with these field values (`fields = { tenant = "acme" }`), from the event or its
    /// spans; numbers and booleans as they print.
    pub fields: std::collections::BTreeMap<String, String>,
    /// The recipients (at least one).
    pub to: Vec<String>,
}

sink_table! {
    /// `[http]`: batches to a log collector.
    HttpConfig {
        /// The collector's URL (required; a secret: it may carry credentials or a token, and
        /// it is shown redacted in errors and `Debug`).
        url: Option<SecretValue>,
        /// `ndjson` (default), `json`, `loki`, `elastic` or `otlp`.
        encoding: Option<String>,
        /// The least severe level sent (default: the sink's).
        level: Option<String>,
        /// The Elasticsearch index or data stream (`elastic`).
        index: Option<String>,
        /// The OTLP `service.name` (`otlp`; default: `app`).
        service_name: Option<String>,
        /// A bearer token (a secret).
        bearer_token: Option<SecretValue>,
        /// The basic-auth user (with `basic_password`).
        basic_user: Option<String>,
        /// The basic-auth password (a secret).
        basic_password: Option<SecretValue>,
    }
}

sink_table! {
    /// `[syslog]`.
    SyslogConfig {
        /// `unix` (default), `udp` or `tcp`.
        transport: Option<String>,
        /// `host:port` for udp/tcp, the socket path for unix (default `/dev/log` and the like).
        address: Option<String>,
        /// `"3164"` or `"5424"` (default: the sink's).
        protocol: Option<String>,
        /// `user` (default), `daemon`, `local0` … `local7`, ….
        facility: Option<String>,
        /// The least severe level sent (default: the sink's).
        level: Option<String>,
        /// The field whose value is the RFC 5424 MSGID (default: none, MSGID `-`).
        msgid_field: Option<String>,
        /// A UTF-8 BOM before the RFC 5424 MSG (default `false`: rsyslog keeps it in the text).
        bom: Option<bool>,
        /// The zone of RFC 3164 timestamps: `local` (default), `utc`, an IANA name or a POSIX
        /// rule.
        zone: Option<String>,
        /// `[syslog.severities]`: the severity of a level (`warn = "notice"`); keys `error`,
        /// `warn`, `info`, `debug`, `trace`; values `emerg` … `debug` or `0` … `7`.
        severities: std::collections::BTreeMap<String, String>,
    }
}

sink_table! {
    /// `[file]`: a rotated log file.
    FileConfig {
        /// The file (required).
        path: Option<String>,
        /// The least severe level written (default `warn`, coaster's).
        level: Option<String>,
        /// Rotate when the file would pass this size.
        max_bytes: Option<u64>,
        /// How many rotated files to keep.
        backup_count: Option<usize>,
        /// Rotate every `minute`, `hour` or `day` (`midnight`).
        rotate_every: Option<String>,
        /// Time rotation as the standard library's `when`: `S`, `M`, `H`, `D`, `midnight`,
        /// `W0` (Monday) … `W6` (instead of `rotate_every`).
        when: Option<String>,
        /// How many units of `when` per file (default 1).
        interval: Option<u32>,
        /// The time of day of a `midnight` or weekly rollover, `"HH:MM"` or `"HH:MM:SS"`.
        at_time: Option<String>,
        /// The zone of the rotation clock and backup dates: `utc` (default), `local`, an IANA
        /// name (`Europe/Berlin`) or a POSIX rule.
        zone: Option<String>,
        /// Logbook's names: `strftime` format of the date in `{stem}-{date}{ext}`.
        date_format: Option<String>,
        /// Empty the file when it is first opened (default `false`: append).
        truncate: Option<bool>,
        /// Compress rotated files: `"gzip"` (default: none).
        compress: Option<String>,
    }
}

/// `[fingers_crossed]`: withhold records per scope until one reaches `action_level`, then deliver
/// them together to the sinks named in `deliver_to` (which then get only those batches).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FingersCrossedConfig {
    /// The level that triggers delivery (default `error`).
    pub action_level: Option<String>,
    /// The least severe level withheld (default `debug`).
    pub level: Option<String>,
    /// Records kept per scope (default 1,000; the newest survive).
    pub buffer_size: Option<usize>,
    /// `root` (default: the outermost span), a span name such as `request`, `thread` or `global`.
    pub scope: Option<String>,
    /// The sinks that receive the escalated batches instead of direct records (their tables must
    /// be there): `slack`, `telegram`, `sms`, `mail`, `http`, `syslog`, `file`, `ticketing`,
    /// `command`, `journald`, `desktop`.
    pub deliver_to: Vec<String>,
}

sink_table! {
    /// `[ticketing]`: error tickets.
    TicketingConfig {
        /// `sqlite://PATH`, a file path, or `postgres://…` (a secret: it may hold a password).
        url: Option<SecretValue>,
        /// The least severe level recorded (default: the sink's).
        level: Option<String>,
        /// The application id of the tickets (default: `app`).
        app_id: Option<String>,
        /// The ticket viewer's public address (`https://tickets.example.com`): when set, the
        /// Slack, Telegram, SMS and mail alerts link to their ticket there.
        public_url: Option<String>,
    }
}

sink_table! {
    /// `[command]`: a program run per alert (or per batch), never through a shell unless
    /// `shell` is used.
    CommandConfig {
        /// The program: a path, or a name looked up in `PATH` (this or `shell` is required).
        program: Option<String>,
        /// A `/bin/sh -c` script instead of `program`; `args` are its `$1`, `$2`, ….
        shell: Option<String>,
        /// Argument templates (`"{level}"`, `"{message}"`, `"--app={app}"`).
        args: Option<Vec<String>>,
        /// What the program reads: `text` (default), `json` or `none`.
        stdin: Option<String>,
        /// One run per batch instead of per record.
        per_batch: Option<bool>,
        /// The most runs at once (default 4).
        concurrency: Option<usize>,
        /// The exit codes that are retried (default `[75]`).
        retry_exit_codes: Option<Vec<i32>>,
        /// The least severe level (default `error`).
        level: Option<String>,
    }
}

sink_table! {
    /// `[journald]`: the systemd journal's native protocol.
    JournaldConfig {
        /// The journal socket (default `/run/systemd/journal/socket`).
        socket: Option<String>,
        /// `SYSLOG_IDENTIFIER` (default: `app`, else the executable's name).
        syslog_identifier: Option<String>,
        /// The least severe level (default `info`).
        level: Option<String>,
    }
}

sink_table! {
    /// `[desktop]`: freedesktop notifications on the D-Bus session bus.
    DesktopConfig {
        /// The session bus address (default: `DBUS_SESSION_BUS_ADDRESS`, then
        /// `$XDG_RUNTIME_DIR/bus`).
        bus_address: Option<String>,
        /// How long a notification stays (`"10s"`; default: the server decides).
        expire_after: Option<String>,
        /// The least severe level (default `warn`).
        level: Option<String>,
    }
}

sink_table! {
    /// `[ntfy]`: publish to a topic on an ntfy server.
    NtfyConfig {
        /// The server (default `https://ntfy.sh`).
        server: Option<String>,
        /// The topic (a secret on a public server; required).
        topic: Option<SecretValue>,
        /// An access token (a secret).
        token: Option<SecretValue>,
        /// The URL opened when the notification is tapped.
        click: Option<String>,
        /// The least severe level sent (default `error`).
        level: Option<String>,
    }
}

sink_table! {
    /// `[pushover]`: Pushover notifications.
    PushoverConfig {
        /// The application's API token (a secret; required).
        token: Option<SecretValue>,
        /// The user or group key (a secret; required).
        user: Option<SecretValue>,
        /// Send ERROR as an emergency repeated every this long (`"60s"`, at least 30 s) until
        /// acknowledged; needs `emergency_expire`.
        emergency_retry: Option<String>,
        /// How long an emergency is repeated (`"1h"`, at most 3 h).
        emergency_expire: Option<String>,
        /// The URL opened from the notification.
        click: Option<String>,
        /// The API's base URL (default `https://api.pushover.net`).
        api_base: Option<String>,
        /// The least severe level sent (default `error`).
        level: Option<String>,
    }
}

sink_table! {
    /// `[discord]` and `[teams]`: a webhook URL.
    WebhookConfig {
        /// The webhook (Discord) or workflow (Teams) URL (a secret; required).
        webhook: Option<SecretValue>,
        /// The least severe level sent (default `error`).
        level: Option<String>,
    }
}

sink_table! {
    /// `[google_chat]`: a Google Chat space's incoming webhook.
    GoogleChatConfig {
        /// The webhook URL with its `key` and `token` (a secret; required).
        webhook: Option<SecretValue>,
        /// One thread per callsite (default `true`).
        thread_by_callsite: Option<bool>,
        /// The least severe level sent (default `error`).
        level: Option<String>,
    }
}

sink_table! {
    /// `[mattermost]` and `[rocketchat]`: a Slack-compatible incoming webhook.
    ChatWebhookConfig {
        /// The webhook URL (a secret; required).
        webhook: Option<SecretValue>,
        /// The channel instead of the webhook's own.
        channel: Option<String>,
        /// The poster's name (default: `app`).
        username: Option<String>,
        /// The least severe level sent (default `error`).
        level: Option<String>,
    }
}

sink_table! {
    /// `[pagerduty]`: PagerDuty Events API v2, one incident per callsite.
    PagerDutyConfig {
        /// The integration's routing key (a secret; required).
        routing_key: Option<SecretValue>,
        /// The API's base URL (default `https://events.pagerduty.com`).
        api_base: Option<String>,
        /// The least severe level sent (default `error`).
        level: Option<String>,
    }
}

sink_table! {
    /// `[sqs]`: records to an SQS queue (`SendMessageBatch`, SigV4). Credentials: these keys,
    /// else `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, else the shared files.
    SqsConfig {
        /// The queue's URL (required; a FIFO queue's ends in `.fifo`).
        queue_url: Option<String>,
        /// FIFO queues: the message group (default: the app's name).
        message_group_id: Option<String>,
        /// The region (default: the queue URL's, `AWS_REGION`, the profile's).
        region: Option<String>,
        /// Another endpoint (LocalStack, a VPC endpoint).
        endpoint_url: Option<String>,
        /// The profile of `~/.aws/credentials` and `~/.aws/config` (default `AWS_PROFILE`).
        profile: Option<String>,
        /// An access key id, with `secret_access_key`.
        access_key_id: Option<String>,
        /// The access key's secret (a secret).
        secret_access_key: Option<SecretValue>,
        /// A session token for temporary credentials (a secret).
        session_token: Option<SecretValue>,
        /// The least severe level sent (default `info`).
        level: Option<String>,
    }
}

sink_table! {
    /// `[cloudwatch_logs]`: records to a CloudWatch Logs stream (`PutLogEvents`, SigV4).
    CloudWatchLogsConfig {
        /// The log group (required).
        log_group: Option<String>,
        /// The log stream (required).
        log_stream: Option<String>,
        /// Create the group and stream when absent (default `true`).
        create: Option<bool>,
        /// The region (default `AWS_REGION`, the profile's).
        region: Option<String>,
        /// Another endpoint (LocalStack, a VPC endpoint).
        endpoint_url: Option<String>,
        /// The profile of `~/.aws/credentials` and `~/.aws/config` (default `AWS_PROFILE`).
        profile: Option<String>,
        /// An access key id, with `secret_access_key`.
        access_key_id: Option<String>,
        /// The access key's secret (a secret).
        secret_access_key: Option<SecretValue>,
        /// A session token for temporary credentials (a secret).
        session_token: Option<SecretValue>,
        /// The least severe level sent (default `info`).
        level: Option<String>,
    }
}

sink_table! {
    /// `[sns]`: alerts to an SNS topic (`Publish`, SigV4), one per callsite per window.
    SnsConfig {
        /// The topic's ARN (required).
        topic_arn: Option<String>,
        /// The region (default: the ARN's).
        region: Option<String>,
        /// Another endpoint (LocalStack, a VPC endpoint).
        endpoint_url: Option<String>,
        /// The profile of `~/.aws/credentials` and `~/.aws/config` (default `AWS_PROFILE`).
        profile: Option<String>,
        /// An access key id, with `secret_access_key`.
        access_key_id: Option<String>,
        /// The access key's secret (a secret).
        secret_access_key: Option<SecretValue>,
        /// A session token for temporary credentials (a secret).
        session_token: Option<SecretValue>,
        /// The least severe level sent (default `error`).
        level: Option<String>,
    }
}

sink_table! {
    /// `[zmq]`: each record as one Logbook JSON message on a ZeroMQ socket.
    ZmqConfig {
        /// `tcp://host:port` or `ipc://path` (required).
        endpoint: Option<String>,
        /// `pub` (default: binds, for SUB subscribers) or `push` (connects, to a PULL such as
        /// the relay's).
        socket: Option<String>,
        /// The least severe level sent (default `info`).
        level: Option<String>,
    }
}

sink_table! {
    /// `[opsgenie]`: Opsgenie alerts, one per callsite.
    OpsgenieConfig {
        /// The API integration's key (a secret; required).
        key: Option<SecretValue>,
        /// `us` (default) or `eu`.
        region: Option<String>,
        /// The API's base URL instead of the region's.
        api_base: Option<String>,
        /// The least severe level sent (default `error`).
        level: Option<String>,
    }
}

/// A value's `Debug`, secrets redacted by shape.
struct Shown<'a, T>(&'a T);

impl<T: std::fmt::Debug> std::fmt::Debug for Shown<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = if f.alternate() { format!("{:#?}", self.0) } else { format!("{:?}", self.0) };
        f.write_str(&watchbell_core::secret::redact_urls(&text))
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured without `..`: a new table cannot be left out of `Debug`.
        let Config {
            panics,
            errors,
            app,
            environment,
            fmt,
            rate_limit,
            http_client,
            slack,
            telegram,
            sms,
            mail,
            http,
            syslog,
            file,
            fingers_crossed,
            ticketing,
            command,
            journald,
            desktop,
            notify,
            ntfy,
            pushover,
            discord,
            teams,
            google_chat,
            mattermost,
            rocketchat,
            pagerduty,
            opsgenie,
            relay,
            zmq,
            sqs,
            cloudwatch_logs,
            sns,
        } = self;
        f.debug_struct("Config")
            .field("app", &Shown(app))
            .field("panics", panics)
            .field("errors", &Shown(errors))
            .field("environment", &Shown(environment))
            .field("fmt", &Shown(fmt))
            .field("rate_limit", &Shown(rate_limit))
            .field("http_client", &Shown(http_client))
            .field("slack", &Shown(slack))
            .field("telegram", &Shown(telegram))
            .field("sms", &Shown(sms))
            .field("mail", &Shown(mail))
            .field("http", &Shown(http))
            .field("syslog", &Shown(syslog))
            .field("file", &Shown(file))
            .field("fingers_crossed", &Shown(fingers_crossed))
            .field("ticketing", &Shown(ticketing))
            .field("command", &Shown(command))
            .field("journald", &Shown(journald))
            .field("desktop", &Shown(desktop))
            .field("notify", notify)
            .field("ntfy", &Shown(ntfy))
            .field("pushover", &Shown(pushover))
            .field("discord", &Shown(discord))
            .field("teams", &Shown(teams))
            .field("google_chat", &Shown(google_chat))
            .field("mattermost", &Shown(mattermost))
            .field("rocketchat", &Shown(rocketchat))
            .field("pagerduty", &Shown(pagerduty))
            .field("opsgenie", &Shown(opsgenie))
            .field("relay", &Shown(relay))
            .field("zmq", &Shown(zmq))
            .field("sqs", &Shown(sqs))
            .field("cloudwatch_logs", &Shown(cloudwatch_logs))
            .field("sns", &Shown(sns))
            .finish()
    }
}
