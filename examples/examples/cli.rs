//! A plain synchronous command-line tool — no async runtime anywhere — that logs to a rotated
//! file and mails its errors.
//!
//! ```sh
//! cargo run --example cli
//! ```
//!
//! The tool "imports" a handful of invoices in a `job` span: INFO and up go to a size-rotated
//! log file, ERRORs go by mail (to a loopback SMTP server from `watchbell-test`; records arriving
//! within the mail's coalescing window share one digest mail). It then prints the file and the
//! mail as they arrived. watchbell's delivery runs on its own threads, so nothing here needs
//! tokio; the guard's `shutdown` at the end waits (bounded) until both are delivered.

use std::time::Duration;

use tracing::{debug, error, info, info_span, warn};
use tracing_subscriber::prelude::*;
use watchbell::file::FileLayer;
use watchbell::mail::MailLayer;
use watchbell::prelude::*;
use watchbell_test::smtp::FakeSmtp;

/// What the tool does: parse invoices, fail on the broken ones.
fn import(invoices: &[&str]) -> usize {
    let span = info_span!("job", kind = "import", count = invoices.len());
    let _entered = span.enter();
    info!("import started");
    let mut imported = 0;
    for (line, invoice) in invoices.iter().enumerate() {
        debug!(line, invoice, "parsing");
        match invoice.split_once(';').map(|(id, amount)| (id, amount.trim().parse::<f64>())) {
            Some((id, Ok(amount))) if amount >= 0.0 => {
                imported += 1;
                info!(id, amount, "imported");
            }
            Some((id, Ok(amount))) => warn!(id, amount, "negative amount, skipped"),
            Some((id, Err(e))) => error!(id, line, error = %e, "invoice amount is not a number"),
            None => error!(line, raw = invoice, "invoice line has no ';' separator"),
        }
    }
    info!(imported, "import finished");
    imported
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("watchbell-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let log_path = dir.join("import.log");
    let smtp = FakeSmtp::start();

    let (file, file_guard) =
        FileLayer::builder(&log_path).app("import").level(Level::INFO).max_bytes(64 * 1024).backup_count(2).build()?;
    let (mail, mail_guard) = MailLayer::builder(smtp.host())
        .plain() // loopback only: the default is STARTTLS, required
        .port(smtp.port())
        .from("import@example.com")
        .to("ops@example.com")
        .app("import")
        .build()?;
    let guard = file_guard.join(mail_guard);
    tracing_subscriber::registry().with(file).with(mail).init();

    let imported = import(&["A-1; 120.00", "A-2; 99.5", "A-3; twelve", "A-4; -3", "garbage", "A-6; 7"]);
    println!("imported {imported} of 6 invoices\n");

    // Deliver what is pending before exiting (bounded: it never hangs past 30 s).
    let flushed = guard.shutdown(Duration::from_secs(30));

    println!("== {} (INFO and up):", log_path.display());
    print!("{}", std::fs::read_to_string(&log_path)?);
    for mail in smtp.mails() {
        println!("\n== mail to {}: {}", mail.to.join(", "), mail.decoded_header("Subject").unwrap_or_default());
        println!("{}", mail.body_text().trim_end());
    }
    println!("\n== delivery: {}", if flushed.is_complete() { "complete" } else { "incomplete" });
    for s in guard.stats() {
        println!("   {s}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
