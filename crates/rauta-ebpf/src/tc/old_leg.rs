//! Closing the backend leg a kept-alive connection moved away from (see
//! `rauta_common::splice::OLD_LEGS_MAP`).
//!
//! The follow-up program records the old leg when it moves a connection; the TC program that then
//! rewrites the packet completing the move (the new backend's SYN-ACK at ingress, the listener's
//! SYN-ACK at egress) first turns it into a RST to the old backend and clones that out
//! (`bpf_clone_redirect`), then goes on to rewrite the packet whole, as it would have anyway.

use aya_ebpf::{
    helpers::generated::{bpf_clone_redirect, bpf_skb_change_tail, bpf_skb_store_bytes},
    programs::TcContext,
};
use rauta_common::{
    maps::FlowKey,
    reason::Reason,
    splice::{RST_V4_LEN, rst_checksum_forms},
};

/// Where the RST's TCP checksum sits in the frame.
const RST_CHECK_AT: usize = 50;

use crate::maps::{RAUTA_OLD_LEGS, copy_of, count};

/// Sends the RST that closes the old leg of `key`, if that connection (the one whose ISN is
/// `client_isn`) moved and its old leg is still open; `rst` is where the RST is built (scratch). The packet is left as a 54-byte RST: the caller
/// must rewrite it whole afterwards (both callers do: `bpf_skb_change_tail` + `bpf_skb_store_bytes` of
/// every header). Read the packet's options before calling.
#[inline(always)]
pub fn close(ctx: &TcContext, key: &FlowKey, client_isn: u32, rst: &mut [u8; RST_V4_LEN]) {
    let Some(old) = copy_of(&RAUTA_OLD_LEGS, key) else {
        return;
    };
    if old.client_isn != client_isn {
        // A later connection on the same 4-tuple: that leg was closed, or evicted long ago.
        return;
    }
    let _ = RAUTA_OLD_LEGS.remove(key);
    old.rst(rst);
    // The skb may be CHECKSUM_PARTIAL (the listener's SYN-ACK at egress is): written in the partial form,
    // completed by the kernel's own update unless it is (see `rst_checksum_forms`).
    let adjustment = rst_checksum_forms(rst);
    let skb = ctx.skb.skb;
    // SAFETY: helper calls on this program's skb with a buffer of the stated size; no packet pointer is
    // held across them. The clone is taken after the RST is written whole.
    let sent = unsafe {
        bpf_skb_change_tail(skb, RST_V4_LEN as u32, 0) == 0
            && bpf_skb_store_bytes(skb, 0, rst.as_ptr().cast(), RST_V4_LEN as u32, 0) == 0
            && ctx
                .l4_csum_replace(RST_CHECK_AT, 0, u64::from(adjustment.swap_bytes()), 0)
                .is_ok()
            && bpf_clone_redirect(skb, old.backend_ifindex, 0) == 0
    };
    if sent {
        count(Reason::SpliceOldLegClosed);
    }
}
