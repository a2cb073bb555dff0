//! Bad and hostile input: idle and slow connections, oversized URLs and
//! headers, deeply nested manifests, and too many uploads from one client.
//! Waits here are upper bounds for something that must happen, never speed
//! assertions.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{assert_oci_error, header, ServerConfig, TestServer, OCI_MANIFEST};

/// Reads until the server closes the connection; returns how long that
/// took, failing if it takes longer than `bound`.
fn wait_for_close(stream: &mut TcpStream, bound: Duration) -> Duration {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return started.elapsed(),
        }
        assert!(
            started.elapsed() < bound,
            "the server kept the connection open for {bound:?}"
        );
    }
}

#[tokio::test]
async fn many_idle_and_slow_connections_do_not_stop_a_normal_request() {
    let server = TestServer::start().await;
    let host = server.host().to_owned();
    let held = tokio::task::spawn_blocking(move || {
        let mut held = Vec::new();
        for i in 0..300 {
            let mut stream = TcpStream::connect(&host).expect("connect");
            // Half of them start a request and never finish its headers.
            if i % 2 == 0 {
                stream
                    .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
                    .unwrap();
            }
            held.push(stream);
        }
        held
    })
    .await
    .unwrap();
    let resp = server.get("/v2/").await;
    assert_eq!(resp.status(), 200);
    let image = server.push_image("busy/app", "v1", 3).await;
    let resp = server.get("/v2/busy/app/manifests/v1").await;
    assert_eq!(resp.bytes().await.unwrap(), image.manifest);
    drop(held);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let server = TestServer::start_with(&["--idle-timeout", "1s"]).await;
    let host = server.host().to_owned();
    tokio::task::spawn_blocking(move || {
        // Silent from the start.
        let mut silent = TcpStream::connect(&host).unwrap();
        wait_for_close(&mut silent, Duration::from_secs(20));
        // Idle after one request on a keep-alive connection.
        let mut kept = TcpStream::connect(&host).unwrap();
        kept.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 512];
        let n = kept.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        wait_for_close(&mut kept, Duration::from_secs(20));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn headers_that_trickle_in_are_cut_off() {
    let server =
        TestServer::start_with(&["--header-timeout", "1s", "--idle-timeout", "120s"]).await;
    let host = server.host().to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&host).unwrap();
        stream.write_all(b"GET /v2/ HTTP/1.1\r\n").unwrap();
        let started = Instant::now();
        // One header line every 200 ms keeps bytes moving (so the idle
        // timeout never fires) but never finishes the head.
        let mut i = 0;
        let closed = loop {
            if stream
                .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
                .is_err()
            {
                break true;
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(200));
            stream
                .set_read_timeout(Some(Duration::from_millis(1)))
                .unwrap();
            let mut buf = [0u8; 256];
            match stream.read(&mut buf) {
                Ok(_) => break true,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break true,
            }
            if started.elapsed() > Duration::from_secs(20) {
                break false;
            }
        };
        assert!(closed, "a head trickling in for 20 s was not cut off");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn oversized_urls_and_headers_are_refused_clearly() {
    let server = TestServer::start().await;
    let long = format!("/v2/a/tags/list?last={}", "x".repeat(9000));
    let resp = server.get(&long).await;
    assert_oci_error(resp, 414, "UNSUPPORTED").await;
    let resp = server
        .client
        .get(server.url("/v2/"))
        .header("x-big", "y".repeat(40 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 431);
    // The server is fine afterwards.
    assert_eq!(server.get("/v2/").await.status(), 200);
}

#[tokio::test]
async fn deeply_nested_manifests_are_refused() {
    let server = TestServer::start().await;
    let image = server.push_image("deep/app", "v1", 5).await;
    let mut manifest: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
    let nested = format!("{}{}", "[".repeat(100), "]".repeat(100));
    manifest["annotations"] = serde_json::json!({ "x": "y" });
    let body = serde_json::to_string(&manifest)
        .unwrap()
        .replace(r#"{"x":"y"}"#, &format!(r#"{{"x":{nested}}}"#));
    let resp = server
        .put_manifest("deep/app", "v2", OCI_MANIFEST, body.as_bytes())
        .await;
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("MANIFEST_INVALID") && text.contains("nests deeper"),
        "{text}"
    );
}

/// Whether the server has sent anything on `stream` (without consuming it).
fn answered(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let seen = matches!(stream.peek(&mut byte), Ok(n) if n > 0);
    stream.set_nonblocking(false).unwrap();
    seen
}

/// Starts a PATCH whose body stays unfinished; returns the socket.
fn start_slow_patch(host: &str, location: &str) -> TcpStream {
    let mut stream = TcpStream::connect(host).unwrap();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&[7u8; 10]).unwrap();
    stream
}

#[tokio::test]
async fn concurrent_uploads_per_client_are_limited() {
    let server =
        TestServer::start_configured(ServerConfig::args(&["--max-uploads-per-client", "1"])).await;
    let location = server.start_upload("lim/app").await;
    let host = server.host().to_owned();
    let loc = location.clone();
    let mut slow = tokio::task::spawn_blocking(move || start_slow_patch(&host, &loc))
        .await
        .unwrap();

    // Once the PATCH is being served, this client has no slot left. A probe
    // that ran while the PATCH arrived may have taken the slot first (the
    // PATCH is then answered 429 at once): start it again and go on probing.
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let resp = server
            .client
            .post(server.url("/v2/lim/app/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            break resp;
        }
        assert_eq!(resp.status(), 202);
        assert!(
            Instant::now() < deadline,
            "a second upload was never refused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        if answered(&slow) {
            let (host, loc) = (server.host().to_owned(), location.clone());
            slow = tokio::task::spawn_blocking(move || start_slow_patch(&host, &loc))
                .await
                .unwrap();
        }
    };
    assert_eq!(header(&refused, "retry-after").as_deref(), Some("1"));
    assert_oci_error(refused, 429, "TOOMANYREQUESTS").await;

    // Another client address still may.
    let other = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    let resp = other
        .post(server.url("/v2/lim/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    // Finishing the PATCH frees the slot.
    let status = tokio::task::spawn_blocking(move || {
        slow.write_all(&[7u8; 90]).unwrap();
        let mut buf = [0u8; 512];
        let n = slow.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    })
    .await
    .unwrap();
    assert!(status.starts_with("HTTP/1.1 202"), "{status}");
    let resp = server
        .client
        .post(server.url("/v2/lim/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
}
