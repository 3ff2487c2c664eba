//! Switchyard: an edge API gateway on Pingora that runs ngrok-style Traffic Policies.
//!
//! Rooms: `config` (documents → typed model), `policy` (Traffic Policy compile and run),
//! `gateway` (the only place that knows Pingora), `demo` (built-in upstreams).

// Set here rather than in `main.rs` so that the benches, tests and the gateway run on one
// allocator. A request through the gateway and the WAF makes many short-lived allocations,
// from several threads; mimalloc's thread-local free lists serve them faster than glibc's
// malloc (`cargo bench --bench waf`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod config;
pub mod demo;
pub mod gateway;
pub mod ipintel;
pub mod policy;
pub mod ratelimit;
pub mod waf;
