//! Bounded response bodies. Every body the clients read themselves —
//! token responses, discovery documents, LLM answers and error bodies — is
//! read through [`read_capped`], so a hostile or broken server cannot make a
//! client buffer an unbounded answer. (MCP answers are read by rmcp.)

use crate::tls;

/// Token responses: a JWT and a few fields.
pub const TOKEN_MAX: usize = 64 * 1024;
/// RFC 9728 / RFC 8414 documents: a few hundred bytes in practice.
pub const METADATA_MAX: usize = 64 * 1024;
/// One LLM answer (tool calls and text of one turn).
pub const LLM_MAX: usize = 16 * 1024 * 1024;
/// Error bodies: only their message is shown.
pub const ERROR_BODY_MAX: usize = 16 * 1024;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the response is larger than {cap} bytes")]
    TooLarge { cap: usize },
    #[error("{0}")]
    Io(String),
}

/// Reads the whole body, refusing (and stopping the read) past `cap` bytes.
pub async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, ReadError> {
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(cap).unwrap_or(u64::MAX))
    {
        return Err(ReadError::TooLarge { cap });
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ReadError::Io(tls::describe(&e)))?
    {
        if out.len() + chunk.len() > cap {
            return Err(ReadError::TooLarge { cap });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;

    /// A real HTTP server: `/small`, `/declared` (Content-Length over the
    /// cap) and `/endless` (chunked, no length, past the cap).
    async fn server() -> String {
        let app = axum::Router::new()
            .route("/small", get(|| async { "0123456789" }))
            .route("/declared", get(|| async { vec![b'x'; 2048] }))
            .route(
                "/endless",
                get(|| async {
                    let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 512]));
                    Body::from_stream(futures::stream::iter(chunks))
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn bodies_past_the_cap_are_refused() {
        let base = server().await;
        let get = |p: &str| reqwest::get(format!("{base}{p}"));
        assert_eq!(
            read_capped(get("/small").await.unwrap(), 1024)
                .await
                .unwrap(),
            b"0123456789"
        );
        for path in ["/declared", "/endless"] {
            let e = read_capped(get(path).await.unwrap(), 1024)
                .await
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                "the response is larger than 1024 bytes",
                "{path}"
            );
        }
    }
}
