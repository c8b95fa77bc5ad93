# poolpilot: the commands a developer and CI use. `make test` is the README's test command.
SHELL := /bin/bash
# npm scripts run with node_modules/.bin first on PATH, so `node` there is Node 24 (the `node`
# npm package); the machine's own Node only runs npm itself.
NPM := npm --silent

.PHONY: help install build typecheck lint test-unit test-integration test local-up local-down run once bench demo clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  %-18s %s\n", $$1, $$2 }'

install: ## install Debian packages, npm dependencies and build the control plane
	bash .ci/install-deps.sh

node_modules/.package-lock.json: package-lock.json
	npm ci --no-fund --no-audit

build: node_modules/.package-lock.json ## compile src/ to dist/
	$(NPM) run build

typecheck: node_modules/.package-lock.json ## tsc --noEmit over src and test
	$(NPM) run typecheck

lint: node_modules/.package-lock.json ## eslint (typescript-eslint strict) and the Dockerfile linter
	$(NPM) run lint
	@# dockerfile-utils reports problems but exits 0: any output fails the target.
	@out=$$(node_modules/.bin/dockerfile-utils lint Dockerfile); if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; echo "Dockerfile: no lint findings"

test-unit: node_modules/.package-lock.json ## unit tests (no servers)
	$(NPM) run test:unit

test-integration: node_modules/.package-lock.json ## integration tests against the real local control plane
	$(NPM) run test:integration

test: typecheck lint test-unit test-integration ## everything CI runs

local-up: ## start etcd, kube-apiserver and Prometheus on loopback (.local/)
	bash test/controlplane/local-up.sh

local-down: ## stop exactly what local-up started
	bash test/controlplane/local-down.sh

run: build local-up ## start the control plane, install the CRD, run the operator against it
	source .local/env && kubectl --kubeconfig "$$KUBECONFIG" apply -f crds/ && \
	  node_modules/.bin/node dist/cli.js run --kubeconfig "$$KUBECONFIG" --prometheus-url "$$PROMETHEUS_URL"

once: build local-up ## reconcile every PoolPolicy once against the local plane and print the decisions
	source .local/env && node_modules/.bin/node dist/cli.js once --kubeconfig "$$KUBECONFIG" --prometheus-url "$$PROMETHEUS_URL"

# BENCH_ARMS=0 skips the three-arm run (static 20/40, static 50/100, poolpilot; ~20 min, bench/arms.sh).
BENCH_ARMS ?= 1

bench: build local-up ## benchmarks (numbers, never pass/fail): operator cost and churn with BENCH_POLICIES (1000) policies, then the three arms (BENCH_ARMS=0 skips)
	node_modules/.bin/tsc -p bench/tsconfig.json
	source .local/env && POOLPILOT_REPO_ROOT=$(CURDIR) node_modules/.bin/node .local/bench-build/bench/operator-cost.js
	source .local/env && POOLPILOT_REPO_ROOT=$(CURDIR) node_modules/.bin/node .local/bench-build/bench/churn.js
	if [ "$(BENCH_ARMS)" != 0 ]; then bash demo/deps.sh && node_modules/.bin/tsc -p demo/tsconfig.json && bash bench/arms.sh; fi

demo: build ## PostgreSQL + PgBouncer + Redis + a SQLAlchemy workload under ~5 min of load, tuned by poolpilot; report in .local/demo/
	bash demo/deps.sh
	node_modules/.bin/tsc -p demo/tsconfig.json
	bash demo/run.sh

clean: ## remove build output and local state (stops the local plane first)
	bash test/controlplane/local-down.sh
	rm -rf dist .local
