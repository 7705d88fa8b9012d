//! Outside ticket systems: [`TicketSink`], told of new and reopened tickets on a background
//! thread of its own.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use watchbell_core::delivery::{Delivery, DeliveryHandle, Overflow};
use watchbell_core::{Batch, Flushed, Handler, Level, Outcome, Record, Retry, Sink, Stats, Value};

/// What happened to a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketChange {
    /// Its first occurrence: the ticket was created.
    New,
    /// A new occurrence of a ticket that was marked solved: it is open again.
    Reopened,
}

/// A ticket that was created or reopened, as handed to a [`TicketSink`].
#[derive(Clone, Debug)]
pub struct TicketEvent {
    /// New or reopened.
    pub change: TicketChange,
    /// The ticket's id in the ticket database.
    pub ticket_id: i64,
    /// The app the ticket belongs to.
    pub app_id: String,
    /// The ticket's fingerprint (stable across occurrences: a key for the outside system).
    pub fingerprint: String,
    /// The ticket's level.
    pub level: Level,
    /// The occurrence count after this write.
    pub occurrence_count: u64,
    /// The newest occurrence that created or reopened the ticket, as stored (after the
    /// [`store_record`](crate::TicketingBuilder::store_record) hook).
    pub record: Record,
}

/// An outside ticket system (an issue tracker, a helpdesk), told when a ticket is new or
/// reopened: the part of Logbook's ticketing backends that its trac and redmine backends
/// added.
///
/// It runs behind a watchbell delivery of its own (its thread, never the application's, never
/// the database writer's), one event at a time, in order, with a queue of 1,000 events. An
/// `Err` is retried twice (after 0.5 s and 1 s), then the event is counted as failed; a panic
/// is caught and counted. The guard's `flush` and `shutdown` wait for the events already
/// written to the database, within their deadline.
pub trait TicketSink: Send + 'static {
    /// The name in stats (`ticketing-sink:NAME`).
    fn name(&self) -> &str {
        "sink"
    }

    /// Opens, reopens or comments on the outside ticket. An `Err` explains what failed; never
    /// put a secret in it.
    fn ticket(&mut self, event: &TicketEvent) -> Result<(), String>;
}

/// How many events may wait for each outside system; more are dropped and counted.
pub(crate) const QUEUE: usize = 1_000;

/// The fields that carry a [`TicketEvent`]'s own data through the delivery (taken off again
/// before the sink sees the record).
const CHANGE: &str = "ticket.change";
const ID: &str = "ticket.id";
const APP: &str = "ticket.app_id";
const FINGERPRINT: &str = "ticket.fingerprint";
const COUNT: &str = "ticket.occurrence_count";

/// The event as a record for the delivery: the ticket's record with the event's data as fields.
fn to_record(event: TicketEvent) -> Record {
    let mut r = event.record;
    let change = match event.change {
        TicketChange::New => "new",
        TicketChange::Reopened => "reopened",
    };
    r.fields.set(CHANGE, Value::Str(change.into()));
    r.fields.set(ID, Value::I64(event.ticket_id));
    r.fields.set(APP, Value::Str(event.app_id));
    r.fields.set(FINGERPRINT, Value::Str(event.fingerprint));
    r.fields.set(COUNT, Value::U64(event.occurrence_count));
    r
}

/// The event back from [`to_record`]'s record; `None` for a record that is not one (the
/// delivery's own notices).
fn from_record(r: &Record) -> Option<TicketEvent> {
    let text = |k: &str| r.fields.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let number = |k: &str| match r.fields.get(k) {
        Some(Value::I64(n)) => Some(*n),
        Some(Value::U64(n)) => i64::try_from(*n).ok(),
        _ => None,
    };
    let change = match text(CHANGE)?.as_str() {
        "new" => TicketChange::New,
        "reopened" => TicketChange::Reopened,
        _ => return None,
    };
    let mut record = r.clone();
    for k in [CHANGE, ID, APP, FINGERPRINT, COUNT] {
        record.fields.remove(k);
    }
    Some(TicketEvent {
        change,
        ticket_id: number(ID)?,
        app_id: text(APP)?,
        fingerprint: text(FINGERPRINT)?,
        level: r.level,
        occurrence_count: u64::try_from(number(COUNT)?).unwrap_or(0),
        record,
    })
}

/// One outside system behind watchbell's delivery: an `Err` is retried, a panic caught and
/// counted, the queue bounded, and waits cut short by shutdown, like every sink.
struct Tracker(Box<dyn TicketSink>);

impl Sink for Tracker {
    fn deliver(&mut self, batch: &Batch) -> Outcome {
        let Some(first) = batch.records.first() else { return Outcome::Delivered };
        let more = batch.records.len() > 1;
        // The delivery's own notices ("N could not be delivered") are for people, not trackers.
        let result = match from_record(first) {
            Some(event) => self.0.ticket(&event),
            None => Ok(()),
        };
        match result {
            Ok(()) if more => Outcome::More { delivered: 1 },
            Ok(()) => Outcome::Delivered,
            Err(e) => Outcome::retry(format!("{}: {e}", self.0.name())),
        }
    }
}

/// The ticket sinks, one delivery each, in front of which the database writer puts events.
pub(crate) struct Notifier {
    deliveries: Vec<(String, DeliveryHandle)>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.deliveries.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Notifier").field("sinks", &names).finish()
    }
}

impl Notifier {
    /// A delivery per sink (its thread `watchbell-ticketing-sink`): an `Err` is retried twice
    /// (after 0.5 s and 1 s), then the event is counted as failed.
    pub(crate) fn spawn(sinks: Vec<Box<dyn TicketSink>>) -> std::io::Result<Arc<Notifier>> {
        let retry = Retry {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(1),
            multiplier: 2.0,
            max_attempts: 3,
            ..Retry::default()
        };
        let mut deliveries = Vec::with_capacity(sinks.len());
        for sink in sinks {
            let name = sink.name().to_owned();
            let d = Delivery::builder("ticketing-sink", Tracker(sink))
                .queue_records(QUEUE)
                .overflow(Overflow::DropNewest)
                .retry(retry.clone())
                .spawn()?;
            deliveries.push((name, d));
        }
        Ok(Arc::new(Notifier { deliveries }))
    }

    /// Queues an event for every sink without blocking; a full queue drops it (counted).
    pub(crate) fn send(&self, event: TicketEvent) {
        let record = to_record(event);
        for (_, d) in &self.deliveries {
            d.handle(record.clone());
        }
    }

    fn each(&self, deadline: Instant, f: impl Fn(&DeliveryHandle, Instant) -> Flushed) -> Flushed {
        let mut all = Flushed::COMPLETE;
        for (_, d) in &self.deliveries {
            let r = f(d, deadline);
            all = Flushed { pending: all.pending + r.pending, timed_out: all.timed_out || r.timed_out };
        }
        all
    }

    /// One stats line for all the sinks (`ticketing-sink:NAME,NAME`), their counters summed.
    fn stats(&self, out: &mut Vec<Stats>) {
        let mut all = Vec::new();
        for (_, d) in &self.deliveries {
            d.stats(&mut all);
        }
        let names: Vec<&str> = self.deliveries.iter().map(|(n, _)| n.as_str()).collect();
        let mut sum = Stats { name: format!("ticketing-sink:{}", names.join(",")), ..Stats::default() };
        for s in all {
            sum.accepted += s.accepted;
            sum.delivered += s.delivered;
            sum.retried += s.retried;
            sum.dropped += s.dropped;
            sum.failed += s.failed;
            sum.panicked += s.panicked;
            sum.notices += s.notices;
            sum.queued += s.queued;
            sum.queued_bytes += s.queued_bytes;
            sum.delays_capped += s.delays_capped;
            sum.last_error = s.last_error.or(sum.last_error);
        }
        out.push(sum);
    }
}

/// The ticketing handler chain with the ticket sinks behind it: flushing waits for both.
pub(crate) struct WithSinks {
    pub(crate) inner: Arc<dyn Handler>,
    pub(crate) notifier: Arc<Notifier>,
}

impl Handler for WithSinks {
    fn handle(&self, record: Record) {
        self.inner.handle(record)
    }

    fn handle_batch(&self, batch: Batch) {
        self.inner.handle_batch(batch)
    }

    fn flush(&self, deadline: Instant) -> Flushed {
        let db = self.inner.flush(deadline);
        let sinks = self.notifier.each(deadline, |d, dl| d.flush(dl));
        Flushed { pending: db.pending + sinks.pending, timed_out: db.timed_out || sinks.timed_out }
    }

    fn shutdown(&self, deadline: Instant) -> Flushed {
        // The database first: its last writes may still queue events for the sinks.
        let db = self.inner.shutdown(deadline);
        let sinks = self.notifier.each(deadline, |d, dl| d.shutdown(dl));
        Flushed { pending: db.pending + sinks.pending, timed_out: db.timed_out || sinks.timed_out }
    }

    fn stats(&self, out: &mut Vec<Stats>) {
        self.inner.stats(out);
        self.notifier.stats(out);
    }
}
