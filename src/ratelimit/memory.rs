//! The in-memory store: buckets keyed by a 64-bit hash of the bucket key, spread over shards
//! that each have their own lock, so requests for different keys rarely wait on each other.
//! A bucket idle for two windows is worth nothing and is swept away.

use super::{fits, retry_after, Decision, Limit};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Mutex;

const SHARDS: usize = 64;
/// A shard is swept (at most once per window) once it holds this many buckets.
const SWEEP_ABOVE: usize = 1024;

/// The keys are already hashes: pass them through.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | *b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Clone, Copy)]
struct Bucket {
    /// Index of the fixed window `curr` counts (time / window length).
    window: u64,
    prev: u32,
    curr: u32,
}

#[derive(Default)]
struct Shard {
    buckets: HashMap<u64, Bucket, BuildHasherDefault<PassThrough>>,
    swept_window: u64,
}

pub struct MemoryStore {
    limit: Limit,
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

impl MemoryStore {
    pub fn new(limit: Limit) -> MemoryStore {
        MemoryStore {
            limit,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
        }
    }

    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// Decides one request for `key` at `now_ms` (milliseconds on any steady clock).
    pub fn decide(&self, key: &[u8], now_ms: u64) -> Decision {
        let hash = self.hasher.hash_one(key);
        let w = self.limit.window_ms();
        let window = now_ms / w;
        let elapsed = now_ms % w;
        let cap = self.limit.capacity;
        let mut shard = self.shards[(hash as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if shard.swept_window != window && shard.buckets.len() >= SWEEP_ABOVE {
            shard.swept_window = window;
            shard.buckets.retain(|_, b| b.window + 1 >= window);
        }
        let b = shard.buckets.entry(hash).or_insert(Bucket {
            window,
            prev: 0,
            curr: 0,
        });
        if b.window != window {
            b.prev = if b.window + 1 == window { b.curr } else { 0 };
            b.curr = 0;
            b.window = window;
        }
        let (prev, curr) = (b.prev as u64, b.curr as u64);
        if fits(prev, curr, elapsed, w, cap) {
            b.curr = b.curr.saturating_add(1);
            Decision::ALLOW
        } else {
            Decision {
                allowed: false,
                retry_after_secs: retry_after(prev, curr, elapsed, w, cap),
            }
        }
    }

    /// Buckets held now (live and not yet swept).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).buckets.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn store(capacity: u64, secs: u64) -> MemoryStore {
        MemoryStore::new(Limit {
            capacity,
            window: Duration::from_secs(secs),
        })
    }

    #[test]
    fn exactly_capacity_pass_then_429_with_retry_after() {
        let s = store(10, 1);
        let t0 = 1_000_000;
        for i in 0..10 {
            assert!(s.decide(b"1.2.3.4", t0 + i).allowed, "request {i}");
        }
        let d = s.decide(b"1.2.3.4", t0 + 10);
        assert!(!d.allowed);
        assert!((1..=2).contains(&d.retry_after_secs), "{d:?}");
        // Another key is not affected.
        assert!(s.decide(b"5.6.7.8", t0 + 11).allowed);
    }

    #[test]
    fn rejected_requests_do_not_count_and_the_window_slides() {
        let s = store(4, 10);
        let t0 = 50_000; // the start of a window
        for _ in 0..4 {
            assert!(s.decide(b"k", t0).allowed);
        }
        for _ in 0..100 {
            assert!(!s.decide(b"k", t0 + 5_000).allowed);
        }
        // Half-way into the next window, the previous 4 weigh 2: two more fit, not three.
        assert!(s.decide(b"k", t0 + 15_000).allowed);
        assert!(s.decide(b"k", t0 + 15_000).allowed);
        assert!(!s.decide(b"k", t0 + 15_000).allowed);
        // Two windows later everything is forgotten.
        for _ in 0..4 {
            assert!(s.decide(b"k", t0 + 40_000).allowed);
        }
    }

    #[test]
    fn idle_buckets_are_swept() {
        let s = store(1, 1);
        for i in 0..(SHARDS * SWEEP_ABOVE * 2) as u64 {
            s.decide(&i.to_le_bytes(), 0);
        }
        let before = s.len();
        assert!(before >= SHARDS * SWEEP_ABOVE, "{before}");
        // Three windows later, touching each shard sweeps it.
        for i in 0..(SHARDS * 64) as u64 {
            s.decide(&(u64::MAX - i).to_le_bytes(), 3_000);
        }
        assert!(s.len() <= SHARDS * 64, "{} buckets left", s.len());
    }
}
