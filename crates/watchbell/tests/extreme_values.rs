//! Values at the edges, given to every sink through the config: a pace, a timeout and a rate
//! limit window of 9,999,999,999,999,999,999 seconds. Nothing panics — not the caller, not a
//! worker — the first alert of each sink is delivered, and shutdown keeps its deadline.
mod common;

use std::time::{Duration, Instant};

use common::{Fakes, FakesExt, WAIT};
use tracing_subscriber::prelude::*;
use watchbell::Config;

const ABSURD: &str = "\"9999999999999999999s\"";

/// The every-sink TOML with an absurd pace and timeout in every sink table, and an absurd rate
/// limit window for all.
fn absurd_toml(fakes: &Fakes) -> String {
    let mut toml = fakes.toml().replace("timeout = \"5s\"\n", "");
    for table in ["[telegram]", "[sms]", "[mail]", "[http]", "[syslog]", "[file]", "[ticketing]"] {
        toml = toml.replace(&format!("{table}\n"), &format!("{table}\npace = {ABSURD}\ntimeout = {ABSURD}\n"));
    }
    toml.replace("[[slack.webhooks]]", &format!("[slack]\npace = {ABSURD}\ntimeout = {ABSURD}\n\n[[slack.webhooks]]"))
        + &format!("\n[rate_limit]\nlimit = 5\nper = {ABSURD}\n")
}

#[test]
fn absurd_durations_in_every_sink_never_panic_and_shutdown_keeps_its_deadline() {
    let fakes = Fakes::start("absurd");
    let toml = absurd_toml(&fakes);
    assert_eq!(toml.matches("pace = \"9999999999999999999s\"").count(), 8, "{toml}");
    let config = Config::from_toml_str(&toml).expect("absurd but valid values");
    let (layers, guard) = config.layers::<tracing_subscriber::Registry>().expect("every sink builds");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layers));
    tracing::dispatcher::with_default(&dispatch, || tracing::error!("first alert"));
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    fakes.assert_each_delivered("first alert");

    // A second alert waits for the pace (for ever) in every paced sink; shutdown gives up on
    // it at its deadline, counts it, and every worker stops.
    tracing::dispatcher::with_default(&dispatch, || tracing::error!("second alert"));
    let started = Instant::now();
    let flushed = guard.shutdown(Duration::from_millis(500));
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown took {:?}", started.elapsed());
    // A worker that died would never answer: the shutdown would time out.
    assert!(!flushed.timed_out, "{flushed:?} {:?}", guard.stats());
    for s in guard.stats() {
        assert_eq!(s.panicked, 0, "{s}");
    }
}
