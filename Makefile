# The two commands a newcomer needs: `make run` (the demo at http://localhost:8000) and
# `make test` (every test). See README.md.

CARGO ?= cargo

.PHONY: run test lint test-server

run:
	$(CARGO) run --release --bin tollgate -- demo

test: lint test-server

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

test-server:
	$(CARGO) test --workspace
