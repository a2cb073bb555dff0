//! Sending blob bytes straight from the page cache (`sendfile`), on Linux
//! and plain-HTTP connections.
//!
//! Copying a pulled blob through the process costs two copies per byte
//! (page cache to a buffer, buffer to the socket), about two thirds of the
//! server's CPU during a pull. `sendfile(2)` moves the bytes from the page
//! cache to the socket with neither. hyper has no way to be handed a file,
//! but it writes every response through the connection's byte stream, which
//! is ours:
//!
//! - The body of a blob download carries *stand-ins* for the pieces that
//!   are in memory: frames whose bytes lie in [`STAND_IN`], a region nothing
//!   ever writes, each queued with the file range it stands for
//!   ([`FileSends`]).
//! - The connection's stream ([`SendfileStream`]) knows a stand-in by its
//!   address. Where hyper writes one, it sends the queued file range with
//!   `sendfile` instead and reports those bytes as written, so hyper's
//!   `Content-Length` accounting and keep-alive go on as usual.
//!
//! This relies on hyper handing body frames to the stream as they are, in
//! order: its queue write strategy, which `transport` asks for with
//! `writev(true)`. The stream checks what it can: a stand-in must continue
//! exactly where the previous write of the queued range stopped, or the
//! connection fails. A hyper that copied frames into its own buffer would
//! send zeros instead of the blob; the test below serves through real hyper
//! and compares every byte, and every pull in the API tests checks its
//! digest, so such a hyper cannot pass the tests.
//!
//! TLS connections never get a [`FileSends`]: their bytes must pass through
//! the cipher, so their downloads copy as before.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::registry::FileSendPath;
use crate::storage::BlobReader;

/// Size of the stand-in region: the most one stand-in covers. Larger pieces
/// mean fewer frames and page-cache checks; the kernel sends what the socket
/// takes either way.
const STAND_IN_LEN: usize = 1 << 20;

/// The region stand-ins point into: zeros in the binary's read-only data,
/// never read, so never paged in.
static STAND_IN: [u8; STAND_IN_LEN] = [0; STAND_IN_LEN];

/// Where `slice` starts within [`STAND_IN`], if it is a stand-in.
fn stand_in_offset(slice: &[u8]) -> Option<usize> {
    let start = STAND_IN.as_ptr() as usize;
    let at = (slice.as_ptr() as usize).checked_sub(start)?;
    (at < STAND_IN_LEN && !slice.is_empty()).then_some(at)
}

/// One queued file range: what a stand-in frame stands for.
struct FileRange {
    blob: Arc<dyn BlobReader>,
    offset: u64,
    len: usize,
}

/// The file ranges a connection's responses are to send, in the order hyper
/// will write their stand-ins. One per connection, shared by its stream and
/// (as a request extension) its handlers.
#[derive(Clone, Default)]
pub struct FileSends {
    queue: Arc<Mutex<VecDeque<FileRange>>>,
}

impl FileSends {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<FileRange>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FileSendPath for FileSends {
    fn max_piece(&self) -> usize {
        STAND_IN_LEN
    }

    fn stand_in(&self, blob: &Arc<dyn BlobReader>, offset: u64, len: usize) -> Bytes {
        let len = len.min(STAND_IN_LEN);
        self.queue().push_back(FileRange {
            blob: Arc::clone(blob),
            offset,
            len,
        });
        Bytes::from_static(&STAND_IN[..len])
    }
}

/// A plain TCP connection's byte stream that sends stand-ins' file ranges
/// with `sendfile` and everything else as written.
pub struct SendfileStream {
    tcp: TcpStream,
    sends: FileSends,
    /// Bytes of the front queued range already sent.
    front_sent: usize,
}

impl SendfileStream {
    pub fn new(tcp: TcpStream, sends: FileSends) -> SendfileStream {
        SendfileStream {
            tcp,
            sends,
            front_sent: 0,
        }
    }

    /// Sends the front queued range from `at` on, `len` bytes at most (a
    /// stand-in slice starting `at` bytes into the region).
    fn poll_send_file(
        &mut self,
        cx: &mut Context<'_>,
        at: usize,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let (blob, offset) = {
            let queue = self.sends.queue();
            let front = match queue.front() {
                Some(front) if at == self.front_sent && at + len <= front.len => front,
                _ => return Poll::Ready(Err(out_of_step())),
            };
            (Arc::clone(&front.blob), front.offset + at as u64)
        };
        let Some(file) = blob.local_file() else {
            return Poll::Ready(Err(out_of_step()));
        };
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            match self.tcp.try_io(Interest::WRITABLE, || {
                send_file(&self.tcp, file, offset, len)
            }) {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "blob file is shorter than its recorded size",
                    )))
                }
                Ok(sent) => {
                    self.front_sent += sent;
                    let mut queue = self.sends.queue();
                    if queue.front().is_some_and(|f| f.len == self.front_sent) {
                        queue.pop_front();
                        self.front_sent = 0;
                    }
                    return Poll::Ready(Ok(sent));
                }
                // Not writable after all: wait for the next readiness.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

fn out_of_step() -> io::Error {
    io::Error::other("a stand-in frame did not match the file range queued for it")
}

/// One `sendfile(2)` of up to `len` bytes at `offset` of `file` to `tcp`.
#[cfg(target_os = "linux")]
fn send_file(tcp: &TcpStream, file: &std::fs::File, offset: u64, len: usize) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut offset = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    // SAFETY: sendfile reads `offset` and writes the advanced offset back
    // into it, a local that lives across the call; it touches no other
    // memory of ours. Both descriptors stay open for the call because
    // `tcp` and `file` are borrowed.
    let sent = unsafe { libc::sendfile(tcp.as_raw_fd(), file.as_raw_fd(), &mut offset, len) };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

#[cfg(not(target_os = "linux"))]
fn send_file(_: &TcpStream, _: &std::fs::File, _: u64, _: usize) -> io::Result<usize> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// Writes either a run of ordinary slices or (part of) one stand-in,
    /// whichever comes first; hyper calls again for the rest.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let bufs = match bufs.iter().position(|b| !b.is_empty()) {
            Some(first) => &bufs[first..],
            None => return Poll::Ready(Ok(0)),
        };
        if let Some(at) = stand_in_offset(&bufs[0]) {
            return self.poll_send_file(cx, at, bufs[0].len());
        }
        let ordinary = bufs
            .iter()
            .take_while(|b| stand_in_offset(b).is_none())
            .count();
        Pin::new(&mut self.tcp).poll_write_vectored(cx, &bufs[..ordinary])
    }

    fn is_write_vectored(&self) -> bool {
        // Vectored writes are what make hyper pass frames through uncopied.
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::convert::Infallible;
    use std::io::{Read, Write};

    use http_body_util::StreamBody;
    use hyper::body::Frame;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A blob in a temporary file.
    struct FileBlob(std::fs::File, u64);

    impl Read for FileBlob {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl BlobReader for FileBlob {
        fn size(&self) -> u64 {
            self.1
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            std::os::unix::fs::FileExt::read_at(&self.0, buf, offset)
        }
        fn local_file(&self) -> Option<&std::fs::File> {
            Some(&self.0)
        }
    }

    /// Serves one connection through real hyper: each request's response
    /// body is ordinary bytes and stand-ins for ranges of `blob`, mixed.
    async fn serve(tcp: TcpStream, blob: Arc<dyn BlobReader>) {
        let sends = FileSends::default();
        let io = TokioIo::new(SendfileStream::new(tcp, sends.clone()));
        let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
            let (sends, blob) = (sends.clone(), Arc::clone(&blob));
            async move {
                let frames: Vec<Bytes> = match request.uri().path() {
                    "/mixed" => vec![
                        Bytes::from_static(b"<"),
                        sends.stand_in(&blob, 10, STAND_IN_LEN),
                        Bytes::from_static(b"|"),
                        sends.stand_in(&blob, 3, 5),
                        sends.stand_in(&blob, 0, 1),
                        Bytes::from_static(b">"),
                    ],
                    _ => vec![Bytes::from_static(b"plain")],
                };
                let length: usize = frames.iter().map(Bytes::len).sum();
                let body = StreamBody::new(futures_util::stream::iter(
                    frames
                        .into_iter()
                        .map(|f| Ok::<_, Infallible>(Frame::data(f))),
                ));
                Ok::<_, Infallible>(
                    hyper::Response::builder()
                        .header("content-length", length)
                        .body(body)
                        .unwrap(),
                )
            }
        });
        hyper::server::conn::http1::Builder::new()
            .writev(true)
            .serve_connection(io, service)
            .await
            .unwrap();
    }

    /// Reads one response with a `content-length` and returns its body.
    async fn response_body(client: &mut tokio::net::TcpStream) -> Vec<u8> {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(client.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        let mut body = vec![0u8; length];
        client.read_exact(&mut body).await.unwrap();
        body
    }

    #[tokio::test]
    async fn hyper_sends_the_files_bytes_where_their_stand_ins_are() {
        let content: Vec<u8> = (0..STAND_IN_LEN + 64)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&content).unwrap();
        let blob: Arc<dyn BlobReader> = Arc::new(FileBlob(file, content.len() as u64));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            serve(tcp, blob).await;
        });
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();

        let mut expected = b"<".to_vec();
        expected.extend_from_slice(&content[10..10 + STAND_IN_LEN]);
        expected.extend_from_slice(b"|");
        expected.extend_from_slice(&content[3..8]);
        expected.extend_from_slice(&content[..1]);
        expected.extend_from_slice(b">");
        // Kept alive across responses, with and without stand-ins; each
        // response is read only once the server has filled the socket, so
        // sends go partial and wait for room.
        for path in ["/mixed", "/plain", "/mixed"] {
            let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
            client.write_all(request.as_bytes()).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let body = response_body(&mut client).await;
            match path {
                "/mixed" => assert!(body == expected, "the body differs from the file's bytes"),
                _ => assert_eq!(body, b"plain"),
            }
        }
        drop(client);
        server.await.unwrap();
    }
}
