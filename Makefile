# The README's test command is `make test`; .ci/run calls it.
GO       ?= go
FUZZTIME ?= 30s

.PHONY: test lint fuzz bench load build e2e e2e-deps nginx-installed chromium-installed

# The integration and end-to-end tests run real parts: oidc-provider, the
# MCP TypeScript SDK and server-everything (npm, from the committed
# lockfiles, installed when missing or stale), nginx and chromium (Debian's
# packages, installed when missing; the browser is never downloaded).
E2E_DEPS = test/authserver/node_modules/.package-lock.json test/e2e/node_modules/.package-lock.json nginx-installed chromium-installed

test: $(E2E_DEPS)
	$(GO) test -race -count=1 ./...

# The end-to-end suite alone: SDK client → nginx → gateway → server-everything.
e2e: $(E2E_DEPS)
	$(GO) test -race -count=1 -v ./test/e2e/

e2e-deps: $(E2E_DEPS)

test/authserver/node_modules/.package-lock.json: test/authserver/package-lock.json
	npm ci --prefix test/authserver --no-audit --no-fund --loglevel=error

test/e2e/node_modules/.package-lock.json: test/e2e/package-lock.json
	npm ci --prefix test/e2e --no-audit --no-fund --loglevel=error

nginx-installed:
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx >/dev/null)

chromium-installed:
	@[ -x /usr/bin/chromium ] || \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Each fuzz target for FUZZTIME; new failing inputs land in testdata/fuzz.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseBearer$$' -fuzztime $(FUZZTIME) ./pkg/authz/
	$(GO) test -run '^$$' -fuzz '^FuzzChallenge$$' -fuzztime $(FUZZTIME) ./pkg/metadata/
	$(GO) test -run '^$$' -fuzz '^FuzzParseChallenges$$' -fuzztime $(FUZZTIME) ./pkg/metadata/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./pkg/config/
	$(GO) test -run '^$$' -fuzz '^FuzzRefreshInterval$$' -fuzztime $(FUZZTIME) ./pkg/jwks/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEnvelope$$' -fuzztime $(FUZZTIME) ./pkg/cache/
	$(GO) test -run '^$$' -fuzz '^FuzzVerdictDecode$$' -fuzztime $(FUZZTIME) ./pkg/authz/
	$(GO) test -run '^$$' -fuzz '^FuzzExtract$$' -fuzztime $(FUZZTIME) ./pkg/mcp/
	$(GO) test -run '^$$' -fuzz '^FuzzMatch$$' -fuzztime $(FUZZTIME) ./pkg/mcp/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRequest$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 100x ./pkg/check/

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 5 ./pkg/check/

# The load harness: starts the servers it measures on loopback ports, runs
# every scenario (bounded in time and count), stops them, prints Markdown.
# Extra flags: make load LOADFLAGS="--rounds 3 --out results.md"
load: build
	$(GO) run ./cmd/extauthz-load $(LOADFLAGS)

build:
	$(GO) build -o bin/extauthz ./cmd/extauthz
