//! Which keys have a Redis call in flight, and the checks waiting for it
//! (see [`RedisLimiter`](crate::RedisLimiter)).
//!
//! Sharded by key so concurrent checks of different keys rarely meet on a
//! lock; a lock is held only to look a key up and push or take its queue.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use crate::{Decision, LimiterError, Policy};

/// The most checks one call decides (the script's arguments stay small);
/// the rest wait for the call after.
pub(crate) const MAX_BATCH: usize = 64;

const SHARDS: usize = 64;

/// What one check's answer travels on.
pub(crate) type Reply = oneshot::Receiver<Result<Decision, LimiterError>>;

/// How a check reaches Redis.
pub(crate) enum Turn {
    /// No call for the key was in flight: this check's own call is the one
    /// now; hand off when it is over.
    Lead,
    /// A call for the key is in flight: the answer comes with the next one.
    Wait(Reply),
    /// A call for the key is in flight under another policy: call alone.
    Alone,
}

/// A check waiting for the next call of its key.
pub(crate) struct Waiter {
    pub cost: u32,
    pub reply: oneshot::Sender<Result<Decision, LimiterError>>,
}

/// The checks of one key that go out together.
pub(crate) struct Batch {
    pub policy: Policy,
    pub waiters: Vec<Waiter>,
}

/// One shard: keys with a call in flight and the checks queued behind it.
type Shard = HashMap<Box<str>, Batch>;

/// The keys with a call in flight, each with the checks that arrived since.
pub(crate) struct InFlight {
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

impl Default for InFlight {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl InFlight {
    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        // The maps stay consistent whatever panicked while holding a lock
        // (every update is one insert, push or remove).
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks `key` in flight and leads, or queues behind the call in flight.
    pub(crate) fn join(&self, key: &str, cost: u32, policy: &Policy) -> Turn {
        let mut shard = self.shard(key);
        match shard.get_mut(key) {
            None => {
                shard.insert(
                    key.into(),
                    Batch {
                        policy: *policy,
                        waiters: Vec::new(),
                    },
                );
                Turn::Lead
            }
            Some(batch) if batch.policy == *policy => {
                let (reply, answer) = oneshot::channel();
                batch.waiters.push(Waiter { cost, reply });
                Turn::Wait(answer)
            }
            Some(_) => Turn::Alone,
        }
    }

    /// The call in flight for `key` is over: the next batch (up to
    /// [`MAX_BATCH`] checks, in arrival order), whose call is then the one
    /// in flight, or `None` and the key is no longer in flight.
    pub(crate) fn next_batch(&self, key: &str) -> Option<Batch> {
        let mut shard = self.shard(key);
        let queued = shard.get_mut(key)?;
        if queued.waiters.is_empty() {
            shard.remove(key);
            return None;
        }
        let rest = queued.waiters.len().saturating_sub(MAX_BATCH);
        let waiters = if rest == 0 {
            std::mem::take(&mut queued.waiters)
        } else {
            let later = queued.waiters.split_off(MAX_BATCH);
            std::mem::replace(&mut queued.waiters, later)
        };
        Some(Batch {
            policy: queued.policy,
            waiters,
        })
    }

    /// Forgets `key` and fails every check waiting for it (their senders
    /// are dropped).
    pub(crate) fn abandon(&self, key: &str) {
        self.shard(key).remove(key);
    }

    /// How many keys have a call in flight (tests).
    #[cfg(test)]
    fn keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::new(60, 10).unwrap()
    }

    #[test]
    fn the_first_check_leads_and_the_others_queue_in_order() {
        let in_flight = InFlight::default();
        assert!(matches!(in_flight.join("k", 1, &policy()), Turn::Lead));
        assert!(matches!(in_flight.join("k", 2, &policy()), Turn::Wait(_)));
        assert!(matches!(in_flight.join("k", 3, &policy()), Turn::Wait(_)));
        // Another key is independent.
        assert!(matches!(in_flight.join("other", 1, &policy()), Turn::Lead));

        let batch = in_flight.next_batch("k").unwrap();
        let costs: Vec<u32> = batch.waiters.iter().map(|w| w.cost).collect();
        assert_eq!(costs, [2, 3]);
        // The batch's call is now in flight: a new check queues behind it.
        assert!(matches!(in_flight.join("k", 4, &policy()), Turn::Wait(_)));
        assert_eq!(in_flight.next_batch("k").unwrap().waiters.len(), 1);
        // Nothing queued: the key is free again and the next check leads.
        assert!(in_flight.next_batch("k").is_none());
        assert!(matches!(in_flight.join("k", 1, &policy()), Turn::Lead));
        assert!(in_flight.next_batch("k").is_none());
        assert!(in_flight.next_batch("other").is_none());
        assert_eq!(in_flight.keys(), 0);
    }

    #[test]
    fn a_batch_holds_at_most_max_batch_checks() {
        let in_flight = InFlight::default();
        assert!(matches!(in_flight.join("k", 1, &policy()), Turn::Lead));
        let _answers: Vec<Turn> = (0..MAX_BATCH + 5)
            .map(|i| in_flight.join("k", u32::try_from(i).unwrap(), &policy()))
            .collect();
        let first = in_flight.next_batch("k").unwrap();
        assert_eq!(first.waiters.len(), MAX_BATCH);
        assert_eq!(first.waiters[0].cost, 0);
        let second = in_flight.next_batch("k").unwrap();
        let costs: Vec<u32> = second.waiters.iter().map(|w| w.cost).collect();
        assert_eq!(costs, [64, 65, 66, 67, 68]);
        assert!(in_flight.next_batch("k").is_none());
    }

    #[test]
    fn another_policy_does_not_join_the_batch() {
        let in_flight = InFlight::default();
        assert!(matches!(in_flight.join("k", 1, &policy()), Turn::Lead));
        let other = Policy::new(1, 1).unwrap();
        assert!(matches!(in_flight.join("k", 1, &other), Turn::Alone));
        assert!(in_flight.next_batch("k").is_none());
    }

    #[test]
    fn abandoning_a_key_fails_its_waiters() {
        let in_flight = InFlight::default();
        assert!(matches!(in_flight.join("k", 1, &policy()), Turn::Lead));
        let Turn::Wait(mut answer) = in_flight.join("k", 1, &policy()) else {
            panic!("expected to wait");
        };
        in_flight.abandon("k");
        assert!(matches!(
            answer.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert_eq!(in_flight.keys(), 0);
    }
}
