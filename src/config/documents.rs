//! The four document kinds and their fields.

use super::read::{self, known_keys};
use super::url::{EndpointUrl, UpstreamUrl};
use super::yaml::Node;
use super::{ConfigError, ConfigErrors, Loc, NamedPolicy};
use std::net::SocketAddr;
use std::time::Duration;

pub enum Document {
    Gateway(GatewaySpec),
    Endpoint(Box<EndpointDoc>),
    Policy(NamedPolicy),
}

/// Process settings from our own `Gateway` document.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    pub listeners: Vec<ListenerSpec>,
    /// Worker threads for the proxy; default: the number of CPUs.
    pub threads: Option<usize>,
    /// How long SIGTERM waits for in-flight requests.
    pub grace_period: Duration,
    /// Where rate limits are counted, and where that was written.
    pub rate_limit: RateLimitStore,
    pub rate_limit_loc: Loc,
    /// `ipIntel.categories`: category name → list files (relative to the Gateway's file).
    pub ip_intel: Vec<(String, Vec<std::path::PathBuf>)>,
    pub ip_intel_loc: Loc,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Where `/healthz` and `/metrics` are served, if anywhere.
    pub admin: Option<SocketAddr>,
    /// The CRS installation the WAF actions load (`waf.crsDir`).
    pub crs_dir: std::path::PathBuf,
    pub waf_loc: Loc,
}

/// `rateLimit.store` and `rateLimit.failure`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitStore {
    Memory,
    Redis { url: String, fail_closed: bool },
}

#[derive(Debug, Clone)]
pub struct ListenerSpec {
    pub address: SocketAddr,
    /// The load balancer in front sends a PROXY protocol (v1 or v2) header first.
    pub proxy_protocol: bool,
    pub loc: Loc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    Cloud,
    Agent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Public,
    Internal,
    Kubernetes,
}

#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    pub url: UpstreamUrl,
    pub loc: Loc,
}

/// Where an endpoint's Traffic Policy comes from.
#[derive(Debug, Clone)]
pub enum PolicySource {
    Inline { loc: Loc, policy: Node },
    Named { loc: Loc, name: String },
}

#[derive(Debug, Clone)]
pub struct EndpointDoc {
    pub kind: EndpointKind,
    pub name: String,
    pub url: EndpointUrl,
    pub binding: Binding,
    pub upstream: Option<UpstreamSpec>,
    pub policy: Option<PolicySource>,
    pub loc: Loc,
}

const ENDPOINT_API: &str = "ngrok.k8s.ngrok.com/v1alpha1";
const GATEWAY_API: &str = "switchyard.dev/v1alpha1";

pub fn parse_document(doc: &Node, loc: &Loc) -> Result<Document, ConfigErrors> {
    read::map(doc, loc, "a config document")?;
    let kind = doc
        .get("kind")
        .ok_or_else(|| loc.error("document has no `kind`"))?;
    let kind_str = read::string(kind, loc, "kind")?;
    let expected_api = match kind_str {
        "Gateway" => GATEWAY_API,
        "CloudEndpoint" | "AgentEndpoint" | "NgrokTrafficPolicy" => ENDPOINT_API,
        other => {
            return Err(loc
                .at(kind)
                .error(format!(
                    "unknown kind `{other}` (expected Gateway, CloudEndpoint, AgentEndpoint or NgrokTrafficPolicy)"
                ))
                .into())
        }
    };
    if let Some(api) = doc.get("apiVersion") {
        let api_str = read::string(api, loc, "apiVersion")?;
        if api_str != expected_api {
            return Err(loc
                .at(api)
                .error(format!(
                    "{kind_str} wants apiVersion `{expected_api}`, found `{api_str}`"
                ))
                .into());
        }
    }
    known_keys(
        doc,
        loc,
        kind_str,
        &["apiVersion", "kind", "metadata", "spec"],
    )?;
    let spec = doc
        .get("spec")
        .ok_or_else(|| loc.error(format!("{kind_str} has no `spec`")))?;
    let name = metadata_name(doc, loc)?;
    match kind_str {
        "Gateway" => Ok(Document::Gateway(gateway(spec, loc)?)),
        "CloudEndpoint" => Ok(Document::Endpoint(Box::new(endpoint(
            EndpointKind::Cloud,
            name,
            spec,
            loc,
        )?))),
        "AgentEndpoint" => Ok(Document::Endpoint(Box::new(endpoint(
            EndpointKind::Agent,
            name,
            spec,
            loc,
        )?))),
        _ => {
            let name = name.ok_or_else(|| loc.error("NgrokTrafficPolicy needs metadata.name"))?;
            known_keys(spec, loc, "NgrokTrafficPolicy spec", &["policy"])?;
            let policy = spec.get("policy").ok_or_else(|| {
                loc.at(spec)
                    .error("NgrokTrafficPolicy spec has no `policy`")
            })?;
            Ok(Document::Policy(NamedPolicy {
                name,
                loc: loc.at(policy),
                policy: policy.clone(),
            }))
        }
    }
}

fn metadata_name(doc: &Node, loc: &Loc) -> Result<Option<String>, ConfigError> {
    let Some(meta) = doc.get("metadata") else {
        return Ok(None);
    };
    read::map(meta, loc, "metadata")?;
    meta.get("name")
        .map(|n| read::string(n, loc, "metadata.name").map(str::to_string))
        .transpose()
}

fn gateway(spec: &Node, loc: &Loc) -> Result<GatewaySpec, ConfigError> {
    known_keys(
        spec,
        loc,
        "Gateway spec",
        &[
            "listeners",
            "threads",
            "gracePeriod",
            "trustedProxies",
            "admin",
            "ipIntel",
            "waf",
            "rateLimit",
            "accessLog",
        ],
    )?;
    for later in ["accessLog"] {
        if let Some(n) = spec.get(later) {
            return Err(loc.at(n).error(format!(
                "Gateway `{later}` is not supported yet by this build of Switchyard"
            )));
        }
    }
    let listeners_node = spec.get("listeners").ok_or_else(|| {
        loc.at(spec)
            .error("Gateway spec needs `listeners` (at least one)")
    })?;
    let mut listeners = Vec::new();
    for l in read::seq(listeners_node, loc, "listeners")? {
        listeners.push(listener(l, loc)?);
    }
    if listeners.is_empty() {
        return Err(loc
            .at(listeners_node)
            .error("Gateway needs at least one listener"));
    }
    let threads = match spec.get("threads") {
        Some(n) => {
            let t = read::integer(n, loc, "threads")?;
            if !(1..=1024).contains(&t) {
                return Err(loc.at(n).error("threads must be between 1 and 1024"));
            }
            Some(t as usize)
        }
        None => None,
    };
    let grace_period = match spec.get("gracePeriod") {
        Some(n) => read::duration(n, loc, "gracePeriod")?,
        None => Duration::from_secs(10),
    };
    let (rate_limit, rate_limit_loc) = match spec.get("rateLimit") {
        Some(n) => (rate_limit(n, loc)?, loc.at(n)),
        None => (RateLimitStore::Memory, loc.at(spec)),
    };
    let (ip_intel, ip_intel_loc) = match spec.get("ipIntel") {
        Some(n) => (ip_intel(n, loc)?, loc.at(n)),
        None => (Vec::new(), loc.at(spec)),
    };
    let trusted_proxies = match spec.get("trustedProxies") {
        Some(n) => cidr_list(n, loc, "trustedProxies")?,
        None => Vec::new(),
    };
    let admin = match spec.get("admin") {
        Some(n) => {
            let text = read::string(n, loc, "admin")?;
            Some(text.parse::<SocketAddr>().map_err(|_| {
                loc.at(n).error(format!(
                    "admin address `{text}` is not IP:port (e.g. 127.0.0.1:9180)"
                ))
            })?)
        }
        None => None,
    };
    let (crs_dir, waf_loc) = match spec.get("waf") {
        Some(n) => {
            known_keys(n, loc, "waf", &["crsDir"])?;
            let dir = match n.get("crsDir") {
                Some(d) => {
                    let base = std::path::Path::new(&*loc.file)
                        .parent()
                        .unwrap_or(std::path::Path::new(""));
                    base.join(read::string(d, loc, "waf.crsDir")?)
                }
                None => "/usr/share/modsecurity-crs".into(),
            };
            (dir, loc.at(n))
        }
        None => ("/usr/share/modsecurity-crs".into(), loc.at(spec)),
    };
    Ok(GatewaySpec {
        crs_dir,
        waf_loc,
        admin,
        trusted_proxies,
        listeners,
        threads,
        grace_period,
        rate_limit,
        rate_limit_loc,
        ip_intel,
        ip_intel_loc,
    })
}

fn ip_intel(node: &Node, loc: &Loc) -> Result<Vec<(String, Vec<std::path::PathBuf>)>, ConfigError> {
    known_keys(node, loc, "ipIntel", &["categories"])?;
    let Some(cats) = node.get("categories") else {
        return Ok(Vec::new());
    };
    let base = std::path::Path::new(&*loc.file)
        .parent()
        .unwrap_or(std::path::Path::new("."));
    let mut out = Vec::new();
    for (k, v) in read::map(cats, loc, "ipIntel.categories")? {
        let name = read::string(k, loc, "a category name")?;
        if !crate::ipintel::valid_category(name) {
            return Err(loc.at(k).error(format!(
                "`{name}` is not a category name (dotted words, e.g. proxy.anonymous.tor)"
            )));
        }
        let files = match &v.kind {
            super::yaml::NodeKind::Seq(items) => items
                .iter()
                .map(|f| read::string(f, loc, "a list file").map(|p| base.join(p)))
                .collect::<Result<Vec<_>, _>>()?,
            _ => vec![base.join(read::string(v, loc, "a list file")?)],
        };
        out.push((name.to_string(), files));
    }
    Ok(out)
}

fn cidr_list(node: &Node, loc: &Loc, what: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let mut out = Vec::new();
    for item in read::seq(node, loc, what)? {
        let text = read::string(item, loc, "a CIDR")?.trim();
        let net = text
            .parse::<ipnet::IpNet>()
            .map(|n| n.trunc())
            .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                loc.at(item)
                    .error(format!("`{text}` is not a CIDR or IP address"))
            })?;
        out.push(net);
    }
    Ok(out)
}

fn rate_limit(node: &Node, loc: &Loc) -> Result<RateLimitStore, ConfigError> {
    known_keys(node, loc, "rateLimit", &["store", "failure"])?;
    let fail_closed = match node.get("failure") {
        None => false,
        Some(f) => match read::string(f, loc, "rateLimit.failure")? {
            "open" => false,
            "closed" => true,
            other => {
                return Err(loc.at(f).error(format!(
                    "rateLimit.failure must be open or closed, found `{other}`"
                )))
            }
        },
    };
    match node.get("store") {
        None => Ok(RateLimitStore::Memory),
        Some(s) => match read::string(s, loc, "rateLimit.store")? {
            "memory" => Ok(RateLimitStore::Memory),
            url if url.starts_with("redis://") || url.starts_with("rediss://") => {
                Ok(RateLimitStore::Redis {
                    url: url.to_string(),
                    fail_closed,
                })
            }
            other => Err(loc.at(s).error(format!(
                "rateLimit.store must be `memory` or a redis:// URL, found `{other}`"
            ))),
        },
    }
}

fn listener(node: &Node, loc: &Loc) -> Result<ListenerSpec, ConfigError> {
    known_keys(
        node,
        loc,
        "a listener",
        &["address", "tls", "proxyProtocol"],
    )?;
    if let Some(n) = node.get("tls") {
        return Err(loc
            .at(n)
            .error("TLS listeners are not supported yet by this build of Switchyard"));
    }
    let proxy_protocol = match node.get("proxyProtocol") {
        Some(n) => read::boolean(n, loc, "proxyProtocol")?,
        None => false,
    };
    let addr = node.get("address").ok_or_else(|| {
        loc.at(node)
            .error("a listener needs `address` (e.g. 0.0.0.0:8080)")
    })?;
    let text = read::string(addr, loc, "address")?;
    let address = text.parse::<SocketAddr>().map_err(|_| {
        loc.at(addr).error(format!(
            "listener address `{text}` is not IP:port (e.g. 0.0.0.0:8080)"
        ))
    })?;
    Ok(ListenerSpec {
        address,
        proxy_protocol,
        loc: loc.at(addr),
    })
}

fn endpoint(
    kind: EndpointKind,
    name: Option<String>,
    spec: &Node,
    loc: &Loc,
) -> Result<EndpointDoc, ConfigError> {
    let what = match kind {
        EndpointKind::Cloud => "CloudEndpoint spec",
        EndpointKind::Agent => "AgentEndpoint spec",
    };
    let mut allowed = vec![
        "url",
        "trafficPolicy",
        "bindings",
        "description",
        "metadata",
        "clientCertificateRefs",
    ];
    match kind {
        EndpointKind::Cloud => allowed.extend(["trafficPolicyName", "poolingEnabled"]),
        EndpointKind::Agent => allowed.push("upstream"),
    }
    known_keys(spec, loc, what, &allowed)?;
    let url_node = spec
        .get("url")
        .ok_or_else(|| loc.at(spec).error(format!("{what} needs `url`")))?;
    let url = EndpointUrl::parse(read::string(url_node, loc, "url")?)
        .map_err(|e| loc.at(url_node).error(e))?;
    let binding = bindings(spec, loc, &url)?;
    let upstream = match spec.get("upstream") {
        Some(up) => {
            known_keys(
                up,
                loc,
                "upstream",
                &["url", "protocol", "proxyProtocolVersion"],
            )?;
            if let Some(p) = up.get("protocol") {
                let p_str = read::string(p, loc, "upstream.protocol")?;
                if p_str != "http1" {
                    return Err(loc.at(p).error(format!(
                        "upstream protocol `{p_str}` is not supported yet (only http1)"
                    )));
                }
            }
            if let Some(p) = up.get("proxyProtocolVersion") {
                return Err(loc
                    .at(p)
                    .error("upstream proxyProtocolVersion is not supported yet"));
            }
            let u = up
                .get("url")
                .ok_or_else(|| loc.at(up).error("upstream needs `url`"))?;
            let parsed = UpstreamUrl::parse(read::string(u, loc, "upstream.url")?)
                .map_err(|e| loc.at(u).error(e))?;
            if parsed.scheme != super::Scheme::Http {
                return Err(loc
                    .at(u)
                    .error("https upstreams are not supported yet by this build (use http)"));
            }
            Some(UpstreamSpec {
                url: parsed,
                loc: loc.at(u),
            })
        }
        None if kind == EndpointKind::Agent => {
            return Err(loc
                .at(spec)
                .error("AgentEndpoint spec needs `upstream.url`"))
        }
        None => None,
    };
    let policy = policy_source(spec, loc)?;
    Ok(EndpointDoc {
        kind,
        name: name.unwrap_or_else(|| url.to_string()),
        url,
        binding,
        upstream,
        policy,
        loc: loc.at(url_node),
    })
}

fn bindings(spec: &Node, loc: &Loc, url: &EndpointUrl) -> Result<Binding, ConfigError> {
    let mut binding = None;
    if let Some(b) = spec.get("bindings") {
        let list = read::seq(b, loc, "bindings")?;
        if list.len() > 1 {
            return Err(loc.at(b).error("bindings takes at most one value"));
        }
        if let Some(v) = list.first() {
            binding = Some(match read::string(v, loc, "a binding")? {
                "public" => Binding::Public,
                "internal" => Binding::Internal,
                "kubernetes" => Binding::Kubernetes,
                other => {
                    return Err(loc.at(v).error(format!(
                        "unknown binding `{other}` (expected public, internal or kubernetes)"
                    )))
                }
            });
        }
    }
    let line = spec.get("bindings").unwrap_or(spec);
    match (url.is_internal(), binding) {
        (true, None | Some(Binding::Internal)) => Ok(Binding::Internal),
        (true, Some(_)) => Err(loc.at(line).error(format!(
            "`{url}` ends in .internal, so its binding must be internal"
        ))),
        (false, Some(Binding::Internal)) => Err(loc.at(line).error(format!(
            "an internal endpoint's url must end in .internal, found `{url}`"
        ))),
        (false, Some(Binding::Kubernetes)) => Err(loc
            .at(line)
            .error("the kubernetes binding is not supported yet")),
        (false, _) => Ok(Binding::Public),
    }
}

fn policy_source(spec: &Node, loc: &Loc) -> Result<Option<PolicySource>, ConfigError> {
    if let Some(name) = spec.get("trafficPolicyName") {
        return Ok(Some(PolicySource::Named {
            loc: loc.at(name),
            name: read::string(name, loc, "trafficPolicyName")?.to_string(),
        }));
    }
    let Some(tp) = spec.get("trafficPolicy") else {
        return Ok(None);
    };
    known_keys(tp, loc, "trafficPolicy", &["policy", "inline", "targetRef"])?;
    let given: Vec<&str> = ["policy", "inline", "targetRef"]
        .into_iter()
        .filter(|k| tp.get(k).is_some())
        .collect();
    if given.len() != 1 {
        return Err(loc
            .at(tp)
            .error("trafficPolicy needs exactly one of `policy`, `inline` or `targetRef`"));
    }
    if let Some(target) = tp.get("targetRef") {
        known_keys(target, loc, "targetRef", &["name"])?;
        let name = target
            .get("name")
            .ok_or_else(|| loc.at(target).error("targetRef needs `name`"))?;
        return Ok(Some(PolicySource::Named {
            loc: loc.at(name),
            name: read::string(name, loc, "targetRef.name")?.to_string(),
        }));
    }
    let policy = tp
        .get("policy")
        .or_else(|| tp.get("inline"))
        .expect("checked");
    Ok(Some(PolicySource::Inline {
        loc: loc.at(policy),
        policy: policy.clone(),
    }))
}
