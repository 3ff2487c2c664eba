//! Limiters by action: the state of a `rate-limit` action whose name and config are unchanged
//! survives a reload, because the registry outlives the compiled config.

use super::memory::MemoryStore;
use super::redis::{RedisStore, Unavailable};
use super::{Decision, Limit};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, Weak};

/// Where limits are counted (`Gateway.spec.rateLimit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    Memory,
    Redis { url: String, fail_closed: bool },
}

/// What identifies one `rate-limit` action's state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LimiterSpec {
    pub name: String,
    pub limit: Limit,
    pub bucket_key: Vec<String>,
}

#[derive(Clone)]
pub enum Limiter {
    Memory(Arc<MemoryStore>),
    Redis {
        store: Arc<RedisStore>,
        prefix: Arc<str>,
        limit: Limit,
        fail_closed: bool,
    },
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limiter::Memory(m) => write!(f, "Memory({:?})", m.limit()),
            Limiter::Redis { prefix, .. } => write!(f, "Redis({prefix})"),
        }
    }
}

/// A Redis decision that could not be made: what the caller should do.
#[derive(Debug, Clone)]
pub struct StoreDown {
    pub fail_closed: bool,
    pub error: Unavailable,
}

impl Limiter {
    /// The Redis key of one bucket.
    pub fn redis_key(prefix: &str, bucket: &str) -> String {
        let mut key = String::with_capacity(prefix.len() + 1 + bucket.len());
        key.push_str(prefix);
        key.push(':');
        key.push_str(bucket);
        key
    }

    pub async fn decide_redis(
        store: &RedisStore,
        key: &str,
        limit: Limit,
        fail_closed: bool,
    ) -> Result<Decision, StoreDown> {
        store
            .decide(key, limit)
            .await
            .map_err(|error| StoreDown { fail_closed, error })
    }
}

pub struct RateLimits {
    config: StoreConfig,
    redis: Option<Arc<RedisStore>>,
    memory: Mutex<HashMap<LimiterSpec, Weak<MemoryStore>>>,
}

impl RateLimits {
    pub fn new(config: StoreConfig) -> Result<RateLimits, String> {
        let redis = match &config {
            StoreConfig::Memory => None,
            StoreConfig::Redis { url, .. } => Some(Arc::new(RedisStore::new(url)?)),
        };
        Ok(RateLimits {
            config,
            redis,
            memory: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The limiter for an action: the same state as before when the spec is unchanged.
    pub fn limiter(&self, spec: &LimiterSpec) -> Limiter {
        if let (Some(store), StoreConfig::Redis { fail_closed, .. }) = (&self.redis, &self.config) {
            let mut h = DefaultHasher::new();
            spec.hash(&mut h);
            return Limiter::Redis {
                store: store.clone(),
                prefix: format!("swy:rl:{:016x}", h.finish()).into(),
                limit: spec.limit,
                fail_closed: *fail_closed,
            };
        }
        let mut map = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(existing) = map.get(spec).and_then(Weak::upgrade) {
            return Limiter::Memory(existing);
        }
        let store = Arc::new(MemoryStore::new(spec.limit));
        map.insert(spec.clone(), Arc::downgrade(&store));
        Limiter::Memory(store)
    }
}
