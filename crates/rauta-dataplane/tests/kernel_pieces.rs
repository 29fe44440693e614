//! Each piece of a first GET's work in the kernel, alone: the measurement programs of
//! `crates/rauta-ebpf/src/pieces.rs` (a second object built by the same build script, never loaded in
//! production), run with `BPF_PROG_RUN` on realistic packets inside a namespace whose FIB resolves a
//! backend and where a listener holds the VIP's port (as Tier 3's does on a node). The ignored test
//! times them the way `median_cost_of_the_splice` times the splice's steps; the other one checks that
//! each piece does its work (so that a timing never comes from a program that gave up early). Needs
//! root.

mod support;

use std::{
    net::{Ipv4Addr, SocketAddrV4, TcpListener},
    thread,
};

use aya::{
    maps::{HashMap, ProgramArray},
    programs::{TestRun, TestRunOptions, Xdp},
    Ebpf,
};
use rauta_common::route::{RouteKey, RouteValue};
use support::{
    netns,
    node::RoutedNode,
    packet::{Tcp4, ACK},
};

/// The pieces' object, built next to the production one (`build.rs`: every bin of rauta-ebpf).
static PIECES_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rauta-pieces"));

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PORT: u16 = 8080;
const PSH: u8 = 0x08;
const PASS: u32 = 2;
const DROP: u32 = 1;
/// A 70-byte GET, the size curl sends for a short path (`piece_route_lookup` reads its path and host at
/// fixed offsets).
const REQUEST: &[u8] =
    b"GET /whoami HTTP/1.1\r\nHost: shop.example\r\nAccept: */*\r\nX-A: 123456\r\n\r\n";
const _: () = assert!(REQUEST.len() == 70);

/// Every program of the object, in table order, with what the row means.
const PIECES: &[(&str, &str)] = &[
    ("piece_pass", "harness (returns XDP_PASS)"),
    ("piece_headers", "header bounds checks"),
    ("piece_cookie_gen", "cookie generation (SYN)"),
    ("piece_cookie_check", "cookie check (ACK)"),
    ("piece_sk_lookup", "socket lookup + release"),
    ("piece_lru_lookup", "LRU hash lookup, miss"),
    ("piece_lru_insert", "LRU hash insert, 144 B, fresh key"),
    ("piece_lru_delete", "LRU hash delete"),
    ("piece_array_lookup", "array lookup"),
    ("piece_route_lookup", "route lookup, 196 B key"),
    ("piece_fib_lookup", "bpf_fib_lookup"),
    ("piece_load_sum", "load 70 B + bpf_csum_diff"),
    ("piece_tail_call", "tail call"),
    ("piece_parse", "request line + Host, byte-wise"),
];

/// The loaded pieces, the ingress interface their runs come from, and the listener on the VIP's port.
struct Pieces {
    ebpf: Ebpf,
    ctx: [u8; 24],
    _listener: TcpListener,
}

impl Pieces {
    /// Loads every piece, points the tail call's slot at `piece_pass` and writes 100 routes, one of them
    /// the request's. Call inside the namespace.
    fn load() -> Pieces {
        let mut ebpf = Ebpf::load(PIECES_OBJECT).expect("load the pieces' object");
        for (name, _) in PIECES {
            let program: &mut Xdp = ebpf.program_mut(name).unwrap().try_into().unwrap();
            program.load().unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
        let pass: &Xdp = ebpf.program("piece_pass").unwrap().try_into().unwrap();
        let fd = pass.fd().unwrap().try_clone().unwrap();
        let mut progs: ProgramArray<_> = ebpf.map_mut("PIECE_PROGS").unwrap().try_into().unwrap();
        progs.set(0, &fd, 0).unwrap();
        let mut routes: HashMap<_, RouteKey, RouteValue> =
            ebpf.map_mut("PIECE_ROUTES").unwrap().try_into().unwrap();
        for i in 0..100u32 {
            let path = if i == 0 {
                "/whoami".to_owned()
            } else {
                format!("/other/{i}")
            };
            let key = RouteKey::new(b"shop.example", path.as_bytes()).unwrap();
            let value = RouteValue {
                service: i + 1,
                methods: 1,
                ..RouteValue::default()
            };
            routes.insert(key, value, 0).unwrap();
        }
        // `struct xdp_md`: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
        let mut ctx = [0u8; 24];
        ctx[12..16].copy_from_slice(&ifindex("nc").to_ne_bytes());
        let listener = TcpListener::bind(SocketAddrV4::new(VIP, PORT)).expect("the VIP's listener");
        Pieces {
            ebpf,
            ctx,
            _listener: listener,
        }
    }

    /// Runs `name` once on `frame`: its return value and the run's duration in ns.
    fn run(&self, name: &str, frame: &[u8]) -> (u32, u64) {
        let program: &Xdp = self.ebpf.program(name).unwrap().try_into().unwrap();
        let mut ctx = self.ctx;
        ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        let mut output = vec![0u8; frame.len() + 64];
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut output),
                ctx_in: Some(&ctx),
                repeat: 1,
                ..TestRunOptions::default()
            })
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        (result.return_value, result.duration.as_nanos() as u64)
    }
}

/// The interface's index in the calling thread's namespace.
fn ifindex(dev: &str) -> u32 {
    let name = std::ffi::CString::new(dev).unwrap();
    // SAFETY: a NUL-terminated name; the call only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(index, 0, "no interface {dev}");
    index
}

/// A client's SYN from `sport` and its first data segment (the GET, acknowledging `cookie`).
fn syn_and_get(sport: u16, cookie: u32) -> (Vec<u8>, Vec<u8>) {
    let mut syn = Tcp4::syn(VIP, PORT);
    syn.sport = sport;
    let mut get = syn.clone();
    get.flags = PSH | ACK;
    get.seq = syn.seq.wrapping_add(1);
    get.ack = cookie.wrapping_add(1);
    get.tcp_options = Vec::new();
    get.payload = REQUEST.to_vec();
    (syn.build(), get.build())
}

/// Runs `body` on a thread inside a fresh namespace with the pieces loaded.
fn with_pieces(body: impl FnOnce(&Pieces) + Send + 'static) {
    let node = RoutedNode::create("rauta-kpieces");
    let ns = node.ns.clone();
    thread::spawn(move || {
        netns::enter(&ns).unwrap();
        body(&Pieces::load());
    })
    .join()
    .expect("the test body");
    drop(node);
}

#[test]
fn every_piece_does_its_work() {
    if !support::root_or_skip("every_piece_does_its_work") {
        return;
    }
    with_pieces(|p| {
        let (syn, _) = syn_and_get(41000, 0);
        let (cookie, _) = p.run("piece_cookie_gen", &syn);
        assert!(cookie > DROP, "a cookie, not an error");
        let (again, _) = p.run("piece_cookie_gen", &syn);
        assert_eq!(
            again, cookie,
            "the same SYN, the same minute: the same cookie"
        );
        let (_, get) = syn_and_get(41000, cookie);
        let (_, forged) = syn_and_get(41000, cookie ^ 0x0100_0000);
        assert_eq!(p.run("piece_cookie_check", &get).0, PASS);
        assert_eq!(p.run("piece_cookie_check", &forged).0, DROP);

        assert_eq!(p.run("piece_pass", &get).0, PASS);
        assert_eq!(p.run("piece_headers", &get).0, PASS);
        assert_eq!(p.run("piece_headers", &syn).0, DROP, "no ACK flag");
        assert_eq!(p.run("piece_sk_lookup", &get).0, PASS, "the listener");
        let mut elsewhere = Tcp4::syn(VIP, PORT + 1);
        elsewhere.flags = ACK;
        assert_eq!(
            p.run("piece_sk_lookup", &elsewhere.build()).0,
            DROP,
            "no socket on that port"
        );

        assert_eq!(p.run("piece_lru_lookup", &get).0, PASS, "a miss");
        assert_eq!(p.run("piece_lru_insert", &get).0, PASS);
        assert_eq!(p.run("piece_lru_lookup", &get).0, DROP, "now a hit");
        assert_eq!(p.run("piece_lru_delete", &get).0, PASS);
        assert_eq!(p.run("piece_lru_delete", &get).0, DROP, "already gone");
        assert_eq!(p.run("piece_lru_lookup", &get).0, PASS);

        assert_eq!(p.run("piece_array_lookup", &get).0, PASS);
        assert_eq!(
            p.run("piece_route_lookup", &get).0,
            PASS,
            "/whoami is routed"
        );
        let mut unrouted = Tcp4::syn(VIP, PORT);
        unrouted.flags = PSH | ACK;
        unrouted.tcp_options = Vec::new();
        unrouted.payload = REQUEST.to_vec();
        unrouted.payload[5] = b'W';
        assert_eq!(p.run("piece_route_lookup", &unrouted.build()).0, DROP);
        assert_eq!(
            p.run("piece_fib_lookup", &get).0,
            PASS,
            "198.18.1.2 resolved"
        );
        assert_eq!(p.run("piece_load_sum", &get).0, PASS);
        assert_eq!(
            p.run("piece_tail_call", &get).0,
            PASS,
            "piece_pass's verdict"
        );

        assert_eq!(p.run("piece_parse", &get).0, PASS);
        for broken in [
            &b"POST /whoami HTTP/1.1\r\nHost: shop.example\r\n\r\n"[..],
            b"GET /whoami HTTP/1.0\r\nHost: shop.example\r\n\r\n",
            b"GET /whoami HTTP/1.1\r\nAccept: */*\r\n\r\n",
            b"GET /whoami",
        ] {
            unrouted.payload = broken.to_vec();
            assert_eq!(
                p.run("piece_parse", &unrouted.build()).0,
                DROP,
                "{}",
                String::from_utf8_lossy(broken)
            );
        }
    });
}

/// Median `BPF_PROG_RUN` duration of each piece over 1,000 runs with `repeat = 1`, the pieces
/// interleaved run by run (so that drift of the machine hits them alike), and the same minus
/// `piece_pass`. Each run has a fresh 4-tuple (a new client port): the cookie, the socket lookup and
/// the LRU operations see a new key as a first GET does; ~1,000 entries stay in the LRU map (each
/// run deletes the entry of 1,000 runs before). Run with
/// `cargo test --release -p rauta-dataplane --test kernel_pieces -- --ignored --nocapture` (as root).
#[test]
#[ignore = "measurement, run on demand"]
fn median_cost_of_each_piece() {
    if !support::root_or_skip("median_cost_of_each_piece") {
        return;
    }
    with_pieces(|p| {
        const RUNS: usize = 1000;
        const LIVE: usize = 1000;
        let mut rows: Vec<Vec<u64>> = vec![Vec::with_capacity(RUNS); PIECES.len() + 1];
        let frames: Vec<(Vec<u8>, Vec<u8>)> = (0..RUNS + LIVE)
            .map(|i| syn_and_get(10000 + i as u16, 0))
            .collect();
        // Fill the LRU map with the first LIVE tuples, which the first runs then delete.
        for (_, get) in &frames[..LIVE] {
            assert_eq!(p.run("piece_lru_insert", get).0, PASS);
        }
        let mut elsewhere = Tcp4::syn(VIP, PORT + 1);
        elsewhere.flags = ACK;
        let elsewhere = elsewhere.build();
        for i in 0..RUNS {
            let (syn, _) = &frames[LIVE + i];
            let (cookie, ns) = p.run("piece_cookie_gen", syn);
            rows[2].push(ns);
            let (_, get) = syn_and_get(10000 + (LIVE + i) as u16, cookie);
            for (row, (name, _)) in PIECES.iter().enumerate() {
                let (verdict, ns) = match *name {
                    "piece_cookie_gen" => continue,
                    "piece_lru_delete" => p.run(name, &frames[i].1),
                    _ => p.run(name, &get),
                };
                assert_eq!(verdict, PASS, "{name} did not do its work");
                rows[row].push(ns);
            }
            let (verdict, ns) = p.run("piece_sk_lookup", &elsewhere);
            assert_eq!(verdict, DROP);
            rows[PIECES.len()].push(ns);
        }
        let medians: Vec<u64> = rows
            .into_iter()
            .map(|mut v| {
                v.sort_unstable();
                v[v.len() / 2]
            })
            .collect();
        let base = medians[0];
        println!("median BPF_PROG_RUN ns over {RUNS} runs (harness, piece_pass: {base} ns):");
        let names = PIECES
            .iter()
            .map(|(_, what)| *what)
            .chain(["socket lookup, nothing found"]);
        for (what, m) in names.zip(&medians) {
            println!(
                "  {what:<40} {m:>6} ns  ({:>5} ns above the harness)",
                m.saturating_sub(base)
            );
        }
    });
}
