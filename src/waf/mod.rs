//! The WAF: a native engine for the ModSecurity rule language (SecLang) that loads the OWASP
//! Core Rule Set unchanged. It knows nothing of Pingora or of Traffic Policy.

pub mod macros;
pub mod operators;
pub mod seclang;
pub mod transforms;
