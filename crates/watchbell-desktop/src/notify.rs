//! The `org.freedesktop.Notifications` client: the texts, and the sink that calls `Notify`.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use watchbell_core::text::{escape_html, single_line, truncate_chars, MARKER};
use watchbell_core::{Batch, Level, Outcome, Record, Sink};
use zbus::zvariant::Value;

const DEST: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";

/// The most characters of a summary and of a body.
const MAX_SUMMARY: usize = 100;
const MAX_BODY: usize = 1000;

/// How many callsites' last notification ids are kept for replacing.
const MAX_IDS: usize = 256;

/// The freedesktop urgency of a level: `ERROR` critical (2), `WARN` normal (1), others low (0).
pub fn urgency(level: Level) -> u8 {
    match level {
        Level::ERROR => 2,
        Level::WARN => 1,
        _ => 0,
    }
}

/// The summary: `[app] LEVEL target`, one line, at most 100 characters.
///
/// ```
/// use watchbell_core::{Level, Record};
/// let r = Record::new(Level::ERROR, "app::db", "down");
/// assert_eq!(watchbell_desktop::summary(&r, "billing"), "[billing] ERROR app::db");
/// ```
pub fn summary(record: &Record, app: &str) -> String {
    let text = if app.is_empty() {
        format!("{} {}", record.level, record.target)
    } else {
        format!("[{app}] {} {}", record.level, record.target)
    };
    truncate_chars(&single_line(&text), MAX_SUMMARY, MARKER).into_owned()
}

/// The body: the message, the fields as `name = value` lines and the suppressed count, cut to
/// 1,000 characters; control characters other than newline and tab written as escapes (`\0`,
/// `\u{1b}`); `&`, `<`, `>` escaped when the server takes markup.
///
/// ```
/// use watchbell_core::{Level, Record};
/// let r = Record::new(Level::ERROR, "app", "<b>not bold</b> & co");
/// assert_eq!(watchbell_desktop::body_text(&r, true), "&lt;b&gt;not bold&lt;/b&gt; &amp; co");
/// assert_eq!(watchbell_desktop::body_text(&r, false), "<b>not bold</b> & co");
/// ```
pub fn body_text(record: &Record, markup: bool) -> String {
    let mut text = record.message.to_string();
    for (name, value) in record.fields.iter() {
        text.push('\n');
        text.push_str(name);
        text.push_str(" = ");
        text.push_str(&value.to_string());
    }
    if record.suppressed > 0 {
        text.push_str(&format!("\n({} similar suppressed)", record.suppressed));
    }
    let text = visible_controls(&text);
    let text = truncate_chars(&text, MAX_BODY, MARKER);
    if markup {
        escape_html(&text).into_owned()
    } else {
        text.into_owned()
    }
}

/// `s` with every control character but newline and tab written in Rust's escape notation
/// (`\0`, `\r`, `\u{1b}`): a NUL cannot cross D-Bus at all (its strings exclude it), and the
/// others are shown as typed instead of as boxes or terminal escapes.
fn visible_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) struct Settings {
    pub address: String,
    pub app_name: String,
    pub icon: String,
    pub expire: i32,
    pub timeout: Duration,
}

pub(crate) struct NotifySink {
    s: Settings,
    conn: Option<(zbus::Connection, bool)>,
    /// The last notification id per callsite fingerprint, the oldest first.
    ids: VecDeque<(u64, u32)>,
}

impl NotifySink {
    pub(crate) fn new(s: Settings) -> Self {
        NotifySink { s, conn: None, ids: VecDeque::new() }
    }

    fn replaces(&self, fp: u64) -> u32 {
        self.ids.iter().find(|(f, _)| *f == fp).map_or(0, |(_, id)| *id)
    }

    fn remember(&mut self, fp: u64, id: u32) {
        self.ids.retain(|(f, _)| *f != fp);
        if self.ids.len() >= MAX_IDS {
            self.ids.pop_front();
        }
        self.ids.push_back((fp, id));
    }

    /// Connects (once) and asks the server whether it takes markup.
    async fn connection(&mut self) -> zbus::Result<(zbus::Connection, bool)> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let conn = zbus::connection::Builder::address(self.s.address.as_str())?.build().await?;
        let caps: Vec<String> =
            conn.call_method(Some(DEST), PATH, Some(DEST), "GetCapabilities", &()).await?.body().deserialize()?;
        let markup = caps.iter().any(|c| c == "body-markup");
        self.conn = Some((conn.clone(), markup));
        Ok((conn, markup))
    }

    async fn notify(&mut self, record: &Record) -> zbus::Result<u32> {
        let (conn, markup) = self.connection().await?;
        let mut hints: HashMap<&str, Value<'_>> = HashMap::new();
        hints.insert("urgency", Value::from(urgency(record.level)));
        let body = (
            self.s.app_name.as_str(),
            self.replaces(record.fingerprint.0),
            self.s.icon.as_str(),
            summary(record, &self.s.app_name),
            body_text(record, markup),
            Vec::<&str>::new(),
            hints,
            self.s.expire,
        );
        conn.call_method(Some(DEST), PATH, Some(DEST), "Notify", &body).await?.body().deserialize()
    }

    fn send(&mut self, record: &Record) -> Outcome {
        let timeout = self.s.timeout;
        let result =
            watchbell_core::runtime::block_on(async { tokio::time::timeout(timeout, self.notify(record)).await });
        match result {
            Ok(Ok(id)) => {
                self.remember(record.fingerprint.0, id);
                Outcome::Delivered
            }
            Ok(Err(e)) => {
                self.conn = None;
                classify(&e)
            }
            Err(_) => {
                self.conn = None;
                Outcome::retry(format!("the notification server did not answer within {timeout:?}"))
            }
        }
    }
}

/// A method error the server will repeat (invalid arguments) is permanent; a missing server,
/// bus or connection may come back.
fn classify(e: &zbus::Error) -> Outcome {
    match e {
        zbus::Error::MethodError(name, detail, _) => {
            let reason = format!("{DEST} answered {}: {}", name.as_str(), detail.as_deref().unwrap_or(""));
            match name.as_str() {
                "org.freedesktop.DBus.Error.ServiceUnknown" | "org.freedesktop.DBus.Error.NameHasNoOwner" => {
                    Outcome::retry(format!("no notification server on the session bus ({reason})"))
                }
                "org.freedesktop.DBus.Error.NoReply" | "org.freedesktop.DBus.Error.Timeout" => Outcome::retry(reason),
                _ => Outcome::permanent(reason),
            }
        }
        other => Outcome::retry(format!("the D-Bus session bus: {other}")),
    }
}

impl Drop for NotifySink {
    fn drop(&mut self) {
        // Closed on the runtime that runs it, while that runtime is still there (not from the
        // thread's exit, when its tasks would be dropped without one).
        if let Some((conn, _)) = self.conn.take() {
            let timeout = self.s.timeout;
            watchbell_core::runtime::block_on(async move {
                let _ = tokio::time::timeout(timeout, conn.close()).await;
            });
        }
    }
}

impl Sink for NotifySink {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        for (i, record) in batch.records.iter().enumerate() {
            match self.send(record) {
                Outcome::Delivered => {}
                rest if i == 0 => return rest,
                rest => return Outcome::Partial { delivered: i, rest: Box::new(rest) },
            }
        }
        Outcome::Delivered
    }
}
