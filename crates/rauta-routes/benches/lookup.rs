//! Route table benchmarks: lookup over 10,000 paths on 1,000 hosts, the compile of those objects, and
//! the Maglev pick. Targets: lookup median <= 100 ns, compile_10k <= 100 ms, < 2 KB per path.
//!
//! The table's memory is measured with a counting allocator and printed before the benchmarks run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rauta_routes::model::*;
use rauta_routes::{compile, CompileOptions, Match};

/// Counts live heap bytes, to report the table's footprint.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const HOSTS: usize = 1_000;
const PATHS_PER_HOST: usize = 10;
const SERVICES: usize = 100;
const ENDPOINTS_PER_SERVICE: usize = 3;

fn meta(name: String, timestamp: usize) -> ObjectMeta {
    ObjectMeta {
        name,
        namespace: Some("bench".into()),
        creation_timestamp: Some(format!(
            "2024-01-01T00:{:02}:{:02}Z",
            timestamp / 60 % 60,
            timestamp % 60
        )),
        ..Default::default()
    }
}

fn host(h: usize) -> String {
    format!("svc-{h}.bench.example.com")
}

/// 1,000 Ingresses (one per host), each with 10 paths alternating Exact and Prefix, 1-3 elements
/// deep, spread over 100 Services with 3 endpoints each.
fn inputs() -> Inputs {
    let mut inputs = Inputs::default();
    for s in 0..SERVICES {
        inputs.services.push(Service {
            metadata: meta(format!("svc{s}"), s),
            spec: ServiceSpec {
                ports: vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    ..Default::default()
                }],
                ..Default::default()
            },
        });
        let mut labels = std::collections::BTreeMap::new();
        labels.insert("kubernetes.io/service-name".to_owned(), format!("svc{s}"));
        inputs.endpoint_slices.push(EndpointSlice {
            metadata: ObjectMeta {
                labels,
                ..meta(format!("svc{s}-x"), s)
            },
            address_type: "IPv4".into(),
            ports: vec![EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                ..Default::default()
            }],
            endpoints: (0..ENDPOINTS_PER_SERVICE)
                .map(|e| Endpoint {
                    addresses: vec![format!("10.{}.{}.{e}", s / 256, s % 256)],
                    ..Default::default()
                })
                .collect(),
        });
    }
    for h in 0..HOSTS {
        let paths = (0..PATHS_PER_HOST)
            .map(|p| HttpIngressPath {
                path: Some(match p % 3 {
                    0 => format!("/api{p}"),
                    1 => format!("/api{p}/v1"),
                    _ => format!("/static{p}/assets/img"),
                }),
                path_type: Some(if p % 2 == 0 { "Exact" } else { "Prefix" }.into()),
                backend: IngressBackend {
                    service: Some(IngressServiceBackend {
                        name: format!("svc{}", (h * PATHS_PER_HOST + p) % SERVICES),
                        port: ServiceBackendPort {
                            number: Some(80),
                            name: None,
                        },
                    }),
                    resource: None,
                },
            })
            .collect();
        inputs.ingresses.push(Ingress {
            metadata: meta(format!("ing{h}"), h),
            spec: IngressSpec {
                ingress_class_name: Some("rauta".into()),
                rules: vec![IngressRule {
                    host: Some(host(h)),
                    http: Some(HttpIngressRuleValue { paths }),
                }],
                ..Default::default()
            },
        });
    }
    inputs
}

/// Thread CPU time (`CLOCK_THREAD_CPUTIME_ID`): unlike wall time it does not count the time the
/// benchmark thread is descheduled, so numbers stay meaningful on a loaded (shared CI) machine.
struct ThreadCpuTime;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant supported by Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuNanos
    }
}

/// Formats thread CPU nanoseconds as "ns cpu".
struct CpuNanos;

impl ValueFormatter for CpuNanos {
    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        "ns(cpu)"
    }
    fn scale_throughputs(
        &self,
        _typical: f64,
        _t: &Throughput,
        _values: &mut [f64],
    ) -> &'static str {
        "ns(cpu)"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns(cpu)"
    }
}

fn bench(c: &mut Criterion) {
    run(c, "");
}

fn bench_cpu(c: &mut Criterion<ThreadCpuTime>) {
    run(c, "cpu/");
}

fn run<M: Measurement + 'static>(c: &mut Criterion<M>, label: &str) {
    let inputs = inputs();
    let options = CompileOptions::default();

    let before = LIVE.load(Ordering::Relaxed);
    let compiled = compile(&inputs, &options);
    let after = LIVE.load(Ordering::Relaxed);
    assert!(
        compiled.diagnostics.is_empty(),
        "{:?}",
        &compiled.diagnostics[..1]
    );
    let paths = compiled.table.routes().len();
    assert_eq!(paths, HOSTS * PATHS_PER_HOST);
    let bytes = after - before;
    if label.is_empty() {
        println!(
        "table memory: {bytes} bytes for {paths} paths on {HOSTS} hosts = {} bytes/path (incl. {SERVICES} backends with Maglev tables)",
        bytes / paths as isize
    );
    }
    let table = compiled.table;

    c.bench_function(&format!("{label}compile_10k"), |b| {
        b.iter(|| compile(black_box(&inputs), &options))
    });

    // Requests: exact hits, prefix hits on sub-paths, and misses, on hosts in mixed case with ports.
    let exact: Vec<(String, String)> = (0..HOSTS).map(|h| (host(h), "/api0".to_owned())).collect();
    let prefix: Vec<(String, String)> = (0..HOSTS)
        .map(|h| {
            (
                format!("SVC-{h}.bench.example.com:443"),
                "/api1/v1/users/42?x=1".to_owned(),
            )
        })
        .collect();
    let miss: Vec<(String, String)> = (0..HOSTS)
        .map(|h| (host(h), "/nothing/here".to_owned()))
        .collect();
    for (name, requests) in [
        ("lookup_exact", &exact),
        ("lookup_prefix", &prefix),
        ("lookup_miss", &miss),
    ] {
        for (h, p) in requests.iter().take(3) {
            let hit = matches!(table.lookup(h, p), Match::Route(_));
            assert_eq!(hit, name != "lookup_miss", "{name}: {h}{p}");
        }
        let mut i = 0;
        c.bench_function(&format!("{label}{name}"), |b| {
            b.iter(|| {
                let (h, p) = &requests[i % requests.len()];
                i += 1;
                matches!(table.lookup(black_box(h), black_box(p)), Match::Route(_))
            })
        });
    }
    let mixed: Vec<(String, String)> = exact
        .iter()
        .zip(&prefix)
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    let mut i = 0;
    c.bench_function(&format!("{label}lookup_mixed"), |b| {
        b.iter(|| {
            let (h, p) = &mixed[i % mixed.len()];
            i += 1;
            matches!(table.lookup(black_box(h), black_box(p)), Match::Route(_))
        })
    });

    // One host and path over and over: the warm-cache cost, as for a proxy's few hot hosts.
    let (hot_host, hot_path) = (&prefix[7].0, &prefix[7].1);
    c.bench_function(&format!("{label}lookup_hot_prefix"), |b| {
        b.iter(|| {
            matches!(
                table.lookup(black_box(hot_host), black_box(hot_path)),
                Match::Route(_)
            )
        })
    });

    let Match::Route(route) = table.lookup(&exact[0].0, &exact[0].1) else {
        panic!("no route")
    };
    let backend = route.backend.clone();
    let mut port = 1024u16;
    c.bench_function(&format!("{label}pick"), |b| {
        b.iter(|| {
            port = port.wrapping_add(1);
            backend.pick(black_box(SocketAddr::new([127, 0, 0, 1].into(), port)))
        })
    });
}

criterion_group!(benches, bench);
criterion_group! {
    name = benches_cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench_cpu
}
criterion_main!(benches, benches_cpu);
