//! `%{collection.key}` macros in action and operator arguments, split once at load.

use super::collections::KnownKey;

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Lit(String),
    /// Upper-case collection, lower-case key (`%{tx.Score}` → `TX`, `score`).
    Var {
        collection: String,
        key: Option<String>,
        /// The key's hash and number.
        known: Option<KnownKey>,
        /// The collection's variable slot, resolved once here.
        slot: Option<usize>,
    },
}

/// The variable slot of a collection name (case-insensitive).
pub fn slot_of(collection: &str) -> Option<usize> {
    let name = super::seclang::names::variable(collection)?;
    super::seclang::names::VARIABLES
        .iter()
        .position(|v| *v == name)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(text: &str) -> Template {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("%{") {
            let Some(len) = rest[start + 2..].find('}') else {
                break;
            };
            if start > 0 {
                parts.push(Part::Lit(rest[..start].to_string()));
            }
            let inner = &rest[start + 2..start + 2 + len];
            let (collection, key) = match inner.split_once('.') {
                Some((c, k)) => (c, Some(k.to_ascii_lowercase())),
                None => (inner, None),
            };
            parts.push(Part::Var {
                collection: collection.to_ascii_uppercase(),
                known: key.as_deref().map(KnownKey::of),
                key,
                slot: slot_of(collection),
            });
            rest = &rest[start + 2 + len + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        Template { parts }
    }

    pub fn literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts() {
        let t = Template::parse("+%{tx.Critical_Anomaly_Score}");
        assert_eq!(
            t.parts(),
            [
                Part::Lit("+".into()),
                Part::Var {
                    collection: "TX".into(),
                    key: Some("critical_anomaly_score".into()),
                    known: Some(KnownKey::of("critical_anomaly_score")),
                    slot: slot_of("TX"),
                }
            ]
        );
        assert_eq!(Template::parse("plain").literal(), Some("plain"));
        assert_eq!(
            Template::parse("%{MATCHED_VAR}").parts()[0],
            Part::Var {
                collection: "MATCHED_VAR".into(),
                key: None,
                known: None,
                slot: slot_of("MATCHED_VAR"),
            }
        );
    }
}
