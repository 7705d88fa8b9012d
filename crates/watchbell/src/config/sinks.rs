//! One function per sink table: the table read into the sink crate's builder.
#![allow(unused_imports)]
use watchbell_core::SinkOptions;

use super::build::{quote, Cx, Globals};
use super::Config;

impl Config {
    #[cfg(feature = "slack")]
    pub(crate) fn slack_builder(&self, cx: &mut Cx, g: &Globals) -> Option<watchbell_slack::SlackBuilder> {
        use watchbell_slack::{SlackLayer, Webhook};
        let t = self.slack.as_ref()?;
        let mut b = SlackLayer::builder();
        if let Some(app) = &self.app {
            b = b.app(app);
        }
        if let Some(env) = &self.environment {
            b = b.environment(env);
        }
        if t.webhooks.is_empty() {
            cx.problem("slack.webhooks", None, "missing; expected at least one [[slack.webhooks]] with a url");
        }
        for (i, w) in t.webhooks.iter().enumerate() {
            let key = format!("slack.webhooks[{i}]");
            let url = cx.secret(&format!("{key}.url"), w.url.as_ref(), true);
            let levels = w.levels.as_ref().map(|ls| {
                ls.iter()
                    .enumerate()
                    .filter_map(|(j, l)| cx.level(&format!("{key}.levels[{j}]"), Some(l)))
                    .collect::<Vec<_>>()
            });
            if let Some(url) = url {
                let mut wh = Webhook::new(url);
                if let Some(l) = levels {
                    wh = wh.levels(l);
                }
                if let Some(v) = &w.name {
                    wh = wh.name(v);
                }
                if let Some(v) = &w.channel {
                    wh = wh.channel(v);
                }
                if let Some(v) = &w.username {
                    wh = wh.username(v);
                }
                if let Some(v) = &w.icon_emoji {
                    wh = wh.icon_emoji(v);
                }
                b = b.webhook(wh);
            }
        }
        if let Some(link) = self.ticket_link() {
            b = b.ticket_link(link);
        }
        Some(cx.common("slack", t, g, b))
    }

    #[cfg(feature = "telegram")]
    pub(crate) fn telegram_builder(&self, cx: &mut Cx, g: &Globals) -> Option<watchbell_telegram::TelegramBuilder> {
        use watchbell_telegram::{Chat, ChatId, TelegramLayer};
        let t = self.telegram.as_ref()?;
        let token = cx.secret("telegram.token", t.token.as_ref(), true).unwrap_or_default();
        let mut b = TelegramLayer::builder(token);
        if t.chats.is_empty() {
            cx.problem("telegram.chats", None, "missing; expected at least one chat id (-1001234567890) or @channel");
        }
        for (i, c) in t.chats.iter().enumerate() {
            let id = match c {
                super::ChatRef::Id(n) => ChatId::from(*n),
                super::ChatRef::Name(s) => {
                    if s.trim().is_empty() {
                        cx.problem(format!("telegram.chats[{i}]"), Some(quote(s)), "a chat id or @channel");
                    }
                    ChatId::from(s.as_str())
                }
            };
            let mut chat = Chat::new(id);
            if let Some(topic) = t.topic {
                chat = chat.topic(topic);
            }
            b = b.chat(chat);
        }
        if let Some(l) = cx.level("telegram.level", t.level.as_deref()) {
            b = b.level(l);
        }
        if let Some(l) = cx.level("telegram.notify_level", t.notify_level.as_deref()) {
            b = b.notify_level(l);
        }
        if let Some(v) = &t.api_base {
            b = b.api_base(v);
        }
        if let Some(app) = &self.app {
            b = b.app(app);
        }
        if let Some(link) = self.ticket_link() {
            b = b.ticket_link(link);
        }
        Some(cx.common("telegram", t, g, b))
    }

    #[cfg(feature = "sms")]
    pub(crate) fn sms_builder(&self, cx: &mut Cx, g: &Globals) -> Option<watchbell_sms::SmsBuilder> {
        use watchbell_sms::{Exotel, SmsLayer, Twilio};
        let t = self.sms.as_ref()?;
        let mut b = SmsLayer::builder().recipients(t.recipients.iter().cloned());
        if t.recipients.is_empty() {
            cx.problem("sms.recipients", None, "missing; expected at least one phone number (+14155550100)");
        }
        if t.twilio.is_none() && t.exotel.is_none() {
            cx.problem("sms", None, "a provider: [sms.twilio] and/or [sms.exotel]");
        }
        if let Some(tw) = &t.twilio {
            let sid = cx.required("sms.twilio.sid", tw.sid.as_deref(), "the account SID (AC…)");
            let token = cx.secret("sms.twilio.token", tw.token.as_ref(), true);
            let from = cx.required("sms.twilio.from", tw.from.as_deref(), "the sending number (+14155550100)");
            if let (Some(sid), Some(token), Some(from)) = (sid, token, from) {
                let mut p = Twilio::new(sid, token).from(from);
                if let Some(v) = &tw.api_base {
                    p = p.api_base(v);
                }
                b = b.twilio(p);
            }
        }
        if let Some(ex) = &t.exotel {
            let sid = cx.required("sms.exotel.sid", ex.sid.as_deref(), "the account SID");
            let key = cx.secret("sms.exotel.api_key", ex.api_key.as_ref(), true);
            let token = cx.secret("sms.exotel.token", ex.token.as_ref(), true);
            let from = cx.required("sms.exotel.from", ex.from.as_deref(), "the sending ExoPhone");
            if let (Some(sid), Some(key), Some(token), Some(from)) = (sid, key, token, from) {
                let mut p = Exotel::new(sid, key, token).from(from);
                if let Some(v) = &ex.subdomain {
                    p = p.subdomain(v);
                }
                if let Some(v) = &ex.api_base {
                    p = p.api_base(v);
                }
                b = b.exotel(p);
            }
        }
        if let Some(l) = cx.level("sms.level", t.level.as_deref()) {
            b = b.level(l);
        }
        if let Some(app) = &self.app {
            b = b.app(app);
        }
        if let Some(link) = self.ticket_link() {
            b = b.ticket_link(link);
        }
        Some(cx.common("sms", t, g, b))
    }

    #[cfg(feature = "mail")]
    pub(crate) fn mail_builder(&self, cx: &mut Cx, g: &Globals) -> Option<watchbell_mail::MailBuilder> {
        use watchbell_mail::{MailLayer, Security};
        let t = self.mail.as_ref()?;
        let host = cx.required("mail.host", t.host.as_deref(), "the SMTP server's host name").unwrap_or_default();
        let mut b = MailLayer::builder(host);
        if let Some(s) = &t.security {
            match s.trim().to_ascii_lowercase().as_str() {
                "starttls" => b = b.security(Security::StartTls),
                "tls" | "ssl" | "implicit_tls" => b = b.security(Security::ImplicitTls),
                "plain" | "none" => b = b.security(Security::Plain),
                _ => cx.problem("mail.security", Some(quote(s)), "starttls, tls or plain"),
            }
        }
        if let Some(p) = t.port {
            if p == 0 {
                cx.problem("mail.port", Some("0".into()), "a port from 1 to 65535");
            }
            b = b.port(p);
        }
        let password = cx.secret("mail.password", t.password.as_ref(), false);
        match (&t.username, password) {
            (Some(u), Some(p)) => b = b.credentials(u, p),
            (Some(_), None) if t.password.is_none() => {
                cx.problem("mail.password", None, "missing; expected a password with mail.username")
            }
            (None, Some(_)) => cx.problem("mail.username", None, "missing; expected a user name with mail.password"),
            _ => {}
        }
        if let Some(from) = cx.required("mail.from", t.from.as_deref(), "the sender's address") {
            b = b.from(from);
        }
        if t.to.is_empty() {
            cx.problem("mail.to", None, "missing; expected at least one recipient address");
        }
        for to in &t.to {
            b = b.to(to);
        }
        if let Some(l) = cx.level("mail.level", t.level.as_deref()) {
            b = b.level(l);
        }
        if let Some(s) = &t.subject {
            b = b.subject(s);
        }
        for (name, value) in &t.headers {
            b = b.header(name, value);
        }
        if let Some(f) = &t.related_format {
            match watchbell_core::format::Template::parse(f) {
                Ok(template) => b = b.related_format(template),
                Err(e) => cx.problem("mail.related_format", Some(quote(f)), format!("a valid template ({e})")),
            }
        }
        for (i, r) in t.route.iter().enumerate() {
            if r.to.is_empty() {
                cx.problem(format!("mail.route[{i}].to"), None, "missing; expected at least one recipient address");
            }
            let mut route = watchbell_mail::Route::to(r.to.iter().cloned());
            if let Some(l) = cx.level(&format!("mail.route[{i}].level"), r.level.as_deref()) {
                route = route.level(l);
            }
            if let Some(prefix) = &r.target {
                route = route.target(prefix);
            }
            for (name, value) in &r.fields {
                route = route.field(name, value);
            }
            b = b.add_route(route);
        }
        if let Some(app) = &self.app {
            b = b.app(app);
        }
        if let Some(link) = self.ticket_link() {
            b = b.ticket_link(link);
        }
        Some(cx.common("mail", t, g, b))
    }

    #[cfg(feature = "http-batch")]
    pub(crate) fn http_builder(&self, cx: &mut Cx, g: &Globals) -> Option<watchbell_http::HttpBuilder> {
        use watchbell_http::{Encoding, HttpLayer};
        let t = self.http.as_ref()?;
        let url = match cx.secret("http.url", t.url.as_ref(), true) {
            Some(u) if !cx.resolve || u.contains("://") => u,
            Some(u) => {
                let shown = quote(&watchbell_core::secret::redact_url(&u));
                cx.problem("http.url", Some(shown), "an http:// or https:// URL");
                String::new()
            }
            None => String::new(),
        };
        let mut b = HttpLayer::builder(url);
        if let Some(e) = &t.encoding {
            let service = t.service_name.clone().or_else(|| self.app.clone()).unwrap_or_else(|| "watchbell".into());
            match e.trim().to_ascii_lowercase().as_str() {
                "ndjson" => b = b.encoding(Encoding::Ndjson),
                "json" => b = b.encoding(Encoding::JsonArray),
                "loki" => b = b.encoding(Encoding::loki()),
                "elastic" | "elasticsearch" => {
                    b = b.encoding(Encoding::elastic_bulk(t.index.clone().unwrap_or_default()))
                }
                "otlp" => b = b.encoding(Encoding::otlp(service)),
                _ => cx.problem("http.encoding", Some(quote(e)), "ndjson, json, loki, elastic or otlp"),
            }
        }
        if let Some(l) = cx.level("http.level", t.level.as_deref()) {
            b = b.level(l);
        }
        if let Some(tok) = cx.secret("http.bearer_token", t.bearer_token.as_ref(), false) {
            b = b.bearer_auth(tok);
        }
        let pw = cx.secret("http.basic_password", t.basic_password.as_ref(), false);
        match (&t.basic_user, pw) {
            (Some(u), Some(p)) => b = b.basic_auth(u, p),
            (Some(_), None) if t.basic_password.is_none() => {
                cx.problem("http.basic_password", None, "missing; expected a password with http.basic_user")
            }
            (None, Some(_)) => cx.problem("http.basic_user", None, "missing; expected a user with http.basic_password"),
            _ => {}
        }
        if let Some(app) = &self.app {
            b = b.app(app);
        }
        Some(cx.common("http", t, g, b))
    }

    #[cfg(feature = "syslog")]
    pub(crate) fn syslog_builder(&self, cx: &mut Cx, g: &Globals) -> Option<watchbell_syslog::SyslogBuilder> {
        use watchbell_syslog::{Facility, Protocol, SyslogLayer};
        let t = self.syslog.as_ref()?;
        let mut b = SyslogLayer::builder();
        let transport = t.transport.as_deref().map(|s| s.trim().to_ascii_lowercase());
        match (transport.as_deref(), t.address.as_deref()) {
            (None | Some("unix"), None) => b = b.unix_default(),
            (None | Some("unix"), Some(path)) => b = b.unix(path),
            (Some("udp"), Some(addr)) => b = b.udp(addr),
            (Some("tcp"), Some(addr)) => b = b.tcp(addr),
            (Some("udp" | "tcp"), None) => cx.problem("syslog.address", None, "missing; expected host:port"),
            (Some(_), _) => cx.problem("syslog.transport", t.transport.as_deref().map(quote), "unix, udp or tcp"),
        }
        if let Some(p) = &t.protocol {
            match p.trim().to_ascii_lowercase().trim_start_matches("rfc") {
                "3164" => b = b.protocol(Protocol::Rfc3164),
                "5424" => b = b.protocol(Protocol::Rfc5424),
                _ => cx.problem("syslog.protocol", Some(quote(p)), "\"3164\" or \"5424\""),
            }
        }
        if let Some(f) = &t.facility {
            match f.parse::<Facility>() {
                Ok(f) => b = b.facility(f),
                Err(e) => cx.problem("syslog.facility", Some(quote(f)), e),
            }
        }
        if let Some(l) = cx.level("syslog.level", t.level.as_deref()) {
            b = b.level(l);
        }
        if let Some(f) = &t.msgid_field {
            b = b.msgid_field(f.trim());
        }
        if let Some(bom) = t.bom {
            b = b.bom(bom);
        }
        if let Some(z) = &t.zone {
            match watchbell_syslog::Zone::parse(z) {
                Ok(zone) => b = b.zone(zone),
                Err(e) => cx.problem(
                    "syslog.zone",
                    Some(quote(z)),
                    format!("local, utc, an IANA zone name or a POSIX rule ({e})"),
                ),
            }
        }
        for (level, severity) in &t.severities {
            let key = format!("syslog.severities.{level}");
            let Some(l) = cx.level(&key, Some(level)) else { continue };
            match severity.parse::<watchbell_syslog::Severity>() {
                Ok(s) => b = b.level_severity(l, s),
                Err(e) => cx.problem(&key, Some(quote(severity)), e),
            }
        }
        if let Some(app) = &self.app {
            b = b.app_name(app);
        }
        Some(cx.common("syslog", t, g, b))
    }

    #[cfg(feature = "file")]
    pub(crate) fn file_builder(&self, cx: &mut Cx, g: &Globals) -> Option<watchbell_file::FileLayerBuilder> {
        use watchbell_core::Level;
        use watchbell_file::{FileLayer, Interval};
        let t = self.file.as_ref()?;
        let mut path = cx.required("file.path", t.path.as_deref(), "the log file's path").unwrap_or("watchbell.log");
        if path.contains('\0') {
            cx.problem("file.path", Some(quote(path)), "a path without NUL characters");
            path = "watchbell.log";
        }
        let mut b = FileLayer::builder(path);
        b = b.level(cx.level("file.level", t.level.as_deref()).unwrap_or(Level::WARN));
        if let Some(n) = t.max_bytes {
            b = b.max_bytes(n);
        }
        if let Some(n) = t.backup_count {
            b = b.backup_count(n);
        }
        if let Some(r) = &t.rotate_every {
            match r.trim().to_ascii_lowercase().as_str() {
                "minute" | "minutely" => b = b.rotate_every(Interval::Minutely),
                "hour" | "hourly" => b = b.rotate_every(Interval::Hourly),
                "day" | "daily" | "midnight" => b = b.rotate_every(Interval::Daily),
                _ => cx.problem("file.rotate_every", Some(quote(r)), "minute, hour or day"),
            }
        }
        if let Some(w) = &t.when {
            if t.rotate_every.is_some() {
                cx.problem("file.when", Some(quote(w)), "either when or rotate_every, not both");
            }
            match w.parse::<watchbell_file::When>() {
                Ok(when) => b = b.when(when),
                Err(_) => cx.problem("file.when", Some(quote(w)), "S, M, H, D, midnight or W0 (Monday) to W6"),
            }
        }
        if let Some(n) = t.interval {
            b = b.interval(n);
        }
        if let Some(at) = &t.at_time {
            let parts: Vec<Option<u8>> = at.trim().split(':').map(|p| p.parse().ok()).collect();
            match parts.as_slice() {
                [Some(h), Some(m)] if *h < 24 && *m < 60 => b = b.at_time(*h, *m, 0),
                [Some(h), Some(m), Some(s)] if *h < 24 && *m < 60 && *s < 60 => b = b.at_time(*h, *m, *s),
                _ => cx.problem("file.at_time", Some(quote(at)), "a time of day, HH:MM or HH:MM:SS"),
            }
        }
        if let Some(z) = &t.zone {
            match watchbell_file::Zone::parse(z) {
                Ok(zone) => b = b.zone(zone),
                Err(e) => cx.problem(
                    "file.zone",
                    Some(quote(z)),
                    format!("utc, local, an IANA zone name or a POSIX rule ({e})"),
                ),
            }
        }
        if let Some(f) = &t.date_format {
            b = b.date_format(f);
        }
        if let Some(truncate) = t.truncate {
            b = b.truncate(truncate);
        }
        if let Some(c) = &t.compress {
            match c.trim().to_ascii_lowercase().as_str() {
                "gzip" | "gz" => b = b.gzip(),
                "none" | "" => {}
                _ => cx.problem("file.compress", Some(quote(c)), "gzip or none"),
            }
        }
        if let Some(app) = &self.app {
            b = b.app(app);
        }
        Some(cx.common("file", t, g, b))
    }

    /// The link to each alert's ticket (`[ticketing] public_url`), with the ticketing layer's
    /// app id, salt and fingerprint field; `None` without it (or when it is invalid: the
    /// ticketing table reports that).
    #[cfg(feature = "ticketing")]
    pub(crate) fn ticket_link(&self) -> Option<watchbell_core::TicketLink> {
        let t = self.ticketing.as_ref()?;
        let public = t.public_url.as_deref()?;
        let mut b = watchbell_ticketing::TicketingLayer::builder(String::new());
        if let Some(id) = t.app_id.as_ref().or(self.app.as_ref()) {
            b = b.app_id(id);
        }
        b.ticket_link(public).ok()
    }

    /// Without ticketing, alerts have no ticket to link to.
    #[cfg(not(feature = "ticketing"))]
    pub(crate) fn ticket_link(&self) -> Option<watchbell_core::TicketLink> {
        None
    }

    #[cfg(feature = "ticketing")]
    pub(crate) fn ticketing_builder(&self, cx: &mut Cx, g: &Globals) -> Option<watchbell_ticketing::TicketingBuilder> {
        use watchbell_ticketing::TicketingLayer;
        let t = self.ticketing.as_ref()?;
        let url = cx.secret("ticketing.url", t.url.as_ref(), true).unwrap_or_default();
        let mut b = TicketingLayer::builder(url);
        if let Some(id) = t.app_id.as_ref().or(self.app.as_ref()) {
            b = b.app_id(id);
        }
        if let Some(public) = t.public_url.as_deref() {
            if let Err(e) = b.ticket_link(public) {
                cx.problem("ticketing.public_url", Some(quote(&watchbell_core::secret::redact_url(public))), e.message);
            }
        }
        if let Some(l) = cx.level("ticketing.level", t.level.as_deref()) {
            b = b.level(l);
        }
        Some(cx.common("ticketing", t, g, b))
    }

    #[cfg(feature = "command")]
    pub(crate) fn command_builder(&self, cx: &mut Cx, g: &Globals) -> Option<watchbell_command::CommandBuilder> {
        use watchbell_command::{CommandLayer, Stdin};
        let t = self.command.as_ref()?;
        let mut b = match (t.program.as_deref(), t.shell.as_deref()) {
            (Some(p), None) => CommandLayer::builder(p),
            (None, Some(script)) => CommandLayer::shell(script),
            (Some(_), Some(_)) => {
                cx.problem("command.shell", None, "either `program` or `shell`, not both");
                return None;
            }
            (None, None) => {
                cx.problem("command.program", None, "missing; expected the program to run (or `shell`)");
                return None;
            }
        };
        if let Some(args) = &t.args {
            b = b.args(args.iter().cloned());
        }
        if let Some(m) = &t.stdin {
            match m.trim().to_ascii_lowercase().as_str() {
                "text" => b = b.stdin(Stdin::Text),
                "json" => b = b.stdin(Stdin::Json),
                "none" | "null" => b = b.stdin(Stdin::Null),
                _ => cx.problem("command.stdin", Some(quote(m)), "text, json or none"),
            }
        }
        if let Some(on) = t.per_batch {
            b = b.per_batch(on);
        }
        if let Some(n) = t.concurrency {
            if n == 0 {
                cx.problem("command.concurrency", Some("0".into()), "at least 1");
            }
            b = b.concurrency(n);
        }
        if let Some(codes) = &t.retry_exit_codes {
            b = b.retry_exit_codes(codes.iter().copied());
        }
        if let Some(l) = cx.level("command.level", t.level.as_deref()) {
            b = b.level(l);
        }
        if let Some(app) = &self.app {
            b = b.app(app);
        }
        Some(cx.common("command", t, g, b))
    }

    #[cfg(feature = "journald")]
    pub(crate) fn journald_builder(&self, cx: &mut Cx, g: &Globals) -> Option<watchbell_journald::JournaldBuilder> {
        let t = self.journald.as_ref()?;
        let mut b = watchbell_journald::JournaldLayer::builder();
        if let Some(path) = &t.socket {
            b = b.socket(path);
        }
        if let Some(id) = t.syslog_identifier.as_ref().or(self.app.as_ref()) {
            b = b.syslog_identifier(id);
        }
        if let Some(l) = cx.level("journald.level", t.level.as_deref()) {
            b = b.level(l);
        }
        Some(cx.common("journald", t, g, b))
    }

    #[cfg(feature = "zmq")]
    pub(crate) fn zmq_builder(&self, cx: &mut Cx, g: &Globals) -> Option<watchbell_zmq::ZmqBuilder> {
        let t = self.zmq.as_ref()?;
        let endpoint = match t.endpoint.as_deref() {
            Some(e) if e.starts_with("tcp://") || e.starts_with("ipc://") => e,
            Some(e) => {
                cx.problem("zmq.endpoint", Some(quote(e)), "tcp://host:port or ipc://path");
                return None;
            }
            None => {
                cx.problem("zmq.endpoint", None, "missing; expected tcp://host:port or ipc://path");
                return None;
            }
        };
        let mut b = watchbell_zmq::ZmqLayer::builder(endpoint);
        if let Some(s) = t.socket.as_deref() {
            match s.parse::<watchbell_zmq::SocketKind>() {
                Ok(kind) => b = b.socket(kind),
                Err(_) => cx.problem("zmq.socket", Some(quote(s)), "`pub` or `push`"),
            }
        }
        if let Some(l) = cx.level("zmq.level", t.level.as_deref()) {
            b = b.level(l);
        }
        Some(cx.common("zmq", t, g, b))
    }

    #[cfg(feature = "desktop")]
    pub(crate) fn desktop_builder(&self, cx: &mut Cx, g: &Globals) -> Option<watchbell_desktop::DesktopBuilder> {
        let t = self.desktop.as_ref()?;
        let mut b = watchbell_desktop::DesktopLayer::builder();
        if let Some(a) = &t.bus_address {
            b = b.bus_address(a);
        }
        if let Some(d) = cx.duration("desktop.expire_after", t.expire_after.as_deref()) {
            b = b.expire_after(d);
        }
        if let Some(l) = cx.level("desktop.level", t.level.as_deref()) {
            b = b.level(l);
        }
        if let Some(app) = &self.app {
            b = b.app_name(app);
        }
        Some(cx.common("desktop", t, g, b))
    }
}

#[cfg(feature = "notify")]
impl Config {
    /// The push, chat and paging tables (`[ntfy]`, `[pushover]`, …) read into their builders.
    pub(crate) fn notify_table_builder(
        &self,
        cx: &mut Cx,
        g: &Globals,
        name: &str,
    ) -> Option<watchbell_notify::NotifyBuilder> {
        use watchbell_notify::NotifyLayer;
        let secret = |cx: &mut Cx, key: &str, v: Option<&super::SecretValue>| {
            cx.secret(&format!("{name}.{key}"), v, true).unwrap_or_default()
        };
        let (mut b, level) = match name {
            "ntfy" => {
                let t = self.ntfy.as_ref()?;
                let topic = secret(cx, "topic", t.topic.as_ref());
                let server = t.server.clone().unwrap_or_else(|| "https://ntfy.sh".to_owned());
                let mut b = NotifyLayer::ntfy(server, topic);
                if let Some(token) = cx.secret("ntfy.token", t.token.as_ref(), false) {
                    b = b.token(token);
                }
                if let Some(c) = &t.click {
                    b = b.click(c);
                }
                (cx.common(name, t, g, b), t.level.as_deref())
            }
            "pushover" => {
                let t = self.pushover.as_ref()?;
                let (token, user) = (secret(cx, "token", t.token.as_ref()), secret(cx, "user", t.user.as_ref()));
                let mut b = NotifyLayer::pushover(token, user);
                let retry = cx.duration("pushover.emergency_retry", t.emergency_retry.as_deref());
                let expire = cx.duration("pushover.emergency_expire", t.emergency_expire.as_deref());
                match (retry, expire) {
                    (Some(r), Some(e)) => b = b.emergency(r, e),
                    (None, None) => {}
                    _ => cx.problem(
                        "pushover.emergency_retry",
                        None,
                        "emergency_retry and emergency_expire go together (Pushover needs both)",
                    ),
                }
                if let Some(c) = &t.click {
                    b = b.click(c);
                }
                if let Some(a) = &t.api_base {
                    b = b.api_base(a);
                }
                (cx.common(name, t, g, b), t.level.as_deref())
            }
            "discord" | "teams" => {
                let t = if name == "discord" { self.discord.as_ref()? } else { self.teams.as_ref()? };
                let url = secret(cx, "webhook", t.webhook.as_ref());
                let b = if name == "discord" { NotifyLayer::discord(url) } else { NotifyLayer::teams(url) };
                (cx.common(name, t, g, b), t.level.as_deref())
            }
            "google_chat" => {
                let t = self.google_chat.as_ref()?;
                let mut b = NotifyLayer::google_chat(secret(cx, "webhook", t.webhook.as_ref()));
                if let Some(on) = t.thread_by_callsite {
                    b = b.thread_by_callsite(on);
                }
                (cx.common(name, t, g, b), t.level.as_deref())
            }
            "mattermost" | "rocketchat" => {
                let t = if name == "mattermost" { self.mattermost.as_ref()? } else { self.rocketchat.as_ref()? };
                let url = secret(cx, "webhook", t.webhook.as_ref());
                let mut b =
                    if name == "mattermost" { NotifyLayer::mattermost(url) } else { NotifyLayer::rocketchat(url) };
                if let Some(c) = &t.channel {
                    b = b.channel(c);
                }
                if let Some(u) = &t.username {
                    b = b.username(u);
                }
                (cx.common(name, t, g, b), t.level.as_deref())
            }
            "pagerduty" => {
                let t = self.pagerduty.as_ref()?;
                let mut b = NotifyLayer::pagerduty(secret(cx, "routing_key", t.routing_key.as_ref()));
                if let Some(a) = &t.api_base {
                    b = b.api_base(a);
                }
                (cx.common(name, t, g, b), t.level.as_deref())
            }
            "opsgenie" => {
                let t = self.opsgenie.as_ref()?;
                let mut b = NotifyLayer::opsgenie(secret(cx, "key", t.key.as_ref()));
                match (t.api_base.as_deref(), t.region.as_deref().map(str::to_ascii_lowercase).as_deref()) {
                    (Some(a), _) => b = b.api_base(a),
                    (None, Some("eu")) => b = b.api_base("https://api.eu.opsgenie.com"),
                    (None, None | Some("us")) => {}
                    (None, Some(_)) => {
                        cx.problem("opsgenie.region", t.region.as_deref().map(quote), "expected `us` or `eu`")
                    }
                }
                (cx.common(name, t, g, b), t.level.as_deref())
            }
            _ => return None,
        };
        if let Some(l) = cx.level(&format!("{name}.level"), level) {
            b = b.level(l);
        }
        if let Some(app) = &self.app {
            b = b.app(app);
        }
        if let Some(link) = self.ticket_link() {
            b = b.ticket_link(link);
        }
        Some(b)
    }
}

#[cfg(feature = "aws")]
impl Config {
    /// `[sqs]`, `[cloudwatch_logs]` or `[sns]` read into its builder.
    pub(crate) fn aws_builder(&self, cx: &mut Cx, g: &Globals, name: &str) -> Option<watchbell_aws::AwsBuilder> {
        use watchbell_aws::{CloudWatchLogsLayer, SnsLayer, SqsLayer};
        struct Shared<'a> {
            region: Option<&'a str>,
            endpoint_url: Option<&'a str>,
            profile: Option<&'a str>,
            access_key_id: Option<&'a str>,
            secret_access_key: Option<&'a super::SecretValue>,
            session_token: Option<&'a super::SecretValue>,
            level: Option<&'a str>,
        }
        let required = |cx: &mut Cx, key: &str, v: Option<&String>, what: &str| -> Option<String> {
            match v.filter(|s| !s.trim().is_empty()) {
                Some(s) => Some(s.clone()),
                None => {
                    cx.problem(format!("{name}.{key}"), None, format!("missing; expected {what}"));
                    None
                }
            }
        };
        // The settings every AWS table has, whatever the table's type.
        macro_rules! aws_shared {
            ($t:expr) => {
                Shared {
                    region: $t.region.as_deref(),
                    endpoint_url: $t.endpoint_url.as_deref(),
                    profile: $t.profile.as_deref(),
                    access_key_id: $t.access_key_id.as_deref(),
                    secret_access_key: $t.secret_access_key.as_ref(),
                    session_token: $t.session_token.as_ref(),
                    level: $t.level.as_deref(),
                }
            };
        }
        let (b, shared) = match name {
            "sqs" => {
                let t = self.sqs.as_ref()?;
                let url =
                    required(cx, "queue_url", t.queue_url.as_ref(), "https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE")?;
                let mut b = SqsLayer::builder(url);
                if let Some(gid) = &t.message_group_id {
                    b = b.message_group_id(gid);
                }
                let shared = aws_shared!(t);
                (cx.common(name, t, g, b), shared)
            }
            "cloudwatch_logs" => {
                let t = self.cloudwatch_logs.as_ref()?;
                let group = required(cx, "log_group", t.log_group.as_ref(), "a log group name");
                let stream = required(cx, "log_stream", t.log_stream.as_ref(), "a log stream name");
                let mut b = CloudWatchLogsLayer::builder(group?, stream?);
                if let Some(c) = t.create {
                    b = b.create_log_stream(c);
                }
                let shared = aws_shared!(t);
                (cx.common(name, t, g, b), shared)
            }
            "sns" => {
                let t = self.sns.as_ref()?;
                let arn = required(cx, "topic_arn", t.topic_arn.as_ref(), "arn:aws:sns:REGION:ACCOUNT:TOPIC")?;
                let b = SnsLayer::builder(arn);
                let shared = aws_shared!(t);
                (cx.common(name, t, g, b), shared)
            }
            _ => return None,
        };
        let mut b = b;
        if let Some(r) = shared.region {
            b = b.region(r);
        }
        if let Some(e) = shared.endpoint_url {
            b = b.endpoint_url(e);
        }
        if let Some(p) = shared.profile {
            b = b.profile(p);
        }
        match (shared.access_key_id, shared.secret_access_key) {
            (Some(id), Some(_)) => {
                let secret = cx.secret(&format!("{name}.secret_access_key"), shared.secret_access_key, true);
                let mut c = watchbell_aws::Credentials::new(id, secret.unwrap_or_default());
                if let Some(t) = cx.secret(&format!("{name}.session_token"), shared.session_token, false) {
                    c = c.session_token(t);
                }
                b = b.credentials(c);
            }
            (None, None) => {}
            _ => cx.problem(
                format!("{name}.access_key_id"),
                None,
                "access_key_id and secret_access_key go together (or neither: the environment and ~/.aws are read)",
            ),
        }
        if let Some(l) = cx.level(&format!("{name}.level"), shared.level) {
            b = b.level(l);
        }
        if let Some(app) = &self.app {
            b = b.app(app);
        }
        Some(b)
    }
}
