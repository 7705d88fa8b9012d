//! The Telegram layer against the loopback fake of the Bot API.

use std::time::{Duration, Instant};

use serde_json::json;
use tracing::Dispatch;
use tracing_subscriber::prelude::*;
use tracing_subscriber::Registry;
use watchbell_core::text::{utf16_len, MARKER};
use watchbell_core::{Guard, Level, Retry, Stats};
use watchbell_telegram::{BuildError, Chat, SinkOptions, TelegramBuilder, TelegramLayer};
use watchbell_test::http::Reply;
use watchbell_test::telegram::{validate_html, FakeTelegram, Message, TgReply};

const WAIT: Duration = Duration::from_secs(20);

fn builder(fake: &FakeTelegram) -> TelegramBuilder {
    TelegramLayer::builder(fake.token()).api_base(fake.api_base()).app("shop")
}

fn start(b: TelegramBuilder) -> (Dispatch, Guard) {
    let (layer, guard) = b.build::<Registry>().expect("valid configuration");
    (Dispatch::new(tracing_subscriber::registry().with(layer)), guard)
}

fn log(d: &Dispatch, f: impl FnOnce()) {
    tracing::dispatcher::with_default(d, f)
}

fn chat_stats(guard: &Guard) -> Vec<Stats> {
    guard.stats().into_iter().filter(|s| s.name.starts_with("telegram:")).collect()
}

fn assert_valid(m: &Message) {
    assert_eq!(m.parse_mode.as_deref(), Some("HTML"));
    assert!(utf16_len(&m.text) <= 4096, "{} units", utf16_len(&m.text));
    validate_html(&m.text).unwrap_or_else(|e| panic!("{e}: {}", m.text));
}

#[test]
fn single_record_exact_json() {
    let fake = FakeTelegram::start();
    let (d, guard) = start(builder(&fake).chat(1234_i64));
    let mut line = 0;
    log(&d, || {
        let span = tracing::info_span!("request", id = 7);
        let _e = span.enter();
        line = line!() + 1;
        tracing::error!(user = "bob", error = "db timeout: connection reset", "payment failed");
    });
    assert!(guard.flush(WAIT).is_complete());
    let msgs = fake.messages();
    assert_eq!(msgs.len(), 1);
    let text = format!(
        "<b>ERROR</b> in <b>shop</b>: payment failed\n<i>at</i> {}:{line}\n<i>user</i>: bob\n<i>in</i> request{{id=7}}\n<pre>db timeout: connection reset</pre>",
        file!()
    );
    assert_eq!(
        msgs[0].body,
        json!({
            "chat_id": 1234,
            "text": text,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
            "disable_notification": false,
        })
    );
    assert_valid(&msgs[0]);
    let http = &fake.http().requests()[0];
    assert_eq!(http.method, "POST");
    assert_eq!(http.path, format!("/bot{}/sendMessage", fake.token()));
    assert_eq!(chat_stats(&guard)[0].delivered, 1);
}

#[test]
fn coalesced_records_exact_json_in_a_topic() {
    let fake = FakeTelegram::start();
    let (d, guard) = start(builder(&fake).chat(Chat::new("@alerts").topic(7)).no_rate_limit());
    let mut lines = [0; 3];
    log(&d, || {
        lines[0] = line!() + 1;
        tracing::warn!("first");
    });
    assert_eq!(fake.wait_for_messages(1, WAIT).len(), 1);
    // The chat is paced (1 s): these two wait and travel together.
    log(&d, || {
        lines[1] = line!() + 1;
        tracing::warn!(disk = "sda", "second");
        lines[2] = line!() + 1;
        tracing::warn!("third");
    });
    assert!(guard.flush(WAIT).is_complete());
    let msgs = fake.messages();
    assert_eq!(msgs.len(), 2, "{msgs:#?}");
    let f = file!();
    let text = format!(
        "<b>WARN</b> in <b>shop</b>: second\n<i>at</i> {f}:{}\n<i>disk</i>: sda\n\n<b>WARN</b> in <b>shop</b>: third\n<i>at</i> {f}:{}",
        lines[1], lines[2]
    );
    assert_eq!(
        msgs[1].body,
        json!({
            "chat_id": "@alerts",
            "message_thread_id": 7,
            "text": text,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
            "disable_notification": true,
        })
    );
    assert_eq!(msgs[0].text, format!("<b>WARN</b> in <b>shop</b>: first\n<i>at</i> {f}:{}", lines[0]));
    assert!(msgs[1].received_at - msgs[0].received_at >= Duration::from_secs(1));
    assert_eq!(chat_stats(&guard)[0].delivered, 3);
}

#[test]
fn hostile_text_is_escaped() {
    let fake = FakeTelegram::start();
    let (d, guard) = start(builder(&fake).chat(1_i64).app("<app> & co"));
    log(&d, || tracing::error!(note = "<b>not bold</b>", "<!channel> & <script>alert('x')</script> &amp;"));
    assert!(guard.flush(WAIT).is_complete());
    let m = &fake.messages()[0];
    assert_valid(m);
    assert!(
        m.text.starts_with(
            "<b>ERROR</b> in <b>&lt;app&gt; &amp; co</b>: &lt;!channel&gt; &amp; &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp;amp;\n"
        ),
        "{}",
        m.text
    );
    assert!(m.text.contains("<i>note</i>: &lt;b&gt;not bold&lt;/b&gt;"), "{}", m.text);
    assert!(!m.text.contains("<script>") && !m.text.contains("<!channel>"));
}

#[test]
fn one_megabyte_message_is_cut_validly() {
    let fake = FakeTelegram::start();
    let (d, guard) = start(builder(&fake).chat(1_i64).chat(2_i64).no_rate_limit());
    let big = "a&b<c>d ".repeat(1 << 17); // 1 MiB of text full of chars to escape
    assert!(big.len() >= 1 << 20);
    let cjk = "日本語の👍🎉テキスト\n".repeat(20_000);
    log(&d, || {
        tracing::error!("{big}");
        tracing::error!(error = cjk.as_str(), "emoji and CJK in the error chain");
    });
    let fl = guard.flush(WAIT);
    eprintln!(
        "{fl:?} {:#?} {:?}",
        guard.stats(),
        fake.calls().iter().map(|c| (c.status, c.description.clone())).collect::<Vec<_>>()
    );
    assert!(fl.is_complete());
    for chat in [1, 2] {
        let msgs = fake.messages_to(chat);
        assert_eq!(msgs.len(), 2, "chat {chat}");
        for m in &msgs {
            assert_valid(m);
            assert!(m.text.contains(MARKER), "{}", m.text);
            assert!(utf16_len(&m.text) > 3900, "cut too short: {}", utf16_len(&m.text));
        }
        assert!(msgs[0].text.starts_with("<b>ERROR</b> in <b>shop</b>: a&amp;b&lt;c&gt;d a&amp;b"));
        assert!(msgs[1].text.contains("<pre>日本語の👍🎉テキスト\n"));
        assert!(msgs[1].text.ends_with(&format!("{MARKER}</pre>")), "{}", &msgs[1].text[msgs[1].text.len() - 40..]);
    }
    // Nothing was refused on the way.
    assert!(fake.calls().iter().all(|c| c.status == 200));
}

#[test]
fn split_mode_sends_several_valid_messages() {
    let fake = FakeTelegram::start();
    let (d, guard) = start(builder(&fake).chat(1_i64).split_long(true).pace(Duration::from_millis(200)));
    let lines: Vec<String> = (0..400).map(|i| format!("frame {i:03}: at <module> & co")).collect();
    let chain = lines.join("\n");
    log(&d, || tracing::error!(error = chain.as_str(), "long chain"));
    assert!(guard.flush(WAIT).is_complete());
    let msgs = fake.messages();
    assert!(msgs.len() >= 3, "{} messages", msgs.len());
    for m in &msgs {
        assert_valid(m);
        assert!(!m.text.contains(MARKER));
    }
    assert!(msgs[0].text.starts_with("<b>ERROR</b> in <b>shop</b>: long chain"));
    assert!(msgs[1].text.starts_with("<pre>"), "{}", msgs[1].text);
    let all: String = msgs.iter().map(|m| m.text.as_str()).collect();
    for l in &lines {
        let escaped = l.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        assert_eq!(all.matches(&escaped).count(), 1, "{l}");
    }
    assert_eq!(chat_stats(&guard)[0].delivered, 1);
}

#[test]
fn split_mode_resumes_after_a_failed_piece() {
    let fake = FakeTelegram::start();
    let retry = Retry { initial: Duration::from_millis(100), max: Duration::from_millis(300), ..Retry::default() };
    let (d, guard) = start(builder(&fake).chat(1_i64).split_long(true).pace(Duration::from_millis(100)).retry(retry));
    fake.push(TgReply::Accept);
    fake.push(TgReply::error(500, "Internal Server Error"));
    let chain: String = (0..400).map(|i| format!("line {i:03} of the chain\n")).collect();
    log(&d, || tracing::error!(error = chain.as_str(), "resumable"));
    assert!(guard.flush(WAIT).is_complete());
    let msgs = fake.messages();
    assert!(msgs.len() >= 3);
    assert_eq!(fake.calls().len(), msgs.len() + 1, "one failed attempt, no piece sent twice");
    let all: String = msgs.iter().map(|m| m.text.as_str()).collect();
    for i in 0..400 {
        assert_eq!(all.matches(&format!("line {i:03} of")).count(), 1, "line {i}");
    }
    let s = &chat_stats(&guard)[0];
    assert_eq!((s.delivered, s.failed, s.retried), (1, 0, 1));
}

#[test]
fn split_pieces_keep_the_pace() {
    let fake = FakeTelegram::start();
    let pace = Duration::from_millis(150);
    let (d, guard) = start(builder(&fake).chat(1_i64).split_long(true).pace(pace));
    let chain: String = (0..600).map(|i| format!("frame {i:03} of a long chain\n")).collect();
    log(&d, || tracing::error!(error = chain.as_str(), "paced"));
    log(&d, || tracing::warn!("after the long one"));
    assert!(guard.flush(WAIT).is_complete());
    let calls = fake.calls();
    assert!(calls.len() >= 5, "{} calls", calls.len());
    assert!(calls.iter().all(|c| c.status == 200));
    for w in calls.windows(2) {
        let gap = w[1].received_at - w[0].received_at;
        assert!(gap >= pace - Duration::from_millis(5), "pieces went {gap:?} apart, pace {pace:?}");
    }
    let msgs = fake.messages();
    assert!(msgs.last().unwrap().text.contains("after the long one"));
    let s = &chat_stats(&guard)[0];
    assert_eq!((s.delivered, s.retried, s.failed), (2, 0, 0), "{s}");
}

#[test]
fn a_megabyte_record_becomes_at_most_max_pieces_messages() {
    let fake = FakeTelegram::start();
    let (d, guard) = start(builder(&fake).chat(1_i64).split_long(true).max_pieces(3).pace(Duration::from_millis(10)));
    // 1 MiB and more of multibyte text with markup-worthy characters.
    let huge: String = "日本語 <&> 👍 text\n".repeat(50_000);
    assert!(huge.len() > 1 << 20);
    log(&d, || tracing::error!(error = huge.as_str(), "huge"));
    assert!(guard.flush(WAIT).is_complete());
    let msgs = fake.messages();
    assert_eq!(msgs.len(), 3, "max_pieces bounds the messages of one record");
    for m in &msgs {
        assert_valid(m);
    }
    assert!(!msgs[0].text.contains(MARKER) && !msgs[1].text.contains(MARKER));
    assert_eq!(msgs[2].text.matches(MARKER).count(), 1, "the last piece says it was cut");
    let rings: Vec<bool> = msgs.iter().map(|m| !m.disable_notification).collect();
    assert_eq!(rings, [true, false, false], "one alert rings once");
    // Each message is nearly full: the cap does not throw away room.
    assert!(
        msgs.iter().all(|m| utf16_len(&m.text) > 2048),
        "{:?}",
        msgs.iter().map(|m| utf16_len(&m.text)).collect::<Vec<_>>()
    );
    let s = &chat_stats(&guard)[0];
    assert_eq!((s.delivered, s.failed), (1, 0), "{s}");
}

#[test]
fn shutdown_interrupts_the_pace_between_pieces() {
    let fake = FakeTelegram::start();
    let (d, guard) = start(builder(&fake).chat(1_i64).split_long(true).pace(Duration::from_secs(30)));
    let chain: String = (0..600).map(|i| format!("frame {i:03} of a long chain\n")).collect();
    log(&d, || tracing::error!(error = chain.as_str(), "cut short"));
    assert_eq!(fake.wait_for_messages(1, WAIT).len(), 1, "the first piece goes at once");
    let began = Instant::now();
    assert!(!guard.shutdown(Duration::from_millis(300)).is_complete());
    assert!(began.elapsed() < Duration::from_secs(10), "shutdown waited {:?}", began.elapsed());
    assert_eq!(fake.messages().len(), 1, "no piece after the deadline");
    let s = &chat_stats(&guard)[0];
    assert_eq!((s.delivered, s.dropped), (0, 1), "{s}");
}

#[test]
fn too_many_requests_waits_retry_after() {
    let fake = FakeTelegram::start();
    let (d, guard) = start(builder(&fake).chat(1_i64));
    fake.push(TgReply::too_many_requests(2));
    log(&d, || tracing::error!("rate limited at first"));
    assert!(guard.flush(WAIT).is_complete());
    let calls = fake.calls();
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), [429, 200]);
    assert!(calls[1].received_at - calls[0].received_at >= Duration::from_secs(2));
    assert_eq!(fake.messages().len(), 1);
    let s = &chat_stats(&guard)[0];
    assert_eq!((s.delivered, s.retried, s.failed), (1, 1, 0));
}

#[test]
fn retry_after_header_is_honoured() {
    let fake = FakeTelegram::start();
    let (d, guard) = start(builder(&fake).chat(1_i64));
    let body = r#"{"ok":false,"error_code":429,"description":"Too Many Requests"}"#;
    fake.push(TgReply::http(Reply::json(429, body).retry_after(2)));
    log(&d, || tracing::error!("header only"));
    assert!(guard.flush(WAIT).is_complete());
    let reqs = fake.http().requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].received_at - reqs[0].received_at >= Duration::from_secs(2));
    assert_eq!(fake.messages().len(), 1);
}

#[test]
fn ten_second_outage_then_every_record_delivered() {
    let fake = FakeTelegram::start();
    let retry = Retry { initial: Duration::from_millis(250), max: Duration::from_secs(1), ..Retry::default() };
    let (d, guard) = start(builder(&fake).chat(1_i64).no_rate_limit().retry(retry));
    let started = Instant::now();
    fake.outage(Duration::from_secs(10));
    log(&d, || {
        for i in 0..5 {
            tracing::error!("record {i} during the outage");
        }
    });
    assert!(guard.flush(Duration::from_secs(25)).is_complete());
    let msgs = fake.messages();
    assert!(!msgs.is_empty());
    assert!(msgs[0].received_at - started >= Duration::from_secs(10));
    let all: String = msgs.iter().map(|m| m.text.as_str()).collect();
    for i in 0..5 {
        assert_eq!(all.matches(&format!("record {i} during the outage")).count(), 1);
    }
    assert!(fake.calls().iter().filter(|c| c.status == 503).count() >= 3);
    let s = &chat_stats(&guard)[0];
    assert_eq!((s.delivered, s.failed, s.dropped), (5, 0, 0));
    assert!(s.retried >= 3);
}

#[test]
fn chat_not_found_is_permanent_and_counted() {
    let fake = FakeTelegram::start();
    fake.unknown_chat(555);
    let (d, guard) = start(builder(&fake).chat(555_i64).chat(556_i64));
    log(&d, || tracing::error!("nobody there"));
    assert!(guard.flush(WAIT).is_complete());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fake.calls_to(555).len(), 1, "not retried");
    assert_eq!(fake.messages_to(556).len(), 1, "the other chat is not affected");
    let stats = chat_stats(&guard);
    let s = stats.iter().find(|s| s.name == "telegram:555").unwrap();
    assert_eq!((s.failed, s.delivered, s.retried), (1, 0, 0));
    let e = s.last_error.as_deref().unwrap();
    assert!(e.contains("chat not found"), "{e}");
    assert!(!e.contains(fake.token()));
}

#[test]
fn unparsable_html_falls_back_to_plain_text() {
    let fake = FakeTelegram::start();
    fake.push(TgReply::cant_parse_entities());
    let (d, guard) = start(builder(&fake).chat(1_i64));
    log(&d, || tracing::error!(who = "a&b", "x < y & \"z\""));
    assert!(guard.flush(WAIT).is_complete());
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].body["parse_mode"], "HTML");
    let msgs = fake.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].parse_mode, None);
    assert!(msgs[0].text.starts_with("ERROR in shop: x < y & \"z\"\nat "), "{}", msgs[0].text);
    assert!(msgs[0].text.ends_with("\nwho: a&b"), "{}", msgs[0].text);
    assert_eq!(chat_stats(&guard)[0].delivered, 1);
}

#[test]
fn migrated_chat_is_followed() {
    let fake = FakeTelegram::start();
    fake.migrate_chat(-42, -1001);
    let (d, guard) = start(builder(&fake).chat(-42_i64).no_rate_limit().pace(Duration::from_millis(100)));
    log(&d, || tracing::error!("one"));
    assert_eq!(fake.wait_for_messages(1, WAIT).len(), 1);
    log(&d, || tracing::error!("two"));
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(fake.calls_to(-42).len(), 1, "later messages go straight to the new chat");
    let moved = fake.messages_to(-1001);
    assert_eq!(moved.len(), 2);
    assert!(moved[0].text.contains("one") && moved[1].text.contains("two"));
    let s = &chat_stats(&guard)[0];
    assert_eq!((s.delivered, s.failed), (2, 0));
}

#[test]
fn notification_by_level() {
    let fake = FakeTelegram::start();
    let (d, guard) = start(builder(&fake).chat(1_i64).chat(Chat::new(2_i64).level(Level::ERROR)).pace(Duration::ZERO));
    log(&d, || tracing::warn!("quiet"));
    fake.wait_for_messages(1, WAIT);
    log(&d, || tracing::error!("loud"));
    log(&d, || tracing::info!("below the layer's level"));
    assert!(guard.flush(WAIT).is_complete());
    let one = fake.messages_to(1);
    assert_eq!(one.len(), 2);
    assert!(one[0].text.contains("quiet") && one[0].disable_notification);
    assert!(one[1].text.contains("loud") && !one[1].disable_notification);
    let two = fake.messages_to(2);
    assert_eq!(two.len(), 1, "chat 2 takes errors only");
    assert!(two[0].text.contains("loud"));

    // With notify_level(WARN), warnings ring too.
    let fake = FakeTelegram::start();
    let (d, guard) = start(builder(&fake).chat(1_i64).notify_level(Level::WARN));
    log(&d, || tracing::warn!("rings"));
    assert!(guard.flush(WAIT).is_complete());
    assert!(!fake.messages()[0].disable_notification);
}

fn suppressed_counts(msgs: &[Message]) -> u64 {
    msgs.iter()
        .flat_map(|m| m.text.match_indices(" similar suppressed)").map(move |(i, _)| &m.text[..i]))
        .map(|head| head.rsplit('(').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn burst_of_a_thousand_errors_is_paced_and_coalesced() {
    let fake = FakeTelegram::start();
    let (d, guard) = start(builder(&fake).chat(1234_i64).chat(-777_i64));
    log(&d, || {
        // The burst lasts about 2 s, so that the chats' pace shows.
        for i in 0..1000 {
            std::thread::sleep(Duration::from_millis(2));
            match i % 4 {
                0 => tracing::error!("db down {i}"),
                1 => tracing::error!("cache down {i}"),
                2 => tracing::error!("queue down {i}"),
                _ => tracing::error!("disk down {i}"),
            }
        }
    });
    assert!(guard.flush(Duration::from_secs(25)).is_complete());
    for (chat, pace) in [(1234, Duration::from_secs(1)), (-777, Duration::from_secs(3))] {
        let calls = fake.calls_to(chat);
        for w in calls.windows(2) {
            assert!(w[1].received_at - w[0].received_at >= pace, "chat {chat}: requests closer than {pace:?}");
        }
        let msgs = fake.messages_to(chat);
        assert!((2..=6).contains(&msgs.len()), "chat {chat}: {} messages", msgs.len());
        assert_eq!(calls.len(), msgs.len(), "nothing refused");
        msgs.iter().for_each(assert_valid);
        // 4 callsites, 1 record each passes the default limit; the 996 others are counted.
        assert_eq!(suppressed_counts(&msgs), 996, "chat {chat}");
        assert!(msgs.iter().any(|m| m.text.matches("<b>ERROR</b>").count() > 1), "some message coalesces records");
    }
}

#[test]
fn group_chats_are_paced_at_three_seconds() {
    let fake = FakeTelegram::start();
    let (d, guard) = start(builder(&fake).chat(-5_i64).no_rate_limit());
    log(&d, || tracing::error!("a"));
    fake.wait_for_messages(1, WAIT);
    log(&d, || tracing::error!("b"));
    assert!(guard.flush(WAIT).is_complete());
    let m = fake.messages();
    assert_eq!(m.len(), 2);
    assert!(m[1].received_at - m[0].received_at >= Duration::from_secs(3));
}

#[test]
fn token_never_shows() {
    let fake = FakeTelegram::start_with_token("999:the-right-token");
    let token = "123456:SECRETsecretSECRET_token-xyz";
    let b = TelegramLayer::builder(token).api_base(fake.api_base()).chat(1_i64).chat("@c0");
    let shown = format!("{b:?}");
    assert!(!shown.contains("SECRETsecret"), "{shown}");
    let (layer, guard) = b.build::<Registry>().unwrap();
    for shown in [format!("{layer:?}"), format!("{guard:?}")] {
        assert!(!shown.contains("SECRETsecret"), "{shown}");
    }
    let d = Dispatch::new(tracing_subscriber::registry().with(layer));
    log(&d, || tracing::error!("wrong token"));
    assert!(guard.flush(WAIT).is_complete());
    let stats = chat_stats(&guard);
    assert_eq!(stats.iter().map(|s| s.failed).sum::<u64>(), 2, "401 is permanent");
    for s in &stats {
        let e = s.last_error.as_deref().unwrap();
        assert!(e.contains("Unauthorized"), "{e}");
        assert!(!e.contains("SECRETsecret") && !format!("{s:?} {s}").contains("SECRETsecret"));
    }

    // A connection error names no token either.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let retry = Retry { max_attempts: 1, ..Retry::default() };
    let (layer, guard) = TelegramLayer::builder(token)
        .api_base(format!("http://127.0.0.1:{port}"))
        .chat(1_i64)
        .retry(retry)
        .build::<Registry>()
        .unwrap();
    let d = Dispatch::new(tracing_subscriber::registry().with(layer));
    log(&d, || tracing::error!("nowhere"));
    assert!(guard.flush(WAIT).is_complete());
    let s = &chat_stats(&guard)[0];
    assert_eq!(s.failed, 1);
    let e = s.last_error.as_deref().unwrap();
    assert!(!e.contains("SECRETsecret") && !e.contains("/bot"), "{e}");

    // Build errors.
    let e = TelegramLayer::builder(token).api_base("ftp://example.com").chat(1_i64).build::<Registry>().unwrap_err();
    assert_eq!(e.key, "api_base");
    assert!(!format!("{e} {e:?}").contains("SECRETsecret"));
    let e = TelegramLayer::builder("not a token SECRETsecret").chat(1_i64).build::<Registry>().unwrap_err();
    assert_eq!(e.key, "bot_token");
    assert!(!format!("{e} {e:?}").contains("SECRETsecret"));
}

#[test]
fn build_errors_name_the_setting() {
    let e: BuildError = TelegramLayer::builder("1:abc").build::<Registry>().unwrap_err();
    assert_eq!(e.key, "chat");
    let e = TelegramLayer::builder("1:abc").chat("ops alerts").build::<Registry>().unwrap_err();
    assert_eq!(e.key, "chat");
    assert!(e.to_string().contains("\"ops alerts\""), "{e}");
    let e = TelegramLayer::builder("1:abc").chat(1_i64).api_base("http://api.example.com").build::<Registry>();
    assert_eq!(e.unwrap_err().key, "api_base");
    assert!(TelegramLayer::builder("1:abc").chat("-1001").chat("@ok_name").build::<Registry>().is_ok());
}

#[test]
fn a_batch_too_long_for_one_message_is_sent_once_even_when_a_later_message_fails() {
    let fake = FakeTelegram::start();
    let retry = Retry { initial: Duration::from_millis(100), max: Duration::from_millis(300), ..Retry::default() };
    let (d, guard) = start(builder(&fake).chat(1_i64).no_rate_limit().pace(Duration::from_millis(500)).retry(retry));
    log(&d, || tracing::error!("first"));
    fake.wait_for_messages(1, WAIT);
    // The second message of the next batch fails once.
    fake.push(TgReply::Accept);
    fake.push(TgReply::error(502, "Bad Gateway"));
    // Queued while the chat is paced: one batch, too long for one message.
    let pad = "x".repeat(150);
    log(&d, || {
        for i in 0..60 {
            tracing::error!("record {i:02} {pad}");
        }
    });
    assert!(guard.flush(WAIT).is_complete());
    let msgs = fake.messages();
    assert!(msgs.len() >= 3, "{} messages", msgs.len());
    msgs.iter().for_each(assert_valid);
    let all: String = msgs.iter().map(|m| m.text.as_str()).collect();
    for i in 0..60 {
        assert_eq!(all.matches(&format!("record {i:02} ")).count(), 1, "record {i}");
    }
    assert!(fake.calls().iter().any(|c| c.status == 502));
    let s = &chat_stats(&guard)[0];
    assert_eq!((s.delivered, s.failed, s.retried), (61, 0, 1));
}

#[test]
fn custom_format_is_escaped() {
    let fake = FakeTelegram::start();
    let template: watchbell_core::format::Template = "{level} <{app}> {message} {field.user}".parse().unwrap();
    let (d, guard) = start(builder(&fake).chat(1_i64).format(template));
    log(&d, || tracing::error!(user = "b&b", "custom"));
    let blank = |_: &watchbell_core::Record, _: &watchbell_core::format::FormatContext| String::from("  ");
    let fake2 = FakeTelegram::start();
    let (d2, guard2) = start(builder(&fake2).chat(1_i64).format(blank));
    log(&d2, || tracing::error!("blank custom text"));
    assert!(guard.flush(WAIT).is_complete() && guard2.flush(WAIT).is_complete());
    assert_eq!(fake.messages()[0].text, "ERROR &lt;shop&gt; custom b&amp;b");
    assert!(fake2.messages()[0].text.starts_with("<b>ERROR</b> in <b>shop</b>: blank custom text"));
}

#[test]
fn blocked_bot_is_permanent() {
    let fake = FakeTelegram::start();
    fake.push(TgReply::error(403, "Forbidden: bot was blocked by the user"));
    let (d, guard) = start(builder(&fake).chat(77_i64));
    log(&d, || tracing::error!("blocked"));
    assert!(guard.flush(WAIT).is_complete());
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(fake.calls().len(), 1);
    let s = &chat_stats(&guard)[0];
    assert_eq!((s.failed, s.retried), (1, 0));
    assert!(s.last_error.as_deref().unwrap().contains("403: Forbidden: bot was blocked"));
}

/// The ticket link sits in the headline, HTML-escaped, so the validating fake accepts it and
/// cutting a long record keeps it; the journal hears of the delivery.
#[test]
fn a_ticket_link_survives_hostile_text_and_truncation() {
    let fake = FakeTelegram::start();
    let link = watchbell_core::TicketLink::new("https://t.example/a'b&c\"<d>", "shop \"&<'>\"").unwrap();
    let journal = watchbell_core::notified::subscribe(100);
    let (d, guard) = start(builder(&fake).chat(1234_i64).ticket_link(link.clone()).no_rate_limit());
    log(&d, || tracing::error!("{}<b>&", "x".repeat(10_000)));
    assert!(guard.flush(WAIT).is_complete());
    let m = &fake.messages()[0];
    assert_valid(m);
    assert!(m.text.ends_with(MARKER), "cut");
    let notes: Vec<_> = journal.drain().into_iter().filter(|n| n.app_id == link.app_id()).collect();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].destination, "telegram");
    let url = link.url_for(&notes[0].fingerprint);
    assert_eq!(url, format!("https://t.example/a'b&c%22%3Cd%3E/fp/shop%20%22%26%3C%27%3E%22/{}", notes[0].fingerprint));
    let href = url.replace('&', "&amp;").replace('\'', "&#39;");
    assert!(
        m.text.starts_with(&format!("<b>ERROR</b> in <b>shop</b> (<a href=\"{href}\">ticket</a>): xxx")),
        "{}",
        &m.text[..300]
    );
}
