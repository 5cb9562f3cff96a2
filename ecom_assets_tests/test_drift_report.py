"""The Evidently drift report says what the product decided, and never crashes on a column it cannot compare.

Quirks of real exports: a purchase log has no browsing time at all (browsing_* entirely empty), many
shops record no age, and a one-country shop has one `location`."""

from datetime import date

import numpy as np
import polars as pl

from ecom_assets.churn import registry
from ecom_assets.monitoring.assets import DRIFT_LATEST, feature_drift_report
from ecom_assets.monitoring.drift import DRIFT_CATEGORICAL, DRIFT_NUMERIC, evidently_drift
from ecom_assets.settings import EcomSettings

N = 1500


def features(rng: np.random.Generator, shifted: tuple[str, ...] = ()) -> pl.DataFrame:
    """8 comparable watched columns (6 numeric, 2 categorical) + 3 numeric browsing/age columns left empty
    and one constant location; `shifted` columns moved by two standard deviations."""
    frame = {c: rng.normal(10, 1, N) + (2 if c in shifted else 0) for c in DRIFT_NUMERIC}
    for empty in ("browsing_mean_30d", "browsing_mean_sec", "age"):
        frame[empty] = [None] * N
    frame["gender"] = rng.choice(["female", "male"], N).tolist()
    frame["favourite_category"] = rng.choice(["Books", "Home", "Toys"], N, p=[0.6, 0.3, 0.1] if "favourite_category"
                                             not in shifted else [0.1, 0.3, 0.6]).tolist()
    frame["location"] = ["Germany"] * N
    return pl.DataFrame(frame, schema_overrides={c: pl.Float64 for c in DRIFT_NUMERIC}).with_columns(
        customer_id=pl.int_range(N).cast(pl.String), cold_start=pl.lit(False), as_of=pl.lit(date(2024, 3, 31)))


def headline(snapshot) -> tuple[float, bool, float]:
    """(share, drift detected, threshold) from the report's own result (its tests and metrics), not our table."""
    result = snapshot.dict()
    share = next(m["value"]["share"] for m in result["metrics"] if m["config"]["type"].endswith("DriftedColumnsCount"))
    test = next(t for t in result["tests"] if t["name"].startswith("Share of Drifted Columns"))
    threshold = next(m["config"]["drift_share"] for m in result["metrics"]
                     if m["config"]["type"].endswith("DriftedColumnsCount"))
    return share, test["status"] == "FAIL", threshold


def test_a_share_between_the_threshold_and_one_half_is_reported_as_drift() -> None:
    rng = np.random.default_rng(0)
    reference = features(rng)
    # 3 of the 8 comparable columns shifted: 37.5 %, above the product's 25 % and below Evidently's default 50 %
    current = features(rng, shifted=("aov_30d", "purchase_rate", "favourite_category"))
    drift = evidently_drift(current, reference, 50_000, 0.25, "wasserstein", "jensenshannon", 0.1)
    share, detected, threshold = headline(drift.snapshot)
    assert threshold == 0.25 and 0.25 <= share < 0.5
    assert detected and drift.detected and drift.share == share
    assert set(drift.table.filter("drifted")["column"]) == {"aov_30d", "purchase_rate", "favourite_category"}
    assert set(drift.table["method"]) == {"wasserstein", "jensenshannon"}
    assert drift.left_out == {"browsing_mean_30d": "entirely empty in the reference and the current snapshot",
                              "browsing_mean_sec": "entirely empty in the reference and the current snapshot",
                              "age": "entirely empty in the reference and the current snapshot",
                              "location": "constant (Germany) in both"}
    assert set(DRIFT_NUMERIC + DRIFT_CATEGORICAL) == set(drift.table["column"]) | set(drift.left_out)


def test_the_asset_metadata_title_and_headline_agree_and_empty_columns_are_named(tmp_path) -> None:
    import json

    settings = EcomSettings(data_dir=str(tmp_path / "data"))
    rng = np.random.default_rng(1)
    version = "v0001"
    reference = features(rng)
    registry.write_card(settings.models, version, {"version": version, "reference_as_of": "2024-01-31"})
    reference.drop("as_of", "cold_start").write_parquet(registry.reference_features_path(settings.models, version))
    registry.promote(settings.models, version, "test")
    current = features(rng, shifted=("aov_30d", "purchase_rate", "favourite_category"))
    output, check = list(feature_drift_report(settings=settings, customer_features=current))
    meta = output.metadata
    assert meta["dataset_drift"].value is True and not check.passed
    assert meta["threshold"].value == 0.25 and 0.25 <= meta["drift_share"].value < 0.5
    assert "age: entirely empty" in meta["left_out"].value and "browsing_mean_30d" in meta["left_out"].value
    title = meta["title"].value
    assert "v0001" in title and "2024-03-31" in title and "2024-01-31" in title
    summary = json.loads((settings.reports / DRIFT_LATEST).read_text())
    assert summary["dataset_drift"] is True and summary["left_out_columns"]["age"].startswith("entirely empty")
    page = (settings.reports / "feature_drift_latest.html").read_text()
    assert title in page and "Left out (cannot be compared): " in page


def test_columns_missing_from_the_models_reference_are_named_as_left_out() -> None:
    """A shop without age and browsing time: the model was trained without those features, so its
    reference file lacks the columns altogether; they are named, not silently skipped."""
    rng = np.random.default_rng(2)
    reference = features(rng).drop("browsing_mean_30d", "browsing_mean_sec", "age")
    drift = evidently_drift(features(rng), reference, 50_000, 0.25, "wasserstein", "jensenshannon", 0.1)
    assert drift.left_out["age"].startswith("not in the reference")
    assert {"browsing_mean_30d", "browsing_mean_sec", "age", "location"} == set(drift.left_out)
    assert set(DRIFT_NUMERIC + DRIFT_CATEGORICAL) == set(drift.table["column"]) | set(drift.left_out)
