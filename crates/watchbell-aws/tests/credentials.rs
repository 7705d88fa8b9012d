//! The credentials chain, seen from the wire: the access key id in each request's
//! `Authorization` header says which source signed it. One test in its own binary: it changes
//! the process environment.

mod common;

use std::time::Duration;

use common::{quick, rec, WAIT};
use watchbell_aws::{Credentials, SqsLayer};
use watchbell_core::Level;
use watchbell_test::aws::FakeAws;

/// The key ids of the requests received so far, in order.
fn key_ids(fake: &FakeAws) -> Vec<String> {
    fake.http()
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .map(|a| a.split("Credential=").nth(1).unwrap_or("").split('/').next().unwrap_or("").to_owned())
        .collect()
}

fn send_one(fake: &FakeAws, b: watchbell_aws::AwsBuilder) -> Result<String, String> {
    let before = key_ids(fake).len();
    let (h, guard) =
        quick(b.endpoint_url(fake.url()).region("eu-west-1")).build_handler().map_err(|e| e.to_string())?;
    h.handle(rec(Level::ERROR, "x"));
    assert!(guard.flush(WAIT).is_complete());
    Ok(key_ids(fake)[before..].last().cloned().unwrap_or_default())
}

#[test]
fn the_chain_is_builder_then_environment_then_profile_files_and_expiring_keys_are_refreshed() {
    let fake = FakeAws::start();
    let queue = fake.queue_url("q");
    let dir = watchbell_test::stack::temp_dir("aws-credentials");
    let creds_file = dir.join("credentials");
    let config_file = dir.join("config");
    std::fs::write(
        &creds_file,
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n\n[ci]\naws_access_key_id = AKIDCIPROFILE\naws_secret_access_key = s2\n",
    )
    .unwrap();
    // A profile whose credentials come from a process, expiring in a minute: each run prints
    // the next key id, so a refresh shows on the wire.
    let counter = dir.join("n");
    let script = dir.join("creds.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}\nexp=$(date -u -d '+1 minute' +%Y-%m-%dT%H:%M:%SZ)\nprintf '{{\"Version\":1,\"AccessKeyId\":\"AKIDPROC%s\",\"SecretAccessKey\":\"procSECRET\",\"SessionToken\":\"tok\",\"Expiration\":\"%s\"}}' $n $exp\n",
            c = counter.display()
        ),
    )
    .unwrap();
    std::fs::write(
        &config_file,
        format!("[profile proc]\nregion = eu-west-1\ncredential_process = sh {}\n", script.display()),
    )
    .unwrap();
    std::env::set_var("HOME", &dir);
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &creds_file);
    std::env::set_var("AWS_CONFIG_FILE", &config_file);
    for v in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"] {
        std::env::remove_var(v);
    }

    // The shared file's default profile, then AWS_PROFILE's.
    assert_eq!(send_one(&fake, SqsLayer::builder(&queue)).unwrap(), "AKIDDEFAULT");
    std::env::set_var("AWS_PROFILE", "ci");
    assert_eq!(send_one(&fake, SqsLayer::builder(&queue)).unwrap(), "AKIDCIPROFILE");
    // The environment's key before the files.
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "envSECRET");
    assert_eq!(send_one(&fake, SqsLayer::builder(&queue)).unwrap(), "AKIDENVIRONMENT");
    // The builder's before everything.
    let explicit = SqsLayer::builder(&queue).credentials(Credentials::new("AKIDBUILDER", "b"));
    assert_eq!(send_one(&fake, explicit).unwrap(), "AKIDBUILDER");
    std::env::remove_var("AWS_ACCESS_KEY_ID");
    std::env::remove_var("AWS_SECRET_ACCESS_KEY");

    // credential_process: read at build (1), at the first request (2: it expires within the
    // refresh margin), and again for the next request (3).
    let (h, guard) = quick(SqsLayer::builder(&queue).profile("proc").endpoint_url(fake.url())).build_handler().unwrap();
    h.handle(rec(Level::ERROR, "first"));
    assert!(guard.flush(WAIT).is_complete());
    std::thread::sleep(Duration::from_millis(50));
    h.handle(rec(Level::ERROR, "second"));
    assert!(guard.flush(WAIT).is_complete());
    let ids = key_ids(&fake);
    assert_eq!(&ids[ids.len() - 2..], ["AKIDPROC2", "AKIDPROC3"], "{ids:?}");
    let tokens: Vec<String> =
        fake.http().requests().iter().filter_map(|r| r.header("x-amz-security-token").map(str::to_owned)).collect();
    assert_eq!(tokens.last().map(String::as_str), Some("tok"));

    // Nothing anywhere: a build error saying where it looked, never a secret.
    std::env::set_var("AWS_PROFILE", "absent");
    let e = send_one(&fake, SqsLayer::builder(&queue)).unwrap_err();
    assert!(e.contains("credentials") && e.contains("absent") && !e.contains("s2"), "{e}");
}
