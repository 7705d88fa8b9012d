//! The web viewer (feature `serve`): a list of tickets and a page per ticket over a
//! [`TicketStore`], served by [`serve`] and by `watchbell-tickets serve`.
//!
//! ```no_run
//! use watchbell_ticketing::web::{serve, ServeOptions};
//! use watchbell_ticketing::TicketStore;
//! let store = TicketStore::open("sqlite:///var/lib/app/tickets.db").unwrap();
//! let server = serve(store, ServeOptions::default()).unwrap();
//! println!("tickets at {}", server.url());
//! // … later:
//! server.shutdown(std::time::Duration::from_secs(2));
//! ```
//!
//! # Pages
//!
//! - `GET /tickets` — the list: level, message, location, count, first and last seen (relative,
//!   with the absolute time beside it), a bar chart of stored occurrences per hour over the last
//!   24 hours (`range=24h`, the default) or 14 days (`range=14d`), and the solved state. Filters
//!   are URL parameters, so every view can be bookmarked: `level`, `app`, `target` (the target or
//!   anything inside it), `q` (text in message, target or location), `solved` (`open`, the
//!   default, `solved` or `all`), `sort` (`last`, `count`, `first`) and `page` (from 1).
//! - `GET /tickets/{id}` — one ticket and its newest occurrences with every field, span (with its
//!   fields), the thread, process and origin, paged with `page`; the alert destinations that
//!   were notified of it ("Alerted: slack (3×, last 2 min ago)"); buttons to solve or reopen it and
//!   a link to delete it, which asks to confirm on a page of its own.
//! - `GET /fp/{app_id}/{fingerprint}` — answers `303 See Other` to the ticket of that fingerprint
//!   in that app (the address alerts link to), or a 404 page.
//! - `GET /api/tickets`, `GET /api/tickets/{id}`, `GET /api/fp/{app_id}/{fingerprint}`,
//!   `GET /api/session` and `POST /api/tickets/{id}/{solve|reopen|delete}`: the same as JSON.
//!
//! The list counts matching tickets up to 10,000 and then says "more than 10000 tickets" (the
//! API: `"total_is_lower_bound": true`): an exact count is a scan of the whole table on every
//! view. The charts count the occurrences the store keeps (its retention), drawn as inline SVG on the
//! server: the pages need no JavaScript and load nothing from another origin.
//!
//! # Safety
//!
//! - **Loopback by default.** [`ServeOptions::default`] listens on `127.0.0.1:8080`. Any other
//!   address needs a token: [`serve`] refuses to start without one.
//! - **Token.** With a token every page and API call (but the login page and the stylesheet)
//!   needs it, either as `Authorization: Bearer TOKEN` (scripts) or as the cookie the login form
//!   sets (browsers: `HttpOnly; SameSite=Strict`). Tokens are compared in constant time.
//! - **CSRF.** Every `POST` carries a CSRF token: a random value made once per process (32 bytes
//!   from the operating system), embedded in each form and returned by `GET /api/session` —
//!   a page of another origin can neither read it nor guess it. Scripts that authenticate with an
//!   `Authorization: Bearer` header need none (a browser never attaches that header to a
//!   cross-site request by itself). A `POST` whose `Origin` header names another origin is refused
//!   as well.
//! - **Read-only.** With [`ServeOptions::read_only`] the buttons are gone and every `POST` but
//!   the login answers `403`.
//! - **Escaping and headers.** Every value is HTML-escaped by the templates (maud); a message
//!   `<script>alert(1)</script>` shows as that text. Every answer carries
//!   `Content-Security-Policy: default-src 'none'; style-src 'self'; img-src 'self' data:;
//!   form-action 'self'; frame-ancestors 'none'`, `X-Content-Type-Options: nosniff`,
//!   `Referrer-Policy: same-origin` (with `no-referrer` a browser would send `Origin: null`,
//!   which the check above refuses) and `X-Frame-Options: DENY`; the stylesheet is served from
//!   `/style.css`. Values that look like secrets (see [`watchbell_core::secret::redact_text`]) are
//!   redacted before they are shown.
//!
//! # Threads
//!
//! The server runs on a thread of its own with its own single-threaded tokio runtime (nothing
//! runs on the application's runtime). The store is one connection behind a mutex; each database
//! call runs on that runtime's blocking pool, so a slow query does not stall the other requests'
//! I/O.

use std::fmt::Write as _;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use watchbell_core::secret::{redact_text, Secret};
use watchbell_core::time::rfc3339;
use watchbell_core::Level;

use crate::store::{HourCount, Order, StoreError, Ticket, TicketQuery, TicketSearch, TicketStore};

/// The name of the cookie the login form sets.
pub const COOKIE: &str = "watchbell_tickets";

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                   frame-ancestors 'none'";

const STYLE: &str = include_str!("web/style.css");

/// The list counts matching tickets up to this many ("more than 10000 tickets"): an exact count
/// of a large table is a full scan on every page view.
const COUNT_CAP: u64 = 10_000;

/// How [`serve`] runs the viewer.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The address to listen on (default `127.0.0.1:8080`; port 0 picks a free port).
    pub listen: SocketAddr,
    /// The token every request must carry; required when `listen` is not a loopback address.
    pub token: Option<Secret<String>>,
    /// Refuse every change (solve, reopen, delete).
    pub read_only: bool,
    /// Tickets per list page (default 50, at most 500).
    pub page_size: u32,
    /// Occurrences per ticket page (default 10, at most 200).
    pub occurrences_per_page: u32,
    /// Stop the server on Ctrl-C (SIGINT) too (default false; the command-line tool sets it).
    pub stop_on_ctrl_c: bool,
    /// How long a shutdown waits for requests in progress (default 5 s).
    pub grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            read_only: false,
            page_size: 50,
            occurrences_per_page: 10,
            stop_on_ctrl_c: false,
            grace: Duration::from_secs(5),
        }
    }
}

impl ServeOptions {
    /// Listens on `addr`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }
    /// Requires `token` on every request.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Secret::new(token.into()));
        self
    }
    /// Refuses every change.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }
    /// Tickets per list page.
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = n;
        self
    }
}

/// Why [`serve`] could not start.
#[derive(Debug)]
pub struct ServeError(String);

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServeError {}

/// A running viewer: its URL, and [`shutdown`](Server::shutdown). Dropping it shuts the server
/// down too (waiting at most the grace period).
#[derive(Debug)]
pub struct Server {
    url: String,
    addr: SocketAddr,
    stop: Option<tokio::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    grace: Duration,
}

impl Server {
    /// The viewer's base URL, `http://ADDR:PORT/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, lets requests in progress finish for at most `timeout`, and
    /// returns whether the server thread ended within `timeout` (plus a moment).
    pub fn shutdown(mut self, timeout: Duration) -> bool {
        self.stop_within(timeout)
    }

    /// Blocks until the server stops (on Ctrl-C when [`ServeOptions::stop_on_ctrl_c`] is set).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn stop_within(&mut self, timeout: Duration) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.try_send(());
        }
        let Some(thread) = self.thread.take() else { return true };
        let end = watchbell_core::time::deadline(timeout.min(self.grace).saturating_add(Duration::from_millis(500)));
        while !thread.is_finished() {
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = thread.join();
        true
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let grace = self.grace;
        self.stop_within(grace);
    }
}

struct App {
    store: Mutex<TicketStore>,
    token: Option<Secret<String>>,
    csrf: String,
    read_only: bool,
    page_size: u32,
    occurrences_per_page: u32,
}

/// Starts the viewer over `store` on a thread of its own; returns once it listens.
///
/// Fails when the address cannot be bound, or when it is not loopback and no token is set.
/// Creates the indexes the viewer's sort orders and charts use
/// ([`TicketStore::create_view_indexes`]).
pub fn serve(mut store: TicketStore, options: ServeOptions) -> Result<Server, ServeError> {
    if !options.listen.ip().is_loopback() && options.token.as_ref().is_none_or(|t| t.expose().is_empty()) {
        return Err(ServeError(format!(
            "refusing to listen on {} (not a loopback address) without a token: set --token or \
             WATCHBELL_TICKETS_TOKEN",
            options.listen
        )));
    }
    store.create_view_indexes().map_err(|e| ServeError(format!("cannot create the viewer's indexes: {e}")))?;
    let listener = std::net::TcpListener::bind(options.listen)
        .map_err(|e| ServeError(format!("cannot listen on {}: {e}", options.listen)))?;
    listener.set_nonblocking(true).map_err(|e| ServeError(format!("cannot listen on {}: {e}", options.listen)))?;
    let addr = listener.local_addr().map_err(|e| ServeError(format!("cannot read the bound address: {e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(4)
        .thread_name("watchbell-tickets-web")
        .build()
        .map_err(|e| ServeError(format!("cannot start the server's runtime: {e}")))?;
    let app = Arc::new(App {
        store: Mutex::new(store),
        token: options.token.clone().filter(|t| !t.expose().is_empty()),
        csrf: random_hex()?,
        read_only: options.read_only,
        page_size: options.page_size.clamp(1, 500),
        occurrences_per_page: options.occurrences_per_page.clamp(1, 200),
    });
    let (stop_tx, mut stop_rx) = tokio::sync::mpsc::channel::<()>(2);
    let ctrl_c = options.stop_on_ctrl_c.then(|| stop_tx.clone());
    let grace = options.grace;
    let router = router(app);
    let thread = std::thread::Builder::new()
        .name("watchbell-tickets-web".into())
        .spawn(move || {
            let _quiet = watchbell_core::capture::suppress();
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("watchbell-tickets: cannot listen: {e}");
                        return;
                    }
                };
                if let Some(tx) = ctrl_c {
                    tokio::spawn(async move {
                        if tokio::signal::ctrl_c().await.is_ok() {
                            let _ = tx.send(()).await;
                        }
                    });
                }
                let (grace_tx, grace_rx) = tokio::sync::oneshot::channel::<()>();
                let server = tokio::spawn(
                    axum::serve(listener, router)
                        .with_graceful_shutdown(async move {
                            let _ = grace_rx.await;
                        })
                        .into_future(),
                );
                let _ = stop_rx.recv().await;
                let _ = grace_tx.send(());
                let _ = tokio::time::timeout(grace, server).await;
            });
            runtime.shutdown_timeout(Duration::from_millis(100));
        })
        .map_err(|e| ServeError(format!("cannot start the server thread: {e}")))?;
    Ok(Server { url: format!("http://{addr}/"), addr, stop: Some(stop_tx), thread: Some(thread), grace })
}

fn random_hex() -> Result<String, ServeError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| ServeError(format!("no random numbers from the system: {e}")))?;
    Ok(hex(&b))
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn ct_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    // Lengths are not secret (the token's length is fixed by whoever chose it).
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(|| async { see_other("/tickets") }))
        .route("/style.css", get(style))
        .route("/login", get(login_page).post(login))
        .route("/tickets", get(list))
        .route("/tickets/{id}", get(ticket))
        .route("/tickets/{id}/delete", get(confirm_delete).post(act_delete))
        .route("/tickets/{id}/{action}", post(act))
        .route("/fp/{app}/{fingerprint}", get(by_fingerprint))
        .route("/api/session", get(api_session))
        .route("/api/tickets", get(api_list))
        .route("/api/tickets/{id}", get(api_ticket))
        .route("/api/tickets/{id}/{action}", post(api_act))
        .route("/api/fp/{app}/{fingerprint}", get(api_by_fingerprint))
        .fallback(|| async { error_page(StatusCode::NOT_FOUND, "No such page.") })
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

// ---- requests: authentication, CSRF, headers ----------------------------------------------

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether the request carries the token in an `Authorization: Bearer` header.
fn bearer_ok(app: &App, headers: &HeaderMap) -> bool {
    match (&app.token, bearer(headers)) {
        (Some(t), Some(given)) => ct_eq(given, t.expose()),
        _ => false,
    }
}

fn authorized(app: &App, headers: &HeaderMap) -> bool {
    let Some(token) = &app.token else { return true };
    bearer_ok(app, headers) || cookie(headers, COOKIE).is_some_and(|c| ct_eq(c, &hex(token.expose().as_bytes())))
}

/// Whether the request's `Origin` (when it sends one) is this server.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let (Ok(origin), Some(Ok(host))) = (origin.to_str(), headers.get(header::HOST).map(|h| h.to_str())) else {
        return false;
    };
    origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
}

async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let public = path == "/login" || path == "/style.css";
    let mut response = if !public && !authorized(&app, req.headers()) {
        if path.starts_with("/api/") {
            json_error(StatusCode::UNAUTHORIZED, "a token is required (Authorization: Bearer TOKEN)")
        } else if req.method() == Method::GET {
            let next = req.uri().path_and_query().map_or("/tickets", |p| p.as_str());
            see_other(&format!("/login?next={}", encode(next)))
        } else {
            error_page(StatusCode::UNAUTHORIZED, "Log in first.")
        }
    } else if req.method() == Method::POST && !same_origin(req.headers()) {
        error_page(StatusCode::FORBIDDEN, "Cross-origin request refused.")
    } else {
        next.run(req).await
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], STYLE)
        .into_response()
}

fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn html_response(status: StatusCode, page: Markup) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page.into_string()).into_response()
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

fn json_error(status: StatusCode, message: &str) -> Response {
    json_response(status, &serde_json::json!({ "error": message }))
}

fn error_page(status: StatusCode, message: &str) -> Response {
    html_response(
        status,
        layout(
            status.canonical_reason().unwrap_or("Error"),
            html! {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                p.error { (message) }
                p { a href="/tickets" { "All tickets" } }
            },
        ),
    )
}

/// Percent-encodes a URL component (everything but unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Runs `f` with the store on the runtime's blocking pool.
async fn with_store<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&mut TicketStore, &App) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let _quiet = watchbell_core::capture::suppress();
        let mut store = app.store.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut store, &app)
    })
    .await
    .unwrap_or_else(|_| Err(StoreError::new("the database call failed (panicked)")))
}

fn store_error(e: &StoreError) -> Response {
    error_page(StatusCode::INTERNAL_SERVER_ERROR, &format!("The ticket database failed: {}", redact_text(e.message())))
}

// ---- login --------------------------------------------------------------------------------

#[derive(Deserialize)]
struct NextParam {
    next: Option<String>,
}

/// Only local paths: `/x`, not `//host/x` nor `/\host`.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => n,
        _ => "/tickets",
    }
}

fn login_form(app: &App, next: &str, failed: bool) -> Markup {
    layout(
        "Log in",
        html! {
            h1 { "Log in" }
            @if failed { p.error { "Wrong token." } }
            form.login method="post" action="/login" {
                input type="hidden" name="csrf" value=(app.csrf);
                input type="hidden" name="next" value=(next);
                label { "Token " input type="password" name="token" autocomplete="current-password" autofocus; }
                " "
                button type="submit" { "Log in" }
            }
        },
    )
}

async fn login_page(State(app): State<Arc<App>>, Query(p): Query<NextParam>) -> Response {
    if app.token.is_none() {
        return see_other(safe_next(p.next.as_deref()));
    }
    html_response(StatusCode::OK, login_form(&app, safe_next(p.next.as_deref()), false))
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: Option<String>,
    token: Option<String>,
    next: Option<String>,
}

async fn login(State(app): State<Arc<App>>, Form(f): Form<LoginForm>) -> Response {
    if !f.csrf.as_deref().is_some_and(|c| ct_eq(c, &app.csrf)) {
        return error_page(StatusCode::FORBIDDEN, "Missing or wrong CSRF token: reload the form and try again.");
    }
    let next = safe_next(f.next.as_deref()).to_owned();
    let Some(token) = &app.token else { return see_other(&next) };
    if !f.token.as_deref().is_some_and(|t| ct_eq(t, token.expose())) {
        return html_response(StatusCode::UNAUTHORIZED, login_form(&app, &next, true));
    }
    let mut r = see_other(&next);
    let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", hex(token.expose().as_bytes()));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

// ---- the list -----------------------------------------------------------------------------

/// The list page's URL parameters (all optional).
#[derive(Clone, Debug, Default, Deserialize)]
struct ListParams {
    level: Option<String>,
    app: Option<String>,
    target: Option<String>,
    q: Option<String>,
    solved: Option<String>,
    sort: Option<String>,
    page: Option<String>,
    range: Option<String>,
}

/// The parsed list parameters.
#[derive(Clone, Debug)]
struct ListView {
    search: TicketSearch,
    solved: &'static str,
    sort: &'static str,
    range: &'static str,
    hours: u32,
    page: u64,
    /// The parameters as given (non-empty ones), for building links.
    raw: Vec<(&'static str, String)>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

impl ListView {
    fn parse(p: &ListParams, page_size: u32) -> Result<ListView, String> {
        let mut q = TicketQuery::default();
        let mut raw = Vec::new();
        if let Some(l) = nonempty(&p.level) {
            let level: Level = l.parse().map_err(|_| format!("unknown level {l:?}"))?;
            q.level = Some(level);
            raw.push(("level", level.as_str().to_ascii_lowercase()));
        }
        if let Some(a) = nonempty(&p.app) {
            q.app_id = Some(a.clone());
            raw.push(("app", a));
        }
        let target = nonempty(&p.target);
        if let Some(t) = &target {
            raw.push(("target", t.clone()));
        }
        let text = nonempty(&p.q);
        if let Some(t) = &text {
            raw.push(("q", t.clone()));
        }
        let solved = match nonempty(&p.solved).as_deref() {
            None | Some("open") => {
                q.solved = Some(false);
                "open"
            }
            Some("solved") => {
                q.solved = Some(true);
                "solved"
            }
            Some("all") => "all",
            Some(s) => return Err(format!("unknown solved filter {s:?} (open, solved or all)")),
        };
        if solved != "open" {
            raw.push(("solved", solved.to_owned()));
        }
        let sort = match nonempty(&p.sort).as_deref() {
            None | Some("last") => {
                q.order = Order::LastOccurrence;
                "last"
            }
            Some("count") => {
                q.order = Order::Count;
                "count"
            }
            Some("first") => {
                q.order = Order::FirstOccurrence;
                "first"
            }
            Some(s) => return Err(format!("unknown sort {s:?} (last, count or first)")),
        };
        if sort != "last" {
            raw.push(("sort", sort.to_owned()));
        }
        let (range, hours) = match nonempty(&p.range).as_deref() {
            None | Some("24h") => ("24h", 24),
            Some("14d") => ("14d", 14 * 24),
            Some(s) => return Err(format!("unknown range {s:?} (24h or 14d)")),
        };
        if range != "24h" {
            raw.push(("range", range.to_owned()));
        }
        let page = match nonempty(&p.page) {
            None => 1,
            Some(s) => s.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| format!("bad page number {s:?}"))?,
        };
        q.limit = page_size;
        q.offset = (page - 1).saturating_mul(u64::from(page_size));
        Ok(ListView { search: TicketSearch { query: q, target, text }, solved, sort, range, hours, page, raw })
    }

    /// The list URL with these parameters, `key` set to `value` (or removed when empty).
    fn url(&self, key: &str, value: &str) -> String {
        let mut s = String::from("/tickets");
        let mut sep = '?';
        let mut push = |k: &str, v: &str| {
            s.push(sep);
            sep = '&';
            s.push_str(k);
            s.push('=');
            s.push_str(&encode(v));
        };
        for (k, v) in &self.raw {
            if *k != key {
                push(k, v);
            }
        }
        if !value.is_empty() {
            push(key, value);
        }
        s
    }
}

/// One page of the list, read from the store.
struct ListData {
    /// Matching tickets, exact up to [`COUNT_CAP`]; more when `capped`.
    total: u64,
    capped: bool,
    tickets: Vec<Ticket>,
    hourly: Vec<HourCount>,
    since: SystemTime,
}

fn hour_floor(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs - secs % 3600)
}

fn load_list(store: &mut TicketStore, view: &ListView, now: SystemTime) -> Result<ListData, StoreError> {
    let counted = store.count_search_upto(&view.search, COUNT_CAP + 1)?;
    let (total, capped) = (counted.min(COUNT_CAP), counted > COUNT_CAP);
    let tickets = store.search_tickets(&view.search)?;
    let since = hour_floor(now)
        .checked_sub(Duration::from_secs(3600 * u64::from(view.hours - 1)))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let ids: Vec<i64> = tickets.iter().map(|t| t.id).collect();
    let hourly = store.hourly_counts(&ids, since, view.hours)?;
    Ok(ListData { total, capped, tickets, hourly, since })
}

/// The list page's HTML for a URL query string (`level=error&sort=count`), read from `store`
/// and rendered exactly as the server does (without the actions of a session): for benchmarks
/// and static exports.
pub fn list_page_html(store: &mut TicketStore, query: &str, page_size: u32) -> Result<String, StoreError> {
    let p: ListParams = axum::extract::Query::try_from_uri(
        &format!("/tickets?{query}").parse().map_err(|_| StoreError::new("bad query string"))?,
    )
    .map(|Query(p)| p)
    .map_err(|e| StoreError::new(format!("bad query string: {e}")))?;
    let view = ListView::parse(&p, page_size.clamp(1, 500)).map_err(StoreError::new)?;
    let now = SystemTime::now();
    let data = load_list(store, &view, now)?;
    Ok(render_list(&view, &data, now, page_size.clamp(1, 500)).into_string())
}

async fn list(State(app): State<Arc<App>>, Query(p): Query<ListParams>) -> Response {
    let view = match ListView::parse(&p, app.page_size) {
        Ok(v) => v,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let page_size = app.page_size;
    let result = with_store(&app, move |store, _| {
        let now = SystemTime::now();
        let data = load_list(store, &view, now)?;
        Ok(render_list(&view, &data, now, page_size))
    })
    .await;
    match result {
        Ok(page) => html_response(StatusCode::OK, page),
        Err(e) => store_error(&e),
    }
}

fn level_class(l: Level) -> &'static str {
    match l {
        Level::ERROR => "level error",
        Level::WARN => "level warn",
        Level::INFO => "level info",
        Level::DEBUG => "level debug",
        _ => "level trace",
    }
}

fn ago(now: SystemTime, t: SystemTime) -> String {
    let (secs, future) = match now.duration_since(t) {
        Ok(d) => (d.as_secs(), false),
        Err(e) => (e.duration().as_secs(), true),
    };
    let text = match secs {
        0..=9 => return "just now".into(),
        10..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86_399 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// `2026-11-29 06:12:42 UTC`.
fn absolute(t: SystemTime) -> String {
    let s = rfc3339(t);
    format!("{} {} UTC", s.get(..10).unwrap_or(&s), s.get(11..19).unwrap_or(""))
}

fn when(now: SystemTime, t: SystemTime) -> Markup {
    html! {
        time datetime=(rfc3339(t)) title=(absolute(t)) { (ago(now, t)) }
        br;
        span.abs { (absolute(t)) }
    }
}

fn shown(text: &str) -> String {
    redact_text(text).into_owned()
}

/// Bars of occurrences per hour: inline SVG, one bar per hour with occurrences.
fn chart(counts: &[(u32, u64)], hours: u32, class: &str, label: &str) -> Markup {
    let max = counts.iter().map(|c| c.1).max().unwrap_or(0);
    let total: u64 = counts.iter().map(|c| c.1).sum();
    let title = format!("{total} stored occurrence(s) {label}");
    html! {
        svg class=(class) viewBox=(format!("0 0 {hours} 20")) preserveAspectRatio="none" role="img" aria-label=(title) {
            title { (title) }
            rect.axis x="0" y="19.5" width=(hours) height="0.5" {}
            @for (h, n) in counts {
                @let height = if max == 0 { 0.0 } else { (*n as f64 / max as f64 * 19.0).max(1.5) };
                rect.bar x=(h) y=(format!("{:.2}", 19.5 - height)) width="0.85" height=(format!("{height:.2}")) {
                    title { (n) }
                }
            }
        }
    }
}

fn render_list(view: &ListView, data: &ListData, now: SystemTime, page_size: u32) -> Markup {
    let pages = data.total.div_ceil(u64::from(page_size)).max(1);
    let more = if data.capped { data.tickets.len() as u64 == u64::from(page_size) } else { view.page < pages };
    let label = if view.range == "14d" { "in the last 14 days" } else { "in the last 24 hours" };
    let level_value = view.search.query.level.map(|l| l.as_str().to_ascii_lowercase()).unwrap_or_default();
    layout(
        "Tickets",
        html! {
            h1 { "Tickets" }
            form.filters method="get" action="/tickets" {
                label { "Level "
                    select name="level" {
                        option value="" selected[level_value.is_empty()] { "any" }
                        @for l in ["error", "warn", "info", "debug", "trace"] {
                            option value=(l) selected[level_value == l] { (l) }
                        }
                    }
                }
                label { "App " input type="text" name="app" value=[view.search.query.app_id.as_deref()] size="12"; }
                label { "Target " input type="text" name="target" value=[view.search.target.as_deref()] size="14"; }
                label { "Text " input type="search" name="q" value=[view.search.text.as_deref()] size="18"; }
                label { "State "
                    select name="solved" {
                        @for (v, t) in [("open", "open"), ("solved", "solved"), ("all", "all")] {
                            option value=(v) selected[view.solved == v] { (t) }
                        }
                    }
                }
                label { "Sort "
                    select name="sort" {
                        @for (v, t) in [("last", "last seen"), ("count", "count"), ("first", "first seen")] {
                            option value=(v) selected[view.sort == v] { (t) }
                        }
                    }
                }
                label { "Chart "
                    select name="range" {
                        @for (v, t) in [("24h", "24 hours"), ("14d", "14 days")] {
                            option value=(v) selected[view.range == v] { (t) }
                        }
                    }
                }
                button type="submit" { "Filter" }
            }
            p.summary {
                @if data.capped {
                    "more than " (data.total) " tickets · page " (view.page)
                } @else {
                    (data.total) " ticket" @if data.total != 1 { "s" }
                    " · page " (view.page) " of " (pages)
                }
            }
            @if data.tickets.is_empty() {
                p.empty { "No tickets match." }
            } @else {
                table.tickets {
                    thead { tr {
                        th { "Level" } th { "Message" } th { "Location" }
                        th.num { a href=(view.url("sort", "count")) { "Count" } }
                        th { a href=(view.url("sort", "first")) { "First seen" } }
                        th { a href=(view.url("sort", "")) { "Last seen" } }
                        th { "Per hour" } th { "State" }
                    } }
                    tbody {
                        @for t in &data.tickets {
                            @let counts: Vec<(u32, u64)> = data.hourly.iter().filter(|h| h.ticket_id == t.id).map(|h| (h.hour, h.count)).collect();
                            tr id=(format!("t{}", t.id)) {
                                td { span class=(level_class(t.level)) { (t.level.as_str()) } }
                                td.message {
                                    a href=(format!("/tickets/{}", t.id)) { (shown(&truncate(&t.message, 200))) }
                                    br;
                                    span.app { (t.app_id) }
                                }
                                td.location {
                                    code { (t.target) }
                                    @if let Some(loc) = &t.location { br; span.file { (loc) } }
                                }
                                td.num { (t.occurrence_count) }
                                td.time { (when(now, t.first_occurrence_time)) }
                                td.time { (when(now, t.last_occurrence_time)) }
                                td.chart { (chart(&counts, view.hours, "spark", label)) }
                                td { @if t.solved { span.solved { "solved" } } @else { span.open { "open" } } }
                            }
                        }
                    }
                }
            }
            nav.pages {
                @if view.page > 1 { a rel="prev" href=(view.url("page", &(view.page - 1).to_string())) { "← Newer page" } }
                @if more { " " a rel="next" href=(view.url("page", &(view.page + 1).to_string())) { "Older page →" } }
            }
            p.note { "Charts: stored occurrences per hour " (label) " (since " (absolute(data.since)) ")." }
        },
    )
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · watchbell tickets" }
                link rel="stylesheet" href="/style.css";
            }
            body {
                header.top { a.home href="/tickets" { "watchbell tickets" } }
                main { (body) }
            }
        }
    }
}

// ---- one ticket ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct PageParam {
    page: Option<String>,
}

fn page_number(p: &PageParam) -> Result<u64, String> {
    match nonempty(&p.page) {
        None => Ok(1),
        Some(s) => s.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| format!("bad page number {s:?}")),
    }
}

struct TicketData {
    ticket: Ticket,
    occurrences: Vec<crate::store::Occurrence>,
    hourly: Vec<(u32, u64)>,
    notifications: Vec<crate::store::Notification>,
}

fn load_ticket(store: &mut TicketStore, id: i64, page: u64, per_page: u32) -> Result<Option<TicketData>, StoreError> {
    let Some(ticket) = store.get_ticket(id)? else { return Ok(None) };
    let occurrences = store.occurrences(id, per_page, (page - 1).saturating_mul(u64::from(per_page)))?;
    let since =
        hour_floor(SystemTime::now()).checked_sub(Duration::from_secs(3600 * 335)).unwrap_or(SystemTime::UNIX_EPOCH);
    let hourly = store.hourly_counts(&[id], since, 336)?.into_iter().map(|h| (h.hour, h.count)).collect();
    let notifications = store.notifications(id)?;
    Ok(Some(TicketData { ticket, occurrences, hourly, notifications }))
}

async fn ticket(State(app): State<Arc<App>>, Path(id): Path<String>, Query(p): Query<PageParam>) -> Response {
    let Ok(id) = id.parse::<i64>() else { return error_page(StatusCode::NOT_FOUND, "No such ticket.") };
    let page = match page_number(&p) {
        Ok(n) => n,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let result = with_store(&app, move |store, app| {
        Ok(load_ticket(store, id, page, app.occurrences_per_page)?
            .map(|d| render_ticket(&d, page, app, SystemTime::now())))
    })
    .await;
    match result {
        Ok(Some(page)) => html_response(StatusCode::OK, page),
        Ok(None) => error_page(StatusCode::NOT_FOUND, "No such ticket (it may have been deleted)."),
        Err(e) => store_error(&e),
    }
}

fn field_value(v: &watchbell_core::Value) -> Markup {
    let text = match v.as_str() {
        Some(s) => shown(s),
        None => serde_json::to_string(v).unwrap_or_default(),
    };
    html! {
        @if text.contains('\n') { pre { (text) } } @else { code { (text) } }
    }
}

fn render_occurrence(o: &crate::store::Occurrence, now: SystemTime) -> Markup {
    let record = o.record();
    html! {
        section.occurrence id=(format!("o{}", o.id)) {
            h3 { "Occurrence " (o.id) " · " (when(now, o.time)) }
            @match &record {
                Err(e) => {
                    p.error { "This occurrence could not be read: " (e) }
                    pre { (shown(&o.data)) }
                }
                Ok(r) => {
                    table.fields {
                        tr { th { "time" } td { (rfc3339(r.time)) } }
                        tr { th { "app" } td { (o.app_id) } }
                        tr { th { "level" } td { span class=(level_class(r.level)) { (r.level.as_str()) } } }
                        tr { th { "message" } td { @if r.message.contains('\n') { pre { (shown(&r.message)) } } @else { (shown(&r.message)) } } }
                        tr { th { "target" } td { code { (r.target) } } }
                        @if let Some(m) = &r.module { tr { th { "module" } td { code { (m) } } } }
                        @if let Some(f) = &r.file {
                            tr { th { "location" } td { code { (f) @if let Some(l) = r.line { ":" (l) } } } }
                        }
                        tr { th { "thread" } td { (r.thread_name.as_deref().unwrap_or("(unnamed)")) " #" (r.thread_id) } }
                        tr { th { "pid" } td { (r.pid) } }
                        tr { th { "origin" } td { (format!("{:?}", r.origin).to_lowercase()) } }
                        @if r.suppressed > 0 { tr { th { "suppressed before" } td { (r.suppressed) } } }
                    }
                    @if r.fields.iter().len() > 0 {
                        h4 { "Fields" }
                        table.fields {
                            @for (k, v) in r.fields.iter() {
                                tr { th { (k) } td { (field_value(v)) } }
                            }
                        }
                    }
                    @if !r.spans.is_empty() {
                        h4 { "Spans (outermost first)" }
                        ol.spans {
                            @for s in &r.spans {
                                li {
                                    code { (s.name.as_ref()) } " " span.file { (s.target.as_ref()) }
                                    @if s.fields.iter().len() > 0 {
                                        table.fields {
                                            @for (k, v) in s.fields.iter() {
                                                tr { th { (k) } td { (field_value(v)) } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            details { summary { "JSON" } pre { (shown(&o.data)) } }
        }
    }
}

fn render_ticket(d: &TicketData, page: u64, app: &App, now: SystemTime) -> Markup {
    let t = &d.ticket;
    let per_page = app.occurrences_per_page;
    let more = d.occurrences.len() as u32 == per_page;
    layout(
        &format!("Ticket {}", t.id),
        html! {
            p { a href="/tickets" { "← All tickets" } }
            h1.ticket {
                span class=(level_class(t.level)) { (t.level.as_str()) } " "
                span.message { (shown(&truncate(&t.message, 300))) }
            }
            table.fields.summary-table {
                tr { th { "ticket" } td { "#" (t.id) " · " @if t.solved { span.solved { "solved" } } @else { span.open { "open" } } } }
                tr { th { "app" } td { (t.app_id) } }
                tr { th { "fingerprint" } td { code { (t.fingerprint) } } }
                tr { th { "target" } td { code { (t.target) } } }
                @if let Some(loc) = &t.location { tr { th { "location" } td { code { (loc) } } } }
                @if let Some(m) = &t.module { tr { th { "module" } td { code { (m) } } } }
                tr { th { "occurrences" } td { (t.occurrence_count) } }
                tr { th { "first seen" } td { (when(now, t.first_occurrence_time)) } }
                tr { th { "last seen" } td { (when(now, t.last_occurrence_time)) } }
            }
            @if !d.notifications.is_empty() {
                p.alerted {
                    "Alerted: "
                    @for (i, n) in d.notifications.iter().enumerate() {
                        @if i > 0 { ", " }
                        strong { (n.destination) }
                        " (" (n.count) "×, last "
                        time datetime=(rfc3339(n.last_time)) title=(absolute(n.last_time)) { (ago(now, n.last_time)) }
                        ")"
                    }
                }
            }
            div.bigchart { (chart(&d.hourly, 336, "big", "in the last 14 days")) }
            p.note { "Stored occurrences per hour in the last 14 days." }
            @if app.read_only {
                p.note { "Read-only viewer." }
            } @else {
                div.actions {
                    @if t.solved {
                        form method="post" action=(format!("/tickets/{}/reopen", t.id)) {
                            input type="hidden" name="csrf" value=(app.csrf);
                            button type="submit" id="reopen" { "Reopen" }
                        }
                    } @else {
                        form method="post" action=(format!("/tickets/{}/solve", t.id)) {
                            input type="hidden" name="csrf" value=(app.csrf);
                            button type="submit" id="solve" { "Mark solved" }
                        }
                    }
                    a.danger href=(format!("/tickets/{}/delete", t.id)) id="delete" { "Delete…" }
                }
            }
            h2 { "Newest occurrences" @if page > 1 { " (page " (page) ")" } }
            @if d.occurrences.is_empty() { p.empty { "No stored occurrences on this page." } }
            @for o in &d.occurrences { (render_occurrence(o, now)) }
            nav.pages {
                @if page > 1 { a rel="prev" href=(format!("/tickets/{}?page={}", t.id, page - 1)) { "← Newer" } }
                @if more { " " a rel="next" href=(format!("/tickets/{}?page={}", t.id, page + 1)) { "Older →" } }
            }
        },
    )
}

// ---- actions ------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ActionForm {
    csrf: Option<String>,
    confirm: Option<String>,
}

/// Checks a POST: not read-only, and the CSRF token (or a bearer token) present.
fn check_post(app: &App, headers: &HeaderMap, csrf: Option<&str>) -> Result<(), (StatusCode, &'static str)> {
    if app.read_only {
        return Err((StatusCode::FORBIDDEN, "This viewer is read-only."));
    }
    let header_csrf = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    let csrf_ok = csrf.or(header_csrf).is_some_and(|c| ct_eq(c, &app.csrf));
    if csrf_ok || bearer_ok(app, headers) {
        Ok(())
    } else {
        Err((StatusCode::FORBIDDEN, "Missing or wrong CSRF token: reload the page and try again."))
    }
}

async fn confirm_delete(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else { return error_page(StatusCode::NOT_FOUND, "No such ticket.") };
    if app.read_only {
        return error_page(StatusCode::FORBIDDEN, "This viewer is read-only.");
    }
    match with_store(&app, move |store, _| store.get_ticket(id)).await {
        Ok(Some(t)) => html_response(
            StatusCode::OK,
            layout(
                "Delete ticket",
                html! {
                    h1 { "Delete ticket #" (t.id) "?" }
                    p { "This deletes the ticket and its " (t.occurrence_count) " occurrence(s) for good: "
                        span.message { (shown(&truncate(&t.message, 200))) } }
                    form method="post" action=(format!("/tickets/{}/delete", t.id)) {
                        input type="hidden" name="csrf" value=(app.csrf);
                        input type="hidden" name="confirm" value="yes";
                        button.danger type="submit" id="confirm-delete" { "Delete" }
                        " " a href=(format!("/tickets/{}", t.id)) { "Cancel" }
                    }
                },
            ),
        ),
        Ok(None) => error_page(StatusCode::NOT_FOUND, "No such ticket."),
        Err(e) => store_error(&e),
    }
}

async fn act_delete(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Err((status, m)) = check_post(&app, &headers, f.csrf.as_deref()) {
        return error_page(status, m);
    }
    if f.confirm.as_deref() != Some("yes") {
        return error_page(StatusCode::BAD_REQUEST, "Deleting needs confirmation.");
    }
    let Ok(id) = id.parse::<i64>() else { return error_page(StatusCode::NOT_FOUND, "No such ticket.") };
    match with_store(&app, move |store, _| store.delete(id)).await {
        Ok(true) => see_other("/tickets"),
        Ok(false) => error_page(StatusCode::NOT_FOUND, "No such ticket."),
        Err(e) => store_error(&e),
    }
}

async fn act(
    State(app): State<Arc<App>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Err((status, m)) = check_post(&app, &headers, f.csrf.as_deref()) {
        return error_page(status, m);
    }
    let Ok(id) = id.parse::<i64>() else { return error_page(StatusCode::NOT_FOUND, "No such ticket.") };
    let solve = match action.as_str() {
        "solve" => true,
        "reopen" => false,
        _ => return error_page(StatusCode::NOT_FOUND, "No such action."),
    };
    match with_store(&app, move |store, _| if solve { store.solve(id) } else { store.reopen(id) }).await {
        Ok(true) => see_other(&format!("/tickets/{id}")),
        Ok(false) => error_page(StatusCode::NOT_FOUND, "No such ticket."),
        Err(e) => store_error(&e),
    }
}

fn fingerprint_ok(fp: &str) -> Option<String> {
    (fp.len() == 16 && fp.bytes().all(|b| b.is_ascii_hexdigit())).then(|| fp.to_ascii_lowercase())
}

async fn by_fingerprint(State(app): State<Arc<App>>, Path((app_id, fp)): Path<(String, String)>) -> Response {
    let Some(fp) = fingerprint_ok(&fp) else {
        return error_page(StatusCode::NOT_FOUND, "Not a fingerprint (16 hex digits).");
    };
    match with_store(&app, move |store, _| store.ticket_by_fingerprint(&app_id, &fp)).await {
        Ok(Some(t)) => see_other(&format!("/tickets/{}", t.id)),
        Ok(None) => {
            error_page(StatusCode::NOT_FOUND, "No ticket with this fingerprint in this app (it may have been deleted).")
        }
        Err(e) => store_error(&e),
    }
}

// ---- JSON API -----------------------------------------------------------------------------

async fn api_session(State(app): State<Arc<App>>) -> Response {
    json_response(StatusCode::OK, &serde_json::json!({ "csrf": app.csrf, "read_only": app.read_only }))
}

fn api_store_error(e: &StoreError) -> Response {
    json_error(StatusCode::INTERNAL_SERVER_ERROR, &redact_text(e.message()))
}

async fn api_list(State(app): State<Arc<App>>, Query(p): Query<ListParams>) -> Response {
    let view = match ListView::parse(&p, app.page_size) {
        Ok(v) => v,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e),
    };
    let page_size = app.page_size;
    let result = with_store(&app, move |store, _| {
        let data = load_list(store, &view, SystemTime::now())?;
        let tickets: Vec<serde_json::Value> = data
            .tickets
            .iter()
            .map(|t| {
                let mut hourly = vec![0u64; view.hours as usize];
                for h in data.hourly.iter().filter(|h| h.ticket_id == t.id) {
                    hourly[h.hour as usize] = h.count;
                }
                let mut v = serde_json::to_value(t).unwrap_or_default();
                v["hourly"] = serde_json::json!(hourly);
                v
            })
            .collect();
        Ok(serde_json::json!({
            "total": data.total,
            "total_is_lower_bound": data.capped,
            "page": view.page,
            "page_size": page_size,
            "hourly_since": rfc3339(data.since),
            "tickets": tickets,
        }))
    })
    .await;
    match result {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => api_store_error(&e),
    }
}

async fn api_ticket(State(app): State<Arc<App>>, Path(id): Path<String>, Query(p): Query<PageParam>) -> Response {
    let Ok(id) = id.parse::<i64>() else { return json_error(StatusCode::NOT_FOUND, "no such ticket") };
    let page = match page_number(&p) {
        Ok(n) => n,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e),
    };
    let result = with_store(&app, move |store, app| {
        Ok(load_ticket(store, id, page, app.occurrences_per_page)?.map(|d| {
            serde_json::json!({
                "ticket": d.ticket,
                "page": page,
                "occurrences": d.occurrences,
                "notifications": d.notifications,
            })
        }))
    })
    .await;
    match result {
        Ok(Some(v)) => json_response(StatusCode::OK, &v),
        Ok(None) => json_error(StatusCode::NOT_FOUND, "no such ticket"),
        Err(e) => api_store_error(&e),
    }
}

async fn api_act(
    State(app): State<Arc<App>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The body is not read: the CSRF token comes in the `X-CSRF-Token` header.
    drop(body);
    if let Err((status, m)) = check_post(&app, &headers, None) {
        return json_error(status, m);
    }
    let Ok(id) = id.parse::<i64>() else { return json_error(StatusCode::NOT_FOUND, "no such ticket") };
    let op = match action.as_str() {
        "solve" | "reopen" | "delete" => action.clone(),
        _ => return json_error(StatusCode::NOT_FOUND, "no such action (solve, reopen, delete)"),
    };
    let result = with_store(&app, move |store, _| match op.as_str() {
        "solve" => store.solve(id),
        "reopen" => store.reopen(id),
        _ => store.delete(id),
    })
    .await;
    match result {
        Ok(true) => json_response(StatusCode::OK, &serde_json::json!({ "ok": true, "id": id, "action": action })),
        Ok(false) => json_error(StatusCode::NOT_FOUND, "no such ticket"),
        Err(e) => api_store_error(&e),
    }
}

async fn api_by_fingerprint(State(app): State<Arc<App>>, Path((app_id, fp)): Path<(String, String)>) -> Response {
    let Some(fp) = fingerprint_ok(&fp) else { return json_error(StatusCode::NOT_FOUND, "not a fingerprint") };
    match with_store(&app, move |store, _| store.ticket_by_fingerprint(&app_id, &fp)).await {
        Ok(Some(t)) => json_response(StatusCode::OK, &serde_json::json!({ "ticket": t })),
        Ok(None) => json_error(StatusCode::NOT_FOUND, "no such ticket"),
        Err(e) => api_store_error(&e),
    }
}
