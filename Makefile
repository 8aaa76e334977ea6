# Every target installs what it needs, idempotently, on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint types unit system-deps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# System packages the tests drive for real (wrk for load). Skipped when already present.
system-deps:
	@command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq wrk; fi; }
	@command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; fi; }
	@# deploy tests: HAProxy, podman (image build + run), mmdebstrap (base rootfs), systemd-socket-activate
	@for t in haproxy podman buildah runc mmdebstrap systemd-socket-activate; do command -v $$t >/dev/null || missing=1; done; \
	  [ -z "$$missing" ] || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy podman buildah runc netavark mmdebstrap systemd; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy podman buildah runc netavark mmdebstrap systemd; fi; }

run: $(STAMP)
	$(VENV)/bin/aioprefork serve examples.hello:app --host 127.0.0.1 --port 8000

lint: $(STAMP)
	$(VENV)/bin/ruff check aioprefork tests bench examples
	$(VENV)/bin/ruff format --check aioprefork tests bench examples

types: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q tests

test: $(STAMP) system-deps lint types
	$(PY) -m pytest -q -p no:cacheprovider tests

bench: $(STAMP) system-deps
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache
