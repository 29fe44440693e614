//! The Tier 1 splice packet by packet, through BPF_PROG_RUN of the XDP program (with its tail calls) and
//! the TC ingress program. The programs run in a private network namespace with two interfaces —
//! `nc` towards clients (the VIP) and `nb` towards backends (198.18.1.1/24, a permanent neighbour entry
//! for the backend) — so that the FIB lookup of the splice resolves as on a real node. Each step names
//! the input packet, the expected action and reason, the output packet field by field and the state
//! change. Needs root.

mod support;

use std::{net::Ipv4Addr, process::Command, thread};

use rauta_common::{
    handoff::{build_replay_syn_v4, REPLAY_SYN_V4_LEN},
    maps::FlowKey,
    splice::{
        client_index, BackendLeg, SpliceState, FRAMING_KNOWN, FRAMING_LOST, LEG_READY,
        NAT_QUARANTINE_NS, SPLICE_ACK_SENT, SPLICE_ESTABLISHED, SPLICE_SYN_SENT,
    },
    synack::SynV4,
    tcpopt,
};
use rauta_dataplane::{KernelTiers, Reason, XdpAction, TC_ACT_REDIRECT};
use support::{
    lab::run,
    netns,
    node::RoutedNode,
    options::{options_of, ts_options},
    packet::{self, Parsed, Tcp4, ACK},
    routes::{service, table},
};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const NODE: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const BACKEND: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const BACKEND_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x02];
const PORT: u16 = 8080;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;
const SYN: u8 = 0x02;
const REQUEST: &[u8] = b"GET /whoami HTTP/1.1\r\nHost: shop.example\r\nAccept: */*\r\n\r\n";

const INGRESS: &str = r#"
---
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  ingressClassName: rauta
  rules:
  - host: shop.example
    http:
      paths:
      - {path: /whoami, pathType: Exact, backend: {service: {name: shop, port: {number: 80}}}}
      - {path: /cart, pathType: Exact, backend: {service: {name: cart, port: {number: 80}}}}
      - {path: /api, pathType: Prefix, backend: {service: {name: shop, port: {number: 80}}}}
"#;

/// The interface's index in the calling thread's namespace.
fn ifindex(dev: &str) -> u32 {
    let name = std::ffi::CString::new(dev).unwrap();
    // SAFETY: a NUL-terminated name; the call only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(index, 0, "no interface {dev}");
    index
}

/// The interface's MAC (`ip -br link`: name, state, address, ...).
fn mac(ns: &str, dev: &str) -> [u8; 6] {
    let out = Command::new("ip")
        .args(["-n", ns, "-br", "link", "show", dev])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = text.split_whitespace().nth(2).unwrap().to_owned();
    let bytes: Vec<u8> = field
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

fn payload(frame: &[u8], p: &Parsed) -> Vec<u8> {
    let start = 14 + usize::from(p.ihl) * 4 + usize::from(p.doff) * 4;
    frame[start..start + p.payload_len].to_vec()
}

/// Runs `body` on a thread inside a fresh node namespace.
fn in_node(tag: &str, body: impl FnOnce(&mut KernelTiers, u32, u32, [u8; 6]) + Send + 'static) {
    let node = RoutedNode::create(&format!("rauta-sp{tag}"));
    let ns = node.ns.clone();
    thread::spawn(move || {
        netns::enter(&ns).unwrap();
        let mut tiers =
            KernelTiers::load(std::net::SocketAddrV4::new(VIP, PORT), &[]).expect("load");
        let applied = tiers
            .apply_routes(&table(&format!(
                "{INGRESS}{}{}",
                service("shop", &["198.18.1.2"]),
                service("cart", &["198.18.1.3"])
            )))
            .unwrap();
        assert_eq!(applied.routes, 2, "the Exact paths");
        let nb_mac = mac(&ns, "nb");
        body(&mut tiers, ifindex("nc"), ifindex("nb"), nb_mac);
    })
    .join()
    .expect("the test body");
    drop(node);
}

/// Steps one packet through the XDP program arriving on `ifindex`; asserts exactly `reason` was counted.
fn xdp(tiers: &KernelTiers, frame: &[u8], ifindex: u32, reason: Reason) -> (XdpAction, Vec<u8>) {
    let before = tiers.counters().unwrap();
    let run = tiers.run_once_from(frame, ifindex).unwrap();
    let moved = tiers.counters().unwrap().since(&before);
    assert_eq!(moved.non_zero(), vec![(reason.name(), 1)]);
    (run.action, run.output)
}

/// As [`xdp`], for a packet that moves several reasons (tail-called steps count their own).
fn xdp_moves(
    tiers: &KernelTiers,
    frame: &[u8],
    ifindex: u32,
    reasons: &[Reason],
) -> (XdpAction, Vec<u8>) {
    let before = tiers.counters().unwrap();
    let run = tiers.run_once_from(frame, ifindex).unwrap();
    let moved = tiers.counters().unwrap().since(&before);
    let mut expected: Vec<(&str, u64)> = reasons.iter().map(|r| (r.name(), 1)).collect();
    expected.sort();
    let mut got = moved.non_zero();
    got.sort();
    assert_eq!(got, expected);
    (run.action, run.output)
}

/// A segment from the backend to the node's NAT port `nat_port` (MACs as on `nb`), MSS option only.
fn from_backend(nat_port: u16, nb_mac: [u8; 6], flags: u8, seq: u32, ack: u32) -> Tcp4 {
    let mut segment = Tcp4::syn(NODE, nat_port);
    segment.src = BACKEND;
    segment.sport = 8080;
    segment.src_mac = BACKEND_MAC;
    segment.dst_mac = nb_mac;
    segment.flags = flags;
    segment.seq = seq;
    segment.ack = ack;
    segment.tcp_options = vec![2, 4, 0x05, 0xb4];
    segment
}

/// What `open` returns: the first segment, the cookie, the action and output of the first segment's
/// run, the counters it moved.
type Opened = (Tcp4, u32, XdpAction, Vec<u8>, Vec<(&'static str, u64)>);

/// The client's handshake and first data segment: returns the first segment, the cookie, what the
/// segment turned into, and the counters it moved.
fn open(tiers: &KernelTiers, nc: u32, sport: u16, request: &[u8]) -> Opened {
    let mut syn = Tcp4::syn(VIP, PORT);
    syn.sport = sport;
    let (action, out) = xdp(tiers, &syn.build(), nc, Reason::SynCookieSent);
    assert_eq!(action, XdpAction::Tx);
    let cookie = packet::parse(&out).seq;
    let mut data = syn.clone();
    data.flags = PSH | ACK;
    data.seq = syn.seq.wrapping_add(1);
    data.ack = cookie.wrapping_add(1);
    data.tcp_options.clear();
    data.window = 502;
    data.payload = request.to_vec();
    let before = tiers.counters().unwrap();
    let run = tiers.run_once_from(&data.build(), nc).unwrap();
    let moved = tiers.counters().unwrap().since(&before).non_zero();
    (data, cookie, run.action, run.output, moved)
}

fn splice_of(tiers: &KernelTiers, sport: u16) -> Option<SpliceState> {
    tiers
        .splice(&FlowKey::new(CLIENT.octets(), sport, VIP.octets(), PORT))
        .unwrap()
}

fn leg_of(tiers: &KernelTiers, sport: u16) -> Option<BackendLeg> {
    tiers
        .backend_leg(&FlowKey::new(CLIENT.octets(), sport, VIP.octets(), PORT))
        .unwrap()
}

#[test]
fn a_spliced_connection_from_first_segment_to_close() {
    if !support::root_or_skip("a_spliced_connection_from_first_segment_to_close") {
        return;
    }
    in_node("close", |tiers, nc, nb, nb_mac| {
        let sport = 40100;
        // 1. First data segment → our SYN to the backend, out of `nb` (redirect), MACs from the FIB.
        let latency_before = tiers.first_request_latency().unwrap();
        let (client, cookie, action, out, moved) = open(tiers, nc, sport, REQUEST);
        assert_eq!(moved, vec![(Reason::SpliceSynSent.name(), 1)]);
        let latency = tiers.first_request_latency().unwrap();
        assert_eq!(
            latency.count(),
            latency_before.count() + 1,
            "one first request timed"
        );
        assert!(latency.sum_ns > latency_before.sum_ns);
        assert_eq!(action, XdpAction::Redirect);
        let syn = packet::parse(&out);
        let s = splice_of(tiers, sport).expect("a splice");
        assert_eq!(s.state, SPLICE_SYN_SENT);
        assert_eq!((syn.eth_dst, syn.eth_src), (BACKEND_MAC, nb_mac));
        assert_eq!((syn.src, syn.dst), (NODE, BACKEND));
        assert!(
            (61000..=65535).contains(&syn.sport),
            "NAT port {}",
            syn.sport
        );
        assert_eq!(syn.dport, 8080);
        assert_eq!((syn.flags, syn.seq, syn.ack), (SYN, s.leg_isn, 0));
        assert_eq!(
            syn.tcp_options,
            [vec![2, 4, 0x05, 0xb4], vec![1; 16]].concat(),
            "MSS 1460 only (the client sends no timestamps), NOP padded"
        );
        assert!(syn.ip_csum_ok && syn.tcp_csum_ok);
        assert_eq!(tiers.splice_sizes().unwrap(), (1, 1));

        // 2. The backend's SYN-ACK: recorded and passed to TC ingress.
        let backend_isn = 0x7000_0000u32;
        let synack = from_backend(
            syn.sport,
            nb_mac,
            SYN | ACK,
            backend_isn,
            s.leg_isn.wrapping_add(1),
        );
        let (action, _) = xdp(tiers, &synack.build(), nb, Reason::SpliceSynAck);
        assert_eq!(action, XdpAction::Pass);
        let s = splice_of(tiers, sport).unwrap();
        assert_eq!((s.state, s.backend_isn), (SPLICE_ACK_SENT, backend_isn));

        // 3. TC ingress turns it into our ACK with the request, unchanged (the connection stays alive:
        // follow-up requests are routed one by one).
        let expected_request = REQUEST;
        for attempt in ["first", "retransmitted SYN-ACK"] {
            if attempt != "first" {
                let (action, _) = xdp(tiers, &synack.build(), nb, Reason::SpliceSynAck);
                assert_eq!(action, XdpAction::Pass, "{attempt}");
            }
            let run = tiers.run_tc_ingress_once(&synack.build()).unwrap();
            assert_eq!(run.action, TC_ACT_REDIRECT, "{attempt}");
            let ack = packet::parse(&run.output);
            assert_eq!(
                (ack.src, ack.dst, ack.sport, ack.dport),
                (NODE, BACKEND, syn.sport, 8080)
            );
            assert_eq!((ack.eth_dst, ack.eth_src), (BACKEND_MAC, nb_mac));
            assert_eq!(ack.flags, PSH | ACK, "{attempt}");
            assert_eq!(ack.seq, s.leg_isn.wrapping_add(1));
            assert_eq!(ack.ack, backend_isn.wrapping_add(1));
            assert_eq!(
                payload(&run.output, &ack),
                expected_request.to_vec(),
                "{attempt}"
            );
            assert!(ack.ip_csum_ok && ack.tcp_csum_ok, "{attempt}");
        }

        // 4. The backend's response: translated into the client's connection, out of `nc`.
        let response =
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_vec();
        let mut data = synack.clone();
        data.flags = PSH | ACK;
        data.seq = backend_isn.wrapping_add(1);
        data.ack = s.leg_isn.wrapping_add(1 + expected_request.len() as u32);
        data.tcp_options.clear();
        data.payload = response.clone();
        // Its head is framed on the way (Content-Length: 2).
        let (action, out) = xdp_moves(
            tiers,
            &data.build(),
            nb,
            &[
                Reason::SpliceBackendTranslated,
                Reason::SpliceResponseFramed,
            ],
        );
        assert_eq!(action, XdpAction::Redirect);
        let to_client = packet::parse(&out);
        assert_eq!((to_client.src, to_client.dst), (VIP, CLIENT));
        assert_eq!((to_client.sport, to_client.dport), (PORT, sport));
        assert_eq!(
            (to_client.eth_dst, to_client.eth_src),
            (packet::CLIENT_MAC, packet::SERVER_MAC)
        );
        assert_eq!(
            to_client.seq,
            cookie.wrapping_add(1),
            "in the cookie's space"
        );
        assert_eq!(
            to_client.ack,
            client.seq.wrapping_add(REQUEST.len() as u32),
            "acknowledges the client's request"
        );
        assert_eq!(payload(&out, &to_client), response);
        assert!(to_client.ip_csum_ok && to_client.tcp_csum_ok);
        let s = splice_of(tiers, sport).unwrap();
        assert_eq!(s.state, SPLICE_ESTABLISHED);
        let leg = leg_of(tiers, sport).unwrap();
        assert_eq!(
            (leg.framing, s.requests, leg.responses),
            (FRAMING_KNOWN, 1, 1),
            "the response's end is known"
        );
        assert_eq!(
            leg.response_next,
            cookie.wrapping_add(1 + response.len() as u32)
        );
        assert_eq!(leg.backend_end, leg.response_next);
        assert_eq!(
            leg.ready, LEG_READY,
            "established: the backend's segments are translated from the leg alone"
        );

        // 5. The client's ACK of it: onto the backend leg.
        let mut ack = client.clone();
        ack.flags = ACK;
        ack.seq = client.seq.wrapping_add(REQUEST.len() as u32);
        ack.ack = cookie.wrapping_add(1 + response.len() as u32);
        ack.payload.clear();
        let (action, out) = xdp(tiers, &ack.build(), nc, Reason::SpliceClientTranslated);
        assert_eq!(action, XdpAction::Redirect);
        let to_backend = packet::parse(&out);
        assert_eq!((to_backend.src, to_backend.dst), (NODE, BACKEND));
        assert_eq!((to_backend.sport, to_backend.dport), (syn.sport, 8080));
        assert_eq!(
            to_backend.seq,
            s.leg_isn.wrapping_add(1 + expected_request.len() as u32)
        );
        assert_eq!(
            to_backend.ack,
            backend_isn.wrapping_add(1 + response.len() as u32)
        );
        assert!(to_backend.ip_csum_ok && to_backend.tcp_csum_ok);

        // 7. Close: the backend's FIN, the client's FIN, the backend's last ACK → state gone.
        let mut fin = data.clone();
        fin.flags = FIN | ACK;
        fin.seq = backend_isn.wrapping_add(1 + response.len() as u32);
        fin.payload.clear();
        let (action, _) = xdp(tiers, &fin.build(), nb, Reason::SpliceBackendTranslated);
        assert_eq!(action, XdpAction::Redirect);
        let mut client_fin = ack.clone();
        client_fin.flags = FIN | ACK;
        client_fin.ack = ack.ack.wrapping_add(1);
        let (action, _) = xdp(
            tiers,
            &client_fin.build(),
            nc,
            Reason::SpliceClientTranslated,
        );
        assert_eq!(action, XdpAction::Redirect);
        assert_eq!(
            leg_of(tiers, sport).unwrap().ready,
            0,
            "after the client's FIN the backend's ACK of it goes through the splice"
        );
        let mut last = fin.clone();
        last.flags = ACK;
        last.seq = fin.seq.wrapping_add(1);
        last.ack = data.ack.wrapping_add(1);
        let (action, _) = xdp(tiers, &last.build(), nb, Reason::SpliceBackendTranslated);
        assert_eq!(action, XdpAction::Redirect);
        assert_eq!(splice_of(tiers, sport), None);
        assert_eq!(tiers.splice_sizes().unwrap(), (0, 0), "NAT port released");

        // 8. A clean close (both FINs acknowledged) is not quarantined: with the range narrowed to
        // that port, the next client of the same backend takes it at once.
        tiers.set_splicing(Some((syn.sport, syn.sport))).unwrap();
        let (_, _, action, out, moved) = open(tiers, nc, sport + 1, REQUEST);
        assert_eq!(moved, vec![(Reason::SpliceSynSent.name(), 1)]);
        assert_eq!(action, XdpAction::Redirect);
        assert_eq!(packet::parse(&out).sport, syn.sport);
    });
}

/// Brings `sport`'s splice to ESTABLISHED with one framed response of `response_len` bytes delivered
/// and acknowledged; returns the client's last ACK (next request at its seq), the backend's data
/// segment template, the splice and the backend's NAT port.
fn established(
    tiers: &KernelTiers,
    nc: u32,
    nb: u32,
    nb_mac: [u8; 6],
    sport: u16,
) -> (Tcp4, Tcp4, SpliceState, u16) {
    let (client, cookie, action, out, _) = open(tiers, nc, sport, REQUEST);
    assert_eq!(action, XdpAction::Redirect);
    let syn = packet::parse(&out);
    let s = splice_of(tiers, sport).unwrap();
    let backend_isn = 0x5000_0000u32;
    let synack = from_backend(
        syn.sport,
        nb_mac,
        SYN | ACK,
        backend_isn,
        s.leg_isn.wrapping_add(1),
    );
    xdp(tiers, &synack.build(), nb, Reason::SpliceSynAck);
    assert_eq!(
        tiers.run_tc_ingress_once(&synack.build()).unwrap().action,
        TC_ACT_REDIRECT
    );
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    let mut data = synack.clone();
    data.flags = PSH | ACK;
    data.seq = backend_isn.wrapping_add(1);
    data.ack = s.leg_isn.wrapping_add(1 + REQUEST.len() as u32);
    data.tcp_options.clear();
    data.payload = response.clone();
    xdp_moves(
        tiers,
        &data.build(),
        nb,
        &[
            Reason::SpliceBackendTranslated,
            Reason::SpliceResponseFramed,
        ],
    );
    let mut ack = client.clone();
    ack.flags = ACK;
    ack.seq = client.seq.wrapping_add(REQUEST.len() as u32);
    ack.ack = cookie.wrapping_add(1 + response.len() as u32);
    ack.payload.clear();
    xdp(tiers, &ack.build(), nc, Reason::SpliceClientTranslated);
    data.seq = data.seq.wrapping_add(response.len() as u32);
    (ack, data, splice_of(tiers, sport).unwrap(), syn.sport)
}

#[test]
fn follow_up_requests_are_routed_one_by_one() {
    if !support::root_or_skip("follow_up_requests_are_routed_one_by_one") {
        return;
    }
    in_node("keep", |tiers, nc, nb, nb_mac| {
        let sport = 40150;
        let (ack, mut data, s, nat_port) = established(tiers, nc, nb, nb_mac, sport);

        // 1. A follow-up to the same route: decided in the kernel, forwarded on the same leg.
        let mut second = ack.clone();
        second.flags = PSH | ACK;
        second.payload = REQUEST.to_vec();
        let (action, out) = xdp_moves(
            tiers,
            &second.build(),
            nc,
            &[Reason::SpliceFollowupSame, Reason::SpliceClientTranslated],
        );
        assert_eq!(action, XdpAction::Redirect);
        let to_backend = packet::parse(&out);
        assert_eq!((to_backend.dst, to_backend.sport), (BACKEND, nat_port));
        assert_eq!(to_backend.seq, s.to_backend_seq(second.seq));
        assert_eq!(payload(&out, &to_backend), REQUEST.to_vec());
        assert!(to_backend.ip_csum_ok && to_backend.tcp_csum_ok);
        let s = splice_of(tiers, sport).unwrap();
        assert_eq!(s.requests, 2);
        assert_eq!(
            s.next_request,
            second.seq.wrapping_add(REQUEST.len() as u32)
        );
        // Its retransmission goes on as it is (no second decision).
        let (action, _) = xdp(tiers, &second.build(), nc, Reason::SpliceClientTranslated);
        assert_eq!(action, XdpAction::Redirect);

        // 2. A third request, to another backend's route, sent before the second response
        // (pipelined): never forwarded, dropped unacknowledged.
        let mut third = second.clone();
        third.seq = second.seq.wrapping_add(REQUEST.len() as u32);
        third.payload = String::from_utf8(REQUEST.to_vec())
            .unwrap()
            .replacen("/whoami", "/cart", 1)
            .into_bytes();
        let (action, _) = xdp(tiers, &third.build(), nc, Reason::SpliceFollowupEarly);
        assert_eq!(action, XdpAction::Drop);

        // 3. The second response (no body: 204) is framed; once the client acknowledges it, the
        // third request moves to the other backend: a fresh SYN from a new NAT port, the old leg
        // forgotten.
        let response = b"HTTP/1.1 204 No Content\r\nContent-Length: 99\r\n\r\n".to_vec();
        data.payload = response.clone();
        data.ack = s.to_backend_seq(third.seq);
        let (action, _) = xdp_moves(
            tiers,
            &data.build(),
            nb,
            &[
                Reason::SpliceBackendTranslated,
                Reason::SpliceResponseFramed,
            ],
        );
        assert_eq!(action, XdpAction::Redirect);
        third.ack = second.ack.wrapping_add(response.len() as u32);
        let (action, out) = xdp_moves(
            tiers,
            &third.build(),
            nc,
            &[Reason::SpliceSwitch, Reason::SpliceSynSent],
        );
        assert_eq!(action, XdpAction::Redirect);
        let syn = packet::parse(&out);
        assert_eq!(
            (syn.flags, syn.dst, syn.dport),
            (SYN, Ipv4Addr::new(198, 18, 1, 3), 8080)
        );
        let moved = splice_of(tiers, sport).expect("the new splice");
        assert_eq!(moved.backend_addr, u32::from_ne_bytes([198, 18, 1, 3]));
        assert_eq!(moved.state, SPLICE_SYN_SENT);
        assert_eq!(
            moved.client_isn,
            third.seq.wrapping_sub(1),
            "the leg starts at the request"
        );
        assert_eq!(
            moved.cookie,
            third.ack.wrapping_sub(1),
            "and at the client's ack"
        );
        assert_eq!(
            tiers.splice_sizes().unwrap(),
            (1, 1),
            "the old NAT port is released"
        );
        // The old leg waits for the new backend's SYN-ACK, whose TC program closes it with a RST at
        // exactly the sequence number the old backend expects next.
        let old = tiers
            .old_leg(&FlowKey::new(CLIENT.octets(), sport, VIP.octets(), PORT))
            .unwrap()
            .expect("the old leg is recorded");
        assert_eq!(old.client_isn, moved.client_isn);
        assert_eq!(old.seq, s.to_backend_seq(third.seq));
        assert_eq!(
            (old.backend_addr, old.backend_port, old.nat_port),
            (s.backend_addr, s.backend_port, s.nat_port)
        );
    });
}

#[test]
fn tier_1_responses_are_counted_by_status_class() {
    if !support::root_or_skip("tier_1_responses_are_counted_by_status_class") {
        return;
    }
    in_node("class", |tiers, nc, nb, nb_mac| {
        let sport = 40170;
        let before = tiers.status_classes().unwrap();
        // The first request's response: 200, read as the response program frames it.
        let (ack, mut data, s, _) = established(tiers, nc, nb, nb_mac, sport);
        let first = tiers.status_classes().unwrap();
        assert_eq!(first.get(2) - before.get(2), 1, "{first:?}");

        // A follow-up on the same splice, answered 404.
        let mut second = ack.clone();
        second.flags = PSH | ACK;
        second.payload = REQUEST.to_vec();
        xdp_moves(
            tiers,
            &second.build(),
            nc,
            &[Reason::SpliceFollowupSame, Reason::SpliceClientTranslated],
        );
        data.payload = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec();
        data.ack = s.to_backend_seq(second.seq.wrapping_add(REQUEST.len() as u32));
        let (action, _) = xdp_moves(
            tiers,
            &data.build(),
            nb,
            &[
                Reason::SpliceBackendTranslated,
                Reason::SpliceResponseFramed,
            ],
        );
        assert_eq!(action, XdpAction::Redirect);
        let after = tiers.status_classes().unwrap();
        let delta: Vec<u64> = (0..6).map(|c| after.get(c) - before.get(c)).collect();
        assert_eq!(delta, [0, 0, 1, 0, 1, 0], "unknown, 1xx..5xx: {after:?}");

        // A third request, answered chunked: its status is read (2xx), its end is not, so the kernel
        // stops following this splice's responses; a fourth request is then counted as of unknown
        // status when it is forwarded.
        let not_found_len = data.payload.len() as u32;
        let mut third = second.clone();
        third.seq = second.seq.wrapping_add(REQUEST.len() as u32);
        third.ack = second.ack.wrapping_add(not_found_len);
        xdp_moves(
            tiers,
            &third.build(),
            nc,
            &[Reason::SpliceFollowupSame, Reason::SpliceClientTranslated],
        );
        data.seq = data.seq.wrapping_add(not_found_len);
        data.payload = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec();
        data.ack = s.to_backend_seq(third.seq.wrapping_add(REQUEST.len() as u32));
        xdp_moves(
            tiers,
            &data.build(),
            nb,
            &[
                Reason::SpliceBackendTranslated,
                Reason::SpliceResponseUnframed,
            ],
        );
        let mut fourth = third.clone();
        fourth.seq = third.seq.wrapping_add(REQUEST.len() as u32);
        fourth.ack = third.ack.wrapping_add(data.payload.len() as u32);
        xdp_moves(
            tiers,
            &fourth.build(),
            nc,
            &[Reason::SpliceFollowupSame, Reason::SpliceClientTranslated],
        );
        let after = tiers.status_classes().unwrap();
        let delta: Vec<u64> = (0..6).map(|c| after.get(c) - before.get(c)).collect();
        assert_eq!(delta, [1, 0, 2, 0, 1, 0], "unknown, 1xx..5xx: {after:?}");
        let labels: Vec<&str> = after.iter().map(|(label, _)| label).collect();
        assert_eq!(labels, ["unknown", "1xx", "2xx", "3xx", "4xx", "5xx"]);
    });
}

#[test]
fn a_follow_up_that_is_not_tier_1_moves_to_tier_3_and_unframed_responses_are_said_so() {
    if !support::root_or_skip("a_follow_up_that_is_not_tier_1_moves_to_tier_3") {
        return;
    }
    in_node("move3", |tiers, nc, nb, nb_mac| {
        let sport = 40160;
        let (ack, mut data, _, _) = established(tiers, nc, nb, nb_mac, sport);
        // A second request on the same backend, answered chunked: the kernel cannot frame it.
        let mut second = ack.clone();
        second.flags = PSH | ACK;
        second.payload = REQUEST.to_vec();
        xdp_moves(
            tiers,
            &second.build(),
            nc,
            &[Reason::SpliceFollowupSame, Reason::SpliceClientTranslated],
        );
        let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec();
        data.payload = response.clone();
        xdp_moves(
            tiers,
            &data.build(),
            nb,
            &[
                Reason::SpliceBackendTranslated,
                Reason::SpliceResponseUnframed,
            ],
        );
        assert_eq!(leg_of(tiers, sport).unwrap().framing, FRAMING_LOST);
        assert_eq!(splice_of(tiers, sport).unwrap().unframed, 1);
        // A request for a Prefix route (Tier 3's), sent after the client acknowledged all of it: the
        // connection goes to Tier 3 (the replayed SYN to the VIP, passed to the stack).
        let mut third = second.clone();
        third.seq = second.seq.wrapping_add(REQUEST.len() as u32);
        third.ack = second.ack.wrapping_add(response.len() as u32);
        third.payload = b"GET /api/items HTTP/1.1\r\nHost: shop.example\r\n\r\n".to_vec();
        let before = tiers.counters().unwrap();
        let run = tiers.run_once_from(&third.build(), nc).unwrap();
        let moved = tiers.counters().unwrap().since(&before).non_zero();
        assert!(
            moved.contains(&(Reason::SpliceSwitchUnframed.name(), 1))
                && moved.contains(&(Reason::HandoffSynReplayed.name(), 1)),
            "{moved:?}"
        );
        assert_eq!(run.action, XdpAction::Pass);
        let replayed = packet::parse(&run.output);
        assert_eq!(
            (replayed.src, replayed.dst, replayed.flags),
            (CLIENT, VIP, SYN)
        );
        assert_eq!(replayed.seq, third.seq.wrapping_sub(1));
        assert_eq!(splice_of(tiers, sport), None, "the splice is over");
        assert_eq!(tiers.splice_sizes().unwrap(), (0, 0));
        // Closed by the TC egress program with the listener's SYN-ACK.
        let old = tiers
            .old_leg(&FlowKey::new(CLIENT.octets(), sport, VIP.octets(), PORT))
            .unwrap()
            .expect("the old leg is recorded");
        assert_eq!(old.client_isn, third.seq.wrapping_sub(1));
    });
}

/// Response heads are framed wherever they end within the 1,024 bytes the response program reads
/// (`RESPONSE_HEAD_MAX`): 100, 600 and 1,020 bytes alike; a 1,100-byte head is not followed. (A cut
/// that reads 256 bytes first must keep this: session 10's attempt passed the verifier's limit.)
#[test]
fn long_response_heads_are_framed_up_to_the_limit() {
    if !support::root_or_skip("long_response_heads_are_framed_up_to_the_limit") {
        return;
    }
    in_node("longhead", |tiers, nc, nb, nb_mac| {
        let sport = 40170;
        let (ack, mut data, _, _) = established(tiers, nc, nb, nb_mac, sport);
        let mut request = ack.clone();
        request.flags = PSH | ACK;
        request.payload = REQUEST.to_vec();
        // A head of `head_len` bytes (padded with an `X-Pad` header), 5 bytes of body, in one segment.
        let response_of = |head_len: usize| {
            let start = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Pad: ".to_vec();
            let mut r = start.clone();
            r.resize(head_len - 4, b'p');
            r.extend_from_slice(b"\r\n\r\nhello");
            r
        };
        for (head_len, framed) in [(100, true), (600, true), (1020, true), (1100, false)] {
            xdp_moves(
                tiers,
                &request.build(),
                nc,
                &[Reason::SpliceFollowupSame, Reason::SpliceClientTranslated],
            );
            request.seq = request.seq.wrapping_add(REQUEST.len() as u32);
            let before = leg_of(tiers, sport).unwrap();
            data.payload = response_of(head_len);
            let reason = if framed {
                Reason::SpliceResponseFramed
            } else {
                Reason::SpliceResponseUnframed
            };
            let (action, out) = xdp_moves(
                tiers,
                &data.build(),
                nb,
                &[Reason::SpliceBackendTranslated, reason],
            );
            assert_eq!(action, XdpAction::Redirect, "{head_len}");
            assert_eq!(payload(&out, &packet::parse(&out)), data.payload);
            let leg = leg_of(tiers, sport).unwrap();
            if framed {
                assert_eq!(leg.framing, FRAMING_KNOWN, "{head_len}");
                assert_eq!(leg.responses, before.responses + 1);
                assert_eq!(
                    leg.response_next,
                    before.response_next.wrapping_add(data.payload.len() as u32),
                    "the next response starts after this one's body ({head_len})"
                );
            } else {
                assert_eq!(leg.framing, FRAMING_LOST, "{head_len}");
            }
            data.seq = data.seq.wrapping_add(data.payload.len() as u32);
            request.ack = request.ack.wrapping_add(data.payload.len() as u32);
        }
    });
}

/// The backend's SYN-ACK to `sport`'s SYN (`syn_out`, as XDP sent it), recorded by XDP and turned by TC
/// ingress into our ACK: returns the SYN-ACK and the payload that ACK carries.
fn synack_and_request(
    tiers: &KernelTiers,
    nb: u32,
    nb_mac: [u8; 6],
    sport: u16,
    syn_out: &[u8],
) -> (Tcp4, Vec<u8>) {
    let syn = packet::parse(syn_out);
    let s = splice_of(tiers, sport).unwrap();
    let mut synack = from_backend(
        syn.sport,
        nb_mac,
        SYN | ACK,
        0x6000_0000,
        s.leg_isn.wrapping_add(1),
    );
    synack.src = syn.dst;
    let (action, _) = xdp(tiers, &synack.build(), nb, Reason::SpliceSynAck);
    assert_eq!(action, XdpAction::Pass);
    let run = tiers.run_tc_ingress_once(&synack.build()).unwrap();
    assert_eq!(run.action, TC_ACT_REDIRECT);
    let ack = packet::parse(&run.output);
    assert_eq!((ack.flags, ack.seq), (PSH | ACK, s.leg_isn.wrapping_add(1)));
    assert!(ack.ip_csum_ok && ack.tcp_csum_ok);
    (synack, payload(&run.output, &ack))
}

/// A request for `path` on `shop.example`, `len` bytes long (padded with an `X-Pad` header).
fn request_of_len(path: &str, len: usize) -> Vec<u8> {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: shop.example\r\nX-Pad: ").into_bytes();
    request.resize(len - 4, b'p');
    request.extend_from_slice(b"\r\n\r\n");
    request
}

#[test]
fn a_hit_keeps_its_request_in_its_nat_ports_slot() {
    if !support::root_or_skip("a_hit_keeps_its_request_in_its_nat_ports_slot") {
        return;
    }
    in_node("slot", |tiers, nc, nb, nb_mac| {
        // A short request: no pending-map entry at all, the ACK carries it from the slot, and so does
        // the resend after the client retransmits it (our ACK lost).
        let sport = 40150;
        let (client, _, action, out, moved) = open(tiers, nc, sport, REQUEST);
        assert_eq!(moved, vec![(Reason::SpliceSynSent.name(), 1)]);
        assert_eq!(action, XdpAction::Redirect);
        assert_eq!(splice_of(tiers, sport).unwrap().request_in_slot, 1);
        assert_eq!(tiers.table_sizes().unwrap().pending, 0, "no hash insert");
        let (_, sent) = synack_and_request(tiers, nb, nb_mac, sport, &out);
        assert_eq!(sent, REQUEST);
        let (action, _) = xdp(tiers, &client.build(), nc, Reason::SpliceRequestResend);
        assert_eq!(action, XdpAction::Pass);
        let run = tiers.run_tc_ingress_once(&client.build()).unwrap();
        assert_eq!(run.action, TC_ACT_REDIRECT);
        let resent = packet::parse(&run.output);
        assert_eq!((resent.dst, resent.flags), (BACKEND, PSH | ACK));
        assert_eq!(
            payload(&run.output, &resent),
            REQUEST,
            "resent from the slot"
        );

        // Longer than the slot's 512 bytes: the pending map, as before, gone once acknowledged.
        let sport = 40151;
        let long = request_of_len("/whoami", 900);
        let (_, _, action, out, moved) = open(tiers, nc, sport, &long);
        assert_eq!(moved, vec![(Reason::SpliceSynSent.name(), 1)]);
        assert_eq!(action, XdpAction::Redirect);
        assert_eq!(splice_of(tiers, sport).unwrap().request_in_slot, 0);
        assert_eq!(tiers.table_sizes().unwrap().pending, 1);
        let (synack, sent) = synack_and_request(tiers, nb, nb_mac, sport, &out);
        assert_eq!(sent, long);
        let s = splice_of(tiers, sport).unwrap();
        let mut acked = synack.clone();
        acked.flags = ACK;
        acked.seq = synack.seq.wrapping_add(1);
        acked.ack = s.leg_isn.wrapping_add(1 + long.len() as u32);
        xdp(tiers, &acked.build(), nb, Reason::SpliceBackendTranslated);
        assert_eq!(splice_of(tiers, sport).unwrap().state, SPLICE_ESTABLISHED);
        assert_eq!(
            tiers.table_sizes().unwrap().pending,
            0,
            "acknowledged: forgotten"
        );

        // Two ports 8,192 apart share a slot. While the first one's splice holds its port, the
        // second request goes to the pending map; each ACK carries its own request.
        let (p, q) = (62000u16, 62000 - 8192);
        tiers.set_splicing(Some((p, p))).unwrap();
        let first = request_of_len("/whoami", 300);
        let (c, _, _, c_out, _) = open(tiers, nc, 40160, &first);
        assert_eq!(packet::parse(&c_out).sport, p);
        assert_eq!(splice_of(tiers, 40160).unwrap().request_in_slot, 1);
        // (Backend segments are recognised by the configured range: answered before it changes.)
        assert_eq!(
            synack_and_request(tiers, nb, nb_mac, 40160, &c_out).1,
            first
        );
        tiers.set_splicing(Some((q, q))).unwrap();
        let second = request_of_len("/whoami", 200);
        let (_, _, _, d_out, _) = open(tiers, nc, 40161, &second);
        assert_eq!(packet::parse(&d_out).sport, q);
        assert_eq!(
            splice_of(tiers, 40161).unwrap().request_in_slot,
            0,
            "the slot is still the live splice's on port {p}"
        );
        assert_eq!(
            synack_and_request(tiers, nb, nb_mac, 40161, &d_out).1,
            second
        );

        // The first splice ends (client RST): its port, claimed again (by a leg to the other backend:
        // after a RST the port is quarantined for its own), stores and serves the new request, never
        // the old one.
        let mut reset = c.clone();
        reset.flags = RST;
        reset.seq = c.seq.wrapping_add(first.len() as u32);
        reset.payload.clear();
        xdp(tiers, &reset.build(), nc, Reason::SpliceClientTranslated);
        assert_eq!(splice_of(tiers, 40160), None);
        tiers.set_splicing(Some((p, p))).unwrap();
        let third = request_of_len("/cart", 250);
        let (_, _, _, e_out, _) = open(tiers, nc, 40162, &third);
        assert_eq!(packet::parse(&e_out).sport, p);
        assert_eq!(splice_of(tiers, 40162).unwrap().request_in_slot, 1);
        assert_eq!(
            synack_and_request(tiers, nb, nb_mac, 40162, &e_out).1,
            third
        );
    });
}

#[test]
fn the_way_to_a_backend_is_reused_for_a_second() {
    if !support::root_or_skip("the_way_to_a_backend_is_reused_for_a_second") {
        return;
    }
    in_node("fib", |tiers, nc, _nb, nb_mac| {
        let (_, _, action, looked_up, _) = open(tiers, nc, 40170, REQUEST);
        assert_eq!(action, XdpAction::Redirect);
        let first = packet::parse(&looked_up);
        assert_eq!((first.eth_dst, first.eth_src), (BACKEND_MAC, nb_mac));
        // The backend's neighbour entry changes (this thread is in the node's namespace).
        let moved_mac = [0x02, 0, 0, 0, 0x01, 0x99];
        run(&[
            "ip",
            "neigh",
            "replace",
            "198.18.1.2",
            "lladdr",
            "02:00:00:00:01:99",
            "dev",
            "nb",
            "nud",
            "permanent",
        ]);
        // Within the second: the cached way, and the same SYN as the helper's but for the connection's
        // own port and sequence number.
        let (_, _, action, cached, _) = open(tiers, nc, 40171, REQUEST);
        assert_eq!(action, XdpAction::Redirect);
        let second = packet::parse(&cached);
        assert_eq!(
            (second.eth_dst, second.eth_src),
            (BACKEND_MAC, nb_mac),
            "cached: the old neighbour for up to a second"
        );
        assert_eq!(
            (second.src, second.dst, second.dport, second.flags),
            (first.src, first.dst, first.dport, first.flags)
        );
        assert_eq!(second.tcp_options, first.tcp_options);
        assert_eq!(cached.len(), looked_up.len());
        assert!(second.ip_csum_ok && second.tcp_csum_ok);
        thread::sleep(std::time::Duration::from_millis(1100));
        let (_, _, action, fresh, _) = open(tiers, nc, 40172, REQUEST);
        assert_eq!(action, XdpAction::Redirect);
        let third = packet::parse(&fresh);
        assert_eq!(
            (third.eth_dst, third.eth_src),
            (moved_mac, nb_mac),
            "after a second the helper is asked again"
        );
    });
}

#[test]
fn retransmissions_and_resets_on_both_legs() {
    if !support::root_or_skip("retransmissions_and_resets_on_both_legs") {
        return;
    }
    in_node("rtx", |tiers, nc, nb, nb_mac| {
        // A lost SYN: the client's retransmitted first segment sends the same SYN again.
        let sport = 40200;
        let (client, _, action, first, _) = open(tiers, nc, sport, REQUEST);
        assert_eq!(action, XdpAction::Redirect);
        let (action, again) = xdp(tiers, &client.build(), nc, Reason::SpliceSynResent);
        assert_eq!(action, XdpAction::Redirect);
        assert_eq!(again, first, "the same SYN, byte for byte");
        // Client segments other than the first are dropped before the backend answers.
        let mut early = client.clone();
        early.seq = client.seq.wrapping_add(REQUEST.len() as u32);
        early.payload = b"x".to_vec();
        let (action, _) = xdp(tiers, &early.build(), nc, Reason::SpliceStrayDrop);
        assert_eq!(action, XdpAction::Drop);

        // The backend refuses: the next retransmission goes to Tier 3 (replayed SYN to the VIP).
        let syn = packet::parse(&first);
        let mut rst = from_backend(syn.sport, nb_mac, RST | ACK, 0, syn.seq.wrapping_add(1));
        rst.tcp_options.clear();
        let (action, _) = xdp(tiers, &rst.build(), nb, Reason::SpliceBackendRefused);
        assert_eq!(action, XdpAction::Drop);
        let (action, out) = xdp(tiers, &client.build(), nc, Reason::SpliceFallback);
        assert_eq!(action, XdpAction::Pass);
        let replayed = packet::parse(&out);
        assert_eq!(
            (replayed.src, replayed.dst, replayed.flags),
            (CLIENT, VIP, SYN)
        );
        assert_eq!(splice_of(tiers, sport), None);
        assert_eq!(tiers.splice_sizes().unwrap(), (0, 0));

        // A client RST on an established splice is forwarded and forgets the splice.
        let sport = 40300;
        let (client, _, _, first, _) = open(tiers, nc, sport, REQUEST);
        let syn = packet::parse(&first);
        let s = splice_of(tiers, sport).unwrap();
        let synack = from_backend(syn.sport, nb_mac, SYN | ACK, 5, s.leg_isn.wrapping_add(1));
        xdp(tiers, &synack.build(), nb, Reason::SpliceSynAck);
        let mut reset = client.clone();
        reset.flags = RST;
        reset.seq = client.seq.wrapping_add(REQUEST.len() as u32);
        reset.payload.clear();
        let (action, out) = xdp(tiers, &reset.build(), nc, Reason::SpliceClientTranslated);
        assert_eq!(action, XdpAction::Redirect);
        assert_eq!(packet::parse(&out).dst, BACKEND);
        assert_eq!(splice_of(tiers, sport), None);
        assert_eq!(tiers.splice_sizes().unwrap(), (0, 0));
    });
}

#[test]
fn duplicated_and_reordered_handshake_packets_and_a_taken_nat_port() {
    if !support::root_or_skip("duplicated_and_reordered_handshake_packets_and_a_taken_nat_port") {
        return;
    }
    in_node("dup", |tiers, nc, nb, nb_mac| {
        // A duplicated SYN: the same stateless SYN-ACK twice.
        let mut syn = Tcp4::syn(VIP, PORT);
        syn.sport = 40400;
        let (_, first) = xdp(tiers, &syn.build(), nc, Reason::SynCookieSent);
        let (_, again) = xdp(tiers, &syn.build(), nc, Reason::SynCookieSent);
        assert_eq!(first, again, "no state per SYN: the same SYN-ACK");
        let cookie = packet::parse(&first).seq;
        // The first data segment overtakes the handshake's ACK: it starts the splice on its own (its
        // ack carries the cookie); the late ACK, duplicated, is dropped without effect.
        let mut data = syn.clone();
        data.flags = PSH | ACK;
        data.seq = syn.seq.wrapping_add(1);
        data.ack = cookie.wrapping_add(1);
        data.tcp_options.clear();
        data.payload = REQUEST.to_vec();
        let (action, out) = xdp(tiers, &data.build(), nc, Reason::SpliceSynSent);
        assert_eq!(action, XdpAction::Redirect);
        let mut late = data.clone();
        late.flags = ACK;
        late.payload.clear();
        for _ in 0..2 {
            let (action, _) = xdp(tiers, &late.build(), nc, Reason::SpliceStrayDrop);
            assert_eq!(action, XdpAction::Drop);
        }
        assert_eq!(splice_of(tiers, 40400).unwrap().state, SPLICE_SYN_SENT);
        // The backend's SYN-ACK duplicated: recorded once, the duplicate passed to TC again (which
        // resends the request: our ACK may have been lost).
        let syn_out = packet::parse(&out);
        let s = splice_of(tiers, 40400).unwrap();
        let mut synack = from_backend(
            syn_out.sport,
            nb_mac,
            SYN | ACK,
            77,
            s.leg_isn.wrapping_add(1),
        );
        synack.tcp_options.clear();
        for _ in 0..2 {
            let (action, _) = xdp(tiers, &synack.build(), nb, Reason::SpliceSynAck);
            assert_eq!(action, XdpAction::Pass);
        }
        // A SYN-ACK from another ISN on the same leg is not the backend's answer: dropped.
        synack.seq = 78;
        let (action, _) = xdp(tiers, &synack.build(), nb, Reason::SpliceStrayDrop);
        assert_eq!(action, XdpAction::Drop);
        assert_eq!(splice_of(tiers, 40400).unwrap().backend_isn, 77);

        // NAT ports: with a range of one port, a second client to the same backend finds it taken and
        // is handed to Tier 3 (counted); once the first splice ends, the port serves the next client.
        // (Not 61000: the splice above, still open, took the first port of the default range.)
        assert_eq!(s.nat_port, 61000u16.to_be());
        tiers.set_splicing(Some((62000, 62000))).unwrap();
        let (_, _, action, out, moved) = open(tiers, nc, 40500, REQUEST);
        assert_eq!(action, XdpAction::Redirect, "{moved:?}");
        assert_eq!(packet::parse(&out).sport, 62000);
        let (_, _, action, _, mut moved) = open(tiers, nc, 40501, REQUEST);
        moved.sort();
        assert_eq!(
            moved,
            vec![
                (Reason::HandoffSynReplayed.name(), 1),
                (Reason::SpliceNatExhausted.name(), 1)
            ]
        );
        assert_eq!(action, XdpAction::Pass, "the replayed SYN, to Tier 3");
        assert_eq!(splice_of(tiers, 40501), None);
        let mut reset = data.clone();
        reset.sport = 40500;
        let first_40500 = splice_of(tiers, 40500).unwrap();
        reset.seq = first_40500.first_seq();
        reset.flags = RST;
        reset.payload.clear();
        xdp(tiers, &reset.build(), nc, Reason::SpliceStrayDrop);
        assert_eq!(splice_of(tiers, 40500), None, "a RST forgets the splice");
        // Free again, for another backend at once (for this one after the quarantine, see
        // `a_nat_port_released_without_a_clean_close_is_quarantined_for_its_backend`).
        let cart = b"GET /cart HTTP/1.1\r\nHost: shop.example\r\n\r\n";
        let (_, _, action, out, moved) = open(tiers, nc, 40502, cart);
        assert_eq!(action, XdpAction::Redirect, "{moved:?}");
        assert_eq!(packet::parse(&out).sport, 62000, "the port is free again");
    });
}

#[test]
fn nat_ports_are_claimed_once_per_node_and_stale_ones_reclaimed() {
    if !support::root_or_skip("nat_ports_are_claimed_once_per_node_and_stale_ones_reclaimed") {
        return;
    }
    in_node("nat", |tiers, nc, nb, nb_mac| {
        let key = |sport| FlowKey::new(CLIENT.octets(), sport, VIP.octets(), PORT);
        tiers.set_splicing(Some((61000, 61000))).unwrap();
        let (_, data, first, nat_port) = established(tiers, nc, nb, nb_mac, 40600);
        assert_eq!(nat_port, 61000);
        assert_eq!(tiers.splice_sizes().unwrap(), (1, 1));

        // Claimed twice: a port is the node's, not the backend's. A client routed to the other
        // backend (/cart → 198.18.1.3) finds the one port held and is handed to Tier 3, counted.
        let cart = b"GET /cart HTTP/1.1\r\nHost: shop.example\r\n\r\n";
        let (_, _, action, out, mut moved) = open(tiers, nc, 40601, cart);
        moved.sort();
        assert_eq!(
            moved,
            vec![
                (Reason::HandoffSynReplayed.name(), 1),
                (Reason::SpliceNatExhausted.name(), 1)
            ]
        );
        assert_eq!(action, XdpAction::Pass);
        assert_eq!(packet::parse(&out).dst, VIP, "replayed to the listener");

        // A segment to the held port from another backend port, or from another backend, is not the
        // leg's: passed untouched, the splice unchanged.
        for (src, sport) in [(BACKEND, 8081), (Ipv4Addr::new(198, 18, 1, 3), 8080)] {
            let mut foreign = data.clone();
            foreign.src = src;
            foreign.sport = sport;
            let frame = foreign.build();
            let (action, out) = xdp(tiers, &frame, nb, Reason::NotVipPass);
            assert_eq!((action, out), (XdpAction::Pass, frame), "{src}:{sport}");
        }
        assert_eq!(splice_of(tiers, 40600), Some(first));
        let leg = leg_of(tiers, 40600).unwrap();
        assert_eq!(leg.flow, key(40600));

        // The splice evicted behind the leg's back (as the LRU splice table may): the port stays
        // held while its claim is fresh (a claim has no splice for the moment a start takes), so the
        // next client is handed to Tier 3; a backend segment the leg cannot judge alone (a RST)
        // finds no splice and passes.
        assert!(tiers.evict_splice(&key(40600)).unwrap());
        assert_eq!(tiers.splice_sizes().unwrap(), (0, 1));
        let (_, _, action, _, moved) = open(tiers, nc, 40602, REQUEST);
        assert_eq!(action, XdpAction::Pass, "{moved:?}");
        assert!(
            moved.contains(&(Reason::SpliceNatExhausted.name(), 1)),
            "{moved:?}"
        );
        let mut backend_rst = data.clone();
        backend_rst.flags = RST;
        backend_rst.payload.clear();
        xdp(tiers, &backend_rst.build(), nb, Reason::NotVipPass);
        assert_eq!(
            tiers.splice_sizes().unwrap(),
            (0, 1),
            "a fresh claim is kept"
        );

        // Once older than LEG_STALE_NS, the next allocation that probes the slot takes it over.
        thread::sleep(std::time::Duration::from_millis(1100));
        let (_, _, action, out, mut moved) = open(tiers, nc, 40603, REQUEST);
        moved.sort();
        assert_eq!(
            moved,
            vec![
                (Reason::SpliceNatReclaimed.name(), 1),
                (Reason::SpliceSynSent.name(), 1)
            ]
        );
        assert_eq!(action, XdpAction::Redirect);
        assert_eq!(packet::parse(&out).sport, 61000, "the stale port reclaimed");
        let taken = leg_of(tiers, 40603).unwrap();
        assert_eq!(taken.flow, key(40603));
        assert!(taken.claim > leg.claim, "a new claim value");
        assert_eq!(tiers.splice_sizes().unwrap(), (1, 1));

        // Released exactly once: the client's RST frees the port; the backend's RST after it finds
        // a free slot and passes; the next client claims the port without a takeover.
        let reset = |sport: u16| {
            let s = splice_of(tiers, sport).unwrap();
            let mut rst = Tcp4::syn(VIP, PORT);
            rst.sport = sport;
            rst.seq = s.first_seq();
            rst.flags = RST;
            rst.tcp_options.clear();
            rst
        };
        xdp(tiers, &reset(40603).build(), nc, Reason::SpliceStrayDrop);
        assert_eq!(tiers.splice_sizes().unwrap(), (0, 0));
        xdp(tiers, &backend_rst.build(), nb, Reason::NotVipPass);
        assert_eq!(tiers.splice_sizes().unwrap(), (0, 0));
        // (A client of the other backend: the RST quarantines the port for this one.)
        let (_, _, action, _, moved) = open(tiers, nc, 40604, cart);
        assert_eq!(action, XdpAction::Redirect);
        assert_eq!(moved, vec![(Reason::SpliceSynSent.name(), 1)]);

        // A leg whose splice was evicted is also freed by its next backend segment once stale.
        assert!(tiers.evict_splice(&key(40604)).unwrap());
        thread::sleep(std::time::Duration::from_millis(1100));
        let mut cart_data = data.clone();
        cart_data.src = Ipv4Addr::new(198, 18, 1, 3);
        xdp(tiers, &cart_data.build(), nb, Reason::NotVipPass);
        assert_eq!(
            tiers.splice_sizes().unwrap(),
            (0, 0),
            "freed by the backend segment"
        );
    });
}

/// NAT port reuse: a leg that ends without a clean close (a RST, a reset, a move) may leave the
/// backend's socket open if our RST is lost, and a new leg on the same 4-tuple would meet it. So the
/// port is not claimed again for the same backend within `NAT_QUARANTINE_NS`; other backends may take
/// it at once, and the backend itself after the quarantine.
#[test]
fn a_nat_port_released_without_a_clean_close_is_quarantined_for_its_backend() {
    if !support::root_or_skip(
        "a_nat_port_released_without_a_clean_close_is_quarantined_for_its_backend",
    ) {
        return;
    }
    in_node("quar", |tiers, nc, _nb, _nb_mac| {
        let cart = b"GET /cart HTTP/1.1\r\nHost: shop.example\r\n\r\n";
        let reset = |tiers: &KernelTiers, sport: u16| {
            let s = splice_of(tiers, sport).unwrap();
            let mut rst = Tcp4::syn(VIP, PORT);
            rst.sport = sport;
            rst.seq = s.first_seq();
            rst.flags = RST;
            rst.tcp_options.clear();
            xdp(tiers, &rst.build(), nc, Reason::SpliceStrayDrop);
            assert_eq!(splice_of(tiers, sport), None, "the RST ends the splice");
        };
        let tier_3 = vec![
            (Reason::HandoffSynReplayed.name(), 1),
            (Reason::SpliceNatExhausted.name(), 1),
        ];
        let spliced = |tiers: &KernelTiers, sport: u16, request: &[u8], port: u16| {
            let (_, _, action, out, moved) = open(tiers, nc, sport, request);
            assert_eq!(moved, vec![(Reason::SpliceSynSent.name(), 1)], "{sport}");
            assert_eq!(action, XdpAction::Redirect);
            assert_eq!(packet::parse(&out).sport, port, "{sport}");
        };
        let handed_off = |tiers: &KernelTiers, sport: u16, request: &[u8]| {
            let (_, _, action, _, mut moved) = open(tiers, nc, sport, request);
            moved.sort();
            assert_eq!(moved, tier_3, "{sport}");
            assert_eq!(action, XdpAction::Pass, "the replayed SYN, to Tier 3");
        };

        // A leg to shop's backend on the range's one port, ended by the client's RST.
        tiers.set_splicing(Some((61000, 61000))).unwrap();
        spliced(tiers, 40800, REQUEST, 61000);
        reset(tiers, 40800);
        assert_eq!(tiers.splice_sizes().unwrap(), (0, 0), "released");
        // Not claimed again for the same backend at once: with no other port, Tier 3 takes the
        // client; with another port in the range, that one.
        handed_off(tiers, 40801, REQUEST);
        tiers.set_splicing(Some((61001, 61001))).unwrap();
        spliced(tiers, 40802, REQUEST, 61001);
        // Another backend (cart's) may take the quarantined port at once; its own RST quarantines
        // the port for cart in turn.
        tiers.set_splicing(Some((61000, 61000))).unwrap();
        spliced(tiers, 40803, cart, 61000);
        reset(tiers, 40803);
        handed_off(tiers, 40804, cart);
        // After the quarantine, the same backend gets the same port again.
        thread::sleep(std::time::Duration::from_nanos(
            NAT_QUARANTINE_NS + 100_000_000,
        ));
        spliced(tiers, 40805, cart, 61000);
    });
}

#[test]
fn hits_the_splice_cannot_carry_are_handed_to_tier_3() {
    if !support::root_or_skip("hits_the_splice_cannot_carry_are_handed_to_tier_3") {
        return;
    }
    in_node("miss", |tiers, nc, _, _| {
        for (i, (request, reason)) in [
            (
                &b"GET /whoami HTTP/1.1\r\nHost: shop.example\r\nconnection: keep-alive\r\n\r\n"[..],
                Reason::SpliceHeaderUnsupported,
            ),
            (
                b"GET /whoami HTTP/1.1\r\nHost: shop.example\r\nUpgrade: websocket\r\n\r\n",
                Reason::SpliceHeaderUnsupported,
            ),
            (
                b"GET /whoami HTTP/1.1\r\nContent-Length: 0\r\nHost: shop.example\r\n\r\n",
                Reason::SpliceHeaderUnsupported,
            ),
            (
                b"GET /whoami HTTP/1.1\r\nHost: shop.example\r\nExpect: 100-continue\r\n\r\n",
                Reason::SpliceHeaderUnsupported,
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let sport = 40400 + i as u16;
            let (_, _, action, out, moved) = open(tiers, nc, sport, request);
            assert_eq!(action, XdpAction::Pass, "case {i}");
            assert_eq!(
                moved,
                {
                    let mut v = vec![
                        (reason.name(), 1),
                        (Reason::HandoffSynReplayed.name(), 1),
                    ];
                    v.sort_by_key(|(n, _)| {
                        rauta_dataplane::Reason::ALL
                            .iter()
                            .position(|r| r.name() == *n)
                    });
                    v
                },
                "case {i}"
            );
            assert_eq!(packet::parse(&out).dst, VIP, "case {i}: replayed to the listener");
            assert_eq!(splice_of(tiers, sport), None, "case {i}");
        }
        assert_eq!(tiers.splice_sizes().unwrap(), (0, 0));
    });
}

/// The replayed SYN a first data segment `data` becomes on its way to Tier 3 (built by the shared
/// builder from the segment's fields: the client's ISN, the cookie's `mss`, the options `agreed` and
/// the client's timestamp `tsval`).
fn replayed_syn(data: &Tcp4, mss: u16, agreed: tcpopt::Agreed, tsval: u32) -> Vec<u8> {
    let flow = SynV4 {
        client_mac: data.src_mac,
        server_mac: data.dst_mac,
        client_ip: data.src.octets(),
        server_ip: data.dst.octets(),
        client_port: data.sport.to_be_bytes(),
        server_port: data.dport.to_be_bytes(),
        client_seq: data.seq.wrapping_sub(1),
    };
    let window = tcpopt::rescale_window(data.window, tcpopt::shift_of(agreed.wscale), 0);
    let options = tcpopt::syn_options(mss, &agreed, agreed.wscale, (tsval, 0));
    let mut frame = [0u8; REPLAY_SYN_V4_LEN];
    build_replay_syn_v4(&flow, window, &options, &mut frame);
    frame.to_vec()
}

/// A first data segment that goes to Tier 3 leaves the XDP programs as the client's SYN to the
/// listener, byte for byte the same whichever program decided it: the route program (a miss), the
/// splice's header step (a hit it cannot carry) or the splice start (no NAT port). Since session 11
/// the packet stays the data segment until that decision (a hit never pays for the replayed SYN), so
/// each of these exits writes it.
#[test]
fn every_way_to_tier_3_passes_the_same_replayed_syn() {
    if !support::root_or_skip("every_way_to_tier_3_passes_the_same_replayed_syn") {
        return;
    }
    in_node("ksyn", |tiers, nc, _, _| {
        let miss = &b"GET /nothing HTTP/1.1\r\nHost: shop.example\r\n\r\n"[..];
        let unsupported =
            &b"GET /whoami HTTP/1.1\r\nHost: shop.example\r\nconnection: keep-alive\r\n\r\n"[..];
        // One NAT port: the first hit takes it, the second finds none.
        tiers.set_splicing(Some((62000, 62000))).unwrap();
        let (_, _, action, _, _) = open(tiers, nc, 41000, REQUEST);
        assert_eq!(action, XdpAction::Redirect, "the first hit is spliced");
        for (sport, request, reason) in [
            (41001, miss, None),
            (41002, unsupported, Some(Reason::SpliceHeaderUnsupported)),
            (41003, REQUEST, Some(Reason::SpliceNatExhausted)),
        ] {
            let (data, _, action, out, moved) = open(tiers, nc, sport, request);
            assert_eq!(action, XdpAction::Pass, "port {sport}: to the listener");
            assert!(
                moved.contains(&(Reason::HandoffSynReplayed.name(), 1)),
                "port {sport}: {moved:?}"
            );
            if let Some(reason) = reason {
                assert!(
                    moved.contains(&(reason.name(), 1)),
                    "port {sport}: {moved:?}"
                );
            }
            // The data segment carries no timestamps: MSS only.
            assert_eq!(
                out,
                replayed_syn(&data, 1460, tcpopt::Agreed::NONE, 0),
                "port {sport}"
            );
            assert_eq!(splice_of(tiers, sport), None, "port {sport}");
        }

        // With timestamps echoed: the agreement the echo carries (SACK, window scale 7) and the
        // client's own timestamp go on to the listener.
        let mut syn = Tcp4::syn(VIP, PORT);
        syn.sport = 41004;
        let (action, out) = xdp(tiers, &syn.build(), nc, Reason::SynCookieSent);
        assert_eq!(action, XdpAction::Tx);
        let synack = packet::parse(&out);
        let ours = u32::from_be_bytes(synack.tcp_options[8..12].try_into().unwrap());
        let mut data = syn.clone();
        data.flags = PSH | ACK;
        data.seq = syn.seq.wrapping_add(1);
        data.ack = synack.seq.wrapping_add(1);
        data.tcp_options = ts_options(777, ours, None);
        data.window = 502;
        data.payload = miss.to_vec();
        let run = tiers.run_once_from(&data.build(), nc).unwrap();
        assert_eq!(run.action, XdpAction::Pass);
        let agreed = tcpopt::Agreed::from_echo(Some(ours));
        assert_eq!((agreed.wscale, agreed.sack, agreed.ts), (7, 1, 1));
        assert_eq!(run.output, replayed_syn(&data, 1460, agreed, 777));
    });
}

#[test]
fn splices_to_a_removed_endpoint_are_reset_and_the_others_untouched() {
    if !support::root_or_skip("splices_to_a_removed_endpoint_are_reset_and_the_others_untouched") {
        return;
    }
    let node = RoutedNode::create("rauta-spreset");
    let ns = node.ns.clone();
    thread::spawn(move || {
        netns::enter(&ns).unwrap();
        let mut tiers =
            KernelTiers::load(std::net::SocketAddrV4::new(VIP, PORT), &[]).expect("load");
        let both = table(&format!(
            "{INGRESS}{}",
            service("shop", &["198.18.1.2", "198.18.1.3"])
        ));
        tiers.apply_routes(&both).unwrap();
        let nc = ifindex("nc");
        // Open splices until each endpoint has one (Maglev spreads client ports over both).
        let mut by_backend = std::collections::BTreeMap::new();
        for sport in 41000..41100u16 {
            let (client, _, action, out, moved) = open(&tiers, nc, sport, REQUEST);
            assert_eq!(action, XdpAction::Redirect, "{moved:?}");
            let backend = packet::parse(&out).dst;
            by_backend.entry(backend).or_insert((sport, client));
            if by_backend.len() == 2 {
                break;
            }
        }
        assert_eq!(by_backend.len(), 2, "both endpoints got a splice");
        let kept_port = by_backend[&BACKEND].0;
        let (gone_port, gone_client) = by_backend[&Ipv4Addr::new(198, 18, 1, 3)].clone();

        // The endpoint 198.18.1.3 leaves the table.
        let one = table(&format!("{INGRESS}{}", service("shop", &["198.18.1.2"])));
        let applied = tiers.apply_routes(&one).unwrap();
        assert!(applied.reset_splices >= 1, "{applied:?}");
        assert_eq!(
            splice_of(&tiers, kept_port).unwrap().state,
            SPLICE_SYN_SENT,
            "the other splice is untouched"
        );

        // The client's next segment on the removed endpoint's splice is answered with a RST.
        let mut ack = gone_client.clone();
        ack.flags = ACK;
        ack.seq = gone_client.seq.wrapping_add(REQUEST.len() as u32);
        ack.ack = 0x1234_5678;
        ack.payload.clear();
        let (action, out) = xdp(&tiers, &ack.build(), nc, Reason::SpliceReset);
        assert_eq!(action, XdpAction::Tx, "back out of the client's interface");
        let rst = packet::parse(&out);
        assert_eq!(
            (rst.src, rst.dst, rst.sport, rst.dport),
            (VIP, CLIENT, PORT, gone_port)
        );
        assert_eq!((rst.flags, rst.seq), (RST, 0x1234_5678));
        assert_eq!(
            (rst.eth_dst, rst.eth_src),
            (packet::CLIENT_MAC, packet::SERVER_MAC)
        );
        assert!(rst.ip_csum_ok && rst.tcp_csum_ok);
        assert_eq!(splice_of(&tiers, gone_port), None);
        assert!(splice_of(&tiers, kept_port).is_some());
    })
    .join()
    .expect("the test body");
    drop(node);
}

/// The client ACK `ack` of the splice `s` on `nat_port`, as it must leave towards the backend.
fn assert_translated_to_backend(
    out: &[u8],
    ack: &Tcp4,
    s: &SpliceState,
    nat_port: u16,
    nb_mac: [u8; 6],
) {
    let p = packet::parse(out);
    assert_eq!((p.eth_dst, p.eth_src), (BACKEND_MAC, nb_mac));
    assert_eq!(
        (p.src, p.dst, p.sport, p.dport),
        (NODE, BACKEND, nat_port, 8080)
    );
    assert_eq!(
        (p.flags, p.seq, p.ack),
        (ACK, s.to_backend_seq(ack.seq), s.to_backend_ack(ack.ack))
    );
    assert!(p.ip_csum_ok && p.tcp_csum_ok);
}

/// Two client ports of `CLIENT` whose connections to the VIP share a `RAUTA_CLIENT_INDEX` slot.
fn sharing_an_index_slot() -> (u16, u16) {
    let mut seen = std::collections::HashMap::new();
    for sport in 42000u16..=65000 {
        let slot = client_index(&FlowKey::new(CLIENT.octets(), sport, VIP.octets(), PORT));
        if let Some(first) = seen.insert(slot, sport) {
            return (first, sport);
        }
    }
    panic!("no two ports share a slot");
}

/// Client ACKs of established splices find their leg through the client index, not the splice table.
/// Two clients whose 4-tuples share an index slot are both translated: the first established owns the
/// slot, the other's ACKs look up the splice table (the overflow). Taking the splice table away (as
/// its LRU eviction would) shows which is which: only the slot's owner is still translated.
#[test]
fn client_acks_that_share_an_index_slot_are_both_translated() {
    if !support::root_or_skip("client_acks_that_share_an_index_slot_are_both_translated") {
        return;
    }
    in_node("kslot", |tiers, nc, nb, nb_mac| {
        let key = |sport| FlowKey::new(CLIENT.octets(), sport, VIP.octets(), PORT);
        let (a, b) = sharing_an_index_slot();
        let (ack_a, _, s_a, port_a) = established(tiers, nc, nb, nb_mac, a);
        let (ack_b, _, s_b, port_b) = established(tiers, nc, nb, nb_mac, b);
        assert_ne!(port_a, port_b);
        for _ in 0..2 {
            let (action, out) = xdp(tiers, &ack_a.build(), nc, Reason::SpliceClientTranslated);
            assert_eq!(action, XdpAction::Redirect);
            assert_translated_to_backend(&out, &ack_a, &s_a, port_a, nb_mac);
            let (action, out) = xdp(tiers, &ack_b.build(), nc, Reason::SpliceClientTranslated);
            assert_eq!(action, XdpAction::Redirect);
            assert_translated_to_backend(&out, &ack_b, &s_b, port_b, nb_mac);
        }
        assert_eq!(leg_of(tiers, a).unwrap().client_ready, LEG_READY);
        assert_eq!(leg_of(tiers, b).unwrap().client_ready, LEG_READY);

        assert!(tiers.evict_splice(&key(a)).unwrap());
        assert!(tiers.evict_splice(&key(b)).unwrap());
        let (action, out) = xdp(tiers, &ack_a.build(), nc, Reason::SpliceClientTranslated);
        assert_eq!(
            action,
            XdpAction::Redirect,
            "the slot's owner, from its leg"
        );
        assert_translated_to_backend(&out, &ack_a, &s_a, port_a, nb_mac);
        let (action, _) = xdp(tiers, &ack_b.build(), nc, Reason::AckCookieBad);
        assert_eq!(
            action,
            XdpAction::Drop,
            "the overflow had only the splice table"
        );
        // Anything but a pure ACK needs the splice, even for the slot's owner.
        let mut data_a = ack_a.clone();
        data_a.flags = PSH | ACK;
        data_a.payload = b"GET / HTTP/1.1\r\n".to_vec();
        xdp(tiers, &data_a.build(), nc, Reason::AckCookieBad);
    });
}

/// A NAT port released and claimed again by another client: the old client's index slot still names
/// the port, but not the claim, so its segments are never translated onto the new client's leg. A
/// FIN from the backend, and a reset of the splice, take the leg's client side away as well.
#[test]
fn a_reclaimed_port_never_translates_the_old_clients_segments() {
    if !support::root_or_skip("a_reclaimed_port_never_translates_the_old_clients_segments") {
        return;
    }
    in_node("kslotre", |tiers, nc, nb, nb_mac| {
        tiers.set_splicing(Some((61000, 61000))).unwrap();
        let (ack_a, data_a, s_a, port) = established(tiers, nc, nb, nb_mac, 40700);
        assert_eq!(port, 61000);
        let (_, out) = xdp(tiers, &ack_a.build(), nc, Reason::SpliceClientTranslated);
        assert_translated_to_backend(&out, &ack_a, &s_a, port, nb_mac);

        // The backend closes: the client's ACK of its FIN goes through the splice, which records it.
        let mut fin = data_a.clone();
        fin.flags = FIN | ACK;
        fin.payload.clear();
        xdp(tiers, &fin.build(), nb, Reason::SpliceBackendTranslated);
        assert_eq!(leg_of(tiers, 40700).unwrap().client_ready, 0);
        let mut fin_ack = ack_a.clone();
        fin_ack.ack = s_a.to_client_seq(fin.seq).wrapping_add(1);
        xdp(tiers, &fin_ack.build(), nc, Reason::SpliceClientTranslated);
        assert_ne!(
            splice_of(tiers, 40700).unwrap().fins & rauta_common::splice::SPLICE_FIN_BACKEND_ACKED,
            0,
            "the splice saw the client's ACK of the FIN"
        );
        // The client resets: the port is released (quarantined for this backend).
        let mut rst = ack_a.clone();
        rst.flags = RST;
        xdp(tiers, &rst.build(), nc, Reason::SpliceClientTranslated);
        assert_eq!(tiers.splice_sizes().unwrap(), (0, 0));

        // Another client takes the port, on the other backend (the quarantine keeps this one off).
        let cart = b"GET /cart HTTP/1.1\r\nHost: shop.example\r\n\r\n";
        let (client_c, cookie_c, action, out, moved) = open(tiers, nc, 40701, cart);
        assert_eq!(action, XdpAction::Redirect, "{moved:?}");
        let syn_c = packet::parse(&out);
        assert_eq!(syn_c.sport, 61000, "the same port, claimed again");
        let s_c = splice_of(tiers, 40701).unwrap();
        let cart_addr = Ipv4Addr::new(198, 18, 1, 3);
        let mut synack = from_backend(
            61000,
            nb_mac,
            SYN | ACK,
            0x6000_0000,
            s_c.leg_isn.wrapping_add(1),
        );
        synack.src = cart_addr;
        xdp(tiers, &synack.build(), nb, Reason::SpliceSynAck);
        assert_eq!(
            tiers.run_tc_ingress_once(&synack.build()).unwrap().action,
            TC_ACT_REDIRECT
        );
        let mut ack = synack.clone();
        ack.flags = ACK;
        ack.seq = 0x6000_0001;
        ack.ack = s_c.leg_isn.wrapping_add(1 + cart.len() as u32);
        ack.tcp_options.clear();
        xdp(tiers, &ack.build(), nb, Reason::SpliceBackendTranslated);
        assert_eq!(leg_of(tiers, 40701).unwrap().client_ready, LEG_READY);
        let mut ack_c = client_c.clone();
        ack_c.flags = ACK;
        ack_c.seq = client_c.seq.wrapping_add(cart.len() as u32);
        ack_c.ack = cookie_c.wrapping_add(1);
        ack_c.payload.clear();
        let (action, out) = xdp(tiers, &ack_c.build(), nc, Reason::SpliceClientTranslated);
        assert_eq!(action, XdpAction::Redirect);
        assert_eq!(packet::parse(&out).dst, cart_addr);

        // The old client's segments (its index slot still names port 61000) find nothing.
        let (action, _) = xdp(tiers, &ack_a.build(), nc, Reason::AckCookieBad);
        assert_eq!(action, XdpAction::Drop);

        // The new client's splice reset (its endpoint leaves the table): its next ACK is answered
        // with a RST, not translated from the leg.
        let gone = table(&format!(
            "{INGRESS}{}{}",
            service("shop", &["198.18.1.2"]),
            service("cart", &["198.18.1.4"])
        ));
        assert!(tiers.apply_routes(&gone).unwrap().reset_splices >= 1);
        assert_eq!(leg_of(tiers, 40701).unwrap().client_ready, 0);
        let (action, out) = xdp(tiers, &ack_c.build(), nc, Reason::SpliceReset);
        assert_eq!(action, XdpAction::Tx);
        assert_eq!(packet::parse(&out).flags, RST);
    });
}

/// Median `BPF_PROG_RUN` duration (ns) of each step of a splice, 1000 runs each with `repeat = 1` (the
/// kernel re-runs repetitions on the packet the previous run rewrote). The not-VIP pass is the harness
/// baseline: subtract it to get the program's own work. Run with
/// `cargo test -p rauta-dataplane --test splice_packets -- --ignored --nocapture` (as root).
#[test]
#[ignore = "measurement, run on demand"]
fn median_cost_of_the_splice() {
    if !support::root_or_skip("median_cost_of_the_splice") {
        return;
    }
    in_node("cost", |tiers, nc, nb, nb_mac| {
        // About 2,000 splices stay open to one backend: with the default 4,536 NAT ports, eight probes
        // all finding a taken port became likely towards the end (a hit fell back to Tier 3 and the
        // test failed, 3 in 8 runs). The whole range above the well-known ports keeps that negligible.
        tiers.set_splicing(Some((1024, 65535))).unwrap();
        const RUNS: usize = 1000;
        let ns = |run: &rauta_dataplane::PacketRun| run.duration.as_nanos() as u64;
        // Rows: the harness baseline, then one per step, each measured without and with timestamps
        // (what a Linux client sends on every segment once they are agreed).
        let mut rows: Vec<(&str, Vec<u64>)> = [
            "SYN -> cookie SYN-ACK (XDP_TX)",
            "first GET, miss -> hand-off to Tier 3 (1 tail call)",
            "first GET, hit -> SYN to the backend (3 tail calls)",
            "backend SYN-ACK recorded (XDP)",
            "backend SYN-ACK -> ACK + request (TC ingress)",
            "backend data -> client, 1400 B (XDP_REDIRECT)",
            "client ACK -> backend (XDP_REDIRECT)",
            "  the same with timestamps: backend data -> client",
            "  the same with timestamps: client ACK -> backend",
            "response head -> client, 1400 B (1 tail call)",
            "follow-up GET, same backend (2 tail calls)",
        ]
        .iter()
        .map(|name| (*name, Vec::with_capacity(RUNS)))
        .collect();
        let mut baseline = Vec::new();
        let mut other = Tcp4::syn(Ipv4Addr::new(198, 18, 0, 99), PORT);
        other.flags = ACK;
        for i in 0..RUNS {
            baseline.push(ns(&tiers.run_once_from(&other.build(), nc).unwrap()));
            for with_ts in [false, true] {
                let sport = if with_ts { 30000 } else { 20000 } + i as u16;
                let mut s = Tcp4::syn(VIP, PORT);
                s.sport = sport;
                let run = tiers.run_once_from(&s.build(), nc).unwrap();
                if !with_ts {
                    rows[0].1.push(ns(&run));
                }
                let synack_out = packet::parse(&run.output);
                let cookie = synack_out.seq;
                let (buf, w) = options_of(&synack_out);
                let (ours, _) = tcpopt::timestamps(&buf, &w).unwrap();
                let mut data = s.clone();
                data.flags = PSH | ACK;
                data.seq = s.seq.wrapping_add(1);
                data.ack = cookie.wrapping_add(1);
                data.tcp_options = if with_ts {
                    ts_options(1000, ours, None)
                } else {
                    Vec::new()
                };
                if !with_ts {
                    // A miss on another connection of the same client: the hand-off's cost.
                    let mut miss = data.clone();
                    miss.sport = sport + 5000;
                    let mut miss_syn = s.clone();
                    miss_syn.sport = miss.sport;
                    let run = tiers.run_once_from(&miss_syn.build(), nc).unwrap();
                    miss.ack = packet::parse(&run.output).seq.wrapping_add(1);
                    miss.payload = b"GET /miss HTTP/1.1\r\nHost: shop.example\r\n\r\n".to_vec();
                    let run = tiers.run_once_from(&miss.build(), nc).unwrap();
                    assert_eq!(run.action, XdpAction::Pass);
                    rows[1].1.push(ns(&run));
                }
                data.payload = REQUEST.to_vec();
                let run = tiers.run_once_from(&data.build(), nc).unwrap();
                assert_eq!(run.action, XdpAction::Redirect);
                if !with_ts {
                    rows[2].1.push(ns(&run));
                }
                let out = packet::parse(&run.output);
                let state = splice_of(tiers, sport).unwrap();
                let mut synack = from_backend(
                    out.sport,
                    nb_mac,
                    SYN | ACK,
                    77,
                    state.leg_isn.wrapping_add(1),
                );
                synack.tcp_options = if with_ts {
                    let mut o = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 1, 0];
                    o.extend_from_slice(&state.ts_leg.to_be_bytes());
                    o.extend_from_slice(&[1, 3, 3, 7]);
                    o
                } else {
                    vec![2, 4, 0x05, 0xb4]
                };
                let xdp_run = ns(&tiers.run_once_from(&synack.build(), nb).unwrap());
                let tc_run = tiers
                    .run_tc_ingress_once(&synack.build())
                    .unwrap()
                    .duration
                    .as_nanos() as u64;
                if !with_ts {
                    rows[3].1.push(xdp_run);
                    rows[4].1.push(tc_run);
                }
                let mut response = synack.clone();
                response.flags = PSH | ACK;
                response.seq = 78;
                response.ack = state.leg_isn.wrapping_add(1 + REQUEST.len() as u32 + 18);
                response.tcp_options = if with_ts {
                    ts_options(256 + 5, state.ts_leg + 5, None)
                } else {
                    Vec::new()
                };
                // One 2,800-byte response in two segments: the first carries its head (framed by the
                // response program), the second only body (translated, nothing else).
                let head_of = |body: usize| {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body}\r\n\r\n"
                    )
                    .into_bytes()
                };
                // The body's length has four digits either way.
                let head = head_of(2800 - head_of(1000).len());
                response.payload = head.clone();
                response.payload.resize(1400, b'x');
                let head_run = ns(&tiers.run_once_from(&response.build(), nb).unwrap());
                response.seq = 78 + 1400;
                response.payload = vec![b'x'; 1400];
                let to_client = ns(&tiers.run_once_from(&response.build(), nb).unwrap());
                let mut ack = data.clone();
                ack.flags = ACK;
                ack.seq = data.seq.wrapping_add(REQUEST.len() as u32);
                ack.ack = cookie.wrapping_add(1 + 2800);
                ack.tcp_options = if with_ts {
                    ts_options(1005, ours + 5, None)
                } else {
                    Vec::new()
                };
                ack.payload.clear();
                let to_backend = ns(&tiers.run_once_from(&ack.build(), nc).unwrap());
                let (a, b) = if with_ts { (7, 8) } else { (5, 6) };
                rows[a].1.push(to_client);
                rows[b].1.push(to_backend);
                if !with_ts {
                    rows[9].1.push(head_run);
                    // The next request on the kept-alive connection, to the same route.
                    let mut next = ack.clone();
                    next.flags = PSH | ACK;
                    next.payload = REQUEST.to_vec();
                    let run = tiers.run_once_from(&next.build(), nc).unwrap();
                    assert_eq!(run.action, XdpAction::Redirect);
                    rows[10].1.push(ns(&run));
                }
            }
        }
        let base = median_ns(baseline);
        println!(
            "median BPF_PROG_RUN ns over {RUNS} runs (harness baseline, not-VIP pass: {base} ns):"
        );
        for (name, v) in rows {
            let m = median_ns(v);
            println!(
                "  {name:<52} {m:>6} ns  ({:>5} ns above baseline)",
                m.saturating_sub(base)
            );
        }
    });
}

#[test]
fn options_are_agreed_with_both_sides_and_translated_both_ways() {
    if !support::root_or_skip("options_are_agreed_with_both_sides_and_translated_both_ways") {
        return;
    }
    in_node("opts", |tiers, nc, nb, nb_mac| {
        let sport = 40300;
        let vip_wscale = rauta_dataplane::node_window_scale();
        // 1. A Linux SYN (MSS 1460, SACK, timestamps, window scale 7): everything agreed, the
        //    agreement in our timestamp.
        let mut syn = Tcp4::syn(VIP, PORT);
        syn.sport = sport;
        let (_, out) = xdp(tiers, &syn.build(), nc, Reason::SynCookieSent);
        let synack = packet::parse(&out);
        let (buf, w) = options_of(&synack);
        let (t0, _) = tcpopt::timestamps(&buf, &w).expect("timestamps agreed");
        assert_eq!(tcpopt::cookie_decode(t0), (7, true));
        assert_eq!((w.sack_perm, w.wscale), (1, u32::from(vip_wscale)));
        let cookie = synack.seq;

        // 2. The first data segment (timestamps echo ours) → our SYN to the backend offers the same:
        //    the client's window scale, SACK, Tier 1's clock as timestamp.
        let mut data = syn.clone();
        data.flags = PSH | ACK;
        data.seq = syn.seq.wrapping_add(1);
        data.ack = cookie.wrapping_add(1);
        data.tcp_options = ts_options(1000, t0, None);
        data.window = 502;
        data.payload = REQUEST.to_vec();
        let (action, out) = xdp(tiers, &data.build(), nc, Reason::SpliceSynSent);
        assert_eq!(action, XdpAction::Redirect);
        let s = splice_of(tiers, sport).expect("a splice");
        let leg_syn = packet::parse(&out);
        let (buf, w) = options_of(&leg_syn);
        assert_eq!((w.mss, w.sack_perm, w.wscale), (1460, 1, 7));
        assert_eq!(tcpopt::timestamps(&buf, &w), Some((s.ts_leg, 0)));
        assert_eq!(
            leg_syn.window,
            tcpopt::rescale_window(502, 7, 0),
            "the client's window, unscaled for the SYN"
        );
        assert!(leg_syn.tcp_csum_ok);

        // 3. The backend's SYN-ACK (its own clock, a window scale one above ours) → the ACK carrying the
        //    request echoes the backend's timestamp.
        let backend_isn = 0x7000_0000u32;
        let backend_ts = 500_000u32;
        let backend_wscale = vip_wscale + 1;
        let mut bsa = from_backend(
            leg_syn.sport,
            nb_mac,
            SYN | ACK,
            backend_isn,
            s.leg_isn.wrapping_add(1),
        );
        let mut o = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10];
        o.extend_from_slice(&backend_ts.to_be_bytes());
        o.extend_from_slice(&s.ts_leg.to_be_bytes());
        o.extend_from_slice(&[1, 3, 3, backend_wscale]);
        bsa.tcp_options = o;
        xdp(tiers, &bsa.build(), nb, Reason::SpliceSynAck);
        let run = tiers.run_tc_ingress_once(&bsa.build()).unwrap();
        assert_eq!(run.action, TC_ACT_REDIRECT);
        let ack = packet::parse(&run.output);
        let (buf, w) = options_of(&ack);
        assert_eq!(tcpopt::timestamps(&buf, &w), Some((s.ts_leg, backend_ts)));
        assert_eq!(
            ack.window, 502,
            "the client's scaled window: the backend agreed to its scale"
        );
        assert!(ack.ip_csum_ok && ack.tcp_csum_ok);
        let s = splice_of(tiers, sport).unwrap();
        assert_eq!(s.backend_wscale, backend_wscale);
        assert_eq!(s.ts_offset, backend_ts.wrapping_sub(t0));

        // 4. Backend data with a SACK block → to the client: its timestamp in our clock, the echo in the
        //    client's, the SACK edges in the client's sequence space, the window rescaled.
        let leg_first = s.leg_isn.wrapping_add(1);
        let mut bdata = bsa.clone();
        bdata.flags = PSH | ACK;
        bdata.seq = backend_isn.wrapping_add(1);
        bdata.ack = leg_first.wrapping_add(REQUEST.len() as u32);
        bdata.window = 100;
        bdata.tcp_options = ts_options(
            backend_ts + 10,
            s.ts_leg + 5,
            Some((leg_first + 40, leg_first + 50)),
        );
        bdata.payload = b"HTTP/1.1 200 OK\r\n".to_vec();
        // Half a head: the kernel cannot frame this response (said so, translated all the same).
        let (action, out) = xdp_moves(
            tiers,
            &bdata.build(),
            nb,
            &[
                Reason::SpliceBackendTranslated,
                Reason::SpliceResponseUnframed,
            ],
        );
        assert_eq!(action, XdpAction::Redirect);
        let to_client = packet::parse(&out);
        let (buf, w) = options_of(&to_client);
        assert_eq!(
            tcpopt::timestamps(&buf, &w),
            Some((t0 + 10, 1005)),
            "tsval in our clock, echo in the client's"
        );
        let first = data.seq;
        assert_eq!(
            (
                tcpopt::read_u32(&buf, w.sack_at + 2),
                tcpopt::read_u32(&buf, w.sack_at + 6)
            ),
            (first + 40, first + 50),
            "SACK edges in the client's space"
        );
        assert_eq!(
            to_client.window, 200,
            "rescaled from the backend's scale to ours"
        );
        assert!(to_client.ip_csum_ok && to_client.tcp_csum_ok);

        // 5. The client's ACK with a SACK block → to the backend: timestamps in the leg's clock and the
        //    backend's, the SACK edges in the backend's space, the window as it is.
        let mut cack = data.clone();
        cack.flags = ACK;
        cack.seq = first.wrapping_add(REQUEST.len() as u32);
        cack.ack = cookie.wrapping_add(1 + 17);
        cack.payload.clear();
        cack.tcp_options = ts_options(
            1010,
            t0 + 10,
            Some((cookie.wrapping_add(1 + 100), cookie.wrapping_add(1 + 200))),
        );
        let (action, out) = xdp(tiers, &cack.build(), nc, Reason::SpliceClientTranslated);
        assert_eq!(action, XdpAction::Redirect);
        let to_backend = packet::parse(&out);
        let (buf, w) = options_of(&to_backend);
        assert_eq!(
            tcpopt::timestamps(&buf, &w),
            Some((s.ts_leg + 10, backend_ts + 10)),
            "tsval in the leg's clock, echo in the backend's"
        );
        assert_eq!(
            (
                tcpopt::read_u32(&buf, w.sack_at + 2),
                tcpopt::read_u32(&buf, w.sack_at + 6)
            ),
            (backend_isn + 1 + 100, backend_isn + 1 + 200),
            "SACK edges in the backend's space"
        );
        assert_eq!(to_backend.window, 502);
        assert!(to_backend.ip_csum_ok && to_backend.tcp_csum_ok);

        // 6. Timestamps alone (NOP, NOP, timestamps: the layout translated where it lies in the packet),
        //    both ways, with values that carry across 16-bit words: translated and checksummed as the
        //    walked layouts above.
        let mut cack6 = cack.clone();
        cack6.tcp_options = ts_options(0x0001_ffff, t0.wrapping_add(0xffff), None);
        let (action, out) = xdp(tiers, &cack6.build(), nc, Reason::SpliceClientTranslated);
        assert_eq!(action, XdpAction::Redirect);
        let to_backend = packet::parse(&out);
        let (buf, w) = options_of(&to_backend);
        assert_eq!(w.len, 12);
        assert_eq!(
            tcpopt::timestamps(&buf, &w),
            Some((
                s.ts_leg.wrapping_add(0x0001_ffff - 1000),
                backend_ts.wrapping_add(0xffff)
            )),
            "tsval in the leg's clock, echo in the backend's"
        );
        assert!(to_backend.ip_csum_ok && to_backend.tcp_csum_ok);
        let mut bdata6 = bdata.clone();
        bdata6.seq = backend_isn.wrapping_add(1 + 17);
        bdata6.payload = vec![b'x'; 100];
        bdata6.tcp_options = ts_options(
            backend_ts.wrapping_add(0x1_0000),
            s.ts_leg.wrapping_add(3),
            None,
        );
        let (action, out) = xdp(tiers, &bdata6.build(), nb, Reason::SpliceBackendTranslated);
        assert_eq!(action, XdpAction::Redirect);
        let to_client = packet::parse(&out);
        let (buf, w) = options_of(&to_client);
        assert_eq!(
            tcpopt::timestamps(&buf, &w),
            Some((t0.wrapping_add(0x1_0000), 1003)),
            "tsval in our clock, echo in the client's"
        );
        assert_eq!(payload(&out, &to_client), vec![b'x'; 100]);
        assert!(to_client.ip_csum_ok && to_client.tcp_csum_ok);

        // 7. The same 12 bytes in another order (timestamps, NOP, NOP): not the layout the rewrite
        //    recognises from the packet alone, so the option walk translates it. The values are the
        //    same as step 6's, the NOPs stay where they were, and every header byte is step 6's (the
        //    words moved by an even offset: the checksum is the same too).
        let (_, out6) = xdp(tiers, &cack6.build(), nc, Reason::SpliceClientTranslated);
        let mut cack7 = cack6.clone();
        cack7.tcp_options = [&cack6.tcp_options[2..], &[1u8, 1][..]].concat();
        let (action, out7) = xdp(tiers, &cack7.build(), nc, Reason::SpliceClientTranslated);
        assert_eq!(action, XdpAction::Redirect);
        let to_backend = packet::parse(&out7);
        let (buf, w) = options_of(&to_backend);
        assert_eq!((w.len, w.ts_at), (12, 0));
        assert_eq!(
            tcpopt::timestamps(&buf, &w),
            Some((
                s.ts_leg.wrapping_add(0x0001_ffff - 1000),
                backend_ts.wrapping_add(0xffff)
            )),
            "translated by the walk as by the in-place path"
        );
        assert!(to_backend.ip_csum_ok && to_backend.tcp_csum_ok);
        assert_eq!(out7.len(), out6.len());
        assert_eq!(out7[..54], out6[..54], "Ethernet, IPv4 and TCP headers");
        assert_eq!(out7[54..64], out6[56..66], "the timestamps option");
        assert_eq!(out7[64..66], [1, 1], "the NOPs");
    });
}

/// How many runs a profiling aid makes: `RAUTA_PROFILE_RUNS`, else `default`.
fn profile_runs(default: u32) -> u32 {
    std::env::var("RAUTA_PROFILE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of run times in ns (`v` not empty).
fn median_ns(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Not a measurement itself: runs the SYN → cookie SYN-ACK step `RAUTA_PROFILE_RUNS` times (default
/// 1,000,000, each a different client port) so that a profiler sees where its time goes, e.g.
/// `perf record -a -g -- <test binary> --ignored --nocapture profile_the_syn` and `perf report` on the
/// `bpf_prog_*_rauta_xdp*` symbols and the helpers they call (docs/benchmarks.md, section 5).
#[test]
#[ignore = "profiling aid, run on demand"]
fn profile_the_syn() {
    if !support::root_or_skip("profile_the_syn") {
        return;
    }
    let runs = profile_runs(1_000_000);
    in_node("psyn", move |tiers, nc, _nb, _nb_mac| {
        let mut answered = 0u32;
        for i in 0..runs {
            let mut syn = Tcp4::syn(VIP, PORT);
            syn.sport = 1024 + (i % 60_000) as u16;
            let run = tiers.run_once_from(&syn.build(), nc).unwrap();
            answered += u32::from(run.action == XdpAction::Tx);
        }
        assert_eq!(answered, runs, "every SYN answered with a SYN-ACK");
    });
}

/// A profiling load, not a measurement: connection after connection, a SYN and a first GET that is a
/// routing hit (the splice's SYN to the backend), and nothing else, so that a system-wide profile taken
/// while it runs shows the first request's cost split by program and by the kernel function each
/// program calls (`docs/benchmarks.md` section 5, "Session 7", has the command and the breakdown).
/// `RAUTA_PROFILE_CONNECTIONS` sets the number of connections (default 4,000, about as many splices
/// as `median_cost_of_the_splice` leaves open). Every first GET must start a splice.
#[test]
#[ignore]
fn first_get_hits_for_a_profile() {
    if !support::root_or_skip("first_get_hits_for_a_profile") {
        return;
    }
    in_node("prof", |tiers, nc, _nb, _nb_mac| {
        // The whole port range above the well-known ports, as in `median_cost_of_the_splice`.
        tiers.set_splicing(Some((1024, 65535))).unwrap();
        let connections: u16 = std::env::var("RAUTA_PROFILE_CONNECTIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4000)
            .clamp(1, 60000);
        let mut hits = Vec::with_capacity(usize::from(connections));
        for i in 0..connections {
            let mut syn = Tcp4::syn(VIP, PORT);
            syn.sport = 1024 + i;
            let run = tiers.run_once_from(&syn.build(), nc).unwrap();
            assert_eq!(
                run.action,
                XdpAction::Tx,
                "connection {i}: the cookie SYN-ACK"
            );
            let cookie = packet::parse(&run.output).seq;
            let mut data = syn.clone();
            data.flags = PSH | ACK;
            data.seq = syn.seq.wrapping_add(1);
            data.ack = cookie.wrapping_add(1);
            data.payload = REQUEST.to_vec();
            let run = tiers.run_once_from(&data.build(), nc).unwrap();
            assert_eq!(
                run.action,
                XdpAction::Redirect,
                "connection {i}: the backend SYN"
            );
            hits.push(run.duration.as_nanos() as u64);
        }
        println!(
            "{connections} first GETs spliced, median {} ns (harness included)",
            median_ns(hits)
        );
    });
}

/// A profiling load for established segments: one splice brought to ESTABLISHED, then the client's
/// ACK and the backend's 1,400-byte body segment run `RAUTA_PROFILE_RUNS` times each (default
/// 1,000,000), so that a system-wide profile shows where a translated segment's time goes (program
/// code, the `RAUTA_SPLICES` lookup, the redirect). Every run must be translated and redirected.
#[test]
#[ignore = "profiling aid, run on demand"]
fn established_segments_for_a_profile() {
    if !support::root_or_skip("established_segments_for_a_profile") {
        return;
    }
    let runs = profile_runs(1_000_000);
    in_node("pest", move |tiers, nc, nb, nb_mac| {
        let (ack, mut data, _, _) = established(tiers, nc, nb, nb_mac, 40900);
        data.payload = vec![b'x'; 1400];
        // The first body segment finds no head where one was expected: framing lost, once.
        let (action, _) = xdp_moves(
            tiers,
            &data.build(),
            nb,
            &[
                Reason::SpliceBackendTranslated,
                Reason::SpliceResponseUnframed,
            ],
        );
        assert_eq!(action, XdpAction::Redirect);
        for (frame, ifindex) in [(ack.build(), nc), (data.build(), nb)] {
            let mut times = Vec::with_capacity(runs as usize);
            for _ in 0..runs {
                let run = tiers.run_once_from(&frame, ifindex).unwrap();
                assert_eq!(run.action, XdpAction::Redirect);
                times.push(run.duration.as_nanos() as u64);
            }
            println!(
                "{runs} runs from ifindex {ifindex}: median {} ns (harness included)",
                median_ns(times)
            );
        }
    });
}

/// A profiling load for the keep-alive request path: one splice brought to ESTABLISHED, then
/// `RAUTA_PROFILE_RUNS` (default 200,000) rounds of a follow-up GET to the same route (decided by
/// `rauta_xdp_followup`, forwarded on the leg) and the backend's answer, a 1,400-byte segment that
/// starts with a framed head (`rauta_xdp_response`), so that a system-wide profile shows where
/// each step's time goes. Every request must stay on the splice, every head be framed.
#[test]
#[ignore = "profiling aid, run on demand"]
fn keepalive_requests_for_a_profile() {
    if !support::root_or_skip("keepalive_requests_for_a_profile") {
        return;
    }
    let runs = profile_runs(200_000);
    in_node("pkeep", move |tiers, nc, nb, nb_mac| {
        let (ack, mut data, s, _) = established(tiers, nc, nb, nb_mac, 40950);
        let mut request = ack.clone();
        request.flags = PSH | ACK;
        request.payload = REQUEST.to_vec();
        let head_of = |body: usize| {
            format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body}\r\n\r\n")
                .into_bytes()
        };
        let mut response = head_of(1400 - head_of(1000).len());
        response.resize(1400, b'x');
        data.payload = response;
        let mut leg_ack = s.leg_isn.wrapping_add(1 + REQUEST.len() as u32);
        let (mut requests, mut heads) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let run = tiers.run_once_from(&request.build(), nc).unwrap();
            assert_eq!(run.action, XdpAction::Redirect, "the follow-up stays");
            requests.push(run.duration.as_nanos() as u64);
            request.seq = request.seq.wrapping_add(REQUEST.len() as u32);
            leg_ack = leg_ack.wrapping_add(REQUEST.len() as u32);
            data.ack = leg_ack;
            let run = tiers.run_once_from(&data.build(), nb).unwrap();
            assert_eq!(run.action, XdpAction::Redirect, "the response head goes on");
            heads.push(run.duration.as_nanos() as u64);
            data.seq = data.seq.wrapping_add(1400);
            request.ack = request.ack.wrapping_add(1400);
        }
        let s = splice_of(tiers, 40950).unwrap();
        assert_eq!(s.requests, runs + 1, "every follow-up stayed on the splice");
        assert_eq!(s.unframed, 0, "every head was framed");
        for (what, times) in [("follow-up GET", requests), ("response head", heads)] {
            println!(
                "{runs} x {what}: median {} ns (harness included)",
                median_ns(times)
            );
        }
    });
}
