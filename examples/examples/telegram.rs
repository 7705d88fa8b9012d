//! Alerts to Telegram.
//!
//! `cargo run --example telegram` runs against a loopback fake of the Bot API (no credentials,
//! no network) that answers one 429 and checks every message's HTML, then prints what it got.
//!
//! With `WATCHBELL_TELEGRAM_TOKEN` (a bot token from @BotFather) and `WATCHBELL_TELEGRAM_CHAT`
//! (a chat id such as `-1001234567890`, or `@channel`) set, it sends to Telegram for real
//! (`WATCHBELL_TELEGRAM_TOPIC` optionally names a forum topic).

use std::time::{Duration, Instant};

use tracing::{error, info_span, warn};
use tracing_subscriber::prelude::*;
use watchbell::telegram::{Chat, TelegramLayer};
use watchbell_test::telegram::{validate_html, FakeTelegram, TgReply};

fn main() {
    let started = Instant::now();
    let real = match (std::env::var("WATCHBELL_TELEGRAM_TOKEN"), std::env::var("WATCHBELL_TELEGRAM_CHAT")) {
        (Ok(token), Ok(chat)) if !token.is_empty() && !chat.is_empty() => Some((token, chat)),
        _ => None,
    };
    let fake = real.is_none().then(FakeTelegram::start);

    let builder = match (&real, &fake) {
        (Some((token, chat)), _) => {
            println!("sending to Telegram chat {chat} for real");
            let mut c = Chat::new(chat.as_str());
            if let Some(topic) = std::env::var("WATCHBELL_TELEGRAM_TOPIC").ok().and_then(|t| t.parse().ok()) {
                c = c.topic(topic);
            }
            TelegramLayer::builder(token.as_str()).chat(c)
        }
        (None, Some(fake)) => {
            println!(
                "no WATCHBELL_TELEGRAM_TOKEN/WATCHBELL_TELEGRAM_CHAT: using a loopback fake at {}",
                fake.api_base()
            );
            fake.push(TgReply::too_many_requests(1));
            println!("the fake answers the first message with 429 retry_after=1\n");
            TelegramLayer::builder(fake.token())
                .api_base(fake.api_base())
                .chat(1234_i64)
                .chat(Chat::new("@ops").topic(7))
        }
        (None, None) => unreachable!("a fake is started when there are no credentials"),
    };
    let (layer, guard) = builder.app("shop").build().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    tracing_subscriber::registry().with(layer).init();

    {
        let span = info_span!("request", id = 42, path = "/checkout");
        let _entered = span.enter();
        warn!(latency_ms = 870, "payment provider slow");
        error!(
            order = 42,
            error = "connection reset by peer\ncaused by: broken pipe",
            "payment failed for <order #42> & co"
        );
        for i in 0..50 {
            error!(attempt = i, "retrying the payment");
        }
    }

    let flushed = guard.shutdown(Duration::from_secs(15));
    println!("delivered within {:.1?}: {flushed:?}\n", started.elapsed());
    for s in guard.stats() {
        println!("  {s}");
    }
    if let Some(fake) = &fake {
        println!(
            "\nthe fake received {} requests and accepted {} messages:",
            fake.calls().len(),
            fake.messages().len()
        );
        for m in fake.messages() {
            let valid = validate_html(&m.text).map_or_else(|e| format!("INVALID: {e}"), |()| "valid HTML".into());
            println!(
                "\n--- to {} (topic {:?}, silent {}, {valid}) ---\n{}",
                m.chat, m.message_thread_id, m.disable_notification, m.text
            );
        }
    }
}
