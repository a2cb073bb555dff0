//! Archives as real tools write them: skopeo's docker-archive and
//! oci-archive outputs, symlinked layers, and a newer `docker save` that
//! holds an OCI layout beside `manifest.json`.

use std::process::Command;

use serde_json::{json, Value};

use super::*;
use crate::common::{json_bytes, sha256_digest};

fn skopeo_copy(work: &Path, from: String, to: String, preserve_digests: bool) {
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
        .arg("copy")
        .args(preserve_digests.then_some("--preserve-digests"))
        .args([&from, &to])
        .output()
        .expect("skopeo is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "skopeo copy {from} {to}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pushes into the store under `work`; returns the `--json` report.
fn push_to_store(source: &Path, work: &Path) -> Value {
    let root = work.join("store");
    push_json(source, "x/app:v1", &["--root", path_str(&root)])
}

#[test]
fn skopeo_docker_and_oci_archives_push_with_the_layers_of_the_layout() {
    let (_keep, work) = work_dir();
    let image = SourceImage::new(50, "linux", "amd64", &[20_000, 5_000]);
    let layout = work.join("layout");
    single_image_layout(&layout, &image);
    let layers: Vec<String> = image.layers.iter().map(|l| sha256_digest(l)).collect();
    let config = sha256_digest(&image.config);

    let docker = work.join("docker.tar");
    skopeo_copy(
        &work,
        format!("oci:{}:v1", layout.display()),
        format!("docker-archive:{}:x/app:v1", docker.display()),
        false,
    );
    let report = push_to_store(&docker, &work);
    assert_eq!(
        report["media_type"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let pushed: Vec<&str> = report["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        pushed[1..],
        layers.iter().map(String::as_str).collect::<Vec<_>>()[..]
    );

    let oci = work.join("oci.tar");
    skopeo_copy(
        &work,
        format!("oci:{}:v1", layout.display()),
        format!("oci-archive:{}:v1", oci.display()),
        true,
    );
    let report = push_to_store(&oci, &work);
    assert_eq!(report["digest"], image.digest.as_str());
    assert_eq!(report["blobs"][0]["digest"], config.as_str());
}

#[test]
fn symlinked_layers_of_a_docker_archive_are_followed() {
    let (_keep, work) = work_dir();
    let layer = layer_tar(51, 9_000);
    let config =
        json_bytes(&json!({"architecture": "arm64", "os": "linux", "rootfs": {"type": "layers"}}));
    let hex = &sha256_digest(&layer)["sha256:".len()..];
    let archive = work.join("docker.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    let put = |builder: &mut tar::Builder<std::fs::File>, name: &str, content: &[u8]| {
        let mut header = tar::Header::new_ustar();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, content).unwrap();
    };
    put(&mut builder, &format!("blobs/sha256/{hex}"), &layer);
    put(&mut builder, "config.json", &config);
    let mut link = tar::Header::new_ustar();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    link.set_mode(0o777);
    builder
        .append_link(
            &mut link,
            "legacy/layer.tar",
            format!("../blobs/sha256/{hex}"),
        )
        .unwrap();
    let listing =
        json!([{"Config": "config.json", "RepoTags": ["app:v1"], "Layers": ["legacy/layer.tar"]}]);
    put(&mut builder, "manifest.json", &json_bytes(&listing));
    builder.finish().unwrap();
    drop(builder);

    let report = push_to_store(&archive, &work);
    assert_eq!(report["blobs"][1]["digest"], sha256_digest(&layer));
    assert_eq!(report["blobs"][1]["size"], layer.len());
    // --platform reads the platform from the config.
    let out = artispace(&[
        "push",
        "--root",
        path_str(&work.join("store")),
        "--platform",
        "linux/amd64",
        path_str(&archive),
        "x/app:amd64",
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn an_archive_with_both_index_json_and_manifest_json_is_read_as_oci() {
    let (_keep, work) = work_dir();
    let image = SourceImage::new(52, "linux", "amd64", &[3_000]);
    let layout = work.join("layout");
    single_image_layout(&layout, &image);
    // What a newer `docker save` adds beside the layout.
    let listing = json!([{"Config": "nowhere.json", "RepoTags": ["app:v1"], "Layers": []}]);
    std::fs::write(layout.join("manifest.json"), json_bytes(&listing)).unwrap();
    oci_archive(&layout, &work.join("both.tar"));

    let report = push_to_store(&work.join("both.tar"), &work);
    assert_eq!(report["digest"], image.digest.as_str());
    assert!(report["source"]
        .as_str()
        .unwrap()
        .starts_with("OCI archive"));
}

#[test]
fn a_compressed_archive_is_refused_with_advice() {
    let (_keep, work) = work_dir();
    let gz = work.join("image.tar.gz");
    let mut bytes = vec![0x1f, 0x8b, 0x08, 0x00];
    bytes.extend(random_bytes(53, 100));
    std::fs::write(&gz, bytes).unwrap();
    let out = artispace(&[
        "push",
        "--root",
        path_str(&work.join("store")),
        path_str(&gz),
        "x/app:v1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gzip-compressed"), "{stderr}");
}
