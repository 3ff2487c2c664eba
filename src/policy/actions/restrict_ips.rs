//! `restrict-ips`: 403 unless the client is in an `allow` CIDR (when any is given) and in no
//! `deny` CIDR. The client is `conn.client_ip` (after PROXY protocol and trusted proxies).

use super::{Action, ActionConfig, ActionCx, ActionError, Flow};
use crate::config::{read, ConfigError};
use crate::policy::exchange::Reply;
use crate::policy::expr::Phase;
use cel::Value;
use http::StatusCode;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug)]
struct RestrictIps {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    enforce: bool,
}

fn cidrs(cfg: &ActionConfig<'_>, key: &str) -> Result<Vec<IpNet>, ConfigError> {
    let Some(list) = cfg.get(key).filter(|n| !n.is_null()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in read::seq(list, &cfg.loc, key)? {
        let text = read::string(item, &cfg.loc, "a CIDR")?.trim();
        let net = text
            .parse::<IpNet>()
            .map(|n| n.trunc())
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| {
                cfg.loc
                    .at(item)
                    .error(format!("`{text}` is not a CIDR or IP address"))
            })?;
        out.push(net);
    }
    Ok(out)
}

pub fn build(cfg: &ActionConfig<'_>) -> Result<Box<dyn Action>, ConfigError> {
    cfg.phases(&[Phase::Request])?;
    cfg.known(&["allow", "deny", "enforce", "ip_policies"])?;
    if let Some(n) = cfg.get("ip_policies") {
        return Err(cfg.loc.at(n).error(
            "ip_policies (ngrok IP policy ids) are not supported; list CIDRs in allow/deny",
        ));
    }
    let allow = cidrs(cfg, "allow")?;
    let deny = cidrs(cfg, "deny")?;
    if allow.is_empty() && deny.is_empty() {
        return Err(cfg
            .loc
            .error("restrict-ips needs at least one CIDR in allow or deny"));
    }
    Ok(Box::new(RestrictIps {
        allow,
        deny,
        enforce: cfg.boolean("enforce", true)?,
    }))
}

impl Action for RestrictIps {
    fn run(&self, cx: &mut ActionCx<'_>) -> Result<Flow, ActionError> {
        let ip = cx.conn.client_ip;
        let denied_by = self.deny.iter().find(|n| n.contains(&ip));
        let allowed_by = self.allow.iter().find(|n| n.contains(&ip));
        let (verdict, matched) = match (denied_by, allowed_by) {
            (Some(d), _) => ("deny", Some(d)),
            (None, Some(a)) => ("allow", Some(a)),
            (None, None) if self.allow.is_empty() => ("allow", None),
            (None, None) => ("deny", None),
        };
        let mut vars = HashMap::new();
        vars.insert(
            "action".to_string(),
            Value::String(Arc::new(verdict.into())),
        );
        vars.insert(
            "matched_cidr".to_string(),
            Value::String(Arc::new(matched.map(|n| n.to_string()).unwrap_or_default())),
        );
        cx.vars.set("actions.ngrok.restrict_ips", vars.into());
        if verdict == "deny" && self.enforce {
            return Ok(Flow::Respond(Reply::new(StatusCode::FORBIDDEN)));
        }
        Ok(Flow::Next)
    }
}
