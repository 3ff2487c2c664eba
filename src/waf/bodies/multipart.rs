//! `multipart/form-data` bodies: fields become arguments, files fill `FILES` and
//! `FILES_NAMES`, and each part's headers `MULTIPART_PART_HEADERS`.

#[derive(Debug, Default)]
pub struct Parsed {
    pub args: Vec<(String, Vec<u8>)>,
    /// (field name, file name, size)
    pub files: Vec<(String, String, usize)>,
    pub part_headers: Vec<(String, Vec<u8>)>,
    /// Something a strict parser would reject (MULTIPART_STRICT_ERROR).
    pub strict_error: bool,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The `;`-separated `key=value` parameters of a header value; a quoted value may hold `;`.
fn params(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        // key
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ';' {
                break;
            }
            key.push(c);
            chars.next();
        }
        let mut val = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        // As ModSecurity: only `\"` and `\\` are escapes; any other
                        // backslash stays (browsers send Windows paths unescaped).
                        '\\' => match chars.peek() {
                            Some(&n) if n == '"' || n == '\\' => {
                                val.push(n);
                                chars.next();
                            }
                            _ => val.push('\\'),
                        },
                        '"' => break,
                        c => val.push(c),
                    }
                }
                while chars.peek().is_some_and(|c| *c != ';') {
                    chars.next();
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ';' {
                        break;
                    }
                    val.push(c);
                    chars.next();
                }
            }
        }
        if !key.trim().is_empty() {
            out.push((key.trim().to_ascii_lowercase(), val.trim().to_string()));
        }
        if chars.next().is_none() {
            break;
        }
    }
    out
}

/// `boundary=...` from a Content-Type value.
pub fn boundary(content_type: &str) -> Option<String> {
    params(content_type)
        .into_iter()
        .find(|(k, _)| k == "boundary")
        .map(|(_, v)| v)
}

fn param(disposition: &str, name: &str) -> Option<String> {
    params(disposition)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

pub fn parse(body: &[u8], boundary: &str) -> Parsed {
    let mut out = Parsed::default();
    let delim = format!("--{boundary}");
    let mut rest = match find(body, delim.as_bytes()) {
        Some(p) => &body[p + delim.len()..],
        None => {
            out.strict_error = true;
            return out;
        }
    };
    loop {
        if rest.starts_with(b"--") {
            break;
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .or_else(|| rest.strip_prefix(b"\n"))
            .unwrap_or(rest);
        let next = find(rest, delim.as_bytes());
        let part = match next {
            Some(p) => &rest[..p],
            None => {
                out.strict_error = true;
                rest
            }
        };
        let part = part
            .strip_suffix(b"\r\n")
            .or_else(|| part.strip_suffix(b"\n"))
            .unwrap_or(part);
        let (head, content) = match find(part, b"\r\n\r\n") {
            Some(p) => (&part[..p], &part[p + 4..]),
            None => match find(part, b"\n\n") {
                Some(p) => (&part[..p], &part[p + 2..]),
                None => {
                    out.strict_error = true;
                    (part, &b""[..])
                }
            },
        };
        let mut name = String::new();
        let mut filename = None;
        for line in String::from_utf8_lossy(head).lines() {
            if let Some((k, v)) = line.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-disposition") {
                    name = param(v, "name").unwrap_or_default();
                    filename = param(v, "filename");
                }
            }
            if !line.trim().is_empty() {
                out.part_headers
                    .push((name.clone(), line.trim().as_bytes().to_vec()));
            }
        }
        match filename {
            Some(f) => out.files.push((name, f, content.len())),
            None => out.args.push((name, content.to_vec())),
        }
        match next {
            Some(p) => rest = &rest[p + delim.len()..],
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_files() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue a\r\n--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.php\"\r\nContent-Type: text/plain\r\n\r\n<?php ?>\r\n--XX\r\nContent-Disposition: form-data; name=\"g\"; filename=\"y.txt\"\r\n\r\nhi\r\n--XX--\r\n";
        let p = parse(body, "XX");
        assert_eq!(p.args, [("a".to_string(), b"value a".to_vec())]);
        assert_eq!(p.files.len(), 2);
        assert_eq!(p.files[0], ("f".to_string(), "x.php".to_string(), 8));
        assert!(!p.strict_error);
        assert_eq!(
            boundary("multipart/form-data; boundary=\"XX\"").as_deref(),
            Some("XX")
        );
        assert!(parse(b"garbage", "XX").strict_error);
    }

    #[test]
    fn quoted_values_unescape_only_quote_and_backslash() {
        let d = r#"form-data; name="cv.p\d\f"; filename="a\"b\\c""#;
        assert_eq!(param(d, "name").as_deref(), Some(r"cv.p\d\f"));
        assert_eq!(param(d, "filename").as_deref(), Some(r#"a"b\c"#));
    }
}
