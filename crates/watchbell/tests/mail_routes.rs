//! The `[mail]` keys for custom headers, per-record recipients and the related records' format,
//! from a TOML file through `watchbell::Config` to the SMTP fake.
#![cfg(all(feature = "config", feature = "mail", feature = "fingers-crossed"))]

use std::time::Duration;

use tracing_subscriber::prelude::*;
use watchbell::Config;
use watchbell_test::smtp::{FakeSmtp, Mail};

const WAIT: Duration = Duration::from_secs(20);

fn toml(port: u16) -> String {
    format!(
        r#"
app = "shop"

[mail]
host = "127.0.0.1"
port = {port}
security = "plain"
from = "alerts@example.com"
to = ["ops@example.com"]
level = "warn"
pace = "0s"
headers = {{ "X-Team" = "payments", "X-Site" = "Zürich" }}
related_format = "before: {{level}} {{target}} {{message}}"

[[mail.route]]
target = "shop::billing"
to = ["billing@example.com"]

[[mail.route]]
level = "error"
fields = {{ tenant = "acme" }}
to = ["acme@example.com", "ops@example.com"]
"#
    )
}

fn by_recipients<'a>(mails: &'a [Mail], to: &[&str]) -> Vec<&'a Mail> {
    mails.iter().filter(|m| m.to == to).collect()
}

#[test]
fn mail_headers_routes_and_related_format_from_toml_reach_the_smtp_server() {
    let smtp = FakeSmtp::start();
    let config = Config::from_toml_str(&toml(smtp.port())).expect("the config is valid");
    let routes = &config.mail.as_ref().unwrap().route;
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[1].fields.get("tenant").map(String::as_str), Some("acme"));
    let (layers, guard) = config.layers::<tracing_subscriber::Registry>().expect("the mail sink builds");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
        tracing::error!(target: "shop::billing::invoice", "invoice failed");
        tracing::error!(target: "shop::cart", tenant = "acme", "acme cart failed");
        // The acme route wants ERROR: a warning of acme's goes to the default.
        tracing::warn!(target: "shop::cart", tenant = "acme", "acme cart slow");
        tracing::error!(target: "shop::cart", "cart failed");
    });
    assert!(guard.flush(WAIT).is_complete());
    // However the records were grouped into mails, each reached its recipients only.
    let mails = smtp.mails();
    let text = |ms: &[&Mail]| ms.iter().map(|m| m.body_text()).collect::<Vec<_>>().join("\n");
    let billing = by_recipients(&mails, &["billing@example.com"]);
    let acme = by_recipients(&mails, &["acme@example.com", "ops@example.com"]);
    let ops = by_recipients(&mails, &["ops@example.com"]);
    assert_eq!(billing.len() + acme.len() + ops.len(), mails.len(), "{mails:#?}");
    assert!(text(&billing).contains("\ninvoice failed\n"), "{}", text(&billing));
    assert!(!text(&billing).contains("cart"), "{}", text(&billing));
    assert!(text(&acme).contains("\nacme cart failed\n"), "{}", text(&acme));
    assert!(!text(&acme).contains("slow") && !text(&acme).contains("invoice"), "{}", text(&acme));
    let ops_text = text(&ops);
    assert!(ops_text.contains("\nacme cart slow\n") && ops_text.contains("\ncart failed"), "{ops_text}");
    assert!(!ops_text.contains("invoice") && !ops_text.contains("acme cart failed"), "{ops_text}");
    for m in &mails {
        assert_eq!(m.header("X-Team"), Some("payments"), "{:?}", m.headers);
        assert_eq!(m.decoded_header("X-Site").as_deref(), Some("Zürich"), "{:?}", m.headers);
    }
}

#[test]
fn related_format_from_toml_renders_an_escalation() {
    let smtp = FakeSmtp::start();
    let text = format!(
        "{}\n[fingers_crossed]\naction_level = \"error\"\nlevel = \"debug\"\nscope = \"global\"\ndeliver_to = [\"mail\"]\n",
        toml(smtp.port())
    );
    let config = Config::from_toml_str(&text).expect("the config is valid");
    let (layers, guard) = config.layers::<tracing_subscriber::Registry>().expect("the stack builds");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
        tracing::debug!(target: "shop::cart", "cart loaded");
        tracing::info!(target: "shop::pay", "charging card");
        tracing::error!(target: "shop::billing", "payment failed");
    });
    assert!(guard.flush(WAIT).is_complete());
    let mails = smtp.wait_for_mails(1, WAIT);
    assert_eq!(mails.len(), 1, "{mails:#?}");
    // The trigger's route decides the recipients of the whole escalation.
    assert_eq!(mails[0].to, ["billing@example.com"]);
    let body = mails[0].body_text();
    let (_, related) = body.split_once("\nLog records that led up to this one:\n\n").expect("the related section");
    assert_eq!(related, "before: DEBUG shop::cart cart loaded\nbefore: INFO shop::pay charging card\n");
}

#[test]
fn bad_mail_keys_are_named() {
    let smtp = FakeSmtp::start();
    let bad = [
        ("headers = { \"Bcc\" = \"x@example.com\" }", "mail.header"),
        ("headers = { \"X-A\" = \"a\\r\\nBcc: x@example.com\" }", "mail.header"),
        ("related_format = \"{nope}\"", "mail.related_format"),
    ];
    for (line, key) in bad {
        let text = toml(smtp.port()).replacen("pace = \"0s\"", &format!("pace = \"0s\"\n{line}"), 1);
        let text = if line.starts_with("headers") {
            text.replacen("headers = { \"X-Team\" = \"payments\", \"X-Site\" = \"Zürich\" }\n", "", 1)
        } else {
            text.replacen("related_format = \"before: {level} {target} {message}\"\n", "", 1)
        };
        let err = Config::from_toml_str(&text)
            .and_then(|c| c.layers::<tracing_subscriber::Registry>().map(|_| ()))
            .expect_err(line);
        assert!(err.to_string().contains(key), "{line}: {err}");
    }
    let no_to = toml(smtp.port()).replacen("to = [\"billing@example.com\"]", "", 1);
    let err =
        Config::from_toml_str(&no_to).and_then(|c| c.layers::<tracing_subscriber::Registry>().map(|_| ())).unwrap_err();
    assert!(err.to_string().contains("mail.route[0].to"), "{err}");
    let bad_level = toml(smtp.port()).replacen("level = \"error\"\nfields", "level = \"loud\"\nfields", 1);
    let err = Config::from_toml_str(&bad_level)
        .and_then(|c| c.layers::<tracing_subscriber::Registry>().map(|_| ()))
        .unwrap_err();
    assert!(err.to_string().contains("mail.route[1].level"), "{err}");
}
