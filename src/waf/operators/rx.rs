//! `@rx`: Rust's `regex` (linear time) with ModSecurity's flags (`.` matches newlines, `$` only
//! at the end); a pattern it cannot compile (lookaround, backreferences) falls back to
//! `fancy-regex` with a bounded backtracking budget.

use regex::bytes::{Regex, RegexBuilder};

/// `TX:0`..`TX:9` of the last match.
#[derive(Debug, Default, Clone)]
pub struct Captures {
    pub groups: Vec<Vec<u8>>,
}

#[derive(Debug)]
pub enum Rx {
    Fast(Regex),
    Fallback(Box<fancy_regex::Regex>),
}

impl Rx {
    pub fn new(pattern: &str) -> Result<Rx, String> {
        let fast = RegexBuilder::new(pattern)
            .dot_matches_new_line(true)
            .size_limit(256 << 20)
            .dfa_size_limit(64 << 20)
            .build();
        match fast {
            Ok(r) => Ok(Rx::Fast(r)),
            Err(fast_err) => fancy_regex::RegexBuilder::new(&format!("(?s){pattern}"))
                .backtrack_limit(100_000)
                .build()
                .map(|r| Rx::Fallback(Box::new(r)))
                .map_err(|e| format!("@rx pattern does not compile ({fast_err}; fallback: {e})")),
        }
    }

    pub fn matches(&self, value: &[u8], captures: Option<&mut Captures>) -> bool {
        match self {
            Rx::Fast(r) => match captures {
                None => r.is_match(value),
                Some(out) => match r.captures(value) {
                    Some(c) => {
                        out.groups = c
                            .iter()
                            .take(10)
                            .map(|m| m.map(|m| m.as_bytes().to_vec()).unwrap_or_default())
                            .collect();
                        true
                    }
                    None => false,
                },
            },
            Rx::Fallback(r) => {
                let text = String::from_utf8_lossy(value);
                match r.captures(&text) {
                    Ok(Some(c)) => {
                        if let Some(out) = captures {
                            out.groups = c
                                .iter()
                                .take(10)
                                .map(|m| {
                                    m.map(|m| m.as_str().as_bytes().to_vec())
                                        .unwrap_or_default()
                                })
                                .collect();
                        }
                        true
                    }
                    // A pattern that runs out of budget does not match (and cannot hang).
                    _ => false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_fallback() {
        let r = Rx::new("a.b$").unwrap();
        assert!(r.matches(b"xa\nb", None));
        assert!(!r.matches(b"a\nb\n", None));
        let look = Rx::new(r"foo(?!bar)").unwrap();
        assert!(matches!(look, Rx::Fallback(_)));
        assert!(look.matches(b"foobaz", None) && !look.matches(b"foobar", None));
        let mut c = Captures::default();
        assert!(Rx::new(r"(\d+)-(\d+)")
            .unwrap()
            .matches(b"x 12-34", Some(&mut c)));
        assert_eq!(
            c.groups,
            [b"12-34".to_vec(), b"12".to_vec(), b"34".to_vec()]
        );
        assert!(Rx::new("(").is_err());
    }
}
