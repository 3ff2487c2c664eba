//! Decoders: URL, HTML entities, JavaScript, CSS, C escapes, Base64, hex. Malformed escapes
//! stay as they are, as ModSecurity leaves them.

use super::hex;
use base64::Engine;
use std::borrow::Cow;

fn hex2(a: u8, b: u8) -> Option<u8> {
    Some(hex(a)? << 4 | hex(b)?)
}

/// A `%uHHHH` / `\uHHHH` code point as one byte: full-width ASCII (U+FF01..U+FF5E) becomes
/// its ASCII twin, anything else keeps its low byte.
fn unicode_byte(code: u32) -> u8 {
    if (0xff01..=0xff5e).contains(&code) {
        (code - 0xfee0) as u8
    } else {
        (code & 0xff) as u8
    }
}

fn hex_n(bytes: &[u8]) -> Option<u32> {
    bytes
        .iter()
        .try_fold(0u32, |acc, b| Some(acc << 4 | hex(*b)? as u32))
}

fn decode_with<'a>(
    input: &'a [u8],
    trigger: &[u8],
    step: impl Fn(&[u8], usize, &mut Vec<u8>) -> usize,
) -> Cow<'a, [u8]> {
    if !input.iter().any(|b| trigger.contains(b)) {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        i += step(input, i, &mut out);
    }
    Cow::Owned(out)
}

fn url_step(input: &[u8], i: usize, out: &mut Vec<u8>, uni: bool) -> usize {
    match input[i] {
        b'+' => {
            out.push(b' ');
            1
        }
        b'%' => {
            if uni && matches!(input.get(i + 1), Some(b'u' | b'U')) {
                if let Some(code) = input.get(i + 2..i + 6).and_then(hex_n) {
                    out.push(unicode_byte(code));
                    return 6;
                }
            }
            match input.get(i + 1..i + 3).and_then(|h| hex2(h[0], h[1])) {
                Some(b) => {
                    out.push(b);
                    3
                }
                None => {
                    out.push(b'%');
                    1
                }
            }
        }
        b => {
            out.push(b);
            1
        }
    }
}

pub fn url_decode(input: &[u8]) -> Cow<'_, [u8]> {
    decode_with(input, b"%+", |s, i, o| url_step(s, i, o, false))
}

pub fn url_decode_uni(input: &[u8]) -> Cow<'_, [u8]> {
    decode_with(input, b"%+", |s, i, o| url_step(s, i, o, true))
}

pub fn html_entity_decode(input: &[u8]) -> Cow<'_, [u8]> {
    decode_with(input, b"&", |s, i, out| {
        if s[i] != b'&' {
            out.push(s[i]);
            return 1;
        }
        let rest = &s[i + 1..];
        let semicolon = |end: usize| usize::from(rest.get(end) == Some(&b';'));
        if rest.first() == Some(&b'#') {
            let (digits_at, radix) = match rest.get(1) {
                Some(b'x' | b'X') => (2, 16),
                _ => (1, 10),
            };
            let digits = rest[digits_at..]
                .iter()
                .take_while(|b| {
                    if radix == 16 {
                        b.is_ascii_hexdigit()
                    } else {
                        b.is_ascii_digit()
                    }
                })
                .count();
            if digits > 0 {
                let text = std::str::from_utf8(&rest[digits_at..digits_at + digits]).unwrap_or("0");
                let value = u32::from_str_radix(text, radix).unwrap_or(u32::MAX);
                out.push((value & 0xff) as u8);
                let end = digits_at + digits;
                return 1 + end + semicolon(end);
            }
        } else {
            for (name, byte) in [
                ("quot", b'"'),
                ("amp", b'&'),
                ("lt", b'<'),
                ("gt", b'>'),
                ("nbsp", 0xa0),
            ] {
                if rest.len() >= name.len()
                    && rest[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                {
                    out.push(byte);
                    return 1 + name.len() + semicolon(name.len());
                }
            }
        }
        out.push(b'&');
        1
    })
}

pub fn js_decode(input: &[u8]) -> Cow<'_, [u8]> {
    decode_with(input, b"\\", |s, i, out| {
        if s[i] != b'\\' || i + 1 >= s.len() {
            out.push(s[i]);
            return 1;
        }
        let c = s[i + 1];
        match c {
            b'u' => {
                if let Some(code) = s.get(i + 2..i + 6).and_then(hex_n) {
                    out.push(unicode_byte(code));
                    return 6;
                }
            }
            b'x' => {
                if let Some(b) = s.get(i + 2..i + 4).and_then(|h| hex2(h[0], h[1])) {
                    out.push(b);
                    return 4;
                }
            }
            b'0'..=b'7' => {
                let digits = s[i + 1..]
                    .iter()
                    .take(3)
                    .take_while(|b| (b'0'..=b'7').contains(*b))
                    .count();
                let mut v = 0u32;
                for d in &s[i + 1..i + 1 + digits] {
                    v = v * 8 + (d - b'0') as u32;
                }
                // Only values up to \377 are one byte: take fewer digits otherwise.
                if v > 0xff {
                    let v2 = (s[i + 1] - b'0') as u32 * 8 + (s[i + 2] - b'0') as u32;
                    out.push(v2 as u8);
                    return 3;
                }
                out.push(v as u8);
                return 1 + digits;
            }
            _ => {}
        }
        out.push(match c {
            b'a' => 0x07,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            other => other,
        });
        2
    })
}

pub fn css_decode(input: &[u8]) -> Cow<'_, [u8]> {
    decode_with(input, b"\\", |s, i, out| {
        if s[i] != b'\\' {
            out.push(s[i]);
            return 1;
        }
        let Some(&next) = s.get(i + 1) else {
            return 1; // a lone backslash at the end is dropped
        };
        if next == b'\n' {
            return 2;
        }
        let digits = s[i + 1..]
            .iter()
            .take(6)
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if digits == 0 {
            out.push(next);
            return 2;
        }
        let code = hex_n(&s[i + 1..i + 1 + digits]).unwrap_or(0);
        out.push(unicode_byte(code));
        let mut used = 1 + digits;
        if s.get(i + used).is_some_and(|b| b.is_ascii_whitespace()) {
            used += 1;
        }
        used
    })
}

pub fn escape_seq_decode(input: &[u8]) -> Cow<'_, [u8]> {
    decode_with(input, b"\\", |s, i, out| {
        if s[i] != b'\\' || i + 1 >= s.len() {
            out.push(s[i]);
            return 1;
        }
        let c = s[i + 1];
        let simple = match c {
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' | b'?' | b'\'' | b'"' => Some(c),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            return 2;
        }
        if c == b'x' {
            if let Some(b) = s.get(i + 2..i + 4).and_then(|h| hex2(h[0], h[1])) {
                out.push(b);
                return 4;
            }
        }
        if (b'0'..=b'7').contains(&c) {
            let digits = s[i + 1..]
                .iter()
                .take(3)
                .take_while(|b| (b'0'..=b'7').contains(*b))
                .count();
            let v = s[i + 1..i + 1 + digits]
                .iter()
                .fold(0u32, |v, d| v * 8 + (d - b'0') as u32);
            out.push((v & 0xff) as u8);
            return 1 + digits;
        }
        out.extend_from_slice(&s[i..i + 2]);
        2
    })
}

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

fn decode_b64(chars: &[u8]) -> Vec<u8> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    // Decode whole quanta, then what a partial last quantum holds, into one buffer; a part
    // that does not decode adds nothing.
    let whole = chars.len() / 4 * 4;
    let mut out = Vec::with_capacity(chars.len() / 4 * 3 + 2);
    let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
    if engine.decode_vec(&chars[..whole], &mut out).is_err() {
        out.clear();
    }
    let tail = &chars[whole..];
    if tail.len() >= 2 {
        let before = out.len();
        if LENIENT.decode_vec(tail, &mut out).is_err() {
            out.truncate(before);
        }
    }
    out
}

/// Decodes up to the first character that is not Base64.
pub fn base64_decode(input: &[u8]) -> Cow<'_, [u8]> {
    let valid = input.iter().take_while(|b| is_b64(**b)).count();
    Cow::Owned(decode_b64(&input[..valid]))
}

/// Decodes skipping every character that is not Base64.
pub fn base64_decode_ext(input: &[u8]) -> Cow<'_, [u8]> {
    let mut chars = Vec::with_capacity(input.len());
    chars.extend(input.iter().copied().filter(|b| is_b64(*b)));
    Cow::Owned(decode_b64(&chars))
}

pub fn hex_decode(input: &[u8]) -> Cow<'_, [u8]> {
    let decoded: Option<Vec<u8>> = input
        .chunks(2)
        .map(|p| (p.len() == 2).then(|| hex2(p[0], p[1])).flatten())
        .collect();
    match decoded {
        Some(d) => Cow::Owned(d),
        None => Cow::Borrowed(input),
    }
}

/// `0x414243` → `ABC`, anywhere in the input.
pub fn sql_hex_decode(input: &[u8]) -> Cow<'_, [u8]> {
    decode_with(input, b"0", |s, i, out| {
        if s[i] == b'0' && matches!(s.get(i + 1), Some(b'x' | b'X')) {
            let digits = s[i + 2..]
                .iter()
                .take_while(|b| b.is_ascii_hexdigit())
                .count()
                / 2
                * 2;
            if digits > 0 {
                for p in s[i + 2..i + 2 + digits].chunks(2) {
                    out.push(hex2(p[0], p[1]).unwrap_or(0));
                }
                return 2 + digits;
            }
        }
        out.push(s[i]);
        1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url() {
        assert_eq!(&*url_decode(b"a%20b+c%2"), b"a b c%2");
        assert_eq!(&*url_decode(b"%zz%41"), b"%zzA");
        assert_eq!(&*url_decode_uni(b"%u0041%uff1c%u2215x"), b"A<\x15x");
        assert!(matches!(url_decode(b"clean"), Cow::Borrowed(_)));
    }

    #[test]
    fn html_entities() {
        assert_eq!(
            &*html_entity_decode(b"&lt;script&gt; &#x41;&#66 &QUOT; &amp &foo;"),
            b"<script> AB \" & &foo;"
        );
        assert_eq!(&*html_entity_decode(b"&nbsp;"), &[0xa0]);
        assert_eq!(&*html_entity_decode(b"&#;"), b"&#;");
    }

    #[test]
    fn javascript() {
        assert_eq!(&*js_decode(br"\x41\u0042\103\n\q\"), b"ABC\nq\\");
        assert_eq!(&*js_decode(br"\uff1cscript"), b"<script");
        assert_eq!(&*js_decode(br"\400"), b" 0");
    }

    #[test]
    fn css() {
        assert_eq!(&*css_decode(br"\6a avascript"), b"javascript");
        assert_eq!(&*css_decode(b"a\\\nb\\;c\\"), b"ab;c");
        assert_eq!(&*css_decode(br"\0000410"), b"A0");
    }

    #[test]
    fn escapes() {
        assert_eq!(&*escape_seq_decode(br"\x41\102\n\\\q"), b"AB\n\\\\q");
    }

    #[test]
    fn base64_and_hex() {
        assert_eq!(&*base64_decode(b"SGVsbG8="), b"Hello");
        assert_eq!(&*base64_decode(b"SGVs!bG8="), b"Hel");
        assert_eq!(&*base64_decode_ext(b"SGV s!bG8="), b"Hello");
        assert_eq!(&*base64_decode(b"SGVsbA"), b"Hell");
        // Whole quanta and a tail, decoded into one buffer; a lone last character adds
        // nothing, a tail's trailing bits are allowed.
        assert_eq!(&*base64_decode(b"SGVsbG8gV29ybGQ"), b"Hello World");
        assert_eq!(&*base64_decode(b"SGVsb"), b"Hel");
        assert_eq!(&*base64_decode(b"SGVsbB"), b"Hell");
        assert_eq!(&*base64_decode(b""), b"");
        assert_eq!(&*hex_decode(b"414243"), b"ABC");
        assert_eq!(&*hex_decode(b"41z"), b"41z");
        assert_eq!(
            &*sql_hex_decode(b"select 0x414243, 0x4"),
            b"select ABC, 0x4"
        );
    }
}
