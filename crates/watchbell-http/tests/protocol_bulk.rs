//! Elasticsearch `_bulk` answers that are cut short, malformed or of an unexpected shape: never a
//! panic, never a record silently lost, every outcome counted.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{fast_retry, rec, seqs};
use serde_json::Value as J;
use watchbell_core::{Batch, BatchReason, Handler, SinkOptions};
use watchbell_http::fuzzing::{parse_bulk_answer, BulkAnswer, BulkItem};
use watchbell_http::{Encoding, HttpLayer};
use watchbell_test::collectors::FakeElasticsearch;
use watchbell_test::http::Reply;

const WAIT: Duration = Duration::from_secs(20);

fn send(h: &Arc<dyn Handler>, range: std::ops::Range<u64>) {
    h.handle_batch(Batch::new(BatchReason::Single, range.map(rec).collect()));
}

fn start(fake: &FakeElasticsearch, batch: usize) -> (Arc<dyn Handler>, watchbell_core::Guard) {
    HttpLayer::builder(fake.url())
        .encoding(Encoding::elastic_bulk("logs"))
        .no_gzip()
        .retry(fast_retry(Duration::from_millis(200)))
        .batch_records(batch)
        .batch_wait(Duration::from_millis(20))
        .build_handler()
        .unwrap()
}

/// The `seq` of each document in a `_bulk` request body.
fn sent_seqs(req: &watchbell_test::http::Request) -> Vec<u64> {
    req.body_text()
        .lines()
        .skip(1)
        .step_by(2)
        .map(|l| serde_json::from_str::<J>(l).unwrap()["fields"]["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn an_answer_cut_at_the_clients_limit_still_retries_the_failed_item_at_its_end() {
    // 2,000 items of ~45 bytes: the answer passes the 64 KiB the HTTP client keeps, so its end
    // (with the refused item) is never seen.
    let fake = FakeElasticsearch::start();
    let (h, guard) = start(&fake, 2000);
    let mut statuses = vec![201u16; 1999];
    statuses.push(429);
    fake.push_item_statuses(&statuses);
    send(&h, 0..2000);
    assert!(guard.flush(WAIT).is_complete());
    let mut got = seqs(&fake.records());
    got.sort_unstable();
    got.dedup();
    assert_eq!(got, (0..2000).collect::<Vec<u64>>(), "every record indexed at least once");
    let reqs = fake.http().requests();
    assert_eq!(reqs.len(), 2, "one retry, of the items after the cut");
    let again = sent_seqs(&reqs[1]);
    assert!(again.len() < 1000 && again.last() == Some(&1999), "{} resent", again.len());
    assert_eq!(guard.stats()[0].failed, 0);
}

#[test]
fn an_unreadable_2xx_answer_is_counted_delivered_unverified_and_the_next_batch_goes_through() {
    let fake = FakeElasticsearch::start();
    let (h, guard) = start(&fake, 100);
    fake.http().push(Reply::text(200, "<html>proxy says ok</html>"));
    send(&h, 0..3);
    assert!(guard.flush(WAIT).is_complete());
    let stats = guard.stats();
    let unverified = stats.iter().find(|s| s.name.ends_with("/unverified")).expect("an unverified line");
    assert_eq!(unverified.delivered, 3, "{unverified}");
    assert!(unverified.last_error.as_deref().unwrap().contains("not a JSON object"), "{unverified}");
    assert_eq!((stats[0].delivered, stats[0].retried, stats[0].failed), (3, 0, 0), "{}", stats[0]);
    assert_eq!(fake.http().request_count(), 1, "not sent again (it may well have been indexed)");
    send(&h, 3..5);
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(seqs(&fake.records()), [3, 4]);
}

#[test]
fn errors_true_with_unusable_items_sends_the_batch_again() {
    let fake = FakeElasticsearch::start();
    let (h, guard) = start(&fake, 100);
    fake.http().push(Reply::json(200, r#"{"took":3,"errors":true,"items":"oops"}"#));
    send(&h, 0..3);
    assert!(guard.flush(WAIT).is_complete());
    assert_eq!(seqs(&fake.records()), [0, 1, 2], "nothing lost");
    let s = &guard.stats()[0];
    assert_eq!((s.delivered, s.failed), (3, 0), "{s}");
    assert!(s.retried >= 1, "{s}");
}

#[test]
fn an_item_list_longer_than_the_batch_is_read_for_the_records_sent() {
    let fake = FakeElasticsearch::start();
    let (h, guard) = start(&fake, 100);
    let mut items =
        vec![r#"{"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}}"#
            .to_owned()];
    items.extend(std::iter::repeat_n(r#"{"create":{"status":201}}"#.to_owned(), 20_000));
    fake.http().push(Reply::json(200, &format!(r#"{{"errors":true,"items":[{}]}}"#, items.join(","))));
    send(&h, 0..3);
    assert!(guard.flush(WAIT).is_complete());
    let reqs = fake.http().requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(sent_seqs(&reqs[1]), [0], "only the refused item is sent again");
    assert_eq!(seqs(&fake.records()), [0]);
}

/// A real answer: item `i` has status `statuses[i]`.
fn answer(statuses: &[u16]) -> String {
    let items: Vec<J> = statuses
        .iter()
        .map(|&s| {
            if (200..300).contains(&s) {
                serde_json::json!({"create": {"_index": "logs", "_id": "x", "result": "created", "status": s}})
            } else {
                serde_json::json!({"create": {"_index": "logs", "status": s,
                    "error": {"type": "some_exception", "reason": "refused"}}})
            }
        })
        .collect();
    serde_json::json!({"took": 7, "errors": statuses.iter().any(|s| !(200..300).contains(s)), "items": items})
        .to_string()
}

#[test]
fn every_prefix_of_an_answer_gives_one_result_per_record_and_never_invents_one() {
    let statuses = [201, 429, 400, 201, 503, 409, 201, 200];
    let full = answer(&statuses);
    let BulkAnswer::Items(whole) = parse_bulk_answer(full.as_bytes(), statuses.len()) else { panic!("{full}") };
    assert!(matches!(whole[..3], [BulkItem::Created, BulkItem::Retry(_), BulkItem::Refused(_)]), "{whole:?}");
    assert!(!whole.contains(&BulkItem::Unknown), "{whole:?}");
    for cut in 0..=full.len() {
        let got = parse_bulk_answer(&full.as_bytes()[..cut], statuses.len());
        match got {
            BulkAnswer::Items(items) => {
                assert_eq!(items.len(), statuses.len(), "cut at {cut}");
                for (a, b) in items.iter().zip(&whole) {
                    assert!(a == b || *a == BulkItem::Unknown, "cut at {cut}: {a:?} vs {b:?}");
                }
            }
            // Cut before `errors` was read: not a bulk answer as far as can be told.
            BulkAnswer::Unreadable(_) => assert!(cut < full.find("\"items\"").unwrap(), "cut at {cut}"),
            BulkAnswer::AllCreated => panic!("cut at {cut}: errors was true"),
        }
    }
    assert_eq!(parse_bulk_answer(answer(&[201, 201]).as_bytes(), 2), BulkAnswer::AllCreated);
}

#[test]
fn hostile_bodies_never_panic_and_always_answer_for_every_record() {
    let deep = format!("{{\"errors\":true,\"items\":[{}", "[".repeat(200_000));
    let deep_object = format!("{}{}", "{\"a\":".repeat(100_000), "1");
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        b"{\"errors\":\"yes\"}".to_vec(),
        b"{\"errors\":true}".to_vec(),
        b"{\"errors\":true,\"items\":[{\"create\":{\"status\":1e400}}]}".to_vec(),
        b"{\"errors\":true,\"items\":[{\"create\":{\"status\":-429}},{\"create\":{\"status\":\"429\"}},7,null]}"
            .to_vec(),
        b"{\"errors\":true,\"items\":[{\"create\":{\"status\":18446744073709551615}}]}".to_vec(),
        b"{\"errors\":true,\"items\":[{\"create\":{\"status\":429,\"error\":{\"reason\":\"\xff\xfe\"}}}]}".to_vec(),
        b"\xef\xbb\xbf{\"errors\":false}".to_vec(),
        b"{\"errors\":true,,,\"items\":[]}".to_vec(),
        deep.into_bytes(),
        deep_object.into_bytes(),
    ];
    for body in &bodies {
        for sent in [0, 1, 3] {
            let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
            match parse_bulk_answer(body, sent) {
                BulkAnswer::Items(items) => assert_eq!(items.len(), sent, "{shown}"),
                BulkAnswer::AllCreated => assert!(shown.contains("\"errors\":false"), "{shown}"),
                BulkAnswer::Unreadable(_) => {}
            }
        }
    }
    // `errors: true` without readable items: every record is sent again.
    assert_eq!(parse_bulk_answer(b"{\"errors\":true}", 2), BulkAnswer::Items(vec![BulkItem::Unknown; 2]));
    let odd = br#"{"errors":true,"items":[{"create":{"status":-429}},{"create":{"status":"429"}},7,null]}"#;
    assert_eq!(parse_bulk_answer(odd, 4), BulkAnswer::Items(vec![BulkItem::Unknown; 4]));
}
