//! An upgraded connection (WebSocket): after the upstream's `101 Switching Protocols`, bytes are copied both
//! ways until either side closes.
//!
//! The tunnel is outside every HTTP timeout (`response_timeout` only covers waiting for the `101`), holds no
//! route table snapshot (the endpoint was chosen before; reloads do not touch it) and never returns the
//! upstream connection to the pool.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::upstream::tls::UpstreamIo;

/// Copy between `client` and `upstream` until either closes. `to_upstream` and `to_client` are bytes each
/// side sent after its head that were already read (a client may send its first frame without waiting for
/// the 101). Returns the bytes copied each way (client to upstream, upstream to client).
pub(super) async fn tunnel<I>(
    client: &mut I,
    to_upstream: &[u8],
    mut upstream: UpstreamIo,
    to_client: BytesMut,
) -> std::io::Result<(u64, u64)>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    if !to_client.is_empty() {
        client.write_all(&to_client).await?;
    }
    if !to_upstream.is_empty() {
        upstream.write_all(to_upstream).await?;
    }
    // Back-pressure: each direction reads only when its previous write completed (one buffer per direction).
    tokio::io::copy_bidirectional(client, &mut upstream).await
}
