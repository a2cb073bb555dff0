//! Copying a blob out of its source: read on a blocking thread in pieces,
//! hashed as it goes, and checked against the digest the source claims
//! before the last piece leaves, so a corrupt blob is never delivered whole.

use std::io::Read;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use indicatif::ProgressBar;
use tokio::sync::{mpsc, oneshot};

use super::source::{Blob, SourceError};
use crate::oci::Hasher;

/// Size of the pieces a blob is read and sent in.
const PIECE: usize = 256 * 1024;
/// Pieces read ahead of the consumer.
const READ_AHEAD: usize = 4;

pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// One range of a blob being copied: the bytes, and how the copy ended (the
/// hash of everything up to the end of the range, or why it stopped).
pub struct RangeCopy {
    pub body: BodyStream,
    pub done: oneshot::Receiver<Result<Hasher, SourceError>>,
}

/// Streams bytes `start..end` of `blob`. `hasher` must hold the hash of
/// bytes `0..start`. When the range reaches the end of the blob, the digest
/// is checked before the last piece is sent; on a mismatch the stream fails
/// instead and `done` names the corrupt blob.
pub fn copy_range(
    blob: &Blob,
    start: u64,
    end: u64,
    hasher: Hasher,
    progress: ProgressBar,
) -> RangeCopy {
    let (sender, receiver) = mpsc::channel(READ_AHEAD);
    let (done_tx, done_rx) = oneshot::channel();
    let blob = blob.clone();
    tokio::task::spawn_blocking(move || {
        let result = read_into(&blob, start, end, hasher, &sender, &progress);
        if let Err(e) = &result {
            // Fail the body, so the receiving side never takes it as complete.
            let _ = sender.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
        let _ = done_tx.send(result);
    });
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    RangeCopy {
        body: Box::pin(body),
        done: done_rx,
    }
}

fn read_into(
    blob: &Blob,
    start: u64,
    end: u64,
    mut hasher: Hasher,
    sender: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    progress: &ProgressBar,
) -> Result<Hasher, SourceError> {
    let io = |e| SourceError::io(blob.source.path(), e);
    let mut reader = blob.source.open_at(start).map_err(io)?;
    let mut position = start;
    while position < end {
        let want = (end - position).min(PIECE as u64) as usize;
        let piece = read_piece(&mut reader, want).map_err(io)?;
        if piece.is_empty() {
            return Err(SourceError::Corrupt {
                digest: blob.digest.clone(),
                detail: format!("it ends after {position} of {} bytes", blob.size),
            });
        }
        hasher.update(&piece);
        position += piece.len() as u64;
        if position == blob.size {
            verify(blob, &hasher)?;
        }
        let len = piece.len() as u64;
        if sender.blocking_send(Ok(Bytes::from(piece))).is_err() {
            return Err(SourceError::Abandoned);
        }
        progress.inc(len);
    }
    if start == end && end == blob.size {
        verify(blob, &hasher)?;
    }
    Ok(hasher)
}

fn verify(blob: &Blob, hasher: &Hasher) -> Result<(), SourceError> {
    let actual = hasher.current();
    if actual == blob.digest {
        Ok(())
    } else {
        Err(SourceError::Corrupt {
            digest: blob.digest.clone(),
            detail: format!("its bytes hash to {actual}"),
        })
    }
}

/// Reads up to `want` bytes, fewer only at the end of the content.
fn read_piece(reader: &mut dyn Read, want: usize) -> std::io::Result<Vec<u8>> {
    let mut piece = vec![0u8; want];
    let mut filled = 0;
    while filled < want {
        match reader.read(&mut piece[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    piece.truncate(filled);
    Ok(piece)
}

/// Hashes bytes `from..to` of `blob` onto `hasher` (which holds `0..from`),
/// to pick up an upload where a registry says it stands.
pub async fn hash_range(
    blob: &Blob,
    hasher: Hasher,
    from: u64,
    to: u64,
) -> Result<Hasher, SourceError> {
    let blob = blob.clone();
    let task = tokio::task::spawn_blocking(move || {
        let mut hasher = hasher;
        let io = |e| SourceError::io(blob.source.path(), e);
        let mut reader = blob.source.open_at(from).map_err(io)?.take(to - from);
        let mut position = from;
        loop {
            let piece = read_piece(&mut reader, PIECE).map_err(io)?;
            if piece.is_empty() {
                break;
            }
            position += piece.len() as u64;
            hasher.update(&piece);
        }
        if position != to {
            return Err(SourceError::Corrupt {
                digest: blob.digest.clone(),
                detail: format!("it ends after {position} of {} bytes", blob.size),
            });
        }
        Ok(hasher)
    });
    task.await
        .map_err(|e| SourceError::Invalid(format!("hashing task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::cli::push::source::BlobSource;
    use crate::oci::{Algorithm, Digest};

    fn blob(content: &'static [u8], digest: Digest) -> Blob {
        Blob {
            digest,
            size: content.len() as u64,
            media_type: "x/y".into(),
            source: BlobSource::Memory(Bytes::from_static(content)),
        }
    }

    async fn drain(copy: RangeCopy) -> (Vec<u8>, bool, Result<Hasher, SourceError>) {
        let mut body = copy.body;
        let mut bytes = Vec::new();
        let mut failed = false;
        while let Some(item) = body.next().await {
            match item {
                Ok(b) => bytes.extend_from_slice(&b),
                Err(_) => failed = true,
            }
        }
        (bytes, failed, copy.done.await.unwrap())
    }

    #[tokio::test]
    async fn ranges_chain_into_the_whole_digest() {
        let content = b"hello, registry";
        let b = blob(content, Digest::sha256_of(content));
        let first = copy_range(
            &b,
            0,
            5,
            Hasher::new(Algorithm::Sha256),
            ProgressBar::hidden(),
        );
        let (bytes, failed, hasher) = drain(first).await;
        assert_eq!((bytes.as_slice(), failed), (&content[..5], false));
        let second = copy_range(&b, 5, b.size, hasher.unwrap(), ProgressBar::hidden());
        let (bytes, failed, hasher) = drain(second).await;
        assert_eq!((bytes.as_slice(), failed), (&content[5..], false));
        assert_eq!(hasher.unwrap().finish(), b.digest);
    }

    #[tokio::test]
    async fn a_corrupt_blob_fails_before_its_last_piece() {
        let b = blob(b"tampered", Digest::sha256_of(b"original"));
        let copy = copy_range(
            &b,
            0,
            b.size,
            Hasher::new(Algorithm::Sha256),
            ProgressBar::hidden(),
        );
        let (bytes, failed, result) = drain(copy).await;
        assert!(bytes.is_empty() && failed);
        assert!(matches!(result, Err(SourceError::Corrupt { .. })));
    }

    #[tokio::test]
    async fn hashing_a_range_catches_up_with_a_registry() {
        let content = b"0123456789";
        let b = blob(content, Digest::sha256_of(content));
        let start = Hasher::new(Algorithm::Sha256);
        let hasher = hash_range(&b, start, 0, 4).await.unwrap();
        let mut expected = Hasher::new(Algorithm::Sha256);
        expected.update(b"0123");
        assert_eq!(hasher.current(), expected.current());
    }
}
