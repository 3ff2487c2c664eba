//! Transformations (`t:`): byte string in, byte string out. Each returns `Cow::Borrowed` when
//! it changes nothing, so a chain over clean input allocates nothing. Grouped by family, one
//! file each, tests beside them.

mod case;
mod comments;
mod decode;
mod encode;
mod path;
mod whitespace;

use std::borrow::Cow;

pub type Transform = for<'a> fn(&'a [u8]) -> Cow<'a, [u8]>;

/// The function for a transformation name (case-insensitive, as ModSecurity reads them);
/// `none` has none: it clears the chain instead.
pub fn lookup(name: &str) -> Option<Transform> {
    let f: Transform = match name.to_ascii_lowercase().as_str() {
        "lowercase" => case::lowercase,
        "uppercase" => case::uppercase,
        "urldecode" => decode::url_decode,
        "urldecodeuni" => decode::url_decode_uni,
        "htmlentitydecode" => decode::html_entity_decode,
        "jsdecode" => decode::js_decode,
        "cssdecode" => decode::css_decode,
        "escapeseqdecode" => decode::escape_seq_decode,
        "base64decode" => decode::base64_decode,
        "base64decodeext" => decode::base64_decode_ext,
        "hexdecode" => decode::hex_decode,
        "sqlhexdecode" => decode::sql_hex_decode,
        "utf8tounicode" => encode::utf8_to_unicode,
        "hexencode" => encode::hex_encode,
        "base64encode" => encode::base64_encode,
        "urlencode" => encode::url_encode,
        "md5" => encode::md5,
        "sha1" => encode::sha1,
        "length" => encode::length,
        "compresswhitespace" => whitespace::compress_whitespace,
        "removewhitespace" => whitespace::remove_whitespace,
        "trim" => whitespace::trim,
        "trimleft" => whitespace::trim_left,
        "trimright" => whitespace::trim_right,
        "removenulls" => whitespace::remove_nulls,
        "replacenulls" => whitespace::replace_nulls,
        "cmdline" => whitespace::cmd_line,
        "normalizepath" | "normalisepath" => path::normalize_path,
        "normalizepathwin" | "normalisepathwin" => path::normalize_path_win,
        "removecomments" => comments::remove_comments,
        "removecommentschar" => comments::remove_comments_char,
        "replacecomments" => comments::replace_comments,
        "parityeven7bit" => case::parity_even_7bit,
        "parityodd7bit" => case::parity_odd_7bit,
        "parityzero7bit" => case::parity_zero_7bit,
        _ => return None,
    };
    Some(f)
}

/// Applies a chain, allocating only where a step changes something.
pub fn apply<'a>(chain: &[Transform], input: &'a [u8]) -> Cow<'a, [u8]> {
    let mut value = Cow::Borrowed(input);
    for t in chain {
        value = match value {
            Cow::Borrowed(b) => t(b),
            Cow::Owned(o) => Cow::Owned(t(&o).into_owned()),
        };
    }
    value
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
