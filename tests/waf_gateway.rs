//! The WAF actions through the real gateway with Debian's CRS 3.3.4 at paranoia level 1:
//! classic attacks are blocked before any upstream sees them; ordinary API traffic passes.

mod common;

use common::*;

const WAF_RULES: &str = "        - actions:\n            - type: owasp-crs-request\n              config:\n                on_error: halt\n                process_body: true\n";

/// A request: its name, target, extra headers and body.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

fn debian_crs() -> bool {
    if std::path::Path::new("/usr/share/modsecurity-crs/rules").is_dir() {
        return true;
    }
    if std::env::var_os("SWITCHYARD_REQUIRE_SHARED").is_some() {
        panic!("Debian's modsecurity-crs is required here (scripts/install-deps.sh installs it)");
    }
    eprintln!("skipping: /usr/share/modsecurity-crs is not installed");
    false
}

fn waf_gateway(ups: &Upstreams) -> Gateway {
    gateway_with(ups, WAF_RULES, "")
}

/// The test config with `request_rules` and an `owasp-crs-response` action with
/// `response_config` (indented YAML lines, or nothing).
fn gateway_with(ups: &Upstreams, request_rules: &str, response_config: &str) -> Gateway {
    let port = free_port();
    let mut text = config(port, request_rules, &[("catalog-eks", ups.addr(0))]);
    text = text.replace(
        "                url: https://${getReqHeader('X-Acme-Api')[0]}.internal\n",
        &format!("                url: https://${{getReqHeader('X-Acme-Api')[0]}}.internal\n      on_http_response:\n        - actions:\n            - type: owasp-crs-response\n{response_config}"),
    );
    Gateway::start(&[("gw.yaml", &text)])
}

const BROWSER: &[(&str, &str)] = &[
    ("X-Acme-Api", "catalog-eks"),
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    (
        "Accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br"),
];

fn headers_with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut h: Vec<(&str, &str)> = BROWSER.to_vec();
    h.extend_from_slice(extra);
    h
}

#[test]
fn classic_attacks_are_blocked_before_the_upstream() {
    if !debian_crs() {
        return;
    }
    let ups = Upstreams::start(&["catalog-1"]);
    let gw = waf_gateway(&ups);
    let attacks: &[Case] = &[
        ("sqli", "/products?id=1%27%20OR%20%271%27%3D%271", &[], ""),
        (
            "sqli body",
            "/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "user=admin'--&pass=x' UNION SELECT password FROM users--",
        ),
        (
            "xss",
            "/search?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E",
            &[],
            "",
        ),
        (
            "path traversal",
            "/files?name=../../../../etc/passwd",
            &[],
            "",
        ),
        ("rce", "/ping?host=127.0.0.1;cat%20/etc/passwd", &[], ""),
        (
            "scanner",
            "/",
            &[("User-Agent", "sqlmap/1.7.2#stable (https://sqlmap.org)")],
            "",
        ),
    ];
    for (name, uri, extra, body) in attacks {
        let mut h = headers_with(extra);
        if extra.iter().any(|(k, _)| *k == "User-Agent") {
            h.retain(|(k, v)| *k != "User-Agent" || v.starts_with("sqlmap"));
        }
        let method = if body.is_empty() { "GET" } else { "POST" };
        let r = request(gw.port, method, uri, &h, body);
        assert_eq!(r.status, 403, "{name}: {r:?}");
        assert_eq!(
            r.header("x-switchyard-error"),
            Some("SWY_WAF_BLOCKED"),
            "{name}"
        );
        assert!(
            !r.body.contains("942") && !r.body.contains("941"),
            "rule ids stay in the log: {}",
            r.body
        );
    }
    assert_eq!(ups.list[0].hits(), 0, "no attack reached the upstream");
    assert!(gw.log_text().contains("WAF blocked"), "{}", gw.log_text());
}

#[test]
fn ordinary_api_traffic_passes_with_its_body() {
    if !debian_crs() {
        return;
    }
    let ups = Upstreams::start(&["catalog-1"]);
    let gw = waf_gateway(&ups);
    let json = r#"{"name":"Blue widget","price":12.5,"tags":["home","garden"],"note":"Fits 3/4\" pipes; 2-pack."}"#;
    let cases: &[Case] = &[
        ("plain get", "/v1/products", &[], ""),
        (
            "query punctuation",
            "/v1/search?q=blue+widget%2C+large&sort=-price&page=2&filter[color]=blue",
            &[],
            "",
        ),
        (
            "json post",
            "/v1/products",
            &[("Content-Type", "application/json")],
            json,
        ),
        (
            "form post",
            "/v1/contact",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "name=Ada+Lovelace&email=ada%40example.com&msg=Hello%2C+world%21",
        ),
        (
            "cookies and auth",
            "/v1/cart",
            &[
                ("Cookie", "session=abc123; theme=dark"),
                (
                    "Authorization",
                    "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
                ),
            ],
            "",
        ),
    ];
    for (name, uri, extra, body) in cases {
        let h = headers_with(extra);
        let method = if body.is_empty() { "GET" } else { "POST" };
        let r = request(gw.port, method, uri, &h, body);
        assert_eq!(
            (r.status, r.upstream()),
            (200, "catalog-1"),
            "{name}: {r:?}\n{}",
            gw.log_text()
        );
        let expected = format!("\"body_bytes\":{}", body.len());
        assert!(
            r.body.contains(&expected),
            "{name}: the upstream got the whole body: {}",
            r.body
        );
    }
}

#[test]
fn a_response_body_that_leaks_an_sql_error_never_reaches_the_client() {
    if !debian_crs() {
        return;
    }
    let ups = Upstreams::start(&["catalog-1"]);
    // Only the response is inspected, body included.
    let gw = gateway_with(
        &ups,
        "",
        "              config:\n                process_body: true\n",
    );
    // The test upstream echoes request headers in its JSON body: this one makes the body
    // carry a MySQL error message (CRS 951230 data leakage, critical).
    let leak = "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version for the right syntax to use near ''' at line 1";
    let clean = request(
        gw.port,
        "GET",
        "/v1/products",
        &[("X-Acme-Api", "catalog-eks")],
        "",
    );
    assert_eq!(
        (clean.status, clean.upstream()),
        (200, "catalog-1"),
        "{clean:?}"
    );
    assert!(
        clean.body.contains("\"upstream\":\"catalog-1\""),
        "{clean:?}"
    );

    let mut c = Client::connect(gw.port).expect("connect");
    let leaked = c.send(
        "GET",
        "/v1/products",
        &[("X-Acme-Api", "catalog-eks"), ("X-Note", leak)],
        "",
    );
    match leaked {
        // The status line may be out already; the body must not be.
        Ok(r) => assert!(
            !r.body.contains("SQL syntax"),
            "the leak reached the client: {r:?}"
        ),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}"),
    }
    assert_eq!(ups.list[0].hits(), 2, "the upstream answered both");
    let log = gw.log_text();
    assert!(log.contains("WAF blocked response body"), "{log}");
    assert!(log.contains("951230"), "{log}");
}

#[test]
fn bodies_over_64_kib_are_judged_as_they_stream_and_held_back_until_then() {
    if !debian_crs() {
        return;
    }
    let ups = Upstreams::start(&["catalog-1"]);
    let gw = waf_gateway(&ups);
    let form = |first: &str| format!("{first}&pad={}", "a".repeat(100 * 1024));
    let h = headers_with(&[("Content-Type", "application/x-www-form-urlencoded")]);

    // Too large to read before the policy: it streams, and the WAF sees it on the way.
    let clean = form("name=Ada+Lovelace&msg=Hello%2C+world");
    let r = request(gw.port, "POST", "/v1/contact", &h, &clean);
    assert_eq!((r.status, r.upstream()), (200, "catalog-1"), "{r:?}");
    assert!(
        r.body.contains(&format!("\"body_bytes\":{}", clean.len())),
        "the upstream got the whole body: {}",
        r.body
    );
    assert_eq!(ups.list[0].hits(), 1);

    let attack = form("id=1%27+UNION+SELECT+password+FROM+users--");
    let r = request(gw.port, "POST", "/v1/contact", &h, &attack);
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.header("x-switchyard-error"), Some("SWY_WAF_BLOCKED"));
    assert_eq!(
        ups.list[0].hits(),
        1,
        "the upstream never got the attack's body"
    );
    let log = gw.log_text();
    assert!(log.contains("WAF blocked request body"), "{log}");
}

#[test]
fn chunked_bodies_are_judged_too() {
    if !debian_crs() {
        return;
    }
    let ups = Upstreams::start(&["catalog-1"]);
    let gw = waf_gateway(&ups);
    let chunked = |body: &str| {
        format!(
            "POST /v1/contact HTTP/1.1\r\nHost: localhost\r\nX-Acme-Api: catalog-eks\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        )
    };
    let mut c = Client::connect(gw.port).expect("connect");
    let r = c
        .send_raw(chunked("name=Ada+Lovelace&msg=hello").as_bytes())
        .expect("a response");
    assert_eq!((r.status, r.upstream()), (200, "catalog-1"), "{r:?}");
    assert!(r.body.contains("\"body_bytes\":27"), "{r:?}");

    let mut c = Client::connect(gw.port).expect("connect");
    let r = c
        .send_raw(chunked("id=1%27+UNION+SELECT+password+FROM+users--").as_bytes())
        .expect("a response");
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(
        ups.list[0].hits(),
        1,
        "the attack's body never reached the upstream"
    );
}
