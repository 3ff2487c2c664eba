//! Path normalisation: `.` and `..` segments and repeated slashes resolved, a trailing slash
//! kept; the Windows variant first turns backslashes into slashes.

use std::borrow::Cow;

pub fn normalize_path(input: &[u8]) -> Cow<'_, [u8]> {
    if is_clean(input) {
        return Cow::Borrowed(input);
    }
    super::unless_same(input, clean(input))
}

pub fn normalize_path_win(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.contains(&b'\\') {
        return normalize_path(input);
    }
    let slashed: Vec<u8> = input
        .iter()
        .map(|b| if *b == b'\\' { b'/' } else { *b })
        .collect();
    Cow::Owned(clean(&slashed))
}

/// No `.` or `..` segment and no empty one but at the ends: [`clean`] would change nothing
/// (most paths, checked without building a copy).
fn is_clean(input: &[u8]) -> bool {
    let last = input.split(|b| *b == b'/').count() - 1;
    input
        .split(|b| *b == b'/')
        .enumerate()
        .all(|(i, seg)| match seg {
            b"." | b".." => false,
            b"" => i == 0 || i == last,
            _ => true,
        })
}

fn clean(input: &[u8]) -> Vec<u8> {
    if input.is_empty() {
        return Vec::new();
    }
    let rooted = input[0] == b'/';
    let trailing = input.len() > 1 && input.ends_with(b"/")
        || input.ends_with(b"/.")
        || input.ends_with(b"/..");
    let mut parts: Vec<&[u8]> = Vec::new();
    for seg in input.split(|b| *b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => match parts.last() {
                Some(last) if *last != b".." => {
                    parts.pop();
                }
                _ if !rooted => parts.push(seg),
                _ => {}
            },
            _ => parts.push(seg),
        }
    }
    if parts.is_empty() && !rooted {
        return b".".to_vec();
    }
    let mut out = Vec::with_capacity(input.len());
    if rooted {
        out.push(b'/');
    }
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(p);
    }
    if trailing && !out.ends_with(b"/") {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(&*normalize_path(b"/a/b/../c//./d"), b"/a/c/d");
        assert_eq!(&*normalize_path(b"/../../etc/passwd"), b"/etc/passwd");
        assert_eq!(&*normalize_path(b"../../etc/passwd"), b"../../etc/passwd");
        assert_eq!(&*normalize_path(b"a/b/"), b"a/b/");
        assert_eq!(&*normalize_path(b"a/.."), b".");
        assert!(matches!(normalize_path(b"/a/b"), Cow::Borrowed(_)));
        assert!(matches!(normalize_path(b"/a/b/"), Cow::Borrowed(_)));
        assert_eq!(&*normalize_path(b"/a/b/."), b"/a/b/");
        assert_eq!(&*normalize_path(b"./a"), b"a");
        assert_eq!(&*normalize_path(b"."), b".");
        assert_eq!(&*normalize_path(b"//a"), b"/a");
        assert_eq!(
            &*normalize_path_win(b"C:\\a\\..\\windows\\win.ini"),
            b"C:/windows/win.ini"
        );
    }
}
