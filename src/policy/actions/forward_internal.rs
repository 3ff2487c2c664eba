//! `forward-internal`: hand the request to an internal endpoint named by an interpolated URL.

use super::{Action, ActionConfig, ActionCx, ActionError, Flow, OnError};
use crate::config::{read, ConfigError, EndpointUrl};
use crate::policy::expr::{Phase, Template};
use http::StatusCode;

#[derive(Debug)]
struct ForwardInternal {
    url: Template,
    on_error: OnError,
}

pub fn build(cfg: &ActionConfig<'_>) -> Result<Box<dyn Action>, ConfigError> {
    cfg.phases(&[Phase::Request])?;
    cfg.known(&["url", "binding", "on_error"])?;
    if let Some(b) = cfg.get("binding") {
        let binding = read::string(b, &cfg.loc, "binding")?;
        if binding != "internal" {
            return Err(cfg
                .loc
                .at(b)
                .error("forward-internal binding must be `internal`"));
        }
    }
    let url_node = cfg.require("url")?;
    let url = cfg.template(url_node, "url")?;
    if let Some(lit) = url.literal() {
        target(lit).map_err(|e| cfg.loc.at(url_node).error(e.message))?;
    }
    Ok(Box::new(ForwardInternal {
        url,
        on_error: cfg.on_error()?,
    }))
}

fn not_found(message: String) -> ActionError {
    ActionError {
        status: StatusCode::NOT_FOUND,
        code: "SWY_INTERNAL_NOT_FOUND",
        message,
    }
}

fn target(url: &str) -> Result<EndpointUrl, ActionError> {
    let parsed =
        EndpointUrl::parse(url).map_err(|e| not_found(format!("no internal endpoint: {e}")))?;
    if !parsed.is_internal() {
        return Err(not_found(format!(
            "forward-internal target `{url}` is not an internal (.internal) URL"
        )));
    }
    Ok(parsed)
}

impl Action for ForwardInternal {
    fn run(&self, cx: &mut ActionCx<'_>) -> Result<Flow, ActionError> {
        let url = cx.render(&self.url)?;
        let target = target(&url)?;
        match cx.internal.find(&target) {
            Some(id) => Ok(Flow::Forward(id)),
            None => Err(not_found(format!("no internal endpoint `{url}`"))),
        }
    }

    fn on_error(&self) -> OnError {
        self.on_error
    }

    fn vars_path(&self) -> Option<&'static str> {
        Some("actions.ngrok.forward_internal")
    }
}
