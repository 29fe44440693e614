//! Loading, configuring, attaching and detaching Tier 1's XDP and TC (egress and ingress) programs.

use std::{collections::HashSet, net::SocketAddrV4, time::Duration};

use aya::{
    maps::{Array, HashMap, PerCpuArray, ProgramArray},
    programs::{
        tc::SchedClassifierLinkId, xdp::XdpLinkId, SchedClassifier, TcAttachType, TestRun,
        TestRunOptions, Xdp, XdpMode,
    },
    Ebpf,
};
use rauta_common::{
    maps::{
        FlowKey, FlowState, HeldKey, PendingSegment, PendingShort, VipConfig, COUNTERS_MAP,
        FLOWS_MAP, HELD_MAP, LATENCY_BUCKETS, LATENCY_MAP, LATENCY_SLOTS, LATENCY_SUM_SLOT,
        PENDING_MAP, PENDING_SHORT_MAP, STATUS_CLASSES_MAP, STATUS_CLASS_SLOTS, TC_EGRESS_PROGRAM,
        VIP_MAP, XDP_PROGRAM,
    },
    reason::Reason,
    route::{
        Endpoint, RouteDecision, RouteKey, RouteReason, RouteValue, ServiceEntry, DECISIONS_MAP,
        METHOD_GET, METHOD_HEAD, ROUTES_MAP, ROUTE_COUNTERS_MAP, SERVICES_MAP, SERVICE_BANK_BIT,
        SLOTS_MAP, SLOTS_PER_BANK,
    },
    splice::{
        claim_is_held, BackendLeg, OldLeg, SpliceConfig, SpliceState, DEFAULT_NAT_PORTS, NAT_MAP,
        OLD_LEGS_MAP, PROGS_MAP, PROG_ENTRY, PROG_FOLLOWUP, PROG_RESPONSE, PROG_ROUTE, PROG_SPLICE,
        PROG_SPLICE_START, PROG_SYN, SPLICES_MAP, SPLICE_CONFIG_MAP, SPLICE_RESET,
        TC_INGRESS_PROGRAM, XDP_FOLLOWUP_PROGRAM, XDP_RESPONSE_PROGRAM, XDP_ROUTE_PROGRAM,
        XDP_SPLICE_PROGRAM, XDP_SPLICE_START_PROGRAM, XDP_SYN_PROGRAM,
    },
};
use rauta_routes::RouteTable;

use crate::{
    counters::{Counters, RouteCounters, StatusClasses},
    error::DataplaneError,
    object::BPF_OBJECT,
    routes::{route_maps_with_health, HealthySlots, Skipped},
};

/// How the program is attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native XDP in the driver: runs before an skb exists.
    Driver,
    /// Generic XDP (after the skb is built): works on every device, slower. Used when the driver has no
    /// native XDP.
    Skb,
}

/// The action an XDP program returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpAction {
    /// `XDP_ABORTED`: a program error; the packet is dropped and a tracepoint fires.
    Aborted,
    /// `XDP_DROP`.
    Drop,
    /// `XDP_PASS`: on to the network stack.
    Pass,
    /// `XDP_TX`: back out of the receiving interface.
    Tx,
    /// `XDP_REDIRECT`.
    Redirect,
    /// Any other value (a program bug).
    Other(u32),
}

impl XdpAction {
    fn from_raw(value: u32) -> Self {
        match value {
            0 => XdpAction::Aborted,
            1 => XdpAction::Drop,
            2 => XdpAction::Pass,
            3 => XdpAction::Tx,
            4 => XdpAction::Redirect,
            other => XdpAction::Other(other),
        }
    }
}

/// One run of the XDP program on a packet, through `BPF_PROG_RUN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketRun {
    /// What the program returned.
    pub action: XdpAction,
    /// The packet as the program left it (for `XDP_PASS` and `XDP_DROP` usually the input unchanged).
    pub output: Vec<u8>,
    /// The kernel's measured duration of the run (includes the test harness' own overhead).
    pub duration: Duration,
}

/// One run of the TC egress program on a packet, through `BPF_PROG_RUN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcRun {
    /// What the program returned (`TC_ACT_OK` 0, `TC_ACT_SHOT` 2, `TC_ACT_REDIRECT` 7, ...).
    pub action: i32,
    /// The packet as the program left it.
    pub output: Vec<u8>,
    /// The kernel's measured duration of the run (includes the test harness' own overhead).
    pub duration: Duration,
}

/// Entries in the hand-off tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableSizes {
    /// `RAUTA_FLOWS`: connections handed to the listener.
    pub flows: usize,
    /// `RAUTA_PENDING`: first segments waiting for the listener's SYN-ACK.
    pub pending: usize,
    /// `RAUTA_HELD`: later segments waiting for the listener's socket.
    pub held: usize,
}

/// The XDP program's own run time on first data segments that are routing hits (Tier 1 first requests:
/// from the cookie check to the verdict, the route decision and the splice's tail calls included), as a
/// log2 histogram: `buckets[k]` counts runs shorter
/// than `2^k` ns and at least `2^(k-1)` ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FirstRequestLatency {
    /// Runs per bucket.
    pub buckets: [u64; LATENCY_BUCKETS as usize],
    /// Sum of all runs, in nanoseconds.
    pub sum_ns: u64,
}

impl FirstRequestLatency {
    /// Runs recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Cumulative (upper bound in nanoseconds, runs at or below it) pairs, Prometheus style: bucket `k`
    /// holds runs below `2^k` ns, so its inclusive bound is `2^k - 1`.
    pub fn cumulative(&self) -> Vec<(u64, u64)> {
        let mut total = 0;
        self.buckets
            .iter()
            .enumerate()
            .map(|(k, n)| {
                total += n;
                ((1u64 << k) - 1, total)
            })
            .collect()
    }
}

/// What [`KernelTiers::apply_routes`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppliedRoutes {
    /// Routes now in the kernel.
    pub routes: usize,
    /// Services (Maglev tables) now in the kernel.
    pub services: usize,
    /// Maglev slots now in the kernel.
    pub slots: usize,
    /// Route keys removed because the table no longer has them.
    pub removed_routes: usize,
    /// Routes left to Tier 3 only, and why.
    pub skipped: Vec<Skipped>,
    /// Splices whose endpoint left the table: each is reset at its next segment.
    pub reset_splices: usize,
}

/// `TC_ACT_OK`: the packet continues.
pub const TC_ACT_OK: i32 = 0;
/// `TC_ACT_SHOT`: the packet is dropped.
pub const TC_ACT_SHOT: i32 = 2;
/// `TC_ACT_REDIRECT`: the packet goes where `bpf_redirect` said.
pub const TC_ACT_REDIRECT: i32 = 7;

/// Tier 1 loaded into the kernel: the XDP program, the TC egress program that completes hand-offs to the
/// local listener, their maps, and the interfaces they are attached to. Dropping it detaches both
/// programs from every interface and frees the maps.
pub struct KernelTiers {
    ebpf: Ebpf,
    /// The service-id bank the route map points at now (0 or 1); `apply_routes` writes the other.
    bank: u32,
    attached: Vec<(String, XdpLinkId, AttachMode)>,
    /// TC links: (interface, program name, link).
    tc_attached: Vec<(String, &'static str, SchedClassifierLinkId)>,
}

impl std::fmt::Debug for KernelTiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelTiers")
            .field("attached", &self.attached)
            .finish_non_exhaustive()
    }
}

impl KernelTiers {
    /// Loads the program, points it at `vip` and attaches it to each of `interfaces` (driver mode, or
    /// generic mode where the driver has no XDP). With no interfaces the program is loaded but attached
    /// nowhere — what packet tests need. On error nothing stays attached.
    pub fn load(vip: SocketAddrV4, interfaces: &[String]) -> Result<KernelTiers, DataplaneError> {
        Self::load_in_mode(vip, interfaces, None)
    }

    /// As [`KernelTiers::load`], but with `Some(mode)` XDP is attached in exactly that mode (no
    /// fallback): generic mode on a device with native XDP, for tests and for drivers whose native mode
    /// misbehaves.
    pub fn load_in_mode(
        vip: SocketAddrV4,
        interfaces: &[String],
        mode: Option<AttachMode>,
    ) -> Result<KernelTiers, DataplaneError> {
        if vip.ip().is_unspecified() || vip.port() == 0 {
            return Err(DataplaneError::InvalidVip(vip));
        }
        let ebpf = Ebpf::load(BPF_OBJECT)?;
        let mut tiers = KernelTiers {
            ebpf,
            bank: 0,
            attached: Vec::new(),
            tc_attached: Vec::new(),
        };

        let mut vip_map: Array<_, VipConfig> = tiers.typed_map_mut(VIP_MAP)?;
        vip_map
            .set(
                0,
                VipConfig {
                    wscale: node_window_scale(),
                    ..VipConfig::new(vip.ip().octets(), vip.port())
                },
                0,
            )
            .map_err(|source| DataplaneError::map(VIP_MAP, source))?;

        tiers.set_splicing(Some(DEFAULT_NAT_PORTS))?;

        let program = tiers.xdp_mut()?;
        program
            .load()
            .map_err(|source| DataplaneError::program(XDP_PROGRAM, source))?;
        // The splice programs run only as tail calls from the XDP program: loaded, put in their slots,
        // never attached.
        for (name, slot) in [
            (XDP_SPLICE_PROGRAM, PROG_SPLICE),
            (XDP_SPLICE_START_PROGRAM, PROG_SPLICE_START),
            (XDP_ROUTE_PROGRAM, PROG_ROUTE),
            (XDP_SYN_PROGRAM, PROG_SYN),
            (XDP_FOLLOWUP_PROGRAM, PROG_FOLLOWUP),
            (XDP_RESPONSE_PROGRAM, PROG_RESPONSE),
            // The follow-up and response steps return to the entry program: it has a slot too
            // (loaded above).
            (XDP_PROGRAM, PROG_ENTRY),
        ] {
            let program: &mut Xdp = tiers.typed_program_mut(name)?;
            if name != XDP_PROGRAM {
                program
                    .load()
                    .map_err(|source| DataplaneError::program(name, source))?;
            }
            let fd = program
                .fd()
                .map_err(|source| DataplaneError::program(name, source))?
                .try_clone()
                .map_err(|source| DataplaneError::program(name, source.into()))?;
            let mut progs: ProgramArray<_> = tiers.typed_map_mut(PROGS_MAP)?;
            progs
                .set(slot, &fd, 0)
                .map_err(|source| DataplaneError::map(PROGS_MAP, source))?;
        }
        for name in [TC_EGRESS_PROGRAM, TC_INGRESS_PROGRAM] {
            tiers
                .typed_program_mut::<SchedClassifier>(name)?
                .load()
                .map_err(|source| DataplaneError::program(name, source))?;
        }
        for interface in interfaces {
            // On error `tiers` is dropped here, which detaches what was attached so far. TC first: an XDP
            // program that replays SYNs or starts splices without its TC halves would leave clients
            // hanging.
            for (name, direction) in [
                (TC_EGRESS_PROGRAM, TcAttachType::Egress),
                (TC_INGRESS_PROGRAM, TcAttachType::Ingress),
            ] {
                let tc_link = tiers
                    .typed_program_mut::<SchedClassifier>(name)?
                    .attach(interface, direction)
                    .map_err(|source| DataplaneError::program(name, source))?;
                tiers.tc_attached.push((interface.clone(), name, tc_link));
            }
            let (link, mode) = attach(tiers.xdp_mut()?, interface, mode)?;
            tracing::info!(interface = %interface, mode = ?mode, vip = %vip, "attached XDP program");
            tiers.attached.push((interface.clone(), link, mode));
        }
        Ok(tiers)
    }

    /// Interfaces the program is attached to, with the mode each got.
    pub fn attachments(&self) -> impl Iterator<Item = (&str, AttachMode)> {
        self.attached
            .iter()
            .map(|(name, _, mode)| (name.as_str(), *mode))
    }

    /// The counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, DataplaneError> {
        let counters: PerCpuArray<_, u64> = self.typed_map(COUNTERS_MAP)?;
        let mut values = [0u64; Reason::COUNT];
        for reason in Reason::ALL {
            let per_cpu = counters
                .get(&reason.index(), 0)
                .map_err(|source| DataplaneError::map(COUNTERS_MAP, source))?;
            values[reason.index() as usize] =
                per_cpu.iter().fold(0u64, |sum, v| sum.wrapping_add(*v));
        }
        Ok(Counters::from_values(values))
    }

    /// The routing decisions of first data segments, per reason, summed over CPUs.
    pub fn route_counters(&self) -> Result<RouteCounters, DataplaneError> {
        let counters: PerCpuArray<_, u64> = self.typed_map(ROUTE_COUNTERS_MAP)?;
        let mut values = [0u64; RouteReason::COUNT];
        for reason in RouteReason::ALL {
            let per_cpu = counters
                .get(&reason.index(), 0)
                .map_err(|source| DataplaneError::map(ROUTE_COUNTERS_MAP, source))?;
            values[reason.index() as usize] =
                per_cpu.iter().fold(0u64, |sum, v| sum.wrapping_add(*v));
        }
        Ok(RouteCounters::from_values(values))
    }

    /// Tier 1's responses per status class, summed over CPUs.
    pub fn status_classes(&self) -> Result<StatusClasses, DataplaneError> {
        let map: PerCpuArray<_, u64> = self.typed_map(STATUS_CLASSES_MAP)?;
        let mut values = [0u64; STATUS_CLASS_SLOTS as usize];
        for (slot, value) in (0..STATUS_CLASS_SLOTS).zip(values.iter_mut()) {
            let per_cpu = map
                .get(&slot, 0)
                .map_err(|source| DataplaneError::map(STATUS_CLASSES_MAP, source))?;
            *value = per_cpu.iter().fold(0u64, |sum, v| sum.wrapping_add(*v));
        }
        Ok(StatusClasses::from_values(values))
    }

    /// Whether the programs record each connection's first routing decision (read back with
    /// [`KernelTiers::decision`]). Off after [`KernelTiers::load`]: nothing in the product reads the
    /// records, and the insert costs a first request ~7 % of its time. Tests and diagnostics turn it on.
    pub fn record_decisions(&mut self, on: bool) -> Result<(), DataplaneError> {
        let mut vip_map: Array<_, VipConfig> = self.typed_map_mut(VIP_MAP)?;
        let mut vip = vip_map
            .get(&0, 0)
            .map_err(|source| DataplaneError::map(VIP_MAP, source))?;
        vip.record_decisions = u8::from(on);
        vip_map
            .set(0, vip, 0)
            .map_err(|source| DataplaneError::map(VIP_MAP, source))
    }

    /// The routing decision recorded for the flow `key`'s first data segment, if any (only while
    /// [`KernelTiers::record_decisions`] is on).
    pub fn decision(&self, key: &FlowKey) -> Result<Option<RouteDecision>, DataplaneError> {
        let decisions: HashMap<_, FlowKey, RouteDecision> = self.typed_map(DECISIONS_MAP)?;
        match decisions.get(key, 0) {
            Ok(d) => Ok(Some(d)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(source) => Err(DataplaneError::map(DECISIONS_MAP, source)),
        }
    }

    /// Number of recorded routing decisions (tests and diagnostics: walks the map).
    pub fn decision_count(&self) -> Result<usize, DataplaneError> {
        let decisions: HashMap<_, FlowKey, RouteDecision> = self.typed_map(DECISIONS_MAP)?;
        Ok(decisions.keys().count())
    }

    /// Writes the kernel-eligible routes of `table` into the route maps (see `routes` for which ones)
    /// and removes every other entry.
    ///
    /// Order, so that a packet routed during the update always finds a complete service: (1) clear the
    /// inactive bank's service ids (left-overs of a failed update); (2) write every service's Maglev
    /// slots into the inactive bank's half of the slot array, then its service entry under the inactive
    /// bank's id; (3) point each route at its new id and slot range (one hash update per key: a reader
    /// sees the old or the new value, never a mix); (4) delete route keys the table no longer has; (5)
    /// delete the previously active bank's service entries. Its half of the slot array stays as it is
    /// until the next update writes over it, so a packet that read an old route value still finds that
    /// route's complete table. On error the maps may hold a mix of the old and the new table, each route
    /// still consistent with its own slots; calling again repairs it.
    pub fn apply_routes(&mut self, table: &RouteTable) -> Result<AppliedRoutes, DataplaneError> {
        self.apply_routes_with_health(table, &|_| None)
    }

    /// As [`KernelTiers::apply_routes`], each backend's Maglev slots from `healthy` where it gives some
    /// (the table Tier 3 picks from while some endpoints are unhealthy). Splices to an unhealthy
    /// endpoint are left alone: only new connections follow health; an endpoint that left the table
    /// resets its splices, as always.
    pub fn apply_routes_with_health(
        &mut self,
        table: &RouteTable,
        healthy: HealthySlots,
    ) -> Result<AppliedRoutes, DataplaneError> {
        let image = route_maps_with_health(table, healthy);
        let old_bank = self.bank;
        let new_bank = old_bank ^ 1;
        let id = |index: usize| (new_bank * SERVICE_BANK_BIT) | index as u32;

        // Each service's slot 0 in the array: its bank's half, tables one after the other
        // (`route_maps_with_health` keeps their sum within a bank).
        let bases: Vec<u32> = image
            .services
            .iter()
            .scan(new_bank * SLOTS_PER_BANK, |next, service| {
                let base = *next;
                *next += service.slots.len() as u32;
                Some(base)
            })
            .collect();

        self.delete_bank(new_bank)?;
        {
            let mut slots: Array<_, Endpoint> = self.typed_map_mut(SLOTS_MAP)?;
            for (service, &base) in image.services.iter().zip(&bases) {
                for (slot, endpoint) in service.slots.iter().enumerate() {
                    slots
                        .set(base + slot as u32, endpoint, 0)
                        .map_err(|source| DataplaneError::map(SLOTS_MAP, source))?;
                }
            }
        }
        {
            let mut services: HashMap<_, u32, ServiceEntry> = self.typed_map_mut(SERVICES_MAP)?;
            for (index, (service, &base)) in image.services.iter().zip(&bases).enumerate() {
                let entry = ServiceEntry {
                    table_size: service.slots.len() as u32,
                    endpoints: service.endpoints,
                    slot_base: base,
                };
                services
                    .insert(id(index), entry, 0)
                    .map_err(|source| DataplaneError::map(SERVICES_MAP, source))?;
            }
        }
        let removed_routes = {
            let mut routes: HashMap<_, RouteKey, RouteValue> = self.typed_map_mut(ROUTES_MAP)?;
            for (key, index) in &image.routes {
                let value = RouteValue {
                    service: id(*index),
                    methods: METHOD_GET | METHOD_HEAD,
                    slot_base: bases[*index],
                    table_size: image.services[*index].slots.len() as u32,
                };
                routes
                    .insert(key, value, 0)
                    .map_err(|source| DataplaneError::map(ROUTES_MAP, source))?;
            }
            let wanted: HashSet<RouteKey> = image.routes.iter().map(|(k, _)| *k).collect();
            let stale: Vec<RouteKey> = routes
                .keys()
                .filter_map(Result::ok)
                .filter(|k| !wanted.contains(k))
                .collect();
            for key in &stale {
                match routes.remove(key) {
                    Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                    Err(source) => return Err(DataplaneError::map(ROUTES_MAP, source)),
                }
            }
            stale.len()
        };
        self.bank = new_bank;
        self.delete_bank(old_bank)?;
        let live: HashSet<Endpoint> = image
            .services
            .iter()
            .flat_map(|service| service.members.iter().copied())
            .collect();
        let reset_splices = self.reset_splices_outside(&live)?;
        Ok(AppliedRoutes {
            reset_splices,
            routes: image.routes.len(),
            services: image.services.len(),
            slots: image.slot_count(),
            removed_routes,
            skipped: image.skipped,
        })
    }

    /// Deletes every service entry whose id is in `bank` (its half of the slot array needs no deleting:
    /// only a route value names a slot range, and the next update of that bank writes over it).
    fn delete_bank(&mut self, bank: u32) -> Result<(), DataplaneError> {
        let in_bank = |service: u32| (service & SERVICE_BANK_BIT != 0) == (bank == 1);
        let mut services: HashMap<_, u32, ServiceEntry> = self.typed_map_mut(SERVICES_MAP)?;
        let ids: Vec<u32> = services
            .keys()
            .filter_map(Result::ok)
            .filter(|&k| in_bank(k))
            .collect();
        for k in ids {
            match services.remove(&k) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(source) => return Err(DataplaneError::map(SERVICES_MAP, source)),
            }
        }
        Ok(())
    }

    /// Entries in the route and service maps, and the Maglev slots those services use (tests and
    /// diagnostics: walks the maps).
    pub fn route_map_sizes(&self) -> Result<(usize, usize, usize), DataplaneError> {
        let routes: HashMap<_, RouteKey, RouteValue> = self.typed_map(ROUTES_MAP)?;
        let services: HashMap<_, u32, ServiceEntry> = self.typed_map(SERVICES_MAP)?;
        let slots = services
            .iter()
            .filter_map(Result::ok)
            .map(|(_, entry)| entry.table_size as usize)
            .sum();
        Ok((routes.keys().count(), services.keys().count(), slots))
    }

    /// Runs the program once on `packet` with `BPF_PROG_RUN` (no interface involved) and returns its action
    /// and output packet. `repeat` is always 1: the kernel re-runs a repeated test on the packet the
    /// previous run rewrote, so repetitions would measure another path. Counters and maps change as for a
    /// real packet.
    pub fn run_once(&self, packet: &[u8]) -> Result<PacketRun, DataplaneError> {
        self.run_once_from(packet, 0)
    }

    /// As [`KernelTiers::run_once`], with the packet arriving on the interface `ingress_ifindex` of the
    /// calling thread's network namespace (0: none), which is where the program's FIB lookups start
    /// and what `XDP_TX` compares redirects against.
    pub fn run_once_from(
        &self,
        packet: &[u8],
        ingress_ifindex: u32,
    ) -> Result<PacketRun, DataplaneError> {
        let program = self.xdp()?;
        // `struct xdp_md`: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(packet.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&ingress_ifindex.to_ne_bytes());
        // Room for growth: the SYN-ACK can be a few bytes longer than the SYN.
        let mut output = vec![0u8; packet.len() + 256];
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(packet),
                data_out: Some(&mut output),
                ctx_in: (ingress_ifindex != 0).then_some(&ctx[..]),
                repeat: 1,
                ..TestRunOptions::default()
            })
            .map_err(|source| DataplaneError::program(XDP_PROGRAM, source))?;
        output.truncate(result.data_size_out as usize);
        Ok(PacketRun {
            action: XdpAction::from_raw(result.return_value),
            output,
            duration: result.duration,
        })
    }

    /// Runs the TC egress program once on `packet` (an Ethernet frame) with `BPF_PROG_RUN`. Maps change as
    /// for a real packet; a redirect is returned as [`TC_ACT_REDIRECT`] but goes nowhere.
    pub fn run_tc_once(&self, packet: &[u8]) -> Result<TcRun, DataplaneError> {
        self.run_classifier_once(TC_EGRESS_PROGRAM, packet)
    }

    /// Runs the TC ingress program once on `packet`, like [`KernelTiers::run_tc_once`].
    pub fn run_tc_ingress_once(&self, packet: &[u8]) -> Result<TcRun, DataplaneError> {
        self.run_classifier_once(TC_INGRESS_PROGRAM, packet)
    }

    fn run_classifier_once(
        &self,
        name: &'static str,
        packet: &[u8],
    ) -> Result<TcRun, DataplaneError> {
        let program: &SchedClassifier = self.typed_program(name)?;
        // Room for growth: a SYN-ACK becomes an ACK with up to PENDING_BUF bytes of payload (plus the
        // splice's inserted header).
        let mut output = vec![0u8; packet.len() + rauta_common::maps::PENDING_BUF + 64];
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(packet),
                data_out: Some(&mut output),
                repeat: 1,
                ..TestRunOptions::default()
            })
            .map_err(|source| DataplaneError::program(name, source))?;
        output.truncate(result.data_size_out as usize);
        Ok(TcRun {
            action: result.return_value as i32,
            output,
            duration: result.duration,
        })
    }

    /// Switches the splice of routing hits to backends on (`Some((min, max))`: NAT ports `min..=max`) or
    /// off (`None`: every hit is handed to Tier 3). On by default with
    /// [`rauta_common::splice::DEFAULT_NAT_PORTS`].
    pub fn set_splicing(&mut self, ports: Option<(u16, u16)>) -> Result<(), DataplaneError> {
        let config = match ports {
            Some((min, max)) if min <= max && min > 0 => SpliceConfig::new(min, max),
            Some((min, max)) => return Err(DataplaneError::InvalidNatPorts(min, max)),
            None => SpliceConfig::default(),
        };
        let mut map: Array<_, SpliceConfig> = self.typed_map_mut(SPLICE_CONFIG_MAP)?;
        map.set(0, config, 0)
            .map_err(|source| DataplaneError::map(SPLICE_CONFIG_MAP, source))
    }

    /// Marks every splice whose endpoint is not in `live` for reset (the next segment of either side
    /// becomes the client's RST); others are untouched. Returns how many were marked.
    fn reset_splices_outside(&mut self, live: &HashSet<Endpoint>) -> Result<usize, DataplaneError> {
        let mut splices: HashMap<_, FlowKey, SpliceState> = self.typed_map_mut(SPLICES_MAP)?;
        let keys: Vec<FlowKey> = splices.keys().filter_map(Result::ok).collect();
        let mut reset_legs = Vec::new();
        for key in keys {
            let Ok(mut splice) = splices.get(&key, 0) else {
                continue; // closed meanwhile
            };
            let endpoint = Endpoint {
                addr_be: splice.backend_addr,
                port_be: splice.backend_port,
                _pad: 0,
            };
            if live.contains(&endpoint) || splice.state == SPLICE_RESET {
                continue;
            }
            splice.state = SPLICE_RESET;
            match splices.insert(key, splice, 0) {
                Ok(()) => reset_legs.push(splice),
                Err(source) => return Err(DataplaneError::map(SPLICES_MAP, source)),
            }
        }
        // Both sides' segments must see the reset too: their legs stop translating on their own.
        for splice in &reset_legs {
            self.leg_not_ready(splice)?;
        }
        Ok(reset_legs.len())
    }

    /// Clears `BackendLeg::ready` and `client_ready` of the leg of `splice`, if its slot still holds the
    /// splice's claim: its next backend and client segments look up the splice. The slot is read and written back whole (a map
    /// update cannot write one field): a release and a new claim of that very port within the
    /// microseconds between the two calls would be overwritten; the splice being reset closes at its
    /// next segment anyway, and its port then comes back through the staleness rule.
    fn leg_not_ready(&mut self, splice: &SpliceState) -> Result<(), DataplaneError> {
        let mut legs: Array<_, BackendLeg> = self.typed_map_mut(NAT_MAP)?;
        let index = u32::from(u16::from_be(splice.nat_port));
        let mut leg = legs
            .get(&index, 0)
            .map_err(|source| DataplaneError::map(NAT_MAP, source))?;
        if leg.claim != splice.nat_claim {
            return Ok(()); // closed meanwhile
        }
        leg.ready = 0;
        leg.client_ready = 0;
        legs.set(index, leg, 0)
            .map_err(|source| DataplaneError::map(NAT_MAP, source))
    }

    /// The first-request run-time histogram (see [`FirstRequestLatency`]), summed over CPUs.
    pub fn first_request_latency(&self) -> Result<FirstRequestLatency, DataplaneError> {
        let map: PerCpuArray<_, u64> = self.typed_map(LATENCY_MAP)?;
        let mut latency = FirstRequestLatency::default();
        for slot in 0..LATENCY_SLOTS {
            let per_cpu = map
                .get(&slot, 0)
                .map_err(|source| DataplaneError::map(LATENCY_MAP, source))?;
            let total: u64 = per_cpu.iter().sum();
            if slot == LATENCY_SUM_SLOT {
                latency.sum_ns = total;
            } else {
                latency.buckets[slot as usize] = total;
            }
        }
        Ok(latency)
    }

    /// The splice of the client connection `key`, if any (tests and diagnostics).
    pub fn splice(&self, key: &FlowKey) -> Result<Option<SpliceState>, DataplaneError> {
        let splices: HashMap<_, FlowKey, SpliceState> = self.typed_map(SPLICES_MAP)?;
        match splices.get(key, 0) {
            Ok(state) => Ok(Some(state)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(source) => Err(DataplaneError::map(SPLICES_MAP, source)),
        }
    }

    /// The backend leg of the splice of the client connection `key`, if any: its framing and its copy of
    /// the translation (tests and diagnostics).
    pub fn backend_leg(&self, key: &FlowKey) -> Result<Option<BackendLeg>, DataplaneError> {
        let Some(splice) = self.splice(key)? else {
            return Ok(None);
        };
        let legs: Array<_, BackendLeg> = self.typed_map(NAT_MAP)?;
        let leg = legs
            .get(&u32::from(u16::from_be(splice.nat_port)), 0)
            .map_err(|source| DataplaneError::map(NAT_MAP, source))?;
        Ok((leg.claim == splice.nat_claim).then_some(leg))
    }

    /// Removes the splice of the client connection `key` from the splice table and nothing else, as the
    /// table's LRU eviction does: its NAT port stays held until the staleness rule frees it (tests of
    /// that rule). True if there was one.
    pub fn evict_splice(&mut self, key: &FlowKey) -> Result<bool, DataplaneError> {
        let mut splices: HashMap<_, FlowKey, SpliceState> = self.typed_map_mut(SPLICES_MAP)?;
        match splices.remove(key) {
            Ok(()) => Ok(true),
            Err(aya::maps::MapError::KeyNotFound) => Ok(false),
            Err(source) => Err(DataplaneError::map(SPLICES_MAP, source)),
        }
    }

    /// The backend leg the connection `key` moved away from, while it waits to be closed (see
    /// `rauta_common::splice::OLD_LEGS_MAP`).
    pub fn old_leg(&self, key: &FlowKey) -> Result<Option<OldLeg>, DataplaneError> {
        let legs: HashMap<_, FlowKey, OldLeg> = self.typed_map(OLD_LEGS_MAP)?;
        match legs.get(key, 0) {
            Ok(leg) => Ok(Some(leg)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(source) => Err(DataplaneError::map(OLD_LEGS_MAP, source)),
        }
    }

    /// Number of active splices and of NAT ports held (walks the splice table and the NAT slots of the
    /// configured port range, one read each: for `/metrics` scrapes and tests, not per packet; ~5 ms for
    /// the default range). A port whose splice was evicted counts as held until it is reclaimed.
    pub fn splice_sizes(&self) -> Result<(usize, usize), DataplaneError> {
        let splices: HashMap<_, FlowKey, SpliceState> = self.typed_map(SPLICES_MAP)?;
        // Splices first: a splice is inserted after its port is claimed, so every splice counted has
        // its port counted too even while new ones start during the walk.
        let active = splices.keys().count();
        let config: Array<_, SpliceConfig> = self.typed_map(SPLICE_CONFIG_MAP)?;
        let config = config
            .get(&0, 0)
            .map_err(|source| DataplaneError::map(SPLICE_CONFIG_MAP, source))?;
        let legs: Array<_, BackendLeg> = self.typed_map(NAT_MAP)?;
        let mut held = 0;
        if config.port_min <= config.port_max {
            for port in config.port_min..=config.port_max {
                let leg = legs
                    .get(&u32::from(port), 0)
                    .map_err(|source| DataplaneError::map(NAT_MAP, source))?;
                held += usize::from(claim_is_held(leg.claim));
            }
        }
        Ok((active, held))
    }

    /// The flow-table entry for `key`, if any (tests and diagnostics).
    pub fn flow(&self, key: &FlowKey) -> Result<Option<FlowState>, DataplaneError> {
        let flows: HashMap<_, FlowKey, FlowState> = self.typed_map(FLOWS_MAP)?;
        match flows.get(key, 0) {
            Ok(state) => Ok(Some(state)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(source) => Err(DataplaneError::map(FLOWS_MAP, source)),
        }
    }

    /// Number of entries in the flow, pending-segment and held-segment tables (tests and diagnostics:
    /// walks the maps).
    pub fn table_sizes(&self) -> Result<TableSizes, DataplaneError> {
        let flows: HashMap<_, FlowKey, FlowState> = self.typed_map(FLOWS_MAP)?;
        let pending: HashMap<_, FlowKey, PendingSegment> = self.typed_map(PENDING_MAP)?;
        let pending_short: HashMap<_, FlowKey, PendingShort> = self.typed_map(PENDING_SHORT_MAP)?;
        let held: HashMap<_, HeldKey, PendingSegment> = self.typed_map(HELD_MAP)?;
        Ok(TableSizes {
            flows: flows.keys().count(),
            pending: pending.keys().count() + pending_short.keys().count(),
            held: held.keys().count(),
        })
    }

    /// A map of the loaded object, as the typed view `T` (`HashMap`, `PerCpuArray`, ...).
    fn typed_map<'a, T>(&'a self, name: &'static str) -> Result<T, DataplaneError>
    where
        T: TryFrom<&'a aya::maps::Map, Error = aya::maps::MapError>,
    {
        let map = self
            .ebpf
            .map(name)
            .ok_or(DataplaneError::Missing { kind: "map", name })?;
        T::try_from(map).map_err(|source| DataplaneError::map(name, source))
    }

    /// Like [`Self::typed_map`], writable.
    fn typed_map_mut<'a, T>(&'a mut self, name: &'static str) -> Result<T, DataplaneError>
    where
        T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
    {
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(DataplaneError::Missing { kind: "map", name })?;
        T::try_from(map).map_err(|source| DataplaneError::map(name, source))
    }

    /// A program of the loaded object, as its program type `T` (`Xdp`, `SchedClassifier`).
    fn typed_program<'a, T>(&'a self, name: &'static str) -> Result<&'a T, DataplaneError>
    where
        &'a T: TryFrom<&'a aya::programs::Program, Error = aya::programs::ProgramError>,
    {
        let program = self.ebpf.program(name).ok_or(DataplaneError::Missing {
            kind: "program",
            name,
        })?;
        program
            .try_into()
            .map_err(|source| DataplaneError::program(name, source))
    }

    /// Like [`Self::typed_program`], mutable (to load and attach).
    fn typed_program_mut<'a, T>(
        &'a mut self,
        name: &'static str,
    ) -> Result<&'a mut T, DataplaneError>
    where
        &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
    {
        let program = self.ebpf.program_mut(name).ok_or(DataplaneError::Missing {
            kind: "program",
            name,
        })?;
        program
            .try_into()
            .map_err(|source| DataplaneError::program(name, source))
    }

    fn xdp(&self) -> Result<&Xdp, DataplaneError> {
        self.typed_program(XDP_PROGRAM)
    }

    fn xdp_mut(&mut self) -> Result<&mut Xdp, DataplaneError> {
        self.typed_program_mut(XDP_PROGRAM)
    }
}

/// Attaches in driver mode, falling back to generic (SKB) mode; or in exactly `forced` mode.
fn attach(
    program: &mut Xdp,
    interface: &str,
    forced: Option<AttachMode>,
) -> Result<(XdpLinkId, AttachMode), DataplaneError> {
    if let Some(mode) = forced {
        let xdp_mode = match mode {
            AttachMode::Driver => XdpMode::Driver,
            AttachMode::Skb => XdpMode::Skb,
        };
        return program
            .attach(interface, xdp_mode)
            .map(|link| (link, mode))
            .map_err(|source| DataplaneError::program(XDP_PROGRAM, source));
    }
    let driver = match program.attach(interface, XdpMode::Driver) {
        Ok(link) => return Ok((link, AttachMode::Driver)),
        Err(e) => e,
    };
    tracing::info!(interface, error = %driver, "driver-mode XDP unavailable, trying generic (SKB) mode");
    match program.attach(interface, XdpMode::Skb) {
        Ok(link) => Ok((link, AttachMode::Skb)),
        Err(skb) => Err(DataplaneError::Attach {
            interface: interface.to_owned(),
            driver: Box::new(driver),
            skb: Box::new(skb),
        }),
    }
}

impl Drop for KernelTiers {
    fn drop(&mut self) {
        let tc_attached = std::mem::take(&mut self.tc_attached);
        for (interface, name, link) in tc_attached {
            match self.typed_program_mut::<SchedClassifier>(name) {
                Ok(program) => match program.detach(link) {
                    Ok(()) => {
                        tracing::info!(interface = %interface, program = name, "detached TC program")
                    }
                    Err(e) => {
                        tracing::warn!(interface = %interface, program = name, error = %e, "explicit TC detach failed")
                    }
                },
                Err(e) => {
                    tracing::warn!(program = name, error = %e, "cannot reach the TC program to detach it")
                }
            }
        }
        let attached = std::mem::take(&mut self.attached);
        if attached.is_empty() {
            return;
        }
        match self.xdp_mut() {
            Ok(program) => {
                for (interface, link, _) in attached {
                    match program.detach(link) {
                        Ok(()) => tracing::info!(interface = %interface, "detached XDP program"),
                        // Closing the program's fds below detaches it anyway; say so rather than fail.
                        Err(e) => {
                            tracing::warn!(interface = %interface, error = %e, "explicit XDP detach failed")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot reach the XDP program to detach it"),
        }
    }
}

/// The window scale this node's TCP listeners announce (Linux's `tcp_select_initial_window`:
/// `ilog2(max(tcp_rmem[2], rmem_max)) − 15`, within 0..=14). Tier 1 announces the same, so that connections
/// it hands to the local listener need no window rewriting. Falls back to Linux's default (7) if the
/// sysctls cannot be read.
pub fn node_window_scale() -> u8 {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let rmem_max = read("/proc/sys/net/ipv4/tcp_rmem")
        .and_then(|v| v.split_whitespace().nth(2)?.parse::<u64>().ok());
    let core_max = read("/proc/sys/net/core/rmem_max").and_then(|v| v.trim().parse::<u64>().ok());
    match (rmem_max, core_max) {
        (None, None) => rauta_common::maps::DEFAULT_WSCALE,
        (a, b) => {
            let space = a
                .unwrap_or(0)
                .max(b.unwrap_or(0))
                .clamp(1, u64::from(u32::MAX));
            (space.ilog2().saturating_sub(15)).min(14) as u8
        }
    }
}
