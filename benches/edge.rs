//! Edge protection costs: one rate-limit decision with 1 and 1,000,000 live keys (and the
//! memory 1,000,000 keys take), and one IP-category lookup with 100,000 CIDRs loaded.
//! Run: `cargo bench --bench edge`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use switchyard::ipintel::IpIntel;
use switchyard::ratelimit::{Limit, MemoryStore};

const KEYS: u32 = 1_000_000;

/// Resident and peak memory of this process, in KiB, from /proc.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A deterministic spread of addresses (an LCG), so runs compare.
fn addrs(n: u32, seed: u32) -> Vec<Ipv4Addr> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            Ipv4Addr::from(x)
        })
        .collect()
}

fn rate_limit(c: &mut Criterion) {
    let limit = Limit {
        capacity: 2_000_000_000,
        window: Duration::from_secs(60),
    };
    let one = MemoryStore::new(limit);
    c.bench_function("ratelimit/decide_1_live_key", |b| {
        b.iter(|| black_box(one.decide(b"198.51.100.7", 1_000)))
    });

    let keys: Vec<String> = addrs(KEYS, 7).iter().map(|a| a.to_string()).collect();
    let (before, _) = rss_kib();
    let many = MemoryStore::new(limit);
    for k in &keys {
        many.decide(k.as_bytes(), 1_000);
    }
    let (after, peak) = rss_kib();
    eprintln!(
        "ratelimit memory store: {} live keys: +{} MiB resident ({} buckets; process peak {} MiB)",
        KEYS,
        (after.saturating_sub(before)) / 1024,
        many.len(),
        peak / 1024
    );
    let mut i = 0usize;
    c.bench_function("ratelimit/decide_1m_live_keys", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            black_box(many.decide(keys[i].as_bytes(), 1_000))
        })
    });
}

fn ip_lookup(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("switchyard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("list.txt");
    let mut text = String::new();
    for (i, a) in addrs(100_000, 11).iter().enumerate() {
        let len = 16 + (i % 17); // /16 .. /32
        text.push_str(&format!("{a}/{len}\n"));
    }
    std::fs::write(&file, text).unwrap();
    let intel = IpIntel::load(&[("blocklist.bench".to_string(), vec![file])], &dir).unwrap();
    eprintln!(
        "ipintel: {} CIDRs loaded: {} trie nodes, {} KiB",
        intel.entries(),
        intel.nodes(),
        intel.nodes() * 12 / 1024
    );
    let probes: Vec<IpAddr> = addrs(4096, 3).into_iter().map(IpAddr::V4).collect();
    let mut i = 0usize;
    c.bench_function("ipintel/lookup_100k_cidrs", |b| {
        b.iter(|| {
            i = (i + 1) % probes.len();
            black_box(intel.lookup(probes[i]).len())
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, rate_limit, ip_lookup);
criterion_main!(benches);
