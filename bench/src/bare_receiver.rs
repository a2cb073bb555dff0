//! The floor of a blob push on this machine: the least work any registry
//! must do to accept a blob the way issue 5 asks (receive it over HTTP,
//! hash it, write it to a file on the same disk, fsync it before the 201),
//! and nothing else: no metadata, no names made durable, no limits, no
//! async runtime, one thread per connection, blocking reads straight into
//! one 1 MiB buffer.
//!
//! `compare` pushes the same blobs to it with the same client in every
//! round, beside the two registries, and meters its process the same way.
//! Its CPU per GB is the cost of the bytes themselves at that moment
//! (socket copy, sha256, page-cache copy and faults, writeback): on this
//! virtual machine that cost swings with the host's memory, and no server
//! can spend less than it. Its CPU ÷ the reference's is the best ratio any
//! server could reach in that round.
//!
//! It understands exactly the requests of the push scenarios (POST to
//! start, PATCH with a body, PUT `?digest=` with or without a body, and
//! `GET /v2/` for readiness) and closes the connection on anything else.
//! HTTP is parsed by hand on purpose: a framework's costs are what this
//! baseline leaves out.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::content::finish_digest;

/// Largest read from the socket, and write to the file, in one call.
const BODY_BUFFER: usize = 1 << 20;
const HEAD_BUFFER: usize = 64 * 1024;
/// Request heads longer than this are refused (the bench sends ~200 bytes).
const MAX_HEAD_LINES: usize = 64;

/// Serves until killed.
pub fn serve(addr: SocketAddr, root: &Path) -> Result<()> {
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    let uploads = Arc::new(Uploads {
        root: root.to_path_buf(),
        next_id: AtomicU64::new(1),
        open: Mutex::new(HashMap::new()),
    });
    for stream in listener.incoming() {
        let stream = stream.context("accepting a connection")?;
        let uploads = Arc::clone(&uploads);
        std::thread::spawn(move || {
            if let Err(e) = connection(stream, &uploads) {
                eprintln!("bare-receiver: connection ended: {e}");
            }
        });
    }
    Ok(())
}

/// One upload in progress: its file and the hash of what it holds.
struct Upload {
    file: File,
    hasher: Sha256,
    size: u64,
}

struct Uploads {
    root: PathBuf,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Upload>>,
}

impl Uploads {
    fn start(&self) -> io::Result<u64> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let file = File::create(self.root.join(id.to_string()))?;
        let upload = Upload {
            file,
            hasher: Sha256::new(),
            size: 0,
        };
        self.lock().insert(id, upload);
        Ok(id)
    }

    /// Takes upload `id` out while a request works on it.
    fn take(&self, id: u64) -> Option<Upload> {
        self.lock().remove(&id)
    }

    fn put_back(&self, id: u64, upload: Upload) {
        self.lock().insert(id, upload);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Upload>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What the receiver needs of a request's head.
struct Head {
    method: String,
    path: String,
    query: String,
    content_length: u64,
}

fn connection(stream: TcpStream, uploads: &Uploads) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(HEAD_BUFFER, stream);
    let mut buffer = vec![0u8; BODY_BUFFER];
    while let Some(head) = read_head(&mut reader)? {
        let reply = respond(&head, &mut reader, &mut buffer, uploads);
        let ok = reply.is_ok();
        let text = reply.unwrap_or_else(|e| {
            format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{e}",
                e.to_string().len()
            )
        });
        reader.get_mut().write_all(text.as_bytes())?;
        if !ok {
            return Ok(());
        }
    }
    Ok(())
}

/// Reads a request line and headers; `None` when the client closed the
/// connection between requests.
fn read_head(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Head>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(invalid(format!("bad request line {line:?}")));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut head = Head {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        content_length: 0,
    };
    for _ in 0..MAX_HEAD_LINES {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            return Ok(Some(head));
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                head.content_length = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid(format!("bad Content-Length {value:?}")))?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(invalid("only Content-Length bodies are supported".into()));
            }
        }
    }
    Err(invalid("request head too long".into()))
}

/// Handles one request, reading its body; gives the whole response.
fn respond(
    head: &Head,
    reader: &mut BufReader<TcpStream>,
    buffer: &mut [u8],
    uploads: &Uploads,
) -> io::Result<String> {
    let upload_id = |path: &str| {
        let (_, id) = path.rsplit_once("/blobs/uploads/")?;
        id.parse::<u64>().ok()
    };
    match head.method.as_str() {
        "GET" if head.path == "/v2/" => Ok(reply("200 OK", &[], "{}")),
        "POST" if head.path.ends_with("/blobs/uploads/") && head.content_length == 0 => {
            let id = uploads.start()?;
            let location = format!("{}{id}", head.path);
            Ok(reply(
                "202 Accepted",
                &[("Location", &location), ("Range", "0-0")],
                "",
            ))
        }
        "PATCH" | "PUT" => {
            let id = upload_id(&head.path)
                .ok_or_else(|| invalid(format!("not an upload: {}", head.path)))?;
            let mut upload = uploads
                .take(id)
                .ok_or_else(|| invalid(format!("unknown upload {id}")))?;
            receive(reader, head.content_length, buffer, &mut upload)?;
            if head.method == "PATCH" {
                let range = format!("0-{}", upload.size.saturating_sub(1));
                let location = head.path.clone();
                uploads.put_back(id, upload);
                return Ok(reply(
                    "202 Accepted",
                    &[("Location", &location), ("Range", &range)],
                    "",
                ));
            }
            upload.file.sync_data()?;
            let expected = head
                .query
                .split('&')
                .find_map(|pair| pair.strip_prefix("digest="))
                .map(|d| d.replace("%3A", ":").replace("%3a", ":"))
                .ok_or_else(|| invalid("PUT without ?digest=".into()))?;
            let got = finish_digest(upload.hasher);
            if got != expected {
                return Err(invalid(format!("digest {got}, expected {expected}")));
            }
            Ok(reply(
                "201 Created",
                &[("Docker-Content-Digest", &got), ("Location", &head.path)],
                "",
            ))
        }
        _ => Err(invalid(format!(
            "not handled: {} {}",
            head.method, head.path
        ))),
    }
}

/// Streams `length` body bytes into the upload's file, hashing them.
fn receive(
    reader: &mut BufReader<TcpStream>,
    length: u64,
    buffer: &mut [u8],
    upload: &mut Upload,
) -> io::Result<()> {
    let mut left = length;
    while left > 0 {
        let want = buffer
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = reader.read(&mut buffer[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        upload.hasher.update(&buffer[..n]);
        upload.file.write_all(&buffer[..n])?;
        left -= n as u64;
    }
    upload.size += length;
    Ok(())
}

fn reply(status: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut text = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::sha256_digest;

    fn start() -> (tempfile::TempDir, SocketAddr) {
        let root = tempfile::tempdir().expect("tempdir");
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let dir = root.path().to_path_buf();
        std::thread::spawn(move || serve(addr, &dir));
        (root, addr)
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        for _ in 0..500 {
            if let Ok(s) = TcpStream::connect(addr) {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the receiver did not start");
    }

    /// Sends one request and reads the response head (every answer but a
    /// refusal has an empty body).
    fn exchange(stream: &mut TcpStream, head: &str, body: &[u8]) -> String {
        stream.write_all(head.as_bytes()).expect("write head");
        stream.write_all(body).expect("write body");
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).expect("read") == 0 {
                break;
            }
            answer.push(byte[0]);
        }
        String::from_utf8_lossy(&answer).into_owned()
    }

    fn location(answer: &str) -> String {
        answer
            .lines()
            .find_map(|l| l.strip_prefix("Location: "))
            .unwrap_or_else(|| panic!("no Location in {answer}"))
            .to_string()
    }

    const POST: &str = "POST /v2/a/b/blobs/uploads/ HTTP/1.1\r\nContent-Length: 0\r\n\r\n";

    /// A chunked push (POST, PATCH, PUT with the rest) lands as one file
    /// holding the content, answered with its digest.
    #[test]
    fn takes_a_chunked_push_and_answers_its_digest() {
        let (root, addr) = start();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let digest = sha256_digest(&data);
        let (first, rest) = data.split_at(1_234_567);

        let mut stream = connect(addr);
        let started = exchange(&mut stream, POST, &[]);
        assert!(started.starts_with("HTTP/1.1 202"), "{started}");
        let path = location(&started);
        let head = format!(
            "PATCH {path} HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            first.len()
        );
        let patched = exchange(&mut stream, &head, first);
        assert!(patched.contains("Range: 0-1234566"), "{patched}");
        let query = digest.replace(':', "%3A");
        let head = format!(
            "PUT {path}?digest={query} HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            rest.len()
        );
        let put = exchange(&mut stream, &head, rest);
        assert!(put.starts_with("HTTP/1.1 201"), "{put}");
        assert!(
            put.contains(&format!("Docker-Content-Digest: {digest}")),
            "{put}"
        );
        let id = path.rsplit('/').next().expect("id");
        assert_eq!(std::fs::read(root.path().join(id)).expect("file"), data);
    }

    /// Content that does not match the digest is refused and the
    /// connection closed.
    #[test]
    fn refuses_a_wrong_digest() {
        let (_root, addr) = start();
        let mut stream = connect(addr);
        let path = location(&exchange(&mut stream, POST, &[]));
        let wrong = format!("sha256:{}", "0".repeat(64));
        let head = format!("PUT {path}?digest={wrong} HTTP/1.1\r\nContent-Length: 3\r\n\r\n");
        let answer = exchange(&mut stream, &head, b"abc");
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        let mut rest = String::new();
        stream.read_to_string(&mut rest).expect("read to the end");
        assert!(rest.contains("expected sha256:000"), "{rest}");
    }
}
