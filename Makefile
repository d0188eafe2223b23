# Everything cnnhw needs installs into .venv from this project's own files.
#   make example   install cnnhw, then run the main job on the example LeNet
#   make test      install cnnhw[test] (and, as root on Debian, Chromium for the model card's
#                  browser test), then run the whole test suite (and name its slowest tests)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: example test install browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

example: install
	$(BIN)/cnnhw inspect --model examples/lenet.onnx
	$(BIN)/cnnhw quantize --model examples/lenet.onnx --eval examples/lenet.test.npz
	$(BIN)/cnnhw sim --model examples/lenet.onnx --inputs examples/lenet.sample.npz
	$(BIN)/cnnhw build --model examples/lenet.onnx --board icebreaker

browser:
	./scripts/install-browser.sh

test: install browser
	$(BIN)/python -m pytest -n auto --durations=15

clean:
	rm -rf $(VENV) build .cache *.egg-info
