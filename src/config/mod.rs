//! Config documents (`Gateway`, `CloudEndpoint`, `AgentEndpoint`, `NgrokTrafficPolicy`) turned
//! into a typed model. Every error carries the file and line it comes from.

mod documents;
pub mod read;
mod url;
pub mod yaml;

pub use documents::{
    Binding, EndpointDoc, EndpointKind, GatewaySpec, ListenerSpec, PolicySource, RateLimitStore,
    UpstreamSpec,
};
pub use url::{EndpointUrl, Scheme, UpstreamUrl};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yaml::Node;

/// Where something was written: file and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: Arc<str>,
    pub line: usize,
}

impl Loc {
    pub fn at(&self, node: &Node) -> Loc {
        Loc {
            file: self.file.clone(),
            line: node.line,
        }
    }

    pub fn error(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            loc: self.clone(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0 stands for the file (or directory) as a whole.
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}", self.file, self.line)
        }
    }
}

/// One config error: `file:line: reason`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{loc}: {reason}")]
pub struct ConfigError {
    pub loc: Loc,
    pub reason: String,
}

/// Every error found in one load, in file order.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// A named `NgrokTrafficPolicy` document.
#[derive(Debug, Clone)]
pub struct NamedPolicy {
    pub name: String,
    pub loc: Loc,
    pub policy: Node,
}

/// All documents of a config, parsed and checked for shape (policies are compiled later).
#[derive(Debug, Clone)]
pub struct Config {
    pub gateway: GatewaySpec,
    pub endpoints: Vec<EndpointDoc>,
    pub policies: Vec<NamedPolicy>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
}

/// The YAML files a config path stands for: the file itself, or every `*.yaml`/`*.yml` of a
/// directory in name order.
pub fn config_files(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let loc = Loc {
        file: path.display().to_string().into(),
        line: 0,
    };
    let meta = std::fs::metadata(path).map_err(|e| loc.error(format!("cannot read: {e}")))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| loc.error(format!("cannot read directory: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(loc.error("no *.yaml or *.yml files in this directory"));
    }
    Ok(files)
}

/// Reads and parses a config file or directory.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let files = config_files(path)?;
    let mut sources = Vec::with_capacity(files.len());
    for file in &files {
        let loc = Loc {
            file: file.display().to_string().into(),
            line: 0,
        };
        let text =
            std::fs::read_to_string(file).map_err(|e| loc.error(format!("cannot read: {e}")))?;
        sources.push((loc.file, text));
    }
    let mut config = parse_sources(
        sources.iter().map(|(f, t)| (f.clone(), t.as_str())),
        &path.display().to_string(),
    )?;
    config.files = files;
    Ok(config)
}

/// Parses config documents from in-memory sources: `(file name, text)` pairs.
pub fn parse_sources<'a>(
    sources: impl IntoIterator<Item = (Arc<str>, &'a str)>,
    origin: &str,
) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut gateway: Option<(GatewaySpec, Loc)> = None;
    let mut endpoints = Vec::new();
    let mut policies = Vec::new();
    for (file, text) in sources {
        let file_loc = Loc {
            file: file.clone(),
            line: 1,
        };
        let docs = match yaml::parse_documents(text) {
            Ok(d) => d,
            Err(e) => {
                errors.push(ConfigError {
                    loc: Loc { file, line: e.line },
                    reason: e.reason,
                });
                continue;
            }
        };
        for doc in docs.iter().filter(|d| !d.is_null()) {
            let loc = file_loc.at(doc);
            let result = documents::parse_document(doc, &loc);
            match result {
                Ok(documents::Document::Gateway(spec)) => {
                    if let Some((_, first)) = &gateway {
                        errors.push(loc.error(format!(
                            "a second Gateway document (the first is at {first}); at most one is allowed"
                        )));
                    } else {
                        gateway = Some((spec, loc));
                    }
                }
                Ok(documents::Document::Endpoint(ep)) => endpoints.push(*ep),
                Ok(documents::Document::Policy(p)) => policies.push(p),
                Err(e) => errors.extend(e.0),
            }
        }
    }
    check_policy_names(&policies, &mut errors);
    let gateway = match gateway {
        Some((g, _)) => Some(g),
        // Other errors come first: a broken file may be the one meant to hold the Gateway.
        None if !errors.is_empty() => None,
        None => {
            errors.push(ConfigError {
                loc: Loc {
                    file: origin.into(),
                    line: 0,
                },
                reason: "no Gateway document: add one (kind: Gateway) with spec.listeners".into(),
            });
            None
        }
    };
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(Config {
        gateway: gateway.expect("checked above"),
        endpoints,
        policies,
        files: Vec::new(),
    })
}

fn check_policy_names(policies: &[NamedPolicy], errors: &mut Vec<ConfigError>) {
    for (i, p) in policies.iter().enumerate() {
        if let Some(first) = policies[..i].iter().find(|q| q.name == p.name) {
            errors.push(p.loc.error(format!(
                "NgrokTrafficPolicy `{}` is defined twice (also at {})",
                p.name, first.loc
            )));
        }
    }
}
