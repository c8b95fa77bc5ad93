# poolpilot: the commands a developer and CI use. `make demo` and `make test` are the README's two
# commands: on a bare machine each installs what is missing first (the `install` target).
SHELL := /bin/bash
# npm scripts run with node_modules/.bin first on PATH, so `node` there is Node 24 (the `node`
# npm package); the machine's own Node only runs npm.
NPM := npm --silent

.PHONY: help install node-deps build typecheck lint test-unit test-integration test-node test local-up local-down run once bench demo image clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  %-18s %s\n", $$1, $$2 }'

# Both install targets are cheap when nothing is missing (.ci/install-deps.sh explains its checks),
# so every target that needs them depends on them. node-deps first, so that `make -j` never runs
# two `npm ci` at once.
install: node-deps ## install what is missing: Debian packages, npm dependencies, the control plane (cached by the hash of their inputs)
	@bash .ci/install-deps.sh all

node-deps: ## `npm ci` when node_modules does not hold what package-lock.json pins
	@bash .ci/install-deps.sh npm

build: node-deps ## bundle src/ into dist/cli.js (esbuild, build.js)
	$(NPM) run build

typecheck: node-deps ## tsc --noEmit over src and test
	$(NPM) run typecheck

lint: node-deps ## eslint (typescript-eslint strict), prettier --check (120 columns; `npm run format` fixes) and the Dockerfile linter
	$(NPM) run lint
	@# dockerfile-utils reports problems but exits 0: any output fails the target.
	@out=$$(node_modules/.bin/dockerfile-utils lint Dockerfile); if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; echo "Dockerfile: no lint findings"

test-unit: install ## unit tests (no servers; promtool checks the alert rules)
	$(NPM) run test:unit

test-integration: install ## integration tests against the real local control plane (the node's tests run in test-node)
	POOLPILOT_NODE_TESTS=0 $(NPM) run test:integration

# One node per machine: its two suites run one after the other. Prometheus 2.55 (the node plane's
# kubernetes_sd) and the images are built first, so that no test waits for a cold build.
NODE_SUITES := test/integration/real-node.test.ts test/integration/operator-in-cluster.test.ts
test-node: install ## the tests on a real node (root): Pods run by a kubelet with containerd, the operator image run in-cluster from deploy/; POOLPILOT_NODE_TESTS=0 skips them
	@if [ "$$(id -u)" != 0 ]; then echo "test-node: skipped: a node needs root (containerd, runc, network namespaces)"; \
	elif [ "$${POOLPILOT_NODE_TESTS:-1}" = 0 ]; then echo "test-node: skipped (POOLPILOT_NODE_TESTS=0)"; \
	else bash test/controlplane/build.sh component prometheus >/dev/null && \
	  bash image/build.sh archive operator >/dev/null && bash image/build.sh archive demo-workload >/dev/null && \
	  POOLPILOT_NODE_TESTS=1 $(NPM) run test:integration -- --runInBand $(NODE_SUITES); fi

test: install typecheck lint test-unit test-integration test-node ## everything CI runs

local-up: install ## start etcd, kube-apiserver and Prometheus on loopback (.local/); CONTROLLERS=1 adds kube-controller-manager and kube-scheduler, NODE=1 also a node (containerd + kubelet; root)
	bash test/controlplane/local-up.sh

local-down: ## stop exactly what local-up started (and planes tests started under .local/<name>/)
	bash test/controlplane/local-down.sh --all

# IN_CLUSTER=1: the plane gets a node (NODE=1), and the operator runs in it as deploy/ installs it.
ifeq ($(IN_CLUSTER),1)
export NODE := 1
endif

run: install build local-up ## start the control plane, install the CRD, run the operator against it; IN_CLUSTER=1: on a local node from `make image` with `kubectl apply -k deploy/` (root)
ifeq ($(IN_CLUSTER),1)
	bash test/controlplane/in-cluster.sh
else
	source .local/env && kubectl --kubeconfig "$$KUBECONFIG" apply -f crds/ && \
	  node_modules/.bin/node --max-semi-space-size=16 --max-old-space-size-percentage=50 dist/cli.js run --kubeconfig "$$KUBECONFIG" --prometheus-url "$$PROMETHEUS_URL"
endif

once: install build local-up ## reconcile every PoolPolicy once against the local plane and print the decisions
	source .local/env && node_modules/.bin/node dist/cli.js once --kubeconfig "$$KUBECONFIG" --prometheus-url "$$PROMETHEUS_URL"

# BENCH_ARMS=0 skips the four-arm matrix (static 20/40, 50/100, 16/32 and poolpilot; traces T1 and T2;
# T3, two apps on one budget: static split 8/16 and poolpilot; 3 repeats; ~105 min, resumable;
# bench/arms.sh lists its knobs: BENCH_TRACES, BENCH_REPEATS, BENCH_ARMS_ONLY, BENCH_T3_ARMS,
# BENCH_T1_PHASES, BENCH_T2_PHASES, BENCH_T3_PHASES_A, BENCH_T3_PHASES_B, BENCH_SEED, BENCH_FRESH).
BENCH_ARMS ?= 1

bench: install build local-up ## benchmarks (numbers, never pass/fail): operator cost and churn with BENCH_POLICIES (1000) policies, then the four arms (BENCH_ARMS=0 skips)
	node_modules/.bin/tsc -p bench/tsconfig.json
	source .local/env && POOLPILOT_REPO_ROOT=$(CURDIR) node_modules/.bin/node .local/bench-build/bench/operator-cost.js
	source .local/env && POOLPILOT_REPO_ROOT=$(CURDIR) node_modules/.bin/node .local/bench-build/bench/churn.js
	if [ "$(BENCH_ARMS)" != 0 ]; then node_modules/.bin/tsc -p demo/tsconfig.json && bash bench/arms.sh; fi

demo: install build ## PostgreSQL + PgBouncer + Redis + a SQLAlchemy workload under ~5 min of load, tuned by poolpilot; report in .local/demo/ (DEMO_PATH=pgbouncer: the app through PgBouncer, poolpilot tuning PgBouncer; as root on the local node, NODE=0: the node agent)
	node_modules/.bin/tsc -p demo/tsconfig.json
	bash demo/run.sh

image: install ## the operator image from the Dockerfile with buildah, pulls off, on bases made here (image/build.sh); cached by the hash of its inputs
	bash image/build.sh operator

clean: ## remove build output and local state (stops the local plane first)
	bash test/controlplane/local-down.sh --all
	rm -rf dist .local
