//! What the service tests share: a builder without pacing or rate limit and with quick retries,
//! a record with a field and a location, and the delivery's stats.
#![allow(dead_code)]

use std::time::Duration;

use watchbell_core::{Guard, Level, Record, Retry, SinkOptions, Value};
use watchbell_notify::NotifyBuilder;

/// How long a test waits for a fake.
pub const WAIT: Duration = Duration::from_secs(20);

/// `b` without pace or rate limit, app `shop` on host `web-1`, retries after 20–100 ms, and a
/// server's delay honoured up to 3 s.
pub fn quick(b: NotifyBuilder) -> NotifyBuilder {
    b.pace(Duration::ZERO).no_rate_limit().app("shop").host("web-1").retry(Retry {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
        max_server_delay: Duration::from_secs(3),
        ..Retry::default()
    })
}

/// A record of `shop::pay` with `invoice = 42` at `src/pay.rs:7`.
pub fn rec(level: Level, msg: &str) -> Record {
    let mut r = Record::new(level, "shop::pay", msg);
    r.fields.set("invoice", Value::U64(42));
    r.file = Some("src/pay.rs".into());
    r.line = Some(7);
    r
}

/// The delivery's stats (not the rate limiter's).
pub fn stats(g: &Guard) -> watchbell_core::Stats {
    g.stats().into_iter().find(|s| s.name != "rate-limit").unwrap()
}
