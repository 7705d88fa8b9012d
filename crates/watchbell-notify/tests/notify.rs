//! ntfy, Discord and PagerDuty against fakes that check requests as the real APIs do: request
//! shapes, limits, escaping, rate-limit answers, permanent errors, secrets, hostile peers.

mod common;

use std::time::Duration;

use common::{quick, rec, stats, WAIT};

use tracing_subscriber::prelude::*;
use watchbell_core::{Level, Retry, SinkOptions, Value};
use watchbell_notify::{resolve_record, NotifyBuilder, NotifyLayer};
use watchbell_test::hostile::Hostile;
use watchbell_test::http::Reply;
use watchbell_test::notify::{
    FakeDiscord, FakeGoogleChat, FakeMattermost, FakeNtfy, FakeOpsgenie, FakePagerDuty, FakePushover, FakeRocketChat,
    FakeTeams,
};

const KEY: &str = "R0UTINGkey0123456789abcdefABCDEF";

#[test]
fn ntfy_publishes_json_with_priority_by_level_and_a_token() {
    let fake = FakeNtfy::start(Some("tk_secret123"));
    let (h, guard) = quick(NotifyLayer::ntfy(fake.url(), "shop-alerts").token("tk_secret123")).build_handler().unwrap();
    h.handle(rec(Level::ERROR, "payment failed"));
    h.handle(rec(Level::WARN, "slow"));
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    let got = fake.wait_for(2, WAIT);
    assert_eq!(fake.errors(), Vec::<String>::new());
    assert_eq!(got[0]["topic"], "shop-alerts");
    assert_eq!(got[0]["title"], "[shop] ERROR shop::pay");
    assert_eq!(got[0]["message"], "payment failed\ninvoice = 42\nat src/pay.rs:7");
    assert_eq!((got[0]["priority"].as_u64(), got[1]["priority"].as_u64()), (Some(5), Some(4)));
    assert_eq!(got[0]["tags"][0], "rotating_light");
}

#[test]
fn ntfy_cuts_a_huge_multibyte_message_and_a_wrong_token_is_permanent_and_secret() {
    let fake = FakeNtfy::start(Some("tk_right"));
    let b = quick(NotifyLayer::ntfy(fake.url(), "shop-alerts").token("tk_wrong_SECRET"));
    let debug = format!("{b:?}");
    let (h, guard) = b.build_handler().unwrap();
    h.handle(rec(Level::ERROR, "refused"));
    assert!(guard.flush(WAIT).is_complete());
    let s = stats(&guard);
    assert_eq!((s.failed, s.retried), (1, 0), "{s}");
    let shown = format!("{s} {:?} {debug}", guard.stats());
    assert!(!shown.contains("tk_wrong_SECRET") && !shown.contains("shop-alerts"), "{shown}");

    let fake = FakeNtfy::start(None);
    let (h, guard) = quick(NotifyLayer::ntfy(fake.url(), "t")).build_handler().unwrap();
    h.handle(rec(Level::ERROR, &"€".repeat(1 << 20)));
    assert!(guard.flush(WAIT).is_complete());
    let m = fake.wait_for(1, WAIT)[0]["message"].as_str().unwrap().to_owned();
    assert!(m.len() <= 4000 && m.starts_with("€€") && m.ends_with("…[truncated]"), "{}", m.len());
}

#[test]
fn discord_embeds_stay_within_every_limit_escape_markdown_and_ping_nobody() {
    let fake = FakeDiscord::start();
    let (h, guard) = quick(NotifyLayer::discord(fake.url())).build_handler().unwrap();
    let mut r = rec(Level::ERROR, &format!("@everyone **urgent** <@123> `x` {}", "é".repeat(20_000)));
    for i in 0..40 {
        r.fields.set(format!("field_{i}"), Value::Str("v".repeat(2000)));
    }
    h.handle(r);
    h.handle(rec(Level::WARN, "short"));
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    let got = fake.wait_for(2, WAIT);
    assert_eq!(fake.errors(), Vec::<String>::new(), "every request within Discord's limits");
    let e = &got[0]["embeds"][0];
    let d = e["description"].as_str().unwrap();
    assert!(d.starts_with("@\u{200b}everyone \\*\\*urgent\\*\\* <@\u{200b}123\\> \\`x\\`"), "{d:.80}");
    assert!(d.ends_with("…[truncated]"));
    assert_eq!(got[0]["allowed_mentions"]["parse"], serde_json::json!([]));
    assert_eq!(e["color"], 0xD0_30_30);
    assert_eq!(e["footer"]["text"], "src/pay\\.rs:7".replace("\\.", "."));
    assert_eq!(got[0]["username"], "shop");
}

#[test]
fn discord_429_waits_for_retry_after_from_the_body() {
    let fake = FakeDiscord::start();
    fake.http()
        .push(Reply::json(429, r#"{"message": "You are being rate limited.", "retry_after": 0.7, "global": false}"#));
    let (h, guard) = quick(NotifyLayer::discord(fake.url())).build_handler().unwrap();
    h.handle(rec(Level::ERROR, "after the limit"));
    assert!(guard.flush(WAIT).is_complete());
    let reqs = fake.http().requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].received_at.duration_since(reqs[0].received_at);
    assert!(gap >= Duration::from_millis(700), "retried after {gap:?}, before the 0.7 s Discord asked for");
    assert_eq!(stats(&guard).delivered, 1);
}

#[test]
fn a_discord_webhook_that_is_gone_is_permanent_and_its_token_never_printed() {
    let fake = FakeDiscord::start();
    let url = fake.url().replace("fake-webhook-token", "SECRETtoken987");
    let b = quick(NotifyLayer::discord(url));
    let debug = format!("{b:?}");
    let (h, guard) = b.build_handler().unwrap();
    h.handle(rec(Level::ERROR, "nobody"));
    assert!(guard.flush(WAIT).is_complete());
    let s = stats(&guard);
    assert_eq!((s.failed, s.retried), (1, 0), "{s}");
    assert!(s.last_error.as_deref().unwrap().contains("404"));
    assert!(!format!("{:?} {debug}", guard.stats()).contains("SECRETtoken987"));
}

#[test]
fn pagerduty_triggers_one_incident_per_callsite_and_resolves_it() {
    let fake = FakePagerDuty::start();
    let (layer, guard) = quick(NotifyLayer::pagerduty(KEY).api_base(fake.url())).level(Level::WARN).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for _ in 0..3 {
            tracing::error!(invoice = 42, "payment failed"); // one callsite: one dedup_key
        }
        tracing::warn!("disk almost full");
    });
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    let got = fake.wait_for(4, WAIT);
    assert_eq!(fake.errors(), Vec::<String>::new());
    let keys: Vec<&str> = got.iter().map(|e| e["dedup_key"].as_str().unwrap()).collect();
    assert!(keys[0] == keys[1] && keys[1] == keys[2] && keys[2] != keys[3], "{keys:?}");
    let p = &got[0]["payload"];
    assert_eq!(
        (p["summary"].as_str(), p["severity"].as_str(), p["source"].as_str()),
        (Some("payment failed"), Some("error"), Some("web-1"))
    );
    assert_eq!(p["custom_details"]["invoice"], "42");
    assert_eq!(got[3]["payload"]["severity"], "warning");
    assert_eq!(got[0]["event_action"], "trigger");

    let (h, guard) = quick(NotifyLayer::pagerduty(KEY).api_base(fake.url())).build_handler().unwrap();
    h.handle(resolve_record(keys[0]));
    assert!(guard.flush(WAIT).is_complete());
    let last = fake.wait_for(5, WAIT).pop().unwrap();
    assert_eq!((last["event_action"].as_str(), last["dedup_key"].as_str()), (Some("resolve"), Some(keys[0])));
}

#[test]
fn pagerduty_invalid_events_are_permanent_throttling_is_retried_and_the_key_is_secret() {
    let fake = FakePagerDuty::start();
    fake.http().push(Reply::json(
        429,
        r#"{"status":"throttle event","message":"Requests for this service are arriving too quickly."}"#,
    ));
    let b = quick(NotifyLayer::pagerduty(KEY).api_base(fake.url()));
    let debug = format!("{b:?}");
    let (h, guard) = b.build_handler().unwrap();
    h.handle(rec(Level::ERROR, &"x".repeat(5000)));
    assert!(guard.flush(WAIT).is_complete());
    let got = fake.wait_for(1, WAIT);
    assert_eq!(got[0]["payload"]["summary"].as_str().unwrap().chars().count(), 1024);
    assert_eq!((stats(&guard).retried, stats(&guard).delivered), (1, 1));

    fake.http().push(Reply::echo(400));
    h.handle(rec(Level::ERROR, "refused"));
    assert!(guard.flush(WAIT).is_complete());
    let s = stats(&guard);
    assert_eq!(s.failed, 1, "{s}");
    let shown = format!("{s} {:?} {debug}", guard.stats());
    assert!(!shown.contains(KEY) && !shown.contains("R0UTINGkey"), "{shown}");
}

#[test]
fn bad_configurations_are_build_errors() {
    let key = |b: NotifyBuilder| b.build_handler().err().expect("an error").key;
    assert_eq!(key(NotifyLayer::ntfy("https://ntfy.sh", "bad topic!")), "topic");
    assert_eq!(key(NotifyLayer::ntfy("ftp://ntfy.sh", "ok")), "server");
    assert_eq!(key(NotifyLayer::pagerduty("short")), "routing_key");
    assert_eq!(key(NotifyLayer::discord("http://discord.example/api/webhooks/1/SECRET")), "webhook");
    let e = NotifyLayer::discord("http://discord.example/api/webhooks/1/SECRET").build_handler().err().unwrap();
    assert!(!e.to_string().contains("SECRET"), "{e}");
}

/// Every service against every hostile-peer mode: the worker survives, the outcome is
/// counted, and the next record is delivered. The services run side by side.
#[test]
fn every_service_survives_every_hostile_peer_mode() {
    fn run(name: &str, b: NotifyBuilder, http: &watchbell_test::http::FakeHttp, accepted: &dyn Fn() -> usize) {
        let fast = Retry {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(100),
            max_server_delay: Duration::from_millis(100),
            ..Retry::default()
        };
        let (h, guard) = quick(b).retry(fast).timeout(Duration::from_millis(500)).build_handler().unwrap();
        for &mode in Hostile::ALL {
            let before = (accepted(), stats(&guard));
            http.push(mode.reply());
            h.handle(rec(Level::ERROR, &format!("first {}", mode.name())));
            assert!(guard.flush(WAIT).is_complete(), "{name} / {}", mode.name());
            h.handle(rec(Level::ERROR, &format!("next {}", mode.name())));
            assert!(guard.flush(WAIT).is_complete(), "{name} / {}", mode.name());
            let s = stats(&guard);
            assert!(accepted() > before.0, "{name} / {}: the next record was not delivered: {s}", mode.name());
            assert_eq!(s.panicked, 0);
            let counted = (s.delivered + s.failed) - (before.1.delivered + before.1.failed);
            assert_eq!(counted, 2, "{name} / {}: {s}", mode.name());
        }
    }
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let f = FakeNtfy::start(None);
            run("ntfy", NotifyLayer::ntfy(f.url(), "t"), f.http(), &|| f.accepted().len());
        });
        scope.spawn(|| {
            let f = FakeDiscord::start();
            run("discord", NotifyLayer::discord(f.url()), f.http(), &|| f.accepted().len());
        });
        scope.spawn(|| {
            let f = FakePagerDuty::start();
            run("pagerduty", NotifyLayer::pagerduty(KEY).api_base(f.url()), f.http(), &|| f.accepted().len());
        });
        scope.spawn(|| {
            let (t, u) = ("a".repeat(30), "u".repeat(30));
            let f = FakePushover::start(&t, &u);
            run("pushover", NotifyLayer::pushover(t, u).api_base(f.url()), f.http(), &|| f.accepted().len());
        });
        scope.spawn(|| {
            let f = FakeOpsgenie::start("og-key-1");
            run("opsgenie", NotifyLayer::opsgenie("og-key-1").api_base(f.url()), f.http(), &|| f.accepted().len());
        });
        scope.spawn(|| {
            let f = FakeTeams::start();
            run("teams", NotifyLayer::teams(f.url()), f.http(), &|| f.accepted().len());
        });
        scope.spawn(|| {
            let f = FakeGoogleChat::start();
            run("google-chat", NotifyLayer::google_chat(f.url()), f.http(), &|| f.accepted().len());
        });
        scope.spawn(|| {
            let f = FakeMattermost::start();
            run("mattermost", NotifyLayer::mattermost(f.url()), f.http(), &|| f.accepted().len());
        });
        scope.spawn(|| {
            let f = FakeRocketChat::start();
            run("rocketchat", NotifyLayer::rocketchat(f.url()), f.http(), &|| f.accepted().len());
        });
    });
}
