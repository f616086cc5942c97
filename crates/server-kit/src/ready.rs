//! `GET /ready`: whether this process's dependencies answer (readiness),
//! as opposed to `GET /health` (the process runs: liveness).
//!
//! Both servers answer with [`Readiness::report`]: 200
//! `{"status":"ready",...}` when every dependency is up, otherwise 503
//! `{"status":"degraded",...}` naming the one that is down. The body names
//! dependencies and their state only, never an address or a URL.
//!
//! | field | values |
//! |---|---|
//! | `redis` | `up`, `down`, `not_configured` (`REDIS_URL` and `REDIS_CLUSTER_NODES` unset: in-memory stores); with a cluster, `down` while any master is unreachable |
//! | `revocations` (mcp-server with Redis) | `live` (subscribed), `stale` (serving from memory) |

use serde_json::{Map, Value, json};

use crate::redis::Redis;
use crate::revocations::RevocationMirror;

/// The dependencies a server reports on `/ready`.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    redis: Option<Redis>,
    revocations: Option<RevocationMirror>,
}

impl Readiness {
    /// Reports on `redis` (`None`: not configured).
    pub fn new(redis: Option<Redis>) -> Self {
        Self {
            redis,
            revocations: None,
        }
    }

    /// Also reports on the revocation subscription.
    pub fn with_revocations(mut self, mirror: RevocationMirror) -> Self {
        self.revocations = Some(mirror);
        self
    }

    /// The Redis handle reported on (its counters show what reached Redis).
    pub fn redis(&self) -> Option<&Redis> {
        self.redis.as_ref()
    }

    /// `(ready, body)`: the status is 200 when `ready`, 503 otherwise.
    pub fn report(&self) -> (bool, Value) {
        let mut ready = true;
        let mut body = Map::new();
        let redis = match &self.redis {
            None => "not_configured",
            Some(r) if r.is_up() => "up",
            Some(_) => {
                ready = false;
                "down"
            }
        };
        body.insert("redis".to_owned(), json!(redis));
        if let Some(m) = &self.revocations {
            let live = m.is_live();
            ready &= live;
            body.insert(
                "revocations".to_owned(),
                json!(if live { "live" } else { "stale" }),
            );
        }
        body.insert(
            "status".to_owned(),
            json!(if ready { "ready" } else { "degraded" }),
        );
        (ready, Value::Object(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_redis_it_is_ready() {
        assert_eq!(
            Readiness::default().report(),
            (true, json!({"status": "ready", "redis": "not_configured"}))
        );
    }

    #[tokio::test]
    async fn a_redis_that_does_not_answer_is_named() {
        let port = testkit::free_port();
        let redis = crate::redis::connect(&crate::redis::RedisSettings::at(format!(
            "redis://:secret@127.0.0.1:{port}"
        )))
        .unwrap()
        .unwrap();
        redis.first_probe().await;
        let (ready, body) = Readiness::new(Some(redis)).report();
        assert!(!ready);
        assert_eq!(body, json!({"status": "degraded", "redis": "down"}));
    }
}
