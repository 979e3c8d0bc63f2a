# svcnet: `make run` starts a one-node cluster, `make test` runs every check CI runs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DATA   ?= ./data

.PHONY: run test lint unit bench clean venv system-deps

# setup.py builds the C relay core in place; a change to it rebuilds.
$(VENV)/.installed: pyproject.toml setup.py src/svcnet/proxy/dataplanes/_relaycore.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/svcnet up --data-dir $(DATA)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: $(VENV)/.installed-test
	$(VENV)/bin/pytest -q

# Tools the pod runtimes and the tests use from the host; installed when missing and root
# (CI), otherwise the tests that need them skip with a reason.
SYSTEM_TOOLS := ip:iproute2 curl:curl sysctl:procps unshare:util-linux dig:dnsutils
# The benchmarks' anchors and load generators.
BENCH_TOOLS := dnsperf:dnsperf dnsmasq:dnsmasq-base nginx:nginx-light haproxy:haproxy wrk:wrk
system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS) $(EXTRA_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing:$$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

test: system-deps lint unit

bench: $(VENV)/.installed-test
	@$(MAKE) --no-print-directory system-deps EXTRA_TOOLS="$(BENCH_TOOLS)"
	$(PY) bench/api/run.py
	$(PY) bench/endpoints/run.py
	$(PY) bench/agent/run.py
	$(PY) bench/dns/run.py
	$(PY) bench/proxy/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build
	rm -f src/svcnet/proxy/dataplanes/*.so
