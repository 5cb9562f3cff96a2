"""The Dagster instance the CLI and `make dev` use: DAGSTER_HOME under the data directory.

Dagster reads `dagster.yaml` only from `$DAGSTER_HOME`, so this copies the repository's
instance config there: `dagster.yaml` (embedded SQLite) by default, `dagster_postgres.yaml`
when `DAGSTER_PG_URL` is set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PG_URL_ENV = "DAGSTER_PG_URL"


def instance_yaml_source() -> Path:
    name = "dagster_postgres.yaml" if os.environ.get(PG_URL_ENV) else "dagster.yaml"
    return REPO_ROOT / name


def prepare_dagster_home(data_dir: str | Path) -> Path:
    """Create `$ECOM_DATA_DIR/.dagster` (unless DAGSTER_HOME is set) with the instance config."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path(data_dir) / ".dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    src = instance_yaml_source()
    if src.exists():
        shutil.copyfile(src, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ.setdefault("ECOM_DATA_DIR", str(Path(data_dir).resolve()))
    return home
