//! SecLang, the ModSecurity rule language: files → [`Directive`]s with their file and line.
//! Every directive, variable, operator, action and transformation must be one this engine
//! knows; anything else is an error naming the file, line and name.

pub mod lexer;
pub mod names;
pub mod rule;

pub use rule::{ActionSpec, OperatorSpec, Selector, VarSpec};

use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct SecLangError {
    pub file: Arc<str>,
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineMode {
    On,
    Off,
    DetectionOnly,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Directive {
    Rule {
        variables: Vec<VarSpec>,
        operator: OperatorSpec,
        actions: Vec<ActionSpec>,
    },
    Action(Vec<ActionSpec>),
    Marker(String),
    DefaultAction(Vec<ActionSpec>),
    RuleEngine(EngineMode),
    RequestBodyAccess(bool),
    ResponseBodyAccess(bool),
    RemoveById(Vec<(u64, u64)>),
    RemoveByTag(String),
    RemoveByMsg(String),
    UpdateTargetById {
        ids: Vec<(u64, u64)>,
        targets: Vec<VarSpec>,
    },
    UpdateTargetByTag {
        tag: String,
        targets: Vec<VarSpec>,
    },
    UpdateActionById {
        id: u64,
        actions: Vec<ActionSpec>,
    },
    ComponentSignature(String),
    /// Directives about logging, storage and the host web server: read, with no effect on
    /// what the engine decides (named so that `check` can list them).
    NoEffect(&'static str),
}

/// A directive and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub file: Arc<str>,
    pub line: usize,
    pub directive: Directive,
}

/// Directives that change nothing this engine decides.
const NO_EFFECT: &[&str] = &[
    "SecAuditEngine",
    "SecAuditLog",
    "SecAuditLog2",
    "SecAuditLogDirMode",
    "SecAuditLogFileMode",
    "SecAuditLogFormat",
    "SecAuditLogParts",
    "SecAuditLogRelevantStatus",
    "SecAuditLogStorageDir",
    "SecAuditLogType",
    "SecCollectionTimeout",
    "SecDataDir",
    "SecDebugLog",
    "SecDebugLogLevel",
    "SecTmpDir",
    "SecUploadDir",
    "SecUploadFileMode",
    "SecUploadKeepFiles",
    "SecStatusEngine",
    "SecTmpSaveUploadedFiles",
    "SecServerSignature",
    "SecPcreMatchLimit",
    "SecPcreMatchLimitRecursion",
    "SecUnicodeMapFile",
    "SecGeoLookupDb",
    "SecCookieFormat",
    "SecArgumentSeparator",
    "SecRequestBodyLimit",
    "SecRequestBodyNoFilesLimit",
    "SecRequestBodyInMemoryLimit",
    "SecRequestBodyLimitAction",
    "SecResponseBodyLimit",
    "SecResponseBodyLimitAction",
    "SecResponseBodyMimeType",
    "SecResponseBodyMimeTypesClear",
    "SecWebAppId",
    "SecSensorId",
    "SecHashEngine",
    "SecHashKey",
    "SecHashParam",
    "SecHashMethodRx",
    "SecHashMethodPm",
    "SecXmlExternalEntity",
    "SecUploadFileLimit",
];

/// Parses one file's text.
pub fn parse(text: &str, file: &str) -> Result<Vec<Located>, SecLangError> {
    let file: Arc<str> = file.into();
    let mut out = Vec::new();
    for logical in lexer::logical_lines(text) {
        let err = |reason: String| SecLangError {
            file: file.clone(),
            line: logical.line,
            reason,
        };
        let words = lexer::words(&logical.text).map_err(&err)?;
        let directive = directive(&words).map_err(err)?;
        out.push(Located {
            file: file.clone(),
            line: logical.line,
            directive,
        });
    }
    Ok(out)
}

pub fn parse_file(path: &Path) -> Result<Vec<Located>, SecLangError> {
    let text = std::fs::read_to_string(path).map_err(|e| SecLangError {
        file: path.display().to_string().into(),
        line: 0,
        reason: format!("cannot read rule file: {e}"),
    })?;
    parse(&text, &path.display().to_string())
}

fn args(words: &[String], n: usize) -> Result<&[String], String> {
    if words.len() != n + 1 {
        return Err(format!(
            "{} takes {n} argument(s), found {}",
            words[0],
            words.len() - 1
        ));
    }
    Ok(&words[1..])
}

fn on_off(name: &str, v: &str) -> Result<bool, String> {
    match v {
        "On" | "on" => Ok(true),
        "Off" | "off" => Ok(false),
        other => Err(format!("{name} takes On or Off, found `{other}`")),
    }
}

/// `942100`, `942100-942199`, several separated by spaces or commas.
fn id_ranges(words: &[String]) -> Result<Vec<(u64, u64)>, String> {
    let mut out = Vec::new();
    for w in words {
        for part in w.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let parse = |s: &str| {
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("`{part}` is not a rule id or id range"))
            };
            out.push(match part.split_once('-') {
                Some((a, b)) => (parse(a)?, parse(b)?),
                None => {
                    let id = parse(part)?;
                    (id, id)
                }
            });
        }
    }
    Ok(out)
}

fn directive(words: &[String]) -> Result<Directive, String> {
    let name = words[0].as_str();
    Ok(match name {
        "SecRule" => {
            if words.len() != 3 && words.len() != 4 {
                return Err("SecRule takes variables, an operator and optional actions".into());
            }
            Directive::Rule {
                variables: rule::variables(&words[1])?,
                operator: rule::operator(&words[2])?,
                actions: match words.get(3) {
                    Some(a) => rule::actions(a)?,
                    None => Vec::new(),
                },
            }
        }
        "SecAction" => Directive::Action(rule::actions(&args(words, 1)?[0])?),
        "SecMarker" => Directive::Marker(args(words, 1)?[0].clone()),
        "SecDefaultAction" => Directive::DefaultAction(rule::actions(&args(words, 1)?[0])?),
        "SecRuleEngine" => Directive::RuleEngine(match args(words, 1)?[0].as_str() {
            "On" => EngineMode::On,
            "Off" => EngineMode::Off,
            "DetectionOnly" => EngineMode::DetectionOnly,
            other => {
                return Err(format!(
                    "SecRuleEngine takes On, Off or DetectionOnly, found `{other}`"
                ))
            }
        }),
        "SecRequestBodyAccess" => Directive::RequestBodyAccess(on_off(name, &args(words, 1)?[0])?),
        "SecResponseBodyAccess" => {
            Directive::ResponseBodyAccess(on_off(name, &args(words, 1)?[0])?)
        }
        "SecRuleRemoveById" => Directive::RemoveById(id_ranges(&words[1..])?),
        "SecRuleRemoveByTag" => Directive::RemoveByTag(args(words, 1)?[0].clone()),
        "SecRuleRemoveByMsg" => Directive::RemoveByMsg(args(words, 1)?[0].clone()),
        "SecRuleUpdateTargetById" => {
            if words.len() < 3 {
                return Err("SecRuleUpdateTargetById takes an id and targets".into());
            }
            Directive::UpdateTargetById {
                ids: id_ranges(&words[1..2])?,
                targets: rule::variables(&words[2])?,
            }
        }
        "SecRuleUpdateTargetByTag" => {
            let a = args(words, 2)?;
            Directive::UpdateTargetByTag {
                tag: a[0].clone(),
                targets: rule::variables(&a[1])?,
            }
        }
        "SecRuleUpdateActionById" => {
            let a = args(words, 2)?;
            let id = a[0]
                .parse()
                .map_err(|_| format!("`{}` is not a rule id", a[0]))?;
            Directive::UpdateActionById {
                id,
                actions: rule::actions(&a[1])?,
            }
        }
        "SecComponentSignature" => Directive::ComponentSignature(args(words, 1)?[0].clone()),
        other => match NO_EFFECT.iter().find(|d| **d == other) {
            Some(d) => Directive::NoEffect(d),
            None => return Err(format!("unsupported directive `{other}`")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_parse_with_lines() {
        let src = "SecRuleEngine DetectionOnly\n\nSecRule REQUEST_HEADERS:User-Agent \"@pm nikto sqlmap\" \\\n  \"id:913100,phase:1,block,t:none,t:lowercase,setvar:'tx.score=+%{tx.critical_anomaly_score}'\"\nSecMarker \"END-X\"\nSecRuleRemoveById 920100 942100-942199\n";
        let d = parse(src, "t.conf").unwrap();
        assert_eq!(d.len(), 4);
        assert_eq!(
            d[0].directive,
            Directive::RuleEngine(EngineMode::DetectionOnly)
        );
        assert_eq!(d[1].line, 3);
        match &d[1].directive {
            Directive::Rule {
                variables,
                operator,
                actions,
            } => {
                assert_eq!(
                    variables[0].selector,
                    Some(Selector::Key("User-Agent".into()))
                );
                assert_eq!(
                    (operator.name, operator.argument.as_str()),
                    ("pm", "nikto sqlmap")
                );
                assert_eq!(actions.len(), 6);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(d[2].directive, Directive::Marker("END-X".into()));
        assert_eq!(
            d[3].directive,
            Directive::RemoveById(vec![(920100, 920100), (942100, 942199)])
        );
    }

    #[test]
    fn unknown_names_are_errors_with_file_and_line() {
        let e = parse("\nSecFrobnicate On\n", "x.conf").unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.conf:2: unsupported directive `SecFrobnicate`"
        );
        let e = parse("SecRule ARGS \"@rx a\" \"id:1,t:rot13\"\n", "x.conf").unwrap_err();
        assert_eq!(e.to_string(), "x.conf:1: unknown transformation `t:rot13`");
        let e = parse("SecRule ARGS \"@nope a\" \"id:1\"\n", "x.conf").unwrap_err();
        assert!(e.to_string().contains("unknown operator `@nope`"));
    }

    /// The real rule sets load unchanged: CRS v4 from ../shared, and Debian's CRS 3.3.4.
    #[test]
    fn crs_rule_files_parse() {
        let shared = std::env::var_os("SWITCHYARD_SHARED")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
        let mut dirs = Vec::new();
        let v4 = shared.join("crs/v4.28.0");
        if v4.is_dir() {
            dirs.push((v4.join("rules"), v4.join("crs-setup.conf.example")));
        } else if std::env::var_os("SWITCHYARD_REQUIRE_SHARED").is_some() {
            panic!("{} is missing", v4.display());
        }
        let debian = Path::new("/usr/share/modsecurity-crs/rules");
        if debian.is_dir() {
            dirs.push((
                debian.to_path_buf(),
                "/etc/modsecurity/crs/crs-setup.conf".into(),
            ));
        }
        for (rules, setup) in dirs {
            let mut count = parse_file(&setup).unwrap_or_else(|e| panic!("{e}")).len();
            let mut files: Vec<_> = std::fs::read_dir(&rules)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                .collect();
            files.sort();
            for f in files {
                count += parse_file(&f).unwrap_or_else(|e| panic!("{e}")).len();
            }
            assert!(count > 500, "{}: only {count} directives", rules.display());
        }
    }
}
