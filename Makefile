# The commands a fresh machine needs: `make demo`, `make test` (the fast tier) and `make test-all`.
# Each sets itself up.
VENV := .venv/bin
SNAKEMAKE := $(VENV)/snakemake
# Extra flags for the peer benchmarks, e.g. make bench-peers BENCH_FLAGS=--quick
BENCH_FLAGS ?=

.PHONY: setup demo test test-all lint bench bench-full bench-peers clean-demo lock

setup:
	@bash tools/setup.sh

demo: setup
	$(SNAKEMAKE) --cores all --configfile config/demo.yaml
	$(SNAKEMAKE) --configfile config/demo.yaml --report results/demo/report.html
	$(VENV)/python -m protsae findings results/demo
	@echo "Report: $(CURDIR)/results/demo/report.html"
	@echo "Feature browser: file://$(CURDIR)/results/demo/browser/index.html"

# PROTSAE_REQUIRE_OPTIONAL: tests of optional packages (sae-lens, polars) fail instead of skipping.
# `make test`: everything except the tests marked heavy (whole-workflow runs, the finished demo,
# the real SLURM cluster); `make test-all`: every test, heavy ones included (what CI runs).
test: setup
	PROTSAE_REQUIRE_OPTIONAL=1 $(VENV)/python -m pytest -q -m "not heavy"

test-all: setup
	PROTSAE_REQUIRE_OPTIONAL=1 $(VENV)/python -m pytest -q

lint: setup
	$(VENV)/ruff check src tests workflow benchmarks
	$(VENV)/ruff format --check src tests workflow benchmarks
	$(VENV)/snakefmt --check .
	$(SNAKEMAKE) --lint --configfile config/demo.yaml

# Benchmarks (docs/performance.md): `make bench` is the quick tier, every benchmarks/bench_*.py
# with --quick (reduced sizes, the same ratios; <= 15 min on 2 cores); `make bench-full` runs
# the full sizes (over an hour on 2 cores). `make bench-peers` sets up .venv-peers and
# .venv-faesm (tools/setup_peers.sh) and runs protsae against the libraries in
# benchmarks/peers/requirements-*.txt.
bench: setup
	@for script in benchmarks/bench_*.py; do \
		echo "== $$script --quick"; \
		$(VENV)/python $$script --quick || exit 1; \
	done

bench-full: setup
	@for script in benchmarks/bench_*.py; do \
		echo "== $$script"; \
		$(VENV)/python $$script || exit 1; \
	done

bench-peers:
	@bash tools/setup_peers.sh
	@for pair in .venv-peers:benchmarks/peers/sae.py .venv-faesm:benchmarks/peers/extraction.py; do \
		env=$${pair%%:*}; script=$${pair#*:}; \
		echo "== $$script ($$env)"; \
		if [ -x $$env/bin/python ]; then $$env/bin/python $$script $(BENCH_FLAGS) || exit 1; \
		else echo "PEER NOT RUN: $$env could not be created (tools/setup_peers.sh)"; fi; \
	done

clean-demo:
	rm -rf results/demo

# Regenerate constraints.txt and envs/*.yaml from the tested .venv (after adding a dependency).
lock:
	$(VENV)/python tools/lock.py
