//! Whitespace, NUL bytes, and `cmdLine` (the shell-evasion normaliser).

use std::borrow::Cow;

/// `isspace()` plus NBSP (0xa0), as ModSecurity counts whitespace.
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0)
}

pub fn compress_whitespace(input: &[u8]) -> Cow<'_, [u8]> {
    let needs = input.windows(2).any(|w| is_ws(w[0]) && is_ws(w[1]))
        || input.iter().any(|b| is_ws(*b) && *b != b' ');
    if !needs {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut in_ws = false;
    for &b in input {
        if is_ws(b) {
            if !in_ws {
                out.push(b' ');
            }
            in_ws = true;
        } else {
            out.push(b);
            in_ws = false;
        }
    }
    Cow::Owned(out)
}

fn remove_where(input: &[u8], f: impl Fn(u8) -> bool) -> Cow<'_, [u8]> {
    if !input.iter().any(|b| f(*b)) {
        return Cow::Borrowed(input);
    }
    // Sized once: a filter's own size hint would grow the copy by doubling.
    let mut out = Vec::with_capacity(input.len());
    out.extend(input.iter().copied().filter(|b| !f(*b)));
    Cow::Owned(out)
}

pub fn remove_whitespace(input: &[u8]) -> Cow<'_, [u8]> {
    remove_where(input, is_ws)
}

pub fn remove_nulls(input: &[u8]) -> Cow<'_, [u8]> {
    remove_where(input, |b| b == 0)
}

pub fn replace_nulls(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.contains(&0) {
        return Cow::Borrowed(input);
    }
    Cow::Owned(
        input
            .iter()
            .map(|b| if *b == 0 { b' ' } else { *b })
            .collect(),
    )
}

pub fn trim_left(input: &[u8]) -> Cow<'_, [u8]> {
    let start = input.iter().position(|b| !is_ws(*b)).unwrap_or(input.len());
    Cow::Borrowed(&input[start..])
}

pub fn trim_right(input: &[u8]) -> Cow<'_, [u8]> {
    let end = input.iter().rposition(|b| !is_ws(*b)).map_or(0, |p| p + 1);
    Cow::Borrowed(&input[..end])
}

pub fn trim(input: &[u8]) -> Cow<'_, [u8]> {
    match trim_left(input) {
        Cow::Borrowed(b) => trim_right(b),
        Cow::Owned(_) => unreachable!("trim_left borrows"),
    }
}

/// Deletes `\ " ' ^`, turns `, ;` and whitespace runs into one space, drops a space before
/// `/` or `(`, and lower-cases: `c^at /e\tc/pa""sswd` reads as `cat/etc/passwd`.
pub fn cmd_line(input: &[u8]) -> Cow<'_, [u8]> {
    // Nothing to delete, lower-case or squeeze: the common case, without a copy.
    let unchanged = input.iter().enumerate().all(|(i, b)| match b {
        b'"' | b'\'' | b'\\' | b'^' | b',' | b';' | b'\t' | b'\r' | b'\n' => false,
        b' ' => !matches!(input.get(i + 1), Some(b' ' | b'/' | b'(')),
        _ => !b.is_ascii_uppercase(),
    });
    if unchanged {
        return Cow::Borrowed(input);
    }
    let mut out: Vec<u8> = Vec::with_capacity(input.len());
    let mut space = false;
    for &b in input {
        match b {
            b'"' | b'\'' | b'\\' | b'^' => {}
            b' ' | b',' | b';' | b'\t' | b'\r' | b'\n' => {
                if !space {
                    out.push(b' ');
                    space = true;
                }
            }
            b'/' | b'(' => {
                if space {
                    out.pop();
                }
                space = false;
                out.push(b);
            }
            other => {
                out.push(other.to_ascii_lowercase());
                space = false;
            }
        }
    }
    super::unless_same(input, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace() {
        assert_eq!(&*compress_whitespace(b"a \t\n b\xa0c"), b"a b c");
        assert!(matches!(compress_whitespace(b"a b"), Cow::Borrowed(_)));
        assert_eq!(&*remove_whitespace(b" a\tb \xa0"), b"ab");
        assert_eq!(&*trim(b"  a b \n"), b"a b");
        assert_eq!(&*trim(b"   "), b"");
        assert_eq!(&*remove_nulls(b"a\0b"), b"ab");
        assert_eq!(&*replace_nulls(b"a\0b"), b"a b");
    }

    #[test]
    fn command_lines() {
        assert_eq!(&*cmd_line(b"c^at /e\\tc/pa\"\"sswd"), b"cat/etc/passwd");
        assert_eq!(&*cmd_line(b"Ping ,; -c 1  (x)"), b"ping -c 1(x)");
        assert!(matches!(cmd_line(b"ls -la x/y"), Cow::Borrowed(_)));
        assert_eq!(&*cmd_line(b"ls /tmp"), b"ls/tmp");
        assert_eq!(&*cmd_line(b"a  b"), b"a b");
    }
}
