//! One handler per file.

pub mod authorize;
pub mod health;
pub mod introspect;
pub mod jwks;
pub mod metadata;
pub mod register;
pub mod revoke;
pub mod token;
