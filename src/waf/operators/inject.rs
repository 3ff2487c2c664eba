//! `@detectSQLi` / `@detectXSS` with libinjection (the pure-Rust `libinjectionrs`).

use super::{ByteSet, Captures};
use crate::waf::collections::Mix;
use libinjectionrs::{SqliFlags, SqliState};
use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::LazyLock;

pub fn sqli(value: &[u8], captures: Option<&mut Captures>) -> bool {
    if one_token(value) || plain_words(value) {
        return false;
    }
    // `detect_sqli` fingerprints the input once more after deciding, for its result: only a
    // match needs that fingerprint.
    let mut state = SqliState::new(value, SqliFlags::FLAG_NONE);
    if !state.detect() {
        return false;
    }
    if let Some(c) = captures {
        c.groups = vec![state.get_fingerprint().as_str().as_bytes().to_vec()];
    }
    true
}

/// Whether libinjection reads `value` as a single word or number in every context it tries:
/// none of its blacklisted fingerprints is one token but `X` ("evil"), which no word or
/// number is. Most argument names and many values are such words (`page`, `q`, `2`), and
/// skipping the tokenizer for them halves the CRS's `@detectSQLi` time on clean requests.
/// A word starts with a letter (a letter before a quote may open a string literal; there is
/// no quote here) and holds letters, digits and `_`: libinjection ends words only at
/// punctuation and spaces, and splits them only at `.` and `` ` ``. A number is digits
/// only (`1e5`, `0x1`, `4f` and `1union` are not, and are left to libinjection).
fn one_token(value: &[u8]) -> bool {
    match value {
        [] => false,
        [first, ..] if first.is_ascii_alphabetic() => value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_'),
        _ => value.iter().all(u8::is_ascii_digit),
    }
}

/// libinjection's keywords, functions and operator words, upper-case (not its fingerprints,
/// which start with `0`: no word [`plain_words`] reads does), hashed as the collections are.
static KEYWORDS: LazyLock<HashSet<Box<[u8]>, BuildHasherDefault<Mix>>> = LazyLock::new(|| {
    libinjectionrs::sqli::sqli_data::SQL_KEYWORDS
        .iter()
        .filter(|k| !k.word.starts_with('0'))
        .map(|k| k.word.as_bytes().to_ascii_uppercase().into_boxed_slice())
        .collect()
});

/// Builds the keyword table when a rule set with `@detectSQLi` is compiled, not on the
/// first request that needs it.
pub fn prepare_sqli() {
    LazyLock::force(&KEYWORDS);
}

/// Whether libinjection reads `value` as barewords and numbers only, which no blacklisted
/// fingerprint is made of (none in its table holds only `n` and `1`): words of letters,
/// digits and `_` that start with a letter, or numbers of digits only, as [`one_token`]
/// reads them, separated by spaces, none of them an SQL keyword of libinjection's table and
/// no two neighbours one (its folding looks `A B` up, as in `UNION ALL`). Search terms and
/// names (`blue widget`) are such values. Words are at most 31 bytes, as much as a token
/// holds; there is no quote, so libinjection tries no other context.
fn plain_words(value: &[u8]) -> bool {
    if !value.contains(&b' ') || value.len() > 256 {
        return false;
    }
    // `A B`, upper-case: the word before (its length in `prev`), a space, this word.
    let mut pair = [0u8; 2 * 31 + 1];
    let mut prev = 0;
    for word in value.split(|b| *b == b' ').filter(|w| !w.is_empty()) {
        if word.len() > 31 || !one_token(word) {
            return false;
        }
        let at = if prev == 0 { 0 } else { prev + 1 };
        pair[at..at + word.len()].copy_from_slice(word);
        pair[at..at + word.len()].make_ascii_uppercase();
        if KEYWORDS.contains(&pair[at..at + word.len()])
            || prev > 0 && KEYWORDS.contains(&pair[..at + word.len()])
        {
            return false;
        }
        // This word goes first in the next pair.
        pair.copy_within(at..at + word.len(), 0);
        pair[word.len()] = b' ';
        prev = word.len();
    }
    prev > 0
}

/// What a value's bytes say of [`one_token`]: a value all letters, or all digits, is one
/// token; `false` is certain, `true` leaves it to [`sqli`] (`4f`, `a1` and `_a` may or may not
/// be).
pub fn sqli_admits(bytes: &ByteSet) -> bool {
    SQLI_NEEDS.iter().all(|n| bytes.meets(n))
}

/// What [`sqli_admits`] asks, as sets a value must meet: a byte that is not a letter, and one
/// that is not a digit.
pub const SQLI_NEEDS: [ByteSet; 2] = [
    ByteSet::span(b'A', b'Z')
        .or(ByteSet::span(b'a', b'z'))
        .complement(),
    ByteSet::span(b'0', b'9').complement(),
];

/// What a value's bytes say of [`cannot_be_html`].
pub fn xss_admits(bytes: &ByteSet) -> bool {
    bytes.meets(&XSS_NEEDS)
}

/// What [`xss_admits`] asks, as a set a value must meet.
pub const XSS_NEEDS: ByteSet = ByteSet::span(b'<', b'<').or(ByteSet::span(b'=', b'='));

/// Whether libinjection cannot read `value` as XSS in any of the five contexts it tries: it
/// flags only tags (a doctype, a comment, a blacklisted tag name), which its tokenizer opens
/// only at a `<`, and attribute values after a dangerous attribute name, which follow only
/// an `=` (in a quoted context the value the input starts in has no attribute name before
/// it). Most clean values (words, numbers, User-Agents, paths) have neither byte.
fn cannot_be_html(value: &[u8]) -> bool {
    memchr::memchr2(b'<', b'=', value).is_none()
}

pub fn xss(value: &[u8]) -> bool {
    if cannot_be_html(value) {
        return false;
    }
    matches!(
        libinjectionrs::detect_xss(value),
        libinjectionrs::XssResult::Xss
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_attacks() {
        let mut c = Captures::default();
        assert!(sqli(b"1' OR '1'='1", Some(&mut c)));
        assert!(!c.groups.is_empty());
        assert!(!sqli(b"hello world", None));
        assert!(xss(b"<script>alert(1)</script>"));
        assert!(!xss(b"just text"));
    }

    /// The shortcut against libinjection itself: every SQL keyword, function and operator
    /// word it knows, in several cases and with digits after, and numbers; each one token,
    /// none SQLi; and attacks, which must not pass for one token.
    #[test]
    fn what_skips_libinjection_is_what_it_would_pass() {
        let mut corpus: Vec<String> = vec![
            "1union".into(),
            "1or1".into(),
            "0x1union".into(),
            "1e1union".into(),
            "4f2a9c1e".into(),
            "2".into(),
            "0".into(),
            "007".into(),
            "9".repeat(80),
            "a".repeat(80),
            "page".into(),
            "sp_password".into(),
            "x_1".into(),
        ];
        for k in libinjectionrs::sqli::sqli_data::SQL_KEYWORDS {
            let w = k.word;
            if !w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                continue;
            }
            corpus.push(w.to_string());
            corpus.push(w.to_ascii_lowercase());
            corpus.push(format!("{w}1"));
            corpus.push(format!("{w}_{w}"));
            corpus.push(format!("1{w}"));
        }
        let mut skipped = 0;
        for v in &corpus {
            let v = v.as_bytes();
            if one_token(v) {
                skipped += 1;
                let mut state = SqliState::new(v, SqliFlags::FLAG_NONE);
                assert!(
                    !state.detect(),
                    "{} skipped but SQLi",
                    String::from_utf8_lossy(v)
                );
            }
        }
        assert!(skipped > 1000, "{skipped}");
        for attack in [
            "1 union select 1",
            "1' or '1'='1",
            "1;drop table users--",
            "admin'--",
            "@@version union select 1",
        ] {
            assert!(SqliState::new(attack.as_bytes(), SqliFlags::FLAG_NONE).detect());
            assert!(!one_token(attack.as_bytes()), "{attack}");
        }
    }

    /// The word shortcut against libinjection itself: sequences of two to six words drawn
    /// from every keyword, function and operator word it knows (and numbers, plain words),
    /// so that every keyword and every pair of neighbours is tried; none it skips is SQLi,
    /// and it skips the plain ones.
    #[test]
    fn plain_words_are_what_libinjection_passes() {
        let plain = [
            "blue", "widget", "ada", "Lovelace", "2", "007", "x86_64", "large", "door", "red",
            "leave", "at", "the", "price", "sort", "page", "q", "id", "name", "email", "text",
        ];
        let mut words: Vec<String> = plain.map(String::from).to_vec();
        for k in libinjectionrs::sqli::sqli_data::SQL_KEYWORDS {
            let w = k.word;
            if !w.starts_with('0')
                && w.split(' ')
                    .all(|p| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            {
                // Each half of a two-word keyword alone, too: neither may be one itself.
                words.extend(w.split(' ').map(String::from));
                words.push(w.to_ascii_lowercase());
            }
        }
        let check = |v: &str| {
            let skip = plain_words(v.as_bytes());
            if skip {
                let mut state = SqliState::new(v.as_bytes(), SqliFlags::FLAG_NONE);
                assert!(!state.detect(), "{v:?} skipped but SQLi");
            }
            skip
        };
        let mut skipped = 0;
        for (i, a) in words.iter().enumerate() {
            let p = plain[i % plain.len()];
            for b in [&words[(i * 7 + 3) % words.len()], &words[i / 2], p] {
                skipped += check(&format!("{a} {b}")) as usize;
                skipped += check(&format!("{b}  {a} 1")) as usize;
                skipped += check(&format!("blue {a} {b} widget {a}")) as usize;
            }
        }
        for a in plain {
            for b in plain {
                skipped += check(&format!("{a} {b}")) as usize;
                skipped += check(&format!("{a} {b} {a} {b} {a} {b}")) as usize;
            }
        }
        assert!(skipped > 1000, "{skipped}");
        for plain in [
            "blue widget",
            "Ada Lovelace",
            "page 2",
            " large red widget ",
        ] {
            assert!(check(plain), "{plain}");
        }
        for attack in ["1 union select 1", "1 or 1", "a or b", "x union all select"] {
            assert!(!plain_words(attack.as_bytes()), "{attack}");
        }
        assert!(!plain_words(b"union all") && !plain_words(b"blue") && !plain_words(b" "));
        // Two words that are keywords only together (`NEXT VALUE`) are left to libinjection.
        let mut pairs = 0;
        for k in libinjectionrs::sqli::sqli_data::SQL_KEYWORDS {
            if k.word.contains(' ') && !k.word.starts_with('0') {
                pairs += 1;
                let v = format!("x {} y", k.word.to_ascii_lowercase());
                assert!(!plain_words(v.as_bytes()), "{v}");
            }
        }
        assert!(pairs > 50, "{pairs}");
    }

    /// The same for `@detectXSS`: event handlers, dangerous attributes, tags and URL
    /// schemes (libinjection's own lists), and attacks with their `<` and `=` taken out, none
    /// XSS to libinjection; the attacks themselves are.
    #[test]
    fn what_cannot_be_html_is_what_libinjection_passes() {
        let names = [
            "onerror",
            "ONLOAD",
            "onclick",
            "onmouseover",
            "onfocus",
            "onbegin",
            "onabort",
            "style",
            "src",
            "href",
            "xmlns",
            "formaction",
            "action",
            "background",
            "dynsrc",
            "lowsrc",
            "datasrc",
            "xlink",
            "script",
            "iframe",
            "svg",
            "object",
            "embed",
            "applet",
            "frameset",
            "base",
            "link",
            "vmlframe",
            "javascript",
            "vbscript",
            "data",
            "view",
            "livescript",
            "xhtml",
            "import",
            "alert",
            "eval",
            "1",
            "0x3c",
        ];
        let attacks = [
            "<script>alert(1)</script>",
            "x onerror=alert(1)",
            "onerror=alert(1)",
            "\" onload=x",
            "' onload='x",
            "` onload=`x",
            "<svg/onload=x>",
            "<img src=x onerror=alert(1)>",
            "<a href=javascript:alert(1)>x</a>",
            "\" style=x:expression(alert(1))",
            "x\" formaction=javascript:alert(1) x=\"",
            "<!--[if]><script>alert(1)</script-->",
            "<!DOCTYPE html>",
            "<?import namespace=x>",
            "<iframe srcdoc=x>",
            "' xmlns:xlink=x '",
            "<x `onload=x`>",
        ];
        let mut corpus: Vec<String> = Vec::new();
        for n in names {
            for v in [
                n.to_string(),
                n.to_ascii_uppercase(),
                format!("{n}1"),
                format!("on{n}"),
                format!("\" {n} \""),
                format!("' {n} x"),
                format!("` {n}/"),
                format!("x {n}>"),
                format!("{n}:alert(1)"),
                format!("!-- {n} --"),
            ] {
                corpus.push(v);
            }
        }
        for a in attacks {
            assert!(xss(a.as_bytes()), "{a}");
            assert!(!cannot_be_html(a.as_bytes()), "{a}");
            corpus.push(a.replace(['<', '='], ""));
            corpus.push(a.replace('<', "").replace('=', " "));
            corpus.push(a.replace('=', "").replace('<', ">"));
        }
        corpus
            .push("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".into());
        for v in &corpus {
            assert!(cannot_be_html(v.as_bytes()), "{v}");
            assert!(
                !matches!(
                    libinjectionrs::detect_xss(v.as_bytes()),
                    libinjectionrs::XssResult::Xss
                ),
                "{v} has no `<` or `=` but is XSS"
            );
        }
    }
}
