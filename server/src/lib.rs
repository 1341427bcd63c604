//! Tollgate: a self-hosted JWT authorization server. See `shared/DESIGN.md` for the contract.

pub mod app;
pub mod cli;
pub mod config;
pub mod http;
pub mod sessions;
pub mod store;
pub mod tokens;
pub mod users;
