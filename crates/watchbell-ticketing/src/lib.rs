//! # watchbell-ticketing
//!
//! Errors as tickets grouped by call site, in SQLite or PostgreSQL.
#![deny(missing_docs)]
