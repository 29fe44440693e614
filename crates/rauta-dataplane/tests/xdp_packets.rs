//! Packet-in/packet-out tests of Tier 1's XDP program through BPF_PROG_RUN.
//!
//! Each case names its input packet, runs the real compiled program once (`repeat = 1`: repeated runs
//! would re-run on the rewritten packet), and asserts the action, the output packet field by field (or
//! byte for byte when it must be untouched) and the exact counter changes. Needs root; see
//! `support::root_or_skip`.

mod support;

use std::net::{Ipv4Addr, SocketAddrV4};

use rauta_common::maps::SYNACK_V4_LEN;
use rauta_common::synack::{build_synack_v4, SynV4};
use rauta_common::tcpopt;
use rauta_dataplane::{KernelTiers, PacketRun, Reason, TableSizes, XdpAction};
use support::packet::{self, Tcp4, ACK, CLIENT_MAC, FIN, RST, SERVER_MAC, SYN};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PORT: u16 = 8080;

fn tiers() -> KernelTiers {
    KernelTiers::load(SocketAddrV4::new(VIP, PORT), &[])
        .expect("load the XDP program (is this root?)")
}

/// Runs `input` once and checks the counter delta is exactly one packet for `reason`.
fn run(tiers: &KernelTiers, input: &[u8], reason: Reason) -> PacketRun {
    let before = tiers.counters().unwrap();
    let run = tiers.run_once(input).unwrap();
    let delta = tiers.counters().unwrap().since(&before);
    assert_eq!(
        delta.non_zero(),
        vec![(reason.name(), 1)],
        "counter changes"
    );
    run
}

/// Asserts the program passed (or dropped) the packet and left every byte as it was.
fn assert_untouched(run: &PacketRun, action: XdpAction, input: &[u8]) {
    assert_eq!(run.action, action);
    assert!(
        run.output == input,
        "packet changed:\n{}",
        packet::diff(input, &run.output)
    );
}

/// Checks a SYN-ACK answering `syn` and returns its cookie (the SYN-ACK's sequence number). Its options:
/// the cookie's MSS, and when the SYN offered timestamps, SACK-permitted (if offered), timestamps (our
/// value carrying the client's window scale and SACK permission, the echo of the client's) and the
/// node's window scale; NOPs pad them to 20 bytes.
fn assert_cookie_synack(syn: &Tcp4, run: &PacketRun, expected_mss: u16) -> u32 {
    assert_eq!(run.action, XdpAction::Tx);
    assert_eq!(
        run.output.len(),
        74,
        "Ethernet + IPv4 + TCP with 20 bytes of options"
    );
    let p = packet::parse(&run.output);
    assert_eq!(p.eth_dst, CLIENT_MAC, "MACs swapped");
    assert_eq!(p.eth_src, SERVER_MAC, "MACs swapped");
    assert_eq!(p.ethertype, [0x08, 0x00]);
    assert_eq!(p.ihl, 5);
    assert_eq!(p.tot_len, 60);
    assert_eq!(p.ttl, 64);
    assert_eq!(p.frag_off, 0x4000, "DF, no fragment");
    assert_eq!(p.protocol, 6);
    assert_eq!((p.src, p.dst), (syn.dst, syn.src), "IPs swapped");
    assert!(p.ip_csum_ok, "IPv4 header checksum");
    assert_eq!((p.sport, p.dport), (syn.dport, syn.sport), "ports swapped");
    assert_eq!(p.flags, SYN | ACK);
    assert_eq!(p.ack, syn.seq.wrapping_add(1), "ack = client ISN + 1");
    assert_eq!(p.doff, 10);
    assert_eq!(p.window, 65535);
    assert_eq!(p.urg, 0);
    let mut ours = [0u8; tcpopt::OPTIONS_BUF];
    ours[..20].copy_from_slice(&p.tcp_options);
    let got = tcpopt::walk(&ours, 20);
    assert_eq!(got.mss, u32::from(expected_mss), "the cookie's MSS");
    let mut offered_buf = [0u8; tcpopt::OPTIONS_BUF];
    offered_buf[..syn.tcp_options.len()].copy_from_slice(&syn.tcp_options);
    let offered = tcpopt::walk(&offered_buf, syn.tcp_options.len() as u32);
    match tcpopt::timestamps(&offered_buf, &offered) {
        Some((client_ts, _)) => {
            let (our_ts, echo) = tcpopt::timestamps(&ours, &got).expect("timestamps agreed");
            assert_eq!(echo, client_ts, "the client's timestamp echoed");
            assert_eq!(
                tcpopt::cookie_decode(our_ts),
                (offered.wscale as u8, offered.sack_perm == 1),
                "our timestamp carries the client's window scale and SACK permission"
            );
            assert_eq!(got.sack_perm, offered.sack_perm, "SACK as offered");
            let expected_wscale = if offered.wscale == u32::from(tcpopt::WSCALE_NONE) {
                u32::from(tcpopt::WSCALE_NONE)
            } else {
                u32::from(rauta_dataplane::node_window_scale())
            };
            assert_eq!(got.wscale, expected_wscale, "the node's window scale");
        }
        None => {
            assert_eq!(
                (got.ts_at, got.sack_perm, got.wscale),
                (tcpopt::ABSENT, 0, u32::from(tcpopt::WSCALE_NONE)),
                "without timestamps: MSS only"
            );
        }
    }
    assert_eq!(p.payload_len, 0);
    assert!(p.tcp_csum_ok, "TCP checksum");
    // Byte for byte the frame the host's builder makes of the same fields (the program writes it over
    // the SYN in the packet); only our timestamp (a clock) is taken from the output.
    let our_ts = tcpopt::timestamps(&ours, &got).map_or(0, |(val, _)| val);
    let client_ts = tcpopt::timestamps(&offered_buf, &offered).map_or(0, |(val, _)| val);
    let options = tcpopt::syn_options(
        expected_mss,
        &tcpopt::Agreed::for_syn(&offered),
        rauta_dataplane::node_window_scale(),
        (our_ts, client_ts),
    );
    let fields = SynV4 {
        client_mac: syn.src_mac,
        server_mac: syn.dst_mac,
        client_ip: syn.src.octets(),
        server_ip: syn.dst.octets(),
        client_port: syn.sport.to_be_bytes(),
        server_port: syn.dport.to_be_bytes(),
        client_seq: syn.seq,
    };
    let mut expected = [0u8; SYNACK_V4_LEN];
    build_synack_v4(&fields, p.seq, &options, &mut expected);
    assert!(
        run.output == expected,
        "SYN-ACK differs from the host's:\n{}",
        packet::diff(&expected, &run.output)
    );
    p.seq
}

macro_rules! needs_root {
    ($name:expr) => {
        if !support::root_or_skip($name) {
            return;
        }
    };
}

#[test]
fn syn_to_vip_is_answered_with_a_cookie_synack() {
    needs_root!("syn_to_vip_is_answered_with_a_cookie_synack");
    let t = tiers();
    let syn = Tcp4::syn(VIP, PORT);
    let run = run(&t, &syn.build(), Reason::SynCookieSent);
    // Client MSS 1460 is in the kernel's cookie table as is.
    assert_cookie_synack(&syn, &run, 1460);
}

#[test]
fn syn_mss_is_rounded_down_to_the_cookie_table() {
    needs_root!("syn_mss_is_rounded_down_to_the_cookie_table");
    let t = tiers();
    // 1400 is not in the table {536, 1300, 1440, 1460}: the cookie encodes 1300 and we advertise it.
    let mut syn = Tcp4::syn(VIP, PORT);
    syn.tcp_options = packet::linux_syn_options(1400);
    assert_cookie_synack(&syn, &run(&t, &syn.build(), Reason::SynCookieSent), 1300);
    // No MSS option: TCP's default of 536. The SYN is 54 bytes, so the program must grow the packet.
    let mut bare = Tcp4::syn(VIP, PORT);
    bare.tcp_options.clear();
    assert_eq!(bare.build().len(), 54);
    assert_cookie_synack(&bare, &run(&t, &bare.build(), Reason::SynCookieSent), 536);
}

/// SYNs whose options are not Linux's layout: the cookie must encode the MSS the kernel's own option
/// parse finds (the program hands the cookie helper that MSS alone), and the SYN-ACK must be the same
/// frame whatever the SYN's length (grown or cut to 74 bytes).
#[test]
fn syns_with_odd_option_layouts_get_the_same_synack() {
    needs_root!("syns_with_odd_option_layouts_get_the_same_synack");
    let t = tiers();
    let ts = [8, 10, 0, 0, 0, 9, 0, 0, 0, 0];
    // A Linux SYN's 20 bytes (MSS, SACK-permitted, timestamps, NOP, window scale) are read in place by
    // the SYN program, any other layout walked: the layouts next to Linux's must come out as the walk
    // reads them.
    let linux = |mss: [u8; 2], sack: [u8; 2], scale: [u8; 3]| {
        [&[2, 4, mss[0], mss[1]][..], &sack, &ts, &[1], &scale].concat()
    };
    let cases: [(&str, Vec<u8>, u16); 11] = [
        // Linux's layout with a window scale above 14: read as 14.
        (
            "Linux, scale 15",
            linux([0x05, 0xb4], [4, 2], [3, 3, 15]),
            1460,
        ),
        // Linux's layout with an MSS of 0: none, as in the walk.
        ("Linux, MSS 0", linux([0, 0], [4, 2], [3, 3, 7]), 536),
        // NOPs where SACK-permitted was: no SACK.
        (
            "Linux without SACK",
            linux([0x05, 0xa0], [1, 1], [3, 3, 7]),
            1440,
        ),
        // A window scale option of length 4 runs past the options: the walk stops there, no scale.
        (
            "Linux, scale length 4",
            linux([0x05, 0xb4], [4, 2], [3, 4, 7]),
            1460,
        ),
        // MSS last, after NOPs and timestamps: still 1440.
        (
            "MSS last",
            [&[1, 1][..], &ts, &[1, 1, 2, 4, 0x05, 0xa0]].concat(),
            1440,
        ),
        // Window scale first, odd offsets, SACK-permitted in the middle; 24 bytes of options.
        (
            "odd offsets",
            [
                &[3, 3, 9, 4, 2][..],
                &ts,
                &[1, 2, 4, 0x05, 0xb4, 1, 1, 1, 0],
            ]
            .concat(),
            1460,
        ),
        // An MSS of 0 counts as none (the kernel's rule): TCP's default of 536.
        (
            "MSS 0",
            [&[2, 4, 0, 0][..], &ts, &[1, 3, 3, 7, 1, 1]].concat(),
            536,
        ),
        // A second MSS of 0 does not override the first.
        ("two MSS", vec![2, 4, 0x05, 0x14, 2, 4, 0, 0], 1300),
        // End of options before the MSS: the MSS behind it is not read.
        ("EOL first", vec![1, 0, 2, 4, 0x05, 0xb4, 0, 0], 536),
        // A malformed option (length 1) ends the parse: the MSS after it is not read.
        ("silly option", vec![30, 1, 2, 4, 0x05, 0xb4, 1, 1], 536),
        // The most options a header holds (40 bytes), MSS at the end.
        (
            "40 bytes",
            [&[1; 24][..], &ts, &[1, 1, 2, 4, 0x02, 0x18]].concat(),
            536,
        ),
    ];
    for (name, options, mss) in cases {
        let mut syn = Tcp4::syn(VIP, PORT);
        syn.tcp_options = options;
        eprintln!("case: {name}");
        let out = run(&t, &syn.build(), Reason::SynCookieSent);
        assert_cookie_synack(&syn, &out, mss);
    }
}

#[test]
fn padded_syn_is_cut_to_the_synack_length() {
    needs_root!("padded_syn_is_cut_to_the_synack_length");
    let t = tiers();
    let mut syn = Tcp4::syn(VIP, PORT);
    syn.tcp_options.clear();
    syn.eth_padding = 6; // 60-byte minimum frame on the wire
    assert_cookie_synack(&syn, &run(&t, &syn.build(), Reason::SynCookieSent), 536);
}

#[test]
fn pure_ack_carrying_our_cookie_is_absorbed() {
    needs_root!("pure_ack_carrying_our_cookie_is_absorbed");
    let t = tiers();
    let syn = Tcp4::syn(VIP, PORT);
    let cookie = assert_cookie_synack(&syn, &run(&t, &syn.build(), Reason::SynCookieSent), 1460);
    let mut ack = syn.clone();
    ack.flags = ACK;
    ack.seq = syn.seq.wrapping_add(1);
    ack.ack = cookie.wrapping_add(1);
    ack.tcp_options.clear();
    let input = ack.build();
    // The client's handshake is complete; the stack must not see it (its listener knows nothing of the
    // connection and would reset it). The first data segment starts the hand-off (tests/handoff_packets.rs).
    assert_untouched(
        &run(&t, &input, Reason::AckCookieOk),
        XdpAction::Drop,
        &input,
    );
    assert_eq!(
        t.table_sizes().unwrap(),
        TableSizes::default(),
        "no state for a pure ACK"
    );
}

#[test]
fn ack_with_a_bad_cookie_is_dropped() {
    needs_root!("ack_with_a_bad_cookie_is_dropped");
    let t = tiers();
    let syn = Tcp4::syn(VIP, PORT);
    let cookie = assert_cookie_synack(&syn, &run(&t, &syn.build(), Reason::SynCookieSent), 1460);
    let mut ack = syn.clone();
    ack.flags = ACK;
    ack.seq = syn.seq.wrapping_add(1);
    ack.tcp_options.clear();
    // A guessed cookie.
    ack.ack = cookie ^ 0x0100_0000;
    let input = ack.build();
    assert_untouched(
        &run(&t, &input, Reason::AckCookieBad),
        XdpAction::Drop,
        &input,
    );
    // The right cookie from another client port: bound to the 4-tuple, so invalid too.
    ack.ack = cookie.wrapping_add(1);
    ack.sport = 40001;
    let input = ack.build();
    assert_untouched(
        &run(&t, &input, Reason::AckCookieBad),
        XdpAction::Drop,
        &input,
    );
}

#[test]
fn traffic_not_to_the_vip_passes_untouched() {
    needs_root!("traffic_not_to_the_vip_passes_untouched");
    let t = tiers();
    let other_host = Tcp4::syn(Ipv4Addr::new(198, 18, 0, 9), PORT).build();
    assert_untouched(
        &run(&t, &other_host, Reason::NotVipPass),
        XdpAction::Pass,
        &other_host,
    );
    let other_port = Tcp4::syn(VIP, PORT + 1).build();
    assert_untouched(
        &run(&t, &other_port, Reason::NotVipPass),
        XdpAction::Pass,
        &other_port,
    );
    let udp = packet::udp4(VIP, PORT);
    assert_untouched(&run(&t, &udp, Reason::NotTcpPass), XdpAction::Pass, &udp);
    let v6 = packet::syn6(PORT);
    assert_untouched(&run(&t, &v6, Reason::Ipv6Pass), XdpAction::Pass, &v6);
    let mut arp = packet::ethernet([0xff; 6], CLIENT_MAC, [0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    assert_untouched(&run(&t, &arp, Reason::NotIpPass), XdpAction::Pass, &arp);
}

#[test]
fn ip_options_and_fragments_pass_to_the_stack() {
    needs_root!("ip_options_and_fragments_pass_to_the_stack");
    let t = tiers();
    let mut with_options = Tcp4::syn(VIP, PORT);
    with_options.ip_options = vec![7, 7, 4, 0, 0, 0, 0]; // record route, one slot
    let input = with_options.build();
    assert_untouched(
        &run(&t, &input, Reason::IpOptionsPass),
        XdpAction::Pass,
        &input,
    );

    let mut first_fragment = Tcp4::syn(VIP, PORT);
    first_fragment.frag_off = 0x2000; // MF
    let input = first_fragment.build();
    assert_untouched(
        &run(&t, &input, Reason::FragmentPass),
        XdpAction::Pass,
        &input,
    );

    let mut later_fragment = Tcp4::syn(VIP, PORT);
    later_fragment.frag_off = 185; // offset 1480 bytes, last fragment
    let input = later_fragment.build();
    assert_untouched(
        &run(&t, &input, Reason::FragmentPass),
        XdpAction::Pass,
        &input,
    );
}

#[test]
fn truncated_and_malformed_packets() {
    needs_root!("truncated_and_malformed_packets");
    let t = tiers();
    let full = Tcp4::syn(VIP, PORT).build();

    // Ethernet header only (BPF_PROG_RUN refuses frames shorter than 14 bytes).
    let eth_only = full[..14].to_vec();
    assert_untouched(
        &run(&t, &eth_only, Reason::TruncatedPass),
        XdpAction::Pass,
        &eth_only,
    );
    // IPv4 header cut short: the destination cannot be read, so the packet is not ours to drop.
    let ip_cut = full[..14 + 12].to_vec();
    assert_untouched(
        &run(&t, &ip_cut, Reason::TruncatedPass),
        XdpAction::Pass,
        &ip_cut,
    );
    // IHL below 5 is not an IPv4 header.
    let mut bad_ihl = full.clone();
    bad_ihl[14] = 0x44;
    assert_untouched(
        &run(&t, &bad_ihl, Reason::TruncatedPass),
        XdpAction::Pass,
        &bad_ihl,
    );
    // TCP header cut short, IP length still claiming the whole segment: to the VIP, dropped.
    let tcp_cut = full[..14 + 20 + 10].to_vec();
    assert_untouched(
        &run(&t, &tcp_cut, Reason::MalformedDrop),
        XdpAction::Drop,
        &tcp_cut,
    );
    // Consistent lengths but only 10 bytes of TCP.
    let mut short_tcp = tcp_cut.clone();
    short_tcp[16..18].copy_from_slice(&30u16.to_be_bytes());
    assert_untouched(
        &run(&t, &short_tcp, Reason::MalformedDrop),
        XdpAction::Drop,
        &short_tcp,
    );
    // Data offset below 5 words.
    let mut bad_doff = Tcp4::syn(VIP, PORT);
    bad_doff.tcp_options.clear();
    bad_doff.doff_override = Some(4);
    let input = bad_doff.build();
    assert_untouched(
        &run(&t, &input, Reason::MalformedDrop),
        XdpAction::Drop,
        &input,
    );
    // Data offset past the segment.
    bad_doff.doff_override = Some(15);
    let input = bad_doff.build();
    assert_untouched(
        &run(&t, &input, Reason::MalformedDrop),
        XdpAction::Drop,
        &input,
    );
    // SYN with FIN or RST is never a connection request.
    for extra in [FIN, RST] {
        let mut syn_fin = Tcp4::syn(VIP, PORT);
        syn_fin.flags = SYN | extra;
        let input = syn_fin.build();
        assert_untouched(
            &run(&t, &input, Reason::MalformedDrop),
            XdpAction::Drop,
            &input,
        );
    }
}

#[test]
fn syns_that_must_not_be_answered() {
    needs_root!("syns_that_must_not_be_answered");
    let t = tiers();
    let mut bad_tcp_csum = Tcp4::syn(VIP, PORT);
    bad_tcp_csum.tcp_csum_xor = 0x0100;
    let input = bad_tcp_csum.build();
    assert_untouched(
        &run(&t, &input, Reason::BadChecksumDrop),
        XdpAction::Drop,
        &input,
    );

    // The same with options not in Linux's layout (summed from a copy, not in the packet) and with none.
    for options in [vec![1, 1, 2, 4, 0x05, 0xb4], vec![]] {
        let mut bad = Tcp4::syn(VIP, PORT);
        bad.tcp_options = options;
        bad.tcp_csum_xor = 0x0001;
        let input = bad.build();
        assert_untouched(
            &run(&t, &input, Reason::BadChecksumDrop),
            XdpAction::Drop,
            &input,
        );
    }

    let mut bad_ip_csum = Tcp4::syn(VIP, PORT).build();
    bad_ip_csum[24] ^= 0x01; // checksum high byte
    assert_untouched(
        &run(&t, &bad_ip_csum, Reason::BadChecksumDrop),
        XdpAction::Drop,
        &bad_ip_csum,
    );

    // TCP Fast Open style SYN with data: left to the stack.
    let mut with_data = Tcp4::syn(VIP, PORT);
    with_data.payload = b"GET / HTTP/1.1\r\n\r\n".to_vec();
    let input = with_data.build();
    assert_untouched(
        &run(&t, &input, Reason::SynWithDataPass),
        XdpAction::Pass,
        &input,
    );
}

#[test]
fn other_segments_without_a_connection_pass() {
    needs_root!("other_segments_without_a_connection_pass");
    let t = tiers();
    for flags in [RST, RST | ACK, FIN, SYN | ACK, 0] {
        let mut seg = Tcp4::syn(VIP, PORT);
        seg.flags = flags;
        seg.tcp_options.clear();
        let input = seg.build();
        assert_untouched(
            &run(&t, &input, Reason::OtherFlagsPass),
            XdpAction::Pass,
            &input,
        );
    }
}

#[test]
fn invalid_vips_are_refused() {
    // No root needed: refused before anything is loaded.
    assert!(KernelTiers::load(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), &[]).is_err());
    assert!(KernelTiers::load(SocketAddrV4::new(VIP, 0), &[]).is_err());
}

#[test]
fn this_machine_can_run_the_kernel_tiers() {
    needs_root!("this_machine_can_run_the_kernel_tiers");
    assert_eq!(rauta_dataplane::kernel_tiers_available(), Ok(()));
}

#[test]
fn the_object_has_every_map_and_program_common_names() {
    needs_root!("the_object_has_every_map_and_program_common_names");
    use rauta_common::maps::{
        COUNTERS_MAP, FLOWS_MAP, PENDING_MAP, SCRATCH_MAP, TC_EGRESS_PROGRAM, VIP_MAP,
        XDP_PASS_PROGRAM, XDP_PROGRAM,
    };
    let ebpf = aya::Ebpf::load(rauta_dataplane::object::BPF_OBJECT).unwrap();
    use rauta_common::route::{
        DECISIONS_MAP, ROUTES_MAP, ROUTE_COUNTERS_MAP, SERVICES_MAP, SLOTS_MAP,
    };
    for map in [
        VIP_MAP,
        COUNTERS_MAP,
        SCRATCH_MAP,
        FLOWS_MAP,
        PENDING_MAP,
        rauta_common::maps::PENDING_SHORT_MAP,
        rauta_common::maps::HELD_MAP,
        ROUTES_MAP,
        SERVICES_MAP,
        SLOTS_MAP,
        ROUTE_COUNTERS_MAP,
        DECISIONS_MAP,
    ] {
        assert!(ebpf.map(map).is_some(), "map {map}");
    }
    for program in [XDP_PROGRAM, XDP_PASS_PROGRAM, TC_EGRESS_PROGRAM] {
        assert!(ebpf.program(program).is_some(), "program {program}");
    }
}

/// Not a pass/fail test: prints the median BPF_PROG_RUN duration per path (`cargo test -p rauta-dataplane
/// --test xdp_packets -- --ignored --nocapture`). Each run uses `repeat = 1` on a fresh copy of the input;
/// the figure includes the test harness's own per-run overhead, so compare paths, not absolute values.
#[test]
#[ignore = "measurement, run on demand"]
fn median_cost_per_path() {
    needs_root!("median_cost_per_path");
    let t = tiers();
    let syn = Tcp4::syn(VIP, PORT);
    let cookie = packet::parse(&t.run_once(&syn.build()).unwrap().output).seq;
    let mut ack = syn.clone();
    ack.flags = ACK;
    ack.seq = syn.seq.wrapping_add(1);
    ack.ack = cookie.wrapping_add(1);
    ack.tcp_options.clear();
    let cases = [
        (
            "not_vip_pass",
            Tcp4::syn(Ipv4Addr::new(198, 18, 0, 9), PORT).build(),
        ),
        ("syn_cookie_sent", syn.build()),
        ("ack_cookie_ok", ack.build()),
    ];
    let report = |name: &str, mut ns: Vec<u128>| {
        ns.sort_unstable();
        println!(
            "{name:>22}: median {} ns, p90 {} ns",
            ns[ns.len() / 2],
            ns[ns.len() * 9 / 10]
        );
    };
    for (name, input) in cases {
        report(
            name,
            (0..2000)
                .map(|_| t.run_once(&input).unwrap().duration.as_nanos())
                .collect(),
        );
    }

    // The hand-off, one fresh flow per sample (a flow goes through each state once).
    let request = b"GET /index.html HTTP/1.1\r\nHost: example\r\nUser-Agent: curl/8\r\n\r\n";
    let (mut replay, mut handoff, mut flow_pass, mut tc_pass) = (vec![], vec![], vec![], vec![]);
    for i in 0..2000u16 {
        let mut syn = Tcp4::syn(VIP, PORT);
        syn.sport = 20000 + i;
        let cookie = packet::parse(&t.run_once(&syn.build()).unwrap().output).seq;
        let mut data = syn.clone();
        data.flags = ACK | 0x08;
        data.seq = syn.seq.wrapping_add(1);
        data.ack = cookie.wrapping_add(1);
        data.tcp_options.clear();
        data.payload = request.to_vec();
        replay.push(t.run_once(&data.build()).unwrap().duration.as_nanos());
        let mut synack = Tcp4::syn(syn.src, syn.sport);
        synack.src = VIP;
        synack.sport = PORT;
        synack.seq = cookie;
        synack.ack = syn.seq.wrapping_add(1);
        synack.flags = SYN | ACK;
        synack.tcp_options = vec![2, 4, 0x05, 0xb4];
        handoff.push(t.run_tc_once(&synack.build()).unwrap().duration.as_nanos());
        let mut reply = synack.clone();
        reply.flags = ACK;
        reply.seq = cookie.wrapping_add(1);
        reply.tcp_options.clear();
        reply.payload = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        tc_pass.push(t.run_tc_once(&reply.build()).unwrap().duration.as_nanos());
        let mut ack2 = data.clone();
        ack2.flags = ACK;
        ack2.seq = data.seq.wrapping_add(request.len() as u32);
        ack2.payload.clear();
        flow_pass.push(t.run_once(&ack2.build()).unwrap().duration.as_nanos());
    }
    report("handoff_syn_replayed", replay);
    report("tc_handoff_ack", handoff);
    report("tc_pass (spliced)", tc_pass);
    report("flow_pass", flow_pass);
}
