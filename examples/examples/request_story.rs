//! A small HTTP service (hyper on tokio) where every request is a span, DEBUG logging is
//! withheld per request by the fingers-crossed layer, and a failing request delivers its whole
//! story — the DEBUG records that led up to the error, then the error — as one incident: one mail
//! (to a loopback SMTP server) and one block in an incident file. Requests that succeed cost a
//! ring buffer in their span and leave nothing behind.
//!
//! ```sh
//! cargo run --example request_story
//! ```
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use tracing::{debug, error, info, info_span, Instrument};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;
use watchbell::fingers_crossed::{FingersCrossedLayer, Scope};
use watchbell::prelude::*;
use watchbell_test::smtp::FakeSmtp;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The service: `/checkout?item=N` succeeds, except for item 13, whose payment is refused.
async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let span = info_span!("request", id, method = %req.method(), path = %req.uri().path());
    async move {
        let item: u32 =
            req.uri().query().and_then(|q| q.strip_prefix("item=")).and_then(|n| n.parse().ok()).unwrap_or(0);
        debug!(item, "parsed the order");
        debug!(item, stock = 4, "reserved stock");
        tokio::time::sleep(Duration::from_millis(5)).await; // the payment provider
        if item == 13 {
            debug!(provider = "acme-pay", http_status = 402, "payment provider answered");
            error!(item, reason = "card declined", "checkout failed");
            return Ok(Response::builder()
                .status(StatusCode::PAYMENT_REQUIRED)
                .body(Full::new(Bytes::from("declined\n")))
                .unwrap());
        }
        debug!(item, "payment captured");
        info!(item, "order placed");
        Ok(Response::new(Full::new(Bytes::from("ok\n"))))
    }
    .instrument(span)
    .await
}

fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("the service listens");
    write!(s, "GET {path} HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines().next().unwrap_or_default().to_owned()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("watchbell-request-story-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let incidents = dir.join("incidents.log");

    // The incident's destinations: mail (to a loopback SMTP server) and a file.
    let smtp = FakeSmtp::start();
    let (mail, mail_guard) = watchbell::mail::MailLayer::builder("127.0.0.1")
        .plain()
        .port(smtp.port())
        .from("shop@example.com")
        .to("oncall@example.com")
        .app("shop")
        .build_handler()?;
    let (file, file_guard) = watchbell::file::FileLayer::builder(&incidents).app("shop").build_handler()?;
    let incident: Arc<dyn Handler> = Arc::new(FanOut::new().with(mail).with(file));

    // DEBUG and up are withheld per request span until an ERROR arrives in that request.
    let (story, guard) = FingersCrossedLayer::builder(incident).scope(Scope::span("request")).build()?;
    let guard = guard.join(mail_guard).join(file_guard);
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_filter(LevelFilter::INFO))
            .with(story),
    )?;

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    runtime.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let service = hyper::service::service_fn(handle);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });

    println!("== the service at http://{addr}: 6 requests, one of which fails");
    let clients: Vec<_> = [1, 2, 13, 4, 5, 6]
        .into_iter()
        .map(|item| std::thread::spawn(move || (item, get(addr, &format!("/checkout?item={item}")))))
        .collect();
    for c in clients {
        let (item, status) = c.join().unwrap();
        println!("   item {item:>2}: {status}");
    }

    // Deliver what is pending (the incident mail is paced), then show what arrived.
    let flushed = guard.shutdown(Duration::from_secs(15));
    runtime.shutdown_timeout(Duration::from_secs(1));
    println!("\n== the incident file ({}):\n{}", incidents.display(), std::fs::read_to_string(&incidents)?);
    for mail in smtp.mails() {
        println!("== the incident mail: {}\n{}", mail.decoded_header("Subject").unwrap_or_default(), mail.body_text());
    }
    println!("== delivery: {}", if flushed.is_complete() { "complete" } else { "incomplete" });
    for s in guard.stats() {
        println!("   {s}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
