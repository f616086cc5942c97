//! Child-process mode: the built `oauth-server` and `mcp-server` binaries
//! (as `cargo test --workspace` leaves them in the target folder), sharing a
//! real Redis, started and stopped by `stack`.

use crate::helpers::{CLIENT, list_tools_2026};

#[tokio::test]
async fn the_built_binaries_serve_tokens_and_tools_as_children() {
    for bin in ["oauth-server", "mcp-server"] {
        if let Err(e) = stack::child::binary(bin, None) {
            assert!(!testkit::services_required(), "{e:#}");
            eprintln!("SKIPPED: {e:#}");
            return;
        }
    }
    let Some(mut stack) = stack::Stack::builder()
        .child_processes()
        .child_output(stack::ChildOutput::File)
        .redis(stack::Redis::Start)
        .mcp_replicas(2)
        .client(
            stack::Client::with_secret(CLIENT.0, CLIENT.1)
                .allowed_scopes(&["customer:read"])
                .default_scopes(&["customer:read"]),
        )
        .mcp_env("RATE_LIMIT_PER_MINUTE", "60000")
        .mcp_env("RATE_LIMIT_BURST", "1000")
        .start_or_skip()
        .await
    else {
        return;
    };
    assert!(stack.oauth().pid().is_some() && stack.oauth().state().is_none());
    assert_eq!(stack.resources(), [stack.mcp_url().to_owned()]);
    let token = stack.token(CLIENT, None, None).await.unwrap();
    for i in 0..2 {
        let url = stack.replica_url(i).unwrap();
        let r = list_tools_2026(stack.http(), &url, &token).await;
        assert_eq!(r.status, 200, "replica {i}: {}", r.text);
        // customer:read sees its two tools only.
        assert_eq!(
            r.json()["result"]["tools"].as_array().unwrap().len(),
            2,
            "{}",
            r.text
        );
    }
    let pid = stack.replicas()[0].pid().unwrap();
    stack.stop().await.unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "replica still running after stop"
    );
}
