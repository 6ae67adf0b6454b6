# Two commands on a fresh Debian/Ubuntu machine:
#   make run    installs what the app needs and launches it
#   make test   installs what the tests need and runs every check and test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
PROFILE ?=

.PHONY: sysdeps-run sysdeps-test run test check lint typecheck layers pytest bench clean deb rpm

run: sysdeps-run $(STAMP_RUN)
	$(BIN)/heatshare $(if $(PROFILE),--profile-dir $(PROFILE))

test: sysdeps-test $(STAMP_TEST)
	$(MAKE) --no-print-directory check pytest

sysdeps-run:
	scripts/system-deps.sh run

sysdeps-test:
	scripts/system-deps.sh test

check: lint typecheck layers

lint:
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench

typecheck:
	$(BIN)/mypy

layers:
	$(BIN)/lint-imports

# Xvfb is started by the tests that need a real X server; the rest run offscreen.
pytest:
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Heatshare needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP_RUN): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(STAMP_RUN)

# Figures for docs/benchmarks.md; bench/nvml_check.py needs an NVIDIA GPU (tests/device/).
bench: $(STAMP_TEST)
	for b in agent_cpu app_start app_cpu_rss chart_update history_query room_sim; do \
		echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; done

# Linux packages into dist/ (PyInstaller bundle, then dpkg-deb or rpmbuild).
deb: sysdeps-test $(STAMP_TEST)
	packaging/linux/build-deb.sh

rpm: sysdeps-test $(STAMP_TEST)
	packaging/linux/build-rpm.sh

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
