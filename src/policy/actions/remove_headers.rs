//! `remove-headers`: drop headers from the request (request phase) or the response.

use super::{Action, ActionConfig, ActionCx, ActionError, Flow};
use crate::config::{read, ConfigError};
use crate::policy::exchange::HeadMut;
use cel::Value;
use http::HeaderName;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug)]
struct RemoveHeaders {
    headers: Vec<HeaderName>,
}

pub fn build(cfg: &ActionConfig<'_>) -> Result<Box<dyn Action>, ConfigError> {
    cfg.known(&["headers"])?;
    let node = cfg.require("headers")?;
    let list = read::seq(node, &cfg.loc, "headers")?;
    if list.is_empty() || list.len() > 10 {
        return Err(cfg
            .loc
            .at(node)
            .error("remove-headers takes 1 to 10 header names"));
    }
    let mut headers = Vec::with_capacity(list.len());
    for n in list {
        let name = read::string(n, &cfg.loc, "a header name")?;
        headers.push(
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
                cfg.loc
                    .at(n)
                    .error(format!("`{name}` is not a valid header name"))
            })?,
        );
    }
    Ok(Box::new(RemoveHeaders { headers }))
}

impl Action for RemoveHeaders {
    fn run(&self, cx: &mut ActionCx<'_>) -> Result<Flow, ActionError> {
        let target: &mut dyn HeadMut = match cx.res.as_deref_mut() {
            Some(res) => res,
            None => &mut *cx.req,
        };
        let mut removed = Vec::new();
        for name in &self.headers {
            if target.headers().contains_key(name) {
                target.remove_header(name);
                removed.push(Value::String(Arc::new(name.as_str().to_string())));
            }
        }
        let mut vars = HashMap::new();
        vars.insert(
            "headers_removed".to_string(),
            Value::List(Arc::new(removed)),
        );
        cx.vars.set("actions.ngrok.remove_headers", vars.into());
        Ok(Flow::Next)
    }
}
