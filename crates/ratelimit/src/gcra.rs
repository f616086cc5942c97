//! The GCRA arithmetic, shared by the in-memory back end and mirrored line
//! by line by the Redis script (`gcra.lua`).
//!
//! All times are integer microseconds on the back end's clock. A key's only
//! state is its TAT (theoretical arrival time): the instant at which its
//! bucket would be full again. With `T` the emission interval and
//! `capacity = burst * T`, a request costing `c` at `now` is allowed iff
//! `max(tat, now) + c*T - now <= capacity`, and then the new TAT is
//! `max(tat, now) + c*T`.

use std::time::Duration;

use crate::{Decision, Policy};

/// The result of one step: the decision and, when the request was allowed
/// and changed the state, the TAT to store (it expires `reset_after` later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    pub decision: Decision,
    pub new_tat: Option<u64>,
}

/// One GCRA step for a key whose stored TAT is `tat` (None when absent).
pub(crate) fn step(policy: &Policy, tat: Option<u64>, now: u64, cost: u32) -> Step {
    let interval = policy.interval_us();
    let burst = u64::from(policy.burst());
    let capacity = burst * interval;
    // An absent or past TAT means a full bucket.
    let tat = tat.map_or(now, |t| t.max(now));
    // 0 ..= capacity: an allowed step never stores more than `capacity` ahead.
    let used = (tat - now).min(capacity);
    let remaining_before = (capacity - used) / interval;

    let denied = |retry_us: u64| Step {
        decision: Decision {
            allowed: false,
            limit: policy.burst(),
            remaining: to_u32(remaining_before),
            retry_after: Duration::from_micros(retry_us),
            reset_after: Duration::from_micros(used),
        },
        new_tat: None,
    };

    let cost = u64::from(cost);
    if cost > burst {
        // Never allowed, however long the client waits.
        return denied(used.max(interval));
    }
    let new_tat = tat + cost * interval;
    let needed = new_tat - now;
    if needed > capacity {
        return denied(needed - capacity);
    }
    Step {
        decision: Decision {
            allowed: true,
            limit: policy.burst(),
            remaining: to_u32((capacity - needed) / interval),
            retry_after: Duration::ZERO,
            reset_after: Duration::from_micros(needed),
        },
        new_tat: (new_tat > now).then_some(new_tat),
    }
}

/// `remaining` is at most `burst`, which fits a u32 by construction.
fn to_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = 1_000_000;

    fn policy(rate: u32, burst: u32) -> Policy {
        Policy::new(rate, burst).unwrap()
    }

    #[test]
    fn fresh_key_spends_the_burst_then_waits_one_interval() {
        let p = policy(60, 3); // T = 1 s
        let now = 100 * S;
        let a = step(&p, None, now, 1);
        assert!(a.decision.allowed);
        assert_eq!(a.decision.remaining, 2);
        assert_eq!(a.decision.reset_after, Duration::from_secs(1));
        assert_eq!(a.new_tat, Some(now + S));
        let b = step(&p, a.new_tat, now, 1);
        let c = step(&p, b.new_tat, now, 1);
        assert_eq!(c.decision.remaining, 0);
        assert_eq!(c.new_tat, Some(now + 3 * S));
        let d = step(&p, c.new_tat, now, 1);
        assert_eq!(
            d.decision,
            Decision {
                allowed: false,
                limit: 3,
                remaining: 0,
                retry_after: Duration::from_secs(1),
                reset_after: Duration::from_secs(3),
            }
        );
        assert_eq!(d.new_tat, None);
    }

    #[test]
    fn cost_above_burst_is_denied_with_at_least_one_interval() {
        let p = policy(60, 3);
        let d = step(&p, None, 10 * S, 4).decision;
        assert!(!d.allowed);
        assert_eq!(d.remaining, 3);
        assert_eq!(d.retry_after, Duration::from_secs(1));
        assert_eq!(d.reset_after, Duration::ZERO);
        // Partly used bucket: wait until it is full.
        let d = step(&p, Some(12 * S + 500_000), 10 * S, 4).decision;
        assert_eq!(d.retry_after, Duration::from_micros(2_500_000));
        assert_eq!(d.remaining, 0);
    }

    #[test]
    fn cost_zero_peeks_without_spending() {
        let p = policy(60, 3);
        let s = step(&p, Some(13 * S), 10 * S, 0);
        assert!(s.decision.allowed);
        assert_eq!(s.decision.remaining, 0);
        assert_eq!(s.new_tat, Some(13 * S));
        assert_eq!(step(&p, None, 10 * S, 0).new_tat, None);
    }

    #[test]
    fn truncated_interval_for_rates_that_do_not_divide_a_minute() {
        let p = policy(7, 1); // T = 8_571_428 us
        assert_eq!(p.emission_interval(), Duration::from_micros(8_571_428));
        let a = step(&p, None, 0, 1);
        let d = step(&p, a.new_tat, 0, 1).decision;
        assert_eq!(d.retry_after, Duration::from_micros(8_571_428));
    }

    fn policies() -> impl Strategy<Value = Policy> {
        (1u32..=Policy::MAX_RATE_PER_MINUTE, 1u32..=1000).prop_map(|(r, b)| policy(r, b))
    }

    proptest! {
        /// Waiting exactly `retry_after` is enough, one microsecond less is not.
        #[test]
        fn retry_after_is_exact(p in policies(), used in 0u64..=1000, off in 0u64..10_000_000, cost in 1u32..=1000) {
            prop_assume!(cost <= p.burst());
            let now = 1_000 * S;
            let tat = now + (used.min(u64::from(p.burst())) * p.interval_us()).saturating_sub(off);
            let d = step(&p, Some(tat), now, cost).decision;
            if !d.allowed {
                let wait = u64::try_from(d.retry_after.as_micros()).unwrap();
                prop_assert!(wait > 0);
                prop_assert!(step(&p, Some(tat), now + wait, cost).decision.allowed);
                prop_assert!(!step(&p, Some(tat), now + wait - 1, cost).decision.allowed);
            }
        }

        /// Over any sequence, what was allowed never exceeds
        /// burst + elapsed / T, and remaining never exceeds the burst.
        #[test]
        fn never_exceeds_burst_plus_rate(p in policies(), ops in prop::collection::vec((0u64..3_000_000, 0u32..4), 1..200)) {
            let t = p.interval_us();
            let start = 5 * S;
            let mut now = start;
            let mut tat = None;
            let mut spent = 0u64;
            for (advance, cost) in ops {
                now += advance % (3 * t);
                let s = step(&p, tat, now, cost);
                prop_assert!(s.decision.remaining <= p.burst());
                prop_assert_eq!(s.decision.limit, p.burst());
                if s.decision.allowed {
                    spent += u64::from(cost);
                    if s.new_tat.is_some() { tat = s.new_tat; }
                    prop_assert_eq!(s.decision.retry_after, Duration::ZERO);
                } else {
                    prop_assert!(s.new_tat.is_none());
                }
                prop_assert!(spent <= u64::from(p.burst()) + (now - start) / t);
            }
        }

        /// `remaining` is exactly how many unit-cost requests fit right now.
        #[test]
        fn remaining_counts_what_fits(p in policies(), used in 0u64..=1000, off in 0u64..10_000_000) {
            let now = 1_000 * S;
            let tat = now + (used.min(u64::from(p.burst())) * p.interval_us()).saturating_sub(off);
            let first = step(&p, Some(tat), now, 0).decision;
            let mut state = Some(tat);
            let mut fit = 0u32;
            while fit <= p.burst() {
                let s = step(&p, state, now, 1);
                if !s.decision.allowed { break; }
                state = s.new_tat;
                fit += 1;
            }
            prop_assert_eq!(fit, first.remaining);
        }

        /// After the bucket's reset time, the key behaves like a fresh one.
        #[test]
        fn state_after_reset_equals_fresh(p in policies(), cost in 1u32..=1000, later in 0u64..1_000_000) {
            prop_assume!(cost <= p.burst());
            let now = 1_000 * S;
            let s = step(&p, None, now, cost);
            let reset = u64::try_from(s.decision.reset_after.as_micros()).unwrap();
            let when = now + reset + later;
            prop_assert_eq!(step(&p, s.new_tat, when, cost).decision, step(&p, None, when, cost).decision);
        }
    }
}
