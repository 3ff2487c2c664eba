//! Policy semantics without a socket: shapes, rule order, expressions, on_error.

use super::actions::{ActionCx, InternalEndpoints};
use super::exchange::{ActionVars, ConnInfo, EndpointInfo, PlainRequest};
use super::expr::{ExprEnv, Phase};
use super::{compile, CompileEnv, Outcome, WafSource};
use crate::config::yaml::parse_documents;
use crate::config::{EndpointUrl, Loc};
use crate::ipintel::IpIntel;
use crate::ratelimit::{RateLimits, StoreConfig};
use futures::FutureExt;
use std::sync::Arc;

struct Directory;

impl InternalEndpoints for Directory {
    fn find(&self, target: &EndpointUrl) -> Option<usize> {
        match target.host.as_str() {
            "catalog-eks.internal" => Some(1),
            "orders-eks.internal" => Some(2),
            _ => None,
        }
    }
}

/// Compiles with empty rate-limit, IP-list and WAF contexts.
fn compile_alone(
    node: &crate::config::yaml::Node,
) -> Result<super::CompiledPolicyResult, Vec<crate::config::ConfigError>> {
    let limits = RateLimits::new(StoreConfig::Memory).unwrap();
    let intel = IpIntel::default();
    let waf = WafSource::new("/nonexistent".into());
    compile(
        node,
        &loc(),
        &CompileEnv {
            rate_limits: &limits,
            ip_intel: &intel,
            waf: &waf,
        },
    )
}

fn loc() -> Loc {
    Loc {
        file: "test.yaml".into(),
        line: 1,
    }
}

fn run(policy: &str, req: &mut PlainRequest, categories: &[&str]) -> (Outcome, ActionVars) {
    let node = parse_documents(policy).unwrap().remove(0);
    let compiled = compile_alone(&node).unwrap_or_else(|e| panic!("{e:?}"));
    let env = ExprEnv::new();
    let mut conn = ConnInfo::new(
        "198.51.100.7:5555".parse().unwrap(),
        "127.0.0.1:8080".parse().unwrap(),
    );
    conn.categories = categories.iter().map(|c| Arc::from(*c)).collect();
    let endpoint = EndpointInfo {
        url: "http://localhost".into(),
        host: "localhost".into(),
        name: "api".into(),
    };
    let mut vars = ActionVars::default();
    let mut cx = ActionCx {
        env: &env,
        conn: &conn,
        endpoint: &endpoint,
        req,
        res: None,
        vars: &mut vars,
        internal: &Directory,
        body: None,
        body_streams: false,
        body_checks: &mut Vec::new(),
    };
    let out = compiled
        .policy
        .run(Phase::Request, &mut cx)
        .now_or_never()
        .expect("no shared store here: the policy never waits");
    (out, vars)
}

const SEED: &str = r#"
on_http_request:
  actions:
    - type: add-headers
      config: {headers: {x-seen: "1"}}
    - expressions:
        - ('tor' in conn.client_ip.categories) || ('proxy.anonymous' in conn.client_ip.categories)
      actions:
        - type: deny
          config:
            status_code: 404
    - type: forward-internal
      config:
        url: https://${getReqHeader('X-Acme-Api')[0]}.internal
"#;

#[test]
fn seed_shape_forwards_by_header() {
    let mut req = PlainRequest::get("/x", &[("x-acme-api", "orders-eks")]);
    let (out, _) = run(SEED, &mut req, &[]);
    assert!(matches!(out, Outcome::Forward(2)), "{out:?}");
    assert_eq!(req.parts.headers["x-seen"], "1");
}

#[test]
fn header_lookup_is_case_insensitive() {
    let mut req = PlainRequest::get("/x", &[("X-ACME-API", "catalog-eks")]);
    let (out, _) = run(SEED, &mut req, &[]);
    assert!(matches!(out, Outcome::Forward(1)), "{out:?}");
}

#[test]
fn nested_rule_runs_in_place_and_ends_the_phase() {
    let mut req = PlainRequest::get("/x", &[("x-acme-api", "orders-eks")]);
    let (out, _) = run(SEED, &mut req, &["proxy.anonymous", "proxy"]);
    match out {
        Outcome::Respond(r) => assert_eq!(r.status, 404),
        other => panic!("{other:?}"),
    }
    // The action before the nested rule ran; the forward after it did not.
    assert_eq!(req.parts.headers["x-seen"], "1");
}

#[test]
fn interpolation_error_halts_with_400() {
    let mut req = PlainRequest::get("/x", &[]);
    let (out, _) = run(SEED, &mut req, &[]);
    match out {
        Outcome::Error(e) => {
            assert_eq!(e.status, 400);
            assert_eq!(e.code, "SWY_EXPRESSION_ERROR");
            assert!(
                e.message.contains("getReqHeader('X-Acme-Api')[0]"),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_internal_endpoint_with_continue_sets_vars() {
    let policy = r#"
on_http_request:
  - actions:
      - type: forward-internal
        config: {url: "https://nope.internal", on_error: continue}
  - expressions: ["actions.ngrok.forward_internal.error.code == 'SWY_INTERNAL_NOT_FOUND'"]
    actions:
      - type: custom-response
        config: {status_code: 503, body: "down"}
"#;
    let mut req = PlainRequest::get("/", &[]);
    let (out, vars) = run(policy, &mut req, &[]);
    assert!(vars.get("actions.ngrok.forward_internal").is_some());
    match out {
        Outcome::Respond(r) => assert_eq!((r.status.as_u16(), &r.body[..]), (503, &b"down"[..])),
        other => panic!("{other:?}"),
    }
}

#[test]
fn variables_resolve_by_full_name() {
    let policy = r#"
on_http_request:
  - expressions:
      - conn.client_ip == '198.51.100.7' && conn.client_port == 5555
      - req.url.path == '/a/b' && req.url.query == 'q=1&q=2' && req.method == 'GET'
      - req.query_params['q'] == ['1', '2'] && getQueryParam('q')[1] == '2'
      - req.headers['x-h'] == ['v'] && hasReqHeader('X-H') && !hasReqHeader('x-none')
      - req.host == 'api.example' && req.url == 'http://api.example:8080/a/b?q=1&q=2'
      - endpoint.name == 'api' && req.version == 'HTTP/1.1'
      - conn.client_ip.is_tor_node && !conn.client_ip.is_on_blocklist
      - inCidrRange(conn.client_ip, '198.51.100.0/24') && !inCidrRanges(conn.client_ip, ['10.0.0.0/8'])
    actions:
      - type: custom-response
        config: {body: "${req.method} ${size(conn.client_ip.categories)}"}
"#;
    let mut req = PlainRequest::get(
        "/a/b?q=1&q=2",
        &[("x-h", "v"), ("host", "api.example:8080")],
    );
    let (out, _) = run(policy, &mut req, &["proxy.anonymous.tor"]);
    match out {
        Outcome::Respond(r) => assert_eq!(&r.body[..], b"GET 1"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn phase_given_as_one_rule_is_noted() {
    let node = parse_documents(SEED).unwrap().remove(0);
    let compiled = compile_alone(&node).unwrap();
    // Two notes on the shapes, then a warning per category no list defines.
    assert_eq!(compiled.notes.len(), 4, "{:?}", compiled.notes);
    assert!(compiled.notes[1].contains("test.yaml:6: note: a rule nested inside"));
    assert!(compiled.notes[2]
        .contains("test.yaml:7: warning: no ipIntel list defines the category `tor`"));
    assert!(compiled.notes[3].contains("`proxy.anonymous`"));
    assert!(
        compiled.notes[0].contains(
            "3 rule(s): [add-headers], {deny when the expression holds}, [forward-internal]"
        ),
        "{:?}",
        compiled.notes
    );
}

#[test]
fn every_error_is_collected() {
    let policy = r#"
on_http_request:
  - actions:
      - type: rate-limit
        config: {name: x, algorithm: sliding_window, capacity: 0, rate: 1s}
      - type: teleport
      - type: deny
        config: {status_code: 99}
  - expressions: ["req.nope("]
    actions: [{type: deny}]
on_http_response:
  - actions: [{type: forward-internal, config: {url: "https://x.internal"}}]
"#;
    let node = parse_documents(policy).unwrap().remove(0);
    let errors = compile_alone(&node).err().unwrap();
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 5, "{text:#?}");
    assert!(
        text[0].contains("test.yaml:5: capacity must be between 1 and 2000000000"),
        "{text:?}"
    );
    assert!(text[1].contains("test.yaml:6: unknown action type `teleport`"));
    assert!(text[2].contains("test.yaml:8: status_code must be an HTTP status"));
    assert!(text[3].contains("test.yaml:9: invalid CEL expression"));
    assert!(text[4].contains("cannot run in on_http_response"));
}
