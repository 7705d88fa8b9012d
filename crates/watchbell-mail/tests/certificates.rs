//! Server certificates TLS refuses although they are trusted: the error says what to do.

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use watchbell_core::{Level, Record, Retry};
use watchbell_mail::{MailLayer, SinkOptions};

/// An implicit-TLS "SMTP server" on loopback presenting `cert` (for `localhost`), made CA:TRUE
/// or CA:FALSE. Returns its port and the certificate's PEM.
fn tls_server(ca: bool) -> (u16, String) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut tcp) = stream else { continue };
            let config = Arc::clone(&config);
            thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let mut conn = rustls::ServerConnection::new(config).unwrap();
                while conn.is_handshaking() {
                    if conn.complete_io(&mut tcp).is_err() {
                        return;
                    }
                }
                // The handshake went through: say no to everything, so that the mail fails
                // permanently for another reason than TLS.
                let mut s = rustls::Stream::new(&mut conn, &mut tcp);
                let _ = s.write_all(b"554 5.3.2 not accepting mail\r\n");
                let _ = s.flush();
            });
        }
    });
    (port, cert.pem())
}

fn last_error(ca: bool) -> String {
    let (port, pem) = tls_server(ca);
    let (h, guard) = MailLayer::builder("localhost")
        .implicit_tls()
        .port(port)
        .add_root_certificate(pem)
        .from("alerts@example.com")
        .to("ops@example.com")
        .pace(Duration::ZERO)
        .batch_wait(Duration::ZERO)
        .no_rate_limit()
        .retry(Retry { initial: Duration::from_millis(50), budget: Duration::from_secs(5), ..Retry::default() })
        .timeout(Duration::from_secs(5))
        .build_handler()
        .unwrap();
    h.handle(Record::new(Level::ERROR, "app", "payment failed"));
    assert!(guard.flush(Duration::from_secs(20)).is_complete());
    let s = guard.stats().into_iter().find(|s| s.name.starts_with("mail:")).unwrap();
    assert_eq!((s.delivered, s.failed, s.retried), (0, 1, 0), "{s}");
    s.last_error.unwrap()
}

#[test]
fn a_trusted_ca_true_server_certificate_is_refused_with_an_error_that_says_what_to_do() {
    let e = last_error(true);
    assert!(e.contains("CA:TRUE") && e.contains("CA:FALSE") && e.contains("add_root_certificate"), "{e}");
}

#[test]
fn a_trusted_self_signed_ca_false_certificate_works() {
    // The handshake succeeds; the mail then fails on the server's 554, not on TLS.
    let e = last_error(false);
    assert!(!e.contains("TLS"), "{e}");
    assert!(e.contains("554"), "{e}");
}
