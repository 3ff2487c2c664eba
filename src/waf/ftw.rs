//! The go-ftw regression-test runner behind `switchyard crs-test`: each test's requests go
//! through the engine in-process, and the rule ids that matched are compared with the test's
//! `expect_ids` / `no_expect_ids`.

use super::ruleset::RuleSet;
use super::seclang::{self, SecLangError};
use super::transaction::{Request, Transaction};
use crate::config::yaml::{self, Node};
use base64::Engine;
use std::path::{Path, PathBuf};

/// The setup the CRS project runs its tests with (tests/regression/README.md), at paranoia
/// level `paranoia` (the project's is 4); both `blocking_paranoia_level` (v4) and
/// `paranoia_level` (3.3) so one runner serves both.
fn test_setup(paranoia: u8) -> String {
    format!(
        r#"SecAction "id:900005,phase:1,nolog,pass,ctl:ruleEngine=DetectionOnly,ctl:ruleRemoveById=910000,setvar:tx.blocking_paranoia_level={paranoia},setvar:tx.paranoia_level={paranoia},setvar:tx.crs_validate_utf8_encoding=1,setvar:tx.arg_name_length=100,setvar:tx.arg_length=400,setvar:tx.total_arg_length=64000,setvar:tx.max_num_args=255,setvar:tx.max_file_size=64100,setvar:tx.combined_file_sizes=65535""#
    )
}

/// One test case's verdict.
#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// Loads the CRS in `crs_dir` the way the CRS project tests it: our base configuration
/// (`base`, or the built-in one), its setup file, the test setup, then `rules/*.conf`.
pub fn load_crs(crs_dir: &Path, base: Option<&Path>) -> Result<RuleSet, SecLangError> {
    load_crs_at(crs_dir, base, 4)
}

/// [`load_crs`] at another paranoia level than the suite's 4 (`crs-test --paranoia`; the
/// clean-traffic test runs at 1, the CRS default).
pub fn load_crs_at(
    crs_dir: &Path,
    base: Option<&Path>,
    paranoia: u8,
) -> Result<RuleSet, SecLangError> {
    let extra = seclang::parse(&test_setup(paranoia), "<crs test setup>")?;
    super::loader::load_crs(crs_dir, base, extra)
}

fn text(n: Option<&Node>) -> Option<String> {
    n.and_then(|n| n.as_str()).map(str::to_string)
}

fn ids(n: Option<&Node>) -> Vec<u64> {
    match n {
        Some(n) => match n.as_seq() {
            Some(items) => items
                .iter()
                .filter_map(|i| i.as_str()?.parse().ok())
                .collect(),
            None => n
                .as_str()
                .and_then(|s| s.parse().ok())
                .into_iter()
                .collect(),
        },
        None => Vec::new(),
    }
}

/// A raw HTTP request (`encoded_request`) → method, target, protocol, headers, body.
fn parse_raw(raw: &[u8]) -> (Request, Vec<u8>) {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, p + 4))
        .or_else(|| {
            raw.windows(2)
                .position(|w| w == b"\n\n")
                .map(|p| (p, p + 2))
        })
        .unwrap_or((raw.len(), raw.len()));
    let head = String::from_utf8_lossy(&raw[..split.0]);
    let mut lines = head.lines();
    let first = lines.next().unwrap_or("");
    let mut parts = first.splitn(3, ' ');
    let mut req = Request {
        method: parts.next().unwrap_or("").to_string(),
        uri: parts.next().unwrap_or("").to_string(),
        protocol: parts.next().unwrap_or("").trim().to_string(),
        remote_addr: "127.0.0.1".into(),
        server_addr: "127.0.0.1".into(),
        server_port: 80,
        remote_port: 54321,
        ..Request::default()
    };
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            req.headers
                .push((k.trim().to_string(), v.trim().as_bytes().to_vec()));
        }
    }
    (req, raw[split.1..].to_vec())
}

/// What a server in front hands the WAF: a chunked body without its framing, and no
/// Content-Length beside Transfer-Encoding (RFC 9112 6.3: the server drops it).
fn as_served(req: &mut Request, body: Vec<u8>) -> Vec<u8> {
    let chunked = req.headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(v)
                .to_ascii_lowercase()
                .contains("chunked")
    });
    if !chunked {
        // HTTP/1.x: no Content-Length and no chunking means no body (RFC 9112 6.3).
        let framed = req
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
        return if framed || req.protocol.starts_with("HTTP/2") {
            body
        } else {
            Vec::new()
        };
    }
    req.headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("content-length"));
    dechunk(&body)
}

/// A chunked body's data; what follows a malformed size line is dropped.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&raw[..eol]);
        let size = line.split(';').next().unwrap_or("").trim();
        let Ok(n) = usize::from_str_radix(size, 16) else {
            break;
        };
        raw = &raw[eol + 2..];
        if n == 0 || raw.len() < n {
            out.extend_from_slice(&raw[..n.min(raw.len())]);
            break;
        }
        out.extend_from_slice(&raw[..n]);
        raw = raw.get(n + 2..).unwrap_or_default();
    }
    out
}

fn request_of(input: &Node) -> (Request, Vec<u8>) {
    if let Some(enc) = text(input.get("encoded_request")) {
        // YAML folds long values: the base64 text may carry spaces and newlines.
        let compact: String = enc.split_whitespace().collect();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .unwrap_or_default();
        let (mut req, body) = parse_raw(&raw);
        let body = as_served(&mut req, body);
        return (req, body);
    }
    let mut req = Request {
        method: text(input.get("method")).unwrap_or_else(|| "GET".into()),
        uri: text(input.get("uri")).unwrap_or_else(|| "/".into()),
        protocol: text(input.get("version")).unwrap_or_else(|| "HTTP/1.1".into()),
        remote_addr: "127.0.0.1".into(),
        server_addr: "127.0.0.1".into(),
        server_port: 80,
        remote_port: 54321,
        ..Request::default()
    };
    if let Some(h) = input.get("headers").and_then(|h| h.as_map()) {
        for (k, v) in h {
            req.headers.push((
                k.as_str().unwrap_or("").to_string(),
                v.as_str().unwrap_or("").as_bytes().to_vec(),
            ));
        }
    }
    let mut body = text(input.get("data")).unwrap_or_default().into_bytes();
    let autocomplete = input.get("autocomplete_headers").and_then(|n| n.as_str()) != Some("false");
    let has = |req: &Request, name: &str| {
        req.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    // What go-ftw's request builder adds when it completes headers: a form Content-Type for
    // a body without one, `Connection: close`, and a Content-Length for a body or a method
    // that may carry one.
    if autocomplete && !body.is_empty() && !has(&req, "content-type") {
        req.headers.push((
            "Content-Type".into(),
            b"application/x-www-form-urlencoded".to_vec(),
        ));
    }
    let multipart = req.headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("content-type") && v.starts_with(b"multipart/form-data;")
    });
    if multipart {
        // go-ftw turns every LF of a multipart body into CRLF (as it is, an existing CRLF too).
        body = body
            .iter()
            .fold(Vec::with_capacity(body.len()), |mut out, b| {
                if *b == b'\n' {
                    out.push(b'\r');
                }
                out.push(*b);
                out
            });
    }
    if autocomplete {
        if !has(&req, "connection") {
            req.headers.push(("Connection".into(), b"close".to_vec()));
        }
        let bodied = matches!(req.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE");
        if (!body.is_empty() || bodied) && !has(&req, "content-length") {
            req.headers
                .push(("Content-Length".into(), body.len().to_string().into_bytes()));
        }
    }
    let body = as_served(&mut req, body);
    (req, body)
}

/// Runs one stage; returns the ids that matched.
fn run_stage(rules: &RuleSet, input: &Node) -> Vec<u64> {
    let (req, body) = request_of(input);
    // A server answers 400 to a header value with a bare CR or LF: the WAF never sees it.
    if req
        .headers
        .iter()
        .any(|(_, v)| v.iter().any(|b| *b == b'\r' || *b == b'\n'))
    {
        return Vec::new();
    }
    let mut tx = Transaction::new(rules);
    tx.process_request_headers(&req);
    tx.process_request_body(&body);
    if req.uri.starts_with("/reflect") {
        reflect(&mut tx, &body);
    }
    tx.process_logging();
    tx.matched_ids()
}

/// `/reflect`: the test backend answers with the response the JSON body describes.
fn reflect(tx: &mut Transaction<'_>, body: &[u8]) {
    let Ok(spec) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let status = spec["status"].as_u64().unwrap_or(200) as u16;
    let mut headers = Vec::new();
    if let Some(h) = spec["headers"].as_object() {
        for (k, v) in h {
            headers.push((k.clone(), v.as_str().unwrap_or("").as_bytes().to_vec()));
        }
    }
    let body = match spec["encodedBody"].as_str() {
        Some(b) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .unwrap_or_default(),
        None => spec["body"].as_str().unwrap_or("").as_bytes().to_vec(),
    };
    tx.process_response_headers(status, "HTTP/1.1", &headers);
    tx.process_response_body(&body);
}

/// Runs every test in one go-ftw YAML file.
pub fn run_file(rules: &RuleSet, path: &Path, skip: &dyn Fn(u64, u64) -> bool) -> Vec<Outcome> {
    let mut out = Vec::new();
    let Ok(text_) = std::fs::read_to_string(path) else {
        return out;
    };
    let Ok(docs) = yaml::parse_documents(&text_) else {
        out.push(Outcome {
            name: path.display().to_string(),
            passed: false,
            detail: "cannot parse the test file".into(),
        });
        return out;
    };
    for doc in docs {
        let rule_id: u64 = text(doc.get("rule_id"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        for test in doc.get("tests").and_then(|t| t.as_seq()).unwrap_or(&[]) {
            let test_id: u64 = text(test.get("test_id"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if skip(rule_id, test_id) {
                continue;
            }
            let mut passed = true;
            let mut detail = String::new();
            for stage in test.get("stages").and_then(|s| s.as_seq()).unwrap_or(&[]) {
                let stage = stage.get("stage").unwrap_or(stage);
                let Some(input) = stage.get("input") else {
                    continue;
                };
                let seen = run_stage(rules, input);
                let log = stage.get("output").and_then(|o| o.get("log"));
                let mut expect = ids(log.and_then(|l| l.get("expect_ids")));
                expect.extend(ids(log.and_then(|l| l.get("expect_id"))));
                let mut forbid = ids(log.and_then(|l| l.get("no_expect_ids")));
                forbid.extend(ids(log.and_then(|l| l.get("no_expect_id"))));
                let missing: Vec<u64> = expect
                    .iter()
                    .copied()
                    .filter(|i| !seen.contains(i))
                    .collect();
                let unwanted: Vec<u64> = forbid
                    .iter()
                    .copied()
                    .filter(|i| seen.contains(i))
                    .collect();
                if !missing.is_empty() || !unwanted.is_empty() {
                    passed = false;
                    let mut seen_sorted = seen.clone();
                    seen_sorted.sort_unstable();
                    seen_sorted.dedup();
                    detail = format!(
                        "expected {expect:?}, not {forbid:?}; seen {seen_sorted:?} (missing {missing:?}, unwanted {unwanted:?})"
                    );
                }
            }
            out.push(Outcome {
                name: format!("{rule_id}-{test_id}"),
                passed,
                detail,
            });
        }
    }
    out
}

/// Every `*.yaml` under `dir`, sorted.
pub fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `rule_id` → test ids (all when empty) with a reason, from an overrides file.
pub fn load_overrides(path: &Path) -> Result<Vec<(u64, Vec<u64>, String)>, String> {
    let text_ = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let docs = yaml::parse_documents(&text_)
        .map_err(|e| format!("{}:{}: {}", path.display(), e.line, e.reason))?;
    let mut out = Vec::new();
    for doc in docs {
        for o in doc
            .get("test_overrides")
            .and_then(|t| t.as_seq())
            .unwrap_or(&[])
        {
            let rule: u64 = text(o.get("rule_id"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let reason = text(o.get("reason")).unwrap_or_default();
            if reason.trim().is_empty() {
                return Err(format!(
                    "{}:{}: an override needs a reason",
                    path.display(),
                    o.line
                ));
            }
            out.push((rule, ids(o.get("test_ids")), reason));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_requests_lose_their_chunk_framing() {
        let (mut req, body) =
            parse_raw(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nHi \r\n3\r\nCRS\r\n0\r\n\r\n");
        assert_eq!(req.method, "GET");
        let body = as_served(&mut req, body);
        assert_eq!(req.headers.len(), 2);
        assert_eq!(body, b"Hi CRS");
        assert_eq!(dechunk(b"zz\r\nab"), b"");
    }
}
