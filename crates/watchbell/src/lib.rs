//! # watchbell
//!
//! watchbell gets a service's log events to the people and systems who must see them. Each
//! destination is a `tracing_subscriber::Layer` that you stack on
//! `tracing_subscriber::registry()` next to what you already have; `log` records reach the same
//! layers through the bridge. Delivery happens on watchbell's own threads, bounded, retried,
//! rate limited and counted, so logging never slows or endangers the service.
//!
//! This crate gathers the suite behind one dependency, a Cargo feature per part:
//!
//! | feature | crate | what |
//! |---|---|---|
//! | (always) | [`watchbell_core`] as [`core`] | records, capture, filters, rate limit, delivery, guards, formats, redaction |
//! | `log` (default) | `watchbell-log` as `log` | the `log` bridge and a direct `log` logger |
//! | `http` | `watchbell-core/http` | the HTTP transport, for writing HTTP sinks of your own |
//! | `slack` | `watchbell-slack` as `slack` | Slack incoming webhooks, several webhooks each with its own levels |
//! | `telegram` | `watchbell-telegram` as `telegram` | Telegram Bot API `sendMessage` to chats, channels and forum topics |
//! | `sms` | `watchbell-sms` as `sms` | SMS through Twilio and Exotel, routed by number prefix, with cost caps |
//! | `mail` | `watchbell-mail` as `mail` | SMTP mails through lettre, with related records of a batch |
//! | `http-batch` | `watchbell-http` as `http_batch` | batches to log collectors: NDJSON, JSON, Loki, Elasticsearch, OTLP |
//! | `syslog` | `watchbell-syslog` as `syslog` | RFC 3164 / 5424 over unix, UDP and TCP sockets |
//! | `file` | `watchbell-file` as `file` | size- and time-rotated files, reopened after logrotate |
//! | `fingers-crossed` | `watchbell-fingers-crossed` as `fingers_crossed` | withhold records until one reaches the action level |
//! | `ticketing` | `watchbell-ticketing` as `ticketing` | error tickets grouped by call site in SQLite |
//! | `postgres` | `watchbell-ticketing/postgres` | tickets in PostgreSQL |
//! | `ticketing-github` | `watchbell-ticketing/github` | new and reopened tickets opened as GitHub issues |
//! | `command` | `watchbell-command` as `command` | run a program per record or batch (argv templates, no shell), killed with its process group at its timeout |
//! | `journald` | `watchbell-journald` as `journald` | the systemd journal's native protocol, fields as journal fields |
//! | `desktop` | `watchbell-desktop` as `desktop` | freedesktop notifications over D-Bus |
//! | `notify` | `watchbell-notify` as `notify` | push, chat and paging: ntfy, Pushover, Discord, Microsoft Teams, Google Chat, Mattermost, Rocket.Chat, PagerDuty, Opsgenie |
//! | `opentelemetry` | `watchbell-core/opentelemetry` | every record gets `trace_id`/`span_id` of the OpenTelemetry span it happens in (tracing-opentelemetry 0.34), so logs and traces join (`core::otel`) |
//! | `zmq` | `watchbell-zmq` as `zmq` | ZeroMQ publisher (PUB or PUSH) and subscriber in Logbook's wire shape |
//! | `aws` | `watchbell-aws` as `aws` | SQS, CloudWatch Logs and SNS, signed with SigV4 |
//! | `full` | all of the above | |
//!
//! Every sink builder shares the common settings of [`SinkOptions`](prelude::SinkOptions)
//! (`rate_limit`, `cap`/`hourly_cap`, `pace`, `timeout`, `retry`, `queue_records`, `overflow`,
//! `allow_plain_http`, and for HTTPS the TLS and proxy settings `root_certificate`/`ca_file`,
//! `tls_built_in_roots`, `client_identity`/`client_identity_files`, `proxy`, `no_proxy`,
//! `proxy_from_env`; the `watchbell_core::http` module docs say each, and the defaults), in the
//! prelude.
//!
//! ```
//! use std::time::Duration;
//! use watchbell::prelude::*;
//! use tracing_subscriber::prelude::*;
//!
//! // Any sink: a closure is one. Real sinks speak a destination's protocol.
//! let delivery = Delivery::builder("stdout", |batch: &Batch| {
//!     batch.records.iter().for_each(|r| println!("{} {}", r.level, r.message));
//!     Outcome::Delivered
//! })
//! .spawn()
//! .unwrap();
//! let handler = std::sync::Arc::new(RateLimit::new(delivery, 5, Duration::from_secs(60)));
//! let guard = Guard::new(handler.clone());
//! let subscriber = tracing_subscriber::registry()
//!     .with(CaptureLayer::new(handler).with_level(Level::ERROR));
//! tracing::subscriber::with_default(subscriber, || tracing::error!("disk full"));
//! guard.shutdown(Duration::from_secs(5));
//! ```
//!
//! # Configuration
//!
//! With the `config` feature (in `full`), the whole setup comes from a TOML file and/or
//! `WATCHBELL_*` environment variables, like coaster's `init_app(app)`:
//!
//! ```no_run
//! # #[cfg(feature = "config")]
//! fn main() -> Result<(), watchbell::ConfigError> {
//!     // The file named by WATCHBELL_CONFIG (if set), then the WATCHBELL_* variables; a
//!     // registry with a fmt layer, every configured sink and the `log` bridge.
//!     let _guard = watchbell::init()?;
//!     tracing::error!(order = 42, "payment failed");
//!     Ok(())
//! }
//! # #[cfg(not(feature = "config"))]
//! # fn main() {}
//! ```
//!
//! To compose your own registry, take the layers (a `Vec` of layers is a layer) and one guard:
//!
//! ```
//! # #[cfg(feature = "config")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tracing_subscriber::prelude::*;
//!
//! let path = std::env::temp_dir().join("watchbell-doc-alerts.log");
//! let config = watchbell::Config::from_toml_str(&format!(r#"
//!     app = "billing"
//!     [file]
//!     path = {path:?}
//!     level = "error"
//! "#))?;
//! let (layers, guard) = config.layers::<tracing_subscriber::Registry>()?;
//! let subscriber = tracing_subscriber::registry().with(layers);
//! tracing::subscriber::with_default(subscriber, || tracing::error!("disk full"));
//! guard.shutdown(std::time::Duration::from_secs(5));
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "config"))]
//! # fn main() {}
//! ```
//!
//! [`Config::from_toml_str`], [`Config::from_file`], [`Config::from_env`],
//! [`Config::with_env`] (variables over a file) and [`Config::load`] read a configuration;
//! [`Config::layers`] builds it; [`init`] / [`init_with`] install it globally. `Config` is a
//! plain `serde::Deserialize` struct (every field public), so it can also be a part of your own
//! configuration.
//!
//! ## The file
//!
//! Every table is optional; a sink is set up when its table is there, and needs its Cargo
//! feature (`slack`, `telegram`, … or `full`). A complete file:
//!
//! ```toml
#![cfg_attr(feature = "config", doc = include_str!("config/example.toml"))]
//! ```
//!
//! - **Secrets** (tokens, passwords, webhook URLs, the ticket database URL) are a string, or
//!   `{ env = "VAR" }` (an environment variable), or `{ file = "/path" }` (a file's content,
//!   trailing whitespace trimmed). They are read by [`Config::layers`], and never appear in an
//!   error or in `Debug` (a literal shows as `"***"`, the others as where they come from).
//! - **Levels**: `error`, `warn` (`warning`), `info`, `debug`, `trace`; `critical` = `error`.
//! - **Durations**: a number and a unit: `500ms`, `60s`, `5m`, `1h`, `1d`.
//! - **Common delivery settings**, in any sink table: `pace`, `timeout` (durations),
//!   `queue_records`, `hourly_cap` (the most alerts per hour to that sink across all callsites,
//!   then one notice and the rest counted; `0`: no cap; SMS has 10 by default, the others
//!   none), `allow_plain_http` (also plain SMTP to a host that is not loopback).
//!   Loopback test servers need none of them: `api_base` (Telegram, Twilio, Exotel), a loopback
//!   `url`, and `security = "plain"` to a loopback SMTP host are ordinary keys.
//! - **`[http_client]`**, one table for every sink that speaks HTTP(S) (Slack, Telegram, SMS,
//!   `[http]`, `notify`):
//!
//!   | key | default | meaning |
//!   |---|---|---|
//!   | `ca_file` | none | PEM CA certificates trusted **in addition to** the system's roots |
//!   | `built_in_roots` | `true` | `false`: trust only `ca_file` (then required) |
//!   | `client_cert_file`, `client_key_file` | none | the client certificate (chain, leaf first) and its unencrypted key, for mTLS; both or neither |
//!   | `proxy` | none | `http://[user:password@]host:port` or `https://…`, a secret; HTTPS goes through `CONNECT` |
//!   | `no_proxy` | `NO_PROXY` | hosts reached directly: `"localhost,.internal,10.0.0.0/8"` |
//!   | `proxy_from_env` | `true` | honour `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` when `proxy` is not set |
//!
//!   By default (no table, or no `proxy`) the standard proxy variables are honoured as curl does
//!   (`HTTPS_PROXY` for `https://` URLs, …; the macOS/Windows system settings are not read).
//!   The files are read by [`Config::layers`]: a missing file, or one without a PEM certificate
//!   (or key), is a problem under its key, and key material is never quoted.
//! - **`[file]`** (see watchbell-file's docs for each behaviour), one line per key:
//!   - `path`: the active file (required); `level`: the least severe level written (`warn`).
//!   - `max_bytes`: rotate before the file would pass this size in bytes.
//!   - `backup_count`: rotated files kept (default 5); `0` keeps none: the file is truncated at
//!     each rotation, size or time (never Python's "never rotate" / "keep all").
//!   - `rotate_every`: `minute`, `hour` or `day`, periods aligned to the `zone`'s clock.
//!   - `when`: Python's `when` instead of `rotate_every`: `S`, `M`, `H`, `D`, `midnight`, `W0`
//!     (Monday) … `W6` (or `second` … `sunday`).
//!   - `interval`: units of `when` per file (default 1).
//!   - `at_time`: `"HH:MM"` or `"HH:MM:SS"`, the time of a `midnight` or weekly rollover.
//!   - `zone`: the rotation clock and backup dates: `utc` (default), `local` (`TZ`, else
//!     `/etc/localtime`), an IANA name (`Europe/Berlin`) or a POSIX rule.
//!   - `date_format`: Logbook's names, `app-2026-11-28.log` for `"%Y-%m-%d"` (`strftime`).
//!   - `truncate`: `true` empties the file when it is first opened (default `false`: append).
//!   - `compress`: `"gzip"` compresses rotated files (`app.log.2026-11-28.gz`; default none).
//! - **`[syslog]`** (see watchbell-syslog's docs for each behaviour), one line per key:
//!   - `transport`: `unix` (default), `udp` or `tcp`; `address`: `host:port`, or the socket
//!     path for `unix` (default `/dev/log`, `/var/run/syslog`, `/var/run/log`).
//!   - `protocol`: `"3164"` or `"5424"` (default 3164 on unix sockets, 5424 otherwise);
//!     `facility`: `user` (default), `daemon`, `local0` … `local7`; `level` (default `info`).
//!   - `msgid_field`: the field whose value is the RFC 5424 MSGID (printable US-ASCII, ≤ 32
//!     chars; `-` when a record lacks it; default none).
//!   - `bom`: a UTF-8 BOM before the RFC 5424 MSG (default `false`: rsyslog writes it into
//!     every line of its files).
//!   - `zone`: the zone of RFC 3164 timestamps: `local` (default: `TZ`, else
//!     `/etc/localtime`), `utc`, an IANA name or a POSIX rule.
//!   - `[syslog.severities]`: level = severity, `warn = "notice"`, `error = "crit"` (levels
//!     `error`, `warn`, `info`, `debug`, `trace`; severities `emerg`, `alert`, `crit`, `err`,
//!     `warning`, `notice`, `info`, `debug` or `0` … `7`); the others keep ERROR err, WARN
//!     warning, INFO info, DEBUG and TRACE debug.
//! - **Top-level process settings**, applied by [`init`] (or by
//!   [`Config::apply_process_settings`] when you compose layers yourself):
//!   - `panics = true`: installs the panic hook ([`capture_panics`], see [`panics`]): every
//!     panic becomes an ERROR record (target `panic`), and one that ends the process waits up
//!     to 5 s for the alerts to leave. Default `false`.
//!   - `errors = "stderr"` (default) or `"silent"`: where watchbell's own failures (a sink
//!     that gives up, a record after shutdown) are reported; a callback is set in code with
//!     [`watchbell_core::set_error_reporter`].
//! - **Defaults**: each sink's own (see its crate), except `[file] level`, which is `warn` as in
//!   coaster. `[rate_limit]`, when there, replaces every sink's rate limit (`limit = 0`: none).
//! - **`[rate_limit] shared = "postgres://…"`** (feature `postgres`): the rate-limit windows
//!   are shared by every process of a fleet in that database (one row per sink and
//!   fingerprint, see `watchbell_ticketing::fleet`): one alert per fingerprint per window
//!   across the fleet, the next one carrying the fleet's count ("N similar suppressed from M
//!   instances"). Decided on a watchbell thread, never the caller's; while the database
//!   cannot be reached each process limits locally, counts it and says so once on stderr.
//! - **`[rate_limit] gather = "10s"`**: each alert the rate limit passes is held that long and
//!   sent with the count of the similar records suppressed meanwhile — the fleet's, with
//!   `shared` or behind a relay — so the one alert already says "7999 similar suppressed from 8
//!   instances". Every alert that passes waits `gather`; a flush or shutdown releases early
//!   (see `watchbell_core::ratelimit`). Default: sent at once.
//! - **`[relay]`**: read by the `watchbell-relay` binary only (a service ignores it):
//!   `http = "127.0.0.1:9400"`, `unix = "/run/watchbell.sock"`, `zmq = ["tcp://…"]` (at
//!   least one input), `token` (a secret: bearer token of the HTTP input), `queue` (records,
//!   default 100000), `retry_after` (default `"1s"`). See [`Config::relay_settings`] and
//!   [`Config::handlers`].
//! - **`[fingers_crossed] deliver_to`**: the sinks named there are built as handlers
//!   (`build_handler()`) behind one fan-out, behind one fingers-crossed layer: they receive the
//!   buffered records of a scope (`scope`) together when one reaches `action_level` (an
//!   `Escalation` batch, debug context included, whatever the sink's own `level`), and no
//!   direct records. The other sinks keep their own layers.
//!
//! ## Environment variables
//!
//! Each variable sets one key (a list is comma-separated; a chat list takes ids and
//! `@names`); set over a file with [`Config::with_env`] / [`Config::load`]. An unknown
//! `WATCHBELL_*` variable is an error, except `WATCHBELL_CONFIG` (the file [`Config::load`]
//! reads) and `WATCHBELL_TEST_*` (free for tests).
//!
//! | variable | key |
//! |---|---|
//! | `WATCHBELL_APP`, `WATCHBELL_ENVIRONMENT` | `app`, `environment` |
//! | `WATCHBELL_PANICS`, `WATCHBELL_ERRORS` | `panics`, `errors` |
//! | `WATCHBELL_LEVEL` or `WATCHBELL_FMT_LEVEL` | `fmt.level` |
//! | `WATCHBELL_RATE_LIMIT_LIMIT`, `_PER` | `rate_limit.limit`, `.per` |
//! | `WATCHBELL_RATE_LIMIT_SHARED` | `rate_limit.shared` (secret: a `postgres://` URL) |
//! | `WATCHBELL_RATE_LIMIT_GATHER` | `rate_limit.gather` |
//! | `WATCHBELL_RELAY_HTTP`, `_UNIX`, `_ZMQ`, `_TOKEN`, `_QUEUE`, `_RETRY_AFTER` | `relay.http`, `.unix`, `.zmq`, `.token`, `.queue`, `.retry_after` (for `watchbell-relay`) |
//! | `WATCHBELL_SLACK_WEBHOOK` (+ `WATCHBELL_SLACK_LEVELS`) | adds a `[[slack.webhooks]]` named `env` with this `url` (and `levels`) |
//! | `WATCHBELL_HTTP_CLIENT_CA_FILE`, `WATCHBELL_HTTP_CLIENT_BUILT_IN_ROOTS`, `WATCHBELL_HTTP_CLIENT_CLIENT_CERT_FILE`, `WATCHBELL_HTTP_CLIENT_CLIENT_KEY_FILE`, `WATCHBELL_HTTP_CLIENT_PROXY`, `WATCHBELL_HTTP_CLIENT_NO_PROXY`, `WATCHBELL_HTTP_CLIENT_PROXY_FROM_ENV` | `http_client.ca_file`, `.built_in_roots`, `.client_cert_file`, `.client_key_file`, `.proxy`, `.no_proxy`, `.proxy_from_env` |
//! | `WATCHBELL_TELEGRAM_TOKEN`, `_CHAT` (or `_CHATS`), `_TOPIC`, `_LEVEL`, `_NOTIFY_LEVEL`, `_API_BASE` | `telegram.token`, `.chats`, `.topic`, `.level`, `.notify_level`, `.api_base` |
//! | `WATCHBELL_SMS_RECIPIENTS`, `_LEVEL`, `_HOURLY_CAP` | `sms.recipients`, `.level`, `.hourly_cap` |
//! | `WATCHBELL_TWILIO_SID`, `_TOKEN`, `_FROM`, `_API_BASE` | `sms.twilio.sid`, `.token`, `.from`, `.api_base` |
//! | `WATCHBELL_EXOTEL_SID`, `_API_KEY`, `_TOKEN`, `_FROM`, `_SUBDOMAIN`, `_API_BASE` | `sms.exotel.sid`, `.api_key`, `.token`, `.from`, `.subdomain`, `.api_base` |
//! | `WATCHBELL_MAIL_HOST`, `_PORT`, `_SECURITY`, `_USERNAME`, `_PASSWORD`, `_FROM`, `_TO`, `_LEVEL`, `_SUBJECT` | `mail.host`, `.port`, `.security`, `.username`, `.password`, `.from`, `.to`, `.level`, `.subject` |
//! | `WATCHBELL_HTTP_URL`, `_ENCODING`, `_LEVEL`, `_INDEX`, `_SERVICE_NAME`, `_BEARER_TOKEN`, `_BASIC_USER`, `_BASIC_PASSWORD` | `http.url`, `.encoding`, … |
//! | `WATCHBELL_SYSLOG_TRANSPORT`, `_ADDRESS`, `_PROTOCOL`, `_FACILITY`, `_LEVEL`, `_MSGID_FIELD`, `_BOM`, `_ZONE`; `WATCHBELL_SYSLOG_SEVERITIES_ERROR`, `WATCHBELL_SYSLOG_SEVERITIES_WARN`, `WATCHBELL_SYSLOG_SEVERITIES_INFO`, `WATCHBELL_SYSLOG_SEVERITIES_DEBUG`, `WATCHBELL_SYSLOG_SEVERITIES_TRACE` | `syslog.transport`, …; `syslog.severities.error`, … (see `[syslog]` below) |
//! | `WATCHBELL_FILE_PATH`, `_LEVEL`, `_MAX_BYTES`, `_BACKUP_COUNT`, `_ROTATE_EVERY`, `_WHEN`, `_INTERVAL`, `_AT_TIME`, `_ZONE`, `_DATE_FORMAT`, `_TRUNCATE`, `_COMPRESS` | `file.path`, … (see `[file]` below) |
//! | `WATCHBELL_FINGERS_CROSSED_ACTION_LEVEL`, `_LEVEL`, `_BUFFER_SIZE`, `_SCOPE`, `_DELIVER_TO` | `fingers_crossed.action_level`, … |
//! | `WATCHBELL_TICKETING_URL`, `_LEVEL`, `_APP_ID`, `_PUBLIC_URL` | `ticketing.url`, `.level`, `.app_id`, `.public_url` (the viewer's address: alerts link to their ticket) |
//! | `WATCHBELL_COMMAND_PROGRAM`, `_SHELL`, `_ARGS`, `_STDIN`, `_PER_BATCH`, `_CONCURRENCY`, `_LEVEL` | `command.program`, `.shell`, `.args`, … |
//! | `WATCHBELL_JOURNALD_SOCKET`, `_SYSLOG_IDENTIFIER`, `_LEVEL` | `journald.socket`, `.syslog_identifier`, `.level` |
//! | `WATCHBELL_DESKTOP_BUS_ADDRESS`, `_EXPIRE_AFTER`, `_LEVEL` | `desktop.bus_address`, `.expire_after`, `.level` |
//! | `WATCHBELL_NOTIFY` (comma-separated URLs) | `notify` |
//! | `WATCHBELL_NTFY_SERVER`, `_TOPIC`, `_TOKEN`, `_CLICK`, `_LEVEL` | `ntfy.server`, `.topic`, `.token`, `.click`, `.level` |
//! | `WATCHBELL_PUSHOVER_TOKEN`, `_USER`, `_EMERGENCY_RETRY`, `_EMERGENCY_EXPIRE`, `_CLICK`, `_API_BASE`, `_LEVEL` | `pushover.token`, `.user`, `.emergency_retry`, `.emergency_expire`, `.click`, `.api_base`, `.level` |
//! | `WATCHBELL_DISCORD_WEBHOOK`, `_LEVEL`; `WATCHBELL_TEAMS_WEBHOOK`, `_LEVEL` | `discord.webhook`, `.level`; `teams.webhook`, `.level` |
//! | `WATCHBELL_GOOGLE_CHAT_WEBHOOK`, `_THREAD_BY_CALLSITE`, `_LEVEL` | `google_chat.webhook`, `.thread_by_callsite`, `.level` |
//! | `WATCHBELL_MATTERMOST_WEBHOOK`, `_CHANNEL`, `_USERNAME`, `_LEVEL` | `mattermost.webhook`, `.channel`, `.username`, `.level` |
//! | `WATCHBELL_ROCKETCHAT_WEBHOOK`, `_CHANNEL`, `_USERNAME`, `_LEVEL` | `rocketchat.webhook`, `.channel`, `.username`, `.level` |
//! | `WATCHBELL_PAGERDUTY_ROUTING_KEY`, `_API_BASE`, `_LEVEL` | `pagerduty.routing_key`, `.api_base`, `.level` |
//! | `WATCHBELL_OPSGENIE_KEY`, `_REGION`, `_API_BASE`, `_LEVEL` | `opsgenie.key`, `.region` (`us`, `eu`), `.api_base`, `.level` |
//! | `WATCHBELL_ZMQ_ENDPOINT`, `_SOCKET`, `_LEVEL` | `zmq.endpoint`, `.socket` (`pub`, `push`), `.level` |
//! | `WATCHBELL_SQS_QUEUE_URL`, `_MESSAGE_GROUP_ID`, `_REGION`, `_ENDPOINT_URL`, `_PROFILE`, `_LEVEL` | `sqs.queue_url`, `.message_group_id`, `.region`, `.endpoint_url`, `.profile`, `.level` (keys: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, `~/.aws`, or `access_key_id` + `secret_access_key` in the table) |
//! | `WATCHBELL_CLOUDWATCH_LOGS_GROUP`, `WATCHBELL_CLOUDWATCH_LOGS_STREAM`, `_CREATE`, `_REGION`, `_ENDPOINT_URL`, `_PROFILE`, `_LEVEL` | `cloudwatch_logs.log_group`, `.log_stream`, `.create`, `.region`, `.endpoint_url`, `.profile`, `.level` |
//! | `WATCHBELL_SNS_TOPIC_ARN`, `_REGION`, `_ENDPOINT_URL`, `_PROFILE`, `_LEVEL` | `sns.topic_arn`, `.region`, `.endpoint_url`, `.profile`, `.level` |
//! | `WATCHBELL_<SINK>_PACE`, `_TIMEOUT`, `_QUEUE_RECORDS`, `_ALLOW_PLAIN_HTTP` (`<SINK>`: `SLACK`, `TELEGRAM`, `SMS`, `MAIL`, `HTTP`, `SYSLOG`, `FILE`, `TICKETING`, `COMMAND`, `JOURNALD`, `DESKTOP`, `NTFY`, `PUSHOVER`, `DISCORD`, `TEAMS`, `GOOGLE_CHAT`, `MATTERMOST`, `ROCKETCHAT`, `PAGERDUTY`, `OPSGENIE`, `ZMQ`) | the common settings of that table |
//!
//! ## coaster's keys
//!
//! [`Config::from_coaster_env`] reads coaster's own Flask configuration keys from the
//! environment, so that an app that alerted through coaster's `init_app(app)` alerts through
//! watchbell with the settings it already has ([`Config::from_coaster_vars`] takes the variables
//! as a list). Each key is read as `FLASK_KEY` (Flask's `from_prefixed_env`: the value is JSON
//! when it parses, `'["ops@example.com"]'`, `true`, `587`, else text) or as plain `KEY`;
//! `FLASK_KEY` wins. coaster's older names and its current `LOG_*` names are both read; the
//! current one wins, as in coaster. Settings coaster has no key for (`WATCHBELL_TELEGRAM_API_BASE`,
//! …) can be applied over the result with [`Config::with_env`] / [`Config::with_vars`].
//!
//! | coaster key (older name / current name) | becomes | default (coaster's) |
//! |---|---|---|
//! | `SITE_ID` | `app` | none |
//! | `LOGFILE` / `LOG_FILE` | `file.path`; a falsy value (`""`, `false`, `null`) turns the file off | `error.log` |
//! | `LOGFILE_LEVEL` / `LOG_FILE_LEVEL` (a name or a number: `WARNING`, `30`) | `file.level` | `warn` |
//! | `LOG_FILE_ROTATE` | `false`: no time rotation | `true` |
//! | `LOGFILE_WHEN` / `LOG_FILE_ROTATE_WHEN` | `file.when` | `midnight` |
//! | `LOG_FILE_ROTATE_INTERVAL` | `file.interval` | 1 |
//! | `LOGFILE_BACKUPCOUNT` / `LOG_FILE_ROTATE_COUNT` | `file.backup_count`; 0 (Python's "keep them all") is 7: watchbell always bounds its files | 7 |
//! | `LOG_FILE_ROTATE_UTC` | `file.zone = "utc"`, else `"local"` | local time |
//! | `ADMINS` / `LOG_EMAIL_TO` (a list, or one address, or comma-separated) | `mail.to`; mail is set up when it is not empty, `mail.level = "error"` | none |
//! | `LOG_EMAIL_FROM`, else `MAIL_DEFAULT_SENDER`, else `DEFAULT_MAIL_SENDER` (an address or `["Name", "address"]`) | `mail.from` (`"Name" <address>`) | `logs@example.com` |
//! | `MAIL_SERVER` | `mail.host` | `localhost` |
//! | `MAIL_PORT` | `mail.port` | 25 (465 with `MAIL_USE_SSL`, 587 with `MAIL_USE_TLS`) |
//! | `MAIL_USE_SSL` / `MAIL_USE_TLS` | `mail.security = "tls"` / `"starttls"`, else `"plain"` (refused to a host that is not loopback unless `WATCHBELL_MAIL_ALLOW_PLAIN_HTTP=true`) | plain |
//! | `MAIL_USERNAME` and `MAIL_PASSWORD` | `mail.username`, `mail.password` (both or neither, as coaster) | none |
//! | `SLACK_LOGGING_WEBHOOKS` / `LOG_SLACK_WEBHOOKS` (`[{"levelnames": [...], "url": "..."}]`) | one `[[slack.webhooks]]` each: `url`, `levels` = its `levelnames` (exact levels; `CRITICAL` is `error`) | `levelnames` absent: `error`, `warn` |
//! | `TELEGRAM_ERROR_CHATID` / `LOG_TELEGRAM_CHATID` and `TELEGRAM_ERROR_APIKEY` / `LOG_TELEGRAM_APIKEY` | `telegram.chats`, `telegram.token` (both needed) | none |
//! | `TELEGRAM_ERROR_THREADID` / `LOG_TELEGRAM_THREADID` | `telegram.topic` | none |
//! | `TELEGRAM_ERROR_LEVEL` / `LOG_TELEGRAM_LEVEL` | `telegram.level` | `error` with the older names, `warn` with the current ones |
//! | `ADMIN_NUMBERS` | `sms.recipients`, `sms.level = "error"` | none |
//! | `SMS_TWILIO_SID`, `SMS_TWILIO_TOKEN`, `SMS_TWILIO_FROM` | `sms.twilio.sid`, `.token`, `.from` | none |
//! | `SMS_EXOTEL_SID`, `SMS_EXOTEL_TOKEN`, `SMS_EXOTEL_FROM` | `sms.exotel.sid` (and `.api_key`: coaster signs with the SID), `.token`, `.from` | none |
//!
//! Unlike coaster, one SMS provider is enough (`+91` numbers go to Exotel when it is set up,
//! the others to Twilio; with one provider, all to it), TLS is used whenever `MAIL_USE_TLS` is
//! set (coaster used it only with credentials), `LOG_FILE_DELAY` is not read (the file is
//! opened when the first record is written), and every value is checked at start-up: a bad one
//! is a [`Problem`] naming the variable (`FLASK_LOGFILE_LEVEL`), a secret never quoted.
//!
//! The same settings as `WATCHBELL_*` variables and TOML keys:
//!
//! | coaster | TOML key | environment variable |
//! |---|---|---|
//! | `LOGFILE` / `LOG_FILE` | `file.path` | `WATCHBELL_FILE_PATH` |
//! | `LOGFILE_LEVEL` / `LOG_FILE_LEVEL` | `file.level` | `WATCHBELL_FILE_LEVEL` |
//! | `ADMINS` / `LOG_EMAIL_TO` | `mail.to` | `WATCHBELL_MAIL_TO` |
//! | `MAIL_DEFAULT_SENDER` / `LOG_EMAIL_FROM` | `mail.from` | `WATCHBELL_MAIL_FROM` |
//! | `MAIL_SERVER`, `MAIL_PORT` | `mail.host`, `mail.port` | `WATCHBELL_MAIL_HOST`, `WATCHBELL_MAIL_PORT` |
//! | `MAIL_USERNAME`, `MAIL_PASSWORD` | `mail.username`, `mail.password` | `WATCHBELL_MAIL_USERNAME`, `WATCHBELL_MAIL_PASSWORD` |
//! | `MAIL_USE_TLS`, `MAIL_USE_SSL` | `mail.security = "starttls"`, `"tls"` | `WATCHBELL_MAIL_SECURITY` |
//! | `SLACK_LOGGING_WEBHOOKS` / `LOG_SLACK_WEBHOOKS` | `[[slack.webhooks]]` `url`, `levels` | `WATCHBELL_SLACK_WEBHOOK` + `WATCHBELL_SLACK_LEVELS` (one webhook) |
//! | `TELEGRAM_ERROR_CHATID` / `LOG_TELEGRAM_CHATID` | `telegram.chats` | `WATCHBELL_TELEGRAM_CHAT` |
//! | `TELEGRAM_ERROR_APIKEY` / `LOG_TELEGRAM_APIKEY` | `telegram.token` | `WATCHBELL_TELEGRAM_TOKEN` |
//! | `TELEGRAM_ERROR_THREADID` / `LOG_TELEGRAM_THREADID` | `telegram.topic` | `WATCHBELL_TELEGRAM_TOPIC` |
//! | `TELEGRAM_ERROR_LEVEL` / `LOG_TELEGRAM_LEVEL` | `telegram.level` | `WATCHBELL_TELEGRAM_LEVEL` |
//! | `ADMIN_NUMBERS` | `sms.recipients` | `WATCHBELL_SMS_RECIPIENTS` |
//! | `SMS_EXOTEL_SID`, `SMS_EXOTEL_TOKEN`, `SMS_EXOTEL_FROM` | `sms.exotel.sid` (+ `api_key`), `.token`, `.from` | `WATCHBELL_EXOTEL_SID` (+ `WATCHBELL_EXOTEL_API_KEY`), `WATCHBELL_EXOTEL_TOKEN`, `WATCHBELL_EXOTEL_FROM` |
//! | `SMS_TWILIO_SID`, `SMS_TWILIO_TOKEN`, `SMS_TWILIO_FROM` | `sms.twilio.sid`, `.token`, `.from` | `WATCHBELL_TWILIO_SID`, `WATCHBELL_TWILIO_TOKEN`, `WATCHBELL_TWILIO_FROM` |
//!
//! ## Errors
//!
//! A bad configuration gives a [`ConfigError`] with every [`Problem`] found (not just the
//! first), one line each: the key, the value (a secret redacted) and what was expected:
//!
//! ```text
//! telegram.tokn: unknown key: expected one of `token`, `chats`, `topic`, …
//! telegram.token: missing; expected the secret, { env = "VAR" } or { file = "/path" }
//! rate_limit.per = "5 minutes": a duration such as "500ms", "60s", "5m", "1h" or "1d"
//! sms.recipients[1] = "12345": "12345" is not an E.164 number: expected + and 7 to 15 digits, …
//! slack.webhooks[0].url = "http://hooks.example.com/…": refusing plain http:// to …
//! ```
//!
//! Parsing ([`Config::from_toml_str`], [`Config::with_env`]) reports the file's own problems
//! (syntax, unknown keys, types, levels, durations, choices, missing keys);
//! [`Config::layers`] adds what only building finds: unreadable secrets and each sink crate's
//! own validation (URLs, phone numbers, addresses), its key prefixed with the table.
#![deny(missing_docs)]

#[cfg(feature = "config")]
pub mod config;
pub mod panics;
#[cfg(feature = "config")]
pub use config::RelaySettings;
#[cfg(feature = "config")]
pub use config::{init, init_with, Config, ConfigError, Problem};
pub use panics::capture_panics;

#[cfg(feature = "aws")]
pub use watchbell_aws as aws;
#[cfg(feature = "command")]
pub use watchbell_command as command;
pub use watchbell_core as core;
#[cfg(feature = "desktop")]
pub use watchbell_desktop as desktop;
#[cfg(feature = "file")]
pub use watchbell_file as file;
#[cfg(feature = "fingers-crossed")]
pub use watchbell_fingers_crossed as fingers_crossed;
#[cfg(feature = "http-batch")]
pub use watchbell_http as http_batch;
#[cfg(feature = "journald")]
pub use watchbell_journald as journald;
#[cfg(feature = "log")]
pub use watchbell_log as log;
#[cfg(feature = "mail")]
pub use watchbell_mail as mail;
#[cfg(feature = "notify")]
pub use watchbell_notify as notify;
#[cfg(feature = "slack")]
pub use watchbell_slack as slack;
#[cfg(feature = "sms")]
pub use watchbell_sms as sms;
#[cfg(feature = "syslog")]
pub use watchbell_syslog as syslog;
#[cfg(feature = "telegram")]
pub use watchbell_telegram as telegram;
#[cfg(feature = "ticketing")]
pub use watchbell_ticketing as ticketing;
#[cfg(feature = "zmq")]
pub use watchbell_zmq as zmq;

/// The names most setups use.
pub mod prelude {
    pub use watchbell_core::format::{DefaultFormat, Format, FormatContext, Template};
    pub use watchbell_core::{
        Batch, BatchReason, CaptureLayer, Delivery, FanOut, Guard, Handler, LayerFilter, Level, Outcome, Overflow,
        RateLimit, Record, Retry, Sink, Stats,
    };
    pub use watchbell_core::{BuildError, SinkLayer, SinkOptions};
    #[cfg(feature = "log")]
    pub use watchbell_log::{DirectLogger, LogBridge};
}
