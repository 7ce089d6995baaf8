# coeo portal. `make run` serves the portal on http://127.0.0.1:5000 with demo accounts;
# `make test` runs the test suite (again on PostgreSQL when TEST_DATABASE_URL is set).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
STAMP := $(VENV)/.installed
# Test files run in parallel, one whole file per worker (pytest-xdist); each worker has its
# own SQLite files and, on PostgreSQL, its own database. TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

.PHONY: run test lint install lock serve demo-code clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Dependencies come from the hash-pinned lock file; the project itself is installed on top.
$(STAMP): $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $(STAMP)

# Refresh the lock after changing dependencies in pyproject.toml.
lock: $(BIN)/python
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --extra dev --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml

install: $(STAMP)

run: $(STAMP)
	$(FLASK) db upgrade
	$(FLASK) portal seed-demo
	$(FLASK) portal policies init
	@echo "Serving the portal on http://127.0.0.1:5000 (Ctrl-C to stop)"
	$(FLASK) run --host 127.0.0.1 --port 5000

# The production configuration on this machine: gunicorn, PostgreSQL and Redis (see README,
# "Running it in production"). Keys come from the environment or instance/prod-keys.env.
serve: $(STAMP)
	$(BIN)/python -m portal.ops.serve

test: $(STAMP)
	@$(BIN)/python scripts/ensure_chromium.py
	env -u TEST_DATABASE_URL $(PYTEST)
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== again on PostgreSQL ($$TEST_DATABASE_URL)"; \
		$(PYTEST); \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/bandit -q -ll -c pyproject.toml -r portal

demo-code: $(STAMP)
	@$(FLASK) portal demo-code $(EMAIL)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
