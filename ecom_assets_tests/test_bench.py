"""`ecom-assets bench` end to end on a small sample: the documented results.json keys, the median of
the successive drops, and the README table. The figures themselves are the benchmark's business."""

import json
import statistics
from pathlib import Path

from ecom_assets.bench import README_END, README_START, markdown_table, run_bench, update_readme
from ecom_assets.settings import DATA_DIR_ENV


def test_bench_writes_the_documented_results(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))  # run_bench points both at its run folder; restored after
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    results = run_bench(20_000, 1_000, tmp_path / "bench", baseline_sessions=4_000, incremental=True,
                        sensor_files=30, drops=3)
    assert results == json.loads((tmp_path / "bench" / "results.json").read_text())
    for key in ("sessions", "customers", "total_s", "peak_rss_mib", "floor_parse_s", "clean_features_s",
                "baseline_pandas_s", "baseline_sessions", "incremental_s", "per_asset_s"):
        assert results[key] is not None, key
    assert results["build_success"] and results["sessions"] > 19_000
    btyd = results["btyd_fit_s"]  # BG/NBD seconds, read from the assets' metadata
    assert btyd["training_windows"] >= 2 and btyd["training_windows_s"] > 0 and btyd["scoring_snapshot_s"] > 0
    assert "BG/NBD fits" in markdown_table(results)
    assert {"raw_sessions", "clean_sessions", "customer_features", "churn_predictions"} <= set(results["per_asset_s"])
    drops = results["incremental_drops_s"]
    assert len(drops) == 3 and results["incremental_s"] == statistics.median(drops)
    assert {"raw_sessions", "clean_sessions", "customer_history", "churn_predictions"} <= set(
        results["incremental_per_asset_s"])
    # 30 waiting files: the first tick only sees them, the next requests the cap (25), the third the rest
    assert results["sensor_runs_requested"] == 30 and results["sensor_max_runs_per_tick"] == 25
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold\n{README_END}\nrest\n")
    update_readme(readme, results)
    assert markdown_table(results) in readme.read_text() and "old" not in readme.read_text()


def test_bench_events_path_reports_its_figures(tmp_path: Path) -> None:
    from ecom_assets.bench import time_events

    results = time_events(tmp_path / "bench", 20_000)
    assert results["events"] > 15_000 and results["events_sessions"] > 2_000
    assert results["events_ingest_s"] > 0 and results["events_over_floor"] > 0 and results["events_peak_rss_mib"] > 0
    assert {"raw_events", "raw_event_sessions"} <= set(results["events_steps_s"])
    assert "events:" in markdown_table({**_minimal_results(), **results})


def _minimal_results() -> dict:
    return {"total_s": 1, "floor_parse_s": 1, "clean_features_s": 1, "clean_features_over_floor": 1,
            "baseline_pandas_s": 1, "baseline_over_clean_features": 1, "peak_rss_mib": 1, "per_asset_peak_rss_mib": {},
            "per_asset_s": {}, "ingest_rows_per_s": 1, "sessions": 1, "customers": 1,
            "machine": {"cpus": 2, "python": "3.11"}, "measured_at": "2026-11-30"}
