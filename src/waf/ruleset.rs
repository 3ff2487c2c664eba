//! Directives → a [`RuleSet`]: rules per phase in file order, with markers, defaults,
//! removals and target updates applied at load.

use super::actions::{Actions, Disruptive};
use super::collections::{slot, var_slot};
use super::operators::{NumTest, Prefilter};
use super::rule::{Defaults, KeySel, Rule, Target};
use super::seclang::{self, names, Directive, EngineMode, Located, SecLangError};
use super::transforms::Transform;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug)]
pub enum Item {
    /// The rule and its [`Gate`], read together: one cache line holds two items.
    Rule(Arc<Rule>, Gate),
    Marker(String),
}

/// A rule's first test, kept in its [`Item`] beside its neighbours' in phase order rather
/// than behind the rule's pointer: most rules of a clean request end there, and reading the
/// rule, its targets and its operator for each cost a cache miss or three.
#[derive(Debug, Clone)]
pub enum Gate {
    /// No first test: the rule is evaluated.
    None,
    Union(Union),
    Key(KeyTest),
}

/// Whether the union of a rule's summarized variables' summaries (its [`Rule::group`], as
/// the transaction last kept it) rules it out while its other variables are empty (`XML:/*`
/// outside an XML body).
#[derive(Debug, Clone)]
pub struct Union {
    pub(super) group: u32,
    /// How many of `slots` are the group's members (in target order, repeats kept, as
    /// `group_admits` sums them).
    pub(super) members: u8,
    /// How many follow them: the slots of the other targets, which must be empty.
    pub(super) others: u8,
    pub(super) slots: [u8; GATE_SLOTS],
}

/// A single-key TX rule's numeric comparison (`TX:DETECTION_PARANOIA_LEVEL "@lt 2"`, the
/// CRS's paranoia-level skips, a third of the rules a clean request runs): the value the
/// transaction remembers for the key, tested here, rules the rule out when it does not
/// match, and is the match of a [`Self::quiet`] rule when it does. Anything else, and a key
/// the transaction has not looked up yet, is left to `evaluate`.
#[derive(Debug, Clone)]
pub struct KeyTest {
    /// The key's [`super::collections::KnownKey`] number.
    pub(super) id: u32,
    pub(super) test: NumTest,
    pub(super) negated: bool,
    /// Whether a match does nothing but leave its hit in `MATCHED_VAR(S)` (and whatever the
    /// rule loop does with a match: log, skip, disrupt): no chain, capture, `setvar` or
    /// `ctl`. Such a match is taken from the gate too.
    pub(super) quiet: bool,
}

/// The most targets a gated rule has (CRS rules have up to ten).
const GATE_SLOTS: usize = 14;

impl Gate {
    /// The gate of a rule whose evaluation, when the gate rules it out, only clears the
    /// matched variables.
    ///
    /// A union: nothing tested value by value, no variable counted, and `MATCHED_VARS` not
    /// read. (A rule that reads `MATCHED_VAR` in its message, as most CRS rules do, has it
    /// written before it is tested; one that tests nothing has nothing to read it, and it
    /// stays pending.) With the operator's byte-set test
    /// ([`super::operators::Operator::admit_test`]), kept apart in [`RuleSet::admits`]: it
    /// is read only once the union is known, and without it a gate is a third of a cache
    /// line.
    ///
    /// A key test: a [`Rule::single_key`] link over TX, with no transformation, that reads no
    /// `MATCHED_*` variable before it is tested (nothing is synced for it when it does not
    /// match).
    fn of(r: &Rule) -> (Gate, Prefilter) {
        if let Some(key) = KeyTest::of(r) {
            return (Gate::Key(key), Prefilter::NONE);
        }
        let gated = !r.in_turn
            && !r.single_key
            && !r.reads_matched_vars
            && r.targets.len() <= GATE_SLOTS
            && r.targets.iter().all(|t| !t.count);
        let (Some(group), Some(admit), true) = (r.group, r.raw_admit.clone(), gated) else {
            return (Gate::None, Prefilter::NONE);
        };
        let members = r.targets.iter().filter(|t| t.summarized);
        let others = r.targets.iter().filter(|t| !t.summarized);
        let mut slots = [0u8; GATE_SLOTS];
        for (s, t) in slots.iter_mut().zip(members.clone().chain(others.clone())) {
            *s = t.slot as u8;
        }
        let gate = Union {
            group,
            members: members.count() as u8,
            others: others.count() as u8,
            slots,
        };
        (Gate::Union(gate), admit)
    }
}

impl KeyTest {
    fn of(r: &Rule) -> Option<KeyTest> {
        let ([t], true) = (
            r.targets.as_slice(),
            r.single_key
                && r.transforms.is_empty()
                && !r.reads_matched_vars
                && !r.tests_matched_var,
        ) else {
            return None;
        };
        match (&t.selector, r.operator.num_test()) {
            (Some(KeySel::Key(_, known)), Some(test)) if t.slot == var_slot!("TX") => {
                Some(KeyTest {
                    id: known.id,
                    test,
                    negated: r.negated,
                    quiet: r.chained.is_none()
                        && !r.capture
                        && r.actions.setvars.is_empty()
                        && r.actions.ctls.is_empty(),
                })
            }
            _ => None,
        }
    }
}

impl Union {
    pub(super) fn members(&self) -> &[u8] {
        &self.slots[..self.members as usize]
    }

    pub(super) fn others(&self) -> &[u8] {
        let m = self.members as usize;
        &self.slots[m..m + self.others as usize]
    }
}

#[derive(Debug)]
pub struct RuleSet {
    pub phases: [Vec<Item>; 5],
    /// The byte-set test of each rule's [`Gate`], at the rule's index in `phases`.
    pub(super) admits: [Vec<Prefilter>; 5],
    pub defaults: [Defaults; 5],
    pub engine: EngineMode,
    pub request_body_access: bool,
    pub response_body_access: bool,
    pub rules: usize,
    /// Buffers finished transactions leave for the next ones.
    pub(super) spares: super::transaction::Spares,
    /// How many (variable, chain) summaries a transaction keeps ([`Target::summaries`]),
    /// with the unions of [`Rule::group`].
    pub(super) summaries: usize,
    /// Each variable's summary before any transformation (`summaries[0]` of its targets),
    /// by slot: a gate computes its union from them.
    pub(super) raw_summaries: Vec<u32>,
    /// The phase-1 set-up region ([`super::setup`]), and its outcomes by start.
    pub(super) setup: super::setup::Region,
    pub(super) setups: super::setup::Outcomes,
}

impl RuleSet {
    /// Compiles directives (in load order); `dirs[i]` is the directory of the file the
    /// directive came from, for `@pmFromFile`.
    pub fn build(directives: &[Located]) -> Result<RuleSet, SecLangError> {
        let mut b = Builder::default();
        for d in directives {
            b.add(d).map_err(|reason| SecLangError {
                file: d.file.clone(),
                line: d.line,
                reason,
            })?;
        }
        if b.pending_chain.is_some() {
            let last = directives.last().expect("a pending chain has a directive");
            return Err(SecLangError {
                file: last.file.clone(),
                line: last.line,
                reason: "the last rule says `chain` but no rule follows".into(),
            });
        }
        Ok(b.finish())
    }

    /// Loads files in order.
    pub fn load(files: &[&Path]) -> Result<RuleSet, SecLangError> {
        let mut all = Vec::new();
        for f in files {
            all.extend(seclang::parse_file(f)?);
        }
        Self::build(&all)
    }
}

enum Entry {
    Rule(u8, Box<Rule>),
    Marker(String),
}

impl Entry {
    fn rule(&self) -> Option<&Rule> {
        match self {
            Entry::Rule(_, r) => Some(&**r),
            Entry::Marker(_) => None,
        }
    }
}

struct Builder {
    entries: Vec<Entry>,
    defaults: [Defaults; 5],
    engine: EngineMode,
    request_body_access: bool,
    response_body_access: bool,
    /// The rule (by index in `rules`) that ended with `chain`.
    pending_chain: Option<usize>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            entries: Vec::new(),
            defaults: Default::default(),
            engine: EngineMode::On,
            request_body_access: true,
            response_body_access: false,
            pending_chain: None,
        }
    }
}

impl Builder {
    fn add(&mut self, d: &Located) -> Result<(), String> {
        let dir = Path::new(&*d.file).parent().unwrap_or(Path::new("."));
        match &d.directive {
            Directive::Rule {
                variables,
                operator,
                actions,
            } => {
                let parsed = Actions::parse(actions)?;
                if let Some(parent) = self.pending_chain.take() {
                    let Entry::Rule(phase, parent_rule) = &mut self.entries[parent] else {
                        return Err("internal: chain parent is not a rule".into());
                    };
                    let chains_on = parsed.chain;
                    let mut rule = Rule::compile(
                        variables,
                        operator,
                        parsed,
                        &self.defaults[*phase as usize - 1],
                        dir,
                    )?;
                    rule.file = d.file.clone();
                    rule.line = d.line;
                    parent_rule.last_mut().chained = Some(Box::new(rule));
                    if chains_on {
                        self.pending_chain = Some(parent);
                    }
                    return Ok(());
                }
                if parsed.id == 0 {
                    return Err("a rule needs an `id`".into());
                }
                self.push_rule(
                    Rule::compile(
                        variables,
                        operator,
                        parsed.clone(),
                        &self.defaults[phase_of(&parsed) as usize - 1],
                        dir,
                    )?,
                    d,
                )
            }
            Directive::Action(actions) => {
                let parsed = Actions::parse(actions)?;
                if parsed.id == 0 {
                    return Err("SecAction needs an `id`".into());
                }
                let op = seclang::OperatorSpec {
                    negated: false,
                    name: "unconditionalMatch",
                    argument: String::new(),
                };
                let rule = Rule::compile(&[], &op, parsed, &Defaults::default(), dir)?;
                self.push_rule(rule, d)
            }
            Directive::Marker(name) => {
                self.entries.push(Entry::Marker(name.clone()));
                Ok(())
            }
            Directive::DefaultAction(actions) => {
                let parsed = Actions::parse(actions)?;
                let phase = parsed.phase.ok_or("SecDefaultAction needs a phase")?;
                self.defaults[phase as usize - 1] = Defaults {
                    disruptive: parsed.disruptive,
                    log: parsed.log,
                    transforms: parsed.transforms,
                };
                Ok(())
            }
            Directive::RuleEngine(mode) => {
                self.engine = *mode;
                Ok(())
            }
            Directive::RequestBodyAccess(on) => {
                self.request_body_access = *on;
                Ok(())
            }
            Directive::ResponseBodyAccess(on) => {
                self.response_body_access = *on;
                Ok(())
            }
            Directive::RemoveById(ranges) => {
                self.entries.retain(|e| {
                    e.rule().is_none_or(|r| {
                        !ranges
                            .iter()
                            .any(|(a, b)| (*a..=*b).contains(&r.actions.id))
                    })
                });
                Ok(())
            }
            Directive::RemoveByTag(tag) => {
                self.entries.retain(|e| {
                    e.rule()
                        .is_none_or(|r| !r.actions.tags.iter().any(|t| t == tag))
                });
                Ok(())
            }
            Directive::RemoveByMsg(msg) => {
                self.entries.retain(|e| {
                    e.rule().is_none_or(|r| {
                        r.actions.msg.as_ref().and_then(|m| m.literal()) != Some(msg)
                    })
                });
                Ok(())
            }
            Directive::UpdateTargetById { ids, targets } => self.update_targets(
                |r| ids.iter().any(|(a, b)| (*a..=*b).contains(&r.actions.id)),
                targets,
            ),
            Directive::UpdateTargetByTag { tag, targets } => {
                self.update_targets(|r| r.actions.tags.iter().any(|x| x == tag), targets)
            }
            Directive::UpdateActionById { .. } => {
                Err("SecRuleUpdateActionById is not supported yet".into())
            }
            Directive::ComponentSignature(_) | Directive::NoEffect(_) => Ok(()),
        }
    }

    fn push_rule(&mut self, mut rule: Rule, d: &Located) -> Result<(), String> {
        rule.file = d.file.clone();
        rule.line = d.line;
        let phase = phase_of(&rule.actions);
        let defaults = &self.defaults[phase as usize - 1];
        if rule.actions.log.is_none() {
            rule.actions.log = defaults.log;
        }
        if rule.actions.disruptive.is_none() || rule.actions.disruptive == Some(Disruptive::Block) {
            let inherited = defaults.disruptive.unwrap_or(Disruptive::Pass);
            if rule.actions.disruptive.is_none() || inherited != Disruptive::Block {
                rule.actions.disruptive = Some(inherited);
            }
        }
        let chains = rule.actions.chain;
        self.entries.push(Entry::Rule(phase, Box::new(rule)));
        if chains {
            self.pending_chain = Some(self.entries.len() - 1);
        }
        Ok(())
    }

    /// Adds targets (or, written `!X`, exclusions) to the rules already loaded that `which` picks.
    fn update_targets(
        &mut self,
        which: impl Fn(&Rule) -> bool,
        targets: &[seclang::VarSpec],
    ) -> Result<(), String> {
        for rule in self.rules_mut().filter(|r| which(r)) {
            for t in targets {
                let compiled = Target::compile(t)?;
                if t.exclude {
                    rule.exclusions.push(compiled);
                } else {
                    rule.targets.push(compiled);
                }
            }
        }
        Ok(())
    }

    fn rules_mut(&mut self) -> impl Iterator<Item = &mut Rule> {
        self.entries.iter_mut().filter_map(|e| match e {
            Entry::Rule(_, r) => Some(&mut **r),
            Entry::Marker(_) => None,
        })
    }

    fn finish(self) -> RuleSet {
        // Marker positions first: a skipAfter names a marker further down.
        let mut markers: [HashMap<String, usize>; 5] = Default::default();
        let mut len = [0usize; 5];
        for entry in &self.entries {
            match entry {
                Entry::Rule(phase, _) => len[*phase as usize - 1] += 1,
                // A marker stands in every phase: skipAfter jumps within the current one.
                Entry::Marker(name) => {
                    for p in 0..5 {
                        markers[p].insert(name.clone(), len[p]);
                        len[p] += 1;
                    }
                }
            }
        }
        let mut volatile = vec![false; names::VARIABLES.len()];
        for name in [
            "TX",
            "MATCHED_VAR",
            "MATCHED_VAR_NAME",
            "MATCHED_VARS",
            "MATCHED_VARS_NAMES",
        ] {
            volatile[slot(name)] = true;
        }
        // Every setvar first: a rule's targets are judged against all of them.
        for entry in &self.entries {
            let mut link = entry.rule();
            while let Some(r) = link {
                for s in r.actions.setvars.iter().filter_map(|sv| sv.slot) {
                    volatile[s] = true;
                }
                link = r.chained.as_deref();
            }
        }
        let mut chains: Vec<Vec<usize>> = vec![Vec::new()];
        let mut summaries: HashMap<(usize, u32), u32> = HashMap::new();
        let mut groups: HashMap<Vec<usize>, u32> = HashMap::new();
        // Summaries and groups share one numbering: one table holds both.
        let mut ids = 0u32;
        fn next(ids: &mut u32) -> u32 {
            *ids += 1;
            *ids - 1
        }
        let mut phases: [Vec<Item>; 5] = Default::default();
        let mut admits: [Vec<Prefilter>; 5] = Default::default();
        let mut count = 0;
        for entry in self.entries {
            match entry {
                Entry::Rule(phase, mut rule) => {
                    count += 1;
                    let p = phase as usize - 1;
                    rule.skip_to = rule.actions.skip_after.as_ref().map(|m| {
                        // Unknown or behind: to the end of the phase.
                        markers[p]
                            .get(m)
                            .copied()
                            .filter(|at| *at > phases[p].len())
                            .unwrap_or(len[p])
                    });
                    let mut link = Some(&mut *rule);
                    while let Some(r) = link {
                        r.note_reads();
                        // Copied when the link was compiled; nothing since changes them.
                        debug_assert_eq!(
                            (r.id, r.capture, r.multi_match),
                            (r.actions.id, r.actions.capture, r.actions.multi_match)
                        );
                        r.chain_id = intern(&mut chains, &r.transforms);
                        let prefilters = !r.negated && r.operator.prefilters();
                        for t in &mut r.targets {
                            t.excludable = r.exclusions.iter().any(|x| x.slot == t.slot);
                            t.cacheable = !volatile[t.slot];
                            t.summarized = t.cacheable
                                && prefilters
                                && !t.count
                                && !matches!(t.selector, Some(KeySel::Key(..)));
                            for (k, chain) in [0, r.chain_id].into_iter().enumerate() {
                                t.summaries[k] = *summaries
                                    .entry((t.slot, chain))
                                    .or_insert_with(|| next(&mut ids));
                            }
                        }
                        let mut members: Vec<usize> = r
                            .targets
                            .iter()
                            .filter(|t| t.summarized)
                            .map(|t| t.slot)
                            .collect();
                        // Kept with repeats (`ARGS|ARGS:/x/`): rules share a group only when they
                        // sum the same variables' versions the same way.
                        members.sort_unstable();
                        r.single_key = match r.targets.as_slice() {
                            [t] => {
                                !t.cacheable
                                    && !t.count
                                    && matches!(t.selector, Some(KeySel::Key(..)))
                                    && r.exclusions.is_empty()
                                    && !r.actions.multi_match
                                    && !r.in_turn
                            }
                            _ => false,
                        };
                        r.raw_admit =
                            r.operator
                                .admit_test()
                                .filter(|_| prefilters)
                                .and_then(|p| {
                                    if r.transforms.is_empty() {
                                        return Some(p);
                                    }
                                    p.before(|b, l| super::transforms::bound(&r.transforms, b, l))
                                });
                        for t in &mut r.targets {
                            t.judged_raw = t.cacheable
                                && !t.count
                                && r.chain_id != 0
                                && !r.actions.multi_match
                                && r.raw_admit.is_some();
                        }
                        // One variable's union is its own summary.
                        let own = r
                            .targets
                            .iter()
                            .find(|t| t.summarized)
                            .map(|t| t.summaries[0]);
                        r.group = match members.len() {
                            _ if r.actions.multi_match => None,
                            0 => None,
                            1 => own,
                            _ => Some(*groups.entry(members).or_insert_with(|| next(&mut ids))),
                        };
                        link = r.chained.as_deref_mut();
                    }
                    let (gate, admit) = Gate::of(&rule);
                    admits[p].push(admit);
                    phases[p].push(Item::Rule(Arc::new(*rule), gate));
                }
                Entry::Marker(name) => {
                    for phase in phases.iter_mut() {
                        phase.push(Item::Marker(name.clone()));
                    }
                    for admit in admits.iter_mut() {
                        admit.push(Prefilter::NONE);
                    }
                }
            }
        }
        let mut raw_summaries = vec![u32::MAX; names::VARIABLES.len()];
        for ((slot, chain), id) in &summaries {
            if *chain == 0 {
                raw_summaries[*slot] = *id;
            }
        }
        let setup = super::setup::Region::of(&phases[0]);
        RuleSet {
            setup,
            setups: Default::default(),
            summaries: ids as usize,
            raw_summaries,
            phases,
            admits,
            defaults: self.defaults,
            engine: self.engine,
            request_body_access: self.request_body_access,
            response_body_access: self.response_body_access,
            rules: count,
            spares: Default::default(),
        }
    }
}

/// The number of a transformation chain, by the functions' addresses (two names for one
/// function only ever share a cache entry, which is right); 0, never cached, past 2^24 chains.
fn intern(chains: &mut Vec<Vec<usize>>, transforms: &[Transform]) -> u32 {
    if transforms.is_empty() {
        return 0;
    }
    let key: Vec<usize> = transforms.iter().map(Transform::id).collect();
    let id = match chains.iter().position(|c| *c == key) {
        Some(i) => i,
        None => {
            chains.push(key);
            chains.len() - 1
        }
    };
    u32::try_from(id).ok().filter(|i| *i < 1 << 24).unwrap_or(0)
}

fn phase_of(a: &Actions) -> u8 {
    a.phase.unwrap_or(2)
}
