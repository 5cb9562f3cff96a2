# Every target creates .venv itself when it is missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export ECOM_DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(ECOM_DATA_DIR)/.dagster
export DO_NOT_TRACK := 1

.PHONY: run test dev bench sample clean-data

$(BIN)/ecom-assets: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# Generate the default sample into data/landing (unless drops are already there), ingest, build.
run: $(BIN)/ecom-assets
	@ls $(ECOM_DATA_DIR)/landing/*.csv >/dev/null 2>&1 || ls $(ECOM_DATA_DIR)/archive/*.csv >/dev/null 2>&1 || \
		$(BIN)/ecom-assets generate --out $(ECOM_DATA_DIR)/landing --truth-out $(ECOM_DATA_DIR)/truth
	$(BIN)/ecom-assets run --data-dir $(ECOM_DATA_DIR)

test: $(BIN)/ecom-assets
	$(BIN)/python -m pytest -q

# The Dagster UI on 127.0.0.1:3000 with sensors and declarative automation running.
dev: $(BIN)/ecom-assets
	$(BIN)/ecom-assets prepare-home --data-dir $(ECOM_DATA_DIR)
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: $(BIN)/ecom-assets
	$(BIN)/ecom-assets bench --sessions 10000000 --customers 500000 --out bench --incremental \
		--baseline-sessions 500000 --events 10000000 --readme README.md

clean-data:
	rm -rf $(ECOM_DATA_DIR)/landing $(ECOM_DATA_DIR)/archive $(ECOM_DATA_DIR)/rejected \
		$(ECOM_DATA_DIR)/quarantine $(ECOM_DATA_DIR)/warehouse $(ECOM_DATA_DIR)/models \
		$(ECOM_DATA_DIR)/reports $(ECOM_DATA_DIR)/exports $(ECOM_DATA_DIR)/alerts \
		$(ECOM_DATA_DIR)/.dagster $(ECOM_DATA_DIR)/truth
