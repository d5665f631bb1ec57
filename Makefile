# fastnote's commands. Each one creates .venv first if it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test docs serve bench nbs readme export clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## the main job
demo: setup
	$(BIN)/fastnote-demo

## everything CI runs: notebooks, tests/, export/clean/README sync, the docs site in a browser
test: setup
	$(BIN)/python -m pytest

## the documentation site, into _docs/
docs: setup
	$(BIN)/python tools/docs.py site _docs

## the site at http://127.0.0.1:8000 (search and math work best over http)
serve: docs
	$(BIN)/python -m http.server --bind 127.0.0.1 --directory _docs 8000

## benchmark ratios
bench: setup
	@set -e; n=0; for f in bench/*.py; do [ -e "$$f" ] || continue; n=$$((n+1)); echo "== $$f"; $(BIN)/python "$$f"; done; \
	[ $$n -gt 0 ] || echo "bench/ has no benchmarks yet: the optimizer chapters add them"

## re-run every notebook and store its outputs (the site shows stored outputs)
nbs: setup
	$(BIN)/nbdev-test --save --do-print
	$(BIN)/nbdev-clean

## regenerate README.md from nbs/index.ipynb
readme: setup
	$(BIN)/python tools/docs.py readme README.md

## write the package from the notebooks and clean them
export: setup
	$(BIN)/nbdev-export
	$(BIN)/nbdev-clean

clean:
	rm -rf _docs _proc _build build dist *.egg-info demo_out .pytest_cache
