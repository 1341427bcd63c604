# The two commands a newcomer needs: `make run` (the demo at http://localhost:8000) and
# `make test` (every test). See README.md.

CARGO ?= cargo
# PostgreSQL for the tests that need it; they fail, never skip, without one.
TOLLGATE_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
export TOLLGATE_TEST_DATABASE_URL

.PHONY: run test lint test-server

run:
	$(CARGO) run --release --bin tollgate -- demo

test: lint test-server

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# The API suite runs twice, once per backend; the multi-instance suite is PostgreSQL only.
test-server:
	$(CARGO) test --workspace
	TOLLGATE_TEST_BACKEND=postgres $(CARGO) test --test api
