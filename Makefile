# Every target bootstraps .venv itself: a fresh machine needs only Python 3.11+.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench fuzz bitflips clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Avisa needs Python 3.11 or newer"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

demo: $(STAMP)
	$(BIN)/avisa demo

test: $(STAMP)
	$(BIN)/pytest -q

# Coverage-guided fuzzing of parse → verify → policy for a fixed time (docs/security.md).
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	$(BIN)/pip install --quiet -e '.[fuzz]'
	mkdir -p .cache/fuzz/corpus
	$(BIN)/python -m fuzz.fuzz_pipeline -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
		-artifact_prefix=.cache/fuzz/ .cache/fuzz/corpus

# Every single-bit flip of 1,000 signed envelopes (make test runs a covering subset).
bitflips: $(STAMP)
	$(BIN)/python -m tests.adversarial.bitflip --stride 1

# Figures of issue 7 as one JSON object (a few minutes; see bench/README.md).
bench: $(STAMP)
	@$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
