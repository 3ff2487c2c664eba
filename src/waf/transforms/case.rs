//! Case and parity: byte-wise, ASCII only (as ModSecurity's `tolower`).

use std::borrow::Cow;

fn map_bytes(input: &[u8], changes: impl Fn(u8) -> bool, f: impl Fn(u8) -> u8) -> Cow<'_, [u8]> {
    if !input.iter().any(|b| changes(*b)) {
        return Cow::Borrowed(input);
    }
    Cow::Owned(input.iter().map(|b| f(*b)).collect())
}

pub fn lowercase(input: &[u8]) -> Cow<'_, [u8]> {
    map_bytes(
        input,
        |b| b.is_ascii_uppercase(),
        |b| b.to_ascii_lowercase(),
    )
}

pub fn uppercase(input: &[u8]) -> Cow<'_, [u8]> {
    map_bytes(
        input,
        |b| b.is_ascii_lowercase(),
        |b| b.to_ascii_uppercase(),
    )
}

pub fn parity_zero_7bit(input: &[u8]) -> Cow<'_, [u8]> {
    map_bytes(input, |b| b & 0x80 != 0, |b| b & 0x7f)
}

fn with_parity(b: u8, odd: bool) -> u8 {
    let b = b & 0x7f;
    let ones_odd = b.count_ones() % 2 == 1;
    if ones_odd != odd {
        b | 0x80
    } else {
        b
    }
}

pub fn parity_even_7bit(input: &[u8]) -> Cow<'_, [u8]> {
    map_bytes(
        input,
        |b| with_parity(b, false) != b,
        |b| with_parity(b, false),
    )
}

pub fn parity_odd_7bit(input: &[u8]) -> Cow<'_, [u8]> {
    map_bytes(
        input,
        |b| with_parity(b, true) != b,
        |b| with_parity(b, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_only() {
        assert_eq!(&*lowercase("ABC é Ü".as_bytes()), "abc é Ü".as_bytes());
        assert!(matches!(lowercase(b"abc"), Cow::Borrowed(_)));
        assert_eq!(&*uppercase(b"aBc"), b"ABC");
        assert_eq!(&*parity_zero_7bit(&[0xc1]), &[0x41]);
        assert_eq!(parity_even_7bit(b"A")[0].count_ones() % 2, 0);
        assert_eq!(parity_odd_7bit(b"A")[0].count_ones() % 2, 1);
    }
}
