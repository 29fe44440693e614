//! A three-namespace lab for end-to-end splice tests at scale: client, the RAUTA node (Tier 1 loaded
//! in-process on both of its veths, a Tier 3 stand-in on the VIP) and a backend namespace with two
//! addresses served by [`HttpServer`]s. Everything it creates is deleted on drop.
//!
//! ```text
//! client 198.18.0.2 ── veth ── 198.18.0.1:8080 (VIP) node 198.18.1.1 ── veth ── 198.18.1.2:8080 backend a
//!                                                                                198.18.1.3:8080 backend b
//! ```
//!
//! Unlike the lab of `splice_netns.rs`, this one is built for load: the backends accept with a 4096-deep
//! backlog and count requests instead of recording them, the client's ephemeral range is widened, and
//! every name carries the process id and a per-process sequence number so that tests run in parallel
//! (nextest processes or `cargo test` threads) never collide.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream},
    os::fd::AsRawFd,
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
        Arc, OnceLock,
    },
    thread,
    time::{Duration, Instant},
};

use rauta_common::maps::XDP_PASS_PROGRAM;
use rauta_dataplane::{object::BPF_OBJECT, AttachMode, KernelTiers};

use super::netns;

/// The VIP (node side of the client veth).
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The client's address.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The node's address on the backend side (source of every spliced backend connection).
pub const NODE_BACKEND_SIDE: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// Backend a.
pub const BACKEND_A: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// Backend b.
pub const BACKEND_B: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 3);
/// Port of the VIP and of both backends (fixed ports are safe: every address lives in a namespace the
/// lab created).
pub const PORT: u16 = 8080;
/// The Host every route of [`routes`] is on.
pub const HOST: &str = "shop.example";
/// Size of the repeating block that `/size/N` bodies are cut from.
const BLOCK: usize = 1 << 20;

/// Routes: `/hello` and the sizes the tests fetch are Exact (Tier 1), `/prefix` is a Prefix route
/// (Tier 3); all to Service `shop` with endpoints a and b.
pub fn routes(sizes: &[usize]) -> rauta_routes::RouteTable {
    let mut paths = String::new();
    for path in ["/hello".to_owned(), "/bye".to_owned()]
        .into_iter()
        .chain(sizes.iter().map(|n| format!("/size/{n}")))
    {
        paths.push_str(&format!(
            "      - {{path: {path}, pathType: Exact, backend: {{service: {{name: shop, port: {{number: 80}}}}}}}}\n"
        ));
    }
    let ingress = format!(
        "---\nkind: Ingress\nmetadata: {{name: web, namespace: default}}\nspec:\n  ingressClassName: rauta\n  rules:\n  - host: {HOST}\n    http:\n      paths:\n{paths}      - {{path: /prefix, pathType: Prefix, backend: {{service: {{name: shop, port: {{number: 80}}}}}}}}\n"
    );
    super::routes::table(&format!(
        "{ingress}{}",
        super::routes::service("shop", &["198.18.1.2", "198.18.1.3"])
    ))
}

/// The first `n` bytes every `/size/N` body consists of: a 1 MiB position-dependent block, repeated.
pub fn body(n: usize) -> Vec<u8> {
    let block = block();
    let mut v = block.repeat(n.div_ceil(BLOCK));
    v.truncate(n);
    v
}

fn block() -> &'static [u8] {
    static BLOCK_BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BLOCK_BYTES.get_or_init(|| {
        (0..BLOCK)
            .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
            .collect()
    })
}

/// Runs a command; panics with its stderr on failure (lab set-up must not half-succeed silently).
pub fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `f` on a thread inside the namespace `ns` and returns its result.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_owned();
    thread::spawn(move || {
        netns::enter(&ns).unwrap();
        f()
    })
    .join()
    .expect("namespace thread")
}

/// An HTTP/1.1 server for load: a thread per connection, keep-alive unless the request says
/// `Connection: close` or the path is `/bye` (the server closes first, as a backend with a keep-alive
/// limit does), `/size/N` answered with [`body`]`(N)` and anything else with `<name> <path>`, so a
/// client can tell who answered what. Counts requests. `TCP_NODELAY`, as real servers: the head and
/// the body are two writes, and Nagle would hold the body for the client's delayed ACK (40 ms).
#[derive(Clone)]
pub struct HttpServer {
    /// What it answers with.
    pub name: &'static str,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl HttpServer {
    /// Binds `addr` (in the caller's namespace) with a 4096-deep accept backlog and serves on threads.
    pub fn start(name: &'static str, addr: SocketAddrV4) -> HttpServer {
        let listener = TcpListener::bind(addr).unwrap();
        // std listens with a backlog of 128; a thousand simultaneous splices would overflow it and cost
        // the clients a SYN retransmission each. listen() again only updates the backlog.
        // SAFETY: listen on a valid, bound socket fd.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 4096) }, 0);
        listener.set_nonblocking(true).unwrap();
        let server = HttpServer {
            name,
            requests: Arc::default(),
            stop: Arc::default(),
        };
        let s = server.clone();
        thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let s = s.clone();
                        thread::spawn(move || s.serve(conn));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        server
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn serve(&self, mut conn: TcpStream) {
        conn.set_nonblocking(false).unwrap();
        conn.set_nodelay(true).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut buf = Vec::new();
        loop {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                let mut chunk = [0u8; 4096];
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            buf.drain(..end + 4);
            self.requests.fetch_add(1, Ordering::Relaxed);
            let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
            let size = path
                .strip_prefix("/size/")
                .and_then(|n| n.parse::<usize>().ok());
            let close = path == "/bye"
                || head
                    .lines()
                    .any(|l| l.to_ascii_lowercase().replace(' ', "") == "connection:close");
            let small = format!("{} {path}", self.name);
            let length = size.unwrap_or(small.len());
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n{}\r\n",
                if close { "Connection: close\r\n" } else { "" }
            );
            if conn.write_all(response.as_bytes()).is_err() {
                return;
            }
            let written = match size {
                None => conn.write_all(small.as_bytes()),
                Some(mut left) => {
                    let mut result = Ok(());
                    while left > 0 && result.is_ok() {
                        let n = left.min(BLOCK);
                        result = conn.write_all(&block()[..n]);
                        left -= n;
                    }
                    result
                }
            };
            if written.is_err() || close {
                return;
            }
        }
    }
}

/// Stops the accept loop of every clone (connections being served finish on their own).
impl Drop for HttpServer {
    fn drop(&mut self) {
        if Arc::strong_count(&self.stop) <= 2 {
            self.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// One HTTP/1.1 exchange's outcome as the client saw it.
#[derive(Debug)]
pub struct Fetched {
    /// The status code.
    pub status: u16,
    /// The body (Content-Length bytes).
    pub body: Vec<u8>,
    /// Seconds from connect to the end of the body.
    pub secs: f64,
}

/// GET `path` on a new connection to `to` (from the calling thread's namespace), with the lab's Host and
/// `extra` header lines (each ending in CRLF). Errors are returned as text, so load tests can count them.
pub fn get(to: SocketAddrV4, path: &str, extra: &str) -> Result<Fetched, String> {
    let started = Instant::now();
    let mut conn = TcpStream::connect_timeout(&to.into(), Duration::from_secs(20))
        .map_err(|e| format!("connect: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{extra}\r\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    read_response(&mut conn, started)
}

/// Reads one response (head + Content-Length body) from `conn`. If the response says `Connection:
/// close`, also reads up to the server's close, so that the client is the passive closer (its ports do
/// not pile up in TIME_WAIT) and a close that never comes is an error.
pub fn read_response(conn: &mut TcpStream, started: Instant) -> Result<Fetched, String> {
    let mut data = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    // (status, body start, body length, the server closes after it)
    let mut complete: Option<(u16, usize, usize, bool)> = None;
    loop {
        if complete.is_none() {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("bad status line: {head:?}"))?;
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| format!("no Content-Length: {head:?}"))?;
                let close = head
                    .lines()
                    .any(|l| l.replace(' ', "") == "connection:close");
                complete = Some((status, end + 4, length, close));
            }
        }
        if let Some((status, start, length, false)) = complete {
            if data.len() >= start + length {
                data.truncate(start + length);
                return Ok(Fetched {
                    status,
                    body: data.split_off(start),
                    secs: started.elapsed().as_secs_f64(),
                });
            }
        }
        let read = conn.read(&mut chunk);
        match (read, complete) {
            (Ok(0), Some((status, start, length, _))) if data.len() >= start + length => {
                data.truncate(start + length);
                return Ok(Fetched {
                    status,
                    body: data.split_off(start),
                    secs: started.elapsed().as_secs_f64(),
                });
            }
            (Ok(0), _) => {
                return Err(format!(
                    "closed after {} bytes: {:?}",
                    data.len(),
                    String::from_utf8_lossy(&data[..data.len().min(200)])
                ))
            }
            (Ok(n), _) => data.extend_from_slice(&chunk[..n]),
            (Err(e), _) => return Err(format!("read after {} bytes: {e}", data.len())),
        }
    }
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// The three namespaces, Tier 1 on the node's two veths, servers in place; deleted on drop.
pub struct ScaleLab {
    tiers: Option<KernelTiers>,
    pass: Vec<aya::Ebpf>,
    /// Client, node and backend namespace names.
    pub namespaces: [String; 3],
    /// The Tier 3 stand-in on the VIP in the node namespace (answers `tier3 <path>`).
    pub tier3: HttpServer,
    /// Backend a (answers `backend-a <path>`).
    pub backend_a: HttpServer,
    /// Backend b (answers `backend-b <path>`).
    pub backend_b: HttpServer,
    /// The VIP and port.
    pub vip: SocketAddrV4,
}

impl ScaleLab {
    /// Builds the lab; `tag` names the test (kept short: it goes into namespace names), `mode` is the
    /// XDP mode on the node (`None`: driver, falling back to generic).
    pub fn start(tag: &str, mode: Option<AttachMode>) -> ScaleLab {
        let id = std::process::id();
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let [c, n, b] = ["c", "n", "b"].map(|role| format!("rk-{tag}-{role}-{id}-{seq}"));
        let idle = || HttpServer {
            name: "",
            requests: Arc::default(),
            stop: Arc::default(),
        };
        // Drop deletes whatever exists from here on.
        let mut lab = ScaleLab {
            tiers: None,
            pass: Vec::new(),
            namespaces: [c.clone(), n.clone(), b.clone()],
            tier3: idle(),
            backend_a: idle(),
            backend_b: idle(),
            vip: SocketAddrV4::new(VIP, PORT),
        };
        // Interface names are limited to 15 bytes: two letters, the sequence number, the pid.
        let [nc, cn, nb, bn] = ["kn", "kc", "km", "kb"].map(|p| format!("{p}{seq}x{id}"));
        for ns in [&c, &n, &b] {
            run(&["ip", "netns", "add", ns]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        run(&[
            "ip", "link", "add", &nc, "netns", &n, "type", "veth", "peer", "name", &cn, "netns", &c,
        ]);
        run(&[
            "ip", "link", "add", &nb, "netns", &n, "type", "veth", "peer", "name", &bn, "netns", &b,
        ]);
        for (ns, dev, addr) in [
            (&c, &cn, "198.18.0.2/24"),
            (&n, &nc, "198.18.0.1/24"),
            (&n, &nb, "198.18.1.1/24"),
            (&b, &bn, "198.18.1.2/24"),
            (&b, &bn, "198.18.1.3/24"),
        ] {
            run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
        }
        for (ns, dev) in [(&c, &cn), (&n, &nc), (&n, &nb), (&b, &bn)] {
            // XDP rewrites packets with incremental checksum updates: veth must not leave them partial.
            run(&["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        run(&[
            "ip",
            "-n",
            &b,
            "route",
            "add",
            "default",
            "via",
            "198.18.1.1",
        ]);
        run(&[
            "ip",
            "-n",
            &c,
            "route",
            "add",
            "default",
            "via",
            "198.18.0.1",
        ]);
        for (ns, setting) in [
            // The splice's FIB lookup forwards: the node must allow it, as Kubernetes nodes do.
            (&n, "net.ipv4.ip_forward=1"),
            (&n, "net.ipv4.tcp_syncookies=2"),
            // Room for a thousand simultaneous connections at the backends.
            (&b, "net.core.somaxconn=4096"),
            (&b, "net.ipv4.tcp_max_syn_backlog=4096"),
            (&n, "net.core.somaxconn=4096"),
            // Many short connections from one client address.
            (&c, "net.ipv4.ip_local_port_range=10000 60999"),
        ] {
            run(&["ip", "netns", "exec", ns, "sysctl", "-qw", setting]);
        }

        lab.tier3 = in_ns(&n, || {
            HttpServer::start("tier3", SocketAddrV4::new(VIP, PORT))
        });
        lab.backend_a = in_ns(&b, || {
            HttpServer::start("backend-a", SocketAddrV4::new(BACKEND_A, PORT))
        });
        lab.backend_b = in_ns(&b, || {
            HttpServer::start("backend-b", SocketAddrV4::new(BACKEND_B, PORT))
        });
        // The node learns the backends' MACs as it would by talking to them (a splice needs a resolved
        // neighbour; without one the FIB lookup fails and Tier 3 serves the request).
        in_ns(&n, || {
            for backend in [BACKEND_A, BACKEND_B] {
                TcpStream::connect((backend, PORT)).expect("the node reaches the backend");
            }
        });

        let vip = lab.vip;
        let devs = vec![nc.clone(), nb.clone()];
        lab.tiers = Some(in_ns(&n, move || {
            let mut tiers =
                KernelTiers::load_in_mode(vip, &devs, mode).expect("load and attach XDP and TC");
            // The cases read the routing decisions back.
            tiers.record_decisions(true).unwrap();
            tiers
        }));
        for (ns, dev) in [(c, cn), (b, bn)] {
            // veth delivers XDP_TX and XDP_REDIRECT frames only to a peer that runs an XDP program.
            lab.pass.push(in_ns(&ns, move || {
                let mut ebpf = aya::Ebpf::load(BPF_OBJECT).unwrap();
                let pass: &mut aya::programs::Xdp = ebpf
                    .program_mut(XDP_PASS_PROGRAM)
                    .unwrap()
                    .try_into()
                    .unwrap();
                pass.load().unwrap();
                pass.attach(&dev, aya::programs::XdpMode::Driver).unwrap();
                ebpf
            }));
        }
        lab
    }

    /// The loaded kernel tiers.
    pub fn tiers(&self) -> &KernelTiers {
        self.tiers.as_ref().unwrap()
    }

    /// The loaded kernel tiers, for route updates.
    pub fn tiers_mut(&mut self) -> &mut KernelTiers {
        self.tiers.as_mut().unwrap()
    }

    /// The client namespace's name.
    pub fn client_ns(&self) -> &str {
        &self.namespaces[0]
    }

    /// Waits up to `timeout` for the splice and NAT tables to empty; returns their last sizes.
    pub fn wait_splices_gone(&self, timeout: Duration) -> (usize, usize) {
        let deadline = Instant::now() + timeout;
        loop {
            let sizes = self.tiers().splice_sizes().unwrap();
            if sizes == (0, 0) || Instant::now() > deadline {
                return sizes;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Retransmitted segments, summed over the three namespaces.
    pub fn retransmissions(&self) -> u64 {
        self.namespaces
            .iter()
            .map(|ns| netns::retransmissions(ns))
            .sum()
    }
}

impl Drop for ScaleLab {
    fn drop(&mut self) {
        for server in [&self.tier3, &self.backend_a, &self.backend_b] {
            server.stop.store(true, Ordering::Relaxed);
        }
        // Detach before the namespaces go away.
        self.tiers.take();
        self.pass.clear();
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// An nftables table `inet rauta_drop` in one namespace that drops every `one_in`-th TCP packet at
/// random (`numgen random mod N`), in and out; deleted on drop (and with the namespace).
pub struct RandomDrops {
    ns: String,
}

impl RandomDrops {
    /// Installs the table in `ns`.
    pub fn install(ns: &str, one_in: u32) -> RandomDrops {
        let rule = format!("meta l4proto tcp numgen random mod {one_in} == 0 counter drop");
        let script = format!(
            "table inet rauta_drop {{\n\
               chain input {{ type filter hook input priority -300; {rule}; }}\n\
               chain output {{ type filter hook output priority -300; {rule}; }}\n\
             }}\n"
        );
        let path = std::env::temp_dir().join(format!(
            "rauta-drop-{ns}-{}.nft",
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, script).unwrap();
        run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "nft",
            "-f",
            path.to_str().unwrap(),
        ]);
        let _ = std::fs::remove_file(&path);
        RandomDrops { ns: ns.to_owned() }
    }

    /// Packets dropped so far (both chains).
    pub fn dropped(&self) -> u64 {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "nft",
                "list",
                "table",
                "inet",
                "rauta_drop",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split("counter packets ")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for RandomDrops {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "nft",
                "delete",
                "table",
                "inet",
                "rauta_drop",
            ])
            .output();
    }
}
