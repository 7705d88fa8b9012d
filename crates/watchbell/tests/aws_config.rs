//! `[sqs]`, `[cloudwatch_logs]` and `[sns]` from `watchbell.toml` and from `WATCHBELL_*`
//! variables: each receives the `error!` at an AWS-shaped fake; bad tables are clear errors.

use std::time::Duration;

use tracing_subscriber::prelude::*;
use watchbell::Config;
use watchbell_test::aws::FakeAws;

const WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "cfgSECRETkey0123456789abcdefABCDEF012345";

fn check(
    layers: Vec<Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>>,
    guard: watchbell::core::Guard,
    fake: &FakeAws,
) {
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
        tracing::error!(order = 42, "payment failed");
    });
    assert!(guard.flush(WAIT).is_complete(), "{:?}", guard.stats());
    assert_eq!(fake.sqs_accepted().len(), 1, "{:?}", fake.errors());
    let body: serde_json::Value =
        serde_json::from_str(fake.sqs_accepted()[0]["MessageBody"].as_str().unwrap()).unwrap();
    assert_eq!((body["message"].as_str(), body["app"].as_str()), (Some("payment failed"), Some("billing")));
    assert_eq!(fake.log_events().len(), 1);
    let sns = fake.sns_published();
    assert_eq!(sns.len(), 1);
    assert!(sns[0].iter().any(|(k, v)| k == "Subject" && v.starts_with("[billing] ERROR")), "{sns:?}");
    assert!(!format!("{:?}", guard.stats()).contains(SECRET));
}

#[test]
fn the_aws_tables_from_a_toml_file() {
    let fake = FakeAws::start();
    let keys = format!("region = \"eu-west-1\"\nendpoint_url = \"{}\"\naccess_key_id = \"AKIDCFG\"\nsecret_access_key = \"{SECRET}\"\n", fake.url());
    let toml = format!(
        "app = \"billing\"\n\n[sqs]\nqueue_url = \"{}\"\n{keys}\n[cloudwatch_logs]\nlog_group = \"/billing\"\nlog_stream = \"web-1\"\n{keys}\n[sns]\ntopic_arn = \"arn:aws:sns:eu-west-1:123456789012:alerts\"\npace = \"0s\"\n{keys}",
        fake.queue_url("logs")
    );
    let config = Config::from_toml_str(&toml).unwrap();
    assert!(!format!("{config:?}").contains(SECRET));
    let (layers, guard) = config.layers::<tracing_subscriber::Registry>().unwrap();
    assert_eq!(layers.len(), 3);
    check(layers, guard, &fake);
}

#[test]
fn the_aws_tables_from_environment_variables() {
    let fake = FakeAws::start();
    // The credentials from a profile in a shared credentials file, as the AWS tools read it.
    let dir = watchbell_test::stack::temp_dir("aws-config-vars");
    let file = dir.join("credentials");
    std::fs::write(&file, format!("[ci]\naws_access_key_id = AKIDFILE\naws_secret_access_key = {SECRET}\n")).unwrap();
    // This test binary's only test that touches the process environment.
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &file);
    std::env::set_var("AWS_CONFIG_FILE", dir.join("absent"));
    std::env::remove_var("AWS_ACCESS_KEY_ID");
    let v = |k: &str, v: String| (format!("WATCHBELL_{k}"), v);
    let mut vars = vec![v("APP", "billing".into())];
    for p in ["SQS", "CLOUDWATCH_LOGS", "SNS"] {
        vars.push(v(&format!("{p}_REGION"), "eu-west-1".into()));
        vars.push(v(&format!("{p}_ENDPOINT_URL"), fake.url()));
        vars.push(v(&format!("{p}_PROFILE"), "ci".into()));
    }
    vars.push(v("SQS_QUEUE_URL", fake.queue_url("logs")));
    vars.push(v("CLOUDWATCH_LOGS_GROUP", "/billing".into()));
    vars.push(v("CLOUDWATCH_LOGS_STREAM", "web-1".into()));
    vars.push(v("SNS_TOPIC_ARN", "arn:aws:sns:eu-west-1:123456789012:alerts".into()));
    vars.push(v("SNS_PACE", "0s".into()));
    let (layers, guard) = Config::default().with_vars(vars).unwrap().layers::<tracing_subscriber::Registry>().unwrap();
    check(layers, guard, &fake);
}

#[test]
fn bad_aws_tables_are_clear_errors() {
    let layers = |toml: &str| {
        Config::from_toml_str(toml).and_then(|c| c.layers::<tracing_subscriber::Registry>().map(|_| ())).unwrap_err()
    };
    let e = layers("[sqs]\nregion = \"eu-west-1\"\n");
    assert!(e.to_string().contains("sqs.queue_url"), "{e}");
    let e = layers("[cloudwatch_logs]\nlog_group = \"g\"\n");
    assert!(e.to_string().contains("cloudwatch_logs.log_stream"), "{e}");
    let e = layers("[sns]\ntopic_arn = \"arn:aws:sns:eu-west-1:1:t\"\naccess_key_id = \"AKID\"\n");
    assert!(e.to_string().contains("sns.access_key_id"), "{e}");
    let e = layers(&format!(
        "[sns]\ntopic_arn = \"not-an-arn\"\naccess_key_id = \"AKID\"\nsecret_access_key = \"{SECRET}\"\n"
    ));
    assert!(e.to_string().contains("topic_arn") && !e.to_string().contains(SECRET), "{e}");
}
