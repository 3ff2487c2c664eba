//! `a=1&b=2` bodies and query strings: names and values URL-decoded (`+` is a space).

use crate::waf::transforms::lookup;

/// The pairs of a query string or form body; a pair without `=` has an empty value.
pub fn parse(input: &[u8]) -> Vec<(String, Vec<u8>)> {
    let decode = lookup("urlDecode").expect("urlDecode exists");
    input
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            (
                String::from_utf8_lossy(&decode.run(k)).into_owned(),
                decode.run(v).into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs() {
        let p = parse(b"a=1&b=x+y%21&flag&&c=");
        assert_eq!(p.len(), 4);
        assert_eq!(p[1], ("b".to_string(), b"x y!".to_vec()));
        assert_eq!(p[2], ("flag".to_string(), b"".to_vec()));
    }
}
