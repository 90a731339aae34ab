# Two commands on a fresh machine, each setting up what it needs on first use:
#
#     make study     # create .venv (first time), then run the default study -> results/report.html
#     make test      # the same environment, then the test suite
#
# The environment is a virtualenv in .venv with the versions the tests use (constraints.txt);
# it is made again only when pyproject.toml or constraints.txt change. Extra arguments go to
# Snakemake or pytest through ARGS, e.g. `make study ARGS="--configfile config/mnist5k.yaml"`
# or `make test ARGS="-k closeness"`. People who manage their own environment run the
# commands below by hand (README, "Quick start").

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
READY := $(VENV)/.ready
# Test processes (pytest-xdist): the SLURM and tiny-study tests run in one, the rest beside it.
TEST_WORKERS ?= 2

.PHONY: study test lint env

study: $(READY)
	$(BIN)/snakemake --cores all $(ARGS)

test: $(READY)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup $(ARGS)

lint: $(READY)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --cores 1

env: $(READY)

$(READY): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
		"Python 3.11 or newer is needed; run make with PYTHON=python3.11 (or another)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[workflow,dev,bench]"
	touch $@
