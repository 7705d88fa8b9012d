//! `watchbell-tickets solve ID --resolve URL`: the ticket's incident is resolved at PagerDuty and
//! Opsgenie (their loopback fakes): the same key as the alerts of its callsite carried.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use watchbell_core::{Level, SinkOptions};
use watchbell_notify::NotifyLayer;
use watchbell_test::notify::{FakeOpsgenie, FakePagerDuty};

const KEY: &str = "R0UTINGkey0123456789abcdefABCDEF";

#[test]
fn solving_a_ticket_resolves_the_incident_its_alerts_opened() {
    let url = sqlite_url("cli-resolve");
    let prefix = "watchbell_";
    let pd = FakePagerDuty::start();
    let og = FakeOpsgenie::start("og-key");
    // The same error goes to the tickets and to both paging services.
    let (pd_layer, pd_guard) =
        NotifyLayer::pagerduty(KEY).api_base(pd.url()).pace(Duration::ZERO).build().expect("pagerduty layer");
    let (og_layer, og_guard) =
        NotifyLayer::opsgenie("og-key").api_base(og.url()).pace(Duration::ZERO).build().expect("opsgenie layer");
    let (t_layer, t_guard) = builder(&url, prefix).level(Level::ERROR).build().expect("ticketing layer");
    use tracing_subscriber::prelude::*;
    let subscriber = tracing_subscriber::registry().with(pd_layer).with(og_layer).with(t_layer);
    tracing::subscriber::with_default(subscriber, || tracing::error!(order = 7, "payment failed"));
    for g in [&pd_guard, &og_guard, &t_guard] {
        assert!(g.flush(Duration::from_secs(20)).is_complete());
    }
    let trigger = pd.wait_for(1, Duration::from_secs(10))[0].clone();
    let dedup = trigger["dedup_key"].as_str().unwrap().to_owned();
    assert_eq!(og.wait_for(1, Duration::from_secs(10))[0]["alias"], dedup.as_str());

    let pd_url = format!("pagerduty://{KEY}@{}", pd.http().addr());
    let og_url = format!("opsgenie://og-key@{}", og.http().addr());
    let out = Command::new(env!("CARGO_BIN_EXE_watchbell-tickets"))
        .args(["--db", &url, "--prefix", prefix, "solve", "1", "--resolve", &pd_url, "--resolve", &og_url])
        .env_remove("WATCHBELL_TICKETS_DB")
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("pagerduty incident {dedup} resolved")), "{stdout}");
    let events = pd.wait_for(2, Duration::from_secs(10));
    assert_eq!(
        (events[1]["event_action"].as_str(), events[1]["dedup_key"].as_str()),
        (Some("resolve"), Some(dedup.as_str()))
    );
    let alerts = og.wait_for(2, Duration::from_secs(10));
    assert_eq!(alerts[1], serde_json::json!({"action": "close", "alias": dedup}));

    // A service that resolves nothing, and a refused resolve: errors, exit status 1, no secret.
    for (bad, says) in [
        ("ntfy://127.0.0.1:9/topicSECRET".to_owned(), "has no incidents"),
        (format!("opsgenie://wrongSECRET@{}", og.http().addr()), "did not take the resolve"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_watchbell-tickets"))
            .args(["--db", &url, "--prefix", prefix, "solve", "1", "--resolve", &bad])
            .env_remove("WATCHBELL_TICKETS_DB")
            .output()
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "{bad}: {stderr}");
        assert!(!format!("{stderr}{}", String::from_utf8_lossy(&out.stdout)).contains("SECRET"), "{stderr}");
    }
}
