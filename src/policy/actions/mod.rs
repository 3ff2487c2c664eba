//! Traffic Policy actions: one file each behind [`Action`]; [`build`] maps `type` to a
//! constructor. Adding an action is one file and one line in `REGISTRY`.

mod add_headers;
mod custom_response;
mod deny;
mod forward_internal;
mod owasp_crs;
mod rate_limit;
mod remove_headers;
mod restrict_ips;

use super::exchange::{ActionVars, ConnInfo, EndpointInfo, Reply, RequestHead, ResponseHead};
use super::expr::{ExprEnv, ExprError, Phase, Scope, Template};
use crate::config::read;
use crate::config::yaml::Node;
use crate::config::{ConfigError, EndpointUrl, Loc};
use http::StatusCode;
use std::fmt;

/// Internal endpoints a `forward-internal` can reach, by URL.
pub trait InternalEndpoints: Send + Sync {
    /// The id of the internal endpoint (pool) the URL names.
    fn find(&self, target: &EndpointUrl) -> Option<usize>;
}

/// Everything an action may read or change while it runs.
pub struct ActionCx<'a> {
    pub env: &'a ExprEnv,
    pub conn: &'a ConnInfo,
    pub endpoint: &'a EndpointInfo,
    pub req: &'a mut dyn RequestHead,
    pub res: Option<&'a mut dyn ResponseHead>,
    pub vars: &'a mut ActionVars,
    pub internal: &'a dyn InternalEndpoints,
    /// The request body read before the policy ran (when the policy inspects bodies).
    pub body: Option<&'a [u8]>,
    /// The request has a body the gateway did not read before the policy (too large to hold
    /// back that way): an action that inspects bodies leaves a [`BodyCheck`] for it.
    pub body_streams: bool,
    /// Checks an action leaves for the body still to come (the request's when `body_streams`,
    /// else the response's), which the gateway then holds back.
    pub body_checks: &'a mut Vec<Box<dyn BodyCheck>>,
}

/// A judgement on a body still to come that an action (`owasp-crs-request`/`-response` with
/// `process_body`) leaves for the gateway: the gateway holds the body back, up to
/// [`BodyCheck::limit`] bytes, and releases it only if [`BodyCheck::judge`] lets it pass.
/// The headers are gone by then (upstream for a request, to the client for a response).
pub trait BodyCheck: Send + Sync {
    /// How many bytes from the start of the body the judgement needs.
    fn limit(&self) -> usize;
    /// `Err` with the reason (for the log) when the body must not reach the client.
    fn judge(&self, body: &[u8]) -> Result<(), String>;
}

impl ActionCx<'_> {
    pub fn scope(&self) -> Scope<'_> {
        Scope {
            conn: self.conn,
            req: &*self.req,
            res: self.res.as_deref().map(|r| r as &dyn ResponseHead),
            endpoint: self.endpoint,
            vars: self.vars,
        }
    }

    pub fn render(&self, t: &Template) -> Result<String, ActionError> {
        t.render(self.env, &self.scope()).map_err(ActionError::from)
    }
}

/// What an action waits for resolves to this; the action's `resume` reads it back.
pub type Resume = Box<dyn std::any::Any + Send>;
/// Work an action must await (a shared store); it owns everything it needs.
pub type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = Resume> + Send>>;

/// What happens after an action ran.
pub enum Flow {
    Next,
    /// Terminal: answer the client with this.
    Respond(Reply),
    /// Terminal: hand the request to the internal endpoint with this id.
    Forward(usize),
    /// Await this, then call the action's `resume` with its value.
    Wait(Pending),
}

impl fmt::Debug for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flow::Next => f.write_str("Next"),
            Flow::Respond(r) => write!(f, "Respond({})", r.status),
            Flow::Forward(id) => write!(f, "Forward({id})"),
            Flow::Wait(_) => f.write_str("Wait"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Halt,
    Continue,
}

/// An action failed; with `on_error: halt` the client gets `status` and `code`.
#[derive(Debug, Clone)]
pub struct ActionError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ActionError {
    pub fn internal(message: impl Into<String>) -> ActionError {
        ActionError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "SWY_INTERNAL",
            message: message.into(),
        }
    }
}

impl From<ExprError> for ActionError {
    fn from(e: ExprError) -> Self {
        ActionError {
            status: StatusCode::BAD_REQUEST,
            code: "SWY_EXPRESSION_ERROR",
            message: e.to_string(),
        }
    }
}

pub trait Action: Send + Sync + fmt::Debug {
    fn run(&self, cx: &mut ActionCx<'_>) -> Result<Flow, ActionError>;

    /// Continues after a [`Flow::Wait`] with what the pending work produced.
    fn resume(&self, _cx: &mut ActionCx<'_>, _value: Resume) -> Result<Flow, ActionError> {
        Err(ActionError::internal("this action does not wait"))
    }

    fn on_error(&self) -> OnError {
        OnError::Halt
    }

    /// Where `actions.ngrok.<name>.error` is recorded when `on_error: continue` lets it pass.
    fn vars_path(&self) -> Option<&'static str> {
        None
    }

    /// How much of the request body this action inspects, if any.
    fn body_limit(&self) -> Option<usize> {
        None
    }
}

/// An action's `config` with its location, for typed reads with `file:line` errors.
pub struct ActionConfig<'a> {
    pub kind: &'a str,
    pub node: Option<&'a Node>,
    pub loc: Loc,
    pub phase: Phase,
    pub env: &'a super::CompileEnv<'a>,
}

impl<'a> ActionConfig<'a> {
    pub fn known(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        match self.node {
            Some(n) if !n.is_null() => {
                read::known_keys(n, &self.loc, &format!("{} config", self.kind), allowed)
            }
            _ => Ok(()),
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.node.and_then(|n| n.get(key))
    }

    pub fn require(&self, key: &str) -> Result<&'a Node, ConfigError> {
        self.get(key)
            .ok_or_else(|| self.loc.error(format!("{} needs config.{key}", self.kind)))
    }

    pub fn template(&self, node: &Node, what: &str) -> Result<Template, ConfigError> {
        let text = read::string(node, &self.loc, what)?;
        Template::compile(text, self.phase).map_err(|e| self.loc.at(node).error(e))
    }

    pub fn status(&self, key: &str, default: u16) -> Result<StatusCode, ConfigError> {
        let Some(n) = self.get(key) else {
            return StatusCode::from_u16(default).map_err(|e| self.loc.error(e.to_string()));
        };
        let code = read::integer(n, &self.loc, key)?;
        u16::try_from(code)
            .ok()
            .filter(|c| (100..=599).contains(c))
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or_else(|| {
                self.loc
                    .at(n)
                    .error(format!("{key} must be an HTTP status (100-599)"))
            })
    }

    pub fn integer(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, ConfigError> {
        let Some(n) = self.get(key) else {
            return Ok(None);
        };
        let v = read::integer(n, &self.loc, key)?;
        if !range.contains(&v) {
            return Err(self.loc.at(n).error(format!(
                "{key} must be between {} and {}, found {v}",
                range.start(),
                range.end()
            )));
        }
        Ok(Some(v))
    }

    pub fn boolean(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            Some(n) => read::boolean(n, &self.loc, key),
            None => Ok(default),
        }
    }

    pub fn on_error(&self) -> Result<OnError, ConfigError> {
        match self.get("on_error") {
            None => Ok(OnError::Halt),
            Some(n) => match read::string(n, &self.loc, "on_error")? {
                "halt" => Ok(OnError::Halt),
                "continue" => Ok(OnError::Continue),
                other => Err(self.loc.at(n).error(format!(
                    "on_error must be halt or continue, found `{other}`"
                ))),
            },
        }
    }

    /// Only in these phases.
    pub fn phases(&self, allowed: &[Phase]) -> Result<(), ConfigError> {
        if allowed.contains(&self.phase) {
            return Ok(());
        }
        let name = match self.phase {
            Phase::Request => "on_http_request",
            Phase::Response => "on_http_response",
        };
        Err(self
            .loc
            .error(format!("action `{}` cannot run in {name}", self.kind)))
    }
}

type Builder = fn(&ActionConfig<'_>) -> Result<Box<dyn Action>, ConfigError>;

const REGISTRY: &[(&str, Builder)] = &[
    ("add-headers", add_headers::build),
    ("custom-response", custom_response::build),
    ("deny", deny::build),
    ("forward-internal", forward_internal::build),
    ("owasp-crs-request", owasp_crs::build_request),
    ("owasp-crs-response", owasp_crs::build_response),
    ("rate-limit", rate_limit::build),
    ("remove-headers", remove_headers::build),
    ("restrict-ips", restrict_ips::build),
];

/// ngrok actions this build does not have yet: named as such rather than "unknown".
const NOT_YET: &[&str] = &[
    "redirect",
    "url-rewrite",
    "basic-auth",
    "jwt-validation",
    "verify-webhook",
    "log",
    "set-vars",
    "compress-response",
    "circuit-breaker",
    "close-connection",
    "oauth",
    "openid-connect",
    "http-request",
    "terminate-tls",
    "request-body-find-replace",
    "response-body-find-replace",
    "sse-find-replace",
];

/// Builds an action; returns it with its registered type name.
pub fn build(cfg: &ActionConfig<'_>) -> Result<(&'static str, Box<dyn Action>), ConfigError> {
    if let Some((kind, builder)) = REGISTRY.iter().find(|(k, _)| *k == cfg.kind) {
        return Ok((kind, builder(cfg)?));
    }
    if NOT_YET.contains(&cfg.kind) {
        return Err(cfg.loc.error(format!(
            "action `{}` is not supported yet by this build of Switchyard",
            cfg.kind
        )));
    }
    let known: Vec<&str> = REGISTRY.iter().map(|(k, _)| *k).collect();
    Err(cfg.loc.error(format!(
        "unknown action type `{}` (supported: {})",
        cfg.kind,
        known.join(", ")
    )))
}
