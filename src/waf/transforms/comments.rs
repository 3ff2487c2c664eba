//! Comments: removed, their markers removed, or replaced by one space.

use std::borrow::Cow;

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Drops `/* … */` and `<!-- … -->` (to the end when unterminated), and everything from a
/// `--` or `#` on.
pub fn remove_comments(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.iter().any(|b| matches!(b, b'/' | b'<' | b'-' | b'#')) {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let rest = &input[i..];
        if rest.starts_with(b"/*") {
            i += find(&rest[2..], b"*/").map_or(rest.len(), |p| p + 4);
        } else if rest.starts_with(b"<!--") {
            i += find(&rest[4..], b"-->").map_or(rest.len(), |p| p + 7);
        } else if rest.starts_with(b"--") || rest[0] == b'#' {
            break;
        } else {
            out.push(rest[0]);
            i += 1;
        }
    }
    super::unless_same(input, out)
}

/// Drops the comment markers `/*`, `*/`, `<!--`, `-->`, `--` and `#`, keeping the text.
pub fn remove_comments_char(input: &[u8]) -> Cow<'_, [u8]> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let rest = &input[i..];
        let skip = [&b"<!--"[..], b"-->", b"/*", b"*/", b"--", b"#"]
            .iter()
            .find(|m| rest.starts_with(m))
            .map(|m| m.len());
        match skip {
            Some(n) => i += n,
            None => {
                out.push(rest[0]);
                i += 1;
            }
        }
    }
    super::unless_same(input, out)
}

/// Each `/* … */` (or an unterminated `/* …`) becomes one space.
pub fn replace_comments(input: &[u8]) -> Cow<'_, [u8]> {
    if find(input, b"/*").is_none() {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let rest = &input[i..];
        if rest.starts_with(b"/*") {
            out.push(b' ');
            i += find(&rest[2..], b"*/").map_or(rest.len(), |p| p + 4);
        } else {
            out.push(rest[0]);
            i += 1;
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments() {
        assert_eq!(
            &*remove_comments(b"sel/*x*/ect <!--y-->1 -- rest"),
            b"select 1 "
        );
        assert_eq!(&*remove_comments(b"a/*open"), b"a");
        assert_eq!(&*remove_comments_char(b"sel/*x*/ect#"), b"selxect");
        assert_eq!(&*replace_comments(b"un/**/ion/*x"), b"un ion ");
        assert!(matches!(replace_comments(b"plain"), Cow::Borrowed(_)));
    }
}
