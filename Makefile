# spark_lightning — see README.md
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export NO_ALBUMENTATIONS_UPDATE ?= 1

.PHONY: install test test-fast train synth clean

install:  ## create .venv and install the package with dev extras (torch from local wheels here)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev]'

test:  ## whole test suite (CPU, ~2-3 minutes on 2 idle cores; one pytest worker per core)
	$(BIN)/python -m pytest -n auto --dist worksteal

test-fast:  ## skip the slow end-to-end tests
	$(BIN)/python -m pytest -n auto --dist worksteal -m "not slow"

train:  ## default training (synthetic data unless data.root=... is given in ARGS)
	$(BIN)/python -m spark_lightning.train $(ARGS)

synth:  ## write a synthetic SPARK-like set: make synth ARGS="out=data/synth num_images=200"
	$(BIN)/python -m spark_lightning.synth $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache
