# The two commands a newcomer needs: `make run` (the demo at http://localhost:8000) and
# `make test` (every test). See README.md.

CARGO ?= cargo
NPM ?= npm
# PostgreSQL for the tests that need it; they fail, never skip, without one.
TOLLGATE_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
export TOLLGATE_TEST_DATABASE_URL

.PHONY: run release web test lint audit test-server test-node test-web node chromium bench

run: release
	./target/release/tollgate demo

# One file to deploy: target/release/tollgate with the web client inside it.
release: web
	$(CARGO) build --release -p tollgate --features embed-web

# The Angular library (web/dist/tollgate-angular, an npm package), then the client that uses
# it, built into web/dist/tollgate-web/browser, which `make release` puts into the binary.
web: web/node_modules
	cd web && npx ng build tollgate-angular && npx ng build tollgate-web

web/node_modules: web/package-lock.json
	cd web && $(NPM) ci --no-audit --no-fund
	touch web/node_modules

test: lint audit test-server test-node test-web

# The embedded client's code is compiled only with `embed-web`, which needs the built client.
lint: web
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy -p tollgate --features embed-web -- -D warnings
	cd web && npx ng lint

# Known advisories in the locked dependencies. This workplace cannot fetch the RustSec database,
# so a snapshot beside the repository is used where there is one; elsewhere, the online one.
ADVISORY_DB := $(wildcard ../shared/advisory-db)
audit:
	./scripts/ensure-cargo-audit.sh
	$(CARGO) audit $(if $(ADVISORY_DB),--no-fetch --db $(ADVISORY_DB))

# The Node.js verifier (built with tsc) and the Express example that installs it.
node: clients/node/node_modules examples/express/node_modules
	cd clients/node && npx tsc -p tsconfig.json

clients/node/node_modules: clients/node/package-lock.json
	cd clients/node && $(NPM) ci --no-audit --no-fund
	touch clients/node/node_modules

examples/express/node_modules: examples/express/package-lock.json
	cd examples/express && $(NPM) ci --no-audit --no-fund
	touch examples/express/node_modules

# The API suite runs twice, once per backend; the multi-instance suite is PostgreSQL only.
# The resource-server test starts the example binaries: built first, with the Node package.
test-server: node
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace
	TOLLGATE_TEST_BACKEND=postgres $(CARGO) test --test api

test-node: node
	cd clients/node && $(NPM) test

# Unit tests (Vitest) of the library and the client, then end-to-end tests against a real
# `tollgate demo` in Chromium, among them the library installed into a new Angular app and the
# release binary alone in an empty directory.
test-web: web release chromium
	cd web && npx ng test tollgate-angular --watch=false && npx ng test tollgate-web --watch=false
	# The debug `tollgate` the server tests use (same features, so nothing is rebuilt).
	$(CARGO) test --workspace --no-run
	cd web && node --test --test-concurrency=1 e2e/

chromium:
	./scripts/ensure-chromium.sh

# Throughput, latency and memory against bare axum and Express, revocation to refusal, the
# Node.js verifier against express-jwt, then micro-benchmarks.
bench: node
	$(CARGO) build --release -p tollgate -p tollgate-bench -p tollgate-example-axum --bins
	cd bench/express && $(NPM) ci --no-audit --no-fund
	./target/release/bench
	# Revocation to refusal on another instance and on the example resource servers, and the
	# Node.js verifier against express-jwt; appended to the day's results file.
	./target/release/revocation_latency | tee -a bench/results/$$(date -u +%F).md
	cd bench/express && node verify-bench.mjs | tee -a ../results/$$(date -u +%F).md
	$(CARGO) bench -p tollgate-bench --bench tokens -- --output-format bencher > target/criterion.txt
	# Criterion's one-line summaries, appended to the day's results file.
	{ printf '\n## Micro-benchmarks (criterion, `cargo bench -p tollgate-bench`)\n\n```\n'; \
	  grep '^test ' target/criterion.txt; printf '```\n'; } | tee -a bench/results/$$(date -u +%F).md
