//! A compiled rule: targets resolved to variable slots, selector regexes compiled, operator
//! compiled, transformation chain resolved, actions typed; a chain is a linked list.

use super::actions::{Actions, Disruptive};
use super::collections::KnownKey;
use super::macros::{Part, Template};
use super::operators::{self, Operator};
use super::seclang::{names, OperatorSpec, Selector, VarSpec};
use super::transforms::Transform;
use regex::bytes::{Regex, RegexBuilder};
use std::path::Path;

#[derive(Debug, Clone)]
pub enum KeySel {
    /// Lower-case key, compared case-insensitively, and its number.
    Key(String, KnownKey),
    /// A `/regex/` that is only a literal (`/__utm/`, `/^header_name_/`): lower-case, found
    /// case-insensitively without a regex search, run for every key of every rule using it.
    Contains(String),
    Prefix(String),
    Regex(Regex),
}

impl KeySel {
    #[inline(always)]
    pub fn matches(&self, key: &str) -> bool {
        match self {
            KeySel::Key(k, _) => key.eq_ignore_ascii_case(k),
            _ => self.matches_pattern(key),
        }
    }

    /// [`Self::matches`] for the selectors that are patterns, out of line: a few hundred
    /// header names a request are compared to a key, and that comparison is worth no
    /// registers saved for a search.
    #[inline(never)]
    fn matches_pattern(&self, key: &str) -> bool {
        match self {
            KeySel::Key(k, _) => key.eq_ignore_ascii_case(k),
            // Selectors over TX scan a hundred keys each time: most are told apart by their
            // length or first byte.
            KeySel::Contains(lit) => contains_ignore_case(key.as_bytes(), lit.as_bytes()),
            KeySel::Prefix(lit) => {
                let (key, lit) = (key.as_bytes(), lit.as_bytes());
                key.len() >= lit.len()
                    && lit
                        .first()
                        .is_none_or(|b| key[0].to_ascii_lowercase() == *b)
                    && key[..lit.len()].eq_ignore_ascii_case(lit)
            }
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
        // Without a `$`, a trailing `.*`, or a last character made optional (`TYPES_*`),
        // adds nothing to what the literal before it finds.
        let rest = match rest.as_bytes() {
            [.., b'.', b'*'] => &rest[..rest.len() - 2],
            [.., c, b'*' | b'?'] if c.is_ascii_alphanumeric() || *c == b'_' => {
                &rest[..rest.len() - 2]
            }
            _ => rest,
        };
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

/// Whether `hay` holds `lit` (lower case) in any case.
fn contains_ignore_case(hay: &[u8], lit: &[u8]) -> bool {
    let Some((&first, _)) = lit.split_first() else {
        return true;
    };
    let Some(last) = hay.len().checked_sub(lit.len()) else {
        return false;
    };
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), &hay[..=last])
        .any(|i| hay[i..i + lit.len()].eq_ignore_ascii_case(lit))
}

#[derive(Debug, Clone)]
pub struct Target {
    /// Index into [`names::VARIABLES`].
    pub slot: usize,
    pub count: bool,
    pub selector: Option<KeySel>,
    /// Where a transaction keeps what it knows of this variable: the summary and each value's
    /// bytes before any transformation, and the values after the rule's chain. Numbered when
    /// the rule set is built.
    pub summaries: [u32; 2],
    /// Whether the variable stays put while rules run (no `setvar` writes it): its
    /// transformed values and summaries may be cached. Set when the rule set is built.
    pub cacheable: bool,
    /// Whether the link may rule out all the variable's values at once by their summary: a
    /// cacheable variable read whole or by pattern (not by one key, not counted) under an
    /// operator with a prefilter, not negated. Set when the rule set is built.
    pub summarized: bool,
    /// Whether each value is judged by the rule's [`Rule::raw_admit`] before the rule's
    /// chain runs on it: a cacheable variable, not counted, under a chain with a test before
    /// it and no `multiMatch`. Set when the rule set is built.
    pub judged_raw: bool,
    /// Whether the rule excludes some of this variable's keys (`!REQUEST_COOKIES:/__utm/`
    /// for `REQUEST_COOKIES`). Set when the rule set is built.
    pub excludable: bool,
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
                let known = KnownKey::of(&k);
                Some(KeySel::Key(k, known))
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
            count: spec.count,
            selector,
            summaries: [0; 2],
            cacheable: false,
            summarized: false,
            judged_raw: false,
            excludable: false,
        })
    }

    /// The variable's name (`ARGS`).
    pub fn name(&self) -> &'static str {
        names::VARIABLES[self.slot]
    }

    /// Whether this (exclusion) target covers the variable `slot` entry `key`.
    pub fn covers(&self, slot: usize, key: &str) -> bool {
        self.slot == slot && self.selector.as_ref().is_none_or(|s| s.matches(key))
    }
}

/// Fields in the order a transaction reads them (`repr(C)` keeps it): what every rule's
/// evaluation touches sits in its first two cache lines (the line boundary is kept by the
/// alignment: a rule's `Arc` header would otherwise push the targets across one), the operator
/// after them, then the rest.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct Rule {
    pub targets: Vec<Target>,
    pub transforms: Vec<Transform>,
    /// `actions.id`, `actions.capture` and `actions.multi_match`, copied here when the link
    /// is compiled (the set's build only fills in `log` and `disruptive` later): every
    /// evaluation reads them, and beside the targets they cost no cache line of
    /// `actions` to a rule that is ruled out.
    pub id: u64,
    /// The transformation chain's number in the rule set (0: not cached); rules with the same
    /// chain share one cached result per value and transaction.
    pub chain_id: u32,
    /// Whether the link reads `MATCHED_VARS` or `MATCHED_VARS_NAMES` (a target or a macro):
    /// the transaction keeps those variables up to date only for such links.
    pub reads_matched_vars: bool,
    /// Whether the link reads `MATCHED_VAR` or `MATCHED_VAR_NAME` (a target, a macro, or
    /// `%{RULE.*}`, which may hold one): the transaction writes those two variables only
    /// when such a link, or the end of a phase, needs them.
    pub reads_matched_var: bool,
    /// Whether evaluating the link reads them (its targets, operator argument or setvars,
    /// not its `msg` and `logdata`, which are expanded once it has matched).
    pub tests_matched_var: bool,
    /// The operator's argument reads something this link's own matches write (captures,
    /// `setvar`, `MATCHED_*`): its values are then tested one by one, each after the
    /// previous match's actions, as ModSecurity does.
    pub in_turn: bool,
    /// One key of one volatile variable (`TX:detection_paranoia_level`), nothing excluded,
    /// no `multiMatch`: the CRS's paranoia-level skips and score checks, a quarter of the
    /// rules a clean request runs. Evaluated by a shorter path. Set when the set is built.
    pub single_key: bool,
    /// Where a transaction keeps the union of the summaries (`summaries[0]`) of the
    /// summarized variables (a single one's own summary): one test ([`Self::raw_admit`])
    /// may rule them all out. Shared by every rule with the same variables, whatever its
    /// chain. Set when the rule set is built.
    pub group: Option<u32>,
    pub negated: bool,
    /// Copies of `actions.capture` and `actions.multi_match`, as [`Self::id`] is.
    pub capture: bool,
    pub multi_match: bool,
    /// Whether the link's `setvar`s, which run after each of its matches, read those two
    /// (or `%{RULE.*}`): each match then writes them at once.
    pub acts_on_matched_var: bool,
    pub exclusions: Vec<Target>,
    /// Where `skipAfter` lands in this rule's phase, resolved when the set is built.
    pub skip_to: Option<usize>,
    pub chained: Option<Box<Rule>>,
    pub operator: Operator,
    /// The operator's byte-set test moved before the chain
    /// ([`super::operators::Prefilter::before`]): it judges values as they are, before any
    /// transformation runs; `None` when nothing may be ruled out so (negated, no test, or a
    /// chain that makes bytes of nothing). Set when the rule set is built.
    pub raw_admit: Option<super::operators::Prefilter>,
    pub actions: Actions,
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
        Ok(Rule {
            id: actions.id,
            capture: actions.capture,
            multi_match: actions.multi_match,
            operator: compiled,
            in_turn,
            reads_matched_vars: false,
            reads_matched_var: false,
            tests_matched_var: false,
            acts_on_matched_var: false,
            single_key: false,
            negated: operator.negated,
            targets,
            exclusions,
            transforms,
            chain_id: 0,
            skip_to: None,
            group: None,
            raw_admit: None,
            actions,
            chained: None,
            file: "".into(),
            line: 0,
        })
    }

    /// Sets [`Self::reads_matched_vars`] and [`Self::reads_matched_var`] from the link's
    /// targets (with any `SecRuleUpdateTargetBy*` added) and templates.
    pub fn note_reads(&mut self) {
        const LISTS: [&str; 2] = ["MATCHED_VARS", "MATCHED_VARS_NAMES"];
        const ONE: [&str; 2] = ["MATCHED_VAR", "MATCHED_VAR_NAME"];
        self.reads_matched_vars = self.reads(&LISTS, false, true);
        self.reads_matched_var = self.reads(&ONE, true, true);
        self.tests_matched_var = self.reads(&ONE, true, false);
        self.acts_on_matched_var = self.actions.setvars.iter().any(|sv| {
            [&sv.key, &sv.value]
                .iter()
                .any(|t| reads_any(t, &ONE, true))
        });
    }

    /// Whether the link's targets or templates read one of `names`; the `msg` and `logdata`
    /// only `with_logs` (they are expanded after the link has matched).
    fn reads(&self, names: &[&str], rule_macros: bool, with_logs: bool) -> bool {
        let named = |n: &str| names.iter().any(|x| x.eq_ignore_ascii_case(n));
        if self.targets.iter().any(|t| named(t.name())) {
            return true;
        }
        let a = &self.actions;
        let logs = [&a.msg, &a.logdata]
            .into_iter()
            .flatten()
            .filter(|_| with_logs);
        let mut templates = self
            .operator
            .template()
            .into_iter()
            .chain(logs)
            .chain(a.setvars.iter().flat_map(|sv| [&sv.key, &sv.value]));
        templates.any(|t| reads_any(t, names, rule_macros))
    }

    /// The last rule of this chain (where the next chained rule attaches).
    pub fn last_mut(&mut self) -> &mut Rule {
        match self.chained {
            Some(ref mut next) => next.last_mut(),
            None => self,
        }
    }
}

/// Whether template `t` reads one of the variables `names` (or, with `rule_macros`, any
/// `%{RULE.*}`).
fn reads_any(t: &Template, names: &[&str], rule_macros: bool) -> bool {
    t.parts().iter().any(|p| {
        matches!(p, Part::Var { collection, .. }
            if names.iter().any(|n| n.eq_ignore_ascii_case(collection))
                || rule_macros && collection == "RULE")
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(pattern: &str) -> KeySel {
        let spec = VarSpec {
            name: "TX",
            selector: Some(Selector::Regex(pattern.into())),
            count: false,
            exclude: false,
        };
        Target::compile(&spec).unwrap().selector.unwrap()
    }

    #[test]
    fn selector_regexes_that_are_literals_match_as_the_regex_would() {
        let keys = [
            "header_name_920450_host",
            "HEADER_NAME_920450_X",
            "xheader_name_920450_",
            "multipart_headers_content_types_1",
            "MULTIPART_HEADERS_CONTENT_TYPE",
            "a_multipart_headers_content_types",
            "paramcounter_ARGS:x",
            "param",
            "",
        ];
        for pattern in [
            "^header_name_920450_",
            "MULTIPART_HEADERS_CONTENT_TYPES_*",
            "paramcounter_.*",
            "__utm",
            "^x?",
        ] {
            let fast = sel(pattern);
            let regex = RegexBuilder::new(pattern)
                .case_insensitive(true)
                .build()
                .unwrap();
            for key in keys {
                assert_eq!(
                    fast.matches(key),
                    regex.is_match(key.as_bytes()),
                    "/{pattern}/ on {key}"
                );
            }
        }
        assert!(matches!(sel("^header_name_920450_"), KeySel::Prefix(_)));
        assert!(matches!(
            sel("MULTIPART_HEADERS_CONTENT_TYPES_*"),
            KeySel::Contains(_)
        ));
        assert!(matches!(sel("a|b"), KeySel::Regex(_)));
    }
}
