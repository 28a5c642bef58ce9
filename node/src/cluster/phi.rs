//! Phi-accrual failure detection (Hayashibara et al.): instead of a fixed timeout, how
//! surprising the current silence is given the heartbeat arrivals seen so far.
//!
//! Pure: time is passed in. `phi = -log10(P(an interval this long or longer))`, with
//! intervals modelled as normal (the logistic approximation Akka uses). Phi 8 means the
//! silence had about a one-in-10^8 chance under the observed rhythm.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Arrival intervals remembered.
const WINDOW: usize = 100;
/// Spread never assumed smaller than this, so a very regular rhythm is not over-trusted.
const MIN_STD_MS: f64 = 50.0;

/// Heartbeat arrival history of one member.
#[derive(Debug, Clone)]
pub struct PhiDetector {
    last: Option<Instant>,
    intervals: VecDeque<f64>,
    expected_ms: f64,
}

impl PhiDetector {
    /// A detector that, before any interval is seen, expects one heartbeat per `expected`.
    pub fn new(expected: Duration) -> Self {
        PhiDetector {
            last: None,
            intervals: VecDeque::with_capacity(WINDOW),
            expected_ms: expected.as_secs_f64() * 1000.0,
        }
    }

    /// A heartbeat arrived at `now`.
    pub fn heartbeat(&mut self, now: Instant) {
        if let Some(last) = self.last {
            if self.intervals.len() == WINDOW {
                self.intervals.pop_front();
            }
            self.intervals
                .push_back(now.saturating_duration_since(last).as_secs_f64() * 1000.0);
        }
        self.last = Some(now);
    }

    fn mean_std(&self) -> (f64, f64) {
        if self.intervals.is_empty() {
            return (self.expected_ms, (self.expected_ms / 4.0).max(MIN_STD_MS));
        }
        let n = self.intervals.len() as f64;
        let mean = self.intervals.iter().sum::<f64>() / n;
        let var = self
            .intervals
            .iter()
            .map(|x| (x - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, var.sqrt().max(mean / 4.0).max(MIN_STD_MS))
    }

    /// How long since the last heartbeat, `None` before the first (for error messages).
    pub fn silent_for(&self, now: Instant) -> Option<Duration> {
        self.last.map(|l| now.saturating_duration_since(l))
    }

    /// Suspicion at `now`: infinite before the first heartbeat. One expected interval of
    /// silence is always tolerated on top of the learned rhythm (a busy machine's pause).
    pub fn phi(&self, now: Instant) -> f64 {
        let Some(last) = self.last else {
            return f64::INFINITY;
        };
        let t = now.saturating_duration_since(last).as_secs_f64() * 1000.0;
        let (mean, std) = self.mean_std();
        let mean = mean + self.expected_ms;
        let y = (t - mean) / std;
        let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
        if t > mean {
            -(e / (1.0 + e)).log10()
        } else {
            -(1.0 - 1.0 / (1.0 + e)).log10()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steady(every_ms: u64, beats: u32) -> (PhiDetector, Instant) {
        let mut d = PhiDetector::new(Duration::from_millis(every_ms));
        let start = Instant::now();
        for i in 0..beats {
            d.heartbeat(start + Duration::from_millis(every_ms * i as u64));
        }
        (
            d,
            start + Duration::from_millis(every_ms * (beats - 1) as u64),
        )
    }

    #[test]
    fn phi_grows_with_silence() {
        let (d, last) = steady(1000, 20);
        let at = |ms| d.phi(last + Duration::from_millis(ms));
        assert!(at(500) < 1.0);
        assert!(at(1000) < at(2000) && at(2000) < at(3000) && at(3000) < at(5000));
        assert!(
            at(10_000) > 8.0,
            "10 s of silence after a 1 s rhythm is a failure"
        );
    }

    #[test]
    fn a_jittery_rhythm_is_given_more_slack() {
        let mut jittery = PhiDetector::new(Duration::from_secs(1));
        let start = Instant::now();
        let mut t = start;
        for i in 0..40 {
            t += Duration::from_millis(if i % 2 == 0 { 300 } else { 1700 });
            jittery.heartbeat(t);
        }
        let (steady, last) = steady(1000, 40);
        let silence = Duration::from_millis(3500);
        assert!(jittery.phi(t + silence) < steady.phi(last + silence));
    }

    #[test]
    fn unknown_members_are_suspect_and_first_beats_use_the_expected_rhythm() {
        let mut d = PhiDetector::new(Duration::from_secs(1));
        let now = Instant::now();
        assert!(d.phi(now).is_infinite());
        d.heartbeat(now);
        assert!(d.phi(now + Duration::from_millis(900)) < 8.0);
        assert!(d.phi(now + Duration::from_secs(10)) > 8.0);
    }
}
