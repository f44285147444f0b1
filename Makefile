# Two commands a new user needs: `make demo` and `make test`. Each builds .venv if absent.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export WANDB_MODE ?= offline
export WANDB_SILENT ?= true

.PHONY: setup demo test test-slow test-slurm bench docs lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU torch first, by exact pin: nothing later may pull a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,minigrid]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m experiments.demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile -m 'not slow and not slurm'

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# needs a running Slurm with accounting (.ci/slurm.sh start, as root); skips, saying why, without one
test-slurm: $(STAMP)
	$(PY) -m pytest -q -rs -m slurm

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/env_throughput.py

# the documentation site (mkdocs.yml) into site/; a broken README link, a broken link of the site's
# pages or a module the API pages cannot find fails it (--strict)
docs: $(STAMP)
	$(PY) -m pip install --quiet -e '.[docs]'
	$(PY) docs/check_links.py README.md
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d site

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) outputs multirun wandb site
