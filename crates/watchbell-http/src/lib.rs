//! # watchbell-http
//!
//! Batch shipping of tracing records to log collectors: NDJSON, JSON, Loki, Elasticsearch bulk, OTLP/HTTP JSON.
#![deny(missing_docs)]
