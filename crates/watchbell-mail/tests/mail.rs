//! The mail layer over real SMTP to the loopback fake.

use std::time::{Duration, Instant, SystemTime};

use tracing::Dispatch;
use tracing_subscriber::prelude::*;
use tracing_subscriber::Registry;
use watchbell_core::text::MARKER;
use watchbell_core::{Batch, BatchReason, Guard, Level, Record, Retry, Stats, Value};
use watchbell_mail::{MailBuilder, MailLayer, SinkOptions};
use watchbell_test::smtp::{Answer, FakeSmtp, Mail, Step};

const WAIT: Duration = Duration::from_secs(20);

fn fast_retry() -> Retry {
    Retry {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
        budget: Duration::from_secs(10),
        ..Retry::default()
    }
}

/// A layer to the plain fake, with no pace, no coalescing wait and no rate limit.
fn builder(smtp: &FakeSmtp) -> MailBuilder {
    MailLayer::builder("127.0.0.1")
        .plain()
        .port(smtp.port())
        .from_name("Shop alerts", "alerts@example.com")
        .to("ops@example.com")
        .app("shop")
        .host_name("web-1")
        .pace(Duration::ZERO)
        .batch_wait(Duration::ZERO)
        .no_rate_limit()
        .retry(fast_retry())
        .timeout(Duration::from_secs(5))
}

fn start(b: MailBuilder) -> (Dispatch, Guard) {
    let (layer, guard) = b.build::<Registry>().expect("valid configuration");
    (Dispatch::new(tracing_subscriber::registry().with(layer)), guard)
}

fn log(d: &Dispatch, f: impl FnOnce()) {
    tracing::dispatcher::with_default(d, f)
}

fn mail_stats(guard: &Guard) -> Stats {
    guard.stats().into_iter().find(|s| s.name.starts_with("mail:")).expect("the delivery's stats")
}

fn count_commands(smtp: &FakeSmtp, prefix: &str) -> usize {
    smtp.commands().iter().filter(|c| c.to_ascii_uppercase().starts_with(prefix)).count()
}

fn one_mail(smtp: &FakeSmtp, guard: &Guard) -> Mail {
    assert!(guard.flush(WAIT).is_complete());
    let mails = smtp.wait_for_mails(1, WAIT);
    assert_eq!(mails.len(), 1, "{mails:#?}");
    mails.into_iter().next().unwrap()
}

#[test]
fn exact_headers_and_body_of_one_record() {
    let smtp = FakeSmtp::start();
    let (handler, guard) = builder(&smtp).to("On call <oncall@example.com>").build_handler().unwrap();
    let mut r = Record::new(Level::ERROR, "shop::pay", "payment failed");
    r.time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    r.module = Some("shop::pay".into());
    r.file = Some("src/pay.rs".into());
    r.line = Some(42);
    r.thread_name = Some("worker-3".into());
    r.fields.set("invoice", Value::I64(42));
    r.fields.set("customer_name", Value::Str("bob".into()));
    r.fields.set("error", Value::Display("db timeout: connection reset".into()));
    handler.handle(r);
    let mail = one_mail(&smtp, &guard);

    assert_eq!(mail.from, "alerts@example.com");
    assert_eq!(mail.to, ["ops@example.com", "oncall@example.com"]);
    assert_eq!(mail.header("Subject"), Some("[shop] ERROR: payment failed"));
    assert_eq!(mail.decoded_header("From").as_deref(), Some("\"Shop alerts\" <alerts@example.com>"));
    assert_eq!(mail.header("To"), Some("ops@example.com, \"On call\" <oncall@example.com>"));
    // 1_700_000_000 s after the epoch, as RFC 5322 wants it.
    assert_eq!(mail.header("Date"), Some("Tue, 14 Nov 2023 22:13:20 +0000"));
    assert_eq!(
        mail.header("Date").unwrap(),
        watchbell_core::time::http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .replace("GMT", "+0000")
    );
    assert_eq!(mail.header("Content-Type"), Some("text/plain; charset=utf-8"));
    assert_eq!(mail.header_all("Bcc").len(), 0);
    assert!(mail.header("Message-ID").is_some());
    let body = mail.body_text();
    let expected = "Message type:    ERROR\n\
                    Location:        src/pay.rs:42\n\
                    Module:          shop::pay\n\
                    Target:          shop::pay\n\
                    Time:            2023-11-14T22:13:20.000000Z\n\
                    Host:            web-1\n\
                    Thread:          worker-3\n\
                    \n\
                    Message:\n\
                    \n\
                    payment failed\n\
                    \n\
                    Fields:\n\
                    \n\
                    \x20 invoice        42\n\
                    \x20 customer_name  bob\n\
                    \n\
                    Error:\n\
                    \n\
                    \x20 db timeout: connection reset\n";
    assert_eq!(body, expected);
    let s = mail_stats(&guard);
    assert_eq!((s.delivered, s.failed, s.retried), (1, 0, 0));
}

#[test]
fn a_record_from_tracing_carries_location_and_span_fields() {
    let smtp = FakeSmtp::start();
    let (d, guard) = start(builder(&smtp));
    let mut line = 0;
    log(&d, || {
        let span = tracing::info_span!("request", id = 7);
        let _e = span.enter();
        line = line!() + 1;
        tracing::error!(user = "bob", "checkout failed");
        tracing::warn!("below the level: not mailed");
    });
    let mail = one_mail(&smtp, &guard);
    assert_eq!(mail.header("Subject"), Some("[shop] ERROR: checkout failed"));
    let body = mail.body_text();
    assert!(body.contains(&format!("Location:        {}:{line}\n", file!())), "{body}");
    assert!(body.contains("Spans:           request\n"), "{body}");
    assert!(body.contains("\nFields:\n\n  user  bob\n"), "{body}");
    assert!(body.contains("\nSpan fields:\n\n  request.id  7\n"), "{body}");
}

#[test]
fn a_subject_with_crlf_cannot_add_a_header() {
    let smtp = FakeSmtp::start();
    let (d, guard) = start(builder(&smtp));
    log(&d, || tracing::error!("disk full\r\nBcc: victim@example.com\r\n\r\nfake body"));
    let mail = one_mail(&smtp, &guard);
    assert!(mail.header_all("Bcc").is_empty(), "{:?}", mail.headers);
    assert_eq!(mail.to, ["ops@example.com"]);
    assert_eq!(
        mail.decoded_header("Subject").as_deref(),
        Some("[shop] ERROR: disk full Bcc: victim@example.com fake body")
    );
    assert!(!mail.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("bcc")));
    // The whole message, CR/LF included, is in the body.
    assert!(mail.body_text().contains("disk full\nBcc: victim@example.com\n\nfake body\n"));
}

#[test]
fn a_utf8_subject_round_trips() {
    let smtp = FakeSmtp::start();
    let (d, guard) = start(builder(&smtp).app("boutique é").from_name("Équipe paiements", "alerts@example.com"));
    let msg = "Überweisung fehlgeschlagen 💶 — 支付失败";
    log(&d, || tracing::error!("{msg}"));
    let mail = one_mail(&smtp, &guard);
    let raw = mail.header("Subject").unwrap();
    assert!(raw.is_ascii(), "the header is RFC 2047-encoded: {raw}");
    assert_ne!(raw, format!("[boutique é] ERROR: {msg}"));
    assert_eq!(mail.decoded_header("Subject").unwrap(), format!("[boutique é] ERROR: {msg}"));
    assert!(mail.body_text().contains(&format!("\nMessage:\n\n{msg}\n")));
    let from = mail.header("From").unwrap();
    assert!(from.is_ascii(), "{from}");
    assert_eq!(mail.decoded_header("From").unwrap().replace('"', ""), "Équipe paiements <alerts@example.com>");
}

#[test]
fn a_long_subject_is_cut_to_200_chars() {
    let smtp = FakeSmtp::start();
    let (d, guard) = start(builder(&smtp));
    let long = "ä".repeat(400);
    log(&d, || tracing::error!("{long}"));
    let mail = one_mail(&smtp, &guard);
    let subject = mail.decoded_header("Subject").unwrap();
    assert_eq!(subject.chars().count(), 200);
    assert!(subject.starts_with("[shop] ERROR: ää"));
    assert!(subject.ends_with('…'));
    assert!(mail.body_text().contains(&long), "the body keeps the whole message");
}

#[test]
fn auth_plain() {
    let smtp = FakeSmtp::builder().credentials("alerts", "s3cret-pw").start();
    let (d, guard) = start(builder(&smtp).credentials("alerts", "s3cret-pw"));
    log(&d, || tracing::error!("boom"));
    let mail = one_mail(&smtp, &guard);
    assert_eq!(mail.auth_user.as_deref(), Some("alerts"));
    assert_eq!(count_commands(&smtp, "AUTH PLAIN"), 1);
}

#[test]
fn auth_login() {
    let smtp = FakeSmtp::builder().credentials("alerts", "s3cret-pw").auth_mechanisms(&["LOGIN"]).start();
    let (d, guard) = start(builder(&smtp).credentials("alerts", "s3cret-pw"));
    log(&d, || tracing::error!("boom"));
    let mail = one_mail(&smtp, &guard);
    assert_eq!(mail.auth_user.as_deref(), Some("alerts"));
    assert_eq!(count_commands(&smtp, "AUTH LOGIN"), 1);
    assert_eq!(count_commands(&smtp, "AUTH PLAIN"), 0);
}

#[test]
fn wrong_password_is_permanent_and_never_shown() {
    let smtp = FakeSmtp::builder().credentials("alerts", "right-pw").start();
    let b = builder(&smtp).credentials("alerts", "hunter2-wrong");
    assert!(!format!("{b:?}").contains("hunter2"), "{b:?}");
    let (d, guard) = start(b);
    log(&d, || tracing::error!("boom"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(smtp.mail_count(), 0);
    let s = mail_stats(&guard);
    assert_eq!((s.failed, s.retried, s.delivered), (1, 0, 0), "{s}");
    assert_eq!(count_commands(&smtp, "AUTH"), 1, "535 is not retried");
    let err = s.last_error.clone().unwrap();
    assert!(err.contains("535"), "{err}");
    for text in [err, format!("{s:?}"), format!("{:?}", guard.stats())] {
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[test]
fn starttls_with_auth() {
    let smtp = FakeSmtp::builder().starttls().require_tls().credentials("alerts", "pw").start();
    let (d, guard) = start(
        builder(&smtp)
            .starttls()
            .port(smtp.port())
            .add_root_certificate(smtp.certificate_pem())
            .credentials("alerts", "pw"),
    );
    log(&d, || tracing::error!("over TLS"));
    let mail = one_mail(&smtp, &guard);
    assert!(mail.tls);
    assert_eq!(mail.auth_user.as_deref(), Some("alerts"));
    assert_eq!(smtp.tls_sessions(), 1);
    let cmds = smtp.commands();
    let starttls = cmds.iter().position(|c| c == "STARTTLS").expect("STARTTLS sent");
    let auth = cmds.iter().position(|c| c.starts_with("AUTH")).expect("AUTH sent");
    assert!(starttls < auth, "credentials only after the upgrade: {cmds:?}");
}

#[test]
fn implicit_tls() {
    let smtp = FakeSmtp::builder().implicit_tls().start();
    let (d, guard) =
        start(builder(&smtp).implicit_tls().port(smtp.port()).add_root_certificate(smtp.certificate_pem()));
    log(&d, || tracing::error!("over SMTPS"));
    let mail = one_mail(&smtp, &guard);
    assert!(mail.tls);
    assert_eq!(smtp.tls_sessions(), 1);
    assert_eq!(count_commands(&smtp, "STARTTLS"), 0);
}

#[test]
fn starttls_required_refuses_a_server_without_it() {
    let smtp = FakeSmtp::builder().credentials("alerts", "pw").start();
    let (d, guard) = start(builder(&smtp).starttls().port(smtp.port()).credentials("alerts", "pw"));
    log(&d, || tracing::error!("must not go in clear"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(smtp.mail_count(), 0);
    assert_eq!(count_commands(&smtp, "AUTH"), 0, "no credentials sent in clear");
    assert_eq!(count_commands(&smtp, "MAIL"), 0);
    let s = mail_stats(&guard);
    assert_eq!((s.failed, s.retried), (1, 0), "{s}");
    assert!(s.last_error.unwrap().contains("STARTTLS"));
}

#[test]
fn an_untrusted_certificate_is_refused() {
    let smtp = FakeSmtp::builder().starttls().start();
    let (d, guard) = start(builder(&smtp).starttls().port(smtp.port()));
    log(&d, || tracing::error!("to an impostor"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(smtp.mail_count(), 0);
    let s = mail_stats(&guard);
    assert_eq!((s.failed, s.retried), (1, 0), "{s}");
    assert!(s.last_error.unwrap().contains("certificate"));
}

#[test]
fn trusting_another_servers_certificate_is_not_enough() {
    // Each fake makes its own key and certificate: trusting one does not trust the other.
    let other = FakeSmtp::builder().starttls().start();
    let smtp = FakeSmtp::builder().starttls().start();
    assert_ne!(other.certificate_pem(), smtp.certificate_pem());
    assert!(smtp.certificate_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    let (d, guard) = start(builder(&smtp).starttls().port(smtp.port()).add_root_certificate(other.certificate_pem()));
    log(&d, || tracing::error!("to the wrong server"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(smtp.mail_count(), 0);
    let s = mail_stats(&guard);
    assert_eq!((s.failed, s.retried), (1, 0), "{s}");
    assert!(s.last_error.unwrap().contains("certificate"));
}

#[test]
fn an_escalation_batch_is_one_mail_with_the_records_in_order() {
    let smtp = FakeSmtp::start();
    // With a rate limit of 1 per callsite: an escalation passes whole (its records were
    // already selected), even two records of one callsite.
    let (handler, guard) = builder(&smtp).rate_limit(1, Duration::from_secs(3600)).build_handler().unwrap();
    let mut a = Record::new(Level::INFO, "shop::cart", "cart loaded");
    a.fields.set("items", Value::U64(3));
    let b = Record::new(Level::WARN, "shop::pay", "card declined once");
    let b2 = Record::new(Level::WARN, "shop::pay", "card declined twice");
    let c = Record::new(Level::DEBUG, "shop::pay", "retrying with\nbackup gateway");
    let trigger = Record::new(Level::ERROR, "shop::pay", "payment failed");
    assert_eq!(b.fingerprint, b2.fingerprint);
    handler.handle_batch(Batch::new(BatchReason::Escalation, vec![a, b, b2, c, trigger]));
    let mail = one_mail(&smtp, &guard);
    assert_eq!(mail.header("Subject"), Some("[shop] ERROR: payment failed"));
    let body = mail.body_text();
    assert!(body.starts_with("Message type:    ERROR\nTarget:          shop::pay\n"), "{body}");
    let (_, related) = body.split_once("\nLog records that led up to this one:\n\n").expect("the related section");
    let lines: Vec<&str> = related.lines().collect();
    assert_eq!(lines.len(), 4, "{related}");
    assert!(lines[0].ends_with(" INFO shop::cart: cart loaded items=3"), "{}", lines[0]);
    assert!(lines[1].ends_with(" WARN shop::pay: card declined once"), "{}", lines[1]);
    assert!(lines[2].ends_with(" WARN shop::pay: card declined twice"), "{}", lines[2]);
    assert!(lines[3].ends_with(" DEBUG shop::pay: retrying with backup gateway"), "{}", lines[3]);
    assert_eq!(mail_stats(&guard).delivered, 5);
    assert_eq!(smtp.mail_count(), 1);
}

#[test]
fn a_group_batch_is_one_mail_led_by_its_first_record() {
    let smtp = FakeSmtp::start();
    let (handler, guard) = builder(&smtp).build_handler().unwrap();
    let first = Record::new(Level::ERROR, "jobs", "nightly export failed");
    let rest = Record::new(Level::INFO, "jobs", "exported 10 rows");
    handler.handle_batch(Batch::new(BatchReason::Group, vec![first, rest]));
    let mail = one_mail(&smtp, &guard);
    assert_eq!(mail.header("Subject"), Some("[shop] ERROR: nightly export failed"));
    let body = mail.body_text();
    let (head, related) = body.split_once("\nOther log records in the same group:\n\n").expect("the group section");
    assert!(head.contains("\nMessage:\n\nnightly export failed\n"), "{head}");
    assert!(related.trim_end().ends_with(" INFO jobs: exported 10 rows"), "{related}");
}

#[test]
fn independent_records_arriving_together_make_one_digest() {
    let smtp = FakeSmtp::start();
    let (d, guard) = start(builder(&smtp).batch_wait(Duration::from_millis(500)));
    log(&d, || {
        tracing::error!("first");
        tracing::error!("second");
        tracing::error!("third");
    });
    let mail = one_mail(&smtp, &guard);
    assert_eq!(mail.header("Subject"), Some("[shop] ERROR: third (+2 more)"));
    let body = mail.body_text();
    assert!(body.starts_with("3 log records:\n\n---- 1 of 3 ----\n"), "{body}");
    let (p1, p2, p3) =
        (body.find("\n\nfirst\n").unwrap(), body.find("\n\nsecond\n").unwrap(), body.find("\n\nthird\n").unwrap());
    assert!(p1 < p2 && p2 < p3);
}

#[test]
fn a_flush_batch_of_several_records_is_one_digest() {
    let smtp = FakeSmtp::start();
    let (handler, guard) = builder(&smtp).build_handler().unwrap();
    let a = Record::new(Level::ERROR, "jobs", "export failed");
    let b = Record::new(Level::WARN, "jobs", "export slow");
    handler.handle_batch(Batch::new(BatchReason::Flush, vec![a, b]));
    let mail = one_mail(&smtp, &guard);
    assert_eq!(mail.header("Subject"), Some("[shop] ERROR: export failed (+1 more)"));
    let body = mail.body_text();
    assert!(body.starts_with("2 log records:\n\n---- 1 of 2 ----\n"), "{body}");
    assert!(body.contains("\n\nexport failed\n") && body.contains("\n\nexport slow"), "{body}");
}

#[test]
fn four_records_with_limit_one_give_one_mail_then_three_suppressed() {
    let smtp = FakeSmtp::start();
    let (d, _guard) = start(builder(&smtp).rate_limit(1, Duration::from_millis(400)));
    let emit = |d: &Dispatch| log(d, || tracing::error!("database unreachable"));
    for _ in 0..4 {
        emit(&d);
    }
    let first = smtp.wait_for_mails(1, WAIT);
    assert_eq!(first.len(), 1);
    assert!(!first[0].body_text().contains("more times and was suppressed"), "{}", first[0].body_text());
    std::thread::sleep(Duration::from_millis(500));
    emit(&d);
    let mails = smtp.wait_for_mails(2, WAIT);
    assert_eq!(mails.len(), 2);
    assert!(
        mails[1].body_text().contains("\nThis message occurred 3 more times and was suppressed.\n"),
        "{}",
        mails[1].body_text()
    );
    assert_eq!(mails[1].header("Subject"), Some("[shop] ERROR: database unreachable"));
}

#[test]
fn suppressed_count_is_mailed_at_flush() {
    let smtp = FakeSmtp::start();
    let (d, guard) = start(builder(&smtp).rate_limit(1, Duration::from_secs(3600)));
    for _ in 0..4 {
        log(&d, || tracing::error!("database unreachable"));
    }
    smtp.wait_for_mails(1, WAIT);
    assert!(guard.flush(WAIT).is_complete());
    let mails = smtp.wait_for_mails(2, WAIT);
    assert_eq!(mails.len(), 2);
    assert!(mails[1].body_text().contains("This message occurred 3 more times and was suppressed."));
}

#[test]
fn a_421_then_250_is_retried_and_delivered_once() {
    let smtp = FakeSmtp::start();
    smtp.push(Step::MailFrom, Answer::reply(421, "4.3.2 service not available, try later"));
    let (d, guard) = start(builder(&smtp));
    log(&d, || tracing::error!("retry me"));
    let mail = one_mail(&smtp, &guard);
    assert_eq!(mail.header("Subject"), Some("[shop] ERROR: retry me"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(smtp.mail_count(), 1, "delivered once");
    assert_eq!(count_commands(&smtp, "MAIL FROM"), 2);
    let s = mail_stats(&guard);
    assert_eq!((s.delivered, s.retried, s.failed), (1, 1, 0), "{s}");
}

#[test]
fn a_451_after_data_is_retried() {
    let smtp = FakeSmtp::start();
    smtp.push(Step::DataEnd, Answer::reply(451, "4.3.0 local error"));
    let (d, guard) = start(builder(&smtp));
    log(&d, || tracing::error!("retry me"));
    let mail = one_mail(&smtp, &guard);
    assert!(mail.body_text().contains("retry me"));
    assert_eq!(count_commands(&smtp, "DATA"), 2);
    assert_eq!(mail_stats(&guard).retried, 1);
}

#[test]
fn a_550_is_not_retried_and_later_mails_go_through() {
    let smtp = FakeSmtp::start();
    smtp.push(Step::RcptTo, Answer::reply(550, "5.1.1 mailbox unavailable"));
    let (d, guard) = start(builder(&smtp));
    log(&d, || tracing::error!("lost to 550"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(smtp.mail_count(), 0);
    assert_eq!(count_commands(&smtp, "RCPT TO"), 1, "not retried");
    let s = mail_stats(&guard);
    assert_eq!((s.failed, s.retried, s.delivered), (1, 0, 0), "{s}");
    assert!(s.last_error.unwrap().contains("550"));

    log(&d, || tracing::error!("after the failure"));
    assert!(guard.flush(WAIT).is_complete());
    let mails = smtp.wait_for_mails(2, WAIT);
    assert_eq!(mails[0].header("Subject"), Some("[shop] ERROR: after the failure"));
    // Then watchbell's notice of the record it could not deliver.
    assert!(mails[1].body_text().contains("1 records could not be delivered"), "{}", mails[1].body_text());
}

#[test]
fn a_stalled_server_times_out_and_the_mail_is_retried() {
    let smtp = FakeSmtp::start();
    smtp.push(Step::Data, Answer::Stall);
    let (d, guard) = start(builder(&smtp).timeout(Duration::from_millis(500)));
    let t0 = Instant::now();
    log(&d, || tracing::error!("slow server"));
    let mail = one_mail(&smtp, &guard);
    assert!(t0.elapsed() >= Duration::from_millis(500), "waited for the timeout");
    assert!(mail.body_text().contains("slow server"));
    assert!(smtp.connections() >= 2, "a new connection after the stalled one");
    assert_eq!(smtp.mail_count(), 1);
    assert_eq!(mail_stats(&guard).retried, 1);
}

#[test]
fn connections_are_reused() {
    let smtp = FakeSmtp::start();
    let (d, guard) = start(builder(&smtp));
    for i in 0..3 {
        log(&d, || tracing::error!(n = i, "mail {i}"));
        assert!(guard.flush(WAIT).is_complete());
        assert_eq!(smtp.wait_for_mails(i + 1, WAIT).len(), i + 1);
    }
    assert_eq!(smtp.connections(), 1, "{:?}", smtp.commands());
    assert!(smtp.mails().iter().all(|m| m.connection == 0));
}

#[test]
fn a_megabyte_multibyte_message_arrives_whole() {
    let smtp = FakeSmtp::start();
    let (d, guard) = start(builder(&smtp));
    let unit = "é✓💶 ligne\n.\n..point\n";
    let big = unit.repeat(1_000_000 / unit.len() + 1);
    assert!(big.len() > 1_000_000);
    log(&d, || tracing::error!("{big}"));
    let mail = one_mail(&smtp, &guard);
    let body = mail.body_text();
    assert!(
        body.contains(&format!("\nMessage:\n\n{}", big.trim_end())),
        "the message survives dot-stuffing and encoding"
    );
    let subject = mail.decoded_header("Subject").unwrap();
    assert!(subject.chars().count() <= 200 && !subject.contains('\n'));
}

#[test]
fn a_body_over_the_limit_is_cut_at_a_char_boundary() {
    let smtp = FakeSmtp::start();
    let (d, guard) = start(builder(&smtp).max_body_bytes(100_000));
    let big = "é✓💶".repeat(50_000);
    log(&d, || tracing::error!("{big}"));
    let mail = one_mail(&smtp, &guard);
    let body = mail.body_text();
    assert!(body.len() <= 100_000, "{}", body.len());
    assert!(body.len() > 90_000);
    assert!(!body.contains('\u{fffd}'), "no char cut in half");
    assert!(body.trim_end().ends_with(MARKER));
}

#[test]
fn a_custom_format_replaces_the_block() {
    let smtp = FakeSmtp::start();
    let (d, guard) = start(builder(&smtp).format(|r: &Record, cx: &watchbell_core::format::FormatContext| {
        format!("{} says {}: {}", cx.app.as_deref().unwrap_or("?"), r.level, r.message)
    }));
    log(&d, || tracing::error!("custom"));
    let mail = one_mail(&smtp, &guard);
    assert_eq!(mail.body_text(), "shop says ERROR: custom\n");
}

#[test]
fn a_panicking_custom_format_is_caught_and_the_mail_still_sent() {
    let smtp = FakeSmtp::start();
    let (d, guard) = start(
        builder(&smtp)
            .format(|_: &Record, _: &watchbell_core::format::FormatContext| -> String { panic!("format bug") }),
    );
    log(&d, || tracing::error!("still delivered"));
    let mail = one_mail(&smtp, &guard);
    let body = mail.body_text();
    assert!(
        body.starts_with("(the custom mail format panicked; the default layout follows)\n\nMessage type:    ERROR\n")
    );
    assert!(body.contains("\nMessage:\n\nstill delivered\n"));
    log(&d, || tracing::error!("the app goes on"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(smtp.wait_for_mails(2, WAIT).len(), 2);
}

#[test]
fn shutdown_delivers_what_is_pending_with_the_default_pace() {
    let smtp = FakeSmtp::start();
    // Default pace and coalescing wait: shutdown must not wait for them.
    let b = MailLayer::builder("127.0.0.1")
        .plain()
        .port(smtp.port())
        .from("alerts@example.com")
        .to("ops@example.com")
        .app("shop");
    let (d, guard) = start(b);
    log(&d, || {
        tracing::error!("first");
        tracing::error!("second");
    });
    let t0 = Instant::now();
    assert!(guard.shutdown(WAIT).is_complete());
    assert!(t0.elapsed() < Duration::from_secs(15));
    let mails = smtp.wait_for_mails(1, WAIT);
    let bodies: String = mails.iter().map(Mail::body_text).collect();
    assert!(bodies.contains("\n\nfirst\n") && bodies.contains("\n\nsecond\n"), "{bodies}");
    // The worker closed its connection (QUIT) before the shutdown returned: a process that
    // exits right after it still says goodbye.
    assert_eq!(smtp.commands().last().map(String::as_str), Some("QUIT"), "{:?}", smtp.commands());
    // A MIME entity: MIME-Version with its Content-Type (RFC 2045 §4).
    assert_eq!(mails[0].header("MIME-Version"), Some("1.0"), "{}", mails[0].data);
    assert!(mails[0].header("Content-Type").is_some_and(|c| c.starts_with("text/plain; charset=utf-8")));
}

#[test]
fn build_errors_name_the_setting_and_hide_the_password() {
    let smtp = FakeSmtp::start();
    let base = || builder(&smtp).credentials("alerts", "hunter2");
    let err = |b: MailBuilder| b.build_handler().map(|_| ()).unwrap_err();

    let e = err(MailLayer::builder("smtp.example.com").to("ops@example.com").credentials("u", "hunter2"));
    assert_eq!(e.key, "from");
    let e = err(MailLayer::builder("smtp.example.com").from("a@example.com"));
    assert_eq!(e.key, "to");
    let e = err(base().to("not a mailbox"));
    assert_eq!(e.key, "to[1]");
    let e = err(base().from("x@example.com\r\nBcc: y@example.com"));
    assert_eq!(e.key, "from");
    let e = err(base().subject("{lvl}"));
    assert_eq!(e.key, "subject");
    let e = err(MailLayer::builder("smtp.example.com")
        .plain()
        .from("a@example.com")
        .to("b@example.com")
        .credentials("u", "hunter2"));
    assert_eq!(e.key, "security");
    assert!(e.to_string().contains("allow_plain_http"), "{e}");
    let e = err(base().starttls().add_root_certificate("not pem"));
    assert_eq!(e.key, "root_certificates[0]");
    let e = err(MailLayer::builder("").from("a@example.com").to("b@example.com"));
    assert_eq!(e.key, "host");
    // Plain SMTP to a remote relay with the opt-in builds.
    assert!(MailLayer::builder("relay.internal")
        .plain()
        .allow_plain_http(true)
        .from("a@example.com")
        .to("b@example.com")
        .build_handler()
        .is_ok());
    let b = base();
    let text = format!("{b:?}");
    assert!(!text.contains("hunter2") && text.contains("alerts"), "{text}");
}

/// The ticket link is a header line of the record's block (kept when the body is cut), and only
/// a mail the server took is told to the journal.
#[test]
fn the_ticket_link_line_and_the_journal() {
    let smtp = FakeSmtp::start();
    let link = watchbell_core::TicketLink::new("https://t.example", "shop mail").unwrap();
    let journal = watchbell_core::notified::subscribe(100);
    smtp.push(Step::RcptTo, Answer::reply(550, "5.1.1 mailbox unavailable"));
    let (d, guard) = start(builder(&smtp).ticket_link(link.clone()).max_body_bytes(2048));
    log(&d, || tracing::error!("refused\r\nBcc: x@example.com"));
    assert!(guard.flush(WAIT).is_complete());
    log(&d, || tracing::error!("{}", "long ".repeat(2_000)));
    let mails = smtp.wait_for_mails(1, WAIT);
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let body = mails[0].body_text();
    let notes: Vec<_> = journal.drain().into_iter().filter(|n| n.app_id == link.app_id()).collect();
    assert_eq!(notes.len(), 1, "only the mail the server took: {notes:?}");
    assert_eq!(notes[0].destination, "mail");
    let line = format!("Ticket:          {}", link.url_for(&notes[0].fingerprint));
    assert!(body.lines().any(|l| l == line), "{body}");
    assert!(body.lines().position(|l| l == line) < body.lines().position(|l| l == "Message:"), "{body}");
    assert!(body.trim_end().ends_with(MARKER), "the body was cut: {}", &body[body.len() - 100..]);
}
