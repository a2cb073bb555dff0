//! One client connection: an optional TLS handshake, then HTTP/1.1 under
//! limits, so that slow, idle or oversized clients cannot hold the server.
//!
//! - [`IdleTimeout`] closes a connection on which nothing was read or
//!   written for `idle_timeout`: idle keep-alive connections, stalled
//!   handshakes, request bodies that stop arriving, clients that stop
//!   reading a response.
//! - hyper's header read timeout closes a connection whose request head
//!   trickles in (slowloris), and its header size limit answers 431.
//! - The connection is watched by the server's graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use super::zero_copy::{FileSends, SendfileStream};

/// Most bytes one connection reads ahead of its handler (hyper's read
/// buffer; see where it is set).
const READ_BUFFER_LIMIT: usize = 512 << 10;

/// Limits of one connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// The whole request head must arrive within this.
    pub header_timeout: Duration,
    /// Nothing read or written for this long closes the connection.
    pub idle_timeout: Duration,
    /// Request line plus headers, in bytes (431 beyond).
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 32 * 1024,
        }
    }
}

/// Whether a request came over TLS (for URLs the server hands out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secure(pub bool);

/// Serves one accepted connection until it ends.
pub async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: ConnectionLimits,
    watcher: Watcher,
) {
    let _ = tcp.set_nodelay(true);
    let file_sends = FileSends::default();
    let io = IdleTimeout::new(
        SendfileStream::new(tcp, file_sends.clone()),
        limits.idle_timeout,
    );
    let secure = Secure(tls.is_some());
    // Only plain connections send files themselves: TLS must encrypt every
    // byte (see `zero_copy`).
    let file_sends = tls.is_none().then_some(file_sends);
    let service = app.map_request(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(secure);
        if let Some(sends) = &file_sends {
            request.extensions_mut().insert(sends.clone());
        }
        request
    });
    let service = TowerToHyperService::new(service);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        // hyper's read buffer grows past its default cap while pushed bytes
        // still pin the old one; 512 KiB keeps four concurrent pushes at
        // 24-25 MiB peak RSS instead of 35 (256 KiB: 19 MiB, but a quarter
        // more CPU per GB from the smaller reads).
        .max_buf_size(READ_BUFFER_LIMIT)
        // Body frames reach the stream as they are, not copied into one
        // buffer: the zero-copy send depends on it.
        .writev(true)
        .keep_alive(true);
    let result = match tls {
        None => {
            let conn = builder.serve_connection(TokioIo::new(io), service);
            watcher.watch(conn).await
        }
        Some(acceptor) => match acceptor.accept(io).await {
            Ok(stream) => {
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                watcher.watch(conn).await
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
        },
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// A byte stream that fails with `TimedOut` when no byte moved either way
/// for `idle`.
pub struct IdleTimeout<T> {
    inner: T,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    /// When the deadline was last pushed back (it is pushed back at most a
    /// few times per period, not on every read).
    pushed_at: Instant,
}

impl<T> IdleTimeout<T> {
    pub fn new(inner: T, idle: Duration) -> IdleTimeout<T> {
        let now = Instant::now();
        IdleTimeout {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep_until(now + idle)),
            pushed_at: now,
        }
    }

    fn progressed(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.pushed_at) >= self.idle / 8 {
            self.deadline.as_mut().reset(now + self.idle);
            self.pushed_at = now;
        }
    }

    /// `Ready(Err)` once the deadline has passed; registers for wake-up
    /// otherwise.
    /// Counts a write that moved bytes as progress; a pending one is
    /// allowed only until the idle deadline.
    fn observe_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.progressed();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.check_deadline(cx).map(Err),
        }
    }

    fn check_deadline(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection idle for too long",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.progressed();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.check_deadline(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.observe_write(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.observe_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.check_deadline(cx).map(Err),
            ready => ready,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_silent_peer_times_out_and_a_talking_one_does_not() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = IdleTimeout::new(server, Duration::from_millis(200));
        let mut client = client;
        let talker = tokio::spawn(async move {
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                client.write_all(b"x").await.unwrap();
            }
            client
        });
        let mut byte = [0u8; 1];
        for _ in 0..6 {
            server.read_exact(&mut byte).await.unwrap();
        }
        let _client = talker.await.unwrap();
        let err = server.read_exact(&mut byte).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }
}
