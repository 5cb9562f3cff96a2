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
