# Every target bootstraps .venv itself: a fresh machine needs only Python 3.11+.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test browser lint bench fuzz bitflips clean kannel nginx messages catalogues

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Avisa needs Python 3.11 or newer"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

demo: $(STAMP) kannel
	$(BIN)/avisa demo

# The web desk's browser tests drive Debian's headless Chromium (never a downloaded one).
BROWSER_PKGS := chromium chromium-driver
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y --no-install-recommends $(BROWSER_PKGS) || \
		{ apt-get update && apt-get install -y --no-install-recommends $(BROWSER_PKGS); }; \
	else \
		echo "The web desk tests need Chromium: sudo apt-get install -y $(BROWSER_PKGS)"; exit 1; \
	fi


# The SMS tests run a real Kannel gateway (Debian kannel + kannel-extras: bearerbox,
# smsbox, fakesmsc). Installed with apt-get when missing and we are root; otherwise
# this says what to install, and those tests skip with the same reason.
KANNEL_FILES := /usr/sbin/bearerbox /usr/sbin/smsbox /usr/lib/kannel/test/fakesmsc
kannel:
	@missing=0; for f in $(KANNEL_FILES); do [ -x $$f ] || missing=1; done; \
	if [ $$missing = 1 ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Kannel for the SMS tests: apt-get install -y kannel kannel-extras"; \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kannel kannel-extras; } || \
				echo "could not install Kannel: the demo runs without its text line, the SMS tests skip"; \
		else \
			echo "SMS tests need Kannel; as root run: apt-get install -y kannel kannel-extras (skipped until then)"; \
		fi; \
	fi

# The proxy tests run the shipped deploy/nginx.conf with Debian's nginx-light (and a
# throw-away certificate from openssl). Installed like Kannel; skipped with the reason otherwise.
nginx:
	@if [ -x /usr/sbin/nginx ] && command -v openssl >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing nginx for the proxy tests: apt-get install -y nginx-light openssl"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light openssl; } || \
			echo "could not install nginx: the proxy tests skip"; \
	else \
		echo "proxy tests need nginx; as root run: apt-get install -y nginx-light openssl (skipped until then)"; \
	fi

# Most tests wait on real processes (nodes, Kannel, Synapse, Chromium), so a few more
# workers than cores halve the wall time; TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 3
test: $(STAMP) browser kannel nginx
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup

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
	PYTHONPATH=. $(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Words (docs/translating.md): `make messages` extracts the message ids used in the code
# and templates (and the N_() lists of ids built at run time) into relay/locale/avisa.pot
# and adds the new ones to every language's .po (English too: its msgstr is the English); `make catalogues` compiles each .po (the check the node runs when it starts).
LOCALE := relay/locale
messages: $(STAMP)
	$(BIN)/pybabel -q extract -F $(LOCALE)/babel.cfg --no-wrap --no-location --sort-output \
		--project Avisa --version 0.1 --copyright-holder "Avisa contributors" \
		-k _ -k gettext -k ngettext:1,2 -k N_ -o $(LOCALE)/avisa.pot relay bridges keys
	$(BIN)/pybabel -q update -i $(LOCALE)/avisa.pot -d $(LOCALE) -D avisa \
		--no-wrap --no-fuzzy-matching
catalogues: $(STAMP)
	$(BIN)/pybabel compile -d $(LOCALE) -D avisa --statistics
