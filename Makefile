# nnprobe: `make demo` runs the whole workflow on the bundled digits and builds the report;
# `make test` runs the test suite. Both set up the virtual environment first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SNAKEMAKE := $(BIN)/snakemake
PROFILE := profiles/local
DEMO_CONFIG := --configfile config/demo.yaml --replace-workflow-config
REPORT := results/report.html

.PHONY: help install demo test lint clean

help:
	@echo "make install  create $(VENV) and install nnprobe with the workflow and test extras"
	@echo "make demo     run the demo config (config/demo.yaml) and build $(REPORT)"
	@echo "make test     run the whole test suite (set NNPROBE_DATA for the real-data tests)"
	@echo "make lint     snakemake --lint and snakefmt --check"
	@echo "make clean    remove results/ and .snakemake/ (keeps $(VENV))"

install: $(STAMP)

# Redone only when pyproject.toml changes (or the venv is new).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[workflow,test]'
	touch $@

demo: install
	$(SNAKEMAKE) --profile $(PROFILE) $(DEMO_CONFIG)
	$(SNAKEMAKE) --profile $(PROFILE) $(DEMO_CONFIG) --report $(REPORT)

test: install
	$(BIN)/python -m pytest -ra --durations=25

lint: install
	$(SNAKEMAKE) --lint
	$(SNAKEMAKE) --lint $(DEMO_CONFIG)
	$(BIN)/snakefmt --check Snakefile rules/

clean:
	rm -rf results .snakemake
