//! Resuming remote uploads: a connection cut in the middle of a chunk, and
//! the resume logic driven directly against sessions on a real server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use artispace::cli::push::remote::{RegistryClient, RemoteTarget, Session};
use artispace::cli::push::source::{Blob, BlobSource};
use indicatif::ProgressBar;
use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::common::{header, sha256_digest, TestServer};

/// A TCP proxy to `upstream` that cuts the first connection which sends
/// more than `cut_after` bytes, in the middle of whatever it was sending.
struct CuttingProxy {
    addr: SocketAddr,
    cuts: Arc<AtomicUsize>,
}

async fn cutting_proxy(upstream: String, cut_after: usize) -> CuttingProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let armed = Arc::new(AtomicBool::new(true));
    let cuts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&cuts);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, armed, cuts) =
                (upstream.clone(), Arc::clone(&armed), Arc::clone(&counter));
            tokio::spawn(relay(client, upstream, armed, cuts, cut_after));
        }
    });
    CuttingProxy { addr, cuts }
}

async fn relay(
    client: TcpStream,
    upstream: String,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
    cut_after: usize,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let down =
        tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
    let mut sent = 0;
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match client_read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if sent + n > cut_after && armed.swap(false, Ordering::SeqCst) {
            let _ = server_write.write_all(&buffer[..cut_after - sent]).await;
            cuts.fetch_add(1, Ordering::SeqCst);
            // Dropping both halves of both sockets closes the connections.
            down.abort();
            return;
        }
        if server_write.write_all(&buffer[..n]).await.is_err() {
            break;
        }
        sent += n;
    }
    let _ = server_write.shutdown().await;
    let _ = down.await;
}

#[tokio::test]
async fn an_upload_cut_mid_chunk_resumes_where_the_registry_stands() {
    let server = TestServer::start().await;
    let proxy = cutting_proxy(server.host().to_owned(), 200 * 1024).await;
    let (_keep, work) = work_dir();
    let image = SourceImage::new(30, "linux", "amd64", &[600_000]);
    single_image_layout(&work.join("layout"), &image);
    let target = format!("http://{}/cut/app:v1", proxy.addr);

    let layout = path_str(&work.join("layout")).to_owned();
    // The proxy runs on this test's runtime: wait for the push off it.
    let out = tokio::task::spawn_blocking(move || {
        artispace(&[
            "push",
            "--json",
            "-j",
            "1",
            "--chunk-size",
            "64KiB",
            &layout,
            &target,
        ])
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1, "the proxy never cut");
    assert!(
        stderr.contains("resuming upload"),
        "no resume was logged: {stderr}"
    );
    let layer = sha256_digest(&image.layers[0]);
    let resp = server.get(&format!("/v2/cut/app/blobs/{layer}")).await;
    assert_eq!(resp.bytes().await.unwrap(), image.layers[0]);
    let resp = server.get("/v2/cut/app/manifests/v1").await;
    assert_eq!(resp.bytes().await.unwrap(), image.manifest);
}

fn file_blob(dir: &Path, content: &[u8]) -> Blob {
    let path = dir.join("blob");
    std::fs::write(&path, content).unwrap();
    Blob {
        digest: sha256_digest(content).parse().unwrap(),
        size: content.len() as u64,
        media_type: "application/octet-stream".into(),
        source: BlobSource::File {
            path: Arc::new(path),
            offset: 0,
            len: content.len() as u64,
        },
    }
}

fn remote_target(server: &TestServer, repo: &str) -> RemoteTarget {
    let base = Url::parse(&server.url("/")).unwrap();
    RemoteTarget {
        client: RegistryClient::new(base, None, 3).unwrap(),
        repo: repo.parse().unwrap(),
        mount_from: Vec::new(),
        chunk_size: 16 * 1024,
    }
}

#[tokio::test]
async fn an_upload_goes_on_from_the_range_a_session_reports() {
    let server = TestServer::start().await;
    let (_keep, work) = work_dir();
    let data = random_bytes(31, 100_000);
    let blob = file_blob(&work, &data);
    // Another client sent the first 30001 bytes (not a chunk boundary of ours).
    let location = server.start_upload("r/resume").await;
    let resp = server
        .patch_chunk(&location, data[..30_001].to_vec(), Some((0, 30_000)))
        .await;
    assert_eq!(resp.status(), 202);
    let location = header(&resp, "location").unwrap();

    let target = remote_target(&server, "r/resume");
    let url = Url::parse(&server.location_url(&location)).unwrap();
    let session = target.session_status(&url, 0).await.unwrap().unwrap();
    assert_eq!(session.offset, 30_001);
    target
        .continue_upload(&blob, session, &ProgressBar::hidden())
        .await
        .unwrap();
    let resp = server
        .get(&format!("/v2/r/resume/blobs/{}", blob.digest))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), data);
}

#[tokio::test]
async fn a_session_the_registry_forgot_starts_over() {
    let server = TestServer::start().await;
    let (_keep, work) = work_dir();
    let data = random_bytes(32, 50_000);
    let blob = file_blob(&work, &data);
    let location = server.start_upload("r/forgot").await;
    assert_eq!(server.delete(&location).await.status(), 204);

    let target = remote_target(&server, "r/forgot");
    let url = Url::parse(&server.location_url(&location)).unwrap();
    assert!(target.session_status(&url, 0).await.unwrap().is_none());
    let session = Session {
        location: url,
        offset: 0,
    };
    target
        .continue_upload(&blob, session, &ProgressBar::hidden())
        .await
        .unwrap();
    let resp = server
        .get(&format!("/v2/r/forgot/blobs/{}", blob.digest))
        .await;
    assert_eq!(resp.bytes().await.unwrap(), data);
}
