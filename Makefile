# The README's test command is `make test`; .ci/run calls it.
GO       ?= go
FUZZTIME ?= 30s

.PHONY: test lint fuzz bench load build

# The integration tests run a real authorization server (oidc-provider);
# its npm packages are installed from the lockfile when missing or stale.
test: test/authserver/node_modules/.package-lock.json
	$(GO) test -race -count=1 ./...

test/authserver/node_modules/.package-lock.json: test/authserver/package-lock.json
	npm ci --prefix test/authserver --no-audit --no-fund --loglevel=error

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

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 5 ./pkg/check/

# The load harness: starts the servers it measures on loopback ports, runs
# every scenario (bounded in time and count), stops them, prints Markdown.
# Extra flags: make load LOADFLAGS="--rounds 3 --out results.md"
load: build
	$(GO) run ./cmd/extauthz-load $(LOADFLAGS)

build:
	$(GO) build -o bin/extauthz ./cmd/extauthz
