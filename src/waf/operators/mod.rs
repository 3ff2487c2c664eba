//! Operators (`@rx`, `@pm`, `@eq`, ...): compiled once per rule, run per value. An argument
//! with a `%{macro}` is expanded by the transaction once per rule evaluation, not per value.

mod compare;
mod inject;
mod pm;
pub mod prefilter;
mod rx;
mod validate;

use super::macros::Template;
use std::path::Path;

pub use compare::{atoi, NumTest};
pub use prefilter::{ByteSet, Prefilter};
pub use rx::Captures;

#[derive(Debug)]
pub enum Operator {
    Rx(rx::Rx),
    Pm(pm::Pm),
    Compare(compare::Compare),
    DetectSqli,
    DetectXss,
    /// The bytes outside the allowed ranges.
    ValidateByteRange(ByteSet),
    ValidateUrlEncoding,
    ValidateUtf8Encoding,
    IpMatch(Vec<ipnet::IpNet>),
    Unconditional,
    NoMatch,
}

/// Compiles an operator; `dir` is the rule file's directory (for `@pmFromFile`).
pub fn compile(name: &str, arg: &str, dir: &Path) -> Result<Operator, String> {
    Ok(match name {
        "rx" => Operator::Rx(rx::Rx::new(arg)?),
        "pm" => Operator::Pm(pm::Pm::new(arg.split_whitespace())?),
        "pmFromFile" | "pmf" => Operator::Pm(pm::Pm::from_files(arg, dir)?),
        "detectSQLi" => {
            inject::prepare_sqli();
            Operator::DetectSqli
        }
        "detectXSS" => Operator::DetectXss,
        "validateByteRange" => Operator::ValidateByteRange(validate::byte_ranges(arg)?),
        "validateUrlEncoding" => Operator::ValidateUrlEncoding,
        "validateUtf8Encoding" => Operator::ValidateUtf8Encoding,
        "ipMatch" => Operator::IpMatch(
            arg.split(',')
                .map(|s| {
                    let s = s.trim();
                    s.parse::<ipnet::IpNet>()
                        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| format!("@ipMatch: `{s}` is not an IP or CIDR"))
                })
                .collect::<Result<_, _>>()?,
        ),
        "unconditionalMatch" => Operator::Unconditional,
        "noMatch" => Operator::NoMatch,
        // Without a GeoIP database or network access these can never match; CRS only uses
        // them behind settings that are off by default.
        "geoLookup" | "rbl" => Operator::NoMatch,
        other => match compare::Compare::new(other, arg)? {
            Some(c) => Operator::Compare(c),
            None => return Err(format!("operator `@{other}` is not supported yet")),
        },
    })
}

impl Operator {
    /// Whether `value` matches; `captures` receives `@rx` groups when asked for.
    /// The argument's macros, when it has any: expand them and pass the result to `matches`.
    pub fn template(&self) -> Option<&Template> {
        match self {
            Operator::Compare(c) => c.template(),
            _ => None,
        }
    }

    /// The operator as a [`NumTest`], when it is a numeric comparison with a small literal
    /// argument.
    pub fn num_test(&self) -> Option<NumTest> {
        match self {
            Operator::Compare(c) => c.num_test(),
            _ => None,
        }
    }

    /// A numeric comparison's literal argument, as read at load.
    #[cfg(test)]
    pub fn literal_number(&self) -> Option<i64> {
        match self {
            Operator::Compare(c) => c.number,
            _ => None,
        }
    }

    /// Whether the operator has a cheap necessary condition on a value's [`ByteSet`].
    pub fn prefilters(&self) -> bool {
        match self {
            Operator::Rx(r) => r.prefilters(),
            Operator::Pm(p) => p.prefilter.is_some(),
            Operator::DetectSqli
            | Operator::DetectXss
            | Operator::ValidateByteRange(_)
            | Operator::ValidateUrlEncoding
            | Operator::ValidateUtf8Encoding => true,
            _ => false,
        }
    }

    /// [`Self::admits`] as a [`Prefilter`] that can be kept apart from the operator (a rule's
    /// [`crate::waf::ruleset::Gate`]); `None` for an operator without a byte-set test.
    pub fn admit_test(&self) -> Option<Prefilter> {
        const ALL: ByteSet = ByteSet::ALL;
        let one = |needs: ByteSet| Some(Prefilter::of_sets(0, [needs, ALL, ALL]));
        match self {
            Operator::Rx(r) => r.prefilter().cloned(),
            Operator::Pm(p) => p.prefilter.clone(),
            Operator::DetectSqli => {
                let [a, b] = inject::SQLI_NEEDS;
                Some(Prefilter::of_sets(0, [a, b, ALL]))
            }
            Operator::DetectXss => one(inject::XSS_NEEDS),
            Operator::ValidateByteRange(outside) => one(*outside),
            Operator::ValidateUrlEncoding => one(ByteSet::span(b'%', b'%')),
            Operator::ValidateUtf8Encoding => one(ByteSet::span(0x80, 0xff)),
            _ => None,
        }
    }

    /// Whether a value of this length and bytes may match (a `false` is certain; the caller
    /// then skips [`Self::matches`]).
    pub fn admits(&self, len: usize, bytes: &ByteSet) -> bool {
        match self {
            Operator::Rx(r) => r.admits(len, bytes),
            Operator::Pm(p) => p.prefilter.as_ref().is_none_or(|f| f.admits(len, bytes)),
            Operator::DetectSqli => inject::sqli_admits(bytes),
            Operator::DetectXss => inject::xss_admits(bytes),
            // Exact: a value matches when it holds one of these bytes.
            Operator::ValidateByteRange(outside) => bytes.meets(outside),
            Operator::ValidateUrlEncoding => bytes.contains(b'%'),
            Operator::ValidateUtf8Encoding => bytes.has_non_ascii(),
            _ => true,
        }
    }

    pub fn matches(
        &self,
        value: &[u8],
        expanded: Option<&[u8]>,
        captures: Option<&mut Captures>,
    ) -> bool {
        match self {
            Operator::Rx(r) => r.matches(value, captures),
            Operator::Pm(p) => p.matches(value, captures),
            Operator::Compare(c) => c.matches(value, expanded),
            Operator::DetectSqli => inject::sqli(value, captures),
            Operator::DetectXss => inject::xss(value),
            Operator::ValidateByteRange(outside) => value.iter().any(|b| outside.contains(*b)),
            Operator::ValidateUrlEncoding => validate::bad_url_encoding(value),
            Operator::ValidateUtf8Encoding => std::str::from_utf8(value).is_err(),
            Operator::IpMatch(nets) => std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.trim().parse::<std::net::IpAddr>().ok())
                .is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))),
            Operator::Unconditional => true,
            Operator::NoMatch => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-set test only ever rules out values the operator would not match: checked on
    /// clean values, attacks, invalid encodings and every single byte, and each test rules
    /// out some clean value (or it would be worth nothing).
    #[test]
    fn what_a_byte_set_rules_out_never_matches() {
        let dir = Path::new(".");
        let ops = [
            "detectSQLi",
            "detectXSS",
            "validateByteRange",
            "validateUrlEncoding",
            "validateUtf8Encoding",
        ]
        .map(|name| compile(name, "32-126", dir).unwrap());
        let mut values: Vec<Vec<u8>> = [
            "",
            "page",
            "q",
            "2",
            "007",
            "4f2a9c1e",
            "a1",
            "_a",
            "x_1",
            "blue widget",
            "-price",
            "1 union select 1",
            "1' or '1'='1",
            "admin'--",
            "1;drop table users--",
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "x=1",
            "a%2",
            "%zz",
            "a%20b",
            "caf\u{e9}",
            "tab\there",
        ]
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect();
        values.extend([b"\xff\xfe".to_vec(), b"a\x00b".to_vec(), b"\xc3".to_vec()]);
        values.extend((0..=255u8).map(|b| vec![b]));
        for op in &ops {
            let mut ruled_out = 0;
            for v in &values {
                let admitted = op.admits(v.len(), &ByteSet::of(v));
                assert!(admitted || !op.matches(v, None, None), "{op:?} {v:?}");
                ruled_out += !admitted as usize;
            }
            assert!(op.prefilters() && ruled_out > 0, "{op:?}");
        }
    }

    /// The test a rule's gate keeps apart from the operator answers as the operator does, for
    /// every operator with one, on every length and byte set tried; and operators without a
    /// byte-set test have none to keep.
    #[test]
    fn the_kept_admit_test_is_the_operators_own() {
        let dir = Path::new(".");
        let ops = [
            ("detectSQLi", ""),
            ("detectXSS", ""),
            ("validateByteRange", "32-126"),
            ("validateUrlEncoding", ""),
            ("validateUtf8Encoding", ""),
            ("rx", "(?i)<script[^>]*>"),
            ("rx", "union\\s+select"),
            ("pm", "evil wicked"),
        ]
        .map(|(name, arg)| compile(name, arg, dir).unwrap());
        let mut sets: Vec<ByteSet> = vec![ByteSet::default(), ByteSet::ALL];
        for v in [
            "page",
            "2",
            "4f2a9c1e",
            "blue widget",
            "<script>",
            "x=1",
            "%2",
            "caf\u{e9}",
            "UNION select",
            "evil",
        ] {
            sets.push(ByteSet::of(v.as_bytes()));
        }
        sets.extend((0..=255u8).map(|b| ByteSet::of(&[b])));
        for op in &ops {
            let kept = op.admit_test().expect("a byte-set test");
            for bytes in &sets {
                for len in [0, 1, 2, 5, 12, 200] {
                    assert_eq!(kept.admits(len, bytes), op.admits(len, bytes), "{op:?}");
                }
            }
        }
        let none = compile("streq", "x", dir).unwrap();
        assert!(none.admit_test().is_none() && !none.prefilters());
    }
}
