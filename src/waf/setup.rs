//! The rule set's set-up region: the leading phase-1 rules that read and write only TX (the
//! CRS's `900xxx`/`901xxx` defaults: "if `tx.x` is unset, set it"), among rules that neither
//! read nor write TX (`ctl:requestBodyProcessor` by Content-Type). Given the same TX on
//! entry and the same removed rules, the former end in the same state every time, so a
//! transaction runs them once per distinct start and later ones copy the outcome (the
//! latter still run). On a CRS request that is some forty rules and sixty `setvar`s.

use super::actions::{Ctl, Disruptive};
use super::collections::{var_slot, Collections, KeyIndex};
use super::macros::{Part, Template};
use super::rule::Rule;
use super::ruleset::Item;
use super::transaction::Matched;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const TX: usize = var_slot!("TX");

/// The `MATCHED_*` variables, as the outcome keeps them.
pub const MATCHED: [usize; 4] = [
    var_slot!("MATCHED_VAR"),
    var_slot!("MATCHED_VAR_NAME"),
    var_slot!("MATCHED_VARS"),
    var_slot!("MATCHED_VARS_NAMES"),
];

/// The region: per leading phase-1 item, whether it is a set-up rule (`true`) or one that
/// runs as usual (`false`: a marker, or a rule independent of TX).
#[derive(Debug, Default)]
pub struct Region {
    pub own: Vec<bool>,
}

impl Region {
    pub fn of(phase1: &[Item]) -> Region {
        let kinds = phase1.iter().map(|item| match item {
            Item::Marker(_) => Some(false),
            Item::Rule(rule, _) if self_contained(rule, true) => Some(true),
            Item::Rule(rule, _) if independent(rule) => Some(false),
            Item::Rule(..) => None,
        });
        let mut own: Vec<bool> = kinds.map_while(|k| k).collect();
        // Nothing after the last set-up rule needs to be part of it.
        while own.last() == Some(&false) {
            own.pop();
        }
        Region { own }
    }

    pub fn len(&self) -> usize {
        self.own.len()
    }

    pub fn is_empty(&self) -> bool {
        self.own.is_empty()
    }
}

/// Whether a template reads only `RULE` and the slots `allowed` admits.
fn reads_only(t: &Template, allowed: impl Fn(usize) -> bool) -> bool {
    t.parts().iter().all(|p| match p {
        Part::Lit(_) => true,
        Part::Var {
            collection, slot, ..
        } => collection == "RULE" || slot.is_some_and(&allowed),
    })
}

/// Whether a rule (all its links) reads only TX and its own matches, writes only TX, and
/// uses no `ctl`. A first link may not read the `MATCHED_*` variables before it matches
/// (they would be another rule's). One that would skip or stop the phase may be part of the
/// region as long as it does not match (the outcome is not kept when it does).
fn self_contained(rule: &Rule, first: bool) -> bool {
    let a = &rule.actions;
    let own = |s: usize| s == TX || MATCHED.contains(&s);
    let before = |s: usize| s == TX || (!first && MATCHED.contains(&s));
    rule.targets.iter().all(|t| before(t.slot))
        && rule
            .operator
            .template()
            .is_none_or(|t| reads_only(t, before))
        && a.setvars
            .iter()
            .all(|sv| sv.slot == Some(TX) && reads_only(&sv.key, own) && reads_only(&sv.value, own))
        && a.msg.as_ref().is_none_or(|t| reads_only(t, own))
        && a.logdata.as_ref().is_none_or(|t| reads_only(t, own))
        && a.ctls.is_empty()
        && rule
            .chained
            .as_deref()
            .is_none_or(|next| self_contained(next, false))
}

/// Whether a rule (all its links) neither reads nor writes TX, logs nothing, does not
/// skip or stop the phase, and has no `ctl` that changes which rules run.
fn independent(rule: &Rule) -> bool {
    let a = &rule.actions;
    let no_tx = |t: &Template| {
        t.parts()
            .iter()
            .all(|p| !matches!(p, Part::Var { slot: Some(s), .. } if *s == TX))
    };
    rule.targets.iter().all(|t| t.slot != TX)
        && rule.operator.template().is_none_or(no_tx)
        && a.setvars.is_empty()
        && !a.capture
        && a.log == Some(false)
        && a.ctls.iter().all(|c| {
            matches!(
                c,
                Ctl::RequestBodyProcessor(_)
                    | Ctl::ForceRequestBodyVariable
                    | Ctl::RequestBodyAccess(_)
                    | Ctl::NoEffect
            )
        })
        && matches!(a.disruptive, None | Some(Disruptive::Pass))
        && rule.skip_to.is_none()
        && a.skip == 0
        && rule.chained.as_deref().is_none_or(independent)
}

/// A slot's entries, as the outcome keeps them.
type Entries = Vec<(String, Vec<u8>)>;

/// What the set-up rules started from and what they left.
pub struct Outcome {
    /// A number no other outcome of the process has (from 1), by which a transaction's
    /// buffers know the TX they kept is this outcome's.
    id: u64,
    tx: Vec<(String, Vec<u8>)>,
    removed_ids: Vec<(u64, u64)>,
    removed_tags: Vec<String>,
    /// TX afterwards, and its key index.
    after: Vec<(String, Vec<u8>)>,
    after_index: Option<KeyIndex>,
    /// What they logged.
    matched: Vec<Matched>,
    /// The last set-up rule that matched (its region index), and the `MATCHED_*` variables
    /// it left: a rule of the region matching later replaces them.
    last_match: Option<(usize, [Entries; 4])>,
}

impl Outcome {
    /// The start: TX as the caller set it, and the rules it removed.
    pub fn start(vars: &Collections, removed_ids: &[(u64, u64)], removed_tags: &[String]) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Outcome {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            tx: vars.get(TX).to_vec(),
            removed_ids: removed_ids.to_vec(),
            removed_tags: removed_tags.to_vec(),
            after: Vec::new(),
            after_index: None,
            matched: Vec::new(),
            last_match: None,
        }
    }

    /// Whether a set-up rule's match leaves the outcome usable: one that skips or stops the
    /// phase makes the region's course its own, and the outcome is dropped.
    pub fn keeps_course(rule: &Rule) -> bool {
        matches!(rule.actions.disruptive, None | Some(Disruptive::Pass))
            && rule.skip_to.is_none()
            && rule.actions.skip == 0
    }

    /// Notes that set-up rule `at` matched, leaving these `MATCHED_*` variables (in sync).
    pub fn matched_at(&mut self, at: usize, vars: &Collections) {
        self.last_match = Some((at, MATCHED.map(|s| vars.get(s).to_vec())));
    }

    /// Completes the outcome with TX and what was logged (from an empty list) at the
    /// region's end.
    pub fn finish(mut self, vars: &Collections, matched: &[Matched]) -> Self {
        self.after = vars.get(TX).to_vec();
        self.after_index = vars.index_of(TX).cloned();
        self.matched = matched.to_vec();
        self
    }

    fn starts_like(
        &self,
        vars: &Collections,
        removed_ids: &[(u64, u64)],
        removed_tags: &[String],
    ) -> bool {
        self.tx == vars.get(TX)
            && self.removed_ids == removed_ids
            && self.removed_tags == removed_tags
    }

    /// Puts TX and the log as the set-up rules leave them.
    pub fn apply(&self, vars: &mut Collections, matched: &mut Vec<Matched>) {
        match &self.after_index {
            Some(index) => vars.restore_tx(self.id, &self.after, index),
            None => vars.restore_slot(TX, &self.after, None),
        }
        matched.extend(self.matched.iter().cloned());
    }

    /// The region index of the last set-up rule that matched.
    pub fn last_match(&self) -> Option<usize> {
        self.last_match.as_ref().map(|(at, _)| *at)
    }

    /// Puts the `MATCHED_*` variables as the last matching set-up rule left them; returns
    /// the entries of `MATCHED_VARS`.
    pub fn apply_matched(&self, vars: &mut Collections) -> &[(String, Vec<u8>)] {
        let Some((_, slots)) = &self.last_match else {
            return &[];
        };
        for (s, entries) in MATCHED.iter().zip(slots) {
            vars.restore_slot(*s, entries, None);
        }
        &slots[2]
    }
}

/// Outcomes by start, for the rule set's transactions: a gateway has a few distinct
/// configurations (paranoia level, thresholds), so a few entries.
#[derive(Default)]
pub struct Outcomes(Mutex<Vec<Arc<Outcome>>>);

impl Outcomes {
    const KEEP: usize = 16;

    pub fn find(
        &self,
        vars: &Collections,
        removed_ids: &[(u64, u64)],
        removed_tags: &[String],
    ) -> Option<Arc<Outcome>> {
        let known = self.0.lock().ok()?;
        known
            .iter()
            .find(|o| o.starts_like(vars, removed_ids, removed_tags))
            .cloned()
    }

    pub fn keep(&self, outcome: Outcome) {
        if let Ok(mut known) = self.0.lock() {
            if known.len() < Self::KEEP {
                known.push(Arc::new(outcome));
            }
        }
    }
}

impl std::fmt::Debug for Outcomes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|o| o.len()).unwrap_or(0);
        write!(f, "Outcomes({n})")
    }
}
