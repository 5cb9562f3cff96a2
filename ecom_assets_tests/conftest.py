"""Shared fixtures: a throw-away data directory and an ephemeral Dagster instance."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from ecom_assets.resources import build_resources
from ecom_assets.settings import CURRENCY_ENV, DATA_DIR_ENV

# The seed export sits beside the checkout (../shared/seed_data); a clone elsewhere (CI) can
# point at it with ECOM_SEED_DATA. It is never copied into the repository.
SEED_CANDIDATES = [Path(p) for p in [os.environ.get("ECOM_SEED_DATA", "")] if p] + [
    Path(__file__).resolve().parents[1].parent / "shared" / "seed_data",
    Path("/work/shared/seed_data"),
]
SEED_DATA = next((p for p in SEED_CANDIDATES if (p / "sessions.csv").exists()), SEED_CANDIDATES[0])

os.environ.setdefault("DAGSTER_TELEMETRY_DISABLED", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    (d / "landing").mkdir(parents=True)
    return d


@pytest.fixture
def resources(data_dir: Path) -> dict:
    return build_resources(data_dir)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """The CLI sets ECOM_DATA_DIR / DAGSTER_HOME (and ECOM_CURRENCY) for its process; keep them test-local."""
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    monkeypatch.setenv(CURRENCY_ENV, "")  # recorded, so a value the CLI sets is undone after the test
    monkeypatch.delenv(CURRENCY_ENV)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "data" / ".dagster"))
    return tmp_path / "data"


@pytest.fixture
def seed_data_dir() -> Path:
    if not (SEED_DATA / "sessions.csv").exists():
        pytest.skip(f"seed export not found at {SEED_DATA}")
    return SEED_DATA
