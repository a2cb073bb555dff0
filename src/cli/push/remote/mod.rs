//! Pushing to a remote registry over the V2 API: `HEAD` before upload,
//! cross-repository mounts, and chunked uploads (`PATCH` with
//! `Content-Range`) that pick up where the registry says a session stands
//! after a dropped connection.

mod client;

use std::time::Duration;

use indicatif::ProgressBar;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Body, StatusCode, Url};

pub use client::{Credentials, RegistryClient};

use super::source::{Blob, Manifest, SourceError};
use super::stream::{copy_range, hash_range};
use super::target::Target;
use super::PushError;
use crate::oci::media_types as mt;
use crate::oci::{Digest, Hasher, Reference, RepoName};

/// How long to wait for a copy to report how it ended once its request is over.
const COPY_SETTLE: Duration = Duration::from_secs(30);

pub struct RemoteTarget {
    pub client: RegistryClient,
    pub repo: RepoName,
    pub mount_from: Vec<RepoName>,
    pub chunk_size: u64,
}

/// How a chunk upload ended, when it did not succeed.
enum Interrupted {
    /// Ask the registry where the session stands and go on from there.
    Resume(String),
    /// The registry asked for (new) credentials and they were obtained:
    /// go on as after `Resume`, but this is not a failed attempt (a token
    /// may expire in the middle of a long upload).
    Challenged,
    Fatal(PushError),
}

/// A session and the number of bytes the registry holds in it.
pub struct Session {
    pub location: Url,
    pub offset: u64,
}

impl RemoteTarget {
    fn path(&self, tail: &str) -> Result<Url, PushError> {
        self.client.url(&format!("/v2/{}/{tail}", self.repo))
    }

    async fn start_session(&self) -> Result<Url, PushError> {
        let url = self.path("blobs/uploads/")?;
        let what = "starting an upload";
        let response = self
            .client
            .send(what, || self.client.http().post(url.clone()))
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(client::refusal(what, response).await);
        }
        self.location(what, &response)
    }

    fn location(&self, what: &str, response: &reqwest::Response) -> Result<Url, PushError> {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| PushError::Refused(format!("{what}: the registry sent no Location")))?;
        self.client.resolve(location)
    }

    /// Asks where session `location` stands; `None` when the registry no
    /// longer knows it. `at_least` is what it acknowledged before, which
    /// tells `0-0` (one byte) from an empty session.
    pub async fn session_status(
        &self,
        location: &Url,
        at_least: u64,
    ) -> Result<Option<Session>, PushError> {
        let what = "asking where an upload stands";
        let response = self
            .client
            .send(what, || self.client.http().get(location.clone()))
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            _ => return Err(client::refusal(what, response).await),
        }
        let offset = match range_end(&response) {
            Some(0) if at_least == 0 => 0,
            Some(last) => last + 1,
            None => 0,
        };
        let location = match response.headers().get(LOCATION) {
            Some(_) => self.location(what, &response)?,
            None => location.clone(),
        };
        Ok(Some(Session { location, offset }))
    }

    /// Sends `blob` into an open session, from where the session stands to
    /// the end, then closes it with the digest.
    pub async fn continue_upload(
        &self,
        blob: &Blob,
        mut session: Session,
        progress: &ProgressBar,
    ) -> Result<(), PushError> {
        let mut hasher = hash_range(
            blob,
            Hasher::new(blob.digest.algorithm()),
            0,
            session.offset,
        )
        .await
        .map_err(PushError::Source)?;
        let mut failures = 0;
        let mut challenges = 0;
        while session.offset < blob.size {
            let start = session.offset;
            let end = (start + self.chunk_size).min(blob.size);
            progress.set_position(start);
            match self
                .patch(
                    &session.location,
                    blob,
                    start,
                    end,
                    hasher.clone(),
                    progress,
                )
                .await
            {
                Ok((location, next)) => {
                    session = Session {
                        location,
                        offset: end,
                    };
                    hasher = next;
                    failures = 0;
                    challenges = 0;
                    continue;
                }
                Err(Interrupted::Fatal(e)) => {
                    self.cancel(&session.location).await;
                    return Err(e);
                }
                Err(Interrupted::Challenged) => {
                    challenges += 1;
                    if challenges > client::ANSWERED_CHALLENGES {
                        self.cancel(&session.location).await;
                        return Err(PushError::Refused(format!(
                            "uploading {}: the registry refused the request (401 unauthorized) \
                             {challenges} times in a row with fresh credentials",
                            blob.digest
                        )));
                    }
                }
                Err(Interrupted::Resume(why)) => {
                    failures += 1;
                    if failures > self.client.retries {
                        self.cancel(&session.location).await;
                        return Err(PushError::Unreachable(format!(
                            "uploading {}: gave up after {failures} attempts: {why}",
                            blob.digest
                        )));
                    }
                    tracing::warn!(blob = %blob.digest, offset = start, error = %why, "resuming upload");
                    client::backoff(failures).await;
                }
            }
            let resumed = match self.session_status(&session.location, start).await? {
                Some(s) if s.offset <= blob.size => s,
                // Forgotten (expired, or the registry restarted without it): start over.
                _ => Session {
                    location: self.start_session().await?,
                    offset: 0,
                },
            };
            hasher = if resumed.offset >= start {
                hash_range(blob, hasher, start, resumed.offset).await
            } else {
                hash_range(
                    blob,
                    Hasher::new(blob.digest.algorithm()),
                    0,
                    resumed.offset,
                )
                .await
            }
            .map_err(PushError::Source)?;
            session = resumed;
        }
        if blob.size == 0 && hasher.current() != blob.digest {
            return Err(PushError::Source(SourceError::Corrupt {
                digest: blob.digest.clone(),
                detail: "it is empty".into(),
            }));
        }
        progress.set_position(blob.size);
        self.finish(blob, &session.location).await
    }

    /// `PATCH` bytes `start..end`; on success, the session's next location
    /// and the hash up to `end`.
    async fn patch(
        &self,
        location: &Url,
        blob: &Blob,
        start: u64,
        end: u64,
        hasher: Hasher,
        progress: &ProgressBar,
    ) -> Result<(Url, Hasher), Interrupted> {
        let copy = copy_range(blob, start, end, hasher, progress.clone());
        let generation = self.client.generation();
        let request = self
            .client
            .authorize(self.client.http().patch(location.clone()))
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_RANGE, format!("{start}-{}", end - 1))
            .header(CONTENT_LENGTH, end - start)
            .body(Body::wrap_stream(copy.body));
        let sent = request.send().await;
        let copied = match tokio::time::timeout(COPY_SETTLE, copy.done).await {
            Ok(Ok(result)) => Some(result),
            _ => None,
        };
        // A corrupt or unreadable source ends the push whatever the registry said.
        let hasher = match copied {
            Some(Ok(hasher)) => Some(hasher),
            Some(Err(SourceError::Abandoned)) | None => None,
            Some(Err(e)) => return Err(Interrupted::Fatal(PushError::Source(e))),
        };
        let response = sent.map_err(|e| Interrupted::Resume(e.to_string()))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            self.client
                .authenticate(&response, generation)
                .await
                .map_err(Interrupted::Fatal)?;
            return Err(Interrupted::Challenged);
        }
        if client::is_transient(status)
            || status == StatusCode::NOT_FOUND
            || status == StatusCode::RANGE_NOT_SATISFIABLE
        {
            return Err(Interrupted::Resume(format!(
                "the registry answered {status}"
            )));
        }
        if !status.is_success() {
            return Err(Interrupted::Fatal(
                client::refusal(&format!("uploading {}", blob.digest), response).await,
            ));
        }
        let Some(hasher) = hasher else {
            return Err(Interrupted::Resume("the copy did not finish".into()));
        };
        if let Some(last) = range_end(&response) {
            if last + 1 != end {
                return Err(Interrupted::Resume(format!(
                    "the registry acknowledged bytes up to {last}, not {}",
                    end - 1
                )));
            }
        }
        let next = self
            .location("uploading a chunk", &response)
            .unwrap_or_else(|_| location.clone());
        Ok((next, hasher))
    }

    /// Closes the session with the blob's digest.
    async fn finish(&self, blob: &Blob, location: &Url) -> Result<(), PushError> {
        let mut url = location.clone();
        url.query_pairs_mut()
            .append_pair("digest", &blob.digest.to_string());
        let what = format!("finishing the upload of {}", blob.digest);
        let response = self
            .client
            .send(&what, || {
                self.client
                    .http()
                    .put(url.clone())
                    .header(CONTENT_LENGTH, 0)
            })
            .await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            // A retried PUT whose first try went through finds no session.
            StatusCode::NOT_FOUND if self.has_blob(blob).await? => Ok(()),
            _ => Err(client::refusal(&what, response).await),
        }
    }

    /// Best effort: a session left behind expires on the registry anyway.
    async fn cancel(&self, location: &Url) {
        let request = self
            .client
            .authorize(self.client.http().delete(location.clone()));
        if let Err(e) = request.send().await {
            tracing::debug!(error = %e, "could not cancel an upload session");
        }
    }
}

/// The last byte a session holds, from its `Range: 0-<last>` header.
fn range_end(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.trim().trim_start_matches("bytes=").split_once('-'))
        .and_then(|(_, end)| end.trim().parse::<u64>().ok())
}

impl Target for RemoteTarget {
    async fn has_blob(&self, blob: &Blob) -> Result<bool, PushError> {
        let url = self.path(&format!("blobs/{}", blob.digest))?;
        let what = format!("checking for blob {}", blob.digest);
        let response = self
            .client
            .send(&what, || self.client.http().head(url.clone()))
            .await?;
        match response.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(client::refusal(&what, response).await),
        }
    }

    async fn mount_blob(&self, blob: &Blob) -> Result<bool, PushError> {
        for from in &self.mount_from {
            let mut url = self.path("blobs/uploads/")?;
            url.query_pairs_mut()
                .append_pair("mount", &blob.digest.to_string())
                .append_pair("from", from.as_str());
            let what = format!("mounting {} from {from}", blob.digest);
            let response = self
                .client
                .send(&what, || self.client.http().post(url.clone()))
                .await?;
            match response.status() {
                StatusCode::CREATED => return Ok(true),
                // Not mountable: the registry opened a session instead.
                StatusCode::ACCEPTED => {
                    if let Ok(location) = self.location(&what, &response) {
                        self.cancel(&location).await;
                    }
                }
                _ => return Err(client::refusal(&what, response).await),
            }
        }
        Ok(false)
    }

    async fn upload_blob(&self, blob: &Blob, progress: &ProgressBar) -> Result<(), PushError> {
        let location = self.start_session().await?;
        let session = Session {
            location,
            offset: 0,
        };
        self.continue_upload(blob, session, progress).await
    }

    async fn manifest_digest(&self, reference: &Reference) -> Result<Option<Digest>, PushError> {
        let url = self.path(&format!("manifests/{reference}"))?;
        let what = format!("checking for manifest {reference}");
        let accept = [
            mt::OCI_MANIFEST,
            mt::OCI_INDEX,
            mt::DOCKER_MANIFEST,
            mt::DOCKER_MANIFEST_LIST,
        ]
        .join(", ");
        let response = self
            .client
            .send(&what, || {
                self.client.http().head(url.clone()).header(ACCEPT, &accept)
            })
            .await?;
        match response.status() {
            StatusCode::OK => Ok(response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(client::refusal(&what, response).await),
        }
    }

    async fn put_manifest(
        &self,
        reference: &Reference,
        manifest: &Manifest,
    ) -> Result<(), PushError> {
        let url = self.path(&format!("manifests/{reference}"))?;
        let what = format!("putting manifest {} as {reference}", manifest.digest);
        let response = self
            .client
            .send(&what, || {
                self.client
                    .http()
                    .put(url.clone())
                    .header(CONTENT_TYPE, &manifest.media_type)
                    .body(manifest.bytes.clone())
            })
            .await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(client::refusal(&what, response).await)
        }
    }
}
