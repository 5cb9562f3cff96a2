"""Resources shared by every domain: the settings and the parquet IO manager."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from ecom_assets.io import PolarsParquetIOManager
from ecom_assets.settings import CURRENCY_ENV, DATA_DIR_ENV, EcomSettings, currency_code

# Tables in an object store shared by workers on several machines (s3://bucket/warehouse, gs://…):
# read when the definitions load, so set it for the webserver, the daemon and every worker alike.
WAREHOUSE_URL_ENV = "ECOM_WAREHOUSE_URL"


def build_resources(data_dir: str | Path | None = None) -> dict:
    """The resource dict for `Definitions`, `materialize` and the CLI.

    With a `data_dir` the resources are rooted there (tests, benchmarks). Without one they read
    `$ECOM_DATA_DIR` when a run starts, not when the code is imported, so the one `defs` object
    follows whatever data directory the CLI, `make dev` or a test points it at. With
    `$ECOM_WAREHOUSE_URL` set, the IO manager's tables live there instead of `<data_dir>/warehouse`
    (models, reports, exports, the prediction log and the landing folder stay in the data directory).
    """
    root = str(data_dir) if data_dir is not None else dg.EnvVar(DATA_DIR_ENV)
    currency = os.environ.get(CURRENCY_ENV)
    return {
        "settings": EcomSettings(data_dir=root, **({"currency": currency_code(currency)} if currency else {})),
        "io_manager": PolarsParquetIOManager(data_dir=root, base_dir=os.environ.get(WAREHOUSE_URL_ENV, "")),
    }
