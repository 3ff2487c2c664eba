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

/// mimalloc for every binary built on the crate (the gateway, its tests and benches): a
/// request through the WAF makes a few dozen small allocations, and glibc's malloc and free
/// cost twice what mimalloc's do.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
