//! IP categories and `restrict-ips` through the real gateway, with clients on distinct
//! loopback addresses.

mod common;

use common::*;

/// The scenario's deny rule, as the guide writes it.
const CATEGORY_RULE: &str = "        - expressions:\n            - ('com.openai' in conn.client_ip.categories) ||\n              ('tor' in conn.client_ip.categories) ||\n              ('proxy.anonymous' in conn.client_ip.categories)\n          actions:\n            - type: deny\n              config:\n                status_code: 404\n";

fn get_from(port: u16, source: &str) -> Response {
    connect_from(port, source)
        .send("GET", "/", &[("X-Acme-Api", "catalog-eks")], "")
        .unwrap()
}

#[test]
fn listed_addresses_are_denied_with_the_scenarios_404_and_lists_reload() {
    let ups = Upstreams::start(&["catalog-1"]);
    let port = free_port();
    let intel = "  ipIntel:\n    categories:\n      proxy.anonymous.tor: [lists/tor.txt]\n      com.openai: lists/openai.txt\n";
    let mut text = gateway_doc_with(port, intel);
    text.push_str(&cloud_endpoint(CATEGORY_RULE));
    text.push_str(&internal_endpoint("catalog-eks", ups.addr(0)));
    let dir = temp_dir("intel");
    std::fs::create_dir_all(dir.join("lists")).unwrap();
    std::fs::write(
        dir.join("lists/tor.txt"),
        "# tor exits\n127.0.0.9\n2001:db8::/32\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("lists/openai.txt"),
        "127.0.1.0/24 # crawler range\n",
    )
    .unwrap();
    std::fs::write(dir.join("gw.yaml"), &text).unwrap();
    let gw = Gateway::start_in(dir.clone());
    let r = get_from(gw.port, "127.0.0.9");
    assert_eq!((r.status, r.upstream()), (404, ""), "{r:?}");
    assert_eq!(get_from(gw.port, "127.0.1.77").status, 404);
    let r = get_from(gw.port, "127.0.0.10");
    assert_eq!((r.status, r.upstream()), (200, "catalog-1"));
    assert_eq!(ups.list[0].hits(), 1);
    // The lists are re-read on SIGHUP.
    std::fs::write(dir.join("lists/tor.txt"), "127.0.0.10\n").unwrap();
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_log("reload applied", 1), "{}", gw.log_text());
    assert_eq!(get_from(gw.port, "127.0.0.10").status, 404);
    assert_eq!(get_from(gw.port, "127.0.0.9").status, 200);
    // A broken list is rejected with its file and line, and the old lists keep working.
    std::fs::write(dir.join("lists/tor.txt"), "127.0.0.10\nnot an address\n").unwrap();
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_log("reload rejected", 1), "{}", gw.log_text());
    assert!(
        gw.log_text()
            .contains("tor.txt:2: `not an address` is not an IP address or CIDR"),
        "{}",
        gw.log_text()
    );
    assert_eq!(get_from(gw.port, "127.0.0.10").status, 404);
}

#[test]
fn category_functions_and_flags_are_usable_in_expressions() {
    let ups = Upstreams::start(&["catalog-1"]);
    let port = free_port();
    let intel = "  ipIntel:\n    categories:\n      proxy.anonymous.tor: [lists/tor.txt]\n      blocklist.abuse: [lists/abuse.txt]\n";
    let rules = "        - actions:\n            - type: add-headers\n              config:\n                headers:\n                  x-intel: \"${conn.client_ip.is_tor_node},${conn.client_ip.is_on_blocklist},${conn.client_ip.categories}\"\n";
    let mut text = gateway_doc_with(port, intel);
    text.push_str(&cloud_endpoint(rules));
    text.push_str(&internal_endpoint("catalog-eks", ups.addr(0)));
    let dir = temp_dir("intel-vars");
    std::fs::create_dir_all(dir.join("lists")).unwrap();
    std::fs::write(dir.join("lists/tor.txt"), "127.0.0.20\n").unwrap();
    std::fs::write(dir.join("lists/abuse.txt"), "127.0.0.21\n").unwrap();
    std::fs::write(dir.join("gw.yaml"), &text).unwrap();
    let gw = Gateway::start_in(dir);
    // The upstream echoes the header: is_tor_node, is_on_blocklist, then the categories.
    for (client, intel) in [
        (
            "127.0.0.20",
            "true,false,proxy,proxy.anonymous,proxy.anonymous.tor",
        ),
        ("127.0.0.21", "false,true,blocklist,blocklist.abuse"),
        ("127.0.0.22", "false,false,"),
    ] {
        let r = get_from(gw.port, client);
        let expected = format!("\"x-intel\":\"{intel}\"");
        assert!(r.body.contains(&expected), "{client}: {}", r.body);
    }
}

#[test]
fn restrict_ips_allows_and_denies_by_cidr() {
    let ups = Upstreams::start(&["catalog-1"]);
    let port = free_port();
    let rules = "        - actions:\n            - type: restrict-ips\n              config:\n                allow: [127.0.0.0/30, \"::1\"]\n                deny: [127.0.0.2/32]\n";
    let gw = Gateway::start(&[(
        "gw.yaml",
        &config(port, rules, &[("catalog-eks", ups.addr(0))]),
    )]);
    assert_eq!(get_from(gw.port, "127.0.0.1").status, 200);
    assert_eq!(get_from(gw.port, "127.0.0.3").status, 200);
    let r = get_from(gw.port, "127.0.0.2");
    assert_eq!(
        (r.status, r.upstream()),
        (403, ""),
        "denied although inside allow"
    );
    assert_eq!(get_from(gw.port, "127.0.0.4").status, 403, "outside allow");
    assert_eq!(ups.list[0].hits(), 2);
}

#[test]
fn unknown_category_names_are_warned_about_by_check() {
    let port = free_port();
    let mut text = gateway_doc_with(
        port,
        "  ipIntel:\n    categories:\n      proxy.anonymous.tor: [tor.txt]\n",
    );
    text.push_str(&cloud_endpoint(CATEGORY_RULE));
    let dir = temp_dir("intel-check");
    std::fs::write(dir.join("tor.txt"), "192.0.2.1\n").unwrap();
    std::fs::write(dir.join("gw.yaml"), &text).unwrap();
    let out = std::process::Command::new(binary())
        .args(["check", "--config"])
        .arg(&dir)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("warning: no ipIntel list defines the category `com.openai`"),
        "{out}"
    );
    assert!(
        out.contains("warning: no ipIntel list defines the category `tor`"),
        "{out}"
    );
    assert!(!out.contains("category `proxy.anonymous`"), "{out}");
}
