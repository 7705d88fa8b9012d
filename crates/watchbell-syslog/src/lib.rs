//! # watchbell-syslog
//!
//! Syslog for tracing: RFC 3164 and RFC 5424 over unix, UDP and TCP sockets.
#![deny(missing_docs)]
