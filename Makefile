# Two entry points on a fresh machine: `make demo` and `make test`. Each creates .venv itself.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
CATALOG ?= synthetic:1000
BUNDLE ?= models/demo
INTERACTIONS ?= synthetic
FEED_USER ?= U000001

.PHONY: install browser demo cli-demo check test bench quality clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test]'
	touch $@

install: $(VENV)/.installed

# a real shop: make demo CATALOG=../shared/data/hm-sample/catalog.csv INTERACTIONS=../shared/data/hm-sample/interactions.csv
demo: install
	$(VENV)/bin/recsys demo --catalog $(CATALOG) $(if $(filter-out synthetic,$(INTERACTIONS)),--interactions $(INTERACTIONS))

# the CLI step by step: build, neighbours, train, a feed
cli-demo: install
	$(VENV)/bin/recsys build --catalog $(CATALOG) --out $(BUNDLE)
	$(VENV)/bin/recsys similar --bundle $(BUNDLE) $$($(VENV)/bin/recsys items --bundle $(BUNDLE) --limit 2) --k 8
	$(VENV)/bin/recsys train --bundle $(BUNDLE) --interactions $(INTERACTIONS)
	$(VENV)/bin/recsys recommend --bundle $(BUNDLE) $(FEED_USER) --k 8

# the browser tests drive Debian's Chromium; without root (or apt) they are skipped with a reason
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  apt-get install -y -q chromium chromium-driver >/dev/null || \
	  (apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null) || \
	  echo "warning: could not install chromium and chromium-driver; the browser tests will be skipped"

# the fast loop, about a minute: lint, the import layers, and every test but the end-to-end ones
# and those over about a second (both marked slow); the test shops' embeddings and the converted
# networks are kept in .venv between runs; two pytest processes, one per core, each with one BLAS
# thread so that they do not fight; whole files to a process, so that a file's module fixtures (a
# shop, a model) are made once; without the plugins of schemathesis (only the fuzz test, in make
# test, uses it) and hydra (lightly brings it); bytecode is written even where the environment
# says not to, since compiling the tests and recsys again costs each process seconds
check: install
	$(VENV)/bin/ruff check recsys tests benchmarks
	$(VENV)/bin/lint-imports
	PYTHONDONTWRITEBYTECODE= OMP_NUM_THREADS=1 TESTS_EMBEDDING_CACHE=$(VENV)/test-embeddings RECSYS_MODEL_CACHE=$(VENV)/test-models $(PY) -m pytest -q -m "not slow" -n 2 --dist loadfile -p no:schemathesis -p no:hydra_pytest

# the full suite, as CI runs it: two processes with whole files each, and bytecode written, as in
# check (the servers, notebooks and CLI runs it starts each import recsys again)
test: install browser
	$(VENV)/bin/ruff check recsys tests benchmarks
	PYTHONDONTWRITEBYTECODE= OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile

bench: install
	cd benchmarks && ../$(PY) bench_towers.py && ../$(PY) bench_annoy.py && ../$(PY) bench_collab.py && ../$(PY) bench_api.py && ../$(PY) bench_instructions.py

quality: install
	$(PY) benchmarks/quality_movielens.py

clean:
	rm -rf $(VENV) build *.egg-info
