//! `owasp-crs-request` / `owasp-crs-response`: the OWASP Core Rule Set through the WAF engine.
//! A block answers 403; the matched rule ids go to the log, never to the client. With
//! `process_body`, the response action also leaves a [`BodyCheck`] for the gateway.

use super::{Action, ActionConfig, ActionCx, ActionError, BodyCheck, Flow, OnError};
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
    crs: Arc<Crs>,
    process_body: bool,
}

/// How one action runs the CRS; shared with the response body check it leaves behind.
#[derive(Debug)]
struct Crs {
    rules: Arc<RuleSet>,
    response: bool,
    on_error: OnError,
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
    let rules = cfg.env.waf.rules().map_err(|e| cfg.loc.error(e))?;
    let crs = Crs {
        rules,
        response,
        on_error: cfg.on_error()?,
        exclude,
        paranoia: cfg.integer("paranoia_level", 1..=4)?.unwrap_or(1) as u8,
        threshold: cfg
            .integer(threshold_key, 1..=10_000)?
            .unwrap_or(if response { 4 } else { 5 }),
        body_limit: cfg
            .integer("body_limit", 0..=(64 << 20))?
            .unwrap_or(128 << 10) as usize,
    };
    Ok(Box::new(OwaspCrs {
        crs: Arc::new(crs),
        process_body,
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

/// The request as the WAF sees it.
fn waf_request(cx: &ActionCx<'_>) -> Request {
    let uri = cx.req.uri();
    Request {
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
    }
}

impl Crs {
    /// A transaction set up for this action's paranoia level, threshold and exclusions,
    /// through phase 1. For the response action phase 1 only sets the CRS up: judging the
    /// request again is the request action's business, so a phase-1 block is ignored.
    fn transaction(&self, request: &Request) -> Transaction<'_> {
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
        tx.process_request_headers(request);
        if self.response {
            tx.interruption = None;
        }
        tx
    }

    /// (blocked, anomaly score, matched rule ids).
    fn verdict(&self, tx: &Transaction<'_>) -> (bool, i64, Vec<u64>) {
        let score_keys = if self.response {
            ["blocking_outbound_anomaly_score", "outbound_anomaly_score"]
        } else {
            ["blocking_inbound_anomaly_score", "anomaly_score"]
        };
        let score = score_keys
            .iter()
            .map(|k| tx.tx_number(k))
            .max()
            .unwrap_or(0);
        let blocked = tx.interruption.is_some() || score >= self.threshold;
        (blocked, score, tx.matched_ids())
    }

    /// A body check's answer from its finished transaction: `Err` (for the client, without
    /// rule ids) when it blocks and `on_error` halts; logged either way.
    fn judge_body(
        &self,
        tx: &Transaction<'_>,
        what: &str,
        request: &Request,
    ) -> Result<(), String> {
        let (blocked, score, ids) = self.verdict(tx);
        if !blocked {
            return Ok(());
        }
        self.log_block(what, request, score, &ids);
        if self.on_error == OnError::Halt {
            Err(format!(
                "the {what} was blocked by the WAF (anomaly score {score})"
            ))
        } else {
            Ok(())
        }
    }

    fn log_block(&self, what: &str, request: &Request, score: i64, ids: &[u64]) {
        log::warn!(
            "WAF {} {what}: {} {} from {} (anomaly score {score}, threshold {}): rules {ids:?}",
            if self.on_error == OnError::Halt {
                "blocked"
            } else {
                "would block (on_error: continue)"
            },
            request.method,
            request.uri.split('?').next().unwrap_or(""),
            request.remote_addr,
            self.threshold
        );
    }
}

/// The request body's judgement, left by `owasp-crs-request` with `process_body` when the
/// gateway could not read the body before the policy: phases 1-2 again, with the body.
struct RequestBody {
    crs: Arc<Crs>,
    request: Request,
}

impl BodyCheck for RequestBody {
    fn limit(&self) -> usize {
        self.crs.body_limit
    }

    fn judge(&self, body: &[u8]) -> Result<(), String> {
        let mut tx = self.crs.transaction(&self.request);
        tx.process_request_body(&body[..body.len().min(self.crs.body_limit)]);
        self.crs.judge_body(&tx, "request body", &self.request)
    }
}

/// The response body's judgement, left by `owasp-crs-response` with `process_body`.
struct ResponseBody {
    crs: Arc<Crs>,
    request: Request,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
}

impl BodyCheck for ResponseBody {
    fn limit(&self) -> usize {
        self.crs.body_limit
    }

    fn judge(&self, body: &[u8]) -> Result<(), String> {
        let mut tx = self.crs.transaction(&self.request);
        tx.process_response_headers(self.status, "HTTP/1.1", &self.headers);
        tx.process_response_body(&body[..body.len().min(self.crs.body_limit)]);
        self.crs.judge_body(&tx, "response body", &self.request)
    }
}

impl Action for OwaspCrs {
    fn run(&self, cx: &mut ActionCx<'_>) -> Result<Flow, ActionError> {
        let crs = &*self.crs;
        let request = waf_request(cx);
        let mut tx = crs.transaction(&request);
        if crs.response {
            if let Some(res) = cx.res.as_deref() {
                tx.process_response_headers(
                    res.status().as_u16(),
                    "HTTP/1.1",
                    &headers(res.headers()),
                );
            }
        } else {
            let body = match (self.process_body, cx.body) {
                (true, Some(b)) => &b[..b.len().min(crs.body_limit)],
                _ => &[][..],
            };
            tx.process_request_body(body);
        }
        let name = if crs.response {
            "actions.ngrok.owasp_crs_response"
        } else {
            "actions.ngrok.owasp_crs_request"
        };
        let (blocked, score, ids) = crs.verdict(&tx);
        let mut vars = HashMap::new();
        vars.insert(
            "decision".to_string(),
            Value::String(Arc::new(if blocked { "deny" } else { "allow" }.into())),
        );
        vars.insert("anomaly_score".to_string(), Value::Int(score));
        vars.insert(
            "anomaly_score_threshold".to_string(),
            Value::Int(crs.threshold),
        );
        vars.insert(
            "matched_rule_ids".to_string(),
            Value::List(Arc::new(
                ids.iter().map(|i| Value::Int(*i as i64)).collect(),
            )),
        );
        cx.vars.set(name, vars.into());
        if !blocked {
            if !crs.response && self.process_body && cx.body_streams {
                cx.body_checks.push(Box::new(RequestBody {
                    crs: self.crs.clone(),
                    request,
                }));
                return Ok(Flow::Next);
            }
            if crs.response && self.process_body {
                if let Some(res) = cx.res.as_deref() {
                    cx.body_checks.push(Box::new(ResponseBody {
                        crs: self.crs.clone(),
                        request,
                        status: res.status().as_u16(),
                        headers: headers(res.headers()),
                    }));
                }
            }
            return Ok(Flow::Next);
        }
        crs.log_block(
            if crs.response { "response" } else { "request" },
            &request,
            score,
            &ids,
        );
        Err(ActionError {
            status: StatusCode::FORBIDDEN,
            code: if crs.response {
                "SWY_WAF_RESPONSE_BLOCKED"
            } else {
                "SWY_WAF_BLOCKED"
            },
            message: if crs.response {
                "the response was blocked by the WAF".into()
            } else {
                "the request was blocked by the WAF".into()
            },
        })
    }

    fn on_error(&self) -> OnError {
        self.crs.on_error
    }

    fn body_limit(&self) -> Option<usize> {
        (self.process_body && !self.crs.response).then_some(self.crs.body_limit)
    }
}
