//! The examples of this package are in `examples/`; run the main one with `cargo run --example demo`.
