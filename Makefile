# mfae — make targets. `make all` runs the default study; `make test` runs the test suite.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= 2
# every Snakemake run of the targets below: this venv's tools first on PATH (the jobs' `mfae`), the local profile
SNAKEMAKE = PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --profile profiles/local --cores $(CORES)

.PHONY: all install test test-long test-fast mutate test-cluster test-data gpu-check lint report bench paper-smoke images images-offline intrinsic intrinsic-fashion clean

all: install
	$(SNAKEMAKE)
	$(SNAKEMAKE) --report results/report.html

# The venv is rebuilt only when the project's dependency files change.
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[workflow,test]'
	touch $@

# -rs: every skipped test says why (no CUDA, no Debian Fashion-MNIST, not root, ...). The whole-workflow
# checks of minutes (marked long: every README command started, the variant study, odd paths) are
# `make test-long`; CI runs both.
test: install
	$(BIN)/pytest -q -rs

test-long: install
	$(BIN)/pytest -q -rs -m long

# The fast suite: everything but the end-to-end workflow runs (marked slow); what `make mutate` runs.
# (-m replaces pyproject's `-m 'not slurm'`, so slurm is excluded here again.)
test-fast: install
	$(BIN)/pytest -q -rs -m "not slow and not slurm and not long"

# Mutation check (docs/testing.md): one-line bugs planted in the core modules one at a time, the fast
# suite's files that use the module run against each; prints killed/survived and the score. A seeded
# sample of 120 mutants, ~12 minutes on 2 idle cores; `make mutate MUTATE_ARGS="--sample 0"` runs all ~1700.
MUTATE_ARGS ?=
mutate: install
	$(BIN)/python tests/mutation/mutate.py $(MUTATE_ARGS)

# Every job of config/paper.yaml at its real d and N on CPU, cut short (config/paper-smoke.yaml; about
# 11 minutes on 2 idle cores). Needs Fashion-MNIST in /usr/share/datasets/fashion-mnist (`make test-data`).
# Prints the wall time and the sum of the jobs' times (from results/paper-smoke/benchmarks).
paper-smoke: install
	@start=$$(date +%s); \
	$(SNAKEMAKE) --configfile config/paper.yaml config/paper-smoke.yaml && \
	echo "paper-smoke: $$(( $$(date +%s) - start )) s wall on $(CORES) cores;" \
	  "sum of job times $$(cat $$(find results/paper-smoke/benchmarks -name '*.tsv') | awk '$$1 != "s" {t += $$1} END {printf "%.0f", t}') s"

# The image study (MNIST and Fashion-MNIST at d = 784; config/images.yaml); downloads the data on first use.
images: install
	$(SNAKEMAKE) --configfile config/images.yaml

# The same study without internet: Fashion-MNIST from Debian's package for both experiments
# (config/images-offline.yaml says why); prints the wall time.
images-offline: install
	@start=$$(date +%s); \
	$(SNAKEMAKE) --configfile config/images.yaml config/images-offline.yaml && \
	echo "images-offline: $$(( $$(date +%s) - start )) s wall on $(CORES) cores"

# N* against the intrinsic dimension on the digits (config/intrinsic.yaml; docs/convergence.md); prints the
# wall time and the verdict.
intrinsic: install
	@start=$$(date +%s); \
	$(SNAKEMAKE) --configfile config/intrinsic.yaml && \
	echo "intrinsic: $$(( $$(date +%s) - start )) s wall on $(CORES) cores" && \
	cat results/intrinsic/intrinsic_digits/intrinsic_verdict.txt

# The same on Fashion-MNIST at d = 784 (config/intrinsic-fashion.yaml, ~30 min on 2 cores); reads Debian's
# files (make test-data) offline.
intrinsic-fashion: install test-data
	@start=$$(date +%s); \
	$(SNAKEMAKE) --configfile config/intrinsic.yaml config/intrinsic-fashion.yaml && \
	echo "intrinsic-fashion: $$(( $$(date +%s) - start )) s wall on $(CORES) cores" && \
	cat results/intrinsic-fashion/intrinsic_fashion_mnist/intrinsic_verdict.txt

# Fashion-MNIST's IDX files from Debian/Ubuntu (/usr/share/datasets/fashion-mnist) for the tests and
# `make paper-smoke`; needs root and apt. Without them those tests are skipped (saying why).
test-data:
	@if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then echo "Fashion-MNIST present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	else echo "make test-data: needs root and apt-get (apt-get install dataset-fashion-mnist); skipping" >&2; fi

# SLURM integration test: needs root; installs Debian's slurm packages and writes /etc/slurm.
test-cluster: install test-data
	$(BIN)/pytest -q -m slurm -p no:cacheprovider tests/cluster

# On a GPU node, before the study (README "Run it on your cluster", step 3): the same small batch on CPU,
# CUDA eager and CUDA graphs (curves compared, steps/s), the CUDA tests, then this node's CUDA rates for
# the plan. Without a GPU it says so in one line and stops (exit 2).
gpu-check: install
	$(BIN)/mfae gpu-check
	$(BIN)/pytest -q -rs -k cuda tests/test_perf_paths.py
	$(BIN)/mfae plan --calibrate --device cuda

# Python (ruff: pyflakes, import order, bugbear; pyproject.toml), workflow style (snakefmt, black's defaults)
# and Snakemake's own linter. `$(BIN)/ruff check --fix src tests bench` and `$(BIN)/snakefmt $(SMK)` fix most.
SMK := Snakefile $(wildcard workflow/rules/*.smk)
lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/snakefmt --check $(SMK)
	$(SNAKEMAKE) --lint

report: install
	$(SNAKEMAKE) --report results/report.html

bench: install
	$(BIN)/python bench/bench_train.py

clean:
	rm -rf results .snakemake
