//! Sliding-window rate limits: an in-memory store (sharded, idle buckets evicted) and a Redis
//! store that several gateways share. Nothing here knows HTTP or policies.
//!
//! The window is the sliding-window counter: the count of the current fixed window plus the
//! previous window's count weighted by how much of it still overlaps the sliding window.
//! Rejected requests are not counted.

pub mod memory;
pub mod redis;
pub mod registry;

pub use memory::MemoryStore;
pub use registry::{LimiterSpec, RateLimits, StoreConfig};

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    pub capacity: u64,
    pub window: Duration,
}

impl Limit {
    pub fn window_ms(&self) -> u64 {
        (self.window.as_millis() as u64).max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Whole seconds until a request would pass (at least 1 when not allowed).
    pub retry_after_secs: u64,
}

impl Decision {
    pub const ALLOW: Decision = Decision {
        allowed: true,
        retry_after_secs: 0,
    };
}

/// Whether one more request fits: `prev` weighted by the part of the previous window still
/// inside the sliding window, plus `curr`, plus this request, at most `capacity`.
pub fn fits(prev: u64, curr: u64, elapsed_ms: u64, window_ms: u64, capacity: u64) -> bool {
    let w = window_ms as u128;
    let weighted_prev = prev as u128 * (w - (elapsed_ms as u128).min(w));
    weighted_prev + (curr as u128 + 1) * w <= capacity as u128 * w
}

/// The wait until a request would fit, if none arrives meanwhile, in whole seconds (≥ 1).
pub fn retry_after(prev: u64, curr: u64, elapsed_ms: u64, window_ms: u64, capacity: u64) -> u64 {
    let w = window_ms;
    let left_in_window = w - elapsed_ms.min(w);
    // Later in this window, as the previous window's weight decays.
    let in_this_window = (curr < capacity && prev > 0).then(|| {
        // prev * (w - e - t) <= (capacity - curr - 1) * w
        let room = (capacity - curr - 1) as u128 * w as u128;
        let keep = room / prev as u128; // the largest (w - e - t) allowed
        left_in_window.saturating_sub(keep.min(u64::MAX as u128) as u64)
    });
    let wait_ms = match in_this_window {
        Some(t) if t < left_in_window => t,
        _ => {
            // In the next window `curr` becomes the previous count: curr * (w - t') <= (cap-1) * w.
            let t_next = if curr == 0 {
                0
            } else {
                let room = capacity.saturating_sub(1) as u128 * w as u128;
                let keep = (room / curr as u128).min(w as u128) as u64;
                w - keep
            };
            left_in_window + t_next
        }
    };
    wait_ms.div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_counts_the_weighted_previous_window() {
        assert!(fits(0, 9, 0, 1000, 10));
        assert!(!fits(0, 10, 0, 1000, 10));
        // Half of the previous window still overlaps: 10 * 0.5 + 4 + 1 = 10.
        assert!(fits(10, 4, 500, 1000, 10));
        assert!(!fits(10, 5, 500, 1000, 10));
        assert!(fits(10, 0, 999, 1000, 10));
    }

    #[test]
    fn retry_after_is_when_the_next_request_fits() {
        // Full current window at its start: wait for the window to end, then a bit more.
        let s = retry_after(0, 10, 0, 60_000, 10);
        assert!((60..=66).contains(&s), "{s}");
        // Previous window full, nothing now, 30 s in: one fits once prev weight < 9/10.
        let s = retry_after(10, 0, 30_000, 60_000, 10);
        assert!(s == 1, "{s}");
        assert!(retry_after(0, 10, 59_900, 60_000, 10) >= 1);
        for (p, c, e) in [(10, 0, 0), (3, 10, 10), (10, 10, 500), (0, 10, 999)] {
            let ms = retry_after(p, c, e, 1000, 10) * 1000;
            // At that time the request fits.
            let (prev, curr, elapsed) = if e + ms < 1000 {
                (p, c, e + ms)
            } else if e + ms < 2000 {
                (c, 0, e + ms - 1000)
            } else {
                (0, 0, 0)
            };
            assert!(fits(prev, curr, elapsed, 1000, 10), "{p} {c} {e} -> {ms}");
        }
    }
}
