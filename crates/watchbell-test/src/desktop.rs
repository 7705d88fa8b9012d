//! A desktop session stand-in: a private `dbus-daemon` (Debian's `dbus-daemon` package) and a
//! notification server on it (`org.freedesktop.Notifications`, written with zbus) that records
//! every `Notify` call.
//!
//! ```no_run
//! use watchbell_test::desktop::FakeNotifications;
//! let desktop = FakeNotifications::start();
//! println!("the bus: {}", desktop.address());
//! let shown = desktop.wait_for_notifications(1, std::time::Duration::from_secs(5));
//! ```
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zbus::zvariant::OwnedValue;

use crate::store::Recorded;

/// One `Notify` call as the server received it.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The id the server answered.
    pub id: u32,
    /// `app_name`.
    pub app_name: String,
    /// `replaces_id` (0: a new notification).
    pub replaces_id: u32,
    /// `summary`.
    pub summary: String,
    /// `body`.
    pub body: String,
    /// The `urgency` hint (0 low, 1 normal, 2 critical), if sent.
    pub urgency: Option<u8>,
    /// `expire_timeout` in milliseconds (-1: the server decides).
    pub expire_timeout: i32,
}

#[derive(Default)]
struct State {
    shown: Vec<Notification>,
    next_id: u32,
}

struct Server {
    state: Arc<Recorded<State>>,
    markup: Arc<Mutex<bool>>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Server {
    fn get_capabilities(&self) -> Vec<String> {
        let mut caps = vec!["body".to_owned()];
        if *self.markup.lock().unwrap_or_else(|e| e.into_inner()) {
            caps.push("body-markup".to_owned());
        }
        caps
    }

    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: String,
        replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        hints: HashMap<String, OwnedValue>,
        expire_timeout: i32,
    ) -> u32 {
        let urgency = hints.get("urgency").and_then(|v| u8::try_from(v).ok());
        self.state.update(|s| {
            let id = if replaces_id != 0 {
                replaces_id
            } else {
                s.next_id += 1;
                s.next_id
            };
            s.shown.push(Notification { id, app_name, replaces_id, summary, body, urgency, expire_timeout });
            id
        })
    }

    fn close_notification(&self, _id: u32) {}

    fn get_server_information(&self) -> (String, String, String, String) {
        ("watchbell-test".into(), "watchbell".into(), "0".into(), "1.2".into())
    }
}

/// A private session bus with a notification server; both stop when dropped.
pub struct FakeNotifications {
    daemon: Child,
    dir: std::path::PathBuf,
    address: String,
    state: Arc<Recorded<State>>,
    markup: Arc<Mutex<bool>>,
    runtime: tokio::runtime::Runtime,
    server: Option<zbus::Connection>,
}

impl std::fmt::Debug for FakeNotifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeNotifications").field("address", &self.address).finish_non_exhaustive()
    }
}

impl FakeNotifications {
    /// Starts `dbus-daemon --session` on a private socket and the notification server on it
    /// (announcing `body-markup`). Panics with what to install when `dbus-daemon` is missing.
    pub fn start() -> FakeNotifications {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "watchbell-dbus-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let mut daemon = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .arg(format!("--address=unix:dir={}", dir.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dbus-daemon ({e}): install Debian's dbus-daemon package"));
        let mut line = String::new();
        BufReader::new(daemon.stdout.take().expect("stdout")).read_line(&mut line).expect("the bus address");
        let address = line.trim().to_owned();
        assert!(!address.is_empty(), "dbus-daemon printed no address");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("fake-notifications")
            // The server's own zbus events are the other side's, as if it ran in another
            // process: never captured by the layers under test.
            .on_thread_start(watchbell_core::capture::mark_current_thread)
            .build()
            .expect("a runtime");
        let mut fake = FakeNotifications {
            daemon,
            dir,
            address,
            state: Arc::new(Recorded::new(State::default())),
            markup: Arc::new(Mutex::new(true)),
            runtime,
            server: None,
        };
        fake.start_server();
        fake
    }

    /// The bus address (give it to the layer's `bus_address`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether the server announces `body-markup` (default `true`); applies to clients that
    /// connect after the change.
    pub fn set_markup(&self, on: bool) {
        *self.markup.lock().unwrap_or_else(|e| e.into_inner()) = on;
    }

    /// Takes the notification server off the bus (the bus stays): calls then fail with
    /// `ServiceUnknown`.
    pub fn stop_server(&mut self) {
        if let Some(conn) = self.server.take() {
            self.runtime.block_on(async move {
                let _ = conn.close().await;
            });
        }
    }

    /// Puts the notification server (back) on the bus.
    pub fn start_server(&mut self) {
        let server = Server { state: Arc::clone(&self.state), markup: Arc::clone(&self.markup) };
        let address = self.address.clone();
        let conn = self.runtime.block_on(async move {
            zbus::connection::Builder::address(address.as_str())?
                .name("org.freedesktop.Notifications")?
                .serve_at("/org/freedesktop/Notifications", server)?
                .build()
                .await
        });
        self.server = Some(conn.expect("the notification server is on the bus"));
    }

    /// The notifications shown so far.
    pub fn notifications(&self) -> Vec<Notification> {
        self.state.lock().shown.clone()
    }

    /// Waits until `n` notifications were shown or `timeout` passed; returns them.
    pub fn wait_for_notifications(&self, n: usize, timeout: Duration) -> Vec<Notification> {
        self.state.wait_until(timeout, |s| s.shown.len() >= n).shown.clone()
    }
}

impl Drop for FakeNotifications {
    fn drop(&mut self) {
        self.stop_server();
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
