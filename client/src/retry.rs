//! How persistently a request looks for a node that answers: the retry budget and the
//! backoff between passes over the candidates (which failures are retried at all is
//! `call`'s business).

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// How persistently a get, put or delete looks for a node that answers. Only failures
/// that are safe to retry are: a request that never reached a node, and a read's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls in all, across nodes and passes (at least one is always made).
    pub max_attempts: u32,
    /// Wait before the second pass over the candidates; it doubles for each further pass.
    pub initial_backoff: Duration,
    /// Longest wait between passes.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Four calls (every replica of a key at N = 3, then one more after a short wait),
    /// starting with a 25 ms backoff, at most 1 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// No retries: one call to the best candidate.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Wait before pass `pass` (1 for the second pass): `initial · 2^(pass-1)`, capped,
    /// with a random half of it taken off so clients that failed together spread out.
    pub(crate) fn backoff(&self, pass: u32) -> Duration {
        let full = self
            .initial_backoff
            .saturating_mul(1u32 << pass.saturating_sub(1).min(16))
            .min(self.max_backoff);
        full.mul_f64(0.5 + 0.5 * unit_random())
    }
}

/// A number in [0, 1) that differs between calls and processes, without a dependency.
pub(crate) fn unit_random() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_pass_within_bounds() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        };
        for _ in 0..50 {
            let b1 = p.backoff(1);
            assert!(b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100));
            let b2 = p.backoff(2);
            assert!(b2 >= Duration::from_millis(100) && b2 <= Duration::from_millis(200));
            let b9 = p.backoff(9);
            assert!(b9 >= Duration::from_millis(175) && b9 <= Duration::from_millis(350));
        }
        assert!(p.backoff(u32::MAX) <= Duration::from_millis(350));
    }

    #[test]
    fn jitter_varies() {
        let draws: Vec<f64> = (0..20).map(|_| unit_random()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]));
    }
}
