//! One request (and its response) through the rule set: variables filled per phase, rules run
//! in order with chains, skips, `setvar` and `ctl`, and the matched rule ids recorded.

use super::actions::{Ctl, Disruptive, SetVarOp};
use super::bodies;
use super::collections::{key_hash, var_slot, Collections, Found, KnownKey};
use super::macros::{Part, Template};
use super::operators::{atoi, ByteSet, Captures, Prefilter};
use super::rule::{KeySel, Rule, Target};
use super::ruleset::{Gate, Item, KeyTest, RuleSet, Union};
use super::seclang::EngineMode;
use super::setup;
use super::transforms;
use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::LazyLock;

/// A value after a transformation chain, as of its slot's `version`.
struct Transformed {
    version: u32,
    /// Whether the chain changed the value (`value` is unused otherwise).
    changed: bool,
    value: Vec<u8>,
    bytes: ByteSet,
}

/// Transformed values by (slot, chain), numbered at load as that pair's summary is
/// ([`Target::summaries`]`[1]`), then by entry. Cells stay from one transaction to the next
/// (a reset moves every filled slot's version on, so none is mistaken for current), and with
/// them their buffers.
#[derive(Default)]
struct TransformCache {
    cells: Vec<Vec<Transformed>>,
    /// The most cells one (slot, chain) has had, and the bytes all values hold, kept as
    /// they change: a reset visits the cells only when there is something to trim.
    longest: usize,
    bytes: usize,
}

impl TransformCache {
    /// Drops what a big request left: cells past the first few of each (slot, chain), and
    /// buffers past a total.
    fn trim(&mut self) {
        const KEEP_CELLS: usize = 64;
        const KEEP_BYTES: usize = 1 << 18;
        if self.longest <= KEEP_CELLS && self.bytes <= KEEP_BYTES {
            return;
        }
        let mut total = 0;
        for cells in &mut self.cells {
            cells.truncate(KEEP_CELLS);
            for c in cells.iter_mut() {
                total += c.value.capacity();
                if total > KEEP_BYTES {
                    c.value = Vec::new();
                }
            }
        }
        self.longest = self.cells.iter().map(Vec::len).max().unwrap_or(0);
        self.bytes = self
            .cells
            .iter()
            .flatten()
            .map(|c| c.value.capacity())
            .sum();
    }
}

/// The values a link matched: names and values in two buffers reused by every rule. Tested
/// into, then kept as the link's `MATCHED_VARS`.
#[derive(Default)]
struct Hits {
    names: String,
    values: Vec<u8>,
    list: Vec<Hit>,
}

struct Hit {
    name: std::ops::Range<usize>,
    value: std::ops::Range<usize>,
    caps: Captures,
}

impl Hits {
    fn clear(&mut self) {
        self.names.clear();
        self.values.clear();
        self.list.clear();
    }

    #[inline]
    fn push(&mut self, name: &[&str], value: &[u8], caps: Captures) {
        let (name_at, value_at) = (self.names.len(), self.values.len());
        for part in name {
            self.names.push_str(part);
        }
        self.values.extend_from_slice(value);
        self.list.push(Hit {
            name: name_at..self.names.len(),
            value: value_at..self.values.len(),
            caps,
        });
    }

    /// Hit `k`'s variable name and value.
    fn get(&self, k: usize) -> (&str, &[u8]) {
        let hit = &self.list[k];
        (
            &self.names[hit.name.clone()],
            &self.values[hit.value.clone()],
        )
    }

    fn capacity(&self) -> usize {
        self.names.capacity() + self.values.capacity()
    }
}

/// All of a variable's raw entries (or of a rule's variables, for a group), as of the
/// slots' `version` and number of `entries`: what a prefilter needs to rule them out
/// together. One cache line,
/// on a line's boundary: the table is read at a few hundred scattered places per request.
#[repr(align(64))]
struct Summary {
    version: u32,
    entries: usize,
    max_len: usize,
    bytes: ByteSet,
}

/// What a finished transaction leaves to the next one on the same rule set: its collections'
/// buffers and its tables, emptied. A CRS request fills a few hundred entries; allocating
/// them afresh each time costs more than the rules that read them.
struct Scratch {
    vars: Collections,
    transformed: TransformCache,
    summaries: Vec<Summary>,
    hits: Hits,
    matched_vars: Hits,
    last_hits: Hits,
    setvar_bufs: [String; 2],
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            vars: Collections::default(),
            transformed: TransformCache::default(),
            // Sized for the rule set when a transaction takes it.
            summaries: Vec::new(),
            hits: Hits::default(),
            matched_vars: Hits::default(),
            last_hits: Hits::default(),
            setvar_bufs: Default::default(),
        }
    }

    /// Empties everything for the next transaction; a table or buffer a big request grew
    /// goes rather than staying resident. The summaries stay as they are: a reset moves
    /// every filled slot's version on, so none is taken for the next transaction's (and an
    /// empty slot's summary is still right), which spares rewriting the whole table (tens of
    /// KiB with the CRS) for every request.
    fn reset(&mut self) {
        const KEEP_BYTES: usize = 1 << 16;
        self.vars.reset();
        self.transformed.trim();
        for hits in [&mut self.hits, &mut self.matched_vars, &mut self.last_hits] {
            if hits.capacity() > KEEP_BYTES {
                *hits = Hits::default();
            }
            hits.clear();
        }
        for buf in &mut self.setvar_bufs {
            if buf.capacity() > KEEP_BYTES {
                *buf = String::new();
            }
        }
    }
}

/// The scratch buffers (`Scratch`) of finished transactions, for the next ones (Coraza pools its
/// transactions alike). A few per core: beyond that a transaction starts from nothing.
#[derive(Default)]
pub struct Spares(std::sync::Mutex<Vec<Scratch>>);

impl Spares {
    const KEEP: usize = 64;

    fn take(&self) -> Scratch {
        let spare = self.0.lock().ok().and_then(|mut s| s.pop());
        spare.unwrap_or_else(Scratch::new)
    }

    fn give(&self, mut scratch: Scratch) {
        scratch.reset();
        if let Ok(mut spares) = self.0.lock() {
            if spares.len() < Self::KEEP {
                spares.push(scratch);
            }
        }
    }
}

impl std::fmt::Debug for Spares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|s| s.len()).unwrap_or(0);
        write!(f, "Spares({n})")
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        let scratch = Scratch {
            vars: std::mem::replace(&mut self.vars, Collections::empty()),
            transformed: std::mem::take(self.transformed.get_mut()),
            summaries: std::mem::take(self.summaries.get_mut()),
            hits: std::mem::take(self.hits.get_mut()),
            matched_vars: std::mem::take(&mut self.matched_vars),
            last_hits: std::mem::take(&mut self.last_hits),
            setvar_bufs: std::mem::take(&mut self.setvar_bufs),
        };
        self.rules.spares.give(scratch);
    }
}

impl Summary {
    /// A summary no slot state matches (no slot has that many entries).
    fn unknown() -> Summary {
        Summary {
            version: 0,
            entries: usize::MAX,
            max_len: 0,
            bytes: ByteSet::default(),
        }
    }
}

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

/// Where the hit that `MATCHED_VAR(_NAME)` should hold waits to be written.
#[derive(Debug, Clone, Copy)]
enum Pending<'r> {
    None,
    /// Hit `k` of `matched_vars`.
    Matched(usize),
    /// Hit `k` of `last_hits`.
    Last(usize),
    /// A match of a [`KeyTest`] gate's rule, not written into any `Hits`: the link's one
    /// hit, `matched_vars` (empty) standing for it.
    Quick(QuickHit<'r>),
    /// The same once the next link has begun: `last_hits` stands for it.
    QuickLast(QuickHit<'r>),
}

/// What a rule's gate decides before it is evaluated.
enum Verdict<'r> {
    Out,
    Matched(QuickHit<'r>),
    Evaluate,
}

/// A [`KeyTest`] rule's match: the rule (its one key names the hit) and a copy of the TX value
/// it matched, short as those values are (a paranoia level, a score).
#[derive(Debug, Clone, Copy)]
struct QuickHit<'r> {
    rule: &'r Rule,
    len: u8,
    value: [u8; QUICK_VALUE],
}

/// The longest TX value a [`QuickHit`] copies; a longer one is matched by `evaluate`.
const QUICK_VALUE: usize = 22;

impl<'r> QuickHit<'r> {
    fn new(rule: &'r Rule, v: &[u8]) -> Option<QuickHit<'r>> {
        let mut value = [0; QUICK_VALUE];
        value.get_mut(..v.len())?.copy_from_slice(v);
        Some(QuickHit {
            rule,
            len: v.len() as u8,
            value,
        })
    }

    /// Into `hits` as `evaluate` would have written it.
    fn push_into(&self, hits: &mut Hits) {
        let t = &self.rule.targets[0];
        let Some(KeySel::Key(key, _)) = &t.selector else {
            unreachable!("a key test's rule selects one key")
        };
        let value = &self.value[..self.len as usize];
        hits.push(&Transaction::name_parts(t, key), value, Captures::default());
    }
}

/// Writes one hit into `MATCHED_VAR` and `MATCHED_VAR_NAME`.
fn write_matched_var(vars: &mut Collections, h: Hot, (name, value): (&str, &[u8])) {
    vars.set_slot_bytes(h.matched_var, "MATCHED_VAR", value);
    vars.set_slot_bytes(h.matched_var_name, "MATCHED_VAR_NAME", name.as_bytes());
}

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
    /// The `ctl:ruleRemoveTarget*` actions that ran (their targets compiled at load).
    removed_targets: Vec<&'r Ctl>,
    /// The variables those `ctl`s name, one bit each: only their entries are looked up
    /// there (CRS's 941010 removes `REQUEST_FILENAME` from the XSS rules on most requests).
    removed_slots: [u64; 4],
    body_processor: Option<String>,
    force_body_variable: bool,
    pub matched: Vec<Matched>,
    pub interruption: Option<Interruption>,
    tx_slot: usize,
    hot: Hot,
    /// The rule running now, for `%{RULE.*}`.
    current_rule: Option<&'r Rule>,
    /// Transformed values by (slot, entry, chain).
    transformed: RefCell<TransformCache>,
    /// [`Summary`] by (slot, chain), numbered at load ([`Target::summaries`]).
    summaries: RefCell<Vec<Summary>>,
    /// What each rule evaluation matches, tested into (through `&self`).
    hits: RefCell<Hits>,
    /// The current link's matches so far: `MATCHED_VARS(_NAMES)`, copied into those
    /// variables only for a link that reads them ([`Self::sync_matched_vars`]).
    matched_vars: Hits,
    matched_vars_synced: bool,
    /// `MATCHED_VAR` and `MATCHED_VAR_NAME` as a hit not yet written to them: most matches
    /// (the paranoia-level skips) are followed by another before anything reads the two.
    pending: Pending<'r>,
    /// The hits of the link that left `pending`, once the next link's replace them in
    /// `matched_vars`.
    last_hits: Hits,
    /// [`Self::link_actions`]'s buffers for a `setvar`'s expanded key and value.
    setvar_bufs: [String; 2],
}

impl Transaction<'_> {
    /// A macro template against the collections; `%{RULE.id}`/`%{RULE.msg}` read the rule
    /// running now (its msg unexpanded when it refers to itself).
    fn expand<'t>(&self, t: &'t Template) -> Cow<'t, str> {
        if let Some(lit) = t.literal() {
            return Cow::Borrowed(lit);
        }
        let mut out = String::new();
        self.expand_into(t, &mut out);
        Cow::Owned(out)
    }

    /// [`Self::expand`] without a new `String`: the literal itself, or the expansion written
    /// over `buf`.
    fn expand_in<'a>(&self, t: &'a Template, buf: &'a mut String) -> &'a str {
        match t.literal() {
            Some(l) => l,
            None => {
                buf.clear();
                self.expand_into(t, buf);
                buf
            }
        }
    }

    /// An operator's argument: the literal, or a template that is one macro read in place
    /// (`@within %{tx.restricted_headers_basic}`, `@ge %{tx.inbound_anomaly_score_threshold}`),
    /// or else the expansion.
    fn argument<'a>(&'a self, t: &'a Template) -> Cow<'a, [u8]> {
        if let Some(lit) = t.literal() {
            return Cow::Borrowed(lit.as_bytes());
        }
        if let [part @ Part::Var { collection, .. }] = t.parts() {
            if collection != "RULE" {
                let v = self.stored(part).unwrap_or_default();
                // What the expansion would give, as long as it is text.
                if std::str::from_utf8(v).is_ok() {
                    return Cow::Borrowed(v);
                }
            }
        }
        Cow::Owned(self.expand(t).into_owned().into_bytes())
    }

    /// What a macro part reads from the collections (`None` for a literal, or nothing there).
    fn stored(&self, part: &Part) -> Option<&[u8]> {
        let Part::Var {
            key, known, slot, ..
        } = part
        else {
            return None;
        };
        let key = key.as_deref().zip(*known);
        self.vars.value_known((*slot)?, key)
    }

    /// [`Self::expand`] appended to `out` (a buffer the caller reuses).
    fn expand_into(&self, t: &Template, out: &mut String) {
        for part in t.parts() {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Var {
                    collection, key, ..
                } => {
                    if collection == "RULE" {
                        if let Some(rule) = self.current_rule {
                            match key.as_deref() {
                                Some("id") => out.push_str(&rule.actions.id.to_string()),
                                Some("msg") => {
                                    if let Some(m) = &rule.actions.msg {
                                        if !std::ptr::eq(m, t) {
                                            self.expand_into(m, out);
                                        }
                                    }
                                }
                                _ => {}
                            }
                        }
                        continue;
                    }
                    if let Some(v) = self.stored(part) {
                        match std::str::from_utf8(v) {
                            Ok(text) => out.push_str(text),
                            Err(_) => out.push_str(&String::from_utf8_lossy(v)),
                        }
                    }
                }
            }
        }
    }
}

// `removed_slots` has a bit for each variable.
const _: () = assert!(super::seclang::names::VARIABLES.len() <= 256);

/// A link's verdict on one (transformed) value: its operator after the prefilter (on the
/// value's bytes, computed here unless given), negated or not.
fn verdict(
    rule: &Rule,
    value: &[u8],
    bytes: Option<&ByteSet>,
    arg: Option<&[u8]>,
    caps: &mut Captures,
) -> bool {
    let op = &rule.operator;
    let admitted = !op.prefilters()
        || match bytes {
            Some(b) => op.admits(value.len(), b),
            None => op.admits(value.len(), &ByteSet::of(value)),
        };
    let want = rule.capture.then_some(caps);
    (admitted && op.matches(value, arg, want)) != rule.negated
}

/// `n` in decimal, with a `-` when negative.
fn signed_decimal(n: i64, buf: &mut [u8; 21]) -> &[u8] {
    let mut digits = [0u8; 20];
    let abs = decimal(n.unsigned_abs() as usize, &mut digits);
    let start = 21 - abs.len() - (n < 0) as usize;
    buf[21 - abs.len()..].copy_from_slice(abs);
    if n < 0 {
        buf[start] = b'-';
    }
    &buf[start..]
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

/// `n` in lower-case hexadecimal, without leading zeros.
fn hex(n: usize, buf: &mut [u8; 16]) -> &[u8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut at = buf.len();
    let mut n = n;
    loop {
        at -= 1;
        buf[at] = DIGITS[n & 15];
        n >>= 4;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// `n` in decimal, written into `buf` (a count needs no heap string).
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

impl<'r> Transaction<'r> {
    pub fn new(rules: &'r RuleSet) -> Transaction<'r> {
        let scratch = rules.spares.take();
        Transaction {
            rules,
            vars: {
                let mut vars = scratch.vars;
                vars.know_all_keys();
                vars
            },
            engine: rules.engine,
            removed_ids: Vec::new(),
            removed_tags: Vec::new(),
            removed_targets: Vec::new(),
            removed_slots: [0; 4],
            body_processor: None,
            force_body_variable: false,
            matched: Vec::new(),
            interruption: None,
            tx_slot: var_slot!("TX"),
            hot: Hot {
                matched_var: var_slot!("MATCHED_VAR"),
                matched_var_name: var_slot!("MATCHED_VAR_NAME"),
                matched_vars: var_slot!("MATCHED_VARS"),
                matched_vars_names: var_slot!("MATCHED_VARS_NAMES"),
            },
            current_rule: None,
            transformed: RefCell::new({
                let mut t = scratch.transformed;
                t.cells.resize_with(rules.summaries, Vec::new);
                t
            }),
            summaries: RefCell::new({
                let mut s = scratch.summaries;
                s.resize_with(rules.summaries, Summary::unknown);
                s
            }),
            hits: RefCell::new(scratch.hits),
            matched_vars: scratch.matched_vars,
            matched_vars_synced: true,
            pending: Pending::None,
            last_hits: scratch.last_hits,
            setvar_bufs: scratch.setvar_bufs,
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
        self.vars.put(s, key, value.as_bytes());
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
        self.vars
            .set_scalar(var_slot!("RESPONSE_STATUS"), status.to_string());
        self.vars
            .set_scalar(var_slot!("RESPONSE_PROTOCOL"), protocol);
        self.vars
            .set_scalar(var_slot!("STATUS_LINE"), format!("{protocol} {status}"));
        for (k, v) in headers {
            self.vars.push(var_slot!("RESPONSE_HEADERS"), k, v);
            self.vars
                .push(var_slot!("RESPONSE_HEADERS_NAMES"), k, k.as_bytes());
            if k.eq_ignore_ascii_case("content-type") {
                self.vars
                    .set_scalar(var_slot!("RESPONSE_CONTENT_TYPE"), v.clone());
            }
            if k.eq_ignore_ascii_case("content-length") {
                self.vars
                    .set_scalar(var_slot!("RESPONSE_CONTENT_LENGTH"), v.clone());
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
        self.vars.set_scalar(var_slot!("RESPONSE_BODY"), body);
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
        v.set_scalar(var_slot!("REQUEST_METHOD"), req.method.as_str());
        v.set_scalar(var_slot!("REQUEST_PROTOCOL"), req.protocol.as_str());
        // Written through a buffer the transaction keeps, rather than a new String.
        let line = &mut self.setvar_bufs[0];
        line.clear();
        for part in [&*req.method, " ", &req.uri, " ", &req.protocol] {
            line.push_str(part);
        }
        v.set_scalar(var_slot!("REQUEST_LINE"), line.as_str());
        v.set_scalar(var_slot!("REQUEST_URI"), req.uri.as_str());
        v.set_scalar(var_slot!("REQUEST_URI_RAW"), req.uri.as_str());
        let (path, query) = match req.uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (req.uri.as_str(), None),
        };
        // An absolute-form target keeps only its path here.
        let path = match path.find("://") {
            Some(i) if !path.starts_with('/') => {
                path[i + 3..].find('/').map_or("/", |j| &path[i + 3 + j..])
            }
            _ => path,
        };
        // The path percent-decoded (not `+`), as ModSecurity and the CRS tests expect.
        let path = percent_decode(path.as_bytes());
        let base = match path.iter().rposition(|b| *b == b'/' || *b == b'\\') {
            Some(i) => path[i + 1..].to_vec(),
            None => path.clone(),
        };
        v.set_scalar(var_slot!("REQUEST_FILENAME"), path);
        v.set_scalar(var_slot!("REQUEST_BASENAME"), base);
        v.set_scalar(var_slot!("QUERY_STRING"), query.unwrap_or(""));
        v.set_scalar(var_slot!("REMOTE_ADDR"), req.remote_addr.as_str());
        let mut digits = [0u8; 20];
        let port = decimal(req.remote_port as usize, &mut digits);
        v.set_scalar(var_slot!("REMOTE_PORT"), port);
        v.set_scalar(var_slot!("SERVER_ADDR"), req.server_addr.as_str());
        let port = decimal(req.server_port as usize, &mut digits);
        v.set_scalar(var_slot!("SERVER_PORT"), port);
        let mut digits = [0u8; 16];
        let id = hex(std::ptr::addr_of!(*req) as usize, &mut digits);
        v.set_scalar(var_slot!("UNIQUE_ID"), id);
        v.set_scalar(var_slot!("REQBODY_ERROR"), "0");
        v.set_scalar(var_slot!("MULTIPART_STRICT_ERROR"), "0");
        v.set_scalar(var_slot!("REQUEST_BODY_LENGTH"), "0");
        for (k, val) in &req.headers {
            v.push(var_slot!("REQUEST_HEADERS"), k, val);
            v.push(var_slot!("REQUEST_HEADERS_NAMES"), k, k.as_bytes());
            if k.eq_ignore_ascii_case("host") {
                let name = val.split(|b| *b == b':').next().unwrap_or_default();
                v.set_scalar(var_slot!("SERVER_NAME"), name);
            }
            if k.eq_ignore_ascii_case("cookie") {
                for c in val.split(|b| *b == b';') {
                    let c = String::from_utf8_lossy(c);
                    let c = c.trim();
                    if c.is_empty() {
                        continue;
                    }
                    let (name, value) = c.split_once('=').unwrap_or((c, ""));
                    v.push(var_slot!("REQUEST_COOKIES"), name, value.as_bytes());
                    v.push(var_slot!("REQUEST_COOKIES_NAMES"), name, name.as_bytes());
                }
            }
        }
        // As ModSecurity: the default body processor is known from the headers, in phase 1.
        if let Some(p) = self.body_processor_for_type() {
            self.vars.set_scalar(var_slot!("REQBODY_PROCESSOR"), p);
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
            (var_slot!("ARGS_GET"), var_slot!("ARGS_GET_NAMES"))
        } else {
            (var_slot!("ARGS_POST"), var_slot!("ARGS_POST_NAMES"))
        };
        let v = &mut self.vars;
        v.push(args, &name, &value);
        v.push(names, &name, name.as_bytes());
        v.push(var_slot!("ARGS"), &name, &value);
        v.push(var_slot!("ARGS_NAMES"), &name, name.as_bytes());
        let total = v
            .value(var_slot!("ARGS_COMBINED_SIZE"), None)
            .map(atoi)
            .unwrap_or(0)
            .max(0) as usize
            + size;
        let mut digits = [0u8; 20];
        v.set_scalar(var_slot!("ARGS_COMBINED_SIZE"), decimal(total, &mut digits));
    }

    fn header(&self, name: &str) -> Option<String> {
        self.vars
            .value(var_slot!("REQUEST_HEADERS"), Some(name))
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn fill_body(&mut self, body: &[u8]) {
        self.vars
            .set_scalar(var_slot!("REQUEST_BODY_LENGTH"), body.len().to_string());
        let raw_ctype = self.header("content-type").unwrap_or_default();
        let processor = self
            .body_processor
            .clone()
            .or_else(|| self.body_processor_for_type().map(String::from));
        if let Some(p) = &processor {
            self.vars
                .set_scalar(var_slot!("REQBODY_PROCESSOR"), p.as_str());
        }
        if processor.as_deref() == Some("URLENCODED")
            || processor.is_none()
            || self.force_body_variable
        {
            self.vars.set_scalar(var_slot!("REQUEST_BODY"), body);
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
                        self.vars.push(var_slot!("XML"), &key, &value);
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
                    self.vars
                        .set_scalar(var_slot!("MULTIPART_STRICT_ERROR"), "1");
                    self.vars.set_scalar(var_slot!("REQBODY_ERROR"), "1");
                }
                for (name, value) in parsed.args {
                    self.add_arg("POST", name, value);
                }
                let mut total = 0;
                for (field, file, size) in parsed.files {
                    self.vars.push(var_slot!("FILES"), &field, file.as_bytes());
                    self.vars
                        .push(var_slot!("FILES_NAMES"), &field, field.as_bytes());
                    self.vars
                        .push(var_slot!("MULTIPART_FILENAME"), "", file.as_bytes());
                    total += size;
                }
                self.vars
                    .set_scalar(var_slot!("FILES_COMBINED_SIZE"), total.to_string());
                for (name, line) in parsed.part_headers {
                    self.vars
                        .push(var_slot!("MULTIPART_PART_HEADERS"), &name, &line);
                }
            }
            _ => {}
        }
    }

    /// The body processor the request's Content-Type implies (ModSecurity's default).
    fn body_processor_for_type(&self) -> Option<&'static str> {
        let ctype = self.header("content-type")?.to_ascii_lowercase();
        if ctype.starts_with("application/x-www-form-urlencoded") {
            Some("URLENCODED")
        } else if ctype.starts_with("multipart/form-data") {
            Some("MULTIPART")
        } else {
            None
        }
    }

    fn body_error(&mut self, msg: String) {
        self.vars.set_scalar(var_slot!("REQBODY_ERROR"), "1");
        self.vars
            .set_scalar(var_slot!("REQBODY_ERROR_MSG"), msg.clone());
        self.vars
            .set_scalar(var_slot!("REQBODY_PROCESSOR_ERROR"), "1");
    }

    fn removed(&self, rule: &Rule) -> bool {
        // Most transactions remove nothing: not even the rule's tags are read then.
        if self.removed_ids.is_empty() && self.removed_tags.is_empty() {
            return false;
        }
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
        self.run_rules(phase);
        // What a phase leaves is whole for whatever reads it next.
        self.sync_matched_var();
    }

    fn run_rules(&mut self, phase: u8) {
        if self.engine == EngineMode::Off {
            return;
        }
        let rules = self.rules;
        let items = &rules.phases[phase as usize - 1];
        let admits = &rules.admits[phase as usize - 1];
        let mut i = 0;
        let mut skip = 0u32;
        // The set-up region: its outcome copied (`restored`), or noted as it runs (`setup`).
        let region = &rules.setup;
        let mut restored = None;
        let mut setup = None;
        if phase == 1 && !region.is_empty() && self.fresh() {
            let found = rules
                .setups
                .find(&self.vars, &self.removed_ids, &self.removed_tags);
            match found {
                Some(outcome) => {
                    outcome.apply(&mut self.vars, &mut self.matched);
                    restored = Some(outcome);
                }
                None => {
                    setup = Some(setup::Outcome::start(
                        &self.vars,
                        &self.removed_ids,
                        &self.removed_tags,
                    ))
                }
            }
        }
        while i < items.len() {
            if i == region.len() {
                if let Some(start) = setup.take() {
                    self.keep_setup(start);
                }
            }
            let at = i;
            let own = region.own.get(at).copied().unwrap_or(false);
            if let (Some(outcome), true) = (&restored, own) {
                if outcome.last_match() == Some(at) {
                    self.restore_matched(outcome);
                }
                i += 1;
                continue;
            }
            let Item::Rule(rule, gate) = &items[i] else {
                i += 1;
                continue;
            };
            let rule: &'r Rule = rule;
            i += 1;
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if self.removed(rule) {
                continue;
            }
            let quick = match gate {
                Gate::None => Verdict::Evaluate,
                Gate::Union(u) if self.gated_out(u, &admits[at]) => Verdict::Out,
                Gate::Union(_) => Verdict::Evaluate,
                Gate::Key(k) => self.key_verdict(k, rule),
            };
            if let Verdict::Out = quick {
                // All `evaluate` would have done: no match, so no matched values.
                self.clear_matched();
                continue;
            }
            self.current_rule = Some(rule);
            let matched = match quick {
                Verdict::Matched(hit) => {
                    // What `evaluate` would have left: the previous link's matches last,
                    // this one's hit pending.
                    // (`clear_matched` leaves `MATCHED_VARS` unsynced.)
                    self.clear_matched();
                    self.pending = Pending::Quick(hit);
                    true
                }
                _ => self.evaluate(rule, rule.id),
            };
            if matched {
                if rule.reads_matched_vars {
                    self.sync_matched_vars();
                }
                self.log_match(rule, phase);
                if own && setup.is_some() {
                    if setup::Outcome::keeps_course(rule) {
                        self.sync_matched_vars();
                        self.sync_matched_var();
                        if let Some(outcome) = &mut setup {
                            outcome.matched_at(at, &self.vars);
                        }
                    } else {
                        setup = None;
                    }
                }
            }
            self.current_rule = None;
            if !matched {
                continue;
            }
            if let Some(to) = rule.skip_to {
                i = to;
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
        // A phase that is all prefix.
        if let Some(start) = setup {
            self.keep_setup(start);
        }
    }

    fn keep_setup(&mut self, start: setup::Outcome) {
        self.sync_matched_vars();
        self.sync_matched_var();
        let outcome = start.finish(&self.vars, &self.matched);
        self.rules.setups.keep(outcome);
    }

    /// Whether nothing has run yet: the set-up rules' outcome depends on TX alone.
    fn fresh(&self) -> bool {
        self.matched.is_empty()
            && matches!(self.pending, Pending::None)
            && self.interruption.is_none()
            && self.removed_targets.is_empty()
            && self.engine == self.rules.engine
            && setup::MATCHED.iter().all(|s| self.vars.get(*s).is_empty())
    }

    /// The `MATCHED_*` variables as the last matching set-up rule left them.
    fn restore_matched(&mut self, outcome: &setup::Outcome) {
        self.pending = Pending::None;
        let entries = outcome.apply_matched(&mut self.vars);
        self.matched_vars.clear();
        for (name, value) in entries {
            self.matched_vars.push(&[name], value, Captures::default());
        }
        self.matched_vars_synced = true;
    }

    /// Whether `ctl` or the rule's own exclusions take this entry out of the rule.
    #[inline(always)]
    fn excluded(&self, rule: &Rule, t: &Target, rule_id: u64, key: &str) -> bool {
        // Most variables have no exclusion in their rule and none removed by a `ctl`: that
        // answer is worth no call.
        (t.excludable || self.removed_slots[t.slot / 64] & 1 << (t.slot % 64) != 0)
            && self.excluded_by_any(rule, rule_id, t.slot, key)
    }

    /// [`Self::excluded`] past its shortcut: the rule's exclusions, then the `ctl`s.
    fn excluded_by_any(&self, rule: &Rule, rule_id: u64, slot: usize, key: &str) -> bool {
        rule.exclusions.iter().any(|x| x.covers(slot, key))
            || self.removed_targets.iter().any(|c| match c {
                Ctl::RemoveTargetById(ids, targets) => {
                    targets.iter().any(|x| x.covers(slot, key))
                        && ids.iter().any(|(a, b)| (*a..=*b).contains(&rule_id))
                }
                Ctl::RemoveTargetByTag(tag, targets) => {
                    targets.iter().any(|x| x.covers(slot, key)) && rule.actions.tags.contains(tag)
                }
                _ => false,
            })
    }

    /// Whether target `t` of `rule` inspects the entry under `key`.
    #[inline(always)]
    fn selects(&self, t: &Target, rule: &Rule, rule_id: u64, key: &str) -> bool {
        t.selector.as_ref().is_none_or(|s| s.matches(key)) && !self.excluded(rule, t, rule_id, key)
    }

    /// How a matched value is named in `MATCHED_VAR_NAME` (`ARGS:q`; a scalar by itself).
    fn var_name(t: &Target, key: &str) -> String {
        Self::name_parts(t, key).concat()
    }

    /// [`Self::var_name`] in pieces, to copy without building a string.
    fn name_parts<'k>(t: &Target, key: &'k str) -> [&'k str; 3] {
        if key == t.name() {
            [key, "", ""]
        } else {
            [t.name(), ":", key]
        }
    }

    /// Whether the rule (and its whole chain) matches; sets MATCHED_VAR(S) and captures.
    ///
    /// Values are tested in place, and a link's bookkeeping, `setvar` and `ctl` run for each
    /// match once all its values are tested: that is what ModSecurity's copy-then-test does,
    /// as long as the operator's argument does not read what the link itself writes
    /// ([`Rule::in_turn`] says when it may).
    fn evaluate(&mut self, rule: &'r Rule, chain_id: u64) -> bool {
        if rule.reads_matched_vars {
            self.sync_matched_vars();
        }
        if rule.tests_matched_var {
            self.sync_matched_var();
        }
        if rule.in_turn {
            return self.evaluate_in_turn(rule, chain_id);
        }
        if rule.single_key {
            if let Some(matched) = self.evaluate_single_key(rule, chain_id) {
                return matched;
            }
        }
        self.hits.get_mut().clear();
        let hits = &self.hits;
        let arg = rule.operator.template().map(|t| self.argument(t));
        let arg = arg.as_deref();
        let group_out = rule.group.is_some_and(|g| !self.group_admits(rule, g));
        if rule.targets.is_empty() {
            // SecAction: an unconditional match with no variable.
            self.test(rule, None, b"", arg, |v, caps| {
                hits.borrow_mut().push(&[], v, caps)
            });
        }
        for t in &rule.targets {
            let entries = self.vars.get(t.slot);
            if t.count {
                // `&TX:name`, the CRS's "is it set yet" test: one index lookup, not a scan.
                let found = match &t.selector {
                    Some(KeySel::Key(k, h)) => self.vars.find_known(t.slot, k, *h),
                    _ => Found::Scan,
                };
                let n = match found {
                    Found::At(Some(i)) => !self.excluded(rule, t, chain_id, &entries[i].0) as usize,
                    Found::At(None) => 0,
                    Found::Scan => entries
                        .iter()
                        .filter(|(k, _)| self.selects(t, rule, chain_id, k))
                        .count(),
                };
                let mut digits = [0u8; 20];
                self.test(rule, None, decimal(n, &mut digits), arg, |v, caps| {
                    hits.borrow_mut().push(&["&", t.name()], v, caps)
                });
                continue;
            }
            // Several entries a prefilter may rule out at once.
            if t.summarized && (group_out || entries.len() > 1 && !self.slot_admits(rule, t)) {
                continue;
            }
            // One key of an indexed collection (`TX:score`): straight to its entry.
            let only = match &t.selector {
                Some(KeySel::Key(k, h)) => match self.vars.find_known(t.slot, k, *h) {
                    Found::At(None) => continue,
                    Found::At(Some(i)) => Some(i),
                    Found::Scan => None,
                },
                _ => None,
            };
            let range = only.map_or(0..entries.len(), |i| i..i + 1);
            for (i, (k, v)) in entries[range.clone()].iter().enumerate() {
                let i = range.start + i;
                // The index found the one key already; only exclusions may still drop it.
                let selected = match only {
                    Some(_) => !self.excluded(rule, t, chain_id, k),
                    None => self.selects(t, rule, chain_id, k),
                };
                if !selected || t.judged_raw && !self.entry_admits(rule, t, i, v) {
                    continue;
                }
                let at = t.cacheable.then_some((t, i));
                self.test(rule, at, v, arg, |tv, caps| {
                    hits.borrow_mut().push(&Self::name_parts(t, k), tv, caps)
                });
            }
        }
        self.clear_matched();
        if self.hits.get_mut().list.is_empty() {
            return false;
        }
        // The hits become the link's MATCHED_VARS, and the buffer they replace the next
        // link's to test into.
        std::mem::swap(self.hits.get_mut(), &mut self.matched_vars);
        let mut hits = std::mem::take(&mut self.matched_vars);
        // A link that captures nothing and acts on no match leaves only its last match's
        // MATCHED_VAR: the earlier ones need no bookkeeping.
        let a = &rule.actions;
        let quiet =
            !a.capture && a.setvars.is_empty() && a.ctls.is_empty() && !rule.reads_matched_vars;
        let first = if quiet { hits.list.len() - 1 } else { 0 };
        for k in first..hits.list.len() {
            let caps = std::mem::take(&mut hits.list[k].caps);
            self.record(rule, &hits, k, caps);
        }
        // What `take` left is empty and owns nothing: dropping it would only cost the check.
        let left = std::mem::replace(&mut self.matched_vars, hits);
        debug_assert!(left.list.capacity() == 0 && left.capacity() == 0);
        std::mem::forget(left);
        self.next_link(rule, chain_id)
    }

    /// [`Self::evaluate`] for a [`Rule::single_key`] link: the one entry found by the index
    /// and tested with no buffer in between; `None` when the variable keeps no index.
    fn evaluate_single_key(&mut self, rule: &'r Rule, chain_id: u64) -> Option<bool> {
        let t = &rule.targets[0];
        let Some(KeySel::Key(k, h)) = &t.selector else {
            return None;
        };
        let i = match self.vars.find_known(t.slot, k, *h) {
            Found::Scan => return None,
            Found::At(i) => i,
        };
        // Testing reads neither `MATCHED_VARS` nor the pending hit, so the previous link's
        // matches may go first; the match, if any, goes straight into the emptied buffer.
        self.clear_matched();
        let mut hits = std::mem::take(&mut self.matched_vars);
        let mut caps = Captures::default();
        let matched = i.is_some_and(|i| {
            let (key, value) = &self.vars.get(t.slot)[i];
            if self.excluded(rule, t, chain_id, key) {
                return false;
            }
            let arg = rule.operator.template().map(|t| self.argument(t));
            let value = transforms::apply(&rule.transforms, value);
            let matched = verdict(rule, &value, None, arg.as_deref(), &mut caps);
            if matched {
                hits.push(&Self::name_parts(t, key), &value, Captures::default());
            }
            matched
        });
        if matched {
            self.record(rule, &hits, 0, caps);
        }
        // What `take` left is empty and owns nothing: dropping it would only cost the check.
        let left = std::mem::replace(&mut self.matched_vars, hits);
        debug_assert!(left.list.capacity() == 0 && left.capacity() == 0);
        std::mem::forget(left);
        Some(matched && self.next_link(rule, chain_id))
    }

    /// [`Self::evaluate`] for a link whose operator argument may read what its own matches
    /// write: copies first, then test and act value by value.
    fn evaluate_in_turn(&mut self, rule: &'r Rule, chain_id: u64) -> bool {
        let mut values = Vec::new();
        for t in &rule.targets {
            let entries = self.vars.get(t.slot);
            let selected = entries
                .iter()
                .filter(|(k, _)| self.selects(t, rule, chain_id, k));
            if t.count {
                let n = selected.count().to_string().into_bytes();
                values.push((format!("&{}", t.name()), n));
            } else {
                values.extend(selected.map(|(k, v)| (Self::var_name(t, k), v.clone())));
            }
        }
        if rule.targets.is_empty() {
            values.push((String::new(), Vec::new()));
        }
        self.clear_matched();
        let mut any = false;
        let (mut hit, mut all) = (Hits::default(), Hits::default());
        for (name, value) in values {
            let arg = rule.operator.template().map(|t| self.expand(t));
            hit.clear();
            self.test(
                rule,
                None,
                &value,
                arg.as_deref().map(str::as_bytes),
                |v, caps| hit.push(&[], v, caps),
            );
            if let Some(h) = hit.list.pop() {
                any = true;
                all.push(&[&name], &hit.values[h.value], Captures::default());
                self.record(rule, &all, all.list.len() - 1, h.caps);
            }
        }
        self.matched_vars = all;
        any && self.next_link(rule, chain_id)
    }

    /// A link's actions have run before the next link is tested: it may read what they set
    /// (920420 sets tx.content_type for its chain).
    fn next_link(&mut self, rule: &'r Rule, chain_id: u64) -> bool {
        match &rule.chained {
            Some(next) => self.evaluate(next, chain_id),
            None => true,
        }
    }

    /// Empties `MATCHED_VARS` for the next link (a match pending in it moves to
    /// `last_hits`). Inline for the common case, no match since the last call: most rules
    /// come here once or twice matching nothing.
    #[inline(always)]
    fn clear_matched(&mut self) {
        if !matches!(self.pending, Pending::Matched(_) | Pending::Quick(_))
            && self.matched_vars.list.is_empty()
        {
            self.matched_vars_synced = false;
            return;
        }
        self.clear_matched_hits();
    }

    #[inline(never)]
    fn clear_matched_hits(&mut self) {
        match self.pending {
            Pending::Matched(k) => {
                std::mem::swap(&mut self.matched_vars, &mut self.last_hits);
                self.pending = Pending::Last(k);
            }
            // `matched_vars` is empty: the hit is all there is to keep.
            Pending::Quick(q) => self.pending = Pending::QuickLast(q),
            _ => {}
        }
        self.matched_vars.clear();
        self.matched_vars_synced = false;
    }

    /// Writes the pending hit into `MATCHED_VAR` and `MATCHED_VAR_NAME`.
    fn sync_matched_var(&mut self) {
        self.settle();
        let hit = match self.pending {
            Pending::None => return,
            Pending::Matched(k) => self.matched_vars.get(k),
            Pending::Last(k) => self.last_hits.get(k),
            Pending::Quick(_) | Pending::QuickLast(_) => unreachable!("settled"),
        };
        write_matched_var(&mut self.vars, self.hot, hit);
        self.pending = Pending::None;
    }

    /// Brings `MATCHED_VARS` and `MATCHED_VARS_NAMES` up to the current link's matches.
    fn sync_matched_vars(&mut self) {
        if self.matched_vars_synced {
            return;
        }
        self.settle();
        let m = std::mem::take(&mut self.matched_vars);
        self.set_matched_vars(&m, m.list.len());
        self.matched_vars = m;
    }

    /// A [`Pending::Quick`] or [`Pending::QuickLast`] hit written into the `Hits` that stand
    /// for it (empty until now), for what reads them.
    fn settle(&mut self) {
        match self.pending {
            Pending::Quick(q) => {
                debug_assert!(self.matched_vars.list.is_empty());
                q.push_into(&mut self.matched_vars);
                self.pending = Pending::Matched(0);
            }
            Pending::QuickLast(q) => {
                self.last_hits.clear();
                q.push_into(&mut self.last_hits);
                self.pending = Pending::Last(0);
            }
            _ => {}
        }
    }

    /// `MATCHED_VARS` and `MATCHED_VARS_NAMES` as the first `n` of `hits`.
    fn set_matched_vars(&mut self, hits: &Hits, n: usize) {
        let h = self.hot;
        for slot in [h.matched_vars, h.matched_vars_names] {
            if !self.vars.get(slot).is_empty() {
                self.vars.clear_slot(slot);
            }
        }
        for k in 0..n {
            let (name, value) = hits.get(k);
            self.vars.push(h.matched_vars_names, name, name.as_bytes());
            self.vars.push(h.matched_vars, name, value);
        }
        self.matched_vars_synced = true;
    }

    /// Runs the transformations and the operator on one value; on a match, `hit` gets the
    /// transformed value and the captures. `at` (target, entry) names a value that stays put
    /// for the phase, whose transformed form is cached for every rule with the same chain.
    fn test(
        &self,
        rule: &Rule,
        at: Option<(&Target, usize)>,
        value: &[u8],
        arg: Option<&[u8]>,
        hit: impl FnOnce(&[u8], Captures),
    ) {
        let mut caps = Captures::default();
        if rule.multi_match {
            let raw = at.map(|(t, i)| {
                self.with_transformed(&[], t.slot, t.summaries[0], i, value, |_, b| *b)
            });
            if let Some(t) = self.multi_match(rule, value, raw, arg, &mut caps) {
                hit(&t, caps);
            }
            return;
        }
        let check = |t: &[u8], bytes: Option<&ByteSet>| {
            if verdict(rule, t, bytes, arg, &mut caps) {
                hit(t, caps);
            }
        };
        match at {
            Some((t, i)) => {
                let (chain, id) = (&rule.transforms, t.summaries[1]);
                self.with_transformed(chain, t.slot, id, i, value, |t, b| check(t, Some(b)))
            }
            _ => check(&transforms::apply(&rule.transforms, value), None),
        }
    }

    /// Calls `f` with entry `i` of `slot` (whose value is `value`) after `chain` (summary
    /// number `id`), and the bytes it holds: computed once per chain and entry, until the
    /// slot changes.
    fn with_transformed<R>(
        &self,
        chain: &[transforms::Transform],
        slot: usize,
        id: u32,
        i: usize,
        value: &[u8],
        f: impl FnOnce(&[u8], &ByteSet) -> R,
    ) -> R {
        let version = self.vars.version(slot);
        let mut cache = self.transformed.borrow_mut();
        let cache = &mut *cache;
        let cells = &mut cache.cells[id as usize];
        if cells.len() <= i {
            // New cells carry a version that cannot match, so they are computed below.
            cells.resize_with(i + 1, || Transformed {
                version: version.wrapping_sub(1),
                changed: false,
                value: Vec::new(),
                bytes: ByteSet::default(),
            });
            cache.longest = cache.longest.max(i + 1);
        }
        let cached = &mut cells[i];
        if cached.version != version {
            let raw = ByteSet::of(value);
            let out = match transforms::apply_known(chain, value, raw) {
                Cow::Borrowed(b) if b.len() == value.len() => None,
                // A part of it (`trim`).
                Cow::Borrowed(b) => Some(b.to_vec()),
                Cow::Owned(o) => Some(o),
            };
            cached.changed = out.is_some();
            cached.bytes = match out {
                Some(o) => {
                    cache.bytes = cache.bytes - cached.value.capacity() + o.capacity();
                    cached.value = o;
                    ByteSet::of(&cached.value)
                }
                None => raw,
            };
            cached.version = version;
        }
        f(
            if cached.changed { &cached.value } else { value },
            &cached.bytes,
        )
    }

    /// Whether any entry of `slot` may match the rule's operator, judged by its prefilter on
    /// the longest value and the union of their bytes: a `false` rules the whole variable out
    /// without visiting its entries one by one. On the raw values, by the rule's test moved
    /// before its chain: no transformation runs.
    fn slot_admits(&self, rule: &Rule, t: &Target) -> bool {
        let slot = t.slot;
        let raw = || self.summary(slot, t.summaries[0]);
        if rule.multi_match {
            // The operator sees the value before the chain and after each step.
            let (len, bytes) = raw();
            return Self::may_pass(rule, len, &bytes)
                || Self::may_pass_after(rule, &rule.transforms, len, bytes);
        }
        let (len, bytes) = raw();
        if rule.chain_id == 0 {
            return rule.operator.admits(len, &bytes);
        }
        // Past it, the entries are judged one by one, most without running the chain
        // ([`Self::entry_admits`]).
        Self::raw_admits(rule, len, &bytes)
    }

    /// [`Rule::raw_admit`]'s verdict on values before the chain.
    fn raw_admits(rule: &Rule, len: usize, bytes: &ByteSet) -> bool {
        rule.raw_admit.as_ref().is_none_or(|p| p.admits(len, bytes))
    }

    /// Whether entry `i` of `t` (value `v`) may match once the rule's chain has run on it,
    /// judged without running it: on the transformed bytes if they are cached already, else
    /// on the value's own bytes (cached for every rule) by [`Rule::raw_admit`].
    fn entry_admits(&self, rule: &Rule, t: &Target, i: usize, v: &[u8]) -> bool {
        let version = self.vars.version(t.slot);
        let cache = self.transformed.borrow();
        let cell = |id: u32| {
            cache.cells[id as usize]
                .get(i)
                .filter(|c| c.version == version)
                .map(|c| (if c.changed { c.value.len() } else { v.len() }, c.bytes))
        };
        if let Some((len, bytes)) = cell(t.summaries[1]) {
            return rule.operator.admits(len, &bytes);
        }
        let raw = cell(t.summaries[0]);
        drop(cache);
        let (len, bytes) = raw.unwrap_or_else(|| {
            self.with_transformed(&[], t.slot, t.summaries[0], i, v, |r, b| (r.len(), *b))
        });
        Self::raw_admits(rule, len, &bytes)
    }

    /// Whether any value of the rule's summarized variables may match, judged on the union
    /// of their summaries (summary `group`, the same for every rule with these variables) by
    /// [`Rule::raw_admit`]: most rules of a clean request are ruled out here at once rather
    /// than variable by variable.
    fn group_admits(&self, rule: &Rule, group: u32) -> bool {
        let members = rule.targets.iter().filter(|t| t.summarized).map(|t| t.slot);
        let (len, bytes) = self.union(group, members);
        Self::raw_admits(rule, len, &bytes)
    }

    /// The union of the summaries of `slots` (in target order, repeats kept), kept as
    /// summary `group`.
    fn union(&self, group: u32, slots: impl Iterator<Item = usize> + Clone) -> (usize, ByteSet) {
        // Versions only grow and entries are only added between two version changes, so
        // the two sums tell one state of the variables from any later one.
        let (mut version, mut entries) = (0u32, 0usize);
        for slot in slots.clone() {
            version = version.wrapping_add(self.vars.version(slot));
            entries += self.vars.get(slot).len();
        }
        self.kept(group, version, entries, || {
            let (mut len, mut bytes) = (0, ByteSet::default());
            for slot in slots.filter(|s| !self.vars.get(*s).is_empty()) {
                let (l, b) = self.summary(slot, self.rules.raw_summaries[slot]);
                (len, bytes) = (len.max(l), bytes.union(b));
            }
            (len, bytes)
        })
    }

    /// Whether a union gate rules its rule out on the union of its variables' summaries
    /// ([`Self::group_admits`] without reading the rule, and keeping the union it computes
    /// for it) while its other variables are empty.
    #[inline]
    fn gated_out(&self, gate: &Union, admit: &Prefilter) -> bool {
        if gate
            .others()
            .iter()
            .any(|s| !self.vars.get(*s as usize).is_empty())
        {
            return false;
        }
        let members = gate.members().iter().map(|s| *s as usize);
        let (len, bytes) = self.union(gate.group, members);
        !admit.admits(len, &bytes)
    }

    /// What a [`KeyTest`] says of its rule from the TX value it reads, when this transaction
    /// has found the key before and no `ctl` takes TX out of rules (the rule itself
    /// excludes nothing): out, or matched for a rule that does nothing else on a match.
    #[inline]
    fn key_verdict(&self, k: &KeyTest, rule: &'r Rule) -> Verdict<'r> {
        let tx = self.tx_slot;
        if self.removed_slots[tx / 64] & 1 << (tx % 64) != 0 {
            return Verdict::Evaluate;
        }
        let Some(v) = self.vars.remembered_tx(k.id) else {
            return Verdict::Evaluate;
        };
        if k.test.matches(v) == k.negated {
            return Verdict::Out;
        }
        if !k.quiet {
            return Verdict::Evaluate;
        }
        QuickHit::new(rule, v).map_or(Verdict::Evaluate, Verdict::Matched)
    }

    /// The longest of `slot`'s values and the union of their bytes, cached until the slot
    /// changes.
    fn summary(&self, slot: usize, at: u32) -> (usize, ByteSet) {
        self.kept_summary(slot, at, || {
            let mut max_len = 0;
            let mut all = ByteSet::default();
            for (_, v) in self.vars.get(slot) {
                max_len = max_len.max(v.len());
                all = all.union(ByteSet::of(v));
            }
            (max_len, all)
        })
    }

    /// Summary `at` of `slot`'s values: kept from `compute` until the slot changes.
    fn kept_summary(
        &self,
        slot: usize,
        at: u32,
        compute: impl FnOnce() -> (usize, ByteSet),
    ) -> (usize, ByteSet) {
        self.kept(
            at,
            self.vars.version(slot),
            self.vars.get(slot).len(),
            compute,
        )
    }

    /// Summary `at`, kept from `compute` while the state it was computed in (`version`,
    /// `entries`) holds.
    fn kept(
        &self,
        at: u32,
        version: u32,
        entries: usize,
        compute: impl FnOnce() -> (usize, ByteSet),
    ) -> (usize, ByteSet) {
        let at = at as usize;
        let known = self.summaries.borrow().get(at).and_then(|s| {
            (s.version == version && s.entries == entries).then_some((s.max_len, s.bytes))
        });
        known.unwrap_or_else(|| {
            let (max_len, bytes) = compute();
            if let Some(s) = self.summaries.borrow_mut().get_mut(at) {
                *s = Summary {
                    version,
                    entries,
                    max_len,
                    bytes,
                };
            }
            (max_len, bytes)
        })
    }

    /// Bookkeeping for hit `k` of the link's `hits` (its matching values so far), then the
    /// link's per-match actions.
    fn record(&mut self, rule: &'r Rule, hits: &Hits, k: usize, caps: Captures) {
        if rule.actions.capture {
            self.capture(caps);
        }
        if rule.acts_on_matched_var || rule.in_turn {
            // This link's own setvars read the two, or its hits are not kept where
            // `pending` points.
            write_matched_var(&mut self.vars, self.hot, hits.get(k));
            self.pending = Pending::None;
        } else {
            // `hits` go back into `matched_vars` once the link's matches are recorded.
            self.pending = Pending::Matched(k);
        }
        self.matched_vars_synced = false;
        if rule.reads_matched_vars {
            self.set_matched_vars(hits, k + 1);
        }
        // As ModSecurity v2 does: setvar and ctl run for every value that matches, with that
        // value's captures (920450 records each restricted header so).
        if !rule.actions.setvars.is_empty() || !rule.actions.ctls.is_empty() {
            self.link_actions(rule);
        }
    }

    /// `TX:0`..`TX:9` (and on) as a match captured them.
    #[inline(never)]
    fn capture(&mut self, caps: Captures) {
        const GROUP: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
        static KNOWN: LazyLock<[KnownKey; 10]> = LazyLock::new(|| GROUP.map(KnownKey::of));
        for (i, g) in caps.groups.into_iter().enumerate() {
            let s = self.tx_slot;
            match GROUP.get(i) {
                Some(k) => self.vars.put_known(s, k, KNOWN[i], &g),
                None => self.vars.put(s, &i.to_string(), &g),
            }
        }
    }

    /// A link's `setvar`s and `ctl`s, for one match.
    #[inline(never)]
    fn link_actions(&mut self, r: &'r Rule) {
        // Keys and values expand into two buffers kept from one setvar to the next.
        let [mut key_buf, mut val_buf] = std::mem::take(&mut self.setvar_bufs);
        for sv in &r.actions.setvars {
            let Some(slot) = sv.slot else {
                continue;
            };
            let key = self.expand_in(&sv.key, &mut key_buf);
            // A key named in the rule is looked up by its number; one expanded per match
            // (`tx.header_name_920450_%{tx.0}`) by its hash.
            let known = sv.known.unwrap_or_else(|| KnownKey {
                hash: key_hash(key),
                id: u32::MAX,
            });
            let val = match sv.op {
                SetVarOp::Delete => "",
                _ => self.expand_in(&sv.value, &mut val_buf),
            };
            match sv.op {
                SetVarOp::Delete => self.vars.remove(slot, key),
                SetVarOp::Set => self.vars.put_known(slot, key, known, val.as_bytes()),
                SetVarOp::Add | SetVarOp::Sub => {
                    let cur = self.vars.value_known(slot, Some((key, known)));
                    let cur = cur.map(atoi).unwrap_or(0);
                    let delta = atoi(val.as_bytes());
                    let next = if sv.op == SetVarOp::Add {
                        cur.saturating_add(delta)
                    } else {
                        cur.saturating_sub(delta)
                    };
                    let mut digits = [0u8; 21];
                    let n = signed_decimal(next, &mut digits);
                    self.vars.put_known(slot, key, known, n);
                }
            }
        }
        self.setvar_bufs = [key_buf, val_buf];
        for c in &r.actions.ctls {
            self.apply_ctl(c);
        }
    }

    /// `multiMatch`: the operator runs on the value before the transformations and after
    /// each one that changed it. `bytes`, the value's own, when known.
    fn multi_match(
        &self,
        rule: &Rule,
        value: &[u8],
        bytes: Option<ByteSet>,
        arg: Option<&[u8]>,
        caps: &mut Captures,
    ) -> Option<Vec<u8>> {
        let bytes = bytes.unwrap_or_else(|| ByteSet::of(value));
        if verdict(rule, value, Some(&bytes), arg, caps) {
            return Some(value.to_vec());
        }
        let mut current = Cow::Borrowed(value);
        let mut bytes = bytes;
        for (k, t) in rule.transforms.iter().enumerate() {
            if t.is_inert(&bytes) {
                continue;
            }
            // A step that changes the value runs only if its result or a later one's may
            // pass (most clean values have no step to run at all: every one is a no-op).
            if !Self::may_pass_after(rule, &rule.transforms[k..], current.len(), bytes) {
                return None;
            }
            let changed = match t.run(&current) {
                Cow::Owned(next) if next != *current => Some(next),
                Cow::Borrowed(next) if next.len() != current.len() => Some(next.to_vec()),
                _ => None,
            };
            if let Some(next) = changed {
                current = Cow::Owned(next);
                bytes = ByteSet::of(&current);
                if verdict(rule, &current, Some(&bytes), arg, caps) {
                    return Some(current.into_owned());
                }
            }
        }
        None
    }

    /// Whether a value of this length and these bytes may pass the rule's test (`false` is
    /// certain).
    fn may_pass(rule: &Rule, len: usize, bytes: &ByteSet) -> bool {
        rule.negated || !rule.operator.prefilters() || rule.operator.admits(len, bytes)
    }

    /// Whether a `multiMatch` value of this length and these bytes may pass the rule's test
    /// after one of `steps` (the rest of its chain), judged on the steps' bounds: `false` is
    /// certain, unless the rule is negated.
    #[inline]
    fn may_pass_after(
        rule: &Rule,
        steps: &[transforms::Transform],
        len: usize,
        bytes: ByteSet,
    ) -> bool {
        let op = &rule.operator;
        if rule.negated || !op.prefilters() {
            return true;
        }
        let (mut bytes, mut len) = (bytes, len);
        let mut admitted = None;
        for t in steps {
            let (b, l) = transforms::bound(std::slice::from_ref(t), bytes, len);
            // Most steps leave the bound as it was (a decoder with nothing to decode, or
            // anything in, anything out after `base64Decode`): the test's answer stands.
            if admitted.is_none() || (b, l) != (bytes, len) {
                (bytes, len) = (b, l);
                admitted = Some(op.admits(len, &bytes));
            }
            if admitted == Some(true) {
                return true;
            }
        }
        false
    }

    fn log_match(&mut self, rule: &Rule, phase: u8) {
        if rule.actions.log == Some(false) {
            return;
        }
        if rule.reads_matched_var {
            self.sync_matched_var();
        }
        let msg = rule
            .actions
            .msg
            .as_ref()
            .map(|m| self.expand(m).into_owned())
            .unwrap_or_default();
        self.matched.push(Matched {
            id: rule.actions.id,
            phase,
            msg,
        });
    }

    fn apply_ctl(&mut self, c: &'r Ctl) {
        match c {
            Ctl::RuleEngineOff => self.engine = EngineMode::Off,
            Ctl::RuleEngineOn => self.engine = EngineMode::On,
            Ctl::RuleEngineDetectionOnly => self.engine = EngineMode::DetectionOnly,
            Ctl::RemoveById(r) => self.removed_ids.extend(r.iter().copied()),
            Ctl::RemoveByTag(t) => self.removed_tags.push(t.clone()),
            Ctl::RemoveTargetById(_, targets) | Ctl::RemoveTargetByTag(_, targets) => {
                for t in targets {
                    self.removed_slots[t.slot / 64] |= 1 << (t.slot % 64);
                }
                self.removed_targets.push(c)
            }
            Ctl::RequestBodyProcessor(p) => self.body_processor = Some(p.clone()),
            Ctl::ForceRequestBodyVariable => self.force_body_variable = true,
            Ctl::RequestBodyAccess(_) | Ctl::NoEffect => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::waf::seclang;

    fn rules(text: &str) -> RuleSet {
        RuleSet::build(&seclang::parse(text, "test.conf").unwrap()).unwrap()
    }

    fn get(uri: &str) -> Request {
        Request {
            method: "GET".into(),
            uri: uri.into(),
            protocol: "HTTP/1.1".into(),
            headers: vec![("Host".into(), b"a.example".to_vec())],
            ..Request::default()
        }
    }

    /// Phases 1 and 2 of a form POST to `uri` with these headers too, and `body`.
    fn post_form(rules: &RuleSet, uri: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u64> {
        let mut req = get(uri);
        req.method = "POST".into();
        req.headers.push((
            "Content-Type".into(),
            b"application/x-www-form-urlencoded".to_vec(),
        ));
        req.headers
            .extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_vec())));
        let mut tx = Transaction::new(rules);
        tx.process_request_headers(&req);
        tx.process_request_body(body);
        tx.matched_ids()
    }

    fn run(rules: &RuleSet, uri: &str) -> Vec<u64> {
        let mut tx = Transaction::new(rules);
        tx.process_request_headers(&get(uri));
        tx.process_request_body(b"");
        tx.matched_ids()
    }

    #[test]
    fn a_header_named_by_a_rule_is_found_in_any_case_and_every_time_it_is_sent() {
        let rules = rules(
            r#"
SecRule &REQUEST_HEADERS:X-Test "@eq 2" "id:1,phase:1,pass,log"
SecRule REQUEST_HEADERS:x-test "@rx ^second$" "id:2,phase:1,pass,log"
SecRule REQUEST_HEADERS:X-TEST "@rx ^first$" "id:3,phase:1,pass,log"
SecRule &REQUEST_HEADERS:X-Other "@eq 1" "id:4,phase:1,pass,log"
SecRule REQUEST_HEADERS:x-other "@rx ^only$" "id:5,phase:1,pass,log"
SecRule &REQUEST_HEADERS:X-Absent "@eq 0" "id:6,phase:1,pass,log"
"#,
        );
        let seen = |headers: &[(&str, &[u8])]| {
            let mut tx = Transaction::new(&rules);
            let mut req = get("/");
            req.headers
                .extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_vec())));
            tx.process_request_headers(&req);
            tx.matched_ids()
        };
        let twice = seen(&[
            ("X-Test", b"first"),
            ("x-other", b"only"),
            ("x-TEST", b"second"),
        ]);
        assert_eq!(twice, [1, 2, 3, 4, 5, 6]);
        assert_eq!(seen(&[("X-Test", b"second")]), [2, 6]);
        assert_eq!(seen(&[("X-OTHER", b"only")]), [4, 5, 6]);
    }

    /// Rules a [`KeyTest`] gate decides (`TX:level "@lt 3"` once the key was looked up) leave
    /// the same `MATCHED_VAR`, `MATCHED_VAR_NAME` and `MATCHED_VARS` as evaluated ones: read
    /// by the next rule, after a rule that matches nothing, and in the next phase; a `ctl`
    /// that takes TX out of a rule still does.
    #[test]
    fn a_match_decided_by_its_gate_leaves_the_matched_variables_evaluating_would() {
        let set = rules(
            r#"
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.level=2,setvar:tx.score=7"
SecRule TX:level "@lt 1" "id:10,phase:2,pass,log"
SecRule TX:level "@lt 3" "id:11,phase:2,pass,log"
SecRule MATCHED_VAR "@streq 2" "id:12,phase:2,pass,log"
SecRule TX:level "@lt 3" "id:13,phase:2,pass,nolog"
SecRule MATCHED_VAR_NAME "@streq TX:level" "id:14,phase:2,pass,log"
SecRule TX:score "@gt 100" "id:15,phase:2,pass,log"
SecRule TX:score "@ge 7" "id:16,phase:2,pass,nolog"
SecRule MATCHED_VARS_NAMES "@streq TX:score" "id:17,phase:2,pass,log"
SecRule TX:score "@ge 7" "id:18,phase:2,pass,nolog"
SecRule TX:level "@eq 9" "id:19,phase:2,pass,log"
SecRule MATCHED_VAR "@streq 7" "id:20,phase:2,pass,log"
SecRule TX:level "!@eq 9" "id:21,phase:2,pass,nolog"
SecRule REQUEST_URI "@streq /off" "id:22,phase:2,pass,nolog,ctl:ruleRemoveTargetById=23;TX:level"
SecRule TX:level "@lt 3" "id:23,phase:2,pass,log"
SecRule MATCHED_VAR_NAME "@streq TX:level" "id:30,phase:3,pass,log"
"#,
        );
        for _ in 0..2 {
            let mut tx = Transaction::new(&set);
            tx.process_request_headers(&get("/"));
            tx.process_request_body(b"");
            tx.process_response_headers(200, "HTTP/1.1", &[]);
            assert_eq!(tx.matched_ids(), [11, 12, 14, 17, 20, 23, 30]);
            let mut tx = Transaction::new(&set);
            tx.process_request_headers(&get("/off"));
            tx.process_request_body(b"");
            assert_eq!(tx.matched_ids(), [11, 12, 14, 17, 20]);
        }
    }

    #[test]
    fn a_chain_reads_the_matched_values_of_the_link_before() {
        let set = rules(
            r#"
SecRuleEngine On
SecRule ARGS "@rx ^\d+$" "id:1,phase:2,pass,log,chain"
    SecRule MATCHED_VARS_NAMES "@streq ARGS:b" "setvar:'tx.seen=%{MATCHED_VAR}'"
SecRule TX:seen "@streq ARGS:b" "id:2,phase:2,pass,log"
SecRule ARGS "@rx x" "id:3,phase:2,pass,log,chain"
    SecRule MATCHED_VARS "@streq 9" "t:none"
"#,
        );
        // Both numeric args matched the first link; the chain sees both names.
        assert_eq!(run(&set, "/?a=1&b=2"), [1, 2]);
        assert_eq!(run(&set, "/?a=1&c=2"), Vec::<u64>::new());
        // MATCHED_VARS of rule 3's first link hold only its own match (`x9`), not rule 1's.
        assert_eq!(run(&set, "/?a=x9&b=9"), [1, 2]);
    }

    #[test]
    fn prefiltered_rules_still_see_what_transformations_reveal() {
        let set = rules(
            r#"
SecRuleEngine On
SecRule ARGS "@rx <script" "id:10,phase:2,pass,log,t:none,t:urlDecodeUni,t:lowercase"
SecRule ARGS "@pm /etc/passwd" "id:11,phase:2,pass,log,t:none,t:htmlEntityDecode"
SecRule ARGS "@rx <script" "id:12,phase:2,pass,log,t:none,t:urlDecodeUni,multiMatch"
"#,
        );
        assert_eq!(run(&set, "/?q=plain&r=text"), Vec::<u64>::new());
        // `%3C` only becomes `<` after decoding; `&#47;` only becomes `/`.
        assert_eq!(run(&set, "/?q=plain&r=%253Cscript"), [10, 12]);
        assert_eq!(
            run(&set, "/?q=plain&r=%26%2347%3Betc%26%2347%3Bpasswd"),
            [11]
        );
    }

    /// `MATCHED_VAR(_NAME)` is the last value any link matched, kept through links that match
    /// nothing (which empty `MATCHED_VARS`), however many rules later it is read.
    #[test]
    fn matched_var_stays_the_last_match_however_late_it_is_read() {
        let set = rules(
            r#"
SecRuleEngine On
SecRule ARGS "@rx ^v" "id:1,phase:2,pass,log"
SecRule ARGS "@rx nomatch" "id:2,phase:2,pass,log"
SecRule MATCHED_VARS "@rx ." "id:3,phase:2,pass,log"
SecRule MATCHED_VAR "@streq v2" "id:4,phase:2,pass,log"
SecRule ARGS_NAMES "@streq a" "id:5,phase:2,pass,log"
SecRule ARGS "@rx nomatch" "id:6,phase:2,pass,log"
SecRule MATCHED_VAR_NAME "@streq ARGS_NAMES:a" "id:7,phase:2,pass,log,setvar:'tx.last=%{MATCHED_VAR}'"
"#,
        );
        let mut tx = Transaction::new(&set);
        tx.process_request_headers(&get("/?a=v1&b=v2"));
        tx.process_request_body(b"");
        assert_eq!(tx.matched_ids(), [1, 4, 5, 7]);
        assert_eq!(tx.tx("last"), Some(&b"ARGS_NAMES:a"[..]));
    }

    /// `MATCHED_VAR(_NAME)` are written only when read (by a variable, a macro, a message, or
    /// a later phase); each reader sees the last match before it, however many rules that
    /// matched nothing ran in between, and whichever path (one TX key, or the general one)
    /// matched.
    #[test]
    fn matched_var_written_late_reads_as_if_written_at_once() {
        let set = rules(
            r#"
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.pl=1"
SecRule TX:pl "@eq 1" "id:2,phase:1,pass,nolog"
SecRule TX:pl "@eq 2" "id:3,phase:1,pass,log"
SecRule REQUEST_HEADERS:Host "@rx nomatch" "id:4,phase:1,pass,log"
SecRule TX:pl "!@eq 2" "id:5,phase:1,pass,log,chain"
    SecRule MATCHED_VARS_NAMES "@streq TX:pl" "setvar:'tx.chained=%{MATCHED_VAR}'"
SecRule ARGS:a "@rx ^x" "id:6,phase:1,pass,log,msg:'saw %{MATCHED_VAR}'"
SecRule ARGS "@rx ^y" "id:7,phase:1,pass,nolog"
SecRule TX:pl "@eq 7" "id:8,phase:1,pass,log"
SecRule REQUEST_HEADERS:X-None "@streq y2" "id:9,phase:1,pass,log"
SecRuleUpdateTargetById 9 MATCHED_VAR
SecRule TX:pl "@eq 1" "id:10,phase:1,pass,nolog"
SecRule MATCHED_VAR_NAME "@streq TX:pl" "id:11,phase:2,pass,log"
"#,
        );
        let mut tx = Transaction::new(&set);
        tx.process_request_headers(&get("/?a=x1&b=y2"));
        tx.process_request_body(b"");
        assert_eq!(tx.matched_ids(), [5, 6, 9, 11]);
        assert_eq!(tx.tx("chained"), Some(&b"TX:pl"[..]));
        assert_eq!(tx.matched[1].msg, "saw x1");
        // What a phase leaves is there to read from outside.
        let mut tx = Transaction::new(&set);
        tx.process_request_headers(&get("/"));
        assert_eq!(tx.vars.value(tx.hot.matched_var, None), Some(&b"1"[..]));
        assert_eq!(
            tx.vars.value(tx.hot.matched_var_name, None),
            Some(&b"TX:pl"[..])
        );
    }

    /// A rule's variables are first ruled out together, on the union of their summaries:
    /// a value that may match, in any one of them, still reaches the operator; rules with
    /// the same variables and chain share that union, and it follows their changes from one
    /// request to the next on the same transaction buffers.
    #[test]
    fn variables_ruled_out_together_still_each_reach_the_operator() {
        let set = rules(
            r#"
SecRuleEngine On
SecRule ARGS_NAMES|ARGS|REQUEST_COOKIES|REQUEST_HEADERS "@rx <script" "id:20,phase:1,pass,log,t:none,t:urlDecodeUni,t:lowercase"
SecRule ARGS_NAMES|ARGS|REQUEST_COOKIES|REQUEST_HEADERS "@rx onerror=" "id:21,phase:1,pass,log,t:none,t:urlDecodeUni,t:lowercase"
SecRule REQUEST_HEADERS|ARGS "@pm evil" "id:22,phase:1,pass,log"
"#,
        );
        let with = |uri: &str, header: (&str, &[u8])| {
            let mut req = get(uri);
            req.headers.push((header.0.into(), header.1.to_vec()));
            let mut tx = Transaction::new(&set);
            tx.process_request_headers(&req);
            tx.matched_ids()
        };
        let plain: (&str, &[u8]) = ("Accept", b"text/plain");
        assert_eq!(with("/?q=plain&r=text", plain), Vec::<u64>::new());
        assert_eq!(with("/?q=%253CScript", plain), [20]);
        assert_eq!(with("/?%253Cscript=1", plain), [20]);
        assert_eq!(with("/?q=1", ("Cookie", b"a=ONERROR%3D")), [21]);
        assert_eq!(with("/?q=1", ("X-Note", b"evil")), [22]);
        assert_eq!(with("/?q=evil", ("X-Note", b"<script")), [20, 22]);
        assert_eq!(with("/?q=plain&r=text", plain), Vec::<u64>::new());

        // The union a phase-1 rule computed no longer holds once the body adds arguments.
        let set = rules(
            r#"
SecRuleEngine On
SecRequestBodyAccess On
SecRule ARGS|REQUEST_COOKIES "@rx <script" "id:23,phase:1,pass,log"
SecRule ARGS|REQUEST_COOKIES "@rx <script" "id:24,phase:2,pass,log"
"#,
        );
        let cookie: (&str, &[u8]) = ("Cookie", b"a=b");
        assert_eq!(
            post_form(&set, "/?q=plain", &[cookie], b"x=%3Cscript"),
            [24]
        );
    }

    /// A rule its gate rules out (a group of variables whose union the rule before it left)
    /// is not evaluated, and matches nothing; one whose other variables hold values, or whose
    /// union the variables have since outgrown, is; and a `MATCHED_VAR` pending from an
    /// earlier match is what a later rule reads, across gated rules.
    #[test]
    fn a_gate_rules_out_only_what_evaluating_would() {
        let set = rules(
            r#"
SecRuleEngine On
SecRequestBodyAccess On
SecRule ARGS|REQUEST_COOKIES "@rx ^/" "id:30,phase:1,pass,log,capture"
SecRule ARGS|REQUEST_COOKIES|REQUEST_HEADERS:X-Note "@rx <script" "id:31,phase:1,pass,log,msg:'%{MATCHED_VAR}'"
SecRule ARGS|REQUEST_COOKIES|REQUEST_HEADERS:X-Note "@rx <script" "id:32,phase:1,pass,log,msg:'%{MATCHED_VAR}'"
SecRule ARGS|REQUEST_COOKIES|XML:/* "@rx onerror=" "id:33,phase:1,pass,log"
SecRule ARGS|REQUEST_COOKIES|XML:/* "@rx onerror=" "id:34,phase:1,pass,log"
SecRule MATCHED_VAR "@rx ^/etc" "id:35,phase:1,pass,log"
SecRule ARGS|REQUEST_COOKIES "@rx <script" "id:36,phase:2,pass,log"
"#,
        );
        for r in [31, 32, 33, 34, 36] {
            let gate = set.phases.iter().find_map(|items| {
                items.iter().find_map(|item| match item {
                    Item::Rule(rule, Gate::Union(u)) if rule.actions.id == r => Some(u.members),
                    _ => None,
                })
            });
            assert_eq!(
                gate,
                Some(2),
                "rule {r} has a gate over ARGS and REQUEST_COOKIES"
            );
        }
        let with = |uri: &str, headers: &[(&str, &[u8])]| {
            let mut req = get(uri);
            req.headers.push(("Cookie".into(), b"a=b".to_vec()));
            req.headers
                .extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_vec())));
            let mut tx = Transaction::new(&set);
            tx.process_request_headers(&req);
            tx.matched_ids()
        };
        // 33 computes its union and rules it out, 34 is gated out (31 and 32 read a header,
        // so both are evaluated): 30's match is still the MATCHED_VAR 35 reads.
        for _ in 0..2 {
            assert_eq!(with("/?q=/etc/passwd&r=x", &[]), [30, 35]);
        }
        // The keyed header is not in the union: 31 and 32 are evaluated and match.
        let note: (&str, &[u8]) = ("X-Note", b"<script>");
        assert_eq!(with("/?q=plain", &[note]), [31, 32]);
        assert_eq!(with("/?q=%3Cscript%3E", &[]), [31, 32]);
        assert_eq!(with("/?q=x+onerror%3D1", &[]), [33, 34]);
        // Arguments the body adds outgrow the union phase 1 left: 36 is evaluated.
        assert_eq!(post_form(&set, "/?q=plain", &[], b"x=%3Cscript"), [36]);
    }

    /// `multiMatch` stops transforming where no later step could match: the test is on the
    /// steps' bounds, so a match the last step reveals is still found, and a negated rule
    /// (which matches what its operator does not) still sees every step.
    #[test]
    fn multi_match_runs_the_steps_a_match_may_need() {
        let set = rules(
            r#"
SecRuleEngine On
SecRule ARGS "@rx <script" "id:30,phase:2,pass,log,t:none,t:base64Decode,t:lowercase,multiMatch"
SecRule ARGS "!@rx ^x" "id:31,phase:2,pass,log,t:none,t:lowercase,multiMatch"
"#,
        );
        // `<SCRIPT` in Base64, and the first five bytes of it.
        assert_eq!(run(&set, "/?a=PFNDUklQVA"), [30, 31]);
        assert_eq!(run(&set, "/?a=PFNDUklQ"), [31]);
        assert_eq!(run(&set, "/?a=x1"), Vec::<u64>::new());
        assert_eq!(run(&set, "/?a=X1"), [31]);
    }

    #[test]
    fn a_transaction_starts_clean_after_one_that_left_its_buffers() {
        let set = rules(
            r#"
SecRuleEngine On
SecRule &TX:seen "@eq 0" "id:20,phase:1,pass,log,setvar:'tx.seen=%{REQUEST_URI}'"
SecRule ARGS_NAMES "@streq a" "id:21,phase:2,pass,log,setvar:'tx.a_was=%{MATCHED_VAR}'"
SecRule TX:A_WAS "@rx ." "id:22,phase:2,pass,log"
SecRule REQUEST_HEADERS:Host "@streq a.example" "id:23,phase:1,pass,log"
SecRule ARGS "@rx ^x" "id:24,phase:2,pass,log,t:none,t:lowercase"
"#,
        );
        assert_eq!(run(&set, "/?a=X1"), [20, 23, 21, 22, 24]);
        // The same rule set hands the first transaction's buffers to the second: nothing of
        // its TX, arguments or cached transformations shows through.
        assert_eq!(run(&set, "/?b=y"), [20, 23]);
        let mut tx = Transaction::new(&set);
        let mut req = get("/?b=x");
        req.headers[0].1 = b"b.example".to_vec();
        tx.process_request_headers(&req);
        tx.process_request_body(b"");
        assert_eq!(tx.matched_ids(), [20, 24]);
        assert_eq!(tx.tx("seen"), Some(&b"/?b=x"[..]));
        assert_eq!(tx.tx("a_was"), None);
    }

    /// Summaries stay in the table from one transaction to the next: a later request with
    /// as many values, or a variable empty before, is still judged on its own values.
    #[test]
    fn summaries_of_an_earlier_transaction_rule_out_nothing_later() {
        let set = rules(
            r#"
SecRuleEngine On
SecRule ARGS "@rx <" "id:30,phase:2,pass,log"
SecRule ARGS|ARGS_NAMES "@rx >" "id:31,phase:2,pass,log,t:none,t:urlDecode"
"#,
        );
        for (uri, want) in [
            ("/", &[][..]),
            ("/?a=x&b=y", &[]),
            ("/?a=%3C&b=y", &[30]),
            ("/?a=x&b=y", &[]),
            ("/?a=x&b=%3E", &[31]),
            ("/?a=x&%253E=y", &[31]),
            ("/?a=x&b=y", &[]),
            ("/", &[]),
            ("/?a=%3C", &[30]),
        ] {
            assert_eq!(run(&set, uri), want, "{uri}");
        }
    }

    /// The set-up region's outcome, copied into later transactions, leaves them exactly as
    /// running its rules would: TX, the log, `MATCHED_VAR` for the rule after it, a `deny`
    /// in it, and a different start or removed rule giving a different outcome.
    #[test]
    fn the_set_up_region_copied_is_the_set_up_region_run() {
        let set = rules(
            r#"
SecRuleEngine On
SecRule REQUEST_HEADERS:Content-Type "@rx json" "id:1,phase:1,pass,nolog,t:none,ctl:requestBodyProcessor=JSON"
SecRule &TX:level "@eq 0" "id:2,phase:1,pass,log,setvar:tx.level=1,msg:'level %{tx.level}'"
SecRule &TX:blocked "@eq 1" "id:3,phase:1,deny,status:500,log"
SecAction "id:4,phase:1,pass,nolog,setvar:tx.score=0"
SecRule REQUEST_HEADERS:Host "@rx ." "id:5,phase:1,pass,nolog,t:none"
SecRule TX:level "@eq 1" "id:6,phase:1,pass,nolog,setvar:'tx.seen=%{MATCHED_VAR_NAME}'"
SecRule MATCHED_VAR "@streq 1" "id:7,phase:1,pass,log"
SecRule MATCHED_VAR "@streq a.example" "id:8,phase:1,pass,log"
SecRule TX:score "@eq 0" "id:9,phase:1,pass,log"
"#,
        );
        assert_eq!(set.setup.len(), 6);
        let run = |preset: &[(&str, &str)], removed: &[(u64, u64)]| {
            let mut tx = Transaction::new(&set);
            for (k, v) in preset {
                tx.set_tx(k, v);
            }
            tx.remove_rules(removed);
            let stop = tx.process_request_headers(&get("/"));
            let keys = ["level", "score", "seen", "blocked"];
            let tx_values = keys.map(|k| tx.tx(k).map(<[u8]>::to_vec));
            let msgs: Vec<String> = tx.matched.iter().map(|m| m.msg.clone()).collect();
            (tx.matched_ids(), msgs, tx_values, stop.map(|s| s.status))
        };
        let first = run(&[], &[]);
        assert_eq!(first.0, [2, 7, 9]);
        assert_eq!(first.1[0], "level 1");
        assert_eq!(first.2[2].as_deref(), Some(&b"TX:level"[..]));
        for _ in 0..2 {
            assert_eq!(run(&[], &[]), first);
        }
        // Another start: the Host header's match is the last before rule 7.
        let preset = run(&[("level", "2")], &[]);
        assert_eq!(preset.0, [8, 9]);
        assert_eq!(run(&[("level", "2")], &[]), preset);
        let removed = run(&[], &[(4, 4)]);
        assert_eq!(removed.0, [2, 7]);
        assert_eq!(run(&[], &[(4, 4)]), removed);
        for _ in 0..2 {
            let denied = run(&[("blocked", "1")], &[]);
            assert_eq!(denied.0, [2, 3]);
            assert_eq!(denied.3, Some(500));
        }
        assert_eq!(run(&[], &[]), first);
    }

    /// The paranoia-level gates (a TX value against a number read at load): their matches,
    /// `MATCHED_*` and skips, and a `ctl` that removes the target still heard.
    #[test]
    fn a_tx_value_against_a_number_is_a_rule_like_any_other() {
        let text = r#"
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.pl=1"
SecRule TX:PL "@lt 2" "id:2,phase:1,pass,log,setvar:'tx.seen=%{MATCHED_VAR_NAME}=%{MATCHED_VAR}'"
SecRule TX:pl "@ge 2" "id:3,phase:1,pass,log"
SecRule TX:missing "@lt 2" "id:4,phase:1,pass,log"
SecRule TX:pl "@eq 1" "id:5,phase:1,pass,nolog,skipAfter:END"
SecRule TX:pl "@eq 1" "id:6,phase:1,pass,log"
SecMarker END
SecRule ARGS:off "@streq 1" "id:7,phase:2,pass,nolog,ctl:ruleRemoveTargetById=8;TX:pl"
SecRule TX:pl "@eq 1" "id:8,phase:2,pass,log"
"#;
        let set = rules(text);
        let read_at_load = set.phases[0]
            .iter()
            .filter(|i| matches!(i, Item::Rule(r, _) if r.operator.literal_number().is_some()))
            .count();
        assert_eq!(
            read_at_load, 5,
            "rules 2-6 compare with a number read at load"
        );
        let mut tx = Transaction::new(&set);
        tx.process_request_headers(&get("/"));
        tx.process_request_body(b"");
        assert_eq!(tx.matched_ids(), vec![2, 8]);
        assert_eq!(tx.tx("seen"), Some(&b"TX:pl=1"[..]));
        assert_eq!(run(&set, "/?off=1"), vec![2]);
    }

    /// A rule's own `!VAR:key` and a `ctl` that removes a variable from tagged rules drop
    /// just those entries, from just those rules.
    #[test]
    fn excluded_and_removed_targets_drop_only_their_entries() {
        let set = rules(
            r#"
SecRuleEngine On
SecRule REQUEST_FILENAME "@rx ^/" "id:1,phase:1,pass,log,ctl:ruleRemoveTargetByTag=perf;REQUEST_FILENAME"
SecRule REQUEST_FILENAME "@rx x" "id:2,phase:1,pass,log,tag:perf"
SecRule ARGS|!ARGS:/^skip/ "@rx x" "id:3,phase:1,pass,log"
SecRule ARGS "@rx x" "id:4,phase:1,pass,log,tag:perf"
SecRule REQUEST_FILENAME "@rx x" "id:5,phase:1,pass,log"
"#,
        );
        assert_eq!(run(&set, "/x?skip_a=x"), vec![1, 4, 5]);
        assert_eq!(run(&set, "/y?a=x"), vec![1, 3, 4]);
    }

    /// A reset trims the transformation cache only past its limits, and its running totals
    /// stay those of the cells it keeps.
    #[test]
    fn the_transformation_cache_is_trimmed_past_its_limits_only() {
        let set = rules(
            r#"
SecRuleEngine On
SecRule ARGS "!@rx nomatch" "id:1,phase:2,pass,nolog,t:lowercase"
"#,
        );
        let cells = |tx: &Transaction| {
            let c = tx.transformed.borrow();
            let kept: usize = c.cells.iter().flatten().map(|c| c.value.capacity()).sum();
            assert_eq!(c.bytes, kept, "the running total is the cells' own");
            (c.cells.iter().map(Vec::len).max().unwrap_or(0), c.bytes)
        };
        let many: String = (0..100).map(|i| format!("a{i}=X&")).collect();
        let mut tx = Transaction::new(&set);
        tx.process_request_headers(&get(&format!("/?{many}")));
        tx.process_request_body(b"");
        assert_eq!(cells(&tx).0, 100);
        drop(tx);
        // The next transaction gets the cache trimmed to 64 cells.
        let tx = Transaction::new(&set);
        assert_eq!(cells(&tx).0, 64);
        drop(tx);
        let big = "X".repeat(300_000);
        let mut tx = Transaction::new(&set);
        tx.process_request_headers(&get(&format!("/?a={big}&b=Y")));
        tx.process_request_body(b"");
        assert!(cells(&tx).1 >= 300_000);
        drop(tx);
        let tx = Transaction::new(&set);
        assert!(cells(&tx).1 < 1 << 18, "a big value does not stay");
    }

    #[test]
    fn hex_is_what_format_writes() {
        let mut buf = [0u8; 16];
        for n in [0, 1, 15, 16, 255, 0xdead_beef, usize::MAX] {
            assert_eq!(hex(n, &mut buf), format!("{n:x}").as_bytes());
        }
    }

    #[test]
    fn numbers_written_by_setvar() {
        let mut buf = [0u8; 21];
        for n in [0, 7, -7, 1234, -1000, i64::MAX, i64::MIN] {
            assert_eq!(signed_decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }
}
