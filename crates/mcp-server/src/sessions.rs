//! Which client opened which 2025-11-25 session (`Mcp-Session-Id`): the
//! map behind [`session_binding`](crate::middleware::session_binding), and
//! when rmcp last saw each session (the direct path, [`crate::direct`],
//! serves a session's `tools/call` only while rmcp's idle timer is far from
//! running out: see [`RMCP_REFRESH`]).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// rmcp closes a session after 5 idle minutes; entries idle for longer are dead.
const IDLE_FORGET: Duration = Duration::from_secs(10 * 60);
/// Number of independently locked parts of the map (a power of two). Every
/// request that names a session takes one part's lock for a lookup, so
/// requests of different sessions seldom meet on a lock.
const SHARDS: usize = 64;
/// Size at which a part first sweeps its dead entries (4096 in all).
const SWEEP_AT: usize = 4096 / SHARDS;
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

struct Shard {
    owners: HashMap<String, Owner>,
    /// The size at which the next insert sweeps: twice what the last sweep
    /// left (at least [`SWEEP_AT`]), so a part full of live sessions is
    /// swept once per doubling, not on every insert.
    sweep_at: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            owners: HashMap::new(),
            sweep_at: SWEEP_AT,
        }
    }
}

/// Session id → owning principal ([`Caller::principal`](crate::policy::Caller::principal): the client, or the client and user).
///
/// [`SHARDS`] parts, each behind its own lock and picked by a keyed hash of
/// the session id: no lock is shared by every request.
pub struct SessionOwners {
    shards: Box<[Mutex<Shard>]>,
    pick: std::collections::hash_map::RandomState,
}

impl Default for SessionOwners {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            pick: std::collections::hash_map::RandomState::new(),
        }
    }
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
    fn shard(&self, session: &str) -> MutexGuard<'_, Shard> {
        // `SHARDS` is a power of two: the low bits of the hash pick the part.
        #[allow(clippy::cast_possible_truncation)] // only the low bits are used
        let i = self.pick.hash_one(session) as usize & (SHARDS - 1);
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks `session` for the principal `client_id` and refreshes its last use.
    pub fn check(&self, session: &str, client_id: &str) -> Verdict {
        self.check_at(session, client_id, Instant::now())
    }

    fn check_at(&self, session: &str, client_id: &str, now: Instant) -> Verdict {
        let mut shard = self.shard(session);
        match shard.owners.get_mut(session) {
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
        self.insert_at(session, client_id, Instant::now());
    }

    fn insert_at(&self, session: &str, client_id: &str, now: Instant) {
        let mut shard = self.shard(session);
        if shard.owners.len() >= shard.sweep_at {
            shard
                .owners
                .retain(|_, o| now.saturating_duration_since(o.last_seen) < IDLE_FORGET);
            shard.sweep_at = (shard.owners.len() * 2).max(SWEEP_AT);
        }
        shard.owners.insert(
            session.to_owned(),
            Owner {
                client_id: client_id.to_owned(),
                last_seen: now,
                rmcp_seen: now,
            },
        );
    }

    pub fn remove(&self, session: &str) {
        self.shard(session).owners.remove(session);
    }

    /// Sessions remembered (live, and dead ones not yet swept).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .owners
                    .len()
            })
            .sum()
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

    /// Dead entries go when their part reaches the sweep size; live ones
    /// stay, and a part full of live sessions is not swept again until it
    /// has doubled (not on every insert).
    #[test]
    fn dead_sessions_are_swept_and_live_ones_kept() {
        let o = SessionOwners::default();
        let start = Instant::now();
        let n = SHARDS * SWEEP_AT * 2;
        for i in 0..n {
            o.insert_at(&format!("old-{i}"), "a", start);
        }
        assert_eq!(o.len(), n, "nothing is idle yet: all kept");
        for shard in &*o.shards {
            let shard = shard.lock().unwrap();
            // Above the first sweep size, the next sweep waits for growth.
            assert!(
                shard.owners.len() <= SWEEP_AT || shard.sweep_at > SWEEP_AT,
                "a part of live sessions would sweep on every insert"
            );
            assert!(shard.sweep_at >= shard.owners.len());
        }
        let later = start + IDLE_FORGET + Duration::from_secs(1);
        for i in 0..4 * n {
            o.insert_at(&format!("new-{i}"), "a", later);
        }
        assert_eq!(
            o.check_at("new-0", "a", later),
            Verdict::Owned { direct: true }
        );
        let old_left = (0..n)
            .filter(|i| o.check_at(&format!("old-{i}"), "a", later) != Verdict::Unknown)
            .count();
        assert_eq!(old_left, 0, "dead sessions still remembered");
        assert!(
            (0..4 * n).all(|i| o.check_at(&format!("new-{i}"), "a", later) != Verdict::Unknown),
            "a live session was swept"
        );
    }

    /// A session id always lands in the same part: checks and removal find it.
    #[test]
    fn every_session_is_found_in_its_part() {
        let o = SessionOwners::default();
        for i in 0..1000 {
            o.insert(&format!("s-{i}"), &format!("c-{}", i % 7));
        }
        assert_eq!(o.len(), 1000);
        for i in 0..1000 {
            assert_eq!(
                o.check(&format!("s-{i}"), &format!("c-{}", i % 7)),
                Verdict::Owned { direct: true }
            );
            assert_eq!(
                o.check(&format!("s-{i}"), &format!("c-{}", (i + 1) % 7)),
                Verdict::Foreign
            );
        }
        for i in 0..1000 {
            o.remove(&format!("s-{i}"));
        }
        assert!(o.is_empty());
    }
}
