//! watchbell-slack (being written)
#![deny(missing_docs)]
