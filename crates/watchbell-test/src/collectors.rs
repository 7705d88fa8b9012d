//! Loopback fakes of log collectors: Loki, Elasticsearch bulk, OTLP/HTTP, NDJSON receivers.
