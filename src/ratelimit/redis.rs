//! The Redis store: one round trip per decision (a Lua script run atomically in Redis, on
//! Redis's own clock), so several gateways share one limit. While Redis is unreachable the
//! caller decides (fail open or closed); the state change is logged once each way and exported.

use super::{retry_after, Decision, Limit};
use arc_swap::ArcSwapOption;
use redis::aio::ConnectionManager;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The sliding-window step (see the module docs of `ratelimit`): counts per fixed window in
/// `KEY:<index>`; returns {1} when admitted, else {0, prev, curr, elapsed_ms}.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local idx = math.floor(now / w)
local e = now - idx * w
local ck = KEYS[1] .. ':' .. idx
local curr = tonumber(redis.call('GET', ck) or '0')
local prev = tonumber(redis.call('GET', KEYS[1] .. ':' .. (idx - 1)) or '0')
if prev * (w - e) + (curr + 1) * w <= cap * w then
  redis.call('INCR', ck)
  redis.call('PEXPIRE', ck, 2 * w + 1000)
  return {1}
end
return {0, prev, curr, e}
"#;

/// How long one decision may take before Redis counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// While disconnected, how often a request may try to connect again.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, thiserror::Error)]
#[error("redis rate-limit store unavailable: {0}")]
pub struct Unavailable(pub String);

pub struct RedisStore {
    client: redis::Client,
    conn: ArcSwapOption<ConnectionManager>,
    next_connect_ms: AtomicU64,
    started: Instant,
    up: AtomicBool,
    script: redis::Script,
    metrics: &'static Metrics,
}

pub struct Metrics {
    pub up: prometheus::IntGauge,
    pub errors: prometheus::IntCounter,
}

/// The store's metrics, registered once in the default Prometheus registry.
pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let up = prometheus::IntGauge::new(
            "switchyard_ratelimit_redis_up",
            "1 while the Redis rate-limit store answers, 0 while it does not",
        )
        .expect("valid metric");
        let errors = prometheus::IntCounter::new(
            "switchyard_ratelimit_redis_errors_total",
            "Rate-limit decisions Redis could not make (decided by fail-open/closed)",
        )
        .expect("valid metric");
        let _ = prometheus::register(Box::new(up.clone()));
        let _ = prometheus::register(Box::new(errors.clone()));
        up.set(1);
        Metrics { up, errors }
    })
}

impl RedisStore {
    pub fn new(url: &str) -> Result<RedisStore, String> {
        let client =
            redis::Client::open(url).map_err(|e| format!("invalid Redis URL `{url}`: {e}"))?;
        Ok(RedisStore {
            client,
            conn: ArcSwapOption::empty(),
            next_connect_ms: AtomicU64::new(0),
            started: Instant::now(),
            up: AtomicBool::new(true),
            script: redis::Script::new(SCRIPT),
            metrics: metrics(),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, Unavailable> {
        if let Some(c) = self.conn.load_full() {
            return Ok((*c).clone());
        }
        let now = self.started.elapsed().as_millis() as u64;
        let next = self.next_connect_ms.load(Ordering::Relaxed);
        if now < next
            || self
                .next_connect_ms
                .compare_exchange(
                    next,
                    now + RECONNECT_EVERY.as_millis() as u64,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return Err(Unavailable("not connected".into()));
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(CALL_TIMEOUT)
            .set_response_timeout(CALL_TIMEOUT)
            .set_number_of_retries(1)
            .set_max_delay(1000);
        let manager = tokio::time::timeout(
            CALL_TIMEOUT * 2,
            self.client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| Unavailable("connect timed out".into()))?
        .map_err(|e| Unavailable(e.to_string()))?;
        self.conn.store(Some(Arc::new(manager.clone())));
        Ok(manager)
    }

    /// One decision for the Redis key `key` (prefix included).
    pub async fn decide(&self, key: &str, limit: Limit) -> Result<Decision, Unavailable> {
        let result = self.try_decide(key, limit).await;
        match &result {
            Ok(_) => {
                if !self.up.swap(true, Ordering::AcqRel) {
                    log::warn!("rate-limit store: Redis answers again; shared limits are back");
                    self.metrics.up.set(1);
                }
            }
            Err(e) => {
                self.metrics.errors.inc();
                if self.up.swap(false, Ordering::AcqRel) {
                    log::error!("rate-limit store: {e}; deciding without it until it returns");
                    self.metrics.up.set(0);
                }
            }
        }
        result
    }

    async fn try_decide(&self, key: &str, limit: Limit) -> Result<Decision, Unavailable> {
        let mut conn = self.connection().await?;
        let w = limit.window_ms();
        let mut call = self.script.key(key);
        call.arg(w).arg(limit.capacity);
        let reply: Vec<i64> = tokio::time::timeout(CALL_TIMEOUT, call.invoke_async(&mut conn))
            .await
            .map_err(|_| Unavailable("call timed out".into()))?
            .map_err(|e| Unavailable(e.to_string()))?;
        match reply.as_slice() {
            [1] => Ok(Decision::ALLOW),
            [0, prev, curr, e] => Ok(Decision {
                allowed: false,
                retry_after_secs: retry_after(
                    *prev as u64,
                    *curr as u64,
                    *e as u64,
                    w,
                    limit.capacity,
                ),
            }),
            other => Err(Unavailable(format!("unexpected script reply {other:?}"))),
        }
    }
}
