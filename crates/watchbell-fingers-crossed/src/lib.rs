//! # watchbell-fingers-crossed
//!
//! Withhold tracing records until one reaches the action level, then deliver the context with it.
#![deny(missing_docs)]
