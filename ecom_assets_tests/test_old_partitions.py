"""Partitions written by an older version of the package (before `session_start` existed) are read
together with new ones: a scan over several stored files tolerates a missing optional column."""

import polars as pl

from ecom_assets.ingest import ingest_landing
from ecom_assets.io import scan_parquet
from ecom_assets_tests.ingest_helpers import SESSIONS_HEADER, drop, ingest_and_clean


def _rows(prefix: str, n: int, day: int) -> str:
    return "\n".join(f"{prefix}{i},C{i % 7},2024-01-{day:02d},Books,{60 + i},{i % 2},{(i % 2) * 19.5}" for i in range(n))


def test_a_scan_over_old_and_new_partitions_inserts_the_missing_column(tmp_path) -> None:
    old = pl.DataFrame({"session_id": ["S1"], "purchase_amount": [9.5]})  # written before session_start existed
    new = old.with_columns(session_start=pl.lit("2024-01-02T10:00:00Z").str.to_datetime(time_zone="UTC"),
                           session_id=pl.lit("S2"))
    old.write_parquet(tmp_path / "a.parquet")
    new.write_parquet(tmp_path / "b.parquet")
    for order in ([tmp_path / "a.parquet", tmp_path / "b.parquet"], [tmp_path / "b.parquet", tmp_path / "a.parquet"]):
        got = scan_parquet(order).select("session_id", "session_start").collect().sort("session_id")
        assert got["session_id"].to_list() == ["S1", "S2"]
        assert got["session_start"].null_count() == 1 and got.schema["session_start"] == pl.Datetime("us", "UTC")


def test_an_object_store_scan_over_old_and_new_partitions_inserts_the_missing_column() -> None:
    from upath import UPath

    from ecom_assets.io import write_parquet_atomic

    folder = UPath("memory://ecom-old-partitions/warehouse/raw_sessions")
    old = pl.DataFrame({"session_id": ["S1"], "purchase_amount": [9.5]})
    new = old.with_columns(session_start=pl.lit("2024-01-02T10:00:00Z").str.to_datetime(time_zone="UTC"),
                           session_id=pl.lit("S2"))
    try:
        write_parquet_atomic(old, folder / "a.parquet")
        write_parquet_atomic(new, folder / "b.parquet")
        got = scan_parquet([folder / "a.parquet", folder / "b.parquet"]).select("session_id", "session_start").collect()
        assert got["session_id"].to_list() == ["S1", "S2"] and got["session_start"].null_count() == 1
    finally:
        folder.fs.rm("/ecom-old-partitions", recursive=True)


def test_an_old_shape_raw_sessions_partition_is_profiled_and_cleaned_with_a_new_one(data_dir, instance, resources) -> None:
    """A data dir kept from an older release: its first drop's stored raw partition has no
    `session_start`. The next drop's profile compares against it and the clean tables are built."""
    drop(data_dir, "sessions_001.csv", SESSIONS_HEADER + "\n" + _rows("A", 40, 2) + "\n")
    ingest_landing(instance, data_dir)
    (stored,) = (data_dir / "warehouse" / "raw_sessions").glob("*.parquet")
    pl.read_parquet(stored).drop("session_start").write_parquet(stored)  # the old shape
    drop(data_dir, "sessions_002.csv", SESSIONS_HEADER + "\n" + _rows("B", 40, 9) + "\n")
    out = ingest_and_clean(data_dir, instance, resources)
    assert "FAILED" not in out["summary"], out["summary"]
    assert out["sessions"].height == 80 and out["sessions"]["session_start"].null_count() == 80
