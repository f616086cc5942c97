//! Test fixtures shared by the client crates' integration tests.
#![allow(dead_code)]

pub mod cli;
pub mod proxy;
pub mod stack;
pub mod suite;
