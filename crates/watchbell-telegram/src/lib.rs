//! watchbell-telegram (being written)
#![deny(missing_docs)]
