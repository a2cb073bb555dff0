//! `Range` requests of blobs (RFC 9110 §14): one range is answered with a
//! 206 and `Content-Range`; several with a 206 `multipart/byteranges`, one
//! part per satisfiable range in the order they were asked for. Podman's
//! partial pulls of `zstd:chunked` layers ask for the files they lack that
//! way (up to 1,024 ranges) and read the parts in that order, so a layer
//! that mostly matches what the client has costs only the bytes it lacks.

use std::future::ready;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};

use super::error::ApiError;
use crate::registry::{BlobContent, ByteRange, FileSendPath, RegistryError};

/// More ranges than this in one request are not honoured (the whole blob is
/// sent): as many as the largest partial pull asks for, and few enough that
/// part headers stay a small share of a response.
const MAX_RANGES: usize = 1024;

/// What a `Range` header asks of a blob, once checked against its size.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send the whole blob (200).
    Whole,
    /// One range: 206 with `Content-Range`.
    One(ByteRange),
    /// Several ranges were asked for: 206 `multipart/byteranges` with these,
    /// the satisfiable ones in the order asked.
    Several(Vec<ByteRange>),
}

/// Reads a `Range` header for a blob of `size` bytes. Other units, bad
/// syntax, more than [`MAX_RANGES`] ranges, or ranges that together ask
/// for more bytes than the blob has (overlaps: a way to make a small
/// request cost a large response) are ignored, as RFC 9110 allows: the
/// whole blob is sent. When no range is satisfiable the answer is 416.
pub fn parse(value: &str, size: u64) -> Result<RangeRequest, ApiError> {
    let value = value.trim();
    let Some(specs) = value
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
        .map(|_| &value[6..])
    else {
        return Ok(RangeRequest::Whole);
    };
    let mut asked = 0;
    let mut satisfiable = Vec::new();
    for spec in specs.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        asked += 1;
        if asked > MAX_RANGES {
            return Ok(RangeRequest::Whole);
        }
        match range_of(spec, size) {
            Spec::Malformed => return Ok(RangeRequest::Whole),
            Spec::Unsatisfiable => {}
            Spec::Satisfiable(range) => satisfiable.push(range),
        }
    }
    if asked == 0 {
        return Ok(RangeRequest::Whole);
    }
    if satisfiable.is_empty() {
        return Err(RegistryError::RangeNotSatisfiable { size }.into());
    }
    if asked == 1 {
        return Ok(RangeRequest::One(satisfiable[0]));
    }
    let total = satisfiable
        .iter()
        .try_fold(0u64, |sum, r| sum.checked_add(r.byte_count()));
    if total.is_none_or(|total| total > size) {
        return Ok(RangeRequest::Whole);
    }
    Ok(RangeRequest::Several(satisfiable))
}

enum Spec {
    Malformed,
    Unsatisfiable,
    Satisfiable(ByteRange),
}

/// One range-spec (`A-B`, `A-` or `-N`) against a blob of `size` bytes.
fn range_of(spec: &str, size: u64) -> Spec {
    let Some((first, last)) = spec.split_once('-') else {
        return Spec::Malformed;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let number = |s: &str| s.parse::<u64>().ok().filter(|_| digits(s));
    match (number(first), number(last)) {
        // -N: the last N bytes.
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 || size == 0 {
                return Spec::Unsatisfiable;
            }
            Spec::Satisfiable(ByteRange {
                first: size.saturating_sub(suffix),
                last: size - 1,
            })
        }
        // A-
        (Some(first), None) if last.is_empty() => match first < size {
            true => Spec::Satisfiable(ByteRange {
                first,
                last: size - 1,
            }),
            false => Spec::Unsatisfiable,
        },
        (Some(first), Some(last)) if first <= last => match first < size {
            true => Spec::Satisfiable(ByteRange {
                first,
                last: last.min(size - 1),
            }),
            false => Spec::Unsatisfiable,
        },
        _ => Spec::Malformed,
    }
}

/// A `multipart/byteranges` body ready to send.
pub struct Multipart<S> {
    pub content_type: String,
    /// Exact length of `body`, for `Content-Length`.
    pub length: u64,
    pub body: S,
}

/// Frames `ranges` of `content` (a blob of `size` bytes) as the parts of a
/// `multipart/byteranges` body. Each part's bytes stream like any download
/// (through `file_sends` when the connection has it).
pub fn multipart(
    content: BlobContent,
    ranges: Vec<ByteRange>,
    size: u64,
    file_sends: Option<Arc<dyn FileSendPath>>,
) -> Multipart<impl Stream<Item = Result<Bytes, std::io::Error>> + Send> {
    // Random, so no blob can be made to contain it on purpose.
    let boundary = uuid::Uuid::new_v4().simple().to_string();
    let part_heads: Vec<Bytes> = ranges
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let separator = if i == 0 { "" } else { "\r\n" };
            Bytes::from(format!(
                "{separator}--{boundary}\r\nContent-Type: application/octet-stream\r\n\
                 Content-Range: bytes {}-{}/{size}\r\n\r\n",
                r.first, r.last
            ))
        })
        .collect();
    let trailer = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    let length = part_heads.iter().map(|h| h.len() as u64).sum::<u64>()
        + ranges.iter().map(ByteRange::byte_count).sum::<u64>()
        + trailer.len() as u64;
    let parts = part_heads
        .into_iter()
        .zip(ranges)
        .map(move |(head, range)| {
            stream::once(ready(Ok(head)))
                .chain(content.clone().into_stream(Some(range), file_sends.clone()))
        });
    Multipart {
        content_type: format!("multipart/byteranges; boundary={boundary}"),
        length,
        body: stream::iter(parts)
            .flatten()
            .chain(stream::once(ready(Ok(trailer)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(first: u64, last: u64) -> ByteRange {
        ByteRange { first, last }
    }

    fn parsed(value: &str, size: u64) -> RangeRequest {
        parse(value, size).unwrap()
    }

    #[test]
    fn single_ranges_follow_rfc_9110() {
        assert_eq!(parsed("bytes=0-9", 100), RangeRequest::One(r(0, 9)));
        assert_eq!(parsed("bytes=90-200", 100), RangeRequest::One(r(90, 99)));
        assert_eq!(parsed("bytes=10-", 100), RangeRequest::One(r(10, 99)));
        assert_eq!(parsed("bytes=-10", 100), RangeRequest::One(r(90, 99)));
        assert_eq!(parsed("bytes=-500", 100), RangeRequest::One(r(0, 99)));
        assert_eq!(parsed("Bytes= 5-6 ", 100), RangeRequest::One(r(5, 6)));
    }

    #[test]
    fn several_ranges_keep_their_order_and_drop_unsatisfiable_ones() {
        assert_eq!(
            parsed("bytes=50-59, 0-9,-5", 100),
            RangeRequest::Several(vec![r(50, 59), r(0, 9), r(95, 99)])
        );
        assert_eq!(
            parsed("bytes=0-9,200-300", 100),
            RangeRequest::Several(vec![r(0, 9)])
        );
    }

    #[test]
    fn unusable_ranges_mean_the_whole_blob() {
        for value in [
            "items=0-9",
            "bytes=",
            "bytes=9-1",
            "bytes=x-y",
            "bytes=0-9,x",
            "bytes=+1-2",
            "bytes=0-9;0-9",
        ] {
            assert_eq!(parsed(value, 100), RangeRequest::Whole, "{value}");
        }
    }

    #[test]
    fn overlapping_or_too_many_ranges_mean_the_whole_blob() {
        // Together more than the blob: each of these asks for it again.
        assert_eq!(parsed("bytes=0-,0-", 100), RangeRequest::Whole);
        assert_eq!(parsed("bytes=0-60,40-99", 100), RangeRequest::Whole);
        // Parts whose lengths add up past u64 (found by fuzzing).
        assert_eq!(parsed("bytes=0-,0-", u64::MAX), RangeRequest::Whole);
        let many: Vec<String> = (0..=MAX_RANGES).map(|i| format!("{i}-{i}")).collect();
        let value = format!("bytes={}", many.join(","));
        assert_eq!(parsed(&value, 10_000), RangeRequest::Whole);
        let value = format!("bytes={}", many[..MAX_RANGES].join(","));
        assert!(
            matches!(parsed(&value, 10_000), RangeRequest::Several(v) if v.len() == MAX_RANGES)
        );
    }

    #[test]
    fn ranges_past_the_end_are_unsatisfiable() {
        for value in [
            "bytes=100-",
            "bytes=100-200",
            "bytes=-0",
            "bytes=100-,200-300",
        ] {
            assert!(parse(value, 100).is_err(), "{value}");
        }
        assert!(parse("bytes=0-", 0).is_err());
    }

    #[tokio::test]
    async fn parts_frame_each_range_and_the_length_is_exact() {
        let content = BlobContent::Manifest(Bytes::from_static(b"0123456789abcdefghij"));
        let framed = multipart(content, vec![r(10, 12), r(0, 1)], 20, None);
        let boundary = framed
            .content_type
            .strip_prefix("multipart/byteranges; boundary=")
            .unwrap()
            .to_owned();
        let body: Vec<u8> = framed
            .body
            .map(|piece| piece.unwrap().to_vec())
            .concat()
            .await;
        let expected = format!(
            "--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 10-12/20\r\n\r\nabc\
             \r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-1/20\r\n\r\n01\
             \r\n--{boundary}--\r\n"
        );
        assert_eq!(String::from_utf8(body).unwrap(), expected);
        assert_eq!(framed.length, expected.len() as u64);
    }
}
