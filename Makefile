# Developer tasks for workpool.
#
# Each target works on a machine that has nothing but Python 3.10+: the first
# run creates .venv and installs workpool with its `dev` extra (tests, linters,
# type checkers, docs, benchmark peers).  The install is redone only when
# pyproject.toml changes, tracked by a stamp file inside .venv.
#
#   make demo    run the demo (leaky hand-written workers vs a Pool)
#   make test    run the test suite
#   make lint    ruff check + ruff format --check
#   make types   mypy and pyright (strict on src/), pyright --verifytypes
#   make docs    build the documentation with mkdocs --strict into site/
#   make bench   run the benchmarks
#   make ci      lint, types, docs and test: what .ci/run runs
#
# Use another interpreter with `make PYTHON=python3.12 ...` (only read when
# .venv is created).  Pass arguments to pytest with `make test ARGS='-k map'`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.workpool-dev-installed
# Only the directories that exist: a fresh checkout may not have all of them yet.
LINT_PATHS := $(wildcard src tests benchmarks docs/examples)
ARGS ?=
# Tools that look for "python" on PATH (pyright, which otherwise cannot see the
# packages installed in .venv) run with .venv/bin first, as if it were activated.
IN_VENV := PATH="$(CURDIR)/$(BIN):$$PATH"

.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
.PHONY: help demo test lint types docs bench ci clean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

# The interpreter check runs before the venv exists, so a too-old python3
# gives one clear line instead of a failed install.
$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || { \
		echo "error: workpool needs Python 3.10 or newer; '$(PYTHON)' is not (try: make PYTHON=python3.12 ...)" >&2; \
		exit 1; }
	@echo "==> creating $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV) || { \
		rm -rf $(VENV); \
		echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu install the python3-venv package" >&2; \
		exit 1; }

# pip is upgraded first because the pip bundled with early 3.10 releases cannot
# do editable installs of a pyproject.toml-only project.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "==> installing workpool[dev] into $(VENV)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

demo: $(STAMP)
	$(BIN)/python -m workpool demo

test: $(STAMP)
	@echo "==> test"
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP)
	@echo "==> lint"
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

types: $(STAMP)
	@echo "==> types"
	$(BIN)/mypy
	$(IN_VENV) $(BIN)/pyright
	$(IN_VENV) $(BIN)/pyright --verifytypes workpool --ignoreexternal

docs: $(STAMP)
	@echo "==> docs"
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(ARGS)

ci: lint types docs test

# Leaves .venv alone; `rm -rf .venv` starts from scratch.
clean:
	rm -rf site build dist .mypy_cache .ruff_cache .pytest_cache .hypothesis
