# nnprobe: `make demo` runs the whole workflow on the bundled digits and builds the report;
# `make test-fast` runs the package's unit tests (about 5 minutes on a busy 2-core machine,
# about 2 on an idle one, estimated: README, "Tests"); `make test` the whole suite (about 30
# minutes on an idle 2-core machine, docs/performance.md). All set up the virtual environment
# first. No test installs system packages or starts daemons unless asked:
# NNPROBE_SLURM_TEST=1 runs the SLURM test (apt-get, munge and slurm daemons, as root) and
# NNPROBE_INSTALL_CHROMIUM=1 lets the report test install chromium; .ci/run sets both.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SNAKEMAKE := $(BIN)/snakemake
PROFILE := profiles/local
DEMO_CONFIG := --configfile config/demo.yaml --replace-workflow-config
REPORT := results/report.html

.PHONY: help install demo test test-fast lint clean unit restore units rulegraph readme-figures

help:
	@echo "make install  create $(VENV) and install nnprobe with the workflow and test extras"
	@echo "make demo     run the demo config (config/demo.yaml) and build $(REPORT)"
	@echo "make test-fast  the unit tier: the package's tests, no Snakemake run (~5 min on a busy 2-core machine)"
	@echo "make test     the whole suite on 2 workers, about 20 min on an idle 2-core machine (NNPROBE_DATA: real-data"
	@echo "              tests; NNPROBE_SLURM_TEST=1: the SLURM test, which installs and starts SLURM as root)"
	@echo "make lint     snakemake --lint and snakefmt --check"
	@echo "make unit RUN=R UNIT=U   run one unit of a long run (config/units/R.yaml), land its evidence in docs/runs/"
	@echo "make restore RUN=R       put the landed units of run R back into results/ (Snakemake counts them done)"
	@echo "make units RUN=R         which units of run R have landed"
	@echo "make rulegraph           docs/figures/rulegraph.{dot,svg}: the rules of the demo config (needs graphviz dot)"
	@echo "make readme-figures      docs/figures/demo_*.png from the demo run in results/ (after make demo)"
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

# Two pytest-xdist workers (one per core of the 2-core CI machine); a test file stays on one
# worker (its module fixtures are made once) and the demo run is shared by both (tests/conftest.py).
TEST_WORKERS ?= 2

test: install
	$(BIN)/python -m pytest -ra --durations=25 -n $(TEST_WORKERS) --dist loadfile

# The unit tier (pyproject.toml's markers): every test outside tests/workflow that is not slow.
test-fast: install
	$(BIN)/python -m pytest -ra --durations=10 -m "not workflow and not slow"

lint: install
	$(SNAKEMAKE) --lint
	$(SNAKEMAKE) --lint $(DEMO_CONFIG)
	$(BIN)/snakefmt --check Snakefile rules/

clean:
	rm -rf results .snakemake

# Long runs in units of under an hour (src/nnprobe/units.py): each lands in docs/runs/DATE-RUN/UNIT/.
unit: install
	@test -n "$(RUN)" -a -n "$(UNIT)" || { echo "usage: make unit RUN=cifar-cpu UNIT=resnet-seed0 (units: config/units/RUN.yaml)"; exit 2; }
	$(BIN)/python -m nnprobe.units run $(RUN) $(UNIT)

restore: install
	@test -n "$(RUN)" || { echo "usage: make restore RUN=cifar-cpu"; exit 2; }
	$(BIN)/python -m nnprobe.units restore $(RUN)

units: install
	@test -n "$(RUN)" || { echo "usage: make units RUN=cifar-cpu"; exit 2; }
	$(BIN)/python -m nnprobe.units status $(RUN)

# The rule graph of README.md (the demo config's rules; tests/workflow/test_workflow.py holds the
# .dot to what Snakemake prints now; the picture needs graphviz's dot).
rulegraph: install
	$(SNAKEMAKE) --rulegraph --quiet all $(DEMO_CONFIG) > docs/figures/rulegraph.dot
	dot -Tsvg docs/figures/rulegraph.dot > docs/figures/rulegraph.svg

# The demo figures of README.md, from the demo run in results/ (make demo first); a test holds
# them to what the demo draws now (tests/workflow/test_workflow.py).
README_FIGURES := t_heatmap_confused_vs_clean:demo_t_heatmap accuracy_by_pair:demo_accuracy_by_pair class_dendrogram:demo_class_dendrogram

readme-figures:
	@for pair in $(README_FIGURES); do \
	  src=results/mislabel/figures/$${pair%%:*}.png; dst=docs/figures/$${pair##*:}.png; \
	  test -f $$src || { echo "$$src is missing: run make demo first"; exit 1; }; \
	  cp $$src $$dst && echo "$$src -> $$dst"; done
