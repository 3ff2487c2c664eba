//! The control loop beside the proxy: SIGHUP reload, bounded SIGTERM drain, immediate SIGINT,
//! and the pools' health checks and DNS refresh.

use super::routes::Compiled;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, Signal, SignalKind};

const HEALTH_EVERY: Duration = Duration::from_secs(1);
const DNS_EVERY: Duration = Duration::from_secs(30);

/// Where the config comes from: a path, or built-in text (the demo).
#[derive(Clone)]
pub enum Source {
    Path(PathBuf),
    Text(Arc<str>),
}

impl Source {
    pub fn load(
        &self,
        previous: Option<&Compiled>,
    ) -> Result<Compiled, crate::config::ConfigErrors> {
        let config = match self {
            Source::Path(p) => crate::config::load(p)?,
            Source::Text(t) => crate::config::parse_sources(
                [(Arc::from("<built-in demo>"), &**t)],
                "<built-in demo>",
            )?,
        };
        Compiled::build(&config, previous)
    }
}

pub struct Control {
    pub state: Arc<ArcSwap<Compiled>>,
    pub source: Source,
    pub inflight: Arc<AtomicUsize>,
    pub grace: Duration,
}

impl Control {
    async fn reload(&self) {
        let current = self.state.load_full();
        match self.source.load(Some(&current)) {
            Ok(next) => {
                next.apply(false).await;
                let routes = next.routes.len();
                let pools = next.pools().count();
                self.state.store(Arc::new(next));
                log::info!("reload applied: {routes} endpoints, {pools} pools");
            }
            Err(errors) => {
                let lines: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
                log::error!("reload rejected: {}", lines.join("; "));
            }
        }
    }

    /// Waits for in-flight requests to finish, at most the grace period, then exits. A SIGINT
    /// meanwhile exits at once (Pingora stops listening to signals once it is shutting down).
    async fn drain(&self, int: &mut Signal) -> ! {
        let deadline = Instant::now() + self.grace;
        // Let Pingora stop its listeners first, so no new request starts after the count.
        let settle = tokio::time::sleep(Duration::from_millis(100));
        tokio::pin!(settle);
        loop {
            tokio::select! {
                _ = int.recv() => {
                    log::info!("SIGINT while draining: exiting now");
                    std::process::exit(130);
                }
                _ = &mut settle, if !settle.is_elapsed() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)), if settle.is_elapsed() => {
                    let left = self.inflight.load(Ordering::Acquire);
                    if left == 0 {
                        log::info!("drained: exiting");
                        std::process::exit(0);
                    }
                    if Instant::now() >= deadline {
                        log::warn!("grace period over: exiting with {left} requests in flight");
                        std::process::exit(0);
                    }
                }
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Control {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            log::error!(
                "cannot install signal handlers; reload and shutdown use Pingora's defaults"
            );
            return;
        };
        let mut health = tokio::time::interval(HEALTH_EVERY);
        let mut dns = tokio::time::interval(DNS_EVERY);
        dns.tick().await;
        loop {
            tokio::select! {
                _ = hup.recv() => self.reload().await,
                _ = term.recv() => {
                    log::info!("SIGTERM: draining (grace period {:?})", self.grace);
                    self.drain(&mut int).await;
                }
                _ = int.recv() => {
                    log::info!("SIGINT: exiting now");
                    std::process::exit(130);
                }
                _ = health.tick() => {
                    let cfg = self.state.load_full();
                    for pool in cfg.pools() {
                        pool.health_check().await;
                    }
                }
                _ = dns.tick() => {
                    let cfg = self.state.load_full();
                    for pool in cfg.pools() {
                        pool.refresh().await;
                    }
                }
                _ = shutdown.changed() => {
                    // Pingora's own SIGTERM path; keep our bounded drain.
                    self.drain(&mut int).await;
                }
            }
        }
    }
}
