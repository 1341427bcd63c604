//! Integration tests over real HTTP. One binary, so it links once.
#![allow(clippy::unwrap_used)]

mod cli;
mod cookies;
mod fuzz;
mod helpers;
mod hostile;
mod limits;
mod login;
mod process;
mod refresh;
mod sessions;
mod system;
mod tokens;
