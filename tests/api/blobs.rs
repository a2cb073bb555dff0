//! `HEAD|GET|DELETE /v2/<name>/blobs/<digest>`: headers, ranges, links per
//! repository, deletion, and a large blob round trip.

use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};

use crate::common::{
    assert_oci_error, fill_random, header, hex, random_bytes, sha256_digest, TestServer, Xorshift,
};

async fn server_with_blob(data: &[u8]) -> (TestServer, String) {
    let server = TestServer::start().await;
    let digest = server.push_blob("repo", data).await;
    (server, digest)
}

async fn get_range(server: &TestServer, digest: &str, range: &str) -> reqwest::Response {
    server
        .client
        .get(server.url(&format!("/v2/repo/blobs/{digest}")))
        .header("range", range)
        .send()
        .await
        .expect("GET with Range")
}

#[tokio::test]
async fn blob_head_has_length_digest_etag_and_accept_ranges() {
    let data = random_bytes(10, 3000);
    let (server, digest) = server_with_blob(&data).await;
    let resp = server.head(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length").as_deref(), Some("3000"));
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(&*digest)
    );
    assert_eq!(
        header(&resp, "etag").as_deref(),
        Some(&*format!("\"{digest}\""))
    );
    assert_eq!(header(&resp, "accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert!(resp.bytes().await.unwrap().is_empty(), "HEAD has no body");
}

#[tokio::test]
async fn blob_get_returns_the_exact_bytes_with_headers() {
    let data = random_bytes(11, 5000);
    let (server, digest) = server_with_blob(&data).await;
    let resp = server.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length").as_deref(), Some("5000"));
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(&*digest)
    );
    assert_eq!(
        header(&resp, "etag").as_deref(),
        Some(&*format!("\"{digest}\""))
    );
    assert_eq!(header(&resp, "accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(resp.bytes().await.unwrap(), data);
}

#[tokio::test]
async fn empty_blob_round_trips() {
    let (server, digest) = server_with_blob(b"").await;
    let resp = server.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length").as_deref(), Some("0"));
    assert!(resp.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn range_a_to_b_is_206_with_content_range() {
    let data = random_bytes(12, 100);
    let (server, digest) = server_with_blob(&data).await;
    let resp = get_range(&server, &digest, "bytes=10-19").await;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        header(&resp, "content-range").as_deref(),
        Some("bytes 10-19/100")
    );
    assert_eq!(header(&resp, "content-length").as_deref(), Some("10"));
    assert_eq!(resp.bytes().await.unwrap(), &data[10..20]);
}

#[tokio::test]
async fn range_of_one_byte_is_206() {
    let data = random_bytes(13, 100);
    let (server, digest) = server_with_blob(&data).await;
    let resp = get_range(&server, &digest, "bytes=0-0").await;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        header(&resp, "content-range").as_deref(),
        Some("bytes 0-0/100")
    );
    assert_eq!(resp.bytes().await.unwrap(), &data[..1]);
}

#[tokio::test]
async fn open_ended_range_is_206_to_the_end() {
    let data = random_bytes(14, 100);
    let (server, digest) = server_with_blob(&data).await;
    let resp = get_range(&server, &digest, "bytes=90-").await;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        header(&resp, "content-range").as_deref(),
        Some("bytes 90-99/100")
    );
    assert_eq!(header(&resp, "content-length").as_deref(), Some("10"));
    assert_eq!(resp.bytes().await.unwrap(), &data[90..]);
}

#[tokio::test]
async fn suffix_range_is_206_with_the_last_bytes() {
    let data = random_bytes(15, 100);
    let (server, digest) = server_with_blob(&data).await;
    let resp = get_range(&server, &digest, "bytes=-25").await;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        header(&resp, "content-range").as_deref(),
        Some("bytes 75-99/100")
    );
    assert_eq!(header(&resp, "content-length").as_deref(), Some("25"));
    assert_eq!(resp.bytes().await.unwrap(), &data[75..]);
}

/// RFC 9110 §14.1.2: a last position past the end means "to the end".
#[tokio::test]
async fn range_ending_past_the_blob_is_clamped_to_its_end() {
    let data = random_bytes(16, 100);
    let (server, digest) = server_with_blob(&data).await;
    let resp = get_range(&server, &digest, "bytes=50-1000").await;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        header(&resp, "content-range").as_deref(),
        Some("bytes 50-99/100")
    );
    assert_eq!(resp.bytes().await.unwrap(), &data[50..]);
}

#[tokio::test]
async fn range_starting_past_the_end_is_416_with_content_range_star() {
    let data = random_bytes(17, 100);
    let (server, digest) = server_with_blob(&data).await;
    for range in ["bytes=100-", "bytes=100-200", "bytes=5000-6000"] {
        let resp = get_range(&server, &digest, range).await;
        assert_eq!(resp.status(), 416, "Range: {range}");
        assert_eq!(
            header(&resp, "content-range").as_deref(),
            Some("bytes */100"),
            "Range: {range}"
        );
        assert_oci_error(resp, 416, "RANGE_INVALID").await;
    }
}

/// The parts of a `multipart/byteranges` body: each part's Content-Range
/// and bytes. The framing is checked strictly: a part is as long as its
/// Content-Range says, and delimiters sit exactly where RFC 2046 puts them.
fn byteranges_parts(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart/byteranges: {content_type}"));
    let delimiter = format!("--{boundary}");
    let mut rest = body
        .strip_prefix(delimiter.as_bytes())
        .expect("body starts with the first delimiter");
    let mut parts = Vec::new();
    loop {
        if rest == b"--\r\n" {
            return parts;
        }
        rest = rest.strip_prefix(b"\r\n").expect("CRLF after a delimiter");
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end of part headers");
        let headers = std::str::from_utf8(&rest[..end]).unwrap().to_owned();
        rest = &rest[end + 4..];
        assert!(
            headers.contains("Content-Type: application/octet-stream"),
            "{headers}"
        );
        let range = headers
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .expect("part has a Content-Range")
            .to_owned();
        let (first, last) = range
            .strip_prefix("bytes ")
            .and_then(|r| r.split_once('/'))
            .and_then(|(r, _)| r.split_once('-'))
            .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()))
            .expect("Content-Range: bytes A-B/SIZE");
        let len = last - first + 1;
        parts.push((range, rest[..len].to_vec()));
        rest = rest[len..]
            .strip_prefix(b"\r\n")
            .and_then(|r| r.strip_prefix(delimiter.as_bytes()))
            .expect("CRLF and the delimiter after a part");
    }
}

pub(crate) async fn assert_byteranges(
    resp: reqwest::Response,
    data: &[u8],
    expected: &[(usize, usize)],
) {
    assert_eq!(resp.status(), 206);
    let content_type = header(&resp, "content-type").unwrap();
    let length: usize = header(&resp, "content-length").unwrap().parse().unwrap();
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), length, "Content-Length is exact");
    let parts = byteranges_parts(&content_type, &body);
    let want: Vec<(String, Vec<u8>)> = expected
        .iter()
        .map(|&(a, b)| {
            (
                format!("bytes {a}-{b}/{}", data.len()),
                data[a..=b].to_vec(),
            )
        })
        .collect();
    assert_eq!(parts.len(), want.len());
    for (got, want) in parts.iter().zip(&want) {
        assert_eq!(got.0, want.0);
        assert!(got.1 == want.1, "bytes of part {}", want.0);
    }
}

#[tokio::test]
async fn several_ranges_are_multipart_byteranges_in_the_order_asked() {
    let data = random_bytes(25, 3 * 1024 * 1024 + 11);
    let (server, digest) = server_with_blob(&data).await;
    let size = data.len();
    let expected = [
        (2_000_000, 2_999_999),
        (0, 99),
        (size - 11, size - 1),
        (1_000_000, 1_000_000),
    ];
    let ask = "bytes=2000000-2999999, 0-99,-11,1000000-1000000";
    assert_byteranges(get_range(&server, &digest, ask).await, &data, &expected).await;

    // Read from the disk rather than sent from memory: the same parts.
    let hex = &digest["sha256:".len()..];
    drop_from_page_cache(&server.root().join("blobs/sha256").join(&hex[..2]).join(hex));
    assert_byteranges(get_range(&server, &digest, ask).await, &data, &expected).await;
}

#[tokio::test]
async fn unsatisfiable_ranges_among_several_are_left_out_and_all_unsatisfiable_is_416() {
    let data = random_bytes(26, 100);
    let (server, digest) = server_with_blob(&data).await;
    let resp = get_range(&server, &digest, "bytes=500-600,10-19").await;
    assert_byteranges(resp, &data, &[(10, 19)]).await;

    let resp = get_range(&server, &digest, "bytes=100-,200-300").await;
    assert_eq!(
        header(&resp, "content-range").as_deref(),
        Some("bytes */100")
    );
    assert_oci_error(resp, 416, "RANGE_INVALID").await;
}

#[tokio::test]
async fn overlapping_or_malformed_ranges_get_the_whole_blob() {
    let data = random_bytes(27, 100);
    let (server, digest) = server_with_blob(&data).await;
    // Asking for the blob more than once over, or one bad range among good ones.
    for range in [
        "bytes=0-,0-",
        "bytes=0-60,40-99",
        "bytes=0-9,x-y",
        "bytes=0-9;10-19",
    ] {
        let resp = get_range(&server, &digest, range).await;
        assert_eq!(resp.status(), 200, "Range: {range}");
        assert_eq!(header(&resp, "content-range"), None);
        assert_eq!(resp.bytes().await.unwrap(), data, "Range: {range}");
    }
}

#[tokio::test]
async fn unknown_blob_is_blob_unknown() {
    let (server, _) = server_with_blob(b"something").await;
    let digest = sha256_digest(b"never pushed");
    let path = format!("/v2/repo/blobs/{digest}");
    assert_eq!(server.head(&path).await.status(), 404);
    assert_oci_error(server.get(&path).await, 404, "BLOB_UNKNOWN").await;
}

/// A blob file cut short or removed behind the registry's back is damage:
/// a GET answers 500 with the OCI error body (never the bytes that are
/// left under the digest's name), the log says to run verify, and
/// `verify --repair` then makes the digest pushable again.
#[tokio::test]
async fn a_blob_file_damaged_behind_the_registry_is_not_served() {
    let server = TestServer::start().await;
    let cut = random_bytes(41, 300_000);
    let gone = random_bytes(42, 300_000);
    let cut_digest = server.push_blob("repo", &cut).await;
    let gone_digest = server.push_blob("repo", &gone).await;
    let file = |digest: &str| crate::admin::blob_path(server.root(), digest);
    std::fs::OpenOptions::new()
        .write(true)
        .open(file(&cut_digest))
        .unwrap()
        .set_len(1000)
        .unwrap();
    std::fs::remove_file(file(&gone_digest)).unwrap();

    for digest in [&cut_digest, &gone_digest] {
        let resp = server.get(&format!("/v2/repo/blobs/{digest}")).await;
        assert_oci_error(resp, 500, "UNKNOWN").await;
    }
    let log = server.log();
    assert!(
        log.contains("recorded with 300000 bytes but the file has 1000; run verify"),
        "{log}"
    );
    assert!(
        log.contains("recorded as present but missing; run verify"),
        "{log}"
    );

    let repaired = crate::admin::artispace(server.root(), &["verify", "--repair", "--json"]).await;
    assert_eq!(repaired.code, 1, "{}", repaired.stdout);
    for (data, digest) in [(&cut, &cut_digest), (&gone, &gone_digest)] {
        assert_eq!(&server.push_blob("repo", data).await, digest);
        let resp = server.get(&format!("/v2/repo/blobs/{digest}")).await;
        assert!(
            resp.bytes().await.unwrap() == *data,
            "{digest} pushed again"
        );
    }
}

#[tokio::test]
async fn blob_in_unknown_repository_is_blob_unknown() {
    let (server, digest) = server_with_blob(b"something").await;
    let path = format!("/v2/no/such/repo/blobs/{digest}");
    assert_eq!(server.head(&path).await.status(), 404);
    assert_oci_error(server.get(&path).await, 404, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn blob_linked_only_in_another_repository_is_blob_unknown() {
    let server = TestServer::start().await;
    let digest = server.push_blob("one", b"private to one").await;
    server.push_blob("two", b"something else").await;
    let path = format!("/v2/two/blobs/{digest}");
    assert_eq!(server.head(&path).await.status(), 404);
    assert_oci_error(server.get(&path).await, 404, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn blob_pushed_to_two_repositories_is_stored_once() {
    let server = TestServer::start().await;
    let data = random_bytes(18, 4096);
    let digest = server.push_blob("one", &data).await;
    server.push_blob("two", &data).await;
    let hex = &digest["sha256:".len()..];
    let path = server.root().join("blobs/sha256").join(&hex[..2]).join(hex);
    assert_eq!(std::fs::read(&path).expect("blob file under root"), data);
    let copies = walk_files(&server.root().join("blobs"))
        .into_iter()
        .filter(|p| std::fs::read(p).map(|b| b == data).unwrap_or(false))
        .count();
    assert_eq!(copies, 1, "the blob is stored {copies} times");
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files.extend(walk_files(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn blob_delete_is_202_and_unlinks_only_from_that_repository() {
    let server = TestServer::start().await;
    let data = random_bytes(19, 2048);
    let digest = server.push_blob("one", &data).await;
    server.push_blob("two", &data).await;
    let resp = server.delete(&format!("/v2/one/blobs/{digest}")).await;
    assert_eq!(resp.status(), 202);
    let gone = server.get(&format!("/v2/one/blobs/{digest}")).await;
    assert_oci_error(gone, 404, "BLOB_UNKNOWN").await;
    let kept = server.get(&format!("/v2/two/blobs/{digest}")).await;
    assert_eq!(kept.status(), 200);
    assert_eq!(kept.bytes().await.unwrap(), data);
}

#[tokio::test]
async fn blob_delete_of_unlinked_blob_is_blob_unknown() {
    let server = TestServer::start().await;
    let digest = server.push_blob("one", b"only in one").await;
    server.push_blob("two", b"two's own").await;
    let resp = server.delete(&format!("/v2/two/blobs/{digest}")).await;
    assert_oci_error(resp, 404, "BLOB_UNKNOWN").await;
    let resp = server.get(&format!("/v2/one/blobs/{digest}")).await;
    assert_eq!(resp.status(), 200, "a refused delete must not unlink");
}

#[tokio::test]
async fn blob_delete_when_disabled_is_405_unsupported() {
    let server = TestServer::start_with(&["--delete-enabled", "false"]).await;
    let data = b"undeletable";
    let digest = server.push_blob("repo", data).await;
    let resp = server.delete(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(header(&resp, "allow").as_deref(), Some("GET, HEAD"));
    assert_oci_error(resp, 405, "UNSUPPORTED").await;
    let resp = server.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), &data[..]);
}

#[tokio::test]
async fn manifest_digest_is_served_by_the_blob_endpoint() {
    let server = TestServer::start().await;
    let image = server.push_image("repo", "latest", 20).await;
    let resp = server
        .get(&format!("/v2/repo/blobs/{}", image.digest))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(&*image.digest)
    );
    assert_eq!(resp.bytes().await.unwrap(), image.manifest);
}

#[tokio::test]
async fn manifest_digest_on_blob_endpoint_respects_the_repository() {
    let server = TestServer::start().await;
    let image = server.push_image("one", "latest", 21).await;
    server.push_image("two", "latest", 22).await;
    let resp = server.get(&format!("/v2/two/blobs/{}", image.digest)).await;
    assert_oci_error(resp, 404, "BLOB_UNKNOWN").await;
}

const LARGE_BLOB_SIZE: usize = 64 * 1024 * 1024;
const LARGE_CHUNK_SIZE: usize = 8 * 1024 * 1024;

/// 64 MiB of pseudo-random data, pushed in 8 MiB PATCHes generated on the
/// fly and pulled back as a stream; both sides are compared by sha256 and
/// length, so no more than one chunk is ever held in memory.
#[tokio::test]
async fn blob_of_64_mib_round_trips_byte_exact() {
    let server = TestServer::start().await;
    let mut rng = Xorshift::new(64);
    let mut hasher = Sha256::new();
    let mut location = server.start_upload("big").await;
    let mut chunk = vec![0u8; LARGE_CHUNK_SIZE];
    for index in 0..LARGE_BLOB_SIZE / LARGE_CHUNK_SIZE {
        fill_random(&mut rng, &mut chunk);
        hasher.update(&chunk);
        let start = (index * LARGE_CHUNK_SIZE) as u64;
        let end = start + LARGE_CHUNK_SIZE as u64 - 1;
        let resp = server
            .patch_chunk(&location, chunk.clone(), Some((start, end)))
            .await;
        assert_eq!(resp.status(), 202, "PATCH {start}-{end}");
        assert_eq!(
            header(&resp, "range").as_deref(),
            Some(&*format!("0-{end}"))
        );
        location = header(&resp, "location").expect("Location after PATCH");
    }
    drop(chunk);
    let digest = format!("sha256:{}", hex(&hasher.finalize()));
    let resp = server.put_upload(&location, &digest, Vec::new()).await;
    assert_eq!(resp.status(), 201);

    let resp = server.get(&format!("/v2/big/blobs/{digest}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "content-length"),
        Some(LARGE_BLOB_SIZE.to_string())
    );
    let mut stream = resp.bytes_stream();
    let mut downloaded = Sha256::new();
    let mut length = 0usize;
    while let Some(piece) = stream.next().await {
        let piece = piece.expect("read blob body");
        length += piece.len();
        downloaded.update(&piece);
    }
    assert_eq!(length, LARGE_BLOB_SIZE);
    assert_eq!(format!("sha256:{}", hex(&downloaded.finalize())), digest);
}

/// A blob's pages in memory are sent from the page cache by the kernel
/// (`sendfile`, on plain HTTP); pages that are not are read on a blocking
/// thread instead of on the executor. The bytes must be the same either
/// way, whole and in ranges, on a connection kept alive throughout.
#[tokio::test]
async fn blob_in_or_out_of_the_page_cache_is_served_the_same() {
    let data = random_bytes(19, 3 * 1024 * 1024 + 11);
    let (server, digest) = server_with_blob(&data).await;
    let hex = &digest["sha256:".len()..];
    let path = server.root().join("blobs/sha256").join(&hex[..2]).join(hex);

    // Just pushed: in memory.
    for _ in 0..2 {
        let resp = server.get(&format!("/v2/repo/blobs/{digest}")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.bytes().await.unwrap(), data);
        let resp = get_range(&server, &digest, "bytes=1000000-2999999").await;
        assert_eq!(resp.status(), 206);
        assert_eq!(resp.bytes().await.unwrap(), data[1_000_000..3_000_000]);
    }

    drop_from_page_cache(&path);

    let resp = server.get(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), data);

    drop_from_page_cache(&path);
    let resp = get_range(&server, &digest, "bytes=1000000-2999999").await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap(), data[1_000_000..3_000_000]);
}

/// Asks the kernel to drop the file's (clean, fsynced) pages from memory.
fn drop_from_page_cache(path: &std::path::Path) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).expect("open the blob file");
    // SAFETY: posix_fadvise takes a descriptor and integers and touches no
    // memory of ours; `file` keeps the descriptor open for the call.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise(DONTNEED) failed");
}
