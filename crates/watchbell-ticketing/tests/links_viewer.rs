//! The link an alert carries, followed in the viewer: it answers with the ticket's page, and
//! that page lists the destinations that were notified (feature `serve`).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use watchbell_core::{Level, Record, TicketLink};
use watchbell_ticketing::web::{serve, ServeOptions};

fn follow_a_link(url: &str, prefix: &str, app: &str) {
    let b = builder(url, prefix).app_id(app).hash_salt("s");
    let (handler, guard) = b.build_handler().unwrap();
    let mut r = Record::new(Level::ERROR, "shop::pay", "card <declined> & \"refused\"");
    r.file = Some("src/pay.rs".into());
    r.line = Some(42);
    handler.handle(r.clone());
    assert!(guard.flush(Duration::from_secs(30)).is_complete());

    let server = serve(open(url, prefix), ServeOptions::default().listen(SocketAddr::from(([127, 0, 0, 1], 0))))
        .expect("the viewer starts");
    // The base is the viewer's own address; the link must come from the layer's builder.
    let link: TicketLink = builder(url, prefix).app_id(app).hash_salt("s").ticket_link(server.url()).unwrap();
    link.notified("sms:twilio", [&r]);
    let mut store = open(url, prefix);
    let ticket = store.ticket_by_fingerprint(app, &link.fingerprint(&r)).unwrap().expect("the ticket");
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.notifications(ticket.id).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the notification was not written");
        std::thread::sleep(Duration::from_millis(50));
    }

    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let resp = client.get(link.url(&r)).send().unwrap();
    assert_eq!(resp.status().as_u16(), 303, "{}", link.url(&r));
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.ends_with(&format!("/tickets/{}", ticket.id)), "{location}");
    let page = client.get(format!("{}{}", server.url(), location.trim_start_matches('/'))).send().unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().unwrap();
    assert!(html.contains("<strong>sms:twilio</strong>"), "{html}");
    assert!(html.contains("card &lt;declined&gt;"), "the ticket's page");
    assert!(guard.shutdown(Duration::from_secs(30)).is_complete());
    assert!(server.shutdown(Duration::from_secs(10)));
}

#[test]
fn sqlite_link_opens_the_ticket_page_listing_the_notified() {
    follow_a_link(&sqlite_url("viewer-link"), "watchbell_", "shop \"<&>\" app/1");
}

#[test]
fn postgres_link_opens_the_ticket_page_listing_the_notified() {
    follow_a_link(&postgres_url(), &unique_prefix("viewerlink"), "shop pg/1");
}
