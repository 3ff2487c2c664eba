//! `@validateByteRange` and `@validateUrlEncoding`: they match when the input is NOT valid.

use super::ByteSet;

/// The bytes outside the ranges `arg` allows: a value matches when it holds one of them.
pub fn byte_ranges(arg: &str) -> Result<ByteSet, String> {
    let mut allowed = ByteSet::default();
    for part in arg.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |s: &str| {
            s.trim()
                .parse::<u8>()
                .map_err(|_| format!("@validateByteRange: `{part}` is not a byte or byte range"))
        };
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(part)?;
                (n, n)
            }
        };
        if a <= b {
            allowed = allowed.or(ByteSet::span(a, b));
        }
    }
    Ok(allowed.complement())
}

pub fn bad_url_encoding(value: &[u8]) -> bool {
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'%' {
            let ok = value.len() > i + 2
                && value[i + 1].is_ascii_hexdigit()
                && value[i + 2].is_ascii_hexdigit();
            if !ok {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_encodings() {
        let outside = byte_ranges("32-126, 9").unwrap();
        assert!(!outside.contains(b'a') && !outside.contains(9));
        assert!(outside.contains(0) && outside.contains(127) && outside.contains(255));
        assert!(byte_ranges("10-5").unwrap().contains(7));
        assert!(byte_ranges("1-300").is_err());
        assert!(bad_url_encoding(b"a%2"));
        assert!(bad_url_encoding(b"%zz"));
        assert!(!bad_url_encoding(b"a%20b"));
    }
}
