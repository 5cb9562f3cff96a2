"""The raw step of an events / orders drop derives its sessions from the lines still in memory and hands
them to the sessions step of the same partition through a file (`assets.handoff_path`); the sessions
step takes that file only when it was derived from the lines it stores, else it derives them from the
stored lines itself."""

from datetime import datetime, timedelta, timezone

import dagster as dg
import polars as pl
import pytest

from ecom_assets.ingest import RAW_ASSETS, SESSION_ASSETS
from ecom_assets.ingest.assets import HANDOFF, handoff_path
from ecom_assets.settings import EcomSettings
from ecom_assets_tests.test_unfinished_ingest import DROPS, interrupt_after_first_step


def _raw_step(data_dir, instance, resources, kind: str) -> tuple[str, EcomSettings, datetime]:
    """Drop the kind's file and run its raw step only; (partition key, settings, ingested_at of the stored lines)."""
    key = interrupt_after_first_step(data_dir, instance, resources, kind)
    stored = pl.read_parquet(next((data_dir / "warehouse" / RAW_ASSETS[kind].key.path[-1]).glob("*.parquet")))
    return key, EcomSettings(data_dir=str(data_dir)), stored["ingested_at"].min()


def _sessions_step(data_dir, instance, resources, kind: str, key: str) -> pl.DataFrame:
    raw, sessions = RAW_ASSETS[kind], SESSION_ASSETS[kind]
    result = dg.materialize([raw, sessions], selection=[sessions], partition_key=key, instance=instance,
                            resources=resources)
    assert result.success
    return pl.read_parquet(next((data_dir / "warehouse" / sessions.key.path[-1]).glob("*.parquet")))


@pytest.mark.parametrize("kind", sorted(DROPS))
def test_the_raw_step_hands_its_sessions_to_the_sessions_step(kind, data_dir, instance, resources) -> None:
    key, settings, ingested_at = _raw_step(data_dir, instance, resources, kind)
    handed = handoff_path(settings, kind, key, ingested_at)
    assert handed.exists()
    expected = pl.read_parquet(handed)
    assert expected.height == DROPS[kind][2] and (expected["ingested_at"] == ingested_at).all()
    # what the sessions step stores is what was handed over, and the handoff is gone once taken
    assert _sessions_step(data_dir, instance, resources, kind, key).equals(expected)
    assert not list((data_dir / HANDOFF).rglob("*.parquet"))


@pytest.mark.parametrize("kind", sorted(DROPS))
def test_without_a_handoff_of_the_stored_lines_the_sessions_come_from_the_stored_lines(
        kind, data_dir, instance, resources) -> None:
    key, settings, ingested_at = _raw_step(data_dir, instance, resources, kind)
    handed = handoff_path(settings, kind, key, ingested_at)
    expected = pl.read_parquet(handed)
    # a handoff left by an earlier ingest of the partition (other lines) must never be taken for these lines
    stale = handoff_path(settings, kind, key, ingested_at - timedelta(hours=1))
    expected.head(1).with_columns(session_id=pl.lit("stale")).write_parquet(stale)
    handed.unlink()
    stored = _sessions_step(data_dir, instance, resources, kind, key)
    assert stored.sort("session_id").equals(expected.sort("session_id"))
    assert not stale.exists()  # cleared with the partition's other handoffs


def test_handoff_names_tell_ingests_of_a_partition_apart(tmp_path) -> None:
    settings = EcomSettings(data_dir=str(tmp_path))
    first = datetime(2024, 4, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)
    names = {handoff_path(settings, "events", "events.csv__ab12", t).name
             for t in (first, first + timedelta(microseconds=1))}
    assert len(names) == 2 and all(n.startswith("events.csv__ab12@") for n in names)
