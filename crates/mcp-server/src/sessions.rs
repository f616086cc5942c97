//! Which client opened which 2025-11-25 session (`Mcp-Session-Id`): the
//! map behind [`session_binding`](crate::middleware::session_binding).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// rmcp closes a session after 5 idle minutes; entries idle for longer are dead.
const IDLE_FORGET: Duration = Duration::from_secs(10 * 60);
/// Size at which dead entries are swept.
const SWEEP_AT: usize = 4096;

struct Owner {
    client_id: String,
    last_seen: Instant,
}

/// Session id → owning principal ([`Caller::principal`](crate::policy::Caller::principal): the client, or the client and user).
#[derive(Default)]
pub struct SessionOwners {
    map: Mutex<HashMap<String, Owner>>,
}

/// What the binding says about a request's session.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Unknown here (rmcp decides), or owned by this client.
    Allow,
    /// Owned by another client.
    Foreign,
}

impl SessionOwners {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Owner>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks `session` for the principal `client_id` and refreshes its last use.
    pub fn check(&self, session: &str, client_id: &str) -> Verdict {
        let mut map = self.lock();
        match map.get_mut(session) {
            Some(owner) if owner.client_id != client_id => Verdict::Foreign,
            Some(owner) => {
                owner.last_seen = Instant::now();
                Verdict::Allow
            }
            None => Verdict::Allow,
        }
    }

    pub fn insert(&self, session: &str, client_id: &str) {
        let mut map = self.lock();
        if map.len() >= SWEEP_AT {
            map.retain(|_, o| o.last_seen.elapsed() < IDLE_FORGET);
        }
        map.insert(
            session.to_owned(),
            Owner {
                client_id: client_id.to_owned(),
                last_seen: Instant::now(),
            },
        );
    }

    pub fn remove(&self, session: &str) {
        self.lock().remove(session);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        let o = SessionOwners::default();
        assert_eq!(o.check("s1", "a"), Verdict::Allow, "unknown: rmcp decides");
        o.insert("s1", "a");
        assert_eq!(o.check("s1", "a"), Verdict::Allow);
        assert_eq!(o.check("s1", "b"), Verdict::Foreign);
        o.remove("s1");
        assert_eq!(o.check("s1", "b"), Verdict::Allow);
        assert!(o.is_empty());
    }
}
