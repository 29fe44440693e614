//! The routing decision on a first data segment, through BPF_PROG_RUN: route maps written from a table
//! compiled from YAML (`KernelTiers::apply_routes`), a cookie handshake, then the first data segment.
//! Each case asserts the decision recorded for the flow, that exactly one routing counter moved, and that
//! the packet itself was handed to Tier 3 (splicing is switched off here; `splice_packets.rs` covers it). Hits
//! must choose the endpoint Tier 3's `Backend::pick_by_hash(flow_hash_v4(client))` chooses. Needs root.

mod support;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use rauta_common::{flow::flow_hash_v4, maps::FlowKey, route::RouteDecision};
use rauta_dataplane::{KernelTiers, Reason, RouteReason, XdpAction};
use rauta_routes::{Match, RouteTable};
use support::{
    packet::{self, Tcp4, ACK},
    routes::{service, table},
};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PORT: u16 = 8080;
const PSH: u8 = 0x08;

macro_rules! needs_root {
    ($name:expr) => {
        if !support::root_or_skip($name) {
            return;
        }
    };
}

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
      - {path: /cart, pathType: Exact, backend: {service: {name: shop, port: {number: 80}}}}
      - {path: /static, pathType: Prefix, backend: {service: {name: shop, port: {number: 80}}}}
      - {path: /about, pathType: Exact, backend: {service: {name: info, port: {number: 80}}}}
"#;

fn fixture() -> RouteTable {
    table(&format!(
        "{INGRESS}{}{}",
        service(
            "shop",
            &["198.18.1.1", "198.18.1.2", "198.18.1.3", "198.18.1.4"]
        ),
        service("info", &["198.18.2.1"]),
    ))
}

fn loaded(table: &RouteTable) -> KernelTiers {
    let mut t = KernelTiers::load(SocketAddrV4::new(VIP, PORT), &[]).expect("load (root?)");
    t.record_decisions(true).unwrap();
    // These cases are about the decision; with splicing off a hit is handed to Tier 3 like a miss
    // (`splice_packets.rs` covers what a hit does with splicing on).
    t.set_splicing(None).unwrap();
    let applied = t.apply_routes(table).unwrap();
    assert_eq!(applied.routes, 2, "shop.example /cart and /about");
    t
}

/// Completes a cookie handshake from `sport` and sends `payload` as the first data segment; returns
/// the recorded decision after asserting the packet was still handed off and one routing counter moved.
fn first_segment(t: &KernelTiers, sport: u16, payload: &[u8]) -> RouteDecision {
    let mut syn = Tcp4::syn(VIP, PORT);
    syn.sport = sport;
    syn.tcp_options = packet::linux_syn_options(1460);
    let run = t.run_once(&syn.build()).unwrap();
    assert_eq!(run.action, XdpAction::Tx);
    let cookie = packet::parse(&run.output).seq;

    let mut data = syn.clone();
    data.flags = PSH | ACK;
    data.seq = syn.seq.wrapping_add(1);
    data.ack = cookie.wrapping_add(1);
    data.tcp_options.clear();
    data.window = 502;
    data.payload = payload.to_vec();

    let before = (t.counters().unwrap(), t.route_counters().unwrap());
    let run = t.run_once(&data.build()).unwrap();
    assert_eq!(run.action, XdpAction::Pass, "still handed to Tier 3");
    let moved = t.counters().unwrap().since(&before.0);
    assert_eq!(
        moved.non_zero(),
        vec![(Reason::HandoffSynReplayed.name(), 1)]
    );
    let decision = t
        .decision(&FlowKey::new(CLIENT.octets(), sport, VIP.octets(), PORT))
        .unwrap()
        .expect("a decision is recorded");
    let reason = RouteReason::from_code(decision.reason).expect("a known code");
    let routed = t.route_counters().unwrap().since(&before.1);
    assert_eq!(routed.non_zero(), vec![(reason.name(), 1)]);
    decision
}

fn expect_endpoint(table: &RouteTable, path: &str, sport: u16, decision: &RouteDecision) {
    let Match::Route(route) = table.lookup("shop.example", path) else {
        panic!("{path} is routed")
    };
    let tier3 = route
        .backend
        .pick_by_hash(flow_hash_v4(CLIENT.octets(), sport))
        .unwrap();
    let kernel = SocketAddr::V4(SocketAddrV4::new(
        decision.endpoint.octets().into(),
        decision.endpoint.port(),
    ));
    assert_eq!(kernel, tier3, "client port {sport}");
}

#[test]
fn get_and_head_hits_pick_the_endpoint_tier_3_picks() {
    needs_root!("get_and_head_hits_pick_the_endpoint_tier_3_picks");
    let table = fixture();
    let t = loaded(&table);
    let mut seen = std::collections::HashSet::new();
    for i in 0..24u16 {
        let sport = 41000 + i * 37;
        let (method, path) = if i % 2 == 0 {
            ("GET", "/cart")
        } else {
            ("HEAD", "/cart")
        };
        let request =
            format!("{method} {path} HTTP/1.1\r\nHost: shop.example\r\nAccept: */*\r\n\r\n");
        let d = first_segment(&t, sport, request.as_bytes());
        assert_eq!(d.reason, RouteReason::Hit as u32, "{method} from {sport}");
        assert_ne!(d.service, 0, "a bank-1 service id");
        expect_endpoint(&table, path, sport, &d);
        seen.insert(d.endpoint);
    }
    assert!(seen.len() > 1, "24 clients spread over the 4 endpoints");
    // Another service behind another path of the same host.
    let d = first_segment(
        &t,
        42999,
        b"GET /about HTTP/1.1\r\nHost: shop.example\r\n\r\n",
    );
    assert_eq!(d.reason, RouteReason::Hit as u32);
    assert_eq!(
        (d.endpoint.octets(), d.endpoint.port()),
        ([198, 18, 2, 1], 8080)
    );
}

#[test]
fn every_miss_has_its_reason() {
    needs_root!("every_miss_has_its_reason");
    let table = fixture();
    let t = loaded(&table);
    let long_path = format!(
        "GET /{} HTTP/1.1\r\nHost: shop.example\r\n\r\n",
        "a".repeat(200)
    );
    let long_head = format!(
        "GET /cart HTTP/1.1\r\nHost: shop.example\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(1100)
    );
    let long_host = format!(
        "GET /cart HTTP/1.1\r\nHost: {}.example\r\n\r\n",
        "h".repeat(70)
    );
    let cases: Vec<(&str, Vec<u8>, RouteReason)> = vec![
        (
            "host with port and uppercase",
            b"GET /cart HTTP/1.1\r\nHOST:  Shop.EXAMPLE:8080 \r\n\r\n".to_vec(),
            RouteReason::Hit,
        ),
        (
            "trailing dot",
            b"GET /cart HTTP/1.1\r\nhost: shop.example.\r\n\r\n".to_vec(),
            RouteReason::Hit,
        ),
        (
            "query string ignored",
            b"GET /cart?id=7&x=1 HTTP/1.1\r\nHost: shop.example\r\n\r\n".to_vec(),
            RouteReason::Hit,
        ),
        (
            "POST",
            b"POST /cart HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 0\r\n\r\n".to_vec(),
            RouteReason::OtherMethod,
        ),
        (
            "unknown host",
            b"GET /cart HTTP/1.1\r\nHost: other.example\r\n\r\n".to_vec(),
            RouteReason::NoRoute,
        ),
        (
            "Prefix route is not Tier 1",
            b"GET /static HTTP/1.1\r\nHost: shop.example\r\n\r\n".to_vec(),
            RouteReason::NoRoute,
        ),
        (
            "path case matters",
            b"GET /CART HTTP/1.1\r\nHost: shop.example\r\n\r\n".to_vec(),
            RouteReason::NoRoute,
        ),
        (
            "missing Host",
            b"GET /cart HTTP/1.1\r\nAccept: */*\r\n\r\n".to_vec(),
            RouteReason::HostMissing,
        ),
        (
            "two Host headers",
            b"GET /cart HTTP/1.1\r\nHost: shop.example\r\nHost: evil.example\r\n\r\n".to_vec(),
            RouteReason::HostDuplicate,
        ),
        (
            "request line split across segments",
            b"GET /cart HT".to_vec(),
            RouteReason::HeadIncomplete,
        ),
        (
            "headers split across segments",
            b"GET /cart HTTP/1.1\r\nHost: shop.exa".to_vec(),
            RouteReason::HeadIncomplete,
        ),
        ("four bytes", b"GET ".to_vec(), RouteReason::HeadIncomplete),
        (
            "HTTP/1.0",
            b"GET /cart HTTP/1.0\r\nHost: shop.example\r\n\r\n".to_vec(),
            RouteReason::NotHttp11,
        ),
        (
            "absolute form",
            b"GET http://shop.example/cart HTTP/1.1\r\nHost: shop.example\r\n\r\n".to_vec(),
            RouteReason::NotOriginForm,
        ),
        (
            "IPv6 literal host",
            b"GET /cart HTTP/1.1\r\nHost: [::1]:80\r\n\r\n".to_vec(),
            RouteReason::HostUnsupported,
        ),
        (
            "empty host",
            b"GET /cart HTTP/1.1\r\nHost: \r\n\r\n".to_vec(),
            RouteReason::HostUnsupported,
        ),
        (
            "host too long",
            long_host.into_bytes(),
            RouteReason::HostUnsupported,
        ),
        (
            "path too long",
            long_path.into_bytes(),
            RouteReason::PathTooLong,
        ),
        (
            "head too long",
            long_head.into_bytes(),
            RouteReason::HeadTooLong,
        ),
        (
            "bare LF",
            b"GET /cart HTTP/1.1\nHost: shop.example\n\n".to_vec(),
            RouteReason::ParseError,
        ),
        (
            "obsolete fold",
            b"GET /cart HTTP/1.1\r\nHost: shop.example\r\n x\r\n\r\n".to_vec(),
            RouteReason::ParseError,
        ),
        (
            "space before the colon",
            b"GET /cart HTTP/1.1\r\nHost : evil.example\r\nHost: shop.example\r\n\r\n".to_vec(),
            RouteReason::ParseError,
        ),
        (
            "header line without a colon",
            b"GET /cart HTTP/1.1\r\nHost: shop.example\r\nnonsense\r\n\r\n".to_vec(),
            RouteReason::ParseError,
        ),
        (
            "three spaces",
            b"GET /cart x HTTP/1.1\r\nHost: shop.example\r\n\r\n".to_vec(),
            RouteReason::ParseError,
        ),
        (
            "NUL byte",
            b"GET /ca\0rt HTTP/1.1\r\nHost: shop.example\r\n\r\n".to_vec(),
            RouteReason::ParseError,
        ),
        (
            "garbage",
            vec![
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
            ],
            RouteReason::ParseError,
        ),
    ];
    for (i, (name, payload, want)) in cases.iter().enumerate() {
        let sport = 43000 + i as u16;
        let d = first_segment(&t, sport, payload);
        assert_eq!(
            RouteReason::from_code(d.reason),
            Some(*want),
            "case {name:?}"
        );
        if *want == RouteReason::Hit {
            expect_endpoint(&table, "/cart", sport, &d);
        } else {
            assert_eq!((d.service, d.endpoint.addr_be), (0, 0), "case {name:?}");
        }
    }
}

#[test]
fn apply_routes_switches_banks_and_removes_stale_entries() {
    needs_root!("apply_routes_switches_banks_and_removes_stale_entries");
    let first = fixture();
    let mut t = loaded(&first);
    let (routes, services, slots) = t.route_map_sizes().unwrap();
    assert_eq!((routes, services), (2, 2));
    let size = |path: &str| match first.lookup("shop.example", path) {
        Match::Route(r) => r.backend.maglev().size() as usize,
        _ => panic!("{path} is routed"),
    };
    assert_eq!(
        slots,
        size("/cart") + size("/about"),
        "one slot entry per Maglev slot"
    );

    // /about disappears, shop's endpoints change: the kernel follows, nothing stale stays.
    let ingress = INGRESS.replace(
        "      - {path: /about, pathType: Exact, backend: {service: {name: info, port: {number: 80}}}}\n",
        "",
    );
    let second = table(&format!(
        "{ingress}{}",
        service("shop", &["198.18.3.1", "198.18.3.2"])
    ));
    let applied = t.apply_routes(&second).unwrap();
    assert_eq!(
        (applied.routes, applied.services, applied.removed_routes),
        (1, 1, 1)
    );
    assert_eq!(t.route_map_sizes().unwrap(), (1, 1, 251));
    let d = first_segment(
        &t,
        44000,
        b"GET /cart HTTP/1.1\r\nHost: shop.example\r\n\r\n",
    );
    assert_eq!(d.reason, RouteReason::Hit as u32);
    assert_eq!(d.service, 0, "bank 0 after the second apply");
    assert_eq!(d.endpoint.octets()[..3], [198, 18, 3]);
    let Match::Route(route) = second.lookup("shop.example", "/cart") else {
        panic!()
    };
    assert_eq!(
        SocketAddr::V4(SocketAddrV4::new(
            d.endpoint.octets().into(),
            d.endpoint.port()
        )),
        route
            .backend
            .pick_by_hash(flow_hash_v4(CLIENT.octets(), 44000))
            .unwrap()
    );
    let d = first_segment(
        &t,
        44001,
        b"GET /about HTTP/1.1\r\nHost: shop.example\r\n\r\n",
    );
    assert_eq!(d.reason, RouteReason::NoRoute as u32);

    // An empty table empties the maps.
    let applied = t.apply_routes(&RouteTable::default()).unwrap();
    assert_eq!((applied.routes, applied.removed_routes), (0, 1));
    assert_eq!(t.route_map_sizes().unwrap(), (0, 0, 0));
}

/// The slot array is split in two banks and each service's table sits at a base inside its bank; an
/// update moves the bases (other services, other sizes, another order) and alternates the banks. After
/// every update both routes must pick what Tier 3 picks from the *new* table: a base computed wrong, or
/// a slot range left over from an earlier table, would hand out an endpoint of that table (every table
/// here has endpoints of its own).
#[test]
fn slot_bases_move_across_banks_and_every_route_picks_from_its_new_table() {
    needs_root!("slot_bases_move_across_banks_and_every_route_picks_from_its_new_table");
    let ingress = |first: (&str, &str), second: (&str, &str)| {
        format!(
            r#"
---
kind: Ingress
metadata: {{name: web, namespace: default}}
spec:
  ingressClassName: rauta
  rules:
  - host: shop.example
    http:
      paths:
      - {{path: {}, pathType: Exact, backend: {{service: {{name: {}, port: {{number: 80}}}}}}}}
      - {{path: {}, pathType: Exact, backend: {{service: {{name: {}, port: {{number: 80}}}}}}}}
"#,
            first.0, first.1, second.0, second.1
        )
    };
    let addresses = |net: u8, count: u8| -> Vec<String> {
        (1..=count).map(|i| format!("198.18.{net}.{i}")).collect()
    };
    let with = |order: [(&str, &str); 2], shop: Vec<String>, info: Vec<String>| {
        let shop: Vec<&str> = shop.iter().map(String::as_str).collect();
        let info: Vec<&str> = info.iter().map(String::as_str).collect();
        table(&format!(
            "{}{}{}",
            ingress(order[0], order[1]),
            service("shop", &shop),
            service("info", &info)
        ))
    };
    let cart = ("/cart", "shop");
    let about = ("/about", "info");
    let tables = [
        // shop (509 slots) then info (251) in bank 1.
        with([cart, about], addresses(10, 4), addresses(20, 1)),
        // info first in bank 0; shop smaller, after it.
        with([about, cart], addresses(11, 2), addresses(21, 3)),
        // Bank 1 again: shop grows over the range info had there.
        with([cart, about], addresses(12, 7), addresses(22, 1)),
        // Bank 0 again: shop shrinks, info moves down over shop's old range.
        with([cart, about], addresses(13, 1), addresses(23, 9)),
    ];
    let mut t = KernelTiers::load(SocketAddrV4::new(VIP, PORT), &[]).expect("load (root?)");
    t.record_decisions(true).unwrap();
    t.set_splicing(None).unwrap();
    let mut sport = 45000u16;
    for (round, table) in tables.iter().enumerate() {
        let applied = t.apply_routes(table).unwrap();
        assert_eq!((applied.routes, applied.services), (2, 2), "round {round}");
        let bank_bit = if round % 2 == 0 { 1 << 31 } else { 0 };
        for path in ["/cart", "/about"] {
            for _ in 0..12 {
                sport += 7;
                let request = format!("GET {path} HTTP/1.1\r\nHost: shop.example\r\n\r\n");
                let d = first_segment(&t, sport, request.as_bytes());
                assert_eq!(d.reason, RouteReason::Hit as u32, "round {round} {path}");
                assert_eq!(
                    d.service & (1 << 31),
                    bank_bit,
                    "round {round}: the new bank"
                );
                expect_endpoint(table, path, sport, &d);
            }
        }
    }
}

/// Not a pass/fail test: median `BPF_PROG_RUN` duration of a first data segment (cookie check, store,
/// replayed SYN and the routing decision) for a curl-sized and a browser-sized head, hit and miss
/// (`cargo test -p rauta-dataplane --test route_packets -- --ignored --nocapture`).
#[test]
#[ignore = "measurement, run on demand"]
fn median_cost_of_the_decision() {
    needs_root!("median_cost_of_the_decision");
    let table = fixture();
    let t = loaded(&table);
    let browser = format!(
        "GET /cart HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0\r\nAccept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br, zstd\r\nConnection: keep-alive\r\nCookie: {}\r\nUpgrade-Insecure-Requests: 1\r\nPriority: u=0, i\r\n\r\n",
        "c".repeat(120)
    );
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "curl hit",
            b"GET /cart HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n"
                .to_vec(),
        ),
        ("browser hit", browser.into_bytes()),
        (
            "curl no route",
            b"GET /none HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n"
                .to_vec(),
        ),
    ];
    for (c, (name, payload)) in cases.iter().enumerate() {
        let mut ns = Vec::new();
        for i in 0..1000u16 {
            let mut syn = Tcp4::syn(VIP, PORT);
            syn.sport = 10000 + (c as u16) * 1000 + i;
            let cookie = packet::parse(&t.run_once(&syn.build()).unwrap().output).seq;
            let mut data = syn.clone();
            data.flags = PSH | ACK;
            data.seq = syn.seq.wrapping_add(1);
            data.ack = cookie.wrapping_add(1);
            data.tcp_options.clear();
            data.payload = payload.clone();
            ns.push(t.run_once(&data.build()).unwrap().duration.as_nanos());
        }
        ns.sort_unstable();
        println!(
            "{name:>14} ({} bytes): median {} ns, p90 {} ns",
            payload.len(),
            ns[ns.len() / 2],
            ns[ns.len() * 9 / 10]
        );
    }
}

/// The parser reads the head 8 bytes at a time and steps byte by byte only inside the words that hold
/// a line end, a control byte or a header name: every case here is sent 16 times, shifted by 0..16
/// bytes (a query in the request line, a longer header value or name before it), so that each CR, LF,
/// colon, space and bad byte lands on every position of a word, at a word's first and last byte, and
/// across two words. The decision must not depend on where the words fall.
#[test]
fn decisions_do_not_depend_on_where_the_words_fall() {
    needs_root!("decisions_do_not_depend_on_where_the_words_fall");
    let table = fixture();
    let t = loaded(&table);
    use RouteReason::*;
    let mut sport = 30000u16;
    for k in 0..16usize {
        let q = "q".repeat(k);
        let p = "p".repeat(k);
        let cases: Vec<(&str, Vec<u8>, RouteReason)> = vec![
            (
                "plain",
                format!("GET /cart?{q} HTTP/1.1\r\nX-Pad: {p}\r\nHost: shop.example\r\n\r\n").into(),
                Hit,
            ),
            (
                "Host first, names in any case",
                format!("GET /cart?{q} HTTP/1.1\r\nhOsT: Shop.Example\r\nX-PAD: {p}\r\n\r\n").into(),
                Hit,
            ),
            (
                "HEAD, Host the last line",
                format!("HEAD /cart?{q} HTTP/1.1\r\nX-Pad: {p}\r\nHOST: shop.example\r\n\r\n").into(),
                Hit,
            ),
            (
                "tab and bytes above 0x7f in a value",
                format!("GET /cart HTTP/1.1\r\nX-Pad:\t{p}\t\u{e9}\r\nHost: shop.example\r\n\r\n")
                    .into(),
                Hit,
            ),
            (
                "long name with every token character",
                format!(
                    "GET /cart HTTP/1.1\r\nX-!#$%&'*+.^_`|~{p}: v\r\nHost: shop.example\r\n\r\n"
                )
                .into(),
                Hit,
            ),
            (
                "two Host lines",
                format!(
                    "GET /cart?{q} HTTP/1.1\r\nHost: shop.example\r\nX-Pad: {p}\r\nHost: shop.example\r\n\r\n"
                )
                .into(),
                HostDuplicate,
            ),
            (
                "a name that starts with host",
                format!("GET /cart?{q} HTTP/1.1\r\nHostname: shop.example\r\nX-Pad: {p}\r\n\r\n")
                    .into(),
                HostMissing,
            ),
            (
                "obsolete fold",
                format!("GET /cart HTTP/1.1\r\nX-Pad: {p}\r\n folded\r\nHost: shop.example\r\n\r\n")
                    .into(),
                ParseError,
            ),
            (
                "bare LF ending a value",
                format!("GET /cart HTTP/1.1\r\nX-Pad: {p}\nHost: shop.example\r\n\r\n").into(),
                ParseError,
            ),
            (
                "CR not followed by LF",
                format!("GET /cart HTTP/1.1\r\nX-Pad: {p}\rx\r\nHost: shop.example\r\n\r\n").into(),
                ParseError,
            ),
            (
                "DEL in a value",
                format!("GET /cart HTTP/1.1\r\nX-Pad: {p}\u{7f}\r\nHost: shop.example\r\n\r\n").into(),
                ParseError,
            ),
            (
                "NUL in a value",
                format!("GET /cart HTTP/1.1\r\nX-Pad: {p}\0\r\nHost: shop.example\r\n\r\n").into(),
                ParseError,
            ),
            (
                "control byte in the request line",
                format!("GET /cart?{q}\u{1} HTTP/1.1\r\nHost: shop.example\r\n\r\n").into(),
                ParseError,
            ),
            (
                "three spaces in the request line",
                format!("GET /cart?{q} x HTTP/1.1\r\nHost: shop.example\r\n\r\n").into(),
                ParseError,
            ),
            (
                "space before a colon",
                format!("GET /cart HTTP/1.1\r\nX-Pad{p} : v\r\nHost: shop.example\r\n\r\n").into(),
                ParseError,
            ),
            (
                "a separator in a name",
                format!("GET /cart HTTP/1.1\r\nX-Pa(d{p}: v\r\nHost: shop.example\r\n\r\n").into(),
                ParseError,
            ),
            (
                "no empty line yet",
                format!("GET /cart?{q} HTTP/1.1\r\nHost: shop.example\r\nX-Pad: {p}\r\n").into(),
                HeadIncomplete,
            ),
            (
                "cut between CR and LF of the empty line",
                format!("GET /cart?{q} HTTP/1.1\r\nHost: shop.example\r\nX-Pad: {p}\r\n\r").into(),
                HeadIncomplete,
            ),
            (
                "a byte after the head",
                format!("GET /cart?{q} HTTP/1.1\r\nHost: shop.example\r\nX-Pad: {p}\r\n\r\nX").into(),
                NotSpliceable,
            ),
            (
                "the longest path the key holds",
                format!("GET /{}?{q} HTTP/1.1\r\nHost: shop.example\r\n\r\n", "a".repeat(127)).into(),
                NoRoute,
            ),
            (
                "a path one byte too long",
                format!("GET /{}?{q} HTTP/1.1\r\nHost: shop.example\r\n\r\n", "a".repeat(128)).into(),
                PathTooLong,
            ),
            (
                "the longest host the key holds",
                format!("GET /cart?{q} HTTP/1.1\r\nHost: {}\r\n\r\n", "h".repeat(64)).into(),
                NoRoute,
            ),
            (
                "a host one byte too long",
                format!("GET /cart?{q} HTTP/1.1\r\nHost: {}\r\n\r\n", "h".repeat(65)).into(),
                HostUnsupported,
            ),
        ];
        for (name, payload, want) in &cases {
            sport += 1;
            let d = first_segment(&t, sport, payload);
            assert_eq!(
                RouteReason::from_code(d.reason),
                Some(*want),
                "case {name:?} shifted by {k}"
            );
        }
    }
    // The head's last LF at the last byte the scan reads (index 1,023: a hit), then one byte later.
    for (extra, want) in [(0usize, Hit), (1, HeadTooLong)] {
        let head = |pad: usize| {
            format!(
                "GET /cart HTTP/1.1\r\nHost: shop.example\r\nX-Pad: {}\r\n\r\n",
                "p".repeat(pad)
            )
        };
        let pad = 1024 - head(0).len() + extra;
        let payload = head(pad);
        assert_eq!(payload.len(), 1024 + extra);
        sport += 1;
        let d = first_segment(&t, sport, payload.as_bytes());
        assert_eq!(
            RouteReason::from_code(d.reason),
            Some(want),
            "head of {} bytes",
            payload.len()
        );
    }
}
