//! The web viewer in a real browser: headless Chromium (Debian's package, installed by
//! `.ci/chromium.sh` when absent; `WATCHBELL_TEST_CHROMIUM` names another binary) driven over
//! the DevTools protocol on a websocket (tungstenite). The test fails, never skips, when no
//! browser can be started.
//!
//! Flow: the list loads, a ticket opens on a mouse click, "Mark solved" (a mouse click, a real
//! form POST with its CSRF token) solves it, and it leaves the open list for the solved one; a
//! `<script>alert(1)</script>` message shows as text and opens no dialog. Screenshots of both
//! pages are written to `target/screenshots/`.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};
use watchbell_ticketing::web::{serve, ServeOptions};
use watchbell_ticketing::TicketQuery;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Chromium binary: `WATCHBELL_TEST_CHROMIUM`, or what `.ci/chromium.sh` finds or installs.
fn chromium() -> String {
    watchbell_test::ci::from_env_or_script("WATCHBELL_TEST_CHROMIUM", "chromium.sh")
        .unwrap_or_else(|e| panic!("no Chromium for the browser test: {e}"))
}

/// A headless Chromium with a fresh profile; killed when dropped.
struct Browser {
    child: Child,
    port: u16,
}

impl Browser {
    fn start() -> Browser {
        let profile = temp_dir("chromium-profile");
        let mut child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1280,900",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("Chromium starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut port = None;
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap_or_default();
            if let Some(rest) = line.split("DevTools listening on ws://").nth(1) {
                port = rest.split('/').next().and_then(|hp| hp.rsplit(':').next()).and_then(|p| p.parse().ok());
                break;
            }
            seen.push(line);
        }
        // Keeps draining Chromium's stderr so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let Some(port) = port else {
            let _ = child.kill();
            panic!("Chromium did not open its DevTools port: {seen:?}");
        };
        Browser { child, port }
    }

    /// The first page target's DevTools connection.
    fn page(&self) -> Cdp {
        let list: Value = serde_json::from_str(
            &reqwest::blocking::get(format!("http://127.0.0.1:{}/json/list", self.port)).unwrap().text().unwrap(),
        )
        .unwrap();
        let ws_url = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], self.port))).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let (ws, _) = tungstenite::client(ws_url.as_str(), stream).expect("the DevTools websocket opens");
        let mut cdp = Cdp { ws, next: 0, pending: Vec::new(), all: Vec::new() };
        cdp.call("Page.enable", json!({}));
        cdp.call("Runtime.enable", json!({}));
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
        );
        cdp
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DevTools protocol session on one page.
struct Cdp {
    ws: WebSocket<TcpStream>,
    next: u64,
    /// Events not yet waited for.
    pending: Vec<Value>,
    /// Every event's method, in order.
    all: Vec<String>,
}

impl Cdp {
    fn read(&mut self) -> Value {
        loop {
            match self.ws.read().expect("a DevTools message") {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if let Some(m) = v["method"].as_str() {
                        self.all.push(m.to_owned());
                    }
                    return v;
                }
                Message::Close(_) => panic!("the DevTools connection closed"),
                _ => {}
            }
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        self.ws.send(Message::text(json!({ "id": id, "method": method, "params": params }).to_string())).unwrap();
        loop {
            let v = self.read();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
            if v.get("method").is_some() {
                self.pending.push(v);
            }
        }
    }

    fn forget(&mut self, method: &str) {
        self.pending.retain(|e| e["method"] != method);
    }

    fn wait_event(&mut self, method: &str) -> Value {
        if let Some(i) = self.pending.iter().position(|e| e["method"] == method) {
            return self.pending.remove(i);
        }
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < end, "no {method} within 30 s");
            let v = self.read();
            if v["method"] == method {
                return v;
            }
            if v.get("method").is_some() {
                self.pending.push(v);
            }
        }
    }

    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true }));
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    fn navigate(&mut self, url: &str) {
        self.forget("Page.loadEventFired");
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_event("Page.loadEventFired");
    }

    /// Clicks the middle of the element `selector` with the mouse and waits for the page that
    /// follows to load.
    fn click_and_load(&mut self, selector: &str) {
        let rect = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return null; e.scrollIntoView(); \
             const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()",
            sel = serde_json::to_string(selector).unwrap()
        ));
        let (x, y) =
            (rect[0].as_f64().unwrap_or_else(|| panic!("no {selector} on the page")), rect[1].as_f64().unwrap());
        self.forget("Page.loadEventFired");
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            );
        }
        self.wait_event("Page.loadEventFired");
    }

    fn screenshot(&mut self, name: &str) -> PathBuf {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = workspace().join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    fn path(&mut self) -> String {
        self.eval("location.pathname + location.search").as_str().unwrap().to_owned()
    }

    fn text(&mut self) -> String {
        self.eval("document.body.innerText").as_str().unwrap().to_owned()
    }
}

fn populate(url: &str) {
    with_layer(builder(url, "watchbell_").app_id("shop"), || {
        let span = tracing::error_span!("checkout", order_id = 4711_u64, customer = "c-204");
        let _e = span.enter();
        for attempt in 0..4_u32 {
            let err = std::io::Error::other("upstream closed the connection");
            tracing::error!(target: "shop::pay", attempt, gateway = "stripe", error = &err as &dyn std::error::Error, "payment gateway timeout");
        }
        tracing::error!(target: "shop::render", "<script>alert(1)</script>");
        tracing::warn!(target: "shop::cache", key = "user:42", "cache miss, recomputing");
    });
    with_layer(builder(url, "watchbell_").app_id("billing"), || {
        tracing::error!(target: "billing::card", card = "visa", "card declined by issuer");
    });
}

#[test]
fn list_open_solve_and_an_inert_script_in_headless_chromium() {
    let url = sqlite_url("browser");
    populate(&url);
    let server = serve(open(&url, "watchbell_"), ServeOptions::default().listen(SocketAddr::from(([127, 0, 0, 1], 0))))
        .expect("the viewer starts");
    let base = server.url().trim_end_matches('/').to_owned();
    let browser = Browser::start();
    let mut page = browser.page();

    // The list.
    page.navigate(&format!("{base}/tickets"));
    let text = page.text();
    assert!(text.contains("payment gateway timeout") && text.contains("card declined by issuer"), "{text}");
    assert!(text.contains("<script>alert(1)</script>"), "the hostile message shows as text");
    assert_eq!(page.eval("document.scripts.length"), json!(0), "no script element on the page");
    assert_eq!(
        page.eval("getComputedStyle(document.querySelector('header.top')).backgroundColor"),
        json!("rgb(29, 35, 48)"),
        "the stylesheet is allowed by the CSP and applied"
    );
    page.screenshot("tickets-list.png");

    // Open the ticket with a click on its message.
    let pay = open(&url, "watchbell_")
        .list_tickets(&TicketQuery::default())
        .unwrap()
        .into_iter()
        .find(|t| t.message == "payment gateway timeout")
        .unwrap();
    page.click_and_load(&format!("td.message a[href=\"/tickets/{}\"]", pay.id));
    assert_eq!(page.path(), format!("/tickets/{}", pay.id));
    let text = page.text();
    assert!(
        text.contains("upstream closed the connection") && text.contains("checkout") && text.contains("c-204"),
        "{text}"
    );
    // A taller window for the ticket page: its fields, spans and error chain.
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1280, "height": 1500, "deviceScaleFactor": 1, "mobile": false }),
    );
    page.screenshot("ticket-page.png");
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
    );

    // Solve it with a click: it leaves the open list and is in the solved one.
    page.click_and_load("#solve");
    assert_eq!(page.path(), format!("/tickets/{}", pay.id));
    assert!(page.text().contains("Reopen"));
    assert!(open(&url, "watchbell_").get_ticket(pay.id).unwrap().unwrap().solved);
    page.navigate(&format!("{base}/tickets"));
    assert!(!page.text().contains("payment gateway timeout"), "solved tickets leave the open list");
    page.navigate(&format!("{base}/tickets?solved=solved"));
    assert!(page.text().contains("payment gateway timeout"));

    // The hostile message's own page: text, no script, no dialog.
    let xss = open(&url, "watchbell_")
        .list_tickets(&TicketQuery::default())
        .unwrap()
        .into_iter()
        .find(|t| t.message.contains("<script>"))
        .unwrap();
    page.navigate(&format!("{base}/tickets/{}", xss.id));
    assert!(page.text().contains("<script>alert(1)</script>"));
    assert_eq!(page.eval("document.scripts.length"), json!(0));
    // Let a late dialog show itself before the check.
    std::thread::sleep(Duration::from_millis(300));
    page.call("Runtime.evaluate", json!({ "expression": "1" }));
    assert!(
        !page.all.iter().any(|m| m == "Page.javascriptDialogOpening"),
        "a JavaScript dialog opened: {:?}",
        page.all
    );
    assert!(page.all.iter().filter(|m| *m == "Page.loadEventFired").count() >= 6, "the pages loaded: {:?}", page.all);
    drop(browser);
    assert!(server.shutdown(Duration::from_secs(5)));
}
