# The README's test command is `make test`; .ci/run calls it.
GO       ?= go
FUZZTIME ?= 30s

.PHONY: test generate lint fuzz bench load build e2e e2e-deps nginx-installed chromium-installed caddy-installed

# The integration and end-to-end tests run real parts: oidc-provider, the
# MCP TypeScript SDK and server-everything, the official MCP conformance
# suite with the Node 22 it needs (npm, from the committed lockfiles,
# installed when missing or stale), nginx and chromium (Debian's packages,
# installed when missing; the browser is never downloaded), and Caddy (built
# once with go install, kept beside Go's build cache, where the end-to-end
# suite looks for it).
E2E_DEPS = test/authserver/node_modules/.package-lock.json test/e2e/node_modules/.package-lock.json \
	test/conformance/node_modules/.package-lock.json nginx-installed chromium-installed caddy-installed

# The gateway's module, then the nested ones (MODULES), each with its own
# go.mod so that the gateway's requires only what it runs: test/manifests
# (the deployment files checked against the Kubernetes, Istio, Gateway API,
# Envoy Gateway, Prometheus Operator and compose-go types) and bench (the
# load harness).
MODULES = test/manifests bench

test: $(E2E_DEPS)
	$(GO) test -race -count=1 ./...
	# The compact cache tier's slab is mapped memory outside the Go heap,
	# except under -race (which watches only the heap): test that path too.
	$(GO) test -count=1 -run 'Compact|LocalCache' ./pkg/verdict/
	set -e; for m in $(MODULES); do (cd $$m && $(GO) test -race -count=1 ./...); done

# The end-to-end suite alone: SDK clients → nginx, Caddy or the gRPC path →
# gateway → MCP servers, and the conformance suite through nginx and the gRPC path.
e2e: $(E2E_DEPS)
	$(GO) test -race -count=1 -v ./test/e2e/

e2e-deps: $(E2E_DEPS)

test/authserver/node_modules/.package-lock.json: test/authserver/package-lock.json
	npm ci --prefix test/authserver --no-audit --no-fund --loglevel=error

test/e2e/node_modules/.package-lock.json: test/e2e/package-lock.json
	npm ci --prefix test/e2e --no-audit --no-fund --loglevel=error

test/conformance/node_modules/.package-lock.json: test/conformance/package-lock.json
	npm ci --prefix test/conformance --no-audit --no-fund --loglevel=error

nginx-installed:
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx >/dev/null)

chromium-installed:
	@[ -x /usr/bin/chromium ] || \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null)

# Keep in step with caddyModule in test/e2e/proxies_test.go.
CADDY_VERSION = v2.11.9
caddy-installed:
	@dir="$$($(GO) env GOCACHE)/../extauthz-tools/caddy-$(CADDY_VERSION)"; \
	  $(GO) version -m "$$dir/caddy" 2>/dev/null | grep -q "	github.com/caddyserver/caddy/v2	$(CADDY_VERSION)	" || \
	  (mkdir -p "$$dir" && GOBIN="$$dir" CGO_ENABLED=0 $(GO) install github.com/caddyserver/caddy/v2/cmd/caddy@$(CADDY_VERSION))

# api/config.schema.json and the reference tables of docs/configuration.md,
# from pkg/config's types (a test in internal/configgen fails when stale).
generate:
	$(GO) generate ./pkg/config/

GOLANGCI_LINT ?= $(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...
	set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./... && $(GOLANGCI_LINT) run ./...); done

# Each fuzz target for FUZZTIME; new failing inputs land in testdata/fuzz.
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzParseBearer ./pkg/authz/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzChallenge ./pkg/metadata/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzParseChallenges ./pkg/metadata/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzParse ./pkg/config/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzRefreshInterval ./pkg/jwks/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzDecodeEnvelope ./pkg/cache/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzVerdictDecode ./pkg/verdict/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzExtract ./pkg/mcp/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzMatch ./pkg/mcp/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzCanonicalURI ./pkg/mcp/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzDecodeRequest ./pkg/check/internal/wire/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzScrub ./pkg/logging/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzLinesWriteWhatTheLoggerWrites ./pkg/logging/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzParseToken ./pkg/token/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzParsePayload ./pkg/token/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzSignature ./pkg/token/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzVerifyMatchesCryptoRSA ./internal/rsasig/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzVerifyMatchesCryptoEd25519 ./internal/ed25519sig/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzVerifyMatchesCryptoECDSA ./internal/p256sig/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzRead ./pkg/token/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzOpenState ./pkg/oauthflow/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzClientMetadata ./pkg/oauthflow/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzRedirectURI ./pkg/oauthflow/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzParseRefreshToken ./pkg/oauthflow/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzCacheHash ./pkg/token/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzGrantKey ./pkg/token/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzRouteDifferential ./pkg/authz/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzParseResponse ./pkg/upstream/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzSealedEntry ./pkg/upstream/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzVerifyOwn ./pkg/devissuer/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzVerifyProof ./pkg/dpop/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzTarget ./pkg/target/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzPreflightAllowHeaders ./pkg/authz/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzParseSET ./pkg/ssf/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzSSE ./pkg/extproc/
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzFilterMessage ./pkg/extproc/

# The in-process micro-benchmarks of the Check hot path (the load harness,
# in the bench module, is make load).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 5 ./pkg/check/ ./pkg/check/internal/wire/

# The load harness (bench/cmd/extauthz-load, in the bench module): starts
# the servers it measures on loopback ports, runs every scenario (bounded in
# time and count), stops them, prints Markdown. It runs from the repository
# root, so that its default --server bin/extauthz and any --out path are
# relative to it. Extra flags: make load LOADFLAGS="--rounds 3 --out results.md"
load: build
	cd bench && $(GO) build -o ../bin/extauthz-load ./cmd/extauthz-load
	bin/extauthz-load $(LOADFLAGS)

build:
	$(GO) build -o bin/extauthz ./cmd/extauthz
