# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing, installs the project (and, as root on Debian, its apt packages).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.emostream-installed

.PHONY: demo test setup lint weights bench clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/emostream demo

test: $(STAMP)
	bash scripts/test.sh $(VENV)

# ruff, mypy, and import-linter's layer contracts ([tool.importlinter] in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check emostream tests benchmarks
	$(VENV)/bin/ruff format --check emostream tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
