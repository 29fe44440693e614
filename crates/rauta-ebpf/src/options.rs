//! TCP options in the programs: load a segment's options into a scratch buffer, walk them, translate
//! them and write them back (see `rauta_common::tcpopt` for what is translated and why).
//!
//! The walk runs under `bpf_loop`: the verifier checks one option step once, not once per option on
//! every path into it, which keeps the per-packet translation affordable inside the entry program.

use aya_ebpf::{
    helpers::generated::{
        bpf_loop, bpf_skb_load_bytes, bpf_skb_store_bytes, bpf_xdp_load_bytes, bpf_xdp_store_bytes,
    },
    programs::{TcContext, XdpContext},
};
use rauta_common::tcpopt::{
    ABSENT, OPTIONS_BUF, OPTIONS_MAX, OptionWalk, TCPOLEN_TIMESTAMP, TCPOPT_MSS, TCPOPT_NOP,
    TCPOPT_SACK_PERM, TCPOPT_TIMESTAMP, TCPOPT_WSCALE, Translation, WALK_STEPS, WSCALE_MAX,
    translate, translate_timestamp_words,
};

use crate::{
    maps::{RAUTA_SCRATCH, SCRATCH_XDP},
    parse::{ETH_LEN, IPV4_LEN, TCP_LEN},
};

/// Offset of the options in a frame (Ethernet + IPv4 without options + the fixed TCP header).
pub const OPTIONS_AT: u32 = (ETH_LEN + IPV4_LEN + TCP_LEN) as u32;

/// The options length of a TCP header of `tcp_len` bytes, restated as 1..=OPTIONS_BUF for the
/// verifier where a helper takes it (0 if there are none).
#[inline(always)]
fn options_len(tcp_len: u32) -> u32 {
    if tcp_len <= TCP_LEN as u32 || tcp_len > (TCP_LEN + OPTIONS_MAX) as u32 {
        return 0;
    }
    ((core::hint::black_box(tcp_len - TCP_LEN as u32).wrapping_sub(1)) & (OPTIONS_BUF as u32 - 1))
        + 1
}

/// Loads the options of the XDP packet's TCP header (`tcp_len` bytes) into `buf`; their length, 0 if
/// none or unreadable.
#[inline(always)]
pub fn load_xdp(ctx: &XdpContext, tcp_len: u32, buf: &mut [u8; OPTIONS_BUF]) -> u32 {
    let len = options_len(tcp_len);
    if len == 0 {
        return 0;
    }
    // SAFETY: `buf` holds OPTIONS_BUF >= len bytes; the helper checks the packet's bounds.
    let rc = unsafe { bpf_xdp_load_bytes(ctx.ctx, OPTIONS_AT, buf.as_mut_ptr().cast(), len) };
    if rc != 0 { 0 } else { len }
}

/// Writes `buf[..len]` back over the XDP packet's options.
#[inline(always)]
pub fn store_xdp(ctx: &XdpContext, len: u32, buf: &mut [u8; OPTIONS_BUF]) -> bool {
    let len = options_len(len + TCP_LEN as u32);
    // SAFETY: as in `load_xdp`.
    len != 0
        && unsafe { bpf_xdp_store_bytes(ctx.ctx, OPTIONS_AT, buf.as_mut_ptr().cast(), len) } == 0
}

/// Loads and walks the XDP packet's options (a TCP header of `tcp_len` bytes) into the scratch entry,
/// once per packet and from one place per path: every step after it reads the scratch entry. (The
/// verifier checks `bpf_loop`'s callback again for every path that reaches a call, so one call early in
/// the program costs far less than one in each branch that needs the options.)
#[inline(always)]
pub fn prepare_xdp(ctx: &XdpContext, tcp_len: u32) {
    let Some(scratch) = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_XDP) else {
        return;
    };
    // SAFETY: this CPU's scratch entry, valid for this run.
    let scratch = unsafe { &mut *scratch };
    // The layout nearly every established segment of Linux, BSD and macOS peers has: NOP, NOP,
    // timestamps and nothing else. Read in place as six 16-bit words, no walk.
    if tcp_len == (TCP_LEN + 12) as u32
        && let Some(opts) = crate::parse::ptr_at::<[u16; 6]>(ctx, OPTIONS_AT as usize)
    {
        // SAFETY: bounds checked by `ptr_at`. The options start at an even offset of the frame and
        // packet data starts at least 2-byte aligned (XDP headroom), so the words are aligned.
        let words = unsafe { *opts };
        if words[0] == NOP_NOP && words[1] == TIMESTAMP_KIND_LEN {
            let mut i = 0;
            while i < 6 {
                let b = words[i].to_ne_bytes();
                scratch.opts[2 * i] = b[0];
                scratch.opts[2 * i + 1] = b[1];
                i += 1;
            }
            scratch.walk = NOP_NOP_TIMESTAMPS;
            return;
        }
    }
    // The SYN layout of Linux peers: MSS, SACK-permitted, timestamps, NOP, window scale (20 bytes). Read
    // in place, no walk: the walk costs one `bpf_loop` callback per option.
    if tcp_len == (TCP_LEN + LINUX_SYN_OPTIONS) as u32
        && let Some(opts) =
            crate::parse::ptr_at::<[u8; LINUX_SYN_OPTIONS]>(ctx, OPTIONS_AT as usize)
    {
        // SAFETY: bounds checked by `ptr_at`; alignment 1.
        let opts = unsafe { *opts };
        if opts[0] == TCPOPT_MSS
            && opts[1] == 4
            && opts[4] == TCPOPT_SACK_PERM
            && opts[5] == 2
            && opts[6] == TCPOPT_TIMESTAMP
            && opts[7] == TCPOLEN_TIMESTAMP
            && opts[16] == TCPOPT_NOP
            && opts[17] == TCPOPT_WSCALE
            && opts[18] == 3
        {
            let mut i = 0;
            while i < LINUX_SYN_OPTIONS {
                scratch.opts[i] = opts[i];
                i += 1;
            }
            let mut found = OptionWalk::new(LINUX_SYN_OPTIONS as u32);
            found.at = LINUX_SYN_OPTIONS as u32;
            found.mss = u32::from(u16::from_be_bytes([opts[2], opts[3]]));
            found.sack_perm = 1;
            found.ts_at = 6;
            found.wscale = u32::from(if opts[19] > WSCALE_MAX {
                WSCALE_MAX
            } else {
                opts[19]
            });
            found.done = 1;
            scratch.walk = found;
            return;
        }
    }
    let len = load_xdp(ctx, tcp_len, &mut scratch.opts);
    walk(&scratch.opts, len, &mut scratch.walk);
}

/// Length of the options of a Linux SYN (MSS 4, SACK-permitted 2, timestamps 10, NOP, window scale 3).
const LINUX_SYN_OPTIONS: usize = 20;

/// NOP, NOP as the 16-bit word this machine loads from the packet.
pub const NOP_NOP: u16 = u16::from_ne_bytes([TCPOPT_NOP, TCPOPT_NOP]);
/// The timestamps option's kind and length as the 16-bit word this machine loads from the packet.
pub const TIMESTAMP_KIND_LEN: u16 = u16::from_ne_bytes([TCPOPT_TIMESTAMP, TCPOLEN_TIMESTAMP]);

/// The walk of NOP, NOP, timestamps (12 bytes): a constant, stored as it is.
const NOP_NOP_TIMESTAMPS: OptionWalk = {
    let mut found = OptionWalk::new(12);
    found.at = 12;
    found.ts_at = 2;
    found.done = 1;
    found
};

/// The XDP packet's (tsval, tsecr), from `prepare_xdp`'s walk.
#[inline(always)]
pub fn timestamps_xdp() -> Option<(u32, u32)> {
    let scratch = RAUTA_SCRATCH.get_ptr(SCRATCH_XDP)?;
    // SAFETY: this CPU's scratch entry, valid for this run.
    let scratch = unsafe { &*scratch };
    rauta_common::tcpopt::timestamps(&scratch.opts, &scratch.walk)
}

/// Applies `t` to the XDP packet's options (walked by `prepare_xdp`) in place; returns the change of
/// their checksum sum (0 if there is nothing to translate), `None` if they could not be written back (the
/// packet must not go on half translated).
///
/// The change passes through the scratch entry with a volatile store and load: the verifier does not
/// track map memory, so every path through the translation (timestamps or not, 0-4 SACK blocks, odd or
/// even offsets) continues with the same unknown value and is pruned there, instead of multiplying the
/// paths of everything after it.
#[inline(always)]
pub fn translate_xdp(ctx: &XdpContext, t: &Translation) -> Option<u32> {
    let scratch = RAUTA_SCRATCH.get_ptr_mut(SCRATCH_XDP)?;
    // SAFETY: this CPU's scratch entry, valid for this run.
    let scratch = unsafe { &mut *scratch };
    let found = &scratch.walk;
    let mut delta = 0;
    // The 12-byte layout of nearly every established segment (NOP, NOP, timestamps, as `prepare_xdp`
    // found it): the two values are translated where they lie in the packet, no copy there and back.
    let in_packet = if found.len == 12 && found.ts_at == 2 && found.sack_at == ABSENT {
        crate::parse::ptr_at::<[u16; 4]>(ctx, OPTIONS_AT as usize + 4)
    } else {
        None
    };
    if let Some(values) = in_packet {
        // SAFETY: bounds checked by `ptr_at`; 2-byte aligned (as in `prepare_xdp`); nothing else refers
        // to these bytes.
        delta = translate_timestamp_words(unsafe { &mut *values }, t);
    } else if found.has_ts() || found.sack_at != ABSENT {
        delta = translate(&mut scratch.opts, found, t);
        if !store_xdp(ctx, found.len, &mut scratch.opts) {
            return None;
        }
    }
    // SAFETY: a field of this CPU's scratch entry.
    unsafe {
        core::ptr::write_volatile(&mut scratch.delta, delta);
        Some(core::ptr::read_volatile(&scratch.delta))
    }
}

/// Loads the options of the skb's TCP header (`tcp_len` bytes) into `buf`; their length, 0 if none.
#[inline(always)]
pub fn load_skb(ctx: &TcContext, tcp_len: u32, buf: &mut [u8; OPTIONS_BUF]) -> u32 {
    let len = options_len(tcp_len);
    if len == 0 {
        return 0;
    }
    // SAFETY: `buf` holds OPTIONS_BUF >= len bytes; the helper checks the skb's bounds.
    let rc =
        unsafe { bpf_skb_load_bytes(ctx.skb.skb.cast(), OPTIONS_AT, buf.as_mut_ptr().cast(), len) };
    if rc != 0 { 0 } else { len }
}

/// Writes `buf[..len]` back over the skb's options (unclones the skb if it must).
#[inline(always)]
pub fn store_skb(ctx: &TcContext, len: u32, buf: &[u8; OPTIONS_BUF]) -> bool {
    let len = options_len(len + TCP_LEN as u32);
    // SAFETY: as in `load_skb`.
    len != 0
        && unsafe { bpf_skb_store_bytes(ctx.skb.skb, OPTIONS_AT, buf.as_ptr().cast(), len, 0) } == 0
}

/// The state of a walk under `bpf_loop`, on the caller's stack: pointers into the scratch entry.
#[repr(C)]
struct Walk {
    walk: *mut OptionWalk,
    opts: *const [u8; OPTIONS_BUF],
}

/// Walks `buf[..len]` into `out` (see `OptionWalk`). `out` must be map memory (a scratch entry): the
/// verifier tracks the values a callback leaves on the stack, and every option kind would leave
/// different ones, multiplying the states it explores per step; map memory it does not track, so all
/// steps look alike and the callback converges at once.
#[inline(always)]
pub fn walk(buf: &[u8; OPTIONS_BUF], len: u32, out: &mut OptionWalk) {
    *out = OptionWalk::new(len);
    if len == 0 {
        return;
    }
    let mut state = Walk {
        walk: out,
        opts: buf,
    };
    // SAFETY: `bpf_loop` with a callback that takes (index, pointer to this stack struct) and returns
    // 0 (go on) or 1 (stop); the struct and what it points to outlive the call.
    unsafe {
        bpf_loop(
            WALK_STEPS,
            walk_step as *mut core::ffi::c_void,
            (&mut state as *mut Walk).cast(),
            0,
        )
    };
}

/// One option of the walk.
#[inline(never)]
extern "C" fn walk_step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `ctx` is the `Walk` `walk` passed: both pointers are into a scratch entry; `step` masks
    // every index into the OPTIONS_BUF-byte buffer.
    let state = unsafe { &mut *ctx.cast::<Walk>() };
    let (walk, opts) = unsafe { (&mut *state.walk, &*state.opts) };
    if walk.step(opts) { 0 } else { 1 }
}
