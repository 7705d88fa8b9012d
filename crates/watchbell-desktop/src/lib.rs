//! # watchbell-desktop
//!
//! Desktop notifications for tracing: each alert becomes a freedesktop notification
//! (`org.freedesktop.Notifications` on the D-Bus session bus: GNOME, KDE, dunst, mako, ...),
//! sent from watchbell's delivery thread through zbus (pure Rust, no libdbus). Logbook's
//! `LibNotifyHandler`, for a developer's machine or a kiosk.
//!
//! ```no_run
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//! use watchbell_desktop::DesktopLayer;
//!
//! let (layer, guard) = DesktopLayer::builder().app_name("billing").build().expect("a session bus");
//! tracing_subscriber::registry().with(layer).init();
//! tracing::error!(invoice = 42, "payment failed"); // a critical notification
//! guard.shutdown(Duration::from_secs(5));
//! ```
//!
//! ## The notification
//!
//! - **Urgency** by level: `ERROR` critical (2), `WARN` normal (1), `INFO` and below low (0).
//! - **Summary**: `LEVEL target` (with the app's name in front when set), one line, at most
//!   100 characters.
//! - **Body**: the message, then `name = value` lines for the fields and `(N similar
//!   suppressed)`, cut to 1,000 characters with the marker `…[truncated]`. Control
//!   characters other than newline and tab are written as escapes (`\0`, `\u{1b}`): a NUL
//!   cannot cross D-Bus, and the others would show as boxes. When the server
//!   announces `body-markup`, `&`, `<` and `>` are escaped so that text cannot become markup
//!   (a message `<a href=…>` is shown as typed); otherwise the text is sent as it is.
//! - **One notification per callsite**: the next alert of the same fingerprint replaces the
//!   previous one (`replaces_id`) instead of stacking a column of copies.
//! - **Expiry**: the server's default (`-1`), or [`expire_after`](DesktopBuilder::expire_after).
//!
//! ## The bus
//!
//! The session bus is found as every D-Bus client finds it: `DBUS_SESSION_BUS_ADDRESS`, else
//! `$XDG_RUNTIME_DIR/bus`; [`bus_address`](DesktopBuilder::bus_address) sets it explicitly.
//! With none of them, [`build`](DesktopBuilder::build) fails with an error that says so (a
//! service running without a desktop session). A bus or notification server that goes away
//! later is retried with backoff like every watchbell sink; the thread that logs never waits.
//!
//! ## Defaults
//!
//! | setting | default |
//! |---|---|
//! | level | `WARN` |
//! | rate limit | 1 per 10 s per callsite (repeats replace the notification anyway) |
//! | timeout | 5 s per call |
#![deny(missing_docs)]

mod notify;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tracing_core::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use watchbell_core::handler::Handler;
use watchbell_core::options::Options;
use watchbell_core::{BuildError, Guard, Level, SinkLayer, SinkOptions};

pub use notify::{body_text, summary, urgency};

const CRATE: &str = "watchbell-desktop";

/// The namespace of [`DesktopLayer::builder`].
#[derive(Debug)]
pub struct DesktopLayer(());

impl DesktopLayer {
    /// A builder with the defaults of the [crate docs](crate#defaults).
    pub fn builder() -> DesktopBuilder {
        DesktopBuilder {
            options: Options::new().timeout(Duration::from_secs(5)).rate_limit(1, Duration::from_secs(10)),
            address: None,
            app_name: None,
            icon: String::new(),
            expire: None,
            level: Level::WARN,
        }
    }
}

/// Builds a desktop notification layer; see the [crate docs](crate).
pub struct DesktopBuilder {
    options: Options,
    address: Option<String>,
    app_name: Option<String>,
    icon: String,
    expire: Option<Duration>,
    level: Level,
}

impl fmt::Debug for DesktopBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DesktopBuilder")
            .field("address", &self.address)
            .field("app_name", &self.app_name)
            .field("icon", &self.icon)
            .field("expire", &self.expire)
            .field("level", &self.level)
            .field("options", &self.options)
            .finish()
    }
}

impl SinkOptions for DesktopBuilder {
    fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }
}

impl DesktopBuilder {
    /// The session bus's address (`unix:path=/run/user/1000/bus`), instead of finding it.
    pub fn bus_address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// The application's name, shown by the notification server and in the summary.
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = Some(name.into());
        self
    }

    /// An icon name or `file://` URI (default: none).
    pub fn icon(mut self, icon: impl Into<String>) -> Self {
        self.icon = icon.into();
        self
    }

    /// How long a notification stays (default: the server decides).
    pub fn expire_after(mut self, d: Duration) -> Self {
        self.expire = Some(d);
        self
    }

    /// The least level notified (default `WARN`).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    fn err(key: &str, msg: impl fmt::Display) -> BuildError {
        BuildError::new(CRATE, key, msg)
    }

    /// The session bus address: explicit, `DBUS_SESSION_BUS_ADDRESS`, or `$XDG_RUNTIME_DIR/bus`.
    fn find_address(&self) -> Result<String, BuildError> {
        if let Some(a) = &self.address {
            if a.trim().is_empty() {
                return Err(Self::err("bus_address", "the address is empty"));
            }
            return Ok(a.clone());
        }
        if let Some(a) = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").filter(|a| !a.is_empty()) {
            return Ok(a.to_string_lossy().into_owned());
        }
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
            let path = std::path::Path::new(&dir).join("bus");
            if path.exists() {
                return Ok(format!("unix:path={}", path.display()));
            }
        }
        Err(Self::err(
            "bus_address",
            "no D-Bus session bus: DBUS_SESSION_BUS_ADDRESS is not set and $XDG_RUNTIME_DIR/bus does not exist \
             (is this a desktop session?)",
        ))
    }

    fn root(&self) -> Result<Arc<dyn Handler>, BuildError> {
        let address = self.find_address()?;
        if address.contains('\0') {
            return Err(Self::err("bus_address", "the address contains a NUL character"));
        }
        let expire = match self.expire {
            None => -1,
            Some(d) => i32::try_from(d.as_millis()).unwrap_or(i32::MAX),
        };
        let sink = notify::NotifySink::new(notify::Settings {
            address,
            app_name: self.app_name.clone().unwrap_or_default(),
            icon: self.icon.clone(),
            expire,
            timeout: self.options.timeout,
        });
        let delivery = self
            .options
            .delivery("desktop", sink)
            .spawn()
            .map_err(|e| Self::err("delivery", format!("cannot start the delivery thread: {e}")))?;
        Ok(self.options.limited("desktop", delivery))
    }

    /// Starts the delivery and returns the root handler (behind the rate limit, if any) and its
    /// guard: for feeding records from other handlers (a fingers-crossed buffer, a fan-out).
    pub fn build_handler(self) -> Result<(Arc<dyn Handler>, Guard), BuildError> {
        let root = self.root()?;
        let guard = Guard::new(Arc::clone(&root));
        Ok((root, guard))
    }

    /// Builds the layer and its guard. Keep the guard until the end of `main`.
    pub fn build<S>(self) -> Result<(SinkLayer<S>, Guard), BuildError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let level = self.level;
        Ok(watchbell_core::options::layer(self.root()?, level))
    }
}
