//! `@rx`: Rust's `regex` (linear time) with ModSecurity's flags (`.` matches newlines, `$` only
//! at the end); a pattern it cannot compile (lookaround, backreferences) falls back to
//! `fancy-regex` with a bounded backtracking budget.

use super::prefilter::{self, ByteSet, Prefilter};
use regex_automata::meta::{self, Regex};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::Hir;

/// `TX:0`..`TX:9` of the last match.
#[derive(Debug, Default, Clone)]
pub struct Captures {
    pub groups: Vec<Vec<u8>>,
}

#[derive(Debug)]
pub enum Rx {
    /// `^.*$` and the like: with `.` matching newlines, every value matches whole (CRS 920450
    /// captures each header name so), with no regex to run.
    Everything,
    Fast(Regex, Option<Prefilter>),
    Fallback(Box<fancy_regex::Regex>),
}

impl Rx {
    pub fn new(pattern: &str) -> Result<Rx, String> {
        if matches!(pattern, "^.*$" | "^.*" | ".*$" | ".*") {
            return Ok(Rx::Everything);
        }
        // Byte semantics, as ModSecurity's PCRE (no UTF mode): `\x{e2}` is the byte 0xE2,
        // `.` any byte, `(?i)` and `\w` ASCII. A pattern that needs Unicode mode gets it.
        let fast = |p: &str| {
            let bytes = short_hex_escapes(p);
            let in_mode = |unicode: bool| {
                let p = if unicode { p } else { &bytes };
                // Parsed once for the regex, its literal search and its byte-set test.
                let hir = prefilter::parse(p, unicode)?;
                build(&hir).map(|r| Rx::Fast(r, Prefilter::of_hir(&hir)))
            };
            in_mode(false).or_else(|_| in_mode(true))
        };
        let fast_err = match fast(pattern) {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        let translated = from_pcre(pattern);
        if let Ok(r) = fast(&translated) {
            return Ok(r);
        }
        fancy_regex::RegexBuilder::new(&format!("(?s){translated}"))
            .backtrack_limit(100_000)
            .build()
            .map(|r| Rx::Fallback(Box::new(r)))
            .map_err(|e| format!("@rx pattern does not compile ({fast_err}; fallback: {e})"))
    }

    /// Whether a value of this length and these bytes may match at all.
    pub fn admits(&self, len: usize, bytes: &ByteSet) -> bool {
        match self {
            Rx::Fast(_, Some(p)) => p.admits(len, bytes),
            _ => true,
        }
    }

    pub fn prefilter(&self) -> Option<&Prefilter> {
        match self {
            Rx::Fast(_, p) => p.as_ref(),
            _ => None,
        }
    }

    /// Whether the pattern has a [`Prefilter`] worth a value's [`ByteSet`].
    pub fn prefilters(&self) -> bool {
        matches!(self, Rx::Fast(_, Some(_)))
    }

    pub fn matches(&self, value: &[u8], captures: Option<&mut Captures>) -> bool {
        match self {
            Rx::Everything => {
                if let Some(out) = captures {
                    out.groups = vec![value.to_vec()];
                }
                true
            }
            Rx::Fast(r, _) => match captures {
                None => r.is_match(value),
                // Without groups of its own, the match is all there is to capture (`find`
                // costs far less than `captures`).
                Some(out) if r.captures_len() == 1 => match r.find(value) {
                    Some(m) => {
                        out.groups = vec![value[m.range()].to_vec()];
                        true
                    }
                    None => false,
                },
                // Most values do not match: only a match pays for capture groups.
                Some(_) if !r.is_match(value) => false,
                Some(out) => {
                    let mut c = r.create_captures();
                    r.captures(value, &mut c);
                    if !c.is_match() {
                        return false;
                    }
                    out.groups = (0..c.group_len().min(10))
                        .map(|i| {
                            c.get_group(i)
                                .map(|m| value[m.range()].to_vec())
                                .unwrap_or_default()
                        })
                        .collect();
                    true
                }
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

/// A parsed pattern as `regex::bytes` builds it (leftmost-first, no empty matches kept off
/// UTF-8 boundaries).
fn build(hir: &Hir) -> Result<Regex, String> {
    meta::Builder::new()
        .configure(
            Regex::config()
                .utf8_empty(false)
                .auto_prefilter(worth_a_prefilter(hir))
                .nfa_size_limit(Some(256 << 20))
                .hybrid_cache_capacity(64 << 20),
        )
        .build_from_hir(hir)
        .map_err(|e| e.to_string())
}

/// Whether the regex's own literal search is worth running before its automaton: not when
/// a match may start with a single byte (`/` or `\` for 930100). The search then stops at
/// every occurrence of it to run the automaton there, which costs more than the automaton
/// run over the whole value (930100 on a clean GET's headers: 9.8 k instructions with the
/// search, 6.1 k without), and a value without any such byte never gets here: the rule's
/// [`Prefilter`] rules it out first.
fn worth_a_prefilter(hir: &Hir) -> bool {
    let prefixes = Extractor::new().kind(ExtractKind::Prefix).extract(hir);
    prefixes.min_literal_len().is_none_or(|n| n > 1)
}

/// `\x{e2}` → `\xe2`: in Rust's byte mode only the two-digit form names a raw byte.
fn short_hex_escapes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let esc = &rest[i..];
        if let Some(body) = esc.strip_prefix("\\x{") {
            if let Some(end) = body.find('}') {
                let digits = &body[..end];
                if (1..=2).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    out.push_str(&format!("\\x{digits:0>2}"));
                    rest = &body[end + 1..];
                    continue;
                }
            }
        }
        // Copy the backslash and the character it escapes.
        let mut chars = esc.chars();
        out.push(chars.next().unwrap_or('\\'));
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out.push_str(rest);
    out
}

/// PCRE spellings Rust's engines read differently: a `[` inside a class is a literal there
/// (a nested class here), and possessive quantifiers (`*+`, `++`, `?+`) are read as greedy,
/// which matches the same inputs for the patterns rule sets use.
fn from_pcre(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    let mut class_start = false;
    let mut after_quantifier = false;
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(c);
            if let Some(n) = chars.next() {
                out.push(n);
            }
            after_quantifier = false;
            class_start = false;
            continue;
        }
        if in_class {
            match c {
                ']' if !class_start => in_class = false,
                '[' if chars.peek() == Some(&':') => {
                    // A POSIX class such as [:alpha:] stays as it is.
                    out.push(c);
                    for n in chars.by_ref() {
                        out.push(n);
                        if n == ']' {
                            break;
                        }
                    }
                    class_start = false;
                    continue;
                }
                '[' => {
                    out.push_str("\\[");
                    class_start = false;
                    continue;
                }
                '^' if class_start => {
                    out.push(c);
                    continue;
                }
                _ => {}
            }
            class_start = false;
            out.push(c);
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                class_start = true;
                out.push(c);
                after_quantifier = false;
            }
            '+' if after_quantifier => after_quantifier = false,
            '*' | '+' | '?' | '}' => {
                let is_quantifier = !(c == '?' && out.ends_with('('));
                out.push(c);
                after_quantifier = is_quantifier;
            }
            _ => {
                out.push(c);
                after_quantifier = false;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The patterns taken for "everything" match and capture what the regex itself does.
    #[test]
    fn match_everything_patterns_agree_with_the_regex() {
        let values: [&[u8]; 5] = [b"", b"host", b"a\nb\n", b"\n", b"\xff\x00x"];
        for p in ["^.*$", "^.*", ".*$", ".*"] {
            let short = Rx::new(p).unwrap();
            assert!(matches!(short, Rx::Everything));
            let full = build(&prefilter::parse(p, false).unwrap()).unwrap();
            for v in values {
                let (mut a, mut b) = (Captures::default(), Captures::default());
                assert!(short.matches(v, Some(&mut a)));
                assert!(Rx::Fast(full.clone(), None).matches(v, Some(&mut b)));
                assert_eq!(a.groups, b.groups, "{p} on {v:?}");
            }
        }
        assert!(!matches!(Rx::new("^.*x$").unwrap(), Rx::Everything));
    }

    #[test]
    fn a_literal_search_only_for_literals_longer_than_a_byte() {
        let worth_a_prefilter = |p: &str| worth_a_prefilter(&prefilter::parse(p, false).unwrap());
        assert!(!worth_a_prefilter(r"[/\x5c]\w+"));
        assert!(!worth_a_prefilter(r"[<>]\w+|%3c"));
        assert!(worth_a_prefilter(r"java\.lang\.(?:runtime|processbuilder)"));
        // Too many first bytes to search for: the regex decides alone.
        assert!(worth_a_prefilter(r"\w+="));
        assert!(!worth_a_prefilter(r"\d+"));
        // Either way the verdict is the regex's.
        for p in [r"(?:^|[/;\x5c])\.{2,3}[/;\x5c]", r"java\.lang"] {
            let r = Rx::new(p).unwrap();
            assert!(r.matches(b"a/../b java.lang", None));
            assert!(!r.matches(b"a/./b java-lang", None));
        }
    }

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
        // No groups of its own: the match alone.
        assert!(Rx::new(r"\d+-\d+")
            .unwrap()
            .matches(b"x 12-34 y", Some(&mut c)));
        assert_eq!(c.groups, [b"12-34".to_vec()]);
        assert!(!Rx::new(r"\d-").unwrap().matches(b"x", Some(&mut c)));
        assert!(Rx::new("(").is_err());
        // Bytes, not code points: the UTF-8 of U+2018 is e2 80 98.
        let q = Rx::new(r"\x{e2}\x80[\x98\x99]").unwrap();
        assert!(q.matches("a\u{2018}b".as_bytes(), None));
        let crs = Rx::new(r"((?:(?:[!-\+\-:->@\[\]\^`\{-~]|\x{c2}\x{b4}|\x{e2}\x80[\x98\x99])[^!-\+\-:->@\[\]\^`\{-~]*?){2})").unwrap();
        assert!(crs.matches(b"\xe2\x80\x98 -", None));
        // PCRE: `[` inside a class is literal; `*+` is possessive.
        assert_eq!(from_pcre(r"[^a[\]b]+\s*+x"), r"[^a\[\]b]+\s*x");
        let pcre = Rx::new(r#"^[^"(),/:;<=>?![\x5c\]{}]+\s*+;"#).unwrap();
        assert!(pcre.matches(b"text ;", None) && !pcre.matches(b"te[xt;", None));
    }
}
