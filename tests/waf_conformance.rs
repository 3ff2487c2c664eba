//! The CRS v4.28.0 regression suite through the WAF engine, in-process, less the overrides in
//! `rules/crs-v4-overrides.yaml`. The pass count may only go up: it must reach the figure
//! recorded in `rules/crs-v4-conformance.txt`.

mod common;

use std::path::Path;
use switchyard::waf::ftw;

#[test]
fn crs_v4_regression_suite_pass_count_only_ratchets_up() {
    let Some(shared) = common::shared_dir() else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let crs = shared.join("crs/v4.28.0");
    let rules = ftw::load_crs(&crs, None).unwrap_or_else(|e| panic!("{e}"));
    let overrides = ftw::load_overrides(&root.join("rules/crs-v4-overrides.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let skip = |rule: u64, test: u64| {
        overrides
            .iter()
            .any(|(r, ids, _)| *r == rule && (ids.is_empty() || ids.contains(&test)))
    };
    let (mut passed, mut failed) = (0usize, Vec::new());
    for file in ftw::test_files(&crs.join("tests/regression/tests")) {
        for o in ftw::run_file(&rules, &file, &skip) {
            if o.passed {
                passed += 1;
            } else {
                failed.push(format!("{}: {}", o.name, o.detail));
            }
        }
    }
    let recorded: usize = std::fs::read_to_string(root.join("rules/crs-v4-conformance.txt"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    eprintln!(
        "CRS v4.28.0 regression tests: {passed} passed, {} failed",
        failed.len()
    );
    assert!(
        passed >= recorded,
        "{passed} passed, fewer than the recorded {recorded}; failing:\n{}",
        failed.join("\n")
    );
    assert!(passed + failed.len() > 4900, "the suite was not all read");
}

/// Ordinary traffic (`tests/data/clean-traffic.yaml`: browser and API GETs with cookies,
/// JSON and form POSTs) raises no block at paranoia level 1, the CRS default: a change that
/// makes the WAF flag what users send fails here, not in production. (At level 4 a dozen
/// of them are flagged, as level 4 means to.)
#[test]
fn ordinary_traffic_is_not_blocked_at_paranoia_level_1() {
    let Some(shared) = common::shared_dir() else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules =
        ftw::load_crs_at(&shared.join("crs/v4.28.0"), None, 1).unwrap_or_else(|e| panic!("{e}"));
    let outcomes = ftw::run_file(
        &rules,
        &root.join("tests/data/clean-traffic.yaml"),
        &|_, _| false,
    );
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| format!("{}: {}", o.name, o.detail))
        .collect();
    assert!(outcomes.len() > 40, "{} tests read", outcomes.len());
    assert!(failed.is_empty(), "flagged:\n{}", failed.join("\n"));
}
