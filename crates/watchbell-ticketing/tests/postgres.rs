//! The ticketing layer on PostgreSQL (`WATCHBELL_TEST_POSTGRES_URL`, or `.ci/postgres.sh`).
//! Every test uses its own table prefix: tests run in parallel and runs repeat on one database.

mod common;

use std::time::Duration;

use common::*;
use tracing_subscriber::prelude::*;
use watchbell_core::SinkOptions;
use watchbell_ticketing::{TicketQuery, TicketingLayer};

#[test]
fn logbook_ticketing_test_translated() {
    logbook_scenario(&postgres_url(), &unique_prefix("logbook"));
}

#[test]
fn query_api() {
    query_api_scenario(&postgres_url(), &unique_prefix("query"));
}

#[test]
fn eight_instances_write_with_exact_counts() {
    let url = postgres_url();
    let prefix = unique_prefix("conc");
    const PER_INSTANCE: u64 = 2_500;
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (url, prefix) = (url.clone(), prefix.clone());
            std::thread::spawn(move || {
                // Each thread is a service instance: its own layer, writer and connection.
                let guard = with_layer_guard(builder(&url, &prefix).retention(10).batch_records(200), || {
                    for i in 0..PER_INSTANCE {
                        ten_callsites(i);
                    }
                });
                let st = &guard.stats()[0];
                assert_eq!((st.delivered, st.dropped, st.failed), (PER_INSTANCE, 0, 0), "{st:?}");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("an instance failed");
    }
    assert_ten_exact(&url, &prefix, 8 * PER_INSTANCE, 10);
}

#[test]
fn an_unreachable_database_is_retried_without_losing_occurrences() {
    let url = postgres_url();
    let prefix = unique_prefix("outage");
    // A loopback port where nothing listens, then the real server: the writer's first
    // attempts fail to connect, and the batch lands once the database is reachable.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let real: std::net::SocketAddr = "127.0.0.1:54329".parse().unwrap();
    let proxy_url = url.replace(":54329/", &format!(":{port}/"));
    assert_ne!(proxy_url, url, "the test URL uses port 54329");
    let (layer, guard) = builder(&proxy_url, &prefix).timeout(Duration::from_secs(2)).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..30 {
            ten_callsites(i);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while guard.stats()[0].retried < 2 {
        assert!(std::time::Instant::now() < deadline, "{:?}", guard.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(guard.stats()[0].delivered, 0);
    // Now the database becomes reachable at that port: a tiny TCP forwarder.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(real) else { continue };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut c, mut s) = (client, server);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c, &mut s2);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s, &mut c2);
            });
        }
    });
    assert!(guard.shutdown(Duration::from_secs(30)).is_complete(), "{:?}", guard.stats());
    let st = &guard.stats()[0];
    assert_eq!((st.delivered, st.failed, st.dropped), (30, 0, 0), "{st:?}");
    let mut s = open(&url, &prefix);
    let tickets = s.list_tickets(&TicketQuery::default()).unwrap();
    assert_eq!(tickets.iter().map(|t| t.occurrence_count).sum::<u64>(), 30);
}

#[test]
fn the_password_stays_out_of_debug_and_errors() {
    let url = postgres_url();
    let password = url.split(':').nth(2).unwrap().split('@').next().unwrap().to_owned();
    let b = TicketingLayer::builder(&url);
    assert!(!format!("{b:?}").contains(&password));
    let wrong = url.replace(&password, "wrong-password");
    let e = watchbell_ticketing::TicketStore::open(&wrong).unwrap_err();
    assert!(!e.to_string().contains("wrong-password"), "{e}");
    let store = open(&url, &unique_prefix("dbg"));
    assert!(!format!("{store:?}").contains(&password));
}
