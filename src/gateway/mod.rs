//! The only room that knows Pingora: the proxy adaptor, pools, reload and signals.

mod admin;
mod control;
mod heads;
mod pool;
mod proxy;
mod proxy_protocol;
mod reply;
mod routes;

pub use control::Source;
pub use routes::Compiled;

use arc_swap::ArcSwap;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::background::background_service;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// Loads the config, then serves until a signal stops the process.
pub fn run(source: Source) -> anyhow::Result<()> {
    // An unhandled SIGHUP kills the process; ignore it until the control loop takes it over.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let compiled = source.load(None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(compiled.apply(true));
    drop(rt);
    let gateway = compiled.gateway.clone();
    let threads = gateway.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(gateway.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: 1024,
        // Connection refusals are retried on the next pool member by our own hook.
        max_retries: 8,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let state = Arc::new(ArcSwap::from_pointee(compiled));
    let inflight = Arc::new(AtomicUsize::new(0));
    let plain: Vec<_> = gateway
        .listeners
        .iter()
        .filter(|l| !l.proxy_protocol)
        .collect();
    let proxied: Vec<_> = gateway
        .listeners
        .iter()
        .filter(|l| l.proxy_protocol)
        .collect();
    let app = || proxy::Proxy {
        state: state.clone(),
        inflight: inflight.clone(),
    };
    if !plain.is_empty() {
        let mut service = pingora::proxy::http_proxy_service(&server.configuration, app());
        for l in plain {
            service.add_tcp(&l.address.to_string());
            log::info!("listening on http://{}", l.address);
        }
        server.add_service(service);
    }
    if !proxied.is_empty() {
        let inner = Arc::new(pingora::proxy::http_proxy(&server.configuration, app()));
        let mut service = pingora::services::listening::Service::new(
            "Switchyard PROXY protocol listeners".to_string(),
            proxy_protocol::ProxyProtocolApp { inner },
        );
        for l in proxied {
            service.add_tcp(&l.address.to_string());
            log::info!("listening on http://{} (PROXY protocol)", l.address);
        }
        server.add_service(service);
    }
    if let Some(address) = gateway.admin {
        server.add_service(background_service("admin", admin::Admin { address }));
    }
    server.add_service(background_service(
        "control",
        control::Control {
            state,
            source,
            inflight,
            grace: gateway.grace_period,
        },
    ));
    server.run_forever()
}
