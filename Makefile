# mfae — make targets. `make all` runs the default study; `make test` runs the test suite.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= 2

.PHONY: all install test test-fast test-cluster lint report bench clean

all: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --profile profiles/default --cores $(CORES)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --profile profiles/default --cores $(CORES) --report results/report.html

# The venv is rebuilt only when the project's dependency files change.
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[workflow,test]'
	touch $@

test: install
	$(BIN)/pytest -q

# SLURM integration test: needs root; installs Debian's slurm packages and writes /etc/slurm.
test-cluster: install
	$(BIN)/pytest -q -m slurm -p no:cacheprovider tests/cluster

# Workflow style (snakefmt, black's defaults) and Snakemake's own linter; `$(BIN)/snakefmt $(SMK)` fixes the first.
SMK := Snakefile $(wildcard workflow/rules/*.smk)
lint: install
	$(BIN)/snakefmt --check $(SMK)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint --cores 1

report: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --profile profiles/default --report results/report.html

bench: install
	$(BIN)/python bench/bench_train.py

clean:
	rm -rf results .snakemake
