//! `oauth-server keys rotate` against a running server.

use std::sync::Arc;
use std::time::Duration;

use auth::verify::{StaticKeys, Verifier};

use crate::helpers::*;

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_and_signs_with_the_new_key() {
    let app = spawn_with(Opts {
        reload: Some(Duration::from_millis(100)),
        ..Opts::default()
    })
    .await;
    let old_token = app.token(&[]).await;
    let old_kid = decode_parts(&old_token).0["kid"]
        .as_str()
        .unwrap()
        .to_owned();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_oauth-server"))
        .args(["keys", "rotate"])
        .env("OAUTH_KEYS_DIR", &app.keys_dir)
        .env("OAUTH_SIGNING_ALG", "RS256")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("new signing key "), "{stdout}");

    // The running server picks the new key up without a restart.
    let mut jwks = app.jwks().await;
    for _ in 0..100 {
        if jwks.keys.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        jwks = app.jwks().await;
    }
    assert_eq!(jwks.keys.len(), 2, "old and new keys are both published");
    let new_token = app.token(&[]).await;
    let new_kid = decode_parts(&new_token).0["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_kid, old_kid);
    assert!(stdout.contains(&new_kid));

    let verifier = Verifier::new(
        app.base.clone(),
        LOCAL_MCP,
        Arc::new(StaticKeys::new(&jwks)),
    );
    verifier.verify(&old_token).await.unwrap();
    verifier.verify(&new_token).await.unwrap();
    assert_eq!(app.introspect(&old_token).await["active"], true);

    // `keys list` marks the new key as the signer.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_oauth-server"))
        .args(["keys", "list"])
        .env("OAUTH_KEYS_DIR", &app.keys_dir)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.lines()
            .any(|l| l.contains(&new_kid) && l.ends_with("(signing)")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.contains(&old_kid) && !l.ends_with("(signing)")),
        "{list}"
    );
}

#[tokio::test]
async fn bad_configuration_fails_with_one_line_naming_the_variable() {
    for (var, value, expect) in [
        (
            "OAUTH_TOKEN_TTL_SECS",
            "5",
            "OAUTH_TOKEN_TTL_SECS: must be between 60 and 3600 seconds",
        ),
        (
            "OAUTH_SIGNING_ALG",
            "HS256",
            "OAUTH_SIGNING_ALG: invalid value \"HS256\"",
        ),
        (
            "OAUTH_ISSUER",
            "http://auth.example.com",
            "OAUTH_ISSUER: must use https",
        ),
        (
            "OAUTH_RESOURCES",
            "http://x/#f",
            "OAUTH_RESOURCES: \"http://x/#f\"",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_oauth-server"))
            .args(["keys", "list"])
            .env(var, value)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(&format!("oauth-server: {expect}")), "{err}");
    }
}
