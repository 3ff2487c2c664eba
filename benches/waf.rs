//! The WAF engine with CRS v4.28.0 (from ../shared, or SWITCHYARD_SHARED): one request through
//! phases 1-2 for a clean GET, a clean 2 KiB JSON POST, a 2 KiB form POST, and an attack, at
//! paranoia levels 1 and 4; and the memory the loaded rule set takes.
//! Run: `cargo bench --bench waf`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::path::PathBuf;
use switchyard::waf::ruleset::RuleSet;
use switchyard::waf::transaction::{Request, Transaction};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn request(method: &str, uri: &str, ctype: Option<&str>, len: usize) -> Request {
    let mut headers = vec![
        ("Host".to_string(), b"api.acme.example".to_vec()),
        (
            "User-Agent".to_string(),
            b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".to_vec(),
        ),
        (
            "Accept".to_string(),
            b"application/json, text/plain, */*".to_vec(),
        ),
        ("Accept-Language".to_string(), b"en-US,en;q=0.5".to_vec()),
        ("Accept-Encoding".to_string(), b"gzip, deflate, br".to_vec()),
        (
            "Cookie".to_string(),
            b"session=4f2a9c1e; theme=dark".to_vec(),
        ),
    ];
    if let Some(c) = ctype {
        headers.push(("Content-Type".to_string(), c.as_bytes().to_vec()));
        headers.push(("Content-Length".to_string(), len.to_string().into_bytes()));
    }
    Request {
        method: method.into(),
        uri: uri.into(),
        protocol: "HTTP/1.1".into(),
        headers,
        remote_addr: "198.51.100.7".into(),
        remote_port: 40000,
        server_addr: "127.0.0.1".into(),
        server_port: 8080,
    }
}

fn run(rules: &RuleSet, pl: &str, req: &Request, body: &[u8]) -> usize {
    let mut tx = Transaction::new(rules);
    for k in [
        "blocking_paranoia_level",
        "detection_paranoia_level",
        "paranoia_level",
    ] {
        tx.set_tx(k, pl);
    }
    tx.process_request_headers(req);
    tx.process_request_body(body);
    tx.matched.len()
}

fn bench(c: &mut Criterion) {
    let shared = std::env::var_os("SWITCHYARD_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let crs = shared.join("crs/v4.28.0");
    if !crs.is_dir() {
        eprintln!("skipping: {} not found", crs.display());
        return;
    }
    let before = rss_kib();
    let rules = switchyard::waf::loader::load_crs(&crs, None, Vec::new()).expect("CRS v4 loads");
    eprintln!(
        "CRS v4.28.0 loaded: {} rules, +{} MiB resident (process {} MiB)",
        rules.rules,
        rss_kib().saturating_sub(before) / 1024,
        rss_kib() / 1024
    );
    let json = {
        let mut s = String::from(r#"{"order":{"id":"A-1029","items":["#);
        while s.len() < 1900 {
            s.push_str(r#"{"sku":"WID-0042","name":"Blue widget, large","qty":2,"price":12.5},"#);
        }
        s.push_str(r#"{"sku":"END","qty":1}]},"note":"Leave at the door."}"#);
        s
    };
    let form = {
        let mut s = String::from("name=Ada+Lovelace&email=ada%40example.com");
        let mut i = 0;
        while s.len() < 2000 {
            s.push_str(&format!("&field{i}=some+ordinary+text+value+{i}"));
            i += 1;
        }
        s
    };
    let get = request(
        "GET",
        "/v1/products?page=2&sort=-price&q=blue+widget",
        None,
        0,
    );
    let post_json = request("POST", "/v1/orders", Some("application/json"), json.len());
    let post_form = request(
        "POST",
        "/v1/contact",
        Some("application/x-www-form-urlencoded"),
        form.len(),
    );
    let attack = request(
        "GET",
        "/v1/products?id=1%27%20UNION%20SELECT%20password%20FROM%20users--",
        None,
        0,
    );
    for pl in ["1", "4"] {
        c.bench_function(&format!("waf/pl{pl}/clean_get"), |b| {
            b.iter(|| black_box(run(&rules, pl, &get, b"")))
        });
        c.bench_function(&format!("waf/pl{pl}/clean_json_post_2k"), |b| {
            b.iter(|| black_box(run(&rules, pl, &post_json, json.as_bytes())))
        });
        c.bench_function(&format!("waf/pl{pl}/form_post_2k"), |b| {
            b.iter(|| black_box(run(&rules, pl, &post_form, form.as_bytes())))
        });
        c.bench_function(&format!("waf/pl{pl}/attack"), |b| {
            b.iter(|| black_box(run(&rules, pl, &attack, b"")))
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
