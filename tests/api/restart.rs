//! Graceful shutdown, and state that must survive a stop and a start on the
//! same root: upload sessions in progress, manifests, tags and deletions.

use crate::common::{header, random_bytes, sha256_digest, TestServer, OCI_MANIFEST};

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

#[tokio::test]
async fn upload_session_resumes_after_restart() {
    let mut server = TestServer::start().await;
    let data = random_bytes(122, 3 * 1024 * 1024 + 17);
    let digest = sha256_digest(&data);
    let split = 2 * 1024 * 1024;
    let location = server.start_upload("repo").await;
    let resp = server
        .patch_chunk(
            &location,
            data[..split].to_vec(),
            Some((0, split as u64 - 1)),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let location = header(&resp, "location").expect("Location after PATCH");

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
