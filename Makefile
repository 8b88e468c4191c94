# `make demo` and `make test` set everything up on a fresh machine (Python 3.11, pip) and then run.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test demo lint bench clean

setup:
	@bash tools/setup_env.sh

test: setup
	$(PY) -m pytest -q

demo: setup
	bash recipes/demo/run.sh

lint: setup
	$(VENV)/bin/ruff check asr_transfer tests tools

bench: setup
	$(PY) tools/bench_prepare.py

clean:
	rm -rf exp demo_out .pytest_cache
