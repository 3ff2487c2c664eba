//! The variables of one transaction: one slot per SecLang variable, each a list of
//! `(key, value)` (a scalar has one entry keyed by its own name).
//!
//! The persistent-style collections `setvar` writes (TX above all: the CRS keeps a hundred
//! settings and scores there, and reads them in most rules) also keep a key → entry index, so
//! reading `tx.x` does not scan them; so do the headers, while no header repeats. A key the
//! rules name ([`KnownKey`]) is looked up in TX once, its entry remembered while TX keeps
//! its order.

use super::seclang::names::VARIABLES;
use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{LazyLock, Mutex};

/// The slot of a variable name; a map built once, since filling a transaction looks up
/// dozens of names per request.
pub fn slot(name: &str) -> usize {
    static SLOTS: std::sync::OnceLock<FastMap<&'static str, usize>> = std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(|| VARIABLES.iter().enumerate().map(|(i, v)| (*v, i)).collect());
    *slots
        .get(name)
        .unwrap_or_else(|| panic!("{name} is a known variable"))
}

/// The slot of a variable name known when compiling: `var_slot!("ARGS")` costs nothing when
/// the request runs, and a misspelt name does not compile.
macro_rules! var_slot {
    ($name:literal) => {{
        const SLOT: usize = $crate::waf::collections::slot_of($name);
        SLOT
    }};
}
pub(crate) use var_slot;

/// [`slot`] at compile time.
pub const fn slot_of(name: &str) -> usize {
    let mut i = 0;
    while i < VARIABLES.len() {
        let (a, b) = (VARIABLES[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("not a SecLang variable")
}

/// The collections keyed by name that `setvar` writes.
const KEYED: [&str; 6] = ["TX", "IP", "GLOBAL", "SESSION", "USER", "RESOURCE"];

/// The collections filled from the request whose keys rules name one by one
/// (`REQUEST_HEADERS:Content-Type`, some fifty times in a CRS request): indexed as well, as
/// long as no key repeats (a header sent twice); a slot with a repeated key is scanned.
const NAMED: [&str; 2] = ["REQUEST_HEADERS", "RESPONSE_HEADERS"];

/// A small fast hasher for the transaction's own tables (splitmix64's finalizer over 8-byte
/// words): SipHash costs more than the lookups it serves. Keys come from the rules and the
/// request, but a table lives for one transaction and holds few entries.
#[derive(Default)]
pub struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(self.0 ^ u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, x: u64) {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        self.0 = z ^ (z >> 31);
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Mix>>;

/// A hasher for keys that are [`key_hash`]es already: mixing them again buys nothing.
#[derive(Default)]
pub struct Premixed(u64);

impl Hasher for Premixed {
    fn finish(&self) -> u64 {
        self.0
    }

    /// Anything but a `u64` is mixed as [`Mix`] would (an index only ever hashes `u64`s).
    fn write(&mut self, bytes: &[u8]) {
        let mut mix = Mix(self.0);
        mix.write(bytes);
        self.0 = mix.finish();
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

/// A keyed slot's index: [`key_hash`] of the lower-case key → index of its entry.
pub type KeyIndex = HashMap<u64, u32, BuildHasherDefault<Premixed>>;

/// The hash of a key, lower-cased on the fly, eight bytes at a time.
pub fn key_hash(key: &str) -> u64 {
    let mut h = Mix::default();
    let mut chunks = key.as_bytes().chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        h.write_u64(h.0 ^ lower_word(word));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h.write_u64(h.0 ^ lower_word(u64::from_le_bytes(word)));
    }
    h.write_u64(h.0 ^ key.len() as u64);
    h.finish()
}

/// A key named in the rules (`TX:blocking_paranoia_level`, `%{tx.critical_anomaly_score}`,
/// `setvar:tx.rce_score=...`): its [`key_hash`] and a number given to it when the rules are
/// compiled, the same for every rule (and rule set) naming it. A transaction remembers
/// where it found each numbered key in TX, so the hundred-odd reads of a few keys a CRS
/// request makes cost one look at an array after the first instead of a hash lookup each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownKey {
    pub hash: u64,
    pub id: u32,
}

/// Every key numbered so far, by lower-case text: a table of the process, filled at load.
static KNOWN: LazyLock<Mutex<FastMap<String, u32>>> = LazyLock::new(Default::default);
/// How many keys are numbered (the size a transaction's table of positions needs).
static KNOWN_COUNT: AtomicU32 = AtomicU32::new(0);

impl KnownKey {
    /// The number of a (lower-case) key, given the first time it is asked for.
    pub fn of(key: &str) -> KnownKey {
        let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
        let n = known.len() as u32;
        let id = *known.entry(key.to_string()).or_insert(n);
        KNOWN_COUNT.store(known.len() as u32, Ordering::Release);
        KnownKey {
            hash: key_hash(key),
            id,
        }
    }
}

/// Eight bytes ASCII-lower-cased at once (byte by byte when one is not ASCII).
fn lower_word(w: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    if w & HIGH != 0 {
        let mut b = w.to_le_bytes();
        b.make_ascii_lowercase();
        return u64::from_le_bytes(b);
    }
    // Per byte (all below 0x80, so no carry crosses bytes): bit 7 of b + 0x3f is set from
    // `A` up, bit 7 of b + 0x25 from `[` up.
    let upper = w.wrapping_add(0x3f3f_3f3f_3f3f_3f3f) & !w.wrapping_add(0x2525_2525_2525_2525);
    w | (upper & HIGH) >> 2
}

#[derive(Debug, Clone)]
pub struct Collections {
    slots: Vec<Vec<(String, Vec<u8>)>>,
    /// Per slot, bumped whenever an existing entry changes or goes (not when one is added):
    /// an entry's (slot, index, version) names one value for caches.
    versions: Vec<u32>,
    /// For the keyed collections: hash of the lower-case key → index of its first entry
    /// (a colliding key probes the next hash value).
    index: Vec<Option<KeyIndex>>,
    /// Per slot, whether a key is there twice (only [`NAMED`] slots may have one): the
    /// index then says where one entry is, not all.
    repeats: Vec<bool>,
    /// Entries of recycled slots, their buffers kept for the next push.
    spare: Vec<(String, Vec<u8>)>,
    /// Per [`KnownKey`] number, 1 + the index of its TX entry, or 0 when not looked up yet
    /// (or not there). An entry keeps its index until TX is emptied, restored or loses an
    /// entry, which empty this table.
    known: Vec<Cell<u32>>,
    kept: KeptTx,
}

/// TX as a set-up outcome left it, kept by a reset for the next transaction that restores
/// the same outcome: it then copies back only the entries rewritten since, not all of them
/// (a CRS outcome is some 150 entries; a request rewrites a handful).
#[derive(Debug, Clone, Default)]
struct KeptTx {
    /// The outcome's number (0: none) and how many entries it restored.
    from: u64,
    len: usize,
    /// Entries below `len` rewritten since the restore (repeats possible); `None` once TX
    /// was emptied or lost an entry.
    rewritten: Option<Vec<u32>>,
    /// Whether this transaction restored `from`.
    live: bool,
    /// TX at the end of the last transaction that restored `from`, cut to `len`.
    entries: Vec<(String, Vec<u8>)>,
}

impl KeptTx {
    fn note(&mut self, i: usize) {
        if let Some(r) = &mut self.rewritten {
            if i < self.len {
                r.push(i as u32);
            }
        }
    }
}

impl Default for Collections {
    fn default() -> Self {
        let mut index = vec![None; VARIABLES.len()];
        for name in KEYED.iter().chain(&NAMED) {
            index[slot(name)] = Some(KeyIndex::default());
        }
        // The CRS keeps over a hundred TX variables: room for them from the start.
        if let Some(tx) = &mut index[slot("TX")] {
            tx.reserve(256);
        }
        let mut slots = vec![Vec::new(); VARIABLES.len()];
        slots[slot("TX")].reserve(256);
        Collections {
            slots,
            versions: vec![0; VARIABLES.len()],
            index,
            repeats: vec![false; VARIABLES.len()],
            spare: Vec::new(),
            known: Vec::new(),
            kept: KeptTx::default(),
        }
    }
}

impl Collections {
    /// Collections with no slots at all, allocating nothing: a stand-in while a
    /// transaction's own are handed on.
    pub fn empty() -> Collections {
        Collections {
            slots: Vec::new(),
            versions: Vec::new(),
            index: Vec::new(),
            repeats: Vec::new(),
            spare: Vec::new(),
            known: Vec::new(),
            kept: KeptTx::default(),
        }
    }

    /// Room in the table of known positions for every key numbered so far (a rule set
    /// loaded since the last transaction may have numbered more).
    pub fn know_all_keys(&mut self) {
        let n = KNOWN_COUNT.load(Ordering::Acquire) as usize;
        if self.known.len() < n {
            self.known.resize(n, Cell::new(0));
        }
    }

    /// Forgets every known position (TX's entries moved or went).
    fn forget_known(&mut self, slot: usize) {
        if slot == TX {
            self.known.iter().for_each(|c| c.set(0));
        }
    }
}

const TX: usize = slot_of("TX");

enum Located {
    At(usize),
    /// Not there; the free hash for it in the index.
    Free(u64),
    Unindexed,
}

/// Where a key's entry is, when the slot can say without a scan.
pub enum Found {
    At(Option<usize>),
    /// The slot has no index: scan it.
    Scan,
}

impl Collections {
    pub fn get(&self, slot: usize) -> &[(String, Vec<u8>)] {
        &self.slots[slot]
    }

    pub fn version(&self, slot: usize) -> u32 {
        self.versions[slot]
    }

    fn changed(&mut self, slot: usize) {
        self.versions[slot] = self.versions[slot].wrapping_add(1);
    }

    /// The entry for `key` (case-insensitive) in an indexed slot.
    pub fn find(&self, slot: usize, key: &str) -> Found {
        self.find_hashed(slot, key, key_hash(key))
    }

    /// [`Self::find`] with the key's [`key_hash`] known.
    pub fn find_hashed(&self, slot: usize, key: &str, hash: u64) -> Found {
        // Rules ask empty variables for keys at every request (`XML:/*` outside an XML
        // body, seventy times): no index to probe for those.
        if self.slots[slot].is_empty() {
            return Found::At(None);
        }
        match self.locate(slot, key, hash) {
            Located::At(i) => Found::At(Some(i)),
            Located::Free(_) => Found::At(None),
            Located::Unindexed => Found::Scan,
        }
    }

    /// [`Self::find_hashed`] for a key named in the rules: in TX, where it was found before
    /// is remembered.
    #[inline]
    pub fn find_known(&self, slot: usize, key: &str, known: KnownKey) -> Found {
        if slot == TX {
            if let Some(at) = self.known.get(known.id as usize) {
                if at.get() != 0 {
                    return Found::At(Some(at.get() as usize - 1));
                }
                let found = self.find_hashed(slot, key, known.hash);
                if let Found::At(Some(i)) = found {
                    at.set(i as u32 + 1);
                }
                return found;
            }
        }
        self.find_hashed(slot, key, known.hash)
    }

    /// TX's value for the key numbered `id`, when this transaction has found that key since
    /// TX last moved; `None` says nothing of whether it is there ([`Self::find_known`] does).
    #[inline]
    pub fn remembered_tx(&self, id: u32) -> Option<&[u8]> {
        let at = self.known.get(id as usize)?.get();
        (at != 0).then(|| self.slots[TX][at as usize - 1].1.as_slice())
    }

    /// Where `key` is in an indexed slot, or the hash it would be indexed under.
    fn locate(&self, slot: usize, key: &str, hash: u64) -> Located {
        let Some(ix) = &self.index[slot] else {
            return Located::Unindexed;
        };
        if self.repeats[slot] {
            return Located::Unindexed;
        }
        let entries = &self.slots[slot];
        let mut h = hash;
        loop {
            match ix.get(&h) {
                None => return Located::Free(h),
                // Keys are mostly stored and asked for in lower case: the plain comparison
                // first.
                Some(&i)
                    if entries[i as usize].0 == key
                        || entries[i as usize].0.eq_ignore_ascii_case(key) =>
                {
                    return Located::At(i as usize)
                }
                Some(_) => h = h.wrapping_add(1),
            }
        }
    }

    /// Indexes entry `i` unless its key is there already.
    fn index_entry(&mut self, slot: usize, i: usize) {
        let entries = &self.slots[slot];
        let Some(ix) = &mut self.index[slot] else {
            return;
        };
        let key = &entries[i].0;
        let mut h = key_hash(key);
        loop {
            match ix.get(&h) {
                None => {
                    ix.insert(h, i as u32);
                    return;
                }
                Some(&j) if entries[j as usize].0.eq_ignore_ascii_case(key) => {
                    self.repeats[slot] = true;
                    return;
                }
                Some(_) => h = h.wrapping_add(1),
            }
        }
    }

    fn reindex(&mut self, slot: usize) {
        self.forget_known(slot);
        if slot == TX {
            self.kept.rewritten = None;
        }
        let Some(ix) = &mut self.index[slot] else {
            return;
        };
        ix.clear();
        self.repeats[slot] = false;
        for i in 0..self.slots[slot].len() {
            self.index_entry(slot, i);
        }
    }

    /// Sets a variable that has one value (`REQUEST_METHOD`), keyed by its own name.
    pub fn set_scalar(&mut self, slot: usize, value: impl AsRef<[u8]>) {
        self.set_slot_bytes(slot, VARIABLES[slot], value.as_ref());
    }

    /// Empties a slot; its entries' buffers go to [`Self::push`] (`MATCHED_VARS` is emptied
    /// and refilled for most rules).
    pub fn clear_slot(&mut self, slot: usize) {
        self.changed(slot);
        self.forget_known(slot);
        if slot == TX {
            self.kept.rewritten = None;
        }
        self.spare.append(&mut self.slots[slot]);
        if let Some(ix) = &mut self.index[slot] {
            ix.clear();
        }
        self.repeats[slot] = false;
    }

    /// Empties every slot for the next transaction, keeping the buffers (a CRS request
    /// fills a few hundred entries); big ones, and any beyond 256 KiB in all, go, so one
    /// large body does not stay resident.
    pub fn reset(&mut self) {
        const KEEP_BYTES: usize = 1 << 12;
        const KEEP_ENTRIES: usize = 1 << 11;
        const KEEP_TOTAL: usize = 1 << 18;
        let mut big = false;
        self.forget_known(TX);
        self.keep_tx(KEEP_BYTES);
        for slot in 0..self.slots.len() {
            if self.slots[slot].is_empty() {
                continue;
            }
            self.changed(slot);
            big |= self.slots[slot]
                .iter()
                .any(|(k, v)| k.capacity() > KEEP_BYTES || v.capacity() > KEEP_BYTES);
            self.spare.append(&mut self.slots[slot]);
            if let Some(ix) = &mut self.index[slot] {
                ix.clear();
            }
            self.repeats[slot] = false;
        }
        if big {
            self.spare
                .retain(|(k, v)| k.capacity() <= KEEP_BYTES && v.capacity() <= KEEP_BYTES);
        }
        // And no more than this in all: a rule set keeps a few dozen of these.
        let mut total = 0;
        let keep = self
            .spare
            .iter()
            .take(KEEP_ENTRIES)
            .take_while(|(k, v)| {
                total += k.capacity() + v.capacity();
                total <= KEEP_TOTAL
            })
            .count();
        self.spare.truncate(keep);
    }

    /// Keeps TX aside when this transaction restored it from an outcome and it still holds
    /// all of it (a request's additions go to the spares), unless one of its buffers is
    /// bigger than `keep_bytes`.
    fn keep_tx(&mut self, keep_bytes: usize) {
        let k = &mut self.kept;
        let tx = &mut self.slots[TX];
        self.spare.append(&mut k.entries);
        if k.live && k.rewritten.is_some() && tx.len() >= k.len {
            self.spare.extend(tx.drain(k.len..));
            let small = tx
                .iter()
                .all(|(key, v)| key.capacity() <= keep_bytes && v.capacity() <= keep_bytes);
            if small {
                k.entries = std::mem::take(tx);
                self.versions[TX] = self.versions[TX].wrapping_add(1);
                if let Some(ix) = &mut self.index[TX] {
                    ix.clear();
                }
            }
        }
        if k.entries.is_empty() {
            k.from = 0;
        }
        k.live = false;
    }

    /// [`Self::restore_slot`] for TX from set-up outcome number `from` (numbers start at 1):
    /// when the last transaction on these buffers restored the same outcome, its TX is taken
    /// back and only the entries it rewrote are copied again.
    pub fn restore_tx(&mut self, from: u64, entries: &[(String, Vec<u8>)], index: &KeyIndex) {
        let k = &mut self.kept;
        let reuse = k.from == from && k.len == entries.len() && k.entries.len() == k.len;
        let rewritten = k.rewritten.take();
        let kept = std::mem::take(&mut k.entries);
        self.clear_slot(TX);
        match rewritten {
            Some(mut rewritten) if reuse => {
                self.slots[TX] = kept;
                for &i in &rewritten {
                    let i = i as usize;
                    self.slots[TX][i].1.clone_from(&entries[i].1);
                }
                rewritten.clear();
                self.kept.rewritten = Some(rewritten);
            }
            _ => {
                self.spare.extend(kept);
                for (key, v) in entries {
                    let e = self.entry(key, v);
                    self.slots[TX].push(e);
                }
                self.kept.rewritten = Some(Vec::new());
            }
        }
        if let Some(ix) = &mut self.index[TX] {
            ix.clone_from(index);
        }
        self.kept.from = from;
        self.kept.len = entries.len();
        self.kept.live = true;
    }

    /// An entry holding copies of `key` and `value`, in a recycled entry's buffers if any.
    fn entry(&mut self, key: &str, value: &[u8]) -> (String, Vec<u8>) {
        let mut e = self.spare.pop().unwrap_or_default();
        e.0.clear();
        e.0.push_str(key);
        e.1.clear();
        e.1.extend_from_slice(value);
        e
    }

    /// Appends an entry (a keyed collection indexes it unless its key is there already).
    pub fn push(&mut self, slot: usize, key: &str, value: &[u8]) {
        let e = self.entry(key, value);
        self.slots[slot].push(e);
        self.index_entry(slot, self.slots[slot].len() - 1);
    }

    /// The key index of a slot, to hand to [`Self::restore_slot`].
    pub fn index_of(&self, slot: usize) -> Option<&KeyIndex> {
        self.index[slot].as_ref()
    }

    /// Replaces a slot's entries by copies of `entries` (unique keys, as an indexed slot
    /// holds them), with the index they had elsewhere: copied, not rebuilt.
    pub fn restore_slot(
        &mut self,
        slot: usize,
        entries: &[(String, Vec<u8>)],
        index: Option<&KeyIndex>,
    ) {
        self.clear_slot(slot);
        for (k, v) in entries {
            let e = self.entry(k, v);
            self.slots[slot].push(e);
        }
        match (&mut self.index[slot], index) {
            (Some(ix), Some(from)) => ix.clone_from(from),
            _ => self.reindex(slot),
        }
    }

    /// Makes `value` the slot's only entry, under `name`, reusing its buffers (the
    /// `MATCHED_VAR` bookkeeping runs for every match).
    pub fn set_slot_bytes(&mut self, slot: usize, name: &str, value: &[u8]) {
        self.changed(slot);
        match self.slots[slot].as_mut_slice() {
            [(k, v)] if k == name => {
                v.clear();
                v.extend_from_slice(value);
                if slot == TX {
                    self.kept.note(0);
                }
            }
            _ => {
                self.clear_slot(slot);
                self.push(slot, name, value);
            }
        }
    }

    /// The value under `key` (case-insensitive), or the first value when `key` is `None`.
    pub fn value(&self, slot: usize, key: Option<&str>) -> Option<&[u8]> {
        self.value_hashed(slot, key.map(|k| (k, key_hash(k))))
    }

    /// [`Self::value`] with the key's [`key_hash`] known.
    pub fn value_hashed(&self, slot: usize, key: Option<(&str, u64)>) -> Option<&[u8]> {
        let entries = &self.slots[slot];
        match key {
            None => entries.first().map(|(_, v)| v.as_slice()),
            Some((k, h)) => match self.find_hashed(slot, k, h) {
                Found::At(i) => i.map(|i| entries[i].1.as_slice()),
                Found::Scan => entries
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.as_slice()),
            },
        }
    }

    /// [`Self::value_hashed`] for a key named in the rules.
    pub fn value_known(&self, slot: usize, key: Option<(&str, KnownKey)>) -> Option<&[u8]> {
        match key {
            Some((k, known)) if slot == TX => match self.find_known(slot, k, known) {
                Found::At(i) => i.map(|i| self.slots[slot][i].1.as_slice()),
                Found::Scan => self.value_hashed(slot, Some((k, known.hash))),
            },
            _ => self.value_hashed(slot, key.map(|(k, known)| (k, known.hash))),
        }
    }

    /// Sets `key` in a keyed collection (TX and the like), replacing an existing value.
    pub fn put(&mut self, slot: usize, key: &str, value: &[u8]) {
        self.put_bytes(slot, key, key_hash(key), value);
    }

    /// [`Self::put`] with the key's [`key_hash`] known: an existing entry's buffer is
    /// rewritten, a new key (stored lower-case) takes a recycled entry. Returns the entry's
    /// index.
    pub fn put_bytes(&mut self, slot: usize, key: &str, hash: u64, value: &[u8]) -> usize {
        let at = match self.locate(slot, key, hash) {
            Located::At(i) => Some(i),
            Located::Free(h) => {
                let mut e = self.entry(key, value);
                e.0.make_ascii_lowercase();
                let entries = &mut self.slots[slot];
                entries.push(e);
                if let Some(ix) = &mut self.index[slot] {
                    ix.insert(h, entries.len() as u32 - 1);
                }
                return entries.len() - 1;
            }
            Located::Unindexed => self.slots[slot]
                .iter()
                .position(|(k, _)| k.eq_ignore_ascii_case(key)),
        };
        match at {
            Some(i) => {
                self.rewrite(slot, i, value);
                i
            }
            None => {
                let mut e = self.entry(key, value);
                e.0.make_ascii_lowercase();
                self.slots[slot].push(e);
                self.slots[slot].len() - 1
            }
        }
    }

    /// [`Self::put_bytes`] for a key named in the rules.
    pub fn put_known(&mut self, slot: usize, key: &str, known: KnownKey, value: &[u8]) {
        let at = match self.known.get(known.id as usize) {
            Some(at) if slot == TX => at.get(),
            _ => {
                self.put_bytes(slot, key, known.hash, value);
                return;
            }
        };
        if at != 0 {
            return self.rewrite(slot, at as usize - 1, value);
        }
        let i = self.put_bytes(slot, key, known.hash, value);
        self.known[known.id as usize].set(i as u32 + 1);
    }

    /// Entry `i`'s value becomes `value`, in its own buffer.
    fn rewrite(&mut self, slot: usize, i: usize, value: &[u8]) {
        self.changed(slot);
        if slot == TX {
            self.kept.note(i);
        }
        let old = &mut self.slots[slot][i].1;
        old.clear();
        old.extend_from_slice(value);
    }

    pub fn remove(&mut self, slot: usize, key: &str) {
        self.changed(slot);
        self.slots[slot].retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self.reindex(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_collections_find_keys_in_any_case_and_survive_removal() {
        let mut c = Collections::default();
        let tx = slot("TX");
        c.put(tx, "Score", b"1");
        c.put(tx, "other", b"2");
        c.put(tx, "SCORE", b"3");
        assert_eq!(c.get(tx).len(), 2);
        assert_eq!(c.value(tx, Some("score")), Some(&b"3"[..]));
        c.remove(tx, "score");
        assert_eq!(c.value(tx, Some("Score")), None);
        assert_eq!(c.value(tx, Some("OTHER")), Some(&b"2"[..]));
        c.clear_slot(tx);
        assert_eq!(c.value(tx, Some("other")), None);
    }

    #[test]
    fn known_keys_are_found_where_their_entries_are_after_others_move_or_go() {
        let mut c = Collections::default();
        let tx = slot("TX");
        let (a, b) = (KnownKey::of("known_a"), KnownKey::of("known_b"));
        c.know_all_keys();
        fn value<'c>(c: &'c Collections, k: &str, known: KnownKey) -> Option<&'c [u8]> {
            c.value_known(slot("TX"), Some((k, known)))
        }
        c.put_known(tx, "known_a", a, b"1");
        c.put(tx, "other", b"x");
        c.put_known(tx, "known_b", b, b"2");
        assert_eq!(value(&c, "known_b", b), Some(&b"2"[..]));
        // known_b moves down one entry.
        c.remove(tx, "known_a");
        assert_eq!(value(&c, "known_b", b), Some(&b"2"[..]));
        assert_eq!(value(&c, "known_a", a), None);
        // Set by its text (a macro-built key), found by its number; and rewritten by it.
        c.put(tx, "KNOWN_A", b"3");
        assert_eq!(value(&c, "known_a", a), Some(&b"3"[..]));
        c.put_known(tx, "known_a", a, b"4");
        assert_eq!(c.value(tx, Some("known_a")), Some(&b"4"[..]));
        assert_eq!(c.get(tx).len(), 3);
        // Restored in another order, and emptied for the next transaction.
        let mut entries = c.get(tx).to_vec();
        entries.reverse();
        c.restore_slot(tx, &entries, None);
        assert_eq!(value(&c, "known_b", b), Some(&b"2"[..]));
        assert_eq!(value(&c, "known_a", a), Some(&b"4"[..]));
        c.reset();
        assert_eq!(value(&c, "known_a", a), None);
        c.put(tx, "other", b"y");
        c.put(tx, "known_b", b"5");
        assert_eq!(value(&c, "known_b", b), Some(&b"5"[..]));
    }

    #[test]
    fn a_kept_tx_restores_to_the_outcome_whatever_the_last_transaction_did() {
        let tx = slot("TX");
        let mut from = Collections::default();
        for i in 0..20 {
            from.put(tx, &format!("k{i}"), format!("v{i}").as_bytes());
        }
        let (outcome, index) = (from.get(tx).to_vec(), from.index_of(tx).unwrap().clone());
        let mut c = Collections::default();
        let same = |c: &Collections| {
            assert_eq!(c.get(tx), outcome.as_slice());
            for (k, v) in &outcome {
                assert_eq!(c.value(tx, Some(k)), Some(v.as_slice()), "{k}");
            }
        };
        // A transaction that rewrites, adds and reads, then one that restores again.
        c.put(tx, "k3", b"start");
        c.restore_tx(7, &outcome, &index);
        same(&c);
        c.put(tx, "k3", b"changed");
        c.put(tx, "K19", b"changed too");
        c.put(tx, "new", b"added");
        c.reset();
        assert!(c.get(tx).is_empty());
        assert_eq!(c.value(tx, Some("k3")), None);
        c.restore_tx(7, &outcome, &index);
        same(&c);
        assert_eq!(c.value(tx, Some("new")), None);
        // One that builds TX itself in between, and one that loses an entry.
        c.reset();
        c.put(tx, "k1", b"own");
        c.put(tx, "k2", b"own");
        c.reset();
        c.restore_tx(7, &outcome, &index);
        same(&c);
        c.remove(tx, "k5");
        c.reset();
        c.restore_tx(7, &outcome, &index);
        same(&c);
        // Another outcome with the same number of entries.
        let other: Vec<_> = outcome
            .iter()
            .map(|(k, _)| (k.clone(), b"x".to_vec()))
            .collect();
        c.put(tx, "k0", b"y");
        c.reset();
        c.restore_tx(8, &other, &index);
        assert_eq!(c.get(tx), other.as_slice());
    }

    #[test]
    fn keys_hash_alike_in_any_case() {
        for key in [
            "a",
            "Score",
            "REQUEST_HEADERS",
            "x-Forwarded-For-Header",
            "@[`{AZaz",
            "Ünï",
        ] {
            assert_eq!(key_hash(key), key_hash(&key.to_ascii_lowercase()), "{key}");
            assert_eq!(key_hash(key), key_hash(&key.to_ascii_uppercase()), "{key}");
        }
        assert_ne!(key_hash("ab"), key_hash("ac"));
        for b in 0..=255u8 {
            let w = u64::from_le_bytes([b; 8]);
            assert_eq!(
                lower_word(w),
                u64::from_le_bytes([b.to_ascii_lowercase(); 8]),
                "{b}"
            );
        }
    }

    #[test]
    fn a_reset_keeps_small_buffers_and_no_more_than_its_budget() {
        let mut c = Collections::default();
        let args = slot("ARGS");
        let big = vec![b'x'; 1 << 13];
        c.push(args, "big", &big);
        for i in 0..400 {
            c.push(args, &format!("k{i}"), &[b'v'; 1000]);
        }
        c.reset();
        assert!(c.get(args).is_empty());
        let kept: usize = c
            .spare
            .iter()
            .map(|(k, v)| k.capacity() + v.capacity())
            .sum();
        assert!(kept <= 1 << 18, "{kept}");
        assert!(c.spare.iter().all(|(_, v)| v.capacity() < 1 << 13));
        assert!(c.spare.len() > 200, "{}", c.spare.len());
        // Recycled entries hold what is pushed, not what they held.
        c.push(args, "a", b"1");
        assert_eq!(c.get(args), [("a".to_string(), b"1".to_vec())]);
    }

    #[test]
    fn versions_move_when_an_entry_changes_not_when_one_is_added() {
        let mut c = Collections::default();
        let args = slot("ARGS");
        let v0 = c.version(args);
        c.push(args, "a", b"1");
        assert_eq!(c.version(args), v0);
        c.clear_slot(args);
        assert_ne!(c.version(args), v0);
        let m = slot("MATCHED_VAR");
        c.set_slot_bytes(m, "MATCHED_VAR", b"x");
        let v1 = c.version(m);
        c.set_slot_bytes(m, "MATCHED_VAR", b"yy");
        assert_ne!(c.version(m), v1);
        assert_eq!(c.value(m, None), Some(&b"yy"[..]));
    }
}
