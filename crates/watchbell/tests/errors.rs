//! Bad configurations: one clear problem per fault, naming the key, the value (secrets
//! redacted) and what was expected; never a secret in the message.
use watchbell::{Config, ConfigError, Problem};

const SECRET: &str = "s3cr3t-V4lue-never-shown";

type Registry = tracing_subscriber::Registry;

/// The error of building the layers of a file that parses.
fn layers_err(text: &str) -> ConfigError {
    let config = Config::from_toml_str(text).expect("the file itself is valid");
    match config.layers::<Registry>() {
        Ok(_) => panic!("the layers must not build"),
        Err(e) => e,
    }
}

fn parse_err(text: &str) -> ConfigError {
    Config::from_toml_str(text).expect_err("the file must be refused")
}

fn assert_no_secret(e: &ConfigError) {
    let shown = format!("{e}\n{e:?}");
    assert!(!shown.contains(SECRET), "a secret leaked:\n{shown}");
    assert!(!shown.contains("V4lue"), "part of a secret leaked:\n{shown}");
}

fn only(e: &ConfigError) -> &Problem {
    assert_eq!(e.problems().len(), 1, "exactly one problem: {e}");
    &e.problems()[0]
}

#[test]
fn a_bad_url_names_the_webhook_and_hides_its_secret_path() {
    let e = layers_err(&format!("[[slack.webhooks]]\nurl = \"http://hooks.example.com/services/T0/B0/{SECRET}\"\n"));
    let p = only(&e);
    assert_eq!(p.key, "slack.webhooks[0].url");
    assert_eq!(p.value.as_deref(), Some("\"http://hooks.example.com/…\""));
    assert!(p.expected.contains("https://"), "{p}");
    assert_no_secret(&e);

    let e = layers_err(&format!("[[slack.webhooks]]\nurl = \"hooks.slack.com/services/T0/B0/{SECRET}\"\n"));
    assert_eq!(only(&e).key, "slack.webhooks[0].url");
    assert!(only(&e).expected.contains("invalid URL"), "{e}");
    assert_no_secret(&e);

    let e = layers_err(&format!("[http]\nurl = \"ftp://collector.example.com/{SECRET}\"\n"));
    assert_eq!(only(&e).key, "http.url");
    assert!(only(&e).expected.contains("https"), "{e}");
    assert_no_secret(&e);
}

#[test]
fn an_invalid_phone_number_names_its_index_and_value() {
    let e = layers_err(&format!(
        "[sms]\nrecipients = [\"+14155550100\", \"12345\"]\n\
         [sms.twilio]\nsid = \"AC1\"\ntoken = \"{SECRET}\"\nfrom = \"+14155550199\"\n"
    ));
    let p = only(&e);
    assert_eq!(p.key, "sms.recipients[1]");
    assert_eq!(p.value.as_deref(), Some("\"12345\""));
    assert!(p.expected.contains("E.164"), "{p}");
    assert_eq!(e.to_string().lines().count(), 1);
    assert!(e.to_string().starts_with("sms.recipients[1] = \"12345\": "), "{e}");
    assert_no_secret(&e);
}

fn find<'a>(e: &'a ConfigError, key: &str) -> &'a Problem {
    e.problems().iter().find(|p| p.key == key).unwrap_or_else(|| panic!("no problem at {key}:\n{e}"))
}

#[test]
fn an_unknown_key_is_an_error_with_its_path_even_nested() {
    let e = parse_err(&format!("[telegram]\ntokn = \"{SECRET}\"\nchats = [1]\n"));
    let p = &e.problems()[0];
    assert_eq!(p.key, "telegram.tokn");
    assert_eq!(p.value, None, "the value of an unknown key may be a secret");
    assert!(p.expected.starts_with("unknown key") && p.expected.contains("`token`"), "{p}");
    // The rest is still checked: the token is indeed missing.
    assert_eq!(e.problems().len(), 2, "{e}");
    assert!(find(&e, "telegram.token").expected.starts_with("missing"));
    assert_no_secret(&e);

    let e = parse_err("[sms]\nrecipients = [\"+14155550100\"]\n[sms.twilio]\nsidd = \"AC1\"\nsid = \"AC1\"\nfrom = \"+1415\"\ntoken = \"t\"\n");
    assert_eq!(only(&e).key, "sms.twilio.sidd");
    let e = parse_err(
        "[[slack.webhooks]]\nurl = \"https://hooks.slack.com/x\"\n[[slack.webhooks]]\nurl = \"https://hooks.slack.com/y\"\nlevel = \"error\"\n",
    );
    assert_eq!(only(&e).key, "slack.webhooks[1].level");
    assert!(only(&e).expected.contains("`levels`"), "{e}");
    let e = parse_err("colour = \"blue\"\n");
    assert_eq!(only(&e).key, "colour");
    let e = parse_err("[telegram]\ntoken = { vault = \"x\" }\nchats = [1]\n");
    assert!(find(&e, "telegram.token.vault").expected.contains("`env`"), "{e}");
}

#[test]
fn a_missing_token_is_named() {
    let e = parse_err("[telegram]\nchats = [-1001234567890]\n");
    let p = only(&e);
    assert_eq!(p.key, "telegram.token");
    assert_eq!(p.value, None);
    assert!(p.expected.starts_with("missing"), "{p}");

    let e = parse_err("[sms]\nrecipients = [\"+14155550100\"]\n[sms.twilio]\nsid = \"AC1\"\nfrom = \"+14155550199\"\n");
    assert_eq!(only(&e).key, "sms.twilio.token");
    let e = parse_err("[telegram]\ntoken = \"  \"\nchats = [1]\n");
    assert_eq!(only(&e).key, "telegram.token");
    assert_eq!(only(&e).value.as_deref(), Some("\"***\""), "a secret's value is never shown");
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let text = format!(
        "app = \"billing\"\ncolour = \"blue\"\n\
         [rate_limit]\nlimit = 5\nper = \"5 minutes\"\n\
         [telegram]\ntoken = \"{SECRET}\"\nchats = [1]\nlevel = \"loud\"\n\
         [mail]\nhost = \"smtp.example.com\"\nport = \"{SECRET}\"\nto = [\"a@example.com\"]\nsecurity = \"ssl3\"\n"
    );
    let e = parse_err(&text);
    let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
    for key in ["colour", "mail.port", "rate_limit.per", "telegram.level", "mail.security", "mail.from"] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}:\n{e}");
    }
    assert_eq!(e.to_string().lines().count(), e.problems().len(), "one line per problem:\n{e}");
    let per = e.problems().iter().find(|p| p.key == "rate_limit.per").unwrap();
    assert_eq!(per.value.as_deref(), Some("\"5 minutes\""));
    assert!(per.expected.contains("duration"), "{per}");
    let level = e.problems().iter().find(|p| p.key == "telegram.level").unwrap();
    assert!(level.expected.contains("a level"), "{level}");
    let port = e.problems().iter().find(|p| p.key == "mail.port").unwrap();
    assert!(port.expected.contains("whole number"), "{port}");
    assert_no_secret(&e);
}

#[test]
fn a_toml_syntax_error_gives_the_line_without_the_text() {
    let e = parse_err(&format!("app = \"x\"\n[mail\nhost = \"{SECRET}\"\n"));
    assert_eq!(only(&e).key, "(toml)");
    assert!(only(&e).expected.contains("line 2"), "{e}");
    let e = parse_err(&format!("[telegram]\ntoken = \"{SECRET}\nchats = [1]\n"));
    assert_no_secret(&e);
}

#[test]
fn fingers_crossed_must_deliver_to_configured_sinks() {
    let e = parse_err("[fingers_crossed]\ndeliver_to = [\"mail\", \"pager\"]\n");
    let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["fingers_crossed.deliver_to[0]", "fingers_crossed.deliver_to[1]"], "{e}");
    assert!(e.problems()[0].expected.contains("no [mail] table"), "{e}");
    assert!(e.problems()[1].expected.contains("one of slack"), "{e}");
}

#[test]
fn environment_variable_problems_name_the_variable() {
    let e = Config::default()
        .with_vars([
            ("WATCHBELL_MAIL_PORT", "twenty-five"),
            ("WATCHBELL_TELEGRAM_TOKN", SECRET),
            ("WATCHBELL_SLACK_LEVELS", "error"),
            ("WATCHBELL_TEST_ANYTHING", "ignored"),
            ("WATCHBELL_CONFIG", "ignored"),
            ("HOME", "ignored"),
        ])
        .unwrap_err();
    let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["WATCHBELL_MAIL_PORT", "WATCHBELL_TELEGRAM_TOKN", "WATCHBELL_SLACK_LEVELS"], "{e}");
    assert_eq!(e.problems()[0].value.as_deref(), Some("\"twenty-five\""));
    assert!(e.problems()[1].expected.contains("unknown"), "{e}");
    assert_no_secret(&e);

    // Values are checked like the file's.
    let e = Config::default().with_vars([("WATCHBELL_TELEGRAM_CHAT", "1"), ("WATCHBELL_TELEGRAM_LEVEL", "loud")]);
    let keys: Vec<String> = e.unwrap_err().problems().iter().map(|p| p.key.clone()).collect();
    assert_eq!(keys, ["telegram.token", "telegram.level"]);
}

#[test]
fn environment_variables_override_and_extend_the_file() {
    let file = Config::from_toml_str(
        "app = \"from-file\"\n[[slack.webhooks]]\nurl = \"https://hooks.slack.com/services/A\"\nname = \"file\"\n\
         [mail]\nhost = \"smtp.example.com\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n",
    )
    .unwrap();
    let config = file
        .with_vars([
            ("WATCHBELL_APP", "from-env"),
            ("WATCHBELL_SLACK_WEBHOOK", "https://hooks.slack.com/services/B"),
            ("WATCHBELL_SLACK_LEVELS", "error, critical"),
            ("WATCHBELL_MAIL_TO", "c@example.com,d@example.com"),
            ("WATCHBELL_MAIL_PORT", "2525"),
            ("WATCHBELL_MAIL_TIMEOUT", "3s"),
            ("WATCHBELL_MAIL_ALLOW_PLAIN_HTTP", "true"),
        ])
        .unwrap();
    assert_eq!(config.app.as_deref(), Some("from-env"));
    let hooks = &config.slack.as_ref().unwrap().webhooks;
    assert_eq!(hooks.len(), 2, "the variable adds a webhook: {hooks:?}");
    assert_eq!(hooks[1].levels.as_deref(), Some(&["error".to_owned(), "critical".to_owned()][..]));
    let mail = config.mail.as_ref().unwrap();
    assert_eq!(mail.to, ["c@example.com", "d@example.com"]);
    assert_eq!((mail.port, mail.timeout.as_deref(), mail.allow_plain_http), (Some(2525), Some("3s"), Some(true)));
    assert_eq!(mail.host.as_deref(), Some("smtp.example.com"), "untouched keys stay");
}

#[test]
fn debug_of_a_config_never_shows_a_secret() {
    let config = Config::from_toml_str(&format!(
        "[telegram]\ntoken = \"{SECRET}\"\nchats = [1]\n\
         [[slack.webhooks]]\nurl = \"https://hooks.slack.com/services/{SECRET}\"\n\
         [mail]\nhost = \"h\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\nusername = \"u\"\npassword = \"{SECRET}\"\n"
    ))
    .unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("\"***\""), "{shown}");
}

#[test]
fn build_problems_of_several_sinks_are_all_reported() {
    let e = layers_err(&format!(
        "[[slack.webhooks]]\nurl = \"http://hooks.example.com/services/{SECRET}\"\n\
         [sms]\nrecipients = [\"0800 FLOWERS\"]\n[sms.twilio]\nsid = \"AC1\"\ntoken = \"{SECRET}\"\nfrom = \"+14155550199\"\n\
         [telegram]\ntoken = {{ env = \"WB_CONFIG_TEST_NEVER_SET\" }}\nchats = [1]\n"
    ));
    let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["slack.webhooks[0].url", "telegram.token", "sms.recipients[0]"], "{e}");
    assert_no_secret(&e);
}

#[test]
fn hourly_cap_is_a_common_setting_of_every_sink_table() {
    let names = |toml: &str| -> Vec<String> {
        let (_, guard) = Config::from_toml_str(toml).unwrap().layers::<tracing_subscriber::Registry>().expect("builds");
        guard.stats().into_iter().map(|s| s.name).filter(|n| n.ends_with("-cap")).collect()
    };
    let telegram = "[telegram]\ntoken = \"123:abc\"\nchats = [1]\n";
    assert!(names(telegram).is_empty(), "no cap by default for Telegram");
    assert_eq!(names(&format!("{telegram}hourly_cap = 5\n")), ["telegram-cap"]);
    let sms = "[sms]\nrecipients = [\"+14155550100\"]\n\
               [sms.twilio]\nsid = \"AC0123456789abcdef0123456789abcdef\"\ntoken = \"t\"\nfrom = \"+14155550199\"\n";
    assert_eq!(names(sms), ["sms-cap"], "SMS is capped by default");
    assert!(names(&sms.replace("[sms.twilio]", "hourly_cap = 0\n[sms.twilio]")).is_empty(), "0: no cap");
}
