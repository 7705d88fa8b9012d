//! `[command]`, `[journald]` and `[desktop]` from `watchbell.toml` and from `WATCHBELL_*`
//! variables: each receives the `error!` at its stand-in (a script, a journal receiver, a
//! private D-Bus session).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use tracing_subscriber::prelude::*;
use watchbell::Config;
use watchbell_test::desktop::FakeNotifications;
use watchbell_test::journald::FakeJournald;

const WAIT: Duration = Duration::from_secs(20);

struct Stand {
    dir: std::path::PathBuf,
    script: String,
    journal: FakeJournald,
    desktop: FakeNotifications,
}

impl Stand {
    fn start(tag: &str) -> Stand {
        let dir = watchbell_test::stack::temp_dir(&format!("new-sinks-{tag}"));
        let script = dir.join("hook");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nprintf '%s|%s\\n' \"$1\" \"$WATCHBELL_FIELD_ORDER\" >> {}/ran\n", dir.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        Stand {
            script: script.display().to_string(),
            dir,
            journal: FakeJournald::start(),
            desktop: FakeNotifications::start(),
        }
    }

    fn check(
        &self,
        layers: Vec<Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>>,
        guard: watchbell::core::Guard,
    ) {
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
            tracing::error!(order = 42, "payment failed");
        });
        assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
        assert_eq!(std::fs::read_to_string(self.dir.join("ran")).unwrap(), "payment failed|42\n");
        let entries = self.journal.wait_for_entries(1, WAIT);
        assert_eq!(entries[0].get("MESSAGE"), Some("payment failed"));
        assert_eq!(entries[0].get("SYSLOG_IDENTIFIER"), Some("billing"));
        assert_eq!(entries[0].get("ORDER"), Some("42"));
        let shown = self.desktop.wait_for_notifications(1, WAIT);
        assert_eq!(shown[0].body, "payment failed\norder = 42");
        assert_eq!(shown[0].urgency, Some(2));
        assert_eq!(shown[0].app_name, "billing");
    }
}

#[test]
fn the_new_sinks_from_a_toml_file() {
    let s = Stand::start("toml");
    let toml = format!(
        "app = \"billing\"\n\n[command]\nprogram = \"{}\"\nargs = [\"{{message}}\"]\n\n[journald]\nsocket = \"{}\"\n\n[desktop]\nbus_address = \"{}\"\n",
        s.script,
        s.journal.path().display(),
        s.desktop.address()
    );
    let (layers, guard) = Config::from_toml_str(&toml).unwrap().layers::<tracing_subscriber::Registry>().unwrap();
    assert_eq!(layers.len(), 3);
    s.check(layers, guard);
}

#[test]
fn the_new_sinks_from_environment_variables() {
    let s = Stand::start("vars");
    let v = |k: &str, v: String| (format!("WATCHBELL_{k}"), v);
    let vars = vec![
        v("APP", "billing".into()),
        v("COMMAND_PROGRAM", s.script.clone()),
        v("COMMAND_ARGS", "{message}".into()),
        v("JOURNALD_SOCKET", s.journal.path().display().to_string()),
        v("DESKTOP_BUS_ADDRESS", s.desktop.address().to_owned()),
    ];
    let (layers, guard) = Config::default().with_vars(vars).unwrap().layers::<tracing_subscriber::Registry>().unwrap();
    s.check(layers, guard);
}

#[test]
fn bad_new_sink_tables_are_clear_errors() {
    let e = Config::from_toml_str("[command]\nargs = [\"x\"]\n")
        .and_then(|c| c.layers::<tracing_subscriber::Registry>().map(|_| ()))
        .unwrap_err();
    assert!(e.to_string().contains("command.program"), "{e}");
    let e = Config::from_toml_str("[command]\nprogram = \"/bin/true\"\nstdin = \"xml\"\nargs = [\"{lvl}\"]\n")
        .and_then(|c| c.layers::<tracing_subscriber::Registry>().map(|_| ()))
        .unwrap_err();
    assert!(e.to_string().contains("command.stdin"), "{e}");
    let e = Config::from_toml_str("[desktop]\nbus_address = \" \"\n")
        .and_then(|c| c.layers::<tracing_subscriber::Registry>().map(|_| ()))
        .unwrap_err();
    assert!(e.to_string().contains("desktop.bus_address"), "{e}");
}

#[test]
fn notify_urls_from_a_toml_file_and_from_a_variable() {
    use watchbell_test::notify::{FakeDiscord, FakeNtfy, FakePagerDuty};
    let (ntfy, discord, pd) = (FakeNtfy::start(None), FakeDiscord::start(), FakePagerDuty::start());
    let urls = [
        format!("ntfy://{}/shop-alerts", ntfy.http().addr()),
        discord.url(),
        format!("pagerduty://R0UTINGkey0123456789abcdefABCDEF@{}?level=warn", pd.http().addr()),
    ];
    let toml = format!("app = \"billing\"\nnotify = [\"{}\", \"{}\", \"{}\"]\n", urls[0], urls[1], urls[2]);
    let from_toml = Config::from_toml_str(&toml).unwrap();
    assert!(!format!("{from_toml:?}").contains("R0UTINGkey"), "notify URLs are secrets in Debug");
    let vars =
        vec![("WATCHBELL_APP".to_owned(), "billing".to_owned()), ("WATCHBELL_NOTIFY".to_owned(), urls.join(", "))];
    let from_vars = Config::default().with_vars(vars).unwrap();
    for (round, config) in [from_toml, from_vars].into_iter().enumerate() {
        let (layers, guard) = config.layers::<tracing_subscriber::Registry>().unwrap();
        assert_eq!(layers.len(), 3);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
            tracing::error!(order = 42, "payment failed");
            tracing::warn!("disk almost full");
        });
        assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
        assert_eq!(ntfy.wait_for(round + 1, WAIT)[round]["title"], "[billing] ERROR new_sinks");
        assert_eq!(discord.wait_for(round + 1, WAIT).len(), round + 1, "the warning is below Discord's default level");
        let events = pd.wait_for(2 * (round + 1), WAIT);
        assert_eq!(events.len(), 2 * (round + 1), "?level=warn: both went to PagerDuty");
    }
    assert!(ntfy.errors().is_empty() && discord.errors().is_empty() && pd.errors().is_empty());
    let e = Config::from_toml_str("notify = [\"gopher://x/SECRET\"]\n")
        .and_then(|c| c.layers::<tracing_subscriber::Registry>().map(|_| ()))
        .unwrap_err();
    assert!(e.to_string().contains("notify[0]") && !e.to_string().contains("SECRET"), "{e}");
}

/// Every push, chat and paging table, from TOML and from `WATCHBELL_*` variables: each service's
/// fake receives the `error!` (and the tables' `level = "warn"` the warning too), nothing a fake
/// refuses, and no secret in the config's `Debug`.
#[test]
fn every_notify_service_table_from_toml_and_from_variables() {
    use watchbell_test::notify::*;
    let (tok, user, key, genie) = (
        "azGDORePK8gMaC0QOYAMyEEuzJnyUi",
        "uQiRzpo4DXghDmr9QzzfQu27cmVRsG",
        "R0UTINGkey0123456789abcdefABCDEF",
        "og-SECRET-1",
    );
    let ntfy = FakeNtfy::start(Some("tk_SECRET"));
    let pushover = FakePushover::start(tok, user);
    let discord = FakeDiscord::start();
    let teams = FakeTeams::start();
    let gchat = FakeGoogleChat::start();
    let mm = FakeMattermost::start();
    let rc = FakeRocketChat::start();
    let pd = FakePagerDuty::start();
    let og = FakeOpsgenie::start(genie);
    let toml = format!(
        r#"app = "billing"
[ntfy]
server = "{}"
topic = "shop-alerts"
token = "tk_SECRET"
level = "warn"
[pushover]
token = "{tok}"
user = "{user}"
api_base = "{}"
emergency_retry = "60s"
emergency_expire = "1h"
[discord]
webhook = "{}"
[teams]
webhook = "{}"
[google_chat]
webhook = "{}"
thread_by_callsite = false
[mattermost]
webhook = "{}"
channel = "ops"
[rocketchat]
webhook = "{}"
[pagerduty]
routing_key = "{key}"
api_base = "{}"
[opsgenie]
key = "{genie}"
api_base = "{}"
"#,
        ntfy.url(),
        pushover.url(),
        discord.url(),
        teams.url(),
        gchat.url(),
        mm.url(),
        rc.url(),
        pd.url(),
        og.url()
    );
    let from_toml = Config::from_toml_str(&toml).unwrap();
    let debug = format!("{from_toml:?}");
    for secret in ["tk_SECRET", tok, user, key, genie, TEAMS_SIG, GOOGLE_CHAT_TOKEN, "fake-webhook-token", "fakekey"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    let var = |k: &str, v: String| (format!("WATCHBELL_{k}"), v);
    let vars = vec![
        var("APP", "billing".into()),
        var("NTFY_SERVER", ntfy.url()),
        var("NTFY_TOPIC", "shop-alerts".into()),
        var("NTFY_TOKEN", "tk_SECRET".into()),
        var("NTFY_LEVEL", "warn".into()),
        var("PUSHOVER_TOKEN", tok.into()),
        var("PUSHOVER_USER", user.into()),
        var("PUSHOVER_API_BASE", pushover.url()),
        var("PUSHOVER_EMERGENCY_RETRY", "60s".into()),
        var("PUSHOVER_EMERGENCY_EXPIRE", "1h".into()),
        var("DISCORD_WEBHOOK", discord.url()),
        var("TEAMS_WEBHOOK", teams.url()),
        var("GOOGLE_CHAT_WEBHOOK", gchat.url()),
        var("GOOGLE_CHAT_THREAD_BY_CALLSITE", "false".into()),
        var("MATTERMOST_WEBHOOK", mm.url()),
        var("MATTERMOST_CHANNEL", "ops".into()),
        var("ROCKETCHAT_WEBHOOK", rc.url()),
        var("PAGERDUTY_ROUTING_KEY", key.into()),
        var("PAGERDUTY_API_BASE", pd.url()),
        var("OPSGENIE_KEY", genie.into()),
        var("OPSGENIE_API_BASE", og.url()),
    ];
    let from_vars = Config::default().with_vars(vars).unwrap();
    for (round, config) in [from_toml, from_vars].into_iter().enumerate() {
        let n = round + 1;
        let (layers, guard) = config.layers::<tracing_subscriber::Registry>().unwrap();
        assert_eq!(layers.len(), 9);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
            tracing::error!(order = 42, "payment failed");
            tracing::warn!("disk almost full");
        });
        assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
        assert_eq!(ntfy.wait_for(2 * n, WAIT).len(), 2 * n, "ntfy's level = warn: both");
        let p = pushover.wait_for(n, WAIT);
        assert_eq!((p[round]["priority"].as_str(), p[round]["retry"].as_str()), (Some("2"), Some("60")));
        assert_eq!(discord.wait_for(n, WAIT).len(), n);
        assert_eq!(teams.wait_for(n, WAIT).len(), n);
        assert_eq!(gchat.wait_for(n, WAIT)[round]["_threadKey"], serde_json::Value::Null);
        assert_eq!(mm.wait_for(n, WAIT)[round]["channel"], "ops");
        assert_eq!(rc.wait_for(n, WAIT)[round]["alias"], "billing");
        assert_eq!(pd.wait_for(n, WAIT)[round]["payload"]["group"], "billing");
        assert_eq!(og.wait_for(n, WAIT)[round]["message"], "payment failed");
        // The tables' defaults: ERROR only, so one each (ntfy's warn aside).
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!((discord.accepted().len(), og.accepted().len()), (n, n));
    }
    let all_errors = [
        ntfy.errors(),
        pushover.errors(),
        discord.errors(),
        teams.errors(),
        gchat.errors(),
        mm.errors(),
        rc.errors(),
        pd.errors(),
        og.errors(),
    ];
    assert!(all_errors.iter().all(Vec::is_empty), "{all_errors:?}");

    let e = Config::from_toml_str("[pushover]\ntoken = \"x\"\nuser = \"y\"\nemergency_retry = \"60s\"\n")
        .and_then(|c| c.layers::<tracing_subscriber::Registry>().map(|_| ()))
        .unwrap_err();
    assert!(e.to_string().contains("pushover.emergency_retry"), "{e}");
    let e = Config::from_toml_str("[opsgenie]\nkey = \"k-SECRET\"\nregion = \"mars\"\n")
        .and_then(|c| c.layers::<tracing_subscriber::Registry>().map(|_| ()))
        .unwrap_err();
    assert!(e.to_string().contains("opsgenie.region") && !e.to_string().contains("k-SECRET"), "{e}");
}
