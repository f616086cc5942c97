//! Shared helpers: Redis fixtures, audit-event capture.

use std::sync::{Mutex, Once};
use std::thread::ThreadId;
use std::time::Duration;

use ratelimit::{Decision, Limiter, Policy, RedisLimiter};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Generous: the tests must not fail because a loaded CI machine is slow.
pub const TEST_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn check(limiter: &dyn Limiter, key: &str, cost: u32, policy: &Policy) -> Decision {
    limiter
        .check(key, cost, policy)
        .await
        .unwrap_or_else(|e| panic!("check({key}, {cost}) failed: {e}"))
}

pub async fn redis_limiter(server: &testkit::RedisServer) -> RedisLimiter {
    RedisLimiter::connect(&server.url(), TEST_REDIS_TIMEOUT)
        .await
        .unwrap()
}

/// A plain connection for inspecting what the script stored.
pub async fn raw_connection(server: &testkit::RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Every `audit` event logged in this test binary, with the thread that
/// logged it. A single global subscriber (rather than one scoped subscriber
/// per test) avoids tracing's per-callsite interest cache dropping events
/// when tests run in parallel.
static AUDIT_LOG: Mutex<Vec<(ThreadId, String)>> = Mutex::new(Vec::new());

/// The `event` names of `audit` events logged on the current thread since
/// [`capture`](Self::capture) (use with current-thread runtimes, the
/// `#[tokio::test]` default, so the limiter runs on the test's thread).
pub struct AuditEvents {
    thread: ThreadId,
}

impl AuditEvents {
    pub fn capture() -> Self {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(GlobalCapture),
            )
            .expect("no other global subscriber in this test binary");
        });
        let thread = std::thread::current().id();
        AUDIT_LOG.lock().unwrap().retain(|(t, _)| *t != thread);
        Self { thread }
    }

    pub fn all(&self) -> Vec<String> {
        AUDIT_LOG
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t == self.thread)
            .map(|(_, name)| name.clone())
            .collect()
    }

    pub fn count(&self, name: &str) -> usize {
        self.all().iter().filter(|n| *n == name).count()
    }
}

struct GlobalCapture;

impl<S: Subscriber> Layer<S> for GlobalCapture {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "audit" {
            return;
        }
        let mut name = EventName(None);
        event.record(&mut name);
        if let Some(name) = name.0 {
            AUDIT_LOG
                .lock()
                .unwrap()
                .push((std::thread::current().id(), name));
        }
    }
}

struct EventName(Option<String>);

impl Visit for EventName {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "event" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "event" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}
