//! The sink: requests, 413 splitting, `_bulk` item results, the spool and its replayer.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use watchbell_core::http::{HeaderMap, HeaderValue, HttpClient, Method};
use watchbell_core::{Batch, Flushed, Handler, Outcome, Record, Retry, Sink, Stats};

use crate::encode::{self, Context, Encoding, FormMethod};
use crate::spool::{Chunk, Spool};

/// Counters of what the sink decides per record (beyond the delivery's own).
#[derive(Debug, Default)]
pub(crate) struct ItemCounters {
    /// Records given up on one by one: `_bulk` items refused with a 4xx, a single record
    /// still too large (413).
    pub refused: watchbell_core::report::Refusals,
    /// Records of 2xx `_bulk` answers that could not be read: counted delivered on trust.
    pub unverified: AtomicU64,
    /// Why the last such answer could not be read.
    pub unverified_reason: Mutex<Option<String>>,
}

impl ItemCounters {
    fn unverified(&self, n: u64, reason: String) {
        if self.unverified.fetch_add(n, Relaxed) == 0 {
            watchbell_core::report::report(
                "http",
                &format!(
                    "a 2xx answer to _bulk could not be read ({reason}); its records are counted \
                 delivered, unverified (further ones counted in stats)"
                ),
            );
        }
        *self.unverified_reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
    }

    fn fail(&self, n: u64, reason: String) {
        self.refused.fail("http", n, reason);
    }
}

/// The answer to one request.
enum Sent {
    Ok,
    TooLarge,
    /// `_bulk` per-item results: `None` ok or refused for good (counted), `Some` retryable.
    Items(Vec<Option<String>>),
    Fail(Outcome),
}

/// Everything needed to send records: shared by the sink and the spool's replayer.
#[derive(Clone, Debug)]
pub(crate) struct Shipper {
    pub client: HttpClient,
    pub url: String,
    pub encoding: Encoding,
    pub headers: HeaderMap,
    pub gzip_min: Option<usize>,
    pub cx: Arc<Context>,
    pub items: Arc<ItemCounters>,
    /// The form pairs chosen by the user (`map_record`, `form_fields`), if any.
    pub map_record: Option<encode::FormMap>,
}

impl Shipper {
    fn post(&self, method: Method, url: &str, body: Vec<u8>) -> Result<watchbell_core::http::HttpResponse, Outcome> {
        let mut req = self.client.request(method, url).headers(self.headers.clone());
        if !body.is_empty() {
            req = req.header("content-type", HeaderValue::from_static(self.encoding.content_type()));
            // Simple form receivers are not expected to understand gzip.
            let gzip = if matches!(self.encoding, Encoding::Form { .. }) { None } else { self.gzip_min };
            match gzip {
                Some(min) if body.len() >= min => {
                    let mut gz = flate2::write::GzEncoder::new(
                        Vec::with_capacity(body.len() / 4 + 64),
                        flate2::Compression::fast(),
                    );
                    let zipped = gz.write_all(&body).and_then(|()| gz.finish());
                    req = match zipped {
                        Ok(z) => req.header("content-encoding", HeaderValue::from_static("gzip")).body(z),
                        Err(_) => req.body(body),
                    };
                }
                _ => req = req.body(body),
            }
        }
        self.client.send(req, url).map_err(|e| e.outcome())
    }

    fn send(&self, records: &[&Record]) -> Sent {
        let what = self.encoding.name();
        if let Encoding::Form { method } = &self.encoding {
            // One record per request.
            let r = records[0];
            let resp = match method {
                FormMethod::Get => {
                    let q =
                        encode::encode_form(r, &self.cx, Some(encode::FORM_GET_MAX_MESSAGE), self.map_record.as_ref());
                    let sep = if self.url.contains('?') { '&' } else { '?' };
                    self.post(Method::GET, &format!("{}{sep}{q}", self.url), Vec::new())
                }
                FormMethod::Post => {
                    let body = encode::encode_form(r, &self.cx, None, self.map_record.as_ref()).into_bytes();
                    self.post(Method::POST, &self.url, body)
                }
            };
            return match resp {
                Ok(resp) if resp.status == 413 => Sent::TooLarge,
                Ok(resp) => match resp.outcome(what) {
                    Outcome::Delivered => Sent::Ok,
                    o => Sent::Fail(o),
                },
                Err(o) => Sent::Fail(o),
            };
        }
        let body = encode::encode(&self.encoding, records, &self.cx);
        let resp = match self.post(Method::POST, &self.url, body) {
            Ok(r) => r,
            Err(o) => return Sent::Fail(o),
        };
        if resp.status == 413 {
            return Sent::TooLarge;
        }
        match self.classify(&resp, what) {
            Outcome::Delivered if matches!(self.encoding, Encoding::ElasticBulk { .. }) => {
                match parse_bulk_answer(&resp.body, records.len()) {
                    BulkAnswer::AllCreated => Sent::Ok,
                    BulkAnswer::Unreadable(reason) => {
                        self.items.unverified(records.len() as u64, reason);
                        Sent::Ok
                    }
                    BulkAnswer::Items(items) => {
                        let mut refused = 0;
                        let mut refused_reason = String::new();
                        let results = items
                            .into_iter()
                            .map(|item| match item {
                                BulkItem::Created => None,
                                BulkItem::Refused(reason) => {
                                    refused += 1;
                                    refused_reason = reason;
                                    None
                                }
                                BulkItem::Retry(reason) => Some(reason),
                                BulkItem::Unknown => Some(
                                    "elasticsearch answered without a readable result for this record (cut short \
                                     or malformed): sent again"
                                        .to_owned(),
                                ),
                            })
                            .collect();
                        self.items.fail(refused, refused_reason);
                        Sent::Items(results)
                    }
                }
            }
            Outcome::Delivered => Sent::Ok,
            o => Sent::Fail(o),
        }
    }

    /// The response's outcome under the encoding's own rules. OTLP/HTTP allows retries only
    /// on 429, 502, 503 and 504 ("all other responses MUST NOT be retried"): a 500 or a 408 from
    /// a collector is permanent there. The other encodings keep the general rule (every 5xx,
    /// 408, 425 and 429 retried).
    fn classify(&self, resp: &watchbell_core::http::HttpResponse, what: &str) -> Outcome {
        match resp.outcome(what) {
            Outcome::Retry { reason, .. }
                if matches!(self.encoding, Encoding::Otlp { .. }) && !matches!(resp.status, 429 | 502 | 503 | 504) =>
            {
                Outcome::permanent(format!("{reason} (OTLP retries only 429, 502, 503 and 504)"))
            }
            o => o,
        }
    }

    /// Sends the records not yet `done`, in order, splitting on 413. Returns `None` when every
    /// record is done, or the failure that stopped it.
    pub(crate) fn ship(&self, records: &[Record], done: &mut [bool]) -> Option<Outcome> {
        let todo: Vec<usize> = (0..records.len()).filter(|&i| !done[i]).collect();
        let mut pieces: VecDeque<Vec<usize>> = if matches!(self.encoding, Encoding::Form { .. }) {
            todo.into_iter().map(|i| vec![i]).collect()
        } else if todo.is_empty() {
            VecDeque::new()
        } else {
            VecDeque::from([todo])
        };
        while let Some(piece) = pieces.pop_front() {
            let refs: Vec<&Record> = piece.iter().map(|&i| &records[i]).collect();
            match self.send(&refs) {
                Sent::Ok => piece.iter().for_each(|&i| done[i] = true),
                Sent::TooLarge if piece.len() == 1 => {
                    done[piece[0]] = true;
                    self.items.fail(1, format!("{} answered 413 to a single record: too large", self.encoding.name()));
                }
                Sent::TooLarge => {
                    let (a, b) = piece.split_at(piece.len() / 2);
                    pieces.push_front(b.to_vec());
                    pieces.push_front(a.to_vec());
                }
                Sent::Items(results) => {
                    let mut retry = None;
                    for (&i, res) in piece.iter().zip(results) {
                        match res {
                            None => done[i] = true,
                            Some(reason) => retry = Some(reason),
                        }
                    }
                    if let Some(reason) = retry {
                        return Some(Outcome::retry(reason));
                    }
                }
                Sent::Fail(o) => return Some(o),
            }
        }
        None
    }
}

/// What one item of a `_bulk` answer says about its record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BulkItem {
    /// A 2xx status: indexed.
    Created,
    /// 429 or 5xx: the record is sent again (with backoff).
    Retry(String),
    /// Another status (400, 409, …): refused for good, counted, not sent again.
    Refused(String),
    /// No readable result for this record (the answer was cut short, listed fewer items, or
    /// the item has no numeric status): the record is sent again (at least once).
    Unknown,
}

/// What a 2xx answer to a `_bulk` request says about the records it carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BulkAnswer {
    /// `"errors": false`: every record was indexed.
    AllCreated,
    /// One result per record sent, in order (an answer with `"errors": true` or per-item
    /// results); results missing from the answer are [`BulkItem::Unknown`], extra ones ignored.
    Items(Vec<BulkItem>),
    /// Not a `_bulk` answer at all (not JSON, not an object, neither `errors` nor `items`):
    /// the 2xx is trusted and the records counted delivered, but unverified.
    Unreadable(String),
}

/// Reads the answer to a `_bulk` request of `sent` records. Total: any bytes give an answer
/// (never a panic), and [`BulkAnswer::Items`] always holds exactly `sent` results.
///
/// The body is read as a stream of JSON values, so an answer cut short (the HTTP client keeps
/// at most [`MAX_RESPONSE_BYTES`](watchbell_core::http::MAX_RESPONSE_BYTES) of it) still gives
/// the items before the cut: Elasticsearch writes `errors` before `items`.
pub fn parse_bulk_answer(body: &[u8], sent: usize) -> BulkAnswer {
    let mut s = Scan { b: body, i: 0 };
    if !s.eat(b'{') {
        return BulkAnswer::Unreadable("the answer is not a JSON object".to_owned());
    }
    let mut errors: Option<bool> = None;
    let mut items: Option<Vec<BulkItem>> = None;
    if !s.eat(b'}') {
        while let Some(key) = s.value::<String>() {
            if !s.eat(b':') {
                break;
            }
            match key.as_str() {
                "errors" => match s.value::<serde_json::Value>() {
                    Some(v) => errors = v.as_bool(),
                    None => break,
                },
                "items" => {
                    let (list, complete) = s.items(sent);
                    items = Some(list);
                    if !complete {
                        break;
                    }
                }
                _ => {
                    if s.value::<serde_json::Value>().is_none() {
                        break;
                    }
                }
            }
            if errors == Some(false) || !s.eat(b',') {
                break;
            }
        }
    }
    match (errors, items) {
        (Some(false), _) => BulkAnswer::AllCreated,
        (Some(true), items) => BulkAnswer::Items(padded(items.unwrap_or_default(), sent)),
        (None, Some(items)) if !items.is_empty() || sent == 0 => BulkAnswer::Items(padded(items, sent)),
        _ => BulkAnswer::Unreadable("the answer has no readable `errors` or `items`".to_owned()),
    }
}

fn padded(mut items: Vec<BulkItem>, sent: usize) -> Vec<BulkItem> {
    items.truncate(sent);
    items.resize(sent, BulkItem::Unknown);
    items
}

/// One item: `{"create": {"status": 201, ...}}` (any action name).
fn bulk_item(v: &serde_json::Value) -> BulkItem {
    let Some(inner) = v.as_object().and_then(|o| o.values().find(|x| x.get("status").is_some())) else {
        return BulkItem::Unknown;
    };
    let Some(status) = inner.get("status").and_then(serde_json::Value::as_u64) else { return BulkItem::Unknown };
    let reason = || {
        let e = inner.get("error");
        let t = e.and_then(|e| e.get("type")).and_then(|t| t.as_str()).unwrap_or("");
        let r = e.and_then(|e| e.get("reason")).and_then(|t| t.as_str()).unwrap_or("");
        let text: String = format!("{t}: {r}").chars().take(200).collect();
        format!("elasticsearch item {status} {}", watchbell_core::secret::redact_text(&text))
    };
    match status {
        200..=299 => BulkItem::Created,
        429 | 500..=599 => BulkItem::Retry(reason()),
        300..=499 => BulkItem::Refused(reason()),
        _ => BulkItem::Unknown,
    }
}

/// A forward-only reader of JSON values in a byte slice that may be cut short.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Skips whitespace, then `c` if it is next.
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// The next whole JSON value, or `None` (cut short, malformed, nested too deep).
    fn value<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        self.ws();
        let mut values = serde_json::Deserializer::from_slice(&self.b[self.i..]).into_iter::<T>();
        let v = values.next()?.ok()?;
        self.i += values.byte_offset();
        Some(v)
    }

    /// The items array: the results of the first `sent` items, and whether the array was read
    /// to its end.
    fn items(&mut self, sent: usize) -> (Vec<BulkItem>, bool) {
        let mut out = Vec::with_capacity(sent.min(4096));
        if !self.eat(b'[') {
            return (out, false);
        }
        if self.eat(b']') {
            return (out, true);
        }
        loop {
            let Some(v) = self.value::<serde_json::Value>() else { return (out, false) };
            if out.len() < sent {
                out.push(bulk_item(&v));
            }
            if !self.eat(b',') {
                return (out, self.eat(b']'));
            }
        }
    }
}

/// Where a retried batch left off: the records already sent among the rest.
struct Resume {
    first: Record,
    done: Vec<bool>,
}

/// The records of `recs` whose `done` flag is not set, in order.
fn not_done<'a>(recs: &'a [Record], done: &[bool]) -> Vec<&'a Record> {
    recs.iter().zip(done).filter(|(_, d)| !**d).map(|(r, _)| r).collect()
}

/// The [`Sink`] of an [`HttpLayer`](crate::HttpLayer).
pub(crate) struct HttpSink {
    pub shipper: Shipper,
    pub spool: Option<Arc<Spool>>,
    pub spool_after: Duration,
    failing_since: Option<Instant>,
    resume: Option<Resume>,
}

impl HttpSink {
    pub(crate) fn new(shipper: Shipper, spool: Option<Arc<Spool>>, spool_after: Duration) -> Self {
        HttpSink { shipper, spool, spool_after, failing_since: None, resume: None }
    }
}

impl Sink for HttpSink {
    fn can_spill(&self) -> bool {
        self.spool.is_some()
    }

    /// The collector has been failing and the in-memory queue is half full: the waiting batch
    /// (what is not sent of it) and the whole queue go to the spool, in order, before
    /// `spool_after` has passed, instead of the queue shedding records.
    fn spill(&mut self, pending: &Batch, queued: &Batch) -> bool {
        let Some(spool) = &self.spool else { return false };
        let recs = &pending.records;
        let done = match self.resume.take() {
            Some(r) if r.done.len() == recs.len() && recs.first() == Some(&r.first) => r.done,
            _ => vec![false; recs.len()],
        };
        let mut all = not_done(recs, &done);
        all.extend(queued.records.iter());
        self.failing_since.get_or_insert_with(Instant::now);
        spool.append_if(&all, true)
    }

    fn deliver(&mut self, batch: &Batch) -> Outcome {
        let recs = &batch.records;
        let n = recs.len();
        let mut done = match self.resume.take() {
            Some(r) if r.done.len() == n && recs.first() == Some(&r.first) => r.done,
            _ => vec![false; n],
        };
        if let Some(spool) = &self.spool {
            // While older records wait in the spool, newer ones queue behind them.
            if spool.append_if(&not_done(recs, &done), false) {
                return Outcome::Delivered;
            }
        }
        let result = self.shipper.ship(recs, &mut done);
        let Some(outcome) = result else {
            self.failing_since = None;
            return Outcome::Delivered;
        };
        if let (Outcome::Retry { .. }, Some(spool)) = (&outcome, &self.spool) {
            let since = *self.failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.spool_after {
                spool.append_if(&not_done(recs, &done), true);
                return Outcome::Delivered;
            }
        }
        let k = done.iter().take_while(|d| **d).count();
        if matches!(outcome, Outcome::Retry { .. }) && k < n {
            self.resume = Some(Resume { first: recs[k].clone(), done: done[k..].to_vec() });
        }
        if k == 0 {
            outcome
        } else {
            Outcome::Partial { delivered: k, rest: Box::new(outcome) }
        }
    }
}

/// Replays the spool on its own thread, in order, with backoff while the collector fails.
pub(crate) fn spawn_replayer(
    spool: Arc<Spool>,
    shipper: Shipper,
    chunk_records: usize,
    retry: Retry,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("watchbell-http-spool".into()).spawn(move || {
        watchbell_core::capture::mark_current_thread();
        let mut delay = retry.initial.max(Duration::from_millis(50));
        let max = retry.max.clamp(Duration::from_millis(100), Duration::from_secs(30));
        while !spool.is_stopped() {
            let chunk: Chunk = spool.read(chunk_records);
            if chunk.records.is_empty() {
                spool.wait_change(Duration::from_millis(500), true);
                continue;
            }
            let mut done = vec![false; chunk.records.len()];
            let failed_before = shipper.items.refused.failed.load(Relaxed);
            let result = shipper.ship(&chunk.records, &mut done);
            let refused = shipper.items.refused.failed.load(Relaxed) - failed_before;
            let k = done.iter().take_while(|d| **d).count();
            match result {
                None => {
                    spool.commit(&chunk, chunk.records.len(), refused);
                    delay = retry.initial.max(Duration::from_millis(50));
                }
                Some(Outcome::Permanent { reason }) => {
                    // Refused for good: given up on, counted.
                    shipper.items.fail((chunk.records.len() - k) as u64, reason);
                    spool.commit(&chunk, chunk.records.len(), (chunk.records.len() - k) as u64);
                }
                Some(o) => {
                    spool.commit(&chunk, k, 0);
                    // The server's delay, capped like the delivery caps it, never below
                    // the backoff.
                    let after = match o {
                        Outcome::Retry { after: Some(a), .. } => a.min(retry.max_server_delay).max(delay),
                        _ => delay,
                    };
                    spool.wait_change(after, false);
                    delay = (delay * 2).min(max);
                }
            }
        }
    })
}

/// The handler the layer feeds: the delivery, plus the spool's flush and counters.
pub(crate) struct HttpHandler {
    pub inner: Arc<dyn Handler>,
    pub spool: Option<Arc<Spool>>,
    pub items: Arc<ItemCounters>,
    pub name: String,
}

impl Handler for HttpHandler {
    fn handle(&self, record: Record) {
        self.inner.handle(record);
    }

    fn handle_batch(&self, batch: Batch) {
        self.inner.handle_batch(batch);
    }

    fn flush(&self, deadline: Instant) -> Flushed {
        let f = self.inner.flush(deadline);
        match &self.spool {
            Some(s) => {
                let left = s.wait_empty(deadline);
                f.and(Flushed { pending: left, timed_out: left > 0 })
            }
            None => f,
        }
    }

    fn shutdown(&self, deadline: Instant) -> Flushed {
        let f = self.inner.shutdown(deadline);
        match &self.spool {
            Some(s) => {
                let left = s.wait_empty(deadline);
                s.stop();
                // What is left stays on disk for the next start.
                f.and(Flushed { pending: left, timed_out: left > 0 })
            }
            None => f,
        }
    }

    fn stats(&self, out: &mut Vec<Stats>) {
        self.inner.stats(out);
        let failed = self.items.refused.failed.load(Relaxed);
        if failed > 0 {
            out.push(Stats {
                name: format!("{}/items", self.name),
                failed,
                last_error: self.items.refused.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                ..Stats::default()
            });
        }
        let unverified = self.items.unverified.load(Relaxed);
        if unverified > 0 {
            out.push(Stats {
                name: format!("{}/unverified", self.name),
                delivered: unverified,
                last_error: self.items.unverified_reason.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                ..Stats::default()
            });
        }
        if let Some(s) = &self.spool {
            let c = s.counts();
            out.push(Stats {
                name: format!("{}/spool", self.name),
                accepted: c.spooled,
                delivered: c.replayed,
                dropped: c.shed_records,
                failed: c.failed,
                queued: c.pending_records,
                queued_bytes: c.pending_bytes,
                last_error: match (c.shed_records, c.corrupt_cursors) {
                    (0, 0) => None,
                    (_, 0) => Some(format!(
                        "spool full or damaged: {} records ({} bytes) shed",
                        c.shed_records, c.shed_bytes
                    )),
                    _ => Some(format!(
                        "spool full or damaged: {} records ({} bytes) shed; {} corrupt cursor(s), replayed from the segment start",
                        c.shed_records, c.shed_bytes, c.corrupt_cursors
                    )),
                },
                ..Stats::default()
            });
        }
    }
}

impl Drop for HttpHandler {
    fn drop(&mut self) {
        if let Some(s) = &self.spool {
            s.stop();
        }
    }
}
