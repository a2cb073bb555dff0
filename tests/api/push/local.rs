//! `artispace push SOURCE REPO:TAG` into the local store, while `serve` runs
//! on the same root, read back through `serve`.

use serde_json::{json, Value};

use super::*;
use crate::common::{
    descriptor, header, image_index, json_bytes, sha256_digest, TestServer, DOCKER_CONFIG,
    DOCKER_MANIFEST, OCI_INDEX,
};

/// Asserts that `serve` returns exactly `content` for every blob and the
/// manifest of `image` in `repo`.
async fn assert_served(server: &TestServer, repo: &str, reference: &str, image: &SourceImage) {
    let resp = server
        .get(&format!("/v2/{repo}/manifests/{reference}"))
        .await;
    assert_eq!(resp.status(), 200, "GET manifest {repo}:{reference}");
    assert_eq!(
        header(&resp, "docker-content-digest"),
        Some(image.digest.clone())
    );
    assert_eq!(resp.bytes().await.unwrap(), image.manifest);
    for (digest, content) in image.contents() {
        let resp = server.get(&format!("/v2/{repo}/blobs/{digest}")).await;
        assert_eq!(resp.status(), 200, "GET blob {digest}");
        assert_eq!(
            resp.bytes().await.unwrap(),
            content,
            "blob {digest} differs"
        );
    }
}

fn local_push(server: &TestServer, source: &Path, target: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--root", path_str(server.root())];
    args.extend_from_slice(extra);
    push_json(source, target, &args)
}

#[tokio::test]
async fn local_push_is_served_byte_identical() {
    let server = TestServer::start().await;
    let (_keep, work) = work_dir();
    let image = SourceImage::new(1, "linux", "amd64", &[300_000, 10]);
    single_image_layout(&work.join("layout"), &image);

    let report = local_push(&server, &work.join("layout"), "john/app:v1", &[]);
    assert_eq!(report["digest"], image.digest.as_str());
    assert_eq!(statuses(&report, "blobs"), ["pushed"; 3]);
    assert_served(&server, "john/app", "v1", &image).await;
}

#[tokio::test]
async fn pushing_twice_skips_everything_and_changes_nothing() {
    let server = TestServer::start().await;
    let (_keep, work) = work_dir();
    let image = SourceImage::new(2, "linux", "amd64", &[50_000]);
    single_image_layout(&work.join("layout"), &image);

    local_push(&server, &work.join("layout"), "john/app:v1", &[]);
    let tags_before = server
        .get("/v2/john/app/tags/list")
        .await
        .text()
        .await
        .unwrap();
    let again = local_push(&server, &work.join("layout"), "john/app:v1", &[]);
    assert_eq!(statuses(&again, "blobs"), ["skipped", "skipped"]);
    assert_eq!(statuses(&again, "manifests"), ["skipped"]);
    assert_eq!(again["totals"]["bytes_pushed"], 0);
    let tags_after = server
        .get("/v2/john/app/tags/list")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(tags_before, tags_after);
    assert_served(&server, "john/app", "v1", &image).await;
}

#[tokio::test]
async fn an_oci_archive_pushes_like_its_layout() {
    let server = TestServer::start().await;
    let (_keep, work) = work_dir();
    let image = SourceImage::new(3, "linux", "amd64", &[70_000, 1_000]);
    single_image_layout(&work.join("layout"), &image);
    oci_archive(&work.join("layout"), &work.join("image.tar"));

    let report = local_push(&server, &work.join("image.tar"), "a/b:v1", &[]);
    assert_eq!(report["digest"], image.digest.as_str());
    assert!(report["source"]
        .as_str()
        .unwrap()
        .starts_with("OCI archive"));
    assert_served(&server, "a/b", "v1", &image).await;
}

#[tokio::test]
async fn a_docker_archive_becomes_a_schema2_manifest() {
    let server = TestServer::start().await;
    let (_keep, work) = work_dir();
    let image = SourceImage::new(4, "linux", "amd64", &[40_000]);
    // A gzip-compressed layer is told by its magic bytes.
    let mut gzip_layer = vec![0x1f, 0x8b, 0x08, 0x00];
    gzip_layer.extend(random_bytes(44, 5_000));
    let layers = vec![image.layers[0].clone(), gzip_layer.clone()];
    docker_archive(
        &work.join("docker.tar"),
        &[(&image.config, &layers, "app:v1")],
    );

    let report = local_push(&server, &work.join("docker.tar"), "d/app:v1", &[]);
    assert_eq!(report["media_type"], DOCKER_MANIFEST);
    let resp = server.get("/v2/d/app/manifests/v1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some(DOCKER_MANIFEST)
    );
    let manifest: Value = resp.json().await.unwrap();
    assert_eq!(manifest["config"]["mediaType"], DOCKER_CONFIG);
    assert_eq!(manifest["config"]["digest"], sha256_digest(&image.config));
    let layer_types: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(
        layer_types,
        [
            "application/vnd.docker.image.rootfs.diff.tar",
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        ]
    );
    for (layer, descriptor) in layers.iter().zip(manifest["layers"].as_array().unwrap()) {
        assert_eq!(descriptor["digest"], sha256_digest(layer));
        let digest = descriptor["digest"].as_str().unwrap();
        let resp = server.get(&format!("/v2/d/app/blobs/{digest}")).await;
        assert_eq!(resp.bytes().await.unwrap(), *layer);
    }
}

#[tokio::test]
async fn a_multi_image_docker_archive_is_pushed_whole_under_an_index() {
    let server = TestServer::start().await;
    let (_keep, work) = work_dir();
    let amd = SourceImage::new(5, "linux", "amd64", &[2_000]);
    let arm = SourceImage::new(6, "linux", "arm64", &[3_000]);
    docker_archive(
        &work.join("docker.tar"),
        &[
            (&amd.config, &amd.layers, "app:amd"),
            (&arm.config, &arm.layers, "app:arm"),
        ],
    );

    let report = local_push(&server, &work.join("docker.tar"), "d/multi:v1", &[]);
    assert_eq!(report["media_type"], OCI_INDEX);
    assert_eq!(statuses(&report, "manifests"), ["pushed"; 3]);
    let index: Value = server
        .get("/v2/d/multi/manifests/v1")
        .await
        .json()
        .await
        .unwrap();
    let platforms: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"]);

    let one = local_push(
        &server,
        &work.join("docker.tar"),
        "d/arm:v1",
        &["--platform", "linux/arm64"],
    );
    assert_eq!(one["media_type"], DOCKER_MANIFEST);
    let blobs: Vec<&str> = one["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        blobs,
        [sha256_digest(&arm.config), sha256_digest(&arm.layers[0])]
    );
}

#[tokio::test]
async fn platform_picks_one_image_out_of_an_index() {
    let server = TestServer::start().await;
    let (_keep, work) = work_dir();
    let amd = SourceImage::new(7, "linux", "amd64", &[4_000]);
    let arm = SourceImage::new(8, "linux", "arm64", &[5_000]);
    let index = multi_platform_layout(&work.join("layout"), &[amd.clone(), arm.clone()]);

    let whole = local_push(&server, &work.join("layout"), "m/app:all", &[]);
    assert_eq!(whole["digest"], sha256_digest(&index));
    assert_eq!(whole["manifests"].as_array().unwrap().len(), 3);

    let one = local_push(
        &server,
        &work.join("layout"),
        "m/app:arm",
        &["--platform", "linux/arm64"],
    );
    assert_eq!(one["digest"], arm.digest.as_str());
    assert_eq!(one["blobs"].as_array().unwrap().len(), 2);
    assert_served(&server, "m/app", "arm", &arm).await;

    let out = artispace(&[
        "push",
        "--root",
        path_str(server.root()),
        "--platform",
        "linux/s390x",
        path_str(&work.join("layout")),
        "m/app:s390x",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("linux/s390x") && stderr.contains("linux/arm64"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_corrupt_source_blob_fails_and_tags_nothing() {
    let server = TestServer::start().await;
    let (_keep, work) = work_dir();
    let image = SourceImage::new(9, "linux", "amd64", &[20_000, 30_000]);
    let layout = work.join("layout");
    single_image_layout(&layout, &image);
    // Flip one byte of the second layer: same size, wrong content.
    let bad = sha256_digest(&image.layers[1]);
    let path = layout.join("blobs/sha256").join(&bad["sha256:".len()..]);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    let out = artispace(&[
        "push",
        "--root",
        path_str(server.root()),
        path_str(&layout),
        "c/app:v1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&bad) && stderr.contains("corrupt"),
        "{stderr}"
    );
    assert_eq!(server.get("/v2/c/app/manifests/v1").await.status(), 404);
    let resp = server.get(&format!("/v2/c/app/blobs/{bad}")).await;
    assert_eq!(resp.status(), 404, "the corrupt blob was stored");
}

#[tokio::test]
async fn the_json_report_has_the_documented_shape() {
    let (_keep, work) = work_dir();
    let image = SourceImage::new(10, "linux", "amd64", &[1_000]);
    single_image_layout(&work.join("layout"), &image);
    let root = work.join("store");
    let report = push_json(
        &work.join("layout"),
        "shape/app:v1",
        &["--root", path_str(&root)],
    );
    for key in [
        "source",
        "target",
        "repository",
        "reference",
        "digest",
        "media_type",
        "size",
    ] {
        assert!(
            report[key].is_string() || report[key].is_u64(),
            "{key} in {report}"
        );
    }
    assert_eq!(report["target"], "shape/app:v1");
    assert_eq!(report["repository"], "shape/app");
    assert_eq!(report["reference"], "v1");
    assert_eq!(report["size"], image.manifest.len());
    for item in report["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["manifests"].as_array().unwrap())
    {
        let keys: Vec<&String> = item.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["digest", "media_type", "size", "status"]);
    }
    // serde_json's map is sorted by key.
    let totals: Vec<&String> = report["totals"].as_object().unwrap().keys().collect();
    assert_eq!(
        totals,
        [
            "blobs_mounted",
            "blobs_pushed",
            "blobs_skipped",
            "bytes_mounted",
            "bytes_pushed",
            "bytes_skipped",
            "manifests_pushed",
            "manifests_skipped"
        ]
    );
    assert_eq!(
        report["totals"]["bytes_pushed"],
        image.config.len() + image.layers[0].len()
    );

    // By digest: the digest must be the source's.
    let by_digest = format!("shape/app@{}", image.digest);
    let again = push_json(
        &work.join("layout"),
        &by_digest,
        &["--root", path_str(&root)],
    );
    assert_eq!(again["reference"], image.digest.as_str());
    let wrong = format!("shape/app@{}", sha256_digest(b"other"));
    let out = artispace(&[
        "push",
        "--root",
        path_str(&root),
        path_str(&work.join("layout")),
        &wrong,
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn usage_and_environment_errors_exit_2() {
    let (_keep, work) = work_dir();
    let image = SourceImage::new(11, "linux", "amd64", &[100]);
    single_image_layout(&work.join("layout"), &image);
    std::fs::create_dir_all(work.join("empty")).unwrap();
    let root = path_str(&work.join("store")).to_owned();
    let layout = path_str(&work.join("layout")).to_owned();
    let empty = path_str(&work.join("empty")).to_owned();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["push", "--root", &root, "/no/such/source", "a/b:v1"],
            "does not exist",
        ),
        (vec!["push", "--root", &root, &empty, "a/b:v1"], "neither"),
        (
            vec!["push", "--root", &root, &layout, "a/b"],
            "tag or a digest",
        ),
        (
            vec!["push", "--root", &root, &layout, "Bad/Name:v1"],
            "invalid",
        ),
        (
            vec!["push", "--root", &root, &layout, "127.0.0.1:5000/a:v1"],
            "http://",
        ),
        (
            vec![
                "push",
                "--root",
                &root,
                &layout,
                "a/b:v1",
                "--platform",
                "linux",
            ],
            "os/arch",
        ),
        (
            vec![
                "push",
                "--root",
                &root,
                &layout,
                "http://127.0.0.1:9/a:v1",
                "--username",
                "u",
            ],
            "password",
        ),
    ];
    for (args, message) in cases {
        let out = artispace(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{args:?}: expected {message:?} in {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
    }
}

#[tokio::test]
async fn a_layout_of_several_images_is_pushed_whole_under_its_index() {
    let server = TestServer::start().await;
    let (_keep, work) = work_dir();
    let one = SourceImage::new(12, "linux", "amd64", &[1_000]);
    let two = SourceImage::new(13, "linux", "amd64", &[2_000]);
    let layout = work.join("layout");
    single_image_layout(&layout, &two);
    single_image_layout(&layout, &one);
    // index.json names both images, as `skopeo copy … oci:layout:v2` leaves it.
    let index = crate::common::json_bytes(&crate::common::image_index(vec![
        crate::common::descriptor(crate::common::OCI_MANIFEST, &one.manifest),
        crate::common::descriptor(crate::common::OCI_MANIFEST, &two.manifest),
    ]));
    std::fs::write(layout.join("index.json"), &index).unwrap();

    let report = local_push(&server, &layout, "several/app:v1", &[]);
    assert_eq!(report["digest"], sha256_digest(&index));
    assert_eq!(report["media_type"], OCI_INDEX);
    assert_served(&server, "several/app", &one.digest, &one).await;
    assert_served(&server, "several/app", &two.digest, &two).await;
    let resp = server.get("/v2/several/app/manifests/v1").await;
    assert_eq!(resp.bytes().await.unwrap(), index);
}

#[tokio::test]
async fn a_buildkit_cache_layout_pushes_its_index_of_blobs() {
    // `docker buildx build --cache-to type=local,dest=DIR` writes an OCI
    // layout whose index lists the cache's layers and its cache config.
    let server = TestServer::start().await;
    let (_keep, work) = work_dir();
    let layout = work.join("cache");
    let layers = [layer_tar(41, 5_000), layer_tar(42, 7_000)];
    let cache_config = json_bytes(&json!({"layers": [], "records": []}));
    let mut entries: Vec<Value> = layers
        .iter()
        .map(|l| descriptor("application/vnd.oci.image.layer.v1.tar+gzip", l))
        .collect();
    entries.push(descriptor(
        "application/vnd.buildkit.cacheconfig.v0",
        &cache_config,
    ));
    let index = json_bytes(&image_index(entries));
    for blob in layers.iter().chain([&cache_config, &index]) {
        write_blob(&layout, blob);
    }
    let mut entry = descriptor(OCI_INDEX, &index);
    entry["annotations"] = json!({ REF_NAME: "cache" });
    write_index(&layout, vec![entry]);

    let report = local_push(&server, &layout, "app:cache", &[]);
    assert_eq!(report["digest"], sha256_digest(&index).as_str());
    assert_eq!(statuses(&report, "blobs"), ["pushed"; 3]);
    assert_eq!(statuses(&report, "manifests"), ["pushed"]);

    let resp = server.get("/v2/app/manifests/cache").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), index);
    // A cache holds no image for any platform: said so, not a parse error.
    let out = artispace(&[
        "push",
        "--root",
        path_str(server.root()),
        "--platform",
        "linux/amd64",
        path_str(&layout),
        "app:amd64",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("linux/amd64") && stderr.contains("no platform-specific images"),
        "{stderr}"
    );
    for blob in layers.iter().chain([&cache_config]) {
        let digest = sha256_digest(blob);
        let resp = server.get(&format!("/v2/app/blobs/{digest}")).await;
        assert_eq!(resp.status(), 200, "{digest}");
        assert_eq!(resp.bytes().await.unwrap(), blob.as_slice());
    }
}
