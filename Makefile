# One command each for the README's front door. Everything goes into ./.venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo serve test install dev clean

$(BIN)/lookalike: pyproject.toml
	@# zip/rar/7z/tar are read by the system's libarchive (libarchive-c binds it at run time)
	@ldconfig -p | grep -q 'libarchive.so.13 ' || { \
	  echo "installing libarchive13 (archive reading)"; \
	  apt-get install -y -q libarchive13 >/dev/null || sudo apt-get install -y -q libarchive13 >/dev/null || \
	  { echo "please install libarchive (Debian/Ubuntu: apt install libarchive13; macOS: brew install libarchive)"; exit 1; }; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.dev-installed: $(BIN)/lookalike
	# torch 2.14.1 + torchvision 0.29.1 (+ open_clip): the model tests (vgg16, resnet50, CLIP,
	# with random weights) and the check of the shipped ONNX model against torch need them.
	$(BIN)/pip install --quiet -e ".[dev]"
	@# the web page's end-to-end test drives Debian's chromium through chromedriver
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing chromium and chromium-driver (browser tests)"; \
	  apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; } || \
	  echo "could not install chromium: the browser test will be skipped (outside CI)"; }
	@touch $@

install: $(BIN)/lookalike                     ## the runtime only: no torch

dev: $(VENV)/.dev-installed                   ## runtime + tests + model export tools

demo: $(BIN)/lookalike                        ## index the sample images and run a search
	$(BIN)/lookalike --library demo-library index examples/images
	$(BIN)/lookalike --library demo-library search examples/query-home-48px.jpg -k 5

serve: demo                                   ## the web page and API over the demo library
	$(BIN)/lookalike --library demo-library serve

test: $(VENV)/.dev-installed                  ## install everything and run the test suite
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo-library .pytest_cache
