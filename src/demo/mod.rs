//! `switchyard demo`: the Acme scenario on loopback. Built-in upstream APIs (catalog, orders,
//! two inventory replicas forming a pool, webhooks) and the scenario's policy, with every
//! action this build supports (rate limit, IP categories, routing by header).

pub mod upstream;

use crate::gateway::{self, Source};
use std::net::SocketAddr;

const UPSTREAMS: &[(&str, &str)] = &[
    ("catalog-eks", "catalog-1"),
    ("orders-eks", "orders-1"),
    ("inventory-gke", "inventory-1"),
    ("inventory-gke", "inventory-2"),
    ("webhook-gke", "webhook-1"),
];

/// What the demo adds to the scenario's endpoints.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// `rate-limit` capacity per client IP per second, as the scenario writes it (10).
    pub rate_limit: Option<u64>,
    /// A list file whose addresses are Tor exits (`proxy.anonymous.tor`).
    pub tor_list: Option<std::path::PathBuf>,
    /// The OWASP CRS on requests (with bodies) and responses, from this CRS directory.
    pub waf: Option<std::path::PathBuf>,
}

/// The demo's config: the scenario's endpoints pointed at the built-in upstreams.
pub fn config_text(
    listen: SocketAddr,
    upstreams: &[(&str, SocketAddr)],
    extras: &Extras,
) -> String {
    let intel = match &extras.tor_list {
        Some(path) => format!(
            "  ipIntel:\n    categories:\n      proxy.anonymous.tor: [\"{}\"]\n",
            path.display()
        ),
        None => String::new(),
    };
    let rate_limit = match extras.rate_limit {
        Some(capacity) => format!(
            r#"          - type: rate-limit
            config:
              name: Only allow {capacity} requests per second
              algorithm: sliding_window
              capacity: {capacity}
              rate: 1s
              bucket_key:
                - "conn.client_ip"
"#
        ),
        None => String::new(),
    };
    let (waf_gateway, waf_request, waf_response) = match &extras.waf {
        Some(dir) => (
            format!("  waf:\n    crsDir: \"{}\"\n", dir.display()),
            "          - type: owasp-crs-request\n            config:\n              on_error: halt\n              process_body: true\n",
            "      on_http_response:\n        actions:\n          - type: owasp-crs-response\n            config:\n              on_error: halt\n",
        ),
        None => (String::new(), "", ""),
    };
    let mut yaml = format!(
        r#"apiVersion: switchyard.dev/v1alpha1
kind: Gateway
spec:
  listeners:
    - address: {listen}
  gracePeriod: 5s
{intel}{waf_gateway}---
apiVersion: ngrok.k8s.ngrok.com/v1alpha1
kind: CloudEndpoint
metadata:
  name: acme-api
spec:
  url: http://localhost
  trafficPolicy:
    policy:
      on_http_request:
        actions:
{rate_limit}{waf_request}          # Block AI bots and anonymizing proxies by IP category.
          - expressions:
              - ('com.anthropic' in conn.client_ip.categories) ||
                ('com.openai' in conn.client_ip.categories) ||
                ('proxy.anonymous' in conn.client_ip.categories)
            actions:
              - type: deny
                config:
                  status_code: 404
          # The demo's own rule, so there is a denied request to try.
          - expressions:
              - req.url.path.startsWith('/admin')
            actions:
              - type: deny
                config:
                  status_code: 403
          - type: forward-internal
            config:
              url: https://${{getReqHeader('X-Acme-Api')[0]}}.internal
{waf_response}"#
    );
    for (i, (api, addr)) in upstreams.iter().enumerate() {
        yaml.push_str(&format!(
            r#"---
apiVersion: ngrok.k8s.ngrok.com/v1alpha1
kind: AgentEndpoint
metadata:
  name: {api}-{i}
spec:
  bindings:
    - internal
  url: https://{api}.internal
  upstream:
    url: http://{addr}
"#
        ));
    }
    yaml
}

pub fn run(listen: SocketAddr) -> anyhow::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("demo-upstreams".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime for the demo upstreams");
            rt.block_on(async move {
                let mut addrs = Vec::new();
                let mut running = Vec::new();
                for (api, name) in UPSTREAMS {
                    let up = upstream::spawn(name).await;
                    addrs.push((*api, up.as_ref().map(|u| u.addr).map_err(|e| e.kind())));
                    running.push(up);
                }
                let _ = tx.send(addrs);
                std::future::pending::<()>().await;
            });
        })?;
    let mut upstreams = Vec::new();
    for (api, addr) in rx.recv()? {
        let addr =
            addr.map_err(|kind| anyhow::anyhow!("cannot start the demo upstreams: {kind}"))?;
        upstreams.push((api, addr));
    }
    // The demo's IP list: 127.0.0.2 (reachable with `curl --interface 127.0.0.2`) is a Tor exit.
    let dir = std::env::temp_dir().join(format!("switchyard-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let tor_list = dir.join("tor-exits.txt");
    std::fs::write(&tor_list, "# the demo's Tor exits\n127.0.0.2\n")?;
    // The CRS comes from Debian's modsecurity-crs package (scripts/install-deps.sh).
    let crs = std::path::PathBuf::from("/usr/share/modsecurity-crs");
    let waf = crs.join("rules").is_dir().then_some(crs);
    if waf.is_none() {
        println!(
            "note: /usr/share/modsecurity-crs is not installed, so the demo runs without the WAF"
        );
    }
    let extras = Extras {
        rate_limit: Some(10),
        tor_list: Some(tor_list),
        waf,
    };
    let text = config_text(listen, &upstreams, &extras);
    print_intro(listen, &upstreams);
    gateway::run(Source::Text(text.into()))
}

fn print_intro(listen: SocketAddr, upstreams: &[(&str, SocketAddr)]) {
    let base = format!("http://localhost:{}", listen.port());
    println!("Switchyard demo: the Acme multicloud API gateway on {base}");
    for (api, addr) in upstreams {
        println!("  upstream https://{api}.internal -> http://{addr}");
    }
    println!(
        "\nTry:\n\
  curl -s {base}/products -H 'X-Acme-Api: catalog-eks'      # routed by header to the Catalog API\n\
  curl -s {base}/orders -H 'X-Acme-Api: orders-eks'         # the Orders API\n\
  curl -s {base}/stock -H 'X-Acme-Api: inventory-gke'       # run twice: inventory-1, then inventory-2 (a pool)\n\
  curl -s {base}/events -H 'X-Acme-Api: webhook-gke'        # the Webhook receiver\n\
  curl -si {base}/ -H 'X-Acme-Api: billing'                 # 404 SWY_INTERNAL_NOT_FOUND: no such API\n\
  curl -si {base}/                                          # 400 SWY_EXPRESSION_ERROR: no X-Acme-Api header\n\
  curl -si {base}/admin -H 'X-Acme-Api: catalog-eks'        # 403: denied by policy\n\
  curl -si --interface 127.0.0.2 {base}/ -H 'X-Acme-Api: catalog-eks'   # 404: a Tor exit (IP category)\n\
  curl -si \"{base}/products?id=1'%20OR%20'1'='1\" -H 'X-Acme-Api: catalog-eks'   # 403: the OWASP CRS blocks SQL injection\n\
  for i in $(seq 12); do curl -s -o /dev/null -w '%{{http_code}} ' {base}/ -H 'X-Acme-Api: orders-eks'; done; echo\n\
                                                            # 10 x 200, then 429: 10 requests/s per client IP\n\
Reload the config with: kill -HUP <pid>; stop with Ctrl-C.\n"
    );
}
