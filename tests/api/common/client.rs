//! Registry operations on a `TestServer`, written the way a client performs
//! them; the `push_*` helpers assert success so tests can focus on what
//! they check.

use reqwest::Response;

use super::content::{sha256_digest, Image, OCI_MANIFEST};
use super::raw_http::{raw_exchange, RawResponse};
use super::responses::{header, with_query};
use super::server::TestServer;

impl TestServer {
    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn head(&self, path: &str) -> Response {
        self.client.head(self.url(path)).send().await.expect("HEAD")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE")
    }

    /// Sends one HTTP/1.1 request over a plain socket, writing the body on
    /// one thread while reading the response on another, as curl and Go's
    /// client do. hyper's client gives up with a broken pipe when a server
    /// answers before reading the whole body (e.g. 413 on Content-Length),
    /// so tests of early answers use this instead.
    pub async fn raw_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> RawResponse {
        let length = format!("Content-Length: {}", body.len());
        self.raw_exchange(method, path, headers, &length, body)
            .await
    }

    /// Like [`Self::raw_request`], but the body goes out in chunked transfer
    /// coding, with no length announced, as from a client streaming what it
    /// has not measured.
    pub async fn raw_request_streamed(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> RawResponse {
        let mut coded = Vec::with_capacity(body.len() + body.len() / 1024 + 16);
        for piece in body.chunks(64 * 1024) {
            coded.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            coded.extend_from_slice(piece);
            coded.extend_from_slice(b"\r\n");
        }
        coded.extend_from_slice(b"0\r\n\r\n");
        self.raw_exchange(method, path, headers, "Transfer-Encoding: chunked", coded)
            .await
    }

    async fn raw_exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        framing: &str,
        body: Vec<u8>,
    ) -> RawResponse {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{framing}\r\n",
            self.host(),
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let addr = self.host().to_owned();
        tokio::task::spawn_blocking(move || raw_exchange(&addr, head.into_bytes(), body))
            .await
            .expect("raw request task")
    }

    /// `POST /v2/<repo>/blobs/uploads/`, asserting 202; returns the Location.
    pub async fn start_upload(&self, repo: &str) -> String {
        let resp = self
            .client
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/")))
            .send()
            .await
            .expect("POST upload");
        assert_eq!(resp.status(), 202, "starting an upload in {repo}");
        header(&resp, "location").expect("Location on upload start")
    }

    /// `PATCH <location>` with one chunk and an optional `Content-Range`.
    pub async fn patch_chunk(
        &self,
        location: &str,
        chunk: Vec<u8>,
        content_range: Option<(u64, u64)>,
    ) -> Response {
        let mut req = self
            .client
            .patch(self.location_url(location))
            .header("content-type", "application/octet-stream")
            .body(chunk);
        if let Some((start, end)) = content_range {
            req = req.header("content-range", format!("{start}-{end}"));
        }
        req.send().await.expect("PATCH chunk")
    }

    /// `PUT <location>?digest=<digest>` with an optional final chunk.
    pub async fn put_upload(&self, location: &str, digest: &str, last_chunk: Vec<u8>) -> Response {
        let url = with_query(&self.location_url(location), &format!("digest={digest}"));
        let mut req = self.client.put(url);
        if !last_chunk.is_empty() {
            req = req.header("content-type", "application/octet-stream");
        }
        req.body(last_chunk).send().await.expect("PUT upload")
    }

    /// Pushes a blob with a single `POST …/blobs/uploads/?digest=`, asserting
    /// 201; returns its sha256 digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256_digest(data);
        let resp = self
            .client
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .expect("POST monolithic upload");
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, 201, "monolithic push of {digest} to {repo}: {body}");
        digest
    }

    /// Pushes a blob as a session of `chunk_size` PATCHes (with
    /// `Content-Range`) and a closing PUT, asserting every status; returns its
    /// sha256 digest.
    pub async fn push_blob_chunked(&self, repo: &str, data: &[u8], chunk_size: usize) -> String {
        let digest = sha256_digest(data);
        let mut location = self.start_upload(repo).await;
        let mut offset = 0u64;
        for chunk in data.chunks(chunk_size) {
            let end = offset + chunk.len() as u64 - 1;
            let resp = self
                .patch_chunk(&location, chunk.to_vec(), Some((offset, end)))
                .await;
            assert_eq!(resp.status(), 202, "PATCH {offset}-{end}");
            assert_eq!(
                header(&resp, "range").as_deref(),
                Some(&*format!("0-{end}"))
            );
            location = header(&resp, "location").expect("Location after PATCH");
            offset = end + 1;
        }
        let resp = self.put_upload(&location, &digest, Vec::new()).await;
        assert_eq!(resp.status(), 201, "closing PUT of a chunked upload");
        digest
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with the given Content-Type.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Response {
        self.client
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("PUT manifest")
    }

    /// Pushes a manifest, asserting 201; returns its sha256 digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let resp = self.put_manifest(repo, reference, media_type, body).await;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, 201, "PUT manifest {repo}:{reference}: {text}");
        sha256_digest(body)
    }

    /// Pushes a small OCI image (a config and one layer, both derived from
    /// `seed`) and its manifest under `reference`.
    pub async fn push_image(&self, repo: &str, reference: &str, seed: u64) -> Image {
        let image = Image::new(seed);
        self.push_blob(repo, &image.config).await;
        self.push_blob(repo, &image.layer).await;
        self.push_manifest(repo, reference, OCI_MANIFEST, &image.manifest)
            .await;
        image
    }
}
