# The two set-up commands of the README:
#   make bench   create .venv (torch 2.14.1 + torchvision 0.29.1), `pip install .`, time roiops against
#                torchvision on the CPU: the ratio table, bench-output/report.md and speedup.png
#   make test    same environment, run the test suite
# and more targets: make demo (train a small Mask R-CNN on synthetic shapes, demo-output/), make cpp
# (examples/cpp, the C++ runner of an exported model, in build/cpp/).
# Only python3 (and nvcc, for the CUDA kernels) must exist beforehand.

VENV ?= .venv
PY := $(VENV)/bin/python
# --isolated: ignore this machine's pip settings, which point at a CPU-only torch wheel that cannot load
# torchvision; the registry's default torch build (CUDA 13.0) runs fine on a CPU.
PIP_DEPS := $(PY) -m pip install --isolated --quiet
SOURCES := setup.py pyproject.toml $(shell find csrc roiops -type f -not -name '*.pyc' -not -name '*.so')

.PHONY: bench demo test lint install cpp clean

bench: $(VENV)/.roiops-installed
	$(PY) -P -m roiops bench --device cpu --out bench-output

demo: $(VENV)/.roiops-installed
	$(PY) -P -m roiops demo --out demo-output

test: $(VENV)/.roiops-installed
	$(VENV)/bin/pytest tests

cpp: $(VENV)/.roiops-installed
	bash examples/cpp/build.sh $(PY)

lint: $(VENV)/.deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

install: $(VENV)/.roiops-installed

$(VENV)/.deps:
	python3 -m venv $(VENV)
	$(PIP_DEPS) torch==2.14.1 torchvision==0.29.1 ninja numpy pytest pytest-benchmark ruff \
		pillow pycocotools matplotlib onnx==1.23.2 onnxscript==0.7.2 onnxruntime==1.32.0 \
		openvino==2026.4.1 nncf==3.4.0
	touch $@

$(VENV)/.roiops-installed: $(VENV)/.deps $(SOURCES)
	$(PY) -m pip install .
	touch $@

clean:
	rm -rf build $(VENV) *.egg-info bench-output demo-output
