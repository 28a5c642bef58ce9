//! Where a node reads wall-clock time: TTL deadlines, version timestamps, hint ages,
//! tombstone grace and repair times.
//!
//! Time is a seam, not a global: a node is built with one `Arc<dyn Clock>` and every layer
//! reads it, so a simulation can move a whole node's time by hand. Invariants kept here:
//! - `SystemClock` is the only place a node asks the operating system for wall-clock time;
//! - `ManualClock` moves only when told to, so a test or simulation decides every instant.
//!
//! Timeouts and failure detection measure elapsed time with the monotonic clock of the
//! async runtime instead; this clock is for instants that are stored or compared across
//! nodes.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, shared by every layer of a node.
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The operating system's wall clock: what a real node runs on.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// The system clock as a node's shared clock, the default everywhere.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A clock that stands still until moved, for tests and simulations.
#[derive(Debug, Default)]
pub struct ManualClock {
    ms: AtomicU64,
}

impl ManualClock {
    /// A clock reading `start_ms`.
    pub fn new(start_ms: u64) -> ManualClock {
        ManualClock {
            ms: AtomicU64::new(start_ms),
        }
    }

    /// Move time forward by `by` (saturating at the end of time).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        // fetch_update never fails here: the closure always returns Some.
        let _ = self
            .ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |ms| {
                Some(ms.saturating_add(by))
            });
    }

    /// Set the time outright (wall clocks may also step backwards).
    pub fn set(&self, ms: u64) {
        self.ms.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now_ms(), 1_000);
        assert_eq!(c.now_ms(), 1_000, "reading does not move it");
        c.advance(Duration::from_millis(250));
        assert_eq!(c.now_ms(), 1_250);
        c.set(10);
        assert_eq!(c.now_ms(), 10);
        c.advance(Duration::MAX);
        assert_eq!(c.now_ms(), u64::MAX, "saturates instead of wrapping");
    }

    #[test]
    fn the_system_clock_reads_epoch_milliseconds() {
        let now = system().now_ms();
        assert!(
            now > 1_577_836_800_000,
            "{now} ms is before 2020: not epoch milliseconds"
        );
        assert!(
            now < 4_102_444_800_000,
            "{now} ms is after 2100: not epoch milliseconds"
        );
    }
}
