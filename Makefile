# Every target installs what it needs, idempotently, on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The request hot path compiled with mypyc (setup.py's HOT_PATH), in a copy of the package that is
# put first on PYTHONPATH: the editable install stays pure Python, so no stale C extension ever
# shadows a source file being edited.
COMPILED := build/compiled
COMPILED_STAMP := $(COMPILED)/.built

RUNTIME := $(VENV)/.runtime
# What `make run` serves: the package as `pip install .` builds it (hot path compiled when a C
# compiler and Python.h are here; build isolation brings mypy), installed into this folder, which
# run puts first on PYTHONPATH (and runs its own console script, so the venv needs only the
# runtime dependencies, not the package).
RUN_TREE := build/run
RUN_STAMP := $(RUN_TREE)/.built


.PHONY: run dev test lint types unit compiled dist system-deps bench chaos h2-soak clean

# `make run`: aioprefork and its runtime dependencies only (no test tools), then hello.
$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $(RUNTIME)

# `make dev` (and every target that tests): the runtime plus the test extra's tools and apps.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'setuptools>=77'
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP) $(RUNTIME)

dev: $(STAMP)

# System packages the tests drive for real (wrk for load). Skipped when already present.
system-deps:
	@command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq wrk; fi; }
	@command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; fi; }
	@# the chaos suite's slow-client attacks (bench/chaos/run.py)
	@command -v slowhttptest >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slowhttptest; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slowhttptest; fi; }
	@# HTTP/2 client tests and bench: curl (--http2-prior-knowledge), nghttp and h2load (nghttp2-client)
	@for t in curl nghttp h2load; do command -v $$t >/dev/null || missing=1; done; \
	  [ -z "$$missing" ] || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl nghttp2-client; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl nghttp2-client; fi; }
	@# deploy tests: HAProxy, podman (image build + run), mmdebstrap (base rootfs), systemd-socket-activate;
	@# iptables for netavark (podman's network: RUN steps and published ports), only Suggested by Debian
	@for t in haproxy podman buildah runc mmdebstrap systemd-socket-activate iptables; do command -v $$t >/dev/null || missing=1; done; \
	  [ -z "$$missing" ] || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy podman buildah runc netavark iptables mmdebstrap systemd; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy podman buildah runc netavark iptables mmdebstrap systemd; fi; }

$(COMPILED_STAMP): $(STAMP) setup.py $(shell find aioprefork -name '*.py')
	rm -rf $(COMPILED) && mkdir -p $(COMPILED)
	cp -r aioprefork $(COMPILED)/ && find $(COMPILED) -name __pycache__ -prune -exec rm -rf {} +
	cd $(COMPILED) && AIOPREFORK_MYPYC=1 $(abspath $(PY)) $(abspath setup.py) -q build_ext --inplace
	touch $@

compiled: $(COMPILED_STAMP)

$(RUN_STAMP): $(RUNTIME) setup.py pyproject.toml $(shell find aioprefork -name '*.py')
	rm -rf $(RUN_TREE)
	$(PY) -m pip install -q --no-deps --target $(RUN_TREE) .
	touch $@

run: $(RUNTIME) $(RUN_STAMP)
	PYTHONPATH=$(abspath $(RUN_TREE)) $(RUN_TREE)/bin/aioprefork serve examples.hello:app --host 127.0.0.1 --port 8000

# The sdist and, built from it, a compiled wheel for this platform; then the wheel installed into
# a fresh venv must report the compiled build and serve (tests/deploy/test_dist.py).
dist: $(STAMP)
	rm -rf dist
	$(PY) -m build --outdir dist .
	AIOPREFORK_DIST_DIR=$(abspath dist) $(PY) -m pytest -q -p no:cacheprovider tests/deploy/test_dist.py

lint: $(STAMP)
	$(VENV)/bin/ruff check aioprefork tests bench examples
	$(VENV)/bin/ruff format --check aioprefork tests bench examples

# mypy --strict over the package, then over the tests (a second run: tests/ is not a package, so
# its folders are mapped from the tests/ base; pyproject.toml's overrides say what is not checked)
types: $(STAMP)
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --explicit-package-bases tests

# The fast tier: pure decisions over plain data, no loop, socket or process (tests/conftest.py)
unit: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m pure tests

test: $(STAMP) system-deps lint types $(COMPILED_STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests
	@# the same request-path tests against the mypyc build (what a wheel built with AIOPREFORK_MYPYC=1 runs),
	@# and the operator views that walk the compiled coroutines (request_timeout reports, ctl dump)
	@# (the pytest script, not `python -m pytest`, which would put the source tree first on sys.path)
	AIOPREFORK_EXPECT_COMPILED=1 PYTHONPATH=$(abspath $(COMPILED)) $(VENV)/bin/pytest -q -p no:cacheprovider \
	  tests/http tests/http/pathsend tests/http/websocket tests/tls tests/http2 tests/wire/test_target.py tests/http/test_connstate.py \
	  tests/master/test_request_timeout.py tests/master/test_requests.py tests/master/test_dump.py

bench: $(STAMP) system-deps $(COMPILED_STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/run.py

# The reliability audit as a run (not part of `make test`: about 7 minutes; its --quick subset is,
# through tests/bench/test_chaos.py): faults, storms, leaks and hostile clients, with figures.
chaos: $(STAMP) system-deps
	$(PY) bench/chaos/run.py

# One HTTP/2 connection carrying 1,000,000 streams (tests/http2 runs 20,000): failures and RSS.
h2-soak: $(STAMP) system-deps $(COMPILED_STAMP)
	$(PY) bench/h2.py --soak 1000000

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache
