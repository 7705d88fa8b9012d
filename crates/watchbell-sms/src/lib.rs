//! # watchbell-sms
//!
//! Twilio and Exotel SMS alerts for tracing, routed by number prefix, with hard cost caps.
#![deny(missing_docs)]
