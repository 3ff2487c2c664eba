//! `${CEL}` interpolation in config strings, split at load into literal and expression parts.

use super::{stringify, Expr, ExprEnv, ExprError, Phase, Scope};

#[derive(Debug)]
enum Part {
    Lit(String),
    Expr(Expr),
}

#[derive(Debug)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    pub fn compile(src: &str, phase: Phase) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = src;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Lit(rest[..start].to_string()));
            }
            let body = &rest[start + 2..];
            let end =
                closing_brace(body).ok_or_else(|| format!("unterminated `${{` in `{src}`"))?;
            let expr = &body[..end];
            if expr.trim().is_empty() {
                return Err(format!("empty `${{}}` in `{src}`"));
            }
            parts.push(Part::Expr(Expr::compile(expr, phase)?));
            rest = &body[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The text when the template has no `${}`.
    pub fn literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    pub fn render(&self, env: &ExprEnv, scope: &Scope<'_>) -> Result<String, ExprError> {
        if let Some(lit) = self.literal() {
            return Ok(lit.to_string());
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Expr(e) => stringify(&e.eval(env, scope)?, &mut out),
            }
        }
        Ok(out)
    }
}

/// Index of the `}` that closes a `${`, skipping braces inside CEL string literals and maps.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'\'' | b'"' => quote = Some(b),
                b'{' => depth += 1,
                b'}' if depth == 0 => return Some(i),
                b'}' => depth -= 1,
                _ => {}
            },
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_parts() {
        let t = Template::compile(
            "https://${getReqHeader('X-Acme-Api')[0]}.internal",
            Phase::Request,
        )
        .unwrap();
        assert_eq!(t.parts.len(), 3);
        assert!(t.literal().is_none());
        let t = Template::compile("plain", Phase::Request).unwrap();
        assert_eq!(t.literal(), Some("plain"));
        let t = Template::compile("${'}' + \"{\"}x", Phase::Request).unwrap();
        assert_eq!(t.parts.len(), 2);
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(Template::compile("a ${ b", Phase::Request).is_err());
        assert!(Template::compile("${}", Phase::Request).is_err());
        assert!(Template::compile("${1 +}", Phase::Request).is_err());
        assert!(Template::compile("${res.status_code}", Phase::Request).is_err());
    }
}
