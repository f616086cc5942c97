//! Plain HTTP routes beside `/mcp`.

pub mod health;
pub mod protected_resource;
