//! A full disk, for real: the server's root on a small tmpfs of the test's
//! own (mounting needs root, as the Docker and containerd tests do; CI runs
//! as root). Filled by pushes, every refusal must be 507 with the OCI error
//! body, nothing refused may be visible, nothing acknowledged lost, and
//! once space is freed pushes must work again with the store clean.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;

use crate::admin::artispace;
use crate::clients::run;
use crate::common::{
    assert_oci_error, descriptor, image_manifest, json_bytes, random_bytes, sha256_digest,
    with_query, ServerConfig, TestServer, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST,
};

const DISK: &str = "24m";
/// Kept on the disk until the test frees space, as an operator would by
/// removing something else.
const BALLAST: usize = 6 << 20;
const BLOB: usize = 1 << 20;

/// A tmpfs mounted on a temporary folder, unmounted when dropped.
struct SmallDisk {
    mount_point: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let mount_point = tempfile::tempdir().unwrap();
        let mut mount = Command::new("mount");
        mount
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(mount_point.path());
        run(
            mount,
            "mounting a tmpfs (this test needs root, as CI runs it)",
        );
        SmallDisk { mount_point }
    }

    fn path(&self) -> &Path {
        self.mount_point.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("--lazy")
            .arg(self.mount_point.path())
            .status();
    }
}

/// How a push into the full disk went.
enum Pushed {
    Stored,
    Full,
}

/// Pushes `data` whole (`POST ?digest=`, announced length) or as one PATCH
/// streamed without a length (so the space cannot be reserved up front
/// and the disk fills mid-write), then a closing PUT. Sent over raw
/// sockets: the server may refuse before it has read the whole body.
async fn push(server: &TestServer, data: &[u8], streamed: bool) -> Pushed {
    let digest = sha256_digest(data);
    let octets = [("Content-Type", "application/octet-stream")];
    let resp = if streamed {
        let location = server.start_upload("fill").await;
        let resp = server
            .raw_request_streamed("PATCH", &location, &octets, data.to_vec())
            .await;
        if resp.status != 202 {
            resp
        } else {
            let location = resp.header("location").expect("Location").to_owned();
            let closing = with_query(&location, &format!("digest={digest}"));
            server.raw_request("PUT", &closing, &[], Vec::new()).await
        }
    } else {
        let path = format!("/v2/fill/blobs/uploads/?digest={digest}");
        server
            .raw_request("POST", &path, &octets, data.to_vec())
            .await
    };
    match resp.status {
        201 => Pushed::Stored,
        507 => {
            resp.assert_oci_error(507, "UNKNOWN");
            Pushed::Full
        }
        other => panic!(
            "pushing {digest}: {other} {}",
            String::from_utf8_lossy(&resp.body)
        ),
    }
}

#[tokio::test]
async fn a_full_disk_refuses_with_507_loses_nothing_and_recovers_when_freed() {
    let disk = SmallDisk::mount(DISK);
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; BALLAST]).unwrap();
    let root: PathBuf = disk.path().join("root");
    let server = TestServer::start_configured(ServerConfig {
        root_at: Some(root.clone()),
        ..ServerConfig::default()
    })
    .await;

    // Fill the disk both ways: refused pushes whose space was reserved up
    // front, and refused pushes that ran out of space mid-write.
    let mut stored = Vec::new();
    let mut refused = Vec::new();
    for (seed, streamed) in (0..64u64).map(|i| (9_000 + i, i % 2 == 1)) {
        let data = random_bytes(seed, BLOB + seed as usize);
        match push(&server, &data, streamed).await {
            Pushed::Stored => stored.push(data),
            Pushed::Full => refused.push((data, streamed)),
        }
        if refused.iter().any(|(_, s)| *s) && refused.iter().any(|(_, s)| !*s) {
            break;
        }
    }
    assert!(
        stored.len() >= 4,
        "only {} blobs fit on the disk",
        stored.len()
    );
    assert!(
        refused.iter().any(|(_, s)| *s) && refused.iter().any(|(_, s)| !*s),
        "the disk never filled both ways ({} stored, {} refused)",
        stored.len(),
        refused.len()
    );

    // Top the disk off with small blobs, then ask the metadata database
    // for room too: a tag must be stored whole (201) or refused (507).
    for seed in 0..256u64 {
        let data = random_bytes(seed, 16 * 1024);
        match push(&server, &data, false).await {
            Pushed::Stored => stored.push(data),
            Pushed::Full => {
                refused.push((data, false));
                break;
            }
        }
    }
    let config = &stored[0];
    let manifest = json_bytes(&image_manifest(
        descriptor(OCI_CONFIG, config),
        stored[1..]
            .iter()
            .map(|l| descriptor(OCI_LAYER, l))
            .collect(),
    ));
    let tagged = server
        .put_manifest("fill", "full", OCI_MANIFEST, &manifest)
        .await;
    let tag_stored = match tagged.status() {
        StatusCode::CREATED => true,
        StatusCode::INSUFFICIENT_STORAGE => {
            assert_oci_error(tagged, 507, "UNKNOWN").await;
            false
        }
        other => panic!("tagging on a full disk: {other}"),
    };
    eprintln!(
        "{} blobs stored, {} refused ({} streamed), tag stored: {tag_stored}",
        stored.len(),
        refused.len(),
        refused.iter().filter(|(_, s)| *s).count()
    );

    for (data, _) in &refused {
        let path = format!("/v2/fill/blobs/{}", sha256_digest(data));
        assert_eq!(server.head(&path).await.status(), 404, "refused {path}");
    }
    for data in &stored {
        let path = format!("/v2/fill/blobs/{}", sha256_digest(data));
        let resp = server.get(&path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert!(resp.bytes().await.unwrap() == *data, "content of {path}");
    }

    // Space freed by the operator: the refused blobs go in, whole.
    std::fs::remove_file(&ballast).unwrap();
    for (data, streamed) in &refused {
        assert!(
            matches!(push(&server, data, *streamed).await, Pushed::Stored),
            "a push after space was freed"
        );
        let path = format!("/v2/fill/blobs/{}", sha256_digest(data));
        let resp = server.get(&path).await;
        assert!(resp.bytes().await.unwrap() == *data, "content of {path}");
    }

    if !tag_stored {
        let resp = server
            .put_manifest("fill", "full", OCI_MANIFEST, &manifest)
            .await;
        assert_eq!(resp.status(), 201, "tagging after space was freed");
    }
    let resp = server.get("/v2/fill/manifests/full").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), manifest);

    let verify = artispace(&root, &["verify", "--json"]).await;
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    assert_eq!(verify.json()["clean"], true, "{}", verify.stdout);
    // The server stops (dropped first, declared last) before the disk is
    // unmounted.
}

/// A registry restarted on a disk that filled up while it was down comes up
/// and serves what it holds; pushes get 507, and gc says it needs a little
/// room, until space is freed. (The reference registry, with no database,
/// comes up; SQLite needs room to open a store unless its write-ahead log
/// files were kept.)
#[tokio::test]
async fn a_store_on_a_full_disk_opens_and_serves_what_it_holds() {
    let disk = SmallDisk::mount(DISK);
    let root: PathBuf = disk.path().join("root");
    let mut server = TestServer::start_configured(ServerConfig {
        root_at: Some(root.clone()),
        ..ServerConfig::default()
    })
    .await;
    let image = server.push_image("kept", "v1", 9_100).await;
    let garbage = random_bytes(9_102, 100_000);
    let garbage_digest = server.push_blob("kept", &garbage).await;
    server.stop().await;

    // Everything the disk has left goes to a file of the operator's.
    let filler = disk.path().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![7u8; 64 * 1024];
    while std::io::Write::write_all(&mut file, &block).is_ok() {}
    let mut byte = [7u8; 1];
    while std::io::Write::write_all(&mut file, &byte).is_ok() {
        byte[0] = byte[0].wrapping_add(1);
    }
    drop(file);

    server.restart_stopped().await;
    let resp = server.get("/v2/kept/manifests/v1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), image.manifest);
    let layer = format!("/v2/kept/blobs/{}", sha256_digest(&image.layer));
    let resp = server.get(&layer).await;
    assert!(
        resp.bytes().await.unwrap() == image.layer,
        "content of {layer}"
    );
    let data = random_bytes(9_101, 256 * 1024);
    assert!(matches!(push(&server, &data, false).await, Pushed::Full));
    // gc needs a little room too, and says so.
    let gc = artispace(&root, &["gc", "--grace", "0s"]).await;
    assert_eq!(gc.code, 2, "{}", gc.stdout);
    assert!(
        gc.stderr.contains("free some space on its disk first"),
        "{}",
        gc.stderr
    );

    std::fs::remove_file(&filler).unwrap();
    let gc = artispace(&root, &["gc", "--grace", "0s", "--json"]).await;
    assert_eq!(gc.json()["blobs"]["count"], 1, "{}", gc.stdout);
    let path = format!("/v2/kept/blobs/{garbage_digest}");
    assert_eq!(server.head(&path).await.status(), 404);
    assert!(matches!(push(&server, &data, false).await, Pushed::Stored));
}
