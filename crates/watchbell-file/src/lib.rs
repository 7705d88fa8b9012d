//! # watchbell-file
//!
//! Size- and time-rotated log files for tracing, reopened after logrotate.
#![deny(missing_docs)]
