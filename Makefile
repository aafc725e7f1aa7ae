# Set-up: `make run` (the monthly batch on the demo data) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= io,plot,report,progress,dask,network,test,docs

.PHONY: run run-ons test test-fast bench bench-quick bench-cold bench-gate lint docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS),bench]"
	touch $@

run: $(STAMP)
	$(BIN)/excessmort run --out out

run-ons: $(STAMP)
	$(BIN)/excessmort run --input ../shared/data/ons/ons_weekly_deaths_by_region.csv --month 2021-04 --baseline pooled --out out-ons

# The browser tests need Debian chromium: installed once, only when missing.
$(VENV)/.chromium: | $(BIN)/python
	@command -v chromium >/dev/null 2>&1 || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium) || echo "make: could not install chromium; the browser tests will fail" >&2
	@if command -v chromium >/dev/null 2>&1; then touch $@; fi

# The live R oracle tests (farrington) need Debian R and surveillance: installed once, only when missing.
$(VENV)/.r-oracle: | $(BIN)/python
	@Rscript -e 'library(surveillance)' >/dev/null 2>&1 || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends r-base-core r-cran-surveillance) || echo "make: could not install R surveillance; the live R oracle tests will fail" >&2
	@if Rscript -e 'library(surveillance)' >/dev/null 2>&1; then touch $@; fi

# The network publishing tests start Debian's OpenSSH server (/usr/sbin/sshd) on 127.0.0.1 with their
# own config: the package is installed once, only when missing (no service is enabled or started).
$(VENV)/.sshd: | $(BIN)/python
	@test -x /usr/sbin/sshd || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server) || echo "make: could not install openssh-server; the SFTP tests will fail" >&2
	@if test -x /usr/sbin/sshd; then touch $@; fi

test: $(STAMP) $(VENV)/.chromium $(VENV)/.sshd $(VENV)/.r-oracle
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not browser and not notebook and not dask and not network"

bench: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks.run --suite full

bench-quick: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks.run --suite quick

bench-cold: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks.run --suite cold

bench-gate: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks.compare --base $${BASE:-HEAD~1}

docs: $(STAMP)
	$(BIN)/mkdocs build --strict -d site

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet ruff
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) out out-ons .pytest_cache site
