# One entry for every task. `make test` and `make demo` set up .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo diagrams check-diagrams options-doc check-options-doc bench fuzz crash clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

# The README's test command: diagrams and the options table in sync, then every test. Four
# workers on any number of cores: the fleet tests mostly wait on nodes, so they overlap
# well (pytest-xdist).
test: $(STAMP) check-diagrams check-options-doc
	$(PY) -m pytest -q -n 4

demo: $(STAMP)
	$(PY) -m tests.standin.demo

diagrams: $(STAMP)
	$(PY) -m machines.diagram write diagrams

check-diagrams: $(STAMP)
	$(PY) -m machines.diagram check diagrams

# docs/OPERATOR.md's options table, generated from handlers/frame/config.py.
options-doc: $(STAMP)
	$(PY) -m handlers.frame.options_doc write docs/OPERATOR.md

check-options-doc: $(STAMP)
	$(PY) -m handlers.frame.options_doc check docs/OPERATOR.md

# Every benchmark, one line each against a baseline of the same run (bench/__main__.py).
bench: $(STAMP)
	$(PY) -m bench

# A million fuzzed messages at the handler level (a worker process per core), 20,000 through
# the plugin process.
fuzz: $(STAMP)
	$(PY) -m tests.fuzz.run --messages 1000000 --process 20000

# SIGKILL at random kill points of the initiators' plugins on the stand-in, restarting them
# each time: 1,000 intents over ten initiators (the intake bound is per member), 100 handshakes.
crash: $(STAMP)
	$(PY) -m tests.crash.run --intents 1000 --handshakes 100

clean:
	rm -rf $(VENV)
