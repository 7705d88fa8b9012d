//! Configs that used to panic or to print secrets: a NUL in a path, credentials in a
//! collector URL, a secret typed into an `{ env }` or `{ file }` slot, a secret file that never
//! ends. Each is an error that names the key and never repeats the secret.

use std::panic::{catch_unwind, AssertUnwindSafe};

use watchbell::{Config, ConfigError};

/// The problems of `toml` as text (parse and build), failing the test on a panic.
fn problems(toml: &str) -> String {
    let result = catch_unwind(AssertUnwindSafe(|| {
        Config::from_toml_str(toml).and_then(|c| c.layers::<tracing_subscriber::Registry>().map(|_| ()))
    }));
    match result {
        Ok(Ok(())) => String::new(),
        Ok(Err(e)) => format!("{e}\n{e:?}"),
        Err(_) => panic!("the config panicked instead of returning an error:\n{toml}"),
    }
}

fn keys(e: &ConfigError) -> Vec<String> {
    e.problems().iter().map(|p| p.key.clone()).collect()
}

#[test]
fn a_nul_in_a_path_is_an_error_not_a_panic() {
    let dir = std::env::temp_dir().join(format!("watchbell-nul-{}", std::process::id()));
    for (toml, key) in [
        ("[file]\npath = \"\\u0000\"\n".to_owned(), "file.path"),
        (format!("[file]\npath = \"{}/a\\u0000b.log\"\n", dir.display()), "file.path"),
        ("[syslog]\ntransport = \"unix\"\naddress = \"/dev/lo\\u0000g\"\n".to_owned(), "syslog"),
        (format!("[ticketing]\nurl = \"sqlite://{}/t\\u0000.db\"\n", dir.display()), "ticketing"),
    ] {
        let text = problems(&toml);
        assert!(!text.is_empty(), "accepted: {toml}");
        let e = Config::from_toml_str(&toml)
            .and_then(|c| c.layers::<tracing_subscriber::Registry>().map(|_| ()))
            .unwrap_err();
        assert!(keys(&e).iter().any(|k| k.starts_with(key)), "{key} in {:?}", keys(&e));
    }
}

#[test]
fn an_accepted_configs_debug_shows_no_secret() {
    let toml = r#"
[http]
url = "https://ingest:S3cr/etPw@logs.example/push?api_key=AKsecret123&token=TKsecret456"
bearer_token = "BEARERsecret789"

[[slack.webhooks]]
url = "https://hooks.slack.com/services/T000/B000/SLACKsecret000"

[telegram]
token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw4"
chats = [-100123]
"#;
    let config = Config::from_toml_str(toml).expect("valid");
    let debug = format!("{config:?} {config:#?}");
    for secret in ["S3cr", "etPw", "AKsecret123", "TKsecret456", "BEARERsecret789", "SLACKsecret000", "AAHdqTcv"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
}

#[test]
fn an_api_base_with_credentials_is_redacted_in_debug() {
    let toml = r#"
[telegram]
token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw4"
chats = [-100123]
api_base = "https://proxyuser:PrOxYpass@tg-proxy.example/?token=TgPrOxYtok"

[sms]
recipients = ["+14155550100"]

[sms.twilio]
sid = "AC0123456789abcdef0123456789abcdef"
token = "TwToKen"
from = "+14155550199"
api_base = "https://u:TwPrOxYpass@twilio-proxy.example"
"#;
    let config = Config::from_toml_str(toml).expect("valid");
    let debug = format!("{config:?} {config:#?}");
    for secret in ["PrOxYpass", "TgPrOxYtok", "TwPrOxYpass", "proxyuser"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(debug.contains("tg-proxy.example") && debug.contains("twilio-proxy.example"), "{debug}");
}

#[test]
fn a_bad_collector_url_error_never_echoes_its_credentials() {
    for url in
        ["https://ingest:SeC/ret@[::1/push", "https://ingest:SeCret@/push?token=TKsecret", "ingest:SeCret@logs.example"]
    {
        let text = problems(&format!("[http]\nurl = \"{url}\"\n"));
        assert!(text.contains("http.url"), "{text}");
        for secret in ["SeC", "TKsecret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

#[test]
fn a_secret_typed_into_an_env_or_file_slot_is_never_repeated() {
    let token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw4";
    for slot in [format!("{{ env = \"{token}\" }}"), format!("{{ file = \"{token}\" }}")] {
        let toml = format!("[telegram]\ntoken = {slot}\nchats = [-100123]\n");
        let text = problems(&toml);
        assert!(text.contains("telegram.token"), "{text}");
        assert!(!text.contains("AAHdq") && !text.contains("123456789"), "{text}");
        let config = Config::from_toml_str(&toml).unwrap();
        assert!(!format!("{config:?}").contains("AAHdq"));
    }
    // A variable name that is a name, and a path that is a path, are shown: they help.
    let text = problems("[telegram]\ntoken = { env = \"WATCHBELL_NO_SUCH_VAR\" }\nchats = [-100123]\n");
    assert!(text.contains("WATCHBELL_NO_SUCH_VAR"), "{text}");
}

#[test]
fn a_secret_file_is_read_with_a_bound() {
    let started = std::time::Instant::now();
    let text = problems("[telegram]\ntoken = { file = \"/dev/zero\" }\nchats = [-100123]\n");
    assert!(text.contains("telegram.token"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    let big = std::env::temp_dir().join(format!("watchbell-big-secret-{}", std::process::id()));
    std::fs::write(&big, "x".repeat(100_000)).unwrap();
    let text = problems(&format!("[telegram]\ntoken = {{ file = \"{}\" }}\nchats = [-100123]\n", big.display()));
    assert!(text.contains("64 KiB"), "{text}");
    let _ = std::fs::remove_file(&big);
}
