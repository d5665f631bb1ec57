# fastnote's commands. Each one first runs `make setup`, which installs .venv, or installs it again when what it
# would install has changed: TORCH, the Python, the version, or pyproject.toml's [build-system] and [project] tables
# (with [tool.setuptools]). It compares their text, not the files' dates, so a file rewritten with the same content
# (nbdev-export rewrites pyproject.toml) installs nothing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
INPUTS := $(VENV)/.install-inputs
# The pip arguments that install torch. `torch==2.13.0` takes pip's usual source: a local wheel where pip is set up
# with one, else PyPI, whose Linux build is the CUDA one (several GB). The CPU build on Linux:
#   make setup TORCH='torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu'
# Once given, it stays: later commands use the TORCH that .venv was made with.
ifndef TORCH
TORCH  := $(or $(shell sed -n 's/^torch: //p' $(INPUTS) 2>/dev/null),torch==2.13.0)
endif
LOG    := $(VENV)/setup.log
START  := $(shell date +%s)

.PHONY: setup demo test test-fast docs serve bench nbs readme export prepare hooks clean FORCE

setup: $(STAMP)

# what an install depends on, as text; the file is replaced only when that text changes
$(INPUTS): FORCE
	@mkdir -p $(VENV)
	@{ echo 'torch: $(TORCH)'; $(PYTHON) --version; grep '^__version__' fastnote/__init__.py; \
	   awk '/^\[/ { keep = !/^\[tool\./ || /^\[tool\.setuptools/ } keep' pyproject.toml; } > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

# $(call step,N/M,what it does,command): say what it does, run it with its output in $(LOG), say how long it took
define step
	@printf '[%s] %s ... ' '$(1)' '$(2)'; t=$$(date +%s); \
	if $(3) >>$(LOG) 2>&1; then echo "$$(( $$(date +%s) - t )) s"; \
	else echo "failed. The end of $(LOG):"; tail -n 30 $(LOG); exit 1; fi
endef

$(STAMP): $(INPUTS)
	@echo "Setting up $(VENV): about 70 s on 2 cores with the packages on a local disk. pip writes to $(LOG):"
	@echo "'tail -f $(LOG)' in another terminal shows it working."
	@: > $(LOG)
	$(call step,1/4,creating $(VENV) with $(PYTHON),$(PYTHON) -m venv $(VENV))
	$(call step,2/4,upgrading pip,$(BIN)/python -m pip install --upgrade pip)
	$(call step,3/4,installing $(TORCH),$(BIN)/python -m pip install $(TORCH))
	$(call step,4/4,installing fastnote[dev] in editable mode,$(BIN)/python -m pip install -e '.[dev]')
	@touch $(STAMP)
	@echo "$(VENV) is ready: $$(( $$(date +%s) - $(START) )) s"

## the main job
demo: setup
	$(BIN)/fastnote-demo

## everything CI runs: notebooks, tests/, export/clean/README sync, the docs site in a browser (about 7 min on 2 cores)
test: setup
	$(BIN)/python -m pytest

## the edit-test loop: every test but those marked slow in tests/conftest.py (about 70 s on 2 cores)
test-fast: setup
	$(BIN)/python -m pytest -m 'not slow'

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

## what nbdev-prepare does, without Quarto: export, run every notebook, clean, and the README
prepare: export
	$(BIN)/nbdev-test
	$(BIN)/python tools/docs.py readme README.md

## nbdev-install-hooks, with git's notebook drivers and hook run from $(BIN): `git diff` works without activating it
hooks: setup
	$(BIN)/nbdev-install-hooks
	git config --file .gitconfig diff.jupyternotebook.command '$(BIN)/nbdev-diff-driver'
	git config --file .gitconfig merge.jupyternotebook.driver '$(BIN)/nbdev-merge %O %A %B %P'
	printf '#!/bin/sh\nexec %s/nbdev-trust\n' '$(BIN)' > "$$(git rev-parse --git-path hooks)/post-merge"

clean:
	rm -rf _docs _proc _build build dist *.egg-info demo_out .pytest_cache
