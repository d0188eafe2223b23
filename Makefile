# Everything cnnhw needs installs into .venv from this project's own files.
#   make example   install cnnhw, then run the main job on the example LeNet
#   make test      install cnnhw[test], then run the whole test suite

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: example test install clean

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
	# LeNet's weights need SPRAM (next issue); the iCEBreaker bitstream is built for mnist-8 meanwhile.
	$(BIN)/cnnhw build --model tests/data/mnist8/mnist-8.onnx --input-range 0 255 --board icebreaker

test: install
	$(BIN)/python -m pytest -n auto

clean:
	rm -rf $(VENV) build *.egg-info
