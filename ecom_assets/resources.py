"""Resources shared by every domain: the settings and the parquet IO manager."""

from __future__ import annotations

from pathlib import Path

from ecom_assets.io import PolarsParquetIOManager
from ecom_assets.settings import EcomSettings, default_data_dir


def build_resources(data_dir: str | Path | None = None) -> dict:
    """The resource dict for `Definitions`, `materialize` and the CLI, rooted at `data_dir`."""
    root = str(data_dir) if data_dir is not None else default_data_dir()
    return {
        "settings": EcomSettings(data_dir=root),
        "io_manager": PolarsParquetIOManager(base_dir=str(Path(root) / "warehouse")),
    }
