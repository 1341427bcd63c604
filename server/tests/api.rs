//! Integration tests over real HTTP. One binary, so it links once.
#![allow(clippy::unwrap_used)]

pub mod common;

mod api {
    mod accounts;
    mod admin;
    mod cli;
    mod cookies;
    mod dpop;
    mod fuzz;
    mod hostile;
    mod limits;
    mod login;
    mod refresh;
    mod revocation;
    mod sessions;
    mod system;
    mod tls;
    mod tokens;
}
