//! Which client opened which 2025-11-25 session (`Mcp-Session-Id`): the
//! map behind [`session_binding`](crate::middleware::session_binding), and
//! when rmcp last saw each session (the direct path, [`crate::direct`],
//! serves a session's `tools/call` only while rmcp's idle timer is far from
//! running out: see [`RMCP_REFRESH`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// rmcp closes a session after 5 idle minutes; entries idle for longer are dead.
const IDLE_FORGET: Duration = Duration::from_secs(10 * 60);
/// Size at which dead entries are swept.
const SWEEP_AT: usize = 4096;
/// rmcp closes a session whose worker has had no message for 5 minutes
/// (`SessionConfig::DEFAULT_KEEP_ALIVE`), and requests the direct path
/// answers never reach that worker. A session's request goes to rmcp when
/// rmcp has not seen the session for this long, which restarts its timer
/// long before it runs out.
pub const RMCP_REFRESH: Duration = Duration::from_secs(60);

struct Owner {
    client_id: String,
    last_seen: Instant,
    /// When a request of this session last went to rmcp.
    rmcp_seen: Instant,
}

/// Session id → owning principal ([`Caller::principal`](crate::policy::Caller::principal): the client, or the client and user).
#[derive(Default)]
pub struct SessionOwners {
    map: Mutex<HashMap<String, Owner>>,
}

/// What the binding says about a request's session.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Unknown here: rmcp decides.
    Unknown,
    /// Opened by this principal. `direct`: rmcp saw the session less than
    /// [`RMCP_REFRESH`] ago, so the direct path may answer it; when `false`
    /// the request is counted as rmcp's (it goes there).
    Owned { direct: bool },
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
        self.check_at(session, client_id, Instant::now())
    }

    fn check_at(&self, session: &str, client_id: &str, now: Instant) -> Verdict {
        let mut map = self.lock();
        match map.get_mut(session) {
            Some(owner) if owner.client_id != client_id => Verdict::Foreign,
            Some(owner) => {
                owner.last_seen = now;
                let direct = now.saturating_duration_since(owner.rmcp_seen) < RMCP_REFRESH;
                if !direct {
                    owner.rmcp_seen = now;
                }
                Verdict::Owned { direct }
            }
            None => Verdict::Unknown,
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
                rmcp_seen: Instant::now(),
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
        assert_eq!(
            o.check("s1", "a"),
            Verdict::Unknown,
            "unknown: rmcp decides"
        );
        o.insert("s1", "a");
        assert_eq!(o.check("s1", "a"), Verdict::Owned { direct: true });
        assert_eq!(o.check("s1", "b"), Verdict::Foreign);
        o.remove("s1");
        assert_eq!(o.check("s1", "b"), Verdict::Unknown);
        assert!(o.is_empty());
    }

    /// Once rmcp has not seen a session for `RMCP_REFRESH`, exactly one
    /// request goes to rmcp (restarting its idle timer), and the next ones
    /// may be direct again.
    #[test]
    fn a_session_goes_back_to_rmcp_before_its_idle_timer_runs_out() {
        let o = SessionOwners::default();
        o.insert("s1", "a");
        let now = Instant::now();
        let almost = now + RMCP_REFRESH - Duration::from_millis(1);
        assert_eq!(
            o.check_at("s1", "a", almost),
            Verdict::Owned { direct: true }
        );
        let later = now + RMCP_REFRESH + Duration::from_millis(1);
        assert_eq!(
            o.check_at("s1", "a", later),
            Verdict::Owned { direct: false }
        );
        assert_eq!(
            o.check_at("s1", "a", later),
            Verdict::Owned { direct: true }
        );
        let much_later = later + RMCP_REFRESH;
        assert_eq!(
            o.check_at("s1", "a", much_later),
            Verdict::Owned { direct: false }
        );
        assert_eq!(o.check_at("s1", "b", much_later), Verdict::Foreign);
    }
}
