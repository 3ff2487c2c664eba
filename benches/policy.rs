//! Per-request cost of the Traffic Policy the scenario runs (without the actions that later
//! issues add): the IP-category deny rule and forward-internal by header.
//! Run: `cargo bench --bench policy`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use futures::FutureExt;
use std::sync::Arc;
use switchyard::config::yaml::parse_documents;
use switchyard::config::{EndpointUrl, Loc};
use switchyard::ipintel::IpIntel;
use switchyard::policy::actions::{ActionCx, InternalEndpoints};
use switchyard::policy::exchange::{ActionVars, ConnInfo, EndpointInfo, PlainRequest};
use switchyard::policy::expr::{Expr, ExprEnv, Phase, Scope};
use switchyard::policy::{compile, CompileEnv, Outcome, WafSource};
use switchyard::ratelimit::{RateLimits, StoreConfig};

const POLICY: &str = r#"
on_http_request:
  actions:
    - expressions:
        - ("com.anthropic" in conn.client_ip.categories) ||
          ("com.openai" in conn.client_ip.categories) ||
          ("com.perplexity" in conn.client_ip.categories) ||
          ('tor' in conn.client_ip.categories) ||
          ('tor.exit' in conn.client_ip.categories) ||
          ('proxy' in conn.client_ip.categories) ||
          ('proxy.anonymous' in conn.client_ip.categories) ||
          ('vpn' in conn.client_ip.categories)
      actions:
        - type: deny
          config:
            status_code: 404
    - type: forward-internal
      config:
        url: https://${getReqHeader('X-Acme-Api')[0]}.internal
"#;

struct One;

impl InternalEndpoints for One {
    fn find(&self, target: &EndpointUrl) -> Option<usize> {
        (target.host == "catalog-eks.internal").then_some(0)
    }
}

fn request() -> PlainRequest {
    PlainRequest::get(
        "/v1/products?page=2",
        &[
            ("host", "api.acme.example"),
            ("user-agent", "bench/1.0"),
            ("accept", "application/json"),
            ("x-acme-api", "catalog-eks"),
            ("x-request-id", "7d0f6a2e"),
        ],
    )
}

fn conn() -> ConnInfo {
    ConnInfo::new(
        "198.51.100.7:40000".parse().unwrap(),
        "127.0.0.1:8080".parse().unwrap(),
    )
}

fn endpoint() -> EndpointInfo {
    EndpointInfo {
        url: "http://api.acme.example".into(),
        host: "api.acme.example".into(),
        name: "acme-api".into(),
    }
}

fn bench(c: &mut Criterion) {
    let node = parse_documents(POLICY).unwrap().remove(0);
    let loc = Loc {
        file: Arc::from("bench"),
        line: 1,
    };
    let limits = RateLimits::new(StoreConfig::Memory).unwrap();
    let intel = IpIntel::default();
    let waf = WafSource::new("/nonexistent".into());
    let cenv = CompileEnv {
        rate_limits: &limits,
        ip_intel: &intel,
        waf: &waf,
    };
    let policy = compile(&node, &loc, &cenv).ok().unwrap().policy;
    let env = ExprEnv::new();
    let conn = conn();
    let ep = endpoint();

    c.bench_function("policy/scenario_request_phase", |b| {
        let mut req = request();
        b.iter(|| {
            let mut vars = ActionVars::default();
            let mut cx = ActionCx {
                env: &env,
                conn: &conn,
                endpoint: &ep,
                req: &mut req,
                res: None,
                vars: &mut vars,
                internal: &One,
                body: None,
                body_streams: false,
                body_checks: &mut Vec::new(),
            };
            let out = policy
                .run(Phase::Request, &mut cx)
                .now_or_never()
                .expect("the memory-only policy never waits");
            assert!(matches!(out, Outcome::Forward(0)));
        })
    });

    let expr = Expr::compile(
        "('tor' in conn.client_ip.categories) || ('proxy.anonymous' in conn.client_ip.categories)",
        Phase::Request,
    )
    .unwrap();
    c.bench_function("policy/category_expression", |b| {
        let req = request();
        let vars = ActionVars::default();
        b.iter(|| {
            let scope = Scope {
                conn: &conn,
                req: &req,
                res: None,
                endpoint: &ep,
                vars: &vars,
            };
            black_box(expr.eval_bool(&env, &scope).unwrap())
        })
    });

    c.bench_function("policy/compile_scenario_policy", |b| {
        b.iter(|| {
            black_box(
                compile(&node, &loc, &cenv)
                    .ok()
                    .unwrap()
                    .policy
                    .has_response_rules(),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
