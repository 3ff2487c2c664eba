//! The compiled config the proxy serves from: routes (one per endpoint URL) with their policy
//! and pool, looked up by Host (public) or by URL (internal). Immutable; swapped whole on reload.

use super::pool::Pool;
use crate::config::{
    Config, ConfigError, ConfigErrors, EndpointDoc, EndpointKind, EndpointUrl, GatewaySpec, Loc,
    PolicySource, RateLimitStore, UpstreamUrl,
};
use crate::ipintel::IpIntel;
use crate::policy::actions::InternalEndpoints;
use crate::policy::exchange::EndpointInfo;
use crate::policy::expr::ExprEnv;
use crate::policy::{self, CompileEnv, CompiledPolicy, WafSource};
use crate::ratelimit::{RateLimits, StoreConfig};
use std::collections::HashMap;
use std::sync::Arc;

pub struct Route {
    pub url: EndpointUrl,
    pub info: EndpointInfo,
    pub kind: EndpointKind,
    pub policy: Arc<CompiledPolicy>,
    /// Agent endpoints' upstreams; none for a CloudEndpoint.
    pub pool: Option<Arc<Pool>>,
    /// The pool's members as this config has them (applied to the pool by [`Compiled::apply`]).
    pub upstreams: Vec<UpstreamUrl>,
}

pub struct Compiled {
    pub gateway: GatewaySpec,
    pub routes: Vec<Route>,
    public: HashMap<String, usize>,
    internal: HashMap<String, Vec<usize>>,
    pub env: Arc<ExprEnv>,
    /// Rate-limit state; kept across reloads while the store settings are unchanged.
    pub rate_limits: Arc<RateLimits>,
    pub ip_intel: Arc<IpIntel>,
    /// The most request body any policy inspects (`process_body`); read before the policy.
    pub body_limit: Option<usize>,
    /// How non-canonical policy shapes were read (printed by `check`).
    pub notes: Vec<String>,
    pub files: usize,
}

impl InternalEndpoints for Compiled {
    fn find(&self, target: &EndpointUrl) -> Option<usize> {
        self.internal
            .get(&target.host)?
            .iter()
            .copied()
            .find(|&id| self.routes[id].url.matches_target(target))
    }
}

impl Compiled {
    /// The public route for a request's host (already lower-case, without port).
    pub fn public_route(&self, host: &str) -> Option<usize> {
        self.public.get(host).copied()
    }

    pub fn pools(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.routes.iter().filter_map(|r| r.pool.as_ref())
    }

    /// Gives each pool this config's members and resolves them; a pool whose members did not
    /// change is left alone. Run before the config starts serving.
    pub async fn apply(&self, fresh: bool) {
        for r in &self.routes {
            let Some(pool) = &r.pool else { continue };
            if fresh || !pool.has_members(&r.upstreams) {
                pool.set_members(r.upstreams.clone());
                pool.refresh().await;
            }
        }
    }

    /// Compiles a loaded config. Pools are taken from `previous` by endpoint URL, so the health
    /// state of members that remain survives a reload. Nothing running is changed here.
    pub fn build(config: &Config, previous: Option<&Compiled>) -> Result<Compiled, ConfigErrors> {
        let env = ExprEnv::new();
        let rate_limits = rate_limits(&config.gateway, previous)?;
        let ip_intel = Arc::new(
            IpIntel::load(&config.gateway.ip_intel, std::path::Path::new("")).map_err(|e| {
                ConfigError {
                    loc: Loc {
                        file: e.file.into(),
                        line: e.line,
                    },
                    reason: format!("{} (listed at {})", e.reason, config.gateway.ip_intel_loc),
                }
            })?,
        );
        let waf = WafSource::new(config.gateway.crs_dir.clone());
        let compile_env = CompileEnv {
            rate_limits: &rate_limits,
            ip_intel: &ip_intel,
            waf: &waf,
        };
        let mut errors = Vec::new();
        let mut notes = Vec::new();
        let mut groups: Vec<(EndpointUrl, Vec<&EndpointDoc>)> = Vec::new();
        for ep in &config.endpoints {
            match groups.iter_mut().find(|(u, _)| *u == ep.url) {
                Some((_, members)) => members.push(ep),
                None => groups.push((ep.url.clone(), vec![ep])),
            }
        }
        let mut old_pools: HashMap<&EndpointUrl, &Arc<Pool>> = HashMap::new();
        if let Some(prev) = previous {
            for r in &prev.routes {
                if let Some(p) = &r.pool {
                    old_pools.insert(&r.url, p);
                }
            }
        }
        let mut routes = Vec::new();
        for (url, members) in &groups {
            match build_route(config, url, members, &old_pools, &compile_env, &mut notes) {
                Ok(r) => routes.push(r),
                Err(mut e) => errors.append(&mut e),
            }
        }
        let mut public = HashMap::new();
        let mut internal: HashMap<String, Vec<usize>> = HashMap::new();
        for (id, r) in routes.iter().enumerate() {
            if r.url.is_internal() {
                internal.entry(r.url.host.clone()).or_default().push(id);
            } else if r.url.scheme == crate::config::Scheme::Https {
                let loc = &members_of(&groups, &r.url)[0].loc;
                errors.push(loc.error(format!(
                    "public endpoint `{}` is https, but this build has no TLS listeners yet (use http)",
                    r.url
                )));
            } else if let Some(first) = public.insert(r.url.host.clone(), id) {
                let loc = &members_of(&groups, &r.url)[0].loc;
                errors.push(loc.error(format!(
                    "public endpoints `{}` and `{}` share the host `{}`",
                    routes[first].url, r.url, r.url.host
                )));
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let body_limit = routes.iter().filter_map(|r| r.policy.body_limit()).max();
        Ok(Compiled {
            gateway: config.gateway.clone(),
            routes,
            public,
            internal,
            env,
            rate_limits,
            ip_intel,
            body_limit,
            notes,
            files: config.files.len(),
        })
    }
}

fn members_of<'a>(
    groups: &'a [(EndpointUrl, Vec<&'a EndpointDoc>)],
    url: &EndpointUrl,
) -> &'a [&'a EndpointDoc] {
    &groups
        .iter()
        .find(|(u, _)| u == url)
        .expect("route from group")
        .1
}

fn build_route(
    config: &Config,
    url: &EndpointUrl,
    members: &[&EndpointDoc],
    old_pools: &HashMap<&EndpointUrl, &Arc<Pool>>,
    env: &CompileEnv<'_>,
    notes: &mut Vec<String>,
) -> Result<Route, Vec<ConfigError>> {
    let first = members[0];
    if let Some(other) = members.iter().find(|m| m.kind != first.kind) {
        return Err(vec![other.loc.error(format!(
            "`{url}` is both a CloudEndpoint and an AgentEndpoint (first at {})",
            first.loc
        ))]);
    }
    if first.kind == EndpointKind::Cloud && members.len() > 1 {
        return Err(vec![members[1].loc.error(format!(
            "a second CloudEndpoint with url `{url}` (first at {}); cloud endpoints cannot be pooled here",
            first.loc
        ))]);
    }
    // Every member's policy must compile; the pool runs the first member's.
    let mut policy = None;
    for m in members {
        let compiled = compile_policy(config, m, env)?;
        notes.extend(compiled.notes);
        if policy.is_none() {
            policy = Some(Arc::new(compiled.policy));
        }
    }
    if members.len() > 1
        && members
            .iter()
            .any(|m| format!("{:?}", m.policy) != format!("{:?}", first.policy))
    {
        notes.push(format!(
            "{}: note: the members of pool `{url}` have different traffic policies; the pool runs the first one's",
            first.loc
        ));
    }
    let upstreams: Vec<UpstreamUrl> = members
        .iter()
        .filter_map(|m| m.upstream.as_ref().map(|u| u.url.clone()))
        .collect();
    let pool = match first.kind {
        EndpointKind::Cloud => None,
        EndpointKind::Agent => Some(match old_pools.get(url) {
            Some(p) => Arc::clone(p),
            None => Arc::new(Pool::new(upstreams.clone())),
        }),
    };
    let url_text: Arc<str> = url.to_string().into();
    Ok(Route {
        url: url.clone(),
        info: EndpointInfo {
            url: url_text,
            host: url.host.as_str().into(),
            name: first.name.as_str().into(),
        },
        kind: first.kind,
        policy: policy.unwrap_or_default(),
        pool,
        upstreams,
    })
}

fn compile_policy(
    config: &Config,
    ep: &EndpointDoc,
    env: &CompileEnv<'_>,
) -> Result<policy::CompiledPolicyResult, Vec<ConfigError>> {
    match &ep.policy {
        None => Ok(policy::CompiledPolicyResult {
            policy: CompiledPolicy::default(),
            notes: Vec::new(),
        }),
        Some(PolicySource::Inline { loc, policy }) => policy::compile(policy, loc, env),
        Some(PolicySource::Named { loc, name }) => {
            let named = config
                .policies
                .iter()
                .find(|p| &p.name == name)
                .ok_or_else(|| vec![loc.error(format!("no NgrokTrafficPolicy named `{name}`"))])?;
            policy::compile(&named.policy, &named.loc, env)
        }
    }
}

fn rate_limits(
    gateway: &GatewaySpec,
    previous: Option<&Compiled>,
) -> Result<Arc<RateLimits>, ConfigErrors> {
    let wanted = match &gateway.rate_limit {
        RateLimitStore::Memory => StoreConfig::Memory,
        RateLimitStore::Redis { url, fail_closed } => StoreConfig::Redis {
            url: url.clone(),
            fail_closed: *fail_closed,
        },
    };
    if let Some(prev) = previous.filter(|p| *p.rate_limits.config() == wanted) {
        return Ok(prev.rate_limits.clone());
    }
    RateLimits::new(wanted)
        .map(Arc::new)
        .map_err(|e| gateway.rate_limit_loc.error(e).into())
}
