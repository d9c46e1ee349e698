# Two commands do everything on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
OUT ?= demo-output
# The docs site's KaTeX (package.json, package-lock.json).
KATEX := node_modules/katex/dist/katex.min.js
# The files written to `ruff format`'s style, checked by `make lint`. The rest of the tree keeps its hand
# layout until its owner reformats it (reformatting everything at once would collide with work in progress);
# add a file here when you format it.
FORMATTED := sc_neurocore/__init__.py sc_neurocore/cli.py sc_neurocore/extras.py sc_neurocore/progress.py \
	sc_neurocore/plot.py sc_neurocore/demo.py sc_neurocore/explain/results.py scripts/markdown_docstrings.py \
	docs/hooks/generated.py docs/hooks/katex.py docs/hooks/nav.py tests/test_docs.py tests/test_plot.py \
	tests/test_demo.py tests/test_docstring_examples.py tests/test_cli.py tests/test_package.py \
	tests/explain/test_results.py

.PHONY: setup demo test lint bench quality matrix docs figures clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c requirements/constraints.txt torch==2.13.0
	$(PIP) install -q -c requirements/constraints.txt -e '.[all,dev]'
	touch $(STAMP)

$(KATEX): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(KATEX)

demo: setup
	$(VENV)/bin/sc-neurocore demo --out $(OUT)

# Lint and types first: a quick failure before the long suite.
test: lint $(KATEX)
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check $(FORMATTED)
	$(VENV)/bin/mypy

bench: setup
	$(VENV)/bin/sc-neurocore bench --output docs/benchmarks.md

quality: setup
	$(VENV)/bin/sc-neurocore quality --out docs/quality.md

# The support matrix of docs/adapters.md, from the test zoo (every model, every explainer).
matrix: setup
	$(PY) -m tests.zoo.matrix --write docs/adapters.md

docs: setup $(KATEX)
	$(VENV)/bin/mkdocs build --strict

# The demo's figures alone (the docs build draws them too, into build/docs/figures).
figures: setup
	$(VENV)/bin/sc-neurocore demo --out build/docs/figures --samples 4 --faithfulness-samples 16

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache node_modules .cache
