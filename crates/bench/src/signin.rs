//! The `sign-in` scenario: what a person's sign-in costs, and whether a
//! failed login tells an unknown user from a wrong password by its timing.
//!
//! Sequential, not a load test: each attempt is one fresh browser (no
//! cookie) doing `GET /authorize` and the login `POST`, timed together. A
//! wrong password and an unknown user alternate (the order flips every
//! round, so drift in the machine's speed lands on both); both must answer
//! the same refusal. Then full sign-ins (login, consent, the redirect with
//! the code) as the dev user. The limits are lifted (`UNLIMITED`), or the
//! failures would be rate-limited after a few attempts.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use stack::signin::{AuthorizeRequest, Decision, Person};

use crate::stack::{RESOURCE, builder};

const HOST: &str = "bench-host";
const REDIRECT: &str = "http://127.0.0.1:53682/callback";

/// Latencies of one kind of attempt.
pub struct Sample {
    pub name: &'static str,
    pub ms: Vec<f64>,
}

impl Sample {
    pub fn quantile(&self, q: f64) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i).copied().unwrap_or(f64::NAN)
    }
}

/// The oauth-server's RSS in MiB right after the sign-ins, and once its
/// argon2 threads have been idle for `KEEP_IDLE`.
pub struct Rss {
    pub after: Option<f64>,
    pub idle: Option<f64>,
}

/// Runs `rounds` of each failure and of a full sign-in; returns the samples
/// and the oauth-server's RSS after them.
pub async fn run(rounds: usize) -> anyhow::Result<(Vec<Sample>, Rss)> {
    let stack = builder()
        .client(
            ::stack::Client::new(HOST)
                .line(r#"grant_types = ["authorization_code", "refresh_token"]"#)
                .line(r#"redirect_uris = ["http://127.0.0.1/callback"]"#)
                .allowed_scopes(&["customer:read"])
                .default_scopes(&["customer:read"])
                .resources(&[RESOURCE]),
        )
        .resource(RESOURCE)
        .mcp_replicas(0)
        .start()
        .await
        .context("starting the oauth-server (release binary)")?;
    let url = AuthorizeRequest::new(HOST, REDIRECT)?
        .resource(RESOURCE)
        .url(stack.issuer())?;
    let (alice, password) = ::stack::ALICE;
    let mut wrong = Sample {
        name: "failed login: wrong password (alice)",
        ms: Vec::new(),
    };
    let mut unknown = Sample {
        name: "failed login: unknown user",
        ms: Vec::new(),
    };
    let mut full = Sample {
        name: "sign-in: login + consent → code (alice)",
        ms: Vec::new(),
    };
    for round in 0..rounds {
        let attempts = [(alice, &mut wrong), ("mallory", &mut unknown)];
        let order: Vec<_> = if round % 2 == 0 {
            attempts.into_iter().collect()
        } else {
            attempts.into_iter().rev().collect()
        };
        for (user, sample) in order {
            let mut person = Person::new(user, "not-the-password")?;
            let t = Instant::now();
            let outcome = person.authorize(&url, Decision::Approve).await;
            let elapsed = t.elapsed();
            match outcome {
                Err(e) if e.to_string().starts_with("login refused") => {}
                Err(e) => bail!("{}: {e:#}", sample.name),
                Ok(r) => bail!("{}: signed in ({})", sample.name, r.location),
            }
            sample.ms.push(ms(elapsed));
        }
        let mut person = Person::new(alice, password)?;
        let t = Instant::now();
        let back = person.authorize(&url, Decision::Approve).await?;
        full.ms.push(ms(t.elapsed()));
        if back.code.is_none() {
            bail!("sign-in ended without a code: {}", back.location);
        }
    }
    let rss = stack.oauth().rss_mib();
    // The argon2 threads give their buffers back once idle for KEEP_IDLE.
    tokio::time::sleep(oauth_server::argon::KEEP_IDLE + Duration::from_secs(1)).await;
    let idle = stack.oauth().rss_mib();
    Ok((vec![wrong, unknown, full], Rss { after: rss, idle }))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
