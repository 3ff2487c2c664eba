//! Reload, pool failures and shutdown through the real gateway process.

mod common;

use common::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DENY_V2: &str = "        - expressions: [\"req.url.path == '/v2'\"]\n          actions:\n            - type: custom-response\n              config:\n                status_code: 410\n                body: gone in v2\n";

#[test]
fn sighup_with_a_changed_policy_changes_behaviour() {
    let ups = Upstreams::start(&["catalog-1"]);
    let port = free_port();
    let apis = [("catalog-eks", ups.addr(0))];
    let gw = Gateway::start(&[("gw.yaml", &config(port, "", &apis))]);
    assert_eq!(gw.get("/v2", &[("X-Acme-Api", "catalog-eks")]).status, 200);
    gw.write("gw.yaml", &config(port, DENY_V2, &apis));
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_log("reload applied", 1), "{}", gw.log_text());
    let r = gw.get("/v2", &[("X-Acme-Api", "catalog-eks")]);
    assert_eq!((r.status, r.body.as_str()), (410, "gone in v2"));
    assert_eq!(
        gw.get("/v1", &[("X-Acme-Api", "catalog-eks")]).upstream(),
        "catalog-1"
    );
}

#[test]
fn sighup_with_a_broken_file_keeps_the_running_config() {
    let ups = Upstreams::start(&["catalog-1"]);
    let port = free_port();
    let apis = [("catalog-eks", ups.addr(0))];
    let gw = Gateway::start(&[("gw.yaml", &config(port, "", &apis))]);
    let broken = config(
        port,
        "        - actions:\n            - type: teleport\n",
        &apis,
    );
    let line_no = 1 + broken
        .lines()
        .position(|l| l.trim() == "- type: teleport")
        .unwrap();
    gw.write("gw.yaml", &broken);
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_log("reload rejected", 1), "{}", gw.log_text());
    let log = gw.log_text();
    let line = log.lines().find(|l| l.contains("reload rejected")).unwrap();
    let expected = format!("gw.yaml:{line_no}: unknown action type `teleport`");
    assert!(line.contains(&expected), "{line}");
    assert_eq!(log.matches("reload rejected").count(), 1);
    let r = gw.get("/", &[("X-Acme-Api", "catalog-eks")]);
    assert_eq!((r.status, r.upstream()), (200, "catalog-1"));
    // Broken YAML is rejected the same way.
    gw.write("gw.yaml", "kind: Gateway\nspec: [unclosed\n");
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_log("reload rejected", 2), "{}", gw.log_text());
    assert_eq!(gw.get("/", &[("X-Acme-Api", "catalog-eks")]).status, 200);
}

#[test]
fn a_burst_across_reloads_sees_no_error() {
    let ups = Upstreams::start(&["catalog-1", "catalog-2"]);
    let port = free_port();
    let one = [("catalog-eks", ups.addr(0))];
    let two = [("catalog-eks", ups.addr(0)), ("catalog-eks", ups.addr(1))];
    let gw = Gateway::start(&[("gw.yaml", &config(port, "", &one))]);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (stop, ok) = (stop.clone(), ok.clone());
        workers.push(std::thread::spawn(move || {
            let mut client = Client::connect(port).unwrap();
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match client.send("GET", "/", &[("X-Acme-Api", "catalog-eks")], "") {
                    Ok(r) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.push(format!("status {}: {}", r.status, r.body)),
                    Err(e) => failures.push(format!("io: {e}")),
                }
            }
            failures
        }));
    }
    for i in 0..6 {
        std::thread::sleep(Duration::from_millis(150));
        let apis: &[(&str, std::net::SocketAddr)] = if i % 2 == 0 { &two } else { &one };
        gw.write("gw.yaml", &config(port, "", apis));
        gw.signal(libc::SIGHUP);
        assert!(gw.wait_log("reload applied", i + 1), "{}", gw.log_text());
    }
    std::thread::sleep(Duration::from_millis(150));
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "only {} requests",
        ok.load(Ordering::Relaxed)
    );
    assert!(
        ups.list[1].hits() > 0,
        "the second member joined after a reload"
    );
}

#[test]
fn a_pool_member_killed_mid_test_fails_no_request() {
    let ups = Upstreams::start(&["inventory-1", "inventory-2"]);
    let port = free_port();
    let apis = [
        ("inventory-gke", ups.addr(0)),
        ("inventory-gke", ups.addr(1)),
    ];
    let gw = Gateway::start(&[("gw.yaml", &config(port, "", &apis))]);
    let mut answered_by = Vec::new();
    for i in 0..60 {
        if i == 20 {
            ups.list[0].stop();
        }
        // A fresh connection each time, as independent clients would.
        let r = gw.get("/stock", &[("X-Acme-Api", "inventory-gke")]);
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        answered_by.push(r.upstream().to_string());
    }
    assert!(
        answered_by[..20].iter().any(|u| u == "inventory-1"),
        "{answered_by:?}"
    );
    assert!(
        answered_by[20..].iter().all(|u| u == "inventory-2"),
        "{answered_by:?}"
    );
}

#[test]
fn a_pool_with_no_healthy_member_is_503_and_recovers() {
    let mut ups = Upstreams::start(&["orders-1"]);
    let addr = ups.addr(0);
    let port = free_port();
    let gw = Gateway::start(&[("gw.yaml", &config(port, "", &[("orders-eks", addr)]))]);
    assert_eq!(gw.get("/", &[("X-Acme-Api", "orders-eks")]).status, 200);
    ups.list[0].stop();
    std::thread::sleep(Duration::from_millis(50));
    let r = gw.get("/", &[("X-Acme-Api", "orders-eks")]);
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("x-switchyard-error"), Some("SWY_POOL_UNAVAILABLE"));
    assert!(
        r.body.contains("https://orders-eks.internal"),
        "names the endpoint: {}",
        r.body
    );
    // The member comes back on the same address; the active health check lets it in again.
    ups.respawn("orders-1b", addr);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = gw.get("/", &[("X-Acme-Api", "orders-eks")]);
        if r.status == 200 {
            assert_eq!(r.upstream(), "orders-1b");
            break;
        }
        assert_eq!(r.status, 503);
        assert!(Instant::now() < deadline, "member never came back");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits() {
    let ups = Upstreams::start(&["catalog-1"]);
    let port = free_port();
    let mut gw = Gateway::start(&[(
        "gw.yaml",
        &config(port, "", &[("catalog-eks", ups.addr(0))]),
    )]);
    let slow = std::thread::spawn(move || {
        request(
            port,
            "GET",
            "/slow/800",
            &[("X-Acme-Api", "catalog-eks")],
            "",
        )
    });
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    gw.signal(libc::SIGTERM);
    let r = slow.join().unwrap();
    assert_eq!((r.status, r.upstream()), (200, "catalog-1"));
    let status = gw
        .wait_exit(Duration::from_secs(5))
        .expect("exits after draining");
    assert!(status.success(), "{status}");
    // It exits once the slow request is done, not after the whole 3 s grace period.
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn sigint_after_sigterm_stops_at_once() {
    let ups = Upstreams::start(&["catalog-1"]);
    let port = free_port();
    let mut gw = Gateway::start(&[(
        "gw.yaml",
        &config(port, "", &[("catalog-eks", ups.addr(0))]),
    )]);
    let _slow = std::thread::spawn(move || {
        let mut c = Client::connect(port).unwrap();
        let _ = c.send("GET", "/slow/20000", &[("X-Acme-Api", "catalog-eks")], "");
    });
    std::thread::sleep(Duration::from_millis(200));
    gw.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        gw.wait_exit(Duration::from_millis(10)).is_none(),
        "still draining"
    );
    gw.signal(libc::SIGINT);
    assert!(
        gw.wait_exit(Duration::from_secs(2)).is_some(),
        "SIGINT must stop it at once"
    );
}
