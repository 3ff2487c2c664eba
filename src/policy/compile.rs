//! Policy document → [`CompiledPolicy`]. Accepts ngrok's canonical shape and the two shapes the
//! scenario's guide writes (a phase given as one rule; a rule nested inside `actions`), with a
//! note for each of the latter.

use super::actions::{self, ActionConfig};
use super::expr::{Expr, Phase};
use super::{CompileEnv, CompiledPolicy, Rule, Step};
use crate::config::read;
use crate::config::yaml::{Node, NodeKind};
use crate::config::{ConfigError, Loc};
use std::sync::Arc;

/// A compiled policy and the notes about how non-canonical shapes were read.
pub struct Compiled {
    pub policy: CompiledPolicy,
    pub notes: Vec<String>,
}

/// Compiles a policy document. All errors are collected, so one run names every problem.
pub fn compile(node: &Node, loc: &Loc, env: &CompileEnv<'_>) -> Result<Compiled, Vec<ConfigError>> {
    let mut cx = Cx {
        env,
        depth: 0,
        loc: loc.clone(),
        errors: Vec::new(),
        notes: Vec::new(),
    };
    let mut policy = CompiledPolicy::default();
    if node.is_null() {
        return Ok(Compiled {
            policy,
            notes: Vec::new(),
        });
    }
    let entries = match read::map(node, loc, "a traffic policy") {
        Ok(e) => e,
        Err(e) => return Err(vec![e]),
    };
    for (k, v) in entries {
        let key = k.as_str().unwrap_or("");
        match key {
            "on_http_request" => policy.on_http_request = as_steps(cx.phase(v, Phase::Request, key)),
            "on_http_response" => {
                policy.on_http_response = as_steps(cx.phase(v, Phase::Response, key))
            }
            "on_tcp_connect" => cx
                .errors
                .push(loc.at(k).error("on_tcp_connect is not supported yet")),
            other => cx.errors.push(loc.at(k).error(format!(
                "unknown traffic policy phase `{other}` (expected on_http_request or on_http_response)"
            ))),
        }
    }
    policy.body_limit = body_limit(&policy.on_http_request);
    if cx.errors.is_empty() {
        Ok(Compiled {
            policy,
            notes: cx.notes,
        })
    } else {
        Err(cx.errors)
    }
}

fn as_steps(rules: Vec<Rule>) -> Vec<Step> {
    rules.into_iter().map(Step::Rule).collect()
}

struct Cx<'e> {
    env: &'e CompileEnv<'e>,
    depth: usize,
    loc: Loc,
    errors: Vec<ConfigError>,
    notes: Vec<String>,
}

impl Cx<'_> {
    fn phase(&mut self, node: &Node, phase: Phase, name: &str) -> Vec<Rule> {
        match &node.kind {
            NodeKind::Seq(rules) => rules.iter().filter_map(|r| self.rule(r, phase)).collect(),
            NodeKind::Map(_) => {
                // This note goes before those of the rules nested inside, in file order.
                let at = self.notes.len();
                let rule = self.rule(node, phase);
                if let Some(rule) = &rule {
                    self.notes.insert(at, format!(
                        "{}: note: {name} is a single rule (a mapping), not a list of rules; read as {}",
                        self.loc.at(node),
                        describe(std::slice::from_ref(rule))
                    ));
                }
                rule.into_iter().collect()
            }
            _ if node.is_null() => Vec::new(),
            _ => {
                self.errors.push(self.loc.at(node).error(format!(
                    "{name} must be a list of rules, found {}",
                    node.describe()
                )));
                Vec::new()
            }
        }
    }

    fn rule(&mut self, node: &Node, phase: Phase) -> Option<Rule> {
        let loc = self.loc.clone();
        if let Err(e) = read::known_keys(node, &loc, "a rule", &["name", "expressions", "actions"])
        {
            self.errors.push(e);
            return None;
        }
        let name = match node.get("name").map(|n| read::string(n, &loc, "name")) {
            Some(Ok(n)) => Some(Arc::from(n)),
            Some(Err(e)) => {
                self.errors.push(e);
                None
            }
            None => None,
        };
        let expressions = self.expressions(node.get("expressions"), phase);
        let Some(actions_node) = node.get("actions") else {
            self.errors
                .push(loc.at(node).error("a rule needs `actions`"));
            return None;
        };
        let list = match read::seq(actions_node, &loc, "actions") {
            Ok(l) => l,
            Err(e) => {
                self.errors.push(e);
                return None;
            }
        };
        let mut steps = Vec::with_capacity(list.len());
        for entry in list {
            let is_nested = entry.get("type").is_none()
                && (entry.get("actions").is_some() || entry.get("expressions").is_some());
            if is_nested && self.depth >= super::MAX_NESTING {
                self.errors.push(loc.at(entry).error(format!(
                    "rules nest more than {} deep inside `actions`",
                    super::MAX_NESTING
                )));
            } else if is_nested {
                let at = self.notes.len();
                self.depth += 1;
                let inner = self.rule(entry, phase);
                self.depth -= 1;
                if let Some(inner) = inner {
                    self.notes.insert(at, format!(
                        "{}: note: a rule nested inside `actions` runs in place, in order, when its expressions hold: {}",
                        loc.at(entry),
                        inner_names(&inner)
                    ));
                    steps.push(Step::Rule(inner));
                }
            } else if let Some((kind, a)) = self.action(entry, phase) {
                steps.push(Step::Action(kind, a));
            }
        }
        Some(Rule {
            name,
            expressions,
            steps,
        })
    }

    fn expressions(&mut self, node: Option<&Node>, phase: Phase) -> Vec<Expr> {
        let Some(node) = node.filter(|n| !n.is_null()) else {
            return Vec::new();
        };
        let list = match read::seq(node, &self.loc, "expressions") {
            Ok(l) => l,
            Err(e) => {
                self.errors.push(e);
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for e in list {
            match read::string(e, &self.loc, "an expression")
                .and_then(|src| Expr::compile(src, phase).map_err(|m| self.loc.at(e).error(m)))
            {
                Ok(x) => {
                    self.check_categories(&x, e);
                    out.push(x)
                }
                Err(err) => self.errors.push(err),
            }
        }
        out
    }

    /// A category name no list defines never matches: usually a typo or a name ngrok does not
    /// use (the scenario's `tor`, `vpn`), so say so.
    fn check_categories(&mut self, expr: &Expr, node: &Node) {
        let src = expr.source();
        if !src.contains("conn.client_ip.categories") {
            return;
        }
        for name in string_literals(src) {
            if !self.env.ip_intel.has_category(&name) {
                self.notes.push(format!(
                    "{}: warning: no ipIntel list defines the category `{name}`, so testing it never matches",
                    self.loc.at(node)
                ));
            }
        }
    }

    fn action(
        &mut self,
        entry: &Node,
        phase: Phase,
    ) -> Option<(&'static str, Box<dyn actions::Action>)> {
        let loc = self.loc.at(entry);
        let result =
            read::known_keys(entry, &self.loc, "an action", &["type", "config"]).and_then(|_| {
                let kind = entry
                    .get("type")
                    .ok_or_else(|| loc.error("an action needs `type`"))?;
                let kind = read::string(kind, &self.loc, "type")?;
                let config = entry.get("config");
                if let Some(c) = config.filter(|c| !c.is_null()) {
                    read::map(c, &self.loc, "config")?;
                }
                actions::build(&ActionConfig {
                    kind,
                    node: config,
                    loc: loc.clone(),
                    phase,
                    env: self.env,
                })
            });
        match result {
            Ok(a) => Some(a),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }
}

/// `[a, b], {c when <expr>}, [d]`: how a rule list reads once nested rules are split out.
pub fn describe(rules: &[Rule]) -> String {
    let mut groups: Vec<String> = Vec::new();
    for rule in rules {
        let mut plain: Vec<String> = Vec::new();
        let flush = |plain: &mut Vec<String>, groups: &mut Vec<String>| {
            if !plain.is_empty() {
                groups.push(format!("[{}]", plain.join(", ")));
                plain.clear();
            }
        };
        for step in &rule.steps {
            match step {
                Step::Action(kind, _) => plain.push(kind.to_string()),
                Step::Rule(inner) => {
                    flush(&mut plain, &mut groups);
                    groups.push(format!(
                        "{{{} when the expression holds}}",
                        inner_names(inner)
                    ));
                }
            }
        }
        flush(&mut plain, &mut groups);
    }
    format!("{} rule(s): {}", groups.len(), groups.join(", "))
}

/// `deny, add-headers`: the actions of a nested rule.
fn inner_names(rule: &Rule) -> String {
    let names: Vec<&str> = rule
        .steps
        .iter()
        .map(|s| match s {
            Step::Action(kind, _) => *kind,
            Step::Rule(_) => "a nested rule",
        })
        .collect();
    names.join(", ")
}

/// The contents of the '…' and "…" literals of a CEL expression.
fn string_literals(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = src.chars();
    while let Some(c) = chars.next() {
        if c != '\'' && c != '"' {
            continue;
        }
        let mut lit = String::new();
        while let Some(d) = chars.next() {
            match d {
                '\\' => {
                    if let Some(e) = chars.next() {
                        lit.push(e);
                    }
                }
                d if d == c => break,
                d => lit.push(d),
            }
        }
        out.push(lit);
    }
    out
}

/// The largest request body any action of these steps inspects.
fn body_limit(steps: &[Step]) -> Option<usize> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Action(_, a) => a.body_limit(),
            Step::Rule(r) => body_limit(&r.steps),
        })
        .max()
}
