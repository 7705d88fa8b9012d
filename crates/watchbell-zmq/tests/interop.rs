//! Interop with Logbook and pyzmq from PyPI (a venv made by `.ci/python.sh`): Python's
//! `logbook.queues.ZeroMQHandler` → watchbell's `ZmqSubscriber` → a FakeSlack through
//! watchbell-slack, and watchbell's `ZmqLayer` → Python's `ZeroMQSubscriber` → Logbook's
//! `TestHandler`; non-ASCII and 1 MiB messages both ways.

mod common;

use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{finish, spawn_python, tell, wait_until, Keep};
use tracing_subscriber::prelude::*;
use watchbell_core::handler::Select;
use watchbell_core::{FanOut, Handler, Level, SinkOptions, Value};
use watchbell_slack::{SlackLayer, Webhook};
use watchbell_test::slack::FakeSlack;
use watchbell_zmq::{ZmqLayer, ZmqSubscriber};

const BIG: usize = 1 << 20;

const PY_PUBLISHER: &str = r#"
import select, sys
import logbook
from logbook.queues import ZeroMQHandler

pub = ZeroMQHandler(sys.argv[1])                # PUB, bound (Logbook's default)
push = ZeroMQHandler(sys.argv[2], multi=True)   # PUSH, connected to watchbell's PULL
probe = logbook.Logger("probe")
# Probes until watchbell says (on stdin) that it hears the PUB: no slow-joiner loss.
while True:
    with pub.applicationbound():
        probe.debug("probe")
    if select.select([sys.stdin], [], [], 0.05)[0]:
        sys.stdin.readline()
        break
log = logbook.Logger("billing")
with pub.applicationbound():
    log.error("payment failed for {user}: {0}", "card declined", user="Jürgen",
              extra={"user": "jürgen", "amount": 42, "ratio": 0.5, "ok": False, "tags": ["a", "b"], "none": None})
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("division broke")
    logbook.Logger("big").warning("ß" * (1 << 19))
with push.applicationbound():
    logbook.Logger("fan-in").critical("from a PUSH: ünïcödé ✓ 日本")
pub.close(linger=5000)
push.close(linger=5000)
"#;

#[test]
fn logbook_zeromq_handler_feeds_the_subscriber_and_a_fake_slack() {
    let slack = FakeSlack::start();
    let (slack_h, slack_guard) =
        SlackLayer::builder().webhook(Webhook::new(slack.url())).no_rate_limit().build_handler().unwrap();
    let keep = Keep::default();
    let handler: Arc<dyn Handler> = Arc::new(
        FanOut::new()
            .with(Arc::new(Select::new(slack_h, |r| r.target != "probe" && r.target != "big")))
            .with(Arc::new(keep.clone())),
    );
    let pub_uri = format!("tcp://127.0.0.1:{}", common::free_port());
    let sub = ZmqSubscriber::builder()
        .connect(&pub_uri)
        .bind("tcp://127.0.0.1:0")
        .pull()
        .reconnect_interval(Duration::from_millis(50))
        .spawn(handler)
        .unwrap();
    let push_uri = sub.endpoints()[1].clone();
    assert!(push_uri.starts_with("tcp://127.0.0.1:") && !push_uri.ends_with(":0"), "{push_uri}");

    let mut child = spawn_python(PY_PUBLISHER, &[pub_uri.clone(), push_uri]);
    let child_pid = child.id();
    assert!(
        wait_until(Duration::from_secs(60), || keep.records().iter().any(|r| r.target == "probe")),
        "no probe from Python's PUB: {:?}",
        sub.stats()
    );
    tell(&mut child, "go");
    finish(child, Duration::from_secs(60));
    assert!(
        wait_until(Duration::from_secs(20), || keep.records().iter().filter(|r| r.target != "probe").count() >= 4),
        "records: {:?}, stats {:?}",
        keep.records().iter().map(|r| (&r.target, r.message.len())).collect::<Vec<_>>(),
        sub.stats()
    );
    let records = keep.records();
    let by = |t: &str| records.iter().filter(|r| r.target == t).collect::<Vec<_>>();

    let billing = by("billing");
    assert_eq!(billing.len(), 2, "{billing:?}");
    let b = billing.iter().find(|r| r.message.starts_with("payment")).unwrap();
    assert_eq!(b.level, Level::ERROR);
    assert_eq!(b.message, "payment failed for Jürgen: card declined");
    assert_eq!(b.fields.get("user"), Some(&Value::Str("jürgen".into())));
    assert_eq!(b.fields.get("amount"), Some(&Value::I64(42)));
    assert_eq!(b.fields.get("ratio"), Some(&Value::F64(0.5)));
    assert_eq!(b.fields.get("ok"), Some(&Value::Bool(false)));
    assert_eq!(b.fields.get("tags"), Some(&Value::Str(r#"["a","b"]"#.into())));
    assert_eq!(b.fields.get("none"), None);
    assert_eq!(b.fields.get("func_name"), Some(&Value::Str("<module>".into())));
    assert_eq!(b.file.as_deref(), Some("<string>"));
    assert!(b.line.is_some_and(|l| l > 10), "{:?}", b.line);
    assert_eq!(b.module.as_deref(), Some("__main__"));
    assert_eq!(b.thread_name.as_deref(), Some("MainThread"));
    assert!(b.thread_id > 0);
    assert_eq!(b.pid, child_pid);
    let age = SystemTime::now().duration_since(b.time).expect("a time in the past");
    assert!(age < Duration::from_secs(120), "{age:?}");

    let e = billing.iter().find(|r| r.message == "division broke").unwrap();
    let tb = e.fields.get("error").and_then(Value::as_str).unwrap();
    assert!(tb.starts_with("Traceback") && tb.contains("ZeroDivisionError"), "{tb}");
    assert_eq!(e.fields.get("exception_name"), Some(&Value::Str("builtins.ZeroDivisionError".into())));
    assert_eq!(e.fields.get("exception_message"), Some(&Value::Str("division by zero".into())));

    let big = by("big");
    assert_eq!(big.len(), 1);
    assert_eq!(big[0].level, Level::WARN);
    assert_eq!(big[0].message, "ß".repeat(BIG / 2), "1 MiB of two-byte characters, whole");

    let fan_in = by("fan-in");
    assert_eq!(fan_in.len(), 1, "the PUSH → PULL endpoint of the same subscriber");
    assert_eq!(fan_in[0].level, Level::ERROR);
    assert_eq!(fan_in[0].fields.get("logbook_level"), Some(&Value::I64(15)), "CRITICAL kept");
    assert_eq!(fan_in[0].message, "from a PUSH: ünïcödé ✓ 日本");

    // The Slack alerts of the same records, through watchbell-slack's real HTTP sink.
    assert!(slack_guard.flush(Duration::from_secs(30)).is_complete());
    let text = slack.messages().iter().map(|m| m.to_string()).collect::<String>();
    assert!(text.contains("payment failed for Jürgen: card declined"), "{text}");
    assert!(text.contains("division broke"), "{text}");
    assert!(text.contains("ünïcödé ✓ 日本"), "{text}");
    assert!(!text.contains("probe"), "{text}");
    let s = sub.stats();
    assert_eq!(s.malformed, 0, "{s:?}");
    assert_eq!(s.dispatched, s.received, "{s:?}");
    assert!(sub.stop(Duration::from_secs(5)));
}

const PY_SUBSCRIBER: &str = r#"
import json, sys, time
import logbook
from logbook.queues import ZeroMQSubscriber

sub = ZeroMQSubscriber(sys.argv[1])             # SUB, connected to watchbell's bound PUB
th = logbook.TestHandler(level=logbook.TRACE)
ready = False
with th.applicationbound():
    deadline = time.time() + 90
    while time.time() < deadline:
        sub.dispatch_once(timeout=0.05)
        if not ready and th.records:
            print("ready", flush=True)
            ready = True
        if any(r.channel == "done" for r in th.records):
            break
recs = [r for r in th.records if r.channel not in ("probe", "done")]
b = [r for r in recs if r.channel == "billing"]
assert len(b) == 1, [(r.channel, r.message) for r in recs]
b = b[0]
assert b.level == logbook.ERROR and b.level_name == "ERROR", b.level
assert b.message == "payment failed für Jürgen ✓ {not a field}", b.message
assert b.extra["user"] == "bob" and b.extra["amount"] == 42 and b.extra["request_id"] == 7, dict(b.extra)
assert th.has_error("payment failed für Jürgen ✓ {not a field}", channel="billing")
big = [r for r in recs if r.channel == "big"]
assert len(big) == 1 and big[0].level == logbook.WARNING
w = [r for r in recs if r.channel == "warned"]
assert len(w) == 1 and w[0].level_name == "WARNING" and w[0].extra["attempt"] == 3
print(json.dumps({
    "level": b.level, "channel": b.channel, "message": b.message, "extra": dict(b.extra),
    "filename": b.filename, "lineno": b.lineno, "thread_name": b.thread_name, "thread": b.thread,
    "process": b.process, "module": b.module, "time": b.time.isoformat(),
    "big_len": len(big[0].message), "big_level": big[0].level, "count": len(recs),
}, ensure_ascii=False), flush=True)
"#;

#[test]
fn watchbell_layer_feeds_logbook_zeromq_subscriber_and_test_handler() {
    let uri = format!("tcp://127.0.0.1:{}", common::free_port());
    let (layer, guard) = ZmqLayer::builder(&uri).level(Level::TRACE).build().unwrap();
    let mut child = spawn_python(PY_SUBSCRIBER, std::slice::from_ref(&uri));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let big = "é".repeat(BIG / 2);
    let billing_line;
    let subscriber = tracing_subscriber::registry().with(layer);
    {
        let _default = tracing::subscriber::set_default(subscriber);
        // Probes until Python says it hears them: no slow-joiner loss.
        let deadline = watchbell_core::time::deadline(Duration::from_secs(60));
        loop {
            tracing::debug!(target: "probe", "probe");
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) if line == "ready" => break,
                Ok(other) => panic!("python said {other:?}"),
                Err(_) => assert!(std::time::Instant::now() < deadline, "Python's subscriber heard no probe"),
            }
        }
        let span = tracing::info_span!("request", request_id = 7);
        let _entered = span.enter();
        billing_line = line!() + 1;
        tracing::error!(target: "billing", user = "bob", amount = 42, "payment failed für Jürgen ✓ {{not a field}}");
        tracing::warn!(target: "warned", attempt = 3, "retrying");
        tracing::warn!(target: "big", "{big}");
        tracing::info!(target: "done", "done");
    }
    assert!(guard.flush(Duration::from_secs(30)).is_complete());
    let status = {
        let deadline = watchbell_core::time::deadline(Duration::from_secs(90));
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(std::time::Instant::now() < deadline, "python subscriber did not finish");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    reader.join().unwrap();
    let lines: Vec<String> = rx.try_iter().collect();
    assert!(status.success(), "the Python assertions failed ({status}): {lines:?}");
    let summary: serde_json::Value = serde_json::from_str(lines.last().expect("a summary")).unwrap();
    assert_eq!(summary["level"], 14);
    assert_eq!(summary["channel"], "billing");
    assert_eq!(summary["message"], "payment failed für Jürgen ✓ {not a field}");
    assert_eq!(summary["extra"]["user"], "bob");
    assert_eq!(summary["extra"]["amount"], 42);
    assert_eq!(summary["extra"]["request_id"], 7, "span fields reach Logbook's extra");
    assert!(summary["filename"].as_str().unwrap().ends_with("interop.rs"), "{summary}");
    assert_eq!(summary["lineno"], billing_line);
    assert_eq!(summary["process"], std::process::id());
    assert!(summary["thread"].as_u64().unwrap() > 0);
    assert!(summary["time"].as_str().unwrap().starts_with("20"), "{summary}");
    assert_eq!(summary["big_len"], BIG / 2, "1 MiB of two-byte characters, whole");
    assert_eq!(summary["big_level"], 13);
    assert_eq!(summary["count"], 3);
    let stats = guard.stats();
    assert!(stats.iter().all(|s| s.dropped == 0 && s.failed == 0), "{stats:?}");
}
