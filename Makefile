# kops: the two commands of the README, and a few helpers.
#   make up    venv + kops, Docker engine, Kafka image, then the default cluster
#   make test  everything the suite needs, then the whole suite (unit, integration, e2e)
SHELL := /bin/bash
VENV ?= .venv
KOPS := $(VENV)/bin/kops
PYTEST_ARGS ?=

.PHONY: up test setup unit down golden bench clean

setup:
	bash scripts/setup.sh

up:
	bash scripts/setup.sh --up
	@echo "kops is $(VENV)/bin/kops: run 'source $(VENV)/bin/activate' to type just 'kops'" >&2
	$(KOPS) up

down:
	$(KOPS) down

# Test files run in parallel (pytest-xdist, whole files per worker: a module's cluster is
# shared by its tests). Every cluster of the suite has a name and ports of its own.
JOBS ?= 3
test: setup
	$(VENV)/bin/python -m pytest -n $(JOBS) --dist loadfile --durations=15 $(PYTEST_ARGS)

unit:
	bash scripts/setup.sh --python-only
	$(VENV)/bin/python -m pytest -n 2 tests/unit $(PYTEST_ARGS)

golden:
	$(VENV)/bin/python -m pytest tests/unit/test_golden.py --update-golden

# On an otherwise idle machine: kops vs compose (fixed preset ports), then kops vs the bare
# JVM, memory, status and SSH scale (ports and names of their own). Appends to bench/RESULTS.md.
bench: setup
	$(VENV)/bin/python bench/bench_up.py
	$(VENV)/bin/python bench/bench_ci.py

clean:
	rm -rf $(VENV) build dist *.egg-info
