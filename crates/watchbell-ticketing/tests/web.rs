//! The web viewer over HTTP: a real server on 127.0.0.1:0 and a real HTTP client (reqwest), on
//! SQLite and on PostgreSQL (`WATCHBELL_TEST_POSTGRES_URL`, or `.ci/postgres.sh`).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use watchbell_ticketing::web::{serve, ServeOptions, Server};
use watchbell_ticketing::{Ticket, TicketQuery, TicketStore};

const XSS: &str = "<script>alert(1)</script>";

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn client() -> Client {
    Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(20)).build().unwrap()
}

/// Five tickets in two apps: a hostile message, field and target; a warning; a billing error;
/// two more errors (for paging and sorting).
fn populate(url: &str, prefix: &str) {
    with_layer(builder(url, prefix).app_id("shop"), || {
        for _ in 0..3 {
            tracing::error!(target: "shop::<em>db", user = "<b>mallory</b>", "<script>alert(1)</script>");
        }
        tracing::warn!(target: "shop::cache", "cache miss for key 42");
        for _ in 0..5 {
            tracing::error!(target: "shop::pay", "payment gateway timeout");
        }
        tracing::error!(target: "shopping", "not inside the shop target");
    });
    with_layer(builder(url, prefix).app_id("billing"), || {
        tracing::error!(target: "billing::card", "card declined");
    });
}

fn start(url: &str, prefix: &str, options: ServeOptions) -> Server {
    serve(open(url, prefix), options.listen(loopback())).expect("the viewer starts")
}

fn tickets(url: &str, prefix: &str) -> Vec<Ticket> {
    open(url, prefix).list_tickets(&TicketQuery::default()).unwrap()
}

fn find(all: &[Ticket], message: &str) -> Ticket {
    all.iter().find(|t| t.message == message).unwrap_or_else(|| panic!("no ticket {message:?}")).clone()
}

fn get(c: &Client, server: &Server, path: &str) -> Response {
    c.get(format!("{}{}", server.url(), path.trim_start_matches('/'))).send().unwrap()
}

fn text(r: Response) -> (StatusCode, String) {
    let s = r.status();
    (s, r.text().unwrap())
}

fn json(r: Response) -> serde_json::Value {
    serde_json::from_str(&r.text().unwrap()).expect("a JSON answer")
}

fn csrf(c: &Client, server: &Server) -> String {
    let v = json(get(c, server, "/api/session"));
    v["csrf"].as_str().unwrap().to_owned()
}

fn post(c: &Client, server: &Server, path: &str, form: &[(&str, &str)]) -> Response {
    c.post(format!("{}{}", server.url(), path.trim_start_matches('/'))).form(form).send().unwrap()
}

/// The messages of a list page's rows, in order.
fn rows(body: &str) -> Vec<String> {
    body.split("<tr id=\"t")
        .skip(1)
        .map(|row| {
            let a = row.split("<td class=\"message\"><a href=\"").nth(1).unwrap();
            let text = a.split_once("\">").unwrap().1;
            text.split("</a>").next().unwrap().to_owned()
        })
        .collect()
}

fn pages_scenario(url: &str, prefix: &str) {
    populate(url, prefix);
    let all = tickets(url, prefix);
    assert_eq!(all.len(), 5);
    let server = start(url, prefix, ServeOptions::default().page_size(2));
    let c = client();

    // The list: status, headers, escaping.
    let r = get(&c, &server, "/tickets");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-security-policy"],
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let (_, body) = text(get(&c, &server, "/tickets?sort=count&page=1"));
    assert!(!body.contains("<script"), "no script element on the page: {body}");
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the message shows as text");
    assert!(body.contains("shop::&lt;em&gt;db"), "the target is escaped");
    assert!(!body.contains("<em>"));
    assert!(body.contains("5 tickets") && body.contains("page 1 of 3"), "{body}");
    // Sorted by count: 5 timeouts, 3 scripts.
    assert_eq!(rows(&body), ["payment gateway timeout", "&lt;script&gt;alert(1)&lt;/script&gt;"]);
    assert!(body.contains("<svg class=\"spark\""), "each row has its hourly chart");
    assert!(body.contains("href=\"/tickets?sort=count&amp;page=2\""), "the next page keeps the sort: {body}");

    // Paging: three pages of 2, 2 and 1, no ticket twice.
    let mut seen = Vec::new();
    for page in 1..=3 {
        let (s, body) = text(get(&c, &server, &format!("/tickets?sort=count&page={page}")));
        assert_eq!(s, StatusCode::OK);
        seen.extend(rows(&body));
    }
    assert_eq!(seen.len(), 5);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5, "every ticket once over the pages: {seen:?}");
    let (_, body) = text(get(&c, &server, "/tickets?page=4"));
    assert!(rows(&body).is_empty() && body.contains("No tickets match."));
    assert_eq!(get(&c, &server, "/tickets?page=0").status(), StatusCode::BAD_REQUEST);
    assert_eq!(get(&c, &server, "/tickets?page=x").status(), StatusCode::BAD_REQUEST);

    // Sorts: first seen (newest first) and last seen.
    let (_, body) = text(get(&c, &server, "/tickets?sort=first&page=1"));
    assert_eq!(rows(&body), ["card declined", "not inside the shop target"]);
    let (_, body) = text(get(&c, &server, "/tickets?sort=last"));
    assert_eq!(rows(&body)[0], "card declined");
    assert_eq!(get(&c, &server, "/tickets?sort=nope").status(), StatusCode::BAD_REQUEST);

    // Each filter.
    let only = |q: &str| -> Vec<String> {
        let (s, body) = text(get(&c, &server, &format!("/tickets?{q}")));
        assert_eq!(s, StatusCode::OK, "{q}");
        let mut r = rows(&body);
        let (_, body2) = text(get(&c, &server, &format!("/tickets?{q}&page=2")));
        r.extend(rows(&body2));
        r.sort();
        r
    };
    assert_eq!(only("level=warn"), ["cache miss for key 42"]);
    assert_eq!(only("level=WARN"), ["cache miss for key 42"]);
    assert_eq!(only("app=billing"), ["card declined"]);
    assert_eq!(
        only("target=shop"),
        ["&lt;script&gt;alert(1)&lt;/script&gt;", "cache miss for key 42", "payment gateway timeout"],
        "the target and what is inside it, not `shopping`"
    );
    assert_eq!(only("target=shop%3A%3Apay"), ["payment gateway timeout"]);
    assert_eq!(only("q=GATEWAY"), ["payment gateway timeout"], "text search ignores case");
    assert_eq!(only("q=%25"), Vec::<String>::new(), "% is matched literally");
    assert_eq!(only("q=%3Cscript"), ["&lt;script&gt;alert(1)&lt;/script&gt;"]);
    assert_eq!(only("app=shop&level=error&q=timeout"), ["payment gateway timeout"]);
    assert_eq!(only("solved=solved"), Vec::<String>::new());
    assert_eq!(get(&c, &server, "/tickets?level=loud").status(), StatusCode::BAD_REQUEST);
    assert_eq!(get(&c, &server, "/tickets?range=14d").status(), StatusCode::OK);
    // A filter's value is escaped where the form shows it again.
    let (_, body) = text(get(&c, &server, "/tickets?q=%22%3E%3Cscript%3Ealert(2)%3C%2Fscript%3E"));
    assert!(!body.contains("<script") && body.contains("value=\"&quot;&gt;&lt;script&gt;alert(2)"), "{body}");

    // The ticket page: every field, escaped.
    let script = find(&all, XSS);
    let (s, body) = text(get(&c, &server, &format!("/tickets/{}", script.id)));
    assert_eq!(s, StatusCode::OK);
    assert!(!body.contains("<script") && !body.contains("<b>"), "{body}");
    assert!(body.contains("&lt;b&gt;mallory&lt;/b&gt;"), "the field shows as text: {body}");
    assert!(body.contains(&script.fingerprint));
    assert!(body.contains(&format!("<th>pid</th><td>{}</td>", std::process::id())), "the pid: {body}");
    assert_eq!(body.matches("<section class=\"occurrence\"").count(), 3, "its three stored occurrences");
    assert_eq!(get(&c, &server, "/tickets/999999").status(), StatusCode::NOT_FOUND);
    assert_eq!(get(&c, &server, "/tickets/abc").status(), StatusCode::NOT_FOUND);

    // The alert destinations notified of it.
    assert!(!body.contains("Alerted:"), "no section before any alert");
    let note = |destination: &str| watchbell_core::notified::Notified {
        app_id: "shop".into(),
        fingerprint: script.fingerprint.clone(),
        destination: destination.into(),
        time: std::time::SystemTime::now(),
    };
    open(url, prefix).record_notifications(&[note("slack"), note("slack"), note("<i>sms</i>")]).unwrap();
    let (_, body) = text(get(&c, &server, &format!("/tickets/{}", script.id)));
    assert!(body.contains("Alerted: "), "{body}");
    assert!(body.contains("<strong>slack</strong> (2×, last "), "{body}");
    assert!(body.contains("<strong>&lt;i&gt;sms&lt;/i&gt;</strong> (1×"), "{body}");
    let v = json(get(&c, &server, &format!("/api/tickets/{}", script.id)));
    assert_eq!(v["notifications"].as_array().unwrap().len(), 2, "{v}");

    // Alert links: /fp/{app}/{fingerprint}.
    let r = get(&c, &server, &format!("/fp/shop/{}", script.fingerprint.to_uppercase()));
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("/tickets/{}", script.id).as_str());
    assert_eq!(get(&c, &server, &format!("/fp/billing/{}", script.fingerprint)).status(), StatusCode::NOT_FOUND);
    assert_eq!(get(&c, &server, "/fp/shop/nothex").status(), StatusCode::NOT_FOUND);

    // Solving: refused without or with a wrong CSRF token, or from another origin.
    let token = csrf(&c, &server);
    let path = format!("/tickets/{}/solve", script.id);
    assert_eq!(post(&c, &server, &path, &[]).status(), StatusCode::FORBIDDEN);
    assert_eq!(post(&c, &server, &path, &[("csrf", "0000")]).status(), StatusCode::FORBIDDEN);
    let cross = c
        .post(format!("{}{}", server.url(), &path[1..]))
        .header("origin", "http://evil.example")
        .form(&[("csrf", token.as_str())])
        .send()
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert!(!open(url, prefix).get_ticket(script.id).unwrap().unwrap().solved, "nothing changed");
    // With the token it leaves the open list.
    let r = post(&c, &server, &path, &[("csrf", &token)]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("/tickets/{}", script.id).as_str());
    assert!(open(url, prefix).get_ticket(script.id).unwrap().unwrap().solved);
    assert!(!only("").contains(&"&lt;script&gt;alert(1)&lt;/script&gt;".to_owned()));
    assert_eq!(only("solved=solved"), ["&lt;script&gt;alert(1)&lt;/script&gt;"]);
    let (_, body) = text(get(&c, &server, &format!("/tickets/{}", script.id)));
    assert!(body.contains("id=\"reopen\""), "a solved ticket offers reopen");
    let r = post(&c, &server, &format!("/tickets/{}/reopen", script.id), &[("csrf", &token)]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(!open(url, prefix).get_ticket(script.id).unwrap().unwrap().solved);

    // Deleting asks to confirm.
    let card = find(&all, "card declined");
    let (s, body) = text(get(&c, &server, &format!("/tickets/{}/delete", card.id)));
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("id=\"confirm-delete\""));
    let path = format!("/tickets/{}/delete", card.id);
    assert_eq!(post(&c, &server, &path, &[("csrf", &token)]).status(), StatusCode::BAD_REQUEST);
    assert_eq!(post(&c, &server, &path, &[("confirm", "yes")]).status(), StatusCode::FORBIDDEN);
    assert!(open(url, prefix).get_ticket(card.id).unwrap().is_some());
    let r = post(&c, &server, &path, &[("csrf", &token), ("confirm", "yes")]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(open(url, prefix).get_ticket(card.id).unwrap().is_none());
    assert_eq!(get(&c, &server, &format!("/tickets/{}", card.id)).status(), StatusCode::NOT_FOUND);
    assert_eq!(get(&c, &server, &format!("/fp/billing/{}", card.fingerprint)).status(), StatusCode::NOT_FOUND);

    // The stylesheet is served from the same origin.
    let r = get(&c, &server, "/style.css");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
    assert!(server.shutdown(Duration::from_secs(5)), "the server stops within its grace period");
}

fn api_scenario(url: &str, prefix: &str) {
    populate(url, prefix);
    let all = tickets(url, prefix);
    let server = start(url, prefix, ServeOptions::default());
    let c = client();
    let v = json(get(&c, &server, "/api/tickets?app=shop&sort=count"));
    assert_eq!(v["total"], 4);
    let first = &v["tickets"][0];
    assert_eq!(first["message"], "payment gateway timeout");
    assert_eq!(first["occurrence_count"], 5);
    assert_eq!(first["level"], "ERROR");
    let hourly = first["hourly"].as_array().unwrap();
    assert_eq!(hourly.len(), 24);
    assert_eq!(hourly.iter().map(|h| h.as_u64().unwrap()).sum::<u64>(), 5, "its five occurrences in the last day");
    assert_eq!(hourly[23], 5, "in the current hour");
    let v = json(get(&c, &server, "/api/tickets?q=%3Cscript"));
    assert_eq!(v["tickets"][0]["message"], XSS, "JSON carries the text as it is");
    assert_eq!(get(&c, &server, "/api/tickets?sort=sideways").status(), StatusCode::BAD_REQUEST);

    let script = find(&all, XSS);
    let v = json(get(&c, &server, &format!("/api/tickets/{}", script.id)));
    assert_eq!(v["ticket"]["id"], script.id);
    assert_eq!(v["occurrences"].as_array().unwrap().len(), 3);
    assert_eq!(v["occurrences"][0]["data"]["fields"]["user"], "<b>mallory</b>");
    let v = json(get(&c, &server, &format!("/api/fp/shop/{}", script.fingerprint)));
    assert_eq!(v["ticket"]["id"], script.id);
    assert_eq!(get(&c, &server, "/api/tickets/424242").status(), StatusCode::NOT_FOUND);

    // Changes need the CSRF token (a header) without a bearer token.
    let path = format!("{}api/tickets/{}/solve", server.url(), script.id);
    assert_eq!(c.post(&path).send().unwrap().status(), StatusCode::FORBIDDEN);
    let r = c.post(&path).header("x-csrf-token", csrf(&c, &server)).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(open(url, prefix).get_ticket(script.id).unwrap().unwrap().solved);
    let v = json(get(&c, &server, "/api/tickets?solved=solved"));
    assert_eq!(v["total"], 1);
}

fn read_only_scenario(url: &str, prefix: &str) {
    populate(url, prefix);
    let all = tickets(url, prefix);
    let server = start(url, prefix, ServeOptions::default().read_only(true));
    let c = client();
    let t = find(&all, "payment gateway timeout");
    let (s, body) = text(get(&c, &server, &format!("/tickets/{}", t.id)));
    assert_eq!(s, StatusCode::OK);
    assert!(!body.contains("id=\"solve\"") && body.contains("Read-only viewer."));
    let token = csrf(&c, &server);
    for action in ["solve", "delete"] {
        let r = post(&c, &server, &format!("/tickets/{}/{action}", t.id), &[("csrf", &token), ("confirm", "yes")]);
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{action}");
        let r = c
            .post(format!("{}api/tickets/{}/{action}", server.url(), t.id))
            .header("x-csrf-token", &token)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "api {action}");
    }
    assert_eq!(get(&c, &server, &format!("/tickets/{}/delete", t.id)).status(), StatusCode::FORBIDDEN);
    let after = open(url, prefix).get_ticket(t.id).unwrap().unwrap();
    assert!(!after.solved, "nothing changed");
}

fn token_scenario(url: &str, prefix: &str) {
    populate(url, prefix);
    let server = start(url, prefix, ServeOptions::default().token("s3cret-token"));
    let c = client();
    // Pages send a browser to the login form; the API answers 401.
    let r = get(&c, &server, "/tickets?level=warn");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=%2Ftickets%3Flevel%3Dwarn");
    assert_eq!(get(&c, &server, "/api/tickets").status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get(&c, &server, "/api/session").status(), StatusCode::UNAUTHORIZED, "no CSRF token either");
    let wrong = c.get(format!("{}api/tickets", server.url())).bearer_auth("s3cret-tokeN").send().unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong = c.get(format!("{}tickets", server.url())).header("cookie", "watchbell_tickets=00").send().unwrap();
    assert_eq!(wrong.status(), StatusCode::SEE_OTHER);
    let right = c.get(format!("{}api/tickets", server.url())).bearer_auth("s3cret-token").send().unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    // A bearer token is enough for a change (no CSRF token).
    let t = find(&tickets(url, prefix), "cache miss for key 42");
    let r = c.post(format!("{}api/tickets/{}/solve", server.url(), t.id)).bearer_auth("s3cret-token").send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(open(url, prefix).get_ticket(t.id).unwrap().unwrap().solved);

    // The login form: a wrong token, then the right one sets the cookie.
    let (s, body) = text(get(&c, &server, "/login?next=/tickets"));
    assert_eq!(s, StatusCode::OK);
    let csrf = body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let r = post(&c, &server, "/login", &[("csrf", &csrf), ("token", "guess"), ("next", "/tickets")]);
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("set-cookie").is_none());
    let r = post(&c, &server, "/login", &[("token", "s3cret-token"), ("next", "/tickets")]);
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "the login form needs its CSRF token too");
    let r = post(&c, &server, "/login", &[("csrf", &csrf), ("token", "s3cret-token"), ("next", "//evil.example/")]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/tickets", "no redirect to another host");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap();
    let r = c.get(format!("{}tickets", server.url())).header("cookie", pair).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().unwrap().contains("payment gateway timeout"));
}

#[test]
fn sqlite_pages_filters_paging_escaping_csrf() {
    pages_scenario(&sqlite_url("web-pages"), "watchbell_");
}

#[test]
fn sqlite_json_api() {
    api_scenario(&sqlite_url("web-api"), "watchbell_");
}

#[test]
fn sqlite_read_only_refuses_changes() {
    read_only_scenario(&sqlite_url("web-ro"), "watchbell_");
}

#[test]
fn sqlite_token_required_and_login() {
    token_scenario(&sqlite_url("web-token"), "watchbell_");
}

#[test]
fn postgres_pages_filters_paging_escaping_csrf() {
    pages_scenario(&postgres_url(), &unique_prefix("web_pages"));
}

#[test]
fn postgres_json_api() {
    api_scenario(&postgres_url(), &unique_prefix("web_api"));
}

#[test]
fn postgres_read_only_refuses_changes() {
    read_only_scenario(&postgres_url(), &unique_prefix("web_ro"));
}

#[test]
fn postgres_token_required_and_login() {
    token_scenario(&postgres_url(), &unique_prefix("web_token"));
}

#[test]
fn a_non_loopback_address_needs_a_token() {
    let url = sqlite_url("web-open");
    let err = serve(open(&url, "watchbell_"), ServeOptions::default().listen(SocketAddr::from(([0, 0, 0, 0], 0))))
        .expect_err("refused without a token");
    assert!(err.to_string().contains("without a token"), "{err}");
    let server =
        serve(open(&url, "watchbell_"), ServeOptions::default().listen(SocketAddr::from(([0, 0, 0, 0], 0))).token("t"))
            .expect("allowed with a token");
    let c = client();
    let port = server.local_addr().port();
    let r = c.get(format!("http://127.0.0.1:{port}/api/tickets")).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn the_cli_serves_prints_its_url_and_refuses_an_open_address() {
    let url = sqlite_url("web-cli");
    populate(&url, "watchbell_");
    let bin = env!("CARGO_BIN_EXE_watchbell-tickets");
    let out = std::process::Command::new(bin)
        .args(["--db", &url, "serve", "--listen", "0.0.0.0:0"])
        .env_remove("WATCHBELL_TICKETS_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a token"));

    let mut child = std::process::Command::new(bin)
        .args(["--db", &url, "serve", "--listen", "127.0.0.1:0", "--read-only"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let base = line.split_whitespace().find(|w| w.starts_with("http://")).expect("the URL is printed").to_owned();
    let r = client().get(format!("{base}tickets")).send().unwrap();
    let status = r.status();
    let body = r.text().unwrap();
    child.kill().ok();
    child.wait().ok();
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("payment gateway timeout"));
}

#[test]
fn list_page_html_renders_without_a_server() {
    let url = sqlite_url("web-html");
    populate(&url, "watchbell_");
    let mut store: TicketStore = open(&url, "watchbell_");
    let html = watchbell_ticketing::web::list_page_html(&mut store, "level=warn", 50).unwrap();
    assert!(html.contains("cache miss for key 42") && !html.contains("payment gateway timeout"));
    assert!(watchbell_ticketing::web::list_page_html(&mut store, "sort=bad", 50).is_err());
}
