//! Clients racing each other on the same content: the same blob pushed by
//! many at once (stored once, every push 201, every repository served),
//! two chunks racing for the same place in one session (one wins, the
//! other is told where the session stands), and pushes racing deletions of
//! the same manifest (the store ends consistent whichever wins).

use futures_util::future::join_all;

use crate::admin::artispace;
use crate::common::{
    header, random_bytes, sha256_digest, with_query, Image, TestServer, OCI_MANIFEST,
};

/// Counts the files under `dir`, however deep.
fn files_under(dir: &std::path::Path) -> usize {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .count()
}

/// Pushes `data` to `repo`, whole or in 1 MiB chunks; the status of the
/// request that completes it.
async fn push(server: &TestServer, repo: &str, data: &[u8], chunked: bool) -> u16 {
    let digest = sha256_digest(data);
    if !chunked {
        let url = server.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}"));
        let resp = server.client.post(url).body(data.to_vec()).send().await;
        return resp.expect("POST").status().as_u16();
    }
    let mut location = server.start_upload(repo).await;
    let mut offset = 0;
    for chunk in data.chunks(1 << 20) {
        let end = offset + chunk.len() as u64 - 1;
        let resp = server
            .patch_chunk(&location, chunk.to_vec(), Some((offset, end)))
            .await;
        assert_eq!(resp.status(), 202, "PATCH {offset}-{end} in {repo}");
        location = header(&resp, "location").expect("Location");
        offset = end + 1;
    }
    let url = with_query(&server.location_url(&location), &format!("digest={digest}"));
    let resp = server.client.put(url).send().await.expect("PUT");
    resp.status().as_u16()
}

#[tokio::test]
async fn the_same_blob_pushed_by_sixteen_clients_at_once_is_stored_once() {
    let server = TestServer::start().await;
    let data = random_bytes(31_000, 3 * 1024 * 1024 + 17);
    let digest = sha256_digest(&data);
    let pushes = (0..16).map(|i| {
        let (server, data) = (&server, &data);
        async move { push(server, &format!("race/r{}", i % 4), data, i % 2 == 1).await }
    });
    let statuses = join_all(pushes).await;
    assert!(statuses.iter().all(|&s| s == 201), "{statuses:?}");

    for i in 0..4 {
        let resp = server.get(&format!("/v2/race/r{i}/blobs/{digest}")).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.bytes().await.unwrap() == data, "content in race/r{i}");
    }
    assert_eq!(files_under(&server.root().join("blobs")), 1, "stored once");
    assert_eq!(
        files_under(&server.root().join("uploads")),
        0,
        "uploads left"
    );
    let verify = artispace(server.root(), &["verify", "--json"]).await;
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}

#[tokio::test]
async fn two_chunks_racing_for_the_same_place_in_a_session_one_wins() {
    let server = TestServer::start().await;
    let data = random_bytes(31_001, 2 * 1024 * 1024);
    let (first, rest) = data.split_at(1024 * 1024);
    let other = random_bytes(31_002, first.len());
    for round in 0..5 {
        let location = server.start_upload("race/session").await;
        let range = format!("0-{}", first.len() - 1);
        // Raw requests: the loser is refused before its body is read,
        // which hyper's client reports as an error of its own.
        let patch = |body: Vec<u8>| {
            let headers = [
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", range.as_str()),
            ];
            let location = location.clone();
            let server = &server;
            async move { server.raw_request("PATCH", &location, &headers, body).await }
        };
        let (a, b) = tokio::join!(patch(first.to_vec()), patch(other.clone()));
        let mut statuses = [a.status, b.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [202, 416], "round {round}");
        let (winner, won) = if a.status == 202 {
            (first, &a)
        } else {
            (&other[..], &b)
        };
        let loser = if a.status == 202 { &b } else { &a };
        loser.assert_oci_error(416, "BLOB_UPLOAD_INVALID");

        // The session holds the winner's bytes: completing it with the
        // rest gives the winner's blob.
        let location = won.header("location").expect("Location").to_owned();
        let resp = server
            .patch_chunk(
                &location,
                rest.to_vec(),
                Some((first.len() as u64, data.len() as u64 - 1)),
            )
            .await;
        assert_eq!(resp.status(), 202, "round {round}");
        let location = header(&resp, "location").unwrap();
        let mut whole = winner.to_vec();
        whole.extend_from_slice(rest);
        let digest = sha256_digest(&whole);
        let resp = server.put_upload(&location, &digest, Vec::new()).await;
        assert_eq!(resp.status(), 201, "round {round}");
        let blob = server
            .get(&format!("/v2/race/session/blobs/{digest}"))
            .await;
        assert!(blob.bytes().await.unwrap() == whole, "round {round}");
    }
}

#[tokio::test]
async fn pushes_and_deletions_of_the_same_manifest_racing_leave_a_consistent_store() {
    let server = TestServer::start().await;
    let image = Image::new(31_003);
    server.push_image("race/manifest", "v1", 31_003).await;
    let digest = sha256_digest(&image.manifest);
    let by_digest_path = format!("/v2/race/manifest/manifests/{digest}");
    for round in 0..10 {
        let put = server.put_manifest("race/manifest", "v1", OCI_MANIFEST, &image.manifest);
        let delete = server.delete(&by_digest_path);
        let (put, delete) = tokio::join!(put, delete);
        assert_eq!(put.status(), 201, "round {round}");
        assert!(
            [202, 404].contains(&delete.status().as_u16()),
            "round {round}: DELETE {}",
            delete.status()
        );
        // Whichever came last decides; either way tag and manifest agree.
        let by_tag = server.get("/v2/race/manifest/manifests/v1").await.status();
        let by_digest = server.get(&by_digest_path).await.status();
        assert_eq!(by_tag, by_digest, "round {round}");
        if by_tag == 404 {
            server.push_image("race/manifest", "v1", 31_003).await;
        }
    }
    let verify = artispace(server.root(), &["verify", "--json"]).await;
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}
