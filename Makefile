# `make demo` and `make test` set everything up on a fresh machine (Python 3.11, pip) and then run.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test test-fast demo lint bench gpu-wheelhouse clean

setup:
	@bash tools/setup_env.sh

# Everything, as CI runs it, with the 15 slowest tests listed. One worker per core (pytest-xdist): most of
# the suite's time is recipes' processes importing NeMo, which one core does alone.
test: setup
	$(PY) -m pytest -q -n auto --durations=15

# Daily work: the tests not marked slow (recipes, study, DDP and full-size architectures are).
test-fast: setup
	$(PY) -m pytest -q -n auto -m "not slow"

demo: setup
	bash recipes/demo/run.sh

lint: setup
	$(VENV)/bin/ruff check asr_transfer tests tools

# Data preparation against the classic sox conversion and the decode limit, then training throughput.
# sox is installed for the classic baseline where apt-get can; without it that baseline is skipped.
bench: setup
	@command -v sox >/dev/null || command -v ffmpeg >/dev/null || \
		apt-get install -y -q sox libsox-fmt-mp3 >/dev/null 2>&1 || \
		echo "bench: no sox or ffmpeg and apt-get could not install sox; the classic baseline will be skipped"
	$(PY) tools/bench_prepare.py
	$(PY) tools/bench_train.py

# Wheels for the lent GPU machine (no internet there): carry .gpu_wheels and run tools/gpu_check.sh (README "GPU check").
gpu-wheelhouse: setup
	bash tools/build_gpu_wheelhouse.sh

clean:
	rm -rf exp demo_out .pytest_cache
