//! The real client IP: PROXY protocol v1/v2 listeners and trusted proxies' X-Forwarded-For,
//! seen through `rate-limit` buckets and what the upstream receives.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;

const LIMIT_2: &str = "        - actions:\n            - type: rate-limit\n              config:\n                name: per client\n                algorithm: sliding_window\n                capacity: 2\n                rate: 60s\n                bucket_key: [conn.client_ip]\n            - type: add-headers\n              config:\n                headers: {x-seen-client: \"${conn.client_ip}\"}\n";

fn proxy_listener_gateway(ups: &Upstreams) -> Gateway {
    let port = free_port();
    let text = config(port, LIMIT_2, &[("catalog-eks", ups.addr(0))]).replace(
        "  gracePeriod: 3s\n",
        "      proxyProtocol: true\n  gracePeriod: 3s\n",
    );
    assert!(text.contains("proxyProtocol: true"));
    Gateway::start(&[("gw.yaml", &text)])
}

fn v2_header(src: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend([0x21, 0x11, 0, 12]);
    h.extend(src);
    h.extend([127, 0, 0, 1]);
    h.extend(port.to_be_bytes());
    h.extend(8080u16.to_be_bytes());
    h
}

fn proxied_client(port: u16, header: &[u8]) -> Client {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(header).unwrap();
    Client::from_stream(port, s)
}

fn send(c: &mut Client) -> Response {
    c.send("GET", "/", &[("X-Acme-Api", "catalog-eks")], "")
        .unwrap()
}

#[test]
fn a_proxy_v2_headers_address_is_the_one_limited() {
    let ups = Upstreams::start(&["catalog-1"]);
    let gw = proxy_listener_gateway(&ups);
    let mut a = proxied_client(gw.port, &v2_header([198, 51, 100, 9], 40000));
    let r = send(&mut a);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains("\"x-seen-client\":\"198.51.100.9\""),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("\"x-forwarded-for\":\"198.51.100.9\""),
        "{}",
        r.body
    );
    assert_eq!(send(&mut a).status, 200);
    assert_eq!(
        send(&mut a).status,
        429,
        "keep-alive requests keep the PROXY address"
    );
    // The same address on a new connection is still limited; another one is not.
    assert_eq!(
        send(&mut proxied_client(
            gw.port,
            &v2_header([198, 51, 100, 9], 40001)
        ))
        .status,
        429
    );
    assert_eq!(
        send(&mut proxied_client(
            gw.port,
            &v2_header([198, 51, 100, 10], 40002)
        ))
        .status,
        200
    );
}

#[test]
fn a_proxy_v1_header_works_and_a_malformed_one_closes_only_its_connection() {
    let ups = Upstreams::start(&["catalog-1"]);
    let gw = proxy_listener_gateway(&ups);
    let mut bad = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    bad.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    bad.write_all(b"PROXY TCP9 nonsense\r\nGET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = bad.read_to_end(&mut buf);
    assert!(
        buf.is_empty(),
        "no answer on a malformed header: {}",
        String::from_utf8_lossy(&buf)
    );
    let mut good = proxied_client(gw.port, b"PROXY TCP4 203.0.113.50 127.0.0.1 5555 8080\r\n");
    let r = send(&mut good);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains("\"x-seen-client\":\"203.0.113.50\""),
        "{}",
        r.body
    );
    assert!(
        gw.log_text()
            .contains("PROXY protocol: malformed PROXY header"),
        "{}",
        gw.log_text()
    );
}

#[test]
fn x_forwarded_for_counts_only_from_trusted_proxies() {
    let ups = Upstreams::start(&["catalog-1"]);
    let port = free_port();
    let mut text = gateway_doc_with(port, "  trustedProxies: [127.0.0.2/32, 10.0.0.0/8]\n");
    text.push_str(&cloud_endpoint(LIMIT_2));
    text.push_str(&internal_endpoint("catalog-eks", ups.addr(0)));
    let gw = Gateway::start(&[("gw.yaml", &text)]);

    // An untrusted peer cannot escape its limit by inventing X-Forwarded-For values.
    let mut spoofer = connect_from(gw.port, "127.0.0.3");
    let mut seen = Vec::new();
    for i in 0..4 {
        let fake = format!("203.0.113.{i}");
        let r = spoofer
            .send(
                "GET",
                "/",
                &[("X-Acme-Api", "catalog-eks"), ("X-Forwarded-For", &fake)],
                "",
            )
            .unwrap();
        seen.push(r.status);
    }
    assert_eq!(seen, [200, 200, 429, 429]);

    // Through the trusted proxy, the client it names is the one limited (skipping trusted hops).
    let mut lb = connect_from(gw.port, "127.0.0.2");
    let xff = [
        ("X-Acme-Api", "catalog-eks"),
        ("X-Forwarded-For", "198.51.100.20, 10.1.2.3"),
    ];
    let r = lb.send("GET", "/", &xff, "").unwrap();
    assert!(
        r.body.contains("\"x-seen-client\":\"198.51.100.20\""),
        "{}",
        r.body
    );
    assert_eq!(lb.send("GET", "/", &xff, "").unwrap().status, 200);
    assert_eq!(lb.send("GET", "/", &xff, "").unwrap().status, 429);
    let other = [
        ("X-Acme-Api", "catalog-eks"),
        ("X-Forwarded-For", "198.51.100.21"),
    ];
    assert_eq!(lb.send("GET", "/", &other, "").unwrap().status, 200);
}
