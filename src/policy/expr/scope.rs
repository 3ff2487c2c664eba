//! The variables of one request, resolved on demand by their full dotted name
//! (`conn.client_ip.categories` is its own variable even though `conn.client_ip` is a string).

use crate::policy::exchange::{ActionVars, ConnInfo, EndpointInfo, RequestHead, ResponseHead};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::Value;
use http::HeaderMap;
use std::collections::HashMap;
use std::sync::Arc;

/// Hidden variable names the functions use to read one header or parameter without building
/// the whole map. `#` cannot start a CEL identifier, so user expressions never reach them.
pub(super) const REQ_HEADER: &str = "#req-header:";
pub(super) const RES_HEADER: &str = "#res-header:";
pub(super) const QUERY_PARAM: &str = "#query-param:";

pub struct Scope<'a> {
    pub conn: &'a ConnInfo,
    pub req: &'a dyn RequestHead,
    pub res: Option<&'a dyn ResponseHead>,
    pub endpoint: &'a EndpointInfo,
    pub vars: &'a ActionVars,
}

fn owned<'b>(v: Value) -> Option<CowVal<'b, 'b>> {
    let boxed: Box<dyn Val> = v.try_into().ok()?;
    Some(CowVal::Owned(boxed))
}

fn string(s: &str) -> Value {
    Value::String(Arc::new(s.to_string()))
}

fn header_values(headers: &HeaderMap, name: &str) -> Value {
    let list: Vec<Value> = headers
        .get_all(name)
        .iter()
        .map(|v| string(&String::from_utf8_lossy(v.as_bytes())))
        .collect();
    Value::List(Arc::new(list))
}

fn header_map(headers: &HeaderMap) -> Value {
    let mut map: HashMap<String, Vec<Value>> = HashMap::new();
    for (name, value) in headers {
        map.entry(name.as_str().to_string())
            .or_default()
            .push(string(&String::from_utf8_lossy(value.as_bytes())));
    }
    let map: HashMap<String, Value> = map
        .into_iter()
        .map(|(k, v)| (k, Value::List(Arc::new(v))))
        .collect();
    map.into()
}

impl Scope<'_> {
    /// `Host` header without its port, else the URI's host.
    pub fn host(&self) -> &str {
        request_host(self.req)
    }

    fn query_pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        let q = self.req.uri().query().unwrap_or("");
        form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
    }

    fn query_map(&self) -> Value {
        let mut map: HashMap<String, Vec<Value>> = HashMap::new();
        for (k, v) in self.query_pairs() {
            map.entry(k).or_default().push(string(&v));
        }
        let map: HashMap<String, Value> = map
            .into_iter()
            .map(|(k, v)| (k, Value::List(Arc::new(v))))
            .collect();
        map.into()
    }

    fn full_url(&self) -> String {
        let uri = self.req.uri();
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        format!("{}://{}{}", self.conn.scheme, self.req_authority(), path)
    }

    fn req_authority(&self) -> &str {
        self.req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| self.req.uri().authority().map(|a| a.as_str()))
            .unwrap_or("")
    }

    fn lookup(&self, name: &str) -> Option<Value> {
        if let Some(h) = name.strip_prefix(REQ_HEADER) {
            return Some(header_values(self.req.headers(), h));
        }
        if let Some(h) = name.strip_prefix(RES_HEADER) {
            return Some(match self.res {
                Some(res) => header_values(res.headers(), h),
                None => Value::List(Arc::new(Vec::new())),
            });
        }
        if let Some(p) = name.strip_prefix(QUERY_PARAM) {
            let list: Vec<Value> = self
                .query_pairs()
                .filter(|(k, _)| k == p)
                .map(|(_, v)| string(&v))
                .collect();
            return Some(Value::List(Arc::new(list)));
        }
        let conn = self.conn;
        Some(match name {
            "conn.client_ip" => string(&conn.client_ip.to_string()),
            "conn.client_port" => Value::Int(conn.client_port.into()),
            "conn.server_ip" => string(&conn.server_ip.to_string()),
            "conn.server_port" => Value::Int(conn.server_port.into()),
            "conn.client_ip.categories" => Value::List(Arc::new(
                conn.categories.iter().map(|c| string(c)).collect(),
            )),
            "conn.client_ip.is_tor_node" => Value::Bool(
                conn.categories
                    .iter()
                    .any(|c| c.split('.').any(|seg| seg == "tor")),
            ),
            "conn.client_ip.is_on_blocklist" => Value::Bool(
                conn.categories
                    .iter()
                    .any(|c| c.split('.').next() == Some("blocklist")),
            ),
            "req.method" => string(self.req.method().as_str()),
            "req.url" => string(&self.full_url()),
            "req.url.path" => string(self.req.uri().path()),
            "req.url.query" | "req.url.raw_query" => string(self.req.uri().query().unwrap_or("")),
            "req.url.host" | "req.host" => string(self.host()),
            "req.url.scheme" => string(self.conn.scheme),
            "req.headers" => header_map(self.req.headers()),
            "req.query_params" => self.query_map(),
            "req.content_length" => Value::Int(
                self.req
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse::<i64>().ok())
                    .unwrap_or(0),
            ),
            "req.version" => string(version_str(self.req.version())),
            "res.status_code" => Value::Int(self.res?.status().as_u16().into()),
            "res.headers" => header_map(self.res?.headers()),
            "endpoint.url" => string(&self.endpoint.url),
            "endpoint.host" => string(&self.endpoint.host),
            "endpoint.name" => string(&self.endpoint.name),
            "time.now" => Value::Timestamp(chrono::Utc::now().fixed_offset()),
            "actions.ngrok" => self.vars.as_map(),
            "actions" => {
                let mut m = HashMap::new();
                m.insert("ngrok".to_string(), self.vars.as_map());
                m.into()
            }
            other if other.starts_with("actions.ngrok.") => self.vars.get(other)?.clone(),
            _ => return None,
        })
    }
}

impl VariableResolver for Scope<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        owned(self.lookup(variable)?)
    }
}

/// The request's host: `Host` without port, else the URI's host; lower-cased by HTTP rules
/// only where the client sent it so (comparison callers lower-case).
pub fn request_host(req: &dyn RequestHead) -> &str {
    let raw = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("");
    strip_port(raw)
}

fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

fn version_str(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}
