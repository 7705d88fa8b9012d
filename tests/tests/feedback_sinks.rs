//! Feedback-proof, sink by sink: with a global TRACE subscriber and the `log` bridge, what
//! watchbell's own clients log while delivering — reqwest/hyper (HTTP collector), lettre (SMTP),
//! the `postgres` crate through `log` (tickets), the syslog TCP writer — is never captured by a
//! watchbell layer: each destination receives exactly the one application record.

use std::time::Duration;

use tracing::Level;
use tracing_subscriber::prelude::*;
use watchbell_core::SinkOptions;
use watchbell_test::collectors::FakeNdjson;
use watchbell_test::feedback::OwnThreadEvents;
use watchbell_test::smtp::FakeSmtp;
use watchbell_test::syslog::FakeSyslog;
use watchbell_test::TestLayer;
use watchbell_ticketing::{TicketQuery, TicketStore};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn sinks_never_capture_their_own_clients_logs_at_trace() {
    watchbell_log::LogBridge::new().init().unwrap();
    let collector = FakeNdjson::start();
    let smtp = FakeSmtp::start();
    let syslog = FakeSyslog::tcp();
    let prefix = format!("feedback{}_", std::process::id());

    let (http, http_guard) = watchbell_http::HttpLayer::builder(collector.url())
        .level(Level::TRACE)
        .batch_wait(Duration::ZERO)
        .build()
        .unwrap();
    let (mail, mail_guard) = watchbell_mail::MailLayer::builder("127.0.0.1")
        .plain()
        .port(smtp.port())
        .from("alerts@example.com")
        .to("ops@example.com")
        .level(Level::TRACE)
        .pace(Duration::ZERO)
        .batch_wait(Duration::ZERO)
        .build()
        .unwrap();
    let (tickets, tickets_guard) = watchbell_ticketing::TicketingLayer::builder(watchbell_test::postgres::url())
        .table_prefix(prefix.clone())
        .level(Level::TRACE)
        .build()
        .unwrap();
    let (sys, sys_guard) = watchbell_syslog::SyslogLayer::builder()
        .tcp(syslog.addr().unwrap().to_string())
        .level(Level::TRACE)
        .build()
        .unwrap();
    let guard = http_guard.join(mail_guard).join(tickets_guard).join(sys_guard);
    let everything = TestLayer::new();
    let own = OwnThreadEvents::new();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(http)
            .with(mail)
            .with(tickets)
            .with(sys)
            .with(everything.clone())
            .with(own.clone()),
    )
    .unwrap();

    tracing::error!(order = 42, "the one application record");
    assert!(guard.flush(WAIT).is_complete());
    // Give a feedback loop, if there were one, time to show.
    std::thread::sleep(Duration::from_millis(500));
    assert!(guard.flush(WAIT).is_complete());

    assert!(own.count() > 0, "the clients logged on watchbell's threads");
    let own_captured: Vec<_> = everything
        .records()
        .into_iter()
        .filter(|r| r.thread_name.as_deref().is_some_and(|n| n.starts_with("watchbell")))
        .collect();
    assert!(own_captured.is_empty(), "{own_captured:?}");

    let shipped = collector.records();
    assert_eq!(shipped.len(), 1, "{shipped:?}");
    assert_eq!(shipped[0]["message"], "the one application record");
    let mails = smtp.wait_for_mails(1, WAIT);
    assert_eq!(mails.len(), 1, "{mails:?}");
    let frames = syslog.wait_for_frames(1, WAIT);
    assert_eq!(frames.len(), 1, "{frames:?}");
    let mut store = TicketStore::open_with(&watchbell_test::postgres::url(), &prefix, Duration::from_secs(5)).unwrap();
    let listed = store.list_tickets(&TicketQuery::default()).unwrap();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let _ = guard.shutdown(Duration::from_secs(5));
    // Nothing more arrived after the flushes.
    assert_eq!(collector.records().len(), 1);
    assert_eq!(smtp.mails().len(), 1);
    assert_eq!(
        syslog.frames().len(),
        1,
        "{:#?}",
        syslog.messages().iter().map(|m| m.message.clone()).collect::<Vec<_>>()
    );
}
