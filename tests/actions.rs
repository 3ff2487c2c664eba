//! The actions of this build through the real gateway: custom-response, add/remove-headers,
//! on_http_response (on upstream and custom responses), on_error, nested rules, forward loops.

mod common;

use common::*;
use std::net::SocketAddr;

fn internal_with_policy(api: &str, addr: SocketAddr, policy: &str) -> String {
    format!(
        "---\nkind: AgentEndpoint\nmetadata: {{name: {api}}}\nspec:\n  url: https://{api}.internal\n  upstream: {{url: 'http://{addr}'}}\n  trafficPolicy:\n    policy:\n{policy}"
    )
}

#[test]
fn header_actions_edit_request_and_response() {
    let ups = Upstreams::start(&["catalog-1"]);
    let port = free_port();
    let rules = "        - actions:\n            - type: add-headers\n              config:\n                headers:\n                  x-client: \"${conn.client_ip}\"\n                  x-path: \"${req.url.path}\"\n            - type: remove-headers\n              config:\n                headers: [x-secret]\n";
    let mut text = config(port, rules, &[]);
    text.push_str(&internal_with_policy(
        "catalog-eks",
        ups.addr(0),
        "      on_http_response:\n        - expressions: [\"res.status_code == 200\"]\n          actions:\n            - type: add-headers\n              config:\n                headers: {x-served-by: \"${endpoint.name} ${res.headers['x-upstream'][0]}\"}\n            - type: remove-headers\n              config: {headers: [x-upstream]}\n",
    ));
    let gw = Gateway::start(&[("gw.yaml", &text)]);
    let r = gw.get(
        "/items",
        &[("X-Acme-Api", "catalog-eks"), ("X-Secret", "s3cr3t")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("\"x-client\":\"127.0.0.1\""), "{}", r.body);
    assert!(r.body.contains("\"x-path\":\"/items\""), "{}", r.body);
    assert!(!r.body.contains("s3cr3t"), "{}", r.body);
    assert_eq!(r.header("x-served-by"), Some("catalog-eks catalog-1"));
    assert_eq!(r.header("x-upstream"), None);
}

#[test]
fn custom_response_with_templates_runs_the_response_phase() {
    let port = free_port();
    let mut text = gateway_doc(port);
    text.push_str("---\nkind: CloudEndpoint\nspec:\n  url: http://localhost\n  trafficPolicy:\n    policy:\n      on_http_request:\n        - expressions: [\"hasQueryParam('name')\"]\n          actions:\n            - type: custom-response\n              config:\n                status_code: 201\n                headers: {x-greeting: \"hi ${getQueryParam('name')[0]}\"}\n                body: '{\"hello\": \"${getQueryParam(''name'')[0]}\", \"method\": \"${req.method}\"}'\n        - actions:\n            - type: custom-response\n              config: {status_code: 200, body: plain}\n      on_http_response:\n        - expressions: [\"res.status_code == 201\"]\n          actions:\n            - type: add-headers\n              config: {headers: {x-phase: response}}\n");
    let gw = Gateway::start(&[("gw.yaml", &text)]);
    let r = gw.get("/?name=ada%20l", &[]);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body, "{\"hello\": \"ada l\", \"method\": \"GET\"}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-greeting"), Some("hi ada l"));
    assert_eq!(r.header("x-phase"), Some("response"));
    let r = gw.get("/", &[]);
    assert_eq!((r.status, r.body.as_str()), (200, "plain"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("x-phase"), None);
}

#[test]
fn response_phase_can_replace_the_upstream_response() {
    let ups = Upstreams::start(&["orders-1"]);
    let port = free_port();
    let mut text = config(port, "", &[]);
    text.push_str(&internal_with_policy(
        "orders-eks",
        ups.addr(0),
        "      on_http_response:\n        - expressions: [\"req.url.path == '/hidden'\"]\n          actions:\n            - type: custom-response\n              config: {status_code: 451, body: unavailable}\n",
    ));
    let gw = Gateway::start(&[("gw.yaml", &text)]);
    let r = gw.get("/hidden", &[("X-Acme-Api", "orders-eks")]);
    assert_eq!((r.status, r.body.as_str()), (451, "unavailable"), "{r:?}");
    assert_eq!(r.upstream(), "");
    assert_eq!(
        ups.list[0].hits(),
        1,
        "the upstream answered; the policy replaced it"
    );
    let r = gw.get("/shown", &[("X-Acme-Api", "orders-eks")]);
    assert_eq!((r.status, r.upstream()), (200, "orders-1"));
}

#[test]
fn on_error_continue_falls_through_to_the_next_action() {
    let port = free_port();
    let mut text = gateway_doc(port);
    text.push_str("---\nkind: CloudEndpoint\nspec:\n  url: http://localhost\n  trafficPolicy:\n    policy:\n      on_http_request:\n        - actions:\n            - type: forward-internal\n              config:\n                url: https://${getReqHeader('X-Acme-Api')[0]}.internal\n                on_error: continue\n            - type: custom-response\n              config:\n                status_code: 502\n                body: \"fallback: ${actions.ngrok.forward_internal.error.code}\"\n");
    let gw = Gateway::start(&[("gw.yaml", &text)]);
    let r = gw.get("/", &[("X-Acme-Api", "nothing-here")]);
    assert_eq!(
        (r.status, r.body.as_str()),
        (502, "fallback: SWY_INTERNAL_NOT_FOUND")
    );
}

#[test]
fn internal_endpoints_run_their_own_policy_and_forward_loops_are_capped() {
    let ups = Upstreams::start(&["webhook-1"]);
    let port = free_port();
    let mut text = config(port, "", &[]);
    text.push_str(&internal_with_policy(
        "webhook-gke",
        ups.addr(0),
        "      on_http_request:\n        - expressions: [\"req.method != 'POST'\"]\n          actions:\n            - type: deny\n              config: {status_code: 405}\n",
    ));
    // loop-a forwards to itself.
    text.push_str("---\nkind: AgentEndpoint\nspec:\n  url: https://loop-a.internal\n  upstream: {url: '9'}\n  trafficPolicy:\n    policy:\n      on_http_request:\n        - actions:\n            - type: forward-internal\n              config: {url: 'https://loop-a.internal'}\n");
    let gw = Gateway::start(&[("gw.yaml", &text)]);
    let r = gw.get("/events", &[("X-Acme-Api", "webhook-gke")]);
    assert_eq!(r.status, 405);
    let r = request(
        gw.port,
        "POST",
        "/events",
        &[("X-Acme-Api", "webhook-gke")],
        "{\"event\":1}",
    );
    assert_eq!((r.status, r.upstream()), (200, "webhook-1"));
    assert!(r.body.contains("\"body_bytes\":11"), "{}", r.body);
    let r = gw.get("/", &[("X-Acme-Api", "loop-a")]);
    assert_eq!(r.status, 508, "{r:?}");
    assert_eq!(r.header("x-switchyard-error"), Some("SWY_FORWARD_LOOP"));
}

#[test]
fn a_rule_whose_expression_fails_does_not_match() {
    let ups = Upstreams::start(&["catalog-1"]);
    let port = free_port();
    // `getReqHeader('X-Flag')[0]` fails when the header is absent: the rule is skipped.
    let rules = "        - expressions: [\"getReqHeader('X-Flag')[0] == 'deny'\"]\n          actions:\n            - type: deny\n";
    let gw = Gateway::start(&[(
        "gw.yaml",
        &config(port, rules, &[("catalog-eks", ups.addr(0))]),
    )]);
    assert_eq!(gw.get("/", &[("X-Acme-Api", "catalog-eks")]).status, 200);
    assert_eq!(
        gw.get("/", &[("X-Acme-Api", "catalog-eks"), ("x-flag", "deny")])
            .status,
        403
    );
}

#[test]
fn an_unresolvable_upstream_is_a_502_naming_the_endpoint() {
    let port = free_port();
    let mut text = config(port, "", &[]);
    text.push_str("---\nkind: AgentEndpoint\nspec:\n  url: https://ghost.internal\n  upstream: {url: 'http://no-such-host.invalid:80'}\n");
    let gw = Gateway::start(&[("gw.yaml", &text)]);
    let r = gw.get("/", &[("X-Acme-Api", "ghost")]);
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(
        r.header("x-switchyard-error"),
        Some("SWY_UPSTREAM_UNRESOLVED")
    );
    assert!(r.body.contains("https://ghost.internal"), "{}", r.body);
}
