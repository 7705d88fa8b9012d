//! The benchmarks are in `benches/pipeline.rs`: `cargo bench -p watchbell-bench`, or
//! `cargo xtask bench` for one table of the medians.
