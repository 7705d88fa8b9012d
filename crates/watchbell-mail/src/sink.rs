//! The SMTP sink: one mail per batch, through lettre's pooled async transport on watchbell's
//! own runtime.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::message::header::{ContentType, HeaderValue, MIME_VERSION_1_0};
use lettre::message::Mailbox;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, Error as SmtpError};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use watchbell_core::runtime;
use watchbell_core::{Batch, BatchReason, Outcome, Record, Sink};

use crate::layout::Layout;
use crate::route::{set_key, Router};

pub(crate) struct MailSink {
    builder: AsyncSmtpTransportBuilder,
    /// Built on first use, inside watchbell's runtime (lettre's pool spawns its tasks there).
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    router: Router,
    headers: Vec<HeaderValue>,
    layout: Layout,
    /// The longest one mail's SMTP conversation may take.
    timeout: Duration,
    /// What is left of a batch whose mails went out in part.
    carry: Option<Carry>,
}

/// A batch split into several mails (one per recipient set) of which some went and some are to
/// be retried. The delivery only knows prefixes of its batch: it was told that the first
/// `n - expected.len()` records went, and holds `expected`; the records really still to send
/// are `pending`, and `failed` more were refused for good (counted as failed when the rest is
/// done).
struct Carry {
    expected: Vec<Record>,
    pending: Vec<Record>,
    failed: usize,
    failed_reason: Option<String>,
}

/// One mail of a batch: its recipients and the indexes of its records.
struct Part {
    to: Vec<Mailbox>,
    records: Vec<usize>,
}

impl MailSink {
    pub(crate) fn new(
        builder: AsyncSmtpTransportBuilder,
        from: Mailbox,
        router: Router,
        headers: Vec<HeaderValue>,
        layout: Layout,
        timeout: Duration,
    ) -> Self {
        MailSink { builder, transport: None, from, router, headers, layout, timeout, carry: None }
    }

    /// The mails of a batch: one per recipient set. An escalation or a group is one mail to
    /// the recipients of its significant record; independent records are grouped by their
    /// recipients, each group in the order of its first record.
    fn parts(&self, reason: BatchReason, records: &[Record]) -> Vec<Part> {
        if matches!(reason, BatchReason::Escalation | BatchReason::Group) {
            let significant = match reason {
                BatchReason::Escalation => records.last(),
                _ => records.first(),
            };
            return match significant {
                Some(r) => vec![Part { to: self.router.recipients(r), records: (0..records.len()).collect() }],
                None => Vec::new(),
            };
        }
        let mut parts: Vec<(Vec<String>, Part)> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let to = self.router.recipients(r);
            let key = set_key(&to);
            match parts.iter_mut().find(|(k, _)| *k == key) {
                Some((_, p)) => p.records.push(i),
                None => parts.push((key, Part { to, records: vec![i] })),
            }
        }
        parts.into_iter().map(|(_, p)| p).collect()
    }

    /// Sends one mail; the outcome of its SMTP conversation, and whether it timed out.
    fn send(&mut self, message: Message) -> (Outcome, bool) {
        let builder = &self.builder;
        let transport = &mut self.transport;
        let timeout = self.timeout;
        runtime::block_on(async {
            let t = transport.get_or_insert_with(|| builder.clone().build());
            let outcome = match tokio::time::timeout(timeout, t.send(message)).await {
                Ok(Ok(_)) => (Outcome::Delivered, false),
                Ok(Err(e)) => (classify(&e), e.is_timeout()),
                Err(_) => {
                    // The connection is stuck mid-conversation: start afresh with a new pool
                    // rather than have the stuck connection handed out again.
                    *transport = None;
                    (Outcome::retry(format!("the SMTP server did not finish within {timeout:?}")), true)
                }
            };
            // Lets the pool take the connection back now (a task lettre spawned), so that the
            // next mail reuses it.
            settle().await;
            outcome
        })
    }
}

/// The mail of a batch (`None` for an empty batch).
pub(crate) fn message(
    from: &Mailbox,
    recipients: &[Mailbox],
    headers: &[HeaderValue],
    layout: &Layout,
    batch: &Batch,
) -> Result<Option<Message>, String> {
    let Some(significant) = batch.significant() else { return Ok(None) };
    let subject = layout.subject(batch, significant);
    let body = layout.body(batch, significant);
    let mut m = Message::builder();
    // The custom headers first: the ones set below replace any of the same name (which the
    // builder refuses anyway).
    for h in headers {
        m = m.raw_header(h.clone());
    }
    m = m
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
        // The rest of a batch that went out in part, when the delivery hands that batch back.
        let (records, mut failed, mut failed_reason) = match self.carry.take() {
            Some(c) if same_records(&c.expected, &batch.records) => (c.pending, c.failed, c.failed_reason),
            _ => (batch.records.clone(), 0, None),
        };
        let parts = self.parts(batch.reason, &records);
        let mut sent = vec![false; records.len()];
        let mut refused = vec![false; records.len()];
        let mut retry: Option<(Option<Duration>, String)> = None;
        for part in parts {
            let sub = Batch::new(batch.reason, part.records.iter().map(|&i| records[i].clone()).collect());
            let (outcome, timed_out) = match message(&self.from, &part.to, &self.headers, &self.layout, &sub) {
                Ok(Some(m)) => self.send(m),
                Ok(None) => (Outcome::Delivered, false),
                Err(e) => (Outcome::permanent(e), false),
            };
            if timed_out {
                // A server that does not answer would make each of the other mails wait its
                // whole timeout too: they wait for the retry instead.
                retry = Some((None, with_recipients(&part.to, &outcome_reason(&outcome))));
                break;
            }
            match outcome {
                Outcome::Delivered => {
                    part.records.iter().for_each(|&i| sent[i] = true);
                    if let Some(link) = &self.layout.cx.ticket_link {
                        link.notified("mail", &sub.records);
                    }
                }
                Outcome::Retry { after, reason } => retry = Some((after, with_recipients(&part.to, &reason))),
                Outcome::Permanent { reason } => {
                    part.records.iter().for_each(|&i| refused[i] = true);
                    failed_reason = Some(with_recipients(&part.to, &reason));
                }
                // (This sink makes none of the others.)
                other => retry = Some((None, format!("unexpected outcome {other:?}"))),
            }
        }
        let delivered = sent.iter().filter(|s| **s).count();
        failed += refused.iter().filter(|r| **r).count();
        let pending: Vec<Record> = records
            .into_iter()
            .zip(sent.iter().zip(&refused))
            .filter(|(_, (s, r))| !**s && !**r)
            .map(|(x, _)| x)
            .collect();
        let rest = if pending.is_empty() {
            match (failed, failed_reason) {
                (0, _) => return Outcome::Delivered,
                (_, reason) => Outcome::permanent(reason.unwrap_or_else(|| "the SMTP server refused the mail".into())),
            }
        } else {
            let (after, reason) = retry.unwrap_or((None, "mails of this batch are still to send".into()));
            let d = delivered.min(batch.records.len());
            self.carry = Some(Carry { expected: batch.records[d..].to_vec(), pending, failed, failed_reason });
            Outcome::retry_after(after, reason)
        };
        if delivered == 0 {
            rest
        } else {
            Outcome::Partial { delivered, rest: Box::new(rest) }
        }
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

/// Whether two lists hold the same records (by what identifies a record: not `==`, which a NaN
/// field would make false).
fn same_records(a: &[Record], b: &[Record]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.time == y.time
                && x.fingerprint == y.fingerprint
                && x.thread_id == y.thread_id
                && x.level == y.level
                && x.target == y.target
                && x.message == y.message
                && x.suppressed == y.suppressed
        })
}

fn outcome_reason(o: &Outcome) -> String {
    match o {
        Outcome::Retry { reason, .. } | Outcome::Permanent { reason } => reason.clone(),
        other => format!("{other:?}"),
    }
}

fn with_recipients(to: &[Mailbox], reason: &str) -> String {
    let to: Vec<String> = to.iter().map(|m| m.email.to_string()).collect();
    format!("mail to {}: {reason}", to.join(", "))
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
