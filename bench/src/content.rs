//! Random, incompressible content for blobs, generated once up front.
//!
//! Owns the 64 MiB base buffer every large blob is cut from and the expected
//! digests. A blob of `size` bytes is the base buffer repeated (cycled) for
//! `size - SUFFIX_LEN` bytes, followed by a 32-byte suffix derived from the
//! blob's id, so every blob has its own digest. Because the varying part is at
//! the end, the hash state of the common part is computed once per size and
//! cloned: expected digests for a gigabyte of blobs cost one pass, not one per
//! blob. Bodies are streamed as zero-copy slices of the base buffer; this module
//! must never materialise a whole blob in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::stream::{self, Stream};
use sha2::{Digest, Sha256};

/// Size of the shared random buffer every large blob is cut from.
pub const BASE_LEN: usize = 64 << 20;
/// Bytes at the end of each blob that make it unique.
pub const SUFFIX_LEN: usize = 32;
/// Size of the pieces a body is streamed in.
const STREAM_PIECE: usize = 1 << 20;

/// xoshiro256** seeded through splitmix64: fast, good enough to defeat any
/// compression or deduplication, and reproducible from a seed.
pub struct Prng([u64; 4]);

impl Prng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Prng([next(), next(), next(), next()])
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.fill(&mut v);
        v
    }
}

/// Seed derived from a string, so blob ids map to stable content.
pub fn seed_of(s: &str) -> u64 {
    let d = Sha256::digest(s.as_bytes());
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

pub fn finish_digest(h: Sha256) -> String {
    format!("sha256:{}", hex(&h.finalize()))
}

/// One large blob: its identity, size and expected digest.
#[derive(Clone, Debug)]
pub struct BlobSpec {
    pub id: String,
    pub size: u64,
    pub digest: String,
    suffix: Bytes,
}

/// The shared base buffer and the per-size hash states of the common part.
pub struct BlobSource {
    base: Bytes,
    common_state: Mutex<HashMap<u64, Arc<Sha256>>>,
}

impl BlobSource {
    pub fn generate(seed: u64) -> Self {
        let mut buf = vec![0u8; BASE_LEN];
        Prng::new(seed).fill(&mut buf);
        BlobSource {
            base: Bytes::from(buf),
            common_state: Mutex::new(HashMap::new()),
        }
    }

    pub fn base(&self) -> &Bytes {
        &self.base
    }

    /// Describes blob `id` of `size` bytes, hashing the common part of that
    /// size on first use (CPU-bound: call from a blocking context).
    pub fn spec(&self, id: &str, size: u64) -> BlobSpec {
        assert!(size >= SUFFIX_LEN as u64, "blob smaller than its suffix");
        let suffix = Bytes::from(Prng::new(seed_of(id)).bytes(SUFFIX_LEN));
        let common = self.common_hash(size - SUFFIX_LEN as u64);
        let mut h = (*common).clone();
        h.update(&suffix);
        BlobSpec {
            id: id.to_string(),
            size,
            digest: finish_digest(h),
            suffix,
        }
    }

    fn common_hash(&self, len: u64) -> Arc<Sha256> {
        if let Some(h) = self.common_state.lock().expect("lock").get(&len) {
            return h.clone();
        }
        let mut h = Sha256::new();
        let mut left = len;
        while left > 0 {
            let n = left.min(BASE_LEN as u64) as usize;
            h.update(&self.base[..n]);
            left -= n as u64;
        }
        let h = Arc::new(h);
        self.common_state
            .lock()
            .expect("lock")
            .insert(len, h.clone());
        h
    }

    /// Streams bytes `[start, end)` of the blob as slices of the base buffer.
    pub fn range_stream(
        &self,
        spec: &BlobSpec,
        start: u64,
        end: u64,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let pieces = self.range_pieces(spec, start, end);
        stream::iter(pieces.into_iter().map(Ok))
    }

    /// The whole blob as a stream.
    pub fn body_stream(
        &self,
        spec: &BlobSpec,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        self.range_stream(spec, 0, spec.size)
    }

    /// Cheap handles (no copies) to the pieces of `[start, end)`.
    fn range_pieces(&self, spec: &BlobSpec, start: u64, end: u64) -> Vec<Bytes> {
        let common_len = spec.size - SUFFIX_LEN as u64;
        let mut pieces = Vec::new();
        let mut pos = start;
        while pos < end.min(common_len) {
            let off = (pos % BASE_LEN as u64) as usize;
            let n = (BASE_LEN - off)
                .min(STREAM_PIECE)
                .min((end.min(common_len) - pos) as usize);
            pieces.push(self.base.slice(off..off + n));
            pos += n as u64;
        }
        if end > common_len {
            let from = (pos - common_len) as usize;
            let to = (end - common_len) as usize;
            pieces.push(spec.suffix.slice(from..to));
        }
        pieces
    }

    /// Writes the blob to a file (for the static-file baseline).
    pub fn write_to(&self, spec: &BlobSpec, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        for piece in self.range_pieces(spec, 0, spec.size) {
            f.write_all(&piece)?;
        }
        f.into_inner()?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_bytes_hash_to_the_spec_digest() {
        let src = BlobSource::generate(7);
        for size in [32u64, 33, 1000, BASE_LEN as u64 + 5000] {
            let spec = src.spec(&format!("b{size}"), size);
            let mut h = Sha256::new();
            let mut n = 0u64;
            for p in src.range_pieces(&spec, 0, size) {
                n += p.len() as u64;
                h.update(&p);
            }
            assert_eq!(n, size);
            assert_eq!(finish_digest(h), spec.digest);
        }
    }

    #[test]
    fn ranges_concatenate_to_the_whole_blob() {
        let src = BlobSource::generate(1);
        let spec = src.spec("x", 3 * 1024 * 1024 + 17);
        let whole: Vec<u8> = src.range_pieces(&spec, 0, spec.size).concat();
        let mut parts = Vec::new();
        let mut s = 0;
        while s < spec.size {
            let e = (s + 1_000_003).min(spec.size);
            parts.extend(src.range_pieces(&spec, s, e).concat());
            s = e;
        }
        assert_eq!(whole, parts);
    }

    #[test]
    fn different_ids_give_different_digests() {
        let src = BlobSource::generate(1);
        assert_ne!(src.spec("a", 4096).digest, src.spec("b", 4096).digest);
    }
}
