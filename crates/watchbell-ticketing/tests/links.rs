//! Ticket links and the notifications table: the link an alert carries names the ticket the
//! layer stored (with a salt, with a fingerprint field), and the alert sinks' journal becomes
//! the ticket's list of notified destinations, on SQLite and on PostgreSQL.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::*;
use watchbell_core::notified::Notified;
use watchbell_core::{Level, Record, TicketLink, Value};
use watchbell_ticketing::{Notification, TicketStore, TicketingBuilder};

const BASE: &str = "https://tickets.example.com/viewer/";

fn record(level: Level, target: &str, file: &str, line: u32, message: &str) -> Record {
    let mut r = Record::new(level, target.to_owned(), message);
    r.file = Some(file.to_owned().into());
    r.line = Some(line);
    r
}

/// Records of three tickets: two callsites, and two other callsites sharing one user fingerprint.
fn records() -> Vec<Record> {
    let a = record(Level::ERROR, "shop::pay", "src/pay.rs", 42, "declined");
    let b = record(Level::WARN, "shop::db", "src/db.rs", 7, "slow");
    let mut c = record(Level::ERROR, "shop::gw", "src/gw.rs", 1, "gateway down");
    c.fields.set("fp", Value::Str("gateway".into()));
    let mut d = record(Level::ERROR, "shop::gw2", "src/gw2.rs", 99, "gateway down again");
    d.fields.set("fp", Value::Str("gateway".into()));
    vec![a.clone(), a, b, c, d]
}

/// Writes `records` through the layer built from `b` and returns the link that builder gives.
fn write(b: TicketingBuilder, records: &[Record]) -> TicketLink {
    let link = b.ticket_link(BASE).expect("a valid base URL");
    let (handler, guard) = b.build_handler().expect("a valid configuration");
    for r in records {
        handler.handle(r.clone());
    }
    assert!(guard.shutdown(Duration::from_secs(30)).is_complete(), "{:?}", guard.stats());
    link
}

fn links_name_the_stored_tickets(url: &str, prefix: &str) {
    let b = builder(url, prefix).app_id("shop api").hash_salt("deploy-7").fingerprint_field(Some("fp"));
    let rs = records();
    let link = write(b, &rs);
    let mut store = open(url, prefix);
    let tickets = store.list_tickets(&Default::default()).unwrap();
    assert_eq!(tickets.len(), 3, "{tickets:?}");
    for r in &rs {
        let fp = link.fingerprint(r);
        let t = store.ticket_by_fingerprint("shop api", &fp).unwrap().unwrap_or_else(|| panic!("no ticket {fp}"));
        assert_eq!(link.url(r), format!("https://tickets.example.com/viewer/fp/shop%20api/{}", t.fingerprint));
    }
    // The salt and the field matter: a link without them names tickets that do not exist.
    let plain = TicketLink::new(BASE, "shop api").unwrap();
    for r in &rs {
        assert!(store.ticket_by_fingerprint("shop api", &plain.fingerprint(r)).unwrap().is_none());
    }
    // Both user-fingerprinted callsites are one ticket.
    assert_eq!(link.fingerprint(&rs[3]), link.fingerprint(&rs[4]));
}

#[test]
fn sqlite_links_name_the_stored_tickets() {
    links_name_the_stored_tickets(&sqlite_url("links"), "watchbell_");
}

#[test]
fn postgres_links_name_the_stored_tickets() {
    links_name_the_stored_tickets(&postgres_url(), &unique_prefix("links"));
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn journal_fills_the_notifications_table(url: &str, prefix: &str, app: &str) {
    // The journal is one per process: each test has its own app id.
    let b = builder(url, prefix).app_id(app);
    let link = b.ticket_link(BASE).unwrap();
    let (handler, guard) = b.build_handler().unwrap();
    let rs = records();
    for r in &rs {
        handler.handle(r.clone());
    }
    assert!(guard.flush(Duration::from_secs(30)).is_complete());
    // What alert sinks report after their deliveries: the first record twice to Slack, once
    // by SMS; and a delivery of another app (another ticketing layer's business).
    link.notified("slack", [&rs[0]]);
    link.notified("slack", [&rs[1]]);
    link.notified("sms:twilio", [&rs[0]]);
    TicketLink::new(BASE, "other-app").unwrap().notified("mail", [&rs[0]]);
    let mut store = open(url, prefix);
    let fp = link.fingerprint(&rs[0]);
    let ticket = store.ticket_by_fingerprint(app, &fp).unwrap().expect("the ticket");
    // The writer drains the journal on its own (no new batch needed).
    let got = wait_for("the notifications", || {
        let n = store.notifications(ticket.id).unwrap();
        (n.iter().map(|n| n.count).sum::<u64>() >= 3).then_some(n)
    });
    let mut got: Vec<(String, u64)> = got.iter().map(|n| (n.destination.clone(), n.count)).collect();
    got.sort();
    assert_eq!(got, [("slack".to_owned(), 2), ("sms:twilio".to_owned(), 1)]);
    let other = store.ticket_by_fingerprint(app, &link.fingerprint(&rs[2])).unwrap().unwrap();
    assert!(store.notifications(other.id).unwrap().is_empty());
    assert!(guard.shutdown(Duration::from_secs(30)).is_complete());

    // Counting up, times kept, direct writes (a relay's), and a delete taking them along.
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let note = |dest: &str, t: SystemTime| Notified {
        app_id: app.into(),
        fingerprint: fp.clone(),
        destination: dest.into(),
        time: t,
    };
    store.record_notifications(&[note("telegram", t0 + Duration::from_secs(5)), note("telegram", t0)]).unwrap();
    store.record_notifications(&[note("telegram", t0 + Duration::from_secs(9))]).unwrap();
    let n = store.notifications(ticket.id).unwrap();
    let tg = n.iter().find(|n| n.destination == "telegram").expect("telegram");
    assert_eq!((tg.count, tg.first_time, tg.last_time), (3, t0, t0 + Duration::from_secs(9)));
    assert_eq!((tg.app_id.as_str(), tg.fingerprint.as_str()), (app, fp.as_str()));
    assert!(store.delete(ticket.id).unwrap());
    let left: Vec<Notification> = Vec::new();
    assert_eq!(store.notifications(ticket.id).unwrap(), left);
    // A ticket made again later starts with nobody notified.
    let (handler, guard) = builder(url, prefix).app_id(app).build_handler().unwrap();
    handler.handle(rs[0].clone());
    assert!(guard.shutdown(Duration::from_secs(30)).is_complete());
    let again = store.ticket_by_fingerprint(app, &fp).unwrap().unwrap();
    assert_ne!(again.id, ticket.id);
    assert!(store.notifications(again.id).unwrap().is_empty());
}

#[test]
fn sqlite_journal_fills_the_notifications_table() {
    journal_fills_the_notifications_table(&sqlite_url("notified"), "watchbell_", "shop-sqlite");
}

#[test]
fn postgres_journal_fills_the_notifications_table() {
    journal_fills_the_notifications_table(&postgres_url(), &unique_prefix("notified"), "shop-pg");
}

#[test]
fn a_database_of_the_previous_schema_gets_the_notifications_table() {
    let url = sqlite_url("schema");
    let rs = records();
    write(builder(&url, "watchbell_").app_id("old"), &rs[..1]);
    // Back to the schema before the notifications table (version 1), with a ticket in it.
    let path = url.strip_prefix("sqlite://").unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("DROP TABLE watchbell_notifications; DELETE FROM watchbell_schema_version WHERE version = 2;")
        .unwrap();
    drop(conn);
    let mut store = TicketStore::open(&url).unwrap();
    assert_eq!(store.schema_version().unwrap(), 2);
    let t = store.list_tickets(&Default::default()).unwrap().remove(0);
    assert!(store.notifications(t.id).unwrap().is_empty());
    let fp = t.fingerprint.clone();
    let note = Notified { app_id: "old".into(), fingerprint: fp, destination: "slack".into(), time: SystemTime::now() };
    store.record_notifications(&[note]).unwrap();
    assert_eq!(store.notifications(t.id).unwrap().len(), 1);
}

/// A schema managed elsewhere without the notifications table: tickets are written as before;
/// the notifications are lost (reported once), never an error of the ticket writes.
#[test]
fn a_schema_without_the_notifications_table_still_takes_tickets() {
    let url = sqlite_url("external");
    drop(open(&url, "watchbell_")); // the schema, then without one table

    let path = url.strip_prefix("sqlite://").unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("DROP TABLE watchbell_notifications").unwrap();
    drop(conn);
    let b = builder(&url, "watchbell_").app_id("external").auto_create_tables(false);
    let link = b.ticket_link(BASE).unwrap();
    let (handler, guard) = b.build_handler().unwrap();
    let rs = records();
    handler.handle(rs[0].clone());
    assert!(guard.flush(Duration::from_secs(30)).is_complete());
    link.notified("slack", [&rs[0]]);
    handler.handle(rs[2].clone());
    assert!(guard.shutdown(Duration::from_secs(30)).is_complete());
    let st = &guard.stats()[0];
    assert_eq!((st.delivered, st.failed), (2, 0), "{st:?}");
    let mut store = TicketStore::connect_with(
        &watchbell_ticketing::Target::parse(&url).unwrap(),
        "watchbell_",
        Duration::from_secs(5),
        false,
    )
    .unwrap();
    assert_eq!(store.list_tickets(&Default::default()).unwrap().len(), 2);
    assert!(store.notifications(1).is_err());
}
