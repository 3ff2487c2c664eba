//! `@pm` / `@pmFromFile`: case-insensitive multi-pattern search with Aho-Corasick.

use super::prefilter::Prefilter;
use super::Captures;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::path::Path;

#[derive(Debug)]
pub struct Pm {
    ac: AhoCorasick,
    pub prefilter: Option<Prefilter>,
}

impl Pm {
    pub fn new<'a>(phrases: impl Iterator<Item = &'a str>) -> Result<Pm, String> {
        let phrases: Vec<&str> = phrases.filter(|p| !p.is_empty()).collect();
        if phrases.is_empty() {
            return Err("@pm needs at least one phrase".into());
        }
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .build(&phrases)
            .map_err(|e| format!("@pm: {e}"))?;
        Ok(Pm {
            ac,
            prefilter: Prefilter::for_phrases(&phrases),
        })
    }

    /// Phrases from files (one per line, `#` comments), relative to the rule file.
    pub fn from_files(arg: &str, dir: &Path) -> Result<Pm, String> {
        let mut text = String::new();
        for name in arg.split_whitespace() {
            let path = dir.join(name);
            let content = std::fs::read_to_string(&path)
                .map_err(|e| format!("@pmFromFile {}: {e}", path.display()))?;
            text.push_str(&content);
            text.push('\n');
        }
        Pm::new(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#')),
        )
    }

    pub fn matches(&self, value: &[u8], captures: Option<&mut Captures>) -> bool {
        match self.ac.find(value) {
            Some(m) => {
                if let Some(c) = captures {
                    c.groups = vec![value[m.start()..m.end()].to_vec()];
                }
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_phrases() {
        let pm = Pm::new("nikto sqlmap".split_whitespace()).unwrap();
        assert!(pm.matches(b"Mozilla (SQLMap/1.0)", None));
        assert!(!pm.matches(b"curl/8", None));
    }
}
