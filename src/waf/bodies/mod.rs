//! Body processors: they turn a request body into `ARGS_POST` (and friends) by its type.

pub mod json;
pub mod multipart;
pub mod urlencoded;
pub mod xml;
