//! Alerts that link to their ticket: `[ticketing] public_url` gives the Slack, Telegram, SMS and
//! mail alerts built from the config the link to the ticket the ticketing layer stores (SQLite
//! and PostgreSQL), escaped for each medium, and the ticket lists the destinations that were
//! delivered the alert (a refused delivery is not listed).
mod common;

use std::time::{Duration, Instant};

use common::{Fakes, CHAT, US, WAIT};
use tracing_subscriber::prelude::*;
use watchbell::ticketing::{Ticket, TicketStore};
use watchbell::Config;
use watchbell_test::sms::TwilioReply;

/// A base URL and an app id with every character that means something in HTML, Slack's
/// link syntax, a URL or an SMS.
const PUBLIC_URL: &str = "https://tickets.example.com/a b\"<x>&y'/";
const BASE_ENCODED: &str = "https://tickets.example.com/a%20b%22%3Cx%3E&y'";

fn app_encoded(app: &str) -> String {
    app.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A TOML basic string (JSON's escapes are TOML's for these values).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn config_toml(fakes: &Fakes, tickets_url: &str, app_id: &str, public_url: &str) -> String {
    fakes.fill(&format!(
        r##"
app = "billing"

[[slack.webhooks]]
url = "{{slack}}"

[telegram]
token = "{{telegram_token}}"
chats = [{CHAT}]
api_base = "{{telegram}}"

[sms]
recipients = ["{US}"]
level = "error"

[sms.twilio]
sid = "{{twilio_sid}}"
token = "{{twilio_token}}"
from = "+14155550199"
api_base = "{{twilio}}"

[mail]
host = "127.0.0.1"
port = {{smtp_port}}
security = "plain"
from = "alerts@example.com"
to = ["oncall@example.com"]
timeout = "5s"

[ticketing]
url = {tickets}
level = "error"
app_id = {app}
public_url = {public}
"##,
        tickets = q(tickets_url),
        app = q(app_id),
        public = q(public_url),
    ))
}

fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn the_ticket(store: &mut TicketStore, app_id: &str) -> Ticket {
    let q = watchbell::ticketing::TicketQuery::default().app(app_id);
    let tickets = store.list_tickets(&q).unwrap();
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    tickets.into_iter().next().unwrap()
}

fn destinations(store: &mut TicketStore, ticket: &Ticket) -> Vec<(String, u64)> {
    let mut d: Vec<(String, u64)> =
        store.notifications(ticket.id).unwrap().into_iter().map(|n| (n.destination, n.count)).collect();
    d.sort();
    d
}

fn slack_context(m: &serde_json::Value) -> String {
    let blocks = m["attachments"][0]["blocks"].as_array().expect("blocks");
    blocks.last().unwrap()["elements"][0]["text"].as_str().unwrap().to_owned()
}

fn every_alert_links_to_its_ticket(tickets_url: &str, app_id: &str) {
    let fakes = Fakes::start("links");
    let config = Config::from_toml_str(&config_toml(&fakes, tickets_url, app_id, PUBLIC_URL)).expect("valid");
    let (layers, guard) = config.layers::<tracing_subscriber::Registry>().expect("every sink builds");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
        tracing::error!(order = 7, "payment <!channel> & \"declined\"");
    });
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());

    let mut store = TicketStore::open(tickets_url).unwrap();
    let ticket = the_ticket(&mut store, app_id);
    let url = format!("{BASE_ENCODED}/fp/{}/{}", app_encoded(app_id), ticket.fingerprint);
    assert_eq!(url.matches(['"', '<', '>', ' ']).count(), 0, "{url}");

    let slack = fakes.slack.wait_for_messages(1, WAIT);
    let context = slack_context(&slack[0]);
    assert!(context.ends_with(&format!(":ticket: <{}|Open the ticket>", url.replace('&', "&amp;"))), "{context}");

    let tg = fakes.telegram.wait_for_messages(1, WAIT);
    let href = url.replace('&', "&amp;").replace('\'', "&#39;");
    assert!(tg[0].text.contains(&format!("(<a href=\"{href}\">ticket</a>)")), "{}", tg[0].text);
    assert_eq!(tg[0].parse_mode.as_deref(), Some("HTML"));

    let sms = fakes.twilio.wait_for_messages(1, WAIT);
    assert!(sms[0].body.ends_with(&format!(" {url}")), "{}", sms[0].body);
    assert!(sms[0].body.contains("payment <!channel>"), "{}", sms[0].body);
    assert_eq!(sms[0].segments, 1, "{}", sms[0].body);

    let mails = fakes.smtp.wait_for_mails(1, WAIT);
    let body = mails[0].body_text();
    assert!(body.lines().any(|l| l == format!("Ticket:          {url}")), "{body}");

    let got = wait_until("four notified destinations", || {
        let d = destinations(&mut store, &ticket);
        (d.len() == 4).then_some(d)
    });
    let want: Vec<(String, u64)> =
        ["mail", "slack", "sms:twilio", "telegram"].iter().map(|d| (d.to_string(), 1)).collect();
    assert_eq!(got, want);
    drop(guard);
}

#[test]
fn every_alert_links_to_its_sqlite_ticket() {
    let fakes_dir = common::temp_dir("links-db");
    let url = format!("sqlite://{}/tickets.db", fakes_dir.display());
    every_alert_links_to_its_ticket(&url, "shop \"<&>\" app");
}

#[test]
fn every_alert_links_to_its_postgres_ticket() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let app = format!("shop/pg {} {nanos}", std::process::id());
    every_alert_links_to_its_ticket(&watchbell_test::postgres::url(), &app);
}

#[test]
fn a_refused_delivery_is_not_notified() {
    let fakes = Fakes::start("refused");
    let app = "shop-refused";
    let tickets_url = fakes.tickets_url();
    fakes.slack.push_error(404, "channel_not_found");
    fakes.twilio.push(TwilioReply::invalid_to());
    let config = Config::from_toml_str(&config_toml(&fakes, &tickets_url, app, "https://t.example")).unwrap();
    let (layers, guard) = config.layers::<tracing_subscriber::Registry>().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
        tracing::error!("card declined");
    });
    let _ = guard.flush(WAIT);
    let failed: Vec<_> = guard.stats().into_iter().filter(|s| s.failed > 0).map(|s| s.name).collect();
    assert_eq!(failed.len(), 2, "slack and twilio refused: {:?}", guard.stats());
    let mut store = TicketStore::open(&tickets_url).unwrap();
    let ticket = the_ticket(&mut store, app);
    wait_until("telegram and mail", || (destinations(&mut store, &ticket).len() >= 2).then_some(()));
    // Every delivery has ended (the flush); the journal is drained within a fraction of a
    // second: what is not there by now was never pushed.
    std::thread::sleep(Duration::from_secs(1));
    let got = destinations(&mut store, &ticket);
    assert_eq!(got, [("mail".to_owned(), 1), ("telegram".to_owned(), 1)]);
}

#[test]
fn the_public_url_from_environment_variables() {
    let fakes = Fakes::start("links-vars");
    let v = |k: &str, v: String| (format!("WATCHBELL_{k}"), v);
    let vars = vec![
        v("APP", "billing".into()),
        v("SLACK_WEBHOOK", fakes.slack.url()),
        v("TICKETING_URL", fakes.tickets_url()),
        v("TICKETING_LEVEL", "error".into()),
        v("TICKETING_APP_ID", "vars-app".into()),
        v("TICKETING_PUBLIC_URL", "https://tickets.example.com".into()),
    ];
    let config = Config::default().with_vars(vars).expect("the variables are valid");
    let (layers, guard) = config.layers::<tracing_subscriber::Registry>().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
        tracing::error!("from vars");
    });
    assert!(guard.flush(WAIT).is_complete());
    let mut store = TicketStore::open(&fakes.tickets_url()).unwrap();
    let ticket = the_ticket(&mut store, "vars-app");
    let context = slack_context(&fakes.slack.wait_for_messages(1, WAIT)[0]);
    let want = format!("<https://tickets.example.com/fp/vars-app/{}|Open the ticket>", ticket.fingerprint);
    assert!(context.contains(&want), "{context}");
}

#[test]
fn ntfy_clicks_through_to_the_ticket() {
    let fakes = Fakes::start("links-ntfy");
    let ntfy = watchbell_test::notify::FakeNtfy::start(None);
    let toml = format!(
        "app = \"billing\"\n[ntfy]\nserver = {}\ntopic = \"alerts\"\n[ticketing]\nurl = {}\napp_id = \"ntfy-app\"\n\
         public_url = \"https://tickets.example.com\"\n",
        q(&ntfy.http().url()),
        q(&fakes.tickets_url())
    );
    let (layers, guard) = Config::from_toml_str(&toml).unwrap().layers::<tracing_subscriber::Registry>().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
        tracing::error!("queue stuck");
    });
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    let mut store = TicketStore::open(&fakes.tickets_url()).unwrap();
    let ticket = the_ticket(&mut store, "ntfy-app");
    let sent = ntfy.wait_for(1, WAIT);
    let want = format!("https://tickets.example.com/fp/ntfy-app/{}", ticket.fingerprint);
    assert_eq!(sent[0]["click"].as_str(), Some(want.as_str()), "{}", sent[0]);
    let got = wait_until("ntfy notified", || {
        let d = destinations(&mut store, &ticket);
        (!d.is_empty()).then_some(d)
    });
    assert_eq!(got, [("ntfy".to_owned(), 1)]);
}

#[test]
fn a_bad_public_url_is_a_clear_error() {
    let fakes = Fakes::start("links-bad");
    for (public, want) in [
        ("ftp://tickets.example.com", "unsupported URL scheme \"ftp\""),
        ("tickets.example.com", "not an absolute URL"),
        ("https://admin:hunter2@tickets.example.com", "credentials"),
    ] {
        let toml = config_toml(&fakes, &fakes.tickets_url(), "app", public);
        let err = match Config::from_toml_str(&toml).and_then(|c| c.layers::<tracing_subscriber::Registry>()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{public} accepted"),
        };
        let line = err.lines().find(|l| l.starts_with("ticketing.public_url")).unwrap_or_else(|| panic!("{err}"));
        assert!(line.contains(want), "{line}");
        assert!(!err.contains("hunter2"), "{err}");
    }
    // Without ticketing in the build config, the sinks get no link (and build as before).
    let toml = fakes.fill("[[slack.webhooks]]\nurl = \"{slack}\"\n");
    assert!(Config::from_toml_str(&toml).unwrap().layers::<tracing_subscriber::Registry>().is_ok());
}
