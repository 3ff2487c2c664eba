//! Running one phase: rules in order, actions in order, until a terminal action. Nested rules
//! are walked with a fixed-size stack, so a phase needs no heap and no boxed recursion even
//! though an action may await (a shared rate-limit store).

use super::actions::{Action, ActionCx, ActionError, Flow, OnError};
use super::exchange::Reply;
use super::expr::Phase;
use super::{CompiledPolicy, Rule, Step, EXPRESSION_ERRORS, MAX_NESTING};
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
    pub async fn run(&self, phase: Phase, cx: &mut ActionCx<'_>) -> Outcome {
        let top: &[Step] = match phase {
            Phase::Request => &self.on_http_request,
            Phase::Response => &self.on_http_response,
        };
        let mut stack: [(&[Step], usize); MAX_NESTING + 2] = [(&[], 0); MAX_NESTING + 2];
        stack[0] = (top, 0);
        let mut depth = 1;
        while depth > 0 {
            let (steps, next) = &mut stack[depth - 1];
            let Some(step) = steps.get(*next) else {
                depth -= 1;
                continue;
            };
            *next += 1;
            match step {
                Step::Rule(rule) => {
                    if matches(rule, cx) {
                        stack[depth] = (&rule.steps, 0);
                        depth += 1;
                    }
                }
                Step::Action(_, action) => {
                    if let Some(done) = act(action.as_ref(), cx).await {
                        return done;
                    }
                }
            }
        }
        Outcome::Continue
    }
}

/// Runs one action; `Some` when it ends the phase.
async fn act(action: &dyn Action, cx: &mut ActionCx<'_>) -> Option<Outcome> {
    let mut result = action.run(cx);
    if let Ok(Flow::Wait(pending)) = result {
        let value = pending.await;
        result = action.resume(cx, value);
    }
    match result {
        Ok(Flow::Next) => None,
        Ok(Flow::Respond(reply)) => Some(Outcome::Respond(reply)),
        Ok(Flow::Forward(id)) => Some(Outcome::Forward(id)),
        Ok(Flow::Wait(_)) => Some(Outcome::Error(ActionError::internal(
            "an action asked to wait twice",
        ))),
        Err(e) if action.on_error() == OnError::Halt => Some(Outcome::Error(e)),
        Err(e) => {
            log::debug!(
                "action failed, continuing (on_error: continue): {}",
                e.message
            );
            if let Some(path) = action.vars_path() {
                cx.vars.set(path, error_vars(&e));
            }
            None
        }
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
