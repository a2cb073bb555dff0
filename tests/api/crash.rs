//! Crashes in the middle of work: the server is killed (SIGKILL, no
//! cleanup) while several clients push blobs (whole and in chunks), push
//! manifests by tag and delete manifests, then started again on the same
//! root. Everything the server acknowledged must be there, exactly, and
//! every deletion it acknowledged must hold; nothing it did not
//! acknowledge may be visible half-written, nor spoil the same blob pushed
//! again; `artispace verify` must find the store clean.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::json;

use crate::admin::artispace;
use crate::common::{
    descriptor, header, image_manifest, json_bytes, random_bytes, sha256_digest, with_query,
    TestServer, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST,
};

/// How long clients go on working before each kill, once they have got
/// enough done in the round: different lengths, so the kills land at
/// different points of the requests.
const KILL_AFTER_MS: [u64; 4] = [0, 130, 45, 210];
/// Manifests and deletions acknowledged in a round before its kill, so
/// that a slow machine tests as much as a fast one: with three clients,
/// seven manifests mean one client is past its first deletion.
const ROUND_MANIFESTS: usize = 7;
const WRITERS: u64 = 3;
const CHUNK: usize = 256 * 1024;

/// What the clients sent, and what the server acknowledged of it.
#[derive(Default)]
struct Ledger {
    /// Every blob a client began to push, acknowledged or not.
    attempted_blobs: Vec<(String, Vec<u8>)>,
    /// Blobs answered 201: (repository, content).
    blobs: Vec<(String, Vec<u8>)>,
    /// Manifests answered 201: (repository, tag, content).
    manifests: Vec<(String, String, Vec<u8>)>,
    /// Manifests whose DELETE was sent, answered or not: (repository, tag).
    attempted_deletions: Vec<(String, String)>,
    /// Manifests whose DELETE was answered 202: (repository, tag, digest).
    deleted: Vec<(String, String, String)>,
}

/// The server went away mid-request (it was killed): the client stops. An
/// answer a working registry must not give fails the test instead.
#[derive(Debug)]
struct ServerGone;

/// A client pushing images to one repository until the server goes away.
struct Writer {
    client: Client,
    base: String,
    repo: String,
    ledger: Arc<Mutex<Ledger>>,
}

impl Writer {
    fn record(&self, update: impl FnOnce(&mut Ledger)) {
        update(&mut self.ledger.lock().unwrap());
    }

    /// Sends a request; a transport error means the server is gone.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ServerGone> {
        request.send().await.map_err(|_| ServerGone)
    }

    fn expect(&self, what: &str, resp: &reqwest::Response, status: StatusCode) {
        assert_eq!(resp.status(), status, "{what} in {}", self.repo);
    }

    /// Pushes `data` whole (`POST ?digest=`) or in chunks; records it once
    /// answered 201.
    async fn push_blob(&self, data: Vec<u8>, chunked: bool) -> Result<(), ServerGone> {
        let digest = sha256_digest(&data);
        self.record(|l| l.attempted_blobs.push((self.repo.clone(), data.clone())));
        let uploads = format!("{}/v2/{}/blobs/uploads/", self.base, self.repo);
        let resp = if chunked {
            let resp = self.send(self.client.post(&uploads)).await?;
            self.expect("starting an upload", &resp, StatusCode::ACCEPTED);
            let mut location = header(&resp, "location").expect("Location");
            let mut offset = 0;
            for chunk in data.chunks(CHUNK) {
                let end = offset + chunk.len() - 1;
                let patch = self
                    .client
                    .patch(format!("{}{location}", self.base))
                    .header("content-range", format!("{offset}-{end}"))
                    .header("content-type", "application/octet-stream")
                    .body(chunk.to_vec());
                let resp = self.send(patch).await?;
                self.expect("a PATCH", &resp, StatusCode::ACCEPTED);
                location = header(&resp, "location").expect("Location");
                offset = end + 1;
            }
            let url = with_query(
                &format!("{}{location}", self.base),
                &format!("digest={digest}"),
            );
            self.send(self.client.put(url)).await?
        } else {
            let url = with_query(&uploads, &format!("digest={digest}"));
            let post = self
                .client
                .post(url)
                .header("content-type", "application/octet-stream")
                .body(data.clone());
            self.send(post).await?
        };
        self.expect("completing a blob", &resp, StatusCode::CREATED);
        self.record(|l| l.blobs.push((self.repo.clone(), data)));
        Ok(())
    }

    async fn push_manifest(&self, tag: &str, manifest: Vec<u8>) -> Result<(), ServerGone> {
        let url = format!("{}/v2/{}/manifests/{tag}", self.base, self.repo);
        let put = self
            .client
            .put(url)
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone());
        let resp = self.send(put).await?;
        self.expect("a manifest PUT", &resp, StatusCode::CREATED);
        self.record(|l| {
            l.manifests
                .push((self.repo.clone(), tag.to_owned(), manifest))
        });
        Ok(())
    }

    async fn delete_manifest(&self, tag: &str, digest: &str) -> Result<(), ServerGone> {
        let url = format!("{}/v2/{}/manifests/{digest}", self.base, self.repo);
        self.record(|l| {
            l.attempted_deletions
                .push((self.repo.clone(), tag.to_owned()))
        });
        let resp = self.send(self.client.delete(url)).await?;
        self.expect("a manifest DELETE", &resp, StatusCode::ACCEPTED);
        self.record(|l| {
            l.deleted
                .push((self.repo.clone(), tag.to_owned(), digest.to_owned()))
        });
        Ok(())
    }

    /// Pushes images (a layer of up to 3 MiB, whole or chunked, a config, a
    /// manifest by tag), deleting every third one again, until the server
    /// goes away.
    async fn run(self, seed: u64) -> Result<(), ServerGone> {
        let mut previous: Option<(String, String)> = None;
        for image in 0u64.. {
            let seed = seed * 10_000 + image;
            let size = usize::try_from(seed.wrapping_mul(2_654_435_761) % (3 << 20)).unwrap();
            let layer = random_bytes(seed, size);
            let config = json_bytes(&json!({"architecture": "amd64", "os": "linux", "seed": seed}));
            self.push_blob(layer.clone(), image % 2 == 1).await?;
            self.push_blob(config.clone(), false).await?;
            let manifest = json_bytes(&image_manifest(
                descriptor(OCI_CONFIG, &config),
                vec![descriptor(OCI_LAYER, &layer)],
            ));
            let tag = format!("image-{seed}");
            self.push_manifest(&tag, manifest.clone()).await?;
            if image % 3 == 2 {
                if let Some((tag, digest)) = previous.take() {
                    self.delete_manifest(&tag, &digest).await?;
                }
            }
            previous = Some((tag, sha256_digest(&manifest)));
        }
        Ok(())
    }
}

#[tokio::test]
async fn nothing_acknowledged_is_lost_to_kills_and_nothing_half_written_shows() {
    let mut server = TestServer::start().await;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    for (round, pause) in KILL_AFTER_MS.into_iter().enumerate() {
        let round = round as u64;
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let writer = Writer {
                    client: Client::new(),
                    base: server.url(""),
                    repo: format!("crash/writer-{w}"),
                    ledger: Arc::clone(&ledger),
                };
                tokio::spawn(writer.run(round * WRITERS + w + 1))
            })
            .collect();
        let (manifests, deletions) = {
            let ledger = ledger.lock().unwrap();
            (ledger.manifests.len(), ledger.deleted.len())
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let done = {
                let ledger = ledger.lock().unwrap();
                ledger.manifests.len() >= manifests + ROUND_MANIFESTS
                    && ledger.deleted.len() > deletions
            };
            if done {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the clients got too little done in round {round}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(pause)).await;
        server.restart_after_kill().await;
        for writer in writers {
            let stopped = tokio::time::timeout(Duration::from_secs(30), writer)
                .await
                .expect("a client noticed the kill")
                .expect("client task");
            assert!(matches!(stopped, Err(ServerGone)));
        }
    }

    // Every client has stopped: the ledger is final.
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    eprintln!(
        "acknowledged: {} of {} blobs, {} manifests, {} deletions",
        ledger.blobs.len(),
        ledger.attempted_blobs.len(),
        ledger.manifests.len(),
        ledger.deleted.len()
    );
    assert!(
        ledger.blobs.len() >= 8 && !ledger.manifests.is_empty() && !ledger.deleted.is_empty(),
        "the clients got too little done to test anything: {} blobs, {} manifests, {} deletions",
        ledger.blobs.len(),
        ledger.manifests.len(),
        ledger.deleted.len()
    );

    for (repo, data) in &ledger.blobs {
        let path = format!("/v2/{repo}/blobs/{}", sha256_digest(data));
        let resp = server.get(&path).await;
        assert_eq!(resp.status(), 200, "acknowledged blob {path}");
        assert!(resp.bytes().await.unwrap() == *data, "content of {path}");
    }
    // A blob whose push was cut off may have been stored before the kill
    // (then it is whole) or not at all; pushed again, it is whole, whatever
    // the cut-off push left behind.
    let mut absent = Vec::new();
    for (repo, data) in &ledger.attempted_blobs {
        let path = format!("/v2/{repo}/blobs/{}", sha256_digest(data));
        let resp = server.get(&path).await;
        match resp.status() {
            StatusCode::OK => assert!(resp.bytes().await.unwrap() == *data, "content of {path}"),
            StatusCode::NOT_FOUND => absent.push((repo, data)),
            other => panic!("{path}: {other}"),
        }
    }
    assert!(!absent.is_empty(), "no push was cut off by a kill");
    for (repo, data) in absent {
        let digest = server.push_blob(repo, data).await;
        let resp = server.get(&format!("/v2/{repo}/blobs/{digest}")).await;
        assert!(
            resp.bytes().await.unwrap() == *data,
            "{digest} pushed again"
        );
    }
    let deleted =
        |repo: &str, tag: &str| ledger.deleted.iter().any(|(r, t, _)| r == repo && t == tag);
    let deletion_cut_off = |repo: &str, tag: &str| {
        !deleted(repo, tag)
            && ledger
                .attempted_deletions
                .iter()
                .any(|(r, t)| r == repo && t == tag)
    };
    for (repo, tag, manifest) in &ledger.manifests {
        let path = format!("/v2/{repo}/manifests/{tag}");
        let resp = server.get(&path).await;
        let status = resp.status();
        if deleted(repo, tag) {
            assert_eq!(status, 404, "deleted {path}");
        } else if deletion_cut_off(repo, tag) && status == 404 {
            eprintln!("{path}: its DELETE was cut off by a kill after taking effect");
        } else {
            assert_eq!(status, 200, "acknowledged {path}");
            assert_eq!(resp.bytes().await.unwrap(), *manifest, "content of {path}");
        }
    }
    for (repo, _, digest) in &ledger.deleted {
        let path = format!("/v2/{repo}/manifests/{digest}");
        assert_eq!(server.get(&path).await.status(), 404, "deleted {path}");
    }

    server.stop().await;
    let verify = artispace(server.root(), &["verify", "--json"]).await;
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    assert_eq!(verify.json()["clean"], true, "{}", verify.stdout);
}
