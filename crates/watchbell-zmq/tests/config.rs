//! The `[zmq]` table of `watchbell.toml`, checked through the umbrella crate.

use watchbell::Config;

#[test]
fn a_zmq_table_is_read_and_its_mistakes_are_named() {
    let ok = Config::from_toml_str("[zmq]\nendpoint = \"tcp://127.0.0.1:5555\"\nsocket = \"push\"\nlevel = \"warn\"\n")
        .expect("a valid table");
    ok.check().expect("checks");

    let bad = Config::from_toml_str("[zmq]\nendpoint = \"udp://x\"\n").and_then(|c| c.check().map(|_| c));
    let text = bad.expect_err("a bad endpoint").to_string();
    assert!(text.contains("zmq.endpoint") && text.contains("tcp://host:port"), "{text}");

    let bad = Config::from_toml_str("[zmq]\nendpoint = \"tcp://127.0.0.1:5555\"\nsocket = \"dealer\"\n")
        .and_then(|c| c.check().map(|_| c));
    let text = bad.expect_err("a bad socket").to_string();
    assert!(text.contains("zmq.socket") && text.contains("pub"), "{text}");

    let bad = Config::from_toml_str("[zmq]\nlevel = \"info\"\n").and_then(|c| c.check().map(|_| c));
    let text = bad.expect_err("no endpoint").to_string();
    assert!(text.contains("zmq.endpoint") && text.contains("missing"), "{text}");
}
