//! `custom-response`: answer directly with a status, headers and body (all interpolated).

use super::{Action, ActionConfig, ActionCx, ActionError, Flow};
use crate::config::{read, ConfigError};
use crate::policy::exchange::Reply;
use crate::policy::expr::Template;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

#[derive(Debug)]
struct CustomResponse {
    status: StatusCode,
    headers: Vec<(HeaderName, Template)>,
    body: Option<Template>,
}

pub fn build(cfg: &ActionConfig<'_>) -> Result<Box<dyn Action>, ConfigError> {
    cfg.known(&["status_code", "headers", "body", "content"])?;
    let headers = match cfg.get("headers") {
        Some(h) => header_templates(cfg, h)?,
        None => Vec::new(),
    };
    // `content` is the name older ngrok docs use for the body.
    let body = match cfg.get("body").or_else(|| cfg.get("content")) {
        Some(b) => Some(cfg.template(b, "body")?),
        None => None,
    };
    Ok(Box::new(CustomResponse {
        status: cfg.status("status_code", 200)?,
        headers,
        body,
    }))
}

/// A `headers` map of name → interpolated value (at most 10, as ngrok allows).
pub(super) fn header_templates(
    cfg: &ActionConfig<'_>,
    node: &crate::config::yaml::Node,
) -> Result<Vec<(HeaderName, Template)>, ConfigError> {
    let entries = read::map(node, &cfg.loc, "headers")?;
    if entries.len() > 10 {
        return Err(cfg.loc.at(node).error("headers takes at most 10 entries"));
    }
    let mut out = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let name = read::string(k, &cfg.loc, "a header name")?;
        let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
            cfg.loc
                .at(k)
                .error(format!("`{name}` is not a valid header name"))
        })?;
        let value = cfg.template(v, "a header value")?;
        if let Some(lit) = value.literal() {
            HeaderValue::from_str(lit).map_err(|_| {
                cfg.loc
                    .at(v)
                    .error(format!("`{lit}` is not a valid header value"))
            })?;
        }
        out.push((name, value));
    }
    Ok(out)
}

fn infer_content_type(body: &[u8]) -> &'static str {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | Some(b'[') => "application/json",
        Some(b'<') => "text/html",
        _ => "text/plain",
    }
}

impl Action for CustomResponse {
    fn run(&self, cx: &mut ActionCx<'_>) -> Result<Flow, ActionError> {
        let mut reply = Reply::new(self.status);
        reply.run_response_phase = true;
        for (name, value) in &self.headers {
            let v = cx.render(value)?;
            let v = HeaderValue::from_str(&v).map_err(|_| ActionError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "SWY_INVALID_HEADER",
                message: format!("header `{name}` rendered to an invalid value"),
            })?;
            reply.headers.append(name.clone(), v);
        }
        if let Some(body) = &self.body {
            reply.body = Bytes::from(cx.render(body)?);
        }
        if !reply.body.is_empty() && !reply.headers.contains_key(http::header::CONTENT_TYPE) {
            reply.headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(infer_content_type(&reply.body)),
            );
        }
        Ok(Flow::Respond(reply))
    }
}
