# Arubug. The two commands a newcomer needs:
#   make run    install ClickHouse if missing, build, start `arubug dev`
#   make test   install what the tests need, then run every test
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO       ?= go
BIN      := bin/arubug
LOADBIN  := bin/arubug-load
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
# Root needs no sudo (CI and containers run as root).
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT      := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get
# A count, not a duration: Go 1.26's fuzz coordinator can report a spurious
# "context deadline exceeded" when a -fuzztime duration ends under CPU load
# (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 30000x

.PHONY: help run build widget web-vendor test test-go test-browser rules-test check-faults lint fuzz bench bench-load bench-triage bench-zendesk bench-scenario bench-trends deps-run deps-test deps-deploy deploy-check clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

run: deps-run build ## install ClickHouse if missing, build, start arubug dev
	./$(BIN) dev

widget: ## rebuild the widget bundles in siteapp-js/dist (committed; CI checks they are current)
	cd siteapp-js && npm ci --no-audit --no-fund --loglevel=error && npm run build

web-vendor: ## re-vendor the web UI's chart library (uPlot, pinned in internal/web/js) into internal/web/assets/vendor
	cd internal/web/js && npm ci --no-audit --no-fund --loglevel=error && npm run --silent vendor

build: ## build bin/arubug and bin/arubug-load
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/arubug
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(LOADBIN) ./cmd/arubug-load

test: deps-test lint rules-test test-go check-faults fuzz test-browser deploy-check ## install test dependencies and run every test
	@echo "make test: all checks passed"

test-go: ## Go tests (unit, ClickHouse integration, end-to-end with the real binary)
	$(GO) test -race -count=1 -timeout 30m ./...

# The test files run one at a time: each starts Chromium and a collector with its own
# ClickHouse, and with all of them at once posthog-js's unload flush (posthog-compat case 4)
# once missed an event.
test-browser: build ## widget and web UI browser tests; posthog-js against the collector in headless Chromium
	cd siteapp-js && npm ci --no-audit --no-fund --loglevel=error
	cd siteapp-js && npm run --silent check-build
	cd siteapp-js && ARUBUG_BIN=$(CURDIR)/$(BIN) node --test --test-concurrency=1 --test-reporter=spec test/
	cd internal/web/js && npm ci --no-audit --no-fund --loglevel=error
	cd internal/web/js && npm run --silent check-vendor
	cd internal/web/js && ARUBUG_BIN=$(CURDIR)/$(BIN) node --test --test-reporter=spec test/

rules-test: build ## check the routing rules and run their test cases
	./$(BIN) rules check
	./$(BIN) rules test

# The whole pipeline under faults (docs/reliability.md). First a short run with -self-test,
# which expects an event, a report and a reply that were never sent: it must fail with
# exactly 4 violations (the event; the report as an event and as a ticket; the reply),
# proving the checks catch a loss. Then 60 s of mixed load with every fault kind once;
# any violated invariant fails the target. A missing ClickHouse fails it too (exit 2),
# never skips it.
check-faults: build ## 60 s scenario with kill -9, ClickHouse down, Zendesk 5xx/429/drops and a full spool; checks the invariants
	@set +e; out=$$(./$(LOADBIN) scenario -quiet -d 12s -self-test 2>&1); code=$$?; set -e; \
	if [ $$code -ne 1 ] || ! grep -q "FAIL: 4 invariant violations" <<<"$$out"; then \
		echo "$$out"; echo "check-faults: the -self-test run must fail with exactly 4 violations (exit status $$code)"; exit 1; fi; \
	echo "check-faults: self-test ok: the checks caught the missing event, report and reply"
	./$(LOADBIN) scenario -d 60s -faults all -drain-timeout 150s

lint: ## gofmt and go vet
	@out=$$(gofmt -l cmd internal); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fuzz: ## run every fuzz target briefly (FUZZTIME=30000x executions)
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./internal/capture/
	$(GO) test -run='^$$' -fuzz='^FuzzFastJSON$$' -fuzztime=$(FUZZTIME) ./internal/capture/
	$(GO) test -run='^$$' -fuzz='^FuzzDecompressFromBase64$$' -fuzztime=$(FUZZTIME) ./internal/capture/lzstring/
	$(GO) test -run='^$$' -fuzz='^FuzzRoundTrip$$' -fuzztime=$(FUZZTIME) ./internal/capture/lzstring/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeRecord$$' -fuzztime=$(FUZZTIME) ./internal/spool/
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./internal/routing/

deploy-check: deps-deploy ## check deploy/: alert rules (promtool), Dockerfile, compose, Kubernetes manifests against the binary
	promtool check rules deploy/prometheus/alerts.yaml
	cd deploy/prometheus && promtool test rules alerts_test.yaml
	@out=$$(gofmt -l deploy/check); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	cd deploy/check && $(GO) vet ./... && $(GO) test -count=1 -timeout 15m ./...

bench: build ## Go benchmarks (see docs/benchmarks.md for the load runs)
	$(GO) test -run='^$$' -bench=. -benchmem ./internal/...

bench-load: build ## capture throughput vs the do-nothing handler and direct ClickHouse inserts
	cmd/arubug-load/capture-bench.sh

bench-triage: build ## ack → routed latency of bug reports under background load
	cmd/arubug-load/triage-bench.sh

bench-trends: build ## p50/p95 of every trends query and UI page on a seeded history (10 M events, 100 k reports)
	cmd/arubug-load/trends-bench.sh

bench-zendesk: build ## ack → ticket latency with the Zendesk simulator at a 700 requests/min limit
	cmd/arubug-load/zendesk-bench.sh

bench-scenario: build ## the mixed scenario without faults, with the do-nothing and direct-ClickHouse baselines
	./$(LOADBIN) scenario -d $${DURATION:-60s} -baselines $${BASELINES:-15s} -json-out $${OUT:-/tmp}/scenario.json

deps-run: ## install clickhouse-server from the distribution if it is missing
	@if command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/sbin/clickhouse-server ] || [ -x /usr/bin/clickhouse-server ]; then \
		echo "clickhouse-server: found"; \
	else \
		echo "clickhouse-server: not found; installing it from the distribution's packages"; \
		$(APT) update -q && $(APT) install -y -q clickhouse-server clickhouse-client; \
	fi

deps-test: deps-run ## also install Chromium, Node.js (browser tests) and ZooKeeper (cluster tests)
	@if [ -x /usr/bin/chromium ]; then echo "chromium: found"; else \
		echo "chromium: not found; installing it"; $(APT) update -q && $(APT) install -y -q chromium; fi
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then echo "node: $$(node --version)"; else \
		echo "node: not found; installing it"; $(APT) update -q && $(APT) install -y -q nodejs npm; fi
	@if [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1; then echo "zookeeper: found"; else \
		echo "zookeeper: not found; installing it (the ClickHouse cluster tests run it)"; $(APT) update -q && $(APT) install -y -q zookeeper; fi

deps-deploy: ## install promtool (Debian's prometheus package) if it is missing
	@if command -v promtool >/dev/null 2>&1; then echo "promtool: found"; else \
		echo "promtool: not found; installing Debian's prometheus package"; \
		$(APT) update -q && $(APT) install -y -q --no-install-recommends prometheus; fi

clean: ## remove build output and the dev data dir
	rm -rf bin build .arubug-dev
