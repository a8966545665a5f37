# Two commands on a fresh machine with Python 3.11+ and pip:
#   make book   build the book into _build/html
#   make test   unit tests, the strict book build (every notebook at quick scale), the
#               pages in headless Chromium when it is installed, the student edition
# .ci/run adds the reader environments: `make test-colab` and `make test-min`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# JAX's persistent compilation cache for builds and tests: a program one process compiled
# (a test, a notebook's kernel, an earlier build) is loaded from disk by every later one.
# Its key is the program itself with the jax version and the backend, so a change to src/
# recompiles only what it changed. `make bench` measures cold runs without it; set
# JAX_COMPILATION_CACHE_DIR= (empty) to turn it off.
export JAX_COMPILATION_CACHE_DIR ?= $(CURDIR)/_build/jax-cache
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS ?= 0
export JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES ?= 0

.PHONY: all install book book-student test test-fast test-colab test-min test-paper test-estimates strip lock clean help
.DEFAULT_GOAL := help

help:
	@echo "make book       create .venv if needed, execute the notebooks, build _build/html"
	@echo "make book-student  the same book without the solutions (for a course)"
	@echo "make colab-edition  the chapters in plain Markdown for Colab (_build/colab-edition; make book does it too)"
	@echo "make test       unit tests, the -W -n book build, its pages in headless Chromium (if installed)"
	@echo "make test-fast  the unit tests only (no notebook execution, no book build)"
	@echo "make test-colab Google Colab's runtime (Python 3.13, its jax/flax/IPython): the setup"
	@echo "                cell changes no package Colab has; unit tests; every chapter"
	@echo "make test-paper every chapter at the paper presets' shapes, steps and epochs capped at 8"
	@echo "                (cells tagged gpu-only too with DLTHEORY_PAPER_GPU_CELLS=1; long on a CPU)"
	@echo "make test-estimates  recompile every paper-scale program and compare with the committed estimates"
	@echo "make test-min   every runtime dependency at its declared floor (Python 3.11): unit tests"
	@echo "make bench      time the book, every widget and the engine; writes benchmarks/RESULTS.md"
	@echo "make mutate     mutation testing of the core (tools/mutate.py; ONLY=\"sde/svag ...\" for some"
	@echo "                modules); writes tests/mutation/REPORT.md. Hours on 2 cores"
	@echo "make estimates  recompute the paper presets' time and memory estimates (src/dltheory/paper_budgets.json)"
	@echo "make accept-numbers  take the last build's glued numbers as the known-good ones"
	@echo "                (book/numbers.json; make book fails when a number moves past its tolerance)"
	@echo "make claims-page  regenerate book/claims.md from the claims registry (dltheory.claims)"
	@echo "make repository URL=https://github.com/OWNER/REPO  point the book at a fork (launch"
	@echo "                buttons, setup cells, install lines, test links)"
	@echo "make slides     a reveal.js deck per chapter, from its own cells (_build/slides)"
	@echo "make pdf        the whole book as one PDF (_build/pdf; needs Chromium)"
	@echo "make dist       the built book as one zip for offline reading (_build/dist)"
	@echo "make strip      strip outputs from the notebooks before committing"
	@echo "make lock       regenerate requirements-lock.txt from pyproject.toml"
	@echo "make clean      remove _build and caches (keeps .venv)"

$(STAMP): pyproject.toml requirements-lock.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "dltheory needs Python 3.11 or newer; found " + sys.version.split()[0] + " (set PYTHON=python3.X)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-lock.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

install: $(STAMP)

# The execution cache is keyed on the notebooks only: when the package changes, drop it
# so every chapter is executed again with the new code.
book: $(STAMP)
	@if [ -f _build/.src-stamp ] && [ -n "$$(find src -name '*.py' -newer _build/.src-stamp | head -1)" ]; then \
	  echo "src/ changed since the last build: executing every notebook again"; rm -rf _build/.jupyter_cache; fi
	DLTHEORY_PROGRESS=0 DLTHEORY_STATIC_TWINS=1 $(BIN)/python tools/execute_notebooks.py
	DLTHEORY_PROGRESS=0 DLTHEORY_STATIC_TWINS=1 $(BIN)/jupyter-book build .
	$(BIN)/python tools/colab_edition.py --out _build/colab-edition
	@touch _build/.src-stamp
	$(BIN)/python tools/check_numbers.py
	@echo
	@echo "The book is built. Open this page in a browser:"
	@echo "    file://$(CURDIR)/_build/html/index.html"

# The drift guard (tools/check_numbers.py) compares every glued number of the build with
# book/numbers.json; when a change of the numbers is meant, accept it here and commit the
# file with a message that says why. The claims page is generated from dltheory.claims.
.PHONY: accept-numbers claims-page
accept-numbers: $(STAMP)
	$(BIN)/python tools/check_numbers.py --accept
claims-page: $(STAMP)
	$(BIN)/python tools/claims_page.py

# A fork or a course's copy: every copy of the repository URL from one command.
.PHONY: repository
repository: $(STAMP)
	@test -n "$(URL)" || { echo "usage: make repository URL=https://github.com/OWNER/REPO [BRANCH=main]"; exit 2; }
	$(BIN)/python tools/set_repository.py "$(URL)" $(if $(BRANCH),--branch "$(BRANCH)")

# Same pages, same execution cache, every solution removed (tools/student_edition.py).
book-student: book
	$(BIN)/python tools/student_edition.py _build/student
	DLTHEORY_PROGRESS=0 DLTHEORY_STATIC_TWINS=1 $(BIN)/jupyter-book build . --config _build/student/_config.yml --path-output _build/student
	@echo
	@echo "The student edition is built:  file://$(CURDIR)/_build/student/_build/html/index.html"

# The Colab edition (tools/colab_edition.py): every chapter notebook in plain Markdown
# with the numbers of the book's build, under _build/colab-edition (the deploy workflow
# publishes it on the `colab` branch, which the Colab buttons open). `make book` ends with
# it; it reads the executed notebooks from the book's jupyter cache and says so if one is
# missing.
.PHONY: colab-edition
colab-edition: $(STAMP)
	$(BIN)/python tools/colab_edition.py --out _build/colab-edition

# MathJax for the offline browser test (tests/test_browser.py) and reveal.js for the slide
# decks (tools/slides.py), from the npm registry.
MATHJAX := tools/browser/node_modules/mathjax/package.json
$(MATHJAX): tools/browser/package.json tools/browser/package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tools/browser --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the browser test needs MathJax from npm (it is skipped only without Chromium)"; fi

# A reveal.js deck per chapter from the chapter's own cells (tools/slides.py).
.PHONY: slides
slides: book $(MATHJAX)
	$(BIN)/python tools/slides.py

# The whole book as one PDF: the single-page build printed by headless Chromium.
.PHONY: pdf
pdf: book $(MATHJAX)
	$(BIN)/python tools/pdf.py

# The built book as one zip for offline reading, MathJax included where npm could fetch it.
.PHONY: dist
dist: book $(MATHJAX)
	$(BIN)/python tools/dist.py

# Two pytest processes side by side (tools/run_tests.py): the tests of the book build,
# which build it once, and every other test (on more than two cores, over pytest-xdist
# workers: TEST_WORKERS=N to choose).
test: $(STAMP) $(MATHJAX)
	$(BIN)/python tools/run_tests.py $(if $(TEST_WORKERS),--workers $(TEST_WORKERS))

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not paper" -n auto --maxprocesses=4

# Every chapter at the paper presets' shapes with DLTHEORY_MAX_STEPS (tests/test_paper.py).
test-paper: $(STAMP)
	$(BIN)/python -m pytest -m paper tests/test_paper.py

# The committed paper_budgets.json against a fresh compilation of every program (~20 min).
test-estimates: $(STAMP)
	$(BIN)/python -m pytest -m estimates tests/test_paper.py

# Reader environments (tools/env_jobs.py; each keeps its own venv, .venv-colab / .venv-min).
# Set COLAB_PYTHON / MIN_PYTHON to an interpreter when python3.13 / python3.11 are not found.
# test-colab executes the Colab edition, made from the cache of the last book build
# (`make book` or `make test`).
test-colab: colab-edition
	$(PYTHON) tools/env_jobs.py colab $(if $(COLAB_PYTHON),--python $(COLAB_PYTHON))

test-min:
	$(PYTHON) tools/env_jobs.py min $(if $(MIN_PYTHON),--python $(MIN_PYTHON))

# Benchmarks (not part of `make test`, which runs only their smoke versions). Installs
# the `bench` extra (torch 2.13.0, CPU) for the PyTorch baselines. Takes minutes.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/run_all.py

# Mutation testing of the core modules (not part of `make test`: each mutant runs the
# module's tests in a new interpreter). Installs the `mutate` extra (cosmic-ray, coverage).
.PHONY: mutate
mutate: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[mutate]"
	$(BIN)/python tools/mutate.py $(if $(ONLY),--only $(ONLY))

strip: $(STAMP)
	$(BIN)/python tools/strip_notebooks.py

# Resolve pyproject.toml afresh in a scratch environment and pin what it installs.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet -e ".[test]"
	{ head -3 requirements-lock.txt; .venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^dltheory'; } > requirements-lock.new
	mv requirements-lock.new requirements-lock.txt && rm -rf .venv-lock

clean:
	rm -rf _build .pytest_cache .hypothesis build
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +

# Compile every chapter's paper-preset programs (without running them) and write their
# time and memory estimates from XLA's cost and memory analysis (minutes on a CPU).
estimates: $(STAMP)
	$(BIN)/python -m dltheory.paper --write
