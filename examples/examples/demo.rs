//! watchbell's main job, on loopback stand-ins: one configuration, every destination.
//!
//! `cargo run --example demo` starts real-protocol fakes of Slack, Telegram, Twilio, Exotel, an
//! SMTP server, an NDJSON log collector, a syslog receiver, a journal and PagerDuty (all from `watchbell-test`, on
//! 127.0.0.1), a SQLite ticket database and a rotating log file in a temp dir. It builds the
//! whole alerting stack from the TOML configuration embedded below (the fakes' addresses
//! filled in), then runs a small simulated service: 30 requests in `request` spans on three
//! threads, logging at every level, some failing with fields and an error chain, one panicking,
//! and a dependency logging through the `log` crate. Finally it prints what each destination
//! received and the delivery stats. Then two replicas of the service (thread groups with
//! their own subscribers) ship the same error to a `watchbell-relay`, which sends **one** Slack
//! message for both, saying how many similar records were suppressed from how many instances.
//!
//! Panics: a panic hook logs every panic as an ERROR (with its location) *inside the span that
//! panicked*, then the worker catches the unwind with `catch_unwind` and goes on with the next
//! request. The hook runs before unwinding, so the panic is part of that request's story.
//!
//! Paces are shortened in the embedded config (100–200 ms instead of 1 s per message) so that
//! the demo finishes in seconds; the real defaults protect real providers.
//!
//! With real credentials in the environment, the same events also go to the real services: the
//! `WATCHBELL_*` variables are read with `Config::from_env()` into a second stack with the sinks'
//! real defaults (e.g. `WATCHBELL_SLACK_WEBHOOK=https://hooks.slack.com/services/…`, or
//! `WATCHBELL_TELEGRAM_TOKEN` + `WATCHBELL_TELEGRAM_CHAT`). Without them, nothing leaves
//! 127.0.0.1. `cargo run --example demo -- --show-config` prints the configuration whole.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{debug, error, info, info_span, trace, warn};
use tracing_subscriber::prelude::*;
use watchbell::prelude::*;
use watchbell::ticketing::{TicketQuery, TicketStore};
use watchbell::{Config, ConfigError};
use watchbell_test::stack::Destinations as Fakes;

/// The demo's configuration. `{..}` placeholders are the fakes' addresses and credentials,
/// filled in at start-up; everything else is what a real `watchbell.toml` would say.
const CONFIG: &str = r#"
app = "checkout"
environment = "demo"

[slack]
pace = "200ms"

[[slack.webhooks]]
name = "oncall"
url = "{slack_oncall}"
levels = ["error"]

[[slack.webhooks]]
name = "team"
url = "{slack_team}"
levels = ["error", "warn"]

[telegram]
token = "{telegram_token}"
chats = [-1001234567890]
api_base = "{telegram}"
level = "warn"
pace = "200ms"

[sms]
recipients = ["+15551230001", "+919812300002"]
level = "error"
pace = "100ms"

[sms.twilio]
sid = "{twilio_sid}"
token = "{twilio_token}"
from = "+15550000000"
api_base = "{twilio}"

[sms.exotel]
sid = "{exotel_sid}"
api_key = "{exotel_key}"
token = "{exotel_token}"
from = "WBDEMO"
api_base = "{exotel}"

[mail]
host = "127.0.0.1"
port = {smtp_port}
security = "plain"
from = "checkout@example.com"
to = ["oncall@example.com"]
pace = "100ms"

[http]
url = "{collector}/ingest"
encoding = "ndjson"
level = "info"

[syslog]
transport = "udp"
address = "{syslog}"
level = "warn"

[file]
path = "{dir}/checkout.log"
level = "info"
max_bytes = 4096
backup_count = 3

[fingers_crossed]
scope = "request"
action_level = "error"
deliver_to = ["mail"]

[ticketing]
url = "sqlite://{dir}/tickets.db"
level = "warn"
public_url = "{viewer}"

[journald]
socket = "{journald}"
level = "warn"

[pagerduty]
routing_key = "demo0routing0key0000000000000000"
api_base = "{pagerduty}"
pace = "100ms"

[command]
shell = "printf '%s %s\\n' \"$1\" \"$2\" >> {dir}/oncall-hook.log"
args = ["{level}", "{message}"]
level = "error"
"#;

/// The embedded configuration with the loopback stand-ins' addresses filled in.
fn config_text(fakes: &Fakes) -> String {
    fakes.fill(
        &CONFIG
            .replace("{slack_oncall}", &fakes.slack.webhook_url("oncall"))
            .replace("{slack_team}", &fakes.slack.webhook_url("team")),
    )
}

// ---------------------------------------------------------------------------------------------
// The simulated service.

/// A failure with a cause, so that the error chain shows.
#[derive(Debug)]
struct PaymentError {
    order: u64,
    source: std::io::Error,
}

impl fmt::Display for PaymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "payment for order {} was not captured", self.order)
    }
}

impl std::error::Error for PaymentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

const REQUESTS: u64 = 30;
const PANICKING_REQUEST: u64 = 17;

/// One request: DEBUG/TRACE detail, INFO progress, a WARN now and then, an ERROR for failures.
fn handle_request(id: u64) -> Result<(), PaymentError> {
    let user = ["ana", "bob", "chen", "dara"][id as usize % 4];
    trace!(id, "request bytes read");
    debug!(step = "parse", items = id % 5 + 1, "parsed the order");
    debug!(step = "stock", sku = format!("SKU-{:04}", id * 37 % 1000), "reserved stock");
    info!(user, items = id % 5 + 1, "checkout started");
    if id % 7 == 3 {
        warn!(latency_ms = 870 + id, provider = "acme-pay", "payment provider slow");
    }
    if id % 9 == 5 {
        // A dependency that logs through the `log` crate: it reaches watchbell through the bridge.
        log::warn!(target: "acme_pay::client", attempt = 3, status = 402; "card declined by the issuer");
        debug!(provider = "acme-pay", http_status = 402, "payment provider answered");
        return Err(PaymentError {
            order: 1000 + id,
            source: std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer"),
        });
    }
    if id == PANICKING_REQUEST {
        let index: Vec<u32> = vec![1, 2, 3];
        let slot = index.len() + id as usize;
        debug!(slot, "looking up the inventory slot");
        // Out of range on purpose: the panic hook logs it inside this span.
        let _ = index[slot];
    }
    debug!("payment captured");
    info!(user, "order placed");
    Ok(())
}

/// A worker thread: its requests, each in a `request` span, panics caught.
fn worker(ids: Vec<u64>) -> (u64, u64) {
    let (mut failed, mut panicked) = (0, 0);
    for id in ids {
        let span = info_span!("request", id, path = "/checkout", method = "POST");
        let _entered = span.enter();
        match std::panic::catch_unwind(|| handle_request(id)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failed += 1;
                error!(order = e.order, error = &e as &(dyn std::error::Error + 'static), "checkout failed");
            }
            Err(_) => panicked += 1, // already logged by the panic hook
        }
    }
    (failed, panicked)
}

/// The hook that makes every panic an ERROR record with its location, in the current span.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "(non-text payload)".into());
        error!(panic.location = location, "panic: {msg}");
    }));
}

// ---------------------------------------------------------------------------------------------
// Building the stack.

type Registry = tracing_subscriber::Registry;
type Layers = watchbell::config::Layers<Registry>;

/// The layers for the loopback fakes: the embedded config, its placeholders filled in, through
/// `watchbell::Config` — the same path as a `watchbell.toml` file (`Config::from_file`).
fn demo_layers(text: &str) -> Result<(Layers, Guard), ConfigError> {
    Config::from_toml_str(text)?.layers::<Registry>()
}

/// The real services configured by `WATCHBELL_*` variables (none on a fresh clone), with the
/// sinks' real defaults (paces of 1 s and more, not the demo's).
fn real_layers() -> Result<(Layers, Guard, Vec<&'static str>), ConfigError> {
    let config = Config::from_env()?;
    let names = [
        ("Slack", config.slack.is_some()),
        ("Telegram", config.telegram.is_some()),
        ("SMS", config.sms.is_some()),
        ("mail", config.mail.is_some()),
        ("HTTP collector", config.http.is_some()),
        ("syslog", config.syslog.is_some()),
        ("file", config.file.is_some()),
        ("tickets", config.ticketing.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    let (layers, guard) = config.layers::<Registry>()?;
    Ok((layers, guard, names))
}

// ---------------------------------------------------------------------------------------------
// The report.

fn indent(text: &str, prefix: &str) -> String {
    text.trim_end().lines().map(|l| format!("{prefix}{l}")).collect::<Vec<_>>().join("\n")
}

fn section(title: &str) {
    println!("\n== {title} {}", "=".repeat(96usize.saturating_sub(title.len() + 4)));
}

fn slack_text(message: &serde_json::Value) -> String {
    let mut out = vec![format!("text: {}", message["text"].as_str().unwrap_or(""))];
    for a in message["attachments"].as_array().into_iter().flatten() {
        for b in a["blocks"].as_array().into_iter().flatten() {
            let t = b["text"]["text"].as_str().or(b["elements"][0]["text"].as_str()).unwrap_or("");
            out.push(format!("| {}", t.replace('\n', "\n| ")));
        }
    }
    out.join("\n")
}

fn report(fakes: &Fakes) -> Result<(), Box<dyn std::error::Error>> {
    section("Slack");
    for name in ["oncall", "team"] {
        let msgs = fakes.slack.messages_for(name);
        println!("webhook {name}: {} message(s); the first:", msgs.len());
        if let Some(m) = msgs.first() {
            println!("{}", indent(&slack_text(m), "    "));
        }
    }
    let answers: Vec<u16> = fakes.slack.received().iter().map(|r| r.status).collect();
    println!("the fake's answers, in order: {answers:?}");

    section("Telegram");
    let tg = fakes.telegram.messages();
    println!("{} message(s) to chat -1001234567890; the first (HTML as sent):", tg.len());
    if let Some(m) = tg.first() {
        println!("{}", indent(&m.text, "    "));
        println!("    (silent: {})", m.disable_notification);
    }

    section("SMS");
    for (provider, msgs) in [("Twilio", fakes.twilio.messages()), ("Exotel", fakes.exotel.messages())] {
        println!("{provider}: {} SMS", msgs.len());
        for m in msgs {
            println!("    to {} from {} ({}, {} segment(s)): {}", m.to, m.from, m.encoding, m.segments, m.body);
        }
    }

    section("Mail (the fingers-crossed incidents)");
    let mails = fakes.smtp.mails();
    println!(
        "{} mail(s): one per failing request, each holding the request's withheld DEBUG story; subjects:",
        mails.len()
    );
    for m in &mails {
        println!("    {}", m.decoded_header("Subject").unwrap_or_default());
    }
    if let Some(m) = mails.first() {
        println!("the first, as sent:");
        for (k, v) in &m.headers {
            if ["From", "To", "Subject", "Date", "Content-Type"].iter().any(|h| h.eq_ignore_ascii_case(k)) {
                println!("    {k}: {v}");
            }
        }
        println!("    ({} more header fields)", m.headers.len().saturating_sub(5));
        println!();
        println!("{}", indent(&m.body_text(), "    "));
    }

    section("HTTP collector (NDJSON)");
    let records = fakes.collector.records();
    println!("{} record(s) in {} request(s); one of them:", records.len(), fakes.collector.http().request_count());
    if let Some(r) = records.iter().find(|r| r["level"] == "ERROR").or(records.first()) {
        println!("    {r}");
    }

    section("syslog (UDP, RFC 5424)");
    let frames = fakes.syslog.frames();
    println!("{} frame(s); the first:", frames.len());
    if let Some(f) = frames.first() {
        println!("    {}", f.text());
    }

    section("rotating file");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&fakes.dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("checkout.log")))
        .collect();
    files.sort();
    for f in &files {
        let text = std::fs::read_to_string(f)?;
        println!("    {}: {} bytes, {} lines", file_name(f), text.len(), text.lines().count());
    }
    if let Some(line) = std::fs::read_to_string(fakes.dir.join("checkout.log"))?.lines().last() {
        println!("the last line: {line}");
    }

    section("journald (native protocol)");
    let entries = fakes.journal.entries();
    println!("{} entr(ies); the first:", entries.len());
    if let Some(e) = entries.first() {
        for (k, v) in e.fields.iter().take(8) {
            println!("    {k}={}", String::from_utf8_lossy(v));
        }
    }

    section("PagerDuty (Events API v2: one incident per callsite)");
    let events = fakes.pagerduty.accepted();
    let mut incidents: Vec<&str> = events.iter().filter_map(|e| e["dedup_key"].as_str()).collect();
    incidents.sort_unstable();
    incidents.dedup();
    println!("{} event(s), {} incident(s)", events.len(), incidents.len());
    for e in events.iter().take(3) {
        println!("    {} [{}] {}", e["dedup_key"], e["payload"]["severity"], e["payload"]["summary"]);
    }

    section("program (a shell hook, one run per alert)");
    let runs = std::fs::read_to_string(fakes.dir.join("oncall-hook.log")).unwrap_or_default();
    println!("{} run(s); the first: {}", runs.lines().count(), runs.lines().next().unwrap_or(""));

    section("tickets (SQLite)");
    let mut store = TicketStore::open(&fakes.tickets_url())?;
    let tickets = store.list_tickets(&TicketQuery::default().app("checkout"))?;
    let stats = store.stats(Some("checkout"))?;
    println!("{} ticket(s), {} occurrence(s):", stats.tickets, stats.occurrences);
    for t in tickets {
        println!(
            "    #{:<2} {:5} ×{:<3} {} ({})",
            t.id,
            t.level.to_string(),
            t.occurrence_count,
            t.message,
            t.location.unwrap_or_default()
        );
    }
    Ok(())
}

/// Two replicas of the service behind one `watchbell-relay`: the same error in both makes one
/// Slack message for the fleet, and that message already says how many similar records were
/// suppressed and from how many instances (`[rate_limit] gather`).
fn fleet() -> Result<(), Box<dyn std::error::Error>> {
    const PER_REPLICA: u64 = 50;
    section("fleet: two replicas of the service, one relay");
    let slack = watchbell_test::slack::FakeSlack::start();
    let toml = format!(
        "[rate_limit]\nlimit = 1\nper = \"1h\"\ngather = \"1s\"\n\n[[slack.webhooks]]\nname = \"fleet\"\nurl = \"{}\"\n\n[relay]\nhttp = \"127.0.0.1:0\"\n",
        slack.webhook_url("fleet")
    );
    println!("the relay's watchbell.toml:\n{}", indent(&toml, "    "));
    let config = Config::from_toml_str(&toml)?;
    let relay_builder = watchbell_relay::builder_from(&config).map_err(|e| e.to_string())?;
    let (handler, relay_guard) = config.handlers()?;
    let relay = relay_builder.spawn(handler)?;
    let url = format!("http://{}/v1/records", relay.http_addr().ok_or("the relay has no HTTP input")?);
    let replicas: Vec<_> = (1..=2)
        .map(|n| {
            let url = url.clone();
            std::thread::Builder::new().name(format!("replica-{n}")).spawn(move || {
                // Each replica ships everything to the relay (watchbell-http, NDJSON).
                let (layer, guard) = watchbell::http_batch::HttpLayer::builder(url)
                    .app("checkout")
                    .host(format!("replica-{n}"))
                    .build()
                    .map_err(|e| e.to_string())?;
                tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
                    for attempt in 0..PER_REPLICA {
                        error!(attempt, "inventory service unreachable");
                    }
                });
                Ok::<_, String>(guard.shutdown(Duration::from_secs(10)).is_complete())
            })
        })
        .collect::<Result<_, _>>()?;
    for r in replicas {
        r.join().map_err(|_| "a replica panicked")??;
    }
    let end = Instant::now() + Duration::from_secs(10);
    while relay.health()["delivered"].as_u64() < Some(2 * PER_REPLICA) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = relay.shutdown(Duration::from_secs(10));
    let _ = relay_guard.shutdown(Duration::from_secs(10));
    let msgs = slack.messages();
    println!("2 replicas x {PER_REPLICA} identical errors -> {} Slack message(s) for the fleet:", msgs.len());
    for m in &msgs {
        println!("{}", indent(&slack_text(m), "    "));
    }
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    println!("watchbell demo: a simulated checkout service alerting to loopback stand-ins");
    println!("(paces are shortened to 100-200 ms in the embedded config so the demo takes seconds)\n");

    let fakes = Fakes::start("demo");
    // The ticket viewer over the demo's ticket database, started first so that every alert can
    // link to its ticket page (`[ticketing] public_url`).
    let serve = std::env::args().any(|a| a == "--serve");
    let viewer_options = |port: u16| watchbell::ticketing::web::ServeOptions {
        stop_on_ctrl_c: serve,
        ..watchbell::ticketing::web::ServeOptions::default().listen(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    };
    let viewer = match watchbell::ticketing::web::serve(
        TicketStore::open(&fakes.tickets_url())?,
        viewer_options(if serve { 8080 } else { 0 }),
    ) {
        Ok(v) => v,
        // 8080 taken: any free port.
        Err(_) => watchbell::ticketing::web::serve(TicketStore::open(&fakes.tickets_url())?, viewer_options(0))?,
    };
    let text = config_text(&fakes).replace("{viewer}", viewer.url().trim_end_matches('/'));
    if std::env::args().any(|a| a == "--show-config") {
        println!("the configuration (embedded, with the fakes' addresses filled in):\n{}\n", indent(&text, "    "));
    } else {
        let tables: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
        println!("configuration: the embedded watchbell.toml ({} lines: {})", text.lines().count(), tables.join(" "));
        println!("(`cargo run --example demo -- --show-config` prints it whole)");
    }

    // A Slack 429 with Retry-After and a Telegram 429, to show that the answers are honoured.
    fakes.slack.push_rate_limit(1);
    fakes.telegram.push(watchbell_test::telegram::TgReply::too_many_requests(1));

    let (mut layers, mut guard) = demo_layers(&text)?;
    match real_layers() {
        Ok((_, _, names)) if names.is_empty() => {
            println!("no WATCHBELL_* credentials in the environment: loopback only")
        }
        Ok((real, real_guard, names)) => {
            println!(
                "WATCHBELL_* variables set: also sending to the real destinations they configure: {}",
                names.join(", ")
            );
            layers.extend(real);
            guard = guard.join(real_guard);
        }
        Err(e) => println!("the WATCHBELL_* variables are not a usable configuration, loopback only:\n{e}"),
    }
    watchbell::log::LogBridge::new().init()?;
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layers))?;
    log_panics();

    // The service: 30 requests on three threads.
    let service_started = Instant::now();
    let workers: Vec<_> = (0..3u64)
        .map(|w| {
            let ids: Vec<u64> = (1..=REQUESTS).filter(|id| id % 3 == w).collect();
            std::thread::Builder::new().name(format!("worker-{w}")).spawn(move || worker(ids)).expect("a thread")
        })
        .collect();
    let (mut failed, mut panicked) = (0, 0);
    for w in workers {
        let (f, p) = w.join().expect("workers catch their panics");
        failed += f;
        panicked += p;
    }
    let _ = std::panic::take_hook();
    println!(
        "\nservice: {REQUESTS} requests on 3 threads, {failed} failed, {panicked} panicked (caught), in {:.1?}",
        service_started.elapsed()
    );

    let flushed = guard.shutdown(Duration::from_secs(30));
    report(&fakes)?;

    section("delivery stats");
    println!("(each sink's rate limiter is listed before its deliveries; fingers-crossed's \"dropped\" are the");
    println!(" withheld records of requests that ended without an error, discarded when their span closed)");
    for s in guard.stats() {
        println!("    {s}");
    }
    println!(
        "\nshutdown: {}; demo finished in {:.1?}",
        if flushed.is_complete() { "everything delivered".to_string() } else { format!("{flushed:?}") },
        started.elapsed()
    );
    fleet()?;

    section("ticket viewer");
    println!("the tickets above, in a browser: {}tickets (each alert links to its ticket page)", viewer.url());
    if serve {
        println!("serving until Ctrl-C");
        viewer.wait();
    } else {
        println!("(`cargo run --example demo -- --serve` keeps it running)");
        viewer.shutdown(Duration::from_secs(5));
    }
    let _ = std::fs::remove_dir_all(&fakes.dir);
    Ok(())
}
