//! `grant_type=refresh_token`: rotation, reuse detection, narrowing,
//! lifetimes, revocation and introspection of refresh tokens.

use std::time::Duration;

use auth::scope::ScopeSet;
use oauth_server::refresh::{IssuedAccess, NewFamily, Redeemed, RefreshRecord, RefreshTokens};
use serde_json::Value;

use crate::code_grant::{SCOPE, sign_in};
use crate::helpers::*;

async fn refresh(
    app: &TestApp,
    client_id: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut pairs = vec![
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", token),
    ];
    pairs.extend_from_slice(extra);
    app.post_form("/token", None, &pairs).await
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} in {v}"))
        .to_owned()
}

async fn rotation_and_reuse(app: &TestApp) {
    let (_, first) = sign_in(app).await;
    let rt1 = s(&first, "refresh_token");
    let resp = refresh(app, PUBLIC_ID, &rt1, &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let second: Value = resp.json().await.unwrap();
    let rt2 = s(&second, "refresh_token");
    let at2 = s(&second, "access_token");
    assert_ne!(rt1, rt2, "rotated");
    assert_eq!(second["scope"], SCOPE);
    let (_, claims) = decode_parts(&at2);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], PUBLIC_ID);
    assert_eq!(claims["aud"], LOCAL_MCP);
    assert_eq!(app.introspect_any(&rt1).await["active"], false);
    assert_eq!(app.introspect_any(&rt2).await["active"], true);

    // The rotated token again: refused, and the whole family with it.
    let body = assert_oauth_error(
        refresh(app, PUBLIC_ID, &rt1, &[]).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "refresh token is invalid, expired or revoked"
    );
    assert_eq!(app.introspect_any(&rt2).await["active"], false);
    assert_eq!(app.introspect_any(&at2).await["active"], false);
    // ...and every earlier access token of the family, back to the code's.
    assert_eq!(
        app.introspect_any(&s(&first, "access_token")).await["active"],
        false
    );
    assert_oauth_error(
        refresh(app, PUBLIC_ID, &rt2, &[]).await,
        400,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn rotation_on_every_use_and_reuse_revokes_the_family() {
    rotation_and_reuse(&spawn().await).await;
}

#[tokio::test]
async fn redis_rotation_on_every_use_and_reuse_revokes_the_family() {
    let Some(redis) = testkit::RedisServer::start() else {
        return;
    };
    let app = spawn_with(Opts {
        redis_url: Some(redis.url()),
        ..Opts::default()
    })
    .await;
    rotation_and_reuse(&app).await;
}

#[tokio::test]
async fn scope_may_only_narrow_and_a_correctable_request_keeps_the_token() {
    let app = spawn().await;
    let (_, first) = sign_in(&app).await;
    let rt1 = s(&first, "refresh_token");

    let body = assert_oauth_error(
        refresh(
            &app,
            PUBLIC_ID,
            &rt1,
            &[("scope", "customer:read account:calculate")],
        )
        .await,
        400,
        "invalid_scope",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "scope may only narrow the scope granted to the refresh token"
    );
    let body = assert_oauth_error(
        refresh(&app, PUBLIC_ID, &rt1, &[("resource", TLS_MCP)]).await,
        400,
        "invalid_target",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "resource must equal the one the refresh token was issued for"
    );

    // Still live: the refused requests did not consume it.
    let resp = refresh(
        &app,
        PUBLIC_ID,
        &rt1,
        &[("scope", "customer:read"), ("resource", LOCAL_MCP)],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let narrowed: Value = resp.json().await.unwrap();
    assert_eq!(narrowed["scope"], "customer:read");
    assert_eq!(
        decode_parts(&s(&narrowed, "access_token")).1["scope"],
        "customer:read"
    );
    // The family keeps its scope (RFC 6749 §6): the next refresh may ask for all of it.
    let resp = refresh(&app, PUBLIC_ID, &s(&narrowed, "refresh_token"), &[]).await;
    assert_eq!(resp.status(), 200);
    let full: Value = resp.json().await.unwrap();
    assert_eq!(full["scope"], SCOPE);
}

#[tokio::test]
async fn another_clients_refresh_token_is_refused_and_its_family_revoked() {
    let app = spawn().await;
    let (_, first) = sign_in(&app).await;
    let rt = s(&first, "refresh_token");
    assert_oauth_error(
        refresh(&app, OTHER_PUBLIC, &rt, &[]).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_oauth_error(
        refresh(&app, PUBLIC_ID, &rt, &[]).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        app.introspect_any(&s(&first, "access_token")).await["active"],
        false
    );
    // Unknown and malformed tokens read the same.
    for junk in ["x", "a.b.c", &"A".repeat(43)] {
        let body = assert_oauth_error(
            refresh(&app, PUBLIC_ID, junk, &[]).await,
            400,
            "invalid_grant",
        )
        .await;
        assert_eq!(
            body["error_description"],
            "refresh token is invalid, expired or revoked"
        );
    }
    let body = assert_oauth_error(
        app.post_form(
            "/token",
            None,
            &[("grant_type", "refresh_token"), ("client_id", PUBLIC_ID)],
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(body["error_description"], "refresh_token is required");
}

#[tokio::test]
async fn an_idle_refresh_token_expires() {
    let app = spawn_with(Opts {
        configure: Some(std::sync::Arc::new(|config: &mut oauth_server::Config| {
            config.refresh_ttl = Duration::from_secs(3600);
            config.refresh_idle = Duration::from_secs(1);
        })),
        ..Opts::default()
    })
    .await;
    let (_, first) = sign_in(&app).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_oauth_error(
        refresh(&app, PUBLIC_ID, &s(&first, "refresh_token"), &[]).await,
        400,
        "invalid_grant",
    )
    .await;
}

/// A family at the end of its absolute lifetime dies even when its token
/// was just rotated (the idle lifetime would still allow it).
#[tokio::test]
async fn a_family_expires_at_its_absolute_lifetime() {
    let app = spawn().await;
    let state = app.state();
    let ttl = i64::try_from(state.config.refresh_ttl.as_secs()).unwrap();
    let now = auth::now_unix();
    let family = |left: i64, id: &str| RefreshRecord {
        family: id.to_owned(),
        client_id: PUBLIC_ID.to_owned(),
        sub: "alice".to_owned(),
        scope: ScopeSet::parse(SCOPE).unwrap(),
        resource: LOCAL_MCP.to_owned(),
        auth_time: now - ttl + left,
        family_start: now - ttl + left,
        issued_at: now,
    };
    let access = IssuedAccess { jti: "j", exp: now };
    let ending = state
        .refresh
        .rotate(&family(1, "ending"), access, now)
        .await
        .unwrap()
        .unwrap();
    let lasting = state
        .refresh
        .rotate(&family(3600, "lasting"), access, now)
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_oauth_error(
        refresh(&app, PUBLIC_ID, &ending, &[]).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(refresh(&app, PUBLIC_ID, &lasting, &[]).await.status(), 200);
}

/// The store's lifetime rules on an injected clock, on the app's own store
/// (memory or Redis).
async fn store_lifetimes(app: &TestApp) {
    let store = RefreshTokens::new(
        app.state().kv.clone(),
        Duration::from_secs(1000),
        Duration::from_secs(100),
    );
    let t0 = auth::now_unix();
    let scope = ScopeSet::parse(SCOPE).unwrap();
    let grant = NewFamily {
        client_id: PUBLIC_ID,
        sub: "alice",
        scope: &scope,
        resource: LOCAL_MCP,
        auth_time: t0,
    };
    let access = IssuedAccess {
        jti: "j1",
        exp: t0 + 970,
    };
    let (t1, fam) = store.start(&grant, access, t0).await.unwrap();
    assert!(store.find(&t1, t0 + 99).await.unwrap().is_some());
    assert!(store.find(&t1, t0 + 100).await.unwrap().is_none(), "idle");
    let Redeemed::Live(rec) = store.redeem(&t1, t0 + 90).await.unwrap() else {
        panic!("live")
    };
    assert_eq!(rec.family, fam);
    // Rotation renews the idle lifetime, never the absolute one.
    let t2 = store
        .rotate(
            &rec,
            IssuedAccess {
                jti: "j2",
                exp: t0 + 990,
            },
            t0 + 950,
        )
        .await
        .unwrap()
        .unwrap();
    let rec2 = store.find(&t2, t0 + 999).await.unwrap().unwrap();
    assert_eq!(store.expires_at(&rec2), t0 + 1000);
    assert!(
        store.find(&t2, t0 + 1000).await.unwrap().is_none(),
        "absolute"
    );
    assert!(matches!(
        store.redeem(&t2, t0 + 1000).await.unwrap(),
        Redeemed::Dead
    ));
    // t1 was rotated away: reuse, naming its family.
    assert!(
        matches!(store.redeem(&t1, t0 + 960).await.unwrap(), Redeemed::Reused { family } if family == fam)
    );
    // Nothing at rest is the token itself.
    for token in [&t1, &t2] {
        for prefix in ["oauth:rt:", "oauth:rt_used:"] {
            assert!(
                app.state()
                    .kv
                    .get(&format!("{prefix}{token}"))
                    .await
                    .unwrap()
                    .is_none()
            );
        }
    }
    // Both access tokens are still live at t0 + 960: both are returned, the last first.
    let revoked = store.revoke_family(&fam, t0 + 960).await.unwrap().unwrap();
    let access: Vec<(&str, i64)> = revoked
        .access
        .iter()
        .map(|a| (a.jti.as_str(), a.exp))
        .collect();
    assert_eq!(access, [("j2", t0 + 990), ("j1", t0 + 970)]);
    // Expired access tokens are not carried (nothing left to deny).
    let later = store.revoke_family(&fam, t0 + 980).await.unwrap().unwrap();
    assert_eq!(later.access.len(), 1);
}

#[tokio::test]
async fn store_lifetimes_in_memory() {
    store_lifetimes(&spawn().await).await;
}

#[tokio::test]
async fn redis_store_lifetimes() {
    let Some(redis) = testkit::RedisServer::start() else {
        return;
    };
    let app = spawn_with(Opts {
        redis_url: Some(redis.url()),
        ..Opts::default()
    })
    .await;
    store_lifetimes(&app).await;
}

#[tokio::test]
async fn introspection_of_a_live_refresh_token() {
    let app = spawn().await;
    let (_, first) = sign_in(&app).await;
    let rt = s(&first, "refresh_token");
    let seen = app.introspect_any(&rt).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["client_id"], PUBLIC_ID);
    assert_eq!(seen["sub"], "alice");
    assert_eq!(seen["scope"], SCOPE);
    let exp = seen["exp"].as_i64().unwrap();
    let idle = i64::try_from(app.state().config.refresh_idle.as_secs()).unwrap();
    assert!(exp > auth::now_unix() && exp <= auth::now_unix() + idle);
    // Another (non resource-server) client sees nothing.
    assert_eq!(
        app.introspect(&rt).await,
        serde_json::json!({"active": false})
    );
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_family() {
    let app = spawn().await;
    let (_, first) = sign_in(&app).await;
    let rt = s(&first, "refresh_token");
    let at = s(&first, "access_token");

    // Another client's revocation is a silent no-op (RFC 7009 §2.2).
    let resp = app
        .post_form("/revoke", Some((FAST_ID, FAST_SECRET)), &[("token", &rt)])
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.introspect_any(&rt).await["active"], true);

    // The public client revokes its own token (RFC 7009 §5).
    let resp = app
        .post_form(
            "/revoke",
            None,
            &[
                ("client_id", PUBLIC_ID),
                ("token", &rt),
                ("token_type_hint", "refresh_token"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(app.introspect_any(&rt).await["active"], false);
    assert_eq!(app.introspect_any(&at).await["active"], false);
    assert_oauth_error(
        refresh(&app, PUBLIC_ID, &rt, &[]).await,
        400,
        "invalid_grant",
    )
    .await;

    // A public client revokes its access token too, whatever the hint says.
    let (_, second) = sign_in(&app).await;
    let at2 = s(&second, "access_token");
    let resp = app
        .post_form(
            "/revoke",
            None,
            &[
                ("client_id", PUBLIC_ID),
                ("token", &at2),
                ("token_type_hint", "refresh_token"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.introspect_any(&at2).await["active"], false);
}
