//! Generic register-blocked bodies. Always inlined, so each caller (plain or
//! `#[target_feature]`) gets its own copy vectorised for its own features;
//! `FMA` says whether that caller's target fuses multiply-adds.

pub(crate) mod activation;
pub(crate) mod conv;
pub(crate) mod rows;
