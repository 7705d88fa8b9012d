//! The desktop layer against a real `dbus-daemon` with a notification server stand-in
//! (`FakeNotifications`): urgency by level, replacing instead of stacking, markup escaping,
//! a server that goes away and comes back, and no session bus at all.

use std::process::Command;
use std::time::{Duration, Instant};

use tracing_subscriber::prelude::*;
use watchbell_core::{Level, Record, Retry, SinkOptions};
use watchbell_desktop::DesktopLayer;
use watchbell_test::desktop::FakeNotifications;

const WAIT: Duration = Duration::from_secs(20);

fn fast_retry() -> Retry {
    Retry { initial: Duration::from_millis(20), max: Duration::from_millis(200), ..Retry::default() }
}

#[test]
fn alerts_are_notified_with_urgency_by_level_and_repeats_replace_the_previous_one() {
    let desktop = FakeNotifications::start();
    let (layer, guard) = DesktopLayer::builder()
        .bus_address(desktop.address())
        .app_name("billing")
        .level(Level::INFO)
        .no_rate_limit()
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for attempt in 0..3 {
            tracing::error!(attempt, "payment failed"); // one callsite, three alerts
        }
        tracing::warn!("disk almost full");
        tracing::info!("deployed");
    });
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    let shown = desktop.wait_for_notifications(5, WAIT);
    let errors: Vec<_> = shown.iter().filter(|n| n.body.starts_with("payment failed")).collect();
    assert_eq!(errors.len(), 3);
    assert_eq!(errors[0].replaces_id, 0);
    assert!(errors[1..].iter().all(|n| n.replaces_id == errors[0].id), "the same callsite replaces: {errors:?}");
    assert_eq!(errors[2].body, "payment failed\nattempt = 2");
    assert_eq!(errors[0].summary, "[billing] ERROR desktop");
    assert_eq!(errors[0].app_name, "billing");
    let urgency = |text: &str| shown.iter().find(|n| n.body.starts_with(text)).unwrap().urgency;
    assert_eq!((urgency("payment"), urgency("disk"), urgency("deployed")), (Some(2), Some(1), Some(0)));
    assert!(shown.iter().all(|n| n.expire_timeout == -1));
}

#[test]
fn markup_is_escaped_only_for_servers_that_render_it() {
    let desktop = FakeNotifications::start();
    let hostile = "<a href=\"https://evil.example\">click</a> & <b>bold</b>";
    let (handler, guard) =
        DesktopLayer::builder().bus_address(desktop.address()).no_rate_limit().build_handler().unwrap();
    handler.handle(Record::new(Level::ERROR, "app", hostile));
    assert!(guard.flush(WAIT).is_complete());
    let shown = desktop.wait_for_notifications(1, WAIT);
    assert_eq!(
        shown[0].body,
        "&lt;a href=&quot;https://evil.example&quot;&gt;click&lt;/a&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
    );

    let plain = FakeNotifications::start();
    plain.set_markup(false);
    let (handler, guard) =
        DesktopLayer::builder().bus_address(plain.address()).no_rate_limit().build_handler().unwrap();
    handler.handle(Record::new(Level::ERROR, "app", hostile));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(plain.wait_for_notifications(1, WAIT)[0].body, hostile, "shown as typed where nothing renders");
}

#[test]
fn long_and_multiline_texts_are_cut_with_the_marker() {
    let desktop = FakeNotifications::start();
    let (handler, guard) =
        DesktopLayer::builder().bus_address(desktop.address()).no_rate_limit().build_handler().unwrap();
    let target = format!("app::{}\nforged", "x".repeat(200));
    handler.handle(Record::new(Level::ERROR, target, "é".repeat(1 << 20)));
    assert!(guard.flush(WAIT).is_complete());
    let n = &desktop.wait_for_notifications(1, WAIT)[0];
    assert!(n.summary.chars().count() <= 100 && !n.summary.contains('\n'), "{:?}", n.summary);
    assert!(n.body.chars().count() <= 1000 && n.body.ends_with("…[truncated]"), "{}", n.body.len());
}

#[test]
fn a_notification_server_that_goes_away_is_retried_until_it_is_back() {
    let mut desktop = FakeNotifications::start();
    desktop.stop_server();
    let (handler, guard) = DesktopLayer::builder()
        .bus_address(desktop.address())
        .retry(fast_retry())
        .no_rate_limit()
        .build_handler()
        .unwrap();
    let t = Instant::now();
    handler.handle(Record::new(Level::ERROR, "app", "while nobody listens"));
    assert!(t.elapsed() < Duration::from_millis(100), "the caller never waits");
    let deadline = Instant::now() + WAIT;
    while guard.stats()[0].retried < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = &guard.stats()[0];
    assert!(s.retried >= 2, "{s}");
    assert!(s.last_error.as_deref().unwrap().contains("no notification server"), "{s}");
    desktop.start_server();
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(desktop.wait_for_notifications(1, WAIT)[0].body, "while nobody listens");
    assert_eq!(guard.stats()[0].failed, 0);
}

/// The child half of [`no_session_bus_is_a_clear_build_error`].
#[test]
fn child_without_a_session_bus() {
    if std::env::var_os("WATCHBELL_DESKTOP_CHILD").is_none() {
        return;
    }
    let e = DesktopLayer::builder().build_handler().err().expect("no bus");
    println!("BUILD ERROR: {e}");
}

#[test]
fn no_session_bus_is_a_clear_build_error() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_without_a_session_bus", "--nocapture"])
        .env("WATCHBELL_DESKTOP_CHILD", "1")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "BUILD ERROR: watchbell-desktop: bus_address: no D-Bus session bus: DBUS_SESSION_BUS_ADDRESS is not set"
        ),
        "{stdout}"
    );
    let e = DesktopLayer::builder().bus_address(" ").build_handler().err().expect("an empty address");
    assert_eq!(e.key, "bus_address");
}

#[test]
fn a_bus_that_is_gone_is_retried_and_counted_never_fatal() {
    let desktop = FakeNotifications::start();
    let address = desktop.address().to_owned();
    drop(desktop); // the daemon is gone: connecting fails
    let retry = Retry { max_attempts: 3, ..fast_retry() };
    let (handler, guard) =
        DesktopLayer::builder().bus_address(address).retry(retry).no_rate_limit().build_handler().unwrap();
    handler.handle(Record::new(Level::ERROR, "app", "lost"));
    assert!(guard.flush(WAIT).is_complete());
    let s = &guard.stats()[0];
    assert_eq!((s.failed, s.retried, s.panicked), (1, 2, 0), "{s}");
    assert!(s.last_error.as_deref().unwrap().contains("D-Bus session bus"), "{s}");
}
