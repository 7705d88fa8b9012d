//! # watchbell-mail
//!
//! SMTP alert mails for tracing through lettre, with Logbook's layout and batches of related records.
#![deny(missing_docs)]
