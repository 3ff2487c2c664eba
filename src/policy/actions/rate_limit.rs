//! `rate-limit`: a sliding-window limit per bucket (a tuple of CEL values). Over the limit the
//! client gets 429 with `Retry-After`; with `enforce: false` only the variables are set.

use super::{Action, ActionConfig, ActionCx, ActionError, Flow, Resume};
use crate::config::{read, ConfigError};
use crate::policy::exchange::Reply;
use crate::policy::expr::{stringify, Expr, Phase};
use crate::ratelimit::registry::{Limiter, StoreDown};
use crate::ratelimit::{Decision, Limit, LimiterSpec};
use bytes::Bytes;
use cel::Value;
use http::{HeaderValue, StatusCode};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug)]
struct RateLimit {
    limiter: Limiter,
    bucket_key: Vec<Expr>,
    enforce: bool,
}

pub fn build(cfg: &ActionConfig<'_>) -> Result<Box<dyn Action>, ConfigError> {
    cfg.phases(&[Phase::Request])?;
    cfg.known(&[
        "name",
        "algorithm",
        "capacity",
        "rate",
        "bucket_key",
        "enforce",
    ])?;
    let name_node = cfg.require("name")?;
    let name = read::string(name_node, &cfg.loc, "name")?;
    if name.len() >= 1024 {
        return Err(cfg
            .loc
            .at(name_node)
            .error("name must be shorter than 1024 characters"));
    }
    let algorithm = cfg.require("algorithm")?;
    let algo = read::string(algorithm, &cfg.loc, "algorithm")?;
    if algo != "sliding_window" {
        return Err(cfg
            .loc
            .at(algorithm)
            .error(format!("algorithm must be sliding_window, found `{algo}`")));
    }
    cfg.require("capacity")?;
    let capacity = cfg
        .integer("capacity", 1..=2_000_000_000)?
        .expect("required") as u64;
    let rate_node = cfg.require("rate")?;
    let window = read::duration(rate_node, &cfg.loc, "rate")?;
    if window < Duration::from_secs(1) || window > Duration::from_secs(86_400) {
        return Err(cfg
            .loc
            .at(rate_node)
            .error("rate must be between 1s and 24h"));
    }
    let mut bucket_key = Vec::new();
    let mut sources = Vec::new();
    if let Some(list) = cfg.get("bucket_key").filter(|n| !n.is_null()) {
        let items = read::seq(list, &cfg.loc, "bucket_key")?;
        if items.len() > 10 {
            return Err(cfg
                .loc
                .at(list)
                .error("bucket_key takes at most 10 expressions"));
        }
        for item in items {
            let src = read::string(item, &cfg.loc, "a bucket_key expression")?;
            bucket_key
                .push(Expr::compile(src, Phase::Request).map_err(|e| cfg.loc.at(item).error(e))?);
            sources.push(src.trim().to_string());
        }
    }
    let spec = LimiterSpec {
        name: name.to_string(),
        limit: Limit { capacity, window },
        bucket_key: sources,
    };
    Ok(Box::new(RateLimit {
        limiter: cfg.env.rate_limits.limiter(&spec),
        bucket_key,
        enforce: cfg.boolean("enforce", true)?,
    }))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl RateLimit {
    fn bucket(&self, cx: &ActionCx<'_>) -> Result<String, ActionError> {
        let scope = cx.scope();
        let mut key = String::new();
        for (i, e) in self.bucket_key.iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            stringify(&e.eval(cx.env, &scope)?, &mut key);
        }
        Ok(key)
    }

    fn finish(
        &self,
        cx: &mut ActionCx<'_>,
        bucket: String,
        d: Decision,
    ) -> Result<Flow, ActionError> {
        let mut vars = HashMap::new();
        vars.insert("bucket_key".to_string(), Value::String(Arc::new(bucket)));
        vars.insert("limited".to_string(), Value::Bool(!d.allowed));
        cx.vars.set("actions.ngrok.rate_limit", vars.into());
        if d.allowed || !self.enforce {
            return Ok(Flow::Next);
        }
        let mut reply = Reply::new(StatusCode::TOO_MANY_REQUESTS);
        reply.headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(d.retry_after_secs),
        );
        reply.headers.insert(
            "x-switchyard-error",
            HeaderValue::from_static("SWY_RATE_LIMITED"),
        );
        reply.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        reply.body = Bytes::from(format!(
            "429 SWY_RATE_LIMITED: too many requests; retry after {} s\n",
            d.retry_after_secs
        ));
        Ok(Flow::Respond(reply))
    }
}

impl Action for RateLimit {
    fn run(&self, cx: &mut ActionCx<'_>) -> Result<Flow, ActionError> {
        let bucket = self.bucket(cx)?;
        match &self.limiter {
            Limiter::Memory(store) => {
                let d = store.decide(bucket.as_bytes(), now_ms());
                self.finish(cx, bucket, d)
            }
            Limiter::Redis {
                store,
                prefix,
                limit,
                fail_closed,
            } => {
                let (store, key, limit, fail_closed) = (
                    store.clone(),
                    Limiter::redis_key(prefix, &bucket),
                    *limit,
                    *fail_closed,
                );
                Ok(Flow::Wait(Box::pin(async move {
                    let result = Limiter::decide_redis(&store, &key, limit, fail_closed).await;
                    Box::new((bucket, result)) as Resume
                })))
            }
        }
    }

    fn resume(&self, cx: &mut ActionCx<'_>, value: Resume) -> Result<Flow, ActionError> {
        let (bucket, result) = *value
            .downcast::<(String, Result<Decision, StoreDown>)>()
            .map_err(|_| ActionError::internal("rate-limit resumed with a foreign value"))?;
        match result {
            Ok(d) => self.finish(cx, bucket, d),
            Err(down) if down.fail_closed => Err(ActionError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "SWY_RATE_LIMIT_UNAVAILABLE",
                message: format!("{} (rateLimit.failure: closed)", down.error),
            }),
            Err(_) => self.finish(cx, bucket, Decision::ALLOW),
        }
    }
}
