"""Resources shared by every domain: the settings and the parquet IO manager."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ecom_assets.io import PolarsParquetIOManager
from ecom_assets.settings import DATA_DIR_ENV, EcomSettings


def build_resources(data_dir: str | Path | None = None) -> dict:
    """The resource dict for `Definitions`, `materialize` and the CLI.

    With a `data_dir` the resources are rooted there (tests, benchmarks). Without one they read
    `$ECOM_DATA_DIR` when a run starts, not when the code is imported, so the one `defs` object
    follows whatever data directory the CLI, `make dev` or a test points it at.
    """
    root = str(data_dir) if data_dir is not None else dg.EnvVar(DATA_DIR_ENV)
    return {
        "settings": EcomSettings(data_dir=root),
        "io_manager": PolarsParquetIOManager(data_dir=root),
    }
