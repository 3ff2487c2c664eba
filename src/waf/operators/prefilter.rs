//! What a value must hold for a regex to have any chance of matching, derived from the
//! pattern once at load: a minimum length, and a few byte sets each of which a match must
//! draw at least one byte from. Testing them against a value's byte bitmap costs a handful
//! of instructions, against a few hundred for the regex call it saves; most values of a clean
//! request lack the quotes, brackets or keywords' letters an attack pattern needs.

use regex_syntax::hir::{Class, Hir, HirKind};

/// The bytes present in a value, one bit per byte value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteSet([u64; 4]);

impl ByteSet {
    pub const ALL: ByteSet = ByteSet([u64::MAX; 4]);

    /// Whether this is [`Self::ALL`].
    pub const fn is_all(&self) -> bool {
        self.0[0] == u64::MAX
            && self.0[1] == u64::MAX
            && self.0[2] == u64::MAX
            && self.0[3] == u64::MAX
    }

    /// The bytes `lo` to `hi`, both included.
    pub const fn span(lo: u8, hi: u8) -> ByteSet {
        let mut w = [0u64; 4];
        let mut b = lo as usize;
        while b <= hi as usize {
            w[b >> 6] |= 1 << (b & 63);
            b += 1;
        }
        ByteSet(w)
    }

    pub const fn or(self, o: ByteSet) -> ByteSet {
        let (a, b) = (self.0, o.0);
        ByteSet([a[0] | b[0], a[1] | b[1], a[2] | b[2], a[3] | b[3]])
    }

    pub const fn complement(self) -> ByteSet {
        let w = self.0;
        ByteSet([!w[0], !w[1], !w[2], !w[3]])
    }

    /// Whether every byte here is also in `o`.
    pub fn within(&self, o: &ByteSet) -> bool {
        (0..4).all(|i| self.0[i] & !o.0[i] == 0)
    }

    pub fn of(value: &[u8]) -> ByteSet {
        let mut s = ByteSet::default();
        for &b in value {
            s.insert(b);
        }
        s
    }

    fn insert(&mut self, b: u8) {
        self.0[(b >> 6) as usize] |= 1 << (b & 63);
    }

    fn insert_range(&mut self, lo: u8, hi: u8) {
        for b in lo..=hi {
            self.insert(b);
        }
    }

    pub fn union(self, o: ByteSet) -> ByteSet {
        ByteSet(std::array::from_fn(|i| self.0[i] | o.0[i]))
    }

    /// Whether the two sets share a byte.
    pub fn meets(&self, o: &ByteSet) -> bool {
        (0..4).any(|i| self.0[i] & o.0[i] != 0)
    }

    pub fn contains(&self, b: u8) -> bool {
        self.0[(b >> 6) as usize] & (1 << (b & 63)) != 0
    }

    pub fn with(mut self, b: u8) -> ByteSet {
        self.insert(b);
        self
    }

    /// `A`-`Z` (bits 1-26 of the second word) as `a`-`z` (bits 33-58).
    const UPPER: u64 = ((1 << 26) - 1) << 1;

    pub fn to_lowercase(self) -> ByteSet {
        let mut w = self.0;
        w[1] = (w[1] & !Self::UPPER) | (w[1] & Self::UPPER) << 32;
        ByteSet(w)
    }

    pub fn to_uppercase(self) -> ByteSet {
        let mut w = self.0;
        w[1] = (w[1] & !(Self::UPPER << 32)) | (w[1] & Self::UPPER << 32) >> 32;
        ByteSet(w)
    }

    pub fn has_non_ascii(&self) -> bool {
        self.0[2] | self.0[3] != 0
    }

    /// How often a value can be expected to hold one of these bytes: letters (by their
    /// frequency in English) and digits are everywhere, some punctuation is common, the rest
    /// (quotes, brackets, `<`, `;`) rare.
    fn commonness(&self) -> u32 {
        (0..=255u8)
            .filter(|b| self.contains(*b))
            .map(|b| match b.to_ascii_lowercase() {
                b'e' | b't' | b'a' | b'o' | b'i' | b'n' => 16,
                b's' | b'h' | b'r' | b'd' | b'l' | b'c' | b'u' => 12,
                b'm' | b'w' | b'f' | b'g' | b'y' | b'p' => 8,
                b'b' | b'v' | b'k' => 4,
                b'j' | b'x' | b'q' | b'z' => 2,
                b'0'..=b'9' => 10,
                b' ' | b'.' | b'-' | b'_' | b'/' | b',' | b'=' | b'+' | b'&' | b'%' | b':' => 6,
                _ => 1,
            })
            .sum()
    }
}

/// Sets kept per pattern: each one rules values out on its own.
const MAX_SETS: usize = 3;

#[derive(Debug, Clone)]
pub struct Prefilter {
    min_len: u32,
    /// The shortest a value holding a byte past ASCII may be: shorter than `min_len` for a
    /// test made for values before a chain that may lengthen them (`utf8toUnicode`).
    min_wide: u32,
    /// How many of `needs` to test: those past it are [`ByteSet::ALL`], which any value the
    /// first set admits also meets (it has a byte), so they are not even read.
    sets: u32,
    /// In place, for a test with no pointer to follow; [`ByteSet::ALL`] where a pattern has
    /// fewer sets (any value with a byte meets it, and one with none is too short or lacks
    /// the set a pattern does have).
    needs: [ByteSet; MAX_SETS],
}

impl Prefilter {
    /// The test every value passes.
    pub const NONE: Prefilter = Prefilter::of_sets(0, [ByteSet::ALL; MAX_SETS]);

    /// A test of this shape from its parts: a value must be `min_len` long and meet each set.
    pub const fn of_sets(min_len: usize, needs: [ByteSet; MAX_SETS]) -> Prefilter {
        let mut sets = MAX_SETS;
        while sets > 1 && needs[sets - 1].is_all() {
            sets -= 1;
        }
        let min_len = if min_len > u32::MAX as usize {
            u32::MAX
        } else {
            min_len as u32
        };
        Prefilter {
            min_len,
            min_wide: min_len,
            sets: sets as u32,
            needs,
        }
    }

    /// The prefilter of a pattern as `regex` compiles it (`unicode`: whether it runs in
    /// Unicode mode); `None` when the pattern says nothing useful.
    pub fn new(pattern: &str, unicode: bool) -> Option<Prefilter> {
        Prefilter::of_hir(&parse(pattern, unicode).ok()?)
    }

    /// [`Self::new`] for a pattern parsed already ([`parse`]).
    pub fn of_hir(hir: &Hir) -> Option<Prefilter> {
        let mut needs = Vec::new();
        required(hir, &mut needs);
        Prefilter::keep(hir.properties().minimum_len().unwrap_or(0), needs)
    }

    /// The rarest [`MAX_SETS`] sets worth testing; `None` when nothing is left to test.
    fn keep(min_len: usize, mut needs: Vec<ByteSet>) -> Option<Prefilter> {
        needs.sort_by_key(ByteSet::commonness);
        needs.dedup();
        // A set that nearly any value meets only costs time.
        needs.retain(|s| s.commonness() < 400);
        needs.truncate(MAX_SETS);
        let useful = min_len > 1 || !needs.is_empty();
        needs.resize(MAX_SETS, ByteSet::ALL);
        let needs = needs.try_into().ok()?;
        useful.then_some(Prefilter::of_sets(min_len, needs))
    }

    /// The prefilter of a case-insensitive phrase list (`@pm`): no shorter than the shortest
    /// phrase, and for the k-th set each phrase's k-th rarest byte, in either case.
    pub fn for_phrases(phrases: &[&str]) -> Option<Prefilter> {
        let min_len = phrases.iter().map(|p| p.len()).min().unwrap_or(0);
        let mut needs = vec![ByteSet::default(); MAX_SETS];
        for p in phrases {
            let mut bytes: Vec<ByteSet> = p
                .bytes()
                .map(|b| {
                    ByteSet::default()
                        .with(b.to_ascii_lowercase())
                        .with(b.to_ascii_uppercase())
                })
                .collect();
            bytes.sort_by_key(ByteSet::commonness);
            bytes.dedup();
            for (k, need) in needs.iter_mut().enumerate() {
                // A phrase with fewer distinct bytes repeats its last: still one it holds.
                if let Some(b) = bytes.get(k).or(bytes.last()) {
                    *need = need.union(*b);
                }
            }
        }
        Prefilter::keep(min_len, needs)
    }

    /// This test moved before a transformation chain, from the chain's `bound`: a value may
    /// pass this one after the chain only if it passes that one before it. A set's bytes
    /// become those the chain may turn into one of them (each alone: a bound is the union of
    /// what it makes of each byte), and the length the shortest the chain may stretch to
    /// `min_len`. `None` when the chain may make bytes of nothing (`t:length`, a digest).
    pub fn before(&self, bound: impl Fn(ByteSet, usize) -> (ByteSet, usize)) -> Option<Prefilter> {
        let none = ByteSet::default();
        if !bound(none, 0).0.within(&none.with(b' ')) {
            return None;
        }
        let mut needs = [ByteSet::ALL; MAX_SETS];
        for (pre, need) in needs.iter_mut().zip(&self.needs).take(self.sets as usize) {
            *pre = (0..=255u8)
                .filter(|b| bound(none.with(*b), 1).0.meets(need))
                .fold(none, ByteSet::with);
        }
        let min = self.min_len as usize;
        let shortest = |bytes: ByteSet| (0..min).find(|l| bound(bytes, *l).1 >= min).unwrap_or(min);
        let mut p = Prefilter::of_sets(shortest(ByteSet::span(0, 0x7f)), needs);
        p.min_wide = shortest(ByteSet::ALL) as u32;
        Some(p)
    }

    /// Whether a value of this length and these bytes may match.
    pub fn admits(&self, len: usize, bytes: &ByteSet) -> bool {
        (len >= self.min_len as usize || len >= self.min_wide as usize && bytes.has_non_ascii())
            && bytes.meets(&self.needs[0])
            && (self.sets < 2 || bytes.meets(&self.needs[1]))
            && (self.sets < 3 || bytes.meets(&self.needs[2]))
    }
}

/// A pattern parsed as `@rx` compiles it: bytes, not UTF-8, unless `unicode`; `.` matches
/// newlines, as in ModSecurity.
pub fn parse(pattern: &str, unicode: bool) -> Result<Hir, String> {
    regex_syntax::ParserBuilder::new()
        .unicode(unicode)
        .utf8(false)
        .dot_matches_new_line(true)
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())
}

/// The bytes a class matches (a Unicode class's non-ASCII part as every non-ASCII byte).
fn class_bytes(c: &Class) -> ByteSet {
    let mut s = ByteSet::default();
    match c {
        Class::Bytes(b) => {
            for r in b.ranges() {
                s.insert_range(r.start(), r.end());
            }
        }
        Class::Unicode(u) => {
            for r in u.ranges() {
                let (lo, hi) = (r.start() as u32, r.end() as u32);
                if lo < 0x80 {
                    s.insert_range(lo as u8, hi.min(0x7f) as u8);
                }
                if hi >= 0x80 {
                    s.insert_range(0x80, 0xff);
                }
            }
        }
    }
    s
}

/// The one set every match of `hir` draws a byte from, if there is one (not for a part that
/// may match the empty string).
fn one(hir: &Hir) -> Option<ByteSet> {
    let mut sets = Vec::new();
    required(hir, &mut sets);
    sets.into_iter().min_by_key(ByteSet::commonness)
}

/// Pushes sets each of which every match of `hir` draws a byte from.
fn required(hir: &Hir, out: &mut Vec<ByteSet>) {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(lit) => {
            // Each byte is required; the rarest one rules out the most values.
            if let Some(b) = lit
                .0
                .iter()
                .map(|b| {
                    let mut s = ByteSet::default();
                    s.insert(*b);
                    s
                })
                .min_by_key(ByteSet::commonness)
            {
                out.push(b);
            }
        }
        HirKind::Class(c) => out.push(class_bytes(c)),
        HirKind::Repetition(r) if r.min >= 1 => required(&r.sub, out),
        HirKind::Repetition(_) => {}
        HirKind::Capture(c) => required(&c.sub, out),
        HirKind::Concat(parts) => {
            for p in parts {
                required(p, out);
            }
        }
        HirKind::Alternation(alts) => {
            let mut all = ByteSet::default();
            for a in alts {
                match one(a) {
                    Some(s) => all = all.union(s),
                    None => return,
                }
            }
            out.push(all);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admits(pattern: &str, value: &str) -> bool {
        Prefilter::new(pattern, false)
            .is_none_or(|p| p.admits(value.len(), &ByteSet::of(value.as_bytes())))
    }

    /// The sets left untested (the `ALL` placeholders) change no verdict, not even on an
    /// empty value or one too short for the pattern.
    #[test]
    fn the_sets_not_read_are_the_ones_every_admitted_value_meets() {
        let digit = ByteSet::span(b'0', b'9');
        let quote = ByteSet::span(b'\'', b'\'');
        let all = ByteSet::ALL;
        let shapes = [
            (0, [all, all, all]),
            (2, [all, all, all]),
            (0, [digit, all, all]),
            (1, [digit, quote, all]),
            (3, [quote, digit, digit]),
        ];
        for (min_len, needs) in shapes {
            let p = Prefilter::of_sets(min_len, needs);
            for value in ["", "1", "'", "'1", "ab", "1'x", "xyz"] {
                let bytes = ByteSet::of(value.as_bytes());
                let every = value.len() >= min_len && needs.iter().all(|n| bytes.meets(n));
                assert_eq!(
                    p.admits(value.len(), &bytes),
                    every,
                    "{needs:?} on {value:?}"
                );
            }
        }
    }

    #[test]
    fn rules_out_values_without_a_required_byte() {
        assert!(!admits(r#"['"`]\s*or\s+1"#, "blue widget"));
        assert!(admits(r#"['"`]\s*or\s+1"#, "x' or 1"));
        assert!(!admits("(?i)<script", "a script"));
        assert!(admits("(?i)<SCRIPT", "x<script>"));
        assert!(!admits("(?i)<SCRIPT", "<sc"));
        // An alternation needs one byte from any of its branches.
        assert!(!admits("(?:<|\\(|;)x", "abc x"));
        assert!(admits("(?:<|\\(|;)x", "a;x"));
    }

    #[test]
    fn a_value_s_set_holds_its_bytes_and_no_other() {
        let bytes: Vec<u8> = (0..=255u8)
            .rev()
            .chain(b"Mozilla/5.0 (X11)".iter().copied())
            .collect();
        for len in 0..bytes.len() {
            let v = &bytes[..len];
            let set = ByteSet::of(v);
            assert!(
                (0..=255u8).all(|b| set.contains(b) == v.contains(&b)),
                "{len}"
            );
        }
    }

    #[test]
    fn case_maps_match_ascii_case() {
        let all = (0..=255u8).collect::<Vec<_>>();
        let lower = all.iter().map(u8::to_ascii_lowercase).collect::<Vec<_>>();
        let upper = all.iter().map(u8::to_ascii_uppercase).collect::<Vec<_>>();
        for probe in [&b"Hello, World! az AZ @[`{"[..], &all] {
            let set = ByteSet::of(probe);
            let low = probe.iter().map(u8::to_ascii_lowercase).collect::<Vec<_>>();
            let up = probe.iter().map(u8::to_ascii_uppercase).collect::<Vec<_>>();
            assert_eq!(set.to_lowercase(), ByteSet::of(&low));
            assert_eq!(set.to_uppercase(), ByteSet::of(&up));
        }
        assert_eq!(ByteSet::of(&all).to_lowercase(), ByteSet::of(&lower));
        assert_eq!(ByteSet::of(&all).to_uppercase(), ByteSet::of(&upper));
    }

    #[test]
    fn phrase_lists_rule_out_values_without_any_phrase_s_rare_bytes() {
        let pf = Prefilter::for_phrases(&["etc/passwd", ".htaccess", "boot.ini"]).unwrap();
        let admits = |v: &str| pf.admits(v.len(), &ByteSet::of(v.as_bytes()));
        assert!(!admits("blue widget"));
        assert!(admits("/ETC/PASSWD"));
        assert!(admits("x/.HTAccess"));
        assert!(!admits("abc"));
    }

    #[test]
    fn rules_out_values_too_short() {
        assert!(!admits("abcdef", "abcde"));
        assert!(admits("abc(?:def)?", "abc"));
    }

    #[test]
    fn says_nothing_about_what_may_be_empty_or_is_anchored_only() {
        assert!(Prefilter::new("^", false).is_none());
        assert!(Prefilter::new("(?:a|)*", false).is_none());
        assert!(admits("x?", ""));
    }

    #[test]
    fn never_rules_out_a_value_the_regex_matches() {
        let patterns = [
            r"(?i)\b(?:select|union)\b.{0,20}\bfrom\b",
            r#"[\"'`]\s*(?:or|and)\s+\d"#,
            r"(?i)(?:<|%3c)script",
            r"\x{e2}\x80\xa8",
            r"(?:^|[^\w])(?:cat|ls)\s",
            r"[^\x00-\x7f]+é",
        ];
        let values = [
            "select * from users",
            "1' or 2",
            "%3Cscript",
            "\u{2028}",
            " cat /etc/passwd",
            "ünicodé",
            "nothing here",
        ];
        for p in patterns {
            let unicode = regex::bytes::RegexBuilder::new(p)
                .unicode(false)
                .build()
                .is_err();
            let re = regex::bytes::RegexBuilder::new(p)
                .unicode(unicode)
                .build()
                .unwrap();
            let pf = Prefilter::new(p, unicode);
            for v in values {
                if re.is_match(v.as_bytes()) {
                    assert!(
                        pf.as_ref()
                            .is_none_or(|f| f.admits(v.len(), &ByteSet::of(v.as_bytes()))),
                        "{p} rules out {v}"
                    );
                }
            }
        }
    }
}
