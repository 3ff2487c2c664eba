//! The variables of one transaction: one slot per SecLang variable, each a list of
//! `(key, value)` (a scalar has one entry keyed by its own name).

use super::seclang::names::VARIABLES;

/// The slot of a variable name; a map built once, since filling a transaction looks up
/// dozens of names per request.
pub fn slot(name: &str) -> usize {
    static SLOTS: std::sync::OnceLock<std::collections::HashMap<&'static str, usize>> =
        std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(|| VARIABLES.iter().enumerate().map(|(i, v)| (*v, i)).collect());
    *slots
        .get(name)
        .unwrap_or_else(|| panic!("{name} is a known variable"))
}

#[derive(Debug, Clone)]
pub struct Collections {
    slots: Vec<Vec<(String, Vec<u8>)>>,
}

impl Default for Collections {
    fn default() -> Self {
        Collections {
            slots: vec![Vec::new(); VARIABLES.len()],
        }
    }
}

impl Collections {
    pub fn get(&self, slot: usize) -> &[(String, Vec<u8>)] {
        &self.slots[slot]
    }

    pub fn set_scalar(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        let s = slot(name);
        self.slots[s] = vec![(name.to_string(), value.into())];
    }

    pub fn add(&mut self, name: &str, key: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.slots[slot(name)].push((key.into(), value.into()));
    }

    pub fn clear(&mut self, name: &str) {
        self.slots[slot(name)].clear();
    }

    pub fn clear_slot(&mut self, slot: usize) {
        self.slots[slot].clear();
    }

    pub fn set_slot(&mut self, slot: usize, name: &str, value: Vec<u8>) {
        let entries = &mut self.slots[slot];
        entries.clear();
        entries.push((name.to_string(), value));
    }

    pub fn add_slot(&mut self, slot: usize, key: String, value: Vec<u8>) {
        self.slots[slot].push((key, value));
    }

    /// The value under `key` (case-insensitive), or the first value when `key` is `None`.
    pub fn value(&self, slot: usize, key: Option<&str>) -> Option<&[u8]> {
        let entries = &self.slots[slot];
        match key {
            None => entries.first().map(|(_, v)| v.as_slice()),
            Some(k) => entries
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_slice()),
        }
    }

    /// Sets `key` in a keyed collection (TX and the like), replacing an existing value.
    pub fn put(&mut self, slot: usize, key: &str, value: Vec<u8>) {
        let entries = &mut self.slots[slot];
        match entries
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
        {
            Some(e) => e.1 = value,
            None => entries.push((key.to_ascii_lowercase(), value)),
        }
    }

    pub fn remove(&mut self, slot: usize, key: &str) {
        self.slots[slot].retain(|(k, _)| !k.eq_ignore_ascii_case(key));
    }
}
