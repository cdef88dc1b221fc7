# Set-up and everyday targets. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast docs docs-serve lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,docs]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/musclestate demo

# The full suite, as CI runs it: lint, the documentation built strictly, every test.
test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples docs/_hooks
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir $(VENV)/site
	$(PY) -m pytest -q -n 2 --dist loadfile

# The fast part, while developing: tests not marked slow.
test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow"

# The documentation site: `make docs` writes site/, `make docs-serve` previews it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples docs/_hooks
	$(VENV)/bin/ruff format --check src tests benchmarks examples docs/_hooks

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks examples docs/_hooks
	$(VENV)/bin/ruff check --fix src tests benchmarks examples docs/_hooks

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) demo-output site .pytest_cache .ruff_cache
