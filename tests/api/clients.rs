//! A real client against the real server: `skopeo copy` of an OCI image
//! layout (written here, no network) into `artispace serve` and back.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::common::{
    descriptor, header, image_index, image_manifest, json_bytes, sha256_digest, TestServer,
    OCI_CONFIG, OCI_LAYER, OCI_MANIFEST,
};

/// A skopeo that is missing fails the test: the CI script installs it, and a
/// silently skipped client test would prove nothing.
pub(crate) fn skopeo() -> Command {
    match Command::new("skopeo").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`skopeo --version` failed ({}): {}; install skopeo (apt-get install skopeo), .ci/run does",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "skopeo is not installed ({e}); install it (apt-get install skopeo) to run the client test, .ci/run does"
        ),
    }
    Command::new("skopeo")
}

pub(crate) fn run(mut cmd: Command, what: &str) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A POSIX ustar archive holding one regular file.
fn tar_with_one_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let put = |header: &mut [u8; 512], offset: usize, value: &[u8]| {
        header[offset..offset + value.len()].copy_from_slice(value);
    };
    put(&mut header, 0, name.as_bytes());
    put(&mut header, 100, b"0000644\0");
    put(&mut header, 108, b"0000000\0");
    put(&mut header, 116, b"0000000\0");
    put(
        &mut header,
        124,
        format!("{:011o}\0", content.len()).as_bytes(),
    );
    put(&mut header, 136, b"14707606400\0");
    put(&mut header, 148, b"        ");
    header[156] = b'0';
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    put(&mut header, 265, b"root");
    put(&mut header, 297, b"root");
    let checksum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    put(&mut header, 148, format!("{checksum:06o}\0 ").as_bytes());

    let mut tar = header.to_vec();
    tar.extend_from_slice(content);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

/// Writes an OCI image layout with one image tagged `v1`; returns the
/// manifest bytes.
pub(crate) fn write_oci_layout(dir: &Path) -> Vec<u8> {
    let layer = tar_with_one_file("hello.txt", b"hello from artispace\n");
    let config = json_bytes(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer)]},
        "history": [{"created_by": "artispace integration test"}],
    }));
    let manifest = json_bytes(&image_manifest(
        descriptor(OCI_CONFIG, &config),
        vec![descriptor(OCI_LAYER, &layer)],
    ));
    let mut entry = descriptor(OCI_MANIFEST, &manifest);
    entry["annotations"] = json!({"org.opencontainers.image.ref.name": "v1"});
    let index = json_bytes(&image_index(vec![entry]));

    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for content in [&layer, &config, &manifest] {
        let name = &sha256_digest(content)["sha256:".len()..];
        std::fs::write(blobs.join(name), content).unwrap();
    }
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(dir.join("index.json"), index).unwrap();
    manifest
}

/// The manifest digest an OCI layout's index.json gives for tag `v1`.
pub(crate) fn layout_manifest_digest(dir: &Path) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .expect("index.json has manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "v1")
        .unwrap_or_else(|| panic!("no v1 in {index}"));
    entry["digest"].as_str().unwrap().to_owned()
}

fn read_layout_blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()
}

#[test]
fn handmade_tar_has_a_valid_header_checksum() {
    let tar = tar_with_one_file("a", b"x");
    assert_eq!(tar.len(), 512 * 4);
    let stored = std::str::from_utf8(&tar[148..154]).unwrap();
    let mut header = tar[..512].to_vec();
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    assert_eq!(u32::from_str_radix(stored, 8).unwrap(), sum);
    assert_eq!(tar[512], b'x');
}

#[tokio::test]
async fn skopeo_copies_an_oci_image_in_and_out_with_the_same_digests() {
    let server = TestServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    let pulled = work.path().join("pulled");
    let policy = work.path().join("policy.json");
    std::fs::write(
        &policy,
        br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let manifest = write_oci_layout(&source);
    let digest = sha256_digest(&manifest);
    let remote = format!("docker://{}/demo/app:v1", server.host());

    let mut push = skopeo();
    push.env("HOME", work.path())
        .arg("--policy")
        .arg(&policy)
        .args(["copy", "--preserve-digests", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", source.display()))
        .arg(&remote);
    run(push, "skopeo copy into artispace");

    let resp = server.get("/v2/demo/app/manifests/v1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-content-digest"), Some(digest.clone()));
    assert_eq!(resp.bytes().await.unwrap(), manifest);

    let mut inspect = skopeo();
    inspect
        .env("HOME", work.path())
        .arg("--policy")
        .arg(&policy)
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(&remote);
    let raw = run(inspect, "skopeo inspect --raw");
    assert_eq!(sha256_digest(&raw), digest);

    let mut pull = skopeo();
    pull.env("HOME", work.path())
        .arg("--policy")
        .arg(&policy)
        .args(["copy", "--preserve-digests", "--src-tls-verify=false"])
        .arg(&remote)
        .arg(format!("oci:{}:v1", pulled.display()));
    run(pull, "skopeo copy out of artispace");

    assert_eq!(layout_manifest_digest(&pulled), digest);
    assert_eq!(read_layout_blob(&pulled, &digest), manifest);
    let parsed: Value = serde_json::from_slice(&manifest).unwrap();
    for blob in [&parsed["config"], &parsed["layers"][0]] {
        let blob_digest = blob["digest"].as_str().unwrap();
        assert_eq!(
            read_layout_blob(&pulled, blob_digest),
            read_layout_blob(&source, blob_digest),
            "blob {blob_digest} differs after the round trip"
        );
    }
}
