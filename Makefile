# Build, test and demo the farm agent. `make test` and `make demo` install the
# Debian packages they need (as root) before they run.
GO      ?= go
BIN     := bin
PKG     := ./agent/cmd/farm
TESTFLAGS ?= -count=1 -timeout 18m

.PHONY: all build build-windows test unit e2e bench demo demo-down lint deps clean package fuzz chaos

all: build

build:
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -o $(BIN)/farm $(PKG)
	CGO_ENABLED=0 $(GO) build -o $(BIN)/farmlab ./tests/cmd/farmlab

build-windows:
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 $(GO) build -o $(BIN)/farm.exe $(PKG)
	@# Every package's tests must compile for Windows too (they cannot run here).
	@for p in $$(GOOS=windows $(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...); do \
		CGO_ENABLED=0 GOOS=windows GOARCH=amd64 $(GO) test -c -o /dev/null $$p || exit 1; \
	done

deps:
	@tests/install-deps.sh

# Release packages in $(DIST)/: farm_VERSION_amd64.deb (nfpm, see packaging/)
# and farm_VERSION_windows_amd64.zip. The binaries are built with VCS
# stamping, so `farm version` and the package version name the commit.
DIST    := dist
package:
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -buildvcs=auto -trimpath -o $(DIST)/linux-amd64/farm $(PKG)
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 $(GO) build -buildvcs=auto -trimpath -o $(DIST)/windows-amd64/farm.exe $(PKG)
	$(GO) run ./packaging -linux $(DIST)/linux-amd64/farm -windows $(DIST)/windows-amd64/farm.exe -out $(DIST)

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@if command -v shellcheck >/dev/null; then shellcheck -x $$(git ls-files '*.sh'); fi
	GOOS=windows $(GO) vet ./...
	@sc=$$(command -v staticcheck || echo "$$($(GO) env GOPATH)/bin/staticcheck"); \
	if [ -x "$$sc" ]; then echo "$$sc ./..."; "$$sc" ./...; else echo "staticcheck not installed (tests/install-deps.sh installs it)"; fi

# Every test: unit tests, root integration tests (namespaces, nftables,
# NFQUEUE) and the end-to-end farm tests in tests/e2e. Root tests skip when not
# root, and fail instead when CI=true.
test: deps build build-windows lint
	$(GO) test $(TESTFLAGS) $$($(GO) list ./... | grep -v '/tests/chaos$$')
	@echo "end-to-end suite again with the NFQUEUE engine (the run above used the kernel engine)"
	FARM_ENGINE=nfqueue $(GO) test $(TESTFLAGS) ./tests/e2e/
	@echo "chaos soak, 2 minutes (make chaos runs it for 10; the seed to replay is printed first)"
	$(GO) test $(TESTFLAGS) -v ./tests/chaos/ -chaos.duration=2m
	tests/fuzz.sh short

# The chaos soak for 10 minutes (CHAOS_DURATION=30m for longer): four agents
# under load while a seeded schedule of faults runs; CHAOS_SEED=N replays a
# failing run's schedule. Needs root, nginx, tcpdump and nft.
CHAOS_DURATION ?= 10m
CHAOS_SEED     ?= 0
chaos: deps build
	$(GO) test -count=1 -timeout 40m -v -run TestChaos ./tests/chaos/ -chaos.duration=$(CHAOS_DURATION) -chaos.seed=$(CHAOS_SEED)

# Every fuzz target for 60 s each (FUZZTIME=10m for longer); make test runs
# them for 5 s each.
fuzz:
	tests/fuzz.sh

bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem ./farm/... ./filter/...
	tests/bench.sh
	tests/footprint.sh
	$(GO) run ./tests/cmd/farmsim -netns

demo: deps build
	@$(BIN)/farmlab down >/dev/null 2>&1 || true
	$(BIN)/farmlab up -nodes 3 -agents yes
	$(BIN)/farmlab burst
	$(BIN)/farmlab status

demo-down:
	@if [ -x $(BIN)/farmlab ]; then $(BIN)/farmlab down; else $(GO) run ./tests/cmd/farmlab down; fi

clean:
	rm -rf $(BIN) $(DIST)
