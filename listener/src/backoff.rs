//! How long to wait before trying again: the one formula of every retry loop
//! (throttled writes, failed receives, a failing table), so they cannot drift.

use std::time::Duration;

use rand::Rng;

/// An exponential backoff: `base` doubled each attempt up to `cap`, with equal
/// jitter (a wait between half and all of that), so retries spread out without
/// ever retrying at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub base: Duration,
    /// The longest wait.
    pub cap: Duration,
}

impl Backoff {
    /// The wait before attempt `attempt + 1`, after `attempt` failures (1 or more).
    pub fn wait(self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        let jitter = rand::rng().random_range(0..=(ceiling - half).as_millis() as u64);
        half + Duration::from_millis(jitter)
    }

    /// The most [`Backoff::wait`] returns after `attempt` failures.
    pub fn ceiling(self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        self.base.saturating_mul(1 << doublings).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const B: Backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(2),
    };

    #[test]
    fn waits_double_from_the_base_until_the_cap() {
        let ceilings: Vec<u128> = (1..=7).map(|a| B.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(B.ceiling(u32::MAX), B.cap);
    }

    proptest! {
        #[test]
        fn a_wait_lies_between_half_and_all_of_its_ceiling(attempt in 1u32..100) {
            let (w, c) = (B.wait(attempt), B.ceiling(attempt));
            prop_assert!(w >= c / 2 && w <= c, "{w:?} for ceiling {c:?}");
        }
    }
}
