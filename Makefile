# Two commands on a fresh machine (with DIGITS_DATA_DIR set, or online):
#   make run    set up .venv, train the article's network, evaluate, print where the report is
#   make test   set up .venv and run the test suite (under 10 minutes on 2 cores)
#   make test-quick   the suite without the tests marked slow (under 2 minutes)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test test-quick lint fmt docs bench clean shipped-model shipped-sheet-finder

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

run: setup
	$(BIN)/digits train --preset seed
	$(BIN)/digits show --index 1 --out runs/latest/show-1.png
	@echo "Report: runs/latest/ (metrics.json, curves.png, confusion.png, mistakes.png, show-1.png)"

test: setup
	$(BIN)/python -m pytest -q

test-quick: setup
	$(BIN)/python -m pytest -q -m "not slow"

# The checks that keep the layers: import contracts, lint, format, types.
lint: setup
	$(BIN)/lint-imports
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

fmt: setup
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

docs: setup
	$(BIN)/mkdocs build --strict --site-dir build/site

bench: setup
	$(BIN)/python benchmarks/speed.py

# The model the package ships: train the reader preset (seeded, reproducible),
# then copy its ONNX and metrics into src/digits/shipped/.
shipped-model: setup
	$(BIN)/digits train --preset reader --seed 0
	$(BIN)/python -c "from digits.train.export import ship; print(ship('runs/latest'))"

# The segmenter that finds a sheet on a desk (digits.read.sheet): seeded, about 20 minutes on 2 cores.
shipped-sheet-finder: setup
	$(BIN)/python -m digits.train.sheet_finder

clean:
	rm -rf $(VENV) runs
