//! The decrypted side of an HTTPS connection after its handshake: rustls' `ServerConnection` driven straight
//! on the socket.
//!
//! tokio-rustls runs the handshake (its state machine for that is well tested); then its stream is taken
//! apart and this one serves the traffic. The difference is in where buffered ciphertext goes. When the
//! socket is full, tokio-rustls' `poll_write` takes the plaintext, encrypts it into rustls' send buffer and
//! returns: the bytes leave only with a later write or a flush. RAUTA's HTTP/1 codec never flushes (its
//! writes are whole responses), so the tail of a large response to a client that reads slower than the
//! proxy writes stayed in that buffer while the codec waited for the next request: the client waited for
//! the rest of the body, the proxy for the client, until the idle timeout closed the connection and cut the
//! body short.
//!
//! Invariants:
//! - Ciphertext waiting in rustls' send buffer leaves before anything else happens on the connection:
//!   before new plaintext is taken (`poll_write` waits until the socket took it: back-pressure, at most one
//!   write's worth of ciphertext is ever buffered), and before every read (`poll_read` sends it first and,
//!   if the socket is still full, has the task woken when it drains, so waiting for the client never
//!   strands a response).
//! - A read returns as soon as one record's plaintext is there; plaintext is copied once, from rustls'
//!   buffer into the caller's, never zero-filled first.
//! - EOF semantics are rustls': `close_notify` is a clean end (a 0-byte read), a TCP EOF without it is an
//!   `UnexpectedEof` error once the decrypted bytes are read, exactly as tokio-rustls reported them.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::ServerConnection;

/// An established TLS connection (handshake done) over TCP: reads return decrypted bytes, writes encrypt.
#[derive(Debug)]
pub struct TlsStream {
    tcp: TcpStream,
    conn: ServerConnection,
    /// `close_notify` was queued (by `poll_shutdown`): no more plaintext may be written.
    write_closed: bool,
}

impl TlsStream {
    /// Serve the traffic of `conn`, whose handshake on `tcp` completed.
    pub(crate) fn new(tcp: TcpStream, conn: ServerConnection) -> Self {
        Self {
            tcp,
            conn,
            write_closed: false,
        }
    }

    /// The rustls connection (negotiated ALPN protocol, SNI name, cipher suite…).
    pub fn connection(&self) -> &ServerConnection {
        &self.conn
    }

    /// Send buffered ciphertext: ready once none is left, pending while the socket is full (the task is
    /// woken when it can take more).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.wants_write() {
            let mut socket = SocketIo {
                tcp: &mut self.tcp,
                cx,
            };
            match self.conn.write_tls(&mut socket) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Copy decrypted bytes into `buf`: `Some(Ok)` when some were copied or the stream ended, `None` when
    /// rustls has none yet.
    fn take_plaintext(&mut self, buf: &mut ReadBuf<'_>) -> Option<io::Result<()>> {
        let mut copied = false;
        while buf.remaining() > 0 {
            let chunk = match self.conn.reader().into_first_chunk() {
                // Empty: the peer sent close_notify and everything before it was read.
                Ok(chunk) => chunk,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                // A TCP EOF without close_notify: report it once the copied bytes were returned.
                Err(err) if copied => {
                    drop(err);
                    break;
                }
                Err(err) => return Some(Err(err)),
            };
            if chunk.is_empty() {
                return Some(Ok(()));
            }
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            io::BufRead::consume(&mut self.conn.reader(), n);
            copied = true;
        }
        copied.then_some(Ok(()))
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        // Whatever ciphertext waits goes out before we wait for the peer (see the module invariants); a
        // socket still full is fine here: the task is woken when it drains, and the next call sends more.
        if let Poll::Ready(Err(err)) = this.poll_send(cx) {
            return Poll::Ready(Err(err));
        }
        loop {
            if let Some(result) = this.take_plaintext(buf) {
                return Poll::Ready(result);
            }
            let mut socket = SocketIo {
                tcp: &mut this.tcp,
                cx,
            };
            match this.conn.read_tls(&mut socket) {
                // EOF: rustls notes it, and the reader reports it (clean or not) on the next pass.
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(err) => return Poll::Ready(Err(err)),
            }
            if let Err(err) = this.conn.process_new_packets() {
                // An alert telling the peer why may be queued: one try to send it, without waiting.
                let _ = this.poll_send(cx);
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, err)));
            }
            // Records that need an answer (a key update) queue one: send it now rather than with the next
            // write, which may be far away.
            if let Poll::Ready(Err(err)) = this.poll_send(cx) {
                return Poll::Ready(Err(err));
            }
        }
    }
}

impl TlsStream {
    /// Encrypt what rustls takes of `bufs` (one record for small writes), after the previous write's
    /// ciphertext is gone; then start sending it.
    fn poll_encrypt(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        std::task::ready!(self.poll_send(cx))?;
        let n = match bufs {
            [one] => self.conn.writer().write(one)?,
            _ => self.conn.writer().write_vectored(bufs)?,
        };
        // Pending here is fine: the bytes were taken, and the next read, write, flush or shutdown sends
        // the rest (the socket's readiness wakes this task).
        if let Poll::Ready(Err(err)) = self.poll_send(cx) {
            return Poll::Ready(Err(err));
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.get_mut().poll_encrypt(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        self.get_mut().poll_encrypt(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.conn.writer().flush()?;
        std::task::ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_closed {
            this.conn.send_close_notify();
            this.write_closed = true;
        }
        std::task::ready!(this.poll_send(cx))?;
        match std::task::ready!(Pin::new(&mut this.tcp).poll_shutdown(cx)) {
            // The peer went away first: nothing left to shut.
            Err(err) if err.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            result => Poll::Ready(result),
        }
    }
}

/// The socket as the blocking `Read`/`Write` rustls wants, for one poll: "would block" is `WouldBlock`,
/// and the socket's readiness then wakes the task in `cx`.
struct SocketIo<'a, 'b> {
    tcp: &'a mut TcpStream,
    cx: &'a mut Context<'b>,
}

impl Read for SocketIo<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut *self.tcp).poll_read(self.cx, &mut buf) {
            Poll::Ready(Ok(())) => Ok(buf.filled().len()),
            Poll::Ready(Err(err)) => Err(err),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for SocketIo<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.tcp).poll_write(self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match Pin::new(&mut *self.tcp).poll_write_vectored(self.cx, bufs) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use arc_swap::ArcSwap;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use crate::listener::Acceptor;
    use crate::tls::TlsAcceptor;
    use crate::upstream::tls::{handshake, UpstreamIo};

    const LIMIT: Duration = Duration::from_secs(20);

    /// A listener on a free loopback port and an acceptor with a fresh self-signed certificate.
    async fn server() -> (TcpListener, TlsAcceptor) {
        let key = Arc::new(rauta_tls::generate_default_certificate().unwrap());
        let store = rauta_tls::CertStore::only_default(key);
        let store = Arc::new(ArcSwap::from_pointee(store));
        let config = rauta_tls::server_config(store).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        (listener, TlsAcceptor::new(Arc::new(config)))
    }

    /// A TLS client (RAUTA's upstream connector: any certificate is accepted) connected to `addr`.
    async fn client(addr: SocketAddr) -> UpstreamIo {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = "rauta.invalid".try_into().unwrap();
        handshake(tcp, addr, name, LIMIT).await.unwrap()
    }

    /// The bug this stream exists for: a write that the socket takes only in part (small socket buffers
    /// here, a slow client in real life), never flushed, then a read waiting for the peer. The peer must
    /// still get every byte of the write, and only then answers.
    #[tokio::test]
    async fn the_end_of_an_unflushed_large_write_reaches_a_slow_reader() {
        let (listener, acceptor) = server().await;
        let addr = listener.local_addr().unwrap();
        // More than the two small socket buffers hold, less than rustls buffers (64 KiB): the write is
        // taken whole, and its end waits in rustls' buffer.
        const LEN: usize = 48 << 10;
        let serving = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            socket2::SockRef::from(&tls.tcp)
                .set_send_buffer_size(4096)
                .unwrap();
            let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
            tls.write_all(&data).await.unwrap();
            // No flush: RAUTA's HTTP/1 codec writes whole responses and goes back to reading.
            let mut answer = [0u8; 2];
            tls.read_exact(&mut answer).await.unwrap();
            answer
        });
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(addr).await.unwrap();
        let mut tls = handshake(tcp, addr, "rauta.invalid".try_into().unwrap(), LIMIT)
            .await
            .unwrap();
        // Let the server finish its write (into the socket and rustls' buffer) before reading.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut got = vec![0u8; LEN];
        tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut got))
            .await
            .expect("the end of the write never arrived")
            .unwrap();
        assert!(got.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
        tls.write_all(b"ok").await.unwrap();
        let answer = tokio::time::timeout(LIMIT, serving).await.unwrap().unwrap();
        assert_eq!(&answer, b"ok");
    }

    /// Small exchanges both ways (vectored writes land as one piece), then the ends: a clean close
    /// (`close_notify`) reads as EOF, a TCP close without it as `UnexpectedEof`.
    #[tokio::test]
    async fn echo_then_clean_and_unclean_ends() {
        let (listener, acceptor) = server().await;
        let addr = listener.local_addr().unwrap();
        let serving = tokio::spawn(async move {
            let mut ends = Vec::new();
            for _ in 0..2 {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut tls = acceptor.accept(tcp).await.unwrap();
                assert!(!TlsAcceptor::negotiated_h2(&tls));
                let mut buf = [0u8; 64];
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) => {
                            ends.push("eof".to_owned());
                            break;
                        }
                        Ok(n) => {
                            let head = io::IoSlice::new(b"got ");
                            let body = io::IoSlice::new(&buf[..n]);
                            let written = tls.write_vectored(&[head, body]).await.unwrap();
                            assert_eq!(written, 4 + n, "small vectored writes are taken whole");
                        }
                        Err(err) => {
                            ends.push(format!("{:?}", err.kind()));
                            break;
                        }
                    }
                }
            }
            ends
        });
        for clean in [true, false] {
            let mut tls = client(addr).await;
            for word in ["one", "two"] {
                tls.write_all(word.as_bytes()).await.unwrap();
                let mut buf = vec![0u8; 4 + word.len()];
                tls.read_exact(&mut buf).await.unwrap();
                assert_eq!(buf, format!("got {word}").as_bytes());
            }
            if clean {
                tls.shutdown().await.unwrap();
            } else {
                let UpstreamIo::Tls(tls) = tls else {
                    panic!("a TLS client")
                };
                let (tcp, _) = tls.into_inner();
                drop(tcp);
            }
        }
        let ends = tokio::time::timeout(LIMIT, serving).await.unwrap().unwrap();
        assert_eq!(ends, ["eof", "UnexpectedEof"]);
    }
}
