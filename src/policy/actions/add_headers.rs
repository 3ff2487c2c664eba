//! `add-headers`: append headers to the request (request phase) or the response.

use super::custom_response::header_templates;
use super::{Action, ActionConfig, ActionCx, ActionError, Flow};
use crate::config::ConfigError;
use crate::policy::exchange::HeadMut;
use crate::policy::expr::Template;
use cel::Value;
use http::{HeaderName, HeaderValue, StatusCode};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug)]
struct AddHeaders {
    headers: Vec<(HeaderName, Template)>,
}

pub fn build(cfg: &ActionConfig<'_>) -> Result<Box<dyn Action>, ConfigError> {
    cfg.known(&["headers"])?;
    let node = cfg.require("headers")?;
    let headers = header_templates(cfg, node)?;
    if headers.is_empty() {
        return Err(cfg
            .loc
            .at(node)
            .error("add-headers needs at least one header"));
    }
    Ok(Box::new(AddHeaders { headers }))
}

impl Action for AddHeaders {
    fn run(&self, cx: &mut ActionCx<'_>) -> Result<Flow, ActionError> {
        // Render everything first: a later header's expression sees the message as it was.
        let mut rendered = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            let text = cx.render(value)?;
            let v = HeaderValue::from_str(&text).map_err(|_| ActionError {
                status: StatusCode::BAD_REQUEST,
                code: "SWY_INVALID_HEADER",
                message: format!("header `{name}` rendered to an invalid value"),
            })?;
            rendered.push((name.clone(), v, text));
        }
        let target: &mut dyn HeadMut = match cx.res.as_deref_mut() {
            Some(res) => res,
            None => &mut *cx.req,
        };
        let mut added = HashMap::new();
        for (name, value, text) in rendered {
            if name == http::header::HOST {
                target.insert_header(name.clone(), value);
            } else {
                target.append_header(name.clone(), value);
            }
            added.insert(name.as_str().to_string(), Value::String(Arc::new(text)));
        }
        let mut vars = HashMap::new();
        vars.insert("headers_added".to_string(), Value::from(added));
        cx.vars.set("actions.ngrok.add_headers", vars.into());
        Ok(Flow::Next)
    }
}
