//! Tollgate: a self-hosted JWT authorization server. The contract it keeps (routes, JSON,
//! token claims, refresh rules) is `docs/api.md` in the repository.

pub mod app;
pub mod audit;
pub mod cli;
pub mod config;
pub mod http;
pub mod mail;
pub mod sessions;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod users;
