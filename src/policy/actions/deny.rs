//! `deny`: answer with a status and no body.

use super::{Action, ActionConfig, ActionCx, ActionError, Flow};
use crate::config::ConfigError;
use crate::policy::exchange::Reply;
use crate::policy::expr::Phase;
use http::StatusCode;

#[derive(Debug)]
struct Deny {
    status: StatusCode,
}

pub fn build(cfg: &ActionConfig<'_>) -> Result<Box<dyn Action>, ConfigError> {
    cfg.phases(&[Phase::Request])?;
    cfg.known(&["status_code"])?;
    Ok(Box::new(Deny {
        status: cfg.status("status_code", 403)?,
    }))
}

impl Action for Deny {
    fn run(&self, _cx: &mut ActionCx<'_>) -> Result<Flow, ActionError> {
        Ok(Flow::Respond(Reply::new(self.status)))
    }
}
