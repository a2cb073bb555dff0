//! Graceful shutdown, and state that must survive a stop and a start on the
//! same root: upload sessions in progress, manifests, tags and deletions.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream;

use crate::common::{
    assert_oci_error, header, random_bytes, sha256_digest, ServerConfig, TestServer, OCI_MANIFEST,
};

#[tokio::test]
async fn sigterm_stops_the_server_with_exit_code_0() {
    let mut server = TestServer::start().await;
    server.push_image("repo", "v1", 120).await;
    server.stop_with_signal("TERM").await;
}

#[tokio::test]
async fn sigint_stops_the_server_with_exit_code_0() {
    let mut server = TestServer::start().await;
    server.push_image("repo", "v1", 121).await;
    server.stop_with_signal("INT").await;
}

/// Log rotation and service managers send SIGHUP. Without TLS there is
/// nothing to reload, and the server must go on serving (the signal's
/// default action would end it).
#[tokio::test]
async fn sighup_without_tls_leaves_the_server_running() {
    let mut server = TestServer::start_configured(ServerConfig {
        log_level: Some("info".into()),
        ..ServerConfig::default()
    })
    .await;
    server.send_signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.log().contains("SIGHUP: nothing to reload") {
        let alive = server.client.get(server.url("/v2/")).send().await;
        assert!(
            alive.is_ok() && Instant::now() < deadline,
            "the server did not take SIGHUP in its stride; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.push_image("repo", "v1", 122).await;
    server.stop_with_signal("TERM").await;
}

/// SIGTERM while a PATCH is half sent: the request finishes, then the
/// server exits 0.
#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish() {
    let mut server = TestServer::start().await;
    let location = server.start_upload("repo").await;
    let uuid = location.rsplit('/').next().unwrap().to_owned();
    // Far more than any write buffer, so part of it reaches the file.
    let half = 8 * 1024 * 1024;
    let data = random_bytes(125, half + 1024 * 1024);

    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
    let body = stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    });
    let request = server
        .client
        .patch(server.location_url(&location))
        .header("content-type", "application/octet-stream")
        .header("content-length", data.len().to_string())
        .body(reqwest::Body::wrap_stream(body));
    let in_flight = tokio::spawn(request.send());
    tx.send(Bytes::copy_from_slice(&data[..half]))
        .await
        .unwrap();

    // Readiness polling: wait until the server is receiving the body.
    let partial = server.root().join("uploads").join(&uuid);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "the server never wrote to {}",
            partial.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    server.send_signal("TERM");
    tx.send(Bytes::copy_from_slice(&data[half..]))
        .await
        .unwrap();
    drop(tx);
    let resp = in_flight
        .await
        .unwrap()
        .expect("PATCH in flight gets an answer");
    assert_eq!(resp.status(), 202);
    assert_eq!(
        header(&resp, "range"),
        Some(format!("0-{}", data.len() - 1))
    );
    let status = server.wait_for_exit("TERM").await;
    assert!(status.success(), "exit status {status}");
}

/// PATCHes `chunk` as the first bytes of the session at `location`; returns
/// the Location to continue at.
async fn patch_first_chunk(server: &TestServer, location: &str, chunk: &[u8]) -> String {
    let end = chunk.len() as u64 - 1;
    let resp = server
        .patch_chunk(location, chunk.to_vec(), Some((0, end)))
        .await;
    assert_eq!(resp.status(), 202);
    header(&resp, "location").expect("Location after PATCH")
}

#[tokio::test]
async fn upload_session_resumes_after_restart() {
    let mut server = TestServer::start().await;
    let data = random_bytes(122, 3 * 1024 * 1024 + 17);
    let digest = sha256_digest(&data);
    let split = 2 * 1024 * 1024;
    let location = server.start_upload("repo").await;
    let location = patch_first_chunk(&server, &location, &data[..split]).await;

    server.restart().await;

    let resp = server
        .client
        .get(server.location_url(&location))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "GET the session after restart");
    assert_eq!(header(&resp, "range"), Some(format!("0-{}", split - 1)));
    let location = header(&resp, "location").expect("Location on upload status");
    let end = data.len() as u64 - 1;
    let resp = server
        .patch_chunk(&location, data[split..].to_vec(), Some((split as u64, end)))
        .await;
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "range"), Some(format!("0-{end}")));
    let location = header(&resp, "location").unwrap();
    let resp = server.put_upload(&location, &digest, Vec::new()).await;
    assert_eq!(resp.status(), 201);
    let blob = server.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(blob.status(), 200);
    assert_eq!(blob.bytes().await.unwrap(), data);
}

/// A chunk's 202 means its bytes are in the session's file: the server
/// process dying right after (SIGKILL, no cleanup) loses none of them.
#[tokio::test]
async fn acknowledged_chunk_survives_a_kill() {
    let mut server = TestServer::start().await;
    let data = random_bytes(126, 2 * 1024 * 1024 + 5);
    let digest = sha256_digest(&data);
    let split = 1024 * 1024 + 3;
    let location = server.start_upload("repo").await;
    let location = patch_first_chunk(&server, &location, &data[..split]).await;

    server.restart_after_kill().await;

    let end = data.len() as u64 - 1;
    let resp = server
        .patch_chunk(&location, data[split..].to_vec(), Some((split as u64, end)))
        .await;
    assert_eq!(
        resp.status(),
        202,
        "the session resumes where the 202 left it"
    );
    let location = header(&resp, "location").unwrap();
    let resp = server.put_upload(&location, &digest, Vec::new()).await;
    assert_eq!(resp.status(), 201);
    let blob = server.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(blob.bytes().await.unwrap(), data);
}

/// Chunks are not fsynced before their 202 (the blob is, before its 201),
/// so a power cut can leave a session's file shorter than acknowledged. The
/// file is cut short here by hand while the server is down, as a power cut
/// would. The session must then answer "unknown", to a status request as to
/// the next chunk, so the client starts over, commit nothing, and leave a
/// fresh upload of the same blob working.
#[tokio::test]
async fn session_that_lost_acknowledged_bytes_is_unknown() {
    let mut server = TestServer::start().await;
    let data = random_bytes(127, 2 * 1024 * 1024);
    let digest = sha256_digest(&data);
    let split = 1024 * 1024;
    let location = server.start_upload("repo").await;
    let uuid = location.rsplit('/').next().unwrap().to_owned();
    let location = patch_first_chunk(&server, &location, &data[..split]).await;

    server.stop().await;
    let file = server.root().join("uploads").join(&uuid);
    let cut = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    cut.set_len(split as u64 / 2).unwrap();
    drop(cut);
    server.restart_stopped().await;

    let resp = server
        .client
        .get(server.location_url(&location))
        .send()
        .await
        .expect("status after the loss");
    assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;

    // The server answers before reading this body, then closes the
    // connection: `Connection: close` keeps the client from reusing it.
    let end = data.len() as u64 - 1;
    let resp = server
        .client
        .patch(server.location_url(&location))
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("{split}-{end}"))
        .header("connection", "close")
        .body(data[split..].to_vec())
        .send()
        .await
        .expect("PATCH after the loss");
    assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let resp = server.head(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(resp.status(), 404, "nothing was committed");

    let location = server.start_upload("repo").await;
    let resp = server.put_upload(&location, &digest, data.clone()).await;
    assert_eq!(resp.status(), 201);
    let blob = server.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(blob.bytes().await.unwrap(), data);
}

#[tokio::test]
async fn pushed_manifests_survive_restart() {
    let mut server = TestServer::start().await;
    let image = server.push_image("team/app", "v1", 123).await;
    server.restart().await;
    for reference in ["v1", image.digest.as_str()] {
        let resp = server
            .get(&format!("/v2/team/app/manifests/{reference}"))
            .await;
        assert_eq!(resp.status(), 200, "GET {reference} after restart");
        assert_eq!(header(&resp, "content-type").as_deref(), Some(OCI_MANIFEST));
        assert_eq!(
            header(&resp, "docker-content-digest").as_deref(),
            Some(&*image.digest)
        );
        assert_eq!(resp.bytes().await.unwrap(), image.manifest);
    }
    let layer = server
        .get(&format!(
            "/v2/team/app/blobs/{}",
            sha256_digest(&image.layer)
        ))
        .await;
    assert_eq!(layer.status(), 200);
    assert_eq!(layer.bytes().await.unwrap(), image.layer);
}

#[tokio::test]
async fn deletions_survive_restart() {
    let mut server = TestServer::start().await;
    let image = server.push_image("repo", "v1", 124).await;
    server
        .push_manifest("repo", "v2", OCI_MANIFEST, &image.manifest)
        .await;
    assert_eq!(server.delete("/v2/repo/manifests/v1").await.status(), 202);
    server.restart().await;
    assert_eq!(server.get("/v2/repo/manifests/v1").await.status(), 404);
    assert_eq!(server.get("/v2/repo/manifests/v2").await.status(), 200);
}

#[tokio::test]
async fn cancelled_upload_stays_cancelled_after_restart() {
    let mut server = TestServer::start().await;
    let location = server.start_upload("repo").await;
    let resp = server
        .patch_chunk(&location, b"partial".to_vec(), None)
        .await;
    assert_eq!(resp.status(), 202);
    let resp = server
        .client
        .delete(server.location_url(&location))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    server.restart().await;
    let resp = server
        .client
        .get(server.location_url(&location))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
