# The two commands of the README, and the steps they share.
VENV ?= .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install quickstart test lint bench

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# The main job on embedded defaults: Olist data, a live PostgreSQL source, every layer; prints where to look.
quickstart: $(STAMP)
	$(VENV)/bin/medallion quickstart

# Lint, then every test (real PostgreSQL, real files; nothing mocked).
test: $(STAMP) lint
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check medallion_assets medallion_assets_tests bench
	$(VENV)/bin/ruff format --check medallion_assets medallion_assets_tests bench

bench: $(STAMP)
	$(VENV)/bin/python bench/benchmark.py --scale $(or $(SCALE),1)
