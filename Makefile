# Two commands on a fresh machine: `make run` (install, answer a question, serve the chat page)
# and `make test` (install, lint, run every test). Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
QUESTION ?= When did Russia send troops into Ukraine?

.PHONY: run ask serve test lint install browser bench-scale

$(BIN)/qa: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0   # the CPU build; an unpinned torch pulls CUDA
	$(BIN)/pip install -q -e '.[test]'
	# Bytecode written now: an editable install is not compiled, and where
	# PYTHONDONTWRITEBYTECODE is set every start would compile qa/ again (0.06 s a `qa ask`).
	$(BIN)/python -m compileall -q qa web >/dev/null
	touch $(BIN)/qa

install: $(BIN)/qa

# Ray, optional for `qa index --ray`: `make test` installs it, `make run` does not.
$(BIN)/ray: $(BIN)/qa
	$(BIN)/pip install -q -e '.[test,ray]'
	touch $(BIN)/ray

ask: install
	$(BIN)/qa ask "$(QUESTION)"

serve: install
	$(BIN)/qa serve

run: ask serve

# Debian's Chromium for the browser tests (Playwright drives it; never `playwright install`).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

lint: install
	$(BIN)/ruff check .

test: install $(BIN)/ray browser lint
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q

# The scale figures in one run (docs/scale.md): indexing throughput locally and on Ray with
# one and two workers, Ray's overhead, then segment updates and search at 100k and 1M
# chunks on synthetic corpora. About 40 minutes on two cores, 12 GiB of memory at 1M.
bench-scale: install $(BIN)/ray
	HF_HUB_OFFLINE=1 $(BIN)/python bench/ray_index.py
	$(BIN)/python bench/segments.py --chunks 100000 1000000
