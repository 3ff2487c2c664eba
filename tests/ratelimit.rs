//! `rate-limit` through the real gateway: per-client buckets, Retry-After, enforce: false,
//! state across reloads, and limits shared through a real Redis.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn limit_rule(capacity: u64, rate: &str, extra: &str) -> String {
    format!(
        "        - actions:\n            - type: rate-limit\n              config:\n                name: per client\n                algorithm: sliding_window\n                capacity: {capacity}\n                rate: {rate}\n                bucket_key: [conn.client_ip]\n{extra}"
    )
}

fn statuses(client: &mut Client, n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| {
            client
                .send("GET", "/", &[("X-Acme-Api", "catalog-eks")], "")
                .unwrap()
                .status
        })
        .collect()
}

#[test]
fn exactly_capacity_pass_per_client_and_others_are_unaffected() {
    let ups = Upstreams::start(&["catalog-1"]);
    let port = free_port();
    let rules = limit_rule(5, "30s", "");
    let gw = Gateway::start(&[(
        "gw.yaml",
        &config(port, &rules, &[("catalog-eks", ups.addr(0))]),
    )]);
    let mut a = connect_from(gw.port, "127.0.0.2");
    assert_eq!(
        statuses(&mut a, 8),
        [200, 200, 200, 200, 200, 429, 429, 429]
    );
    let r = a
        .send("GET", "/", &[("X-Acme-Api", "catalog-eks")], "")
        .unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-switchyard-error"), Some("SWY_RATE_LIMITED"));
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        ups.list[0].hits(),
        5,
        "rejected requests never reach the upstream"
    );
    let mut b = connect_from(gw.port, "127.0.0.3");
    assert_eq!(statuses(&mut b, 5), [200; 5]);
    // A new connection from the limited address is still limited.
    let mut a2 = connect_from(gw.port, "127.0.0.2");
    assert_eq!(statuses(&mut a2, 1), [429]);
}

#[test]
fn enforce_false_blocks_nothing_but_sets_the_variables() {
    let ups = Upstreams::start(&["catalog-1"]);
    let port = free_port();
    let rules = limit_rule(
        2,
        "60s",
        "                enforce: false\n        - expressions: [\"actions.ngrok.rate_limit.limited\"]\n          actions:\n            - type: add-headers\n              config:\n                headers: {x-limited: \"${actions.ngrok.rate_limit.bucket_key}\"}\n",
    );
    let gw = Gateway::start(&[(
        "gw.yaml",
        &config(port, &rules, &[("catalog-eks", ups.addr(0))]),
    )]);
    let mut c = connect_from(gw.port, "127.0.0.4");
    for i in 0..5 {
        let r = c
            .send("GET", "/", &[("X-Acme-Api", "catalog-eks")], "")
            .unwrap();
        assert_eq!((r.status, r.upstream()), (200, "catalog-1"), "request {i}");
        let flagged = r.body.contains("\"x-limited\":\"127.0.0.4\"");
        assert_eq!(flagged, i >= 2, "request {i}: {}", r.body);
    }
}

#[test]
fn limiter_state_survives_a_reload_that_keeps_the_action() {
    let ups = Upstreams::start(&["catalog-1"]);
    let port = free_port();
    let apis = [("catalog-eks", ups.addr(0))];
    let gw = Gateway::start(&[("gw.yaml", &config(port, &limit_rule(3, "60s", ""), &apis))]);
    let mut c = connect_from(gw.port, "127.0.0.5");
    assert_eq!(statuses(&mut c, 4), [200, 200, 200, 429]);
    // Same action, another rule added: the counts carry over.
    let extra = "        - expressions: [\"req.url.path == '/other'\"]\n          actions: [{type: deny}]\n";
    gw.write(
        "gw.yaml",
        &config(port, &(limit_rule(3, "60s", "") + extra), &apis),
    );
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_log("reload applied", 1), "{}", gw.log_text());
    assert_eq!(statuses(&mut c, 1), [429]);
    // A changed limit is a new limiter.
    gw.write("gw.yaml", &config(port, &limit_rule(4, "60s", ""), &apis));
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_log("reload applied", 2), "{}", gw.log_text());
    assert_eq!(statuses(&mut c, 5), [200, 200, 200, 200, 429]);
}

fn redis_gateway(redis: &str, failure: &str, capacity: u64, up: std::net::SocketAddr) -> Gateway {
    let port = free_port();
    let admin = free_port();
    let store = format!(
        "  rateLimit:\n    store: {redis}\n    failure: {failure}\n  admin: 127.0.0.1:{admin}\n"
    );
    let mut text = gateway_doc_with(port, &store);
    text.push_str(&cloud_endpoint(&limit_rule(capacity, "60s", "")));
    text.push_str(&internal_endpoint("catalog-eks", up));
    Gateway::start(&[("gw.yaml", &text)])
}

#[test]
fn two_gateways_sharing_redis_enforce_one_limit() {
    let Some(redis) = Redis::start() else { return };
    let ups = Upstreams::start(&["catalog-1"]);
    let one = redis_gateway(&redis.url(), "open", 6, ups.addr(0));
    let two = redis_gateway(&redis.url(), "open", 6, ups.addr(0));
    let mut a = connect_from(one.port, "127.0.0.6");
    let mut b = connect_from(two.port, "127.0.0.6");
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.extend(statuses(&mut a, 1));
        seen.extend(statuses(&mut b, 1));
    }
    assert_eq!(seen.iter().filter(|s| **s == 200).count(), 6, "{seen:?}");
    assert_eq!(&seen[..6], &[200; 6], "{seen:?}");
    assert!(seen[6..].iter().all(|s| *s == 429), "{seen:?}");
    assert_eq!(ups.list[0].hits(), 6);
}

#[test]
fn losing_redis_loses_no_request_and_recovers() {
    let Some(redis) = Redis::start() else { return };
    let redis_port = redis.port;
    let ups = Upstreams::start(&["catalog-1"]);
    let gw = redis_gateway(&redis.url(), "open", 3, ups.addr(0));
    let mut c = connect_from(gw.port, "127.0.0.7");
    assert_eq!(statuses(&mut c, 4), [200, 200, 200, 429]);
    drop(redis);
    // Fail open: every request is served while Redis is gone, and the log says so once.
    assert_eq!(statuses(&mut c, 10), [200; 10]);
    assert!(gw.wait_log("rate-limit store: redis rate-limit store unavailable", 1));
    assert_eq!(gw.log_text().matches("deciding without it").count(), 1);
    let metrics = admin_get(&gw, "/metrics");
    assert!(
        metrics.contains("switchyard_ratelimit_redis_up 0"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("switchyard_ratelimit_redis_errors_total 0"),
        "{metrics}"
    );
    // Redis returns (empty): limits apply again without a restart.
    let _redis = Redis::start_on(redis_port).expect("redis restarts");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut limited = false;
    while Instant::now() < deadline && !limited {
        limited = statuses(&mut c, 1) == [429];
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(limited, "limits did not come back: {}", gw.log_text());
    assert!(gw.wait_log("Redis answers again", 1), "{}", gw.log_text());
    assert!(admin_get(&gw, "/metrics").contains("switchyard_ratelimit_redis_up 1"));
    assert_eq!(admin_get(&gw, "/healthz"), "ok\n");
}

/// GET on the gateway's admin listener (its port follows `admin: 127.0.0.1:` in the config).
fn admin_get(gw: &Gateway, path: &str) -> String {
    let text = std::fs::read_to_string(gw.dir.join("gw.yaml")).unwrap();
    let at = text.find("admin: 127.0.0.1:").unwrap() + "admin: 127.0.0.1:".len();
    let port: u16 = text[at..].lines().next().unwrap().trim().parse().unwrap();
    let r = request(port, "GET", path, &[], "");
    assert_eq!(r.status, 200);
    r.body
}

#[test]
fn fail_closed_answers_503_while_redis_is_down() {
    let Some(redis) = Redis::start() else { return };
    let ups = Upstreams::start(&["catalog-1"]);
    let gw = redis_gateway(&redis.url(), "closed", 3, ups.addr(0));
    let mut c = connect_from(gw.port, "127.0.0.8");
    assert_eq!(statuses(&mut c, 1), [200]);
    drop(redis);
    let r = c
        .send("GET", "/", &[("X-Acme-Api", "catalog-eks")], "")
        .unwrap();
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(
        r.header("x-switchyard-error"),
        Some("SWY_RATE_LIMIT_UNAVAILABLE")
    );
}

#[test]
fn killing_redis_under_load_fails_no_request() {
    let Some(redis) = Redis::start() else { return };
    let ups = Upstreams::start(&["catalog-1"]);
    let gw = redis_gateway(&redis.url(), "open", 1_000_000, ups.addr(0));
    let port = gw.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = connect_from(port, &format!("127.0.2.{}", i + 1));
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match c.send("GET", "/", &[("X-Acme-Api", "catalog-eks")], "") {
                        Ok(r) => seen.push(r.status),
                        Err(e) => panic!("request failed: {e}"),
                    }
                }
                seen
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    drop(redis);
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen: Vec<u16> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(seen.len() > 30, "only {} requests", seen.len());
    assert!(seen.iter().all(|s| *s == 200), "{seen:?}");
    assert!(gw.wait_log("deciding without it", 1), "{}", gw.log_text());
}
