# Two entry points (see README): `make demo` and `make test`.
# torch==2.13.0 is installed first: it is a CPU build on this kind of machine, while
# an open range would pull a multi-GB CUDA build. The project itself asks for torch>=2.3.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test bench clean

$(BIN)/prefstudio: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,demo]'
	touch $@

setup: $(BIN)/prefstudio

demo: setup
	$(BIN)/prefstudio demo

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m pip install -q -e '.[bench]'
	@echo "benchmarks are run one by one: see bench/README.md"

clean:
	rm -rf $(VENV) .pytest_cache
