//! The watchbell sink: `FileLayer::builder(path)`.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{names, read, tmp, utc};
use tracing_subscriber::prelude::*;
use watchbell_core::format::Template;
use watchbell_core::{Batch, BatchReason, Level, Record, SinkOptions};
use watchbell_file::{FileLayer, Interval, ManualClock, Multiline};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn writes_one_default_format_line_per_record_at_the_level() {
    let dir = tmp("layer");
    let path = dir.join("alerts.log");
    let (layer, guard) = FileLayer::builder(&path).app("billing").level(Level::WARN).build().unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(user = "bob", "disk almost full");
        tracing::info!("below the level");
        tracing::error!(password = "hunter2", "login failed");
    });
    assert!(guard.shutdown(WAIT).is_complete());
    let text = read(&path);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("[billing] 20"), "{}", lines[0]);
    assert!(lines[0].ends_with(" WARN layer: disk almost full user=bob"), "{}", lines[0]);
    assert!(lines[1].contains(" ERROR layer: login failed password="), "{}", lines[1]);
    assert!(!text.contains("hunter2"), "secrets are redacted before the file sees them");
}

#[test]
fn a_template_formats_each_line() {
    let dir = tmp("template");
    let path = dir.join("app.log");
    let (layer, guard) = FileLayer::builder(&path)
        .format(Template::parse("{level}|{message}|{field.n}").unwrap())
        .level(Level::DEBUG)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::debug!(n = 1, "first");
        tracing::error!(n = 2, "second\twith tab");
    });
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(read(&path), "DEBUG|first|1\nERROR|second\twith tab|2\n");
}

#[test]
fn group_and_escalation_batches_from_other_handlers_are_written_whole_and_in_order() {
    let dir = tmp("handler");
    let path = dir.join("app.log");
    let (handler, guard) = FileLayer::builder(&path)
        .format(|r: &Record, _: &_| format!("{} {}", r.level, r.message))
        .build_handler()
        .unwrap();
    let records = |prefix: &str| (0..3).map(|i| Record::new(Level::INFO, "app", format!("{prefix} {i}"))).collect();
    handler.handle_batch(Batch::new(BatchReason::Group, records("group")));
    handler.handle_batch(Batch::new(BatchReason::Escalation, records("escalation")));
    handler.handle(Record::new(Level::ERROR, "app", "single"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(
        read(&path),
        "INFO group 0\nINFO group 1\nINFO group 2\nINFO escalation 0\nINFO escalation 1\nINFO escalation 2\nERROR single\n"
    );
}

#[test]
fn four_threads_through_the_layer_rotate_without_loss_or_duplicates() {
    let dir = tmp("layer-threads");
    let (layer, guard) = FileLayer::builder(dir.join("app.log"))
        .format(Template::parse("{message}").unwrap())
        .max_bytes(300)
        .backup_count(10_000)
        .queue_records(100_000)
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..500 {
                        tracing::info!("t{t} i{i}");
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(guard.flush(WAIT).is_complete());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for n in names(&dir) {
        let text = read(dir.join(&n));
        assert!(!text.is_empty() && text.len() <= 300, "{n}: {} bytes", text.len());
        for l in text.lines() {
            *seen.entry(l.to_owned()).or_default() += 1;
        }
    }
    for t in 0..4 {
        for i in 0..500 {
            assert_eq!(seen.get(&format!("t{t} i{i}")), Some(&1), "t{t} i{i} exactly once");
        }
    }
    assert_eq!(seen.len(), 2000);
}

#[test]
fn an_unwritable_directory_is_retried_and_nothing_is_lost() {
    let dir = tmp("layer-unwritable");
    std::fs::write(dir.join("logs"), "in the way").unwrap();
    let path = dir.join("logs").join("app.log");
    let (handler, guard) =
        FileLayer::builder(&path).format(Template::parse("{message}").unwrap()).build_handler().unwrap();
    for i in 0..5 {
        handler.handle(Record::new(Level::WARN, "app", format!("r{i}")));
    }
    std::thread::sleep(Duration::from_millis(400));
    let stats = guard.stats();
    assert!(stats.iter().any(|s| s.retried > 0), "{stats:?}");
    assert!(stats.iter().any(|s| s.last_error.as_deref().is_some_and(|e| e.contains("app.log"))), "{stats:?}");
    std::fs::remove_file(dir.join("logs")).unwrap();
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(read(&path), "r0\nr1\nr2\nr3\nr4\n");
    assert_eq!(guard.stats().iter().map(|s| s.delivered).sum::<u64>(), 5);
}

#[test]
fn time_rotation_through_the_layer() {
    let dir = tmp("layer-time");
    let clock = ManualClock::new(utc(2026, 11, 21, 23, 59, 59));
    let (handler, guard) = FileLayer::builder(dir.join("app.log"))
        .format(Template::parse("{message}").unwrap())
        .rotate_every(Interval::Daily)
        .clock(clock.clone())
        .build_handler()
        .unwrap();
    handler.handle(Record::new(Level::INFO, "app", "saturday"));
    assert!(guard.flush(WAIT).is_complete());
    clock.advance(Duration::from_secs(1));
    handler.handle(Record::new(Level::INFO, "app", "sunday"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(read(dir.join("app.log.2026-11-21")), "saturday\n");
    assert_eq!(read(dir.join("app.log")), "sunday\n");
}

#[test]
fn configuration_errors_name_the_setting() {
    let e = FileLayer::builder("app.log").max_bytes(0).build_handler().err().unwrap();
    assert_eq!((e.source, e.key.as_str()), ("watchbell-file", "max_bytes"));
    let e = FileLayer::builder("/").build_handler().err().unwrap();
    assert_eq!(e.key, "path");
    assert!(e.to_string().starts_with("watchbell-file: path: "), "{e}");
    // The common setters are there.
    let b = FileLayer::builder("app.log").rate_limit(5, Duration::from_secs(60)).queue_records(10);
    assert!(format!("{b:?}").contains("app.log"));
}

#[test]
fn a_message_with_newlines_cannot_forge_a_record() {
    let dir = tmp("layer-forge");
    let path = dir.join("app.log");
    let (layer, guard) = FileLayer::builder(&path).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::warn!("login ok\n2026-11-21T00:00:00.000000Z ERROR app: disk wiped\r\nend");
    });
    assert!(guard.shutdown(WAIT).is_complete());
    let text = read(&path);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text:?}");
    assert!(lines[0].ends_with(" WARN layer: login ok"), "{text:?}");
    assert_eq!(lines[1], "  2026-11-21T00:00:00.000000Z ERROR app: disk wiped");
    assert_eq!(lines[2], "  end");

    let dir = tmp("layer-single");
    let path = dir.join("app.log");
    let (handler, guard) = FileLayer::builder(&path)
        .format(Template::parse("{message}").unwrap())
        .multiline(Multiline::SingleLine)
        .build_handler()
        .unwrap();
    handler.handle(Record::new(Level::ERROR, "app", "one\ntwo\r\nthree"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(read(&path), "one two three\n");
}

#[test]
fn nul_and_other_control_characters_are_escaped_in_the_file() {
    let dir = tmp("controls");
    let path = dir.join("app.log");
    let (layer, guard) = FileLayer::builder(&path).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::warn!("nul\0here \u{1b}[31mred\u{7f}del\u{85}nel\ttab");
    });
    assert!(guard.shutdown(WAIT).is_complete());
    let bytes = std::fs::read(&path).unwrap();
    let raw: Vec<u8> = bytes.iter().copied().filter(|&b| b < 0x20 && b != b'\n' && b != b'\t' || b == 0x7f).collect();
    assert!(raw.is_empty(), "raw control bytes in the file: {raw:?}");
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.ends_with(" WARN layer: nul\\0here \\u{1b}[31mred\\u{7f}del\\u{85}nel\ttab\n"), "{text:?}");
}
