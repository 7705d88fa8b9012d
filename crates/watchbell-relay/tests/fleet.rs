//! One alert per fleet: 8 child processes (this test binary again, told by
//! `WATCHBELL_TEST_REPLICA` to act as a replica) × 1,000 identical errors → one Slack message
//! in the window — through the relay, and without it through windows shared in PostgreSQL.
//! With `[rate_limit] gather`, that one message already says "7999 similar suppressed from 8
//! instances"; without it, the count comes with the window's next message (at the relay's
//! flush, or with the next window's first record). With the database down: local limiting,
//! counted, said once on stderr.
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tracing_subscriber::prelude::*;
use watchbell_test::slack::FakeSlack;

const REPLICAS: usize = 8;
const PER_REPLICA: usize = 1000;

/// The one callsite every replica logs from: the same fingerprint in every process.
fn burst(n: usize) {
    for i in 0..n {
        tracing::error!(attempt = i, "payments database unreachable");
    }
}

/// Not a test of its own: the body of a child process (see the module docs).
#[test]
fn replica() {
    let Ok(mode) = std::env::var("WATCHBELL_TEST_REPLICA") else { return };
    let n: usize = std::env::var("WATCHBELL_TEST_COUNT").unwrap().parse().unwrap();
    let target = std::env::var("WATCHBELL_TEST_TARGET").unwrap();
    let index = std::env::var("WATCHBELL_TEST_INDEX").unwrap();
    match mode.as_str() {
        "relay" => {
            let (layer, guard) =
                watchbell_http::HttpLayer::builder(target).app("shop").host(format!("web-{index}")).build().unwrap();
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || burst(n));
            assert!(guard.shutdown(Duration::from_secs(30)).is_complete());
        }
        "shared" => {
            // `target` is a whole watchbell.toml: the same file for every replica.
            let config = watchbell::Config::from_toml_str(&target).unwrap();
            let (layers, guard) = config.layers().unwrap();
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || burst(n));
            assert!(guard.shutdown(Duration::from_secs(30)).is_complete());
        }
        other => panic!("unknown replica mode {other}"),
    }
}

fn spawn_replicas(mode: &str, target: &str, count: usize, replicas: usize) -> Vec<Output> {
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..replicas)
        .map(|i| {
            Command::new(&exe)
                .args(["--exact", "replica", "--nocapture", "--test-threads=1"])
                .env("WATCHBELL_TEST_REPLICA", mode)
                .env("WATCHBELL_TEST_COUNT", count.to_string())
                .env("WATCHBELL_TEST_TARGET", target)
                .env("WATCHBELL_TEST_INDEX", i.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for o in &outputs {
        assert!(o.status.success(), "a replica failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    outputs
}

fn text_of(messages: &[serde_json::Value]) -> Vec<String> {
    messages.iter().map(|m| m.to_string()).collect()
}

/// A relay alerting to `slack` with a rate limit of 1 per hour (and `rate_limit` lines added),
/// once the 8 replicas have sent it their 1,000 records each and it has dispatched them all.
fn fleet_through_a_relay(
    slack: &FakeSlack,
    rate_limit: &str,
) -> (watchbell_relay::RelayHandle, watchbell::core::Guard) {
    let toml = format!(
        "[rate_limit]\nlimit = 1\nper = \"1h\"\n{rate_limit}\n[[slack.webhooks]]\nurl = \"{}\"\n\n[relay]\nhttp = \"127.0.0.1:0\"\nqueue = 50000\n",
        slack.webhook_url("alerts")
    );
    let config = watchbell::Config::from_toml_str(&toml).unwrap();
    let builder = watchbell_relay::builder_from(&config).unwrap();
    let (handler, guard) = config.handlers().unwrap();
    let relay = builder.spawn(handler).unwrap();
    let url = format!("http://{}/v1/records", relay.http_addr().unwrap());
    spawn_replicas("relay", &url, PER_REPLICA, REPLICAS);
    let total = (REPLICAS * PER_REPLICA) as u64;
    let end = watchbell_core::time::deadline(Duration::from_secs(30));
    while relay.health()["delivered"].as_u64() != Some(total) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(relay.health()["delivered"].as_u64(), Some(total), "{}", relay.health());
    (relay, guard)
}

#[test]
fn through_the_relay_with_a_gather_eight_processes_make_one_message_with_the_fleet_count() {
    let slack = FakeSlack::start();
    // The gather is longer than 8 processes take to start and send their 1,000 records each.
    let started = Instant::now();
    let (relay, guard) = fleet_through_a_relay(&slack, "gather = \"10s\"\n");
    assert!(started.elapsed() < Duration::from_secs(10), "the fleet's records came within the gather");
    let first = slack.wait_for_messages(1, Duration::from_secs(30));
    assert_eq!(first.len(), 1, "the gathered alert is sent");
    // Nothing more in the window (give the paced sender time to send a second one), and
    // nothing more at shutdown: the count went with the one message.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(relay.shutdown(Duration::from_secs(10)).is_complete());
    drop(guard);
    let all = slack.messages();
    assert_eq!(all.len(), 1, "one alert for the fleet: {:#?}", text_of(&all));
    let text = all[0].to_string();
    assert!(text.contains("payments database unreachable"), "{text}");
    assert!(text.contains("7999 similar suppressed from 8 instances"), "{text}");
    assert!(text.contains("web-"), "the origin fields travel with the record: {text}");
}

#[test]
fn through_the_relay_without_a_gather_the_fleet_count_comes_with_the_flush() {
    let slack = FakeSlack::start();
    let (relay, guard) = fleet_through_a_relay(&slack, "");
    // In the window: exactly one message (give the paced sender time to send a second one).
    slack.wait_for_messages(1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(2500));
    let in_window = slack.messages();
    assert_eq!(in_window.len(), 1, "one alert for the fleet: {:#?}", text_of(&in_window));
    assert!(in_window[0].to_string().contains("payments database unreachable"));
    // The window's count, at the relay's shutdown: the fleet's, from 8 instances.
    assert!(relay.shutdown(Duration::from_secs(10)).is_complete());
    drop(guard);
    let all = slack.wait_for_messages(2, Duration::from_secs(10));
    assert_eq!(all.len(), 2, "{:#?}", text_of(&all));
    let summary = all[1].to_string();
    assert!(summary.contains("7999 similar suppressed from 8 instances"), "{summary}");
    // The origin fields travel with the record into the alert.
    assert!(in_window[0].to_string().contains("web-"), "{}", in_window[0]);
}

/// The PostgreSQL tests share one table (dropped at their start): one at a time.
static PG_TABLE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn shared_toml(slack: &FakeSlack, pg: &str, per: &str) -> String {
    format!(
        "[rate_limit]\nlimit = 1\nper = \"{per}\"\nshared = \"{pg}\"\n\n[[slack.webhooks]]\nurl = \"{}\"\n",
        slack.webhook_url("alerts")
    )
}

#[test]
fn through_shared_postgres_windows_with_a_gather_eight_processes_make_one_message_with_the_fleet_count() {
    let _one_at_a_time = PG_TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let pg = watchbell_test::postgres::url();
    {
        let mut c = postgres::Client::connect(&pg, postgres::NoTls).unwrap();
        c.batch_execute("DROP TABLE IF EXISTS watchbell_rate_windows").unwrap();
    }
    let slack = FakeSlack::start();
    // The process whose record wins the window holds it 8 s (its shutdown waits for that, as
    // its 30 s deadline allows): longer than the other 7 take to log theirs and exit.
    let toml = shared_toml(&slack, &pg, "1h").replace("[rate_limit]\n", "[rate_limit]\ngather = \"8s\"\n");
    let outputs = spawn_replicas("shared", &toml, PER_REPLICA, REPLICAS);
    for o in &outputs {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("unavailable"), "the database answered: {err}");
    }
    // Every replica has exited, each after delivering what it had: what Slack has is final.
    let all = slack.messages();
    assert_eq!(all.len(), 1, "one alert for the fleet: {:#?}", text_of(&all));
    let text = all[0].to_string();
    assert!(text.contains("payments database unreachable"), "{text}");
    assert!(text.contains("7999 similar suppressed from 8 instances"), "{text}");
}

#[test]
fn through_shared_postgres_windows_without_a_gather_the_next_window_carries_the_fleet_count() {
    let _one_at_a_time = PG_TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let pg = watchbell_test::postgres::url();
    {
        let mut c = postgres::Client::connect(&pg, postgres::NoTls).unwrap();
        c.batch_execute("DROP TABLE IF EXISTS watchbell_rate_windows").unwrap();
    }
    let slack = FakeSlack::start();
    let window = Duration::from_secs(8);
    let toml = shared_toml(&slack, &pg, "8s");
    let started = Instant::now();
    let outputs = spawn_replicas("shared", &toml, PER_REPLICA, REPLICAS);
    assert!(started.elapsed() < window, "the burst fits the window ({:?})", started.elapsed());
    for o in &outputs {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("unavailable"), "the database answered: {err}");
    }
    std::thread::sleep(Duration::from_millis(1500));
    let in_window = slack.messages();
    assert_eq!(in_window.len(), 1, "one alert for the fleet: {:#?}", text_of(&in_window));
    // The next window's first record carries the fleet's count.
    // The window opened at the first replica's first claim, after `started`: wait it out.
    std::thread::sleep((window + Duration::from_secs(2)).saturating_sub(started.elapsed()));
    spawn_replicas("shared", &toml, 1, 1);
    let all = slack.wait_for_messages(2, Duration::from_secs(10));
    assert_eq!(all.len(), 2, "{:#?}", text_of(&all));
    let next = all[1].to_string();
    assert!(next.contains("7999 similar suppressed from 8 instances"), "{next}");
}

#[test]
fn with_the_database_down_replicas_limit_locally_count_it_and_say_it_once() {
    let slack = FakeSlack::start();
    // Nothing listens on port 1.
    let toml = shared_toml(&slack, "postgres://watchbell@127.0.0.1:1/watchbell_test", "1h");
    let outputs = spawn_replicas("shared", &toml, 50, 1);
    let err = String::from_utf8_lossy(&outputs[0].stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("shared rate-limit windows")).collect();
    assert_eq!(lines.len(), 1, "said once: {err}");
    assert!(lines[0].contains("rate limiting locally"), "{}", lines[0]);
    assert!(!lines[0].contains("watchbell_test") || !lines[0].contains("password"), "{}", lines[0]);
    // Local limiting: the first record, then the local count at shutdown (the paced Slack
    // sender may put both in one message).
    let end = watchbell_core::time::deadline(Duration::from_secs(10));
    while !slack.messages().iter().any(|m| m.to_string().contains("49 similar suppressed")) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let all = text_of(&slack.messages()).join("\n");
    assert_eq!(all.matches(":red_circle:").count(), 2, "two records delivered: {all}");
    assert!(all.contains("49 similar suppressed"), "{all}");
}

#[test]
fn shared_windows_are_counted_when_unavailable() {
    use std::sync::Arc;
    use watchbell_core::{Handler, RateLimit, Record};
    struct Count(std::sync::atomic::AtomicUsize);
    impl Handler for Count {
        fn handle(&self, _: Record) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let windows = watchbell_ticketing::fleet::PgWindows::new("postgres://nobody@127.0.0.1:1/none").unwrap();
    let keep = Arc::new(Count(0.into()));
    let rl = RateLimit::new(keep.clone(), 1, Duration::from_secs(3600)).shared(Arc::new(windows));
    for line in 0..5 {
        let mut r = Record::new(tracing::Level::ERROR, "app", "x");
        r.fingerprint = watchbell_core::Fingerprint(line);
        rl.handle(r);
    }
    assert!(rl.flush(watchbell_core::time::deadline(Duration::from_secs(10))).is_complete());
    assert_eq!(keep.0.load(std::sync::atomic::Ordering::Relaxed), 5, "the local decision stands");
    assert_eq!(rl.shared_unavailable(), 5);
}
