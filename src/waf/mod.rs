//! The WAF: a native engine for the ModSecurity rule language (SecLang) that loads the OWASP
//! Core Rule Set unchanged. It knows nothing of Pingora or of Traffic Policy.

pub mod actions;
pub mod bodies;
pub mod collections;
pub mod ftw;
pub mod loader;
pub mod macros;
pub mod operators;
pub mod rule;
pub mod ruleset;
pub mod seclang;
pub mod setup;
pub mod transaction;
pub mod transforms;
