//! Numeric and string comparisons; the argument may hold `%{macros}`.

use crate::waf::macros::Template;
use memchr::memmem;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
    Streq,
    BeginsWith,
    EndsWith,
    Contains,
    ContainsWord,
    Within,
    Strmatch,
}

#[derive(Debug)]
pub struct Compare {
    kind: Kind,
    arg: Template,
    /// Whether `arg` has no macro: known here, a gate (`TX:DETECTION_PARANOIA_LEVEL "@lt 2"`)
    /// reads no further than this struct.
    literal: bool,
    /// A numeric comparison's literal argument (`@lt 2`), read once at load.
    pub(super) number: Option<i64>,
}

/// `v` compared to `n` by a numeric kind; `None` for the others.
#[inline]
fn numeric(kind: Kind, v: i64, n: i64) -> Option<bool> {
    Some(match kind {
        Kind::Eq => v == n,
        Kind::Ge => v >= n,
        Kind::Gt => v > n,
        Kind::Le => v <= n,
        Kind::Lt => v < n,
        _ => return None,
    })
}

/// A numeric comparison with a small literal argument (`@lt 2`), in a third of the room of
/// a [`Compare`]: what a rule's gate keeps to test a TX value without reading the rule.
#[derive(Debug, Clone, Copy)]
pub struct NumTest {
    kind: Kind,
    n: i32,
}

impl NumTest {
    #[inline]
    pub fn matches(&self, value: &[u8]) -> bool {
        numeric(self.kind, atoi(value), self.n as i64).unwrap_or(false)
    }
}

/// ModSecurity reads numbers like `atoi`: leading digits (with a sign), else 0.
pub fn atoi(s: &[u8]) -> i64 {
    let s = s.trim_ascii_start();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n: i64 = digits
        .iter()
        .take_while(|d| d.is_ascii_digit())
        .fold(0i64, |acc, d| {
            acc.saturating_mul(10).saturating_add((d - b'0') as i64)
        });
    if neg {
        -n
    } else {
        n
    }
}

impl Compare {
    pub fn new(name: &str, arg: &str) -> Result<Option<Compare>, String> {
        let kind = match name {
            "eq" => Kind::Eq,
            "ge" => Kind::Ge,
            "gt" => Kind::Gt,
            "le" => Kind::Le,
            "lt" => Kind::Lt,
            "streq" => Kind::Streq,
            "beginsWith" => Kind::BeginsWith,
            "endsWith" => Kind::EndsWith,
            "contains" => Kind::Contains,
            "containsWord" => Kind::ContainsWord,
            "within" => Kind::Within,
            "strmatch" => Kind::Strmatch,
            _ => return Ok(None),
        };
        let arg = Template::parse(arg);
        let numeric = matches!(kind, Kind::Eq | Kind::Ge | Kind::Gt | Kind::Le | Kind::Lt);
        let number = arg
            .literal()
            .filter(|_| numeric)
            .map(|l| atoi(l.as_bytes()));
        let literal = arg.literal().is_some();
        Ok(Some(Compare {
            kind,
            arg,
            literal,
            number,
        }))
    }

    /// The argument when it holds macros (the caller expands it once per rule evaluation).
    pub fn template(&self) -> Option<&Template> {
        (!self.literal).then_some(&self.arg)
    }

    /// The comparison as a [`NumTest`], when it is a numeric one (`number` is read for no
    /// other) with a literal argument that fits one.
    pub fn num_test(&self) -> Option<NumTest> {
        let n = i32::try_from(self.number?).ok()?;
        Some(NumTest { kind: self.kind, n })
    }

    /// `expanded` is the argument with its macros expanded (ignored for a literal one).
    pub fn matches(&self, value: &[u8], expanded: Option<&[u8]>) -> bool {
        // Numbers read at load: nothing of the argument to look at.
        if let Some(n) = self.number {
            if let Some(m) = numeric(self.kind, atoi(value), n) {
                return m;
            }
        }
        let arg: &[u8] = match self.arg.literal() {
            Some(l) => l.as_bytes(),
            None => expanded.unwrap_or_default(),
        };
        let number = || atoi(arg);
        match self.kind {
            Kind::Eq => atoi(value) == number(),
            Kind::Ge => atoi(value) >= number(),
            Kind::Gt => atoi(value) > number(),
            Kind::Le => atoi(value) <= number(),
            Kind::Lt => atoi(value) < number(),
            Kind::Streq => value == arg,
            Kind::BeginsWith => value.starts_with(arg),
            Kind::EndsWith => value.ends_with(arg),
            Kind::Contains | Kind::Strmatch => find(value, arg),
            Kind::Within => !value.is_empty() && find(arg, value),
            Kind::ContainsWord => {
                let word =
                    |b: Option<&u8>| b.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
                let mut start = 0;
                while let Some(p) = memmem::find(&value[start..], arg) {
                    let at = start + p;
                    let before = at.checked_sub(1).and_then(|i| value.get(i));
                    if !word(before) && !word(value.get(at + arg.len())) {
                        return true;
                    }
                    start = at + 1;
                    if arg.is_empty() || start >= value.len() {
                        break;
                    }
                }
                false
            }
        }
    }
}

/// Whether `needle` occurs in `haystack`. A short haystack (a CRS list such as
/// `tx.restricted_headers_basic`) is searched from each occurrence of one byte of the needle:
/// building `memmem`'s searcher costs more than that whole scan. The byte is the needle's
/// first letter or digit: in `/proxy/ /if/ ...` the `/` the needle starts with is everywhere.
fn find(haystack: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    if haystack.len() > 512 {
        return memmem::find(haystack, needle).is_some();
    }
    let at = needle
        .iter()
        .position(u8::is_ascii_alphanumeric)
        .unwrap_or(0);
    let last = match haystack.len().checked_sub(needle.len() - at) {
        Some(last) if last >= at => last,
        _ => return false,
    };
    memchr::memchr_iter(needle[at], &haystack[at..=last]).any(|i| haystack[i..].starts_with(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, arg: &str, value: &str) -> bool {
        Compare::new(name, arg)
            .unwrap()
            .unwrap()
            .matches(value.as_bytes(), Some(b"5"))
    }

    /// A literal number read at load compares as the same number expanded from a macro.
    #[test]
    fn a_number_read_at_load_compares_as_the_argument_would() {
        for name in ["eq", "ge", "gt", "le", "lt"] {
            for arg in ["2", "-1", "0", "10"] {
                let c = Compare::new(name, arg).unwrap().unwrap();
                assert!(c.number.is_some(), "@{name} {arg}");
                let by_macro = Compare::new(name, "%{tx.x}").unwrap().unwrap();
                for v in ["1", "2", "3", "-1", "", "abc", " 2", "10x", "-0"] {
                    assert_eq!(
                        c.matches(v.as_bytes(), None),
                        by_macro.matches(v.as_bytes(), Some(arg.as_bytes())),
                        "{v} @{name} {arg}"
                    );
                }
            }
        }
        let not_numeric = ["streq", "within", "contains"];
        for name in not_numeric {
            assert!(Compare::new(name, "2").unwrap().unwrap().number.is_none());
        }
        assert!(Compare::new("lt", "%{tx.x}")
            .unwrap()
            .unwrap()
            .number
            .is_none());
    }

    #[test]
    fn the_short_search_finds_what_memmem_finds() {
        let long = "ab/".repeat(200);
        let hay = [
            "",
            "/a/ /ab/ /abc/",
            "aaab",
            "xyz",
            "/-x",
            "-/",
            long.as_str(),
        ];
        let needles = [
            "", "/ab/", "/abc/ ", "aab", "ab", "b", "z", "/a", "ab/ab/x", "a/ab", "/", "-/", "/-x",
            "/-x/", "--/-x", " /abc/", "/abc/",
        ];
        for h in hay {
            for n in needles {
                let expect = memmem::find(h.as_bytes(), n.as_bytes()).is_some();
                assert_eq!(find(h.as_bytes(), n.as_bytes()), expect, "{n:?} in {h:?}");
            }
        }
    }

    #[test]
    fn comparisons() {
        assert!(m("eq", "0", "abc"));
        assert!(m("ge", "%{tx.threshold}", "7"));
        assert!(!m("lt", "%{tx.threshold}", "5"));
        assert!(m("gt", "-1", "0"));
        assert!(m("within", "GET HEAD POST", "GET"));
        assert!(!m("within", "GET HEAD POST", "PUT"));
        assert!(!m("within", "GET", ""));
        assert!(m("containsWord", "select", "x select y"));
        assert!(!m("containsWord", "select", "selection"));
        assert!(m("endsWith", ".php", "index.php"));
        assert!(m("streq", "a", "a") && !m("streq", "a", "ab"));
    }
}
