//! A tiny application for the exit tests: installs a watchbell layer in the global default
//! subscriber (which is never dropped), logs, and returns from `main` with records queued.
//! Usage: exit_probe URL COUNT DROP_TIMEOUT_MS

use std::sync::Arc;
use std::time::Duration;

use tracing_subscriber::prelude::*;
use watchbell_core::{CaptureLayer, Delivery, Guard};
use watchbell_test::collector::NdjsonSink;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args[1].clone();
    let count: usize = args[2].parse().unwrap();
    let timeout = Duration::from_millis(args[3].parse().unwrap());
    let delivery =
        Delivery::builder("collector", NdjsonSink::with_timeout(url, Duration::from_secs(120))).spawn().unwrap();
    let handler = Arc::new(delivery);
    let _guard = Guard::new(handler.clone()).drop_timeout(timeout);
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(CaptureLayer::new(handler).with_level(tracing::Level::INFO)),
    )
    .unwrap();
    for i in 0..count {
        tracing::info!(i, "record {i}");
    }
    // Returning from main drops `_guard`: a bounded flush, then exit.
}
