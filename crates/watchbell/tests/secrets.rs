//! Secrets given as `{ env = "VAR" }` and `{ file = "/path" }`: read when the layers are built,
//! used for real (the fake checks the token), and never shown.
//!
//! This binary sets one environment variable, before anything else runs (one test only).
mod common;

use tracing_subscriber::prelude::*;
use watchbell::Config;
use watchbell_test::telegram::FakeTelegram;

const VAR: &str = "WB_CONFIG_TEST_TELEGRAM_TOKEN";

#[test]
fn secrets_from_the_environment_and_from_files() {
    let env_fake = FakeTelegram::start_with_token("111:env-token-Zq9");
    let file_fake = FakeTelegram::start_with_token("222:file-token-Xw4");
    let dir = common::temp_dir("secrets");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "222:file-token-Xw4\n").unwrap();
    // The only test in this binary: no other thread reads the environment meanwhile.
    std::env::set_var(VAR, "111:env-token-Zq9");

    for (fake, secret) in [
        (&env_fake, format!("{{ env = \"{VAR}\" }}")),
        (&file_fake, format!("{{ file = \"{}\" }}", token_file.display())),
    ] {
        let text = format!("[telegram]\ntoken = {secret}\nchats = [42]\napi_base = \"{}\"\n", fake.api_base());
        let config = Config::from_toml_str(&text).unwrap();
        let shown = format!("{config:?}");
        assert!(shown.contains("{ env = ") || shown.contains("{ file = "), "Debug shows where: {shown}");
        assert!(!shown.contains("token-"), "Debug shows where, never what: {shown}");
        let (layers, guard) = config.layers::<tracing_subscriber::Registry>().expect("the secret is found");
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
            tracing::error!("delivered with a secret token");
        });
        assert!(guard.flush(common::WAIT).is_complete());
        let got = fake.wait_for_messages(1, common::WAIT);
        assert!(got.iter().any(|m| m.text.contains("delivered with a secret token")), "{got:?}");
    }

    // Missing: the problem names the key and where the secret should be, not a value.
    let e = Config::from_toml_str("[telegram]\ntoken = { env = \"WB_CONFIG_TEST_UNSET\" }\nchats = [1]\n")
        .unwrap()
        .layers::<tracing_subscriber::Registry>()
        .err()
        .expect("the secret is missing");
    assert_eq!(e.problems().len(), 1, "{e}");
    assert_eq!(e.problems()[0].key, "telegram.token");
    assert_eq!(e.problems()[0].value.as_deref(), Some("{ env = \"WB_CONFIG_TEST_UNSET\" }"));
    assert!(e.problems()[0].expected.contains("not set"), "{e}");

    let missing = dir.join("nope");
    let e = Config::from_toml_str(&format!(
        "[ticketing]\nurl = {{ file = \"{}\" }}\n[mail]\nhost = \"h\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\nusername = \"u\"\npassword = {{ env = \"WB_CONFIG_TEST_UNSET\" }}\n",
        missing.display()
    ))
    .unwrap()
    .layers::<tracing_subscriber::Registry>()
    .err()
    .expect("the secrets are missing");
    let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["mail.password", "ticketing.url"], "every unreadable secret is reported: {e}");
    assert!(e.problems()[1].expected.contains("cannot be read"), "{e}");
}
