//! `/v2/<name>/blobs/uploads/`: sessions, monolithic and chunked uploads,
//! cross-repository mounts, digest checks, cancellation and expiry.

use std::time::Duration;

use crate::common::{
    assert_oci_error, header, random_bytes, sha256_digest, with_query, TestServer,
};

async fn blob_status(server: &TestServer, repo: &str, digest: &str) -> u16 {
    server
        .head(&format!("/v2/{repo}/blobs/{digest}"))
        .await
        .status()
        .as_u16()
}

async fn session_range(server: &TestServer, location: &str) -> String {
    let resp = server
        .client
        .get(server.location_url(location))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "GET upload session");
    header(&resp, "range").expect("Range on upload status")
}

fn upload_uuid(location: &str) -> String {
    let path = location.split('?').next().unwrap();
    path.rsplit('/').next().unwrap().to_owned()
}

// --- starting a session ---------------------------------------------------

#[tokio::test]
async fn upload_start_is_202_with_location_uuid_and_range() {
    let server = TestServer::start().await;
    let resp = server
        .client
        .post(server.url("/v2/library/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let uuid = header(&resp, "docker-upload-uuid").expect("Docker-Upload-UUID");
    assert!(!uuid.is_empty());
    assert_eq!(
        header(&resp, "location"),
        Some(format!("/v2/library/app/blobs/uploads/{uuid}"))
    );
    assert_eq!(header(&resp, "range").as_deref(), Some("0-0"));
}

#[tokio::test]
async fn each_upload_start_opens_a_new_session() {
    let server = TestServer::start().await;
    let first = server.start_upload("repo").await;
    let second = server.start_upload("repo").await;
    assert_ne!(first, second);
}

#[tokio::test]
async fn monolithic_post_with_digest_is_201() {
    let server = TestServer::start().await;
    let data = random_bytes(30, 777);
    let digest = sha256_digest(&data);
    let resp = server
        .client
        .post(server.url(&format!("/v2/repo/blobs/uploads/?digest={digest}")))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(
        header(&resp, "location"),
        Some(format!("/v2/repo/blobs/{digest}"))
    );
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(&*digest)
    );
    let blob = server.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(blob.status(), 200);
    assert_eq!(blob.bytes().await.unwrap(), data);
}

#[tokio::test]
async fn monolithic_post_with_wrong_digest_is_digest_invalid_and_not_visible() {
    let server = TestServer::start().await;
    let claimed = sha256_digest(b"what the client claims");
    let resp = server
        .client
        .post(server.url(&format!("/v2/repo/blobs/uploads/?digest={claimed}")))
        .header("content-type", "application/octet-stream")
        .body(b"what the client sends".to_vec())
        .send()
        .await
        .unwrap();
    assert_oci_error(resp, 400, "DIGEST_INVALID").await;
    assert_eq!(blob_status(&server, "repo", &claimed).await, 404);
    let sent = sha256_digest(b"what the client sends");
    assert_eq!(blob_status(&server, "repo", &sent).await, 404);
}

#[tokio::test]
async fn pushing_an_existing_blob_again_is_201() {
    let server = TestServer::start().await;
    let digest = server.push_blob("repo", b"twice").await;
    assert_eq!(server.push_blob("repo", b"twice").await, digest);
    assert_eq!(blob_status(&server, "repo", &digest).await, 200);
}

// --- cross-repository mount ----------------------------------------------

#[tokio::test]
async fn mount_from_repository_holding_the_blob_is_201() {
    let server = TestServer::start().await;
    let data = random_bytes(31, 1500);
    let digest = server.push_blob("source/repo", &data).await;
    let resp = server
        .client
        .post(server.url(&format!(
            "/v2/target/repo/blobs/uploads/?mount={digest}&from=source/repo"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(
        header(&resp, "location"),
        Some(format!("/v2/target/repo/blobs/{digest}"))
    );
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(&*digest)
    );
    let blob = server.get(&format!("/v2/target/repo/blobs/{digest}")).await;
    assert_eq!(blob.status(), 200);
    assert_eq!(blob.bytes().await.unwrap(), data);
}

/// The blob exists in the registry, but not in `from`: no reading across
/// repositories by guessing a digest.
#[tokio::test]
async fn mount_from_repository_without_the_blob_falls_back_to_a_202_session() {
    let server = TestServer::start().await;
    let data = random_bytes(32, 1500);
    let digest = server.push_blob("holder", &data).await;
    server.push_blob("other", b"other's blob").await;
    let resp = server
        .client
        .post(server.url(&format!(
            "/v2/target/blobs/uploads/?mount={digest}&from=other"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let uuid = header(&resp, "docker-upload-uuid").expect("Docker-Upload-UUID");
    let location = header(&resp, "location").expect("Location");
    assert_eq!(location, format!("/v2/target/blobs/uploads/{uuid}"));
    assert_eq!(header(&resp, "range").as_deref(), Some("0-0"));
    assert_eq!(blob_status(&server, "target", &digest).await, 404);

    // The fallback is a real session: the client pushes the bytes itself.
    let resp = server.put_upload(&location, &digest, data.clone()).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(blob_status(&server, "target", &digest).await, 200);
}

#[tokio::test]
async fn mount_from_unknown_repository_falls_back_to_a_202_session() {
    let server = TestServer::start().await;
    let digest = server.push_blob("holder", b"mount me").await;
    let resp = server
        .client
        .post(server.url(&format!(
            "/v2/target/blobs/uploads/?mount={digest}&from=no/such/repo"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert!(header(&resp, "docker-upload-uuid").is_some());
    assert_eq!(blob_status(&server, "target", &digest).await, 404);
}

#[tokio::test]
async fn mount_of_unknown_blob_falls_back_to_a_202_session() {
    let server = TestServer::start().await;
    server.push_blob("source", b"something").await;
    let digest = sha256_digest(b"never pushed");
    let resp = server
        .client
        .post(server.url(&format!(
            "/v2/target/blobs/uploads/?mount={digest}&from=source"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert!(header(&resp, "location").is_some());
}

// --- chunks -----------------------------------------------------------------

#[tokio::test]
async fn patch_without_content_range_appends_and_reports_range() {
    let server = TestServer::start().await;
    let location = server.start_upload("repo").await;
    let uuid = upload_uuid(&location);
    let resp = server.patch_chunk(&location, b"hello".to_vec(), None).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "range").as_deref(), Some("0-4"));
    assert_eq!(header(&resp, "docker-upload-uuid"), Some(uuid.clone()));
    let location = header(&resp, "location").expect("Location after PATCH");
    assert_eq!(upload_uuid(&location), uuid);
    assert!(location.starts_with(&format!("/v2/repo/blobs/uploads/{uuid}")));
    let resp = server
        .patch_chunk(&location, b" world".to_vec(), None)
        .await;
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "range").as_deref(), Some("0-10"));
}

#[tokio::test]
async fn patch_with_content_range_appends_and_reports_range() {
    let server = TestServer::start().await;
    let location = server.start_upload("repo").await;
    let resp = server
        .patch_chunk(&location, b"01234".to_vec(), Some((0, 4)))
        .await;
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "range").as_deref(), Some("0-4"));
    let location = header(&resp, "location").unwrap();
    let resp = server
        .patch_chunk(&location, b"56789".to_vec(), Some((5, 9)))
        .await;
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "range").as_deref(), Some("0-9"));
}

#[tokio::test]
async fn chunk_out_of_order_is_416() {
    let server = TestServer::start().await;
    let location = server.start_upload("repo").await;
    let resp = server
        .patch_chunk(&location, b"01234".to_vec(), Some((0, 4)))
        .await;
    assert_eq!(resp.status(), 202);
    let resp = server
        .patch_chunk(&location, b"abcde".to_vec(), Some((10, 14)))
        .await;
    assert_oci_error(resp, 416, "BLOB_UPLOAD_INVALID").await;
}

#[tokio::test]
async fn chunk_out_of_order_leaves_the_session_unchanged() {
    let server = TestServer::start().await;
    let location = server.start_upload("repo").await;
    let resp = server
        .patch_chunk(&location, b"01234".to_vec(), Some((0, 4)))
        .await;
    assert_eq!(resp.status(), 202);
    let resp = server
        .patch_chunk(&location, b"abcde".to_vec(), Some((10, 14)))
        .await;
    assert_eq!(resp.status(), 416);
    assert_eq!(session_range(&server, &location).await, "0-4");
    // The session goes on from where it was.
    let resp = server
        .patch_chunk(&location, b"56789".to_vec(), Some((5, 9)))
        .await;
    assert_eq!(resp.status(), 202);
    let digest = sha256_digest(b"0123456789");
    let resp = server.put_upload(&location, &digest, Vec::new()).await;
    assert_eq!(resp.status(), 201);
    let blob = server.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(blob.bytes().await.unwrap(), &b"0123456789"[..]);
}

#[tokio::test]
async fn chunk_overlapping_received_bytes_is_416() {
    let server = TestServer::start().await;
    let location = server.start_upload("repo").await;
    let resp = server
        .patch_chunk(&location, b"01234".to_vec(), Some((0, 4)))
        .await;
    assert_eq!(resp.status(), 202);
    let resp = server
        .patch_chunk(&location, b"34567".to_vec(), Some((3, 7)))
        .await;
    assert_oci_error(resp, 416, "BLOB_UPLOAD_INVALID").await;
    assert_eq!(session_range(&server, &location).await, "0-4");
}

#[tokio::test]
async fn first_chunk_not_starting_at_zero_is_416() {
    let server = TestServer::start().await;
    let location = server.start_upload("repo").await;
    let resp = server
        .patch_chunk(&location, b"01234".to_vec(), Some((1, 5)))
        .await;
    assert_oci_error(resp, 416, "BLOB_UPLOAD_INVALID").await;
    assert_eq!(session_range(&server, &location).await, "0-0");
}

#[tokio::test]
async fn chunk_longer_than_its_content_range_is_size_invalid() {
    let server = TestServer::start().await;
    let location = server.start_upload("repo").await;
    let resp = server
        .patch_chunk(&location, b"0123456789".to_vec(), Some((0, 4)))
        .await;
    assert_oci_error(resp, 400, "SIZE_INVALID").await;
}

#[tokio::test]
async fn chunk_shorter_than_its_content_range_is_size_invalid() {
    let server = TestServer::start().await;
    let location = server.start_upload("repo").await;
    let resp = server
        .patch_chunk(&location, b"01234".to_vec(), Some((0, 9)))
        .await;
    assert_oci_error(resp, 400, "SIZE_INVALID").await;
}

// --- status -----------------------------------------------------------------

#[tokio::test]
async fn upload_status_is_204_with_range() {
    let server = TestServer::start().await;
    let location = server.start_upload("repo").await;
    let uuid = upload_uuid(&location);
    let resp = server
        .client
        .get(server.location_url(&location))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(header(&resp, "range").as_deref(), Some("0-0"));
    assert_eq!(header(&resp, "docker-upload-uuid"), Some(uuid.clone()));
    assert!(header(&resp, "location")
        .expect("Location on upload status")
        .starts_with(&format!("/v2/repo/blobs/uploads/{uuid}")));

    let resp = server
        .patch_chunk(&location, random_bytes(33, 1000), None)
        .await;
    assert_eq!(resp.status(), 202);
    assert_eq!(session_range(&server, &location).await, "0-999");
}

// --- completing -----------------------------------------------------------

#[tokio::test]
async fn put_with_final_chunk_is_201_and_completes_the_blob() {
    let server = TestServer::start().await;
    let data = random_bytes(34, 3000);
    let digest = sha256_digest(&data);
    let location = server.start_upload("repo").await;
    let resp = server
        .patch_chunk(&location, data[..2000].to_vec(), None)
        .await;
    assert_eq!(resp.status(), 202);
    let location = header(&resp, "location").unwrap();
    let resp = server
        .put_upload(&location, &digest, data[2000..].to_vec())
        .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(
        header(&resp, "location"),
        Some(format!("/v2/repo/blobs/{digest}"))
    );
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(&*digest)
    );
    let blob = server.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(blob.status(), 200);
    assert_eq!(blob.bytes().await.unwrap(), data);
}

#[tokio::test]
async fn put_with_whole_body_after_post_is_201() {
    let server = TestServer::start().await;
    let data = random_bytes(35, 4000);
    let digest = sha256_digest(&data);
    let location = server.start_upload("repo").await;
    let resp = server.put_upload(&location, &digest, data.clone()).await;
    assert_eq!(resp.status(), 201);
    let blob = server.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(blob.bytes().await.unwrap(), data);
}

#[tokio::test]
async fn chunked_upload_completes_with_an_empty_put() {
    let server = TestServer::start().await;
    let data = random_bytes(36, 10_000);
    let digest = server.push_blob_chunked("repo", &data, 3000).await;
    let blob = server.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(blob.status(), 200);
    assert_eq!(blob.bytes().await.unwrap(), data);
}

#[tokio::test]
async fn final_chunk_out_of_order_is_416() {
    let server = TestServer::start().await;
    let location = server.start_upload("repo").await;
    let resp = server.patch_chunk(&location, b"01234".to_vec(), None).await;
    assert_eq!(resp.status(), 202);
    let digest = sha256_digest(b"01234abcde");
    let url = with_query(&server.location_url(&location), &format!("digest={digest}"));
    let resp = server
        .client
        .put(url)
        .header("content-type", "application/octet-stream")
        .header("content-range", "7-11")
        .body(b"abcde".to_vec())
        .send()
        .await
        .unwrap();
    assert_oci_error(resp, 416, "BLOB_UPLOAD_INVALID").await;
    assert_eq!(session_range(&server, &location).await, "0-4");
    assert_eq!(blob_status(&server, "repo", &digest).await, 404);
}

#[tokio::test]
async fn put_digest_mismatch_is_digest_invalid() {
    let server = TestServer::start().await;
    let location = server.start_upload("repo").await;
    let resp = server.patch_chunk(&location, b"01234".to_vec(), None).await;
    assert_eq!(resp.status(), 202);
    let wrong = sha256_digest(b"something else entirely");
    let resp = server
        .put_upload(&location, &wrong, b"56789".to_vec())
        .await;
    assert_oci_error(resp, 400, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn put_digest_mismatch_makes_no_blob_visible() {
    let server = TestServer::start().await;
    let location = server.start_upload("repo").await;
    let resp = server.patch_chunk(&location, b"01234".to_vec(), None).await;
    assert_eq!(resp.status(), 202);
    let wrong = sha256_digest(b"something else entirely");
    let resp = server
        .put_upload(&location, &wrong, b"56789".to_vec())
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(blob_status(&server, "repo", &wrong).await, 404);
    let actual = sha256_digest(b"0123456789");
    assert_eq!(blob_status(&server, "repo", &actual).await, 404);
}

#[tokio::test]
async fn put_digest_mismatch_leaves_the_session_at_its_old_size() {
    let server = TestServer::start().await;
    let location = server.start_upload("repo").await;
    let resp = server.patch_chunk(&location, b"01234".to_vec(), None).await;
    assert_eq!(resp.status(), 202);
    let wrong = sha256_digest(b"something else entirely");
    let resp = server
        .put_upload(&location, &wrong, b"56789".to_vec())
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(session_range(&server, &location).await, "0-4");
    // The client can retry the last chunk with the right digest.
    let right = sha256_digest(b"0123456789");
    let resp = server
        .put_upload(&location, &right, b"56789".to_vec())
        .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(blob_status(&server, "repo", &right).await, 200);
}

#[tokio::test]
async fn completed_upload_session_is_gone() {
    let server = TestServer::start().await;
    let location = server.start_upload("repo").await;
    let digest = sha256_digest(b"done");
    let resp = server
        .put_upload(&location, &digest, b"done".to_vec())
        .await;
    assert_eq!(resp.status(), 201);
    let resp = server
        .client
        .get(server.location_url(&location))
        .send()
        .await
        .unwrap();
    assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
}

// --- cancelling and unknown sessions -------------------------------------

#[tokio::test]
async fn cancelled_upload_is_204_then_unknown() {
    let server = TestServer::start().await;
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
    let resp = server
        .client
        .get(server.location_url(&location))
        .send()
        .await
        .unwrap();
    assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let resp = server.patch_chunk(&location, b"more".to_vec(), None).await;
    assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let resp = server
        .client
        .delete(server.location_url(&location))
        .send()
        .await
        .unwrap();
    assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn unknown_upload_session_is_blob_upload_unknown() {
    let server = TestServer::start().await;
    server.start_upload("repo").await;
    let path = format!("/v2/repo/blobs/uploads/{}", uuid::Uuid::new_v4());
    let digest = sha256_digest(b"x");
    let client = &server.client;
    let requests = [
        client.get(server.url(&path)),
        client.patch(server.url(&path)).body(b"x".to_vec()),
        client
            .put(server.url(&format!("{path}?digest={digest}")))
            .body(b"x".to_vec()),
        client.delete(server.url(&path)),
    ];
    for request in requests {
        let resp = request.send().await.unwrap();
        assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    }
}

#[tokio::test]
async fn malformed_upload_session_id_is_blob_upload_unknown() {
    let server = TestServer::start().await;
    server.start_upload("repo").await;
    for id in ["not-a-uuid", "0", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"] {
        let resp = server.get(&format!("/v2/repo/blobs/uploads/{id}")).await;
        assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    }
}

#[tokio::test]
async fn upload_session_used_under_another_repository_is_unknown() {
    let server = TestServer::start().await;
    let location = server.start_upload("one").await;
    let resp = server.patch_chunk(&location, b"01234".to_vec(), None).await;
    assert_eq!(resp.status(), 202);
    server.start_upload("two").await;
    let uuid = upload_uuid(&location);
    let foreign = format!("/v2/two/blobs/uploads/{uuid}");
    let resp = server.get(&foreign).await;
    assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let resp = server.patch_chunk(&foreign, b"56789".to_vec(), None).await;
    assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let digest = sha256_digest(b"01234");
    let resp = server.put_upload(&foreign, &digest, Vec::new()).await;
    assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    assert_eq!(blob_status(&server, "two", &digest).await, 404);
    // The session in its own repository is untouched.
    assert_eq!(session_range(&server, &location).await, "0-4");
}

#[tokio::test]
async fn upload_session_expires_after_upload_expiry() {
    let server = TestServer::start_with(&["--upload-expiry", "1s"]).await;
    let location = server.start_upload("repo").await;
    let resp = server.patch_chunk(&location, b"stale".to_vec(), None).await;
    assert_eq!(resp.status(), 202);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let resp = server
        .client
        .get(server.location_url(&location))
        .send()
        .await
        .unwrap();
    assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let resp = server.patch_chunk(&location, b"more".to_vec(), None).await;
    assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
}

/// A chunk announced larger than the disk's free space is refused with 507
/// before its body is read (the store reserves announced space up front),
/// and the session still works for a chunk that fits.
#[tokio::test]
async fn chunk_larger_than_the_free_disk_space_is_507_before_its_body() {
    let server = TestServer::start().await;
    let free = free_bytes(server.root());
    let location = server.start_upload("repo").await;

    // One piece of the announced body, then nothing: only an answer that
    // does not wait for the body can arrive.
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(1);
    tx.send(bytes::Bytes::from(vec![0u8; 64 * 1024]))
        .await
        .unwrap();
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    });
    let announced = free + 64 * 1024 * 1024 * 1024;
    let resp = tokio::time::timeout(
        Duration::from_secs(30),
        server
            .client
            .patch(server.location_url(&location))
            .header("content-type", "application/octet-stream")
            .header("content-length", announced.to_string())
            .header("content-range", format!("0-{}", announced - 1))
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    )
    .await
    .expect("the server answers without waiting for the body")
    .unwrap();
    assert_oci_error(resp, 507, "UNKNOWN").await;
    drop(tx);

    assert_eq!(session_range(&server, &location).await, "0-0");
    let data = random_bytes(128, 1000);
    let resp = server
        .put_upload(&location, &sha256_digest(&data), data.clone())
        .await;
    assert_eq!(resp.status(), 201);
}

/// Free bytes of the file system holding `path`, as `df` reports them.
fn free_bytes(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .expect("run df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df prints the free bytes")
}
