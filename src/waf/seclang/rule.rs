//! The three parts of a `SecRule`: its variables, its operator and its action list.

use super::names;

/// A key selector after `COLLECTION:`: a literal name or a `/regex/`.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    Key(String),
    Regex(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct VarSpec {
    /// `!ARGS:foo`: remove this target from the rule.
    pub exclude: bool,
    /// `&ARGS`: the number of matching entries instead of their values.
    pub count: bool,
    /// Canonical upper-case name.
    pub name: &'static str,
    pub selector: Option<Selector>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OperatorSpec {
    pub negated: bool,
    pub name: &'static str,
    pub argument: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActionSpec {
    pub name: &'static str,
    pub value: Option<String>,
}

/// `ARGS|!ARGS:foo|&TX:x|REQUEST_COOKIES:/^_ga/`. A `|` inside a `/regex/` selector does not
/// split.
pub fn variables(text: &str) -> Result<Vec<VarSpec>, String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut in_regex = false;
    let mut after_colon = false;
    let mut prev = '\0';
    for c in text.chars() {
        match c {
            '|' if !in_regex => {
                parts.push(std::mem::take(&mut current));
                after_colon = false;
                prev = c;
                continue;
            }
            ':' if !in_regex && !after_colon => after_colon = true,
            // XML selectors are XPath (`XML:/*`), not regexes.
            '/' if after_colon
                && prev == ':'
                && !current
                    .trim_start_matches(['!', '&'])
                    .eq_ignore_ascii_case("XML:") =>
            {
                in_regex = true
            }
            '/' if in_regex && prev != '\\' => in_regex = false,
            _ => {}
        }
        current.push(c);
        prev = c;
    }
    parts.push(current);
    parts.iter().map(|p| variable(p.trim())).collect()
}

fn variable(text: &str) -> Result<VarSpec, String> {
    let (exclude, rest) = match text.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (count, rest) = match rest.strip_prefix('&') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let (name, selector) = match rest.split_once(':') {
        Some((n, s)) => (n, Some(s)),
        None => (rest, None),
    };
    let canonical = names::variable(name).ok_or_else(|| format!("unknown variable `{name}`"))?;
    let selector = selector.map(|s| {
        let s = s.trim_matches('\'');
        match s.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
            Some(re) if s.len() >= 2 => Selector::Regex(re.to_string()),
            _ => Selector::Key(s.to_string()),
        }
    });
    Ok(VarSpec {
        exclude,
        count,
        name: canonical,
        selector,
    })
}

/// `@rx pattern`, `!@eq 0`, or a bare pattern (an implicit `@rx`).
pub fn operator(text: &str) -> Result<OperatorSpec, String> {
    let (negated, rest) = match text.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let Some(op) = rest.strip_prefix('@') else {
        return Ok(OperatorSpec {
            negated,
            name: "rx",
            argument: rest.to_string(),
        });
    };
    let (name, argument) = match op.split_once(|c: char| c.is_whitespace()) {
        Some((n, a)) => (n, a.trim_start()),
        None => (op, ""),
    };
    let canonical = names::operator(name).ok_or_else(|| format!("unknown operator `@{name}`"))?;
    Ok(OperatorSpec {
        negated,
        name: canonical,
        argument: argument.to_string(),
    })
}

/// `id:1,phase:2,t:none,msg:'a, b',setvar:'tx.x=+1'`: commas inside single quotes do not split.
pub fn actions(text: &str) -> Result<Vec<ActionSpec>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut prev = '\0';
    for c in text.chars() {
        if c == '\'' && prev != '\\' {
            quoted = !quoted;
        }
        if c == ',' && !quoted {
            push_action(&mut out, &current)?;
            current.clear();
        } else {
            current.push(c);
        }
        prev = c;
    }
    if quoted {
        return Err("unterminated single quote in the action list".into());
    }
    push_action(&mut out, &current)?;
    Ok(out)
}

fn push_action(out: &mut Vec<ActionSpec>, raw: &str) -> Result<(), String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(());
    }
    let (name, value) = match raw.split_once(':') {
        Some((n, v)) => (n.trim(), Some(unquote(v.trim()))),
        None => (raw, None),
    };
    let canonical = names::ACTIONS
        .iter()
        .find(|a| **a == name)
        .copied()
        .ok_or_else(|| format!("unknown action `{name}`"))?;
    if canonical == "t" {
        let t = value.as_deref().unwrap_or("");
        names::transformation(t).ok_or_else(|| format!("unknown transformation `t:{t}`"))?;
    }
    out.push(ActionSpec {
        name: canonical,
        value,
    });
    Ok(())
}

fn unquote(v: &str) -> String {
    match v.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        Some(inner) if v.len() >= 2 => inner.replace("\\'", "'"),
        _ => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_with_selectors_exclusions_and_counts() {
        let v = variables("REQUEST_COOKIES|!REQUEST_COOKIES:/__utm|x/|&ARGS|args_names|TX:ANOMALY")
            .unwrap();
        assert_eq!(v.len(), 5);
        assert_eq!(v[4].selector, Some(Selector::Key("ANOMALY".into())));
        assert_eq!(v[1].selector, Some(Selector::Regex("__utm|x".into())));
        assert!(v[1].exclude);
        assert!(v[2].count && v[2].name == "ARGS");
        assert_eq!(v[3].name, "ARGS_NAMES");
        assert!(variables("ARGZ").is_err());
    }

    #[test]
    fn operators() {
        assert_eq!(operator("@rx ^a b$").unwrap().argument, "^a b$");
        let o = operator("!@within GET HEAD").unwrap();
        assert!(o.negated && o.name == "within" && o.argument == "GET HEAD");
        assert_eq!(operator("^implicit").unwrap().name, "rx");
        assert_eq!(operator("@unconditionalMatch").unwrap().argument, "");
        assert!(operator("@teleport x").is_err());
    }

    #[test]
    fn action_lists() {
        let a = actions("id:1, phase:2,msg:'a, b',t:none,t:base64decode,setvar:'tx.x=+1',chain")
            .unwrap();
        assert_eq!(a.len(), 7);
        assert_eq!(a[2].value.as_deref(), Some("a, b"));
        assert_eq!(a[5].value.as_deref(), Some("tx.x=+1"));
        assert!(actions("id:1,t:rot13").is_err());
        assert!(actions("id:1,explode").is_err());
        assert!(actions("msg:'open").is_err());
    }
}
