# outlookd — the two commands that matter are `make run` and `make test`.

SHELL := /bin/bash
GO    ?= go
STACK := $(GO) run ./deploy/stack
STATICCHECK_VERSION := v0.8.2

.PHONY: run test deploy-check fuzz scenario scenarios chromium test-unit test-race lint bench build stack-up stack-down stack-status clean

## build: compile the outlookd binary into bin/. The first build downloads
## and compiles every module (minutes): it says so and counts the packages.
build:
	@if [ -x bin/outlookd ]; then $(GO) build -o bin/outlookd ./cmd/outlookd; else \
	  echo "building bin/outlookd: the first build downloads and compiles its modules (a few minutes on two cores; later builds take seconds)"; \
	  set -o pipefail; $(GO) build -v -o bin/outlookd ./cmd/outlookd 2>&1 | awk \
	    '/^[A-Za-z0-9_.~+-]+(\/[A-Za-z0-9_.~+-]+)*$$/ { if (++n % 100 == 0) { print "  ... " n " packages compiled"; fflush() } next } \
	     /^go: downloading / { if (++d % 25 == 0) { print "  ... " d " modules downloaded"; fflush() } next } { print; fflush() }'; fi

## run: the whole system locally: the stack, graphsim with a demo tenant,
## and outlookd (API and worker), with a walkthrough printed.
## RUN_PROFILE=cluster runs it on the real Temporal server on PostgreSQL.
RUN_PROFILE ?= run
run: build
	@RUN_PROFILE=$(RUN_PROFILE) ./deploy/run.sh

## test: start the test stack (its own ports and data), then every test;
## last, the cluster profile's stack and a scenario on it
test: chromium
	@$(STACK) --profile test up || echo "test stack did not start: integration tests will fail, unit tests still run" >&2
	set -a; [ -f .stack/test/env ] && source .stack/test/env; set +a; \
	OUTLOOKD_REQUIRE_STACK=1 $(GO) test -count=1 -timeout 30m ./...
	$(MAKE) --no-print-directory deploy-check
	$(MAKE) --no-print-directory fuzz FUZZTIME=20000x
	$(GO) run ./deploy/scenario --size 2000 connect-backfill reauth admin-consent disconnect operator-cancel webhook-abuse hostile-input shared-mailboxes contact-filter personal-account credential-expiry group-selection send-exactly-once secrets-scan
	$(STACK) --profile cluster up
	OUTLOOKD_STACK_PROFILE=cluster $(GO) run ./deploy/scenario --size 2000 chaos-replicas

## deploy-check: the deploy/ files (Dockerfile, compose, Helm chart, alert
## rules, dashboard) read by their tools' own parsers. A module of its own
## (deploy/check): Helm, k8s.io/api, compose-go and Prometheus stay out of
## outlookd's build. Its first build compiles them (minutes; docs/deploy.md).
## It builds against this checkout's outlookd (a replace), so a change to
## outlookd's go.mod wants `go mod tidy` in deploy/check as well.
deploy-check:
	cd deploy/check && $(GO) test -count=1 ./...

## scenario: one named end-to-end scenario (NAME=...), from a clean state;
## scenarios: all of them. Each ends with "scenario <name>: PASS lost=0 ...".
## STACK_PROFILE=cluster runs them on the cluster profile instead of the
## test stack: a real Temporal server on PostgreSQL, outlookd as two API
## replicas behind a balancer and two workers.
STACK_PROFILE ?= test
scenario:
	@$(STACK) --profile $(STACK_PROFILE) up >&2
	OUTLOOKD_STACK_PROFILE=$(STACK_PROFILE) $(GO) run ./deploy/scenario $(NAME)
scenarios:
	@$(STACK) --profile $(STACK_PROFILE) up >&2
	OUTLOOKD_STACK_PROFILE=$(STACK_PROFILE) $(GO) run ./deploy/scenario all

## fuzz: the fuzz targets (the request decoder and the Graph notification
## parser), each for FUZZTIME inputs. A count, not a duration: Go 1.26's fuzz
## coordinator can fail a duration-bounded run at its deadline having found
## nothing (go.dev/issue/75804); a count has no deadline to race.
FUZZTIME ?= 500000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeJSON$$' -fuzztime $(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./webhook

## chromium: Debian's chromium, for the browser tests (installed once)
chromium:
	@command -v chromium >/dev/null 2>&1 || { echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

## test-unit: the tests that need no stack (integration tests skip)
test-unit:
	OUTLOOKD_TEST_ENV_FILE=/dev/null $(GO) test -count=1 ./...

## test-race: like test, with the race detector
test-race:
	@$(STACK) --profile test up
	set -a; source .stack/test/env; set +a; \
	OUTLOOKD_REQUIRE_STACK=1 $(GO) test -race -count=1 -timeout 45m ./...

## lint: formatting, vet and staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

## bench: the benchmarks (NAME=<name> for one; BENCHFLAGS=... for the driver's flags);
## one JSON line each on stdout, details on stderr
bench:
	@$(STACK) --profile $(STACK_PROFILE) up >&2
	@OUTLOOKD_STACK_PROFILE=$(STACK_PROFILE) $(GO) run ./deploy/scenario $(BENCHFLAGS) bench $(or $(NAME),all)

stack-up:
	$(STACK) up
stack-down:
	$(STACK) down
stack-status:
	$(STACK) status

## clean: stop the stacks and remove their data (tools stay cached)
clean:
	-$(STACK) down
	-$(STACK) --profile test down
	-$(STACK) --profile cluster down
	rm -rf .stack bin
