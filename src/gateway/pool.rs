//! Endpoint pools: the upstreams of every endpoint that shares one URL, balanced round-robin by
//! `pingora-load-balancing`, with an active TCP health check and passive ejection of members
//! that keep refusing connections.

use crate::config::UpstreamUrl;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::health_check::TcpHealthCheck;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::protocols::l4::socket::SocketAddr as PSocketAddr;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connection failures in a row that eject a member.
const EJECT_AFTER: u32 = 3;
/// How long an ejected member stays out (the health check can still keep it out longer).
const EJECT_FOR: Duration = Duration::from_secs(10);
const DNS_TIMEOUT: Duration = Duration::from_secs(2);

/// Resolves the members' host names each time pingora runs discovery. The member list is
/// shared with the pool, so a reload can change it in place.
struct DnsDiscovery {
    members: Arc<ArcSwap<Vec<UpstreamUrl>>>,
    unresolved: Arc<AtomicBool>,
}

#[async_trait]
impl ServiceDiscovery for DnsDiscovery {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let mut set = BTreeSet::new();
        let mut unresolved = false;
        let members = self.members.load_full();
        for m in members.iter() {
            let lookup = tokio::net::lookup_host((m.host.as_str(), m.port));
            match tokio::time::timeout(DNS_TIMEOUT, lookup).await {
                Ok(Ok(addrs)) => {
                    // One backend per member: the first address (IPv4 preferred).
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    let pick = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first());
                    match pick {
                        Some(a) => {
                            set.insert(Backend {
                                addr: PSocketAddr::Inet(*a),
                                weight: 1,
                                ext: Default::default(),
                            });
                        }
                        None => unresolved = true,
                    }
                }
                _ => {
                    log::warn!("upstream {m}: host name does not resolve");
                    unresolved = true;
                }
            }
        }
        self.unresolved.store(unresolved, Ordering::Relaxed);
        Ok((set, HashMap::new()))
    }
}

#[derive(Default)]
struct Failures {
    in_a_row: u32,
    ejected_until: Option<Instant>,
}

/// One pool per endpoint URL. It lives across reloads: a reload changes its members in place,
/// and pingora keeps the health state of the members that remain.
pub struct Pool {
    members: Arc<ArcSwap<Vec<UpstreamUrl>>>,
    lb: LoadBalancer<RoundRobin>,
    unresolved: Arc<AtomicBool>,
    failures: Mutex<HashMap<SocketAddr, Failures>>,
}

/// Why no member could be picked.
pub enum NoMember {
    /// Some member's host name does not resolve and no other is usable.
    Unresolved,
    /// Every member is unhealthy, ejected or already tried.
    Unavailable,
}

impl Pool {
    pub fn new(members: Vec<UpstreamUrl>) -> Pool {
        let members = Arc::new(ArcSwap::from_pointee(members));
        let unresolved = Arc::new(AtomicBool::new(false));
        let discovery = DnsDiscovery {
            members: members.clone(),
            unresolved: unresolved.clone(),
        };
        let mut lb = LoadBalancer::from_backends(Backends::new(Box::new(discovery)));
        let mut hc = TcpHealthCheck::new();
        hc.consecutive_failure = 2;
        hc.consecutive_success = 1;
        lb.set_health_check(hc);
        Pool {
            members,
            lb,
            unresolved,
            failures: Mutex::new(HashMap::new()),
        }
    }

    pub fn size(&self) -> usize {
        self.members.load().len()
    }

    /// Whether the pool's members are exactly these.
    pub fn has_members(&self, members: &[UpstreamUrl]) -> bool {
        self.members.load().as_slice() == members
    }

    /// Replaces the members; takes effect at the next [`Pool::refresh`].
    pub fn set_members(&self, members: Vec<UpstreamUrl>) {
        self.members.store(Arc::new(members));
    }

    /// Re-resolves the members.
    pub async fn refresh(&self) {
        if let Err(e) = self.lb.update().await {
            log::warn!("pool {}: discovery failed: {e}", self.describe());
        }
    }

    pub async fn health_check(&self) {
        self.lb.backends().run_health_check(true).await;
    }

    pub fn describe(&self) -> String {
        let members: Vec<String> = self.members.load().iter().map(|u| u.to_string()).collect();
        members.join(", ")
    }

    /// The next healthy member not in `tried`, round-robin.
    pub fn select(&self, tried: &[SocketAddr]) -> Result<SocketAddr, NoMember> {
        let now = Instant::now();
        let failures = self.failures.lock().expect("pool failure map");
        let pick = self.lb.select_with(b"", 64, |b, healthy| {
            let Some(addr) = b.addr.as_inet() else {
                return false;
            };
            let ejected = failures
                .get(addr)
                .and_then(|f| f.ejected_until)
                .is_some_and(|t| t > now);
            healthy && !ejected && !tried.contains(addr)
        });
        drop(failures);
        match pick.and_then(|b| b.addr.as_inet().copied()) {
            Some(a) => Ok(a),
            None if self.unresolved.load(Ordering::Relaxed) => Err(NoMember::Unresolved),
            None => Err(NoMember::Unavailable),
        }
    }

    pub fn record_failure(&self, addr: SocketAddr) {
        let mut map = self.failures.lock().expect("pool failure map");
        let f = map.entry(addr).or_default();
        f.in_a_row += 1;
        if f.in_a_row >= EJECT_AFTER {
            log::warn!(
                "pool member {addr} ejected after {} failed connections",
                f.in_a_row
            );
            f.ejected_until = Some(Instant::now() + EJECT_FOR);
            f.in_a_row = 0;
        }
    }

    pub fn record_success(&self, addr: SocketAddr) {
        let mut map = self.failures.lock().expect("pool failure map");
        if let Some(f) = map.get_mut(&addr) {
            f.in_a_row = 0;
        }
    }
}
