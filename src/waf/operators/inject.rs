//! `@detectSQLi` / `@detectXSS` with libinjection (the pure-Rust `libinjectionrs`).

use super::Captures;
use libinjectionrs::{SqliFlags, SqliState};

pub fn sqli(value: &[u8], captures: Option<&mut Captures>) -> bool {
    // `detect_sqli` fingerprints the input once more after deciding, for its result: only a
    // match needs that fingerprint.
    let mut state = SqliState::new(value, SqliFlags::FLAG_NONE);
    if !state.detect() {
        return false;
    }
    if let Some(c) = captures {
        c.groups = vec![state.get_fingerprint().as_str().as_bytes().to_vec()];
    }
    true
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
