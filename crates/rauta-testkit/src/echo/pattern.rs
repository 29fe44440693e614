//! The deterministic byte pattern served by `/bytes/N`, and a streaming body that produces it.
//!
//! Byte `i` of the pattern is `PATTERN[i % PATTERN.len()]`, so a client can check any received range
//! without holding the whole answer. The period (62, the printable alphanumerics) does not divide common
//! buffer sizes, so a chunk that is dropped, duplicated or reordered shows up as a mismatch.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// One period of the pattern.
pub const PATTERN: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Size of each streamed chunk; large enough for throughput, small enough to exercise streaming.
const CHUNK: usize = 16 * 1024;

/// The pattern byte at absolute offset `i`.
pub fn byte_at(i: u64) -> u8 {
    PATTERN[(i % PATTERN.len() as u64) as usize]
}

/// `len` pattern bytes starting at absolute offset `start`.
pub fn bytes(start: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|k| byte_at(start + k)).collect()
}

/// Checks that `data` equals the pattern starting at `start`; returns the offset of the first mismatch.
pub fn verify(start: u64, data: &[u8]) -> Result<(), u64> {
    match data
        .iter()
        .enumerate()
        .find(|(k, b)| **b != byte_at(start + *k as u64))
    {
        Some((k, _)) => Err(start + k as u64),
        None => Ok(()),
    }
}

/// A body that streams `len` pattern bytes in [`CHUNK`]-sized frames.
#[derive(Debug)]
pub struct PatternBody {
    sent: u64,
    len: u64,
}

impl PatternBody {
    /// A body of exactly `len` bytes.
    pub fn new(len: u64) -> Self {
        Self { sent: 0, len }
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let left = self.len - self.sent;
        if left == 0 {
            return Poll::Ready(None);
        }
        let n = left.min(CHUNK as u64) as usize;
        let chunk = bytes(self.sent, n);
        self.sent += n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn verify_finds_first_mismatch() {
        let mut data = bytes(100, 500);
        assert_eq!(verify(100, &data), Ok(()));
        data[321] ^= 1;
        assert_eq!(verify(100, &data), Err(421));
    }

    #[tokio::test]
    async fn body_streams_exact_length_in_chunks() {
        let len = 3 * CHUNK as u64 + 7;
        let mut body = PatternBody::new(len);
        let mut frames = 0;
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            got.extend_from_slice(&frame.unwrap().into_data().unwrap());
            frames += 1;
        }
        assert_eq!(frames, 4);
        assert_eq!(got.len() as u64, len);
        assert_eq!(verify(0, &got), Ok(()));
    }
}
