# spark_lightning — see README.md
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export NO_ALBUMENTATIONS_UPDATE ?= 1

.PHONY: install test test-fast train synth gpu-wheels gpu-check clean

install:  ## create .venv and install the package with dev extras (torch from local wheels here)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev]'

test:  ## whole test suite (CPU, ~9 minutes on 2 idle cores; one pytest worker per core)
	$(BIN)/python -m pytest -n auto --dist worksteal

test-fast:  ## skip the slow end-to-end tests
	$(BIN)/python -m pytest -n auto --dist worksteal -m "not slow"

train:  ## default training (synthetic data unless data.root=... is given in ARGS)
	$(BIN)/python -m spark_lightning.train $(ARGS)

synth:  ## write a synthetic SPARK-like set: make synth ARGS="out=data/synth num_images=200"
	$(BIN)/python -m spark_lightning.synth $(ARGS)

gpu-wheels:  ## .whl/: the CPython 3.12 wheels the GPU machine lacks (smp, hydra, albumentations...)
	$(BIN)/python bench/gpu_wheels.py download --dest .whl

OUT ?= gpu_check_out
gpu-check:  ## on a GPU machine (its python3, no venv): install .whl/, then every CUDA path -> $(OUT)/gpu_check.md
	python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/spark-site .whl/*.whl
	PYTHONPATH=/tmp/spark-site:$(CURDIR) PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --out $(OUT)

clean:
	rm -rf outputs multirun .pytest_cache
