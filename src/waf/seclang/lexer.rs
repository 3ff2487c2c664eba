//! SecLang text → directives: comments and blank lines dropped, backslash-continued lines
//! joined, each directive split into words the way Apache's config reader does (a double-quoted
//! word may contain spaces; `\"` inside it is a quote, any other backslash stays).

/// One directive's text and the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Logical {
    pub line: usize,
    pub text: String,
}

pub fn logical_lines(src: &str) -> Vec<Logical> {
    let mut out = Vec::new();
    let mut current: Option<Logical> = None;
    for (i, raw) in src.lines().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let (body, continued) = match line.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (line, false),
        };
        match current.as_mut() {
            Some(cur) => cur.text.push_str(body),
            None => {
                let trimmed = body.trim_start();
                if trimmed.is_empty() && !continued {
                    continue;
                }
                if trimmed.starts_with('#') {
                    continue;
                }
                current = Some(Logical {
                    line: i + 1,
                    text: body.to_string(),
                });
            }
        }
        if !continued {
            if let Some(done) = current.take() {
                if !done.text.trim().is_empty() {
                    out.push(done);
                }
            }
        }
    }
    if let Some(done) = current.take() {
        if !done.text.trim().is_empty() {
            out.push(done);
        }
    }
    out
}

/// Splits a directive into words.
pub fn words(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == '\\' && chars.peek() == Some(&first) {
                    word.push(first);
                    chars.next();
                } else if c == first {
                    closed = true;
                    break;
                } else {
                    word.push(c);
                }
            }
            if !closed {
                return Err(format!("unterminated {first}-quoted argument"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(word);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_and_comments() {
        let src = "# comment\nSecRule ARGS \"@rx a\" \\\n    \"id:1,\\\n    phase:2\"\n\n  # indented comment\nSecMarker END\n";
        let lines = logical_lines(src);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].line, 2);
        assert_eq!(
            lines[0].text,
            "SecRule ARGS \"@rx a\"     \"id:1,    phase:2\""
        );
        assert_eq!(
            lines[1],
            Logical {
                line: 7,
                text: "SecMarker END".into()
            }
        );
    }

    #[test]
    fn quoted_words_keep_backslashes_but_unescape_quotes() {
        let w = words(r#"SecRule REQUEST_URI "@rx a\"b\d+" "id:1,msg:'x y'""#).unwrap();
        assert_eq!(
            w,
            ["SecRule", "REQUEST_URI", r#"@rx a"b\d+"#, "id:1,msg:'x y'"]
        );
        assert!(words("SecRule ARGS \"@rx a").is_err());
    }
}
