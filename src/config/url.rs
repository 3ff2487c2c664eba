//! Endpoint and upstream URL forms (SPEC section 2).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn parse(s: &str) -> Option<Scheme> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }
}

/// An endpoint URL: `scheme://host[:port]`, host lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointUrl {
    pub scheme: Scheme,
    pub host: String,
    pub port: Option<u16>,
}

impl EndpointUrl {
    pub fn parse(raw: &str) -> Result<EndpointUrl, String> {
        let (scheme, rest) = raw.split_once("://").ok_or_else(|| {
            format!("endpoint url `{raw}` must have the form scheme://host[:port]")
        })?;
        let scheme = Scheme::parse(scheme).ok_or_else(|| {
            format!("endpoint url `{raw}`: scheme `{scheme}` is not supported (use http or https)")
        })?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "endpoint url `{raw}` must not have a path, query or user info"
            ));
        }
        let (host, port) =
            split_host_port(rest).map_err(|e| format!("endpoint url `{raw}`: {e}"))?;
        Ok(EndpointUrl { scheme, host, port })
    }

    pub fn is_internal(&self) -> bool {
        self.host.ends_with(".internal")
    }

    /// Whether a forward-internal target (`https://x.internal`, maybe with a port) names this
    /// endpoint: same host; scheme and port agree where given.
    pub fn matches_target(&self, target: &EndpointUrl) -> bool {
        self.host == target.host
            && self.scheme == target.scheme
            && self.effective_port() == target.effective_port()
    }

    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// An upstream: origin (`http://svc.ns:80`), domain (`http://svc`, port 80), or a bare port
/// (`8080` = `http://localhost:8080`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamUrl {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
}

impl UpstreamUrl {
    pub fn parse(raw: &str) -> Result<UpstreamUrl, String> {
        let raw = raw.trim();
        if let Ok(port) = raw.parse::<u16>() {
            return Ok(UpstreamUrl {
                scheme: Scheme::Http,
                host: "localhost".into(),
                port,
            });
        }
        let (scheme, rest) = match raw.split_once("://") {
            Some((s, rest)) => (
                Scheme::parse(s).ok_or_else(|| {
                    format!("upstream url `{raw}`: scheme `{s}` is not supported (use http)")
                })?,
                rest,
            ),
            None => (Scheme::Http, raw),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "upstream url `{raw}` must not have a path or query"
            ));
        }
        let (host, port) =
            split_host_port(rest).map_err(|e| format!("upstream url `{raw}`: {e}"))?;
        Ok(UpstreamUrl {
            scheme,
            host,
            port: port.unwrap_or(scheme.default_port()),
        })
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme.as_str(), self.host, self.port)
    }
}

/// Splits `host[:port]` (IPv6 in brackets); checks the host is a plausible DNS name or IP.
pub fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or("unclosed `[` in host")?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err("unexpected text after `]`".into()),
        };
        h.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`{h}` is not an IPv6 address"))?;
        (h.to_string(), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (s.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("`{p}` is not a port number"))?,
        ),
        None => None,
    };
    if !valid_host(&host) {
        return Err(format!("`{host}` is not a valid host name"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// A DNS name (letters, digits, `-`, `_`, dots) or an IP literal.
pub fn valid_host(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        let u = EndpointUrl::parse("https://Catalog-EKS.internal").unwrap();
        assert_eq!(u.host, "catalog-eks.internal");
        assert!(u.is_internal());
        assert_eq!(u.effective_port(), 443);
        assert!(EndpointUrl::parse("https://x.internal/path").is_err());
        assert!(EndpointUrl::parse("x.internal").is_err());
        assert!(EndpointUrl::parse("https://bad host.internal").is_err());
        let t = EndpointUrl::parse("https://catalog-eks.internal:443").unwrap();
        assert!(u.matches_target(&t));
        let t = EndpointUrl::parse("http://catalog-eks.internal").unwrap();
        assert!(!u.matches_target(&t));
    }

    #[test]
    fn upstream_forms() {
        let u = UpstreamUrl::parse("http://catalog-svc.default:80").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("catalog-svc.default", 80));
        let u = UpstreamUrl::parse("http://orders-svc").unwrap();
        assert_eq!(u.port, 80);
        let u = UpstreamUrl::parse("8080").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("localhost", 8080));
        let u = UpstreamUrl::parse("127.0.0.1:9000").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 9000));
        let u = UpstreamUrl::parse("http://[::1]:81").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 81));
        assert!(UpstreamUrl::parse("http://svc:0").is_err());
        assert!(UpstreamUrl::parse("ftp://svc").is_err());
    }
}
