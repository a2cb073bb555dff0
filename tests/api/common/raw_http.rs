//! A socket-level HTTP/1.1 client that keeps reading while it writes, for
//! servers that answer before they have read the whole body.

use super::server::REQUEST_TIMEOUT;

pub struct RawResponse {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Asserts an OCI error answer: `status`, a JSON body, and `code` with a
    /// message as its first error.
    pub fn assert_oci_error(&self, status: u16, code: &str) {
        let body = String::from_utf8_lossy(&self.body);
        assert_eq!(
            self.status, status,
            "expected {status} {code}; body: {body}"
        );
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "Content-Type {:?}, expected application/json",
            self.header("content-type")
        );
        let error: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"));
        assert_eq!(error["errors"][0]["code"], code, "{body}");
        assert!(
            error["errors"][0]["message"].is_string(),
            "no message: {body}"
        );
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub(super) fn raw_exchange(addr: &str, head: Vec<u8>, body: Vec<u8>) -> RawResponse {
    use std::io::{Read, Write};
    let stream = std::net::TcpStream::connect(addr).expect("connect to artispace");
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .expect("set read timeout");
    let mut writer = stream.try_clone().expect("clone socket");
    let sender = std::thread::spawn(move || {
        // The server may answer and close before reading everything; a
        // failed write is expected then.
        let _ = writer
            .write_all(&head)
            .and_then(|()| writer.write_all(&body));
    });
    let mut raw = Vec::new();
    let mut reader = stream;
    let mut buf = [0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if raw.is_empty() => panic!("no response from artispace: {e}"),
            Err(_) => break,
        }
        if response_complete(&raw) {
            break;
        }
    }
    let _ = sender.join();
    parse_raw_response(&raw)
}

fn split_head(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((&raw[..end], &raw[end + 4..]))
}

fn response_complete(raw: &[u8]) -> bool {
    let Some((head, body)) = split_head(raw) else {
        return false;
    };
    let length = String::from_utf8_lossy(head)
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok());
    length.is_some_and(|n| body.len() >= n)
}

fn parse_raw_response(raw: &[u8]) -> RawResponse {
    let (head, body) = split_head(raw).unwrap_or_else(|| {
        panic!(
            "incomplete HTTP response: {:?}",
            String::from_utf8_lossy(raw)
        )
    });
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_vec(),
    }
}
