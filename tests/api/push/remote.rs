//! `artispace push SOURCE http://HOST:PORT/REPO:TAG` to a real
//! `artispace serve`, pulled back with skopeo.

use std::process::Command;

use serde_json::Value;

use super::*;
use crate::common::{sha256_digest, TestServer};

fn skopeo_pull_all(work: &Path, from: &str, into: &Path) {
    let policy = work.join("policy.json");
    std::fs::write(
        &policy,
        br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let out = Command::new("skopeo")
        .env("HOME", work)
        .arg("--policy")
        .arg(&policy)
        .args([
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
        ])
        .arg(from)
        .arg(format!("oci:{}:v1", into.display()))
        .output()
        .expect("skopeo is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "skopeo copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn layout_blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(layout.join("blobs/sha256").join(&digest["sha256:".len()..]))
        .unwrap_or_else(|e| panic!("{digest} is not in {}: {e}", layout.display()))
}

#[tokio::test]
async fn a_remote_push_pulls_back_with_skopeo_with_the_same_digests() {
    let server = TestServer::start().await;
    let (_keep, work) = work_dir();
    let amd = SourceImage::new(20, "linux", "amd64", &[200_000, 3_000]);
    let arm = SourceImage::new(21, "linux", "arm64", &[150_000]);
    let index = multi_platform_layout(&work.join("layout"), &[amd.clone(), arm.clone()]);
    let target = format!("http://{}/john/multi:v1", server.host());

    // Small chunks, so every layer takes several PATCHes.
    let report = push_json(
        &work.join("layout"),
        &target,
        &["--chunk-size", "64KiB", "-j", "2"],
    );
    assert_eq!(report["digest"], sha256_digest(&index));
    assert_eq!(report["target"], target.as_str());
    assert_eq!(statuses(&report, "blobs"), ["pushed"; 5]);

    let pulled = work.join("pulled");
    skopeo_pull_all(
        &work,
        &format!("docker://{}/john/multi:v1", server.host()),
        &pulled,
    );
    let pulled_index: Value =
        serde_json::from_slice(&std::fs::read(pulled.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        pulled_index["manifests"][0]["digest"],
        sha256_digest(&index)
    );
    for image in [&amd, &arm] {
        for (digest, content) in image.contents() {
            assert_eq!(layout_blob(&pulled, &digest), content, "{digest} differs");
        }
    }

    let again = push_json(&work.join("layout"), &target, &[]);
    assert_eq!(statuses(&again, "blobs"), ["skipped"; 5]);
    assert_eq!(statuses(&again, "manifests"), ["skipped"; 3]);
}

#[tokio::test]
async fn a_docker_archive_pushes_to_a_remote_registry() {
    let server = TestServer::start().await;
    let (_keep, work) = work_dir();
    let image = SourceImage::new(22, "linux", "amd64", &[90_000]);
    docker_archive(
        &work.join("docker.tar"),
        &[(&image.config, &image.layers, "app:v1")],
    );
    let target = format!("http://{}/d/app:v1", server.host());
    let report = push_json(&work.join("docker.tar"), &target, &[]);
    let digest = report["digest"].as_str().unwrap();
    let resp = server.get(&format!("/v2/d/app/manifests/{digest}")).await;
    assert_eq!(resp.status(), 200);
    let layer = sha256_digest(&image.layers[0]);
    let resp = server.get(&format!("/v2/d/app/blobs/{layer}")).await;
    assert_eq!(resp.bytes().await.unwrap(), image.layers[0]);
}

#[tokio::test]
async fn mount_from_links_blobs_held_by_another_repository() {
    let server = TestServer::start().await;
    let (_keep, work) = work_dir();
    let image = SourceImage::new(23, "linux", "amd64", &[10_000]);
    single_image_layout(&work.join("layout"), &image);
    let first = format!("http://{}/team/base:v1", server.host());
    push_json(&work.join("layout"), &first, &[]);

    let second = format!("http://{}/team/app:v1", server.host());
    let report = push_json(
        &work.join("layout"),
        &second,
        &["--mount-from", "team/base"],
    );
    assert_eq!(statuses(&report, "blobs"), ["mounted", "mounted"]);
    assert_eq!(report["totals"]["bytes_pushed"], 0);
    let layer = sha256_digest(&image.layers[0]);
    let resp = server.get(&format!("/v2/team/app/blobs/{layer}")).await;
    assert_eq!(resp.bytes().await.unwrap(), image.layers[0]);
}

#[test]
fn an_unreachable_registry_exits_2() {
    let (_keep, work) = work_dir();
    let image = SourceImage::new(24, "linux", "amd64", &[100]);
    single_image_layout(&work.join("layout"), &image);
    // Port 1 on loopback: nothing listens there.
    let out = artispace(&[
        "push",
        "--retries",
        "0",
        path_str(&work.join("layout")),
        "http://127.0.0.1:1/a/b:v1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_corrupt_blob_is_not_delivered_to_a_remote_registry() {
    let server = TestServer::start().await;
    let (_keep, work) = work_dir();
    let image = SourceImage::new(25, "linux", "amd64", &[100_000]);
    let layout = work.join("layout");
    single_image_layout(&layout, &image);
    let bad = sha256_digest(&image.layers[0]);
    let path = layout.join("blobs/sha256").join(&bad["sha256:".len()..]);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    let target = format!("http://{}/c/app:v1", server.host());
    let out = artispace(&["push", "--chunk-size", "16KiB", path_str(&layout), &target]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&bad) && stderr.contains("corrupt"),
        "{stderr}"
    );
    assert_eq!(server.get("/v2/c/app/manifests/v1").await.status(), 404);
    assert_eq!(
        server
            .head(&format!("/v2/c/app/blobs/{bad}"))
            .await
            .status(),
        404
    );
}
