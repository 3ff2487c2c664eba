//! Small typed readers over [`Node`] that turn shape mistakes into `file:line` errors.

use super::yaml::{Node, NodeKind};
use super::{ConfigError, Loc};

pub fn map<'n>(node: &'n Node, loc: &Loc, what: &str) -> Result<&'n [(Node, Node)], ConfigError> {
    node.as_map().ok_or_else(|| {
        loc.at(node).error(format!(
            "{what} must be a mapping, found {}",
            node.describe()
        ))
    })
}

pub fn seq<'n>(node: &'n Node, loc: &Loc, what: &str) -> Result<&'n [Node], ConfigError> {
    node.as_seq().ok_or_else(|| {
        loc.at(node)
            .error(format!("{what} must be a list, found {}", node.describe()))
    })
}

pub fn string<'n>(node: &'n Node, loc: &Loc, what: &str) -> Result<&'n str, ConfigError> {
    match &node.kind {
        NodeKind::Scalar(s, _) if !node.is_null() => Ok(s),
        _ => Err(loc.at(node).error(format!(
            "{what} must be a string, found {}",
            node.describe()
        ))),
    }
}

pub fn boolean(node: &Node, loc: &Loc, what: &str) -> Result<bool, ConfigError> {
    match &node.kind {
        NodeKind::Scalar(s, false) if s == "true" => Ok(true),
        NodeKind::Scalar(s, false) if s == "false" => Ok(false),
        _ => Err(loc.at(node).error(format!("{what} must be true or false"))),
    }
}

pub fn integer(node: &Node, loc: &Loc, what: &str) -> Result<i64, ConfigError> {
    match &node.kind {
        NodeKind::Scalar(s, false) => s.parse::<i64>().map_err(|_| {
            loc.at(node)
                .error(format!("{what} must be an integer, found `{s}`"))
        }),
        _ => Err(loc.at(node).error(format!("{what} must be an integer"))),
    }
}

/// Checks that a mapping has only the keys in `allowed`.
pub fn known_keys(node: &Node, loc: &Loc, what: &str, allowed: &[&str]) -> Result<(), ConfigError> {
    for (k, _) in map(node, loc, what)? {
        let key = string(k, loc, "a key")?;
        if !allowed.contains(&key) {
            return Err(loc.at(k).error(format!(
                "unknown field `{key}` in {what} (expected one of: {})",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

/// A duration such as `500ms`, `1s`, `60s`, `10m`, `2h`.
pub fn duration(node: &Node, loc: &Loc, what: &str) -> Result<std::time::Duration, ConfigError> {
    let s = string(node, loc, what)?;
    parse_duration(s).ok_or_else(|| {
        loc.at(node).error(format!(
            "{what} `{s}` is not a duration (e.g. 500ms, 10s, 5m, 1h)"
        ))
    })
}

pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("1s"),
            Some(std::time::Duration::from_secs(1))
        );
        assert_eq!(
            parse_duration("10m"),
            Some(std::time::Duration::from_secs(600))
        );
        assert_eq!(
            parse_duration("250ms"),
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
    }
}
