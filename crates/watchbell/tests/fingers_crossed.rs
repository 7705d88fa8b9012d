//! `[fingers_crossed] deliver_to`: the named sinks get the escalated context of a failing
//! request instead of direct records; the other sinks are unchanged.
mod common;

use tracing_subscriber::prelude::*;
use watchbell::Config;
use watchbell_test::slack::FakeSlack;

#[test]
fn deliver_to_sends_the_failing_request_context_to_the_named_sinks() {
    let dir = common::temp_dir("fc");
    let slack = FakeSlack::start();
    let log = dir.join("incidents.log");
    let text = format!(
        "app = \"shop\"\n\
         [file]\npath = \"{}\"\nlevel = \"error\"\n\
         [[slack.webhooks]]\nurl = \"{}\"\nlevels = [\"error\"]\n\
         [fingers_crossed]\naction_level = \"error\"\nscope = \"request\"\ndeliver_to = [\"file\"]\n",
        log.display(),
        slack.url()
    );
    let config = Config::from_toml_str(&text).unwrap();
    let (layers, guard) = config.layers::<tracing_subscriber::Registry>().unwrap();
    assert_eq!(layers.len(), 2, "slack's layer and the fingers-crossed layer (file is behind it)");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
        tracing::info_span!("request", id = 1).in_scope(|| {
            tracing::debug!("quiet request step");
            tracing::info!("quiet request done");
        });
        tracing::info_span!("request", id = 2).in_scope(|| {
            tracing::debug!("loaded cart 7");
            tracing::warn!("card check slow");
            tracing::error!("payment failed");
        });
    });
    assert!(guard.flush(common::WAIT).is_complete());
    let written = std::fs::read_to_string(&log).expect("the incident was written");
    for line in ["loaded cart 7", "card check slow", "payment failed"] {
        assert!(written.contains(line), "{line:?} missing from the incident:\n{written}");
    }
    let (a, b) = (written.find("loaded cart 7").unwrap(), written.find("payment failed").unwrap());
    assert!(a < b, "in order:\n{written}");
    assert!(!written.contains("quiet request"), "a request without an error is discarded:\n{written}");
    // Slack is not in deliver_to: it got the error directly, and only the error.
    let msgs = slack.wait_for_messages(1, common::WAIT);
    let all = format!("{msgs:?}");
    assert!(all.contains("payment failed") && !all.contains("loaded cart"), "{all}");
}
