//! Every sink configured with secrets in every slot, and every one made to fail: connection
//! refused, `401` with the whole request echoed in the body, a TLS error (an `https://` URL to a
//! plain-text peer) and a timeout (a peer that never answers). Every `Debug` of the config and
//! the guard, every build error, every flush and shutdown result, every `Stats` (with its
//! `last_error`) and everything the process prints on stderr is collected, and none of it may
//! hold a secret, nor the first six characters of one.
//!
//! The scenario runs in a child process (this same test binary, started again with
//! `WATCHBELL_LEAK_CHILD` set) so that its stderr can be read whole.

use std::io::Write;
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use tracing_subscriber::prelude::*;
use watchbell::Config;
use watchbell_test::http::{FakeHttp, Reply, Request};
use watchbell_test::smtp::FakeSmtp;

const CHILD: &str = "WATCHBELL_LEAK_CHILD";
const END: &str = "=== scenario complete ===";

const SLACK_PATH: &str = "/services/TQ1slk01/BQ2slk02/Q3slackHookSecretPart";
const TELEGRAM_TOKEN: &str = "555000111:AAQ4tgBotTokenSecretPart_abcdefghij";
const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "Q5twilioAuthTokenSecret";
const EXOTEL_KEY: &str = "Q6exotelApiKeySecret";
const EXOTEL_TOKEN: &str = "Q7exotelApiTokenSecret";
const SMTP_PASSWORD: &str = "Q8smtpPasswordSecret";
const HTTP_USER: &str = "Q9collectorUser";
const HTTP_PASSWORD: &str = "R1collectorPassword";
const HTTP_API_KEY: &str = "R2collectorApiKeySecret";
const HTTP_BEARER: &str = "R3collectorBearerSecret";
const PG_PASSWORD: &str = "R4postgresPasswordSecret";
const NTFY_TOPIC: &str = "R5ntfyTopicSecret";
const NTFY_TOKEN: &str = "R6ntfyTokenSecret";
const PUSHOVER_TOKEN: &str = "R7pushoverAppToken0123456789ab";
const PUSHOVER_USER: &str = "R8pushoverUserKey0123456789abc";
const DISCORD_TOKEN: &str = "R9discordWebhookTokenSecret";
const TEAMS_SIG: &str = "S1teamsSigSecret";
const GCHAT_KEY: &str = "S2gchatKeySecret";
const GCHAT_TOKEN: &str = "S3gchatTokenSecret";
const MATTERMOST_KEY: &str = "S4mattermostHookSecret";
const ROCKET_TOKEN: &str = "S5rocketTokenSecret";
const PAGERDUTY_KEY: &str = "S6pagerdutyRoutingKey0123456789a";
const OPSGENIE_KEY: &str = "S7opsgenie-KeySecret";

/// Every secret, as configured and as it travels (Basic credentials in base64). Their first six
/// characters differ, so that each prefix checked is one secret's. The user of a URL's userinfo
/// counts (the userinfo is hidden whole); a login given on its own (`basic_auth`, `username`) is
/// not a secret and may be shown.
fn secrets() -> Vec<String> {
    let mut all: Vec<String> = [
        SLACK_PATH.trim_start_matches("/services/"),
        "Q3slackHookSecretPart",
        TELEGRAM_TOKEN,
        TELEGRAM_TOKEN.split(':').nth(1).unwrap(),
        TWILIO_TOKEN,
        EXOTEL_KEY,
        EXOTEL_TOKEN,
        SMTP_PASSWORD,
        HTTP_USER,
        HTTP_PASSWORD,
        HTTP_API_KEY,
        HTTP_BEARER,
        PG_PASSWORD,
        NTFY_TOPIC,
        NTFY_TOKEN,
        PUSHOVER_TOKEN,
        PUSHOVER_USER,
        DISCORD_TOKEN,
        TEAMS_SIG,
        GCHAT_KEY,
        GCHAT_TOKEN,
        MATTERMOST_KEY,
        ROCKET_TOKEN,
        PAGERDUTY_KEY,
        OPSGENIE_KEY,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (user, pass) in [(TWILIO_SID, TWILIO_TOKEN), (EXOTEL_KEY, EXOTEL_TOKEN), (HTTP_USER, HTTP_PASSWORD)] {
        all.push(base64(format!("{user}:{pass}").as_bytes()));
    }
    all
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A 401 whose body is the whole request: method, path, query, every header, the body.
fn echo_401(req: &Request) -> Reply {
    let mut text = format!("unauthorized: {} {}?{}\n", req.method, req.path, req.query);
    for (name, value) in &req.headers {
        text.push_str(&format!("{name}: {value}\n"));
    }
    text.push_str(&req.body_text());
    Reply::text(401, &text)
}

/// The config of every sink with secrets in every slot, `http_base` (`http://127.0.0.1:PORT`
/// or `https://…`) as the base of every HTTP destination and `smtp` as the mail server.
fn all_sinks(base: &str, smtp: (u16, &str), timeout: &str) -> String {
    let host_port = base.split_once("://").unwrap().1;
    let scheme = base.split_once("://").unwrap().0;
    format!(
        r#"
app = "billing"

[slack]
timeout = "{timeout}"

[[slack.webhooks]]
url = "{base}{SLACK_PATH}"

[telegram]
token = "{TELEGRAM_TOKEN}"
chats = [-1001234567890]
api_base = "{base}"
timeout = "{timeout}"

[sms]
recipients = ["+14155550100", "+919876543210"]
hourly_cap = 0
timeout = "{timeout}"

[sms.twilio]
sid = "{TWILIO_SID}"
token = "{TWILIO_TOKEN}"
from = "+14155550199"
api_base = "{base}"

[sms.exotel]
sid = "acmecorp1"
api_key = "{EXOTEL_KEY}"
token = "{EXOTEL_TOKEN}"
from = "08030000000"
api_base = "{base}"

[mail]
host = "127.0.0.1"
port = {port}
security = "{security}"
username = "alerts"
password = "{SMTP_PASSWORD}"
from = "alerts@example.com"
to = ["oncall@example.com"]
timeout = "{timeout}"

[http]
url = "{scheme}://{HTTP_USER}:{HTTP_PASSWORD}@{host_port}/push?api_key={HTTP_API_KEY}&page=1"
bearer_token = "{HTTP_BEARER}"
timeout = "{timeout}"

[ntfy]
server = "{base}"
topic = "{NTFY_TOPIC}"
token = "{NTFY_TOKEN}"
timeout = "{timeout}"

[pushover]
token = "{PUSHOVER_TOKEN}"
user = "{PUSHOVER_USER}"
api_base = "{base}"
timeout = "{timeout}"

[discord]
webhook = "{base}/api/webhooks/1234567890/{DISCORD_TOKEN}"
timeout = "{timeout}"

[teams]
webhook = "{base}/workflows/0a1b/triggers/manual/paths/invoke?api-version=2016-06-01&sig={TEAMS_SIG}"
timeout = "{timeout}"

[google_chat]
webhook = "{base}/v1/spaces/AAAA/messages?key={GCHAT_KEY}&token={GCHAT_TOKEN}"
timeout = "{timeout}"

[mattermost]
webhook = "{base}/hooks/{MATTERMOST_KEY}"
timeout = "{timeout}"

[rocketchat]
webhook = "{base}/hooks/rcid/{ROCKET_TOKEN}"
timeout = "{timeout}"

[pagerduty]
routing_key = "{PAGERDUTY_KEY}"
api_base = "{base}"
timeout = "{timeout}"

[opsgenie]
key = "{OPSGENIE_KEY}"
api_base = "{base}"
timeout = "{timeout}"
"#,
        port = smtp.0,
        security = smtp.1,
    )
}

/// The ticketing sink on PostgreSQL with a password, at `host:port`.
fn ticketing(host: &str, port: u16, timeout: &str) -> String {
    format!("[ticketing]\nurl = \"postgres://tickets:{PG_PASSWORD}@{host}:{port}/tickets\"\ntimeout = \"{timeout}\"\n")
}

/// A TCP peer that answers every connection at once with a plain-text HTTP error, whatever it
/// was sent (a TLS client gets a record it cannot read). Its port.
fn plain_text_peer() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    port
}

/// Builds `toml`, logs one error through every layer, flushes, shuts down; prints every
/// `Debug`, error and stats line on stdout.
fn run(phase: &str, toml: &str) {
    println!("--- {phase}");
    let config = match Config::from_toml_str(toml) {
        Ok(c) => c,
        Err(e) => panic!("the scenario's config is refused: {e}"),
    };
    println!("config: {config:?}\n{config:#?}");
    let (layers, guard) = match config.layers::<tracing_subscriber::Registry>() {
        Ok(built) => built,
        Err(e) => {
            println!("layers error: {e}\n{e:?}");
            return;
        }
    };
    println!("guard: {guard:?}");
    let subscriber = tracing_subscriber::registry().with(layers);
    tracing::subscriber::with_default(subscriber, || {
        tracing::error!(order = 42, "payment failed in {phase}");
    });
    println!("flush: {:?}", guard.flush(Duration::from_secs(4)));
    for stats in guard.stats() {
        println!("stats: {stats:?}");
        println!("stats json: {}", serde_json::to_string(&stats).unwrap());
        if let Some(e) = &stats.last_error {
            println!("last_error of {}: {e}", stats.name);
        }
    }
    println!("shutdown: {:?}", guard.shutdown(Duration::from_secs(2)));
}

/// The `Debug` of every sink's builder, secrets in every slot.
fn builders(base: &str) {
    use watchbell::{http_batch, mail, slack, sms, telegram, ticketing};
    let host_port = base.split_once("://").unwrap().1;
    let slack = slack::SlackLayer::builder().webhook(slack::Webhook::new(format!("{base}{SLACK_PATH}")));
    let telegram = telegram::TelegramLayer::builder(TELEGRAM_TOKEN).api_base(base);
    let sms = sms::SmsLayer::builder()
        .twilio(sms::Twilio::new(TWILIO_SID, TWILIO_TOKEN).api_base(base))
        .exotel(sms::Exotel::new("acmecorp1", EXOTEL_KEY, EXOTEL_TOKEN).api_base(base));
    let mail = mail::MailLayer::builder("127.0.0.1").credentials("alerts", SMTP_PASSWORD);
    let url = format!("http://{HTTP_USER}:{HTTP_PASSWORD}@{host_port}/push?api_key={HTTP_API_KEY}&token={HTTP_BEARER}");
    let http = http_batch::HttpLayer::builder(url.as_str()).bearer_auth(HTTP_BEARER).header("X-Api-Key", HTTP_API_KEY);
    let http_basic = http_batch::HttpLayer::builder(url.as_str()).basic_auth("collector-login", HTTP_PASSWORD);
    let tickets = ticketing::TicketingLayer::builder(format!("postgres://tickets:{PG_PASSWORD}@{host_port}/tickets"));
    println!("builders: {slack:?}\n{telegram:?}\n{sms:?}\n{mail:?}\n{http:?}\n{http_basic:?}\n{tickets:?}");
    use watchbell::notify::NotifyLayer;
    let notify = [
        NotifyLayer::ntfy(base, NTFY_TOPIC).token(NTFY_TOKEN),
        NotifyLayer::pushover(PUSHOVER_TOKEN, PUSHOVER_USER).api_base(base),
        NotifyLayer::discord(format!("{base}/api/webhooks/1/{DISCORD_TOKEN}")),
        NotifyLayer::teams(format!("{base}/workflows/x?sig={TEAMS_SIG}")),
        NotifyLayer::google_chat(format!("{base}/v1/spaces/A/messages?key={GCHAT_KEY}&token={GCHAT_TOKEN}")),
        NotifyLayer::mattermost(format!("{base}/hooks/{MATTERMOST_KEY}")),
        NotifyLayer::rocketchat(format!("{base}/hooks/id/{ROCKET_TOKEN}")),
        NotifyLayer::pagerduty(PAGERDUTY_KEY).api_base(base),
        NotifyLayer::opsgenie(OPSGENIE_KEY).api_base(base),
    ];
    for b in &notify {
        println!("builders: {b:?}\n{b:#?}");
    }
    println!("builders: {slack:#?}\n{telegram:#?}\n{sms:#?}\n{mail:#?}\n{http:#?}\n{http_basic:#?}\n{tickets:#?}");
}

/// The errors of every builder given URLs that hold secrets and are invalid (a `/` in a
/// password, a broken host, a missing scheme).
fn builder_errors() {
    use watchbell::{http_batch, slack, sms, telegram, ticketing};
    fn show<T>(what: &str, r: Result<(std::sync::Arc<dyn watchbell::core::Handler>, T), watchbell::core::BuildError>) {
        match r {
            Ok(_) => println!("builder error of {what}: none (accepted)"),
            Err(e) => println!("builder error of {what}: {e}\n{e:?}"),
        }
    }
    let bases = [
        format!("https://{HTTP_USER}:{HTTP_PASSWORD}/x@[::1"),
        format!("https://{HTTP_USER}:{HTTP_PASSWORD}@/push?api_key={HTTP_API_KEY}"),
        format!("{HTTP_USER}:{HTTP_PASSWORD}@logs.example/push?token={HTTP_BEARER}"),
    ];
    for base in &bases {
        show(
            "slack",
            slack::SlackLayer::builder().webhook(slack::Webhook::new(format!("{base}{SLACK_PATH}"))).build_handler(),
        );
        show(
            "telegram",
            telegram::TelegramLayer::builder(TELEGRAM_TOKEN).api_base(base.as_str()).chat(1i64).build_handler(),
        );
        show(
            "sms",
            sms::SmsLayer::builder()
                .recipient("+14155550100")
                .twilio(sms::Twilio::new(TWILIO_SID, TWILIO_TOKEN).from("+14155550199").api_base(base.as_str()))
                .build_handler(),
        );
        show("http", http_batch::HttpLayer::builder(base.as_str()).bearer_auth(HTTP_BEARER).build_handler());
        show(
            "ticketing",
            ticketing::TicketingLayer::builder(format!("postgres://t:{PG_PASSWORD}/x@[::1/t")).build_handler(),
        );
    }
    // Push and paging URLs that are wrong in every way, their keys where a host would be.
    for url in [
        format!("pagerduty://{PAGERDUTY_KEY}x"),
        format!("opsgenie://{OPSGENIE_KEY}?region=mars"),
        format!("pover://{PUSHOVER_USER}"),
        format!("pover://{PUSHOVER_USER}@{PUSHOVER_TOKEN}x"),
        format!("gchat://{GCHAT_KEY}/{GCHAT_TOKEN}"),
        format!("rockets://{ROCKET_TOKEN}"),
        format!("{NTFY_TOKEN}://x/{NTFY_TOPIC}"),
    ] {
        show("notify url", watchbell::notify::from_url(&url).and_then(|b| b.build_handler()));
    }
    // A bad bot token is refused without being repeated.
    show("telegram token", telegram::TelegramLayer::builder(format!("{TELEGRAM_TOKEN} /")).chat(1i64).build_handler());
}

fn scenario() {
    builders("http://127.0.0.1:9");
    builder_errors();
    // Connection refused: a port nobody listens on.
    let refused = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    run(
        "refused",
        &format!(
            "{}{}",
            all_sinks(&format!("http://127.0.0.1:{refused}"), (refused, "plain"), "2s"),
            ticketing("127.0.0.1", refused, "2s")
        ),
    );

    // 401 with the request echoed; SMTP refuses the login.
    let echo = FakeHttp::start();
    echo.respond_with(echo_401);
    let smtp = FakeSmtp::builder().credentials("alerts", "not-the-configured-one").start();
    // PostgreSQL refuses the login (a real server: the workspace's test database).
    let pg = watchbell_test::postgres::url();
    let pg_host = pg.rsplit_once('@').map_or(pg.as_str(), |(_, h)| h).split('/').next().unwrap().to_owned();
    let (pg_host, pg_port) = pg_host.rsplit_once(':').unwrap();
    let pg_port: u16 = pg_port.parse().unwrap();
    run(
        "401",
        &format!("{}{}", all_sinks(&echo.url(), (smtp.port(), "plain"), "2s"), ticketing(pg_host, pg_port, "2s")),
    );
    assert!(echo.request_count() >= 4, "the HTTP sinks reached the echoing peer: {}", echo.request_count());
    let sent = format!("{:?}", echo.requests());
    assert!(sent.contains(HTTP_API_KEY), "the collector's request carried its key: the echo is a real leak test");

    // TLS: https:// (and SMTP over TLS) to peers that answer in plain text at once; PostgreSQL too.
    let plain = plain_text_peer();
    let plain_smtp = FakeSmtp::start();
    let tls = format!("https://127.0.0.1:{plain}");
    run(
        "tls",
        &format!("{}{}", all_sinks(&tls, (plain_smtp.port(), "tls"), "2s"), ticketing("127.0.0.1", plain, "2s")),
    );

    // Timeouts: peers that accept and never answer.
    let stalled = FakeHttp::start();
    stalled.set_default(Reply::stall());
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    run(
        "timeout",
        &format!(
            "{}{}",
            all_sinks(&stalled.url(), (silent_port, "plain"), "1s"),
            ticketing("127.0.0.1", silent_port, "1s")
        ),
    );
    drop(silent);
    println!("{END}");
}

#[test]
fn no_secret_reaches_debug_errors_stats_or_stderr() {
    if std::env::var_os(CHILD).is_some() {
        scenario();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["no_secret_reaches_debug_errors_stats_or_stderr", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stdout.contains(END), "the scenario failed:\n{stdout}\n{stderr}");
    // The scenario did make every sink fail, and said so.
    for phase in ["refused", "401", "tls", "timeout"] {
        assert!(stdout.contains(&format!("--- {phase}")), "{phase} ran");
    }
    // The scenario made every sink fail in every phase (the ticket database may still be
    // connecting to the silent peer when the timeout phase ends).
    for (phase, text) in stdout.split("--- ").skip(1).map(|p| p.split_once('\n').unwrap_or((p, ""))) {
        let failed = text.lines().filter(|l| l.starts_with("last_error of ")).count();
        let expected = if phase == "timeout" { 6 } else { 7 };
        assert!(failed >= expected, "{phase}: {failed} sinks recorded a failure, {expected} expected:\n{text}");
    }
    assert!(!stdout.contains("postgres: db error\n"), "the database's refusal says why:\n{stdout}");
    assert!(stdout.contains("builders: "), "the builders were shown");
    assert!(stdout.contains("builder error of http: "), "the builders' errors were shown");
    // Compared without case: a user name may come back lowercased (as a URL scheme).
    let all = format!("{stdout}\n{stderr}").to_lowercase();
    let mut leaks = Vec::new();
    for secret in secrets().iter().map(|s| s.to_lowercase()) {
        for piece in [secret.as_str(), &secret[..6]] {
            if let Some(at) = all.find(piece) {
                let line = all[..at].rfind('\n').map_or(0, |n| n + 1);
                let end = all[at..].find('\n').map_or(all.len(), |n| at + n);
                let from = all.floor_char_boundary(at.saturating_sub(160)).max(line);
                let to = all.ceil_char_boundary((at + 160).min(end));
                leaks.push(format!("{piece:?} in: …{}…", &all[from..to]));
                break;
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}
