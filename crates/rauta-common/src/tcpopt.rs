//! TCP options on Tier 1's connections: what the client's SYN offers, what the SYN-cookie SYN-ACK agrees
//! to, how the agreement survives without state, and how options are translated on every packet of a
//! splice or hand-off.
//!
//! **Negotiation without state.** Tier 1 answers SYNs with cookies, so it keeps nothing between the
//! SYN and the client's first ACK. Like Linux (`cookie_init_timestamp`), it keeps the client's window
//! scale and SACK permission in the low [`TS_OPTION_BITS`] bits of its timestamp, which the client
//! echoes in every segment: window scaling and SACK are agreed only when the client also offers
//! timestamps (a client without them gets MSS only, as from a Linux listener in cookie mode).
//!
//! **One agreement on every leg.** The SYN Tier 1 sends on (to the local listener or to a backend)
//! offers exactly what the client agreed to, with the client's own window scale and its first
//! timestamp. So the client's windows, timestamps and sequence numbers mean the same on both legs, and
//! only the other side's values differ: its timestamps by a constant offset, its window scale (when
//! it chose another than Tier 1 announced), its sequence numbers (and so SACK block edges) by the
//! sequence offset. [`translate`] applies those to a segment's options.
//!
//! Options are handled in a buffer of [`OPTIONS_BUF`] bytes (a power of two: indexes are masked, which
//! the verifier follows), of which the first `len` (≤ [`OPTIONS_MAX`]) are the segment's.
#![forbid(unsafe_code)]

/// End of options.
pub const TCPOPT_EOL: u8 = 0;
/// No-operation (padding).
pub const TCPOPT_NOP: u8 = 1;
/// Maximum segment size (SYN only).
pub const TCPOPT_MSS: u8 = 2;
/// Window scale (SYN only).
pub const TCPOPT_WSCALE: u8 = 3;
/// SACK permitted (SYN only).
pub const TCPOPT_SACK_PERM: u8 = 4;
/// SACK blocks.
pub const TCPOPT_SACK: u8 = 5;
/// Timestamps.
pub const TCPOPT_TIMESTAMP: u8 = 8;
/// Length of the timestamps option.
pub const TCPOLEN_TIMESTAMP: u8 = 10;

/// The most option bytes a TCP header holds (60 − 20).
pub const OPTIONS_MAX: usize = 40;
/// Size of an options buffer (a power of two ≥ [`OPTIONS_MAX`] + 8, so that masked reads of a field
/// that starts inside the options stay inside the buffer).
pub const OPTIONS_BUF: usize = 64;
const MASK: usize = OPTIONS_BUF - 1;

/// "No window scaling" in a window-scale field (also the value the cookie timestamp carries for it).
pub const WSCALE_NONE: u8 = 0x0f;
/// The largest window scale RFC 7323 allows.
pub const WSCALE_MAX: u8 = 14;
/// Low bits of Tier 1's SYN-ACK timestamp that carry the client's options (Linux's `TSBITS`).
pub const TS_OPTION_BITS: u32 = 6;
/// The window-scale part of those bits ([`WSCALE_NONE`]: none).
pub const TS_WSCALE_MASK: u32 = 0x0f;
/// The SACK-permitted bit of those bits.
pub const TS_SACK_BIT: u32 = 1 << 4;

/// Index value meaning "not present" in an [`OptionWalk`].
pub const ABSENT: u32 = 0xff;

/// The most steps a walk over [`OPTIONS_MAX`] bytes can take (one per byte).
pub const WALK_STEPS: u32 = OPTIONS_MAX as u32;

/// Where a segment's options are, found by walking them one option per [`OptionWalk::step`]. Indexes
/// are into the options (0 = the byte after the 20-byte TCP header), [`ABSENT`] when not present.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionWalk {
    /// The next option's index.
    pub at: u32,
    /// The options' length (≤ [`OPTIONS_MAX`]).
    pub len: u32,
    /// Index of the timestamps option's kind byte.
    pub ts_at: u32,
    /// Index of the SACK option's kind byte.
    pub sack_at: u32,
    /// Length of the SACK option (2 + 8 per block).
    pub sack_len: u32,
    /// The window scale offered ([`WSCALE_NONE`] if none; values above [`WSCALE_MAX`] read as it).
    pub wscale: u32,
    /// The MSS offered (0 if none).
    pub mss: u32,
    /// 1 if SACK-permitted is present.
    pub sack_perm: u32,
    /// 1 once the walk is over (end of options, or a malformed option: nothing after it is read).
    pub done: u32,
}

impl OptionWalk {
    /// A walk over `len` option bytes (clamped to [`OPTIONS_MAX`]).
    pub const fn new(len: u32) -> Self {
        OptionWalk {
            at: 0,
            len: if len > OPTIONS_MAX as u32 {
                OPTIONS_MAX as u32
            } else {
                len
            },
            ts_at: ABSENT,
            sack_at: ABSENT,
            sack_len: 0,
            wscale: WSCALE_NONE as u32,
            mss: 0,
            sack_perm: 0,
            done: 0,
        }
    }

    /// Reads the option at `at` and moves past it; returns false once the walk is over. A malformed
    /// option (length < 2 or past the end) ends the walk: what came before it still counts.
    #[inline(always)]
    pub fn step(&mut self, opts: &[u8; OPTIONS_BUF]) -> bool {
        let at = self.at as usize & MASK;
        if self.done != 0 || self.at >= self.len {
            self.done = 1;
            return false;
        }
        let kind = opts[at];
        if kind == TCPOPT_EOL {
            self.done = 1;
            return false;
        }
        if kind == TCPOPT_NOP {
            self.at += 1;
            return true;
        }
        if self.at + 1 >= self.len {
            self.done = 1;
            return false;
        }
        let olen = opts[(at + 1) & MASK] as u32;
        if olen < 2 || self.at + olen > self.len {
            self.done = 1;
            return false;
        }
        match kind {
            TCPOPT_TIMESTAMP if olen == TCPOLEN_TIMESTAMP as u32 => self.ts_at = self.at,
            TCPOPT_SACK if olen >= 10 && (olen - 2).is_multiple_of(8) => {
                self.sack_at = self.at;
                self.sack_len = olen;
            }
            TCPOPT_WSCALE if olen == 3 => {
                let shift = opts[(at + 2) & MASK];
                self.wscale = if shift > WSCALE_MAX {
                    WSCALE_MAX
                } else {
                    shift
                } as u32;
            }
            TCPOPT_MSS if olen == 4 => {
                // As the kernel's `tcp_parse_mss_option`: an MSS of 0 is ignored, not recorded. The SYN
                // cookie is generated from this value (`xdp/syn.rs`), so both must agree on every layout.
                let mss = u16::from_be_bytes([opts[(at + 2) & MASK], opts[(at + 3) & MASK]]);
                if mss != 0 {
                    self.mss = u32::from(mss);
                }
            }
            TCPOPT_SACK_PERM if olen == 2 => self.sack_perm = 1,
            _ => {}
        }
        self.at += olen;
        true
    }

    /// Whether timestamps are present.
    pub const fn has_ts(&self) -> bool {
        self.ts_at != ABSENT
    }
}

/// Walks `opts[..len]` to the end (host code and tests; BPF programs step under `bpf_loop`).
pub fn walk(opts: &[u8; OPTIONS_BUF], len: u32) -> OptionWalk {
    let mut w = OptionWalk::new(len);
    let mut n = 0;
    while n < WALK_STEPS && w.step(opts) {
        n += 1;
    }
    w
}

/// The big-endian `u32` at `at` (masked into the buffer).
#[inline(always)]
pub fn read_u32(opts: &[u8; OPTIONS_BUF], at: u32) -> u32 {
    let at = at as usize;
    u32::from_be_bytes([
        opts[at & MASK],
        opts[(at + 1) & MASK],
        opts[(at + 2) & MASK],
        opts[(at + 3) & MASK],
    ])
}

#[inline(always)]
fn write_u32(opts: &mut [u8; OPTIONS_BUF], at: u32, value: u32) {
    let at = at as usize;
    let b = value.to_be_bytes();
    opts[at & MASK] = b[0];
    opts[(at + 1) & MASK] = b[1];
    opts[(at + 2) & MASK] = b[2];
    opts[(at + 3) & MASK] = b[3];
}

/// The timestamps option's (tsval, tsecr), if the walk found one.
#[inline(always)]
pub fn timestamps(opts: &[u8; OPTIONS_BUF], w: &OptionWalk) -> Option<(u32, u32)> {
    if !w.has_ts() {
        return None;
    }
    Some((read_u32(opts, w.ts_at + 2), read_u32(opts, w.ts_at + 6)))
}

/// The timestamp value of Tier 1's SYN-ACK at `now_ms` (a millisecond clock): the clock with its low
/// [`TS_OPTION_BITS`] replaced by the client's window scale (`wscale`, [`WSCALE_NONE`] for none) and
/// SACK permission, never ahead of the clock (so the client's view of our clock only moves forward).
#[inline(always)]
pub const fn cookie_tsval(now_ms: u32, wscale: u8, sack: bool) -> u32 {
    let mut options = (wscale as u32) & TS_WSCALE_MASK;
    if sack {
        options |= TS_SACK_BIT;
    }
    let ts = (now_ms & !((1 << TS_OPTION_BITS) - 1)) | options;
    if ts > now_ms {
        ts.wrapping_sub(1 << TS_OPTION_BITS)
    } else {
        ts
    }
}

/// What a client's echo of [`cookie_tsval`] says: (its window scale or [`WSCALE_NONE`], SACK permitted).
#[inline(always)]
pub const fn cookie_decode(tsecr: u32) -> (u8, bool) {
    let wscale = (tsecr & TS_WSCALE_MASK) as u8;
    let wscale = if wscale > WSCALE_MAX && wscale != WSCALE_NONE {
        WSCALE_NONE
    } else {
        wscale
    };
    (wscale, tsecr & TS_SACK_BIT != 0)
}

/// What was agreed with the client, and what the SYN on the next leg offers. `wscale` is the client's
/// shift ([`WSCALE_NONE`]: no window scaling), `sack`/`ts` are 0 or 1.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Agreed {
    /// The client's window scale, or [`WSCALE_NONE`].
    pub wscale: u8,
    /// 1 if SACK is permitted.
    pub sack: u8,
    /// 1 if timestamps are in use.
    pub ts: u8,
    /// Explicit padding; always zero.
    pub _pad: u8,
}

impl Agreed {
    /// MSS only: what a client without timestamps gets.
    pub const NONE: Agreed = Agreed {
        wscale: WSCALE_NONE,
        sack: 0,
        ts: 0,
        _pad: 0,
    };

    /// What Tier 1's SYN-ACK agrees to for a SYN that offered `w`'s options.
    pub const fn for_syn(w: &OptionWalk) -> Agreed {
        if !w.has_ts() {
            return Agreed::NONE;
        }
        Agreed {
            wscale: w.wscale as u8,
            sack: if w.sack_perm != 0 { 1 } else { 0 },
            ts: 1,
            _pad: 0,
        }
    }

    /// What a client's first ACK says was agreed: its echo of our SYN-ACK timestamp carries it (`None`:
    /// no timestamps, MSS only).
    pub const fn from_echo(tsecr: Option<u32>) -> Agreed {
        match tsecr {
            None => Agreed::NONE,
            Some(tsecr) => {
                let (wscale, sack) = cookie_decode(tsecr);
                Agreed {
                    wscale,
                    sack: if sack { 1 } else { 0 },
                    ts: 1,
                    _pad: 0,
                }
            }
        }
    }

    /// Whether window scaling is in use.
    pub const fn scaled(&self) -> bool {
        self.wscale != WSCALE_NONE
    }
}

/// Length of the options Tier 1 writes into a SYN or SYN-ACK: always 20 bytes (unused ones are NOPs),
/// so that the frames have one fixed size.
pub const SYN_OPTIONS_LEN: usize = 20;

/// The options of a SYN or SYN-ACK Tier 1 sends: MSS, then SACK-permitted, timestamps and window scale
/// as `agreed` says, in Linux's order, padded with NOPs. `wscale` is the shift this side announces
/// (ignored without window scaling); `ts` is (tsval, tsecr).
#[inline(always)]
pub fn syn_options(mss: u16, agreed: &Agreed, wscale: u8, ts: (u32, u32)) -> [u8; SYN_OPTIONS_LEN] {
    let mut o = [TCPOPT_NOP; SYN_OPTIONS_LEN];
    let m = mss.to_be_bytes();
    o[0] = TCPOPT_MSS;
    o[1] = 4;
    o[2] = m[0];
    o[3] = m[1];
    if agreed.sack != 0 {
        o[4] = TCPOPT_SACK_PERM;
        o[5] = 2;
    }
    if agreed.ts != 0 {
        put_timestamps(&mut o, 6, ts);
    }
    if agreed.scaled() {
        o[17] = TCPOPT_WSCALE;
        o[18] = 3;
        o[19] = if wscale > WSCALE_MAX {
            WSCALE_MAX
        } else {
            wscale
        };
    }
    o
}

/// Length of the options of a non-SYN segment Tier 1 builds (the hand-off ACK, the ACK carrying the
/// request): NOP NOP timestamps, or 12 NOPs without timestamps.
pub const ACK_OPTIONS_LEN: usize = 12;

/// The options of an ACK Tier 1 builds: NOP, NOP, timestamps (tsval, tsecr), or NOPs only.
#[inline(always)]
pub fn ack_options(ts: Option<(u32, u32)>) -> [u8; ACK_OPTIONS_LEN] {
    let mut o = [TCPOPT_NOP; ACK_OPTIONS_LEN];
    if let Some(ts) = ts {
        put_timestamps(&mut o, 2, ts);
    }
    o
}

/// Writes a timestamps option (kind, length, tsval, tsecr) at `at` (`at + 10 <= N`).
#[inline(always)]
fn put_timestamps<const N: usize>(o: &mut [u8; N], at: usize, (val, ecr): (u32, u32)) {
    let (v, e) = (val.to_be_bytes(), ecr.to_be_bytes());
    o[at] = TCPOPT_TIMESTAMP;
    o[at + 1] = TCPOLEN_TIMESTAMP;
    let mut i = 0;
    while i < 4 {
        o[at + 2 + i] = v[i];
        o[at + 6 + i] = e[i];
        i += 1;
    }
}

/// What to add (wrapping) to a segment's option fields on its way to the other leg. Part of a map value
/// (`crate::splice::BackendLeg`), hence `repr(C)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Translation {
    /// Added to the timestamp value.
    pub tsval: u32,
    /// Added to the timestamp echo.
    pub tsecr: u32,
    /// Added to every SACK block edge.
    pub sack: u32,
}

/// Applies `t` to the options `w` found in `opts` and returns the change of their one's-complement sum
/// (as [`csum_add_delta`] wants it). Values at odd offsets count byte-swapped in the TCP checksum
/// (options start at offset 20 of the header, so an option's parity is its index's); every value of one
/// option has the same parity, so each option's delta is summed plainly and swapped once (one branch
/// per option, not per value: the verifier explores every combination of unknown branches).
#[inline(always)]
pub fn translate(opts: &mut [u8; OPTIONS_BUF], w: &OptionWalk, t: &Translation) -> u32 {
    let mut ts = 0u32;
    if w.has_ts() {
        ts = replace(opts, w.ts_at + 2, t.tsval) + replace(opts, w.ts_at + 6, t.tsecr);
        ts = aligned(ts, w.ts_at);
    }
    let mut sack = 0u32;
    if w.sack_at != ABSENT && t.sack != 0 {
        let edges = (w.sack_len.wrapping_sub(2) / 4) & 7;
        let mut k = 0;
        while k < 8 {
            if k < edges {
                sack += replace(opts, w.sack_at + 2 + 4 * k, t.sack);
            }
            k += 1;
        }
        sack = aligned(sack, w.sack_at);
    }
    ts + sack
}

/// The timestamps of the 12-byte option layout of nearly every established segment (NOP, NOP,
/// timestamps: `tsval` at option index 4, `tsecr` at 8, both even), translated where they lie (`values`:
/// the 8 bytes of tsval and tsecr, big-endian): the same result and checksum delta as [`translate`] on
/// that layout, without copying the options anywhere first.
#[inline(always)]
pub fn translate_timestamps(values: &mut [u8; 8], t: &Translation) -> u32 {
    let old_val = u32::from_be_bytes([values[0], values[1], values[2], values[3]]);
    let old_ecr = u32::from_be_bytes([values[4], values[5], values[6], values[7]]);
    let new_val = old_val.wrapping_add(t.tsval);
    let new_ecr = old_ecr.wrapping_add(t.tsecr);
    let (v, e) = (new_val.to_be_bytes(), new_ecr.to_be_bytes());
    values[0] = v[0];
    values[1] = v[1];
    values[2] = v[2];
    values[3] = v[3];
    values[4] = e[0];
    values[5] = e[1];
    values[6] = e[2];
    values[7] = e[3];
    let word = |old: u32, new: u32| {
        (!(old >> 16) & 0xffff) + (!old & 0xffff) + (new >> 16) + (new & 0xffff)
    };
    aligned(word(old_val, new_val) + word(old_ecr, new_ecr), 4)
}

/// Adds `t`'s timestamp deltas to tsval and tsecr given as the four 16-bit words they are in the
/// packet (as this machine loads them: byte-swapped); returns the checksum delta (~old + new per
/// big-endian word, folded), as [`translate_timestamps`] does byte by byte: four
/// loads and four stores instead of eight of each and the shifts that join and split the bytes.
#[inline(always)]
pub fn translate_timestamp_words(words: &mut [u16; 4], t: &Translation) -> u32 {
    let be = [
        u16::from_be(words[0]),
        u16::from_be(words[1]),
        u16::from_be(words[2]),
        u16::from_be(words[3]),
    ];
    let old_val = (u32::from(be[0]) << 16) | u32::from(be[1]);
    let old_ecr = (u32::from(be[2]) << 16) | u32::from(be[3]);
    let new_val = old_val.wrapping_add(t.tsval);
    let new_ecr = old_ecr.wrapping_add(t.tsecr);
    words[0] = ((new_val >> 16) as u16).to_be();
    words[1] = (new_val as u16).to_be();
    words[2] = ((new_ecr >> 16) as u16).to_be();
    words[3] = (new_ecr as u16).to_be();
    let removed = u32::from(!be[0]) + u32::from(!be[1]) + u32::from(!be[2]) + u32::from(!be[3]);
    let added = (new_val >> 16) + (new_val & 0xffff) + (new_ecr >> 16) + (new_ecr & 0xffff);
    u32::from(crate::checksum::fold(removed + added))
}

/// Adds `add` to the u32 at `at`; returns its checksum delta as if it were 16-bit aligned (~old + new,
/// per 16-bit word; at most 4 × 0xffff).
#[inline(always)]
fn replace(opts: &mut [u8; OPTIONS_BUF], at: u32, add: u32) -> u32 {
    let old = read_u32(opts, at);
    let new = old.wrapping_add(add);
    write_u32(opts, at, new);
    (!(old >> 16) & 0xffff) + (!old & 0xffff) + (new >> 16) + (new & 0xffff)
}

/// A delta summed as if aligned, for values at index `at`: folded, and byte-swapped when `at` is odd
/// (there each value's 16-bit words count byte-swapped, and the one's-complement sum of swapped words
/// is the swapped sum).
#[inline(always)]
const fn aligned(delta: u32, at: u32) -> u32 {
    let d = crate::checksum::fold(delta) as u32;
    if at & 1 == 1 {
        ((d & 0xff) << 8) | (d >> 8)
    } else {
        d
    }
}

/// The checksum field `check` after the covered data's sum changed by `delta` (from [`translate`]).
#[inline(always)]
pub const fn csum_add_delta(check: u16, delta: u32) -> u16 {
    // Fold the delta first so the sum below cannot overflow.
    let d = crate::checksum::fold(delta) as u32;
    !crate::checksum::fold((!check) as u32 + d)
}

/// A window advertised with scale `from`, re-expressed with scale `to` (both [`WSCALE_NONE`]-free:
/// pass 0 for an unscaled side). Rounded down (a smaller window is always safe), capped at 65535.
#[inline(always)]
pub const fn rescale_window(window: u16, from: u8, to: u8) -> u16 {
    let bytes = (window as u64) << (from & 15);
    let scaled = bytes >> (to & 15);
    if scaled > 0xffff {
        0xffff
    } else {
        scaled as u16
    }
}

/// The shift a window-scale field means (0 without window scaling).
#[inline(always)]
pub const fn shift_of(wscale: u8) -> u8 {
    if wscale == WSCALE_NONE || wscale > WSCALE_MAX {
        0
    } else {
        wscale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{add_words, fold};

    fn buf(bytes: &[u8]) -> [u8; OPTIONS_BUF] {
        let mut b = [0u8; OPTIONS_BUF];
        b[..bytes.len()].copy_from_slice(bytes);
        b
    }

    /// A Linux SYN's options: MSS 1460, SACK-permitted, timestamps, NOP, window scale 7.
    const LINUX_SYN: [u8; 20] = [
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 1, 3, 3, 7,
    ];

    #[test]
    fn timestamps_translated_in_place_match_the_walked_translation() {
        // Values that carry across 16-bit words and wrap, and a zero translation.
        for (tsval, tsecr, t) in [
            (
                0x0000_ffff,
                0xffff_fffe,
                Translation {
                    tsval: 1,
                    tsecr: 3,
                    sack: 9,
                },
            ),
            (
                0x1234_5678,
                0x9abc_def0,
                Translation {
                    tsval: 0x8000_0001,
                    tsecr: 0xdead_beef,
                    sack: 0,
                },
            ),
            (7, 0, Translation::default()),
        ] {
            let mut opts = [1u8, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0];
            opts[4..8].copy_from_slice(&u32::to_be_bytes(tsval));
            opts[8..12].copy_from_slice(&u32::to_be_bytes(tsecr));
            let mut walked = buf(&opts);
            let w = walk(&walked, 12);
            let expected = translate(&mut walked, &w, &t);
            let mut values: [u8; 8] = opts[4..12].try_into().unwrap();
            let delta = translate_timestamps(&mut values, &t);
            assert_eq!(&values[..], &walked[4..12]);
            assert_eq!(fold(delta), fold(expected), "{t:?}");
            // The checksum of the options moves by exactly the delta.
            let before = !fold(add_words(0, &opts));
            let translated: [u8; 12] = walked[..12].try_into().unwrap();
            let after = !fold(add_words(0, &translated));
            assert_eq!(csum_add_delta(before, delta), after, "{t:?}");
        }
    }

    #[test]
    fn a_linux_syn_offers_everything() {
        let w = walk(&buf(&LINUX_SYN), 20);
        assert_eq!((w.mss, w.wscale, w.sack_perm, w.ts_at), (1460, 7, 1, 6));
        assert_eq!(timestamps(&buf(&LINUX_SYN), &w), Some((0x1234, 0)));
        let agreed = Agreed::for_syn(&w);
        assert_eq!(
            agreed,
            Agreed {
                wscale: 7,
                sack: 1,
                ts: 1,
                _pad: 0
            }
        );
    }

    #[test]
    fn without_timestamps_only_the_mss_is_agreed() {
        // Windows-style SYN: MSS, NOP, WS 8, NOP, NOP, SACK-permitted.
        let syn = [2, 4, 0x05, 0xb4, 1, 3, 3, 8, 1, 1, 4, 2];
        let w = walk(&buf(&syn), 12);
        assert_eq!((w.mss, w.wscale, w.sack_perm), (1460, 8, 1));
        assert_eq!(Agreed::for_syn(&w), Agreed::NONE);
    }

    #[test]
    fn malformed_options_end_the_walk_but_keep_what_came_before() {
        // MSS, then a zero-length option, then a timestamp that must not be read.
        let w = walk(
            &buf(&[2, 4, 1, 0, 0x22, 0, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]),
            16,
        );
        assert_eq!((w.mss, w.ts_at, w.done), (256, ABSENT, 1));
        // An option running past the end.
        let w = walk(&buf(&[1, 1, 8, 10, 0, 0]), 6);
        assert_eq!(w.ts_at, ABSENT);
        // A window scale above 14 reads as 14 (RFC 7323 §2.3).
        let w = walk(&buf(&[3, 3, 20]), 3);
        assert_eq!(w.wscale, 14);
        // The walk never reads past OPTIONS_MAX, whatever the length says.
        let w = walk(&[1u8; OPTIONS_BUF], 60);
        assert_eq!(w.at, 40);
    }

    #[test]
    fn the_cookie_timestamp_carries_the_options_and_never_runs_ahead() {
        for now in [0u32, 63, 64, 1000, 0xffff_ffc0, 0xffff_ffff, 123_456_789] {
            for wscale in [0u8, 7, 14, WSCALE_NONE] {
                for sack in [false, true] {
                    let ts = cookie_tsval(now, wscale, sack);
                    assert_eq!(cookie_decode(ts), (wscale, sack), "now {now}");
                    assert!(now.wrapping_sub(ts) < 128, "now {now} ts {ts}");
                }
            }
        }
        let agreed = Agreed::from_echo(Some(cookie_tsval(5000, 6, true)));
        assert_eq!((agreed.wscale, agreed.sack, agreed.ts), (6, 1, 1));
        assert_eq!(Agreed::from_echo(None), Agreed::NONE);
    }

    #[test]
    fn syn_options_follow_the_agreement() {
        let all = Agreed {
            wscale: 7,
            sack: 1,
            ts: 1,
            _pad: 0,
        };
        let o = syn_options(1460, &all, 9, (0xa0b0c0d0, 0x01020304));
        let w = walk(&buf(&o), 20);
        assert_eq!((w.mss, w.wscale, w.sack_perm), (1460, 9, 1));
        assert_eq!(timestamps(&buf(&o), &w), Some((0xa0b0c0d0, 0x01020304)));
        let o = syn_options(536, &Agreed::NONE, 9, (1, 2));
        let w = walk(&buf(&o), 20);
        assert_eq!(
            (w.mss, w.wscale, w.sack_perm, w.ts_at),
            (536, WSCALE_NONE as u32, 0, ABSENT)
        );
        let o = ack_options(Some((7, 8)));
        assert_eq!(timestamps(&buf(&o), &walk(&buf(&o), 12)), Some((7, 8)));
        assert_eq!(walk(&buf(&ack_options(None)), 12).ts_at, ABSENT);
    }

    /// Checksum of a 20-byte TCP header followed by `opts[..len]`, to check the incremental update.
    fn sum_with(opts: &[u8; OPTIONS_BUF], len: usize) -> u16 {
        let mut seg = [0u8; 60];
        seg[..20].copy_from_slice(&[
            0x1f, 0x90, 0xc3, 0x50, 1, 2, 3, 4, 5, 6, 7, 8, 0x80, 0x10, 1, 0, 0, 0, 0, 0,
        ]);
        seg[20..20 + len].copy_from_slice(&opts[..len]);
        !fold(add_words(0, &seg))
    }

    /// The word-wise translation (the XDP programs read the packet's timestamps as 16-bit words) is the
    /// byte-wise one: the same bytes and the same checksum delta, wrapping values included.
    #[test]
    fn timestamp_words_translate_as_the_bytes_do() {
        let mut next = crate::test_rng::xorshift(0x2545_f491_4f6c_dd1du64);
        for round in 0..5000 {
            let mut bytes: [u8; 8] = next().to_le_bytes();
            if round == 0 {
                bytes = [0xff; 8];
            }
            let t = Translation {
                tsval: next() as u32,
                tsecr: if round == 1 { 0 } else { next() as u32 },
                sack: 0,
            };
            let mut words = [0u16; 4];
            for (i, w) in words.iter_mut().enumerate() {
                *w = u16::from_ne_bytes([bytes[2 * i], bytes[2 * i + 1]]);
            }
            let delta_words = translate_timestamp_words(&mut words, &t);
            let delta_bytes = translate_timestamps(&mut bytes, &t);
            let mut from_words = [0u8; 8];
            for (i, w) in words.iter().enumerate() {
                from_words[2 * i..2 * i + 2].copy_from_slice(&w.to_ne_bytes());
            }
            assert_eq!(from_words, bytes, "round {round}");
            assert_eq!(
                csum_add_delta(0x1234, delta_words),
                csum_add_delta(0x1234, delta_bytes),
                "round {round}"
            );
        }
    }

    #[test]
    fn translation_moves_timestamps_and_sack_edges_and_keeps_the_checksum_right() {
        // Aligned (NOP NOP TS, NOP NOP SACK with 2 blocks) and odd (NOP TS, SACK with 1 block) layouts.
        let aligned: &[u8] = &[
            1, 1, 8, 10, 0, 0, 0, 100, 0, 0, 0, 200, 1, 1, 5, 18, 0, 0, 1, 0, 0, 0, 2, 0, 0xff,
            0xff, 0xff, 0xf0, 0, 0, 0, 0x10,
        ];
        let odd: &[u8] = &[
            1, 8, 10, 0, 0, 0, 100, 0, 0, 0, 200, 5, 10, 0, 0, 1, 0, 0, 0, 2, 0,
        ];
        for (layout, sacks) in [(aligned, 2u32), (odd, 1)] {
            let len = layout.len();
            let mut opts = buf(layout);
            let before = sum_with(&opts, len);
            let w = walk(&opts, len as u32);
            assert!(w.has_ts());
            assert_eq!(w.sack_len, 2 + 8 * sacks);
            let t = Translation {
                tsval: 1000,
                tsecr: 0u32.wrapping_sub(50),
                sack: 0x20,
            };
            let delta = translate(&mut opts, &w, &t);
            assert_eq!(timestamps(&opts, &w), Some((1100, 150)));
            assert_eq!(read_u32(&opts, w.sack_at + 2), 0x120);
            if sacks == 2 {
                // Wraps: 0xfffffff0 + 0x20.
                assert_eq!(read_u32(&opts, w.sack_at + 10), 0x10);
            }
            assert_eq!(csum_add_delta(before, delta), sum_with(&opts, len));
        }
    }

    #[test]
    fn windows_are_rescaled_down_and_capped() {
        assert_eq!(rescale_window(1000, 7, 7), 1000);
        assert_eq!(rescale_window(1000, 9, 7), 4000);
        assert_eq!(rescale_window(1000, 5, 7), 250);
        assert_eq!(rescale_window(0xffff, 14, 0), 0xffff);
        assert_eq!(rescale_window(3, 0, 1), 1);
        assert_eq!(shift_of(WSCALE_NONE), 0);
        assert_eq!(shift_of(7), 7);
    }
}
