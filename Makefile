# posenc: two commands for a learner (make lab, make test); the rest are helpers.
#
#   make lab                  create .venv if missing, install, open JupyterLab on the course
#   make test                 create .venv if missing, run the whole suite
#   make TORCH=torch==2.5.1   use another torch build (any pip requirement works)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
TORCH  ?= torch==2.13.0
VENV   := .venv
PY     := $(VENV)/bin/python
# The env is rebuilt when pyproject.toml or the torch requirement changes.
STAMP  := $(VENV)/.stamp-$(shell cat pyproject.toml | sha256sum | cut -c1-12)-$(shell echo '$(TORCH)' | sha256sum | cut -c1-8)
# Colourless kernel tracebacks and no JupyterLab news pop-ups: settings kept in the repo.
export IPYTHONDIR := $(CURDIR)/.jupyter/ipython
export JUPYTER_CONFIG_DIR := $(CURDIR)/.jupyter/config
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test env notebooks solutions grade lint format clean extrapolation bench bench-gpu scaling doctor

env: $(STAMP)

$(STAMP):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "posenc needs Python >= 3.11, found " + sys.version' 
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet '$(TORCH)'
	$(PY) -m pip install --quiet -e '.[dev]' '$(TORCH)'
	$(PY) -m ipykernel install --sys-prefix --name posenc --display-name "Python (posenc)" >/dev/null
	@rm -f $(VENV)/.stamp-*
	@touch $@

lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(LAB_ROOT) --notebook-dir=$(CURDIR) notebooks/00_attention_has_no_order.ipynb

test: lint
	$(VENV)/bin/pytest tests solutions --nbval-lax --nbval-current-env --nbval-cell-timeout=120 -p no:cacheprovider

notebooks: $(STAMP)
	$(PY) -m posenc.course.notebook_tools solutions notebooks

solutions: $(STAMP)
	$(PY) -m posenc.course.notebook_tools --execute solutions

grade: $(STAMP)
	$(PY) -m posenc.grading --exit-zero notebooks

# The lesson code in solutions/ is linted like the library (ruff reads notebooks).
LINTED := src tests solutions

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

format: $(STAMP)
	$(VENV)/bin/ruff format $(LINTED)
	$(VENV)/bin/ruff check --fix $(LINTED)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

extrapolation: $(STAMP)
	$(PY) -m posenc.experiments.extrapolation

bench: $(STAMP)
	$(PY) -m posenc.experiments.bench --device cpu

# On a CUDA machine: BENCH_OUT=folder make bench-gpu (default results/).
bench-gpu: $(STAMP)
	POSENC_BENCH_OUT=$${BENCH_OUT:-results} $(PY) -m posenc.experiments.bench --device cuda --dtype bfloat16

scaling: $(STAMP)
	$(PY) -m posenc.experiments.scaling_study

doctor: $(STAMP)
	$(PY) -m posenc.course.doctor
