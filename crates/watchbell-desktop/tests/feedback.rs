//! zbus logs (with `tracing`) on the delivery's thread; with a global TRACE subscriber none of it
//! becomes a notification. Its own binary: it sets the global subscriber.

use std::time::Duration;

use tracing_subscriber::prelude::*;
use watchbell_core::{Level, SinkOptions};
use watchbell_desktop::DesktopLayer;
use watchbell_test::desktop::FakeNotifications;
use watchbell_test::feedback::OwnThreadEvents;

#[test]
fn the_d_bus_clients_own_events_at_trace_are_never_notified() {
    let desktop = FakeNotifications::start();
    let (layer, guard) =
        DesktopLayer::builder().bus_address(desktop.address()).level(Level::TRACE).no_rate_limit().build().unwrap();
    let own = OwnThreadEvents::new();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer).with(own.clone())).unwrap();
    tracing::error!("the one application record");
    assert!(guard.flush(Duration::from_secs(20)).is_complete());
    std::thread::sleep(Duration::from_millis(300));
    assert!(guard.flush(Duration::from_secs(20)).is_complete());
    assert!(own.count() > 0, "zbus logged on watchbell's threads");
    let shown = desktop.notifications();
    assert_eq!(shown.len(), 1, "{shown:#?}");
    assert_eq!(shown[0].body, "the one application record");
}
