//! The SMS layer against the loopback fakes of Twilio and Exotel.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::Dispatch;
use tracing_subscriber::prelude::*;
use tracing_subscriber::Registry;
use watchbell_core::http::HttpClient;
use watchbell_core::{Batch, BatchReason, Guard, Level, Outcome, Record, Retry, SinkOptions, Stats};
use watchbell_sms::encoding::Encoding;
use watchbell_sms::{Exotel, SmsBuilder, SmsLayer, SmsMessage, SmsProvider, Twilio};
use watchbell_test::http::Reply;
use watchbell_test::sms::{ExotelReply, FakeExotel, FakeTwilio, TwilioReply};

const WAIT: Duration = Duration::from_secs(20);
const US: &str = "+15558675310";
const US2: &str = "+15558675311";
const IN: &str = "+919876543210";
const TWILIO_FROM: &str = "+15017122661";

fn twilio(fake: &FakeTwilio) -> Twilio {
    Twilio::new(fake.account_sid(), fake.auth_token()).from(TWILIO_FROM).api_base(fake.api_base())
}

fn exotel(fake: &FakeExotel) -> Exotel {
    Exotel::new(fake.sid(), fake.api_key(), fake.api_token()).from("EXOTEL").api_base(fake.api_base())
}

/// A builder without pace, rate limit or cap (each test adds what it checks).
fn quick() -> SmsBuilder {
    SmsLayer::builder().app("shop").pace(Duration::ZERO).no_rate_limit().no_cap()
}

fn start(b: SmsBuilder) -> (Dispatch, Guard) {
    let (layer, guard) = b.build::<Registry>().expect("valid configuration");
    (Dispatch::new(tracing_subscriber::registry().with(layer)), guard)
}

fn log(d: &Dispatch, f: impl FnOnce()) {
    tracing::dispatcher::with_default(d, f)
}

fn stats(guard: &Guard, prefix: &str) -> Vec<Stats> {
    guard.stats().into_iter().filter(|s| s.name.starts_with(prefix)).collect()
}

fn one_stats(guard: &Guard, prefix: &str) -> Stats {
    let s = stats(guard, prefix);
    assert_eq!(s.len(), 1, "{s:?}");
    s.into_iter().next().unwrap()
}

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() { char::from(T[((n >> (18 - 6 * i)) & 63) as usize]) } else { '=' });
        }
    }
    out
}

#[test]
fn twilio_exact_form_body_and_basic_auth() {
    let fake = FakeTwilio::start();
    let (d, guard) = start(quick().recipient(US).twilio(twilio(&fake)));
    log(&d, || tracing::error!(order = 7, "db timeout: 5s & retrying"));
    assert!(guard.flush(WAIT).is_complete());
    let msgs = fake.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        msgs[0].raw_body,
        "To=%2B15558675310&From=%2B15017122661&Body=%5Bshop%5D+ERROR+sms%3A+db+timeout%3A+5s+%26+retrying"
    );
    assert_eq!(msgs[0].body, "[shop] ERROR sms: db timeout: 5s & retrying");
    assert_eq!((msgs[0].encoding, msgs[0].segments), ("GSM-7", 1));
    let req = &fake.http().requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, format!("/2010-04-01/Accounts/{}/Messages.json", fake.account_sid()));
    assert_eq!(req.header("content-type"), Some("application/x-www-form-urlencoded"));
    let auth = format!("Basic {}", b64(&format!("{}:{}", fake.account_sid(), fake.auth_token())));
    assert_eq!(req.header("authorization"), Some(auth.as_str()));
    assert!(!req.path.contains(fake.auth_token()) && !req.query.contains(fake.auth_token()));
    let s = one_stats(&guard, "sms:twilio:");
    assert_eq!((s.delivered, s.retried, s.failed), (1, 0, 0));
    assert_eq!(s.name, "sms:twilio:+1555…10");
}

#[test]
fn twilio_messaging_service_sid() {
    let fake = FakeTwilio::start();
    let t = Twilio::new(fake.account_sid(), fake.auth_token())
        .messaging_service_sid("MG0123456789abcdef0123456789abcdef")
        .api_base(fake.api_base());
    let (d, guard) = start(SmsLayer::builder().pace(Duration::ZERO).recipient(US).twilio(t));
    log(&d, || tracing::error!("x"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(
        fake.messages()[0].raw_body,
        "To=%2B15558675310&MessagingServiceSid=MG0123456789abcdef0123456789abcdef&Body=ERROR+sms%3A+x"
    );
}

#[test]
fn exotel_exact_form_body_and_basic_auth() {
    let fake = FakeExotel::start();
    let e = exotel(&fake).dlt("1101000000000001", "1107000000000002");
    let (d, guard) = start(quick().recipient(IN).exotel(e));
    log(&d, || tracing::error!("disk full"));
    assert!(guard.flush(WAIT).is_complete());
    let msgs = fake.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        msgs[0].raw_body,
        "From=EXOTEL&To=%2B919876543210&Body=%5Bshop%5D+ERROR+sms%3A+disk+full\
         &DltEntityId=1101000000000001&DltTemplateId=1107000000000002"
    );
    let req = &fake.http().requests()[0];
    assert_eq!(req.path, format!("/v1/Accounts/{}/Sms/send.json", fake.sid()));
    let auth = format!("Basic {}", b64(&format!("{}:{}", fake.api_key(), fake.api_token())));
    assert_eq!(req.header("authorization"), Some(auth.as_str()));
    assert_eq!(msgs[0].user, fake.api_key());
    assert_eq!(one_stats(&guard, "sms:exotel:").delivered, 1);
}

#[test]
fn default_routing_plus_91_to_exotel_others_to_twilio() {
    let tw = FakeTwilio::start();
    let ex = FakeExotel::start();
    let (d, guard) = start(quick().recipients([US, IN, "+44 7700 900123"]).twilio(twilio(&tw)).exotel(exotel(&ex)));
    log(&d, || tracing::error!("boom"));
    assert!(guard.flush(WAIT).is_complete());
    let t: Vec<String> = tw.messages().into_iter().map(|m| m.to).collect();
    let e: Vec<String> = ex.messages().into_iter().map(|m| m.to).collect();
    let mut t_sorted = t.clone();
    t_sorted.sort();
    assert_eq!(t_sorted, [US, "+447700900123"]);
    assert_eq!(e, [IN]);
    assert_eq!(stats(&guard, "sms:").len(), 3, "one delivery per (provider, recipient)");
}

#[test]
fn only_twilio_configured_covers_plus_91_too() {
    let tw = FakeTwilio::start();
    let (d, guard) = start(quick().recipients([US, IN]).twilio(twilio(&tw)));
    log(&d, || tracing::error!("boom"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(tw.messages().len(), 2);
    assert_eq!(tw.messages_to(IN).len(), 1);
}

#[test]
fn configured_routes_in_order() {
    let tw = FakeTwilio::start();
    let ex = FakeExotel::start();
    // +1 through Exotel, everything else through Twilio: first matching route wins.
    let b = quick()
        .recipients([US, IN])
        .twilio(twilio(&tw))
        .exotel(exotel(&ex))
        .route("+1", "exotel")
        .route("", "twilio")
        .route("+91", "exotel");
    let (d, guard) = start(b);
    log(&d, || tracing::error!("boom"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(ex.messages().iter().map(|m| m.to.clone()).collect::<Vec<_>>(), [US]);
    assert_eq!(tw.messages().iter().map(|m| m.to.clone()).collect::<Vec<_>>(), [IN]);
}

#[test]
fn build_errors_are_clear() {
    let tw = FakeTwilio::start();
    let ex = FakeExotel::start();
    let err = |b: SmsBuilder| match b.build::<Registry>() {
        Ok(_) => panic!("expected a build error"),
        Err(e) => e,
    };

    let e = err(SmsLayer::builder().recipient(US).exotel(exotel(&ex)));
    assert_eq!(e.key, "recipients[0]");
    assert!(e.message.contains("no configured provider covers +15558675310"), "{e}");

    let e = err(SmsLayer::builder().recipients([US, "555-1234"]).twilio(twilio(&tw)));
    assert_eq!(e.key, "recipients[1]");
    assert!(e.to_string().contains("not an E.164 number"), "{e}");

    let e = err(SmsLayer::builder().twilio(twilio(&tw)));
    assert_eq!(e.key, "recipients");

    let e = err(SmsLayer::builder().recipient(US));
    assert_eq!(e.key, "providers");

    let e = err(SmsLayer::builder().recipient(US).twilio(twilio(&tw)).route("", "vonage"));
    assert_eq!(e.key, "routes[0].provider");

    let e = err(SmsLayer::builder().recipient(US).twilio(twilio(&tw)).route("91", "twilio"));
    assert_eq!(e.key, "routes[0].prefix");

    let e = err(SmsLayer::builder().recipient(US).twilio(Twilio::new("AC123", "tok").from(TWILIO_FROM)));
    assert_eq!(e.key, "twilio.account_sid");

    let e = err(SmsLayer::builder().recipient(US).twilio(Twilio::new(tw.account_sid(), tw.auth_token())));
    assert_eq!(e.key, "twilio.from");

    let e = err(SmsLayer::builder().recipient(IN).exotel(Exotel::new("acme", "k", "t")));
    assert_eq!(e.key, "exotel.from");

    let plain = twilio(&tw).api_base("http://sms.example.com");
    let e = err(SmsLayer::builder().recipient(US).twilio(plain));
    assert_eq!(e.key, "twilio.api_base");

    // 11 segments of 153 GSM-7 chars are over Twilio's 1,600; Exotel's 2,000 takes them.
    let e = err(SmsLayer::builder().recipient(US).twilio(twilio(&tw)).segments(11));
    assert_eq!(e.key, "segments");
    assert!(SmsLayer::builder().recipient(IN).exotel(exotel(&ex)).segments(11).build::<Registry>().is_ok());
}

#[test]
fn credentials_never_in_debug_errors_or_stats() {
    let tw = FakeTwilio::start();
    let ex = FakeExotel::start();
    let secrets = [tw.auth_token().to_owned(), ex.api_key().to_owned(), ex.api_token().to_owned()];
    let check = |what: &str, text: &str| {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{what} shows a credential: {text}");
        }
    };
    let b = SmsLayer::builder().recipients([US, IN]).twilio(twilio(&tw)).exotel(exotel(&ex));
    check("builder Debug", &format!("{b:?}"));
    check("Twilio Debug", &format!("{:?}", twilio(&tw)));
    check("Exotel Debug", &format!("{:?}", exotel(&ex)));
    // Build errors with credentials around.
    let e = SmsLayer::builder().recipient("+1 bad").twilio(twilio(&tw)).exotel(exotel(&ex)).build::<Registry>();
    let e = e.err().unwrap();
    check("build error", &format!("{e} {e:?}"));
    let e = SmsLayer::builder()
        .recipient(US)
        .twilio(twilio(&tw).api_base(format!("http://user:{}@sms.example.com", tw.auth_token())))
        .build::<Registry>()
        .err()
        .unwrap();
    check("build error with a URL", &format!("{e} {e:?}"));

    // Failures: a 401, a 403 that echoes the token, and a stalled request.
    tw.push(TwilioReply::unauthorized());
    ex.push(ExotelReply::error(403, "FORBIDDEN", &format!("key {} token {} inactive", ex.api_key(), ex.api_token())));
    let (d, guard) = start(quick().recipients([US, IN]).twilio(twilio(&tw)).exotel(exotel(&ex)).retry(Retry::none()));
    check("guard Debug", &format!("{guard:?}"));
    log(&d, || tracing::error!("boom"));
    let _ = guard.flush(WAIT);
    tw.push(TwilioReply::http(Reply::stall()));
    let (d2, guard2) =
        start(quick().recipient(US).twilio(twilio(&tw)).timeout(Duration::from_millis(300)).retry(Retry::none()));
    log(&d2, || tracing::error!("stalls"));
    let _ = guard2.flush(WAIT);
    let all: Vec<Stats> = guard.stats().into_iter().chain(guard2.stats()).collect();
    let errors: Vec<String> = all.iter().filter_map(|s| s.last_error.clone()).collect();
    assert_eq!(errors.len(), 3, "{all:?}");
    assert!(errors.iter().any(|e| e.contains("401")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("403") && e.contains("[redacted]")), "{errors:?}");
    for s in &all {
        check("stats", &format!("{s} {s:?}"));
    }
}

#[test]
fn ucs2_detected_and_fitted_to_one_segment() {
    let tw = FakeTwilio::start();
    let ex = FakeExotel::start();
    let (d, guard) = start(quick().recipients([US, IN]).twilio(twilio(&tw)).exotel(exotel(&ex)));
    log(&d, || {
        tracing::error!("Zahlung fehlgeschlagen 👍 für Łódź — {}", "ü".repeat(100));
    });
    assert!(guard.flush(WAIT).is_complete());
    for m in tw.messages().into_iter().chain(ex.messages()) {
        assert_eq!((m.encoding, m.segments), ("UCS-2", 1), "{}", m.body);
        assert_eq!(m.body.encode_utf16().count(), 70, "{}", m.body);
        assert!(m.body.starts_with("[shop] ERROR sms: Zahlung fehlgeschlagen 👍 für Łódź"), "{}", m.body);
        assert!(m.body.ends_with('…'), "{}", m.body);
    }
    assert_eq!(ex.messages()[0].field("EncodingType"), Some("unicode"));
    assert_eq!(tw.messages()[0].field("EncodingType"), None);
}

#[test]
fn gsm7_fitted_to_160_and_segments_configurable() {
    let tw = FakeTwilio::start();
    let ex = FakeExotel::start();
    let (d, guard) = start(quick().recipient(US).twilio(twilio(&tw)));
    // é, ä and € are GSM-7 (€ takes two septets): no UCS-2 for them.
    log(&d, || tracing::error!("café ä € {}", "x".repeat(300)));
    assert!(guard.flush(WAIT).is_complete());
    let m = &tw.messages()[0];
    assert_eq!((m.encoding, m.segments), ("GSM-7", 1), "{}", m.body);
    // 160 septets: `[`, `]` and `€` take two each.
    assert_eq!(m.body.chars().count(), 157, "{}", m.body);
    assert!(m.body.ends_with("xxx..."));

    let (d, guard) = start(quick().recipient(IN).exotel(exotel(&ex)).segments(3));
    log(&d, || tracing::error!("{}", "y".repeat(1000)));
    log(&d, || tracing::error!("{}", "日".repeat(1000)));
    assert!(guard.flush(WAIT).is_complete());
    let ms = ex.messages();
    assert_eq!((ms[0].encoding, ms[0].segments, ms[0].body.len()), ("GSM-7", 3, 457), "459 septets: [ and ] take two");
    assert_eq!(ms[0].field("EncodingType"), None);
    assert_eq!((ms[1].encoding, ms[1].segments, ms[1].body.encode_utf16().count()), ("UCS-2", 3, 201));
}

#[test]
fn hostile_text_one_megabyte_and_newlines() {
    let tw = FakeTwilio::start();
    let (d, guard) = start(quick().recipient(US).twilio(twilio(&tw)).segments(2));
    let huge = "日本語👍é-".repeat((1 << 20) / 16);
    log(&d, || {
        tracing::error!("{huge}");
        tracing::error!("line one\r\nline two\n\tline three\u{2028}end\u{7}");
        tracing::error!("+1 & <b> %2B = 100%");
    });
    assert!(guard.flush(WAIT).is_complete());
    let ms = tw.messages();
    assert_eq!(ms.len(), 3);
    assert_eq!(ms[0].encoding, "UCS-2");
    assert!(ms[0].body.encode_utf16().count() <= 134, "{}", ms[0].body.len());
    assert!(ms[0].body.starts_with("[shop] ERROR sms: 日本語👍é-日本語"));
    assert!(ms[0].body.ends_with('…'));
    assert!(!ms[0].body.contains('\u{fffd}'), "cut at a char boundary");
    assert_eq!(ms[1].body, "[shop] ERROR sms: line one line two line three end");
    assert_eq!(ms[2].body, "[shop] ERROR sms: +1 & <b> %2B = 100%");
    assert!(ms[2].raw_body.ends_with("Body=%5Bshop%5D+ERROR+sms%3A+%2B1+%26+%3Cb%3E+%252B+%3D+100%25"));
}

#[test]
fn hourly_cap_sends_one_notice_then_withholds_and_counts() {
    let tw = FakeTwilio::start();
    let (d, guard) = start(quick().recipient(US).twilio(twilio(&tw)).hourly_cap(3));
    log(&d, || {
        for i in 0..8 {
            tracing::error!("alert {i}");
        }
    });
    assert!(guard.flush(WAIT).is_complete());
    let bodies: Vec<String> = tw.messages().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies.len(), 4, "{bodies:?}");
    assert_eq!(&bodies[..3], ["[shop] ERROR sms: alert 0", "[shop] ERROR sms: alert 1", "[shop] ERROR sms: alert 2"]);
    assert!(bodies[3].starts_with("[shop] WARN watchbell: SMS cap reached (3 alerts per 60 min)"), "{}", bodies[3]);
    assert!(bodies[3].contains("First withheld: ERROR sms: alert 3"), "{}", bodies[3]);
    let cap = one_stats(&guard, "sms-cap");
    assert_eq!((cap.suppressed, cap.notices), (5, 1));
    // Still capped: nothing more is sent, only counted.
    log(&d, || tracing::error!("alert 8"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(tw.messages().len(), 4);
    assert_eq!(one_stats(&guard, "sms-cap").suppressed, 6);
}

#[test]
fn after_a_capped_window_the_next_alert_says_how_many_were_withheld() {
    let tw = FakeTwilio::start();
    let (d, guard) = start(quick().recipient(US).twilio(twilio(&tw)).cap(1, Duration::from_millis(800)));
    log(&d, || {
        for i in 0..4 {
            tracing::error!("alert {i}");
        }
    });
    std::thread::sleep(Duration::from_millis(900));
    log(&d, || tracing::error!("later"));
    assert!(guard.flush(WAIT).is_complete());
    let bodies: Vec<String> = tw.messages().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    assert!(bodies[1].contains("SMS cap reached"));
    assert_eq!(bodies[2], "[shop] ERROR sms: later (3 alerts withheld by the SMS cap)");
}

#[test]
fn default_rate_limit_is_one_per_hour_per_callsite() {
    let tw = FakeTwilio::start();
    let (d, guard) = start(SmsLayer::builder().pace(Duration::ZERO).recipient(US).twilio(twilio(&tw)));
    log(&d, || {
        for i in 0..4 {
            tracing::error!("same callsite {i}");
        }
        tracing::warn!("below the default level");
        tracing::error!("another callsite");
    });
    assert!(guard.flush(WAIT).is_complete());
    let bodies: Vec<String> = tw.messages().into_iter().map(|m| m.body).collect();
    assert_eq!(
        bodies,
        [
            "ERROR sms: same callsite 0",
            "ERROR sms: another callsite",
            // The count, at flush.
            "ERROR sms: same callsite 3 (3 similar suppressed)",
        ]
    );
    assert_eq!(one_stats(&guard, "rate-limit").suppressed, 3);
}

#[test]
fn twilio_429_then_success_delivers_once() {
    let tw = FakeTwilio::start();
    tw.push(TwilioReply::too_many_requests(Some(1)));
    let (d, guard) = start(quick().recipient(US).twilio(twilio(&tw)));
    log(&d, || tracing::error!("only once"));
    assert!(guard.flush(WAIT).is_complete());
    let calls = tw.calls();
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), [429, 201]);
    assert!(calls[1].received_at - calls[0].received_at >= Duration::from_secs(1), "Retry-After honoured");
    assert_eq!(tw.messages().len(), 1);
    let s = one_stats(&guard, "sms:twilio:");
    assert_eq!((s.delivered, s.retried, s.failed), (1, 1, 0));
}

#[test]
fn a_429_in_the_middle_of_a_batch_resends_only_the_refused_sms() {
    let ex = FakeExotel::start();
    // The first SMS stalls the worker a little so that the others queue into one batch.
    ex.push(ExotelReply::http(
        Reply::json(200, r#"{"SMSMessage":{"Sid":"a","Status":"queued"}}"#).delay(Duration::from_millis(300)),
    ));
    ex.push(ExotelReply::Accept);
    ex.push(ExotelReply::rate_limited(Some(1)));
    let (d, guard) = start(quick().recipient(IN).exotel(exotel(&ex)));
    log(&d, || {
        for i in 0..4 {
            tracing::error!("alert {i}");
        }
    });
    assert!(guard.flush(WAIT).is_complete());
    let calls = ex.calls();
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), [0, 200, 429, 200, 200]);
    let bodies: Vec<String> = ex.messages().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, ["[shop] ERROR sms: alert 1", "[shop] ERROR sms: alert 2", "[shop] ERROR sms: alert 3"]);
    assert!(calls[3].received_at - calls[2].received_at >= Duration::from_secs(1));
    // Every SMS was requested once, except the refused one (twice).
    let sent = |i: usize| calls.iter().filter(|c| c.raw_body.ends_with(&format!("alert+{i}"))).count();
    assert_eq!([sent(0), sent(1), sent(2), sent(3)], [1, 1, 2, 1]);
    let s = one_stats(&guard, "sms:exotel:");
    assert_eq!((s.delivered, s.retried, s.failed), (4, 1, 0));
}

#[test]
fn twilio_21211_and_401_are_not_retried() {
    let tw = FakeTwilio::start();
    tw.invalid_number(US2);
    let (d, guard) = start(quick().recipients([US, US2]).twilio(twilio(&tw)));
    log(&d, || tracing::error!("boom"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(
        tw.calls().iter().filter(|c| c.to == US2).map(|c| c.code.clone()).collect::<Vec<_>>(),
        [Some("21211".to_owned())]
    );
    assert_eq!(tw.messages_to(US).len(), 1, "another recipient is not affected");
    let bad = stats(&guard, "sms:twilio:").into_iter().find(|s| s.failed == 1).expect("the invalid number failed");
    assert_eq!(bad.retried, 0);
    assert!(bad.last_error.as_deref().unwrap_or("").contains("21211"), "{bad:?}");

    for reply in [TwilioReply::unauthorized(), TwilioReply::body_too_long()] {
        let tw = FakeTwilio::start();
        tw.push(reply);
        let (d, guard) = start(quick().recipient(US).twilio(twilio(&tw)));
        log(&d, || tracing::error!("boom"));
        assert!(guard.flush(WAIT).is_complete());
        assert_eq!(tw.calls().len(), 1);
        let s = one_stats(&guard, "sms:twilio:");
        assert_eq!((s.failed, s.retried, s.delivered), (1, 0, 0));
    }
}

#[test]
fn twilio_5xx_and_stall_are_retried() {
    let tw = FakeTwilio::start();
    tw.push(TwilioReply::server_error());
    tw.push(TwilioReply::http(Reply::stall()));
    tw.push(TwilioReply::http(Reply::text(502, "<html>bad gateway</html>")));
    let retry = Retry { initial: Duration::from_millis(50), ..Retry::default() };
    let (d, guard) = start(quick().recipient(US).twilio(twilio(&tw)).timeout(Duration::from_millis(500)).retry(retry));
    log(&d, || tracing::error!("eventually"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(tw.calls().len(), 4);
    assert_eq!(tw.messages().len(), 1);
    let s = one_stats(&guard, "sms:twilio:");
    assert_eq!((s.delivered, s.retried), (1, 3));
}

#[test]
fn exotel_answers_mapped() {
    // 503 with Retry-After: retried after it.
    let ex = FakeExotel::start();
    ex.push(ExotelReply::unavailable(Some(1)));
    let (d, guard) = start(quick().recipient(IN).exotel(exotel(&ex)));
    log(&d, || tracing::error!("x"));
    assert!(guard.flush(WAIT).is_complete());
    let calls = ex.calls();
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), [503, 200]);
    assert!(calls[1].received_at - calls[0].received_at >= Duration::from_secs(1));

    // Permanent: 400, 403, an XML 403.
    for reply in
        [ExotelReply::bad_request("Invalid template"), ExotelReply::forbidden(), ExotelReply::xml_error(403, "x")]
    {
        let ex = FakeExotel::start();
        ex.push(reply);
        let (d, guard) = start(quick().recipient(IN).exotel(exotel(&ex)));
        log(&d, || tracing::error!("x"));
        assert!(guard.flush(WAIT).is_complete());
        assert_eq!(ex.calls().len(), 1);
        let s = one_stats(&guard, "sms:exotel:");
        assert_eq!((s.failed, s.retried), (1, 0), "{s:?}");
    }

    // Both success forms are delivered, never retried (a retry would duplicate the SMS).
    let ex = FakeExotel::start();
    ex.push(ExotelReply::AcceptAsList);
    ex.push(ExotelReply::Accept);
    let (d, guard) = start(quick().recipient(IN).exotel(exotel(&ex)));
    log(&d, || {
        tracing::error!("one");
        tracing::error!("two");
    });
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(ex.calls().len(), 2);
    assert_eq!(ex.messages().len(), 2);
    let s = one_stats(&guard, "sms:exotel:");
    assert_eq!((s.delivered, s.retried, s.failed), (2, 0, 0));
}

#[test]
fn shutdown_delivers_pending_records() {
    let tw = FakeTwilio::start();
    // The default pace (1 s per recipient) keeps records queued when shutdown starts.
    let (d, guard) = start(SmsLayer::builder().no_rate_limit().recipients([US, US2]).twilio(twilio(&tw)));
    log(&d, || {
        for i in 0..3 {
            tracing::error!("pending {i}");
        }
    });
    let started = Instant::now();
    let flushed = guard.shutdown(WAIT);
    assert!(flushed.is_complete(), "{flushed:?}");
    assert!(started.elapsed() >= Duration::from_secs(2), "the pace was kept");
    for to in [US, US2] {
        let bodies: Vec<String> = tw.messages_to(to).into_iter().map(|m| m.body).collect();
        assert_eq!(bodies, ["ERROR sms: pending 0", "ERROR sms: pending 1", "ERROR sms: pending 2"]);
    }

    // Dropping the guard does the same.
    let tw = FakeTwilio::start();
    let (d, guard) = start(quick().recipient(US).twilio(twilio(&tw)));
    log(&d, || tracing::error!("at exit"));
    drop(guard);
    assert_eq!(tw.messages().len(), 1);
}

#[test]
fn escalation_batch_is_one_sms() {
    let tw = FakeTwilio::start();
    let (handler, guard) = quick().recipient(US).twilio(twilio(&tw)).build_handler().unwrap();
    let records = vec![
        Record::new(Level::INFO, "app::cart", "loaded cart"),
        Record::new(Level::WARN, "app::pay", "slow gateway"),
        Record::new(Level::ERROR, "app::pay", "payment failed"),
    ];
    handler.handle_batch(Batch::new(BatchReason::Escalation, records));
    assert!(guard.flush(WAIT).is_complete());
    let bodies: Vec<String> = tw.messages().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, ["[shop] ERROR app::pay: payment failed (+2 related records)"]);
    assert_eq!(one_stats(&guard, "sms:twilio:").delivered, 3);
}

#[test]
fn custom_format_is_made_one_line() {
    let tw = FakeTwilio::start();
    let (d, guard) = start(
        quick()
            .recipient(US)
            .twilio(twilio(&tw))
            .format(|r: &Record, _: &watchbell_core::format::FormatContext| format!("ALERT\n{}", r.message)),
    );
    log(&d, || tracing::error!("db down"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(tw.messages()[0].body, "ALERT db down");
}

/// A provider of the user's own, through the public trait.
struct Recorder {
    sent: Arc<Mutex<Vec<(String, String, Encoding)>>>,
}

impl SmsProvider for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }

    fn send(&self, _client: &HttpClient, sms: &SmsMessage<'_>) -> Outcome {
        self.sent.lock().unwrap().push((sms.to.to_owned(), sms.body.to_owned(), sms.encoding));
        Outcome::Delivered
    }
}

#[test]
fn a_provider_of_your_own() {
    let tw = FakeTwilio::start();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let b = quick()
        .recipients([US, "+447700900123"])
        .twilio(twilio(&tw))
        .provider(Recorder { sent: Arc::clone(&sent) })
        .route("+44", "recorder")
        .route("+1", "twilio");
    let (d, guard) = start(b);
    log(&d, || tracing::error!("über 👍"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(
        *sent.lock().unwrap(),
        [("+447700900123".to_owned(), "[shop] ERROR sms: über 👍".to_owned(), Encoding::Ucs2)]
    );
    assert_eq!(tw.messages_to(US).len(), 1);
    assert_eq!(stats(&guard, "sms:recorder:").len(), 1);
}
