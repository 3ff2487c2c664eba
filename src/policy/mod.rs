//! Traffic Policy: the document shape, [`compile`] into a [`CompiledPolicy`], and running a
//! phase against one exchange. Knows nothing of Pingora.

pub mod actions;
mod compile;
pub mod exchange;
pub mod expr;
mod run;

pub use compile::{compile, Compiled as CompiledPolicyResult};
pub use run::Outcome;

use actions::Action;
use expr::Expr;
use std::sync::Arc;

/// What compiling a policy may draw on beyond the document itself.
pub struct CompileEnv<'a> {
    /// Rate-limit state that outlives one compiled config.
    pub rate_limits: &'a crate::ratelimit::RateLimits,
    /// For warning about category names no list defines.
    pub ip_intel: &'a crate::ipintel::IpIntel,
    /// The CRS, loaded the first time an action asks for it.
    pub waf: &'a WafSource,
}

/// The CRS rule set of `Gateway.spec.waf`, loaded once, on first use.
pub struct WafSource {
    dir: std::path::PathBuf,
    loaded: std::sync::OnceLock<Result<std::sync::Arc<crate::waf::ruleset::RuleSet>, String>>,
}

impl WafSource {
    pub fn new(dir: std::path::PathBuf) -> WafSource {
        WafSource {
            dir,
            loaded: std::sync::OnceLock::new(),
        }
    }

    pub fn rules(&self) -> Result<std::sync::Arc<crate::waf::ruleset::RuleSet>, String> {
        self.loaded
            .get_or_init(|| {
                crate::waf::loader::load_crs(&self.dir, None, Vec::new())
                    .map(std::sync::Arc::new)
                    .map_err(|e| format!("cannot load the CRS from {}: {e}", self.dir.display()))
            })
            .clone()
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.get().is_some_and(|r| r.is_ok())
    }
}

/// A policy compiled once at load: expressions parsed, templates split, configs validated.
#[derive(Debug, Default)]
pub struct CompiledPolicy {
    /// Each phase is a list of [`Step::Rule`]s.
    pub(crate) on_http_request: Vec<Step>,
    pub(crate) on_http_response: Vec<Step>,
    pub(crate) body_limit: Option<usize>,
}

impl CompiledPolicy {
    pub fn has_response_rules(&self) -> bool {
        !self.on_http_response.is_empty()
    }

    /// The request body this policy inspects (`process_body`), at most this many bytes.
    pub fn body_limit(&self) -> Option<usize> {
        self.body_limit
    }
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub name: Option<Arc<str>>,
    /// All must hold (none: always).
    pub expressions: Vec<Expr>,
    pub steps: Vec<Step>,
}

/// An entry of a rule's `actions`: an action, or a rule nested in place (the scenario's shape).
#[derive(Debug)]
pub(crate) enum Step {
    Action(&'static str, Box<dyn Action>),
    Rule(Rule),
}

/// How deep rules may nest inside `actions` (the run loop keeps a fixed-size stack).
pub(crate) const MAX_NESTING: usize = 4;

/// Counts rule expressions that failed at run time (they make the rule not match).
pub static EXPRESSION_ERRORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cfg(test)]
mod tests;
