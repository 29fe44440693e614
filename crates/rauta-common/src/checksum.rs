//! The Internet checksum (RFC 1071) over fixed-size buffers.
//!
//! Written for the BPF verifier as much as for the host: fixed-size arrays, loops with constant bounds and
//! no slice indexing that could panic, so the same code runs in the XDP program and in host unit tests.
#![forbid(unsafe_code)]

/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;

/// Folds a 32-bit one's-complement accumulator into 16 bits (without the final complement).
#[inline(always)]
pub const fn fold(mut sum: u32) -> u16 {
    // Two rounds suffice: after the first the value is at most 0x1_fffe.
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Adds the big-endian 16-bit words of `bytes` to `sum`. `N` must be even.
#[inline(always)]
pub fn add_words<const N: usize>(mut sum: u32, bytes: &[u8; N]) -> u32 {
    let mut i = 0;
    while i + 1 < N {
        sum += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        i += 2;
    }
    sum
}

/// Adds the big-endian 16-bit words of `bytes[from..from + len]` to `sum` (`len` even; bytes past the
/// buffer count as zero). With constant `from` and `len` the verifier sees constant indexes.
#[inline(always)]
pub fn add_words_at<const N: usize>(mut sum: u32, bytes: &[u8; N], from: usize, len: usize) -> u32 {
    let mut i = 0;
    while i + 1 < len {
        let (hi, lo) = match (bytes.get(from + i), bytes.get(from + i + 1)) {
            (Some(hi), Some(lo)) => (*hi, *lo),
            _ => (0, 0),
        };
        sum += u32::from(u16::from_be_bytes([hi, lo]));
        i += 2;
    }
    sum
}

/// Checksum of an IPv4 header without options (20 bytes) whose checksum field is ignored.
#[inline(always)]
pub fn ipv4_header(header: &[u8; 20]) -> u16 {
    let mut h = *header;
    h[10] = 0;
    h[11] = 0;
    !fold(add_words(0, &h))
}

/// True if an IPv4 header without options carries a correct checksum.
#[inline(always)]
pub fn ipv4_header_ok(header: &[u8; 20]) -> bool {
    fold(add_words(0, header)) == 0xffff
}

/// One's-complement sum of the IPv4 pseudo-header for a TCP segment of `tcp_len` bytes.
#[inline(always)]
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], tcp_len: u16) -> u32 {
    u32::from(u16::from_be_bytes([src[0], src[1]]))
        + u32::from(u16::from_be_bytes([src[2], src[3]]))
        + u32::from(u16::from_be_bytes([dst[0], dst[1]]))
        + u32::from(u16::from_be_bytes([dst[2], dst[3]]))
        + u32::from(IPPROTO_TCP)
        + u32::from(tcp_len)
}

/// True if the TCP segment made of the first `len` bytes of `segment` (header and payload, checksum
/// field included) has a correct checksum for the given addresses. `len` above 60 counts as 60 — the
/// caller passes a header copy of at most 60 bytes; an odd `len` is padded with a zero byte as RFC 1071
/// requires.
#[inline(always)]
pub fn tcp_v4_ok(src: [u8; 4], dst: [u8; 4], segment: &[u8; 60], len: usize) -> bool {
    let len = if len > 60 { 60 } else { len };
    let mut sum = pseudo_header_v4(src, dst, len as u16);
    let mut i = 0;
    // Constant bound (30 words) so that the verifier sees a finite, unrollable loop.
    while i < 30 {
        let at = i * 2;
        if at < len {
            let hi = segment[at];
            let lo = if at + 1 < len { segment[at + 1] } else { 0 };
            sum += u32::from(u16::from_be_bytes([hi, lo]));
        }
        i += 1;
    }
    fold(sum) == 0xffff
}

/// The TCP/IP checksum field `check` (as read, big-endian) after a 32-bit field it covers changed from
/// `old` to `new` (RFC 1624: HC' = ~(~HC + ~m + m'), per 16-bit word). Valid for a complete checksum.
#[inline(always)]
pub const fn csum_replace4(check: u16, old: u32, new: u32) -> u16 {
    let sum =
        (!check) as u32 + (!(old >> 16) & 0xffff) + (!old & 0xffff) + (new >> 16) + (new & 0xffff);
    !fold(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071-style example: the header from Wikipedia's "IPv4 header checksum" article.
    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn ipv4_header_checksum_matches_known_value() {
        assert_eq!(ipv4_header(&HEADER), 0xb861);
        assert!(ipv4_header_ok(&HEADER));
        let mut bad = HEADER;
        bad[8] = 0x3f;
        assert!(!ipv4_header_ok(&bad));
    }

    #[test]
    fn fold_carries_twice() {
        assert_eq!(fold(0x0001_ffff), 0x0001);
        assert_eq!(fold(0xffff_ffff), 0xffff);
    }

    #[test]
    fn tcp_checksum_detects_a_flipped_bit() {
        let src = [198, 18, 0, 2];
        let dst = [198, 18, 0, 1];
        let mut seg = [0u8; 60];
        // ports 40000 -> 80, seq 1, doff 5, SYN, window 64240; an odd length of 21 covers the padding rule.
        seg[..20].copy_from_slice(&[
            0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
        ]);
        seg[20] = 0xab;
        let mut sum = pseudo_header_v4(src, dst, 21);
        for pair in seg[..22].chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        let csum = !fold(sum);
        seg[16..18].copy_from_slice(&csum.to_be_bytes());
        assert!(tcp_v4_ok(src, dst, &seg, 21));
        seg[4] ^= 0x10;
        assert!(!tcp_v4_ok(src, dst, &seg, 21));
    }

    #[test]
    fn incremental_update_matches_a_full_recompute() {
        let mut h = HEADER;
        for (old, new) in [
            (0xc0a8_00c7u32, 0x0102_0304u32),
            (0, 0xffff_ffff),
            (0xffff_ffff, 0),
        ] {
            h[16..20].copy_from_slice(&old.to_be_bytes());
            let before = ipv4_header(&h);
            h[10..12].copy_from_slice(&before.to_be_bytes());
            h[16..20].copy_from_slice(&new.to_be_bytes());
            let updated = csum_replace4(before, old, new);
            h[10..12].copy_from_slice(&updated.to_be_bytes());
            assert!(ipv4_header_ok(&h), "{old:#x} -> {new:#x}");
        }
    }
}
