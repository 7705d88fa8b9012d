//! placeholder until the real module lands
#![allow(missing_docs)]
use crate::record::Batch;
#[derive(Clone, Debug, Default)]
pub struct Redactor;
impl Redactor {
    pub fn redact_batch(&self, _b: &mut Batch) {}
}
