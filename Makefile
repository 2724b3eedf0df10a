# The verbs people type. Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install install-bench demo test lint format bench bench-quick demo-model clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the pinned CPU build first: an unpinned torch would pull gigabytes of CUDA packages
	$(BIN)/python -m pip install -q torch==2.13.0
	# the ray extra (Ray Data + accelerate) too: its tests are part of `make test`
	$(BIN)/python -m pip install -q -e '.[test,ray]'
	touch $(STAMP)

install: $(STAMP)

# The benchmark's peers (interpreto, inseq) beside captum and shap. --no-deps for the two
# whose metadata pulls CUDA 11 wheels on Linux; the rest of what they import is the bench
# extra. torch stays the pinned CPU build (pip check: only the skipped CUDA wheels are missing).
INTERPRETO := interpreto==0.5.2
INSEQ      := inseq==0.7.1
install-bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	$(BIN)/python -m pip install -q --no-deps $(INTERPRETO) $(INSEQ)
	$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"

demo: $(STAMP)
	$(BIN)/ffattr explain "What is the capital of France?" --target "The capital of France is Paris." --method occlusion
	$(BIN)/ffattr batch sample_data/demo_batch.jsonl build/demo_batch.parquet --method occlusion --overwrite
	$(BIN)/ffattr show build/demo_batch.parquet --first 1

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check fairforge_attr tests scripts benchmarks
	$(BIN)/ruff format --check fairforge_attr tests scripts benchmarks

format: $(STAMP)
	$(BIN)/ruff format fairforge_attr tests scripts benchmarks
	$(BIN)/ruff check --fix fairforge_attr tests scripts benchmarks

demo-model: $(STAMP)
	$(BIN)/python scripts/train_demo_model.py

# The benchmark against captum and the roofline, then beside interpreto/captum/inseq with the
# estimators' accuracy (benchmarks/RESULTS.md). The full runs take hours on a 2-core CPU
# (make install-bench first for the peers; without them they are skipped and say so);
# bench-quick only checks that every part runs (< 1 min).
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.compare

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks.run --quick --json /tmp/ffattr_bench_quick.json --md /tmp/ffattr_bench_quick.md
	$(BIN)/python -m benchmarks.compare --quick --json /tmp/ffattr_compare_quick.json --md /tmp/ffattr_bench_quick.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
