//! Switchyard: an edge API gateway on Pingora that runs ngrok-style Traffic Policies.
//!
//! Rooms: `config` (documents → typed model), `policy` (Traffic Policy compile and run),
//! `gateway` (the only place that knows Pingora), `demo` (built-in upstreams).

pub mod config;
pub mod demo;
pub mod gateway;
pub mod ipintel;
pub mod policy;
pub mod ratelimit;
pub mod waf;
