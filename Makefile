# Two commands set everything up on a fresh machine:  make repro  and  make test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# TORCH_INDEX: where torch comes from, e.g. https://download.pytorch.org/whl/cpu on a CPU-only CI
# runner (PyPI's Linux wheel pulls gigabytes of CUDA libraries), .../whl/cu128 on a GPU runner.
TORCH_INDEX ?=

.PHONY: setup setup-dev repro test test-fast coverage figures lint docs docs-build ui dag prefect-setup clean-venv

## setup: create .venv and install the pinned runtime dependencies (idempotent)
setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	if [ -n "$(TORCH_INDEX)" ]; then $(BIN)/python -m pip install --quiet --index-url "$(TORCH_INDEX)" "torch==2.13.0"; fi
	$(BIN)/python -m pip install --quiet -c constraints.txt -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

## setup-dev: the runtime set plus the test and lint tools (requirements-dev.txt)
setup-dev: $(DEV_STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -r requirements-dev.txt
	touch $(DEV_STAMP)

## repro: run the pipeline (dvc repro) on FSDD
repro: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro

## test: run the test suite, on two workers (pytest-xdist; PYTEST_WORKERS=0 runs it in one process)
PYTEST_WORKERS ?= 2
test: setup-dev
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

## test-fast: the unit tests alone (no `slow` or `heavy` test: no server, no `dvc repro`, no tiny
## pipeline), for the edit-run loop; `make test` still runs everything
test-fast: setup-dev
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal -m "not slow and not heavy" $(PYTEST_ARGS)

## coverage: `make test` measuring line coverage of src/ and pipeline/ (the stages that tests run
## as `dvc` subprocesses are not counted: only what the test processes execute)
coverage: setup-dev
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal --cov=audiovae --cov=pipeline --cov-report=term:skip-covered $(PYTEST_ARGS)

## figures: rewrite every table the README and docs/ include from the file that wrote it
## (benchmarks/figures.py; after a benchmark or `make repro`; tests/test_figures.py checks them)
figures: setup
	$(BIN)/python benchmarks/figures.py

## lint: ruff (rules in pyproject.toml: pyflakes, imports sorted and placed, aliases, bare excepts)
## and the type checker mypy on src/ and pipeline/ (pyproject's [tool.mypy])
lint: setup-dev
	$(BIN)/ruff check src tests pipeline benchmarks
	$(BIN)/mypy

## docs: serve the documentation site (docs/, mkdocs.yml) on http://127.0.0.1:8000
docs: setup-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

## docs-build: build it into site/; a broken link or an orphan page fails (CI runs this)
docs-build: setup-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## ui: open the MLflow UI over the local store on http://127.0.0.1:5000
## (the link opens the experiment on its runs: MLflow 3 otherwise starts on its GenAI pages)
ui: setup
	@$(BIN)/python -c "import mlflow; mlflow.set_tracking_uri('sqlite:///mlflow.db'); \
	e = mlflow.get_experiment_by_name('audiovae'); \
	print('open http://127.0.0.1:5000/#/experiments/%s/runs?workflowType=machine_learning' % (e.experiment_id if e else 0))"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

## prefect-setup: on the Prefect server at $$PREFECT_API_URL: the `gpu` process pool, a concurrency
## limit of GPUS on the `gpu` tag, and the deployments of prefect.yaml (no path: each worker runs its own clone)
GPUS ?= 1
prefect-setup: setup
	$(BIN)/prefect work-pool create gpu --type process --overwrite
	$(BIN)/prefect concurrency-limit create gpu $(GPUS)
	$(BIN)/prefect --no-prompt deploy --all

dag: setup
	$(BIN)/dvc dag

clean-venv:
	rm -rf $(VENV)
