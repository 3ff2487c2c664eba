//! Transformations (`t:`): byte string in, byte string out. Each returns `Cow::Borrowed` when
//! it changes nothing, so a chain over clean input allocates nothing. Grouped by family, one
//! file each, tests beside them.

mod case;
mod comments;
mod decode;
mod encode;
mod path;
mod whitespace;

use crate::waf::operators::ByteSet;
use std::borrow::Cow;

pub type Step = for<'a> fn(&'a [u8]) -> Cow<'a, [u8]>;

/// What a step can make of a value holding (at most) these bytes and this many of them: a
/// bound that errs on the wide side, so a prefilter may rule a variable out without running
/// the chain on every entry.
type Bound = fn(ByteSet, usize) -> (ByteSet, usize);

/// Whether a step leaves every value holding only these bytes as it is (`false` when it
/// may not): steps a clean value would only scan are not run at all.
type Inert = fn(&ByteSet) -> bool;

/// One transformation: the step, its bound (`Bound`) and when it is a no-op (`Inert`).
#[derive(Clone, Copy)]
pub struct Transform {
    step: Step,
    bound: Bound,
    inert: Inert,
}

impl std::fmt::Debug for Transform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Transform({:#x})", self.id())
    }
}

impl Transform {
    pub fn run<'a>(&self, input: &'a [u8]) -> Cow<'a, [u8]> {
        (self.step)(input)
    }

    /// Whether the step leaves any value holding only `bytes` as it is.
    pub fn is_inert(&self, bytes: &ByteSet) -> bool {
        (self.inert)(bytes)
    }

    /// The step's identity (two names for one function share it).
    pub fn id(&self) -> usize {
        self.step as usize
    }
}

/// Bounds: the common shapes.
mod bound {
    use super::ByteSet;

    /// Removes or reorders bytes, never adds one.
    pub fn subset(b: ByteSet, len: usize) -> (ByteSet, usize) {
        (b, len)
    }

    pub fn with_space(b: ByteSet, len: usize) -> (ByteSet, usize) {
        (b.with(b' '), len)
    }

    /// Decodes escapes that start with `trigger`: anything may come out of one, nothing
    /// changes without one.
    pub fn decoder<const TRIGGER: u8>(b: ByteSet, len: usize) -> (ByteSet, usize) {
        (if b.contains(TRIGGER) { ByteSet::ALL } else { b }, len)
    }

    /// URL decoding: `%` escapes, and `+` for a space.
    pub fn url(b: ByteSet, len: usize) -> (ByteSet, usize) {
        if b.contains(b'%') {
            (ByteSet::ALL, len)
        } else if b.contains(b'+') {
            (b.with(b' '), len)
        } else {
            (b, len)
        }
    }

    /// Shrinks the value, anything may come out.
    pub fn any(_: ByteSet, len: usize) -> (ByteSet, usize) {
        (ByteSet::ALL, len)
    }

    /// Base64: anything, three bytes for every four characters at most.
    pub fn base64(_: ByteSet, len: usize) -> (ByteSet, usize) {
        (ByteSet::ALL, len / 4 * 3 + (len % 4).saturating_sub(1))
    }

    /// Encodings and digests: anything, a few times longer at most.
    pub fn grows(_: ByteSet, len: usize) -> (ByteSet, usize) {
        (ByteSet::ALL, len.saturating_mul(4).saturating_add(64))
    }

    pub fn lower(b: ByteSet, len: usize) -> (ByteSet, usize) {
        (b.to_lowercase(), len)
    }

    pub fn upper(b: ByteSet, len: usize) -> (ByteSet, usize) {
        (b.to_uppercase(), len)
    }

    /// `cmdLine`: deletes, lower-cases and turns separators into spaces.
    pub fn cmd_line(b: ByteSet, len: usize) -> (ByteSet, usize) {
        (b.to_lowercase().with(b' '), len)
    }

    /// A `/` only where there was a `\\`.
    pub fn backslash_to_slash(b: ByteSet, len: usize) -> (ByteSet, usize) {
        (if b.contains(b'\\') { b.with(b'/') } else { b }, len)
    }

    /// `%uXXXX` for each non-ASCII character.
    pub fn utf8_to_unicode(b: ByteSet, len: usize) -> (ByteSet, usize) {
        if b.has_non_ascii() {
            (ByteSet::ALL, len.saturating_mul(6))
        } else {
            (b, len)
        }
    }
}

/// No-ops: each the negation of its step's own "is there anything to do" scan, or
/// narrower.
mod inert {
    use super::ByteSet;

    const fn set(bytes: &[u8]) -> ByteSet {
        let mut s = ByteSet::ALL.complement();
        let mut i = 0;
        while i < bytes.len() {
            s = s.or(ByteSet::span(bytes[i], bytes[i]));
            i += 1;
        }
        s
    }

    /// `isspace()` and NBSP, as the whitespace steps count them.
    const WS: ByteSet = set(b" \t\n\x0b\x0c\r\xa0");

    pub fn never(_: &ByteSet) -> bool {
        false
    }

    pub fn without<const B: u8>(b: &ByteSet) -> bool {
        !b.contains(B)
    }

    pub fn url(b: &ByteSet) -> bool {
        !b.contains(b'%') && !b.contains(b'+')
    }

    pub fn lower(b: &ByteSet) -> bool {
        !b.meets(&ByteSet::span(b'A', b'Z'))
    }

    pub fn upper(b: &ByteSet) -> bool {
        !b.meets(&ByteSet::span(b'a', b'z'))
    }

    pub fn ascii(b: &ByteSet) -> bool {
        !b.has_non_ascii()
    }

    pub fn no_space(b: &ByteSet) -> bool {
        !b.meets(&WS)
    }

    pub fn cmd_line(b: &ByteSet) -> bool {
        const CHANGES: ByteSet = set(b"\"'\\^,; \t\r\n").or(ByteSet::span(b'A', b'Z'));
        !b.meets(&CHANGES)
    }

    /// No `/`: one segment, changed only when it is `.` or `..`.
    pub fn path(b: &ByteSet) -> bool {
        !b.contains(b'/') && !b.contains(b'.')
    }

    pub fn path_win(b: &ByteSet) -> bool {
        path(b) && !b.contains(b'\\')
    }

    pub fn comments(b: &ByteSet) -> bool {
        const MARKS: ByteSet = set(b"/<-#");
        !b.meets(&MARKS)
    }

    pub fn comment_chars(b: &ByteSet) -> bool {
        const MARKS: ByteSet = set(b"/<-#*");
        !b.meets(&MARKS)
    }
}

/// A decoder of escapes that start with `T`: its bound and its no-op both follow from `T`.
fn escapes<const T: u8>(step: Step) -> (Step, Bound, Inert) {
    (step, bound::decoder::<T>, inert::without::<T>)
}

/// The function for a transformation name (case-insensitive, as ModSecurity reads them);
/// `none` has none: it clears the chain instead.
pub fn lookup(name: &str) -> Option<Transform> {
    let (step, bound, inert): (Step, Bound, Inert) = match name.to_ascii_lowercase().as_str() {
        "lowercase" => (case::lowercase, bound::lower, inert::lower),
        "uppercase" => (case::uppercase, bound::upper, inert::upper),
        "urldecode" => (decode::url_decode, bound::url, inert::url),
        "urldecodeuni" => (decode::url_decode_uni, bound::url, inert::url),
        "htmlentitydecode" => escapes::<b'&'>(decode::html_entity_decode),
        "jsdecode" => escapes::<b'\\'>(decode::js_decode),
        "cssdecode" => escapes::<b'\\'>(decode::css_decode),
        "escapeseqdecode" => escapes::<b'\\'>(decode::escape_seq_decode),
        "base64decode" => (decode::base64_decode, bound::base64, inert::never),
        "base64decodeext" => (decode::base64_decode_ext, bound::base64, inert::never),
        "hexdecode" => (decode::hex_decode, bound::any, inert::never),
        "sqlhexdecode" => (decode::sql_hex_decode, bound::any, inert::never),
        "utf8tounicode" => (
            encode::utf8_to_unicode,
            bound::utf8_to_unicode,
            inert::ascii,
        ),
        "hexencode" => (encode::hex_encode, bound::grows, inert::never),
        "base64encode" => (encode::base64_encode, bound::grows, inert::never),
        "urlencode" => (encode::url_encode, bound::grows, inert::never),
        "md5" => (encode::md5, bound::grows, inert::never),
        "sha1" => (encode::sha1, bound::grows, inert::never),
        "length" => (encode::length, bound::grows, inert::never),
        "compresswhitespace" => (
            whitespace::compress_whitespace,
            bound::with_space,
            inert::no_space,
        ),
        "removewhitespace" => (
            whitespace::remove_whitespace,
            bound::subset,
            inert::no_space,
        ),
        "trim" => (whitespace::trim, bound::subset, inert::no_space),
        "trimleft" => (whitespace::trim_left, bound::subset, inert::no_space),
        "trimright" => (whitespace::trim_right, bound::subset, inert::no_space),
        "removenulls" => (whitespace::remove_nulls, bound::subset, inert::without::<0>),
        "replacenulls" => (
            whitespace::replace_nulls,
            bound::with_space,
            inert::without::<0>,
        ),
        "cmdline" => (whitespace::cmd_line, bound::cmd_line, inert::cmd_line),
        "normalizepath" | "normalisepath" => (path::normalize_path, bound::subset, inert::path),
        "normalizepathwin" | "normalisepathwin" => (
            path::normalize_path_win,
            bound::backslash_to_slash,
            inert::path_win,
        ),
        "removecomments" => (
            comments::remove_comments,
            bound::with_space,
            inert::comments,
        ),
        "removecommentschar" => (
            comments::remove_comments_char,
            bound::with_space,
            inert::comment_chars,
        ),
        "replacecomments" => (
            comments::replace_comments,
            bound::with_space,
            inert::without::<b'/'>,
        ),
        "parityeven7bit" => (case::parity_even_7bit, bound::any, inert::never),
        "parityodd7bit" => (case::parity_odd_7bit, bound::any, inert::never),
        "parityzero7bit" => (case::parity_zero_7bit, bound::any, inert::never),
        _ => return None,
    };
    Some(Transform { step, bound, inert })
}

/// Applies a chain, allocating only where a step changes something.
pub fn apply<'a>(chain: &[Transform], input: &'a [u8]) -> Cow<'a, [u8]> {
    chain.iter().fold(Cow::Borrowed(input), |v, t| t.then(v))
}

impl Transform {
    /// The step on a value so far: borrowed stays borrowed while nothing changes, and an
    /// owned buffer is kept when the step lends it back whole.
    fn then<'a>(&self, value: Cow<'a, [u8]>) -> Cow<'a, [u8]> {
        match value {
            Cow::Borrowed(b) => self.run(b),
            Cow::Owned(o) => match self.run(&o) {
                Cow::Borrowed(r) if r.len() == o.len() => Cow::Owned(o),
                // A part of it (`trim`).
                Cow::Borrowed(r) => Cow::Owned(r.to_vec()),
                Cow::Owned(next) => Cow::Owned(next),
            },
        }
    }
}

/// [`apply`] on a value holding only `bytes` (or fewer): the steps that cannot change it,
/// judged on their input's bound, are skipped.
pub fn apply_known<'a>(chain: &[Transform], input: &'a [u8], bytes: ByteSet) -> Cow<'a, [u8]> {
    let (mut value, mut bytes) = (Cow::Borrowed(input), bytes);
    for t in chain {
        if (t.inert)(&bytes) {
            continue;
        }
        value = t.then(value);
        // A bound's bytes do not depend on the length.
        bytes = (t.bound)(bytes, input.len()).0;
    }
    value
}

/// What a chain can make of values holding these bytes, at most `len` long.
pub fn bound(chain: &[Transform], bytes: ByteSet, len: usize) -> (ByteSet, usize) {
    chain.iter().fold((bytes, len), |(b, l), t| (t.bound)(b, l))
}

/// `out` unless it equals `input`: a step that rebuilt the value without changing it still
/// lends the input on, so the chain keeps borrowing.
pub(crate) fn unless_same(input: &[u8], out: Vec<u8>) -> Cow<'_, [u8]> {
    if out == input {
        Cow::Borrowed(input)
    } else {
        Cow::Owned(out)
    }
}

/// Hex digit value.
pub fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transformation_name_of_seclang_resolves() {
        for name in crate::waf::seclang::names::TRANSFORMATIONS {
            assert!(
                *name == "none" || lookup(name).is_some(),
                "t:{name} has no implementation"
            );
        }
    }

    /// Every step's output stays within its bound, on inputs that trigger each decoder.
    #[test]
    fn bounds_hold_what_the_steps_make() {
        let inputs: [&[u8]; 15] = [
            b"Q",
            b"QU",
            b"QUJ",
            b"QUJD",
            b"QUJDR",
            b"QUJDREV",
            b"QUJDREVGRw==",
            b"Plain Text",
            b"a%27b+c%u0041",
            b"&lt;script&#x3e;",
            b"\\x41\\u0042\\n",
            b"/* c */ x -- y # z",
            b"C:\\Windows\\..\\x",
            "caf\u{e9} \u{2028}".as_bytes(),
            b"0x414243 QUJD \x00 \t\r\n  ,;^\"'",
        ];
        for name in crate::waf::seclang::names::TRANSFORMATIONS {
            let Some(t) = lookup(name) else { continue };
            for input in inputs {
                let out = t.run(input);
                let (b, len) = bound(&[t], ByteSet::of(input), input.len());
                assert!(
                    out.len() <= len,
                    "t:{name} on {input:?}: longer than its bound"
                );
                assert_eq!(
                    b.union(ByteSet::of(&out)),
                    b,
                    "t:{name} on {input:?}: bytes outside its bound"
                );
            }
        }
    }

    /// A step judged inert on a value's bytes leaves it as it is: on values made of every
    /// byte the steps look for but one, and on the decoders' inputs above.
    #[test]
    fn inert_steps_change_nothing() {
        let mut inputs: Vec<Vec<u8>> = vec![
            b"plain words 1/2.3".to_vec(),
            b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0)".to_vec(),
            b".".to_vec(),
            b"..".to_vec(),
            b"a/./b//c/../d".to_vec(),
            b"a\\..\\b".to_vec(),
            b"x  y".to_vec(),
            b" x ".to_vec(),
            b"C^at \"a\",b;c".to_vec(),
            b"a/*b*/c<!--d-->e--f#g".to_vec(),
            b"a%41+b&amp;\\x41".to_vec(),
            "caf\u{e9}".as_bytes().to_vec(),
            b"a\x00b\t\x0b\x0c\r\n\xa0".to_vec(),
        ];
        let specials = b" \t\n\x0b\x0c\r\xa0\x00%+&\\/.*<-#^,;\"'AZaz\x80";
        for &drop in specials {
            let kept: Vec<u8> = specials.iter().copied().filter(|b| *b != drop).collect();
            inputs.push([&kept[..], b"a  .b..//c"].concat());
            inputs.push(kept);
        }
        for name in crate::waf::seclang::names::TRANSFORMATIONS {
            let Some(t) = lookup(name) else { continue };
            for input in &inputs {
                if t.is_inert(&ByteSet::of(input)) {
                    assert_eq!(&*t.run(input), &input[..], "t:{name} changed {input:?}");
                }
            }
        }
        // Each rules something out: a value with none of the bytes it looks for.
        for name in [
            "lowercase",
            "urlDecodeUni",
            "jsDecode",
            "cmdLine",
            "normalizePath",
        ] {
            assert!(
                lookup(name).unwrap().is_inert(&ByteSet::of(b"x1")),
                "t:{name}"
            );
        }
    }

    #[test]
    fn a_chain_skipping_inert_steps_makes_what_the_whole_chain_makes() {
        let names = [
            "utf8toUnicode",
            "urlDecodeUni",
            "htmlEntityDecode",
            "jsDecode",
            "cssDecode",
            "lowercase",
            "removeNulls",
            "removeWhitespace",
            "cmdLine",
            "normalizePathWin",
            "compressWhitespace",
            "replaceComments",
            "trim",
        ];
        let chain: Vec<Transform> = names.iter().map(|n| lookup(n).unwrap()).collect();
        let inputs: [&[u8]; 7] = [
            b"plain",
            b"Blue+Widget",
            b"%3Cscript%3E",
            b"&#x2f;etc&#x2f;passwd",
            b"\\u0041 B",
            b"  C:\\Windows\\..\\x  ",
            "caf\u{e9} /* x */".as_bytes(),
        ];
        for input in inputs {
            for k in 0..=chain.len() {
                let c = &chain[k..];
                assert_eq!(
                    apply_known(c, input, ByteSet::of(input)),
                    apply(c, input),
                    "{input:?} from step {k}"
                );
            }
        }
    }

    /// What [`crate::waf::operators::Prefilter::before`] relies on: each step's bound of a
    /// value's bytes is the union of its bounds of each byte alone.
    #[test]
    fn a_bound_is_the_union_of_what_it_makes_of_each_byte() {
        let inputs: [&[u8]; 8] = [
            b"Plain Text",
            b"a%27b+c",
            b"a+b",
            b"&lt;x;",
            b"\\x41\\",
            b"C:\\Windows/x",
            "caf\u{e9}".as_bytes(),
            b"\x00 \t,;^\"'",
        ];
        let none = ByteSet::default();
        for name in crate::waf::seclang::names::TRANSFORMATIONS {
            let Some(t) = lookup(name) else { continue };
            for input in inputs {
                let b = ByteSet::of(input);
                let whole = bound(&[t], b, input.len()).0;
                let each = (0..=255u8)
                    .filter(|x| b.contains(*x))
                    .fold(none, |u, x| u.union(bound(&[t], none.with(x), 1).0));
                assert_eq!(whole, each, "t:{name} on {input:?}");
            }
        }
    }

    /// A prefilter moved before a chain passes every value the chain turns into one the
    /// prefilter passes, and still rules values out.
    #[test]
    fn a_test_before_a_chain_passes_what_the_chain_makes_pass() {
        use crate::waf::operators::Prefilter;
        let patterns = [
            "(?i)<script",
            "=",
            r"\.\./",
            "(?i)select.{0,20}from",
            "[\"'`]",
            r"onerror\s*=",
            r"java\.lang",
            r"\x00",
            "%u00e9",
            "(?i)/etc/passwd",
        ];
        let chains: [&[&str]; 12] = [
            &["urlDecodeUni"],
            &["lowercase"],
            &[
                "utf8toUnicode",
                "urlDecodeUni",
                "htmlEntityDecode",
                "jsDecode",
                "cssDecode",
            ],
            &["removeNulls", "removeWhitespace", "lowercase"],
            &["cmdLine"],
            &["normalizePathWin"],
            &["compressWhitespace", "replaceComments"],
            &["escapeSeqDecode", "removeCommentsChar"],
            &["utf8toUnicode"],
            &["length"],
            &["base64Decode"],
            &["hexDecode"],
        ];
        let inputs: [&[u8]; 14] = [
            b"plain text",
            b"%3Cscript%3E",
            b"&lt;SCRIPT&gt;",
            b"\\u003cscript",
            b"\\x3cscript",
            b"SELECT+a+FROM+b",
            b"a\x00=b",
            b"..\\..\\etc\\passwd",
            b"/ETC/PASSWD",
            b"x onerror =1",
            b"java/*x*/.lang",
            b"PHNjcmlwdD4=",
            b"3c736372697074",
            "\u{e9}".as_bytes(),
        ];
        for pattern in patterns {
            let p = Prefilter::new(pattern, false).expect(pattern);
            for names in chains {
                let chain: Vec<Transform> = names.iter().map(|n| lookup(n).unwrap()).collect();
                let before = p.before(|b, l| bound(&chain, b, l));
                for input in inputs {
                    let out = apply(&chain, input);
                    if p.admits(out.len(), &ByteSet::of(&out)) {
                        assert!(
                            before
                                .as_ref()
                                .is_none_or(|r| r.admits(input.len(), &ByteSet::of(input))),
                            "/{pattern}/ after {names:?}: {input:?} ruled out before"
                        );
                    }
                }
            }
        }
        let lower = [lookup("lowercase").unwrap()];
        let script = Prefilter::new("(?i)<script", false).unwrap();
        let before = script.before(|b, l| bound(&lower, b, l)).unwrap();
        assert!(!before.admits(10, &ByteSet::of(b"plain text")));
        assert!(before.admits(7, &ByteSet::of(b"<SCRIPT")));
        let length = [lookup("length").unwrap()];
        assert!(script.before(|b, l| bound(&length, b, l)).is_none());
    }

    #[test]
    fn chains_borrow_until_something_changes() {
        let chain = [
            lookup("lowercase").unwrap(),
            lookup("urlDecodeUni").unwrap(),
        ];
        assert!(matches!(apply(&chain, b"plain"), Cow::Borrowed(_)));
        assert_eq!(&*apply(&chain, b"SELECT%20*"), b"select *");
    }
}
