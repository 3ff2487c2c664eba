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

/// One transformation: the step and its bound (`Bound`).
#[derive(Clone, Copy)]
pub struct Transform {
    step: Step,
    bound: Bound,
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

    pub fn backslash_to_slash(b: ByteSet, len: usize) -> (ByteSet, usize) {
        (b.with(b'/'), len)
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

/// The function for a transformation name (case-insensitive, as ModSecurity reads them);
/// `none` has none: it clears the chain instead.
pub fn lookup(name: &str) -> Option<Transform> {
    let (step, bound): (Step, Bound) = match name.to_ascii_lowercase().as_str() {
        "lowercase" => (case::lowercase, bound::lower),
        "uppercase" => (case::uppercase, bound::upper),
        "urldecode" => (decode::url_decode, bound::url),
        "urldecodeuni" => (decode::url_decode_uni, bound::url),
        "htmlentitydecode" => (decode::html_entity_decode, bound::decoder::<b'&'>),
        "jsdecode" => (decode::js_decode, bound::decoder::<b'\\'>),
        "cssdecode" => (decode::css_decode, bound::decoder::<b'\\'>),
        "escapeseqdecode" => (decode::escape_seq_decode, bound::decoder::<b'\\'>),
        "base64decode" => (decode::base64_decode, bound::base64),
        "base64decodeext" => (decode::base64_decode_ext, bound::base64),
        "hexdecode" => (decode::hex_decode, bound::any),
        "sqlhexdecode" => (decode::sql_hex_decode, bound::any),
        "utf8tounicode" => (encode::utf8_to_unicode, bound::utf8_to_unicode),
        "hexencode" => (encode::hex_encode, bound::grows),
        "base64encode" => (encode::base64_encode, bound::grows),
        "urlencode" => (encode::url_encode, bound::grows),
        "md5" => (encode::md5, bound::grows),
        "sha1" => (encode::sha1, bound::grows),
        "length" => (encode::length, bound::grows),
        "compresswhitespace" => (whitespace::compress_whitespace, bound::with_space),
        "removewhitespace" => (whitespace::remove_whitespace, bound::subset),
        "trim" => (whitespace::trim, bound::subset),
        "trimleft" => (whitespace::trim_left, bound::subset),
        "trimright" => (whitespace::trim_right, bound::subset),
        "removenulls" => (whitespace::remove_nulls, bound::subset),
        "replacenulls" => (whitespace::replace_nulls, bound::with_space),
        "cmdline" => (whitespace::cmd_line, bound::cmd_line),
        "normalizepath" | "normalisepath" => (path::normalize_path, bound::subset),
        "normalizepathwin" | "normalisepathwin" => {
            (path::normalize_path_win, bound::backslash_to_slash)
        }
        "removecomments" => (comments::remove_comments, bound::with_space),
        "removecommentschar" => (comments::remove_comments_char, bound::with_space),
        "replacecomments" => (comments::replace_comments, bound::with_space),
        "parityeven7bit" => (case::parity_even_7bit, bound::any),
        "parityodd7bit" => (case::parity_odd_7bit, bound::any),
        "parityzero7bit" => (case::parity_zero_7bit, bound::any),
        _ => return None,
    };
    Some(Transform { step, bound })
}

/// Applies a chain, allocating only where a step changes something.
pub fn apply<'a>(chain: &[Transform], input: &'a [u8]) -> Cow<'a, [u8]> {
    let mut value = Cow::Borrowed(input);
    for t in chain {
        value = match value {
            Cow::Borrowed(b) => t.run(b),
            Cow::Owned(o) => {
                // A step that changes nothing lends its input back: keep the buffer.
                let changed = match t.run(&o) {
                    Cow::Borrowed(_) => None,
                    Cow::Owned(next) => Some(next),
                };
                Cow::Owned(changed.unwrap_or(o))
            }
        };
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
