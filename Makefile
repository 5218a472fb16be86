# Two commands set everything up on a fresh machine:  make repro  and  make test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup repro test lint ui dag clean-venv

## setup: create .venv and install the pinned dependencies (idempotent)
setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

## repro: run the pipeline (dvc repro) on FSDD
repro: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro

## test: run the test suite
test: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest $(PYTEST_ARGS)

## lint: ruff (pyflakes rules: unused and undefined names)
lint: setup
	$(BIN)/ruff check --select F src tests pipeline benchmarks

## ui: open the MLflow UI over the local store on http://127.0.0.1:5000
ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

dag: setup
	$(BIN)/dvc dag

clean-venv:
	rm -rf $(VENV)
