//! Routing through the real gateway: by `X-Acme-Api` to each API, pools, errors, internal hosts.

mod common;

use common::*;
use std::net::SocketAddr;

/// The demo's scenario config on a free port, with one upstream per API and two for inventory.
fn scenario() -> (Upstreams, Gateway) {
    let ups = Upstreams::start(&[
        "catalog-1",
        "orders-1",
        "inventory-1",
        "inventory-2",
        "webhook-1",
    ]);
    let port = free_port();
    let apis = [
        "catalog-eks",
        "orders-eks",
        "inventory-gke",
        "inventory-gke",
        "webhook-gke",
    ];
    let wiring: Vec<(&str, SocketAddr)> = apis
        .iter()
        .enumerate()
        .map(|(i, a)| (*a, ups.addr(i)))
        .collect();
    // No rate limit here: these tests send bursts; the demo's limit has its own test.
    let extras = switchyard::demo::Extras::default();
    let text =
        switchyard::demo::config_text(SocketAddr::from(([127, 0, 0, 1], port)), &wiring, &extras);
    let gw = Gateway::start(&[("acme.yaml", &text)]);
    (ups, gw)
}

#[test]
fn routes_by_header_to_each_api() {
    let (_ups, gw) = scenario();
    for (api, expect) in [
        ("catalog-eks", "catalog-1"),
        ("orders-eks", "orders-1"),
        ("webhook-gke", "webhook-1"),
    ] {
        let r = gw.get("/v1/items?id=7", &[("X-Acme-Api", api)]);
        assert_eq!(r.status, 200, "{api}: {r:?}");
        assert_eq!(r.upstream(), expect);
        assert!(r.body.contains("\"path\":\"/v1/items?id=7\""), "{}", r.body);
    }
    let r = gw.get("/stock", &[("X-Acme-Api", "inventory-gke")]);
    assert!(r.upstream().starts_with("inventory-"), "{r:?}");
}

#[test]
fn forwarded_headers_reach_the_upstream_and_host_is_kept() {
    let (_ups, gw) = scenario();
    let r = gw.get(
        "/",
        &[
            ("X-Acme-Api", "catalog-eks"),
            ("X-Forwarded-For", "203.0.113.9"),
        ],
    );
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .contains("\"x-forwarded-for\":\"203.0.113.9, 127.0.0.1\""),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("\"x-forwarded-proto\":\"http\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("\"host\":\"localhost\""), "{}", r.body);
}

#[test]
fn pool_members_share_the_traffic() {
    let (ups, gw) = scenario();
    let mut client = Client::connect(gw.port).unwrap();
    let mut seen = std::collections::HashMap::new();
    for _ in 0..20 {
        let r = client
            .send("GET", "/stock", &[("X-Acme-Api", "inventory-gke")], "")
            .unwrap();
        assert_eq!(r.status, 200);
        *seen.entry(r.upstream().to_string()).or_insert(0) += 1;
    }
    assert_eq!(seen.get("inventory-1"), Some(&10), "{seen:?}");
    assert_eq!(seen.get("inventory-2"), Some(&10), "{seen:?}");
    assert_eq!(ups.list[2].hits() + ups.list[3].hits(), 20);
}

#[test]
fn upstream_connections_are_kept_alive() {
    let (ups, gw) = scenario();
    for _ in 0..30 {
        // A new client connection each time: reuse must come from the gateway's upstream pool.
        let r = gw.get("/", &[("X-Acme-Api", "orders-eks")]);
        assert_eq!(r.upstream(), "orders-1");
    }
    assert_eq!(ups.list[1].hits(), 30);
    assert!(
        ups.list[1].connections() <= 2,
        "{} connections for 30 requests",
        ups.list[1].connections()
    );
}

#[test]
fn unknown_api_is_404_with_error_code() {
    let (_ups, gw) = scenario();
    let r = gw.get("/", &[("X-Acme-Api", "billing")]);
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("x-switchyard-error"),
        Some("SWY_INTERNAL_NOT_FOUND")
    );
    assert!(r.body.contains("billing.internal"), "{}", r.body);
    // A value that is no host name at all is also just "not found".
    let r = gw.get("/", &[("X-Acme-Api", "a/b")]);
    assert_eq!(r.status, 404);
}

#[test]
fn missing_header_is_400_naming_the_expression() {
    let (_ups, gw) = scenario();
    let r = gw.get("/", &[]);
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-switchyard-error"), Some("SWY_EXPRESSION_ERROR"));
    assert!(
        r.body.contains("getReqHeader('X-Acme-Api')[0]"),
        "{}",
        r.body
    );
    let r = gw.get("/", &[("Accept", "application/json")]);
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(json["error"], "SWY_EXPRESSION_ERROR");
    assert_eq!(json["endpoint"], "http://localhost");
}

#[test]
fn internal_hosts_are_unreachable_from_outside() {
    let (ups, gw) = scenario();
    for host in [
        "catalog-eks.internal",
        "catalog-eks.internal:443",
        "CATALOG-EKS.INTERNAL",
    ] {
        let r = gw.get("/", &[("Host", host), ("X-Acme-Api", "catalog-eks")]);
        assert_eq!(r.status, 404, "{host}");
        assert_eq!(
            r.header("x-switchyard-error"),
            Some("SWY_ENDPOINT_NOT_FOUND")
        );
        assert_eq!(r.upstream(), "");
    }
    assert_eq!(
        ups.list[0].hits(),
        0,
        "the catalog upstream must not have been reached"
    );
}

#[test]
fn unknown_host_is_404() {
    let (_ups, gw) = scenario();
    let r = gw.get(
        "/",
        &[("Host", "evil.example"), ("X-Acme-Api", "catalog-eks")],
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("x-switchyard-error"),
        Some("SWY_ENDPOINT_NOT_FOUND")
    );
}

#[test]
fn policy_deny_rule_answers_without_reaching_upstream() {
    let (ups, gw) = scenario();
    let r = gw.get("/admin/users", &[("X-Acme-Api", "catalog-eks")]);
    assert_eq!(r.status, 403);
    assert_eq!(r.body, "");
    assert_eq!(ups.list[0].hits(), 0);
}

#[test]
fn malformed_requests_get_4xx() {
    let (_ups, gw) = scenario();
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(b"GARBAGE\x01\x02 / HTTP/9\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    // The gateway is still serving.
    let r = gw.get("/", &[("X-Acme-Api", "orders-eks")]);
    assert_eq!(r.status, 200);
}

#[test]
fn the_demo_config_limits_rate_and_denies_listed_addresses() {
    let ups = Upstreams::start(&["catalog-1"]);
    let port = free_port();
    let dir = temp_dir("demo");
    std::fs::write(dir.join("tor.txt"), "127.0.0.2\n").unwrap();
    let extras = switchyard::demo::Extras {
        rate_limit: Some(10),
        tor_list: Some(dir.join("tor.txt")),
        waf: None,
    };
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let text = switchyard::demo::config_text(listen, &[("catalog-eks", ups.addr(0))], &extras);
    std::fs::write(dir.join("demo.yaml"), text).unwrap();
    let gw = Gateway::start_in(dir);
    let mut tor = connect_from(gw.port, "127.0.0.2");
    let r = tor
        .send("GET", "/", &[("X-Acme-Api", "catalog-eks")], "")
        .unwrap();
    assert_eq!((r.status, r.upstream()), (404, ""));
    let mut c = connect_from(gw.port, "127.0.0.3");
    let codes: Vec<u16> = (0..12)
        .map(|_| {
            c.send("GET", "/", &[("X-Acme-Api", "catalog-eks")], "")
                .unwrap()
                .status
        })
        .collect();
    // 10 per second: a burst straddling a second boundary may get a few more through.
    let ok = codes.iter().filter(|s| **s == 200).count();
    assert!(
        (10..=11).contains(&ok) && codes[..10] == [200; 10] && codes[11] == 429,
        "{codes:?}"
    );
}
