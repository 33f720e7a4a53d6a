# HCP Twin — set up, simulate, test. Needs only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCENARIO ?= scenarios/baseline.yaml
OUT ?= results/baseline

.PHONY: setup run test suite lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,optimizer,drivers,live,service,dashboards,cluster]'
	touch $(STAMP)

run: setup
	$(BIN)/python run.py simulate $(SCENARIO) --out $(OUT)

# The service tests run on SQLite and on a real PostgreSQL server: scripts/postgres_test_url.sh
# gives its URL (starting Debian's postgresql, installing it when run as root).
test: setup lint
	scripts/system_packages.sh
	HCP_TEST_POSTGRES_URL="$$(scripts/postgres_test_url.sh)" $(BIN)/python -m pytest -q

# The CI scenario suite: KPIs of shortened library scenarios against recorded values.
suite: setup
	$(BIN)/python run.py suite scenarios/suites/ci.yaml --quiet \
		--junit results/ci-junit.xml --summary results/ci-summary.md

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python benchmarks/prd_scale_day.py
	$(BIN)/python benchmarks/baseline_year.py

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache .mypy_cache
