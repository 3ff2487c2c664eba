//! What a policy sees of one HTTP exchange. The gateway implements these traits over Pingora's
//! headers; unit tests implement them over plain structs, so policy logic needs no socket.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
use std::net::IpAddr;
use std::sync::Arc;

/// Header edits go through the owner (Pingora keeps a case map beside the `HeaderMap`).
pub trait HeadMut: Send + Sync {
    fn headers(&self) -> &HeaderMap;
    fn append_header(&mut self, name: HeaderName, value: HeaderValue);
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue);
    fn remove_header(&mut self, name: &HeaderName);
}

pub trait RequestHead: HeadMut {
    fn method(&self) -> &Method;
    fn uri(&self) -> &Uri;
    fn version(&self) -> Version;
}

pub trait ResponseHead: HeadMut {
    fn status(&self) -> StatusCode;
}

/// The connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub client_ip: IpAddr,
    pub client_port: u16,
    pub server_ip: IpAddr,
    pub server_port: u16,
    /// `http` or `https`: the listener's scheme.
    pub scheme: &'static str,
    /// IP-intelligence categories of the client, hierarchical names included.
    pub categories: Arc<[Arc<str>]>,
}

impl ConnInfo {
    pub fn new(client: std::net::SocketAddr, server: std::net::SocketAddr) -> ConnInfo {
        ConnInfo {
            client_ip: client.ip(),
            client_port: client.port(),
            server_ip: server.ip(),
            server_port: server.port(),
            scheme: "http",
            categories: Arc::from(Vec::<Arc<str>>::new()),
        }
    }
}

/// Facts about the endpoint whose policy runs, for `endpoint.*`.
#[derive(Debug, Clone)]
pub struct EndpointInfo {
    pub url: Arc<str>,
    pub host: Arc<str>,
    pub name: Arc<str>,
}

/// Results of actions (`actions.ngrok.<action>.*`): only the latest run of each action type.
#[derive(Debug, Default)]
pub struct ActionVars {
    entries: Vec<(&'static str, cel::Value)>,
}

impl ActionVars {
    /// Sets `actions.ngrok.<action>` (`action` given with the `actions.ngrok.` prefix).
    pub fn set(&mut self, path: &'static str, value: cel::Value) {
        match self.entries.iter_mut().find(|(k, _)| *k == path) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((path, value)),
        }
    }

    pub fn get(&self, path: &str) -> Option<&cel::Value> {
        self.entries
            .iter()
            .find(|(k, _)| *k == path)
            .map(|(_, v)| v)
    }

    /// All of them as the CEL map `actions.ngrok`.
    pub fn as_map(&self) -> cel::Value {
        let map: std::collections::HashMap<String, cel::Value> = self
            .entries
            .iter()
            .map(|(k, v)| {
                (
                    k.trim_start_matches("actions.ngrok.").to_string(),
                    v.clone(),
                )
            })
            .collect();
        map.into()
    }
}

/// A response the gateway makes itself (deny, custom-response, gateway errors).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Whether `on_http_response` rules run on it (custom-response yes; errors and deny no).
    pub run_response_phase: bool,
}

impl Reply {
    pub fn new(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            run_response_phase: false,
        }
    }
}

impl HeadMut for Reply {
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.append(name, value);
    }
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.insert(name, value);
    }
    fn remove_header(&mut self, name: &HeaderName) {
        self.headers.remove(name);
    }
}

impl ResponseHead for Reply {
    fn status(&self) -> StatusCode {
        self.status
    }
}

/// A request made of plain parts: for tests and for the built-in demo upstreams' clients.
#[derive(Debug, Clone)]
pub struct PlainRequest {
    pub parts: http::request::Parts,
}

impl PlainRequest {
    pub fn get(uri: &str, headers: &[(&str, &str)]) -> PlainRequest {
        let mut b = http::Request::builder().method("GET").uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (parts, _) = b.body(()).expect("valid test request").into_parts();
        PlainRequest { parts }
    }
}

impl HeadMut for PlainRequest {
    fn headers(&self) -> &HeaderMap {
        &self.parts.headers
    }
    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.parts.headers.append(name, value);
    }
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.parts.headers.insert(name, value);
    }
    fn remove_header(&mut self, name: &HeaderName) {
        self.parts.headers.remove(name);
    }
}

impl RequestHead for PlainRequest {
    fn method(&self) -> &Method {
        &self.parts.method
    }
    fn uri(&self) -> &Uri {
        &self.parts.uri
    }
    fn version(&self) -> Version {
        self.parts.version
    }
}
