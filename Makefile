# One gate, the same locally and in CI: `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench chaos clean fmt

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ssi demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no tests collected: failing"; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check scoring state streams tests bench
	$(BIN)/ruff format --check scoring state streams tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format scoring state streams tests bench
	$(BIN)/ruff check --fix scoring state streams tests bench

bench: $(STAMP)
	$(BIN)/python -m bench.run

chaos: $(STAMP)
	SSI_CHAOS_FULL=1 $(BIN)/python -m pytest -q -p no:cacheprovider -m chaos tests/integration

clean:
	rm -rf $(VENV) build *.egg-info
