#!/usr/bin/env bash
# cargo-audit, built from the Rust package registry once per machine (a few minutes).
set -euo pipefail
if ! cargo audit --version >/dev/null 2>&1; then
    cargo install cargo-audit --locked
fi
