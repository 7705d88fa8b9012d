//! `[relay]` and `[rate_limit] shared` in watchbell.toml and `WATCHBELL_*`: clear errors naming
//! the key, secrets never shown.
use watchbell::Config;

fn keys(text: &str) -> Vec<String> {
    match Config::from_toml_str(text) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems().iter().map(|p| p.key.clone()).collect(),
    }
}

#[test]
fn relay_table_problems_name_their_keys() {
    assert_eq!(keys("[relay]\nhttp = \"localhost\"\n"), ["relay.http"]);
    assert_eq!(keys("[relay]\n"), ["relay"]);
    assert_eq!(keys("[relay]\nunix = \"/tmp/r.sock\"\nqueue = 0\n"), ["relay.queue"]);
    assert_eq!(keys("[relay]\nzmq = [\"127.0.0.1:5556\"]\n"), ["relay.zmq[0]"]);
    assert_eq!(keys("[relay]\nhttp = \"127.0.0.1:9400\"\nretry_after = \"soon\"\n"), ["relay.retry_after"]);
    assert_eq!(
        keys("[rate_limit]\nlimit = 1\nshared = \"mysql://db/x\"\n"),
        Vec::<String>::new(),
        "checked when built"
    );
    let c = Config::from_toml_str("[rate_limit]\nlimit = 1\nshared = \"mysql://u:pw@db/x\"\n").unwrap();
    let Err(e) = c.handlers() else { panic!("a mysql URL is refused") };
    assert_eq!(e.problems()[0].key, "rate_limit.shared");
    assert!(!e.to_string().contains("pw"), "{e}");
}

#[test]
fn relay_settings_from_the_file_and_the_environment() {
    let c = Config::from_toml_str("[relay]\nhttp = \"127.0.0.1:9400\"\ntoken = \"hunter2-token\"\n")
        .unwrap()
        .with_vars([
            ("WATCHBELL_RELAY_QUEUE", "500"),
            ("WATCHBELL_RELAY_ZMQ", "tcp://10.0.0.1:5556,tcp://10.0.0.2:5556"),
        ])
        .unwrap();
    let s = c.relay_settings().unwrap().unwrap();
    assert_eq!(s.http, Some("127.0.0.1:9400".parse().unwrap()));
    assert_eq!(s.queue, 500);
    assert_eq!(s.zmq.len(), 2);
    assert_eq!(s.token.as_ref().map(|t| t.expose().as_str()), Some("hunter2-token"));
    assert!(!format!("{s:?} {c:?}").contains("hunter2"), "the token is redacted in Debug");
    let e = Config::default().with_vars([("WATCHBELL_RELAY_HTTP", "nope")]).unwrap_err();
    assert!(e.problems()[0].key.starts_with("relay.http"), "{e}");
}

#[test]
fn rate_limit_gather_from_the_file_and_the_environment() {
    assert_eq!(keys("[rate_limit]\nlimit = 1\ngather = \"soon\"\n"), ["rate_limit.gather"]);
    assert_eq!(keys("[rate_limit]\nlimit = 1\ngather = \"10s\"\n"), Vec::<String>::new());
    let c = Config::default()
        .with_vars([("WATCHBELL_RATE_LIMIT_LIMIT", "1"), ("WATCHBELL_RATE_LIMIT_GATHER", "2s")])
        .unwrap();
    assert_eq!(c.rate_limit.as_ref().and_then(|r| r.gather.as_deref()), Some("2s"));
    let e = Config::default()
        .with_vars([("WATCHBELL_RATE_LIMIT_LIMIT", "1"), ("WATCHBELL_RATE_LIMIT_GATHER", "later")])
        .unwrap_err();
    assert_eq!(e.problems()[0].key, "rate_limit.gather", "{e}");
}
