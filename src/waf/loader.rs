//! Loading a CRS installation: our base configuration, the CRS setup file, then its rules in
//! name order. Works for a CRS release directory and for Debian's `modsecurity-crs` layout
//! (rules in /usr/share/modsecurity-crs, setup in /etc/modsecurity/crs).

use super::ruleset::RuleSet;
use super::seclang::{self, Located, SecLangError};
use std::path::{Path, PathBuf};

/// `rules/switchyard-base.conf`, built in so an installed binary always has it.
pub const BASE: &str = include_str!("../../rules/switchyard-base.conf");

fn setup_file(crs_dir: &Path) -> Option<PathBuf> {
    let mut candidates = vec![
        crs_dir.join("crs-setup.conf"),
        crs_dir.join("crs-setup.conf.example"),
    ];
    if crs_dir == Path::new("/usr/share/modsecurity-crs") {
        candidates.push("/etc/modsecurity/crs/crs-setup.conf".into());
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// Loads base, setup, `extra` (settings that must follow the setup) and `rules/*.conf`.
pub fn load_crs(
    crs_dir: &Path,
    base: Option<&Path>,
    extra: Vec<Located>,
) -> Result<RuleSet, SecLangError> {
    let mut directives = match base {
        Some(b) => seclang::parse_file(b)?,
        None => seclang::parse(BASE, "<built-in switchyard-base.conf>")?,
    };
    if let Some(setup) = setup_file(crs_dir) {
        directives.extend(seclang::parse_file(&setup)?);
    }
    directives.extend(extra);
    let rules_dir = crs_dir.join("rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&rules_dir)
        .map_err(|e| SecLangError {
            file: rules_dir.display().to_string().into(),
            line: 0,
            reason: format!("cannot read the CRS rules: {e}"),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    for f in files {
        directives.extend(seclang::parse_file(&f)?);
    }
    RuleSet::build(&directives)
}
