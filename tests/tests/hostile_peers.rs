//! Every HTTP sink against every hostile-peer mode of the test kit (`watchbell_test::hostile`):
//! Slack, Telegram, Twilio, Exotel and the collector encodings (NDJSON, Loki, Elasticsearch,
//! OTLP). For each sink one layer meets the modes one after the other; for each mode:
//!
//! - the thread that logs is never held (each `error!` returns at once);
//! - the worker survives: the record that met the hostile answer is retried or failed,
//!   **counted** either way, and the next record is delivered by the next good answer;
//! - nothing panics, and the process's memory stays bounded (a gzip bomb is never inflated,
//!   an endless or 1 GiB body never read whole).
//!
//! Run with `--nocapture` to see the table of outcomes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Dispatch;
use tracing_subscriber::prelude::*;
use watchbell_core::{Guard, Retry, SinkOptions, Stats};
use watchbell_test::hostile::Hostile;
use watchbell_test::http::Reply;

const WAIT: Duration = Duration::from_secs(30);

fn retry() -> Retry {
    Retry {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
        budget: Duration::from_secs(10),
        max_server_delay: Duration::from_millis(200),
        ..Retry::default()
    }
}

/// One sink under test: its layer, the fake's HTTP side, and how to see that a text arrived.
struct Target {
    name: &'static str,
    dispatch: Dispatch,
    guard: Guard,
    push: Box<dyn Fn(Reply) + Send>,
    received: Box<dyn Fn(&str) -> bool + Send>,
    _keep: Box<dyn std::any::Any + Send>,
}

/// The delivery's counters summed (without the rate limit's and cap's entries, nor the
/// collector's `/unverified` entry, which details records already counted delivered).
fn totals(guard: &Guard) -> Stats {
    let mut t = Stats::default();
    for s in guard.stats() {
        if s.name.ends_with("-cap")
            || s.name == "rate-limit"
            || s.name.ends_with("/items")
            || s.name.ends_with("/unverified")
        {
            continue;
        }
        t.accepted += s.accepted;
        t.delivered += s.delivered;
        t.failed += s.failed;
        t.dropped += s.dropped;
        t.retried += s.retried;
        t.panicked += s.panicked;
        t.delays_capped += s.delays_capped;
    }
    t
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A target from a built layer and its fake (kept alive with it).
fn target<L, F: Send + Sync + 'static>(
    name: &'static str,
    (layer, guard): (L, Guard),
    fake: F,
    push: fn(&F, Reply),
    received: fn(&F, &str) -> bool,
) -> Target
where
    L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    let fake = Arc::new(fake);
    let (f1, f2) = (Arc::clone(&fake), Arc::clone(&fake));
    Target {
        name,
        dispatch: Dispatch::new(tracing_subscriber::registry().with(layer)),
        guard,
        push: Box::new(move |r| push(&f1, r)),
        received: Box::new(move |t| received(&f2, t)),
        _keep: Box::new(fake),
    }
}

fn slack() -> Target {
    use watchbell_slack::{SlackLayer, Webhook};
    let fake = watchbell_test::slack::FakeSlack::start();
    let built = SlackLayer::builder()
        .webhook(Webhook::new(fake.url()))
        .pace(Duration::ZERO)
        .no_rate_limit()
        .timeout(Duration::from_millis(500))
        .retry(retry())
        .build()
        .unwrap();
    target("Slack", built, fake, |f, r| f.http().push(r), |f, t| f.messages().iter().any(|m| m.to_string().contains(t)))
}

fn telegram() -> Target {
    let fake = watchbell_test::telegram::FakeTelegram::start();
    let built = watchbell_telegram::TelegramLayer::builder(fake.token())
        .api_base(fake.api_base())
        .chat(-1001234567890i64)
        .pace(Duration::ZERO)
        .no_rate_limit()
        .timeout(Duration::from_millis(500))
        .retry(retry())
        .build()
        .unwrap();
    target("Telegram", built, fake, |f, r| f.http().push(r), |f, t| f.messages().iter().any(|m| m.text.contains(t)))
}

/// The SMS layer with the test's settings, to `recipient` through the builder's provider.
fn sms(
    b: watchbell_sms::SmsBuilder,
    recipient: &str,
) -> (watchbell_core::SinkLayer<tracing_subscriber::Registry>, Guard) {
    b.recipient(recipient)
        .pace(Duration::ZERO)
        .no_rate_limit()
        .no_cap()
        .timeout(Duration::from_millis(500))
        .retry(retry())
        .build()
        .unwrap()
}

fn twilio() -> Target {
    let fake = watchbell_test::sms::FakeTwilio::start();
    let provider = watchbell_sms::Twilio::new(fake.account_sid(), fake.auth_token())
        .from("+15017122661")
        .api_base(fake.api_base());
    let built = sms(watchbell_sms::SmsLayer::builder().twilio(provider), "+15558675310");
    target("Twilio", built, fake, |f, r| f.http().push(r), |f, t| f.messages().iter().any(|m| m.body.contains(t)))
}

fn exotel() -> Target {
    let fake = watchbell_test::sms::FakeExotel::start();
    let provider = watchbell_sms::Exotel::new(fake.sid(), fake.api_key(), fake.api_token())
        .from("EXOTEL")
        .api_base(fake.api_base());
    let built = sms(watchbell_sms::SmsLayer::builder().exotel(provider), "+919876543210");
    target("Exotel", built, fake, |f, r| f.http().push(r), |f, t| f.messages().iter().any(|m| m.body.contains(t)))
}

macro_rules! collector {
    ($fn:ident, $name:expr, $fake:ty, $encoding:expr) => {
        fn $fn() -> Target {
            let fake = <$fake>::start();
            let built = watchbell_http::HttpLayer::builder(fake.url())
                .encoding($encoding)
                .batch_wait(Duration::ZERO)
                .timeout(Duration::from_millis(500))
                .retry(retry())
                .build()
                .unwrap();
            target(
                $name,
                built,
                fake,
                |f, r| f.http().push(r),
                |f, t| f.records().iter().any(|r| r.to_string().contains(t)),
            )
        }
    };
}

collector!(ndjson, "HTTP NDJSON", watchbell_test::collectors::FakeNdjson, watchbell_http::Encoding::Ndjson);
collector!(loki, "HTTP Loki", watchbell_test::collectors::FakeLoki, watchbell_http::Encoding::loki());
collector!(
    elastic,
    "HTTP Elasticsearch",
    watchbell_test::collectors::FakeElasticsearch,
    watchbell_http::Encoding::ElasticBulk { index: "logs".into() }
);
collector!(otlp, "HTTP OTLP", watchbell_test::collectors::FakeOtlp, watchbell_http::Encoding::otlp("svc"));

/// What one mode did to one sink.
struct Row {
    sink: &'static str,
    mode: Hostile,
    first: &'static str,
    retried: u64,
    capped: u64,
    caller_us: u128,
}

/// Runs every mode against `t`, checking the promises; returns the rows of the table.
fn run(t: Target) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut before = totals(&t.guard);
    for (i, &mode) in Hostile::ALL.iter().enumerate() {
        (t.push)(mode.reply());
        let first = format!("first-{i} {}", mode.name());
        let started = Instant::now();
        tracing::dispatcher::with_default(&t.dispatch, || tracing::error!("{first}"));
        let caller = started.elapsed();
        assert!(caller < Duration::from_millis(200), "{} / {}: the caller waited {caller:?}", t.name, mode.name());
        assert!(t.guard.flush(WAIT).is_complete(), "{} / {}: {:?}", t.name, mode.name(), t.guard.stats());
        let next = format!("next-{i} after {}", mode.name());
        tracing::dispatcher::with_default(&t.dispatch, || tracing::error!("{next}"));
        assert!(t.guard.flush(WAIT).is_complete(), "{} / {}: {:?}", t.name, mode.name(), t.guard.stats());
        assert!(
            (t.received)(&next),
            "{} / {}: the next record was not delivered: {:?}",
            t.name,
            mode.name(),
            t.guard.stats()
        );
        let now = totals(&t.guard);
        let (delivered, failed) = (now.delivered - before.delivered, now.failed - before.failed);
        assert_eq!(now.panicked, 0, "{} / {}", t.name, mode.name());
        assert_eq!(now.dropped - before.dropped, 0, "{} / {}: {now:?}", t.name, mode.name());
        // Both records are accounted for: the first delivered (after a retry, or because the
        // answer was a 2xx) or failed and counted; the next delivered.
        assert_eq!(delivered + failed, 2, "{} / {}: {now:?}", t.name, mode.name());
        let first_arrived = (t.received)(&first);
        let fate = match (failed, first_arrived) {
            (0, true) => "delivered (retried)",
            (0, false) => {
                assert!(mode.may_succeed(), "{} / {}: counted delivered, not received", t.name, mode.name());
                "taken as delivered (2xx)"
            }
            (_, _) => "failed, counted",
        };
        let fate =
            if fate == "delivered (retried)" && now.retried == before.retried { "delivered (first try)" } else { fate };
        rows.push(Row {
            sink: t.name,
            mode,
            first: fate,
            retried: now.retried - before.retried,
            capped: now.delays_capped - before.delays_capped,
            caller_us: caller.as_micros(),
        });
        before = now;
    }
    let _ = t.guard.shutdown(Duration::from_secs(5));
    rows
}

#[test]
fn every_http_sink_survives_every_hostile_peer_mode() {
    let rss_before = rss_kib();
    let makers: Vec<fn() -> Target> = vec![slack, telegram, twilio, exotel, ndjson, loki, elastic, otlp];
    let handles: Vec<_> = makers.into_iter().map(|m| std::thread::spawn(move || run(m()))).collect();
    let mut rows = Vec::new();
    for h in handles {
        rows.extend(h.join().expect("a sink's run panicked"));
    }
    let grown_mib = rss_kib().saturating_sub(rss_before) / 1024;
    println!("| sink | mode | first record | retries | delays capped | caller µs |\n|---|---|---|---:|---:|---:|");
    for r in &rows {
        println!("| {} | {} | {} | {} | {} | {} |", r.sink, r.mode.name(), r.first, r.retried, r.capped, r.caller_us);
    }
    println!("resident memory grew by {grown_mib} MiB over {} cases", rows.len());
    assert_eq!(rows.len(), 8 * Hostile::ALL.len());
    assert!(grown_mib < 256, "memory grew by {grown_mib} MiB");
}

/// A TLS handshake that never completes, for every HTTP sink: the caller is not held, the
/// attempt times out and is retried (counted), and shutdown keeps its deadline.
#[test]
fn a_tls_handshake_that_stalls_never_holds_the_caller_or_the_exit() {
    let stalled = watchbell_test::hostile::StalledTls::start();
    let slack = watchbell_slack::SlackLayer::builder()
        .webhook(watchbell_slack::Webhook::new(stalled.url("/services/T0/B0/XXXX")))
        .pace(Duration::ZERO)
        .no_rate_limit()
        .timeout(Duration::from_millis(300))
        .retry(retry())
        .build_handler()
        .unwrap();
    let telegram = watchbell_telegram::TelegramLayer::builder("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw4")
        .api_base(stalled.url(""))
        .chat(-100123i64)
        .pace(Duration::ZERO)
        .no_rate_limit()
        .timeout(Duration::from_millis(300))
        .retry(retry())
        .build_handler()
        .unwrap();
    let twilio = watchbell_sms::SmsLayer::builder()
        .recipient("+15558675310")
        .twilio(
            watchbell_sms::Twilio::new("AC0123456789abcdef0123456789abcdef", "tok")
                .from("+15017122661")
                .api_base(stalled.url("")),
        )
        .pace(Duration::ZERO)
        .no_rate_limit()
        .no_cap()
        .timeout(Duration::from_millis(300))
        .retry(retry())
        .build_handler()
        .unwrap();
    let http = watchbell_http::HttpLayer::builder(stalled.url("/ingest"))
        .batch_wait(Duration::ZERO)
        .timeout(Duration::from_millis(300))
        .retry(retry())
        .build_handler()
        .unwrap();
    for (name, (handler, guard)) in [("Slack", slack), ("Telegram", telegram), ("Twilio", twilio), ("HTTP", http)] {
        let started = Instant::now();
        handler.handle(watchbell_core::Record::new(tracing::Level::ERROR, "app", "never arrives"));
        assert!(started.elapsed() < Duration::from_millis(100), "{name}: the caller waited");
        let deadline = Instant::now() + Duration::from_secs(10);
        while totals(&guard).retried == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(totals(&guard).retried > 0, "{name}: {:?}", guard.stats());
        let started = Instant::now();
        let flushed = guard.shutdown(Duration::from_millis(500));
        assert!(started.elapsed() < Duration::from_secs(2), "{name}: shutdown took {:?}", started.elapsed());
        assert_eq!(flushed.pending, 1, "{name}: the record is counted as not delivered: {flushed:?}");
        let s = totals(&guard);
        assert_eq!((s.panicked, s.delivered), (0, 0), "{name}: {s:?}");
    }
}

/// The mail sink against every hostile SMTP mode: garbage and endless replies, a huge line,
/// a greeting that never comes, a hang-up after DATA. A fresh layer (so a fresh connection)
/// per mode; the same promises as for HTTP.
#[test]
fn the_mail_sink_survives_every_hostile_smtp_mode() {
    use watchbell_test::hostile::HostileSmtp;
    use watchbell_test::smtp::FakeSmtp;
    let smtp = FakeSmtp::start();
    let rss_before = rss_kib();
    println!("| mode | first mail | retries |\n|---|---|---:|");
    for (i, &mode) in HostileSmtp::ALL.iter().enumerate() {
        let (layer, guard) = watchbell_mail::MailLayer::builder("127.0.0.1")
            .plain()
            .port(smtp.port())
            .from("alerts@example.com")
            .to("ops@example.com")
            .pace(Duration::ZERO)
            .batch_wait(Duration::ZERO)
            .no_rate_limit()
            .timeout(Duration::from_millis(700))
            .retry(retry())
            .build()
            .unwrap();
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
        let (step, answer) = mode.answer();
        smtp.push(step, answer);
        let first = format!("first-{i} {}", mode.name());
        let started = Instant::now();
        tracing::dispatcher::with_default(&dispatch, || tracing::error!("{first}"));
        assert!(started.elapsed() < Duration::from_millis(200), "{}: the caller waited", mode.name());
        assert!(guard.flush(WAIT).is_complete(), "{}: {:?}", mode.name(), guard.stats());
        let next = format!("next-{i} after {}", mode.name());
        tracing::dispatcher::with_default(&dispatch, || tracing::error!("{next}"));
        assert!(guard.flush(WAIT).is_complete(), "{}: {:?}", mode.name(), guard.stats());
        let bodies: Vec<String> = smtp.mails().iter().map(|m| m.body_text()).collect();
        assert!(
            bodies.iter().any(|b| b.contains(&next)),
            "{}: the next mail did not arrive: {:?}",
            mode.name(),
            guard.stats()
        );
        let s = totals(&guard);
        assert_eq!((s.panicked, s.dropped), (0, 0), "{}: {s:?}", mode.name());
        assert_eq!(s.delivered + s.failed, 2, "{}: {s:?}", mode.name());
        if mode != HostileSmtp::HugeLine {
            // (a 1 MiB line is a valid, if odd, reply)
            assert!(s.retried + s.failed > 0, "{}: the misbehaviour was not met: {s:?}", mode.name());
        }
        let fate = if s.failed > 0 {
            "failed, counted"
        } else if bodies.iter().any(|b| b.contains(&first)) {
            "delivered"
        } else {
            panic!("{}: counted delivered, not received", mode.name())
        };
        println!("| {} | {fate} | {} |", mode.name(), s.retried);
        let _ = guard.shutdown(Duration::from_secs(5));
    }
    let grown_mib = rss_kib().saturating_sub(rss_before) / 1024;
    assert!(grown_mib < 128, "memory grew by {grown_mib} MiB");
}

/// A syslog TCP receiver that accepts and never reads: the socket buffers fill, writes block up
/// to the timeout and are retried; the thread that logs is never held and shutdown keeps its
/// deadline.
#[test]
fn a_syslog_receiver_that_never_reads_never_holds_the_caller() {
    let black_hole = watchbell_test::hostile::StalledTls::start();
    let (handler, guard) = watchbell_syslog::SyslogLayer::builder()
        .tcp(black_hole.addr().to_string())
        .timeout(Duration::from_millis(300))
        .retry(retry())
        .queue_records(100_000)
        .build_handler()
        .unwrap();
    let big = "x".repeat(7_000);
    let mut slowest = Duration::ZERO;
    for i in 0..4_000 {
        let started = Instant::now();
        handler.handle(watchbell_core::Record::new(tracing::Level::ERROR, "app", format!("{i} {big}")));
        slowest = slowest.max(started.elapsed());
    }
    assert!(slowest < Duration::from_millis(200), "a caller waited {slowest:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while totals(&guard).retried == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = totals(&guard);
    assert!(s.retried > 0, "28 MB into a receiver that never reads: {s:?}");
    let started = Instant::now();
    let flushed = guard.shutdown(Duration::from_millis(500));
    assert!(started.elapsed() < Duration::from_secs(3), "shutdown took {:?}", started.elapsed());
    assert!(flushed.pending > 0, "{flushed:?}");
    // The worker counts the batch it was retrying as it stops, just after the deadline.
    let deadline = Instant::now() + Duration::from_secs(5);
    let accounted = |s: &Stats| s.delivered + s.dropped + s.failed;
    while accounted(&totals(&guard)) < 4_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = totals(&guard);
    assert_eq!(s.panicked, 0);
    assert_eq!(accounted(&s), 4_000, "every record accounted for: {s:?}");
}

/// A syslog TCP receiver that resets its next connections (restarting, or refusing the peer):
/// the thread that logs is never held, nothing panics, every record is accounted for, the sink
/// notices each dead connection before its next write (at most the one record written into a
/// connection before its reset is lost: plain TCP syslog has no acknowledgement), and once the
/// receiver reads again the next records arrive.
#[test]
fn a_syslog_receiver_that_resets_never_holds_the_caller_and_the_next_record_arrives() {
    let fake = watchbell_test::syslog::FakeSyslog::tcp();
    let (handler, guard) = watchbell_syslog::SyslogLayer::builder()
        .tcp(fake.addr().unwrap().to_string())
        .timeout(Duration::from_millis(300))
        .retry(retry())
        .build_handler()
        .unwrap();
    // A first record opens the connection the sink keeps.
    handler.handle(watchbell_core::Record::new(tracing::Level::ERROR, "app", "warm-up".to_owned()));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(fake.wait_for_frames(1, WAIT).len(), 1);
    // The receiver restarts and resets the next three connections.
    fake.stop();
    fake.reset_next(3);
    fake.restart();
    let mut slowest = Duration::ZERO;
    let texts: Vec<String> = (0..8).map(|i| format!("after-reset-{i}")).collect();
    for text in &texts {
        let started = Instant::now();
        handler.handle(watchbell_core::Record::new(tracing::Level::ERROR, "app", text.clone()));
        slowest = slowest.max(started.elapsed());
        assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
        // Time for the receiver to accept (and reset) before the next record.
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(slowest < Duration::from_millis(200), "a caller waited {slowest:?}");
    let deadline = Instant::now() + WAIT;
    let arrived = |t: &str| fake.frames().iter().any(|f| f.text().ends_with(t));
    while !arrived("after-reset-7") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = totals(&guard);
    let received: Vec<String> = fake.frames().iter().map(|f| f.text()).collect();
    assert!(arrived("after-reset-7"), "the last record after the resets: {received:?} {s:?}");
    assert_eq!(fake.resets(), 3, "every reset met: {received:?} {s:?}");
    assert_eq!(s.panicked, 0);
    assert_eq!(s.delivered + s.failed + s.dropped, 9, "every record accounted for: {s:?}");
    let lost: Vec<&String> = texts.iter().filter(|t| !arrived(t)).collect();
    println!(
        "syslog TCP, 3 connections reset: retried {}, failed {}, delivered {}; written before a reset and \
         lost: {lost:?}",
        s.retried, s.failed, s.delivered
    );
    assert!(lost.len() <= 3, "more lost than connections reset: {lost:?}");
    assert!(texts[3..].iter().all(|t| arrived(t)), "a record after the last reset was lost: {received:?}");
    let _ = guard.shutdown(Duration::from_secs(5));
}

/// A peer's error body may carry terminal escapes and NULs: what reaches the stats (and the
/// stderr line built from the same text) keeps none of them, for every HTTP sink.
#[test]
fn control_bytes_of_an_error_body_never_reach_the_stats() {
    let makers: Vec<fn() -> Target> = vec![slack, telegram, twilio, exotel, ndjson, loki, elastic, otlp];
    let mut leaks = Vec::new();
    for make in makers {
        let t = make();
        (t.push)(Reply::text(400, "bad \u{1b}[2J\u{1b}]0;owned\u{7} request\0\0 \r\nX-Injected: 1"));
        tracing::dispatcher::with_default(&t.dispatch, || tracing::error!("one"));
        assert!(t.guard.flush(WAIT).is_complete(), "{}", t.name);
        let stats = t.guard.stats();
        assert!(stats.iter().any(|s| s.failed > 0), "{}: the 400 not counted failed: {stats:?}", t.name);
        for s in &stats {
            if let Some(e) = &s.last_error {
                if e.chars().any(char::is_control) {
                    leaks.push(format!("{}: {e:?}", t.name));
                }
            }
        }
        let _ = t.guard.shutdown(Duration::from_secs(5));
    }
    assert!(leaks.is_empty(), "control characters from the peer in last_error:\n{}", leaks.join("\n"));
}
