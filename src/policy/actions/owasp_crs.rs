//! `owasp-crs-request` / `owasp-crs-response`: the OWASP Core Rule Set through the WAF engine.
//! A block answers 403; the matched rule ids go to the log, never to the client.

use super::{Action, ActionConfig, ActionCx, ActionError, Flow, OnError};
use crate::config::{read, ConfigError};
use crate::policy::expr::Phase;
use crate::waf::ruleset::RuleSet;
use crate::waf::transaction::{Request, Transaction};
use cel::Value;
use http::StatusCode;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug)]
struct OwaspCrs {
    rules: Arc<RuleSet>,
    response: bool,
    on_error: OnError,
    process_body: bool,
    exclude: Vec<(u64, u64)>,
    paranoia: u8,
    threshold: i64,
    body_limit: usize,
}

pub fn build_request(cfg: &ActionConfig<'_>) -> Result<Box<dyn Action>, ConfigError> {
    build(cfg, false)
}

pub fn build_response(cfg: &ActionConfig<'_>) -> Result<Box<dyn Action>, ConfigError> {
    build(cfg, true)
}

fn build(cfg: &ActionConfig<'_>, response: bool) -> Result<Box<dyn Action>, ConfigError> {
    let threshold_key = if response {
        "outbound_anomaly_threshold"
    } else {
        "inbound_anomaly_threshold"
    };
    cfg.phases(&[if response {
        Phase::Response
    } else {
        Phase::Request
    }])?;
    cfg.known(&[
        "on_error",
        "process_body",
        "exclude_rule_ids",
        "paranoia_level",
        threshold_key,
        "body_limit",
    ])?;
    let mut exclude = Vec::new();
    if let Some(list) = cfg.get("exclude_rule_ids").filter(|n| !n.is_null()) {
        for item in read::seq(list, &cfg.loc, "exclude_rule_ids")? {
            let id = read::integer(item, &cfg.loc, "a rule id")?;
            if !(900_000..=999_999).contains(&id) {
                return Err(cfg.loc.at(item).error(format!(
                    "exclude_rule_ids: {id} is not a CRS rule id (900000-999999)"
                )));
            }
            exclude.push((id as u64, id as u64));
        }
    }
    let process_body = cfg.boolean("process_body", false)?;
    if response && process_body {
        return Err(cfg.loc.error("owasp-crs-response: process_body is not supported yet (response headers are inspected)"));
    }
    let rules = cfg.env.waf.rules().map_err(|e| cfg.loc.error(e))?;
    Ok(Box::new(OwaspCrs {
        rules,
        response,
        on_error: cfg.on_error()?,
        process_body,
        exclude,
        paranoia: cfg.integer("paranoia_level", 1..=4)?.unwrap_or(1) as u8,
        threshold: cfg
            .integer(threshold_key, 1..=10_000)?
            .unwrap_or(if response { 4 } else { 5 }),
        body_limit: cfg
            .integer("body_limit", 0..=(64 << 20))?
            .unwrap_or(128 << 10) as usize,
    }))
}

fn headers(map: &http::HeaderMap) -> Vec<(String, Vec<u8>)> {
    map.iter()
        .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}

impl OwaspCrs {
    fn transaction(&self, cx: &ActionCx<'_>) -> Transaction<'_> {
        let mut tx = Transaction::new(&self.rules);
        let pl = self.paranoia.to_string();
        for key in [
            "blocking_paranoia_level",
            "detection_paranoia_level",
            "paranoia_level",
            "executing_paranoia_level",
        ] {
            tx.set_tx(key, &pl);
        }
        let t = self.threshold.to_string();
        tx.set_tx(
            if self.response {
                "outbound_anomaly_score_threshold"
            } else {
                "inbound_anomaly_score_threshold"
            },
            &t,
        );
        tx.remove_rules(&self.exclude);
        let uri = cx.req.uri();
        let request = Request {
            method: cx.req.method().as_str().to_string(),
            uri: uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| uri.to_string()),
            protocol: version(cx.req.version()).to_string(),
            headers: headers(cx.req.headers()),
            remote_addr: cx.conn.client_ip.to_string(),
            remote_port: cx.conn.client_port,
            server_addr: cx.conn.server_ip.to_string(),
            server_port: cx.conn.server_port,
        };
        tx.process_request_headers(&request);
        tx
    }
}

impl Action for OwaspCrs {
    fn run(&self, cx: &mut ActionCx<'_>) -> Result<Flow, ActionError> {
        let mut tx = self.transaction(cx);
        if self.response {
            // Phase 1 sets up the CRS (thresholds, paranoia); judging the request again is the
            // request action's business, so phase 2 is skipped and a phase-1 block ignored.
            tx.interruption = None;
            if let Some(res) = cx.res.as_deref() {
                tx.process_response_headers(
                    res.status().as_u16(),
                    "HTTP/1.1",
                    &headers(res.headers()),
                );
            }
        } else {
            let body = match (self.process_body, cx.body) {
                (true, Some(b)) => &b[..b.len().min(self.body_limit)],
                _ => &[][..],
            };
            tx.process_request_body(body);
        }
        let (name, score_keys) = if self.response {
            (
                "actions.ngrok.owasp_crs_response",
                ["blocking_outbound_anomaly_score", "outbound_anomaly_score"],
            )
        } else {
            (
                "actions.ngrok.owasp_crs_request",
                ["blocking_inbound_anomaly_score", "anomaly_score"],
            )
        };
        let score = score_keys
            .iter()
            .map(|k| tx.tx_number(k))
            .max()
            .unwrap_or(0);
        let blocked = tx.interruption.is_some() || score >= self.threshold;
        let ids: Vec<u64> = tx.matched_ids();
        let mut vars = HashMap::new();
        vars.insert(
            "decision".to_string(),
            Value::String(Arc::new(if blocked { "deny" } else { "allow" }.into())),
        );
        vars.insert("anomaly_score".to_string(), Value::Int(score));
        vars.insert(
            "anomaly_score_threshold".to_string(),
            Value::Int(self.threshold),
        );
        vars.insert(
            "matched_rule_ids".to_string(),
            Value::List(Arc::new(
                ids.iter().map(|i| Value::Int(*i as i64)).collect(),
            )),
        );
        cx.vars.set(name, vars.into());
        if !blocked {
            return Ok(Flow::Next);
        }
        log::warn!(
            "WAF {}: {} {} from {} (anomaly score {score}, threshold {}): rules {ids:?}",
            if self.on_error == OnError::Halt {
                "blocked"
            } else {
                "would block (on_error: continue)"
            },
            cx.req.method(),
            cx.req.uri().path(),
            cx.conn.client_ip,
            self.threshold
        );
        Err(ActionError {
            status: StatusCode::FORBIDDEN,
            code: if self.response {
                "SWY_WAF_RESPONSE_BLOCKED"
            } else {
                "SWY_WAF_BLOCKED"
            },
            message: if self.response {
                "the response was blocked by the WAF".into()
            } else {
                "the request was blocked by the WAF".into()
            },
        })
    }

    fn on_error(&self) -> OnError {
        self.on_error
    }

    fn body_limit(&self) -> Option<usize> {
        (self.process_body && !self.response).then_some(self.body_limit)
    }
}
