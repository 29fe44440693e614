//! The table requests pick from: Maglev over the healthy endpoints of one backend, or over all of them
//! when none is healthy (fail open).

use rauta_maglev::{MaglevBackend, MaglevTable};

use crate::endpoint::EndpointState;
use std::sync::Arc;

/// An immutable pick table; rebuilt off the request path and swapped whole.
#[derive(Debug)]
pub(crate) struct Selection {
    /// Indexes (into the backend's endpoints) of the members, in endpoint order.
    pub(crate) members: Vec<usize>,
    /// Slot values index `members`.
    pub(crate) maglev: MaglevTable,
    /// No endpoint is healthy: every endpoint is a member.
    pub(crate) fail_open: bool,
}

impl Selection {
    /// Build from the endpoints' current health. Keys are `ip:port` with weight 1, as
    /// `rauta_routes::Backend` builds its table, so with every endpoint healthy both tables are the same
    /// (the kernel tiers index the backend's); Maglev moves only about the flows of the endpoints that
    /// left or joined.
    pub(crate) fn build(endpoints: &[Arc<EndpointState>]) -> Selection {
        let healthy: Vec<usize> = (0..endpoints.len())
            .filter(|&i| endpoints[i].healthy())
            .collect();
        let fail_open = healthy.is_empty() && !endpoints.is_empty();
        let members = if fail_open {
            (0..endpoints.len()).collect()
        } else {
            healthy
        };
        let keys: Vec<String> = members
            .iter()
            .map(|&i| endpoints[i].addr.to_string())
            .collect();
        let backends: Vec<MaglevBackend> = keys
            .iter()
            .map(|key| MaglevBackend { key, weight: 1 })
            .collect();
        Selection {
            maglev: MaglevTable::build(&backends),
            members,
            fail_open,
        }
    }

    /// Whether the members are exactly the endpoints that are healthy now (or all, failing open).
    pub(crate) fn is_current(&self, endpoints: &[Arc<EndpointState>]) -> bool {
        let mut healthy = (0..endpoints.len()).filter(|&i| endpoints[i].healthy());
        if self.fail_open {
            return healthy.next().is_none();
        }
        healthy.eq(self.members.iter().copied())
    }

    /// The member for a flow hash, as an endpoint index.
    #[inline]
    pub(crate) fn pick(&self, hash: u32) -> Option<usize> {
        self.maglev
            .lookup(hash)
            .and_then(|slot| self.members.get(slot).copied())
    }

    /// Another member than `failed` for a retry: the next member after it in endpoint order that is
    /// not ejected meanwhile, so retries of one endpoint's flows spread deterministically.
    pub(crate) fn other_than(
        &self,
        failed: usize,
        endpoints: &[Arc<EndpointState>],
    ) -> Option<usize> {
        let start = self.members.iter().position(|&m| m > failed).unwrap_or(0);
        let n = self.members.len();
        (0..n)
            .map(|k| self.members[(start + k) % n])
            .find(|&m| m != failed && !endpoints[m].ejected())
    }
}
