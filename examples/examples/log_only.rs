//! An app that logs only through the `log` crate — no tracing subscriber at all — into Telegram
//! and a file.
//!
//! ```sh
//! cargo run --example log_only
//! ```
//!
//! `watchbell::log::DirectLogger` is the `log` logger: each record becomes a watchbell record
//! (target, file, line, level, key-values as fields) and goes straight to a handler, here a
//! fan-out of a Telegram bot (WARN and up, through a `Select`; a loopback fake of the Bot API)
//! and a file (INFO and up: the logger's level). The example prints the Telegram messages and
//! the file as they arrived.

use std::sync::Arc;
use std::time::Duration;

use watchbell::core::handler::Select;
use watchbell::file::FileLayer;
use watchbell::prelude::*;
use watchbell::telegram::TelegramLayer;
use watchbell_test::telegram::FakeTelegram;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("watchbell-log-only-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let log_path = dir.join("app.log");
    let telegram = FakeTelegram::start();

    let (tg, tg_guard) = TelegramLayer::builder(telegram.token())
        .api_base(telegram.api_base()) // the default is https://api.telegram.org
        .chat(-1001234567890_i64)
        .app("ledger")
        .level(Level::WARN)
        .pace(Duration::from_millis(200)) // the default for a group is 3 s; short for the example
        .build_handler()?;
    let (file, file_guard) = FileLayer::builder(&log_path).app("ledger").level(Level::INFO).build_handler()?;
    let guard = tg_guard.join(file_guard);
    // A handler chain has no level of its own (a layer's filter does that job): the logger
    // passes INFO and up, and `Select` keeps only WARN and ERROR for Telegram.
    let tg: Arc<dyn Handler> = Arc::new(Select::levels(tg, [Level::ERROR, Level::WARN]));
    DirectLogger::new(Arc::new(FanOut::new().with(tg).with(file)), Level::INFO).init()?;

    log::debug!("not captured: below every level");
    log::info!(target: "ledger::sync", accounts = 3; "sync started");
    log::warn!(target: "ledger::sync", account = "ACME", lag_s = 95; "account behind by {} s", 95);
    log::error!(target: "ledger::sync", account = "Initech", code = 401; "credentials <rejected> & sync stopped");
    log::info!(target: "ledger::sync", synced = 2; "sync finished");

    let flushed = guard.shutdown(Duration::from_secs(30));

    println!("== Telegram: {} message(s)", telegram.messages().len());
    for m in telegram.messages() {
        println!("-- to {} (silent: {}):\n{}", m.chat, m.disable_notification, m.text);
    }
    println!("\n== {}:", log_path.display());
    print!("{}", std::fs::read_to_string(&log_path)?);
    println!("\n== delivery: {}", if flushed.is_complete() { "complete" } else { "incomplete" });
    for s in guard.stats() {
        println!("   {s}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
