"""The seed export (a real, messy export) through the whole ingest path: every row accounted for."""

import shutil

import polars as pl

from ecom_assets_tests.ingest_helpers import ingest_and_clean, quarantine


def test_seed_export_ingests_with_every_row_accounted_for(data_dir, seed_data_dir, instance, resources) -> None:
    for name in ("customers.csv", "sessions.csv"):
        shutil.copyfile(seed_data_dir / name, data_dir / "landing" / name)
    out = ingest_and_clean(data_dir, instance, resources)
    assert "55,100 rows in = 54,800 clean + 200 quarantined + 100 duplicate" in out["summary"]

    sessions, customers = out["sessions"], out["customers"]
    assert sessions.height == 49_800
    assert int((sessions["product_viewed"] == "unknown").sum()) == 1_295
    assert int(sessions["before_signup"].sum()) == 21_143
    bad = quarantine(data_dir)
    assert bad.height == 200 and set(bad["reason"]) == {"empty customer_id"}
    assert bad["line"].min() >= 2 and bad["source_file"].str.starts_with("sessions.csv__").all()
    assert customers.height == 5_000
    assert customers["gender"].null_count() == 85 and customers["location"].null_count() == 238

    # the originals are archived byte-identically and the landing zone is empty
    archived = sorted((data_dir / "archive").iterdir())
    assert [p.name.split("__")[0] for p in archived] == ["customers", "sessions"]
    for path in archived:
        assert path.read_bytes() == (seed_data_dir / (path.name.split("__")[0] + ".csv")).read_bytes()
    assert not list((data_dir / "landing").iterdir())
    checks = {c.check_name: c.passed for c in out["result"].get_asset_check_evaluations()}
    assert checks["rows_accounted_for"] is True
    summary = pl.read_parquet(data_dir / "warehouse" / "quarantine_summary.parquet")
    assert summary["rows"].sum() == 200
