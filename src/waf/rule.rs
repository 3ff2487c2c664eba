//! A compiled rule: targets resolved to variable slots, selector regexes compiled, operator
//! compiled, transformation chain resolved, actions typed; a chain is a linked list.

use super::actions::{Actions, Disruptive};
use super::collections::key_hash;
use super::macros::{Part, Template};
use super::operators::{self, Operator};
use super::seclang::{names, OperatorSpec, Selector, VarSpec};
use super::transforms::Transform;
use regex::bytes::{Regex, RegexBuilder};
use std::path::Path;

#[derive(Debug, Clone)]
pub enum KeySel {
    /// Lower-case key, compared case-insensitively, and its [`key_hash`].
    Key(String, u64),
    /// A `/regex/` that is only a literal (`/__utm/`, `/^header_name_/`): lower-case, found
    /// case-insensitively without a regex search, run for every key of every rule using it.
    Contains(String),
    Prefix(String),
    Regex(Regex),
}

impl KeySel {
    pub fn matches(&self, key: &str) -> bool {
        match self {
            KeySel::Key(k, _) => key.eq_ignore_ascii_case(k),
            KeySel::Contains(lit) => key
                .as_bytes()
                .windows(lit.len())
                .any(|w| w.eq_ignore_ascii_case(lit.as_bytes())),
            KeySel::Prefix(lit) => key
                .as_bytes()
                .get(..lit.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(lit.as_bytes())),
            KeySel::Regex(r) => r.is_match(key.as_bytes()),
        }
    }

    /// A selector regex as a literal search when it is one (`^` anchor and a trailing `.*`
    /// allowed); `None` for anything else.
    fn literal(pattern: &str) -> Option<KeySel> {
        let (anchored, rest) = match pattern.strip_prefix('^') {
            Some(r) => (true, r),
            None => (false, pattern),
        };
        let rest = rest.strip_suffix(".*").unwrap_or(rest);
        if rest.is_empty()
            || !rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return None;
        }
        let lit = rest.to_ascii_lowercase();
        Some(if anchored {
            KeySel::Prefix(lit)
        } else {
            KeySel::Contains(lit)
        })
    }
}

#[derive(Debug, Clone)]
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
            Some(Selector::Key(k)) => {
                let k = k.to_ascii_lowercase();
                let hash = key_hash(&k);
                Some(KeySel::Key(k, hash))
            }
            Some(Selector::Regex(r)) => Some(match KeySel::literal(r) {
                Some(lit) => lit,
                None => KeySel::Regex(
                    RegexBuilder::new(r)
                        .case_insensitive(true)
                        .build()
                        .map_err(|e| format!("selector /{r}/: {e}"))?,
                ),
            }),
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
    /// The transformation chain's number in the rule set (0: not cached); rules with the same
    /// chain share one cached result per value and transaction.
    pub chain_id: u32,
    /// The operator's argument reads something this link's own matches write (captures,
    /// `setvar`, `MATCHED_*`): its values are then tested one by one, each after the
    /// previous match's actions, as ModSecurity does.
    pub in_turn: bool,
    /// Whether the link reads `MATCHED_VARS` or `MATCHED_VARS_NAMES` (a target or a macro):
    /// the transaction keeps those variables up to date only for such links.
    pub reads_matched_vars: bool,
    /// Where `skipAfter` lands in this rule's phase, resolved when the set is built.
    pub skip_to: Option<usize>,
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
        let compiled = operators::compile(operator.name, &operator.argument, dir)?;
        let in_turn = compiled
            .template()
            .is_some_and(|t| reads_own_writes(t, &actions));
        let lists = |name: &str| name == "MATCHED_VARS" || name == "MATCHED_VARS_NAMES";
        let reads_matched_vars = targets.iter().any(|t| lists(t.name)) || {
            let mut templates = compiled
                .template()
                .into_iter()
                .chain(actions.msg.as_ref())
                .chain(actions.logdata.as_ref())
                .chain(actions.setvars.iter().flat_map(|sv| [&sv.key, &sv.value]));
            templates.any(|t| {
                t.parts()
                    .iter()
                    .any(|p| matches!(p, Part::Var { collection, .. } if lists(collection)))
            })
        };
        Ok(Rule {
            operator: compiled,
            in_turn,
            reads_matched_vars,
            negated: operator.negated,
            targets,
            exclusions,
            transforms,
            chain_id: 0,
            skip_to: None,
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

/// Whether a link's operator argument `arg` reads a variable that the link's matches write:
/// the `MATCHED_*` variables, `TX:0`-`TX:9` when it captures, or a `setvar` target.
fn reads_own_writes(arg: &Template, actions: &Actions) -> bool {
    let tx = names::VARIABLES.iter().position(|v| *v == "TX");
    arg.parts().iter().any(|part| {
        let Part::Var {
            collection,
            key,
            slot,
            ..
        } = part
        else {
            return false;
        };
        if collection.starts_with("MATCHED_VAR") {
            return true;
        }
        let key = key.as_deref();
        let numeric = key.is_none_or(|k| k.bytes().all(|b| b.is_ascii_digit()));
        if actions.capture && *slot == tx && numeric {
            return true;
        }
        actions.setvars.iter().any(|sv| {
            sv.slot == *slot
                && match (sv.key.literal(), key) {
                    (Some(written), Some(read)) => written.eq_ignore_ascii_case(read),
                    _ => true,
                }
        })
    })
}
