//! Prometheus metrics (issue 14): each server's `/metrics` lives on its own
//! listener, which nginx never routes to.

use crate::helpers::Stack;

/// `/metrics` through nginx is the API listener's 404 on both fronts, in
/// each server's error shape: the metrics listener is not reachable there.
#[tokio::test]
async fn metrics_are_not_reachable_through_nginx() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    for (front, base) in [
        ("oauth", stack.nginx().oauth_url()),
        (
            "mcp",
            format!("https://localhost:{}", stack.nginx().mcp_port()),
        ),
    ] {
        let resp = stack
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{front} front");
        let body = resp.text().await.unwrap();
        assert!(
            !body.contains("# TYPE"),
            "{front} front served metrics: {body}"
        );
        assert!(!body.contains("securemcp_"), "{front} front: {body}");
    }
}
