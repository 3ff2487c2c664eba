//! JSON bodies: every scalar becomes an argument named by its path (`json.a.b`, `json.list.0`),
//! and a non-empty array one holding its length (`json.list`), as Coraza names them. Nesting
//! is capped.

use serde_json::Value;

const MAX_DEPTH: usize = 64;

pub fn parse(input: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let v: Value = serde_json::from_slice(input).map_err(|e| format!("JSON parsing error: {e}"))?;
    let mut out = Vec::new();
    walk(&v, "json".to_string(), 0, &mut out)?;
    Ok(out)
}

fn walk(
    v: &Value,
    path: String,
    depth: usize,
    out: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("JSON nested too deeply".into());
    }
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                walk(v, format!("{path}.{k}"), depth + 1, out)?;
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                walk(v, format!("{path}.{i}"), depth + 1, out)?;
            }
            // As Coraza: a non-empty array is also an argument of its own, holding its
            // length, so rules on ARGS_NAMES see the array's name (934210).
            if !a.is_empty() {
                out.push((path, a.len().to_string().into_bytes()));
            }
        }
        Value::String(s) => out.push((path, s.clone().into_bytes())),
        Value::Null => out.push((path, Vec::new())),
        other => out.push((path, other.to_string().into_bytes())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_paths() {
        let a = parse(br#"{"user":{"name":"ada","tags":["x",1]},"ok":true}"#).unwrap();
        assert!(a.contains(&("json.user.name".into(), b"ada".to_vec())));
        assert!(a.contains(&("json.user.tags.1".into(), b"1".to_vec())));
        assert!(a.contains(&("json.ok".into(), b"true".to_vec())));
        assert!(a.contains(&("json.user.tags".into(), b"2".to_vec())));
        assert!(parse(b"{bad").is_err());
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
