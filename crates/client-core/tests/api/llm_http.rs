//! The LLM HTTP layer against the fake APIs: 429 + Retry-After, bounded
//! 5xx retries, no retry on 400, key errors named.

use std::time::Duration;

use client_core::RetryPolicy;
use client_core::llm::{LlmHttp, Provider};
use serde_json::json;
use testkit::llm::{FakeLlm, Reply};

const PROVIDER: Provider = Provider {
    name: "OpenAI",
    key_var: "OPENAI_API_KEY",
    base_url_var: "OPENAI_BASE_URL",
};

fn request() -> serde_json::Value {
    json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]})
}

async fn post(fake: &FakeLlm, key: &str, retry: RetryPolicy) -> Result<serde_json::Value, String> {
    let http = LlmHttp::new(crate::support::stack::http(), retry);
    let url = client_core::llm::join_url(
        &url::Url::parse(&fake.base_url()).unwrap(),
        "chat/completions",
    );
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {key}").parse().unwrap());
    http.post_json(&PROVIDER, &url, headers, &request())
        .await
        .map_err(|e| e.to_string())
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
        max_elapsed: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_once_after_the_wait() {
    let fake = FakeLlm::openai(
        "sk-test",
        vec![Reply::error(429, Some("1")), Reply::text("hello")],
    )
    .await;
    let body = post(&fake, "sk-test", policy()).await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "hello");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at - reqs[0].at;
    assert!(gap >= Duration::from_secs(1), "{gap:?}");
    fake.assert_valid();
}

#[tokio::test]
async fn five_500s_fail_clearly_within_the_bound() {
    let fake = FakeLlm::openai("sk-test", vec![Reply::error(500, None); 5]).await;
    let err = post(&fake, "sk-test", policy()).await.unwrap_err();
    assert!(
        err.starts_with("OpenAI API still answered HTTP 500 after 5 attempts in "),
        "{err}"
    );
    assert!(err.ends_with(": scripted error 500"), "{err}");
    assert_eq!(fake.requests().len(), 5);
}

#[tokio::test]
async fn a_400_is_not_retried_and_a_bad_key_is_named() {
    let fake = FakeLlm::openai("sk-test", vec![Reply::error(400, None)]).await;
    let err = post(&fake, "sk-test", policy()).await.unwrap_err();
    assert_eq!(
        err,
        "OpenAI API refused the request (HTTP 400, invalid_request_error): scripted error 400"
    );
    assert_eq!(fake.requests().len(), 1);

    let err = post(&fake, "sk-wrong", policy()).await.unwrap_err();
    assert_eq!(
        err,
        "OpenAI rejected the API key (HTTP 401: invalid API key) — check OPENAI_API_KEY"
    );
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn an_unreachable_api_names_the_base_url_variable() {
    let fake = FakeLlm::openai("sk-test", vec![]).await;
    let base = fake.base_url();
    drop(fake);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let http = LlmHttp::new(crate::support::stack::http(), policy());
    let url = client_core::llm::join_url(&url::Url::parse(&base).unwrap(), "chat/completions");
    let err = http
        .post_json(&PROVIDER, &url, http::HeaderMap::new(), &request())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "cannot reach OpenAI at {url} (after 5 attempts in "
        )),
        "{err}"
    );
    assert!(err.ends_with("— check OPENAI_BASE_URL"), "{err}");
}
