use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::json;

use super::{age_file, artispace, blob_path};
use crate::common::{
    assert_oci_error, descriptor, image_index, json_body, json_bytes, random_bytes, sha256_digest,
    Image, TestServer, OCI_INDEX, OCI_MANIFEST,
};
use crate::manifests::buildkit_cache_index;

/// gc removing everything unreferenced now: no grace, untagged manifests too.
const GC_ALL_NOW: &[&str] = &["gc", "--grace", "0s", "--delete-untagged", "--json"];

fn count_files(dir: &std::path::Path) -> usize {
    walk(dir).len()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[tokio::test]
async fn gc_dry_run_changes_nothing() {
    let server = TestServer::start().await;
    server.push_image("app", "v1", 1).await;
    let loose = server
        .push_blob("app", b"pushed but never referenced")
        .await;
    let before = count_files(&server.root().join("blobs"));

    let run = artispace(
        server.root(),
        &["gc", "--dry-run", "--grace", "0s", "--json"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["blobs"]["count"], 1);
    assert_eq!(count_files(&server.root().join("blobs")), before);
    assert_eq!(
        server
            .head(&format!("/v2/app/blobs/{loose}"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn gc_keeps_unreferenced_blobs_within_the_grace_period() {
    let server = TestServer::start().await;
    let loose = server
        .push_blob("app", b"layer pushed before its manifest")
        .await;
    let run = artispace(server.root(), &["gc", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["blobs"]["count"], 0);
    assert!(blob_path(server.root(), &loose).exists());
}

#[tokio::test]
async fn gc_removes_unreferenced_blobs_after_the_grace_period() {
    let server = TestServer::start().await;
    let image = server.push_image("app", "v1", 1).await;
    let loose = server.push_blob("app", b"never referenced").await;

    let run = artispace(server.root(), &["gc", "--grace", "0s", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["blobs"]["count"], 1);
    assert_eq!(report["blobs"]["bytes"], 16);
    assert!(!blob_path(server.root(), &loose).exists());
    assert_eq!(
        server
            .head(&format!("/v2/app/blobs/{loose}"))
            .await
            .status(),
        404
    );
    // What the manifest references stays.
    let layer = sha256_digest(&image.layer);
    assert_eq!(
        server
            .get(&format!("/v2/app/blobs/{layer}"))
            .await
            .bytes()
            .await
            .unwrap(),
        image.layer
    );
}

#[tokio::test]
async fn gc_keeps_untagged_manifests_unless_asked() {
    let server = TestServer::start().await;
    let image = server.push_image("app", "v1", 1).await;
    assert_eq!(server.delete("/v2/app/manifests/v1").await.status(), 202);

    let kept = artispace(server.root(), &["gc", "--grace", "0s", "--json"]).await;
    assert_eq!(kept.json()["manifests"]["count"], 0);
    let by_digest = format!("/v2/app/manifests/{}", image.digest);
    assert_eq!(server.get(&by_digest).await.status(), 200);

    let removed = artispace(server.root(), GC_ALL_NOW).await;
    let report = removed.json();
    assert_eq!(report["manifests"]["count"], 1);
    assert_eq!(
        report["blobs"]["count"], 2,
        "config and layer go with their manifest"
    );
    assert_eq!(server.get(&by_digest).await.status(), 404);
    assert!(!blob_path(server.root(), &sha256_digest(&image.layer)).exists());
}

/// A repository whose content is all deleted leaves the catalog at the
/// next gc (the reference registry lists such names forever); one still
/// holding something stays, and a push brings the name back.
#[tokio::test]
async fn gc_removes_repositories_left_empty_from_the_catalog() {
    let server = TestServer::start().await;
    let image = server.push_image("team/old", "v1", 1).await;
    server.push_image("team/live", "v1", 2).await;
    let by_digest = format!("/v2/team/old/manifests/{}", image.digest);
    assert_eq!(server.delete(&by_digest).await.status(), 202);
    let catalog =
        || async { json_body(server.get("/v2/_catalog").await, 200).await["repositories"].clone() };
    assert_eq!(catalog().await, json!(["team/live", "team/old"]));

    let dry = artispace(
        server.root(),
        &["gc", "--dry-run", "--grace", "0s", "--json"],
    )
    .await;
    assert_eq!(dry.json()["removed_repositories"], json!(["team/old"]));
    assert_eq!(catalog().await, json!(["team/live", "team/old"]), "dry run");

    let run = artispace(server.root(), GC_ALL_NOW).await;
    let report = run.json();
    assert_eq!(report["repositories"], 1, "{report}");
    assert_eq!(report["removed_repositories"], json!(["team/old"]));
    assert_eq!(catalog().await, json!(["team/live"]));
    assert_oci_error(
        server.get("/v2/team/old/tags/list").await,
        404,
        "NAME_UNKNOWN",
    )
    .await;
    let table = artispace(server.root(), &["gc", "--grace", "0s"]).await;
    assert!(
        table.stdout.contains("empty repositories"),
        "{}",
        table.stdout
    );

    server.push_image("team/old", "v2", 3).await;
    assert_eq!(catalog().await, json!(["team/live", "team/old"]));
}

#[tokio::test]
async fn gc_keeps_children_of_tagged_indexes_and_referrers_of_kept_subjects() {
    let server = TestServer::start().await;
    let child = server.push_image("app", &Image::new(1).digest, 1).await;
    let index = json_bytes(&image_index(vec![descriptor(
        OCI_MANIFEST,
        &child.manifest,
    )]));
    server
        .push_manifest("app", "multi", OCI_INDEX, &index)
        .await;
    // A signature-like referrer of the child, untagged.
    server.push_blob("app", b"{}").await;
    let referrer = json_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256_digest(b"{}"), "size": 2},
        "layers": [],
        "subject": descriptor(OCI_MANIFEST, &child.manifest),
    }));
    let referrer_digest = sha256_digest(&referrer);
    server
        .push_manifest("app", &referrer_digest, OCI_MANIFEST, &referrer)
        .await;

    let run = artispace(server.root(), GC_ALL_NOW).await;
    assert_eq!(run.json()["manifests"]["count"], 0, "{}", run.stdout);
    assert_eq!(
        server
            .get(&format!("/v2/app/manifests/{}", child.digest))
            .await
            .status(),
        200
    );
    assert_eq!(
        server
            .get(&format!("/v2/app/manifests/{referrer_digest}"))
            .await
            .status(),
        200
    );

    // Untag the index: index, child and referrer all become garbage.
    assert_eq!(server.delete("/v2/app/manifests/multi").await.status(), 202);
    let run = artispace(server.root(), GC_ALL_NOW).await;
    assert_eq!(run.json()["manifests"]["count"], 3, "{}", run.stdout);
    assert_eq!(
        server
            .get(&format!("/v2/app/manifests/{referrer_digest}"))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn gc_removes_orphan_files_and_expired_uploads() {
    let server = TestServer::start().await;
    let data = random_bytes(5, 4096);
    let digest = sha256_digest(&data);
    let orphan = blob_path(server.root(), &digest);
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, &data).unwrap();
    age_file(&orphan);
    let session = server.start_upload("app").await;
    server
        .patch_chunk(&session, b"half an upload".to_vec(), None)
        .await;

    let run = artispace(server.root(), &["gc", "--upload-expiry", "0s", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["orphan_files"]["count"], 1);
    assert_eq!(report["orphan_files"]["bytes"], 4096);
    assert_eq!(report["uploads"]["count"], 1);
    assert!(!orphan.exists());
    assert_eq!(
        server
            .client
            .get(server.location_url(&session))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

/// Pushes `image` under `tag`, pushing its blobs again when a concurrent
/// collection took them first (what a client does after
/// MANIFEST_BLOB_UNKNOWN).
async fn push_until_accepted(server: &TestServer, tag: &str, image: &Image) {
    for _ in 0..50 {
        server.push_blob("churn", &image.config).await;
        server.push_blob("churn", &image.layer).await;
        let resp = server
            .put_manifest("churn", tag, OCI_MANIFEST, &image.manifest)
            .await;
        if resp.status() == 201 {
            return;
        }
        assert_eq!(resp.status(), 400, "unexpected answer while gc runs");
    }
    panic!("manifest {tag} was never accepted");
}

#[tokio::test]
async fn gc_in_a_loop_beside_pushes_and_pulls_loses_nothing() {
    let server = Arc::new(TestServer::start().await);
    let done = Arc::new(AtomicBool::new(false));
    let root = server.root().to_owned();
    let collector = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut runs = 0;
            while !done.load(Ordering::Relaxed) || runs < 3 {
                let run = artispace(&root, GC_ALL_NOW).await;
                assert_eq!(run.code, 0, "gc failed: {}", run.stderr);
                runs += 1;
            }
            runs
        })
    };

    // Churn: push images (sharing layers with earlier ones by seed), untag
    // half of them so their blobs become garbage, then push them again.
    let mut kept = Vec::new();
    for round in 0..3u64 {
        for i in 0..12u64 {
            let image = Image::new(i);
            let tag = format!("r{round}-i{i}");
            push_until_accepted(&server, &tag, &image).await;
            if i % 2 == 0 {
                assert_eq!(
                    server
                        .delete(&format!("/v2/churn/manifests/{tag}"))
                        .await
                        .status(),
                    202
                );
            } else {
                kept.push((tag, image));
            }
        }
    }
    done.store(true, Ordering::Relaxed);
    let runs = collector.await.unwrap();
    assert!(runs >= 3);

    for (tag, image) in &kept {
        let manifest = server.get(&format!("/v2/churn/manifests/{tag}")).await;
        assert_eq!(manifest.status(), 200, "{tag}");
        assert_eq!(manifest.bytes().await.unwrap(), image.manifest);
        for blob in [&image.config, &image.layer] {
            let resp = server
                .get(&format!("/v2/churn/blobs/{}", sha256_digest(blob)))
                .await;
            assert_eq!(resp.status(), 200, "{tag}");
            assert_eq!(&resp.bytes().await.unwrap()[..], &blob[..], "{tag}");
        }
    }
    let verify = artispace(server.root(), &["verify", "--json"]).await;
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}

/// The blobs a BuildKit registry cache lists in its index (layers and a
/// cache config, not manifests) are kept while the index is tagged, pass
/// verification, and go with the index.
#[tokio::test]
async fn gc_keeps_the_blobs_of_a_tagged_buildkit_cache_and_removes_them_with_it() {
    let server = TestServer::start().await;
    let index = buildkit_cache_index(&server, "app", OCI_INDEX, None).await;
    let resp = server
        .put_manifest("app", "buildcache", OCI_INDEX, &index)
        .await;
    assert_eq!(resp.status(), 201);
    let entries: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let blobs: Vec<String> = entries["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["digest"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(blobs.len(), 3);

    let kept = artispace(server.root(), &["gc", "--grace", "0s", "--json"]).await;
    assert_eq!(kept.code, 0, "{}", kept.stderr);
    assert_eq!(kept.json()["blobs"]["count"], 0);
    for blob in &blobs {
        assert!(blob_path(server.root(), blob).exists(), "{blob} kept");
        // BuildKit imports the cache through the repository.
        let resp = server.get(&format!("/v2/app/blobs/{blob}")).await;
        assert_eq!(resp.status(), 200, "{blob} still served from app");
    }
    let verified = artispace(server.root(), &["verify"]).await;
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);

    assert_eq!(
        server.delete("/v2/app/manifests/buildcache").await.status(),
        202
    );
    let removed = artispace(server.root(), GC_ALL_NOW).await;
    let report = removed.json();
    assert_eq!(report["manifests"]["count"], 1);
    assert_eq!(report["blobs"]["count"], 3, "the cache's blobs go with it");
    for blob in &blobs {
        assert!(!blob_path(server.root(), blob).exists(), "{blob} removed");
    }
}

/// gc killed (SIGKILL) at different points of its run, over garbage made
/// anew each time: the store stays consistent after every kill (verify
/// clean, the tagged image whole, every garbage blob either still whole
/// or gone), and the next run finishes the job.
#[tokio::test]
async fn gc_killed_at_any_point_keeps_the_store_consistent_and_the_next_run_finishes() {
    let server = TestServer::start().await;
    let kept = server.push_image("keep", "v1", 1).await;
    let blobs_dir = server.root().join("blobs");
    let kept_files = count_files(&blobs_dir);
    let mut all_garbage = Vec::new();
    // Killed at fixed times (during start-up and the mark phase), and as
    // soon as its sweep has removed a first file (during the sweep).
    let kills = [
        Kill::After(3),
        Kill::After(10),
        Kill::OnceAFileIsGone,
        Kill::OnceAFileIsGone,
    ];
    for (round, kill) in kills.into_iter().enumerate() {
        let garbage: Vec<Vec<u8>> = (0..120u64)
            .map(|i| random_bytes(7_000 + round as u64 * 1_000 + i, 700))
            .collect();
        for blob in &garbage {
            server.push_blob("junk", blob).await;
        }
        let status = kill_gc(spawn_gc(server.root()), &blobs_dir, kill).await;
        eprintln!(
            "round {round}: gc {status}, {} blob files left",
            count_files(&blobs_dir)
        );

        // An interrupted run is the one thing verify may see: blobs it had
        // doomed and not yet removed, which the next run removes.
        all_garbage.extend(garbage);
        let garbage_digests: HashSet<String> =
            all_garbage.iter().map(|b| sha256_digest(b)).collect();
        let report = artispace(server.root(), &["verify", "--json"]).await.json();
        for problem in report["problems"].as_array().unwrap() {
            assert!(
                problem["kind"] == "interrupted_deletion"
                    && garbage_digests.contains(problem["subject"].as_str().unwrap_or_default()),
                "after the kill of round {round}: {problem}"
            );
        }
        assert_image_whole(&server, "keep", "v1", &kept).await;
        for blob in &all_garbage {
            let path = format!("/v2/junk/blobs/{}", sha256_digest(blob));
            let resp = server.get(&path).await;
            match resp.status().as_u16() {
                200 => assert!(resp.bytes().await.unwrap() == *blob, "content of {path}"),
                404 => {}
                other => panic!("{path}: {other} after the kill of round {round}"),
            }
        }
    }

    let run = artispace(server.root(), GC_ALL_NOW).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    for blob in &all_garbage {
        let path = format!("/v2/junk/blobs/{}", sha256_digest(blob));
        assert_eq!(server.head(&path).await.status(), 404, "{path}");
    }
    assert_eq!(count_files(&blobs_dir), kept_files, "garbage files left");
    assert_image_whole(&server, "keep", "v1", &kept).await;
    let verify = artispace(server.root(), &["verify", "--json"]).await;
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}

/// Starts `artispace gc` removing everything unreferenced now, quietly.
fn spawn_gc(root: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_artispace"))
        .args(GC_ALL_NOW)
        .arg("--root")
        .arg(root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start gc")
}

/// Kills `gc` (SIGKILL) when `kill` says; how it ended.
async fn kill_gc(
    mut gc: std::process::Child,
    blobs_dir: &std::path::Path,
    kill: Kill,
) -> std::process::ExitStatus {
    let files = count_files(blobs_dir);
    match kill {
        Kill::After(ms) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
        Kill::OnceAFileIsGone => {
            while count_files(blobs_dir) == files && gc.try_wait().unwrap().is_none() {
                tokio::time::sleep(std::time::Duration::from_micros(200)).await;
            }
        }
    }
    let _ = gc.kill();
    gc.wait().expect("wait for gc")
}

/// Another process holding the claim on garbage collection (the lock a
/// running `gc` holds), until dropped.
struct ClaimHolder(std::process::Child);

impl ClaimHolder {
    fn start(root: &std::path::Path) -> ClaimHolder {
        let held = root.join("claim-held");
        use std::os::unix::process::CommandExt;
        // Its own process group, so that dropping it ends flock and the
        // command holding the lock alike.
        let child = std::process::Command::new("flock")
            .process_group(0)
            .arg(root.join("artispace.gc-lock"))
            .args(["sh", "-c", "touch \"$0\"; exec sleep 60"])
            .arg(&held)
            .spawn()
            .expect("run flock (util-linux)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !held.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "flock never took the lock"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        ClaimHolder(child)
    }
}

impl Drop for ClaimHolder {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &group])
            .status();
        let _ = self.0.wait();
    }
}

fn interrupted_deletions(report: &serde_json::Value) -> usize {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "interrupted_deletion")
        .count()
}

/// A collection holds its claim as long as it runs: verify leaves the
/// blobs it is removing to it instead of calling them an interrupted run's,
/// `verify --repair` does not sweep them, and a second `gc` waits for the
/// first to end, then finishes the job.
#[tokio::test]
async fn a_running_gc_is_waited_for_and_its_deletions_are_left_to_it() {
    let server = TestServer::start().await;
    let blobs_dir = server.root().join("blobs");
    // Rows left `deleting`, as by a run killed mid-sweep (tried until a
    // kill lands before the sweep ends).
    let mut left = 0;
    for attempt in 0..10u64 {
        for i in 0..120u64 {
            server
                .push_blob("junk", &random_bytes(20_000 + attempt * 1_000 + i, 500))
                .await;
        }
        kill_gc(spawn_gc(server.root()), &blobs_dir, Kill::OnceAFileIsGone).await;
        left = interrupted_deletions(&artispace(server.root(), &["verify", "--json"]).await.json());
        if left > 0 {
            break;
        }
    }
    assert!(left > 0, "no gc was caught mid-sweep in ten tries");
    let files = count_files(&blobs_dir);

    let holder = ClaimHolder::start(server.root());
    let report = artispace(server.root(), &["verify", "--json"]).await.json();
    let summary = |r: &serde_json::Value| {
        format!(
            "gc_running {}, clean {}, {} interrupted deletions",
            r["gc_running"],
            r["clean"],
            interrupted_deletions(r)
        )
    };
    assert_eq!(report["gc_running"], true, "{}", summary(&report));
    assert_eq!(report["clean"], true, "{}", summary(&report));
    let repair = artispace(server.root(), &["verify", "--repair", "--json"]).await;
    assert_eq!(repair.code, 0, "{}", repair.stdout);
    assert_eq!(
        count_files(&blobs_dir),
        files,
        "verify --repair swept a running gc's blobs"
    );

    let mut waiting = spawn_gc(server.root());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "gc did not wait for the claim"
    );
    assert_eq!(
        count_files(&blobs_dir),
        files,
        "gc worked without the claim"
    );
    drop(holder);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = waiting.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gc still waiting after the claim was let go"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert!(status.success());
    assert_eq!(count_files(&blobs_dir), 0, "garbage left");
    let report = artispace(server.root(), &["verify", "--json"]).await.json();
    assert_eq!(report["clean"], true, "{}", summary(&report));
    assert_eq!(report["gc_running"], false, "{}", summary(&report));
}

/// When a test kills a process.
enum Kill {
    /// This many milliseconds after it started.
    After(u64),
    /// As soon as a file it removes is gone.
    OnceAFileIsGone,
}

/// The image tagged `repo:tag` is served byte for byte: manifest and blobs.
async fn assert_image_whole(server: &TestServer, repo: &str, tag: &str, image: &Image) {
    let manifest = server.get(&format!("/v2/{repo}/manifests/{tag}")).await;
    assert_eq!(manifest.status(), 200, "{repo}:{tag}");
    assert_eq!(manifest.bytes().await.unwrap(), image.manifest);
    for blob in [&image.config, &image.layer] {
        let path = format!("/v2/{repo}/blobs/{}", sha256_digest(blob));
        let resp = server.get(&path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert!(resp.bytes().await.unwrap() == *blob, "content of {path}");
    }
}
