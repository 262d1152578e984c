# SoulBox — the two commands a new user needs:
#   make run    install what is missing, build, check the host, print an API key, start the daemon
#   make test   install what is missing and run the whole suite (as root)
SHELL := /bin/bash
export CGO_ENABLED := 0
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
BIN := bin/soulbox
DATA_DIR ?= /var/lib/soulbox
LISTEN ?= 127.0.0.1:8080
GOLANGCI_VERSION := v2.15.0
GOLANGCI := $(shell $(GO) env GOPATH)/bin/golangci-lint-$(GOLANGCI_VERSION)
# Fuzzing budgets are counts of inputs, not durations: Go 1.26's fuzz
# coordinator can report a spurious "context deadline exceeded" when a
# -fuzztime duration ends while a worker is mid-input (golang/go#75804, fixed
# in Go 1.27); a count has no deadline to race. Targets whose every input runs
# an HTTP handler chain or writes files get a fifth of the count.
FUZZ_EXECS ?= 100000
FUZZ_SLOW = FuzzUpload FuzzControlPlane

.PHONY: all build run deps template-julia test test-unit test-e2e lint fmt-check proto proto-check fuzz bench soak test-cgroupv2 clean

all: build

# The sandbox init is a small separate program embedded in soulbox (see
# internal/initbin): build it first, then the full soulbox with it inside,
# then the small front that users run with the full one inside (see
# internal/fullbin).
build:
	$(GO) build -trimpath -ldflags "-s -w" -o internal/initbin/soulbox-init ./cmd/soulbox-init
	sha256sum internal/initbin/soulbox-init | cut -d' ' -f1 > internal/initbin/soulbox-init.sha256
	$(GO) build -trimpath -ldflags "-s -w" -tags soulbox_embedinit -o internal/fullbin/soulbox-full ./cmd/soulbox
	sha256sum internal/fullbin/soulbox-full | cut -d' ' -f1 > internal/fullbin/soulbox-full.sha256
	$(GO) build -trimpath -ldflags "-s -w" -tags soulbox_front -o $(BIN) ./cmd/soulbox

deps:
	scripts/install-deps.sh run

run: deps build template-julia
	$(BIN) doctor
	@echo; echo '$$ soulbox run --json --memory 64M -- python3 -c "bytearray(1<<30)"'
	$(BIN) run --data-dir $(DATA_DIR) --json --memory 64M -- python3 -c 'bytearray(1<<30)'
	@key=$$($(BIN) apikey create --e2b --data-dir $(DATA_DIR) --name make-run 2>/dev/null | tail -1) && \
	  echo && echo "A new API key for the daemon (also for the E2B SDKs as E2B_API_KEY):" && echo && \
	  echo "  export SOULBOX_URL=http://$(LISTEN) SOULBOX_API_KEY=$$key" && echo
	exec $(BIN) serve --listen $(LISTEN) --data-dir $(DATA_DIR)

# The whole suite: formatting and vet, lint, unit and end-to-end tests on
# this host's cgroups, a short fuzz pass, then the same tests (-short) in a
# qemu guest with pure cgroup v2.
test:
	scripts/install-deps.sh test
	$(MAKE) template-julia fmt-check proto-check lint test-unit test-e2e fuzz test-cgroupv2

# The julia template: Debian 12 does not package Julia, Debian 11 does
# (1.5.3). mmdebstrap writes a minimal Debian 11 root with it, from
# Debian's archive, as a tar stream that soulbox imports (once; `soulbox
# template rm julia` to build it again).
JULIA_SUITE ?= bullseye
DEBIAN_MIRROR ?= http://deb.debian.org/debian
template-julia: build
	@set -o pipefail; if $(BIN) template list --json | grep -q '"name": "julia"'; then 	  echo "template julia: imported already"; else 	  mmdebstrap --quiet --variant=essential --include=julia $(JULIA_SUITE) - $(DEBIAN_MIRROR) | $(BIN) template import julia -; fi

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd sdk/go && $(GO) vet ./...

# sdk/go/envd is generated from api/proto and committed; proto-check fails if
# it is stale or was edited by hand.
proto:
	scripts/gen-proto.sh

proto-check:
	@tmp=$$(mktemp -d); scripts/gen-proto.sh $$tmp && diff -r $$tmp/envd sdk/go/envd && diff -r $$tmp/soulboxpb sdk/go/soulboxpb && rm -rf $$tmp && echo "sdk/go/envd and sdk/go/soulboxpb are up to date"

$(GOLANGCI):
	GOBIN=$(dir $(GOLANGCI)) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)
	mv $(dir $(GOLANGCI))/golangci-lint $(GOLANGCI)

lint: $(GOLANGCI)
	$(GOLANGCI) run ./...
	cd sdk/go && $(GOLANGCI) run --config ../../.golangci.yml ./...

test-unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test)
	cd sdk/go && $(GO) test -count=1 ./...

test-e2e:
	$(GO) test -count=1 -timeout 20m ./test/...

# A short pass of every fuzz target (their committed corpora also run as
# regression tests in test-unit).
fuzz:
	@for mod in . sdk/go; do (cd $$mod && \
	  for pkg in $$($(GO) list ./...); do \
	    for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	      n=$(FUZZ_EXECS); case " $(FUZZ_SLOW) " in *" $$f "*) n=$$(( n / 5 ));; esac; \
	      echo "fuzz $$pkg $$f ($$n inputs)"; \
	      $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime "$${n}x" $$pkg || exit 1; \
	    done; \
	  done) || exit 1; \
	done

# Outside CI's budget: 1,000 hostile runs mixed with benign ones against a
# daemon, HOST-OK after every 100, the daemon's memory flat.
soak: build
	SOULBOX_SOAK=$${SOULBOX_SOAK:-1000} $(GO) test -count=1 -timeout 60m -v -run '^TestSoak$$' ./test/

bench: build
	scripts/install-deps.sh bench
	bench/run.sh
	bench/api.sh
	bench/net.sh
	bench/judge.sh

# Runs every package's tests in a qemu guest booted with a stock Debian
# kernel and only cgroup v2 (scripts/vm/README.md). -short skips the
# 1,000-run loop, which is slow under software emulation.
# The guest checks the runtime, daemon and agent against pure cgroup v2.
# Left to the host run (which runs them all): egress (the guest's stock
# kernel has no veth module to load) and the language scenarios, compiled
# languages (javac alone can pass its 60 s compile limit there) and
# code execution (pandas and matplotlib under software emulation exceed
# their limits), the 1,000-command storm and the resource-exhaustion cases
# (minutes under emulation; a long-lived sandbox surviving an OOM kill on
# v2, which their /dev/shm case relies on, is TestLongLivedSurvivesOOM).
VM_SKIP := ^(TestEgress|TestScenario|TestExecuteCode|TestCodeContexts|TestCodeLanguages|TestThousandConcurrentHostile|TestResourceExhaustion)

test-cgroupv2:
	TESTFLAGS="-test.short -test.skip $(VM_SKIP) $(TESTFLAGS)" scripts/vm/cgroupv2-test.sh

clean:
	rm -rf bin
