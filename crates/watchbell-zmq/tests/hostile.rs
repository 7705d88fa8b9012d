//! Bad input on the subscriber's sockets: malformed records over real ZMTP, and raw TCP peers
//! that speak garbage instead of ZMTP. The subscriber counts, drops the peer, and goes on.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::{wait_until, Keep};
use watchbell_core::{Handler, Level, Record};
use watchbell_zmq::{logbook_json, ZmqSubscriber};
use zeromq::{PushSocket, Socket, SocketSend, ZmqMessage};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

/// Sends `messages` from a real ZeroMQ PUSH peer connected to `endpoint`.
fn push(endpoint: &str, messages: Vec<Vec<u8>>) {
    let rt = rt();
    rt.block_on(async {
        let mut s = PushSocket::new();
        s.connect(endpoint).await.expect("connect");
        for m in messages {
            s.send(ZmqMessage::from(m)).await.expect("send");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(s.close().await);
    });
}

fn tcp_addr(endpoint: &str) -> String {
    endpoint.strip_prefix("tcp://").unwrap().to_owned()
}

#[test]
fn malformed_records_are_counted_and_the_subscriber_goes_on() {
    let keep = Keep::default();
    let sub = ZmqSubscriber::builder().bind("tcp://127.0.0.1:0").pull().spawn(Arc::new(keep.clone())).unwrap();
    let ep = sub.endpoints()[0].clone();
    let good = logbook_json(&Record::new(Level::ERROR, "app", "still here"));
    push(
        &ep,
        vec![
            b"not json".to_vec(),
            b"[1, 2]".to_vec(),
            br#"{"level": "high"}"#.to_vec(),
            b"\xff\xfe{".to_vec(),
            "[".repeat(100_000).into_bytes(),
            Vec::new(),
            good,
        ],
    );
    assert!(wait_until(Duration::from_secs(10), || keep.len() == 1), "{:?}", sub.stats());
    let s = sub.stats();
    assert_eq!((s.received, s.malformed, s.dispatched), (7, 6, 1), "{s:?}");
    assert!(s.last_error.is_some());
    assert_eq!(keep.records()[0].message, "still here");
    assert!(sub.is_running());
}

/// The ZMTP 3.0 greeting of a NULL-mechanism peer (64 bytes).
fn greeting() -> Vec<u8> {
    let mut g = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0];
    let mut mech = b"NULL".to_vec();
    mech.resize(20, 0);
    g.extend(mech);
    g.push(0); // as-server
    g.resize(64, 0);
    g
}

#[test]
fn hostile_tcp_peers_do_not_kill_the_subscriber() {
    let keep = Keep::default();
    let handler: Arc<dyn Handler> = Arc::new(keep.clone());
    let sub = ZmqSubscriber::builder().bind("tcp://127.0.0.1:0").pull().spawn(handler).unwrap();
    let ep = sub.endpoints()[0].clone();
    let addr = tcp_addr(&ep);

    let mut peers = Vec::new();
    // Plain garbage.
    let mut s = TcpStream::connect(&addr).unwrap();
    let _ = s.write_all(&(0..65_536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<_>>());
    peers.push(s);
    // A greeting, then a command frame announcing 1 TiB (the allocation would abort the process).
    let mut s = TcpStream::connect(&addr).unwrap();
    let mut bytes = greeting();
    bytes.push(0x06);
    bytes.extend((1u64 << 40).to_be_bytes());
    bytes.extend([0u8; 1024]);
    let _ = s.write_all(&bytes);
    peers.push(s);
    // A greeting, a valid READY, then a message frame announcing 2^60 bytes.
    let mut s = TcpStream::connect(&addr).unwrap();
    let mut bytes = greeting();
    let mut ready = vec![5u8];
    ready.extend(b"READY");
    ready.push(11);
    ready.extend(b"Socket-Type");
    ready.extend(4u32.to_be_bytes());
    ready.extend(b"PUSH");
    bytes.push(0x04);
    bytes.push(ready.len() as u8);
    bytes.extend(ready);
    bytes.push(0x02);
    bytes.extend((1u64 << 60).to_be_bytes());
    bytes.extend([b'{'; 4096]);
    let _ = s.write_all(&bytes);
    peers.push(s);
    // A peer that connects and says nothing, and one that hangs up at once.
    peers.push(TcpStream::connect(&addr).unwrap());
    drop(TcpStream::connect(&addr).unwrap());

    std::thread::sleep(Duration::from_millis(500));
    assert!(sub.is_running(), "{:?}", sub.stats());
    // A real peer is still served while the silent one holds its connection.
    push(&ep, vec![logbook_json(&Record::new(Level::ERROR, "app", "after the storm"))]);
    assert!(wait_until(Duration::from_secs(10), || keep.len() == 1), "{:?}", sub.stats());
    assert_eq!(keep.records()[0].message, "after the storm");
    assert!(sub.stop(Duration::from_secs(5)));
    drop(peers);
}
