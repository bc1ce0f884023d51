# Two entry points for a fresh machine: `make demo` (main job) and `make test`.
# Each creates .venv and installs the pinned toolchain on first use.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench clean

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found (hwgen needs CPython 3.11)"; exit 1; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e '.[dev,sweep]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hwgen demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check hwgen rtl_templates sim quant tests bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
