//! The SMTP sink: one mail per batch, through lettre's pooled async transport on watchbell's
//! own runtime.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::message::header::{ContentType, MIME_VERSION_1_0};
use lettre::message::Mailbox;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, Error as SmtpError};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use watchbell_core::runtime;
use watchbell_core::{Batch, Outcome, Sink};

use crate::layout::Layout;

pub(crate) struct MailSink {
    builder: AsyncSmtpTransportBuilder,
    /// Built on first use, inside watchbell's runtime (lettre's pool spawns its tasks there).
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    to: Vec<Mailbox>,
    layout: Layout,
    /// The longest one mail's SMTP conversation may take.
    timeout: Duration,
}

impl MailSink {
    pub(crate) fn new(
        builder: AsyncSmtpTransportBuilder,
        from: Mailbox,
        to: Vec<Mailbox>,
        layout: Layout,
        timeout: Duration,
    ) -> Self {
        MailSink { builder, transport: None, from, to, layout, timeout }
    }

    fn message(&self, batch: &Batch) -> Result<Option<Message>, String> {
        message(&self.from, &self.to, &self.layout, batch)
    }
}

/// The mail of a batch (`None` for an empty batch).
pub(crate) fn message(
    from: &Mailbox,
    recipients: &[Mailbox],
    layout: &Layout,
    batch: &Batch,
) -> Result<Option<Message>, String> {
    let Some(significant) = batch.significant() else { return Ok(None) };
    let subject = layout.subject(batch, significant);
    let body = layout.body(batch, significant);
    let mut m = Message::builder()
        .from(from.clone())
        .subject(subject)
        .date(significant.time)
        .message_id(None)
        // A Content-Type needs `MIME-Version: 1.0` beside it (RFC 2045 §4).
        .header(MIME_VERSION_1_0)
        .header(ContentType::TEXT_PLAIN);
    for to in recipients {
        m = m.to(to.clone());
    }
    m.body(body).map(Some).map_err(|e| format!("cannot build the mail: {e}"))
}

impl Sink for MailSink {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        let message = match self.message(batch) {
            Ok(Some(m)) => m,
            Ok(None) => return Outcome::Delivered,
            Err(e) => return Outcome::permanent(e),
        };
        let builder = &self.builder;
        let transport = &mut self.transport;
        let timeout = self.timeout;
        runtime::block_on(async {
            let t = transport.get_or_insert_with(|| builder.clone().build());
            let outcome = match tokio::time::timeout(timeout, t.send(message)).await {
                Ok(Ok(_)) => Outcome::Delivered,
                Ok(Err(e)) => classify(&e),
                Err(_) => {
                    // The connection is stuck mid-conversation: start afresh with a new pool
                    // rather than have the stuck connection handed out again.
                    *transport = None;
                    Outcome::retry(format!("the SMTP server did not finish within {timeout:?}"))
                }
            };
            // Lets the pool take the connection back now (a task lettre spawned), so that the
            // next mail reuses it.
            settle().await;
            outcome
        })
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        if let Some(t) = self.transport.take() {
            // Closes the pooled connection (QUIT) inside the runtime its tasks live in, without
            // waiting long on a server that does not answer.
            let wait = self.timeout.min(Duration::from_secs(5));
            let _ = catch_unwind(AssertUnwindSafe(|| {
                runtime::block_on(async move {
                    let _ = tokio::time::timeout(wait, t.shutdown()).await;
                    drop(t);
                    settle().await;
                })
            }));
        }
    }
}

/// Maps an SMTP error onto an outcome: 4xx and connection problems retry, 5xx and
/// configuration problems (no STARTTLS, no usable AUTH, an untrusted certificate) do not.
pub(crate) fn classify(e: &SmtpError) -> Outcome {
    if e.is_permanent() {
        Outcome::permanent(format!("the SMTP server refused the mail: {e}"))
    } else if e.is_transient() {
        Outcome::retry(format!("the SMTP server asked to try again later: {e}"))
    } else if e.is_timeout() {
        Outcome::retry(format!("the SMTP server did not answer in time: {e}"))
    } else if e.is_tls() || is_certificate_problem(e) {
        Outcome::permanent(tls_reason(e))
    } else if e.is_client() {
        Outcome::permanent(format!("cannot send to this SMTP server: {e}"))
    } else {
        Outcome::retry(format!("SMTP connection failed: {e}"))
    }
}

/// What to say of a TLS failure: what to check, and for a CA certificate used as the
/// server's own, what to do instead.
fn tls_reason(e: &SmtpError) -> String {
    let mut chain = e.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    if chain.contains("CaUsedAsEndEntity") {
        format!(
            "TLS failed: the server presents a CA certificate (CA:TRUE) as its own, which TLS refuses; give it a \
             certificate signed by that CA (and trust the CA with add_root_certificate), or a self-signed one \
             with CA:FALSE: {e}"
        )
    } else {
        format!("TLS failed (is the certificate trusted and valid for this host?): {e}")
    }
}

/// A TLS handshake failure reaches lettre as an I/O error from the TLS stream: look for
/// rustls' certificate errors in the chain.
fn is_certificate_problem(e: &SmtpError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if text.contains("invalid peer certificate")
            || text.contains("UnknownIssuer")
            || text.contains("NotValidForName")
            || text.contains("CaUsedAsEndEntity")
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// Yields to the runtime a few times, so that tasks spawned meanwhile run.
async fn settle() {
    for _ in 0..4 {
        YieldNow(false).await;
    }
}

struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}
