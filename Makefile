# relaymesh — `make help` lists the targets.

GO       ?= go
BIN      ?= bin/relaymesh
FUZZTIME ?= 30s
PKGS     ?= ./...
export GOFLAGS ?= -buildvcs=false
# Go 1.26.8's standard library has reachable vulnerabilities fixed only in
# 1.26.9+/1.27.2+; go1.27.3 is the fixed toolchain the module proxy serves.
# go.mod stays at go 1.26, so a plain `go build` with the local Go still works.
export GOTOOLCHAIN ?= go1.27.3
# The version relaymesh --version prints and nodes report; make build VERSION=v1.2.3.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null)
LDFLAGS  ?= $(if $(VERSION),-X github.com/relaymesh/relaymesh/internal/version.stamp=$(VERSION))

.PHONY: help build test console-screenshots vulncheck package package-test e2e e2e-netns bench-netns bench-flood sim bench bench-sim vsim fuzz lint tidy demo clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/relaymesh, stamped with VERSION (default: git describe)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) .

test: ## unit and in-process integration tests, with -race
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

console-screenshots: ## drive the web console in headless Chromium (Debian's chromium) and save docs/console/*.png
	RELAYMESH_CONSOLE_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test -count=1 -run '^TestConsoleInBrowser$$' -v ./integration/

vulncheck: ## govulncheck against an offline, pinned Go vulnerability database; fails on reachable findings with a fix
	@GO="$(GO)" ./scripts/vulncheck.sh

package: ## .deb and .rpm of relaymesh (nfpm): binary with VERSION stamped, systemd units, /etc/relaymesh, man page; out/package/
	@GO="$(GO)" ./scripts/package.sh

package-test: ## build the packages at two versions; systemd-analyze verify; install, upgrade, purge the .deb in a scratch root
	@GO="$(GO)" ./scripts/package-test.sh

e2e: ## end-to-end tests with real processes (also part of make test)
	@if [ -d e2e ]; then \
		$(GO) test -race -count=1 -timeout 20m -v ./e2e/...; \
	else echo "e2e: no e2e tests yet (e2e/ is missing)"; fi

e2e-netns: ## e2e over Linux network namespaces with shaped links (needs root; else says why and skips)
	@GO="$(GO)" ./e2e/netns/run.sh

bench-netns: ## distribution as admins get it, real processes in namespaces, tbf links (root; BENCH_NETNS_SET, BENCH_NETNS_RUNS)
	@GO="$(GO)" ./e2e/netns/bench.sh

bench-flood: ## 100 unenrolled identities x 100 streams against a coordinator process: its VmRSS/VmHWM before, during, after
	RELAYMESH_BENCH_FLOOD=1 $(GO) test -count=1 -timeout 15m -run '^TestBenchFlood$$' -v ./e2e/ 2>&1 | grep -vE '^\s+time=|harness_test.go'

SIM_OUT   ?= out/sim
SIM_SET   ?= failover corrupt-peer partition late-join slow-peer
BENCH_SET ?= bench-4x8 bench-20x20 bench-20x50

sim: ## fault scenarios (failover corrupt-peer partition late-join slow-peer): tables, SIM_OUT/NAME/{report.json,*.svg}; fails when a scenario's bounds break
	@$(GO) build -o $(BIN) . && failed=""; for s in $(SIM_SET); do \
		echo "== sim $$s"; \
		$(BIN) --log-level error sim run simulations/scenarios/$$s.yaml --out $(SIM_OUT)/$$s || failed="$$failed $$s"; \
	done; \
	if [ -n "$$failed" ]; then echo "sim: bounds broken or run failed in:$$failed" >&2; exit 1; fi

VSIM_SET   ?= $(SIM_SET) $(BENCH_SET)
VSIM_STALL ?= 2m

vsim: ## every scenario (VSIM_SET) in virtual time (testing/synctest): simulated seconds and the wall time each cost; SIM_OUT/vsim/NAME/; fails when a bound breaks
	RELAYMESH_VSIM="$(foreach s,$(VSIM_SET),$(CURDIR)/simulations/scenarios/$(s).yaml)" \
	RELAYMESH_VSIM_OUT="$(CURDIR)/$(SIM_OUT)/vsim" RELAYMESH_VSIM_STALL=$(VSIM_STALL) \
		$(GO) test -count=1 -timeout 180m -run '^TestVirtualSim$$' -v ./simulations/

bench: ## Go benchmarks of every package, then bench-sim
	$(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 60m $(PKGS)
	@$(MAKE) --no-print-directory bench-sim

bench-sim: ## distribution benchmarks only (bench-4x8, bench-20x50): tables, SIM_OUT/NAME/
	@$(GO) build -o $(BIN) . && failed=""; for s in $(BENCH_SET); do \
		echo "== bench $$s"; \
		$(BIN) --log-level error sim run simulations/scenarios/$$s.yaml --out $(SIM_OUT)/$$s || failed="$$failed $$s"; \
	done; \
	if [ -n "$$failed" ]; then echo "bench-sim: bounds broken or run failed in:$$failed" >&2; exit 1; fi

fuzz: ## run every Fuzz target for $(FUZZTIME) each
	@set -e; found=0; \
	for pkg in $$($(GO) list $(PKGS)); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for f in $$(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)\(f \*testing\.F\)' $$dir/*_test.go 2>/dev/null | sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/'); do \
			found=1; echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done; \
	if [ $$found = 0 ]; then echo "fuzz: no Fuzz targets yet"; fi

lint: ## golangci-lint if installed, else go vet and a gofmt check
	@if command -v golangci-lint >/dev/null 2>&1; then \
		golangci-lint run ./...; \
	else \
		echo "lint: golangci-lint not installed; running go vet and gofmt"; \
		$(GO) vet ./... && \
		out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './vendor/*')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi; \
	fi

tidy: ## go mod tidy
	$(GO) mod tidy

demo: ## a coordinator and 3 sites x 4 nodes on loopback: build, deploy, watch, per-site WAN bytes
	$(GO) build -o $(BIN) . && ./$(BIN) demo

clean: ## remove build output
	rm -rf bin
