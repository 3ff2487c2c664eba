//! One request (and its response) through the rule set: variables filled per phase, rules run
//! in order with chains, skips, `setvar` and `ctl`, and the matched rule ids recorded.

use super::actions::{Ctl, Disruptive, SetVarOp};
use super::bodies;
use super::collections::{slot, Collections};
use super::macros::{Part, Template};
use super::operators::{Captures, Expand};
use super::rule::{Rule, Target};
use super::ruleset::{Item, RuleSet};
use super::seclang::{self, EngineMode};
use super::transforms;
use std::borrow::Cow;
use std::sync::Arc;

/// What the request looks like to the WAF.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The request target as sent (`/path?query`).
    pub uri: String,
    pub protocol: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub remote_addr: String,
    pub remote_port: u16,
    pub server_addr: String,
    pub server_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interruption {
    pub rule_id: u64,
    pub status: u16,
}

/// A rule that matched and logs.
#[derive(Debug, Clone)]
pub struct Matched {
    pub id: u64,
    pub phase: u8,
    pub msg: String,
}

/// `ctl:ruleRemoveTarget*`: rule ids (or a tag) and the target they no longer inspect.
type TargetRemoval = (Vec<(u64, u64)>, Option<String>, Target);

/// Slots the rule loop touches for every match, looked up once.
#[derive(Debug, Clone, Copy)]
struct Hot {
    matched_var: usize,
    matched_var_name: usize,
    matched_vars: usize,
    matched_vars_names: usize,
}

pub struct Transaction<'r> {
    rules: &'r RuleSet,
    vars: Collections,
    engine: EngineMode,
    removed_ids: Vec<(u64, u64)>,
    removed_tags: Vec<String>,
    removed_targets: Vec<TargetRemoval>,
    body_processor: Option<String>,
    force_body_variable: bool,
    pub matched: Vec<Matched>,
    pub interruption: Option<Interruption>,
    tx_slot: usize,
    hot: Hot,
    current_rule: Option<(u64, String)>,
}

impl Expand for Transaction<'_> {
    fn expand(&self, t: &Template) -> String {
        let mut out = String::new();
        for part in t.parts() {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Var {
                    collection,
                    key,
                    slot,
                } => {
                    if collection == "RULE" {
                        if let Some((id, msg)) = &self.current_rule {
                            match key.as_deref() {
                                Some("id") => out.push_str(&id.to_string()),
                                Some("msg") => out.push_str(msg),
                                _ => {}
                            }
                        }
                        continue;
                    }
                    if let Some(s) = *slot {
                        if let Some(v) = self.vars.value(s, key.as_deref()) {
                            out.push_str(&String::from_utf8_lossy(v));
                        }
                    }
                }
            }
        }
        out
    }
}

/// `%hh` escapes decoded; everything else (including `+`) kept.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (transforms::hex(s[i + 1]), transforms::hex(s[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fn atoi(s: &[u8]) -> i64 {
    let s = std::str::from_utf8(s).unwrap_or("").trim();
    let (neg, d) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let n = d.bytes().take_while(u8::is_ascii_digit).fold(0i64, |a, c| {
        a.saturating_mul(10).saturating_add((c - b'0') as i64)
    });
    if neg {
        -n
    } else {
        n
    }
}

impl<'r> Transaction<'r> {
    pub fn new(rules: &'r RuleSet) -> Transaction<'r> {
        Transaction {
            rules,
            vars: Collections::default(),
            engine: rules.engine,
            removed_ids: Vec::new(),
            removed_tags: Vec::new(),
            removed_targets: Vec::new(),
            body_processor: None,
            force_body_variable: false,
            matched: Vec::new(),
            interruption: None,
            tx_slot: slot("TX"),
            hot: Hot {
                matched_var: slot("MATCHED_VAR"),
                matched_var_name: slot("MATCHED_VAR_NAME"),
                matched_vars: slot("MATCHED_VARS"),
                matched_vars_names: slot("MATCHED_VARS_NAMES"),
            },
            current_rule: None,
        }
    }

    pub fn matched_ids(&self) -> Vec<u64> {
        self.matched.iter().map(|m| m.id).collect()
    }

    pub fn tx(&self, key: &str) -> Option<&[u8]> {
        self.vars.value(self.tx_slot, Some(key))
    }

    /// Sets a TX variable before the rules run (the CRS keeps values already set).
    pub fn set_tx(&mut self, key: &str, value: &str) {
        let s = self.tx_slot;
        self.vars.put(s, key, value.as_bytes().to_vec());
    }

    /// Leaves these rules out for this transaction.
    pub fn remove_rules(&mut self, ids: &[(u64, u64)]) {
        self.removed_ids.extend_from_slice(ids);
    }

    /// A TX variable as a number (0 when unset).
    pub fn tx_number(&self, key: &str) -> i64 {
        self.tx(key).map(atoi).unwrap_or(0)
    }

    /// Phase 1: the request line and headers.
    pub fn process_request_headers(&mut self, req: &Request) -> Option<Interruption> {
        self.fill_request(req);
        self.run_phase(1);
        self.interruption.clone()
    }

    /// Phase 2: the request body (already read, possibly truncated by the caller).
    pub fn process_request_body(&mut self, body: &[u8]) -> Option<Interruption> {
        if self.interruption.is_some() {
            return self.interruption.clone();
        }
        self.fill_body(body);
        self.run_phase(2);
        self.interruption.clone()
    }

    /// Phase 3: the response status and headers.
    pub fn process_response_headers(
        &mut self,
        status: u16,
        protocol: &str,
        headers: &[(String, Vec<u8>)],
    ) -> Option<Interruption> {
        if self.interruption.is_some() {
            return self.interruption.clone();
        }
        self.vars.set_scalar("RESPONSE_STATUS", status.to_string());
        self.vars.set_scalar("RESPONSE_PROTOCOL", protocol);
        self.vars
            .set_scalar("STATUS_LINE", format!("{protocol} {status}"));
        for (k, v) in headers {
            self.vars.add("RESPONSE_HEADERS", k.clone(), v.clone());
            self.vars
                .add("RESPONSE_HEADERS_NAMES", k.clone(), k.clone().into_bytes());
            if k.eq_ignore_ascii_case("content-type") {
                self.vars.set_scalar("RESPONSE_CONTENT_TYPE", v.clone());
            }
            if k.eq_ignore_ascii_case("content-length") {
                self.vars.set_scalar("RESPONSE_CONTENT_LENGTH", v.clone());
            }
        }
        self.run_phase(3);
        self.interruption.clone()
    }

    /// Phase 4: the response body.
    pub fn process_response_body(&mut self, body: &[u8]) -> Option<Interruption> {
        if self.interruption.is_some() {
            return self.interruption.clone();
        }
        self.vars.set_scalar("RESPONSE_BODY", body);
        self.run_phase(4);
        self.interruption.clone()
    }

    /// Phase 5 (logging): runs whatever happened before (the CRS's correlation rules).
    pub fn process_logging(&mut self) {
        let interruption = self.interruption.take();
        self.run_phase(5);
        self.interruption = interruption;
    }

    fn fill_request(&mut self, req: &Request) {
        let v = &mut self.vars;
        v.set_scalar("REQUEST_METHOD", req.method.as_str());
        v.set_scalar("REQUEST_PROTOCOL", req.protocol.as_str());
        v.set_scalar(
            "REQUEST_LINE",
            format!("{} {} {}", req.method, req.uri, req.protocol),
        );
        v.set_scalar("REQUEST_URI", req.uri.as_str());
        v.set_scalar("REQUEST_URI_RAW", req.uri.as_str());
        let (path, query) = match req.uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (req.uri.as_str(), None),
        };
        // An absolute-form target keeps only its path here.
        let path = match path.find("://") {
            Some(i) => path[i + 3..].find('/').map_or("/", |j| &path[i + 3 + j..]),
            None => path,
        };
        // The path percent-decoded (not `+`), as ModSecurity and the CRS tests expect.
        let path = percent_decode(path.as_bytes());
        let base = match path.iter().rposition(|b| *b == b'/' || *b == b'\\') {
            Some(i) => path[i + 1..].to_vec(),
            None => path.clone(),
        };
        v.set_scalar("REQUEST_FILENAME", path);
        v.set_scalar("REQUEST_BASENAME", base);
        v.set_scalar("QUERY_STRING", query.unwrap_or(""));
        v.set_scalar("REMOTE_ADDR", req.remote_addr.as_str());
        v.set_scalar("REMOTE_PORT", req.remote_port.to_string());
        v.set_scalar("SERVER_ADDR", req.server_addr.as_str());
        v.set_scalar("SERVER_PORT", req.server_port.to_string());
        v.set_scalar(
            "UNIQUE_ID",
            format!("{:x}", std::ptr::addr_of!(*req) as usize),
        );
        v.set_scalar("REQBODY_ERROR", "0");
        v.set_scalar("MULTIPART_STRICT_ERROR", "0");
        v.set_scalar("REQUEST_BODY_LENGTH", "0");
        for (k, val) in &req.headers {
            v.add("REQUEST_HEADERS", k.clone(), val.clone());
            v.add("REQUEST_HEADERS_NAMES", k.clone(), k.clone().into_bytes());
            if k.eq_ignore_ascii_case("host") {
                v.set_scalar(
                    "SERVER_NAME",
                    String::from_utf8_lossy(val)
                        .split(':')
                        .next()
                        .unwrap_or("")
                        .to_string(),
                );
            }
            if k.eq_ignore_ascii_case("cookie") {
                for c in val.split(|b| *b == b';') {
                    let c = String::from_utf8_lossy(c);
                    let c = c.trim();
                    if c.is_empty() {
                        continue;
                    }
                    let (name, value) = c.split_once('=').unwrap_or((c, ""));
                    v.add(
                        "REQUEST_COOKIES",
                        name.to_string(),
                        value.as_bytes().to_vec(),
                    );
                    v.add(
                        "REQUEST_COOKIES_NAMES",
                        name.to_string(),
                        name.as_bytes().to_vec(),
                    );
                }
            }
        }
        if let Some(q) = query {
            for (name, value) in bodies::urlencoded::parse(q.as_bytes()) {
                self.add_arg("GET", name, value);
            }
        }
    }

    fn add_arg(&mut self, source: &str, name: String, value: Vec<u8>) {
        let size = name.len() + value.len();
        let (args, names) = if source == "GET" {
            ("ARGS_GET", "ARGS_GET_NAMES")
        } else {
            ("ARGS_POST", "ARGS_POST_NAMES")
        };
        let v = &mut self.vars;
        v.add(args, name.clone(), value.clone());
        v.add(names, name.clone(), name.clone().into_bytes());
        v.add("ARGS", name.clone(), value);
        v.add("ARGS_NAMES", name.clone(), name.into_bytes());
        let total = v
            .value(slot("ARGS_COMBINED_SIZE"), None)
            .map(atoi)
            .unwrap_or(0)
            + size as i64;
        v.set_scalar("ARGS_COMBINED_SIZE", total.to_string());
    }

    fn header(&self, name: &str) -> Option<String> {
        self.vars
            .value(slot("REQUEST_HEADERS"), Some(name))
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn fill_body(&mut self, body: &[u8]) {
        self.vars
            .set_scalar("REQUEST_BODY_LENGTH", body.len().to_string());
        let raw_ctype = self.header("content-type").unwrap_or_default();
        let ctype = raw_ctype.to_ascii_lowercase();
        let processor = self.body_processor.clone().or_else(|| {
            if ctype.starts_with("application/x-www-form-urlencoded") {
                Some("URLENCODED".into())
            } else if ctype.starts_with("multipart/form-data") {
                Some("MULTIPART".into())
            } else {
                None
            }
        });
        if let Some(p) = &processor {
            self.vars.set_scalar("REQBODY_PROCESSOR", p.as_str());
        }
        if processor.as_deref() == Some("URLENCODED")
            || processor.is_none()
            || self.force_body_variable
        {
            self.vars.set_scalar("REQUEST_BODY", body);
        }
        if body.is_empty() {
            return;
        }
        match processor.as_deref() {
            Some("URLENCODED") => {
                for (name, value) in bodies::urlencoded::parse(body) {
                    self.add_arg("POST", name, value);
                }
            }
            Some("JSON") => match bodies::json::parse(body) {
                Ok(args) => {
                    for (name, value) in args {
                        self.add_arg("POST", name, value);
                    }
                }
                Err(e) => self.body_error(e),
            },
            Some("XML") => match bodies::xml::parse(body) {
                Ok(nodes) => {
                    for (key, value) in nodes {
                        self.vars.add("XML", key, value);
                    }
                }
                Err(e) => self.body_error(e),
            },
            Some("MULTIPART") => {
                let Some(b) = bodies::multipart::boundary(&raw_ctype) else {
                    self.body_error("multipart body without a boundary".into());
                    return;
                };
                let parsed = bodies::multipart::parse(body, &b);
                if parsed.strict_error {
                    self.vars.set_scalar("MULTIPART_STRICT_ERROR", "1");
                    self.vars.set_scalar("REQBODY_ERROR", "1");
                }
                for (name, value) in parsed.args {
                    self.add_arg("POST", name, value);
                }
                let mut total = 0;
                for (field, file, size) in parsed.files {
                    self.vars
                        .add("FILES", field.clone(), file.clone().into_bytes());
                    self.vars
                        .add("FILES_NAMES", field.clone(), field.into_bytes());
                    self.vars.add("MULTIPART_FILENAME", "", file.into_bytes());
                    total += size;
                }
                self.vars
                    .set_scalar("FILES_COMBINED_SIZE", total.to_string());
                for (name, line) in parsed.part_headers {
                    self.vars.add("MULTIPART_PART_HEADERS", name, line);
                }
            }
            _ => {}
        }
    }

    fn body_error(&mut self, msg: String) {
        self.vars.set_scalar("REQBODY_ERROR", "1");
        self.vars.set_scalar("REQBODY_ERROR_MSG", msg.clone());
        self.vars.set_scalar("REQBODY_PROCESSOR_ERROR", "1");
    }

    fn removed(&self, rule: &Rule) -> bool {
        let id = rule.actions.id;
        self.removed_ids
            .iter()
            .any(|(a, b)| (*a..=*b).contains(&id))
            || rule
                .actions
                .tags
                .iter()
                .any(|t| self.removed_tags.iter().any(|r| r == t))
    }

    fn run_phase(&mut self, phase: u8) {
        if self.engine == EngineMode::Off {
            return;
        }
        let rules = self.rules;
        let items = &rules.phases[phase as usize - 1];
        let mut i = 0;
        let mut skip = 0u32;
        while i < items.len() {
            let Item::Rule(rule) = &items[i] else {
                i += 1;
                continue;
            };
            i += 1;
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if self.removed(rule) || !self.evaluate(rule, rule.actions.id) {
                continue;
            }
            self.run_actions(rule, phase);
            if let Some(marker) = &rule.actions.skip_after {
                i = rules.markers[phase as usize - 1]
                    .get(marker)
                    .copied()
                    .filter(|m| *m >= i)
                    .unwrap_or(items.len());
                continue;
            }
            skip = rule.actions.skip;
            match rule.actions.disruptive {
                Some(Disruptive::Allow) => return,
                Some(Disruptive::Deny | Disruptive::Drop | Disruptive::Redirect)
                    if self.engine == EngineMode::On =>
                {
                    self.interruption = Some(Interruption {
                        rule_id: rule.actions.id,
                        status: rule.actions.status.unwrap_or(403),
                    });
                    return;
                }
                _ => {}
            }
        }
    }

    /// Whether `ctl` or the rule's own exclusions take this entry out of the rule.
    fn excluded(&self, rule: &Rule, rule_id: u64, slot: usize, key: &str) -> bool {
        rule.exclusions.iter().any(|x| x.covers(slot, key))
            || self.removed_targets.iter().any(|(ids, tag, x)| {
                let applies = ids.iter().any(|(a, b)| (*a..=*b).contains(&rule_id))
                    || tag
                        .as_ref()
                        .is_some_and(|tag| rule.actions.tags.contains(tag));
                applies && x.covers(slot, key)
            })
    }

    /// Copies of one target's values for `rule_id`, less exclusions and `ctl` removals.
    fn values(&self, t: &Target, rule: &Rule, rule_id: u64) -> Vec<(String, Vec<u8>)> {
        let selected = self.vars.get(t.slot).iter().filter(|(k, _)| {
            t.selector.as_ref().is_none_or(|s| s.matches(k))
                && !self.excluded(rule, rule_id, t.slot, k)
        });
        if t.count {
            let n = selected.count();
            return vec![(format!("&{}", t.name), n.to_string().into_bytes())];
        }
        selected
            .map(|(k, v)| {
                let name = if k == t.name {
                    k.clone()
                } else {
                    format!("{}:{k}", t.name)
                };
                (name, v.clone())
            })
            .collect()
    }

    /// Whether the rule (and its whole chain) matches; sets MATCHED_VAR(S) and captures.
    fn evaluate(&mut self, rule: &Rule, chain_id: u64) -> bool {
        // Values of TX and MATCHED_* can change while the rule runs (captures, setvar, the
        // matched-variable bookkeeping itself): those rules test copies. Every other rule tests
        // the values in place and copies only what matches.
        let volatile = [
            self.tx_slot,
            self.hot.matched_var,
            self.hot.matched_vars,
            self.hot.matched_var_name,
            self.hot.matched_vars_names,
        ];
        let copy = rule.targets.is_empty()
            || rule
                .targets
                .iter()
                .any(|t| t.count || volatile.contains(&t.slot));
        let mut any = false;
        if copy {
            let mut values = Vec::new();
            for t in &rule.targets {
                values.extend(self.values(t, rule, chain_id));
            }
            if rule.targets.is_empty() {
                // SecAction: an unconditional match with no variable.
                values.push((String::new(), Vec::new()));
            }
            self.clear_matched();
            for (name, value) in values {
                let (hit, transformed, caps) = self.test(rule, &value);
                if hit {
                    any = true;
                    self.record(rule, name, transformed, caps);
                }
            }
        } else {
            let mut refs: Vec<(usize, usize, usize)> = Vec::new();
            for (ti, t) in rule.targets.iter().enumerate() {
                for (i, (k, _)) in self.vars.get(t.slot).iter().enumerate() {
                    if t.selector.as_ref().is_none_or(|s| s.matches(k))
                        && !self.excluded(rule, chain_id, t.slot, k)
                    {
                        refs.push((ti, t.slot, i));
                    }
                }
            }
            self.clear_matched();
            for (ti, slot, i) in refs {
                let (hit, transformed, caps) = {
                    let value = &self.vars.get(slot)[i].1;
                    self.test(rule, value)
                };
                if hit {
                    any = true;
                    let key = &self.vars.get(slot)[i].0;
                    let t = &rule.targets[ti];
                    let name = if key == t.name {
                        key.clone()
                    } else {
                        format!("{}:{key}", t.name)
                    };
                    self.record(rule, name, transformed, caps);
                }
            }
        }
        if !any {
            return false;
        }
        // A link's actions have run before the next link is tested: it may read what they set
        // (920420 sets tx.content_type for its chain).
        match &rule.chained {
            Some(next) => self.evaluate(next, chain_id),
            None => true,
        }
    }

    fn clear_matched(&mut self) {
        self.vars.clear_slot(self.hot.matched_vars);
        self.vars.clear_slot(self.hot.matched_vars_names);
    }

    /// Runs the transformations and the operator on one value: (matched, transformed, captures).
    fn test(&self, rule: &Rule, value: &[u8]) -> (bool, Vec<u8>, Captures) {
        let mut caps = Captures::default();
        if rule.actions.multi_match {
            let (hit, t) = self.multi_match(rule, value, &mut caps);
            return (hit, t, caps);
        }
        let t: Cow<[u8]> = transforms::apply(&rule.transforms, value);
        let want = rule.actions.capture.then_some(&mut caps);
        let hit = rule.operator.matches(&t, self, want) != rule.negated;
        (hit, if hit { t.into_owned() } else { Vec::new() }, caps)
    }

    /// Bookkeeping for one matching value, then the link's per-match actions.
    fn record(&mut self, rule: &Rule, name: String, transformed: Vec<u8>, caps: Captures) {
        if rule.actions.capture {
            for (i, g) in caps.groups.into_iter().enumerate() {
                let s = self.tx_slot;
                self.vars.put(s, &i.to_string(), g);
            }
        }
        let h = self.hot;
        let v = &mut self.vars;
        v.set_slot(h.matched_var, "MATCHED_VAR", transformed.clone());
        v.set_slot(
            h.matched_var_name,
            "MATCHED_VAR_NAME",
            name.clone().into_bytes(),
        );
        v.add_slot(h.matched_vars, name.clone(), transformed);
        v.add_slot(h.matched_vars_names, name.clone(), name.into_bytes());
        // As ModSecurity v2 does: setvar and ctl run for every value that matches, with that
        // value's captures (920450 records each restricted header so).
        self.link_actions(rule);
    }

    fn link_actions(&mut self, r: &Rule) {
        for sv in &r.actions.setvars {
            let key = self.expand(&sv.key);
            let Some(slot) = sv.slot else {
                continue;
            };
            match sv.op {
                SetVarOp::Delete => self.vars.remove(slot, &key),
                SetVarOp::Set => {
                    let val = self.expand(&sv.value);
                    self.vars.put(slot, &key, val.into_bytes());
                }
                SetVarOp::Add | SetVarOp::Sub => {
                    let cur = self.vars.value(slot, Some(&key)).map(atoi).unwrap_or(0);
                    let delta = atoi(self.expand(&sv.value).as_bytes());
                    let next = if sv.op == SetVarOp::Add {
                        cur + delta
                    } else {
                        cur - delta
                    };
                    self.vars.put(slot, &key, next.to_string().into_bytes());
                }
            }
        }
        for c in &r.actions.ctls {
            self.apply_ctl(c);
        }
    }

    /// `multiMatch`: the operator runs on the value before the transformations and after
    /// each one that changed it.
    fn multi_match(&self, rule: &Rule, value: &[u8], caps: &mut Captures) -> (bool, Vec<u8>) {
        let mut current = value.to_vec();
        let check = |v: &[u8], caps: &mut Captures| {
            let want = rule.actions.capture.then_some(caps);
            rule.operator.matches(v, self, want) != rule.negated
        };
        if check(&current, caps) {
            return (true, current);
        }
        for t in &rule.transforms {
            let next = t(&current).into_owned();
            if next != current {
                current = next;
                if check(&current, caps) {
                    return (true, current);
                }
            }
        }
        (false, current)
    }

    fn run_actions(&mut self, rule: &Arc<Rule>, phase: u8) {
        let msg = rule
            .actions
            .msg
            .as_ref()
            .map(|m| self.expand(m))
            .unwrap_or_default();
        self.current_rule = Some((rule.actions.id, msg.clone()));
        if rule.actions.log != Some(false) {
            self.matched.push(Matched {
                id: rule.actions.id,
                phase,
                msg,
            });
        }
        self.current_rule = None;
    }

    fn apply_ctl(&mut self, c: &Ctl) {
        match c {
            Ctl::RuleEngineOff => self.engine = EngineMode::Off,
            Ctl::RuleEngineOn => self.engine = EngineMode::On,
            Ctl::RuleEngineDetectionOnly => self.engine = EngineMode::DetectionOnly,
            Ctl::RemoveById(r) => self.removed_ids.extend(r.iter().copied()),
            Ctl::RemoveByTag(t) => self.removed_tags.push(t.clone()),
            Ctl::RemoveTargetById(ids, target) => {
                if let Ok(specs) = seclang::rule::variables(target) {
                    for s in specs {
                        if let Ok(t) = Target::compile(&s) {
                            self.removed_targets.push((ids.clone(), None, t));
                        }
                    }
                }
            }
            Ctl::RemoveTargetByTag(tag, target) => {
                if let Ok(specs) = seclang::rule::variables(target) {
                    for s in specs {
                        if let Ok(t) = Target::compile(&s) {
                            self.removed_targets
                                .push((Vec::new(), Some(tag.clone()), t));
                        }
                    }
                }
            }
            Ctl::RequestBodyProcessor(p) => self.body_processor = Some(p.clone()),
            Ctl::ForceRequestBodyVariable => self.force_body_variable = true,
            Ctl::RequestBodyAccess(_) | Ctl::NoEffect => {}
        }
    }
}
