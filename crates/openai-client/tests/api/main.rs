//! `openai-client` end to end: the real binary against the real oauth-server
//! and mcp-server (in-process, port 0) and the fake OpenAI API, which checks
//! every request against the real wire format. The suite itself is shared
//! with the other client (client-core/tests/support/suite.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../client-core/tests/support/mod.rs"]
mod support;

use support::suite::{self, Spec};
use testkit::llm::Api;

const SPEC: Spec = Spec {
    bin: env!("CARGO_BIN_EXE_openai-client"),
    api: Api::OpenAi,
    name: "OpenAI",
    key_var: "OPENAI_API_KEY",
    base_var: "OPENAI_BASE_URL",
    model_var: "OPENAI_MODEL",
    client: support::stack::OPENAI_CLIENT,
};

#[tokio::test]
async fn the_three_demo_queries_reach_the_tools_and_the_answers_print() {
    suite::demo_queries(SPEC).await;
}

#[tokio::test]
async fn parallel_tool_calls_return_by_id_and_failures_become_error_results() {
    suite::parallel_calls_and_error_results(SPEC).await;
}

#[tokio::test]
async fn the_turn_limit_stops_a_looping_model() {
    suite::turn_limit(SPEC).await;
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_once_after_the_wait() {
    suite::llm_429_is_retried_after_retry_after(SPEC).await;
}

#[tokio::test]
async fn five_500s_fail_with_one_clear_line_within_the_bound() {
    suite::five_llm_500s_fail_clearly(SPEC).await;
}

#[tokio::test]
async fn a_400_is_reported_and_not_retried() {
    suite::llm_400_is_not_retried(SPEC).await;
}

#[tokio::test]
async fn configuration_errors_are_one_line_naming_the_fix() {
    suite::configuration_errors_name_the_fix(SPEC).await;
}

#[tokio::test]
async fn tools_and_call_work_without_an_llm_key() {
    suite::tools_and_call_without_an_llm_key(SPEC).await;
}

#[tokio::test]
async fn dotenv_in_the_working_directory_is_read() {
    suite::reads_dotenv(SPEC).await;
}

#[tokio::test]
async fn tls_needs_the_test_ca_in_ssl_cert_file() {
    suite::tls_with_ssl_cert_file(SPEC).await;
}

#[tokio::test]
async fn chat_keeps_the_conversation_between_questions() {
    suite::chat_keeps_the_conversation(SPEC).await;
}

#[tokio::test]
async fn a_person_logs_in_and_out() {
    suite::login_and_logout(SPEC, suite::LoginStore::File).await;
}

#[tokio::test]
async fn a_long_conversation_renews_a_login() {
    suite::a_long_conversation_renews_a_login(SPEC).await;
}

#[tokio::test]
async fn the_conformance_client_scenarios_pass() {
    suite::conformance_client_scenarios(SPEC).await;
}

#[tokio::test]
async fn a_long_conversation_renews_short_lived_tokens() {
    suite::a_long_conversation_renews_tokens(SPEC).await;
}

#[tokio::test]
async fn credentials_go_only_to_oauth_issuer() {
    suite::credentials_go_only_to_oauth_issuer(SPEC).await;
}
