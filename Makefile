# `make demo` and `make test` work on a fresh machine with Python 3.11 and pip: the venv is built on demand.
VENV ?= .venv
PYTHON_BOOT := $(shell command -v python3.11 2>/dev/null || command -v python3)
PY := $(VENV)/bin/python
# Serial by default: with -n 2 each xdist worker imports TF and rebuilds the session-scoped model fixtures,
# which made the full suite slower on 2 cores (134 s vs 111 s). PYTEST_WORKERS=2 opts back in.
PYTEST_WORKERS ?= 1
XDIST := $(if $(filter-out 0 1,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS))
PYTEST_ARGS ?=

# Intel Neural Compressor, a rival in benchmarks/bf16_latency.py, pins numpy 1.x: it gets its own venv.
VENV_INC ?= .venv-inc
# OpenVINO, another rival there, reads the frozen .pb itself and needs no TF: its own venv keeps its pins apart.
VENV_OV ?= .venv-ov
# tf2onnx, the rival of TF -> ONNX export in benchmarks/onnx_export.py, in its own venv (numpy 1.x, its own TF).
VENV_TF2ONNX ?= .venv-tf2onnx

# onnx-simplifier and onnxscript's optimizer, the rivals in benchmarks/onnx_optimizers.py, are not graphir
# dependencies: they run in a subprocess from their own venv.
VENV_ONNXOPT ?= .venv-onnxopt

.PHONY: all demo test test-fast bench bench-compile bench-bf16 fuzz bench-onnx bench-onnx-export bench-onnxopt clean

all: test

$(VENV)/.installed: setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

demo: $(VENV)/.installed
	$(PY) -m graphir.demo

test: $(VENV)/.installed
	$(PY) -m pytest -q $(XDIST) $(PYTEST_ARGS) tests

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q $(XDIST) -m "not slow" $(PYTEST_ARGS) tests

$(VENV_INC)/.installed:
	@test -x $(VENV_INC)/bin/python || $(PYTHON_BOOT) -m venv $(VENV_INC)
	$(VENV_INC)/bin/python -m pip install -q --upgrade pip
	$(VENV_INC)/bin/python -m pip install -q 'neural-compressor==2.6' 'numpy<2' tensorflow-cpu
	@touch $@

$(VENV_OV)/.installed:
	@test -x $(VENV_OV)/bin/python || $(PYTHON_BOOT) -m venv $(VENV_OV)
	$(VENV_OV)/bin/python -m pip install -q --upgrade pip
	$(VENV_OV)/bin/python -m pip install -q 'openvino==2026.4.1' numpy
	@touch $@

$(VENV_TF2ONNX)/.installed:
	@test -x $(VENV_TF2ONNX)/bin/python || $(PYTHON_BOOT) -m venv $(VENV_TF2ONNX)
	$(VENV_TF2ONNX)/bin/python -m pip install -q --upgrade pip
	$(VENV_TF2ONNX)/bin/python -m pip install -q 'tf2onnx==1.17.0' 'numpy<2' 'tensorflow-cpu==2.21.0' onnxruntime

$(VENV_ONNXOPT)/.installed:
	@test -x $(VENV_ONNXOPT)/bin/python || $(PYTHON_BOOT) -m venv $(VENV_ONNXOPT)
	$(VENV_ONNXOPT)/bin/python -m pip install -q --upgrade pip
	$(VENV_ONNXOPT)/bin/python -m pip install -q 'onnxsim==0.8.1' 'onnxscript==0.7.2' onnxruntime
	@touch $@

bench: bench-compile bench-bf16

bench-compile: $(VENV)/.installed
	$(PY) benchmarks/compile_speed.py

bench-bf16: $(VENV)/.installed $(VENV_INC)/.installed $(VENV_OV)/.installed
	$(PY) benchmarks/bf16_latency.py --runs 11

# The random-graph fuzzer over many seeds (make test runs a fixed few): make fuzz N=2000 [START=0]
N ?= 2000
START ?= 0
fuzz: $(VENV)/.installed
	$(PY) benchmarks/fuzz.py --seeds $(N) --start $(START)

bench-onnx: $(VENV)/.installed
	$(PY) benchmarks/onnx_node_tests.py --failures-only

bench-onnx-export: $(VENV)/.installed $(VENV_TF2ONNX)/.installed
	$(PY) benchmarks/onnx_export.py --markdown

# graphir's ONNX optimization against onnx-simplifier and onnxscript: make bench-onnxopt [EXTRA=dir]
bench-onnxopt: $(VENV)/.installed $(VENV_ONNXOPT)/.installed
	$(PY) benchmarks/onnx_optimizers.py --markdown --rivals-python $(VENV_ONNXOPT)/bin/python \
		$(if $(EXTRA),--extra $(EXTRA))

clean:
	rm -rf out build dist graphir_workspace nc_workspace *.egg-info .pytest_cache .graphir-cache
	find graphir tests examples benchmarks -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
