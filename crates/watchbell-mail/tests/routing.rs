//! Custom headers, recipients per record and the related records' format, over real SMTP to
//! the loopback fake.

use std::time::{Duration, SystemTime};

use watchbell_core::format::Template;
use watchbell_core::{Batch, BatchReason, Guard, Level, Record, Retry, Stats, Value};
use watchbell_mail::{MailBuilder, MailLayer, Route, SinkOptions};
use watchbell_test::smtp::{Answer, FakeSmtp, Mail, Step};

const WAIT: Duration = Duration::from_secs(20);

/// A handler to the plain fake, with no pace, no coalescing wait and no rate limit.
fn builder(smtp: &FakeSmtp) -> MailBuilder {
    MailLayer::builder("127.0.0.1")
        .plain()
        .port(smtp.port())
        .from("alerts@example.com")
        .to("ops@example.com")
        .app("shop")
        .host_name("web-1")
        .pace(Duration::ZERO)
        .batch_wait(Duration::ZERO)
        .no_rate_limit()
        .retry(Retry {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
            budget: Duration::from_secs(10),
            ..Retry::default()
        })
        .timeout(Duration::from_secs(5))
}

fn mail_stats(guard: &Guard) -> Stats {
    guard.stats().into_iter().find(|s| s.name.starts_with("mail:")).expect("the delivery's stats")
}

fn mails(smtp: &FakeSmtp, guard: &Guard, n: usize) -> Vec<Mail> {
    assert!(guard.flush(WAIT).is_complete());
    let mails = smtp.wait_for_mails(n, WAIT);
    assert_eq!(mails.len(), n, "{mails:#?}");
    mails
}

fn record(level: Level, target: &str, message: &str) -> Record {
    let mut r = Record::new(level, target.to_owned(), message);
    r.time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    r
}

/// The messages of a digest (or single) mail's blocks, in order.
fn messages(mail: &Mail) -> Vec<String> {
    let body = mail.body_text();
    body.split("\nMessage:\n\n").skip(1).map(|rest| rest.lines().next().unwrap_or("").to_owned()).collect()
}

/// Routing by target, and by level and field, with the default for the rest.
fn routed(smtp: &FakeSmtp) -> MailBuilder {
    builder(smtp)
        .add_route(Route::to(["Billing <billing@example.com>"]).target("shop::billing"))
        .add_route(Route::to(["db@example.com", "dba@example.com"]).level(Level::WARN).field("db", "main"))
}

fn db(level: Level, message: &str) -> Record {
    let mut r = record(level, "shop::store", message);
    r.fields.set("db", Value::Str("main".into()));
    r
}

#[test]
fn custom_headers_arrive_exactly_on_every_mail() {
    let smtp = FakeSmtp::start();
    let (handler, guard) = builder(&smtp)
        .header("X-Team", "payments")
        .header("Reply-To", "Payments <payments@example.com>")
        .header("X-Site", "Zürich 日本")
        .header("x-team", "payments-eu")
        .build_handler()
        .unwrap();
    handler.handle(record(Level::ERROR, "shop", "one"));
    mails(&smtp, &guard, 1);
    handler.handle(record(Level::ERROR, "shop", "two"));
    let got = mails(&smtp, &guard, 2);
    for mail in &got {
        // Set twice: the second value replaces the first, under the name as set last.
        assert_eq!(mail.header_all("X-Team"), ["payments-eu"], "{:?}", mail.headers);
        assert_eq!(mail.headers.iter().filter(|(n, _)| n == "x-team").count(), 1, "{:?}", mail.headers);
        assert_eq!(mail.header("Reply-To"), Some("Payments <payments@example.com>"));
        assert_eq!(mail.decoded_header("X-Site").as_deref(), Some("Zürich 日本"));
        assert!(mail.header("X-Site").unwrap().is_ascii(), "encoded: {:?}", mail.header("X-Site"));
        // watchbell's own headers are still there once each.
        for own in ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"] {
            assert_eq!(mail.header_all(own).len(), 1, "{own} in {:?}", mail.headers);
        }
        assert_eq!(mail.to, ["ops@example.com"]);
    }
}

#[test]
fn header_injection_and_watchbells_own_headers_are_refused() {
    let smtp = FakeSmtp::start();
    let refused = [
        ("X-Team", "payments\r\nBcc: victim@example.com", "control character"),
        ("X-Team", "payments\nBcc: victim@example.com", "control character"),
        ("X-Team", "payments\rX-Injected: 1", "control character"),
        ("X-Team", "nul\0byte", "control character"),
        ("X-Team\r\nBcc", "victim@example.com", "not a header name"),
        ("X-Team: x", "y", "not a header name"),
        ("X Team", "y", "not a header name"),
        ("", "y", "not a header name"),
        ("X-Ünïcode", "y", "not a header name"),
        ("Bcc", "victim@example.com", "written by watchbell"),
        ("cc", "victim@example.com", "written by watchbell"),
        ("To", "victim@example.com", "written by watchbell"),
        ("FROM", "ceo@example.com", "written by watchbell"),
        ("Subject", "x", "written by watchbell"),
        ("Date", "Mon, 1 Jan 2001 00:00:00 +0000", "written by watchbell"),
        ("Message-ID", "<x@example.com>", "written by watchbell"),
        ("MIME-Version", "2.0", "written by watchbell"),
        ("Content-Type", "text/html", "written by watchbell"),
        ("content-transfer-encoding", "base64", "written by watchbell"),
    ];
    for (name, value, why) in refused {
        let err =
            builder(&smtp).header(name, value).build_handler().err().unwrap_or_else(|| panic!("{name:?}: {value:?}"));
        let text = err.to_string();
        assert!(text.contains("header["), "{name:?}: {text}");
        assert!(text.contains(why), "{name:?}: {value:?}: {text}");
    }
    let long = "x".repeat(901);
    assert!(builder(&smtp).header("X-Long", long).build_handler().is_err());
    // Nothing was sent by any of them.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(smtp.mail_count(), 0);
}

#[test]
fn a_mixed_batch_is_split_per_recipient_set_with_two_routes_and_the_default() {
    let smtp = FakeSmtp::start();
    let (handler, guard) = routed(&smtp).build_handler().unwrap();
    handler.handle_batch(Batch::new(
        BatchReason::Flush,
        vec![
            record(Level::ERROR, "shop::billing::invoice", "invoice failed"),
            record(Level::ERROR, "shop::cart", "cart failed"),
            db(Level::WARN, "replica lag"),
            // Below the db route's level: the default.
            db(Level::INFO, "db info"),
            record(Level::WARN, "shop::billing", "card declined"),
        ],
    ));
    let got = mails(&smtp, &guard, 3);
    // One mail per recipient set, in the order of each set's first record.
    assert_eq!(got[0].to, ["billing@example.com"]);
    assert_eq!(got[0].header("To"), Some("Billing <billing@example.com>"));
    assert_eq!(messages(&got[0]), ["invoice failed", "card declined"]);
    assert_eq!(got[0].header("Subject"), Some("[shop] ERROR: invoice failed (+1 more)"));
    assert_eq!(got[1].to, ["ops@example.com"]);
    assert_eq!(messages(&got[1]), ["cart failed", "db info"]);
    assert_eq!(got[2].to, ["db@example.com", "dba@example.com"]);
    assert_eq!(got[2].header("Subject"), Some("[shop] WARN: replica lag"));
    assert_eq!(messages(&got[2]), ["replica lag"]);
    let s = mail_stats(&guard);
    assert_eq!((s.delivered, s.failed, s.retried), (5, 0, 0), "{s}");
    assert_eq!(smtp.mail_count(), 3);
}

#[test]
fn the_route_closure_comes_first_and_none_falls_back_to_the_rules() {
    let smtp = FakeSmtp::start();
    let (handler, guard) = routed(&smtp)
        .route(|r| match r.field("tenant")?.as_str()? {
            "panic" => panic!("a bug in the closure"),
            "broken" => Some(vec!["not an address".into(), "x\r\nBcc: y@example.com".into()]),
            tenant => Some(vec![format!("{tenant}-oncall@example.com")]),
        })
        .build_handler()
        .unwrap();
    let tenant = |target: &str, t: &str, m: &str| {
        let mut r = record(Level::ERROR, target, m);
        r.fields.set("tenant", Value::Str(t.into()));
        r
    };
    handler.handle_batch(Batch::new(
        BatchReason::Flush,
        vec![
            tenant("shop::billing", "acme", "acme billing"),
            record(Level::ERROR, "shop::billing", "plain billing"),
            tenant("shop::billing", "panic", "closure panicked"),
            tenant("shop::cart", "broken", "no usable address"),
        ],
    ));
    let got = mails(&smtp, &guard, 3);
    let to: Vec<(Vec<String>, Vec<String>)> = got.iter().map(|m| (m.to.clone(), messages(m))).collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        to,
        [
            (s(&["acme-oncall@example.com"]), s(&["acme billing"])),
            // No answer from the closure, a panic: the rules.
            (s(&["billing@example.com"]), s(&["plain billing", "closure panicked"])),
            // No usable address (and no line break smuggled in): the default.
            (s(&["ops@example.com"]), s(&["no usable address"])),
        ]
    );
    assert_eq!(mail_stats(&guard).delivered, 4);
}

#[test]
fn an_escalation_is_one_mail_to_its_triggers_recipients() {
    let smtp = FakeSmtp::start();
    let (handler, guard) = routed(&smtp).build_handler().unwrap();
    handler.handle_batch(Batch::new(
        BatchReason::Escalation,
        vec![
            record(Level::DEBUG, "shop::cart", "cart loaded"),
            db(Level::WARN, "replica lag"),
            record(Level::ERROR, "shop::billing", "payment failed"),
        ],
    ));
    let got = mails(&smtp, &guard, 1);
    assert_eq!(got[0].to, ["billing@example.com"]);
    assert_eq!(got[0].header("Subject"), Some("[shop] ERROR: payment failed"));
    assert_eq!(mail_stats(&guard).delivered, 3);
}

#[test]
fn a_part_that_must_be_retried_is_sent_once_and_the_others_are_not_sent_again() {
    let smtp = FakeSmtp::start();
    let (handler, guard) = routed(&smtp).build_handler().unwrap();
    // The first mail (to ops) is put off; the second (to billing) goes.
    smtp.push(Step::DataEnd, Answer::reply(451, "4.3.0 try again later"));
    // A field that is not equal to itself must not make the batch look new on the retry.
    let mut billing = record(Level::ERROR, "shop::billing", "invoice failed");
    billing.fields.set("ratio", Value::F64(f64::NAN));
    handler.handle_batch(Batch::new(
        BatchReason::Flush,
        vec![
            record(Level::ERROR, "shop::cart", "cart failed"),
            billing,
            record(Level::ERROR, "shop::cart", "cart failed again"),
        ],
    ));
    let got = mails(&smtp, &guard, 2);
    eprintln!("COMMANDS {:?}", smtp.commands());
    for m in &got {
        eprintln!("MAIL {:?} {:?}", m.to, m.header("Subject"));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(smtp.mail_count(), 2, "no mail went twice: {:#?}", smtp.mails());
    assert_eq!(got[0].to, ["billing@example.com"]);
    assert_eq!(messages(&got[0]), ["invoice failed"]);
    assert_eq!(got[1].to, ["ops@example.com"]);
    assert_eq!(messages(&got[1]), ["cart failed", "cart failed again"]);
    let s = mail_stats(&guard);
    assert_eq!((s.delivered, s.failed, s.retried), (3, 0, 1), "{s}");
}

#[test]
fn a_part_refused_for_good_fails_alone_and_is_counted_exactly() {
    let smtp = FakeSmtp::start();
    let (handler, guard) = routed(&smtp).build_handler().unwrap();
    // The first mail (to ops, two records) is refused; the second (to billing) goes.
    smtp.push(Step::DataEnd, Answer::reply(550, "5.1.1 mailbox unavailable"));
    handler.handle_batch(Batch::new(
        BatchReason::Flush,
        vec![
            record(Level::ERROR, "shop::cart", "cart failed"),
            record(Level::ERROR, "shop::billing", "invoice failed"),
            record(Level::ERROR, "shop::cart", "cart failed again"),
        ],
    ));
    // The mail to billing, then the delivery's notice of what it could not deliver.
    let got = mails(&smtp, &guard, 2);
    assert_eq!(got[0].to, ["billing@example.com"]);
    assert_eq!(messages(&got[0]), ["invoice failed"]);
    assert!(got[1].body_text().contains("2 records could not be delivered"), "{}", got[1].body_text());
    let s = mail_stats(&guard);
    assert_eq!((s.delivered, s.failed, s.retried, s.notices), (1, 2, 0, 1), "{s}");
    let error = s.last_error.unwrap_or_default();
    assert!(error.contains("mail to ops@example.com") && error.contains("550"), "{error}");
}

#[test]
fn a_put_off_part_and_a_refused_part_in_one_batch_count_exactly() {
    let smtp = FakeSmtp::start();
    let (handler, guard) = routed(&smtp).build_handler().unwrap();
    // ops: refused; billing: put off once, then accepted; db: accepted at once.
    smtp.push(Step::DataEnd, Answer::reply(550, "5.1.1 mailbox unavailable"));
    smtp.push(Step::DataEnd, Answer::reply(452, "4.3.1 insufficient storage"));
    handler.handle_batch(Batch::new(
        BatchReason::Flush,
        vec![
            record(Level::ERROR, "shop::cart", "cart failed"),
            record(Level::ERROR, "shop::billing", "invoice failed"),
            db(Level::ERROR, "db down"),
            record(Level::ERROR, "shop::billing", "refund failed"),
        ],
    ));
    let got = mails(&smtp, &guard, 3);
    assert_eq!(got[0].to, ["db@example.com", "dba@example.com"]);
    assert_eq!(messages(&got[0]), ["db down"]);
    assert_eq!(got[1].to, ["billing@example.com"]);
    assert_eq!(messages(&got[1]), ["invoice failed", "refund failed"]);
    assert!(got[2].body_text().contains("1 records could not be delivered"), "{}", got[2].body_text());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(smtp.mail_count(), 3, "no mail went twice");
    let s = mail_stats(&guard);
    assert_eq!((s.delivered, s.failed, s.retried, s.notices), (3, 1, 1, 1), "{s}");
}

#[test]
fn related_format_renders_the_records_that_led_up_to_the_trigger() {
    let smtp = FakeSmtp::start();
    // Logbook's MAIL_RELATED_FORMAT_STRING, in watchbell's placeholders.
    let related = Template::parse(
        "Message type:       {level}\nLocation:           {location}\nModule:             {module}\n{message}\n",
    )
    .unwrap();
    let (handler, guard) = builder(&smtp).related_format(related).build_handler().unwrap();
    let mut a = record(Level::INFO, "shop::cart", "cart loaded");
    a.file = Some("src/cart.rs".into());
    a.line = Some(7);
    a.module = Some("shop::cart".into());
    let mut b = record(Level::WARN, "shop::pay", "card declined");
    b.file = Some("src/pay.rs".into());
    b.line = Some(42);
    b.module = Some("shop::pay".into());
    let trigger = record(Level::ERROR, "shop::pay", "payment failed");
    handler.handle_batch(Batch::new(BatchReason::Escalation, vec![a, b, trigger]));
    let got = mails(&smtp, &guard, 1);
    let body = got[0].body_text();
    let (head, related) = body.split_once("\nLog records that led up to this one:\n\n").expect("the related section");
    assert!(head.starts_with("Message type:    ERROR\nTarget:          shop::pay\n"), "{head}");
    assert_eq!(
        related,
        "Message type:       INFO\n\
         Location:           src/cart.rs:7\n\
         Module:             shop::cart\n\
         cart loaded\n\
         \n\
         Message type:       WARN\n\
         Location:           src/pay.rs:42\n\
         Module:             shop::pay\n\
         card declined\n"
    );
}

#[test]
fn a_one_line_related_format_gives_one_line_per_record_and_a_panic_the_default_line() {
    let smtp = FakeSmtp::start();
    let (handler, guard) = builder(&smtp)
        .related_format(|r: &Record, cx: &watchbell_core::format::FormatContext| {
            assert_ne!(r.message, "boom", "a bug in the format");
            format!("[{}] {} {}", cx.app.as_deref().unwrap_or("?"), r.level, r.message)
        })
        .build_handler()
        .unwrap();
    handler.handle_batch(Batch::new(
        BatchReason::Group,
        vec![
            record(Level::ERROR, "jobs", "export failed"),
            record(Level::INFO, "jobs", "exported 10 rows"),
            record(Level::WARN, "jobs", "boom"),
            record(Level::INFO, "jobs", "done"),
        ],
    ));
    let got = mails(&smtp, &guard, 1);
    let body = got[0].body_text();
    let (_, related) = body.split_once("\nOther log records in the same group:\n\n").expect("the group section");
    let lines: Vec<&str> = related.lines().collect();
    assert_eq!(lines.len(), 3, "{related}");
    assert_eq!(lines[0], "[shop] INFO exported 10 rows");
    assert!(lines[1].ends_with(" WARN jobs: boom"), "the default short line: {}", lines[1]);
    assert_eq!(lines[2], "[shop] INFO done");
}

#[test]
fn route_build_errors_name_the_route() {
    let smtp = FakeSmtp::start();
    let err = builder(&smtp).add_route(Route::to(["ok@example.com", "not an address"])).build_handler().err().unwrap();
    assert!(err.to_string().contains("route[0].to[1]"), "{err}");
    let err = builder(&smtp)
        .add_route(Route::to(["ok@example.com"]))
        .add_route(Route::to(Vec::<String>::new()))
        .build_handler()
        .err()
        .unwrap();
    assert!(err.to_string().contains("route[1].to"), "{err}");
}
