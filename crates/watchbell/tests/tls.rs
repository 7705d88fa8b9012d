//! HTTPS destinations on a private CA, client certificates (mTLS) and proxies, for the HTTP
//! collector (Loki), Slack and Telegram: real TLS handshakes (rustls on both sides) with the
//! loopback fakes behind a TLS front, and a CONNECT proxy that records what went through it.
#![cfg(all(feature = "slack", feature = "telegram", feature = "http-batch"))]

use std::sync::Arc;
use std::time::Duration;

use watchbell::core::{BuildError, Guard, Handler, Level, Record, SinkOptions, Stats};
use watchbell::http_batch::{Encoding, HttpLayer};
use watchbell::slack::{SlackLayer, Webhook};
use watchbell::telegram::TelegramLayer;
use watchbell_test::collectors::FakeLoki;
use watchbell_test::slack::FakeSlack;
use watchbell_test::telegram::FakeTelegram;
use watchbell_test::tls::{FakeProxy, TestCa, TlsFront};

const WAIT: Duration = Duration::from_secs(20);

/// The message of a record as the Loki fake keeps it (the JSON record in the line).
fn loki_message(record: &serde_json::Value) -> String {
    let line: serde_json::Value = serde_json::from_str(record["line"].as_str().unwrap_or("{}")).unwrap_or_default();
    line["message"].as_str().unwrap_or_default().to_owned()
}
const CHAT: i64 = -1001234567890;

/// Hands one ERROR record to `built`, flushes, and returns the sink's stats (the first entry
/// with deliveries or failures).
fn send(built: Result<(Arc<dyn Handler>, Guard), BuildError>, message: &str, wait: Duration) -> Stats {
    let (handler, guard) = built.expect("the sink builds");
    handler.handle(Record::new(Level::ERROR, "billing", message));
    let _ = guard.flush(wait);
    let stats = guard.stats();
    stats
        .iter()
        .find(|s| s.delivered + s.failed + s.retried > 0)
        .cloned()
        .unwrap_or_else(|| panic!("no delivery attempt: {stats:?}"))
}

fn loki(url: String) -> watchbell::http_batch::HttpBuilder {
    HttpLayer::builder(url).encoding(Encoding::loki()).app("billing").batch_wait(Duration::from_millis(10))
}

fn slack(url: String) -> watchbell::slack::SlackBuilder {
    SlackLayer::builder().webhook(Webhook::new(url))
}

fn telegram(fake: &FakeTelegram, api_base: String) -> watchbell::telegram::TelegramBuilder {
    TelegramLayer::builder(fake.token()).chat(CHAT).api_base(api_base)
}

/// A refused handshake is a permanent failure: counted once as failed, never retried, nothing
/// delivered, and the reason says TLS and why.
fn assert_refused(stats: &Stats, why: &str) {
    assert_eq!((stats.delivered, stats.retried, stats.failed), (0, 0, 1), "{stats:?}");
    let e = stats.last_error.as_deref().unwrap_or_default();
    assert!(e.contains("TLS: ") && e.contains(why), "{e}");
}

#[test]
fn the_collector_over_https_on_a_private_ca_is_delivered_when_trusted_and_refused_when_not() {
    let fake = FakeLoki::start();
    let ca = TestCa::new("collector CA");
    let front = TlsFront::start(fake.http().addr(), &ca);
    let url = front.rewrite(&fake.url());
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let stats = send(loki(url.clone()).root_certificate(ca.pem()).build_handler(), "trusted", WAIT);
    assert_eq!((stats.delivered, stats.failed), (1, 0), "{stats:?}");
    let records = fake.wait_for_records(1, WAIT);
    assert_eq!(loki_message(&records[0]), "trusted", "{records:?}");
    assert_eq!(front.handshakes()[0].error, None);

    // Without the CA (the system's roots only): the certificate is not trusted.
    let stats = send(loki(url).build_handler(), "untrusted", Duration::from_secs(5));
    assert_refused(&stats, "invalid peer certificate: UnknownIssuer");
    assert_refused(&stats, "add its CA with root_certificate or ca_file");
    let handshakes = front.wait_for_handshakes(2, WAIT);
    assert!(handshakes[1].error.as_deref().is_some_and(|e| e.contains("alert")), "{handshakes:?}");
    assert_eq!(fake.records().len(), 1, "nothing more reached the collector");
    assert!(fake.errors().is_empty(), "{:?}", fake.errors());
}

#[test]
fn slack_and_telegram_trust_a_ca_file_and_refuse_without_it() {
    let ca = TestCa::new("re-signing proxy CA");
    let dir = watchbell_test::stack::temp_dir("tls-ca-file");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let slack_fake = FakeSlack::start();
    let slack_front = TlsFront::start(slack_fake.http().addr(), &ca);
    let hook = slack_front.rewrite(&slack_fake.url());
    let stats = send(slack(hook.clone()).ca_file(&ca_file).build_handler(), "slack over https", WAIT);
    assert_eq!(
        (stats.delivered, stats.failed),
        (1, 0),
        "{stats:?} {:?} {:?}",
        slack_front.handshakes(),
        slack_fake.http().requests()
    );
    assert!(slack_fake.wait_for_messages(1, WAIT)[0].to_string().contains("slack over https"));
    let stats = send(slack(hook.clone()).build_handler(), "slack untrusted", Duration::from_secs(5));
    assert_refused(&stats, "invalid peer certificate");
    assert!(!stats.last_error.unwrap_or_default().contains("fakesecret"), "the webhook secret stays out");
    assert_eq!(slack_fake.messages().len(), 1, "{:?} {:?}", slack_fake.messages(), slack_front.handshakes());

    let tg_fake = FakeTelegram::start();
    let tg_front = TlsFront::start(tg_fake.http().addr(), &ca);
    let base = tg_front.rewrite(&tg_fake.api_base());
    let stats = send(telegram(&tg_fake, base.clone()).ca_file(&ca_file).build_handler(), "telegram over https", WAIT);
    assert_eq!((stats.delivered, stats.failed), (1, 0), "{stats:?}");
    assert!(tg_fake.wait_for_messages(1, WAIT)[0].text.contains("telegram over https"));
    let stats = send(telegram(&tg_fake, base).build_handler(), "telegram untrusted", Duration::from_secs(5));
    assert_refused(&stats, "invalid peer certificate");
    assert!(!stats.last_error.unwrap_or_default().contains(tg_fake.token()), "the bot token stays out");
    assert_eq!(tg_fake.messages().len(), 1, "{:?} {:?}", tg_fake.messages(), tg_front.handshakes());

    // Only the given roots: the private CA still works; another CA's server does not.
    let stats = send(slack(hook).ca_file(&ca_file).tls_built_in_roots(false).build_handler(), "pinned", WAIT);
    assert_eq!(stats.delivered, 1, "{stats:?}");
    let other = TestCa::new("someone else");
    let stats = send(
        slack(slack_front.rewrite(&slack_fake.url()))
            .root_certificate(other.pem())
            .tls_built_in_roots(false)
            .build_handler(),
        "wrong pin",
        Duration::from_secs(5),
    );
    assert_refused(&stats, "invalid peer certificate");
}

#[test]
fn a_server_requiring_a_client_certificate_refuses_without_one_and_accepts_with_one() {
    let server_ca = TestCa::new("server CA");
    let client_ca = TestCa::new("client CA");
    let client = client_ca.client_cert("billing-service");

    let fake = FakeLoki::start();
    let front = TlsFront::start_mtls(fake.http().addr(), &server_ca, &client_ca);
    let url = front.rewrite(&fake.url());
    let stats = send(
        loki(url.clone()).root_certificate(server_ca.pem()).build_handler(),
        "no identity",
        Duration::from_secs(5),
    );
    assert_refused(&stats, "received fatal alert: CertificateRequired");
    assert_refused(&stats, "requires a client certificate: set client_identity");
    assert_eq!(front.wait_for_handshakes(1, WAIT)[0].error.as_deref(), Some("peer sent no certificates"));
    assert!(fake.records().is_empty());

    // A certificate from a CA the server does not know is refused too.
    let stranger = server_ca.client_cert("stranger");
    let stats = send(
        loki(url.clone())
            .root_certificate(server_ca.pem())
            .client_identity(stranger.cert_pem, stranger.key_pem)
            .build_handler(),
        "wrong identity",
        Duration::from_secs(5),
    );
    assert_refused(&stats, "received fatal alert");
    assert!(fake.records().is_empty());

    let stats = send(
        loki(url)
            .root_certificate(server_ca.pem())
            .client_identity(client.cert_pem.clone(), client.key_pem.clone())
            .build_handler(),
        "with identity",
        WAIT,
    );
    assert_eq!((stats.delivered, stats.failed), (1, 0), "{stats:?}");
    assert_eq!(loki_message(&fake.wait_for_records(1, WAIT)[0]), "with identity");
    let last = front.handshakes().pop().unwrap();
    assert!(last.error.is_none() && last.client_cert, "{last:?}");

    // Telegram with the identity from files.
    let dir = watchbell_test::stack::temp_dir("tls-mtls-files");
    let (cert_file, key_file) = (dir.join("client.pem"), dir.join("client.key"));
    std::fs::write(&cert_file, &client.cert_pem).unwrap();
    std::fs::write(&key_file, &client.key_pem).unwrap();
    let tg = FakeTelegram::start();
    let tg_front = TlsFront::start_mtls(tg.http().addr(), &server_ca, &client_ca);
    let base = tg_front.rewrite(&tg.api_base());
    let stats = send(
        telegram(&tg, base.clone()).root_certificate(server_ca.pem()).build_handler(),
        "tg no identity",
        Duration::from_secs(5),
    );
    assert_refused(&stats, "received fatal alert");
    let stats = send(
        telegram(&tg, base)
            .root_certificate(server_ca.pem())
            .client_identity_files(&cert_file, &key_file)
            .build_handler(),
        "tg with identity",
        WAIT,
    );
    assert_eq!(stats.delivered, 1, "{stats:?}");
    assert_eq!(tg.wait_for_messages(1, WAIT).len(), 1);
}

#[test]
fn requests_go_through_the_proxy_with_its_credentials_which_never_show() {
    let ca = TestCa::new("proxy test CA");
    let proxy = FakeProxy::start();
    proxy.require_auth("ops", "pr0xy p@ss");
    let proxy_url = format!("http://ops:pr0xy%20p%40ss@{}", proxy.addr());

    // Slack over HTTPS through a CONNECT tunnel.
    let slack_fake = FakeSlack::start();
    let front = TlsFront::start(slack_fake.http().addr(), &ca);
    let builder = slack(front.rewrite(&slack_fake.url())).root_certificate(ca.pem()).proxy(proxy_url.clone());
    let shown = format!("{builder:?}");
    assert!(!shown.contains("pr0xy") && !shown.contains("p%40ss"), "{shown}");
    let stats = send(builder.build_handler(), "via proxy", WAIT);
    assert_eq!(stats.delivered, 1, "{stats:?}");
    assert_eq!(slack_fake.wait_for_messages(1, WAIT).len(), 1);
    let seen = proxy.requests();
    assert_eq!(seen[0].method, "CONNECT");
    assert_eq!(seen[0].target, front.addr().to_string());
    assert_eq!(seen[0].status, Some(200));
    assert_eq!(front.handshakes().len(), 1, "the TLS handshake went through the tunnel");

    // The collector over plain HTTP (loopback) through the same proxy: a forwarded request.
    let fake = FakeLoki::start();
    let stats = send(loki(fake.url()).proxy(proxy_url.clone()).build_handler(), "forwarded", WAIT);
    assert_eq!(stats.delivered, 1, "{stats:?}");
    let last = proxy.requests().pop().unwrap();
    assert_eq!((last.method.as_str(), last.status), ("POST", None), "{last:?}");
    assert!(last.target.starts_with(&fake.url()), "{last:?}");
    assert_eq!(loki_message(&fake.wait_for_records(1, WAIT)[0]), "forwarded");

    // Wrong credentials: 407, nothing delivered, the password in no error.
    let wrong = format!("http://ops:Wr0ngSecret@{}", proxy.addr());
    let tg = FakeTelegram::start();
    let tg_front = TlsFront::start(tg.http().addr(), &ca);
    let stats = send(
        telegram(&tg, tg_front.rewrite(&tg.api_base()))
            .root_certificate(ca.pem())
            .proxy(wrong)
            .retry(watchbell::core::Retry::none())
            .build_handler(),
        "refused by proxy",
        Duration::from_secs(5),
    );
    assert_eq!(stats.delivered, 0, "{stats:?}");
    let e = stats.last_error.unwrap_or_default();
    assert!(!e.is_empty() && !e.contains("Wr0ngSecret"), "{e}");
    assert!(tg.messages().is_empty());
    let last = proxy.requests().pop().unwrap();
    assert_eq!(last.status, Some(407), "{last:?}");

    // A proxy that is not there: a connection error, without the credentials.
    drop(proxy);
    let stats = send(
        loki(fake.url()).proxy(proxy_url).retry(watchbell::core::Retry::none()).build_handler(),
        "proxy gone",
        Duration::from_secs(5),
    );
    let e = stats.last_error.clone().unwrap_or_default();
    assert!(stats.delivered == 0 && !e.is_empty(), "{stats:?}");
    for secret in ["pr0xy", "p%40ss", "p@ss", "ops:"] {
        assert!(!e.contains(secret), "{secret} in {e}");
    }
}

#[test]
fn unusable_tls_and_proxy_settings_are_build_errors_that_show_no_key() {
    let ca = TestCa::new("build CA");
    let client = ca.client_cert("svc");
    let url = "https://collector.example/loki/api/v1/push".to_owned();
    let err = |b: Result<(Arc<dyn Handler>, Guard), BuildError>| match b {
        Ok(_) => panic!("built"),
        Err(e) => e.to_string(),
    };

    let e = err(loki(url.clone()).root_certificate("not a certificate").build_handler());
    assert!(e.contains("root_certificate: no PEM certificate"), "{e}");
    let e = err(loki(url.clone()).ca_file("/nonexistent/ca.pem").build_handler());
    assert!(e.contains("ca_file: cannot read /nonexistent/ca.pem"), "{e}");
    let e = err(slack("https://hooks.slack.com/services/T0/B0/x".into()).tls_built_in_roots(false).build_handler());
    assert!(e.contains("tls_built_in_roots"), "{e}");
    // A key that does not parse: named, never quoted.
    let broken_key = client.key_pem.replace("PRIVATE KEY-----\n", "PRIVATE KEY-----\nAAAA");
    let e = err(loki(url.clone()).client_identity(client.cert_pem.clone(), broken_key.clone()).build_handler());
    assert!(e.contains("client_identity: the private key does not parse"), "{e}");
    let key_body: String = broken_key.lines().nth(1).unwrap().to_owned();
    assert!(!e.contains(&key_body[..20]), "{e}");
    // Certificate and key swapped.
    let e = err(loki(url.clone()).client_identity(client.key_pem.clone(), client.cert_pem.clone()).build_handler());
    assert!(e.contains("client_identity: certificate: no PEM certificate"), "{e}");
    let e = err(loki(url.clone()).client_identity_files("/nonexistent/c.pem", "/nonexistent/k.pem").build_handler());
    assert!(e.contains("client_identity_files: certificate: cannot read /nonexistent/c.pem"), "{e}");
    let e = err(telegram(&FakeTelegram::start(), "https://api.telegram.org".into())
        .proxy("socks5://u:S3cretPw@h:1080")
        .build_handler());
    assert!(e.contains("proxy:") && !e.contains("S3cretPw"), "{e}");
    let e = err(loki(url).proxy("u:S3cretPw@proxy:3128").build_handler());
    assert!(e.contains("proxy:") && !e.contains("S3cretPw"), "{e}");
}

/// The child half of [`the_proxy_environment_variables_are_honoured_by_default`].
fn env_proxy_child() {
    let hook = std::env::var("WATCHBELL_TEST_TLS_HOOK").unwrap();
    let ca = std::env::var("WATCHBELL_TEST_TLS_CA").unwrap();
    let stats = send(slack(hook.clone()).ca_file(&ca).build_handler(), "through HTTPS_PROXY", WAIT);
    assert_eq!(stats.delivered, 1, "{stats:?}");
    let stats = send(slack(hook.clone()).ca_file(&ca).proxy_from_env(false).build_handler(), "direct", WAIT);
    assert_eq!(stats.delivered, 1, "{stats:?}");
    let proxy = std::env::var("HTTPS_PROXY").unwrap();
    let stats = send(slack(hook).ca_file(&ca).proxy(proxy).no_proxy("127.0.0.1").build_handler(), "excepted", WAIT);
    assert_eq!(stats.delivered, 1, "{stats:?}");
}

/// By default `HTTPS_PROXY` is honoured (as curl does); `proxy_from_env(false)` and `no_proxy`
/// go direct. In a child process, so that the variables are its own.
#[test]
fn the_proxy_environment_variables_are_honoured_by_default() {
    if std::env::var_os("WATCHBELL_TEST_TLS_CHILD").is_some() {
        return env_proxy_child();
    }
    let ca = TestCa::new("env proxy CA");
    let dir = watchbell_test::stack::temp_dir("tls-env-proxy");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let proxy = FakeProxy::start();
    let fake = FakeSlack::start();
    let front = TlsFront::start(fake.http().addr(), &ca);
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "the_proxy_environment_variables_are_honoured_by_default", "--test-threads=1", "--nocapture"]);
    for var in
        ["HTTP_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", "REQUEST_METHOD"]
    {
        cmd.env_remove(var);
    }
    cmd.env("HTTPS_PROXY", proxy.url())
        .env("WATCHBELL_TEST_TLS_CHILD", "1")
        .env("WATCHBELL_TEST_TLS_HOOK", front.rewrite(&fake.url()))
        .env("WATCHBELL_TEST_TLS_CA", &ca_file);
    let out = cmd.output().expect("the test binary runs");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "the child failed:\n{text}");
    assert_eq!(fake.messages().len(), 3);
    assert_eq!(front.handshakes().len(), 3);
    let tunnels = proxy.requests();
    assert_eq!(tunnels.len(), 1, "only the first went through the proxy: {tunnels:?}");
    assert_eq!((tunnels[0].method.as_str(), tunnels[0].target.clone()), ("CONNECT", front.addr().to_string()));
}

/// `[http_client]` from a file, and the same from `WATCHBELL_HTTP_CLIENT_*` variables: every
/// HTTPS sink trusts the private CA, presents the client certificate and goes through the proxy.
#[cfg(feature = "config")]
#[test]
fn the_http_client_table_reaches_every_https_sink() {
    use tracing_subscriber::prelude::*;

    let server_ca = TestCa::new("config server CA");
    let client_ca = TestCa::new("config client CA");
    let client = client_ca.client_cert("billing");
    let dir = watchbell_test::stack::temp_dir("tls-config");
    let (ca_file, cert_file, key_file) = (dir.join("ca.pem"), dir.join("client.pem"), dir.join("client.key"));
    std::fs::write(&ca_file, server_ca.pem()).unwrap();
    std::fs::write(&cert_file, &client.cert_pem).unwrap();
    std::fs::write(&key_file, &client.key_pem).unwrap();
    let proxy = FakeProxy::start();
    proxy.require_auth("ops", "S3cret");

    for (round, from_vars) in [false, true].into_iter().enumerate() {
        let slack_fake = FakeSlack::start();
        let slack_front = TlsFront::start_mtls(slack_fake.http().addr(), &server_ca, &client_ca);
        let tg = FakeTelegram::start();
        let tg_front = TlsFront::start_mtls(tg.http().addr(), &server_ca, &client_ca);
        let loki_fake = FakeLoki::start();
        let loki_front = TlsFront::start_mtls(loki_fake.http().addr(), &server_ca, &client_ca);
        let proxy_url = format!("http://ops:S3cret@{}", proxy.addr());
        let (hook, base, collector) = (
            slack_front.rewrite(&slack_fake.url()),
            tg_front.rewrite(&tg.api_base()),
            loki_front.rewrite(&loki_fake.url()),
        );
        let config = if from_vars {
            watchbell::Config::default()
                .with_vars([
                    ("WATCHBELL_SLACK_WEBHOOK".to_owned(), hook),
                    ("WATCHBELL_TELEGRAM_TOKEN".to_owned(), tg.token().to_owned()),
                    ("WATCHBELL_TELEGRAM_CHAT".to_owned(), CHAT.to_string()),
                    ("WATCHBELL_TELEGRAM_API_BASE".to_owned(), base),
                    ("WATCHBELL_HTTP_URL".to_owned(), collector),
                    ("WATCHBELL_HTTP_ENCODING".to_owned(), "loki".to_owned()),
                    ("WATCHBELL_HTTP_CLIENT_CA_FILE".to_owned(), ca_file.display().to_string()),
                    ("WATCHBELL_HTTP_CLIENT_BUILT_IN_ROOTS".to_owned(), "false".to_owned()),
                    ("WATCHBELL_HTTP_CLIENT_CLIENT_CERT_FILE".to_owned(), cert_file.display().to_string()),
                    ("WATCHBELL_HTTP_CLIENT_CLIENT_KEY_FILE".to_owned(), key_file.display().to_string()),
                    ("WATCHBELL_HTTP_CLIENT_PROXY".to_owned(), proxy_url),
                    ("WATCHBELL_HTTP_CLIENT_NO_PROXY".to_owned(), "unused.example".to_owned()),
                    ("WATCHBELL_HTTP_CLIENT_PROXY_FROM_ENV".to_owned(), "false".to_owned()),
                ])
                .expect("the variables are valid")
        } else {
            watchbell::Config::from_toml_str(&format!(
                r#"
                [http_client]
                ca_file = {ca:?}
                built_in_roots = false
                client_cert_file = {cert:?}
                client_key_file = {key:?}
                proxy = {proxy_url:?}

                [[slack.webhooks]]
                url = {hook:?}

                [telegram]
                token = {token:?}
                chats = [{CHAT}]
                api_base = {base:?}

                [http]
                url = {collector:?}
                encoding = "loki"
                "#,
                ca = ca_file.display().to_string(),
                cert = cert_file.display().to_string(),
                key = key_file.display().to_string(),
                token = tg.token(),
            ))
            .expect("the file is valid")
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("S3cret"), "{shown}");
        let (layers, guard) = config.layers::<tracing_subscriber::Registry>().expect("every sink builds");
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
            tracing::error!("through the proxy over mTLS");
        });
        assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
        assert_eq!(slack_fake.wait_for_messages(1, WAIT).len(), 1);
        assert_eq!(tg.wait_for_messages(1, WAIT).len(), 1);
        assert_eq!(loki_message(&loki_fake.wait_for_records(1, WAIT)[0]), "through the proxy over mTLS");
        for front in [&slack_front, &tg_front, &loki_front] {
            let hs = front.handshakes();
            assert!(!hs.is_empty() && hs.iter().all(|h| h.error.is_none() && h.client_cert), "{hs:?}");
        }
        let tunnels: Vec<_> = proxy.requests().into_iter().filter(|r| r.status == Some(200)).collect();
        assert_eq!(tunnels.len(), 3 * (round + 1), "one CONNECT per sink: {tunnels:?}");
    }
}

/// Problems in `[http_client]` are reported under its keys, without key material or proxy
/// credentials.
#[cfg(feature = "config")]
#[test]
fn http_client_problems_name_their_keys() {
    let half = watchbell::Config::from_toml_str("[http_client]\nclient_cert_file = \"/etc/client.pem\"\n").unwrap_err();
    assert!(half.to_string().contains("http_client.client_key_file: missing"), "{half}");

    let dir = watchbell_test::stack::temp_dir("tls-config-bad");
    let key_file = dir.join("not-a-cert.pem");
    std::fs::write(&key_file, "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYBYTES\n-----END PRIVATE KEY-----\n").unwrap();
    let config = watchbell::Config::from_toml_str(&format!(
        r#"
        [http_client]
        ca_file = {key:?}
        client_cert_file = "/nonexistent/client.pem"
        client_key_file = {key:?}
        proxy = "socks5://ops:S3cret@proxy.example:1080"

        [[slack.webhooks]]
        url = "https://hooks.slack.com/services/T0/B0/x"
        "#,
        key = key_file.display().to_string(),
    ))
    .expect("the shape is valid; files are read when building");
    let err = match config.layers::<tracing_subscriber::Registry>() {
        Ok(_) => panic!("built"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("http_client.ca_file"), "{err}");
    assert!(err.contains("http_client.client_cert_file = \"/nonexistent/client.pem\""), "{err}");
    assert!(err.contains("http_client.proxy"), "{err}");
    for secret in ["TOPSECRETKEYBYTES", "S3cret"] {
        assert!(!err.contains(secret), "{secret} in {err}");
    }
}
