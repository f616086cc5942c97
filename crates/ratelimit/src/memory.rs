//! In-memory GCRA back end: one TAT per key in a sharded map.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::{Clock, MonotonicClock, micros};
use crate::{Decision, Limiter, LimiterError, Policy, gcra};

/// A shard is swept (expired keys dropped) when it grows past this many keys
/// and past twice its size after the previous sweep: amortised O(1) per
/// check, and memory bounded by about twice the number of live keys.
const MIN_SWEEP_LEN: usize = 1024;

/// GCRA in process memory, for a single replica (or as the fallback when
/// Redis is down).
///
/// Keys are spread over shards, each a `Mutex<HashMap<key, TAT>>`, chosen by
/// a randomly seeded hash, so concurrent checks of different keys rarely
/// contend and no global lock exists. The critical section is a map lookup
/// and a few integer operations. A key whose bucket is full again holds no
/// information and is dropped by lazy sweeps ([`sweep`](Self::sweep) forces
/// one).
#[derive(Debug)]
pub struct MemoryLimiter {
    shards: Box<[Padded<Mutex<Shard>>]>,
    hasher: std::hash::RandomState,
    clock: Arc<dyn Clock>,
}

/// One shard per cache-line pair, so threads working on different shards do
/// not invalidate each other's lines (false sharing).
#[derive(Debug)]
#[repr(align(128))]
struct Padded<T>(T);

#[derive(Debug, Default)]
struct Shard {
    tats: HashMap<Box<str>, u64>,
    sweep_at: usize,
}

impl MemoryLimiter {
    /// A limiter on the monotonic clock with 4 shards per CPU (a power of two).
    pub fn new() -> Self {
        Self::with_clock(Arc::new(MonotonicClock::new()))
    }

    /// A limiter reading time from `clock` (tests pass a
    /// [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        Self::with_clock_and_shards(clock, cpus * 4)
    }

    /// A limiter with `shards` shards (rounded up to a power of two, at least 1).
    pub fn with_clock_and_shards(clock: Arc<dyn Clock>, shards: usize) -> Self {
        let n = shards.max(1).next_power_of_two();
        Self {
            shards: (0..n)
                .map(|_| {
                    Padded(Mutex::new(Shard {
                        tats: HashMap::new(),
                        sweep_at: MIN_SWEEP_LEN,
                    }))
                })
                .collect(),
            hasher: std::hash::RandomState::new(),
            clock,
        }
    }

    /// Checks at the clock's current time (the synchronous form of
    /// [`Limiter::check`]).
    pub fn check_now(&self, key: &str, cost: u32, policy: &Policy) -> Decision {
        self.check_at(key, cost, policy, self.clock.now())
    }

    /// Checks as if the clock read `now`: the seam for deterministic tests
    /// and simulations. `now` must not go backwards for a key by more than
    /// the tolerance the caller is prepared to see mis-limited.
    pub fn check_at(&self, key: &str, cost: u32, policy: &Policy, now: Duration) -> Decision {
        let now = micros(now);
        let mut shard = self.shard(key);
        if let Some(slot) = shard.tats.get_mut(key) {
            let step = gcra::step(policy, Some(*slot), now, cost);
            if let Some(new_tat) = step.new_tat {
                *slot = new_tat;
            }
            return step.decision;
        }
        let step = gcra::step(policy, None, now, cost);
        if let Some(new_tat) = step.new_tat {
            shard.maybe_sweep(now);
            shard.tats.insert(key.into(), new_tat);
        }
        step.decision
    }

    /// Number of keys currently stored (including not yet swept ones).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(&s.0).tats.len()).sum()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every key whose bucket is full again (it holds no information).
    pub fn sweep(&self) {
        let now = micros(self.clock.now());
        for shard in self.shards.iter() {
            lock(&shard.0).sweep(now);
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let hash = self.hasher.hash_one(key);
        // `shards.len()` is a power of two.
        let index = usize::try_from(hash).unwrap_or(usize::MAX) & (self.shards.len() - 1);
        lock(&self.shards[index].0)
    }
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Shard {
    fn maybe_sweep(&mut self, now: u64) {
        if self.tats.len() >= self.sweep_at {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: u64) {
        self.tats.retain(|_, tat| *tat > now);
        self.sweep_at = (self.tats.len() * 2).max(MIN_SWEEP_LEN);
    }
}

/// A panic while holding a shard lock cannot leave a TAT half-written (it
/// is a single `u64` store), so a poisoned lock is still safe to use.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl Limiter for MemoryLimiter {
    async fn check(&self, key: &str, cost: u32, policy: &Policy) -> Result<Decision, LimiterError> {
        Ok(self.check_now(key, cost, policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn expired_keys_are_swept_lazily_and_on_demand() {
        let clock = Arc::new(ManualClock::new(Duration::from_secs(10)));
        let limiter = MemoryLimiter::with_clock_and_shards(clock.clone(), 1);
        let policy = Policy::new(60, 2).unwrap(); // T = 1 s
        for i in 0..MIN_SWEEP_LEN {
            assert!(limiter.check_now(&format!("k{i}"), 1, &policy).allowed);
        }
        assert_eq!(limiter.len(), MIN_SWEEP_LEN);
        // Everything above is full again after 1 s; the next insert sweeps.
        clock.advance(Duration::from_secs(1));
        assert!(limiter.check_now("new", 1, &policy).allowed);
        assert_eq!(limiter.len(), 1);

        assert!(limiter.check_now("other", 2, &policy).allowed);
        clock.advance(Duration::from_secs(1));
        limiter.sweep();
        // "new" (TAT +1 s) is gone, "other" (TAT +2 s) is not full yet.
        assert_eq!(limiter.len(), 1);
        clock.advance(Duration::from_secs(1));
        limiter.sweep();
        assert!(limiter.is_empty());
    }

    #[test]
    fn memory_stays_bounded_under_a_stream_of_new_keys() {
        let clock = Arc::new(ManualClock::new(Duration::ZERO));
        let limiter = MemoryLimiter::with_clock_and_shards(clock.clone(), 4);
        let policy = Policy::new(60_000, 1).unwrap(); // T = 1 ms
        for i in 0..100_000 {
            limiter.check_now(&format!("ip:{i}"), 1, &policy);
            clock.advance(Duration::from_micros(100));
        }
        // Only keys from the last millisecond are live (10); each of the 4
        // shards sweeps by the time it holds 1024.
        assert!(limiter.len() <= 4 * MIN_SWEEP_LEN, "{} keys", limiter.len());
    }

    #[test]
    fn denied_checks_store_nothing() {
        let limiter = MemoryLimiter::with_clock(Arc::new(ManualClock::default()));
        let policy = Policy::new(60, 1).unwrap();
        assert!(!limiter.check_now("k", 2, &policy).allowed);
        assert!(limiter.is_empty());
    }
}
