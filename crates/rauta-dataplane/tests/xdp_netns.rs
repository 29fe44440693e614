//! End to end: Tier 1's XDP program on a veth in a network namespace, a real client in another, a real
//! listener (with `tcp_syncookies=2`) behind the program. Needs root, `ip` and `ethtool`.
//!
//! What this increment delivers and what it does not, both asserted:
//! - the client's SYN is answered in XDP with a cookie SYN-ACK, the client's kernel accepts it and sends
//!   its ACK, and XDP validates that ACK's cookie and passes it up;
//! - the local stack accepts a cookie ACK only if the listener itself issued a cookie in the last two
//!   minutes (`tcp_synq_no_recent_overflow`). Its SYN never reached it, so it resets the connection —
//!   unless a local connection "primed" it. The next increment removes the dependency (the kernel tier
//!   replays the handshake to the listener itself, see docs/kernel-tiers.md).

mod support;

use std::{
    io::{Read, Write},
    net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream},
    sync::mpsc,
    thread,
    time::Duration,
};

use rauta_common::maps::XDP_PASS_PROGRAM;
use rauta_dataplane::{object::BPF_OBJECT, Counters, KernelTiers, Reason};
use support::netns::{self, Pair, CLIENT_IP, SERVER_IP};

/// What one client connection through the namespace pair saw.
struct Outcome {
    /// The client's result: the echoed bytes and its local address, or the I/O error it got.
    client: Result<([u8; 5], SocketAddr), std::io::Error>,
    /// The peer address `accept()` returned for the client's connection, if it did.
    accepted_peer: Option<SocketAddr>,
    counters: Counters,
}

fn can_run(test: &str) -> bool {
    if !support::root_or_skip(test) {
        return false;
    }
    if !netns::tools_present() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true but `ip`/`ethtool` are missing"
        );
        println!("{test}: skipped: needs ip and ethtool");
        return false;
    }
    true
}

/// Runs one echo exchange from the client namespace to a listener behind Tier 1. With `prime`, the server
/// first connects to its own listener over loopback (no XDP there), so the listener issues a cookie itself.
fn exchange(tag: &str, prime: bool) -> Outcome {
    let pair = Pair::create(tag).expect("create the namespace pair");

    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let server_ns = pair.server_ns.clone();
    let server_dev = pair.server_dev.clone();
    let server = thread::spawn(move || {
        netns::enter(&server_ns).unwrap();
        // Port 0: the kernel picks; Tier 1 is then pointed at exactly that VIP.
        let listener = TcpListener::bind((SERVER_IP, 0)).unwrap();
        let SocketAddr::V4(vip) = listener.local_addr().unwrap() else {
            unreachable!()
        };
        if prime {
            let local = TcpStream::connect(vip).unwrap();
            let _ = listener.accept().unwrap();
            drop(local);
        }
        let tiers = KernelTiers::load(vip, &[server_dev]).expect("load and attach XDP");
        assert_eq!(tiers.attachments().count(), 1);
        listener.set_nonblocking(true).unwrap();
        ready_tx.send(vip).unwrap();
        // Serve until the client is done; a reset connection never shows up in accept().
        let mut accepted_peer = None;
        loop {
            match listener.accept() {
                Ok((mut conn, peer)) => {
                    accepted_peer = Some(peer);
                    conn.set_nonblocking(false).unwrap();
                    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut buf = [0u8; 5];
                    if conn.read_exact(&mut buf).is_ok() {
                        let _ = conn.write_all(&buf);
                    }
                    let mut rest = Vec::new();
                    let _ = conn.read_to_end(&mut rest);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if done_rx.try_recv().is_ok() {
                        break;
                    }
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
            if accepted_peer.is_some() {
                break;
            }
        }
        // Let the last segments (the client's FIN) cross the program before counting.
        thread::sleep(Duration::from_millis(100));
        (accepted_peer, tiers.counters().unwrap())
    });
    let vip: SocketAddrV4 = ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server ready");

    let client_ns = pair.client_ns.clone();
    let client_dev = pair.client_dev.clone();
    let client = thread::spawn(move || {
        netns::enter(&client_ns).unwrap();
        // veth delivers XDP_TX frames only to a peer that runs an XDP program: attach the pass program.
        let mut ebpf = aya::Ebpf::load(BPF_OBJECT).unwrap();
        let pass: &mut aya::programs::Xdp = ebpf
            .program_mut(XDP_PASS_PROGRAM)
            .unwrap()
            .try_into()
            .unwrap();
        pass.load().unwrap();
        pass.attach(&client_dev, aya::programs::XdpMode::Driver)
            .unwrap();
        let result = (|| {
            let mut stream =
                TcpStream::connect_timeout(&SocketAddr::V4(vip), Duration::from_secs(5))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            let local = stream.local_addr()?;
            stream.write_all(b"hello")?;
            let mut echo = [0u8; 5];
            stream.read_exact(&mut echo)?;
            Ok((echo, local))
        })();
        thread::sleep(Duration::from_millis(50));
        result
    });

    let client = client.join().expect("client thread");
    done_tx.send(()).unwrap();
    let (accepted_peer, counters) = server.join().expect("server thread");
    drop(pair);
    Outcome {
        client,
        accepted_peer,
        counters,
    }
}

#[test]
fn cookie_handshake_completes_to_a_primed_listener() {
    if !can_run("cookie_handshake_completes_to_a_primed_listener") {
        return;
    }
    let out = exchange("primed", true);
    let summary = out.counters.non_zero();
    let (echo, client_addr) = out.client.expect("the client's exchange");
    assert_eq!(&echo, b"hello");
    assert_eq!(
        out.accepted_peer,
        Some(client_addr),
        "accept() sees the client's real address and port"
    );
    assert_eq!(client_addr.ip(), std::net::IpAddr::V4(CLIENT_IP));
    assert_eq!(out.counters.get(Reason::SynCookieSent), 1, "{summary:?}");
    assert_eq!(out.counters.get(Reason::AckCookieOk), 1, "{summary:?}");
    assert_eq!(out.counters.get(Reason::AckCookieBad), 0, "{summary:?}");
    // The request, the ACK of the response and the FIN travel on the socket the stack made of the cookie.
    assert!(out.counters.get(Reason::SocketPass) >= 2, "{summary:?}");
}

#[test]
fn unprimed_listener_resets_the_validated_cookie_ack() {
    if !can_run("unprimed_listener_resets_the_validated_cookie_ack") {
        return;
    }
    let out = exchange("unprimed", false);
    let summary = out.counters.non_zero();
    // XDP did its part: the SYN-ACK reached the client, whose ACK carried a cookie XDP accepted...
    assert_eq!(out.counters.get(Reason::SynCookieSent), 1, "{summary:?}");
    assert_eq!(out.counters.get(Reason::AckCookieOk), 1, "{summary:?}");
    assert_eq!(out.counters.get(Reason::AckCookieBad), 0, "{summary:?}");
    // ...but the listener, which never issued a cookie, refused it: this is the gap the next increment
    // closes. If this starts passing, the kernel's behaviour changed: update docs/kernel-tiers.md.
    let err = out
        .client
        .expect_err("the stack resets a cookie ACK its listener did not expect");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert_eq!(out.accepted_peer, None);
}
