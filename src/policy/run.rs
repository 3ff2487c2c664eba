//! Running one phase: rules in order, actions in order, until a terminal action.

use super::actions::{ActionCx, ActionError, Flow, OnError};
use super::exchange::Reply;
use super::expr::Phase;
use super::{CompiledPolicy, Rule, Step, EXPRESSION_ERRORS};
use cel::Value;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// How a phase ended.
#[derive(Debug)]
pub enum Outcome {
    /// No terminal action ran.
    Continue,
    Respond(Reply),
    /// Forward to the internal endpoint with this id.
    Forward(usize),
    /// An action failed with `on_error: halt`.
    Error(ActionError),
}

impl CompiledPolicy {
    pub fn run(&self, phase: Phase, cx: &mut ActionCx<'_>) -> Outcome {
        let rules = match phase {
            Phase::Request => &self.on_http_request,
            Phase::Response => &self.on_http_response,
        };
        for rule in rules {
            if let Some(done) = run_rule(rule, cx) {
                return done;
            }
        }
        Outcome::Continue
    }
}

fn matches(rule: &Rule, cx: &ActionCx<'_>) -> bool {
    if rule.expressions.is_empty() {
        return true;
    }
    let scope = cx.scope();
    rule.expressions
        .iter()
        .all(|e| match e.eval_bool(cx.env, &scope) {
            Ok(b) => b,
            Err(err) => {
                EXPRESSION_ERRORS.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "rule {} does not match: {err}",
                    rule.name.as_deref().unwrap_or("(unnamed)")
                );
                false
            }
        })
}

fn run_rule(rule: &Rule, cx: &mut ActionCx<'_>) -> Option<Outcome> {
    if !matches(rule, cx) {
        return None;
    }
    for step in &rule.steps {
        match step {
            Step::Rule(inner) => {
                if let Some(done) = run_rule(inner, cx) {
                    return Some(done);
                }
            }
            Step::Action(_, action) => match action.run(cx) {
                Ok(Flow::Next) => {}
                Ok(Flow::Respond(reply)) => return Some(Outcome::Respond(reply)),
                Ok(Flow::Forward(id)) => return Some(Outcome::Forward(id)),
                Err(e) if action.on_error() == OnError::Halt => return Some(Outcome::Error(e)),
                Err(e) => {
                    log::debug!(
                        "action failed, continuing (on_error: continue): {}",
                        e.message
                    );
                    if let Some(path) = action.vars_path() {
                        cx.vars.set(path, error_vars(&e));
                    }
                }
            },
        }
    }
    None
}

fn error_vars(e: &ActionError) -> Value {
    let mut err = HashMap::new();
    err.insert(
        "code".to_string(),
        Value::String(Arc::new(e.code.to_string())),
    );
    err.insert(
        "message".to_string(),
        Value::String(Arc::new(e.message.clone())),
    );
    let mut top = HashMap::new();
    top.insert("error".to_string(), Value::from(err));
    top.into()
}
