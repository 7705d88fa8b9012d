//! Logbook's test case (4): a mail handler over real SMTP (the loopback fake) with `reset`:
//! warning, debug, error, info, error -> 2 mails, each with the records that led up to it.

use std::time::Duration;

use tracing::Dispatch;
use tracing_subscriber::prelude::*;
use watchbell_core::{Level, Retry, SinkOptions};
use watchbell_fingers_crossed::{FingersCrossedLayer, Scope};
use watchbell_mail::MailLayer;
use watchbell_test::smtp::FakeSmtp;

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn reset_mails_one_incident_at_a_time_with_its_context() {
    let smtp = FakeSmtp::start();
    // The mail handler's own level is ERROR: it does not filter the escalated DEBUG context.
    let mail = MailLayer::builder("127.0.0.1")
        .plain()
        .port(smtp.port())
        .from("alerts@example.com")
        .to("ops@example.com")
        .app("shop")
        .level(Level::ERROR)
        .pace(Duration::ZERO)
        .batch_wait(Duration::ZERO)
        .no_rate_limit()
        .retry(Retry { initial: Duration::from_millis(50), budget: Duration::from_secs(10), ..Retry::default() })
        .timeout(Duration::from_secs(5))
        .build_handler()
        .expect("valid mail configuration");
    // The (handler, guard) pair: this layer's guard owns the mail guard.
    let (layer, guard) = FingersCrossedLayer::builder(mail).scope(Scope::Global).reset(true).build().unwrap();
    let d = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&d, || {
        tracing::warn!("first warning");
        tracing::debug!("some debug");
        tracing::error!("first error");
        tracing::info!("some info");
        tracing::error!("second error");
    });
    assert!(guard.flush(WAIT).is_complete());
    let mails = smtp.wait_for_mails(2, WAIT);
    assert_eq!(mails.len(), 2, "{mails:#?}");

    assert_eq!(mails[0].header("Subject"), Some("[shop] ERROR: first error"));
    let body = mails[0].body_text();
    let (main, related) = body.split_once("Log records that led up to this one:").expect(&body);
    assert!(main.contains("Message:\n\nfirst error\n"), "{body}");
    let related: Vec<&str> = related.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(related.len(), 2, "{body}");
    assert!(related[0].contains(" WARN ") && related[0].ends_with("first warning"), "{body}");
    assert!(related[1].contains(" DEBUG ") && related[1].ends_with("some debug"), "{body}");

    assert_eq!(mails[1].header("Subject"), Some("[shop] ERROR: second error"));
    let body = mails[1].body_text();
    let (main, related) = body.split_once("Log records that led up to this one:").expect(&body);
    assert!(main.contains("Message:\n\nsecond error\n"), "{body}");
    let related: Vec<&str> = related.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(related.len(), 1, "{body}");
    assert!(related[0].contains(" INFO ") && related[0].ends_with("some info"), "{body}");

    let stats = guard.stats();
    assert!(stats.iter().any(|s| s.name.starts_with("mail") && s.delivered == 5), "{stats:?}");
    assert!(guard.shutdown(WAIT).is_complete());
}
