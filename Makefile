# relaychat — the two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench bench-web bench-cluster clean venv soak-delivery \
	screenshots bench-uploads fuzz soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/relaychat serve $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests fuzz benchmarks
	$(BIN)/ruff format --check src tests fuzz benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q -n 2 tests

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache

# --- benchmarks (docs/benchmarks.md) -----------------------------------------------------------
# `make bench` sets up what the benchmark needs (the C load generator, miniircd and py-spy in the
# venv, ngircd from Debian when missing), then runs every workload against relaychat, ngircd and
# miniircd. `make bench BENCH_ARGS=--quick` is a one-minute smoke run.
BENCH_ARGS  ?=
LOADGEN     := benchmarks/build/loadgen
BENCH_STAMP := $(VENV)/.bench-installed

$(LOADGEN): benchmarks/loadgen.c
	@command -v gcc >/dev/null 2>&1 || { echo "bench: gcc is needed (apt-get install gcc)"; exit 2; }
	mkdir -p $(dir $@)
	gcc -O2 -Wall -Wextra -o $@ $<

$(BENCH_STAMP): $(STAMP) benchmarks/requirements.txt
	$(BIN)/python -m pip install --quiet -r benchmarks/requirements.txt
	touch $@

bench: $(BENCH_STAMP) $(LOADGEN)
	@if ! command -v ngircd >/dev/null 2>&1 && [ ! -x /usr/sbin/ngircd ]; then \
		echo "bench: installing ngircd (Debian package) ..."; \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq ngircd >/dev/null || \
		echo "bench: could not install ngircd; it will be skipped"; \
		if command -v systemctl >/dev/null 2>&1; then \
			$$SUDO systemctl disable --now ngircd >/dev/null 2>&1 || true; \
		fi; \
	fi
	@command -v taskset >/dev/null 2>&1 || { echo "bench: taskset is needed (util-linux)"; exit 2; }
	ulimit -n $$(ulimit -Hn) && $(BIN)/python benchmarks/bench.py $(BENCH_ARGS)
	ulimit -n $$(ulimit -Hn) && $(BIN)/python benchmarks/web_bench.py $(WEB_BENCH_ARGS)
	$(MAKE) bench-cluster

# IRC over WebSocket against relaychat's own TCP (W3 fan-out, W2 idle RSS); part of `make bench`.
WEB_BENCH_ARGS ?=
bench-web: $(BENCH_STAMP) $(LOADGEN)
	ulimit -n $$(ulimit -Hn) && $(BIN)/python benchmarks/web_bench.py $(WEB_BENCH_ARGS)

# --- the exactly-once soak (docs/delivery.md) --------------------------------------------------
# `make test` runs a bounded pass (20,000 messages, 1,000 faults, 2 kill -9 of the server);
# this runs a long one and prints its numbers. Sizes: SOAK_MESSAGES, SOAK_FAULTS, SOAK_SENDERS,
# SOAK_KILLS (the report is also appended to benchmarks/results/soak-delivery.jsonl).
SOAK_MESSAGES ?= 100000
SOAK_FAULTS   ?= 5000
SOAK_SENDERS  ?= 10
SOAK_KILLS    ?= 5

soak-delivery: $(STAMP)
	mkdir -p benchmarks/results
	RELAYCHAT_SOAK_MESSAGES=$(SOAK_MESSAGES) RELAYCHAT_SOAK_FAULTS=$(SOAK_FAULTS) \
	RELAYCHAT_SOAK_SENDERS=$(SOAK_SENDERS) RELAYCHAT_SOAK_KILLS=$(SOAK_KILLS) \
	RELAYCHAT_SOAK_DEADLINE=3600 RELAYCHAT_SOAK_REPORT=benchmarks/results/soak-delivery.jsonl \
		$(BIN)/pytest -q -s -p no:xdist tests/integration/test_delivery_soak.py

# The README's pictures of the web client (docs/web-desktop.png, docs/web-mobile.png), taken in
# Debian's Chromium (apt-get install chromium).
screenshots: $(STAMP)
	$(BIN)/python docs/screenshots.py

# Upload and download rates of the file host (POST /upload) over loopback (docs/web.md).
UPLOAD_BENCH_ARGS ?= --size 200 --repeat 3
bench-uploads: $(STAMP)
	$(BIN)/python benchmarks/upload_rates.py $(UPLOAD_BENCH_ARGS)

# One process against two cluster nodes on NATS JetStream (docs/cluster.md); part of `make bench`.
# Installs Debian's nats-server when missing.
CLUSTER_BENCH_ARGS ?=
bench-cluster: $(BENCH_STAMP) $(LOADGEN)
	@if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then \
		echo "bench: installing nats-server (Debian package) ..."; \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nats-server >/dev/null || \
		echo "bench: could not install nats-server"; \
		if command -v systemctl >/dev/null 2>&1; then \
			$$SUDO systemctl disable --now nats-server >/dev/null 2>&1 || true; \
		fi; \
	fi
	ulimit -n $$(ulimit -Hn) && $(BIN)/python benchmarks/cluster_bench.py $(CLUSTER_BENCH_ARGS)

# --- fuzzing (docs/fuzzing.md) -----------------------------------------------------------------
# `make fuzz FUZZ_TIME=600` runs the atheris (libFuzzer) targets: the parser for a quarter of the
# time, then the whole core. The corpus grows in $(FUZZ_DIR) (seeded from fuzz/corpus), and a
# finding is saved there as crash-* (replay: PYTHONPATH=. .venv/bin/python -m fuzz.fuzz_core FILE).
FUZZ_TIME ?= 60
FUZZ_DIR  ?= .fuzz
FUZZ_ARGS ?=

fuzz: $(STAMP)
	@$(BIN)/python -c 'import atheris' 2>/dev/null || { echo "fuzz: atheris is not installed (pip install atheris)"; exit 2; }
	mkdir -p $(FUZZ_DIR)/core $(FUZZ_DIR)/parser
	PYTHONPATH=. $(BIN)/python -m fuzz.fuzz_parser -max_total_time=$$(( $(FUZZ_TIME) / 4 + 1 )) \
		-artifact_prefix=$(FUZZ_DIR)/ $(FUZZ_ARGS) $(FUZZ_DIR)/parser fuzz/corpus/parser
	PYTHONPATH=. $(BIN)/python -m fuzz.fuzz_core -max_total_time=$(FUZZ_TIME) -max_len=4096 \
		-artifact_prefix=$(FUZZ_DIR)/ $(FUZZ_ARGS) $(FUZZ_DIR)/core fuzz/corpus/core

# --- soak (docs/soak.md) -------------------------------------------------------------------------
# `make soak` runs 1,000 clients for 30 minutes against a real server and checks that its RSS and
# descriptors stay flat and that every message is accounted for; SOAK_ARGS="--duration 600" etc.
SOAK_ARGS ?=

soak: $(STAMP)
	$(BIN)/python benchmarks/soak.py $(SOAK_ARGS)
# The attack workload of issue 17 alone (relaychat with its default limits; no C generator
# needed): `make bench-attack BENCH_ARGS='--attacks oper,list --duration 5'`.
.PHONY: bench-attack
bench-attack: $(STAMP)
	$(BIN)/python benchmarks/attack_bench.py $(BENCH_ARGS)
