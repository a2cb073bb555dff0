//! `artispace push`: sources written here by hand (OCI layouts, OCI
//! archives, Docker archives), pushed with the real binary into a local
//! store and into a real `artispace serve`, then read back.

mod archives;
mod auth;
mod local;
mod remote;
mod resume;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use crate::common::{
    descriptor, image_index, image_manifest, json_bytes, random_bytes, sha256_digest, OCI_CONFIG,
    OCI_MANIFEST,
};

pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One image of a source: its config, layers and manifest bytes.
#[derive(Clone)]
pub struct SourceImage {
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
    pub manifest: Vec<u8>,
    pub digest: String,
    pub platform: (String, String),
}

impl SourceImage {
    /// An OCI image for `os/arch` whose layers are real tars of
    /// `layer_sizes` bytes of data each, all derived from `seed`.
    pub fn new(seed: u64, os: &str, arch: &str, layer_sizes: &[usize]) -> SourceImage {
        let layers: Vec<Vec<u8>> = layer_sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| layer_tar(seed * 100 + i as u64, size))
            .collect();
        let config = json_bytes(&json!({
            "architecture": arch,
            "os": os,
            "config": {"Labels": {"seed": seed.to_string()}},
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| sha256_digest(l)).collect::<Vec<_>>(),
            },
        }));
        let manifest = json_bytes(&image_manifest(
            descriptor(OCI_CONFIG, &config),
            layers
                .iter()
                .map(|l| descriptor(OCI_LAYER_TAR, l))
                .collect(),
        ));
        SourceImage {
            digest: sha256_digest(&manifest),
            config,
            layers,
            manifest,
            platform: (os.to_owned(), arch.to_owned()),
        }
    }

    /// Every blob and manifest of the image, by digest.
    pub fn contents(&self) -> Vec<(String, Vec<u8>)> {
        let mut all = vec![(sha256_digest(&self.config), self.config.clone())];
        all.extend(self.layers.iter().map(|l| (sha256_digest(l), l.clone())));
        all.push((self.digest.clone(), self.manifest.clone()));
        all
    }

    fn index_entry(&self) -> Value {
        let mut entry = descriptor(OCI_MANIFEST, &self.manifest);
        entry["platform"] = json!({"os": self.platform.0, "architecture": self.platform.1});
        entry
    }
}

/// A tar holding one file of pseudo-random data.
pub fn layer_tar(seed: u64, size: usize) -> Vec<u8> {
    let data = random_bytes(seed, size);
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    builder
        .append_data(&mut header, format!("file-{seed}"), data.as_slice())
        .unwrap();
    builder.into_inner().unwrap()
}

pub fn write_blob(layout: &Path, content: &[u8]) {
    let digest = sha256_digest(content);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&digest["sha256:".len()..]), content).unwrap();
}

fn write_index(layout: &Path, entries: Vec<Value>) {
    std::fs::create_dir_all(layout).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(layout.join("index.json"), json_bytes(&image_index(entries))).unwrap();
}

/// An OCI layout holding one image, tagged `v1`.
pub fn single_image_layout(layout: &Path, image: &SourceImage) {
    for (_, content) in image.contents() {
        write_blob(layout, &content);
    }
    let mut entry = descriptor(OCI_MANIFEST, &image.manifest);
    entry["annotations"] = json!({ REF_NAME: "v1" });
    write_index(layout, vec![entry]);
}

/// An OCI layout holding a multi-platform index (tagged `v1`) of `images`;
/// returns the index bytes.
pub fn multi_platform_layout(layout: &Path, images: &[SourceImage]) -> Vec<u8> {
    for image in images {
        for (_, content) in image.contents() {
            write_blob(layout, &content);
        }
    }
    let index = json_bytes(&image_index(
        images.iter().map(SourceImage::index_entry).collect(),
    ));
    write_blob(layout, &index);
    let mut entry = descriptor(crate::common::OCI_INDEX, &index);
    entry["annotations"] = json!({ REF_NAME: "v1" });
    write_index(layout, vec![entry]);
    index
}

/// The OCI archive of a layout: a tar of its files.
pub fn oci_archive(layout: &Path, archive: &Path) {
    let mut builder = tar::Builder::new(std::fs::File::create(archive).unwrap());
    builder.append_dir_all(".", layout).unwrap();
    builder.finish().unwrap();
}

/// A Docker archive as `docker save` writes it: `manifest.json`, the
/// config as `<hex>.json` and each layer as `<n>/layer.tar`.
/// An image of a Docker archive: its config, its layers and its tag.
pub type ArchiveImage<'a> = (&'a [u8], &'a [Vec<u8>], &'a str);

pub fn docker_archive(archive: &Path, images: &[ArchiveImage]) {
    let mut builder = tar::Builder::new(std::fs::File::create(archive).unwrap());
    let mut listing = Vec::new();
    for (i, (config, layers, tag)) in images.iter().enumerate() {
        let config_name = format!("{}.json", &sha256_digest(config)["sha256:".len()..]);
        append(&mut builder, &config_name, config);
        let mut names = Vec::new();
        for (j, layer) in layers.iter().enumerate() {
            let name = format!("layer{i}-{j}/layer.tar");
            append(&mut builder, &name, layer);
            names.push(name);
        }
        listing.push(json!({"Config": config_name, "RepoTags": [tag], "Layers": names}));
    }
    append(
        &mut builder,
        "manifest.json",
        &json_bytes(&Value::Array(listing)),
    );
    builder.finish().unwrap();
}

fn append<W: std::io::Write>(builder: &mut tar::Builder<W>, name: &str, content: &[u8]) {
    let mut header = tar::Header::new_ustar();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    builder.append_data(&mut header, name, content).unwrap();
}

/// Runs `artispace ARGS` with no `ARTISPACE_*` from the test's environment
/// and an empty stdin.
pub fn artispace(args: &[&str]) -> Output {
    artispace_with(args, &[], None)
}

pub fn artispace_with(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_artispace"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ARTISPACE_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args).envs(env.iter().copied());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = match stdin {
        None => cmd.stdin(Stdio::null()).output().unwrap(),
        Some(text) => {
            use std::io::Write;
            let mut child = cmd.stdin(Stdio::piped()).spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        }
    };
    out
}

/// Runs a push that must succeed; returns its `--json` report.
pub fn push_json(source: &Path, target: &str, extra: &[&str]) -> Value {
    let mut args = vec!["push", "--json", path_str(source), target];
    args.extend_from_slice(extra);
    let out = artispace(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "push {target} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "push --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// The status of every blob (or manifest) in a report, sorted.
pub fn statuses(report: &Value, kind: &str) -> Vec<String> {
    let mut all: Vec<String> = report[kind]
        .as_array()
        .unwrap_or_else(|| panic!("report has no {kind}: {report}"))
        .iter()
        .map(|item| item["status"].as_str().unwrap().to_owned())
        .collect();
    all.sort();
    all
}

pub fn work_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}
