//! Pushover, Opsgenie, Microsoft Teams, Google Chat, Mattermost and Rocket.Chat against fakes
//! that check requests as the real APIs do: request shapes, limits (multibyte cuts), escaping of
//! hostile text, rate-limit answers honoured, permanent errors not retried, secrets never
//! printed. (Their hostile-peer modes run in `notify.rs` with the other services.)

mod common;

use std::time::Duration;

use common::{quick, rec, stats, WAIT};

use watchbell_core::{Guard, Level, SinkOptions, Value};
use watchbell_notify::{from_url, resolve_record, NotifyLayer};
use watchbell_test::http::Reply;
use watchbell_test::notify::{
    FakeGoogleChat, FakeMattermost, FakeOpsgenie, FakePushover, FakeRocketChat, FakeTeams, GOOGLE_CHAT_TOKEN, TEAMS_SIG,
};

const TOKEN: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
const USER: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";
const GENIE: &str = "0a1b2c3d-aaaa-bbbb-cccc-0123456789ab";

/// Everything a user could see of a layer: its stats, and its builder's `Debug`.
fn shown(g: &Guard, debug: &str) -> String {
    format!("{:?} {debug}", g.stats())
}

const HOSTILE: &str = "@channel @all @here <users/all> <!channel> **bold** _it_ `code` [x](http://evil) <b>&amp;</b>";

#[test]
fn pushover_sends_priority_by_level_emergency_retry_and_expire_and_cuts_to_1024_chars() {
    let fake = FakePushover::start(TOKEN, USER);
    let b = quick(NotifyLayer::pushover(TOKEN, USER).api_base(fake.url()))
        .emergency(Duration::from_secs(5), Duration::from_secs(86_400))
        .click("https://tickets.example.com/t/1")
        .level(Level::INFO);
    let (h, guard) = b.build_handler().unwrap();
    h.handle(rec(Level::ERROR, "payment failed"));
    h.handle(rec(Level::WARN, "slow"));
    h.handle(rec(Level::INFO, &"€".repeat(5000)));
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    let got = fake.wait_for(3, WAIT);
    assert_eq!(fake.errors(), Vec::<String>::new());
    assert_eq!(got[0]["title"], "[shop] ERROR shop::pay");
    assert_eq!(got[0]["message"], "payment failed\ninvoice = 42\nat src/pay.rs:7");
    // Emergency: retry raised to Pushover's 30 s minimum, expire lowered to its 3 h maximum.
    assert_eq!(
        (got[0]["priority"].as_str(), got[0]["retry"].as_str(), got[0]["expire"].as_str()),
        (Some("2"), Some("30"), Some("10800"))
    );
    assert_eq!(got[0]["url"], "https://tickets.example.com/t/1");
    assert_eq!((got[1]["priority"].as_str(), got[1].get("retry")), (Some("0"), None));
    assert_eq!(got[2]["priority"], "-1");
    let m = got[2]["message"].as_str().unwrap();
    assert!(m.chars().count() <= 1024 && m.starts_with("€€") && m.ends_with("…[truncated]"), "{}", m.chars().count());
}

#[test]
fn pushover_quota_429_waits_for_the_reset_header_and_bad_keys_are_permanent_and_secret() {
    let fake = FakePushover::start(TOKEN, USER);
    let reset = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 2;
    fake.http().push(
        Reply::json(429, r#"{"status":0,"errors":["application has exceeded its message quota"]}"#)
            .header("X-Limit-App-Reset", &reset.to_string()),
    );
    let (h, guard) = quick(NotifyLayer::pushover(TOKEN, USER).api_base(fake.url())).build_handler().unwrap();
    h.handle(rec(Level::ERROR, "after the quota"));
    assert!(guard.flush(WAIT).is_complete());
    let reqs = fake.http().requests();
    assert_eq!(reqs.len(), 2);
    // The retry waited for the reset time the header named (a whole second, so it is compared
    // with the clock, not with the first request's time, which a loaded machine may delay).
    let second_at = std::time::SystemTime::now() - reqs[1].received_at.elapsed();
    let reset_at = std::time::UNIX_EPOCH + Duration::from_secs(reset);
    assert!(
        second_at + Duration::from_millis(50) >= reset_at,
        "retried at {second_at:?}, before X-Limit-App-Reset {reset_at:?}"
    );
    assert_eq!((stats(&guard).delivered, stats(&guard).retried), (1, 1));

    // A key the service does not know: 400, not retried, and neither key ever shown — although
    // the peer quotes the whole request back.
    let other = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    let b = quick(NotifyLayer::pushover(other, USER).api_base(fake.url()));
    let debug = format!("{b:?}");
    let (h, guard) = b.build_handler().unwrap();
    fake.http().push(Reply::echo(400));
    h.handle(rec(Level::ERROR, "refused"));
    assert!(guard.flush(WAIT).is_complete());
    let s = stats(&guard);
    assert_eq!((s.failed, s.retried), (1, 0), "{s}");
    let all = shown(&guard, &debug);
    assert!(!all.contains(other) && !all.contains(USER), "{all}");
}

#[test]
fn opsgenie_opens_one_alert_per_callsite_within_its_limits_and_closes_it() {
    let fake = FakeOpsgenie::start(GENIE);
    let (h, guard) =
        quick(NotifyLayer::opsgenie(GENIE).api_base(fake.url())).level(Level::WARN).build_handler().unwrap();
    let mut big = rec(Level::ERROR, &format!("line one\nline two {}", "日本".repeat(20_000)));
    for i in 0..200 {
        big.fields.set(format!("field_{i}"), Value::Str("v".repeat(500)));
    }
    h.handle(big.clone());
    h.handle(big);
    h.handle(rec(Level::WARN, "slow"));
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    let got = fake.wait_for(3, WAIT);
    assert_eq!(fake.errors(), Vec::<String>::new(), "every request within Opsgenie's limits");
    assert_eq!(got[0]["alias"], got[1]["alias"], "one callsite, one alert");
    assert_ne!(got[0]["alias"], got[2]["alias"]);
    let m = got[0]["message"].as_str().unwrap();
    assert!(m.starts_with("line one line two 日本") && m.chars().count() == 130, "{m}");
    assert!(got[0]["description"].as_str().unwrap().chars().count() <= 15_000);
    assert_eq!((got[0]["priority"].as_str(), got[2]["priority"].as_str()), (Some("P2"), Some("P3")));
    assert_eq!((got[0]["entity"].as_str(), got[0]["source"].as_str()), (Some("shop::pay"), Some("web-1")));
    assert_eq!(got[2]["details"]["invoice"], "42");
    assert_eq!(got[2]["details"]["location"], "src/pay.rs:7");

    let alias = got[0]["alias"].as_str().unwrap().to_owned();
    h.handle(resolve_record(&alias));
    h.handle(resolve_record("a key/with ?odd chars"));
    assert!(guard.flush(WAIT).is_complete());
    let got = fake.wait_for(5, WAIT);
    assert_eq!(got[3], serde_json::json!({"action": "close", "alias": alias}));
    assert_eq!(got[4]["alias"], "a key/with ?odd chars", "the alias is escaped in the path");
}

#[test]
fn opsgenie_bad_key_is_permanent_and_secret_throttling_is_retried_and_a_closed_alias_is_done() {
    let fake = FakeOpsgenie::start(GENIE);
    let wrong = "ffffffff-1111-2222-3333-SECRETSECRET";
    let b = quick(NotifyLayer::opsgenie(wrong).api_base(fake.url()));
    let debug = format!("{b:?}");
    let (h, guard) = b.build_handler().unwrap();
    h.handle(rec(Level::ERROR, "refused"));
    assert!(guard.flush(WAIT).is_complete());
    let s = stats(&guard);
    assert_eq!((s.failed, s.retried), (1, 0), "{s}");
    assert!(s.last_error.as_deref().unwrap().contains("401"), "{s}");
    assert!(!shown(&guard, &debug).contains("SECRETSECRET"));

    let fake = FakeOpsgenie::start(GENIE);
    let (h, guard) = quick(NotifyLayer::opsgenie(GENIE).api_base(fake.url())).build_handler().unwrap();
    fake.http().push(Reply::json(429, r#"{"message":"Rate limit exceeded"}"#).header("Retry-After", "1"));
    h.handle(rec(Level::ERROR, "throttled once"));
    assert!(guard.flush(WAIT).is_complete());
    fake.http().push(Reply::json(404, r#"{"message":"Alert does not exist"}"#));
    h.handle(resolve_record("0000000000000000"));
    assert!(guard.flush(WAIT).is_complete());
    let reqs = fake.http().requests();
    let gap = reqs[1].received_at.duration_since(reqs[0].received_at);
    assert!(gap >= Duration::from_millis(900), "retried after {gap:?}, before Retry-After");
    let s = stats(&guard);
    assert_eq!((s.delivered, s.retried, s.failed), (2, 1, 0), "{s}");
}

#[test]
fn teams_cards_show_hostile_text_as_typed_and_stay_under_28_kb() {
    let fake = FakeTeams::start();
    let (h, guard) = quick(NotifyLayer::teams(fake.url())).build_handler().unwrap();
    h.handle(rec(Level::ERROR, HOSTILE));
    let mut big = rec(Level::WARN, &"\u{1}ü".repeat(100_000));
    big.fields.set("blob", Value::Str("\"".repeat(50_000)));
    h.handle(big);
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    let got = fake.wait_for(2, WAIT);
    assert_eq!(fake.errors(), Vec::<String>::new(), "every request within Teams' 28 KB");
    let card = &got[0]["attachments"][0]["content"];
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["body"][0]["inlines"][0]["text"], "[shop] ERROR shop::pay");
    assert_eq!(card["body"][0]["inlines"][0]["color"], "Attention");
    assert_eq!(card["body"][1]["type"], "RichTextBlock");
    assert_eq!(card["body"][1]["inlines"][0]["type"], "TextRun", "a text run: no markdown, no mentions");
    assert_eq!(card["body"][1]["inlines"][0]["text"], HOSTILE);
    assert_eq!(card["body"][2]["inlines"][0]["text"], "invoice = 42");
    let big = got[1]["attachments"][0]["content"]["body"][1]["inlines"][0]["text"].as_str().unwrap();
    assert!(big.starts_with("\u{1}ü") && big.ends_with("…[truncated]"));
}

#[test]
fn teams_throttling_is_retried_and_a_bad_signature_is_permanent_and_secret() {
    let fake = FakeTeams::start();
    fake.http()
        .push(Reply::json(429, r#"{"error":{"code":"WorkflowTriggeredTooFrequently"}}"#).header("Retry-After", "1"));
    let (h, guard) = quick(NotifyLayer::teams(fake.url())).build_handler().unwrap();
    h.handle(rec(Level::ERROR, "throttled"));
    assert!(guard.flush(WAIT).is_complete());
    let reqs = fake.http().requests();
    assert!(reqs[1].received_at.duration_since(reqs[0].received_at) >= Duration::from_millis(900));
    assert_eq!(stats(&guard).delivered, 1);

    let url = fake.url().replace(TEAMS_SIG, "WRONGsigSECRET");
    let b = quick(NotifyLayer::teams(url));
    let debug = format!("{b:?}");
    let (h, guard) = b.build_handler().unwrap();
    h.handle(rec(Level::ERROR, "refused"));
    assert!(guard.flush(WAIT).is_complete());
    let s = stats(&guard);
    assert_eq!((s.failed, s.retried), (1, 0), "{s}");
    assert!(!shown(&guard, &debug).contains("WRONGsigSECRET"));
}

#[test]
fn google_chat_threads_by_callsite_escapes_card_html_and_disarms_mentions() {
    let fake = FakeGoogleChat::start();
    let (h, guard) = quick(NotifyLayer::google_chat(fake.url())).build_handler().unwrap();
    let hostile = rec(Level::ERROR, HOSTILE);
    h.handle(hostile.clone());
    h.handle(hostile);
    h.handle(rec(Level::WARN, &"<&>".repeat(50_000)));
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    let got = fake.wait_for(3, WAIT);
    assert_eq!(fake.errors(), Vec::<String>::new(), "every request within 32,000 bytes");
    assert_eq!(got[0]["_threadKey"], got[1]["_threadKey"], "one callsite, one thread");
    assert_ne!(got[0]["_threadKey"], got[2]["_threadKey"]);
    let card = &got[0]["cardsV2"][0]["card"];
    let text = card["sections"][0]["widgets"][0]["textParagraph"]["text"].as_str().unwrap();
    assert!(!text.contains('<') && text.contains("&lt;users/all&gt;") && text.contains("&lt;b&gt;&amp;amp;"), "{text}");
    assert_eq!(card["sections"][0]["widgets"][1]["decoratedText"]["topLabel"], "invoice");
    let head = got[0]["text"].as_str().unwrap();
    assert_eq!(head, "[shop] ERROR shop::pay");
    let big = got[2]["cardsV2"][0]["card"]["sections"][0]["widgets"][0]["textParagraph"]["text"].as_str().unwrap();
    assert!(big.starts_with("&lt;&amp;&gt;") && big.ends_with("…[truncated]"));
}

#[test]
fn google_chat_a_revoked_token_is_permanent_and_never_shown_and_429_is_retried() {
    let fake = FakeGoogleChat::start();
    fake.http().push(Reply::json(429, r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED"}}"#));
    let (h, guard) = quick(NotifyLayer::google_chat(fake.url())).thread_by_callsite(false).build_handler().unwrap();
    h.handle(rec(Level::ERROR, "throttled"));
    assert!(guard.flush(WAIT).is_complete());
    let got = fake.wait_for(1, WAIT);
    assert_eq!(got[0]["_threadKey"], serde_json::Value::Null);
    assert_eq!((stats(&guard).retried, stats(&guard).delivered), (1, 1));

    let b = quick(NotifyLayer::google_chat(fake.url().replace(GOOGLE_CHAT_TOKEN, "REVOKEDtokenSECRET")));
    let debug = format!("{b:?}");
    let (h, guard) = b.build_handler().unwrap();
    h.handle(rec(Level::ERROR, "refused"));
    assert!(guard.flush(WAIT).is_complete());
    let s = stats(&guard);
    assert_eq!((s.failed, s.retried), (1, 0), "{s}");
    let all = shown(&guard, &debug);
    assert!(!all.contains("REVOKEDtokenSECRET") && !all.contains("AIzaFakeKey"), "{all}");
}

#[test]
fn mattermost_and_rocketchat_get_escaped_slack_attachments_within_their_limits() {
    let mm = FakeMattermost::start();
    let rc = FakeRocketChat::start();
    let (h1, g1) = quick(NotifyLayer::mattermost(mm.url())).channel("alerts").build_handler().unwrap();
    let (h2, g2) = quick(NotifyLayer::rocketchat(rc.url())).username("shop-bot").build_handler().unwrap();
    for h in [&h1, &h2] {
        h.handle(rec(Level::ERROR, HOSTILE));
        h.handle(rec(Level::WARN, &"ß".repeat(40_000)));
    }
    assert!(g1.flush(WAIT).is_complete() && g2.flush(WAIT).is_complete());
    let (m, r) = (mm.wait_for(2, WAIT), rc.wait_for(2, WAIT));
    assert_eq!((mm.errors(), rc.errors()), (vec![], vec![]), "within both services' limits");
    assert_eq!((m[0]["channel"].as_str(), m[0]["username"].as_str()), (Some("alerts"), Some("shop")));
    assert_eq!(r[0]["alias"], "shop-bot");
    for got in [&m, &r] {
        let a = &got[0]["attachments"][0];
        assert_eq!(a["color"], "#D03030");
        let t = a["text"].as_str().unwrap();
        for mention in ["@channel", "@all", "@here"] {
            assert!(!t.contains(mention), "{mention} would ping: {t}");
        }
        assert!(t.contains("\\*\\*bold\\*\\*") && t.contains("\\[x\\](http://evil)"), "{t}");
        assert_eq!(a["fields"][0], serde_json::json!({"title": "invoice", "value": "42", "short": true}));
        assert_eq!(got[0]["text"], "\\[shop\\] ERROR shop::pay");
    }
    let cut = |v: &serde_json::Value| v["attachments"][0]["text"].as_str().unwrap().chars().count();
    assert!(cut(&m[1]) <= 16_383 && cut(&r[1]) <= 5_000, "{} {}", cut(&m[1]), cut(&r[1]));
    assert!(r[1]["attachments"][0]["text"].as_str().unwrap().ends_with("…[truncated]"));
}

#[test]
fn a_wrong_mattermost_or_rocketchat_hook_is_permanent_and_secret() {
    let mm = FakeMattermost::start();
    let rc = FakeRocketChat::start();
    let urls = [
        (NotifyLayer::mattermost(mm.url().replace("fakekey", "GONEsecret")), "GONEsecret"),
        (NotifyLayer::rocketchat(rc.url().replace("fakeRocketToken", "GONEtoken")), "GONEtoken"),
    ];
    for (b, secret) in urls {
        let b = quick(b);
        let debug = format!("{b:?}");
        let (h, guard) = b.build_handler().unwrap();
        h.handle(rec(Level::ERROR, "nobody"));
        assert!(guard.flush(WAIT).is_complete());
        let s = stats(&guard);
        assert_eq!((s.failed, s.retried), (1, 0), "{s}");
        assert!(!shown(&guard, &debug).contains(secret));
    }
}

#[test]
fn a_resolve_record_is_ignored_by_the_chat_and_push_services() {
    let fake = FakeMattermost::start();
    let (h, guard) = quick(NotifyLayer::mattermost(fake.url())).build_handler().unwrap();
    h.handle(resolve_record("0123"));
    h.handle(rec(Level::ERROR, "real"));
    assert!(guard.flush(WAIT).is_complete());
    let got = fake.wait_for(1, WAIT);
    assert_eq!(fake.http().requests().len(), 1, "{got:?}");
}

#[test]
fn every_new_url_form_builds_the_service_it_names_and_keeps_secrets_out_of_errors() {
    let pushover = FakePushover::start(TOKEN, USER);
    let host = pushover.url().trim_start_matches("http://").to_owned();
    let (h, guard) = from_url(&format!("pover://{USER}@{TOKEN}/{host}?level=warn"))
        .unwrap()
        .pace(Duration::ZERO)
        .build_handler()
        .unwrap();
    h.handle(rec(Level::WARN, "via url"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(pushover.wait_for(1, WAIT)[0]["message"].as_str().map(|m| m.starts_with("via url")), Some(true));

    let og = FakeOpsgenie::start(GENIE);
    let host = og.url().trim_start_matches("http://").to_owned();
    let (h, guard) =
        from_url(&format!("opsgenie://{GENIE}@{host}")).unwrap().pace(Duration::ZERO).build_handler().unwrap();
    h.handle(rec(Level::ERROR, "via url"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(og.wait_for(1, WAIT)[0]["message"], "via url");

    let mm = FakeMattermost::start();
    let host = mm.url().trim_start_matches("http://").replace("/hooks", "");
    let (h, guard) =
        from_url(&format!("mmost://{host}?channel=ops")).unwrap().pace(Duration::ZERO).build_handler().unwrap();
    h.handle(rec(Level::ERROR, "via url"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(mm.wait_for(1, WAIT)[0]["channel"], "ops");

    let rc = FakeRocketChat::start();
    let host = rc.url().trim_start_matches("http://").replace("/hooks", "");
    let (h, guard) = from_url(&format!("rocket://{host}")).unwrap().pace(Duration::ZERO).build_handler().unwrap();
    h.handle(rec(Level::ERROR, "via url"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(rc.wait_for(1, WAIT).len(), 1);

    let teams = FakeTeams::start();
    let (h, guard) = from_url(&teams.url()).unwrap().pace(Duration::ZERO).build_handler().unwrap();
    h.handle(rec(Level::ERROR, "via url"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(teams.wait_for(1, WAIT).len(), 1, "a workflow URL is Teams, its query kept");

    for bad in [
        format!("pover://{USER}"),
        "pover://short@alsoshort".to_owned(),
        "gchat://space/only".to_owned(),
        "rockets://host/onlyid".to_owned(),
        format!("opsgenie://{GENIE}?region=mars"),
    ] {
        let e = match from_url(&bad).and_then(|b| b.build_handler()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{bad} built"),
        };
        assert!(!e.contains(USER) && !e.contains(GENIE), "{e}");
    }
}

#[test]
fn a_record_the_service_refuses_fails_alone_and_the_records_queued_with_it_are_sent() {
    let fake = FakeMattermost::start();
    // The first request is answered at once; the next three queue behind the pace, and the
    // service refuses the first of them for good. ("first" is sent alone: were it in one batch
    // with "refused", the notice would follow that batch, before "second".)
    fake.http().push(Reply::text(200, "ok"));
    fake.http().push(Reply::json(400, r#"{"id":"api.post.create_post.invalid","status_code":400}"#));
    let b = quick(NotifyLayer::mattermost(fake.url())).pace(Duration::from_millis(300));
    let (h, guard) = b.build_handler().unwrap();
    h.handle(rec(Level::ERROR, "first"));
    assert_eq!(fake.http().wait_for_requests(1, WAIT).len(), 1);
    for m in ["refused", "second", "third"] {
        h.handle(rec(Level::ERROR, m));
    }
    assert!(guard.flush(WAIT).is_complete());
    let got = fake.wait_for(3, WAIT);
    let texts: Vec<&str> = got.iter().map(|j| j["attachments"][0]["text"].as_str().unwrap()).collect();
    assert_eq!(texts[..2], ["second", "third"]);
    assert!(texts[2].contains("1 records could not be delivered by mattermost"), "the notice: {texts:?}");
    let s = stats(&guard);
    assert_eq!((s.failed, s.retried), (1, 0), "{s}");
}
