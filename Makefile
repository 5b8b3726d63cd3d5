# ironfleet — run `make help` for the targets.
GO            ?= go
BIN           := bin/ironfleet
AGENT_BIN     := bin/ironfleet-agent
NATS_BIN      := bin/nats-server
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -s -w -X github.com/ironfleet/ironfleet/internal/buildinfo.Version=$(VERSION)
GOLANGCI_LINT := github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
# Flags for `make run`, e.g. make run RUN_ARGS="--nodes 50".
RUN_ARGS      ?=
TEST_FLAGS    ?= -race -count=1 -timeout 15m

.DEFAULT_GOAL := help
.PHONY: help build build-agent build-nats up down run test test-unit e2e bench lint fmt fmt-check vet tidy clean deps

help: ## Show this help
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build bin/ironfleet
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/ironfleet

build-agent: ## Build bin/ironfleet-agent, the static agent for the deploy ramdisk
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(AGENT_BIN) ./cmd/ironfleet-agent
	@ls -l $(AGENT_BIN)

build-nats: ## Build bin/nats-server from the nats-server Go module go.mod pins
	CGO_ENABLED=0 $(GO) build -trimpath -o $(NATS_BIN) github.com/nats-io/nats-server/v2

up: build build-nats ## Start a multi-process fleet: 3 NATS, Redis, api, 2 conductors (FLEET_SIM_NODES=5 adds machines)
	@scripts/ensure-deps.sh run
	deployments/local/fleet.sh up

down: ## Stop the fleet make up started, in reverse order (its state stays in .fleet/)
	deployments/local/fleet.sh down

run: build ## Start the whole fleet on embedded defaults (ironfleet dev)
	@scripts/ensure-deps.sh run
	exec $(BIN) dev $(RUN_ARGS)

deps: ## Install the system packages the tests need (apt-get, when missing)
	@scripts/ensure-deps.sh test

test: deps fmt-check vet ## Install what tests need (real clients too), then gofmt check, go vet, go test -race (compat tests included), the hardware lab
	$(GO) test $(TEST_FLAGS) ./...
	$(MAKE) e2e

test-unit: ## Fast loop: go test without -race and without the slow suites
	$(GO) test -short ./...

e2e: ## The hardware lab: deploy a QEMU machine over IPMI (ipmi_sim) and PXE through the API
	@scripts/ensure-deps.sh test e2e
	$(GO) vet -tags e2e ./internal/lab/...
	$(GO) test -tags e2e $(TEST_FLAGS) -timeout 25m ./internal/lab/...

bench: build ## Run the Go benchmarks once each
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

lint: ## golangci-lint (pinned, fetched through the Go toolchain)
	$(GO) run $(GOLANGCI_LINT) run --build-tags e2e ./...

vet: ## go vet
	$(GO) vet ./...

fmt: ## gofmt -w every Go file
	gofmt -w $$(git ls-files -co --exclude-standard '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

tidy: ## go mod tidy
	$(GO) mod tidy

clean: ## Remove build output
	rm -rf bin
