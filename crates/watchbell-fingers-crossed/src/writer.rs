//! A `MakeWriter` as the inner handler: records written as formatted lines by a watchbell
//! delivery worker (never on the application's thread).

use std::io::Write;
use std::sync::Arc;

use tracing_subscriber::fmt::MakeWriter;
use watchbell_core::format::{Format, FormatContext};
use watchbell_core::{Batch, Outcome, Sink};

/// Writes one batch of text: the type-erased `MakeWriter`.
pub(crate) trait WriteText: Send + Sync + 'static {
    fn write_text(&self, text: &str) -> std::io::Result<()>;
}

pub(crate) struct MakeWriterText<W>(pub(crate) W);

impl<W> WriteText for MakeWriterText<W>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    fn write_text(&self, text: &str) -> std::io::Result<()> {
        let mut w = self.0.make_writer();
        w.write_all(text.as_bytes())?;
        w.flush()
    }
}

/// The sink: each record of a batch formatted on its own line, the batch written at once.
pub(crate) struct WriterSink {
    pub(crate) out: Box<dyn WriteText>,
    pub(crate) format: Arc<dyn Format>,
    pub(crate) cx: FormatContext,
}

impl Sink for WriterSink {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        let mut text = String::new();
        for r in &batch.records {
            self.format.format(r, &self.cx, &mut text);
            text.push('\n');
        }
        match self.out.write_text(&text) {
            Ok(()) => Outcome::Delivered,
            // Part of the batch may be written: retrying would write it twice.
            Err(e) => Outcome::permanent(format!("write failed: {e}")),
        }
    }
}
