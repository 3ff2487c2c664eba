//! A compiled rule: targets resolved to variable slots, selector regexes compiled, operator
//! compiled, transformation chain resolved, actions typed; a chain is a linked list.

use super::actions::{Actions, Disruptive};
use super::operators::{self, Operator};
use super::seclang::{names, OperatorSpec, Selector, VarSpec};
use super::transforms::Transform;
use regex::bytes::{Regex, RegexBuilder};
use std::path::Path;

#[derive(Debug)]
pub enum KeySel {
    /// Lower-case key, compared case-insensitively.
    Key(String),
    Regex(Regex),
}

impl KeySel {
    pub fn matches(&self, key: &str) -> bool {
        match self {
            KeySel::Key(k) => key.eq_ignore_ascii_case(k),
            KeySel::Regex(r) => r.is_match(key.as_bytes()),
        }
    }
}

#[derive(Debug)]
pub struct Target {
    /// Index into [`names::VARIABLES`].
    pub slot: usize,
    pub name: &'static str,
    pub count: bool,
    pub selector: Option<KeySel>,
}

impl Target {
    pub fn compile(spec: &VarSpec) -> Result<Target, String> {
        let slot = names::VARIABLES
            .iter()
            .position(|v| *v == spec.name)
            .expect("parser returns known variables");
        let selector = match &spec.selector {
            None => None,
            Some(Selector::Key(k)) => Some(KeySel::Key(k.to_ascii_lowercase())),
            Some(Selector::Regex(r)) => Some(KeySel::Regex(
                RegexBuilder::new(r)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| format!("selector /{r}/: {e}"))?,
            )),
        };
        Ok(Target {
            slot,
            name: spec.name,
            count: spec.count,
            selector,
        })
    }

    /// Whether this (exclusion) target covers the variable `slot` entry `key`.
    pub fn covers(&self, slot: usize, key: &str) -> bool {
        self.slot == slot && self.selector.as_ref().is_none_or(|s| s.matches(key))
    }
}

#[derive(Debug)]
pub struct Rule {
    pub actions: Actions,
    pub targets: Vec<Target>,
    pub exclusions: Vec<Target>,
    pub operator: Operator,
    pub negated: bool,
    pub transforms: Vec<Transform>,
    pub chained: Option<Box<Rule>>,
    pub file: std::sync::Arc<str>,
    pub line: usize,
}

/// Defaults from `SecDefaultAction` for one phase.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub disruptive: Option<Disruptive>,
    pub log: Option<bool>,
    pub transforms: Vec<Transform>,
}

impl Rule {
    pub fn compile(
        variables: &[VarSpec],
        operator: &OperatorSpec,
        actions: Actions,
        defaults: &Defaults,
        dir: &Path,
    ) -> Result<Rule, String> {
        let mut targets = Vec::new();
        let mut exclusions = Vec::new();
        for v in variables {
            let t = Target::compile(v)?;
            if v.exclude {
                exclusions.push(t);
            } else {
                targets.push(t);
            }
        }
        let mut transforms = if actions.transforms_reset {
            Vec::new()
        } else {
            defaults.transforms.clone()
        };
        transforms.extend(actions.transforms.iter().copied());
        Ok(Rule {
            operator: operators::compile(operator.name, &operator.argument, dir)?,
            negated: operator.negated,
            targets,
            exclusions,
            transforms,
            actions,
            chained: None,
            file: "".into(),
            line: 0,
        })
    }

    /// The last rule of this chain (where the next chained rule attaches).
    pub fn last_mut(&mut self) -> &mut Rule {
        match self.chained {
            Some(ref mut next) => next.last_mut(),
            None => self,
        }
    }
}
