//! Encoders and digests: %u for UTF-8, hex, Base64, URL encoding, MD5/SHA-1 (raw bytes), length.

use base64::Engine;
use md5::Digest as _;
use std::borrow::Cow;

/// Multi-byte UTF-8 characters become `%uHHHH`; ASCII and invalid bytes stay.
pub fn utf8_to_unicode(input: &[u8]) -> Cow<'_, [u8]> {
    if input.is_ascii() {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len() * 2);
    let mut rest = input;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_unicode(s, &mut out);
                break;
            }
            Err(e) => {
                let good = e.valid_up_to();
                push_unicode(std::str::from_utf8(&rest[..good]).unwrap_or(""), &mut out);
                let bad = e.error_len().unwrap_or(rest.len() - good);
                out.extend_from_slice(&rest[good..good + bad]);
                rest = &rest[good + bad..];
            }
        }
    }
    Cow::Owned(out)
}

fn push_unicode(s: &str, out: &mut Vec<u8>) {
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c as u8);
        } else {
            out.extend_from_slice(format!("%u{:04x}", c as u32 & 0xffff).as_bytes());
        }
    }
}

pub fn hex_encode(input: &[u8]) -> Cow<'_, [u8]> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(input.len() * 2);
    for b in input {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 0xf) as usize]);
    }
    Cow::Owned(out)
}

pub fn base64_encode(input: &[u8]) -> Cow<'_, [u8]> {
    Cow::Owned(
        base64::engine::general_purpose::STANDARD
            .encode(input)
            .into_bytes(),
    )
}

pub fn url_encode(input: &[u8]) -> Cow<'_, [u8]> {
    let keep = |b: u8| b.is_ascii_alphanumeric() || b"-_.*".contains(&b);
    if input.iter().all(|b| keep(*b)) {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len() * 3);
    for &b in input {
        if keep(b) {
            out.push(b);
        } else if b == b' ' {
            out.push(b'+');
        } else {
            out.extend_from_slice(format!("%{b:02x}").as_bytes());
        }
    }
    Cow::Owned(out)
}

pub fn md5(input: &[u8]) -> Cow<'_, [u8]> {
    Cow::Owned(md5::Md5::digest(input).to_vec())
}

pub fn sha1(input: &[u8]) -> Cow<'_, [u8]> {
    Cow::Owned(sha1::Sha1::digest(input).to_vec())
}

pub fn length(input: &[u8]) -> Cow<'_, [u8]> {
    Cow::Owned(input.len().to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(&*utf8_to_unicode("aé€".as_bytes()), b"a%u00e9%u20ac");
        assert_eq!(&*utf8_to_unicode(&[b'a', 0xff, b'b']), &[b'a', 0xff, b'b']);
        assert_eq!(&*hex_encode(b"AB\n"), b"41420a");
        assert_eq!(&*base64_encode(b"Hello"), b"SGVsbG8=");
        assert_eq!(&*url_encode(b"a b&c"), b"a+b%26c");
        assert_eq!(md5(b"").len(), 16);
        assert_eq!(
            &*hex_encode(&sha1(b"abc")),
            b"a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(&*length(b"abcd"), b"4");
    }
}
