//! CEL for Traffic Policy: compiled expressions, `${}` templates, the request variables (resolved
//! lazily, by their full dotted name) and ngrok's functions.

mod functions;
mod scope;
mod template;

pub use scope::{request_host, Scope};
pub use template::Template;

use cel::{Context, Program, Value};
use std::fmt;
use std::sync::Arc;

/// Which phase an expression is compiled for: `res` exists only in the response phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Request,
    Response,
}

/// The root CEL context: the standard library plus ngrok's functions. Built once per config.
pub struct ExprEnv {
    root: Context<'static, 'static>,
}

impl fmt::Debug for ExprEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExprEnv")
    }
}

impl ExprEnv {
    pub fn new() -> Arc<ExprEnv> {
        let mut root = Context::default();
        functions::register(&mut root);
        Arc::new(ExprEnv { root })
    }
}

/// An expression failed at request time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("expression `{expr}` failed: {message}")]
pub struct ExprError {
    pub expr: Arc<str>,
    pub message: String,
}

/// A compiled CEL expression.
pub struct Expr {
    src: Arc<str>,
    program: Program,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expr({})", self.src)
    }
}

const ROOTS: &[&str] = &["conn", "req", "endpoint", "time", "actions", "vars"];

impl Expr {
    /// Parses `src` and checks that it names only variables that exist in `phase`.
    pub fn compile(src: &str, phase: Phase) -> Result<Expr, String> {
        let program = Program::compile(src).map_err(|e| {
            let text = e.to_string();
            format!("invalid CEL expression `{}`: {}", src.trim(), text.trim())
        })?;
        for var in program.references().variables() {
            let root = var.split('.').next().unwrap_or(var);
            let known = ROOTS.contains(&root) || (root == "res" && phase == Phase::Response);
            if !known {
                let hint = if root == "res" {
                    " (`res` exists only in on_http_response)"
                } else {
                    ""
                };
                return Err(format!(
                    "expression `{}` uses unknown variable `{var}`{hint}; known: conn, req, res, endpoint, time, actions",
                    src.trim()
                ));
            }
        }
        Ok(Expr {
            src: src.trim().into(),
            program,
        })
    }

    pub fn source(&self) -> &Arc<str> {
        &self.src
    }

    pub fn eval(&self, env: &ExprEnv, scope: &Scope<'_>) -> Result<Value, ExprError> {
        let root: &Context<'_, '_> = &env.root;
        let mut cx = root.new_inner_scope();
        cx.set_variable_resolver(scope);
        self.program.execute(&cx).map_err(|e| ExprError {
            expr: self.src.clone(),
            message: e.to_string(),
        })
    }

    pub fn eval_bool(&self, env: &ExprEnv, scope: &Scope<'_>) -> Result<bool, ExprError> {
        match self.eval(env, scope)? {
            Value::Bool(b) => Ok(b),
            other => Err(ExprError {
                expr: self.src.clone(),
                message: format!("expected a bool, got {:?}", other.type_of()),
            }),
        }
    }
}

/// Renders a CEL value into text for templates and bucket keys.
pub fn stringify(v: &Value, out: &mut String) {
    use std::fmt::Write;
    match v {
        Value::String(s) => out.push_str(s),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) => {
            let _ = write!(out, "{f}");
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => {}
        Value::Timestamp(t) => {
            out.push_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }
        Value::Bytes(b) => out.push_str(&String::from_utf8_lossy(b)),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                stringify(item, out);
            }
        }
        other => {
            let _ = write!(out, "{other:?}");
        }
    }
}
