//! User tokens (authorization code grant: `sub` is the user, `client_id` the
//! host): audit events name both, and each (client, user) pair has its own
//! budget and its own sessions.
//!
//! The first test gets its tokens from the real interactive flow (alice and
//! bob sign in at `/authorize` for the public dev client); the others need
//! many users or odd ids, so they sign the claims the oauth-server issues a
//! user with its real key.

use serde_json::{Value, json};

use crate::helpers::*;

const HOST: &str = "claude-desktop-client";
const USER_SCOPES: &str = "customer:read ticket:create account:calculate";

fn get_customer() -> Value {
    json!({"name": "get_customer_info", "arguments": {"customer_id": "12345"}})
}

#[tokio::test]
async fn signed_in_users_are_audited_and_budgeted_apart() {
    // Two list calls per user, then 429.
    let app = spawn_with(Options {
        policy: Some((1, 2)),
        ..Options::default()
    })
    .await;
    let alice = app.user_token(ALICE, "customer:read").await;
    let r = app
        .call_2026(Some(&alice), "tools/call", get_customer())
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let called = app.events("mcp.tool_called");
    assert_eq!(called.len(), 1);
    assert_eq!(
        (called[0].client_id.as_deref(), called[0].sub.as_deref()),
        (Some(PUBLIC_CLIENT), Some("alice"))
    );
    // A second sign-in of alice's shares her budget (the tool call cost 2 of it).
    let alice_again = app.user_token(ALICE, "customer:read").await;
    assert_ne!(alice, alice_again);
    let r = list(&app, alice_again).await;
    assert_eq!(r.status, 429, "{}", r.text);
    let limited = app.events("ratelimit.limited");
    assert_eq!(limited.len(), 1);
    assert_eq!(
        (limited[0].client_id.as_deref(), limited[0].sub.as_deref()),
        (Some(PUBLIC_CLIENT), Some("alice"))
    );
    // Bob, through the same public host, has his own.
    let bob = app.user_token(BOB, "customer:read").await;
    assert_eq!(list(&app, bob.clone()).await.status, 200);
    assert_eq!(list(&app, bob.clone()).await.status, 200);
    assert_eq!(list(&app, bob).await.status, 429);
}

#[tokio::test]
async fn audit_events_name_the_user_and_the_client() {
    let app = spawn().await;
    let alice = app.sign(&app.user_claims(HOST, "alice", USER_SCOPES));
    let r = app
        .call_2026(Some(&alice), "tools/call", get_customer())
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let called = app.events("mcp.tool_called");
    assert_eq!(called.len(), 1);
    assert_eq!(called[0].client_id.as_deref(), Some(HOST));
    assert_eq!(called[0].sub.as_deref(), Some("alice"));
    assert_eq!(called[0].tool.as_deref(), Some("get_customer_info"));

    // A scope denial (bob may only read).
    let bob = app.sign(&app.user_claims(HOST, "bob", "customer:read"));
    let r = app
        .call_2026(
            Some(&bob),
            "tools/call",
            json!({"name": "calculate_account_value", "arguments": {"customer_id": "12345", "amounts": [1.0]}}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let denied = app.events("mcp.scope_denied");
    assert_eq!(denied.len(), 1);
    assert_eq!(
        (denied[0].client_id.as_deref(), denied[0].sub.as_deref()),
        (Some(HOST), Some("bob"))
    );

    // A rejected token whose claims are known (revoked).
    let mut revoked = app.user_claims(HOST, "alice", USER_SCOPES);
    revoked.jti = "user-token-to-revoke".into();
    app.mcp
        .revocations()
        .revoke(&revoked.jti, std::time::Duration::from_secs(600))
        .await
        .unwrap();
    let r = app
        .call_2026(Some(&app.sign(&revoked)), "tools/list", json!({}))
        .await;
    assert_eq!(r.status, 401);
    let rejected = app.events("mcp.token_rejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].reason, Some("revoked"));
    assert_eq!(
        (rejected[0].client_id.as_deref(), rejected[0].sub.as_deref()),
        (Some(HOST), Some("alice"))
    );

    // A machine token's events name the client only (sub = client_id).
    let machine = app.secure_token().await;
    let r = app
        .call_2026(Some(&machine), "tools/call", get_customer())
        .await;
    assert_eq!(r.status, 200);
    let called = app.events("mcp.tool_called");
    assert_eq!(called[1].client_id.as_deref(), Some(SECURE_CLIENT.0));
    assert_eq!(called[1].sub, None);

    // security://events shows both.
    let r = app
        .call_2026(
            Some(&machine),
            "resources/read",
            json!({"uri": "security://events"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let text = r.json()["result"]["contents"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let events: Value = serde_json::from_str(&text).unwrap();
    let first = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "mcp.tool_called")
        .unwrap();
    assert_eq!(first["client_id"], HOST);
    assert_eq!(first["sub"], "alice");
}

async fn list(app: &TestApp, token: String) -> Reply {
    app.call_2026(Some(&token), "tools/list", json!({})).await
}

#[tokio::test]
async fn each_user_of_a_client_has_a_budget() {
    // Two list calls per user, then 429.
    let app = spawn_with(Options {
        policy: Some((1, 2)),
        ..Options::default()
    })
    .await;
    let alice = app.sign(&app.user_claims(HOST, "alice", USER_SCOPES));
    // A second token of the same user (another login) shares the budget.
    let alice_again = app.sign(&app.user_claims(HOST, "alice", USER_SCOPES));
    assert_ne!(alice, alice_again);
    assert_eq!(list(&app, alice.clone()).await.status, 200);
    assert_eq!(list(&app, alice_again.clone()).await.status, 200);
    let r = list(&app, alice_again).await;
    assert_eq!(r.status, 429, "{}", r.text);
    let limited = app.events("ratelimit.limited");
    assert_eq!(limited.len(), 1);
    assert_eq!(
        (limited[0].client_id.as_deref(), limited[0].sub.as_deref()),
        (Some(HOST), Some("alice"))
    );

    // Bob, on the same host, is untouched.
    let bob = app.sign(&app.user_claims(HOST, "bob", "customer:read"));
    assert_eq!(list(&app, bob.clone()).await.status, 200);
    assert_eq!(list(&app, bob.clone()).await.status, 200);
    assert_eq!(list(&app, bob).await.status, 429);

    // Ids that would spell alice's key without encoding get their own budgets:
    // a machine client named `claude-desktop-client:alice`, and a user whose
    // `sub` carries the separator.
    let lookalike = format!("{HOST}:alice");
    let mut machine = app.claims();
    machine.client_id.clone_from(&lookalike);
    machine.sub.clone_from(&lookalike);
    assert_eq!(list(&app, app.sign(&machine)).await.status, 200);
    let colon = app.sign(&app.user_claims("app", "b:c", USER_SCOPES));
    assert_eq!(list(&app, colon.clone()).await.status, 200);
    assert_eq!(list(&app, colon.clone()).await.status, 200);
    assert_eq!(list(&app, colon).await.status, 429);
    let other = app.sign(&app.user_claims("app:b", "c", USER_SCOPES));
    assert_eq!(list(&app, other).await.status, 200);
}

#[tokio::test]
async fn a_users_session_is_not_another_users() {
    let app = spawn().await;
    let alice = app.sign(&app.user_claims(HOST, "alice", USER_SCOPES));
    let bob = app.sign(&app.user_claims(HOST, "bob", USER_SCOPES));
    let s = app.session(&alice).await;
    let r = s.request("tools/list", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let stolen = Session {
        app: &app,
        token: bob,
        id: s.id.clone(),
    };
    let r = stolen.request("tools/list", json!({})).await;
    assert_eq!(r.status, 404, "same client, other user: {}", r.text);
    let refused = app.events("mcp.session_refused");
    assert_eq!(refused.len(), 1);
    assert_eq!(
        (refused[0].client_id.as_deref(), refused[0].sub.as_deref()),
        (Some(HOST), Some("bob"))
    );
    // A second token of alice's keeps her session.
    let alice_again = app.sign(&app.user_claims(HOST, "alice", USER_SCOPES));
    let mine = Session {
        app: &app,
        token: alice_again,
        id: s.id.clone(),
    };
    assert_eq!(mine.request("tools/list", json!({})).await.status, 200);
}
