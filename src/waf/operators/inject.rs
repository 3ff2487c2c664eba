//! `@detectSQLi` / `@detectXSS` with libinjection (the pure-Rust `libinjectionrs`).

use super::Captures;

pub fn sqli(value: &[u8], captures: Option<&mut Captures>) -> bool {
    let result = libinjectionrs::detect_sqli(value);
    if result.is_injection() {
        if let (Some(c), Some(fp)) = (captures, result.fingerprint) {
            c.groups = vec![fp.as_str().as_bytes().to_vec()];
        }
        return true;
    }
    false
}

pub fn xss(value: &[u8]) -> bool {
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
}
