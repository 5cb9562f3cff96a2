"""Shared fixtures: a throw-away data directory and an ephemeral Dagster instance."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from ecom_assets.resources import build_resources

SEED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "seed_data"

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
def seed_data_dir() -> Path:
    if not (SEED_DATA / "sessions.csv").exists():
        pytest.skip(f"seed export not found at {SEED_DATA}")
    return SEED_DATA
