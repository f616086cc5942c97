//! Bounded reads of a request body, for the layers that must look at it
//! before rmcp does.

use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use crate::jsonrpc::{self, RequestId};

/// An error answer looks for the request id in this much of the body.
pub const ID_SCAN_BYTES: usize = 64 * 1024;
/// ...and waits at most this long for it: a refused request is not worth
/// holding on to for a slow client.
const ID_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// A body read up to a limit.
#[derive(Debug)]
pub enum Bounded {
    /// The whole body (at most the limit).
    Whole(Bytes),
    /// The body is longer than the limit: its first `limit` bytes.
    TooLarge(Bytes),
}

/// Reads `body` until its end or until it exceeds `limit` bytes.
///
/// A body that arrives in one frame (a small request usually does) is kept
/// as that frame's bytes: no copy.
pub async fn read_bounded(mut body: Body, limit: usize) -> Result<Bounded, axum::Error> {
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue; // trailers
        };
        if let Some(held) = first.take() {
            // A second frame: gather them from here on.
            buf.extend_from_slice(&held);
        } else if buf.is_empty() {
            if data.len() > limit {
                return Ok(Bounded::TooLarge(data.slice(..limit)));
            }
            first = Some(data);
            continue;
        }
        if buf.len() + data.len() > limit {
            let room = limit - buf.len();
            buf.extend_from_slice(&data[..room]);
            return Ok(Bounded::TooLarge(buf.freeze()));
        }
        buf.extend_from_slice(&data);
    }
    Ok(Bounded::Whole(first.unwrap_or_else(|| buf.freeze())))
}

/// The JSON-RPC id of a request that is being refused, from the first
/// [`ID_SCAN_BYTES`] of its body (`None` when it cannot be told in time).
pub async fn request_id(body: Body) -> Option<RequestId> {
    match tokio::time::timeout(ID_READ_TIMEOUT, read_bounded(body, ID_SCAN_BYTES)).await {
        Ok(Ok(Bounded::Whole(b) | Bounded::TooLarge(b))) => jsonrpc::peek_id(&b),
        Ok(Err(_)) | Err(_) => None,
    }
}

/// The id in (the start of) an already buffered body.
pub fn buffered_request_id(body: &[u8]) -> Option<RequestId> {
    jsonrpc::peek_id(&body[..body.len().min(ID_SCAN_BYTES)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(chunks: &[&'static str]) -> Body {
        let chunks: Vec<Result<Bytes, std::io::Error>> = chunks
            .iter()
            .map(|c| Ok(Bytes::from_static(c.as_bytes())))
            .collect();
        Body::from_stream(futures::stream::iter(chunks))
    }

    #[tokio::test]
    async fn reads_up_to_the_limit() {
        let b = read_bounded(chunked(&["abc", "def"]), 6).await.unwrap();
        assert!(matches!(b, Bounded::Whole(ref x) if x == "abcdef"), "{b:?}");
        let b = read_bounded(chunked(&["abc", "def"]), 4).await.unwrap();
        assert!(
            matches!(b, Bounded::TooLarge(ref x) if x == "abcd"),
            "{b:?}"
        );
        let b = read_bounded(chunked(&["abc", "def", "g"]), 6)
            .await
            .unwrap();
        assert!(
            matches!(b, Bounded::TooLarge(ref x) if x == "abcdef"),
            "{b:?}"
        );
        let b = read_bounded(chunked(&["abcdef"]), 6).await.unwrap();
        assert!(matches!(b, Bounded::Whole(ref x) if x == "abcdef"), "{b:?}");
        let b = read_bounded(chunked(&["abcdefg"]), 6).await.unwrap();
        assert!(
            matches!(b, Bounded::TooLarge(ref x) if x == "abcdef"),
            "{b:?}"
        );
        let b = read_bounded(chunked(&["", "abc"]), 6).await.unwrap();
        assert!(matches!(b, Bounded::Whole(ref x) if x == "abc"), "{b:?}");
        let b = read_bounded(Body::empty(), 4).await.unwrap();
        assert!(matches!(b, Bounded::Whole(ref x) if x.is_empty()), "{b:?}");
    }

    #[tokio::test]
    async fn finds_the_id_of_a_long_body_in_its_start() {
        let pad = "x".repeat(2 * ID_SCAN_BYTES);
        let early = format!(r#"{{"id":7,"params":{{"pad":"{pad}"}}}}"#);
        let late = format!(r#"{{"params":{{"pad":"{pad}"}},"id":7}}"#);
        assert_eq!(
            request_id(Body::from(early.clone())).await,
            Some(RequestId::Number(7.into()))
        );
        assert_eq!(request_id(Body::from(late.clone())).await, None);
        assert_eq!(
            buffered_request_id(early.as_bytes()),
            Some(RequestId::Number(7.into()))
        );
        assert_eq!(buffered_request_id(late.as_bytes()), None);
    }
}
